"""Alignment: what it costs and what it buys (docs/alignment.md).

Prints, on this machine's CPU:
- the time `align_bracket` takes on a 1500x1000 hand-held bracket next to the time of the
  classical merge and, with --checkpoint, of the network's merge of it;
- the classical (Debevec) merge's PSNR-mu against the scene's radiance, with and without
  alignment, over hand-held brackets of procedural scenes;
- with --checkpoint, how much `--align=auto` changes the network's PSNR-mu on tripod brackets
  (procedural scenes exposed three times, nothing moving);
- with --memory, the peak resident memory of hdr-gan-infer's streamed path (16-bit TIFFs in,
  .hdr and preview out, tiles of 256, the classical merge so that the network's working set
  does not hide it) on a 24-megapixel hand-held bracket, with --align=none and auto, each in a
  fresh process.

- with --hard, the corner error of each photo's homography on hand-held brackets of +-3 EV whose
  long photo is mostly clipped (`synthetic.hand_held_bracket`), and how many were left unaligned;
  with --real as well, on parts of a real HDR capture (tests/data/hdrvdp2's 1500x1000 ground
  truth) instead of procedural scenes, the long photo clipped over --clipped of its pixels.

    python experiments/bench_align.py [--checkpoint=checkpoints/paper] [--brackets=6] [--memory]
    python experiments/bench_align.py --hard [--brackets=8] [--real [--clipped=0.85]]
"""

import argparse
import json
import math
import platform
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import cv2
import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from hdr_gan_tf import alignment, synthetic  # noqa: E402
from hdr_gan_tf.classical import debevec_merge  # noqa: E402
from hdr_gan_tf.metrics import psnr  # noqa: E402
from hdr_gan_tf.imaging import mu_law  # noqa: E402

EV = np.array([-2, 0, 2], np.float32)


def motion(rng, height, width):
    angle, (dx, dy), p = rng.uniform(-2, 2), rng.uniform(-0.03, 0.03, 2) * width, rng.uniform(
        -3e-5, 3e-5) * 384 / width
    c, s = math.cos(math.radians(angle)), math.sin(math.radians(angle))
    cx, cy = (width - 1) / 2, (height - 1) / 2
    return (np.array([[1, 0, cx + dx], [0, 1, cy + dy], [0, 0, 1]])
            @ np.array([[c, -s, 0], [s, c, 0], [p, p / 2, 1]])
            @ np.array([[1, 0, -cx], [0, 1, -cy], [0, 0, 1]]))


def hand_held(seed, height, width, moved=True):
    """`(photos, radiance of the reference)`: a procedural scene shot hand-held."""
    rng = np.random.default_rng(seed)
    canvas = synthetic._background(rng, height, width)
    look = (rng.uniform(0.4, 1.0, 3).astype(np.float32), 0.02, 7)
    photos, reference = [], None
    for i in range(3):
        to_photo = motion(rng, height, width) if moved and i != 1 else np.eye(3)
        scene = cv2.warpPerspective(canvas, to_photo, (width, height), flags=cv2.INTER_LINEAR,
                                    borderMode=cv2.BORDER_REFLECT)
        scene = synthetic._paste_object(scene, look, (0.6 * height, (0.3 + 0.15 * i) * width),
                                        (0.15 * height, 0.1 * width))
        reference = scene if i == 1 else reference
        photos.append(synthetic._expose(scene, 2.0 ** (EV[i] - EV[0]), rng, 65535))
    return np.stack(photos).astype(np.float32), reference


def cpu_name():
    """The CPU's model name from /proc/cpuinfo (what lscpu shows), else the machine type."""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.machine()


def psnr_mu(hdr, truth):
    return float(psnr(mu_law(np.clip(hdr, 0, 1)), mu_law(np.clip(truth, 0, 1))))


def write_bracket(folder, height, width):
    """A hand-held bracket of `height` x `width` written as 16-bit TIFFs (in its own process)."""
    from hdr_gan_tf.image_io import write_ldr

    photos, _ = hand_held(7, height, width)
    for name, photo in zip(("short", "mid", "long"), photos):
        write_ldr(Path(folder) / f"{name}.tif", photo, 16)


