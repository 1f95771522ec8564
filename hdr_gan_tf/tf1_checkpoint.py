"""Reading the authors' released TensorFlow 1 checkpoint into our Keras networks.

The TF1 model kept each spectrally normalised kernel raw (`W`) with its power-iteration vector
`u`, and at every forward pass used `W / σ` after one power iteration from the stored `u`. Our
`hdr_gan_tf.layers.SpectralNorm` does the same with the same two variables, so the conversion
copies every variable as it is: inference then computes what the TF1 test graph computed, and
training from a converted checkpoint continues the way the authors' training did.
"""

import contextlib
from pathlib import Path

import tensorflow as tf

GENERATOR_SCOPE = "UnetppGeneratorS"
DISCRIMINATOR_SCOPE = "PatchDiscriminator"
# Optimizer slots and bookkeeping in a training checkpoint, not part of the model.
_IGNORED_SUFFIXES = ("/Adam", "/Adam_1", "/ExponentialMovingAverage")


def _conv_entries(prefix, conv):
    """TF1 names of one `ReflectConv2D`: kernel, bias and (if normalised) `u`."""
    entries = {f"{prefix}/kernel": (conv, "kernel"), f"{prefix}/bias": (conv, "bias")}
    if conv.spectral_norm:
        entries[f"{prefix}/u"] = (conv, "u")
    return entries


def _unit_entries(prefix, unit):
    entries = {}
    entries.update(_conv_entries(f"{prefix}/cov_0", unit.conv_a))
    entries.update(_conv_entries(f"{prefix}/cov_1", unit.conv_b))
    if unit.shortcut is not None:
        entries.update(_conv_entries(f"{prefix}/cov_btn", unit.shortcut))
    return entries


def generator_layer_map(generator):
    """Maps every TF1 generator variable name to `(ReflectConv2D, 'kernel' | 'bias' | 'u')`.

    The released model is the default 3-scale generator with merging blocks; the same naming rule
    extends to the other variants (the 4-scale merging-block bottlenecks, absent from the
    released model, are named `bottleneck_i`).
    """
    if not generator.built:
        raise ValueError("build the generator before mapping its variables")
    g = GENERATOR_SCOPE
    entries = {}
    for i, encoder in enumerate(generator.encoders):
        for s, unit in enumerate(encoder.units):
            entries.update(_unit_entries(f"{g}/backbone_{i}/SR_{s}", unit))
        for s, down in enumerate(encoder.downs):
            entries.update(_conv_entries(f"{g}/backbone_{i}/down_{s}", down))
    for s, merger in enumerate(generator.mergers):
        if generator.merging_blocks:
            names = ["cov_1", "cov_2", "cov_3", "cov4"]
            for name, conv in zip(names, merger.convs):
                entries.update(_conv_entries(f"{g}/merge/merge_net_{s}/{name}", conv))
            for b, conv in enumerate(merger.bottlenecks or []):
                entries.update(_conv_entries(f"{g}/merge/merge_net_{s}/bottleneck_{b}", conv))
        else:
            entries.update(_conv_entries(f"{g}/merge/merge_conv_{s}", merger))
    for k, j in generator.node_keys():
        # Node (k, j) is fed by the up-sampling of node (k-1, j+1); row 0 lives under merge/.
        up = generator.up(k - 1, j + 1)
        scope = f"{g}/merge/up_{j + 1}" if k == 1 else f"{g}/decoders/up_{k - 1}{j + 1}"
        entries.update(_conv_entries(scope, up.conv))
        entries.update(_unit_entries(f"{g}/decoders/SR_{k}{j}", generator.node(k, j)))
    for k, head in enumerate(generator.heads, start=1):
        entries.update(_conv_entries(f"{g}/output_{k}", head))
    return entries


def discriminator_layer_map(discriminator):
    """Maps every TF1 discriminator variable name to `(ReflectConv2D, kind)`."""
    if not discriminator.built:
        raise ValueError("build the discriminator before mapping its variables")
    entries = {}
    for i, conv in enumerate(discriminator.convs, start=1):
        entries.update(_conv_entries(f"{DISCRIMINATOR_SCOPE}/dis_cov{i}", conv))
    return entries


def keras_variable(conv, kind):
    """The Keras variable behind `(conv, kind)`."""
    if kind == "u":
        return conv.conv.vector_u
    return getattr(conv.conv2d, kind)


def tf1_shape(conv, kind):
    """Shape the TF1 checkpoint gives this variable (`u` is `[1, c_out]` in both)."""
    return tuple(keras_variable(conv, kind).shape)


