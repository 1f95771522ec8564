"""hdr-gan-evaluate run as a user runs it: metrics, outputs, panels, other methods' results."""

import json
import shutil

import numpy as np
import pytest

from hdr_gan_tf.metrics import METRICS

from hdr_gan_tf.image_io import read_hdr
from tests.helpers import run_program

pytestmark = pytest.mark.slow


def test_evaluate_writes_metrics_outputs_and_panels(converted, exported, tiny_data, tmp_path):
    out = tmp_path / "eval"
    result = run_program("evaluate", f"--checkpoint={converted}", f"--data_dir={tiny_data}",
                         f"--output_dir={out}")
    assert result.returncode == 0, result.stderr
    metrics = json.loads((out / "metrics.json").read_text())
    assert [s["scene"] for s in metrics["scenes"]] == ["001", "002"]
    for key in ("psnr_mu_main", "psnr_l_main", "ssim_mu_main", "ssim_l_main", "psnr_mu_aux1",
                "pu21_psnr_main", "pu21_ssim_main", "pu21_psnr_aux1", "pu21_ssim_aux1",
                "hdr_vdp2_main", "hdr_vdp2_aux1"):
        assert metrics["mean"][key] == pytest.approx(
            np.mean([s[key] for s in metrics["scenes"]]))
    assert metrics["pu21_display_peak"] == 4000
    assert metrics["hdr_vdp2"]["encoding"] == "sRGB-display"
    assert all(0 < s["hdr_vdp2_main"] <= 100 for s in metrics["scenes"])
    assert "ground-truth peak shown at 4000 cd/m²" in result.stdout
    assert "HDR-VDP-2: sRGB-display, each image filling a 24-inch display seen from 0.5 m" in (
        result.stdout)
    assert metrics["protocol"] == {"name": "full", "center_crop": None, "ldr_bits": 16}
    assert "protocol full: full frame, LDRs read at 16 bits" in result.stdout
    csv_lines = (out / "metrics.csv").read_text().splitlines()
    assert csv_lines[0].startswith("scene,") and csv_lines[-1].startswith("mean,")
    assert read_hdr(out / "001" / "hdr_main.hdr").shape == (96, 128, 3)
    assert (out / "002" / "panel.png").stat().st_size > 1000
    assert "psnr_mu_main" in result.stdout  # the table
    # The SavedModel gives the same numbers.
    saved = run_program("evaluate", f"--saved_model={exported}", f"--data_dir={tiny_data}",
                        f"--output_dir={tmp_path / 'eval_sm'}")
    assert saved.returncode == 0, saved.stderr
    sm = json.loads((tmp_path / "eval_sm" / "metrics.json").read_text())
    assert sm["mean"]["psnr_mu_main"] == pytest.approx(metrics["mean"]["psnr_mu_main"], abs=1e-3)
    assert sm["mean"]["pu21_psnr_main"] == pytest.approx(metrics["mean"]["pu21_psnr_main"],
                                                         abs=1e-3)
    # As the released test script scored: LDRs reduced to 8 bits, a centred crop.
    released = run_program("evaluate", f"--checkpoint={converted}", f"--data_dir={tiny_data}",
                           f"--output_dir={tmp_path / 'eval_8'}", "--ldr_bits=8",
                           "--center_crop=64,96", "--pu21_display_peak=1000")
    assert released.returncode == 0, released.stderr
    assert read_hdr(tmp_path / "eval_8" / "001" / "hdr_main.hdr").shape == (64, 96, 3)
    eight = json.loads((tmp_path / "eval_8" / "metrics.json").read_text())["mean"]
    assert eight["psnr_mu_main"] != pytest.approx(metrics["mean"]["psnr_mu_main"], abs=1e-3)
    assert "peak shown at 1000 cd/m²" in released.stdout
    assert json.loads((tmp_path / "eval_8" / "metrics.json").read_text())["protocol"] == {
        "name": "custom", "center_crop": [64, 96], "ldr_bits": 8}
    assert "protocol custom: centred 64x96 crop, LDRs read at 8 bits" in released.stdout
    # The merged images that evaluation wrote, scored as another method's, give its numbers;
    # beside the model in one run they make a comparison of the two.
    compared = run_program("evaluate", f"--checkpoint={converted}", f"--data_dir={tiny_data}",
                           f"--output_dir={tmp_path / 'compare'}", f"--predictions=ours={out}")
    assert compared.returncode == 0, compared.stderr
    rows = json.loads((tmp_path / "compare" / "comparison.json").read_text())["rows"]
    by_method = {m: [r for r in rows if r["method"] == m] for m in ("network", "ours")}
    assert [r["scene"] for r in by_method["ours"]] == ["001", "002", "mean"]
    for network, ours in zip(by_method["network"], by_method["ours"]):
        for key in METRICS:
            assert ours[key] == pytest.approx(network[key], rel=1e-6, abs=1e-6), key
            scene = metrics["mean"] if ours["scene"] == "mean" else metrics["scenes"][
                int(ours["scene"]) - 1]
            assert ours[key] == pytest.approx(scene[f"{key}_main"], rel=1e-6, abs=1e-6), key
    assert (tmp_path / "compare" / "comparison_psnr_mu.png").stat().st_size > 1000
    assert "ours" in compared.stdout and "network" in compared.stdout
    alone = run_program("evaluate", f"--data_dir={tiny_data}", f"--predictions={out}",
                        f"--output_dir={tmp_path / 'alone'}")
    assert alone.returncode == 0, alone.stderr
    alone_rows = json.loads((tmp_path / "alone" / "comparison.json").read_text())["rows"]
    assert [r["method"] for r in alone_rows] == ["eval"] * 3
    assert alone_rows[-1]["psnr_mu"] == pytest.approx(metrics["mean"]["psnr_mu_main"], rel=1e-6)
    # A folder without one of the scenes is refused, naming it.
    partial = tmp_path / "partial"
    shutil.copytree(out, partial)
    shutil.rmtree(partial / "002")
    missing = run_program("evaluate", f"--data_dir={tiny_data}", f"--predictions={partial}",
                          f"--output_dir={tmp_path / 'refused'}")
    assert missing.returncode == 2 and "no file for scene(s) 002" in missing.stderr
    assert not (tmp_path / "refused").exists()
    # An existing output dir is refused.
    again = run_program("evaluate", f"--checkpoint={converted}", f"--data_dir={tiny_data}",
                        f"--output_dir={out}")
    assert again.returncode == 2 and "--overwrite" in again.stderr
