"""hdr_gan_tf: HDR-GAN (Niu et al., IEEE TIP 2021) in TensorFlow 2 / Keras 3.

`from hdr_gan_tf import Generator, Discriminator` gives the two networks. The package imports
TensorFlow only when one of them is first used, so the command-line programs can configure
TensorFlow's logging before it loads.
"""

import importlib
import os

# OpenCV reads and writes OpenEXR only when asked before it is first imported.
os.environ.setdefault("OPENCV_IO_ENABLE_OPENEXR", "1")

__version__ = "0.1.0"

_EXPORTS = {
    "Discriminator": "hdr_gan_tf.discriminator",
    "Encoder": "hdr_gan_tf.generator",
    "Generator": "hdr_gan_tf.generator",
    "MergingBlock": "hdr_gan_tf.layers",
    "ReflectConv2D": "hdr_gan_tf.layers",
    "ResidualUnit": "hdr_gan_tf.layers",
    "UpSample": "hdr_gan_tf.layers",
}
__all__ = sorted(_EXPORTS)


def __getattr__(name):
    if name in _EXPORTS:
        return getattr(importlib.import_module(_EXPORTS[name]), name)
    raise AttributeError(f"module 'hdr_gan_tf' has no attribute {name!r}")
