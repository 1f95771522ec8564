"""Training cost on this machine: seconds per iteration at 256x256, batch 2 (the paper's setting),
the FLOP rate next to this machine's large-convolution rate, the same with XLA and with
bfloat16, and the data pipeline's patch rate next to what training consumes.

    python experiments/bench_train.py [--steps=5] [--repeats=3] [--bfloat16]
    python experiments/bench_train.py --gpu [--json=train.json]    # GPU rows
    python experiments/bench_train.py --smoke   # the GPU rows' code, tiny, on any device

One iteration is about 550 GFLOP (generator forward + backward on the G batch, generator forward
on the D batch, discriminator on real and both branches). Each configuration runs in its own
process. Data: the built-in procedural set.

The cost of spectral normalisation as the released model trained (`SpectralNorm`: W / σ in
every pass, gradient through σ) is set against Keras' in-place normalisation (W / σ written into
the kernel variable, no gradient through σ; what this package did before): two trainers in one
process, timed in alternating blocks of `--steps` iterations, `--repeats` blocks each.

It also prints the rates of TensorFlow's three convolution passes at training size (about 3/4
of an iteration's work is the forward pass and the input gradient, 1/4 the kernel gradient), and
profiles one iteration op by op: the time in convolution kernels alone bounds the rate a
training step can reach with them.
"""

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
GFLOP_PER_ITERATION = 550


def use_in_place_normalisation(*networks):
    """Turns every `SpectralNorm` of the networks into Keras' in-place variant, for timing."""
    import tensorflow as tf

    from hdr_gan_tf.layers import SpectralNorm

    class InPlaceSpectralNorm(SpectralNorm):
        """`keras.layers.SpectralNormalization`'s training pass: one power iteration, W / σ
        written into the kernel variable, the convolution reads it (no gradient through σ);
        inference reads the kernel as stored."""

        def normalized_kernel(self, training=False):
            if training:
                normalised = super().normalized_kernel(training)  # stores u'
                self.kernel.assign(tf.stop_gradient(normalised))
            return tf.convert_to_tensor(self.kernel)

    count = 0
    for network in networks:
        for layer in network._flatten_layers():
            if isinstance(layer, SpectralNorm):
                layer.__class__ = InPlaceSpectralNorm
                count += 1
    return count


def compare_normalisations(args, scenes):
    """Seconds per iteration of two otherwise identical trainers, Miyato's normalisation and
    the in-place one, in alternating blocks of `args.steps` iterations."""
    import tensorflow as tf

    from hdr_gan_tf.config import RunConfig
    from hdr_gan_tf.training import Trainer

    trainers, batches = {}, None
    for kind in ("miyato", "in_place"):
        trainer = Trainer(RunConfig.from_flat({"logdir": tempfile.mkdtemp()}),
                          tf.distribute.get_strategy(), log=lambda line: None)
        if kind == "in_place":
            assert use_in_place_normalisation(trainer.generator, trainer.discriminator) == 61
        if batches is None:
            iterator = iter(trainer.distributed_dataset(scenes))
            batches = [next(iterator) for _ in range(2 * args.steps)]
        for i in range(2):  # trace and warm up
            trainer.train_step(batches[2 * i], batches[2 * i + 1])["l_g_total"].numpy()
        trainers[kind] = trainer
    times = {kind: [] for kind in trainers}
    for _ in range(args.repeats):
        for kind, trainer in trainers.items():
            start = time.perf_counter()
            for i in range(args.steps):
                trainer.train_step(batches[2 * i], batches[2 * i + 1])["l_g_total"].numpy()
            times[kind].append((time.perf_counter() - start) / args.steps)
    print(json.dumps(times))


