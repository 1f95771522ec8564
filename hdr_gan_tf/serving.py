"""The exported model: a SavedModel that merges brackets of any size with TensorFlow alone,
and the same computation as an ONNX model for runtimes without TensorFlow.

`export_saved_model` writes what `hdr-gan-export` writes (with `onnx_path`, the ONNX model too);
`SavedModelMerger` runs such a model as a `hdr_gan_tf.merge.Merger`, like the generator's.
"""

import contextlib
import io
from pathlib import Path

import numpy as np
import tensorflow as tf

from hdr_gan_tf.imaging import output_to_hdr
from hdr_gan_tf.arrays import as_unit_float
from hdr_gan_tf.merge import InferenceOptions, Merger, run_generator
from hdr_gan_tf.settings import ConfigError


SIGNATURE = ([tf.TensorSpec([None, None, None, 3], tf.float32, name=n)
              for n in ("ldr_short", "ldr_mid", "ldr_long")]
             + [tf.TensorSpec([None, 3], tf.float32, name="exposure_bias")])
ONNX_OPSET = 17


class ServingModule(tf.Module):
    """What `hdr-gan-export` saves: LDRs + EVs in, linear and tonemapped HDR out, any size.

    Signature `serving_default(ldr_short, ldr_mid, ldr_long, exposure_bias)`: LDRs float32
    `[B, H, W, 3]` in [0, 1], EVs float32 `[B, 3]`. Returns `hdr` (linear, main branch),
    `tonemapped` (μ-law of `hdr`, in [0, 1]) and `hdr_aux` (linear, first auxiliary branch; the
    main branch again for a 2-scale model). Padding to the network's multiple and cropping back
    happen inside. Not knowing the size in advance, the graph runs the memory-lean order
    (`Generator.infer_lean`) and pads by copying.
    """

    def __init__(self, generator, mu=None):
        super().__init__(name="hdr_gan")
        self.generator = generator
        self.mu = float(generator.mu if mu is None else mu)

    @tf.function(input_signature=SIGNATURE)
    def serve(self, ldr_short, ldr_mid, ldr_long, exposure_bias):
        outputs = run_generator(self.generator, (ldr_short, ldr_mid, ldr_long), exposure_bias,
                                self.mu, lean=True)
        hdr, tonemapped = output_to_hdr(outputs[-1], self.mu)
        hdr_aux, _ = output_to_hdr(outputs[0], self.mu)
        return {"hdr": hdr, "tonemapped": tonemapped, "hdr_aux": hdr_aux}


def export_saved_model(checkpoint, output_dir, precision="float32", keras_file=None,
                       overwrite=False, onnx_path=None):
    """Writes the generator of a log dir (or checkpoint) as a SavedModel, atomically, and
    optionally as a `.keras` file and an ONNX model (`export_onnx`). Returns the checkpoint
    prefix exported."""
    from hdr_gan_tf.checkpoints import checkpoint_log_dir, restore_generator
    from hdr_gan_tf.outputs import (atomic_output, check_outputs, fingerprint, marker_path,
                                    output_dir as new_dir, output_set)

    output_dir = Path(output_dir)
    files = [p for p in (keras_file, onnx_path) if p]
    for path, suffix in ((keras_file, ".keras"), (onnx_path, ".onnx")):
        if path and not str(path).endswith(suffix):
            raise ValueError(f"{path}: the file name must end in {suffix}")
    # The SavedModel's marker vouches for the files written beside it.
    check_outputs(files=files, folders=[(output_dir, "saved_model")],
                  inputs=[checkpoint_log_dir(checkpoint)], overwrite=overwrite,
                  records={p: [marker_path(output_dir)] for p in files})
    generator, _, prefix = restore_generator(checkpoint, precision)
    module = ServingModule(generator)
    with output_set() as staged:  # the files and the folder: all new, or all as they were
        if keras_file:
            with atomic_output(keras_file) as path:
                generator.save(str(path))
        if onnx_path:
            export_onnx(module, onnx_path)
        with new_dir(output_dir, "saved_model", vouch_for=lambda: [
                fingerprint(p, staged.temporary(p), marker_path(output_dir))
                for p in files]) as tmp:
            save_serving_model(module, tmp)
    return prefix


def save_serving_model(module, path):
    """Writes a `ServingModule` as a SavedModel with the `serving_default` signature.

    Written through Keras' `ExportArchive`, which records the Keras variables so that loaders
    of the TensorFlow 1 kind find them too: `saved_model_cli run` and TensorFlow Serving
    restore the variables of a plain `tf.saved_model.save` of Keras 3 layers by names that do
    not exist in its graph, and fail ("Could not find variable ...").
    """
    import keras

    archive = keras.export.ExportArchive()
    archive.track(module.generator)
    archive.add_endpoint("serving_default", lambda *inputs: module.serve(*inputs),
                         input_signature=SIGNATURE)
    with contextlib.redirect_stdout(io.StringIO()):  # its summary of the endpoints
        archive.write_out(str(path))


