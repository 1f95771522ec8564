"""Alignment on many kinds of bracket at once: is any photo moved further from the truth than
not aligning would leave it? (docs/alignment.md)

Prints, per kind of bracket (parts of the real capture in tests/data/hdrvdp2 at 85, 95 and 97 %
clipping; tripod brackets, procedural and real, at 60, 85 and 97 %; long photos of another part
of the scene, and at 1500x1000 of the scene turned upside down, which must not move; nearly
uniform scenes; procedural brackets at 480x320 and
1500x1000): photos within 2 pixels of the truth, photos made worse than unaligned (each also
printed), median and worst corner error, seconds per bracket.

    python experiments/align_cases.py [--module=path/to/another/alignment.py] [--only=real]
"""

import argparse
import collections
import importlib.util
import sys
import time
from pathlib import Path

import cv2
import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bench_align import corner_error  # noqa: E402
from hdr_gan_tf import alignment, synthetic  # noqa: E402

TRIPOD = dict(max_angle=0, max_shift=0, max_tilt=0)


def cases(scene):
    def part(rng, h=320, w=480):
        top = rng.integers(0, scene.shape[0] - h + 1)
        left = rng.integers(0, scene.shape[1] - w + 1)
        return scene[top:top + h, left:left + w]

    for clipped, seeds in ((0.85, range(900, 916)), (0.95, range(900, 912)),
                           (0.97, range(200, 204))):
        for seed in seeds:
            rng = np.random.default_rng(seed)
            yield f"real {clipped:.0%}", synthetic.hand_held_bracket(
                rng, 320, 480, clipped=clipped, radiance=part(rng))
    for seed in range(3):
        for clipped in (0.6, 0.85, 0.97):
            rng = np.random.default_rng(300 + seed)
            yield f"tripod procedural {clipped:.0%}", synthetic.hand_held_bracket(
                rng, 320, 480, clipped=clipped, **TRIPOD)
            rng = np.random.default_rng(400 + seed)
            yield f"tripod real {clipped:.0%}", synthetic.hand_held_bracket(
                rng, 320, 480, clipped=clipped, radiance=part(rng), **TRIPOD)
    for seed in range(1000, 1004):
        rng = np.random.default_rng(seed)
        photos, ev, _ = synthetic.hand_held_bracket(rng, 320, 480, clipped=0.85,
                                                    radiance=part(rng))
        other = synthetic.hand_held_bracket(rng, 320, 480, clipped=0.85, radiance=part(rng))[0]
        photos[0], photos[2] = other[0], other[2]
        yield "another part", (photos, ev, [None, np.eye(3), None])
    for seed in (1000, 1002):
        # At full size: a long photo of the scene turned upside down.
        rng = np.random.default_rng(seed)
        photos, ev, truth = synthetic.hand_held_bracket(rng, 1000, 1500, clipped=0.85,
                                                        radiance=scene)
        photos[2] = synthetic.hand_held_bracket(rng, 1000, 1500, clipped=0.85,
                                                radiance=scene[::-1, ::-1].copy())[0][2]
        yield "another scene, 1500x1000", (photos, ev, [truth[0], np.eye(3), None])
    for seed in (800, 801):
        rng = np.random.default_rng(seed)
        flat = np.full((320, 480, 3), 1.0, np.float32) * (
            1 + 0.01 * rng.standard_normal((320, 480, 1))).astype(np.float32)
        flat = cv2.GaussianBlur(flat, (0, 0), 5)
        yield "nearly uniform", synthetic.hand_held_bracket(rng, 320, 480, radiance=flat)
        yield "nearly uniform, tripod", synthetic.hand_held_bracket(rng, 320, 480,
                                                                   radiance=flat, **TRIPOD)
    for seed in range(500, 508):
        yield "procedural 480x320", synthetic.hand_held_bracket(np.random.default_rng(seed),
                                                                320, 480)
    for seed in range(500, 503):
        yield "procedural 1500x1000", synthetic.hand_held_bracket(np.random.default_rng(seed),
                                                                  1000, 1500)


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--module", help="another alignment.py to run instead (e.g. an older "
                                         "version, for before and after)")
    parser.add_argument("--only", default="", help="only the kinds whose name holds this")
    args = parser.parse_args()
    module = alignment
    if args.module:
        spec = importlib.util.spec_from_file_location("other_alignment", args.module)
        module = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(module)
    with np.load(ROOT / "tests" / "data" / "hdrvdp2" / "images.npz") as stored:
        scene = stored["full_1500x1000_ref"].astype(np.float32)
    rows = collections.defaultdict(lambda: {"photos": 0, "ok": 0, "worse": 0, "errors": [],
                                            "seconds": 0.0, "brackets": 0})
    for kind, (photos, ev, truth) in cases(scene):
        if args.only not in kind:
            continue
        height, width = photos.shape[1:3]
        start = time.perf_counter()
        _, found = module.align_bracket(photos, ev, "auto")
        row = rows[kind]
        row["seconds"] += time.perf_counter() - start
        row["brackets"] += 1
        for i in (0, 2):
            # A photo of another part must stay where it is: its truth is no motion.
            target = np.eye(3) if truth[i] is None else truth[i]
            error = corner_error(found[i].homography, target, height, width)
            own = 0.0 if truth[i] is None else corner_error(np.eye(3), target, height, width)
            row["photos"] += 1
            row["ok"] += error <= 2
            row["errors"].append(error)
            if error > max(own, 0.5):
                row["worse"] += 1
                print(f"  worse than unaligned: {kind}, {('short', '', 'long')[i]} photo, "
                      f"{error:.2f} px (its motion {own:.2f}), {found[i].method}", flush=True)
    print(f"{'kind':24s} {'photos':>6} {'<=2 px':>7} {'worse':>6} {'median':>7} {'worst':>7} "
          f"{'s/bracket':>9}")
    for kind, row in rows.items():
        print(f"{kind:24s} {row['photos']:6d} {row['ok']:7d} {row['worse']:6d} "
              f"{np.median(row['errors']):7.2f} {max(row['errors']):7.2f} "
              f"{row['seconds'] / row['brackets']:9.2f}")


if __name__ == "__main__":
    main()
