"""The programs on data sets in each layout: written by hdr-gan-synth, trained on and
evaluated (subprocesses, as a user runs them)."""

import json

import numpy as np
import pytest

from hdr_gan_tf.metrics import METRICS

from hdr_gan_tf.image_io import read_hdr
from tests.helpers import run_program

pytestmark = pytest.mark.slow


def test_synth_program_writes_the_layout_and_refuses_to_overwrite(tmp_path):
    out = tmp_path / "set"
    args = [f"--output_dir={out}", "--num_train=1", "--num_test=1", "--height=64", "--width=96"]
    result = run_program("synthesize", *args)
    assert result.returncode == 0, result.stderr
    assert sorted(p.name for p in (out / "Test" / "001").iterdir()) == [
        "HDRImg.hdr", "IMG_0004.tif", "IMG_0005.tif", "IMG_0006.tif", "exposure.txt"]
    again = run_program("synthesize", *args)
    assert again.returncode == 2 and "exists and is not empty" in again.stderr


def test_a_set_in_the_authors_layout_trains_and_evaluates(tmp_path):
    out = tmp_path / "authors"
    result = run_program("synthesize", f"--output_dir={out}", "--num_train=2", "--num_test=1",
                         "--height=64", "--width=96", "--layout=authors")
    assert result.returncode == 0, result.stderr
    assert sorted(p.name for p in (out / "test" / "001").iterdir()) == [
        "input_1.tif", "input_2.tif", "input_3.tif", "input_exp.txt", "ref_hdr.hdr"]
    trained = run_program("train", f"--data_dir={out}", f"--logdir={tmp_path / 'run'}",
                          "--patch_size=64", "--base_filters=8", "--scales=2",
                          "--iterations=2", "--validation=1", "--validation_every=2",
                          "--summary_every=1")
    assert trained.returncode == 0, trained.stderr
    assert json.loads(trained.stdout.splitlines()[-1])["final_step"] == 2
    scored = run_program("evaluate", f"--checkpoint={tmp_path / 'run'}", f"--data_dir={out}",
                         f"--output_dir={tmp_path / 'eval'}")
    assert scored.returncode == 0, scored.stderr
    metrics = json.loads((tmp_path / "eval" / "metrics.json").read_text())
    assert [s["scene"] for s in metrics["scenes"]] == ["001"] and metrics["align"] == "none"


@pytest.mark.slow
def test_a_set_in_the_ntire_layout_trains_and_evaluates_like_its_kalantari_twin(tmp_path):
    """hdr-gan-synth --layout=ntire trains a few iterations; evaluating it merges the very
    images that a Kalantari-layout twin holding the same decoded LDRs and EVs gives, and those
    images scored against the NTIRE ground truth are its numbers."""
    from hdr_gan_tf import data, evaluation
    from hdr_gan_tf.image_io import write_hdr, write_ldr

    out = tmp_path / "ntire"
    result = run_program("synthesize", f"--output_dir={out}", "--num_train=2", "--num_test=1",
                         "--height=64", "--width=96", "--layout=ntire")
    assert result.returncode == 0, result.stderr
    assert sorted(p.name for p in (out / "Test").iterdir()) == [
        f"0003_{part}" for part in ("alignratio.npy", "exposures.npy", "gt.png", "long.png",
                                    "medium.png", "short.png")]
    run = tmp_path / "run"
    trained = run_program("train", f"--data_dir={out}", f"--logdir={run}", "--patch_size=64",
                          "--base_filters=8", "--scales=2", "--iterations=2", "--validation=1",
                          "--validation_every=2", "--summary_every=1")
    assert trained.returncode == 0, trained.stderr
    assert json.loads(trained.stdout.splitlines()[-1])["final_step"] == 2
    scene = data.open_split(out, data.TEST_SPLIT)[0]
    twin = tmp_path / "twin" / "Test" / "0003"
    for i, ldr in enumerate(scene.ldrs):
        write_ldr(twin / f"IMG_{i}.tif", ldr / 65535, 16)
    (twin / "exposure.txt").write_text(" ".join(map(str, scene.exposure_bias.tolist())))
    write_hdr(twin / "HDRImg.hdr", scene.hdr)
    for root, name in ((out, "eval"), (tmp_path / "twin", "eval_twin")):
        scored = run_program("evaluate", f"--checkpoint={run}", f"--data_dir={root}",
                             f"--output_dir={tmp_path / name}")
        assert scored.returncode == 0, scored.stderr
    merged = tmp_path / "eval" / "0003" / "hdr_main.exr"
    np.testing.assert_array_equal(read_hdr(merged),
                                  read_hdr(tmp_path / "eval_twin" / "0003" / "hdr_main.exr"))
    row = json.loads((tmp_path / "eval" / "metrics.json").read_text())["scenes"][0]
    again = evaluation.score_predictions({"0003": merged}, [scene])[0]
    for key in METRICS:
        assert again[key] == pytest.approx(row[f"{key}_main"], rel=1e-6, abs=1e-6), key