def export_onnx(module, path, opset=ONNX_OPSET):
    """Writes a `ServingModule`'s `serve` as an ONNX model (tf2onnx), atomically.

    Inputs and outputs are the SavedModel's, by the same names, with any batch, height and
    width. Two TensorFlow ops have no ONNX counterpart and are written out: `log1p(x)` as
    `log(1 + x)` and `expm1(x)` as `exp(x) - 1` (the μ-law and its inverse; at most about
    1e-7 apart on values in [0, 1]). Everything else (reflect padding, the dilated and
    sub-pixel convolutions, the padding loop for any size) converts as it is.
    """
    import tf2onnx

    from hdr_gan_tf.outputs import atomic_output

    handlers = {"Log1p": (_onnx_log1p, []), "Expm1": (_onnx_expm1, [])}
    proto, _ = tf2onnx.convert.from_function(module.serve, input_signature=SIGNATURE,
                                             opset=opset, custom_op_handlers=handlers)
    with atomic_output(path) as tmp:
        tmp.write_bytes(proto.SerializeToString())


def _onnx_one(ctx, node):
    from tf2onnx import utils

    dtype = utils.map_onnx_to_numpy_type(ctx.get_dtype(node.input[0]))
    return ctx.make_const(utils.make_name(f"{node.name}_one"), np.array(1, dtype)).output[0]


def _onnx_log1p(ctx, node, name, args):
    """tf2onnx handler: `Log1p(x)` -> `Log(Add(x, 1))`."""
    added = ctx.make_node("Add", [node.input[0], _onnx_one(ctx, node)])
    ctx.replace_inputs(node, [added.output[0]])
    node.type = "Log"


def _onnx_expm1(ctx, node, name, args):
    """tf2onnx handler: `Expm1(x)` -> `Sub(Exp(x), 1)`."""
    from tf2onnx import utils

    one = _onnx_one(ctx, node)
    node.type = "Exp"
    less_one = ctx.insert_new_node_on_output("Sub", node.output[0],
                                             name=utils.make_name(f"{node.name}_minus_one"))
    ctx.replace_inputs(less_one, [node.output[0], one])


SAVED_MODEL_TILING = ("an exported SavedModel merges whole images (one graph for any size); "
                      "merge in tiles from the log dir ({checkpoint}) instead")
SAVED_MODEL_PRECISION = ("an exported SavedModel computes in float32, as it was exported; merge "
                         "in another precision from the log dir ({checkpoint})")


def check_saved_model_options(options):
    """ConfigError naming the field of `options` (`InferenceOptions`) that an exported SavedModel
    cannot honour: tiles, a precision other than its own, XLA."""
    if options.tile:
        raise ConfigError(SAVED_MODEL_TILING, field="tile", mentions=["checkpoint"])
    if options.precision != "float32":
        raise ConfigError(SAVED_MODEL_PRECISION, field="precision", mentions=["checkpoint"])
    if options.jit_compile:
        raise ConfigError("an exported SavedModel runs the graph it was exported as",
                          field="jit_compile")


class SavedModelMerger(Merger):
    """A `Merger` running an exported SavedModel (branches `aux1`, `main`), whole images only,
    in the precision it was exported with: `options` asking for tiles, another precision or
    XLA are refused (ConfigError, `check_saved_model_options`), never ignored."""
    tile_kind = "whole"

    def __init__(self, path, options=None):
        options = InferenceOptions() if options is None else options
        check_saved_model_options(options)
        super().__init__(options, ["aux1", "main"], str(path))
        self.loaded = _load_serving(path)  # kept: the signature's variables live in it
        self.serve = self.loaded.signatures["serving_default"]

    def __call__(self, ldrs, exposure_bias, progress=None, wanted=None, decided=None):
        ldrs = tf.constant(as_unit_float(np.asarray(ldrs)))
        out = self.serve(ldr_short=ldrs[0:1], ldr_mid=ldrs[1:2], ldr_long=ldrs[2:3],
                         exposure_bias=tf.constant(np.asarray(exposure_bias, np.float32)[None]))
        return {"aux1": out["hdr_aux"][0].numpy(), "main": out["hdr"][0].numpy()}


def _load_serving(path):
    """The SavedModel in `path`, with a `serving_default` signature; ValueError naming the folder
    if it has none or cannot be loaded."""
    if not Path(path, "saved_model.pb").is_file():
        raise ValueError(f"{path}: not a SavedModel (no saved_model.pb)")
    try:
        loaded = tf.saved_model.load(str(path))
    # A damaged or truncated variables file ends in any of these, depending on where it breaks.
    except (tf.errors.OpError, ValueError, IndexError, KeyError, RuntimeError, TypeError,
            AttributeError) as err:
        raise ValueError(f"{path}: this SavedModel cannot be loaded (is it damaged or "
                         f"incomplete?): {type(err).__name__}: "
                         f"{str(err).strip().splitlines()[0][:200] if str(err).strip() else ''}"
                         ) from None
    if "serving_default" not in loaded.signatures:
        raise ValueError(f"{path}: this SavedModel has no serving_default signature (it has "
                         f"{', '.join(loaded.signatures) or 'none'}); export one with "
                         f"hdr-gan-export")
    return loaded
