"""hdr_gan_tf: HDR-GAN (Niu et al., IEEE TIP 2021) in TensorFlow 2 / Keras 3.

`from hdr_gan_tf import Generator, Discriminator` gives the two networks. The package imports
TensorFlow only when one of them is first used, so the command-line programs can configure
TensorFlow's logging before it loads.
"""

import importlib
import os

# TensorFlow's default CPU allocator hands every large tensor back to the system when it is
# freed, so each new feature map is page-faulted in afresh, which slows a full-resolution pass
# markedly (docs/performance.md). The BFC allocator keeps freed memory for reuse. It is read
# when TensorFlow first allocates, so it takes effect unless TensorFlow ran ops before this
# package was imported. Set TF_CPU_ALLOCATOR_USE_BFC=false to opt out.
os.environ.setdefault("TF_CPU_ALLOCATOR_USE_BFC", "true")

__version__ = "0.6.0"

_EXPORTS = {
    "Discriminator": "hdr_gan_tf.discriminator",
    "Encoder": "hdr_gan_tf.generator",
    "Generator": "hdr_gan_tf.generator",
    "MergingBlock": "hdr_gan_tf.layers",
    "ReflectConv2D": "hdr_gan_tf.layers",
    "ResidualUnit": "hdr_gan_tf.layers",
    "SpectralNorm": "hdr_gan_tf.layers",
    "UpSample": "hdr_gan_tf.layers",
}
__all__ = sorted(_EXPORTS)


def __getattr__(name):
    if name in _EXPORTS:
        return getattr(importlib.import_module(_EXPORTS[name]), name)
    raise AttributeError(f"module 'hdr_gan_tf' has no attribute {name!r}")
