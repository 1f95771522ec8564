import json
from pathlib import Path

import numpy as np
import pytest

from hdr_gan_tf import data
from hdr_gan_tf.evaluation import (PROTOCOLS, Protocol, find_predictions, score_predictions,
                                   write_comparison)
from hdr_gan_tf.image_io import read_ldr, write_hdr
from hdr_gan_tf.metrics import hdr_metrics
from tests.helpers import assert_each_refused, run_program


def _image(path, shape=(96, 128, 3), seed=0):
    path.parent.mkdir(parents=True, exist_ok=True)
    write_hdr(path, np.random.default_rng(seed).random(shape).astype(np.float32),
              exact=path.suffix == ".exr")
    return path


def test_predictions_are_found_by_the_rule_and_refused_naming_the_scenes(tmp_path):
    flat = tmp_path / "flat"
    expected = {"001": _image(flat / "001.exr"), "002": _image(flat / "002.hdr")}
    (flat / "notes.txt").write_text("not an image: ignored")
    assert find_predictions(flat, ["001", "002"]) == expected
    ours = tmp_path / "ours"  # what hdr-gan-evaluate writes
    expected = {s: _image(ours / s / "hdr_main.exr") for s in ("001", "002")}
    (ours / "metrics.json").write_text("{}")
    assert find_predictions(ours, ["001", "002"]) == expected
    nested = tmp_path / "nested"  # a test split with groups, as Kalantari's Test/PAPER/<scene>
    expected = {"PAPER/Bar": _image(nested / "PAPER" / "Bar" / "hdr_main.exr"),
                "PAPER/Foo": _image(nested / "PAPER" / "Foo.hdr")}
    _image(nested / "PAPER" / "Bar" / "hdr_aux.exr")  # another branch, not a scene
    assert find_predictions(nested, ["PAPER/Bar", "PAPER/Foo"]) == expected
    with pytest.raises(ValueError, match=r"no file for scene\(s\) 003; files of no scene of the "
                                         r"split\(s\) 002 \(the rule"):
        find_predictions(flat, ["001", "003"])
    _image(flat / "001.hdr")
    with pytest.raises(ValueError, match=r"more than one file for scene\(s\) 001"):
        find_predictions(flat, ["001", "002"])
    with pytest.raises(ValueError, match="not a folder of merged images"):
        find_predictions(tmp_path / "nothing", ["001"])


def test_predictions_are_cropped_as_the_protocol_crops_the_ground_truth(tiny_data, tmp_path):
    scenes = data.open_split(tiny_data, data.TEST_SPLIT)
    crop = Protocol("custom", (64, 96))
    full = {s.name: tmp_path / "full" / f"{s.name}.exr" for s in scenes}
    cropped = {s.name: tmp_path / "cropped" / f"{s.name}.exr" for s in scenes}
    for scene in scenes:
        estimate = scene.hdr * 0.9
        write_hdr(full[scene.name], estimate, exact=True)
        write_hdr(cropped[scene.name], estimate[16:80, 16:112], exact=True)
    assert score_predictions(full, scenes, crop) == score_predictions(cropped, scenes, crop)
    assert score_predictions(full, scenes)[0]["psnr_l"] != score_predictions(
        full, scenes, crop)[0]["psnr_l"]
    with pytest.raises(ValueError, match="a 96x64 image for the 128x96 scene 001"):
        score_predictions(cropped, scenes, PROTOCOLS["full"])


def test_the_comparison_holds_every_method_with_its_mean_and_a_chart(tiny_data, tmp_path):
    scenes = data.open_split(tiny_data, data.TEST_SPLIT)
    paths = {}
    for factor in (0.5, 0.9):
        paths[factor] = {s.name: tmp_path / str(factor) / f"{s.name}.exr" for s in scenes}
        for scene in scenes:
            write_hdr(paths[factor][scene.name], scene.hdr * factor, exact=True)
    methods = {f"x{f}": score_predictions(p, scenes) for f, p in paths.items()}
    table = write_comparison(methods, tmp_path)
    assert methods["x0.9"][0]["psnr_mu"] > methods["x0.5"][0]["psnr_mu"]
    lines = (tmp_path / "comparison.csv").read_text().splitlines()
    assert lines[0].startswith("method,scene,psnr_mu") and len(lines) == 1 + 2 * 3
    assert "protocol full" in table and "x0.5" in table
    chart = read_ldr(tmp_path / "comparison_psnr_mu.png")
    # The two methods' bars are drawn in their own colours.
    colours = {tuple(c) for c in np.round(chart * 255).astype(int).reshape(-1, 3).tolist()}
    assert (31, 119, 180) in colours and (255, 127, 14) in colours


def _strict(text):
    """JSON as the standard has it: NaN and Infinity are not JSON."""
    def refuse(constant):
        raise ValueError(f"{constant} is not JSON")

    return json.loads(text, parse_constant=refuse)


def test_scores_are_numbers_and_their_files_strict_json(tiny_data, tmp_path):
    scenes = data.open_split(tiny_data, data.TEST_SPLIT)
    exact = {s.name: tmp_path / "exact" / f"{s.name}.exr" for s in scenes}
    for scene in scenes:
        write_hdr(exact[scene.name], scene.hdr, exact=True)
    rows = score_predictions(exact, scenes)
    assert rows[0]["psnr_mu"] == float("inf")  # identical images: the one infinite score
    write_comparison({"exact": rows}, tmp_path)
    written = _strict((tmp_path / "comparison.json").read_text())
    assert written["rows"][0]["psnr_mu"] is None and written["rows"][0]["ssim_mu"] == 1.0
    broken = scenes[0].hdr.copy()
    broken[0, 0, 0] = np.nan
    with pytest.raises(ValueError, match="the merged image holds NaN or Inf"):
        hdr_metrics(broken, scenes[0].hdr)


def test_a_predictions_folder_whose_path_holds_an_equals_sign_is_a_folder(tiny_data, tmp_path):
    scenes = data.open_split(tiny_data, data.TEST_SPLIT)
    folder = tmp_path / "runs" / "lr=1e-4" / "preds"
    for scene in scenes:
        write_hdr(folder / f"{scene.name}.exr", scene.hdr * 0.9, exact=True)
    decoy = Path("runs") / "lr"  # what splitting at '=' would have read, relative to the cwd
    result = run_program("evaluate", f"--data_dir={tiny_data}", f"--predictions={folder}",
                         f"--output_dir={tmp_path / 'eval'}")
    assert result.returncode == 0, result.stderr
    table = _strict((tmp_path / "eval" / "comparison.json").read_text())
    assert {row["method"] for row in table["rows"]} == {"preds"}
    missing = tmp_path / "runs" / "lr=1e-5" / "preds"
    assert_each_refused({
        "missing": ("evaluate", [f"--data_dir={tiny_data}", f"--predictions={missing}",
                                 f"--output_dir={tmp_path / 'eval2'}"],
                    f"{missing}: not a folder of merged images"),
        "named": ("evaluate", [f"--data_dir={tiny_data}", f"--predictions=mine={missing}",
                               f"--output_dir={tmp_path / 'eval3'}"],
                  f"{missing}: not a folder of merged images")})
    assert not decoy.exists()
