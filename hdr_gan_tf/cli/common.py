"""Shared plumbing of the command-line programs: quiet start-up, error exits, common flags.

Every program reports unusable input (files, checkpoints, flags) as one `error: ...` line on
stderr and exit status 2, without a traceback; nothing it was writing is left behind because all
outputs are written atomically.
"""

import atexit
import contextlib
import gc
import glob
import os
import re
import signal
import sys
import tempfile

from absl import app, flags

from hdr_gan_tf import cli
from hdr_gan_tf.settings import worded

FLAGS = flags.FLAGS
EXIT_BAD_INPUT = 2


def quiet_logs():
    """Keeps TensorFlow's informational chatter off the console."""
    from absl import logging
    logging.set_verbosity(logging.WARNING)
    import cv2
    import tensorflow as tf
    tf.get_logger().setLevel("ERROR")
    # Unreadable images are reported by our own messages; OpenCV's would only repeat them.
    cv2.utils.logging.setLogLevel(cv2.utils.logging.LOG_LEVEL_SILENT)


class Terminated(BaseException):
    """SIGTERM, raised where the program is, so that what it was writing is cleaned up (every
    output is written through a temporary name that a failed block removes)."""


def printable(text):
    """`text` with file names that are not valid UTF-8 (Python keeps their bytes as lone
    surrogates) shown as `\\xNN` escapes instead of failing to print."""
    return str(text).encode("utf-8", "surrogateescape").decode("utf-8", "backslashreplace")


def error(message, status=EXIT_BAD_INPUT):
    """Prints one `error: ...` line and exits with `status`."""
    print(f"error: {printable(message)}", file=sys.stderr, flush=True)
    sys.exit(status)


def tensorflow_error(err):
    """One line for a TensorFlow runtime error, with advice where there is some."""
    import tensorflow as tf

    from hdr_gan_tf.outputs import disk_full, is_disk_full

    if is_disk_full(err):
        return str(disk_full(err, "an output"))
    detail = f"{type(err).__name__}: {str(err).strip().splitlines()[0][:300]}"
    if isinstance(err, tf.errors.ResourceExhaustedError):
        advice = "; try --tile to bound the memory a merge needs" if "tile" in FLAGS else ""
        return f"out of memory ({detail}){advice}"
    return f"TensorFlow stopped: {detail}"


def guarded(main):
    """Wraps an absl `main` so that every foreseeable failure ends with one `error: ...` line
    and exit status 2: bad input (ValueError, OSError), TensorFlow runtime errors (out of
    memory, unreadable files), Ctrl-C. SIGTERM exits with 143 after the same clean-up."""
    def wrapped(argv):
        quiet_logs()
        try:
            return main(argv)
        except (Exception, KeyboardInterrupt, Terminated) as err:
            ending = _ending(err)
            if ending is None:  # a bug: its traceback is shown
                raise
            error(*ending)
    return wrapped


def _ending(err):
    """`(error line, exit status)` for an exception a program stops with, or None for one that
    no input explains."""
    import tensorflow as tf

    from hdr_gan_tf.outputs import DiskFull, disk_full, is_disk_full

    # SIGTERM's `Terminated` can surface wrapped in another error when it is raised inside a
    # C extension (TensorFlow converting an array, say); the handler's record tells.
    if isinstance(err, Terminated) or (_sigterm_received and isinstance(err, Exception)):
        return "stopped by SIGTERM; nothing half-written was left behind", 128 + 15
    if isinstance(err, (ValueError, OSError)):
        if is_disk_full(err) and not isinstance(err, DiskFull):
            err = disk_full(err, "an output")
        return worded(err, as_flag), EXIT_BAD_INPUT  # the settings it names as our flags
    if isinstance(err, tf.errors.OpError):
        return tensorflow_error(err), EXIT_BAD_INPUT
    if isinstance(err, KeyboardInterrupt):
        return "interrupted; nothing half-written was left behind", EXIT_BAD_INPUT
    return None


def say(line):
    print(printable(line), flush=True)


def as_flag(name):
    """A setting as the programs spell it: the flag of its name."""
    return f"--{name}"


def spelled(text):
    """A library text (a help line) with the settings it marks as `{name}` written as flags."""
    return re.sub(r"\{([a-z][a-z0-9_]*)\}", lambda m: as_flag(m.group(1)), text)


