"""What tiles cost and what they need: the overlap the network needs, and the memory a merge
takes per pixel, whole and in tiles (the numbers behind `--tile=auto`, `hdr_gan_tf.memory`).

    python experiments/bench_tiles.py --overlap            # tiled against whole, by overlap
    python experiments/bench_tiles.py --memory [--precision=bfloat16] [--base_filters=8]
    python experiments/bench_tiles.py --camera [--precision=bfloat16]   # 24 MP, --tile=auto

`--overlap` merges one bracket whole and in tiles with overlaps from 0 to 128 pixels (the
released weights of tests/data/tf1_golden, float32) and prints how far each tiled result is from
the whole one. `--memory` runs `hdr-gan-infer` in a fresh process per size on 16-bit TIFFs and
prints its peak resident set, whole and tiled, and the per-pixel fit `memory.py` uses.
`--camera` runs `hdr-gan-infer` with its defaults (`--tile=auto`) on a 1500x1000 and a 6000x4000
(24 MP) bracket and prints each one's time and peak, and the 24 MP time against 16 times the
1500x1000 one (the merges' own seconds, from their sidecars).
"""

import argparse
import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "experiments"))


def overlap_rows(args):
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    sys.path.insert(0, str(REPO))
    import numpy as np

    import hdr_gan_tf  # noqa: F401  (first: its TensorFlow allocator setting)
    from bench_infer import synthetic_photos
    from hdr_gan_tf.config import build_generator
    from hdr_gan_tf.imaging import MU, mu_law
    from hdr_gan_tf.memory import tile_work
    from hdr_gan_tf.merge import InferenceOptions, merge_exposures, outputs_to_linear
    from hdr_gan_tf.metrics import psnr
    from hdr_gan_tf.tf1_checkpoint import load_tf1_weights

    generator = build_generator()
    load_tf1_weights(REPO / "tests/data/tf1_golden/model", generator)
    ldrs = np.stack([photo for _, photo in synthetic_photos(args.height, args.width)])
    ev = np.array([-2, 0, 2], np.float32)

    def merged(options):
        out = merge_exposures(generator, ldrs, ev, branches=[-1], options=options)
        return outputs_to_linear(out, generator.mu)[0]

    whole = merged(InferenceOptions())
    print(f"{args.width}x{args.height}, tiles of {args.tile}: tiled against whole")
    print(f"{'overlap':>8} {'PSNR-mu dB':>11} {'max |mu-law diff|':>18} {'work':>6}")
    rows = []
    for overlap in (0, 8, 16, 24, 32, 48, 64, 96, 128):
        tiled = merged(InferenceOptions(tile=args.tile, overlap=overlap))
        diff = np.abs(mu_law(tiled, MU) - mu_law(whole, MU)).max()
        score = psnr(mu_law(tiled, MU), mu_law(whole, MU))
        work = tile_work(args.height, args.width, args.tile, overlap, multiple=4)
        rows.append({"overlap": overlap, "psnr_mu": score, "max_diff": float(diff),
                     "work": work})
        print(f"{overlap:8d} {score:11.1f} {diff:18.2e} {work:6.2f}", flush=True)
    print(json.dumps(rows))


def converted_log_dir(folder, base_filters=32):
    """The released weights as a log dir (hdr-gan-convert-tf1), for hdr-gan-infer; or, for
    another width, a log dir of an untrained network of `base_filters` (cost does not depend
    on the weights)."""
    out = Path(folder) / f"paper_{base_filters}"
    if base_filters == 32:
        subprocess.run([sys.executable, "-m", "hdr_gan_tf.cli.convert_tf1",
                        f"--tf1_checkpoint={REPO / 'tests/data/tf1_golden/model'}",
                        f"--output_dir={out}"], check=True, capture_output=True, cwd=REPO)
        return out
    script = ("import sys, tensorflow as tf\n"
              "from hdr_gan_tf.config import ModelConfig, RunConfig, build_generator, "
              "write_config\n"
              f"config = RunConfig(model=ModelConfig(base_filters={base_filters}))\n"
              f"write_config({str(out)!r}, config)\n"
              "tf.train.Checkpoint(generator=build_generator(config.model)).save("
              f"{str(out / 'ckpt')!r})\n")
    out.mkdir()
    subprocess.run([sys.executable, "-c", script], check=True, capture_output=True, cwd=REPO)
    return out


