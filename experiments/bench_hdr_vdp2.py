"""HDR-VDP-2 (hdr_gan_tf/hdr_vdp2.py): its time and how far float noise moves it.

Prints, on this machine's CPU:
- the time of one 1500x1000 pair (the reference's full-size pair, tests/data/hdrvdp2), the first
  call in this process (tables built) and the best of --repeats further calls, and its Q and
  P_map against the reference's values;
- with --noise, how much Q and the mean and maximum of P_map move when both images are
  multiplied by 1 + e N(0, 1), e = 1e-15 (float64's rounding, what the tests' tolerance is
  measured against) and 6e-8 (about float32's resolution), over the small pairs of
  tests/data/hdrvdp2 and --draws draws each.

    python experiments/bench_hdr_vdp2.py [--repeats=3] [--noise] [--draws=2]
"""

import argparse
import csv
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bench_align import cpu_name  # noqa: E402
from hdr_gan_tf import hdr_vdp2  # noqa: E402

DATA = ROOT / "tests" / "data" / "hdrvdp2"


def rows():
    with open(DATA / "golden.tsv", newline="") as f:
        return list(csv.DictReader(f, delimiter="\t"))


def pair(images, row):
    scene = row["pair"].rsplit("_", 1)[0]
    scale = float(row["scale"])
    return (images[row["pair"] + "_test"].astype(np.float64) * scale,
            images[scene + "_ref"].astype(np.float64) * scale)


def timing(images, repeats):
    row = next(r for r in rows() if r["width"] == "1500" and r["encoding"] == "sRGB-display")
    test, reference = pair(images, row)
    start = time.perf_counter()
    result = hdr_vdp2.hdr_vdp2(test, reference, row["encoding"], float(row["ppd"]))
    first = time.perf_counter() - start
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        hdr_vdp2.hdr_vdp2(test, reference, row["encoding"], float(row["ppd"]))
        times.append(time.perf_counter() - start)
    print(f"1500x1000 pair, {row['encoding']}: first call {first:.2f} s, best of {repeats} "
          f"{min(times):.2f} s")
    print(f"  Q {result.q:.6f} (reference {float(row['Q']):.6f}), P_map mean "
          f"{result.p_map.mean():.6g} ({row['P_map_mean']}), max {result.p_map.max():.6g} "
          f"({row['P_map_max']})")


def noise(images, draws, size):
    rng = np.random.default_rng(0)
    worst = {"Q": 0.0, "P_map mean": 0.0, "P_map max": 0.0}
    small = [r for r in rows() if r["width"] != "1500"]
    for row in small:
        test, reference = pair(images, row)
        base = hdr_vdp2.hdr_vdp2(test, reference, row["encoding"], float(row["ppd"]))
        for _ in range(draws):
            moved = hdr_vdp2.hdr_vdp2(
                test * (1 + size * rng.standard_normal(test.shape)),
                reference * (1 + size * rng.standard_normal(reference.shape)),
                row["encoding"], float(row["ppd"]))
            worst["Q"] = max(worst["Q"], abs(moved.q - base.q))
            worst["P_map mean"] = max(worst["P_map mean"],
                                      abs(moved.p_map.mean() - base.p_map.mean()))
            worst["P_map max"] = max(worst["P_map max"], abs(moved.p_map.max() - base.p_map.max()))
    print(f"noise of {size:g} on both inputs, {len(small)} rows x {draws} draws, largest "
          f"change: " + ", ".join(f"{k} {v:.2g}" for k, v in worst.items()))


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--noise", action="store_true")
    parser.add_argument("--draws", type=int, default=2)
    args = parser.parse_args()
    print(f"CPU: {cpu_name()}")
    with np.load(DATA / "images.npz") as stored:
        images = {key: stored[key] for key in stored.files}
    timing(images, args.repeats)
    if args.noise:
        for size in (1e-15, 6e-8):
            noise(images, args.draws, size)


if __name__ == "__main__":
    main()
