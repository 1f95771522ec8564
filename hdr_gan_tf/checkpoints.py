"""Checkpoints and log dirs: finding the newest readable checkpoint, restoring a generator
from a log dir, and the lock that gives a log dir one writer.

Checkpoints are found by listing a folder's `<name>-<N>.index` files; TensorFlow's state file
(`checkpoint`) is only a hint, so a damaged one hides nothing. A checkpoint counts only if every
tensor reads in full (TensorFlow checks each one's checksum).
"""

import contextlib
import re
import shutil
from pathlib import Path

import tensorflow as tf

from hdr_gan_tf.config import (CONFIG_FILE, ConfigError, build_generator, read_config,
                               set_precision)


def checkpoint_problem(prefix):
    """Why the checkpoint `prefix` cannot be read in full (a truncated or damaged file: every
    tensor is read, and TensorFlow checks each one's checksum), or None if it can."""
    try:
        reader = tf.train.load_checkpoint(str(prefix))
        for name in reader.get_variable_to_shape_map():
            reader.get_tensor(name)
    # A short data file ends in IndexError ("Read less bytes than requested"), a damaged one in
    # DataLossError, a missing one in NotFoundError.
    except (tf.errors.OpError, ValueError, IndexError, RuntimeError, OSError) as err:
        return f"{type(err).__name__}: {str(err).strip().splitlines()[0][:200]}"
    return None


def checkpoint_prefixes(folder):
    """Every checkpoint prefix in `folder`, newest (highest number) first: found by listing
    its `<name>-<N>.index` files, and those the state file (`checkpoint`) names whose files
    exist: the state file is only a hint, and a damaged or stale one hides or adds none."""
    folder = Path(folder)
    found = {}
    with contextlib.suppress(OSError):
        for index in folder.glob("*.index"):
            number = re.fullmatch(r".+-(\d+)", index.name[:-len(".index")])
            if number:
                found[str(index)[:-len(".index")]] = int(number.group(1))
    state = checkpoint_state(folder)
    for n, prefix in enumerate(list(state.all_model_checkpoint_paths) if state else []):
        prefix = str(folder / Path(prefix).name) if not Path(prefix).is_absolute() else prefix
        if Path(prefix + ".index").is_file():
            found.setdefault(prefix, -1 - n)
    return sorted(found, key=lambda p: found[p], reverse=True)


def checkpoint_state(folder):
    """The state file of a checkpoint folder as TensorFlow reads it, None if it is missing or
    cannot be parsed (TensorFlow only logs the latter)."""
    try:
        return tf.train.get_checkpoint_state(str(folder))
    except (tf.errors.OpError, ValueError, UnicodeDecodeError):
        return None


def state_file_damaged(folder):
    """Whether `folder` has a state file that TensorFlow cannot read."""
    return (Path(folder) / "checkpoint").is_file() and checkpoint_state(folder) is None


def readable_checkpoint(folder, log=print):
    """The newest checkpoint in `folder` that can be read in full, or None if there is none;
    each newer one that cannot is skipped with a line to `log` naming it and why."""
    if state_file_damaged(folder):
        log(f"warning: {Path(folder) / 'checkpoint'} is damaged; checkpoints found by listing "
            f"{folder}")
    for prefix in checkpoint_prefixes(folder):
        problem = checkpoint_problem(prefix)
        if problem is None:
            return prefix
        log(f"warning: skipping the unreadable checkpoint {prefix} ({problem})")
    return None


def checkpoint_log_dir(checkpoint):
    """The log dir a `--checkpoint` value belongs to, from its path alone (the folder, the
    folder of a prefix, the log dir above a `best/`): what outputs are kept out of, however
    the checkpoint was named."""
    path = Path(checkpoint)
    if path.suffix == ".index":
        path = path.with_suffix("")
    if not path.is_dir() and not Path(f"{path}.index").is_file():
        return path  # no checkpoint at all: `resolve_checkpoint` says so, naming it
    folder = path if path.is_dir() else path.parent
    if folder.name == "best" and (folder.parent / CONFIG_FILE).is_file():
        folder = folder.parent
    return folder


