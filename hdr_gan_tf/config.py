"""Run configuration: one typed record of what a run is, kept as `config.json` in its log dir.

`RunConfig` has two parts. `ModelConfig` is what rebuilding and running the networks needs
(architecture and μ); evaluation, inference, export and the TF1 converter read only that.
`TrainingConfig` is everything else a training run was given. The dataclasses' defaults are
the paper's configuration (SPEC §2-§5), and `hdr-gan-train`'s flags take their defaults from
them. Reading `config.json` checks every field's name and type; values are checked when a
record is made, so a bad flag and a bad file get the same message.
"""

import contextlib
import dataclasses
import json
import math
import os
import re
import typing
from pathlib import Path

import keras
import tensorflow as tf

from hdr_gan_tf.data import CACHE_MODES
from hdr_gan_tf.discriminator import Discriminator
from hdr_gan_tf.generator import Generator
from hdr_gan_tf.image_io import MAX_PIXELS, write_text
from hdr_gan_tf.losses import SPHERE_REFERENCES

CONFIG_FILE = "config.json"
PRECISIONS = {"float32": "float32", "bfloat16": "mixed_bfloat16", "float16": "mixed_float16"}
# What the kernel variables of a log dir's checkpoints hold: the raw kernels W of Miyato's
# spectral normalisation (`hdr_gan_tf.layers.SpectralNorm`). Log dirs without it were written by
# versions before 0.2.0, which stored W/σ in the kernel variables instead.
SPECTRAL_NORM = "miyato"
STRATEGIES = ("default", "mirrored", "multi_worker")
MIXED_PRECISIONS = ("none", "bfloat16", "float16")


class ConfigError(ValueError):
    """A log dir, checkpoint or configuration that cannot be used."""


def _require(condition, field, message):
    if not condition:
        raise ConfigError(f"{field}: {message}")


@dataclasses.dataclass(frozen=True)
class ModelConfig:
    """The networks: generator scales (2, 3 or 4), its channels at full resolution, merging
    blocks or the 1x1 ablation, whether a discriminator exists, and μ of the μ-law."""
    scales: int = 3
    base_filters: int = 32
    merging_blocks: bool = True
    use_discriminator: bool = True
    mu: float = 5000.0

    def __post_init__(self):
        _require(self.scales in (2, 3, 4), "scales", f"must be 2, 3 or 4, got {self.scales}")
        _require(self.base_filters >= 1, "base_filters", f"must be at least 1, got "
                 f"{self.base_filters}")
        _require(math.isfinite(self.mu) and self.mu > 0, "mu",
                 f"must be a positive number, got {self.mu}")


@dataclasses.dataclass(frozen=True)
class TrainingConfig:
    """A training run (SPEC §5; see `hdr-gan-train --help` for each field)."""
    data_dir: typing.Optional[str] = None
    logdir: str = "runs/hdr_gan"
    batch_size: int = 2
    patch_size: int = 256
    iterations: int = 1_215_000
    lr_boundaries: typing.Tuple[int, ...] = (114_300, 706_400)
    lr_values: typing.Tuple[float, ...] = (1e-4, 1e-5, 1e-6)
    gan_weight: float = 1.0
    sphere_moments: int = 3
    sphere_reference: str = "first_axis"
    ldr_bits: int = 16
    max_pixels: int = MAX_PIXELS
    cache: str = "auto"
    cache_dir: typing.Optional[str] = None
    clip_value: float = 1.0
    seed: int = 0
    checkpoint_every: int = 5000
    keep_checkpoints: int = 3
    summary_every: int = 100
    image_every: int = 5000
    validation: str = "2"
    validation_every: int = 10000
    supervise: str = "all"
    disc_branches: str = "all"
    strategy: str = "default"
    collective_timeout: int = 600
    mixed_precision: str = "none"
    jit_compile: bool = False
    restart: bool = False

    def __post_init__(self):
        for name in ("batch_size", "patch_size", "sphere_moments", "checkpoint_every",
                     "keep_checkpoints", "summary_every", "image_every", "validation_every",
                     "collective_timeout", "max_pixels"):
            _require(getattr(self, name) >= 1, name, f"must be at least 1, got "
                     f"{getattr(self, name)}")
        _require(self.iterations >= 0, "iterations", f"must not be negative, got "
                 f"{self.iterations}")
        _require(len(self.lr_values) == len(self.lr_boundaries) + 1, "lr_values",
                 f"needs exactly one more value than lr_boundaries ({len(self.lr_values)} "
                 f"values, {len(self.lr_boundaries)} boundaries)")
        _require(list(self.lr_boundaries) == sorted(set(self.lr_boundaries))
                 and all(b >= 1 for b in self.lr_boundaries), "lr_boundaries",
                 f"must be increasing iterations from 1 on, got {list(self.lr_boundaries)}")
        _require(all(math.isfinite(v) and v > 0 for v in self.lr_values), "lr_values",
                 f"must be positive numbers, got {list(self.lr_values)}")
        for name in ("gan_weight", "clip_value"):
            value = getattr(self, name)
            _require(math.isfinite(value) and value >= 0, name,
                     f"must be a number >= 0, got {value}")
        for name, allowed in (("sphere_reference", SPHERE_REFERENCES), ("strategy", STRATEGIES),
                              ("mixed_precision", MIXED_PRECISIONS), ("cache", CACHE_MODES)):
            _require(getattr(self, name) in allowed, name, f"must be one of "
                     f"{', '.join(allowed)}, got {getattr(self, name)!r}")
        _require(self.ldr_bits in (8, 16), "ldr_bits", f"must be 8 or 16, got {self.ldr_bits}")


