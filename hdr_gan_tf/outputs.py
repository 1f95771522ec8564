"""Where the programs write: output folders that are replaced only safely, and temporary names.

Rules for an output folder (`check_output_dir`, before any work):
- never the current folder or one above it (`.`, `..`, `/`), the home folder, an input of the
  same command, a folder inside an input or one that contains an input;
- an existing folder is replaced only with `--overwrite`, and only if the same program wrote it
  (its marker file `MARKER` says so, or, for outputs written before markers existed, its
  contents do).

The one rule for what `--overwrite` may replace (`check_outputs`): only what a record of ours
vouches for. A folder's record is its marker; a file's is the record the program names for it
(`hdr-gan-infer`'s sidecar, `hdr-gan-export`'s marker), which must list the file with the size
and SHA-256 it has now (`fingerprint`); the record itself must be one of ours (`is_our_record`).
Anything else is refused, named, before any work.

A command's files are replaced as one set (`output_set`): each is written complete under a
temporary name first; only when all are, the old ones are renamed aside, the new ones renamed
in and the old ones removed. A failure before that point leaves every old file as it was and no
new one; a failure among the renames puts the old ones back.

Every file the programs write goes through `atomic_output` (the data land in a temporary file
beside the target and are renamed onto it only when complete); `output_dir` builds a new folder
beside the target and swaps it in: the new folder is complete first, the old one is renamed
aside, the new one renamed in, the old one removed. An error between the two renames puts the
old folder back; a killed process leaves the old folder
aside, complete, and the next program that writes there puts it back (`clean_leftovers`).

A folder that `hdr-gan-train` has written is a training log dir, whoever created it: no
program replaces it, `--overwrite` included (`is_training_log_dir`). Programs that write into a
log dir hold its lock (`log_dir_lock`) while they do.

`check_outputs` checks every output of a command against every other and against every input
of the command: no two outputs on one path, no output on, inside or around an input.

Every temporary file and folder of the programs starts with `TEMP_PREFIX` and carries the
process id and the process's start time, so that stale ones (their process is gone, or the id
now belongs to another process) can be told from live ones.
"""

import contextlib
import contextvars
import errno
import fcntl
import hashlib
import json
import os
import re
import shutil
import stat
import tempfile
import time
from pathlib import Path

from hdr_gan_tf.settings import SettingError

TEMP_PREFIX = ".hdr_gan_tmp-"
MARKER = ".hdr_gan_tf.json"
# What each kind of output folder is, which program writes it, and the names an unmarked one
# written before markers existed may hold.
KINDS = {
    "saved_model": ("hdr-gan-export", {"saved_model.pb", "variables", "assets", "fingerprint.pb"}),
    "log_dir": ("hdr-gan-convert-tf1", None),
    "evaluation": ("hdr-gan-evaluate", None),
}
# What `hdr-gan-train` writes into a log dir, besides checkpoints: its lock, its marker, its
# summaries. A folder with the summaries or the marker of this kind is a training log dir.
TRAINING_LOG_DIR = "training_log_dir"
LOCK_FILE = ".hdr_gan_train.lock"
SUMMARIES = "train"
_TEMP_NAME = re.compile(re.escape(TEMP_PREFIX) + r"(?P<pid>\d+)(?:\.(?P<started>\d+))?"
                        r"(?:\.(?P<namespace>\d+))?-(?P<rest>.*)")


class OutputError(SettingError):
    """An output that must not be written; the message names it and says why."""


class DiskFull(OSError):
    """The disk (or the user's quota) filled up while a program wrote `filename`."""

    def __init__(self, filename, detail=""):
        super().__init__(errno.ENOSPC, "disk full", str(filename))
        self.detail = detail

    def __str__(self):
        return (f"disk full writing {self.filename}" + (f" ({self.detail})" if self.detail
                                                          else "")
                + "; free some space and run again (what was there before is intact)")


