"""Run configuration: one typed record of what a run is, kept as `config.json` in its log dir.

`RunConfig` has two parts. `ModelConfig` is what rebuilding and running the networks needs
(architecture and μ); evaluation, inference, export and the TF1 converter read only that.
`TrainingConfig` is everything else a training run was given. Each field is declared once
(`setting`: default, help, choices or bounds); the defaults are the paper's configuration
(docs/design.md §2-§5), and `hdr-gan-train`'s flags are generated from the fields. Reading
`config.json` checks every field's name and type; values are checked when a record is made
(`check_settings`), so a bad flag and a bad file get the same message, naming the field.
"""

import dataclasses
import json
import math
import os
import typing
from pathlib import Path

import keras

from hdr_gan_tf.scene_cache import CACHE_MODES
from hdr_gan_tf.discriminator import MIN_INPUT as MIN_DISCRIMINATOR_INPUT, Discriminator
from hdr_gan_tf.generator import Generator, parse_branches
from hdr_gan_tf.image_io import MAX_PIXELS
from hdr_gan_tf.outputs import write_text
from hdr_gan_tf.layouts import DATA_DIR_HELP, LDR_BITS, LDR_BITS_HELP
from hdr_gan_tf.losses import SPHERE_REFERENCES
from hdr_gan_tf.settings import (PRECISIONS, ConfigError, _require,  # noqa: F401 (re-exported)
                                 check_settings, setting)

CONFIG_FILE = "config.json"
# What the kernel variables of a log dir's checkpoints hold: the raw kernels W of Miyato's
# spectral normalisation (`hdr_gan_tf.layers.SpectralNorm`). Log dirs without it were written by
# versions before 0.2.0, which stored W/σ in the kernel variables instead.
SPECTRAL_NORM = "miyato"
STRATEGIES = ("default", "mirrored", "multi_worker")


@dataclasses.dataclass(frozen=True)
class ModelConfig:
    """The networks (docs/design.md §2-§3): what rebuilding and running them needs."""
    scales: int = setting(3, "Generator scales: 2, 3 (the paper's) or 4.", choices=(2, 3, 4))
    base_filters: int = setting(32, "Generator channels at full resolution.", at_least=1)
    merging_blocks: bool = setting(True, "Use the reference-based residual merging blocks "
                                   "(False: the 1x1 ablation).")
    use_discriminator: bool = setting(True, "Train adversarially (False: L1 only).")
    mu: float = setting(5000.0, "μ of the μ-law tonemapper.", at_least=1e-6)

    def __post_init__(self):
        check_settings(self)


@dataclasses.dataclass(frozen=True)
class TrainingConfig:
    """A training run (docs/design.md §5); the defaults are the paper's configuration."""
    data_dir: typing.Optional[str] = setting(None, DATA_DIR_HELP)
    logdir: str = setting("runs/hdr_gan", "Log dir: config.json, checkpoints, TensorBoard.")
    batch_size: int = setting(2, "Global batch size (split over replicas).", at_least=1,
                              at_most=2 ** 16)
    patch_size: int = setting(256, "Training patch side in pixels.", at_least=1,
                              at_most=2 ** 16)
    iterations: int = setting(1_215_000, "Iterations (G update + D update).", at_least=0,
                              at_most=2 ** 62)
    lr_boundaries: typing.Tuple[int, ...] = setting(
        (114_300, 706_400), "Iterations from which the next learning rate applies.")
    lr_values: typing.Tuple[float, ...] = setting(
        (1e-4, 1e-5, 1e-6), "Learning rates, one more than boundaries; the same for "
        "generator and discriminator.")
    gan_weight: float = setting(1.0, "λ, weight of the adversarial term.", at_least=0)
    sphere_moments: int = setting(3, "Sphere-GAN moments R.", at_least=1)
    sphere_reference: str = setting(
        "first_axis", "Point of the sphere the Sphere-GAN distances are measured from: "
        "first_axis (1, 0, ..., 0), as the released code did; north_pole (0, ..., 0, 1), as "
        "the paper's text reads.", choices=SPHERE_REFERENCES)
    ldr_bits: int = setting(
        16, LDR_BITS_HELP, choices=LDR_BITS)
    max_pixels: int = setting(
        MAX_PIXELS, "Largest image (width x height) read; larger ones are refused from their "
        "headers, before they are decoded.", at_least=1)
    cache: str = setting(
        "auto", "Where the decoded training scenes are kept: memory; disk (decoded once into "
        "{cache_dir}; patches read from there with bounded memory; later runs reuse it); "
        "auto: disk when the image headers announce more than half the available memory.",
        choices=CACHE_MODES)
    cache_dir: typing.Optional[str] = setting(
        None, "Folder of the disk cache (default: data_cache/ in the log dir).")
    clip_value: float = setting(1.0, "Element-wise gradient clipping bound (0: none).",
                                at_least=0)
    seed: int = setting(0, "Seed of weight initialisation and the data stream.", at_least=0,
                        at_most=2 ** 32 - 1)
    checkpoint_every: int = setting(5000, "Iterations between checkpoints.", at_least=1)
    keep_checkpoints: int = setting(3, "Rolling checkpoints kept (the best one is kept apart "
                                    "in best/).", at_least=1)
    summary_every: int = setting(100, "Iterations between scalar summaries and progress lines "
                                 "(each value is averaged over them).", at_least=1)
    image_every: int = setting(5000, "Iterations between image summaries.", at_least=1)
    validation: str = setting("2", "Validation scenes held out of Training/: a count (spread "
                              "evenly over the sorted scenes) or comma-separated scene names; "
                              "0 for none.")
    validation_every: int = setting(10000, "Iterations between validation runs.", at_least=1)
    supervise: str = setting("all", "Branches with an L1 loss: all, or names (aux1,main).")
    disc_branches: str = setting("all", "Branches the discriminator sees: all, or names.")
    strategy: str = setting(
        "default", "tf.distribute strategy: default (one device), mirrored (all GPUs of this "
        "host), multi_worker (the hosts of TF_CONFIG; run the same command on each).",
        choices=STRATEGIES)
    collective_timeout: int = setting(
        600, "multi_worker: seconds a worker waits for the others in a collective operation "
        "before it gives up with an error (a lost worker stops the rest).", at_least=1)
    precision: str = setting("float32", "Compute precision: float32, or mixed bfloat16 or "
                             "float16 (with dynamic loss scaling).", choices=PRECISIONS)
    jit_compile: bool = setting(False, "Compile the training step with XLA.")
    restart: bool = setting(
        False, "Train from step 0 in a log dir that holds checkpoints: they are moved into a "
        "before_restart_<time>/ folder of the log dir, not deleted. Without it a run resumes, "
        "and a log dir whose checkpoints are all unreadable is refused.")

    def __post_init__(self):
        check_settings(self)
        _require(len(self.lr_values) == len(self.lr_boundaries) + 1, "lr_values",
                 f"needs exactly one more value than lr_boundaries ({len(self.lr_values)} "
                 f"values, {len(self.lr_boundaries)} boundaries)")
        _require(list(self.lr_boundaries) == sorted(set(self.lr_boundaries))
                 and all(b >= 1 for b in self.lr_boundaries), "lr_boundaries",
                 f"must be increasing iterations from 1 on, got {list(self.lr_boundaries)}")
        _require(all(math.isfinite(v) and v > 0 for v in self.lr_values), "lr_values",
                 f"must be positive numbers, got {list(self.lr_values)}")


