"""Scoring a model on a data split (docs/design.md §7): `score_scenes`, the one scorer that
training's validation and `hdr-gan-evaluate` share, and `evaluate`, which also writes the
per-scene and mean metrics of every branch, HDR outputs and comparison panels; and scoring any
method's merged images by the same protocol (`find_predictions`, `score_predictions`,
`write_comparison`).
"""

import csv
import dataclasses
import io
import json
import math
import time
from pathlib import Path

from hdr_gan_tf.display import bar_chart, comparison_panel
from hdr_gan_tf.image_io import HDR_SUFFIXES, MAX_PIXELS, read_hdr, write_hdr, write_ldr
from hdr_gan_tf.outputs import write_text
from hdr_gan_tf.imaging import MU
from hdr_gan_tf.metrics import (HDR_VDP2_DISPLAY_INCHES, HDR_VDP2_DISTANCE_M, HDR_VDP2_ENCODING,
                                HDR_VDP2_PROTOCOL, METRICS, PU21_DISPLAY_PEAK, hdr_metrics)


@dataclasses.dataclass(frozen=True)
class Protocol:
    """What is scored: a centred crop `(H, W)` of every scene (None: the full frame) and the
    bits per channel its LDRs are read with (16: as stored; 8: reduced, `round(v / 257)`)."""
    name: str
    center_crop: tuple = None
    ldr_bits: int = 16

    def describe(self):
        crop = ("full frame" if self.center_crop is None
                else "centred {}x{} crop".format(*self.center_crop))
        return f"protocol {self.name}: {crop}, LDRs read at {self.ldr_bits} bits"


# `paper`: what the released test script scored (docs/design.md §7); `full`: everything as
# stored, our default.
PROTOCOLS = {"full": Protocol("full"), "paper": Protocol("paper", (960, 1440), 8)}


def strict_json(record):
    """`record` as standard JSON text (no NaN or Infinity, which JSON lacks): the infinite PSNR
    of identical images is written as null."""
    def finite(value):
        if isinstance(value, float) and not math.isfinite(value):
            return None
        if isinstance(value, dict):
            return {k: finite(v) for k, v in value.items()}
        if isinstance(value, (list, tuple)):
            return [finite(v) for v in value]
        return value

    return json.dumps(finite(record), indent=2, allow_nan=False) + "\n"


def center_crop(array, size):
    if not size:
        return array
    h, w = size
    top, left = (array.shape[-3] - h) // 2, (array.shape[-2] - w) // 2
    if top < 0 or left < 0:
        raise ValueError(f"a centred {h}x{w} crop is larger than the {array.shape[-3]}x"
                         f"{array.shape[-2]} image")
    return array[..., top:top + h, left:left + w, :]


def format_table(rows, branches, protocol=PROTOCOLS["full"], display_peak=PU21_DISPLAY_PEAK):
    """The rows as a table, under lines that say what was scored and how PU21 and HDR-VDP-2
    saw it."""
    header = ["scene"] + [f"{m}_{b}" for b in branches for m in METRICS]
    lines = [protocol.describe(),
             f"PU21: each scene's ground-truth peak shown at {display_peak:g} cd/m²; mu-law "
             f"metrics with mu = {MU:g}",
             f"HDR-VDP-2: {HDR_VDP2_ENCODING}, each image filling a "
             f"{HDR_VDP2_DISPLAY_INCHES:g}-inch display seen from {HDR_VDP2_DISTANCE_M:g} m",
             "  ".join(f"{h:>15}" for h in header)]
    for row in rows:
        cells = [f"{row['scene']:>15}"] + [f"{row[f'{m}_{b}']:15.4f}"
                                           for b in branches for m in METRICS]
        lines.append("  ".join(cells))
    return "\n".join(lines)