def open_checkpoint(prefix):
    """`tf.train.load_checkpoint` with an error that names the path."""
    try:
        return tf.train.load_checkpoint(str(prefix))
    except (tf.errors.OpError, ValueError) as err:
        raise ValueError(f"{prefix}: not a readable TensorFlow checkpoint "
                         f"({type(err).__name__}: {str(err).splitlines()[0]})") from None


def _check_names_and_shapes(prefix, shapes, entries, scope):
    present = {n for n in shapes if n.startswith(scope + "/")
               and not n.endswith(_IGNORED_SUFFIXES) and "/Adam" not in n}
    missing = sorted(set(entries) - present)
    extra = sorted(present - set(entries))
    wrong = sorted(f"{n} (checkpoint {list(shapes[n])}, expected "
                   f"{list(tf1_shape(*entries[n]))})"
                   for n in set(entries) & present
                   if tuple(shapes[n]) != tf1_shape(*entries[n]))
    problems = []
    if missing:
        problems.append(f"missing variables: {', '.join(missing)}")
    if extra:
        problems.append(f"unexpected variables: {', '.join(extra)}")
    if wrong:
        problems.append(f"wrong shapes: {', '.join(wrong)}")
    if problems:
        raise ValueError(f"{prefix}: checkpoint does not match this {scope} configuration; "
                         + "; ".join(problems))


def _assign(reader, entries):
    convs = {}
    for name, (conv, kind) in entries.items():
        convs.setdefault(id(conv), [conv, name.rsplit("/", 1)[0]])
    for conv, scope in convs.values():
        if conv.spectral_norm:
            conv.conv.vector_u.assign(reader.get_tensor(f"{scope}/u"))
        conv.conv2d.kernel.assign(reader.get_tensor(f"{scope}/kernel"))
        conv.conv2d.bias.assign(reader.get_tensor(f"{scope}/bias"))


def load_tf1_weights(prefix, generator, discriminator=None):
    """Loads a TF1 HDR-GAN checkpoint into built Keras networks.

    Every variable is checked (names and shapes) before anything is assigned, so a refused
    checkpoint leaves the networks untouched.

    Raises:
      ValueError: the path is no checkpoint, or variables are missing, extra or mis-shaped
        (each named).
    """
    reader = open_checkpoint(prefix)
    shapes = reader.get_variable_to_shape_map()
    plans = [generator_layer_map(generator)]
    _check_names_and_shapes(prefix, shapes, plans[0], GENERATOR_SCOPE)
    if discriminator is not None:
        plans.append(discriminator_layer_map(discriminator))
        _check_names_and_shapes(prefix, shapes, plans[1], DISCRIMINATOR_SCOPE)
    for entries in plans:
        _assign(reader, entries)


def convert_to_logdir(tf1_checkpoint, output_dir, overwrite=False):
    """Writes a TF1 checkpoint as one of our log dirs, atomically: `config.json` (the paper's
    architecture, `converted_from`) and a checkpoint of both networks at step 0, which the
    programs take as `--checkpoint` and `hdr-gan-train` as `--logdir` to fine-tune.

    Returns the checkpoint prefix written.
    """
    from hdr_gan_tf import config as config_lib
    from hdr_gan_tf.outputs import log_dir_lock
    from hdr_gan_tf.outputs import check_outputs, output_dir as new_dir

    output_dir = Path(output_dir)
    inputs = [Path(tf1_checkpoint).parent]
    outputs = {"folders": [(output_dir, "log_dir")], "inputs": inputs, "overwrite": overwrite}
    check_outputs(**outputs)
    config = config_lib.RunConfig(converted_from=str(tf1_checkpoint))
    generator = config_lib.build_generator(config.model)
    discriminator = config_lib.build_discriminator(config.model)
    load_tf1_weights(tf1_checkpoint, generator, discriminator)
    # A trainer may take the folder over while this runs: `new_dir` asks its lock and checks
    # again before it replaces anything.
    with contextlib.ExitStack() as stack:
        with new_dir(output_dir, "log_dir") as tmp:
            stack.enter_context(log_dir_lock(tmp))  # held until the new folder is in place
            config_lib.write_config(tmp, config)
            step = tf.Variable(0, dtype=tf.int64, name="step")
            ckpt = tf.train.Checkpoint(generator=generator, discriminator=discriminator,
                                       step=step)
            tf.train.CheckpointManager(ckpt, str(tmp), max_to_keep=1,
                                       checkpoint_name="ckpt").save(0)
    return tf.train.latest_checkpoint(str(output_dir))
