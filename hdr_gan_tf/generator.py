"""The HDR-GAN generator: encoders, merging blocks, nested decoder (docs/design.md §2).

Deep HDR supervision: the decoder is nested (UNet++-like). Row `k` at scale `j` sees the
up-sampled output of row `k-1` one scale coarser, the merged features `m_j`, the reference
encoder's features `e_j^ref` and all earlier rows at scale `j`. Every row that reaches full
resolution (scale 0) ends in an output branch, so a 3-scale generator has two branches: the
auxiliary `d10` and the main `d20`.

`Generator.call` is the network's one forward pass, for training and inference alike.
`Generator.infer_lean` computes the same outputs for inference in an order that holds fewer
full-resolution maps at once; `hdr_gan_tf.merge` chooses it for large images.
"""

import keras
import tensorflow as tf

from hdr_gan_tf.imaging import MU
from hdr_gan_tf.layers import (MergingBlock, ReflectConv2D, ResidualUnit, UpSample, track_layers,
                               with_dtype_policy)


@keras.saving.register_keras_serializable(package="hdr_gan_tf")
class Encoder(keras.layers.Layer):
    """One exposure's feature pyramid: `e0 = RU(c0)(X)`, `e_s = RU(c_s)(DS(c_{s-1})(e_{s-1}))`.

    `DS(c)` is `relu(conv3x3, stride 2)`. Input `[B, H, W, 6]`; output a list of `scales`
    tensors, `[B, H / 2**s, W / 2**s, filters[s]]`.
    """

    def __init__(self, filters=(32, 64, 128), **kwargs):
        super().__init__(**kwargs)
        self.filters = tuple(filters)
        policy = self.dtype_policy
        self.units = track_layers(self, [ResidualUnit(c, dtype=policy, name=f"unit_{s}")
                                         for s, c in enumerate(self.filters)])
        self.downs = track_layers(self, [
            ReflectConv2D(c, 3, strides=2, activation="relu", dtype=policy, name=f"down_{s}")
            for s, c in enumerate(self.filters[:-1])])

    def build(self, input_shape):
        shape = tuple(input_shape)
        self.units[0].build(shape)
        for s in range(1, len(self.filters)):
            shape = shape[:3] + (self.filters[s - 1],)
            self.downs[s - 1].build(shape)
            half = lambda n: None if n is None else n // 2  # noqa: E731
            shape = (shape[0], half(shape[1]), half(shape[2]), self.filters[s - 1])
            self.units[s].build(shape)

    def call(self, x, training=None, strips_from_pixels=None):
        features = [self.units[0](x, training=training, strips_from_pixels=strips_from_pixels)]
        for down, unit in zip(self.downs, self.units[1:]):
            x = down(features[-1], training=training, strips_from_pixels=strips_from_pixels)
            features.append(unit(x, training=training, strips_from_pixels=strips_from_pixels))
        return features

    def get_config(self):
        config = super().get_config()
        config.update(filters=list(self.filters))
        return config


def branch_names(scales):
    """Names of the output branches, in the generator's order: `aux1`, ..., `main`."""
    return [f"aux{k}" for k in range(1, scales - 1)] + ["main"]


def parse_branches(spec, scales):
    """Branch indices from `all` or comma-separated names (`aux1,main`); ValueError names
    the unknown ones."""
    names = branch_names(scales)
    if spec in ("all", "", None):
        return list(range(len(names)))
    chosen = [s.strip() for s in (spec.split(",") if isinstance(spec, str) else spec)]
    unknown = [c for c in chosen if c not in names]
    if unknown or not chosen:
        raise ValueError(f"unknown branches {unknown}; a generator of {scales} scales has "
                         f"{', '.join(names)}")
    return sorted(names.index(c) for c in chosen)


def _check_exposures(inputs):
    if len(inputs) != 3:
        raise ValueError(f"Generator expects [short, reference, long], got {len(inputs)}")


class _Steps:
    """Calls functions one after another: in a graph, each call's ops wait (control
    dependencies) for the previous call's results, so the executor cannot reorder them; in eager
    mode calls run in order anyway."""

    def __init__(self):
        self._previous = []

    def __call__(self, fn, *args, **kwargs):
        with tf.control_dependencies(self._previous):
            result = fn(*args, **kwargs)
        self._previous = tf.nest.flatten(result)
        return result


def _add_share(layer, part, start, summed, strips_from_pixels):
    """`summed` plus `layer`'s share of one input part (`ReflectConv2D.part`,
    `MergingBlock.part`)."""
    share = layer.part(part, start, strips_from_pixels)
    return share if summed is None else summed + share