def streamed_peak(folder, align):
    """hdr-gan-infer's streamed path on the bracket in `folder`; prints its time and peak."""
    from _bench_common import peak_rss_mb
    from hdr_gan_tf.classical import DebevecMerger
    from hdr_gan_tf.merge_files import merge_and_write
    from hdr_gan_tf.merge import InferenceOptions
    from hdr_gan_tf.photos import load_bracket

    merge = DebevecMerger(InferenceOptions(tile=256, overlap=64))
    photos = [str(Path(folder) / f"{n}.tif") for n in ("short", "mid", "long")]
    baseline = peak_rss_mb()
    start = time.perf_counter()
    bracket = load_bracket(photos, ["-2", "0", "2"], spool=True)
    output = Path(folder) / f"merged_{align}.hdr"
    merge_and_write(merge, bracket, output, output.with_suffix(".png"), align=align,
                    log=lambda line: None)
    print(json.dumps({"seconds": time.perf_counter() - start, "peak_mb": peak_rss_mb(),
                      "baseline_mb": baseline}))


def corner_error(found, truth, height, width):
    """The largest distance, in pixels, between where two homographies take an image corner."""
    corners = np.array([[0, 0, 1], [width - 1, 0, 1], [width - 1, height - 1, 1],
                        [0, height - 1, 1]], np.float64)
    a, b = corners @ found.T, corners @ truth.T
    return float(np.abs(a[:, :2] / a[:, 2:] - b[:, :2] / b[:, 2:]).max())


def hard_rows(brackets, height=320, width=480, real=False, clipped=0.6):
    """Corner errors on hand-held brackets of +-3 EV whose long photo is mostly clipped
    (`synthetic.hand_held_bracket`; with `real`, of parts of a real HDR capture), and the share
    of photos left unaligned."""
    errors, fallbacks, seconds = [], 0, []
    scene = None
    if real:
        data = Path(__file__).resolve().parents[1] / "tests" / "data" / "hdrvdp2" / "images.npz"
        with np.load(data) as stored:
            scene = stored["full_1500x1000_ref"].astype(np.float32)
    print(f"{'bracket':>8} {'photo':>6} {'error px':>9} {'method':>12}  fallback")
    for seed in range(brackets):
        rng = np.random.default_rng((900 if real else 500) + seed)
        part = None
        if real:
            top = rng.integers(0, scene.shape[0] - height + 1)
            left = rng.integers(0, scene.shape[1] - width + 1)
            part = scene[top:top + height, left:left + width]
        photos, ev, truth = synthetic.hand_held_bracket(rng, height, width, clipped=clipped,
                                                        radiance=part)
        start = time.perf_counter()
        _, found = alignment.align_bracket(photos, ev, "auto")
        seconds.append(time.perf_counter() - start)
        for i in (0, 2):
            error = corner_error(found[i].homography, truth[i], height, width)
            errors.append(error)
            fallbacks += found[i].method == "none"
            print(f"{seed:8d} {('short', '', 'long')[i]:>6} {error:9.2f} {found[i].method:>12}  "
                  f"{(found[i].fallback or '')[:70]}", flush=True)
    errors = np.asarray(errors)
    print(f"{width}x{height}, +-3 EV{', real scene' if real else ''}, long photo {clipped:.0%} "
          f"clipped: median {np.median(errors):.2f} px, within 1 px "
          f"{(errors <= 1).sum()}/{len(errors)}, within 2 px {(errors <= 2).sum()}/{len(errors)},"
          f" worst {errors.max():.2f} px; left unaligned {fallbacks}/{len(errors)}; "
          f"{np.mean(seconds):.2f} s per bracket")
    print(json.dumps({"errors": errors.round(3).tolist(), "unaligned": fallbacks}))


