import numpy as np
import pytest

from hdr_gan_tf import data
from hdr_gan_tf.evaluation import (PROTOCOLS, Protocol, find_predictions, score_predictions,
                                   write_comparison)
from hdr_gan_tf.image_io import read_ldr, write_hdr


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