def is_disk_full(err):
    """Whether an exception (OSError or TensorFlow's error) reports a full disk or quota."""
    if isinstance(err, OSError):
        return err.errno in (errno.ENOSPC, errno.EDQUOT)
    return "No space left on device" in str(err) or "Disk quota exceeded" in str(err)


def disk_full(err, writing):
    """`DiskFull` for an exception `is_disk_full` accepts: the file the error names, else
    `writing`."""
    named = getattr(err, "filename", None)
    if not named:
        found = re.search(r"(\S+?)(?:\.tempstate\d+)?; (?:No space left on device|Disk quota)",
                          str(err))
        named = found.group(1) if found else writing
    return DiskFull(named)


def _start_ticks(pid):
    """Start time of process `pid` in clock ticks since boot (Linux), or None if unknown."""
    try:
        return int(Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[19])
    except (OSError, ValueError, IndexError):
        return None


def _pid_namespace():
    """The process-id namespace of this process (Linux; None elsewhere): a pid means the same
    process only within one namespace (a container has its own)."""
    try:
        return os.stat("/proc/self/ns/pid").st_ino
    except OSError:
        return None


def temp_name(label):
    """A name for a temporary file or folder of this process: the prefix, the pid with the
    process's start time and its pid namespace, a label."""
    pid, started, namespace = os.getpid(), _start_ticks(os.getpid()), _pid_namespace()
    who = str(pid) if started is None or namespace is None else f"{pid}.{started}.{namespace}"
    return f"{TEMP_PREFIX}{who}-{label}"


def user_permissions(path, directory=False):
    """Gives a file or folder made by `mkstemp`/`mkdtemp` (owner only) the permissions of a
    normally created one."""
    umask = os.umask(0)
    os.umask(umask)
    os.chmod(path, (0o777 if directory else 0o666) & ~umask)


# The `OutputSet` that `atomic_output` hands its finished files to, where one is open.
_OPEN_SET = contextvars.ContextVar("output_set", default=None)


@contextlib.contextmanager
def atomic_output(path):
    """Yields a temporary path beside `path` (same suffix); renames it onto `path` on success,
    or, inside `output_set`, hands it to the set, which renames it with the others.

    A full disk is reported as `DiskFull` naming `path`."""
    path = Path(path)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=temp_name(f"{path.stem}."), suffix=path.suffix,
                                   dir=path.parent)
    except OSError as err:
        if is_disk_full(err):
            raise DiskFull(path) from None
        raise
    os.close(fd)
    try:
        yield Path(tmp)
        user_permissions(tmp)  # mkstemp makes the file private
        staging = _OPEN_SET.get()
        if staging is None:
            os.replace(tmp, path)
        else:
            staging.add(Path(tmp), path)
    except BaseException as err:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        if isinstance(err, OSError) and is_disk_full(err) and not isinstance(err, DiskFull):
            raise DiskFull(path) from None
        raise


def write_text(path, text):
    with atomic_output(path) as tmp:
        tmp.write_text(text)


class OutputSet:
    """The files of one `output_set` block: each finished under its temporary name."""

    def __init__(self):
        self.staged = []  # (temporary path, target)

    def add(self, tmp, target):
        target = Path(target)
        for earlier, _ in [(t, p) for t, p in self.staged if p == target]:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(earlier)
        self.staged = [(t, p) for t, p in self.staged if p != target] + [(tmp, target)]

    def temporary(self, target):
        """Where `target`'s new data lies until the set is committed (None if not staged)."""
        return next((t for t, p in self.staged if p == Path(target)), None)

    def discard(self):
        for tmp, _ in self.staged:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(tmp)
        self.staged = []

    def commit(self):
        """Old files aside, new ones in, old ones removed; a failed rename puts back what was
        there (see the module docstring)."""
        aside, placed = [], []
        try:
            for _, target in self.staged:
                if os.path.lexists(target):
                    old = target.with_name(temp_name(f"{target.name}-old"))
                    os.rename(target, old)
                    aside.append((old, target))
            for tmp, target in self.staged:
                os.rename(tmp, target)
                placed.append(target)
        except BaseException:
            for target in placed:
                with contextlib.suppress(OSError):
                    os.unlink(target)
            for old, target in aside:
                with contextlib.suppress(OSError):
                    os.rename(old, target)
            self.discard()
            raise
        for old, _ in aside:
            with contextlib.suppress(OSError):
                os.unlink(old)
        self.staged = []


