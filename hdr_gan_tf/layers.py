"""Building blocks of the HDR-GAN generator and discriminator (docs/design.md §2, §3, §5).

Every convolution pads by reflection and then convolves with VALID padding, as the released model
did; reflection keeps the borders of bright regions free of the dark halo that zero padding gives.
Kernels are He-normal, biases zero, and all convolutions but the up-sampling ones are wrapped in
`SpectralNorm`: spectral normalisation as Miyato et al. define it and the released model was
trained with it (the raw kernel is the trained variable; the forward pass divides it by σ).

The arithmetic lives in `hdr_gan_tf.conv_ops`. Layers that take part in the generator's
memory-lean inference order (`Generator.infer_lean`) also offer `part` / `activate` / `finish`:
the same computation with a concatenated input added one part at a time. Every `call` and
inference helper takes `strips_from_pixels`, passed on to `conv_ops.reflect_conv2d` (border
strips instead of padded copies, for inference on maps of known size; see there).
"""

import keras
import tensorflow as tf
from keras import ops

from hdr_gan_tf.conv_ops import reflect_conv2d, subpixel_kernel


def track_layers(owner, layers):
    """Makes each layer of a list a named attribute of `owner` (by the layer's name).

    Keras tracks layers held in lists, but TensorFlow checkpoints (`tf.train.Checkpoint`) follow
    attributes only; naming each one also gives the checkpoint readable, stable keys.
    """
    for layer in layers:
        setattr(owner, layer.name, layer)
    return layers


def with_dtype_policy(config):
    """A model's `get_config()` with its serialised dtype policy turned back into a policy, for
    `from_config` (Keras serialises a model's policy as a dict)."""
    config = dict(config)
    if isinstance(config.get("dtype"), dict):
        config["dtype"] = keras.dtype_policies.deserialize(config["dtype"])
    return config


def reflect_padding(kernel_size, dilation_rate=1):
    """Padding on each side that keeps the size of a stride-1 convolution: `(k-1)//2 + d - 1`."""
    return (kernel_size - 1) // 2 + dilation_rate - 1


def channel_shape(input_shape):
    """Shape of the channel concatenation of `input_shape` (one shape or a list of them)."""
    if isinstance(input_shape, (list, tuple)) and isinstance(input_shape[0], (list, tuple)):
        channels = sum(shape[-1] for shape in input_shape)
        return tuple(input_shape[0][:-1]) + (channels,)
    return tuple(input_shape)


@keras.saving.register_keras_serializable(package="hdr_gan_tf")
class ReflectPaddedConv(keras.layers.Conv2D):
    """`keras.layers.Conv2D` whose input is reflect-padded by `reflect_padding` on each side.

    The convolution goes through `conv_ops.reflect_conv2d`. Holds the same `kernel` and `bias`
    as a `Conv2D`, so a `SpectralNorm` wrapper and checkpoints see an ordinary convolution.
    Input `[B, H, W, C]`, or a list of tensors standing for their channel concatenation; output
    `[B, H', W', filters]` with `H' = (H + 2p - d(k-1) - 1) // s + 1`.

    Its variables are never auto-cast to a mixed-precision compute dtype: a `SpectralNorm`
    wrapper computes σ from them in float32 (σ rounded to bfloat16 would scale each layer by up
    to 0.4%), and `convolve` casts the kernel and bias to the input's dtype itself.
    """

    def __init__(self, filters, kernel_size, reflect_padding=0, **kwargs):
        kwargs["padding"] = "valid"
        super().__init__(filters, kernel_size, **kwargs)
        self.reflect_padding = reflect_padding

    def add_weight(self, *args, **kwargs):
        kwargs["autocast"] = False
        return super().add_weight(*args, **kwargs)

    def _padded_shape(self, input_shape):
        input_shape = channel_shape(input_shape)
        grow = lambda n: None if n is None else n + 2 * self.reflect_padding  # noqa: E731
        return (input_shape[0], grow(input_shape[1]), grow(input_shape[2]), input_shape[3])

    def build(self, input_shape):
        super().build(channel_shape(input_shape))
        self.input_spec = None  # a list of parts is as welcome as one tensor

    def convolve(self, inputs, kernel, training=None, strips_from_pixels=None):
        """Bias and activation after `reflect_conv2d(inputs, kernel)`; `kernel` stands in for
        `self.kernel` (a `SpectralNorm` wrapper passes W / σ)."""
        dtype = (inputs[0] if isinstance(inputs, (list, tuple)) else inputs).dtype
        outputs = reflect_conv2d(inputs, tf.cast(kernel, dtype), self.strides[0],
                                 self.dilation_rate[0], self.reflect_padding,
                                 differentiable=bool(training),
                                 strips_from_pixels=strips_from_pixels)
        if self.use_bias:
            outputs = tf.nn.bias_add(outputs, tf.cast(self.bias, dtype))
        return self.activation(outputs) if self.activation is not None else outputs

    def call(self, inputs, training=None, strips_from_pixels=None):
        return self.convolve(inputs, self.kernel, training, strips_from_pixels)

    def compute_output_shape(self, input_shape):
        return super().compute_output_shape(self._padded_shape(input_shape))

    def get_config(self):
        config = super().get_config()
        config.update(reflect_padding=self.reflect_padding)
        return config


