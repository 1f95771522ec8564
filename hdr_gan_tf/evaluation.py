"""Scoring a model on a data split (docs/design.md §7): `score_scenes`, the one scorer that
training's validation and `hdr-gan-evaluate` share, and `evaluate`, which also writes the
per-scene and mean metrics of every branch, HDR outputs and comparison panels.
"""

import csv
import dataclasses
import io
import json
import time
from pathlib import Path

from hdr_gan_tf.display import comparison_panel
from hdr_gan_tf.image_io import write_hdr, write_ldr
from hdr_gan_tf.outputs import write_text
from hdr_gan_tf.imaging import MU
from hdr_gan_tf.metrics import METRICS, PU21_DISPLAY_PEAK, hdr_metrics


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
    """The rows as a table, under lines that say what was scored and how PU21 showed it."""
    header = ["scene"] + [f"{m}_{b}" for b in branches for m in METRICS]
    lines = [protocol.describe(),
             f"PU21: each scene's ground-truth peak shown at {display_peak:g} cd/m²; mu-law "
             f"metrics with mu = {MU:g}",
             "  ".join(f"{h:>15}" for h in header)]
    for row in rows:
        cells = [f"{row['scene']:>15}"] + [f"{row[f'{m}_{b}']:15.4f}"
                                           for b in branches for m in METRICS]
        lines.append("  ".join(cells))
    return "\n".join(lines)


def score_scenes(merge, scenes, branches, crop=None, metrics=METRICS,
                 display_peak=PU21_DISPLAY_PEAK):
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
    """
    for scene in scenes:
        try:
            ldrs = center_crop(scene.ldr_float(), crop)
            hdr_gt = center_crop(scene.hdr, crop)
        except ValueError as err:
            raise ValueError(f"scene {scene.name}: {err}") from None
        outputs = merge(ldrs, scene.exposure_bias)
        row = {"scene": scene.name}
        for b in branches:
            row.update({f"{k}_{b}": v for k, v in hdr_metrics(
                outputs[b], hdr_gt, metrics, display_peak).items()})
        yield scene, ldrs, hdr_gt, outputs, row


def evaluate(merge, scenes, branches, output_dir, protocol=PROTOCOLS["full"], log=print,
             display_peak=PU21_DISPLAY_PEAK):
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
                          display_peak=display_peak)
    for n, (scene, ldrs, hdr_gt, outputs, row) in enumerate(scored, start=1):
        for b in branches:
            write_hdr(output_dir / scene.name / f"hdr_{b}.hdr", outputs[b])
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
    write_text(output_dir / "metrics.json", json.dumps(
        {"scenes": rows[:-1], "mean": mean, "protocol": dataclasses.asdict(protocol),
         "pu21_display_peak": display_peak}, indent=2) + "\n")
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=list(rows[0]))
    writer.writeheader()
    writer.writerows(rows)
    write_text(output_dir / "metrics.csv", buffer.getvalue())
    return rows
