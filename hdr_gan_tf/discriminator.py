"""PatchGAN discriminator of HDR-GAN (docs/design.md §3)."""

import keras

from hdr_gan_tf.layers import ReflectConv2D, track_layers, with_dtype_policy

# Smallest input whose map is not empty (four 4x4 convolutions without padding, three of
# stride 2).
MIN_INPUT = 54


@keras.saving.register_keras_serializable(package="hdr_gan_tf")
class Discriminator(keras.Model):
    """Unconditional PatchGAN with five spectrally normalised 4x4 convolutions.

    Four VALID convolutions (strides 2, 2, 2, 1; `base_filters`, then `2 * base_filters` three
    times), each followed by swish, then a 1-channel convolution with reflect padding 1 and no
    activation.

    Args:
      base_filters: channels of the first convolution (64 in the paper).

    Input: `[B, H, W, 3]`, a μ-law tonemapped image on the [-1, 1] scale.
    Output: `[B, H', W', 1]` patch scores; a 256x256 input gives 26x26.
    """

    def __init__(self, base_filters=64, **kwargs):
        super().__init__(**kwargs)
        self.base_filters = base_filters
        policy = self.dtype_policy
        widths = (base_filters, 2 * base_filters, 2 * base_filters, 2 * base_filters)
        strides = (2, 2, 2, 1)
        self.convs = [ReflectConv2D(c, 4, strides=s, padding=0, activation="silu", dtype=policy,
                                    name=f"conv_{i}")
                      for i, (c, s) in enumerate(zip(widths, strides))]
        self.convs.append(ReflectConv2D(1, 4, padding=1, dtype=policy, name="conv_4"))
        track_layers(self, self.convs)

    def build(self, input_shape):
        shape = tuple(input_shape)
        for conv in self.convs:
            conv.build(shape)
            shape = conv.compute_output_shape(shape)

    def call(self, x, training=None):
        for conv in self.convs:
            x = conv(x, training=training)
        return x

    def get_config(self):
        return {"name": self.name, "base_filters": self.base_filters,
                "dtype": keras.dtype_policies.serialize(self.dtype_policy)}

    @classmethod
    def from_config(cls, config):
        return cls(**with_dtype_policy(config))