@dataclasses.dataclass(frozen=True)
class RunConfig:
    """A run: its networks, its training, what its checkpoints' kernels hold and (for a
    converted TF1 checkpoint) where its weights came from."""
    model: ModelConfig = ModelConfig()
    training: TrainingConfig = TrainingConfig()
    spectral_norm: str = SPECTRAL_NORM
    converted_from: typing.Optional[str] = None

    def __post_init__(self):
        multiple = 2 ** (self.model.scales - 1)
        _require(self.training.patch_size % multiple == 0, "patch_size",
                 f"{self.training.patch_size} must be a multiple of {multiple} for "
                 f"{self.model.scales} scales")

    @classmethod
    def from_flat(cls, values, **top):
        """A record from one flat mapping of field names (`hdr-gan-train`'s flags); fields not
        given keep their defaults. Unknown names raise ConfigError."""
        parts = {ModelConfig: {}, TrainingConfig: {}}
        for name, value in values.items():
            owner = next((p for p in parts if name in _FIELDS[p]), None)
            _require(owner is not None, name, "no such setting")
            parts[owner][name] = value
        return cls(model=_typed(ModelConfig, parts[ModelConfig], "flags"),
                   training=_typed(TrainingConfig, parts[TrainingConfig], "flags"), **top)

    def flat(self):
        """Every model and training field in one dict (the inverse of `from_flat`)."""
        return dict(dataclasses.asdict(self.model), **dataclasses.asdict(self.training))

    def replace(self, **changes):
        """A copy with some model or training fields changed."""
        return RunConfig.from_flat(dict(self.flat(), **changes),
                                   spectral_norm=self.spectral_norm,
                                   converted_from=self.converted_from)

    def to_json(self):
        data = {"model": dataclasses.asdict(self.model),
                "training": dataclasses.asdict(self.training),
                "spectral_norm": self.spectral_norm}
        if self.converted_from is not None:
            data["converted_from"] = self.converted_from
        return json.dumps(data, indent=2, sort_keys=True) + "\n"

    @classmethod
    def from_json(cls, text, source=CONFIG_FILE):
        """Parses and checks a `config.json`; ConfigError names the file and the field."""
        try:
            data = json.loads(text)
        except json.JSONDecodeError as err:
            raise ConfigError(f"{source}: not valid JSON ({err})") from None
        except RecursionError:
            raise ConfigError(f"{source}: not a config.json (its JSON is nested too deeply to "
                              f"read)") from None
        if not isinstance(data, dict):
            raise ConfigError(f"{source}: expected a JSON object, got {type(data).__name__}")
        check_spectral_norm(data.get("spectral_norm"), source)
        unknown = sorted(set(data) - {"model", "training", "spectral_norm", "converted_from"})
        if unknown:
            raise ConfigError(f"{source}: unknown fields {', '.join(unknown)}")
        try:
            model = _typed(ModelConfig, _object(data, "model", source), source)
            training = _typed(TrainingConfig, _object(data, "training", source), source)
            top = {k: _check_type(data[k], typing.Optional[str], f"{source}: {k}")
                   for k in ("spectral_norm", "converted_from") if k in data}
            return cls(model=model, training=training, **top)
        except ConfigError as err:
            message = str(err)
            raise ConfigError(message if message.startswith(source)
                              else f"{source}: {message}") from None


_FIELDS = {part: {f.name: f for f in dataclasses.fields(part)}
           for part in (ModelConfig, TrainingConfig)}


def _object(data, key, source):
    value = data.get(key, {})
    if not isinstance(value, dict):
        raise ConfigError(f"{source}: {key} must be a JSON object, got {type(value).__name__}")
    return value


def _check_type(value, kind, where):
    """`value` as the annotated `kind` (ints pass as floats, lists as tuples) or ConfigError."""
    origin, args = typing.get_origin(kind), typing.get_args(kind)
    if origin is typing.Union:  # Optional[...]
        if value is None:
            return None
        kind = next(a for a in args if a is not type(None))
        return _check_type(value, kind, where)
    if origin is tuple:
        if not isinstance(value, (list, tuple)):
            raise ConfigError(f"{where} must be a list, got {value!r}")
        return tuple(_check_type(v, args[0], f"{where} item") for v in value)
    if kind is float and isinstance(value, int) and not isinstance(value, bool):
        return float(value)
    if not isinstance(value, kind) or (kind is int and isinstance(value, bool)):
        raise ConfigError(f"{where} must be {kind.__name__}, got {value!r}")
    return value