def score_scenes(merge, scenes, branches, crop=None, metrics=METRICS,
                 display_peak=PU21_DISPLAY_PEAK, align="none"):
    """Merges and scores every scene; yields `(scene, ldrs, hdr_gt, outputs, row)` per scene,
    `row` holding `{"scene": name, "<metric>_<branch>": value}`.

    Args:
      merge: `merge(ldrs, ev) -> {branch: linear HDR}` (`hdr_gan_tf.merge.load_merger`), whose
        options say how it runs.
      scenes: `hdr_gan_tf.data.Scene`s (or `DiskScene`s).
      branches: the branch names to score.
      crop: `(H, W)` of a centred crop to score, or None for the whole image.
      metrics: which of `metrics.METRICS`.
      display_peak: cd/m² at which PU21 shows each ground truth's peak.
      align: how the photos are registered first (`alignment.ALIGN_MODES`; data sets are
        aligned: "none").
    """
    from hdr_gan_tf.alignment import align_bracket

    for scene in scenes:
        ldrs, _ = align_bracket(scene.ldr_float(), scene.exposure_bias, align)
        if hasattr(ldrs, "rows"):
            ldrs = ldrs.rows(0, scene.shape[0])
        try:
            ldrs = center_crop(ldrs, crop)
            hdr_gt = center_crop(scene.hdr, crop)
        except ValueError as err:
            raise ValueError(f"scene {scene.name}: {err}") from None
        outputs = merge(ldrs, scene.exposure_bias)
        row = {"scene": scene.name}
        for b in branches:
            try:
                scores = hdr_metrics(outputs[b], hdr_gt, metrics, display_peak)
            except ValueError as err:
                raise ValueError(f"scene {scene.name}, branch {b}: {err}") from None
            row.update({f"{k}_{b}": v for k, v in scores.items()})
        yield scene, ldrs, hdr_gt, outputs, row


def evaluate(merge, scenes, branches, output_dir, protocol=PROTOCOLS["full"], log=print,
             display_peak=PU21_DISPLAY_PEAK, align="none"):
    """Scores every scene (`score_scenes`, every metric), writes the outputs and returns the
    rows (mean row last).

    Args:
      output_dir: where `metrics.json`, `metrics.csv` and per-scene HDR files and panels go.
      protocol: the `Protocol` scored: its crop is applied here, its LDR bits are those the
        `scenes` were opened with; `metrics.json` records it.
      log: receives one progress line per scene.
      The others: as `score_scenes`.
    """
    output_dir = Path(output_dir)
    rows, start = [], time.time()
    scored = score_scenes(merge, scenes, branches, protocol.center_crop,
                          display_peak=display_peak, align=align)
    for n, (scene, ldrs, hdr_gt, outputs, row) in enumerate(scored, start=1):
        for b in branches:
            write_hdr(output_dir / scene.name / f"hdr_{b}.hdr", outputs[b])
            # Exact 32-bit floats: what `--predictions` reads back to score again.
            write_hdr(output_dir / scene.name / f"hdr_{b}.exr", outputs[b], exact=True)
        write_ldr(output_dir / scene.name / "panel.png", comparison_panel(ldrs, outputs, hdr_gt))
        rows.append(row)
        log(f"[{n}/{len(scenes)}] {scene.name}: PSNR-mu main {row['psnr_mu_main']:.2f} dB "
            f"({time.time() - start:.1f} s)")
        start = time.time()
    mean = {"scene": "mean"}
    for key in rows[0]:
        if key != "scene":
            mean[key] = sum(r[key] for r in rows) / len(rows)
    rows.append(mean)
    write_text(output_dir / "metrics.json", strict_json(
        {"scenes": rows[:-1], "mean": mean, "protocol": dataclasses.asdict(protocol),
         "pu21_display_peak": display_peak, "hdr_vdp2": HDR_VDP2_PROTOCOL, "align": align}))
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=list(rows[0]))
    writer.writeheader()
    writer.writerows(rows)
    write_text(output_dir / "metrics.csv", buffer.getvalue())
    return rows


# ---------------------------------------------------------------- any method's results
PREDICTION_RULE = ("one file per scene of the split: <scene>.exr or <scene>.hdr in the folder "
                   "(a nested scene such as PAPER/Foo as PAPER/Foo.exr), or <scene>/hdr_main.exr "
                   "as hdr-gan-evaluate writes it")
# Scene names have at most two parts (`Test/<group>/<scene>`, data.find_scene_dirs).
_SCENE_DEPTH = 2


