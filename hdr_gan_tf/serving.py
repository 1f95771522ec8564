"""The exported model: a SavedModel that merges brackets of any size with TensorFlow alone.

`export_saved_model` writes what `hdr-gan-export` writes; `saved_model_merger` runs such a
model with the same `merge` interface as `hdr_gan_tf.merge.generator_merger`.
"""

from pathlib import Path

import numpy as np
import tensorflow as tf

from hdr_gan_tf.imaging import MU, output_to_hdr
from hdr_gan_tf.merge import as_unit_float, run_generator


class ServingModule(tf.Module):
    """What `hdr-gan-export` saves: LDRs + EVs in, linear and tonemapped HDR out, any size.

    Signature `serving_default(ldr_short, ldr_mid, ldr_long, exposure_bias)`: LDRs float32
    `[B, H, W, 3]` in [0, 1], EVs float32 `[B, 3]`. Returns `hdr` (linear, main branch),
    `tonemapped` (μ-law of `hdr`, in [0, 1]) and `hdr_aux` (linear, first auxiliary branch; the
    main branch again for a 2-scale model). Padding to the network's multiple and cropping back
    happen inside. Not knowing the size in advance, the graph runs the memory-lean order
    (`Generator.infer_lean`) and pads by copying.
    """

    def __init__(self, generator, mu=MU):
        super().__init__(name="hdr_gan")
        self.generator = generator
        self.mu = float(mu)

    @tf.function(input_signature=[tf.TensorSpec([None, None, None, 3], tf.float32, name=n)
                                  for n in ("ldr_short", "ldr_mid", "ldr_long")]
                 + [tf.TensorSpec([None, 3], tf.float32, name="exposure_bias")])
    def serve(self, ldr_short, ldr_mid, ldr_long, exposure_bias):
        outputs = run_generator(self.generator, (ldr_short, ldr_mid, ldr_long), exposure_bias,
                                self.mu, lean=True)
        hdr, tonemapped = output_to_hdr(outputs[-1], self.mu)
        hdr_aux, _ = output_to_hdr(outputs[0], self.mu)
        return {"hdr": hdr, "tonemapped": tonemapped, "hdr_aux": hdr_aux}


def export_saved_model(checkpoint, output_dir, precision="float32", keras_file=None,
                       overwrite=False):
    """Writes the generator of a log dir (or checkpoint) as a SavedModel, atomically, and
    optionally as a `.keras` file. Returns the checkpoint prefix exported."""
    from hdr_gan_tf.config import restore_generator
    from hdr_gan_tf.image_io import atomic_directory, atomic_output, refuse_existing

    output_dir = Path(output_dir)
    refuse_existing(output_dir, overwrite)
    if keras_file:
        if not str(keras_file).endswith(".keras"):
            raise ValueError(f"{keras_file}: the Keras file name must end in .keras")
        refuse_existing(keras_file, overwrite)
    generator, config, prefix = restore_generator(checkpoint, precision)
    module = ServingModule(generator, config.model.mu)
    with atomic_directory(output_dir, replace=overwrite) as tmp:
        tf.saved_model.save(module, str(tmp), signatures={"serving_default": module.serve})
    if keras_file:
        with atomic_output(keras_file) as path:
            generator.save(str(path))
    return prefix


def saved_model_merger(path):
    """A `merge(ldrs [3, H, W, 3], ev [3]) -> {branch: linear HDR}` from an exported SavedModel."""
    if not Path(path, "saved_model.pb").is_file():
        raise ValueError(f"{path}: not a SavedModel (no saved_model.pb)")
    loaded = tf.saved_model.load(str(path))
    serve = loaded.signatures["serving_default"]

    def merge(ldrs, exposure_bias, **_):
        ldrs = tf.constant(as_unit_float(np.asarray(ldrs)))
        out = serve(ldr_short=ldrs[0:1], ldr_mid=ldrs[1:2], ldr_long=ldrs[2:3],
                    exposure_bias=tf.constant(np.asarray(exposure_bias, np.float32)[None]))
        return {"aux1": out["hdr_aux"][0].numpy(), "main": out["hdr"][0].numpy()}

    return merge