@contextlib.contextmanager
def output_set():
    """Every file written through `atomic_output` in the block (this thread's) is replaced as
    one set when the block succeeds; if it fails, none is (see the module docstring). Yields
    the `OutputSet`."""
    staging = OutputSet()
    token = _OPEN_SET.set(staging)
    try:
        yield staging
    except BaseException:
        _OPEN_SET.reset(token)
        staging.discard()
        raise
    _OPEN_SET.reset(token)
    staging.commit()


# Programs whose records (sidecars and markers) vouch for what they wrote.
PROGRAMS = ("hdr-gan-infer", "hdr-gan-app", "hdr-gan-export", "hdr-gan-evaluate",
            "hdr-gan-convert-tf1", "hdr-gan-train")


def fingerprint(path, data_path=None, record=None):
    """`{"path", "bytes", "sha256"}` of the file `path` (its data read from `data_path`, where
    it is not yet in place): what a record lists so that `--overwrite` can tell it is ours.
    With `record` (the record file that will list it) the path is written relative to the
    record's folder, so that the two can move together and be named from anywhere."""
    data_path = Path(data_path or path)
    digest = hashlib.sha256()
    with open(data_path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    named = str(path) if record is None else os.path.relpath(
        Path(path).absolute(), Path(record).absolute().parent)
    return {"path": named, "bytes": data_path.stat().st_size, "sha256": digest.hexdigest()}


def _read_record(path):
    """A record's JSON object, or None (missing, unreadable, not JSON, not an object, not of
    one of `PROGRAMS`)."""
    try:
        if not Path(path).is_file() or Path(path).stat().st_size > 1 << 22:
            return None
        record = json.loads(Path(path).read_text())
    except (OSError, ValueError, RecursionError):
        return None
    if not isinstance(record, dict) or record.get("program") not in PROGRAMS:
        return None
    return record


def is_our_record(path):
    """Whether `path` is a record one of `PROGRAMS` wrote (a sidecar or marker)."""
    return _read_record(path) is not None


def vouched_for(path, records):
    """Whether one of the records (files) lists `path` with the size and SHA-256 it has now
    (a relative path in a record is relative to the record's folder)."""
    path = Path(path)
    try:
        size = path.stat().st_size
    except OSError:
        return False
    current = None
    for record_path in records:
        record = _read_record(record_path)
        listed = record and record.get("files")
        for entry in listed if isinstance(listed, list) else []:
            if not isinstance(entry, dict) or entry.get("bytes") != size:
                continue
            try:
                listed_path = Path(record_path).absolute().parent / str(entry.get("path"))
                same_path = listed_path.resolve() == path.resolve()
            except (OSError, RuntimeError, ValueError):
                continue
            if same_path:
                current = current or fingerprint(path)
                if entry.get("sha256") == current["sha256"]:
                    return True
    return False


def _is_under(path, folder):
    return path == folder or folder in path.parents


def _relation(path, other, around=True):
    """How the resolved `path` stands to the resolved `other`: "is", "lies inside",
    "contains" (only with `around`), or None when they are apart."""
    if path == other:
        return "is"
    if other in path.parents:
        return "lies inside"
    if around and path in other.parents:
        return "contains"
    return None


def check_output_dir(target, kind, overwrite, inputs=()):
    """Raises OutputError if the program must not write the output folder `target`.

    Args:
      kind: a key of `KINDS`.
      overwrite: the program's `--overwrite`.
      inputs: paths the command reads (checkpoints, data, SavedModels).
    """
    target = Path(target)
    clean_leftovers(target.parent)
    resolved = target.resolve()
    cwd = Path.cwd().resolve()
    if _is_under(cwd, resolved):
        raise OutputError(f"{target}: refusing to write here: it is the current folder or one "
                          f"above it")
    if resolved == Path.home().resolve():
        raise OutputError(f"{target}: refusing to write here: it is the home folder")
    check_apart_from_inputs(target, inputs)
    if not target.exists() and not target.is_symlink():
        return
    if not target.is_dir() or target.is_symlink():
        raise OutputError(f"{target}: exists and is not a folder")
    if not any(target.iterdir()):
        return
    program = KINDS[kind][0]
    if is_training_log_dir(target):
        raise OutputError(f"{target}: is a training log dir (hdr-gan-train has written it); no "
                          f"program replaces one, {{overwrite}} included. Choose another folder, "
                          f"or remove this one yourself.", mentions=["overwrite"])
    if not overwrite:
        raise OutputError(f"{target}: output exists; set {{overwrite}} to replace it",
                          mentions=["overwrite"])
    if not written_by(target, kind):
        raise OutputError(f"{target}: exists and is not an earlier output of {program} (no "
                          f"{MARKER}); {{overwrite}} replaces only that. Choose another folder, "
                          f"or remove this one yourself.", mentions=["overwrite"])


def check_apart_from_inputs(output, inputs, around=True):
    """Raises OutputError if the output file or folder `output` is an input (a path of
    `inputs`, None for one not given), lies inside an input folder, or (`around`, for an
    output folder that is replaced whole) contains an input; or if a folder above it is in
    fact a file."""
    for above in Path(output).parents:
        if above.exists() or above.is_symlink():
            if not above.is_dir():
                raise OutputError(f"{output}: cannot be written: {above} is a file, not a "
                                  f"folder")
            break
    resolved = Path(output).resolve()
    for given in inputs:
        relation = given and _relation(resolved, Path(given).resolve(), around)
        if relation:
            raise OutputError(f"{output}: refusing to write here: it {relation} the input "
                              f"{given}")


def check_output_file(path, overwrite, inputs=(), records=()):
    """Raises OutputError if the program must not write the file `path`: it is (or lies inside)
    an input, or it exists and `overwrite` is off, it is not a regular file, or no record of
    ours vouches for it (`records`: the record files that may list it; a record among them
    must itself be one of ours)."""
    path = Path(path)
    if path.name in (MARKER, LOCK_FILE):
        raise OutputError(f"{path}: {path.name} is the name of our programs' own records; "
                          f"choose another name")
    clean_leftovers(path.parent)
    check_apart_from_inputs(path, inputs)
    if os.path.lexists(path):
        if not path.is_file() or path.is_symlink():
            raise OutputError(f"{path}: exists and is not a regular file")
        if not overwrite:
            raise OutputError(f"{path}: output exists; set {{overwrite}} to replace it",
                              mentions=["overwrite"])
        records = [Path(r) for r in records]
        ours = (is_our_record(path) if path in records
                else vouched_for(path, [r for r in records if r != path]))
        if not ours:
            raise OutputError(f"{path}: exists and no record of ours says this program wrote "
                              f"it as it is now; {{overwrite}} replaces only that. Choose "
                              f"another name, or remove it yourself.", mentions=["overwrite"])


def check_outputs(files=(), folders=(), inputs=(), overwrite=False, records=None):
    """Checks all outputs of one command at once: `files` (paths, None for one not asked for)
    with `check_output_file`, `folders` (`(path, kind)`) with `check_output_dir`, each against
    every input, and no two outputs on one path or one inside another's folder. `records`
    `{file: [record files]}` names what may vouch for each file (`check_output_file`).

    Raises:
      OutputError naming the outputs (and input) in conflict.
    """
    named = [(Path(p), None) for p in files if p] + [(Path(p), k) for p, k in folders if p]
    resolved = [path.resolve() for path, _ in named]
    for i, (path, _) in enumerate(named):
        for (other, _), other_resolved in zip(named[:i], resolved[:i]):
            relation = _relation(resolved[i], other_resolved)
            if relation:
                relation = "is the same path as" if relation == "is" else relation
                raise OutputError(f"{path}: refusing to write here: it {relation} the output "
                                  f"{other} of the same command")
    records = {Path(p): r for p, r in (records or {}).items()}
    for path, kind in named:
        if kind is None:
            check_output_file(path, overwrite, inputs, records.get(path, ()))
        else:
            check_output_dir(path, kind, overwrite, inputs)


def is_training_log_dir(folder):
    """Whether `hdr-gan-train` has written into `folder` (its marker says so, or its
    summaries are there): such a folder holds a run that no other program may replace."""
    folder = Path(folder)
    kind = _marker_kind(folder)
    # Summaries count where no marker or a converted log dir's says otherwise (trainers before
    # 0.3.0 did not mark the folders they took over); an evaluation may hold a scene "train".
    return kind == TRAINING_LOG_DIR or (kind in (None, "log_dir")
                                        and (folder / SUMMARIES).is_dir())


def mark_as_training_log_dir(folder):
    """Records in `folder`'s marker that training has taken it over (see
    `is_training_log_dir`)."""
    if _marker_kind(folder) != TRAINING_LOG_DIR:
        _write_marker(Path(folder), TRAINING_LOG_DIR, "hdr-gan-train")


def _marker_kind(folder):
    try:
        marker = json.loads((Path(folder) / MARKER).read_text())
    except (OSError, ValueError, RecursionError):
        return None
    return marker.get("kind") if isinstance(marker, dict) else None


def _write_marker(folder, kind, program, files=()):
    """The folder's marker: its kind, the program, when, and `files` (`fingerprint`s of files
    written beside it that it vouches for)."""
    token = _OPEN_SET.set(None)  # in place at once: the folder is swapped in as a whole
    try:
        write_text(Path(folder) / MARKER, json.dumps(
            {"kind": kind, "program": program,
             "written": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
             **({"files": list(files)} if files else {})}) + "\n")
    finally:
        _OPEN_SET.reset(token)


def marker_path(folder):
    """The marker file of an output folder: the record of what its program wrote."""
    return Path(folder) / MARKER


@contextlib.contextmanager
def exclusive_lock(path, busy):
    """Holds an exclusive `flock` on the lock file `path` (created if missing, never through a
    link, and only a regular file): the system releases it when the process ends, however it
    ends. The holder writes its pid there; a second taker gets OutputError(`busy(pid)`)."""
    try:
        fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_NOFOLLOW, 0o644)
    except OSError as err:
        if err.errno == errno.ELOOP:
            raise OutputError(f"{path}: is a link; refusing to use it as a lock file") from None
        raise
    with os.fdopen(fd, "r+") as handle:
        if not stat.S_ISREG(os.fstat(fd).st_mode):
            raise OutputError(f"{path}: is not a regular file; refusing to use it as a lock")
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            handle.seek(0)
            raise OutputError(busy(handle.read().strip() or "unknown")) from None
        handle.seek(0)
        handle.truncate()
        handle.write(f"{os.getpid()}\n")
        handle.flush()
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def writer_busy(folder):
    """The message for a log dir whose lock another program holds."""
    return lambda holder: (f"{folder}: another program (hdr-gan-train or hdr-gan-convert-tf1, "
                           f"process {holder}) is writing this log dir; wait for it to finish "
                           f"or use another folder")