def _typed(part, values, source):
    hints = typing.get_type_hints(part)
    unknown = sorted(set(values) - set(hints))
    if unknown:
        raise ConfigError(f"{source}: unknown {part.__name__} fields {', '.join(unknown)}")
    return part(**{k: _check_type(v, hints[k], k) for k, v in values.items()})


def branch_names(scales):
    """Names of the output branches, in the generator's order: `aux1`, ..., `main`."""
    return [f"aux{k}" for k in range(1, scales - 1)] + ["main"]


def write_config(logdir, config):
    write_text(Path(logdir) / CONFIG_FILE, config.to_json())


def read_config(logdir):
    """The `RunConfig` of a log dir; ConfigError if it is missing, malformed or written before
    spectral normalisation kept raw kernels (`check_spectral_norm`)."""
    path = Path(logdir) / CONFIG_FILE
    if not path.is_file():
        raise ConfigError(f"{path}: not found; is {logdir} a training log dir?")
    try:
        text = path.read_bytes().decode("utf-8")
    except UnicodeDecodeError as err:
        raise ConfigError(f"{path}: not UTF-8 text (byte {err.start}); is it a config.json "
                          f"written by hdr-gan-train?") from None
    return RunConfig.from_json(text, source=str(path))


def check_spectral_norm(recorded, source):
    """Refuses a log dir whose checkpoints hold normalised kernels (see `SPECTRAL_NORM`).

    Such a kernel cannot be turned into a raw one that gives the same network: `W/σ(W)` has
    spectral norm 1 for every raw `W`, while a stored normalised kernel has it only roughly.
    """
    if recorded != SPECTRAL_NORM:
        raise ConfigError(
            f"{source}: this log dir was written by hdr_gan_tf before 0.2.0, "
            f"whose spectral normalisation stored W/σ in the kernel variables (Keras' in-place "
            f"SpectralNormalization); kernels are now the raw W, divided by σ in every pass "
            f"(Miyato's definition, as the authors trained), so its checkpoints would compute "
            f"another network. Train it again, or convert the authors' TF1 checkpoint again "
            f"with hdr-gan-convert-tf1.")


def set_precision(precision):
    """Sets the Keras global dtype policy from `float32`, `bfloat16` or `float16`."""
    if precision not in PRECISIONS:
        raise ConfigError(f"precision must be one of {', '.join(PRECISIONS)}, got {precision!r}")
    keras.mixed_precision.set_global_policy(PRECISIONS[precision])


def build_generator(model=ModelConfig()):
    """A built `Generator` of the model configuration's architecture (any input size)."""
    generator = Generator(scales=model.scales, base_filters=model.base_filters,
                          merging_blocks=model.merging_blocks)
    generator.build([(None, None, None, 6)] * 3)
    return generator


def build_discriminator(model=ModelConfig()):
    del model  # one discriminator for every generator variant
    discriminator = Discriminator()
    discriminator.build((None, None, None, 3))
    return discriminator


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
    its `<name>-<N>.index` files, and those the state file (`checkpoint`) names, which is only
    a hint: a damaged or missing state file hides none of them."""
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


def resolve_checkpoint(checkpoint, log=print):
    """`(checkpoint prefix, log dir)` from a log dir (its newest readable checkpoint) or a
    prefix.

    A log dir's `best/` folder, and a prefix inside it, belong to that log dir.
    """
    path = Path(checkpoint)
    if path.is_dir():
        prefix = readable_checkpoint(path, log)
        if prefix is None:
            raise ConfigError(f"{path}: no readable checkpoint found in this log dir")
        if not (path / CONFIG_FILE).is_file() and (path.parent / CONFIG_FILE).is_file():
            return prefix, path.parent  # a log dir's best/ folder
        return prefix, path
    if not Path(str(path) + ".index").is_file():
        raise ConfigError(f"{path}: neither a log dir nor a checkpoint (no {path.name}.index)")
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
        saved = saved_variable_count(prefix, "generator")
        if saved != len(generator.weights):
            raise AssertionError(f"its generator has {saved} variables, this architecture "
                                 f"{len(generator.weights)}")
        status = tf.train.Checkpoint(generator=generator).restore(prefix)
        status.expect_partial().assert_existing_objects_matched()
    except (AssertionError, ValueError, tf.errors.OpError) as err:
        raise ConfigError(f"{prefix}: checkpoint does not match the configuration in "
                          f"{logdir / CONFIG_FILE} ({config.model}): "
                          f"{str(err).splitlines()[0][:300]}") from None
    return generator, config, prefix


def default_cache_dir():
    """Cache folder for the built-in data set (`$XDG_CACHE_HOME/hdr_gan_tf` or ~/.cache)."""
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return Path(base) / "hdr_gan_tf"