@keras.saving.register_keras_serializable(package="hdr_gan_tf")
class SpectralNorm(keras.layers.SpectralNormalization):
    """Spectral normalisation as Miyato et al. (2018) define it, as the released model trained.

    The trained variable is the raw kernel `W`; every forward pass convolves with `W / σ(W)`.
    σ comes from power iterations from the stored vector `u` (`[1, c_out]`), with `W` reshaped
    to `[k·k·c_in, c_out]`: `v = l2n(u Wᵀ)`, `u' = l2n(v W)`, `σ = v W u'ᵀ`, where `l2n`
    normalises the whole vector (`x / sqrt(max(Σx², 1e-12))`). `u'` and `v` are held constant
    for the gradient, so the gradient reaches `W` through `σ`. In training `u'` is stored; in
    inference it is not, and the same `u` gives the same σ every time.

    `keras.layers.SpectralNormalization` (this class's parent, whose constructor, `vector_u`
    and configuration it keeps) instead overwrites the kernel variable with `W / σ` on every
    training call: the optimizer then steps on the normalised kernel and no gradient flows
    through σ. That trains differently from the first update on (σ of a He-initialised kernel
    is about 2, and it grows during training), so this wrapper never writes the kernel.

    One call is one power iteration (`power_iterations`), whatever the batch holds: a network
    that must score several images with one σ (the discriminator on real and fake images, as
    the authors' graph did) scores them as one batch.

    Args:
      layer: a `ReflectPaddedConv` (any layer with a `kernel` and a
        `convolve(inputs, kernel, training, strips_from_pixels)` method).
      power_iterations: power iterations per call.

    Input and output: those of the wrapped layer (`[B, H, W, C]` or a list of channel parts).
    """

    def __init__(self, layer, power_iterations=1, **kwargs):
        super().__init__(layer, power_iterations=power_iterations, **kwargs)

    def add_weight(self, *args, **kwargs):
        kwargs["autocast"] = False  # `u` stays float32 under a mixed-precision policy
        return super().add_weight(*args, **kwargs)

    def build(self, input_shape):
        super().build(channel_shape(input_shape))
        self.input_spec = None

    def normalized_kernel(self, training=False):
        """`W / σ(W)` in float32, differentiable with respect to `W`; in training, `u'` is stored.

        Returns the kernel with `W`'s shape. (Keras' parent method, `normalized_weights`,
        returns the pair it writes into its variables.)
        """
        kernel = tf.convert_to_tensor(self.kernel)
        weights = tf.reshape(kernel, [-1, kernel.shape[-1]])  # [k·k·c_in, c_out]
        vector_u = tf.convert_to_tensor(self.vector_u)  # [1, c_out]
        for _ in range(self.power_iterations):
            vector_v = tf.math.l2_normalize(tf.matmul(vector_u, weights, transpose_b=True),
                                            axis=None, epsilon=1e-12)  # [1, k·k·c_in]
            vector_u = tf.math.l2_normalize(tf.matmul(vector_v, weights), axis=None,
                                            epsilon=1e-12)
        vector_u = tf.stop_gradient(vector_u)
        vector_v = tf.stop_gradient(vector_v)
        sigma = tf.matmul(tf.matmul(vector_v, weights), vector_u, transpose_b=True)  # [1, 1]
        if training:
            self.vector_u.assign(vector_u)
        # An all-zero kernel (σ = 0) stays zero instead of becoming NaN.
        return tf.math.divide_no_nan(kernel, sigma)

    def call(self, inputs, training=False, strips_from_pixels=None):
        return self.layer.convolve(inputs, self.normalized_kernel(training), training,
                                   strips_from_pixels)

    def compute_output_shape(self, input_shape):
        return self.layer.compute_output_shape(input_shape)