def memory_rows():
    with tempfile.TemporaryDirectory() as folder:
        me = [sys.executable, __file__, f"--folder={folder}"]
        subprocess.run(me + ["--write_bracket"], check=True)
        for align in ("none", "auto"):
            out = subprocess.run(me + [f"--streamed={align}"], capture_output=True, text=True,
                                 check=True).stdout
            r = json.loads(out.strip().splitlines()[-1])
            print(f"24 MP hand-held, streamed (tiles of 256, Debevec), --align={align}: "
                  f"{r['seconds']:.1f} s, peak {r['peak_mb']:.0f} MB "
                  f"(before: {r['baseline_mb']:.0f} MB)", flush=True)


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--checkpoint", help="a log dir: also time and score the network")
    parser.add_argument("--brackets", type=int, default=6)
    parser.add_argument("--memory", action="store_true", help="the 24 MP streamed rows only")
    parser.add_argument("--hard", action="store_true",
                        help="only the corner errors on +-3 EV brackets with a clipped long photo")
    parser.add_argument("--real", action="store_true",
                        help="with --hard: parts of a real HDR capture instead of procedural scenes")
    parser.add_argument("--clipped", type=float, default=None,
                        help="with --hard: the share of the long photo's pixels clipped "
                             "(default 0.6, with --real 0.85)")
    parser.add_argument("--size", default="480x320", help="with --hard: WxH of the brackets")
    parser.add_argument("--folder", help=argparse.SUPPRESS)
    parser.add_argument("--write_bracket", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--streamed", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.write_bracket:
        return write_bracket(args.folder, 4000, 6000)
    if args.streamed:
        sys.path.insert(0, str(Path(__file__).resolve().parent))
        return streamed_peak(args.folder, args.streamed)
    print(f"CPU: {cpu_name()}")
    if args.memory:
        return memory_rows()
    if args.hard:
        width, height = (int(v) for v in args.size.split("x"))
        clipped = args.clipped if args.clipped is not None else (0.85 if args.real else 0.6)
        return hard_rows(args.brackets, height, width, args.real, clipped)
    merge = None
    if args.checkpoint:
        from hdr_gan_tf.merge import InferenceOptions
        from hdr_gan_tf.methods import load_merger
        merge = load_merger(InferenceOptions(), checkpoint=args.checkpoint, log=print)

    photos, _ = hand_held(0, 1000, 1500)
    start = time.perf_counter()
    aligned, found = alignment.align_bracket(photos, EV, "auto")
    ldrs = aligned.rows(0, 1000)
    align_s = time.perf_counter() - start
    start = time.perf_counter()
    debevec_merge(ldrs, EV)
    debevec_s = time.perf_counter() - start
    print(f"1500x1000: align {align_s:.2f} s ({[a.method for a in found]}), "
          f"Debevec merge {debevec_s:.2f} s")
    if merge:
        start = time.perf_counter()
        merge(ldrs, EV, wanted=["main"])
        print(f"1500x1000: network merge {time.perf_counter() - start:.2f} s")

    gains = []
    for seed in range(args.brackets):
        photos, truth = hand_held(100 + seed, 384, 512)
        scores = {}
        for mode in ("none", "auto"):
            aligned, _ = alignment.align_bracket(photos, EV, mode)
            ldrs = aligned.rows(0, 384) if hasattr(aligned, "rows") else aligned
            scores[mode] = psnr_mu(debevec_merge(ldrs, EV), truth)
        gains.append(scores["auto"] - scores["none"])
        print(f"hand-held {seed}: Debevec PSNR-mu {scores['none']:.2f} dB unaligned, "
              f"{scores['auto']:.2f} dB aligned")
    print(f"Debevec PSNR-mu gain from alignment: mean {np.mean(gains):.2f} dB, "
          f"min {np.min(gains):.2f}, max {np.max(gains):.2f}")

    if merge:
        changes = []
        for seed in range(args.brackets):
            photos, truth = hand_held(200 + seed, 384, 512, moved=False)
            scores = {}
            for mode in ("none", "auto"):
                aligned, _ = alignment.align_bracket(photos, EV, mode)
                ldrs = aligned.rows(0, 384) if hasattr(aligned, "rows") else aligned
                scores[mode] = psnr_mu(merge(ldrs, EV, wanted=["main"])["main"], truth)
            changes.append(scores["auto"] - scores["none"])
        print(f"tripod brackets: network PSNR-mu change with --align=auto: "
              f"{', '.join(f'{c:+.4f}' for c in changes)} dB")


if __name__ == "__main__":
    main()