def infer_peak(logdir, height, width, folder, precision, tile, extra=(), name=None):
    """`(seconds, peak MB)` of hdr-gan-infer on a synthetic bracket of this size, in a fresh
    process (its own peak resident set, from the kernel's record of the child). `logdir` None:
    no `--checkpoint` (a classical `--method` in `extra`); `name`: the output's file name
    (default `out_<W>x<H>_<precision>_<tile>.hdr`), its sidecar beside it."""
    import time

    photos = Path(folder) / f"{width}x{height}"
    if not photos.is_dir():
        photos.mkdir()
        subprocess.run([sys.executable, str(REPO / "experiments/bench_infer.py"),
                        "--make_photos", f"--photos={photos}", f"--height={height}",
                        f"--width={width}"], check=True, cwd=REPO)
    out = Path(folder) / (name or f"out_{width}x{height}_{precision}_{tile}.hdr")
    command = [sys.executable, "-m", "hdr_gan_tf.cli.infer",
               *([f"--checkpoint={logdir}"] if logdir else []),
               "--inputs=" + ",".join(str(photos / f"{n}.tif") for n in ("short", "mid", "long")),
               "--exposure_bias=-2,0,2", f"--output={out}", "--align=none",
               f"--precision={precision}", f"--tile={tile}", "--overwrite", *extra]
    start = time.perf_counter()
    process = subprocess.Popen(command, cwd=REPO, stdout=subprocess.PIPE,
                               stderr=subprocess.PIPE, env=dict(os.environ,
                                                                TF_CPP_MIN_LOG_LEVEL="2"))
    _, status, usage = os.wait4(process.pid, 0)
    seconds = time.perf_counter() - start
    if status:
        raise RuntimeError(process.stderr.read().decode())
    return seconds, usage.ru_maxrss / 1024


def memory_rows(args):
    import numpy as np

    with tempfile.TemporaryDirectory(dir=args.workdir) as folder:
        logdir = converted_log_dir(folder, args.base_filters)
        base = infer_peak(logdir, 64, 96, folder, args.precision, "0")[1]
        print(f"hdr-gan-infer, {args.precision}, {args.base_filters} base channels, 16-bit "
              f"TIFFs, --align=none; a 96x64 merge peaks at {base:.0f} MB (TensorFlow and the "
              f"model)")
        print(f"{'size':>12} {'tile':>6} {'seconds':>8} {'peak MB':>8} {'bytes/pixel':>12}")
        sizes, peaks = [], []
        for width, height in ((800, 600), (1200, 900), (1500, 1000), (2000, 1500)):
            seconds, peak = infer_peak(logdir, height, width, folder, args.precision, "0")
            sizes.append(width * height)
            peaks.append(peak)
            print(f"{width}x{height:<6} {'whole':>6} {seconds:8.1f} {peak:8.0f} "
                  f"{(peak - base) * 2 ** 20 / (width * height):12.0f}", flush=True)
        slope, intercept = np.polyfit(sizes, np.asarray(peaks) * 2 ** 20, 1)
        print(f"fit, whole: {intercept / 2 ** 20:.0f} MB + {slope:.0f} bytes per pixel")
        for tile in (512, 1024):
            seconds, peak = infer_peak(logdir, 1500, 2000, folder, args.precision, str(tile))
            print(f"{'2000x1500':>12} {tile:6d} {seconds:8.1f} {peak:8.0f}", flush=True)
        print(json.dumps({"precision": args.precision, "base_filters": args.base_filters,
                          "base_mb": base,
                          "intercept_mb": intercept / 2 ** 20, "bytes_per_pixel": slope}))


def camera_rows(args):
    with tempfile.TemporaryDirectory(dir=args.workdir) as folder:
        logdir = converted_log_dir(folder)
        print(f"hdr-gan-infer --tile=auto, {args.precision}, 16-bit TIFFs, --align=none")
        rows = {}
        for width, height in ((1500, 1000), (6000, 4000)):
            seconds, peak = infer_peak(logdir, height, width, folder, args.precision, "auto")
            plan = json.loads(Path(folder, f"out_{width}x{height}_{args.precision}_auto.json")
                              .read_text())
            rows[width] = plan["seconds"]
            print(f"{width}x{height}: merge {plan['seconds']:.1f} s (the program {seconds:.1f} "
                  f"s), peak {peak:.0f} MB; {plan['tile_plan']}", flush=True)
        print(f"24 MP merge / (16 x 1500x1000 merge): {rows[6000] / (16 * rows[1500]):.2f}")


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--overlap", action="store_true")
    parser.add_argument("--memory", action="store_true")
    parser.add_argument("--camera", action="store_true")
    parser.add_argument("--precision", default="float32")
    parser.add_argument("--base_filters", type=int, default=32,
                        help="--memory: the network's width (32: the released weights)")
    parser.add_argument("--height", type=int, default=768)
    parser.add_argument("--width", type=int, default=1024)
    parser.add_argument("--tile", type=int, default=384)
    parser.add_argument("--workdir", default=None)
    args = parser.parse_args()
    if args.overlap:
        overlap_rows(args)
    if args.memory:
        memory_rows(args)
    if args.camera:
        camera_rows(args)


if __name__ == "__main__":
    main()