# What TensorFlow prints while it loads and looks for devices: absl's notice, informational
# lines (oneDNN, CPU features, "Could not find cuda drivers") and, on a machine without a GPU,
# the failed CUDA initialisation.
_STARTUP_CHATTER = re.compile(r"(WARNING: All log messages before absl::InitializeLog"
                              r"|[IW]\d{4} |E\d{4} .*(cuInit|CUDA|cuda)"
                              r"|To enable the following instructions)")


def gpu_driver_present():
    return os.path.exists("/proc/driver/nvidia/version") or bool(glob.glob("/dev/nvidia[0-9]*"))


def import_tensorflow():
    """Imports TensorFlow and lets it find its devices with Python's cycle collector paused,
    then freezes what exists (`gc.freeze`): the import's objects live as long as the process,
    and every later full collection would walk them again (docs/performance.md, "Start-up and
    exit")."""
    collecting = gc.isenabled()
    gc.disable()
    try:
        import tensorflow as tf
        tf.config.list_physical_devices()
    finally:
        if collecting:
            gc.enable()
    gc.freeze()


def start_tensorflow():
    """Loads TensorFlow (`import_tensorflow`), so that a program's first lines are its own: on a
    machine without an NVIDIA driver TensorFlow's start-up chatter (CUDA probing included) is
    held back, and whatever else it prints passes through. With a GPU driver, or when the user
    set TF_CPP_MIN_LOG_LEVEL, TensorFlow prints as it likes."""
    if cli.USER_LOG_LEVEL or gpu_driver_present():
        import_tensorflow()
        return
    saved = os.dup(2)
    with tempfile.TemporaryFile() as capture:
        sys.stderr.flush()
        os.dup2(capture.fileno(), 2)
        try:
            import_tensorflow()
        finally:
            os.dup2(saved, 2)
            os.close(saved)
        capture.seek(0)
        held = capture.read().decode(errors="replace").splitlines()
    for line in held:
        if line.strip() and not _STARTUP_CHATTER.match(line):
            print(line, file=sys.stderr)


_sigterm_received = False


def _raise_terminated(signum, frame):
    global _sigterm_received
    _sigterm_received = True
    raise Terminated()


def parse_flags(argv):
    """absl's parsing, with a bad or unknown flag reported as one `error:` line, exit 2."""
    try:
        return FLAGS(argv)
    except flags.Error as err:
        error(f"{err} (see --help)")
    except (UnicodeDecodeError, OSError, MemoryError) as err:  # a flag file that is no text
        error(f"--flagfile: cannot be read as a file of flags ({type(err).__name__}: "
              f"{str(err)[:200]})")


def run_program(define_flags, main, argv=None):
    """Runs a program. From its console script (`argv` None): starts TensorFlow quietly,
    defines the program's flags and runs its `main` under absl (SIGTERM raising `Terminated`
    wherever the program is). With `argv` (the arguments after the program's name), runs it
    in this process (`run_in_process`) and returns its exit status."""
    if argv is not None:
        return run_in_process(define_flags, main, argv)
    # At exit, the interpreter's last collections would walk every object the run made,
    # although the process's memory goes back whole.
    atexit.register(gc.freeze)
    start_tensorflow()
    define_flags()
    signal.signal(signal.SIGTERM, _raise_terminated)
    app.run(main, flags_parser=parse_flags)


@contextlib.contextmanager
def flags_defined(define_flags):
    """A program's flags (`define_flags`), defined for the block only, so that programs can
    run one after another in one process (or a test can run many)."""
    before = set(FLAGS)
    define_flags()
    try:
        yield FLAGS
    finally:
        for name in set(FLAGS) - before:
            delattr(FLAGS, name)


def run_in_process(define_flags, main, argv):
    """Runs a program's `main` on `argv` in this process, as its console script would, and
    returns the exit status; its flags exist for the run only (`flags_defined`)."""
    with flags_defined(define_flags):
        try:
            FLAGS.unparse_flags()
            remaining = parse_flags(["hdr_gan_tf", *map(str, argv)])
            return main(remaining) or 0
        except SystemExit as exit_:
            return exit_.code if isinstance(exit_.code, int) else 1