def child(args):
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    sys.path.insert(0, str(REPO))
    import tensorflow as tf

    from hdr_gan_tf import data
    from hdr_gan_tf.config import RunConfig
    from hdr_gan_tf.synthetic import builtin_dataset
    from hdr_gan_tf.training import Trainer

    scenes = data.open_split(builtin_dataset(lambda line: None), data.TRAIN_SPLIT)
    if args.what == "pipeline":
        ds = iter(data.training_dataset(scenes, 256, 2, seed=0))
        for _ in range(20):
            next(ds)
        start = time.perf_counter()
        n = 200
        for _ in range(n):
            next(ds)
        print(json.dumps({"patches_per_s": 2 * n / (time.perf_counter() - start)}))
        return
    if args.what == "normalisation":
        return compare_normalisations(args, scenes)
    if args.what == "ops":  # ops one at a time, so that their times add up
        tf.config.threading.set_inter_op_parallelism_threads(1)
    from hdr_gan_tf.config import set_precision
    precision = "float32" if args.precision == "none" else args.precision
    set_precision(precision)
    config = RunConfig.from_flat({"logdir": tempfile.mkdtemp(), "jit_compile": args.jit,
                                  "precision": precision,
                                  "patch_size": args.patch_size,
                                  "base_filters": args.base_filters})
    trainer = Trainer(config, tf.distribute.get_strategy(), log=lambda line: None)
    iterator = iter(trainer.distributed_dataset(scenes))
    batches = [next(iterator) for _ in range(2 * (args.steps + 2))]
    for i in range(2):  # trace and warm up
        trainer.train_step(batches[2 * i], batches[2 * i + 1])["l_g_total"].numpy()
    if args.what == "ops":
        sys.path.insert(0, str(REPO / "experiments"))
        from _bench_common import CONVOLUTION_OPS, op_seconds
        seconds = op_seconds(lambda: trainer.train_step(batches[4], batches[5])[
            "l_g_total"].numpy())
        top = [(op, s) for op, s in seconds.most_common() if op != "Process"]
        print(json.dumps({"total": sum(s for _, s in top), "top": top[:10],
                          "convolutions": sum(seconds[op] for op in CONVOLUTION_OPS)}))
        return
    sys.path.insert(0, str(REPO / "experiments"))
    from _bench_common import accelerator, device_peak_mb, reset_device_peak

    reset_device_peak()
    start = time.perf_counter()
    for i in range(2, args.steps + 2):
        trainer.train_step(batches[2 * i], batches[2 * i + 1])["l_g_total"].numpy()
    print(json.dumps({"seconds": (time.perf_counter() - start) / args.steps,
                      "device": accelerator() or "CPU", "peak_device_mb": device_peak_mb()}))


def device_rows(args):
    """Training on the GPU (or, with --smoke, a tiny run of the same code on any device):
    float32, mixed float16 (loss scaling), mixed bfloat16 and float32 with XLA; seconds and
    iterations per second, and TensorFlow's peak GPU memory."""
    size = (["--patch_size=64", "--base_filters=8", "--steps=2"] if args.smoke
            else [f"--steps={args.steps}"])
    rows = [("float32", []), ("mixed float16", ["--precision=float16"]),
            ("mixed bfloat16", ["--precision=bfloat16"]), ("float32 + XLA", ["--jit"])]
    results = []
    print(f"{'training, batch 2':24} {'device':7} {'s/iteration':>11} {'it/s':>7} "
          f"{'peak MB':>8}")
    for name, flags in rows:
        r = run_child(*size, *flags)
        peak = r["peak_device_mb"]
        results.append({"configuration": name, "device": r["device"],
                        "patch_size": 64 if args.smoke else 256,
                        "seconds_per_iteration": r["seconds"],
                        "iterations_per_second": 1 / r["seconds"], "peak_device_mb": peak})
        print(f"{name:24} {r['device']:7} {r['seconds']:11.3f} {1 / r['seconds']:7.2f} "
              f"{'-' if peak is None else f'{peak:.0f}':>8}", flush=True)
    if args.json:
        sys.path.insert(0, str(REPO / "experiments"))
        from _bench_common import write_json
        write_json(args.json, results)


