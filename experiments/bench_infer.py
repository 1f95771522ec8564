"""Inference cost of one 1500x1000 set on this machine: time, peak memory, FLOP rate.

    python experiments/bench_infer.py [--skip_24mp] [--only_files]
    python experiments/bench_infer.py --gpu [--json=infer.json]   # GPU rows
    python experiments/bench_infer.py --smoke   # the GPU rows' code, tiny, on any device

Each configuration runs in its own process so that its peak memory (resident set) is its own.
Weights are those of tests/data/tf1_golden (the reference layout); cost does not depend on them.
One set is 1,454 GFLOP (484,672 multiply-adds per pixel). Paper: 0.29 s, 8,833 MB on a V100.
"""

import argparse
import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
GFLOP_PER_PIXEL = 2 * 484_672 / 1e9


def child(args):
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    sys.path.insert(0, str(REPO))
    sys.path.insert(0, str(REPO / "experiments"))
    import numpy as np

    import hdr_gan_tf  # noqa: F401  (first: its TensorFlow allocator setting)
    from _bench_common import (accelerator, best_time, convolution_rate, device_peak_mb,
                               peak_rss_mb, reset_device_peak)
    from hdr_gan_tf.config import build_generator, set_precision
    from hdr_gan_tf.merge import InferenceOptions, merge_exposures
    from hdr_gan_tf.tf1_checkpoint import load_tf1_weights

    set_precision(args.precision)
    generator = build_generator()
    load_tf1_weights(REPO / "tests/data/tf1_golden/model", generator)
    # Three 16-bit photos, as hdr-gan-infer reads them (the merge converts them tile by tile).
    ldrs = np.empty((3, args.height, args.width, 3), np.uint16)
    for i, (_, photo) in enumerate(synthetic_photos(args.height, args.width)):
        ldrs[i] = photo
        del photo
    ev = np.array([-2, 0, 2], np.float32)
    baseline = peak_rss_mb()
    result = {}
    options = InferenceOptions(tile=args.tile, overlap=args.overlap, jit_compile=args.jit)

    def run():
        # The main branch, as hdr-gan-infer computes it.
        result["out"] = merge_exposures(generator, ldrs, ev, branches=[-1], options=options)

    run()  # trace (and compile) outside the peak and the timing
    reset_device_peak()
    seconds = best_time(run, repeats=args.repeats, warmup=0)
    peak = peak_rss_mb()
    np.save(args.save, result["out"][-1])
    if accelerator() or args.no_conv_rate:
        print(json.dumps({"seconds": seconds, "peak_mb": peak, "baseline_mb": baseline,
                          "device": accelerator() or "CPU", "peak_device_mb": device_peak_mb()}))
        return
    # The reference rate in this same process and precision, after the merge (the machine's
    # rate drifts by +-15% between processes here).
    conv = convolution_rate(dtype="bfloat16" if args.precision == "bfloat16" else "float32")
    print(json.dumps({"seconds": seconds, "peak_mb": peak, "baseline_mb": baseline,
                      "conv_rate": conv}))


def ceiling_child(args):
    """The network's convolutions at 1500x1000, each timed by itself: the time no schedule of
    TensorFlow's kernels can beat, since everything else (padding, activations) adds to it."""
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    sys.path.insert(0, str(REPO))
    sys.path.insert(0, str(REPO / "experiments"))
    from collections import Counter

    import tensorflow as tf

    import hdr_gan_tf  # noqa: F401
    from _bench_common import convolution_rate, convolution_seconds, recorded_convolutions
    from hdr_gan_tf.config import build_generator
    from hdr_gan_tf.merge import InferenceOptions, compiled_runner

    generator = build_generator()
    spec = [tf.TensorSpec([1, args.height, args.width, 3])] * 3 + [tf.TensorSpec([1, 3])]
    options = InferenceOptions()  # as a whole-image merge runs at this size
    runner = compiled_runner(generator, lean=options.lean(args.height, args.width),
                             strips_from_pixels=options.strips_from_pixels)
    calls = recorded_convolutions(lambda: runner.get_concrete_function(*spec))
    seconds = gflop = 0.0
    rows = []
    for call, count in Counter(map(repr, calls)).items():
        t, g = convolution_seconds(eval(call))  # noqa: S307 (our own repr of shapes and ints)
        seconds, gflop = seconds + count * t, gflop + count * g
        rows.append((count * t, call, count, g / t))
    for total, call, count, rate in sorted(rows, reverse=True)[:8]:
        print(f"  {count:2d} x {call}: {rate:5.0f} GFLOP/s, {total:5.2f} s")
    print(json.dumps({"seconds": seconds, "gflop": gflop, "conv_rate": convolution_rate()}))


