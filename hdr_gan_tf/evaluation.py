"""Scoring a model on a data split (docs/design.md §7): per-scene and mean metrics of every
branch, HDR outputs and comparison panels, as `hdr-gan-evaluate` writes them.
"""

import csv
import io
import json
import time
from pathlib import Path

from hdr_gan_tf.display import comparison_panel
from hdr_gan_tf.image_io import write_hdr, write_ldr, write_text
from hdr_gan_tf.metrics import hdr_metrics

METRICS = ("psnr_mu", "psnr_l", "ssim_mu", "ssim_l")


def center_crop(array, size):
    if not size:
        return array
    h, w = size
    top, left = (array.shape[-3] - h) // 2, (array.shape[-2] - w) // 2
    if top < 0 or left < 0:
        raise ValueError(f"--center_crop={h},{w} is larger than the {array.shape[-3]}x"
                         f"{array.shape[-2]} image")
    return array[..., top:top + h, left:left + w, :]


def format_table(rows, branches):
    header = ["scene"] + [f"{m}_{b}" for b in branches for m in METRICS]
    lines = ["  ".join(f"{h:>12}" for h in header)]
    for row in rows:
        cells = [f"{row['scene']:>12}"] + [f"{row[f'{m}_{b}']:12.4f}"
                                           for b in branches for m in METRICS]
        lines.append("  ".join(cells))
    return "\n".join(lines)


def evaluate(merge, scenes, branches, output_dir, crop=None, tile=0, overlap=32, log=print):
    """Runs `merge` on every scene, writes the outputs and returns the rows (mean row last).

    Args:
      merge: `merge(ldrs, ev, tile=..., overlap=...) -> {branch: linear HDR}`
        (`hdr_gan_tf.merge.generator_merger` or `hdr_gan_tf.serving.saved_model_merger`).
      scenes: `hdr_gan_tf.data.Scene`s.
      branches: the branch names to score.
      output_dir: where `metrics.json`, `metrics.csv` and per-scene HDR files and panels go.
      crop: `(H, W)` of a centred crop to score, or None for the whole image.
      log: receives one progress line per scene.
    """
    output_dir = Path(output_dir)
    rows = []
    for n, scene in enumerate(scenes, start=1):
        start = time.time()
        ldrs = center_crop(scene.ldr_float(), crop)
        gt = center_crop(scene.hdr, crop)
        outputs = merge(ldrs, scene.exposure_bias, tile=tile, overlap=overlap)
        row = {"scene": scene.name}
        for b in branches:
            row.update({f"{k}_{b}": v for k, v in hdr_metrics(outputs[b], gt).items()})
            write_hdr(output_dir / scene.name / f"hdr_{b}.hdr", outputs[b])
        write_ldr(output_dir / scene.name / "panel.png", comparison_panel(ldrs, outputs, gt))
        rows.append(row)
        log(f"[{n}/{len(scenes)}] {scene.name}: PSNR-mu main {row['psnr_mu_main']:.2f} dB "
            f"({time.time() - start:.1f} s)")
    mean = {"scene": "mean"}
    for key in rows[0]:
        if key != "scene":
            mean[key] = sum(r[key] for r in rows) / len(rows)
    rows.append(mean)
    write_text(output_dir / "metrics.json", json.dumps(
        {"scenes": rows[:-1], "mean": mean}, indent=2) + "\n")
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=list(rows[0]))
    writer.writeheader()
    writer.writerows(rows)
    write_text(output_dir / "metrics.csv", buffer.getvalue())
    return rows