@dataclasses.dataclass(frozen=True)
class RunConfig:
    """A run: its networks, its training, what its checkpoints' kernels hold and (for a
    converted TF1 checkpoint) where its weights came from."""
    model: ModelConfig = ModelConfig()
    training: TrainingConfig = TrainingConfig()
    spectral_norm: str = SPECTRAL_NORM
    converted_from: typing.Optional[str] = None

    def __post_init__(self):
        """The checks that need both parts: all of them run before any data is read."""
        model, training = self.model, self.training
        multiple = 2 ** (model.scales - 1)
        _require(training.patch_size % multiple == 0, "patch_size",
                 f"{training.patch_size} must be a multiple of {multiple} for "
                 f"{model.scales} scales")
        _require(not model.use_discriminator or training.patch_size >= MIN_DISCRIMINATOR_INPUT,
                 "patch_size", f"{training.patch_size}: the discriminator needs patches of at "
                 f"least {MIN_DISCRIMINATOR_INPUT} pixels")
        for name in ("supervise", "disc_branches"):
            try:
                parse_branches(getattr(training, name), model.scales)
            except ValueError as err:
                raise ConfigError(str(err), field=name) from None

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
        except ValueError as err:  # e.g. an integer of thousands of digits
            raise ConfigError(f"{source}: not a config.json ({err})") from None
        if not isinstance(data, dict):
            raise ConfigError(f"{source}: expected a JSON object, got {type(data).__name__}")
        check_spectral_norm(data.get("spectral_norm"), source)
        unknown = sorted(set(data) - {"model", "training", "spectral_norm", "converted_from"})
        if unknown:
            raise ConfigError(f"{source}: unknown fields {', '.join(unknown)}")
        try:
            model = _typed(ModelConfig, _object(data, "model", source), source)
            training = _typed(TrainingConfig, _legacy_training(_object(data, "training", source)),
                              source)
            top = {k: _check_type(data[k], typing.Optional[str], f"{source}: {k}")
                   for k in ("spectral_norm", "converted_from") if k in data}
            return cls(model=model, training=training, **top)
        except ConfigError as err:
            message = str(err)
            raise ConfigError(message if message.startswith(source)
                              else f"{source}: {message}") from None


_FIELDS = {part: {f.name: f for f in dataclasses.fields(part)}
           for part in (ModelConfig, TrainingConfig)}


def _legacy_training(values):
    """Training fields as versions before 0.3.0 named them: `mixed_precision` ("none",
    "bfloat16", "float16") is now `precision` ("float32", ...), the programs' vocabulary."""
    values = dict(values)
    if "mixed_precision" in values and "precision" not in values:
        old = values.pop("mixed_precision")
        values["precision"] = "float32" if old == "none" else old
    return values


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
                          merging_blocks=model.merging_blocks, mu=model.mu)
    generator.build([(None, None, None, 6)] * 3)
    return generator


def build_discriminator(model=ModelConfig()):
    del model  # one discriminator for every generator variant
    discriminator = Discriminator()
    discriminator.build((None, None, None, 3))
    return discriminator


def default_cache_dir():
    """Cache folder for the built-in data set (`$XDG_CACHE_HOME/hdr_gan_tf` or ~/.cache)."""
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return Path(base) / "hdr_gan_tf"