def device_rows(args):
    """One 1500x1000 set on the GPU (or, with --smoke, a 64x96 one on any device): float32,
    mixed float16, mixed bfloat16 and float32 with XLA; seconds (best of 5 after a traced
    run) and TensorFlow's peak GPU memory."""
    h, w, repeats = (64, 96, 1) if args.smoke else (1000, 1500, 5)
    rows = [("float32", "float32", False), ("mixed float16", "float16", False),
            ("mixed bfloat16", "bfloat16", False), ("float32 + XLA", "float32", True)]
    results = []
    print(f"{f'one {w}x{h} set, whole image':30} {'device':7} {'seconds':>8} {'peak MB':>8}")
    for name, precision, jit in rows:
        r = measure(h, w, precision, 0, repeats, os.devnull + ".npy", jit, ["--no_conv_rate"])
        peak = r["peak_device_mb"]
        results.append({"configuration": name, "device": r["device"], "height": h, "width": w,
                        "seconds": r["seconds"], "peak_device_mb": peak})
        print(f"{name:30} {r['device']:7} {r['seconds']:8.3f} "
              f"{'-' if peak is None else f'{peak:.0f}':>8}", flush=True)
    if args.json:
        sys.path.insert(0, str(REPO / "experiments"))
        from _bench_common import write_json
        write_json(args.json, results)


def onnx_child(args):
    """The exported serving model at 1500x1000, in one process: TensorFlow (what the SavedModel
    runs) and onnxruntime on the CPU (the ONNX export), the same 16-bit photos."""
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    sys.path.insert(0, str(REPO))
    sys.path.insert(0, str(REPO / "experiments"))
    import numpy as np
    import onnxruntime
    import tensorflow as tf

    import hdr_gan_tf  # noqa: F401  (first: its TensorFlow allocator setting)
    from _bench_common import best_time
    from hdr_gan_tf.config import build_generator
    from hdr_gan_tf.serving import ServingModule, export_onnx
    from hdr_gan_tf.tf1_checkpoint import load_tf1_weights

    generator = build_generator()
    load_tf1_weights(REPO / "tests/data/tf1_golden/model", generator)
    module = ServingModule(generator)
    inputs = {f"ldr_{name}": photo[None].astype(np.float32) / 65535
              for name, photo in synthetic_photos(args.height, args.width)}
    inputs["exposure_bias"] = np.array([[-2, 0, 2]], np.float32)
    with tempfile.TemporaryDirectory() as tmp:
        export_onnx(module, Path(tmp) / "model.onnx")
        session = onnxruntime.InferenceSession(str(Path(tmp) / "model.onnx"),
                                               providers=["CPUExecutionProvider"])
    tensors = {k: tf.constant(v) for k, v in inputs.items()}
    seconds_tf = best_time(lambda: module.serve(**tensors)["hdr"].numpy(), repeats=2)
    seconds_onnx = best_time(lambda: session.run(["hdr"], inputs), repeats=2)
    print(json.dumps({"tf": seconds_tf, "onnx": seconds_onnx}))


