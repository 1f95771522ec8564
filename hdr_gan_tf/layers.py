"""Building blocks of the HDR-GAN generator (SPEC §2).

Every convolution pads by reflection and then convolves with VALID padding, as the released model
did; reflection keeps the borders of bright regions free of the dark halo that zero padding gives.
Kernels are He-normal, biases zero, and all convolutions but the up-sampling ones are wrapped in
`keras.layers.SpectralNormalization` (one power iteration per training forward pass).
"""

import keras
from keras import ops


def track_layers(owner, layers):
    """Makes each layer of a list a named attribute of `owner` (by the layer's name).

    Keras tracks layers held in lists, but TensorFlow checkpoints (`tf.train.Checkpoint`) follow
    attributes only; naming each one also gives the checkpoint readable, stable keys.
    """
    for layer in layers:
        setattr(owner, layer.name, layer)
    return layers


def reflect_padding(kernel_size, dilation_rate=1):
    """Padding on each side that keeps the size of a stride-1 convolution: `(k-1)//2 + d - 1`."""
    return (kernel_size - 1) // 2 + dilation_rate - 1


@keras.saving.register_keras_serializable(package="hdr_gan_tf")
class ReflectConv2D(keras.layers.Layer):
    """Reflect padding, then a VALID `Conv2D`, optionally spectrally normalised.

    Args:
      filters: output channels.
      kernel_size: square kernel side.
      strides: convolution stride.
      dilation_rate: convolution dilation.
      padding: reflect padding on each side; `None` keeps the size for stride 1
        (`reflect_padding(kernel_size, dilation_rate)`), 0 means none (VALID).
      activation: activation applied after the convolution (a Keras activation name or None).
      spectral_norm: wrap the convolution in `keras.layers.SpectralNormalization`.

    Input: `[B, H, W, C]`. Output: `[B, H', W', filters]`, `H' = (H + 2p - d(k-1) - 1) // s + 1`.
    """

    def __init__(self, filters, kernel_size, strides=1, dilation_rate=1, padding=None,
                 activation=None, spectral_norm=True, **kwargs):
        super().__init__(**kwargs)
        self.filters = filters
        self.kernel_size = kernel_size
        self.strides = strides
        self.dilation_rate = dilation_rate
        self.padding = reflect_padding(kernel_size, dilation_rate) if padding is None else padding
        self.activation = keras.activations.get(activation)
        self.spectral_norm = spectral_norm
        conv = keras.layers.Conv2D(
            filters, kernel_size, strides=strides, dilation_rate=dilation_rate, padding="valid",
            kernel_initializer="he_normal", bias_initializer="zeros", dtype=self.dtype_policy,
            name="conv")
        self.conv = (keras.layers.SpectralNormalization(conv, power_iterations=1,
                                                        dtype=self.dtype_policy, name="sn")
                     if spectral_norm else conv)

    @property
    def conv2d(self):
        """The wrapped `keras.layers.Conv2D` (holds `kernel` and `bias`)."""
        return self.conv.layer if self.spectral_norm else self.conv

    def _padded_shape(self, input_shape):
        pad = 2 * self.padding
        grow = lambda n: None if n is None else n + pad  # noqa: E731
        return (input_shape[0], grow(input_shape[1]), grow(input_shape[2]), input_shape[3])

    def build(self, input_shape):
        self.conv.build(self._padded_shape(input_shape))

    def call(self, x, training=None):
        if self.padding:
            p = self.padding
            x = ops.pad(x, [[0, 0], [p, p], [p, p], [0, 0]], mode="reflect")
        if self.spectral_norm:
            x = self.conv(x, training=training)
        else:
            x = self.conv(x)
        return self.activation(x) if self.activation is not None else x

    def compute_output_shape(self, input_shape):
        return self.conv2d.compute_output_shape(self._padded_shape(input_shape))

    def get_config(self):
        config = super().get_config()
        config.update(filters=self.filters, kernel_size=self.kernel_size, strides=self.strides,
                      dilation_rate=self.dilation_rate, padding=self.padding,
                      activation=keras.activations.serialize(self.activation)
                      if self.activation is not None else None,
                      spectral_norm=self.spectral_norm)
        return config