@keras.saving.register_keras_serializable(package="hdr_gan_tf")
class Generator(keras.Model):
    """HDR-GAN generator with deep HDR supervision.

    Args:
      scales: number of scales (2, 3 or 4); 3 is the paper's model.
      base_filters: channels at full resolution; scale `s` has `base_filters * 2**s`.
      merging_blocks: use the reference-based residual `MergingBlock`s; if False (ablation) the
        concatenated encoder features go to the decoder through a `relu(conv1x1)`.
      mu: μ of the μ-law the outputs are tonemapped with (docs/design.md §1): part of the
        model, so that whatever runs it (merges, the SavedModel, a `.keras` file) inverts it.

    Call: `generator([x_short, x_ref, x_long], training=..., strips_from_pixels=None)`, each
    `[B, H, W, 6]` in [-1, 1] (see `hdr_gan_tf.imaging.network_inputs`); H and W multiples of
    `2 ** (scales - 1)`. `strips_from_pixels` is for inference on inputs of known size (see
    `hdr_gan_tf.conv_ops.reflect_conv2d`). Returns a list of `scales - 1` tensors
    `[B, H, W, 3]` in [-1, 1] (tanh, μ-law tonemapped HDR on the [-1, 1] scale), auxiliary
    branches first and the main (final) branch last.
    """

    def __init__(self, scales=3, base_filters=32, merging_blocks=True, mu=MU, **kwargs):
        super().__init__(**kwargs)
        if scales < 2:
            raise ValueError(f"scales must be at least 2, got {scales}")
        self.scales = scales
        self.mu = float(mu)
        self.base_filters = base_filters
        self.merging_blocks = merging_blocks
        self.filters = tuple(base_filters * 2 ** s for s in range(scales))
        policy = self.dtype_policy
        self.encoders = track_layers(self, [Encoder(self.filters, dtype=policy,
                                                    name=f"encoder_{i}") for i in range(3)])
        if merging_blocks:
            self.mergers = [MergingBlock(c, dtype=policy, name=f"merging_block_{s}")
                            for s, c in enumerate(self.filters)]
        else:
            self.mergers = [ReflectConv2D(c, 1, activation="relu", dtype=policy,
                                          name=f"merging_conv_{s}")
                            for s, c in enumerate(self.filters)]
        track_layers(self, self.mergers)
        # Nested decoder: node (k, j) is row k >= 1 at scale j, for j <= scales - 1 - k. Its
        # input is UP(c_j) of node (k-1, j+1); row 0 is the merged features m_j. Layers are
        # attributes named up_{k-1}{j+1} and decoder_{k}{j} (see `up` and `node`).
        for k, j in self.node_keys():
            track_layers(self, [
                UpSample(self.filters[j], dtype=policy, name=f"up_{k - 1}{j + 1}"),
                ResidualUnit(self.filters[j], dtype=policy, name=f"decoder_{k}{j}")])
        self.heads = track_layers(self, [
            ReflectConv2D(3, 1, activation="tanh", dtype=policy, name=f"output_{k}")
            for k in range(1, scales)])

    def node_keys(self):
        """`(row, scale)` of every decoder node, in computation order."""
        return [(k, j) for k in range(1, self.scales) for j in range(self.scales - k)]

    def up(self, k, j):
        """The `UpSample` that feeds row `k + 1` at scale `j - 1` from node `(k, j)`."""
        return getattr(self, f"up_{k}{j}")

    def node(self, k, j):
        """The `ResidualUnit` of decoder node `(k, j)`."""
        return getattr(self, f"decoder_{k}{j}")

    def build(self, input_shape):
        shape = tuple(input_shape[0])
        scale = lambda n, j: None if n is None else n // 2 ** j  # noqa: E731
        shape_at = lambda j, c: (shape[0], scale(shape[1], j), scale(shape[2], j), c)  # noqa
        for encoder, in_shape in zip(self.encoders, input_shape):
            encoder.build(tuple(in_shape))
        for j, (merger, c) in enumerate(zip(self.mergers, self.filters)):
            merger.build([shape_at(j, c)] * 3 if self.merging_blocks else shape_at(j, 3 * c))
        for k, j in self.node_keys():
            # Rows 0 (merged features) and above all have c_{j+1} channels at scale j + 1.
            self.up(k - 1, j + 1).build(shape_at(j + 1, self.filters[j + 1]))
            self.node(k, j).build(shape_at(j, self.filters[j] * (k + 2)))
        for head in self.heads:
            head.build(shape_at(0, self.filters[0]))

    def call(self, inputs, training=None, strips_from_pixels=None):
        _check_exposures(inputs)
        strips = {"training": training, "strips_from_pixels": strips_from_pixels}
        # [3 exposures][scales] of [B, H/2^s, W/2^s, c_s]
        features = [enc(x, **strips) for enc, x in zip(self.encoders, inputs)]
        ref = features[1]
        rows = {}
        for j, merger in enumerate(self.mergers):
            rows[(0, j)] = merger([features[i][j] for i in range(3)], **strips)
        outputs = []
        for k in range(1, self.scales):
            for j in range(self.scales - k):
                up = self.up(k - 1, j + 1)(rows[(k - 1, j + 1)], **strips)
                earlier = [rows[(r, j)] for r in range(1, k)]
                # The node reads the channel concatenation of these (never built as one map).
                x = [up, rows[(0, j)], ref[j]] + earlier
                rows[(k, j)] = self.node(k, j)(x, **strips)  # [B, H/2^j, W/2^j, c_j]
            outputs.append(self.heads[k - 1](rows[(k, 0)], training=training))  # [B, H, W, 3]
        return outputs

    def infer_lean(self, inputs, strips_from_pixels=None):
        """For inference: the outputs of `call(inputs, training=False)`, computed in an order
        that keeps few full-resolution maps alive. Never part of training.

        A graph left to itself runs the three encoders side by side and holds every encoder
        and decoder map until its last reader has run: about eight 32-channel full-resolution
        maps at once. Here every step waits for the one before (`_Steps`), and at most about
        five and a half are alive:
        - the encoders run one after the other, the reference last, and each feature map is
          added to its merging block's first convolution at once (`MergingBlock.part`), so
          only the reference's maps outlive their encoder;
        - decoder nodes run coarse scale first; a node adds its input parts one at a time into
          the sums of its first convolution and its shortcut (`ReflectConv2D.part`), so the
          concatenated input never exists and each part can go once its last reader has it.
          The up-sampled part comes last in the last node of a scale, whose other parts are
          then freed one by one before it is made; first elsewhere.
        Sums of parts are added in another order than in `call`: outputs agree to float
        rounding. The fixed order stops TensorFlow from overlapping ops, which costs time, and
        saves memory in proportion to the image (docs/performance.md).
        """
        _check_exposures(inputs)
        if not self.built:
            self.build([tuple(x.shape) for x in inputs])
        n, step, strips = self.scales, _Steps(), strips_from_pixels
        merge_sums, ref = [None] * n, [None] * n
        for i in (0, 2, 1):  # short, long, reference
            x = inputs[i]
            for s, unit in enumerate(self.encoders[i].units):
                if s:
                    x = step(self.encoders[i].downs[s - 1], x, strips_from_pixels=strips)
                x = step(unit, x, strips_from_pixels=strips)  # e_s of exposure i: [B, H/2^s, ...]
                merge_sums[s] = step(_add_share, self.mergers[s], x, i * self.filters[s],
                                     merge_sums[s], strips)
                if i == 1:
                    ref[s] = x
        rows = {}  # (row, scale) -> [B, H/2^j, W/2^j, c_j]; row 0: merged features m_j
        for j in range(n):
            rows[(0, j)] = step(self._finish_merge, j, merge_sums[j], ref[j], strips)
        outputs = {}
        for j in range(n - 2, -1, -1):
            for k in range(1, n - j):
                # The node's input, in its channel order: UP(row k-1 at scale j+1), m_j, e_j^ref,
                # rows 1 .. k-1 at scale j; None stands for the up-sampled map, made when used.
                parts = [None, rows[(0, j)], ref[j]] + [rows[(r, j)] for r in range(1, k)]
                order = list(enumerate(parts))
                if k == n - 1 - j:  # the last node at scale j
                    order = order[1:] + order[:1]
                node, sums = self.node(k, j), [None, None]
                for index, part in order:
                    if part is None:
                        part = step(self.up(k - 1, j + 1), rows[(k - 1, j + 1)],
                                    strips_from_pixels=strips)
                    start = index * self.filters[j]
                    for which, conv in enumerate((node.conv_a, node.shortcut)):
                        sums[which] = step(_add_share, conv, part, start, sums[which], strips)
                rows[(k, j)] = step(node.finish, *sums, strips)
                if j == 0:
                    outputs[k] = step(self.heads[k - 1], rows[(k, 0)])  # [B, H, W, 3]
        return [outputs[k] for k in range(1, n)]

    def _finish_merge(self, scale, summed, ref, strips_from_pixels):
        merger = self.mergers[scale]
        if self.merging_blocks:
            return merger.finish(summed, ref, strips_from_pixels)
        return merger.activate(summed)

    def get_config(self):
        return {"name": self.name, "scales": self.scales, "base_filters": self.base_filters,
                "merging_blocks": self.merging_blocks, "mu": self.mu,
                "dtype": keras.dtype_policies.serialize(self.dtype_policy)}

    @classmethod
    def from_config(cls, config):
        return cls(**with_dtype_policy(config))