def synthetic_photos(height, width):
    """Yields `(name, photo)`: 16-bit photos of a smooth random scene at -2, 0, +2 EV, one at a
    time and each made a band of rows at a time, so that making them does not set the peak."""
    import cv2
    import numpy as np

    rng = np.random.default_rng(0)
    base = (rng.random((height // 4, width // 4, 3)) * 65535).astype(np.uint16)
    scene = cv2.resize(base, (width, height), interpolation=cv2.INTER_CUBIC)
    del base
    for name, gain in zip(("short", "mid", "long"), (0.25, 1.0, 4.0)):
        photo = np.empty_like(scene)
        for r in range(0, height, 256):
            photo[r:r + 256] = np.clip(scene[r:r + 256].astype(np.float32) * gain, 0, 65535)
        yield name, photo


def make_photos(args):
    """Writes `synthetic_photos` as three TIFFs (run in its own process)."""
    import cv2

    for name, photo in synthetic_photos(args.height, args.width):
        cv2.imwrite(str(Path(args.photos) / f"{name}.tif"), photo)


def pipeline_child(args):
    """What `hdr-gan-infer --tile` does: 16-bit TIFFs in, `.hdr` file and PNG preview out."""
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    sys.path.insert(0, str(REPO))
    sys.path.insert(0, str(REPO / "experiments"))
    import time

    import hdr_gan_tf  # noqa: F401  (first: its TensorFlow allocator setting)
    from _bench_common import peak_rss_mb
    from hdr_gan_tf.config import build_generator
    from hdr_gan_tf.generator import branch_names
    from hdr_gan_tf.merge_files import merge_and_write, streams
    from hdr_gan_tf.merge import GeneratorMerger, InferenceOptions
    from hdr_gan_tf.photos import load_bracket
    from hdr_gan_tf.tf1_checkpoint import load_tf1_weights

    generator = build_generator()
    load_tf1_weights(REPO / "tests/data/tf1_golden/model", generator)
    merge = GeneratorMerger(generator, branch_names(generator.scales),
                             options=InferenceOptions(tile=args.tile, overlap=args.overlap))
    photos = [str(Path(args.photos) / f"{n}.tif") for n in ("short", "mid", "long")]
    output = Path(args.photos) / f"merged{args.suffix}"
    baseline = peak_rss_mb()
    start = time.perf_counter()
    bracket = load_bracket(photos, ["-2", "0", "2"], spool=streams(args.tile))
    merge_and_write(merge, bracket, output, output.with_suffix(".png"))
    seconds = time.perf_counter() - start
    print(json.dumps({"seconds": seconds, "peak_mb": peak_rss_mb(), "baseline_mb": baseline,
                      "conv_rate": float("nan")}))


def measure_pipeline(height, width, tile, suffix=".hdr"):
    with tempfile.TemporaryDirectory() as photos:
        base = [sys.executable, __file__, f"--height={height}", f"--width={width}",
                f"--photos={photos}", f"--tile={tile}", f"--suffix={suffix}"]
        subprocess.run(base + ["--make_photos"], check=True)
        out = subprocess.run(base + ["--pipeline"], capture_output=True, text=True,
                             check=True).stdout
    return json.loads(out.strip().splitlines()[-1])


def measure(height, width, precision, tile, repeats, save, jit=False, extra=()):
    cmd = [sys.executable, __file__, "--child", f"--height={height}", f"--width={width}",
           f"--precision={precision}", f"--tile={tile}", f"--repeats={repeats}", f"--save={save}"]
    cmd += (["--jit"] if jit else []) + list(extra)
    out = subprocess.run(cmd, capture_output=True, text=True, check=True).stdout
    return json.loads(out.strip().splitlines()[-1])


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--child", action="store_true")
    parser.add_argument("--height", type=int, default=1000)
    parser.add_argument("--width", type=int, default=1500)
    parser.add_argument("--precision", default="float32")
    parser.add_argument("--jit", action="store_true")
    parser.add_argument("--tile", type=int, default=0)
    parser.add_argument("--overlap", type=int, default=64)
    parser.add_argument("--repeats", type=int, default=2)
    parser.add_argument("--save", default=os.devnull + ".npy")
    parser.add_argument("--skip_24mp", action="store_true",
                        help="leave out the 24-megapixel file run (about 8 minutes on 2 cores)")
    parser.add_argument("--only_files", action="store_true",
                        help="only the runs from photo files to the .hdr file")
    parser.add_argument("--ceiling", action="store_true")
    parser.add_argument("--make_photos", action="store_true")
    parser.add_argument("--pipeline", action="store_true")
    parser.add_argument("--onnx", action="store_true")
    parser.add_argument("--gpu", action="store_true", help="the GPU rows only")
    parser.add_argument("--smoke", action="store_true",
                        help="the GPU rows' code on tiny inputs, on whatever device there is")
    parser.add_argument("--json", default=None, help="also write the GPU rows here")
    parser.add_argument("--no_conv_rate", action="store_true")
    parser.add_argument("--photos", default="")
    parser.add_argument("--suffix", default=".hdr", choices=[".hdr", ".exr"],
                        help="--pipeline: the merged file's format (both stream when tiled)")
    args = parser.parse_args()
    if args.child:
        return child(args)
    if args.ceiling:
        return ceiling_child(args)
    if args.make_photos:
        return make_photos(args)
    if args.pipeline:
        return pipeline_child(args)
    if args.onnx:
        return onnx_child(args)
    if args.gpu or args.smoke:
        return device_rows(args)

    sys.path.insert(0, str(REPO / "experiments"))
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    import numpy as np

    tmp = Path(tempfile.mkdtemp())
    rows = [("1500x1000 whole", 1000, 1500, 0, 2, False),
            ("1500x1000 whole, XLA", 1000, 1500, 0, 2, True),
            ("1500x1000 tiled 512", 1000, 1500, 512, 2, False),
            ("1500x1000 tiled 256", 1000, 1500, 256, 2, False)]
    rows = [] if args.only_files else rows
    outputs = {}
    print("peak MB: the process's peak resident memory; before: the same just before the merge"
          " (TensorFlow, the model and the 16-bit input photos)")
    print("conv rate: a large 3x3 convolution's GFLOP/s, measured in the same process")
    print(f"{'configuration':32} {'precision':9} {'seconds':>8} {'peak MB':>8} {'before':>7} "
          f"{'GFLOP/s':>8} {'conv rate':>9} {'of conv rate':>12}")
    for name, h, w, tile, repeats, jit in rows:
        for precision in ("float32", "bfloat16"):
            if (jit or h > 1000 or tile == 256) and precision == "bfloat16":
                continue
            save = tmp / f"{h}_{tile}_{precision}_{jit}.npy"
            r = measure(h, w, precision, tile, repeats, save, jit)
            outputs[(h, tile, precision, jit)] = save
            rate = GFLOP_PER_PIXEL * h * w / r["seconds"]
            print(f"{name:32} {precision:9} {r['seconds']:8.2f} {r['peak_mb']:8.0f} "
                  f"{r['baseline_mb']:7.0f} {rate:8.0f} {r['conv_rate']:9.0f} "
                  f"{100 * rate / r['conv_rate']:11.0f}%", flush=True)
    if not args.only_files:
        out = subprocess.run([sys.executable, __file__, "--ceiling"], capture_output=True,
                             text=True, check=True).stdout.rstrip().splitlines()
        r = json.loads(out[-1])
        rate = r["gflop"] / r["seconds"]
        print(f"The network's {r['gflop']:.0f} GFLOP of convolutions at 1500x1000, each timed by "
              f"itself: {r['seconds']:.2f} s, {rate:.0f} GFLOP/s = {100 * rate / r['conv_rate']:.0f}%"
              f" of the conv rate ({r['conv_rate']:.0f}), the most these kernels allow; largest:")
        print("\n".join(out[:-1]))
    # hdr-gan-infer's streamed path, from the photo files to the .hdr file and the preview.
    print("From 16-bit TIFF files to the .hdr (or .exr) file and PNG preview, as hdr-gan-infer "
          "--tile=256 (streamed), 1 run; before: TensorFlow and the model:")
    pipelines = [("1500x1000 files, tiled 256", 1000, 1500, ".hdr")]
    if not args.skip_24mp:
        pipelines += [("6000x4000 (24 MP) files, tiled 256", 4000, 6000, ".hdr"),
                      ("6000x4000 (24 MP) -> .exr, tiled 256", 4000, 6000, ".exr")]
    for name, h, w, suffix in pipelines:
        r = measure_pipeline(h, w, 256, suffix)
        rate = GFLOP_PER_PIXEL * h * w / r["seconds"]
        print(f"{name:32} {'float32':9} {r['seconds']:8.2f} {r['peak_mb']:8.0f} "
              f"{r['baseline_mb']:7.0f} {rate:8.0f}", flush=True)
    if args.only_files:
        return
    out = subprocess.run([sys.executable, __file__, "--onnx"], capture_output=True, text=True,
                         check=True).stdout
    r = json.loads(out.strip().splitlines()[-1])
    print(f"The exported serving model, 1500x1000, one process: TensorFlow {r['tf']:.2f} s, "
          f"onnxruntime (CPU, the ONNX export) {r['onnx']:.2f} s")
    fp32 = (np.load(outputs[(1000, 0, "float32", False)]) + 1) / 2
    bf16 = (np.load(outputs[(1000, 0, "bfloat16", False)]) + 1) / 2
    tiled = (np.load(outputs[(1000, 512, "float32", False)]) + 1) / 2
    psnr = lambda a, b: 10 * np.log10(1 / np.mean((a - b) ** 2))  # noqa: E731
    print(f"PSNR-mu of bfloat16 vs float32 output (1500x1000): {psnr(fp32, bf16):.1f} dB")
    print(f"PSNR-mu of tiled vs whole-image output (float32):   {psnr(fp32, tiled):.1f} dB")


if __name__ == "__main__":
    main()
