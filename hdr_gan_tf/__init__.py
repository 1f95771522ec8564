"""hdr_gan_tf: HDR-GAN (Niu et al., IEEE TIP 2021) in TensorFlow 2 / Keras 3."""

import os

# OpenCV reads and writes OpenEXR only when asked before it is first imported.
os.environ.setdefault("OPENCV_IO_ENABLE_OPENEXR", "1")

from hdr_gan_tf.discriminator import Discriminator
from hdr_gan_tf.generator import Encoder, Generator
from hdr_gan_tf.layers import MergingBlock, ReflectConv2D, ResidualUnit, UpSample

__all__ = ["Discriminator", "Encoder", "Generator", "MergingBlock", "ReflectConv2D",
           "ResidualUnit", "UpSample"]
__version__ = "0.1.0"