def log_dir_lock(logdir):
    """An exclusive lock on a log dir for one writer (`exclusive_lock` on its `LOCK_FILE`):
    OutputError naming the holder's process if another program holds it. Here rather than in
    `checkpoints`, so that taking it needs no TensorFlow."""
    return exclusive_lock(Path(logdir) / LOCK_FILE, writer_busy(logdir))


def written_by(folder, kind):
    """Whether `folder` is an output of the program that writes `kind` folders."""
    folder = Path(folder)
    if (folder / MARKER).exists():
        return _marker_kind(folder) == kind
    legacy = KINDS[kind][1]
    names = {p.name for p in folder.iterdir()}
    return bool(legacy) and "saved_model.pb" in names and names <= legacy


@contextlib.contextmanager
def output_dir(target, kind=None, vouch_for=lambda: ()):
    """Yields a new, empty temporary folder beside `target`; when the block succeeds it is
    marked as a `kind` output and swapped in for `target` (see the module docstring). Without
    `kind` (a folder that is never replaced, such as a data set), an existing `target` must be
    empty. A failed block leaves `target` as it was and nothing else behind. `vouch_for()`,
    called when the block is done: `fingerprint`s of files beside it the marker lists."""
    target = Path(target)
    target.parent.mkdir(parents=True, exist_ok=True)
    new = Path(tempfile.mkdtemp(prefix=temp_name(f"{target.name}-new-"), dir=target.parent))
    try:
        yield new
        if kind is not None:
            _write_marker(new, kind, KINDS[kind][0], vouch_for())
        elif target.exists() and any(target.iterdir()):
            raise FileExistsError(f"{target}: exists and is not empty")
        user_permissions(new, directory=True)
        _swap_in(new, target)
    except BaseException:
        shutil.rmtree(new, ignore_errors=True)
        raise


