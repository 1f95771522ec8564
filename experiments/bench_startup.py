"""What the programs' start and exit cost: `hdr-gan-train` on a small procedural set (two scales,
16 base channels, 64x64 patches, three iterations: mostly start-up, tracing and exit), run as
shipped and with the start-up of earlier versions (TensorFlow imported with Python's cycle
collector running, nothing frozen at exit), alternating, each in a fresh process.

Prints the CPU-seconds (user + system) and wall seconds of each run and the medians.

    python experiments/bench_startup.py [--rounds=3]
"""

import argparse
import os
import platform
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]

# The programs' console path with `import_tensorflow` reduced to a plain import and the freeze at
# exit left out: how the programs started before.
EARLIER = """
import atexit, sys, types
import hdr_gan_tf.cli.common as common
def import_tensorflow():
    import tensorflow as tf
    tf.config.list_physical_devices()
common.import_tensorflow = import_tensorflow
common.atexit = types.SimpleNamespace(register=lambda fn: None)
from hdr_gan_tf.cli import train
sys.argv = ["hdr-gan-train", *sys.argv[1:]]
train.run()
"""
SHIPPED = """
import sys
from hdr_gan_tf.cli import train
sys.argv = ["hdr-gan-train", *sys.argv[1:]]
train.run()
"""


def cpu_name():
    for line in Path("/proc/cpuinfo").read_text().splitlines():
        if line.startswith("model name"):
            return line.split(":", 1)[1].strip()
    return platform.processor() or "unknown CPU"


def timed(code, args):
    """(CPU-seconds, wall seconds) of one fresh process."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    start = time.perf_counter()
    subprocess.run([sys.executable, "-c", code, *args], check=True, cwd=REPO,
                   stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                   env=dict(os.environ, PYTHONPATH=str(REPO)))
    wall = time.perf_counter() - start
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    return (after.ru_utime - before.ru_utime + after.ru_stime - before.ru_stime), wall


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=3)
    rounds = parser.parse_args().rounds
    sys.path.insert(0, str(REPO))
    from hdr_gan_tf.synthetic import synthesize_dataset

    results = {"earlier": [], "shipped": []}
    with tempfile.TemporaryDirectory() as work:
        data = synthesize_dataset(Path(work) / "data", num_train=4, num_test=1, height=96,
                                  width=128, seed=1)
        for round_ in range(rounds):
            for name, code in (("earlier", EARLIER), ("shipped", SHIPPED)):
                args = [f"--logdir={work}/run_{name}_{round_}", f"--data_dir={data}",
                        "--patch_size=64", "--base_filters=16", "--scales=2", "--validation=0",
                        "--iterations=3"]
                cpu, wall = timed(code, args)
                results[name].append((cpu, wall))
                print(f"round {round_ + 1}/{rounds} {name}: {cpu:.2f} CPU-s, {wall:.2f} s",
                      flush=True)
    print(f"\n{cpu_name()}, {os.cpu_count()} cores")
    print("| hdr-gan-train, 3 iterations of a small model | CPU-s (median) | seconds (median) |")
    print("| --- | ---: | ---: |")
    for name, runs in results.items():
        print(f"| {name} start-up | {statistics.median(c for c, _ in runs):.2f} | "
              f"{statistics.median(w for _, w in runs):.2f} |")


if __name__ == "__main__":
    main()