def find_predictions(folder, scene_names):
    """`{scene: path}` of a folder of merged images by `PREDICTION_RULE`; ValueError naming
    the scenes without a file, the files of no scene of the split, and scenes with two."""
    folder = Path(folder)
    if not folder.is_dir():
        raise ValueError(f"{folder}: not a folder of merged images")
    found = {}

    def visit(directory, depth):
        for entry in sorted(directory.iterdir()):
            name = entry.relative_to(folder).as_posix()
            if entry.is_file() and entry.suffix.lower() in HDR_SUFFIXES:
                found.setdefault(name[:-len(entry.suffix)], []).append(entry)
            elif entry.is_dir() and (entry / "hdr_main.exr").is_file():
                found.setdefault(name, []).append(entry / "hdr_main.exr")
            elif entry.is_dir() and depth < _SCENE_DEPTH:
                visit(entry, depth + 1)

    visit(folder, 1)
    problems = []
    for what, names in (
            ("no file for scene", [n for n in scene_names if n not in found]),
            ("files of no scene of the split", [n for n in found if n not in scene_names]),
            ("more than one file for scene",
             [n for n in scene_names if len(found.get(n, ())) > 1])):
        if names:
            problems.append(f"{what}(s) {', '.join(names)}")
    if problems:
        raise ValueError(f"{folder}: {'; '.join(problems)} (the rule: {PREDICTION_RULE})")
    return {name: found[name][0] for name in scene_names}


def score_predictions(paths, scenes, protocol=PROTOCOLS["full"], display_peak=PU21_DISPLAY_PEAK,
                      max_pixels=MAX_PIXELS):
    """Rows `{"scene": name, "<metric>": value}` of stored merged images (`find_predictions`)
    against the scenes' ground truth, scored as `score_scenes` scores a model's main branch.
    An image of the scene's full size is cropped as the protocol crops the ground truth; one
    of the crop's size is taken as it is."""
    rows = []
    for scene in scenes:
        hdr_gt = scene.hdr
        hdr = read_hdr(paths[scene.name], max_pixels)
        if hdr.shape != hdr_gt.shape:
            if protocol.center_crop is None or hdr.shape[:2] != tuple(protocol.center_crop):
                raise ValueError(f"{paths[scene.name]}: a {hdr.shape[1]}x{hdr.shape[0]} image "
                                 f"for the {hdr_gt.shape[1]}x{hdr_gt.shape[0]} scene "
                                 f"{scene.name}")
        else:
            hdr = center_crop(hdr, protocol.center_crop)
        try:
            scores = hdr_metrics(hdr, center_crop(hdr_gt, protocol.center_crop), METRICS,
                                 display_peak)
        except ValueError as err:
            raise ValueError(f"{paths[scene.name]}: scene {scene.name}: {err}") from None
        rows.append({"scene": scene.name, **scores})
    return rows


def write_comparison(methods, output_dir, protocol=PROTOCOLS["full"],
                     display_peak=PU21_DISPLAY_PEAK):
    """Writes `comparison.json`, `comparison.csv` (one row per method and scene, and each
    method's mean) and `comparison_psnr_mu.png` (a bar chart of PSNR-μ per scene and method)
    for `methods` `{name: rows}` (`score_predictions` rows); returns the table as text."""
    output_dir = Path(output_dir)
    table = []
    for name, rows in methods.items():
        mean = {m: sum(r[m] for r in rows) / len(rows) for m in METRICS}
        table += [{"method": name, **row} for row in rows]
        table.append({"method": name, "scene": "mean", **mean})
    write_text(output_dir / "comparison.json", strict_json(
        {"rows": table, "protocol": dataclasses.asdict(protocol),
         "pu21_display_peak": display_peak, "hdr_vdp2": HDR_VDP2_PROTOCOL}))
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=["method", "scene", *METRICS])
    writer.writeheader()
    writer.writerows(table)
    write_text(output_dir / "comparison.csv", buffer.getvalue())
    write_ldr(output_dir / "comparison_psnr_mu.png", bar_chart(methods, "psnr_mu"))
    width = max(len(n) for n in methods) + 2
    lines = [protocol.describe(),
             f"{'method':>{width}}  " + "  ".join(f"{m:>10}" for m in METRICS)]
    lines += [f"{row['method']:>{width}}  " + "  ".join(f"{row[m]:10.4f}" for m in METRICS)
              for row in table if row["scene"] == "mean"]
    return "\n".join(lines)
