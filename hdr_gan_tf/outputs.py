"""Where the programs write: output folders that are replaced only safely, and temporary names.

Rules for an output folder (`check_output_dir`, before any work):
- never the current folder or one above it (`.`, `..`, `/`), the home folder, an input of the
  same command, a folder inside an input or one that contains an input;
- an existing folder is replaced only with `--overwrite`, and only if the same program wrote it
  (its marker file `MARKER` says so, or, for outputs written before markers existed, its
  contents do).

`output_dir` builds the new folder beside the target and swaps it in: the new folder is
complete first, the old one is renamed aside, the new one renamed in, the old one removed. An
error between the two renames puts the old folder back; a killed process leaves the old folder
aside, complete, and the next program that writes there puts it back (`clean_leftovers`).

Every temporary file and folder of the programs starts with `TEMP_PREFIX` and carries the
process id, so that stale ones (their process is gone) can be told from live ones.
"""

import contextlib
import json
import os
import re
import shutil
import tempfile
import time
from pathlib import Path

TEMP_PREFIX = ".hdr_gan_tmp-"
MARKER = ".hdr_gan_tf.json"
# What each kind of output folder is, which program writes it, and the names an unmarked one
# written before markers existed may hold.
KINDS = {
    "saved_model": ("hdr-gan-export", {"saved_model.pb", "variables", "assets", "fingerprint.pb"}),
    "log_dir": ("hdr-gan-convert-tf1", None),
    "evaluation": ("hdr-gan-evaluate", None),
}
_TEMP_NAME = re.compile(re.escape(TEMP_PREFIX) + r"(?P<pid>\d+)-(?P<rest>.*)")


class OutputError(ValueError):
    """An output that must not be written; the message names it and says why."""


def temp_name(label):
    """A name for a temporary file or folder of this process: the prefix, the pid, a label."""
    return f"{TEMP_PREFIX}{os.getpid()}-{label}"


def user_permissions(path, directory=False):
    """Gives a file or folder made by `mkstemp`/`mkdtemp` (owner only) the permissions of a
    normally created one."""
    umask = os.umask(0)
    os.umask(umask)
    os.chmod(path, (0o777 if directory else 0o666) & ~umask)


def _is_under(path, folder):
    return path == folder or folder in path.parents


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
    for given in inputs:
        if not given:
            continue
        source = Path(given).resolve()
        if _is_under(resolved, source) or _is_under(source, resolved):
            relation = ("is" if resolved == source else
                        "lies inside" if _is_under(resolved, source) else "contains")
            raise OutputError(f"{target}: refusing to write here: it {relation} the input "
                              f"{given}")
    if not target.exists() and not target.is_symlink():
        return
    if not target.is_dir() or target.is_symlink():
        raise OutputError(f"{target}: exists and is not a folder")
    if not any(target.iterdir()):
        return
    program = KINDS[kind][0]
    if not overwrite:
        raise OutputError(f"{target}: output exists; pass --overwrite to replace it")
    if not written_by(target, kind):
        raise OutputError(f"{target}: exists and is not an earlier output of {program} (no "
                          f"{MARKER}); --overwrite replaces only that. Choose another folder, "
                          f"or remove this one yourself.")


def check_output_file(path, overwrite, inputs=()):
    """Raises OutputError if the program must not write the file `path`: it exists and
    `overwrite` is off, it is not a regular file, or it is (or lies inside) an input."""
    path = Path(path)
    clean_leftovers(path.parent)
    resolved = path.resolve()
    for given in inputs:
        if given and _is_under(resolved, Path(given).resolve()):
            relation = "is" if resolved == Path(given).resolve() else "lies inside"
            raise OutputError(f"{path}: refusing to write here: it {relation} the input {given}")
    if os.path.lexists(path):
        if not path.is_file() or path.is_symlink():
            raise OutputError(f"{path}: exists and is not a regular file")
        if not overwrite:
            raise OutputError(f"{path}: output exists; pass --overwrite to replace it")


def written_by(folder, kind):
    """Whether `folder` is an output of the program that writes `kind` folders."""
    folder = Path(folder)
    try:
        marker = json.loads((folder / MARKER).read_text())
        return isinstance(marker, dict) and marker.get("kind") == kind
    except (OSError, ValueError):
        pass
    legacy = KINDS[kind][1]
    names = {p.name for p in folder.iterdir()}
    return bool(legacy) and "saved_model.pb" in names and names <= legacy


@contextlib.contextmanager
def output_dir(target, kind=None):
    """Yields a new, empty temporary folder beside `target`; when the block succeeds it is
    marked as a `kind` output and swapped in for `target` (see the module docstring). Without
    `kind` (a folder that is never replaced, such as a data set), an existing `target` must be
    empty. A failed block leaves `target` as it was and nothing else behind."""
    target = Path(target)
    target.parent.mkdir(parents=True, exist_ok=True)
    new = Path(tempfile.mkdtemp(prefix=temp_name(f"{target.name}-new-"), dir=target.parent))
    try:
        yield new
        if kind is not None:
            (new / MARKER).write_text(json.dumps(
                {"kind": kind, "program": KINDS[kind][0],
                 "written": time.strftime("%Y-%m-%dT%H:%M:%S%z")}) + "\n")
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
    old = target.with_name(temp_name(f"{target.name}-old"))
    os.rename(target, old)
    try:
        os.rename(new, target)
    except BaseException:
        os.rename(old, target)
        raise
    shutil.rmtree(old, ignore_errors=True)


def _process_started(pid):
    """Start time of process `pid` (seconds since the epoch), or None if there is none."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        ticks = int(fields[19])
        boot = next(float(line.split()[1]) for line in Path("/proc/stat").read_text().splitlines()
                    if line.startswith("btime"))
        return boot + ticks / os.sysconf("SC_CLK_TCK")
    except (OSError, ValueError, IndexError, StopIteration):
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return None
        except PermissionError:
            pass
        return 0.0  # alive, start unknown: treat as older than anything


def clean_leftovers(folder):
    """Removes this project's stale temporary files and folders in `folder`: those whose
    process is gone or started after they were made. An old output renamed aside by a killed
    swap goes back in place if nothing replaced it. Returns the names handled."""
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
        started = _process_started(int(match["pid"]))
        try:
            made = entry.lstat().st_mtime
        except OSError:
            continue
        if started is not None and started <= made + 1:
            continue  # its process is still running
        aside = re.fullmatch(r"(?P<name>.+)-old", match["rest"])
        if aside and entry.is_dir() and not os.path.lexists(folder / aside["name"]):
            os.rename(entry, folder / aside["name"])
        elif entry.is_dir() and not entry.is_symlink():
            shutil.rmtree(entry, ignore_errors=True)
        else:
            with contextlib.suppress(OSError):
                entry.unlink()
        handled.append(entry.name)
    return handled