def run_child(*flags):
    cmd = [sys.executable, __file__, "--child", *flags]
    out = subprocess.run(cmd, capture_output=True, text=True, check=True).stdout
    return json.loads(out.strip().splitlines()[-1])


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--child", action="store_true")
    parser.add_argument("--what", default="train")
    parser.add_argument("--jit", action="store_true")
    parser.add_argument("--precision", default="none")
    parser.add_argument("--steps", type=int, default=5)
    parser.add_argument("--repeats", type=int, default=4,
                        help="alternating blocks of --steps iterations per normalisation")
    parser.add_argument("--bfloat16", action="store_true",
                        help="also time mixed bfloat16 (slow on CPUs without native bfloat16)")
    parser.add_argument("--patch_size", type=int, default=256)
    parser.add_argument("--base_filters", type=int, default=32)
    parser.add_argument("--gpu", action="store_true", help="the GPU rows only")
    parser.add_argument("--smoke", action="store_true",
                        help="the GPU rows' code on tiny inputs, on whatever device there is")
    parser.add_argument("--json", default=None, help="also write the GPU rows here")
    args = parser.parse_args()
    if args.child:
        return child(args)
    if args.gpu or args.smoke:
        return device_rows(args)
    sys.path[:0] = [str(REPO), str(REPO / "experiments")]
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    import hdr_gan_tf  # noqa: F401  (the package's allocator setting, as training has it)
    from _bench_common import convolution_rate, training_convolution_rates

    conv = {"none": convolution_rate(dtype="float32"),
            "bfloat16": convolution_rate(dtype="bfloat16")}
    print(f"Large 3x3 convolution rate on this machine: float32 {conv['none']:.0f} GFLOP/s, "
          f"bfloat16 {conv['bfloat16']:.0f} GFLOP/s")
    passes = training_convolution_rates()
    print("3x3 convolution passes at 2x256x256x64, GFLOP/s: " + ", ".join(
        f"{name} {rate:.0f} ({100 * rate / conv['none']:.0f}%)" for name, rate in passes.items()))
    pipeline = run_child("--what=pipeline")["patches_per_s"]
    print(f"{'configuration':24} {'s/iteration':>11} {'GFLOP/s':>8} {'of conv rate':>12} "
          f"{'patches/s used':>14}")
    configurations = [("float32", [], "none"), ("float32 + XLA", ["--jit"], "none")]
    if args.bfloat16:
        configurations.append(("mixed bfloat16", ["--precision=bfloat16"], "bfloat16"))
    for name, flags, precision in configurations:
        seconds = run_child(f"--steps={args.steps}", *flags)["seconds"]
        rate = GFLOP_PER_ITERATION / seconds
        # Each iteration takes two batches of 2 patches (G batch and a fresh D batch).
        print(f"{name:24} {seconds:11.2f} {rate:8.0f} {100 * rate / conv[precision]:11.0f}% "
              f"{4 / seconds:14.2f}", flush=True)
    print(f"Data pipeline at 256x256: {pipeline:.0f} patches/s")
    runs = run_child("--what=normalisation", f"--steps={args.steps}",
                     f"--repeats={args.repeats}")
    median = {kind: sorted(times)[len(times) // 2] for kind, times in runs.items()}
    print(f"Spectral normalisation, float32, alternating blocks of {args.steps} iterations in "
          f"one process (s/iteration): Miyato (W / σ in every pass, gradient through σ) "
          f"{', '.join(f'{t:.2f}' for t in runs['miyato'])}; Keras in-place "
          f"{', '.join(f'{t:.2f}' for t in runs['in_place'])}. Medians {median['miyato']:.2f} "
          f"against {median['in_place']:.2f}: "
          f"{100 * (median['miyato'] / median['in_place'] - 1):+.1f}%", flush=True)
    ops = run_child("--what=ops")
    rate = GFLOP_PER_ITERATION / ops["convolutions"]
    print(f"One float32 iteration with one op at a time, by TensorFlow's profiler: "
          f"{ops['total']:.2f} s of ops, {ops['convolutions']:.2f} s of them in convolution "
          f"kernels (forward and both gradients). Those kernels alone allow at most {rate:.0f} "
          f"GFLOP/s = {100 * rate / conv['none']:.0f}% of the conv rate. Largest op types:")
    print("  " + ", ".join(f"{op} {s:.2f} s" for op, s in ops["top"]))


if __name__ == "__main__":
    main()
