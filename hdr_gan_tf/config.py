"""Run configuration: the JSON kept in every log dir, and rebuilding networks from it.

A training run writes `config.json` (every resolved flag) into its log dir; evaluation,
inference, export and the TF1 converter rebuild the same architecture from that file alone.
"""

import json
import os
from pathlib import Path

import keras
import tensorflow as tf

from hdr_gan_tf.discriminator import Discriminator
from hdr_gan_tf.generator import Generator
from hdr_gan_tf.image_io import write_text

CONFIG_FILE = "config.json"
# Flags that fix the networks' variables: a log dir refuses to resume with other values.
ARCHITECTURE_KEYS = ("scales", "base_filters", "merging_blocks", "use_discriminator")
DEFAULT_ARCHITECTURE = {"scales": 3, "base_filters": 32, "merging_blocks": True,
                        "use_discriminator": True}
PRECISIONS = {"float32": "float32", "bfloat16": "mixed_bfloat16", "float16": "mixed_float16"}
# What the kernel variables of a log dir's checkpoints hold, recorded in its config.json: the
# raw kernels W of Miyato's spectral normalisation (`hdr_gan_tf.layers.SpectralNorm`). Log dirs
# without it were written by versions that stored W/σ in the kernel variables instead.
SPECTRAL_NORM = "miyato"


class ConfigError(ValueError):
    """A log dir, checkpoint or configuration that cannot be used."""


def branch_names(scales):
    """Names of the output branches, in the generator's order: `aux1`, ..., `main`."""
    return [f"aux{k}" for k in range(1, scales - 1)] + ["main"]


def write_config(logdir, config):
    write_text(Path(logdir) / CONFIG_FILE, json.dumps(config, indent=2, sort_keys=True) + "\n")


def read_config(logdir):
    path = Path(logdir) / CONFIG_FILE
    if not path.is_file():
        raise ConfigError(f"{path}: not found; is {logdir} a training log dir?")
    try:
        return json.loads(path.read_text())
    except json.JSONDecodeError as err:
        raise ConfigError(f"{path}: not valid JSON ({err})") from None


def check_spectral_norm(config, logdir):
    """Refuses a log dir whose checkpoints hold normalised kernels (see `SPECTRAL_NORM`).

    Such a kernel cannot be turned into a raw one that gives the same network: `W/σ(W)` has
    spectral norm 1 for every raw `W`, while a stored normalised kernel has it only roughly.
    """
    if config.get("spectral_norm") != SPECTRAL_NORM:
        raise ConfigError(
            f"{Path(logdir) / CONFIG_FILE}: this log dir was written by hdr_gan_tf before 0.2.0, "
            f"whose spectral normalisation stored W/σ in the kernel variables (Keras' in-place "
            f"SpectralNormalization); kernels are now the raw W, divided by σ in every pass "
            f"(Miyato's definition, as the authors trained), so its checkpoints would compute "
            f"another network. Train it again, or convert the authors' TF1 checkpoint again "
            f"with hdr-gan-convert-tf1.")


def architecture(config):
    return {k: config.get(k, DEFAULT_ARCHITECTURE[k]) for k in ARCHITECTURE_KEYS}


def set_precision(precision):
    """Sets the Keras global dtype policy from `float32`, `bfloat16` or `float16`."""
    if precision not in PRECISIONS:
        raise ConfigError(f"precision must be one of {', '.join(PRECISIONS)}, got {precision!r}")
    keras.mixed_precision.set_global_policy(PRECISIONS[precision])


def build_generator(config):
    """A built `Generator` of the configuration's architecture (any input size)."""
    arch = architecture(config)
    generator = Generator(scales=arch["scales"], base_filters=arch["base_filters"],
                          merging_blocks=arch["merging_blocks"])
    generator.build([(None, None, None, 6)] * 3)
    return generator


def build_discriminator(config):
    discriminator = Discriminator()
    discriminator.build((None, None, None, 3))
    return discriminator


def resolve_checkpoint(checkpoint):
    """`(checkpoint prefix, log dir)` from a log dir (its latest checkpoint) or a prefix.

    A prefix inside a log dir's `best/` folder belongs to that log dir.
    """
    path = Path(checkpoint)
    if path.is_dir():
        prefix = tf.train.latest_checkpoint(str(path))
        if prefix is None:
            raise ConfigError(f"{path}: no checkpoint found in this log dir")
        return prefix, path
    if not Path(str(path) + ".index").is_file():
        raise ConfigError(f"{path}: neither a log dir nor a checkpoint (no {path.name}.index)")
    logdir = path.parent
    if not (logdir / CONFIG_FILE).is_file() and (logdir.parent / CONFIG_FILE).is_file():
        logdir = logdir.parent
    return str(path), logdir


def saved_variable_count(prefix, child):
    """Number of variables reachable from the checkpoint's top-level object `child`.

    Read from the checkpoint's object graph, so it counts each variable once whatever path it
    was saved under (a training checkpoint names kernels after the optimizer that tracks them).
    """
    from tensorflow.core.protobuf import trackable_object_graph_pb2

    graph = trackable_object_graph_pb2.TrackableObjectGraph()
    graph.ParseFromString(tf.train.load_checkpoint(prefix).get_tensor(
        "_CHECKPOINTABLE_OBJECT_GRAPH"))
    roots = [c.node_id for c in graph.nodes[0].children if c.local_name == child]
    if not roots:
        raise AssertionError(f"the checkpoint holds no {child}")
    seen, stack = set(), roots
    while stack:
        node = stack.pop()
        if node not in seen:
            seen.add(node)
            stack.extend(c.node_id for c in graph.nodes[node].children)
    return sum(any(a.name == "VARIABLE_VALUE" for a in graph.nodes[n].attributes) for n in seen)


def restore_generator(checkpoint, precision="float32"):
    """Rebuilds the generator of a log dir or checkpoint and loads its weights.

    Returns:
      `(generator, config, prefix)`.

    Raises:
      ConfigError: no checkpoint, no configuration, or a checkpoint whose variables do not fit the
        configuration's architecture.
    """
    prefix, logdir = resolve_checkpoint(checkpoint)
    config = read_config(logdir)
    check_spectral_norm(config, logdir)
    set_precision(precision)
    generator = build_generator(config)
    try:
        saved = saved_variable_count(prefix, "generator")
        if saved != len(generator.weights):
            raise AssertionError(f"its generator has {saved} variables, this architecture "
                                 f"{len(generator.weights)}")
        status = tf.train.Checkpoint(generator=generator).restore(prefix)
        status.expect_partial().assert_existing_objects_matched()
    except (AssertionError, ValueError, tf.errors.OpError) as err:
        raise ConfigError(f"{prefix}: checkpoint does not match the configuration in "
                          f"{logdir / CONFIG_FILE} ({architecture(config)}): "
                          f"{str(err).splitlines()[0][:300]}") from None
    return generator, config, prefix


def default_cache_dir():
    """Cache folder for the built-in data set (`$XDG_CACHE_HOME/hdr_gan_tf` or ~/.cache)."""
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return Path(base) / "hdr_gan_tf"
