"""The merge methods, one table: each name with what it needs and how it loads.

`METHODS` is the one place a method is added: the programs' `--method` flag and help, the web
page's choice and the sidecar's description are derived from it. Each loads a
`hdr_gan_tf.merge.Merger`.
"""

import dataclasses
import typing

from hdr_gan_tf.settings import ConfigError


def _network(options, checkpoint, saved_model, log):
    from hdr_gan_tf.checkpoints import restore_generator
    from hdr_gan_tf.generator import branch_names
    from hdr_gan_tf.merge import GeneratorMerger
    from hdr_gan_tf.serving import SavedModelMerger

    if saved_model:
        return SavedModelMerger(saved_model, options)
    generator, _, prefix = restore_generator(checkpoint, options.precision, log=log)
    return GeneratorMerger(generator, branch_names(generator.scales), options=options,
                           description=str(prefix))


def _debevec(options, checkpoint, saved_model, log):
    from hdr_gan_tf.classical import DebevecMerger
    return DebevecMerger(options)


def _mertens(options, checkpoint, saved_model, log):
    from hdr_gan_tf.classical import MertensMerger
    return MertensMerger(options)


@dataclasses.dataclass(frozen=True)
class Method:
    """A merge method.

    Attributes:
      name: as the programs and the page offer it.
      summary: one line for help texts (it may mention settings as `{name}`).
      needs_model: True if it runs a trained model (a checkpoint or SavedModel), False if it
        takes none.
      display_referred: True if it makes a picture to look at, not radiance (no HDR file).
      load: `load(options, checkpoint, saved_model, log) -> Merger`.
    """
    name: str
    summary: str
    needs_model: bool
    display_referred: bool
    load: typing.Callable


METHODS = {method.name: method for method in (
    Method("network", "HDR-GAN (give {checkpoint} or {saved_model})", True, False, _network),
    Method("debevec", "the classical radiance merge from the photos' known response, for "
           "comparison (no model)", False, False, _debevec),
    Method("mertens", "Mertens' exposure fusion, a display-referred picture: only the preview "
           "is written (no model)", False, True, _mertens),
)}
# The method the programs and the page use unless told otherwise: the first.
DEFAULT_METHOD = next(iter(METHODS))


def check_method(method, checkpoint=None, saved_model=None):
    """ConfigError unless `method` is one of `METHODS` and has what it needs: a model method
    exactly one of a checkpoint and a SavedModel, a classical merge neither."""
    if method not in METHODS:
        raise ConfigError(f"one of {', '.join(METHODS)}, not {method!r}", field="method")
    needs_model = METHODS[method].needs_model
    if not needs_model and (checkpoint or saved_model):
        raise ConfigError(f"{method} is a classical merge and takes no model; give no "
                          f"checkpoint or SavedModel with it", field="method")
    if needs_model and not (checkpoint or saved_model):
        raise ConfigError("the network needs a trained model (a log dir or checkpoint)",
                          field="checkpoint")
    if needs_model and checkpoint and saved_model:
        raise ConfigError("give one of a checkpoint and a SavedModel, not both",
                          field="saved_model")


def load_merger(options, checkpoint=None, saved_model=None, method=DEFAULT_METHOD, log=print):
    """The `Merger` of `method` with `options`: the network restores a log dir's (or
    checkpoint's) generator in `options.precision`, or runs an exported SavedModel (exactly one
    of `checkpoint` and `saved_model`); the classical methods take neither. Its
    `description` names the checkpoint prefix, SavedModel folder or method it runs."""
    check_method(method, checkpoint, saved_model)
    return METHODS[method].load(options, checkpoint, saved_model, log)
