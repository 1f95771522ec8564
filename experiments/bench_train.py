"""Training cost on this machine: seconds per iteration at 256x256, batch 2 (the paper's setting),
the FLOP rate next to this machine's large-convolution rate, the same with XLA and with
bfloat16, and the data pipeline's patch rate next to what training consumes.

    python experiments/bench_train.py [--steps=5]

One iteration is about 550 GFLOP (generator forward + backward on the G batch, generator forward
on the D batch, discriminator on real and both branches). Each configuration runs in its own
process. Data: the built-in procedural set.
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


def child(args):
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    sys.path.insert(0, str(REPO))
    import tensorflow as tf

    from hdr_gan_tf import data
    from hdr_gan_tf.synth import builtin_dataset
    from hdr_gan_tf.trainer import Trainer

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
    from hdr_gan_tf.config import set_precision
    set_precision("float32" if args.precision == "none" else args.precision)
    config = {"logdir": tempfile.mkdtemp(), "jit_compile": args.jit,
              "mixed_precision": args.precision}
    trainer = Trainer(config, tf.distribute.get_strategy(), log=lambda line: None)
    iterator = iter(trainer.distributed_dataset(scenes))
    batches = [next(iterator) for _ in range(2 * (args.steps + 2))]
    for i in range(2):  # trace and warm up
        trainer.train_step(batches[2 * i], batches[2 * i + 1])["l_g_total"].numpy()
    start = time.perf_counter()
    for i in range(2, args.steps + 2):
        trainer.train_step(batches[2 * i], batches[2 * i + 1])["l_g_total"].numpy()
    print(json.dumps({"seconds": (time.perf_counter() - start) / args.steps}))


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
    args = parser.parse_args()
    if args.child:
        return child(args)
    sys.path.insert(0, str(REPO / "experiments"))
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    from _bench_common import convolution_rate

    conv = {"none": convolution_rate(dtype="float32"),
            "bfloat16": convolution_rate(dtype="bfloat16")}
    print(f"Large 3x3 convolution rate on this machine: float32 {conv['none']:.0f} GFLOP/s, "
          f"bfloat16 {conv['bfloat16']:.0f} GFLOP/s")
    pipeline = run_child("--what=pipeline")["patches_per_s"]
    print(f"{'configuration':24} {'s/iteration':>11} {'GFLOP/s':>8} {'of conv rate':>12} "
          f"{'patches/s used':>14}")
    for name, flags, precision in (("float32", [], "none"), ("float32 + XLA", ["--jit"], "none"),
                                   ("mixed bfloat16", ["--precision=bfloat16"], "bfloat16")):
        seconds = run_child(f"--steps={args.steps}", *flags)["seconds"]
        rate = GFLOP_PER_ITERATION / seconds
        # Each iteration takes two batches of 2 patches (G batch and a fresh D batch).
        print(f"{name:24} {seconds:11.2f} {rate:8.0f} {100 * rate / conv[precision]:11.0f}% "
              f"{4 / seconds:14.2f}", flush=True)
    print(f"Data pipeline at 256x256: {pipeline:.0f} patches/s")


if __name__ == "__main__":
    main()