@keras.saving.register_keras_serializable(package="hdr_gan_tf")
class ReflectConv2D(keras.layers.Layer):
    """Reflect padding, then a VALID convolution, optionally spectrally normalised.

    Args:
      filters: output channels.
      kernel_size: square kernel side.
      strides: convolution stride.
      dilation_rate: convolution dilation.
      padding: reflect padding on each side; `None` keeps the size for stride 1
        (`reflect_padding(kernel_size, dilation_rate)`), 0 means none (VALID).
      activation: activation applied after the convolution (a Keras activation name or None).
      spectral_norm: wrap the convolution in `SpectralNorm`.

    Input: `[B, H, W, C]`, or a list of tensors standing for their channel concatenation (no
    concatenated copy is made). Output: `[B, H', W', filters]`,
    `H' = (H + 2p - d(k-1) - 1) // s + 1`.
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
        conv = ReflectPaddedConv(
            filters, kernel_size, reflect_padding=self.padding, strides=strides,
            dilation_rate=dilation_rate, kernel_initializer="he_normal",
            bias_initializer="zeros", dtype=self.dtype_policy, name="conv")
        self.conv = (SpectralNorm(conv, power_iterations=1, dtype=self.dtype_policy, name="sn")
                     if spectral_norm else conv)

    @property
    def conv2d(self):
        """The wrapped `ReflectPaddedConv` (a `Conv2D`; holds `kernel` and `bias`)."""
        return self.conv.layer if self.spectral_norm else self.conv

    def build(self, input_shape):
        self.conv.build(channel_shape(input_shape))

    def effective_kernel(self, training=False):
        """The kernel the convolution applies: `W / σ` with spectral normalisation (storing the
        new `u` in training, see `SpectralNorm`), else the kernel variable."""
        if self.spectral_norm:
            return self.conv.normalized_kernel(training)
        return self.conv.kernel

    def call(self, x, training=None, strips_from_pixels=None):
        x = self.conv(x, training=training, strips_from_pixels=strips_from_pixels)
        return self.activation(x) if self.activation is not None else x

    def part(self, x, start=0, strips_from_pixels=None):
        """For inference: this convolution's share of one part of its input, before bias and
        activation.

        `x` holds channels `start .. start + C` of the input's channel concatenation; it is
        convolved with the matching slice of the kernel. The sum of every part's share, passed
        to `activate`, is `call` on the whole input, so a caller can add parts as they become
        available and drop each one at once (`Generator.infer_lean` does).
        """
        conv = self.conv2d
        kernel = tf.cast(self.effective_kernel(), x.dtype)[:, :, start:start + x.shape[-1]]
        return reflect_conv2d(x, kernel, conv.strides[0], conv.dilation_rate[0],
                              conv.reflect_padding, differentiable=False,
                              strips_from_pixels=strips_from_pixels)

    def activate(self, summed):
        """Bias and activation on the sum of the parts' shares (see `part`)."""
        conv = self.conv2d
        if conv.use_bias:
            summed = tf.nn.bias_add(summed, ops.cast(conv.bias, summed.dtype))
        return self.activation(summed) if self.activation is not None else summed

    def compute_output_shape(self, input_shape):
        return self.conv2d.compute_output_shape(input_shape)

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
    identity. Input `[B, H, W, C]` or a list of tensors standing for their channel concatenation
    (the decoder's inputs; see `ReflectConv2D`), output `[B, H, W, filters]`, values >= 0.
    """

    def __init__(self, filters, **kwargs):
        super().__init__(**kwargs)
        self.filters = filters
        self.conv_a = ReflectConv2D(filters, 3, activation="relu", dtype=self.dtype_policy,
                                    name="conv_a")
        self.conv_b = ReflectConv2D(filters, 3, dtype=self.dtype_policy, name="conv_b")
        self.shortcut = None

    def build(self, input_shape):
        input_shape = channel_shape(input_shape)
        self.conv_a.build(input_shape)
        self.conv_b.build(input_shape[:3] + (self.filters,))
        if input_shape[-1] != self.filters:
            self.shortcut = ReflectConv2D(self.filters, 1, dtype=self.dtype_policy,
                                          name="shortcut")
            self.shortcut.build(input_shape)

    def call(self, x, training=None, strips_from_pixels=None):
        strips = {"training": training, "strips_from_pixels": strips_from_pixels}
        residual = self.conv_b(self.conv_a(x, **strips), **strips)
        if self.shortcut is not None:
            skip = self.shortcut(x, training=training)
        else:
            skip = ops.concatenate(x, axis=-1) if isinstance(x, (list, tuple)) else x
        return ops.relu(residual + skip)

    def finish(self, summed_a, summed_shortcut, strips_from_pixels=None):
        """For inference: the unit's output from the sums of its input parts' shares in
        `conv_a` and `shortcut` (see `ReflectConv2D.part`)."""
        residual = self.conv_b(self.conv_a.activate(summed_a),
                               strips_from_pixels=strips_from_pixels)
        return ops.relu(residual + self.shortcut.activate(summed_shortcut))

    def compute_output_shape(self, input_shape):
        return channel_shape(input_shape)[:3] + (self.filters,)

    def get_config(self):
        config = super().get_config()
        config.update(filters=self.filters)
        return config


@keras.saving.register_keras_serializable(package="hdr_gan_tf")
class UpSample(keras.layers.Layer):
    """`UP(c)`: nearest-neighbour x2, then `relu(conv3x3_c)` without spectral normalisation.

    Computed as a sub-pixel convolution (`conv_ops.subpixel_kernel`): reflect padding of the
    up-sampled map is symmetric padding of the small one, so the result is exact.
    Input `[B, H, W, C]`, output `[B, 2H, 2W, filters]`.
    """

    def __init__(self, filters, **kwargs):
        super().__init__(**kwargs)
        self.filters = filters
        self.conv = ReflectConv2D(filters, 3, activation="relu", spectral_norm=False,
                                  dtype=self.dtype_policy, name="conv")

    def build(self, input_shape):
        double = lambda n: None if n is None else 2 * n  # noqa: E731
        self.conv.build((input_shape[0], double(input_shape[1]), double(input_shape[2]),
                         input_shape[3]))

    def call(self, x, training=None, strips_from_pixels=None):
        conv = self.conv.conv2d
        kernel = tf.cast(subpixel_kernel(tf.convert_to_tensor(conv.kernel)), x.dtype)
        y = reflect_conv2d(x, kernel, padding=1, symmetric=True, differentiable=bool(training),
                           strips_from_pixels=strips_from_pixels)
        y = ops.relu(tf.nn.bias_add(y, tf.tile(tf.cast(conv.bias, x.dtype), [4])))  # [B, H, W, 4F]
        return tf.nn.depth_to_space(y, 2)  # [B, 2H, 2W, filters]

    def compute_output_shape(self, input_shape):
        double = lambda n: None if n is None else 2 * n  # noqa: E731
        return (input_shape[0], double(input_shape[1]), double(input_shape[2]), self.filters)

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
        shape = tuple(input_shape[0])
        channels = 3 * shape[-1]
        if self.bottlenecks is not None:
            for layer, in_shape in zip(self.bottlenecks, input_shape):
                layer.build(in_shape)
            channels = 3 * self.bottleneck_filters
        self.convs[0].build(shape[:3] + (channels,))
        for conv in self.convs[1:]:
            conv.build(shape[:3] + (self.filters,))

    def call(self, inputs, training=None, strips_from_pixels=None):
        features = list(inputs)  # the first convolution reads the three as one concatenation
        if self.bottlenecks is not None:
            features = [b(f, training=training) for b, f in zip(self.bottlenecks, inputs)]
        x = features
        for conv in self.convs:
            x = conv(x, training=training, strips_from_pixels=strips_from_pixels)
        return ops.relu(x + inputs[1])

    def part(self, x, start, strips_from_pixels=None):
        """For inference: the first convolution's share of one exposure's features `x`, which
        are channels `start .. start + filters` of the block's concatenated input (short,
        reference, long), so that each exposure's features can be dropped as soon as they are
        added (see `ReflectConv2D.part`). `finish` completes the block from the sum of the three."""
        index = start // self.filters
        if self.bottlenecks is not None:
            x = self.bottlenecks[index](x)
        return self.convs[0].part(x, index * x.shape[-1], strips_from_pixels)

    def finish(self, summed, ref, strips_from_pixels=None):
        """For inference: the block's output from the sum of the three `part`s and `ref`."""
        x = self.convs[0].activate(summed)
        for conv in self.convs[1:]:
            x = conv(x, strips_from_pixels=strips_from_pixels)
        return ops.relu(x + ref)

    def get_config(self):
        config = super().get_config()
        config.update(filters=self.filters, bottleneck_filters=self.bottleneck_filters)
        return config