def _swap_in(new, target):
    if not os.path.lexists(target):
        os.rename(new, target)
        return
    # The target was checked when the program started, perhaps long ago: a trainer may have
    # taken it over since. Ask its lock (if it has one) and check again under it.
    with contextlib.ExitStack() as stack:
        if (target / LOCK_FILE).is_file() and not (target / LOCK_FILE).is_symlink():
            stack.enter_context(exclusive_lock(target / LOCK_FILE, writer_busy(target)))
        if is_training_log_dir(target):
            raise OutputError(f"{target}: became a training log dir while this program ran "
                              f"(hdr-gan-train has written it); left as it is, nothing written")
        _rename_over(new, target)


def _rename_over(new, target):
    old = target.with_name(temp_name(f"{target.name}-old"))
    os.rename(target, old)
    try:
        os.rename(new, target)
    except BaseException:
        os.rename(old, target)
        raise
    shutil.rmtree(old, ignore_errors=True)


def _writer_alive(pid, started, namespace=None):
    """Whether the process that made a temporary name may still be running: process `pid`
    exists and, where the name records its start time, started then (ids are reused). A name
    made in another pid namespace (another container) cannot be judged from here: alive."""
    if namespace is not None and int(namespace) != _pid_namespace():
        return True
    now = _start_ticks(pid)
    if now is not None:
        return started is None or int(started) == now
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        pass
    return True  # alive (or unknown): leave its files alone


def clean_leftovers(folder):
    """Removes this project's stale temporary files and folders in `folder`: those whose
    process is gone (`_writer_alive`). An old output renamed aside by a killed swap goes back
    in place if nothing replaced it. Returns the names handled."""
    folder = Path(folder)
    handled = []
    try:
        entries = list(folder.iterdir())
    except OSError:
        return handled
    for entry in entries:
        match = _TEMP_NAME.fullmatch(entry.name)
        if not match:
            continue
        if _writer_alive(int(match["pid"]), match["started"], match["namespace"]):
            continue
        aside = re.fullmatch(r"(?P<name>.+)-old", match["rest"])
        if aside and not entry.is_symlink() and not os.path.lexists(folder / aside["name"]):
            os.rename(entry, folder / aside["name"])  # an old output set aside: put back
        elif entry.is_dir() and not entry.is_symlink():
            shutil.rmtree(entry, ignore_errors=True)
        else:
            with contextlib.suppress(OSError):
                entry.unlink()
        handled.append(entry.name)
    return handled