# ------------------------------------------------------------------ flags several programs share
def define_checkpoint_flag(required=True):
    flags.DEFINE_string("checkpoint", None, "Training log dir (latest checkpoint) or checkpoint "
                        "path.", required=required)


def define_precision_flag():
    from hdr_gan_tf.merge import InferenceOptions

    define_setting_flags(InferenceOptions, ("precision",))


def define_setting_flags(record, names=None, defaults=None):
    """One flag per field of the dataclass `record` declared with `settings.setting` (or those
    of `names`), generated from the declaration (type, default, help, choices), so that a flag
    cannot drift from its setting. `defaults`: flags given as text with another default."""
    import dataclasses
    import typing

    hints, defaults = typing.get_type_hints(record), defaults or {}
    for field in dataclasses.fields(record):
        if "help" not in field.metadata or (names is not None and field.name not in names):
            continue
        kind, meta, default = hints[field.name], field.metadata, field.default
        help_text = spelled(meta["help"])
        if field.name in defaults:
            flags.DEFINE_string(field.name, defaults[field.name], help_text)
        elif meta.get("choices") and kind is str:
            flags.DEFINE_enum(field.name, default, list(meta["choices"]), help_text)
        elif typing.get_origin(kind) is tuple:
            flags.DEFINE_list(field.name, [f"{v:g}" for v in default], help_text)
        else:
            if meta.get("choices") and kind is not bool:
                help_text += f" One of: {', '.join(map(str, meta['choices']))}."
            define = {bool: flags.DEFINE_bool, int: flags.DEFINE_integer,
                      float: flags.DEFINE_float}.get(kind, flags.DEFINE_string)
            define(field.name, default, help_text)


def define_overwrite_flag(what="Replace existing outputs."):
    flags.DEFINE_bool("overwrite", False, what)


def define_merge_flags(display_referred=True):
    """`--method` (every method of `methods.METHODS`, or those that make radiance);
    `--tile`, `--overlap`, `--precision`, `--jit_compile`: how a merge runs
    (`inference_options`); and `--max_pixels`."""
    from hdr_gan_tf.methods import DEFAULT_METHOD, METHODS

    from hdr_gan_tf.merge import InferenceOptions

    offered = [m for m in METHODS.values() if display_referred or not m.display_referred]
    flags.DEFINE_enum("method", DEFAULT_METHOD, [m.name for m in offered], "; ".join(
        f"{m.name}: {spelled(m.summary)}" for m in offered) + ".")
    # The tile is given as text: "auto" or a number.
    define_setting_flags(InferenceOptions, ("tile", "overlap", "precision", "jit_compile"),
                         defaults={"tile": "auto"})
    define_max_pixels_flag()


def define_align_flag(default):
    """`--align`: how the photos are registered to the reference before the merge."""
    from hdr_gan_tf.alignment import ALIGN_MODES

    flags.DEFINE_enum("align", default, list(ALIGN_MODES), "Register the short and long photos "
                      "to the reference first: " + "; ".join(
                          f"{m.name}: {m.summary}" for m in ALIGN_MODES.values()) + ".")


def define_tonemap_flag():
    from hdr_gan_tf.display import DEFAULT_TONEMAPPER, TONEMAPPERS

    flags.DEFINE_enum("tonemap", DEFAULT_TONEMAPPER, list(TONEMAPPERS), "Preview tonemapper: "
                      + "; ".join(f"{t.name}: {t.summary}" for t in TONEMAPPERS.values()) + ".")


def define_max_pixels_flag():
    from hdr_gan_tf.image_io import MAX_PIXELS

    flags.DEFINE_integer("max_pixels", MAX_PIXELS, "Largest image (width x height) "
                         "read; larger ones are refused from their headers, before they are "
                         "decoded.")


def inference_options():
    """The merge's `InferenceOptions` from `--tile`, `--overlap`, `--precision` and
    `--jit_compile` (ConfigError naming the flag of a value that cannot be used)."""
    from hdr_gan_tf.merge import InferenceOptions, tile_setting

    tile, auto = tile_setting(FLAGS.tile)
    return InferenceOptions(tile=tile, overlap=FLAGS.overlap, precision=FLAGS.precision,
                            jit_compile=FLAGS.jit_compile, auto_tile=auto)