@keras.saving.register_keras_serializable(package="hdr_gan_tf")
class ResidualUnit(keras.layers.Layer):
    """`RU(c)`: `relu(conv3x3(relu(conv3x3(x))) + shortcut(x))`.

    The shortcut is a 1x1 convolution when the input does not have `filters` channels, else the
    identity. Input `[B, H, W, C]`, output `[B, H, W, filters]`, values >= 0.
    """

    def __init__(self, filters, **kwargs):
        super().__init__(**kwargs)
        self.filters = filters
        self.conv_a = ReflectConv2D(filters, 3, activation="relu", dtype=self.dtype_policy,
                                    name="conv_a")
        self.conv_b = ReflectConv2D(filters, 3, dtype=self.dtype_policy, name="conv_b")
        self.shortcut = None

    def build(self, input_shape):
        self.conv_a.build(input_shape)
        self.conv_b.build(input_shape[:3] + (self.filters,))
        if input_shape[-1] != self.filters:
            self.shortcut = ReflectConv2D(self.filters, 1, dtype=self.dtype_policy,
                                          name="shortcut")
            self.shortcut.build(input_shape)

    def call(self, x, training=None):
        residual = self.conv_b(self.conv_a(x, training=training), training=training)
        skip = self.shortcut(x, training=training) if self.shortcut is not None else x
        return ops.relu(residual + skip)

    def compute_output_shape(self, input_shape):
        return input_shape[:3] + (self.filters,)

    def get_config(self):
        config = super().get_config()
        config.update(filters=self.filters)
        return config


@keras.saving.register_keras_serializable(package="hdr_gan_tf")
class UpSample(keras.layers.Layer):
    """`UP(c)`: nearest-neighbour x2, then `relu(conv3x3_c)` without spectral normalisation.

    Input `[B, H, W, C]`, output `[B, 2H, 2W, filters]`.
    """

    def __init__(self, filters, **kwargs):
        super().__init__(**kwargs)
        self.filters = filters
        self.resize = keras.layers.UpSampling2D(2, interpolation="nearest",
                                                dtype=self.dtype_policy, name="nearest")
        self.conv = ReflectConv2D(filters, 3, activation="relu", spectral_norm=False,
                                  dtype=self.dtype_policy, name="conv")

    def build(self, input_shape):
        double = lambda n: None if n is None else 2 * n  # noqa: E731
        self.conv.build((input_shape[0], double(input_shape[1]), double(input_shape[2]),
                         input_shape[3]))

    def call(self, x, training=None):
        return self.conv(self.resize(x), training=training)

    def get_config(self):
        config = super().get_config()
        config.update(filters=self.filters)
        return config


@keras.saving.register_keras_serializable(package="hdr_gan_tf")
class MergingBlock(keras.layers.Layer):
    """Reference-based residual merging of the three exposures' features at one scale.

    `x = concat(short, ref, long)`; three dilated (rate 2) 3x3 convolutions with ReLU, a fourth
    without; output `relu(x + ref)`. The residual on the reference keeps the output aligned to the
    reference frame while the dilated convolutions pull in the content that the other exposures
    add. When `3 * filters > 512` (a fourth scale of 256 channels) each input first passes a
    `relu(conv1x1, bottleneck_filters)` to keep the block's size in check.

    Input: list of three `[B, H, W, filters]` tensors (short, reference, long).
    Output: `[B, H, W, filters]`, values >= 0.
    """

    def __init__(self, filters, bottleneck_filters=170, **kwargs):
        super().__init__(**kwargs)
        self.filters = filters
        self.bottleneck_filters = bottleneck_filters
        self.bottlenecks = None
        if 3 * filters > 512:
            self.bottlenecks = track_layers(self, [
                ReflectConv2D(bottleneck_filters, 1, activation="relu", dtype=self.dtype_policy,
                              name=f"bottleneck_{i}") for i in range(3)])
        self.convs = track_layers(self, [
            ReflectConv2D(filters, 3, dilation_rate=2, activation="relu" if i < 3 else None,
                          dtype=self.dtype_policy, name=f"dilated_{i}") for i in range(4)])

    def build(self, input_shape):
        shape = input_shape[0]
        channels = 3 * shape[-1]
        if self.bottlenecks is not None:
            for layer, in_shape in zip(self.bottlenecks, input_shape):
                layer.build(in_shape)
            channels = 3 * self.bottleneck_filters
        self.convs[0].build(shape[:3] + (channels,))
        for conv in self.convs[1:]:
            conv.build(shape[:3] + (self.filters,))

    def call(self, inputs, training=None):
        ref = inputs[1]
        features = inputs
        if self.bottlenecks is not None:
            features = [b(f, training=training) for b, f in zip(self.bottlenecks, inputs)]
        x = ops.concatenate(features, axis=-1)
        for conv in self.convs:
            x = conv(x, training=training)
        return ops.relu(x + ref)

    def get_config(self):
        config = super().get_config()
        config.update(filters=self.filters, bottleneck_filters=self.bottleneck_filters)
        return config