def resolve_checkpoint(checkpoint, log=print):
    """`(checkpoint prefix, log dir)` from a log dir (its newest readable checkpoint) or a
    prefix.

    A log dir's `best/` folder, and a prefix inside it, belong to that log dir.
    """
    path = Path(checkpoint)
    if path.suffix == ".index" and path.is_file():  # the checkpoint's index file given
        path = path.with_suffix("")
    if path.is_dir():
        prefix = readable_checkpoint(path, log)
        if prefix is None:
            raise ConfigError(f"{path}: no readable checkpoint found in this log dir")
        if not (path / CONFIG_FILE).is_file() and (path.parent / CONFIG_FILE).is_file():
            return prefix, path.parent  # a log dir's best/ folder
        return prefix, path
    if not Path(str(path) + ".index").is_file():
        raise ConfigError(f"{path}: neither a log dir nor a checkpoint (no {path.name}.index)")
    problem = checkpoint_problem(path)
    if problem:
        raise ConfigError(f"{path}: this checkpoint cannot be read in full ({problem})")
    logdir = path.parent
    if not (logdir / CONFIG_FILE).is_file() and (logdir.parent / CONFIG_FILE).is_file():
        logdir = logdir.parent
    return str(path), logdir


def saved_variable_count(prefix, child, missing_ok=False):
    """Number of variables reachable from the checkpoint's top-level object `child` (None if
    it holds no such object and `missing_ok`).

    Read from the checkpoint's object graph, so it counts each variable once whatever path it
    was saved under (a training checkpoint names kernels after the optimizer that tracks them).
    """
    from tensorflow.core.protobuf import trackable_object_graph_pb2

    graph = trackable_object_graph_pb2.TrackableObjectGraph()
    graph.ParseFromString(tf.train.load_checkpoint(prefix).get_tensor(
        "_CHECKPOINTABLE_OBJECT_GRAPH"))
    roots = [c.node_id for c in graph.nodes[0].children if c.local_name == child]
    if not roots:
        if missing_ok:
            return None
        raise AssertionError(f"the checkpoint holds no {child}")
    seen, stack = set(), roots
    while stack:
        node = stack.pop()
        if node not in seen:
            seen.add(node)
            stack.extend(c.node_id for c in graph.nodes[node].children)
    return sum(any(a.name == "VARIABLE_VALUE" for a in graph.nodes[n].attributes) for n in seen)


def check_variable_count(prefix, name, network, this, missing_ok=False):
    """ValueError when the checkpoint at `prefix` holds another number of variables for `name`
    than `network` has (`this` names where the network came from, for the message); with
    `missing_ok`, a checkpoint without `name` passes."""
    saved = saved_variable_count(prefix, name, missing_ok=missing_ok)
    if saved is not None and saved != len(network.weights):
        raise ValueError(f"its {name} has {saved} variables, {this} {len(network.weights)}")


def restore_generator(checkpoint, precision="float32", log=print):
    """Rebuilds the generator of a log dir or checkpoint and loads its weights.

    Returns:
      `(generator, run_config, prefix)`.

    Raises:
      ConfigError: no checkpoint, no configuration, or a checkpoint whose variables do not fit the
        configuration's architecture.
    """
    prefix, logdir = resolve_checkpoint(checkpoint, log)
    config = read_config(logdir)
    set_precision(precision)
    generator = build_generator(config.model)
    try:
        check_variable_count(prefix, "generator", generator, "this architecture")
        status = tf.train.Checkpoint(generator=generator).restore(prefix)
        status.expect_partial().assert_existing_objects_matched()
    except (AssertionError, ValueError, IndexError, tf.errors.OpError) as err:
        raise ConfigError(f"{prefix}: checkpoint does not match the configuration in "
                          f"{logdir / CONFIG_FILE} ({config.model}): "
                          f"{str(err).splitlines()[0][:300]}") from None
    return generator, config, prefix


def remove_checkpoint_temps(folder):
    """Removes TensorFlow's temporary folders of checkpoints whose save failed
    (`<prefix>_temp/`); only under the log dir's lock, where no save is under way."""
    with contextlib.suppress(OSError):
        for path in Path(folder).iterdir():
            if path.is_dir() and re.fullmatch(r"ckpt-\d+_temp", path.name):
                shutil.rmtree(path, ignore_errors=True)
