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
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))


def stops_p95(decoded, x):
    grey = x.mean(axis=-1)
    kept = (grey > 0.18 * 2 ** -5) & (grey < 0.18 * 2 ** 5)
    errors = np.abs(np.log2(np.maximum(decoded, 1e-6) / np.maximum(x, 1e-6)))[kept]
    return float(np.percentile(errors, 95))


def quality_rows(args):
    import imagecodecs

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
                start = time.perf_counter()
                if name == "jpg":
                    rgba = np.concatenate([x, np.ones(x.shape[:2] + (1,))], -1).astype(np.float16)
                    data = imagecodecs.ultrahdr_encode(rgba, quality)
                    decoded = imagecodecs.ultrahdr_decode(data, boost=2.0 ** 6)[..., :3]
                else:
                    peak = 2 ** hdr_photos.AVIF_BITS - 1
                    coded = np.round(hdr_photos.pq_encode(
                        x @ hdr_photos.BT709_TO_BT2020.T * hdr_photos.REFERENCE_WHITE_NITS)
                        * peak).astype(np.uint16)
                    data = imagecodecs.avif_encode(
                        coded, quality, speed=hdr_photos.AVIF_SPEED,
                        bitspersample=hdr_photos.AVIF_BITS, primaries=9, transfer=16, matrix=9)
                    nits = hdr_photos.pq_decode(imagecodecs.avif_decode(data) / peak)
                    decoded = (nits / hdr_photos.REFERENCE_WHITE_NITS
                               @ np.linalg.inv(hdr_photos.BT709_TO_BT2020).T)
                seconds.append(time.perf_counter() - start)
                errors.append(stops_p95(np.asarray(decoded, np.float32), x))
                sizes.append(len(data))
            rows.append({"format": name, "quality": quality, "p95_stops": errors,
                         "kb": np.mean(sizes) / 1024, "seconds": np.mean(seconds)})
            print(f"{name:>10} {quality:8d} {' '.join(f'{e:.3f}' for e in errors):>24} "
                  f"{np.mean(sizes) / 1024:7.0f} {np.mean(seconds):8.2f}", flush=True)
    print(json.dumps(rows))


def infer_run(folder, photos, formats, method, extra, tile="auto"):
    """`(seconds, peak MB, sidecar)` of one hdr-gan-infer in a fresh process."""
    out = Path(folder) / f"out_{method}_{formats or 'hdr'}.hdr"
    command = [sys.executable, "-m", "hdr_gan_tf.cli.infer", f"--method={method}",
               "--inputs=" + ",".join(str(photos / f"{n}.tif") for n in ("short", "mid", "long")),
               "--exposure_bias=-2,0,2", f"--output={out}", "--align=none", f"--tile={tile}",
               "--overwrite", *extra] + ([f"--formats={formats}"] if formats else [])
    start = time.perf_counter()
    process = subprocess.Popen(command, cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                               env=dict(os.environ, TF_CPP_MIN_LOG_LEVEL="2"))
    _, status, usage = os.wait4(process.pid, 0)
    seconds = time.perf_counter() - start
    if status:
        raise RuntimeError(process.stderr.read().decode())
    return seconds, usage.ru_maxrss / 1024, json.loads(out.with_suffix(".json").read_text())


def camera_rows(args):
    sys.path.insert(0, str(REPO / "experiments"))
    from bench_tiles import converted_log_dir

    with tempfile.TemporaryDirectory(dir=args.workdir) as folder:
        photos = Path(folder) / "photos"
        photos.mkdir()
        subprocess.run([sys.executable, str(REPO / "experiments/bench_infer.py"),
                        "--make_photos", f"--photos={photos}", f"--height={args.height}",
                        f"--width={args.width}"], check=True, cwd=REPO)
        extra = ([f"--checkpoint={converted_log_dir(folder)}"] if args.method == "network"
                 else [])
        print(f"hdr-gan-infer --method={args.method} --tile={args.tile} on "
              f"{args.width}x{args.height} 16-bit TIFFs, --align=none")
        print(f"{'formats':>16} {'seconds':>8} {'merge s':>8} {'peak MB':>8}  tiles")
        for formats in args.formats:
            seconds, peak, record = infer_run(folder, photos, formats, args.method, extra,
                                              args.tile)
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
