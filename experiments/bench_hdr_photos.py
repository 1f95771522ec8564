"""HDR photos (Ultra HDR JPEG, HDR AVIF): how far the decoded radiance is from the merge at each
quality, and what writing them costs a camera-sized streamed merge.

    python experiments/bench_hdr_photos.py --quality     # stops of error by quality
    python experiments/bench_hdr_photos.py --camera      # 24 MP: time and peak, with and without

`--quality` encodes procedural scenes' ground truths (as a merge would give them) and prints the
95th percentile of |log2(decoded / merge)| over the pixels within ±5 stops of mid-grey, the
file size and the encoding time. `--camera` runs hdr-gan-infer on a 6000x4000 bracket in a fresh
process per row and prints its time and peak resident memory.
"""

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(REPO / "experiments"))


def stops_p95(decoded, x):
    grey = x.mean(axis=-1)
    kept = (grey > 0.18 * 2 ** -5) & (grey < 0.18 * 2 ** 5)
    errors = np.abs(np.log2(np.maximum(decoded, 1e-6) / np.maximum(x, 1e-6)))[kept]
    return float(np.percentile(errors, 95))


def quality_rows(args):
    from hdr_gan_tf import hdr_photos
    from hdr_gan_tf.synthetic import synthesize_scene

    scenes = [synthesize_scene(np.random.default_rng(seed), 480, 720) for seed in range(3)]
    print(f"{'format':>10} {'quality':>8} {'p95 stops (3 scenes)':>24} {'KB':>7} {'seconds':>8}")
    rows = []
    for name, qualities in (("jpg", (90, 95, 96, 97, 98, 100)), ("avif", (80, 85, 90, 95))):
        for quality in qualities:
            errors, sizes, seconds = [], [], []
            for scene in scenes:
                white = hdr_photos.white_of(scene["exposure_bias"])
                x = np.minimum(scene["hdr"] / white, 2 ** hdr_photos.DEFAULT_HEADROOM)
                headroom = hdr_photos.headroom_of(x, hdr_photos.DEFAULT_HEADROOM)
                start = time.perf_counter()
                # The writers' own encoders and the tests' decoders, at each quality.
                if name == "jpg":
                    data, _ = hdr_photos.encode_ultra_hdr(x, headroom, quality)
                    decoded = hdr_photos.decode_ultra_hdr(data, headroom)[0]
                else:
                    data, _ = hdr_photos.encode_avif(x, headroom, quality)
                    decoded = hdr_photos.decode_avif(data)
                seconds.append(time.perf_counter() - start)
                errors.append(stops_p95(np.asarray(decoded, np.float32), x))
                sizes.append(len(data))
            rows.append({"format": name, "quality": quality, "p95_stops": errors,
                         "kb": np.mean(sizes) / 1024, "seconds": np.mean(seconds)})
            print(f"{name:>10} {quality:8d} {' '.join(f'{e:.3f}' for e in errors):>24} "
                  f"{np.mean(sizes) / 1024:7.0f} {np.mean(seconds):8.2f}", flush=True)
    print(json.dumps(rows))


def camera_rows(args):
    from bench_tiles import converted_log_dir, infer_peak

    with tempfile.TemporaryDirectory(dir=args.workdir) as folder:
        logdir = converted_log_dir(folder) if args.method == "network" else None
        print(f"hdr-gan-infer --method={args.method} --tile={args.tile} on "
              f"{args.width}x{args.height} 16-bit TIFFs, --align=none")
        print(f"{'formats':>16} {'seconds':>8} {'merge s':>8} {'peak MB':>8}  tiles")
        for formats in args.formats:
            name = f"out_{args.method}_{formats or 'hdr'}.hdr"
            seconds, peak = infer_peak(
                logdir, args.height, args.width, folder, "float32", args.tile,
                [f"--method={args.method}"] + ([f"--formats={formats}"] if formats else []),
                name)
            record = json.loads((Path(folder) / name).with_suffix(".json").read_text())
            print(f"{'hdr' + (',' + formats if formats else ''):>16} {seconds:8.1f} "
                  f"{record['seconds']:8.1f} {peak:8.0f}  {record.get('tile_plan', '')[:60]}",
                  flush=True)


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quality", action="store_true")
    parser.add_argument("--camera", action="store_true")
    parser.add_argument("--method", default="debevec", help="network or debevec")
    parser.add_argument("--height", type=int, default=4000)
    parser.add_argument("--width", type=int, default=6000)
    parser.add_argument("--tile", default="auto", help="as hdr-gan-infer's --tile")
    parser.add_argument("--formats", nargs="+", default=["", "jpg", "avif", "jpg,avif"],
                        help="--formats of each row ('' for none)")
    parser.add_argument("--workdir", default=None)
    args = parser.parse_args()
    if args.quality:
        quality_rows(args)
    if args.camera:
        camera_rows(args)


if __name__ == "__main__":
    main()
