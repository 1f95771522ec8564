"""The command-line programs, run as a user runs them (subprocesses)."""

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import tensorflow as tf

from hdr_gan_tf.image_io import read_hdr, write_hdr, write_ldr
from tests.helpers import REPO as REPO_ROOT
from tests.helpers import (assert_each_refused, log_dir_holder, run_program, run_programs,
                           tiny_filesystem)

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def converted(golden_checkpoint, tmp_path_factory):
    out = tmp_path_factory.mktemp("converted") / "paper"
    result = run_program("convert_tf1", f"--tf1_checkpoint={golden_checkpoint}",
                         f"--output_dir={out}")
    assert result.returncode == 0, result.stderr
    return out


@pytest.fixture(scope="module")
def exported(converted, tmp_path_factory):
    out = tmp_path_factory.mktemp("export") / "saved"
    keras_file = out.parent / "generator.keras"
    result = run_program("export", f"--checkpoint={converted}", f"--output_dir={out}",
                         f"--keras_file={keras_file}")
    assert result.returncode == 0, result.stderr
    assert keras_file.is_file()
    return out


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
    for key in ("psnr_mu", "psnr_l", "ssim_mu", "ssim_l", "pu21_psnr", "pu21_ssim"):
        assert again[key] == pytest.approx(row[f"{key}_main"], rel=1e-6, abs=1e-6), key


def test_programs_import_side_by_side_and_only_they_use_flags():
    """Every program module imports next to every other (flags are defined when a program
    runs), and no library module touches absl flags."""
    import ast
    import importlib

    from absl import flags

    from tests.helpers import REPO

    programs = ["train", "evaluate", "infer", "export", "convert_tf1", "synthesize"]
    defined = set(flags.FLAGS)
    for name in programs:
        assert callable(importlib.import_module(f"hdr_gan_tf.cli.{name}").run)
    assert set(flags.FLAGS) == defined
    for path in (REPO / "hdr_gan_tf").rglob("*.py"):
        if "cli" in path.relative_to(REPO / "hdr_gan_tf").parts:
            continue
        for node in ast.walk(ast.parse(path.read_text())):
            names = ([node.module or ""] + [a.name for a in node.names]
                     if isinstance(node, ast.ImportFrom) else
                     [a.name for a in node.names] if isinstance(node, ast.Import) else [])
            assert not any(n.startswith("absl") for n in names), path


def test_programs_say_only_their_own_lines_on_a_machine_without_a_gpu(tmp_path):
    """TensorFlow's start-up chatter (CUDA probing included) is held back unless the user
    set TF_CPP_MIN_LOG_LEVEL; an error is then the one line on stderr."""
    from hdr_gan_tf.cli.common import _STARTUP_CHATTER, gpu_driver_present

    if gpu_driver_present():
        pytest.skip("with an NVIDIA driver TensorFlow's CUDA lines are shown on purpose")
    args = ["--checkpoint=" + str(tmp_path / "nowhere"), f"--output_dir={tmp_path / 'out'}"]
    result = run_program("export", *args, in_process=False)
    assert result.returncode == 2
    assert result.stderr.splitlines() == [
        f"error: {tmp_path / 'nowhere'}: neither a log dir nor a checkpoint (no nowhere.index)"]
    chatty = run_program("export", *args, env={"TF_CPP_MIN_LOG_LEVEL": "0"})
    # What TensorFlow says differs by CPU (oneDNN's notice, the CPU features it was built for).
    assert chatty.returncode == 2 and len(chatty.stderr.splitlines()) > 1
    assert any(_STARTUP_CHATTER.match(line) for line in chatty.stderr.splitlines())


def test_every_flag_file_parses_into_the_configuration_it_describes():
    """In this process, the trainer's flags defined for the parses only (as `run_program` runs
    a program here), which spares a TensorFlow start."""
    from hdr_gan_tf.cli import train
    from hdr_gan_tf.cli.common import flags_defined
    from tests.helpers import REPO

    cwd, configs = os.getcwd(), {}
    with flags_defined(train.define_flags) as flags:
        try:
            os.chdir(REPO)
            for path in sorted(Path("experiments").glob("*.flags")):
                flags.unparse_flags()
                flags(["hdr-gan-train", f"--flagfile={path}"])
                configs[path.name] = json.loads(json.dumps(train.resolve_config().flat()))
        finally:
            os.chdir(cwd)
            flags.unparse_flags()
    assert len(configs) == len(list((REPO / "experiments").glob("*.flags"))) >= 9
    released, paper = configs["released.flags"], configs["paper.flags"]
    assert (released["patch_size"], released["ldr_bits"], released["sphere_reference"]) == (
        512, 8, "first_axis")
    assert (released["summary_every"], released["checkpoint_every"]) == (200, 1000)
    assert (paper["patch_size"], paper["ldr_bits"], paper["gan_weight"]) == (256, 16, 1.0)
    for config in (released, paper):
        assert config["iterations"] == 1_215_000 and config["batch_size"] == 2
        assert config["lr_boundaries"] == [114_300, 706_400]  # (tuples become JSON lists)
        assert config["lr_values"] == [1e-4, 1e-5, 1e-6]
    assert configs["ablation_scales4.flags"]["scales"] == 4
    assert configs["ablation_no_discriminator.flags"]["use_discriminator"] is False
    assert configs["demo.flags"]["gan_weight"] == 0.01


def test_convert_then_export_reproduces_the_golden_output(exported, golden):
    serve = tf.saved_model.load(str(exported)).signatures["serving_default"]
    out = serve(ldr_short=tf.constant(golden["ldr_short"]), ldr_mid=tf.constant(golden["ldr_mid"]),
                ldr_long=tf.constant(golden["ldr_long"]),
                exposure_bias=tf.constant(golden["exposure_bias"]))
    assert np.abs(out["tonemapped"].numpy() - (golden["out_2"] + 1) / 2).max() <= 1e-5
    aux = ((1 + 5000.0) ** ((golden["out_1"] + 1) / 2) - 1) / 5000.0
    assert np.abs(out["hdr_aux"].numpy() - aux).max() <= 1e-5


def test_export_overwrite_cannot_destroy_its_input_or_the_working_folder(converted, exported,
                                                                        tmp_path):
    """`hdr-gan-export --checkpoint=runs/x --output_dir=runs/x --overwrite` once exported and
    then deleted every checkpoint of runs/x."""
    logdir = tmp_path / "x"
    shutil.copytree(converted, logdir)
    before = sorted(p.name for p in logdir.iterdir())
    photos = tmp_path / "photos"
    photos.mkdir()
    (photos / "holiday.jpg").write_text("precious")
    targets = (logdir, tmp_path, ".", "..", photos)
    results = run_programs({target: ("export", [
        f"--checkpoint={logdir}", f"--output_dir={target}", "--overwrite"])
        for target in targets})
    for target, result in results.items():
        assert result.returncode == 2, result.stderr
        if target == photos:  # a folder of something else
            assert "not an earlier output of hdr-gan-export" in result.stderr
        else:
            assert result.stderr.startswith(f"error: {target}: refusing to write here")
    assert sorted(p.name for p in logdir.iterdir()) == before
    assert (photos / "holiday.jpg").read_text() == "precious"
    # An earlier export is replaced.
    again = run_program("export", f"--checkpoint={converted}", f"--output_dir={exported}",
                        "--overwrite")
    assert again.returncode == 0, again.stderr
    assert (exported / "saved_model.pb").is_file()


def test_converter_names_a_mis_shaped_variable(golden_checkpoint, tmp_path):
    from tests.helpers import rewrite_tf1_checkpoint
    (tmp_path / "tf1").mkdir()
    bad = rewrite_tf1_checkpoint(golden_checkpoint, tmp_path / "tf1" / "model",
                              reshape="UnetppGeneratorS/output_2/kernel")
    result = run_program("convert_tf1", f"--tf1_checkpoint={bad}", f"--output_dir={tmp_path}/o")
    assert result.returncode == 2
    assert "UnetppGeneratorS/output_2/kernel" in result.stderr
    assert not (tmp_path / "o").exists()
    missing = run_program("convert_tf1", f"--tf1_checkpoint={tmp_path}/tf1/nothing",
                          f"--output_dir={tmp_path}/o")
    assert missing.returncode == 2 and "not a readable TensorFlow checkpoint" in missing.stderr
    inside = run_program("convert_tf1", f"--tf1_checkpoint={bad}",
                         f"--output_dir={tmp_path}/tf1/converted")
    assert inside.returncode == 2 and "lies inside the input" in inside.stderr


def test_evaluate_writes_metrics_outputs_and_panels(converted, exported, tiny_data, tmp_path):
    out = tmp_path / "eval"
    result = run_program("evaluate", f"--checkpoint={converted}", f"--data_dir={tiny_data}",
                         f"--output_dir={out}")
    assert result.returncode == 0, result.stderr
    metrics = json.loads((out / "metrics.json").read_text())
    assert [s["scene"] for s in metrics["scenes"]] == ["001", "002"]
    for key in ("psnr_mu_main", "psnr_l_main", "ssim_mu_main", "ssim_l_main", "psnr_mu_aux1",
                "pu21_psnr_main", "pu21_ssim_main", "pu21_psnr_aux1", "pu21_ssim_aux1"):
        assert metrics["mean"][key] == pytest.approx(
            np.mean([s[key] for s in metrics["scenes"]]))
    assert metrics["pu21_display_peak"] == 4000
    assert "ground-truth peak shown at 4000 cd/m²" in result.stdout
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
        for key in ("psnr_mu", "psnr_l", "ssim_mu", "ssim_l", "pu21_psnr", "pu21_ssim"):
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


@pytest.fixture()
def photos(tiny_data, tmp_path):
    """A scene's three LDRs copied under shuffled names, plus its EVs."""
    scene = tiny_data / "Test" / "002"
    ev = [float(v) for v in (scene / "exposure.txt").read_text().split()]
    files = sorted(scene.glob("*.tif"))
    target = tmp_path / "shoot"
    target.mkdir()
    names = ["c_long.tif", "a_short.tif", "b_mid.tif"]
    for src, name in zip([files[2], files[0], files[1]], names):
        shutil.copy(src, target / name)
    return [target / n for n in names], [ev[2], ev[0], ev[1]]


def test_infer_sorts_by_exposure_and_writes_hdr_exr_and_preview(converted, photos, tmp_path):
    paths, ev = photos
    out = tmp_path / "merged.hdr"
    result = run_program("infer", f"--checkpoint={converted}",
                         f"--inputs={','.join(map(str, paths))}",
                         f"--exposure_bias={','.join(map(str, ev))}", f"--output={out}", "--exr")
    assert result.returncode == 0, result.stderr
    hdr = read_hdr(out)
    assert hdr.shape == (96, 128, 3) and np.isfinite(hdr).all()
    # Radiance RGBE shares one exponent per pixel: compare relative to each pixel's maximum.
    exr = read_hdr(out.with_suffix(".exr"))
    assert np.all(np.abs(exr - hdr) <= 0.01 * exr.max(axis=-1, keepdims=True) + 1e-7)
    assert out.with_suffix(".png").stat().st_size > 1000
    # The sidecar: the photos short to long with their EVs and where those came from, the
    # model, the options and the files written.
    record = json.loads(out.with_suffix(".json").read_text())
    assert [(Path(p["path"]).name, p["ev"], p["role"]) for p in record["photos"]] == [
        ("a_short.tif", sorted(ev)[0], "short"), ("b_mid.tif", sorted(ev)[1], "reference"),
        ("c_long.tif", sorted(ev)[2], "long")]
    # Aligned by default: the reference stays, each other photo says how it was mapped.
    assert record["photos"][1]["homography_reference_to_photo"] == np.eye(3).tolist()
    assert [p["alignment"]["requested"] for p in record["photos"]] == ["auto"] * 3
    assert record["ev_source"] == "--exposure_bias" and record["reference"].endswith("b_mid.tif")
    assert record["merged_by"].startswith(str(converted)) and record["size"] == [128, 96]
    assert record["options"]["tile"] == 0 and record["options"]["precision"] == "float32"
    assert record["outputs"] == [str(out), str(out.with_suffix(".exr"))]
    # exposure.txt beside the photos gives the same result (its order is file-name order).
    (paths[0].parent / "exposure.txt").write_text("\n".join(map(str, sorted(ev))))
    out2 = tmp_path / "merged2.hdr"
    result = run_program("infer", f"--checkpoint={converted}",
                         f"--inputs={','.join(map(str, paths))}", f"--output={out2}")
    assert result.returncode == 0, result.stderr
    np.testing.assert_array_equal(read_hdr(out2), hdr)
    assert json.loads(out2.with_suffix(".json").read_text())["ev_source"] == str(
        paths[0].parent / "exposure.txt")



def test_tiled_infer_streams_the_result_to_the_hdr_file(converted, photos, tmp_path):
    from hdr_gan_tf.checkpoints import restore_generator
    from hdr_gan_tf.image_io import read_ldr
    from hdr_gan_tf.merge_files import streams
    from hdr_gan_tf.merge import InferenceOptions, generator_merger
    from hdr_gan_tf.photos import load_bracket

    paths, ev = photos
    out = tmp_path / "streamed.hdr"
    result = run_program("infer", f"--checkpoint={converted}",
                         f"--inputs={','.join(map(str, paths))}",
                         f"--exposure_bias={','.join(map(str, ev))}", f"--output={out}",
                         "--tile=32", "--overlap=12", "--exr", "--align=none")
    assert result.returncode == 0, result.stderr
    assert streams(32) and not streams(0)
    assert "tile 30/30" in result.stdout and "min left" in result.stdout
    # The same tiled merge held in memory and written by OpenCV decodes to the same values.
    generator, _, _ = restore_generator(converted)
    merge = generator_merger(generator, ["aux1", "main"],
                             options=InferenceOptions(tile=32, overlap=12))
    ldrs, sorted_ev = load_bracket(paths, ev)[:2]
    whole = merge(ldrs, sorted_ev)["main"]
    write_hdr(tmp_path / "whole.hdr", whole)
    np.testing.assert_array_equal(read_hdr(out), read_hdr(tmp_path / "whole.hdr"))
    # and the streamed .exr copy holds the half floats the whole-image .exr writer stores.
    write_hdr(tmp_path / "whole.exr", whole)
    np.testing.assert_array_equal(read_hdr(out.with_suffix(".exr")),
                                  read_hdr(tmp_path / "whole.exr"))
    assert read_ldr(out.with_suffix(".png")).shape == (96, 128, 3)


def test_the_classical_merge_infers_and_evaluates_without_a_model(photos, tiny_data,
                                                                  tmp_path):
    from hdr_gan_tf.classical import debevec_merge
    from hdr_gan_tf.photos import load_bracket

    paths, ev = photos
    merged = tmp_path / "debevec.hdr"
    streamed = tmp_path / "debevec_streamed.exr"
    results = run_programs({
        name: ("infer", ["--method=debevec", f"--inputs={','.join(map(str, paths))}",
                         f"--exposure_bias={','.join(map(str, ev))}", f"--output={out}",
                         "--align=none", *extra])
        for name, out, extra in (("whole", merged, []),
                                 ("tiled", streamed, ["--tile=64", "--overlap=8"]))})
    for result in results.values():
        assert result.returncode == 0, result.stderr
    ldrs, sorted_ev = load_bracket(paths, ev)[:2]
    expected = tmp_path / "expected.hdr"
    write_hdr(expected, debevec_merge(ldrs, sorted_ev))
    np.testing.assert_array_equal(read_hdr(merged), read_hdr(expected))
    write_hdr(expected.with_suffix(".exr"), debevec_merge(ldrs, sorted_ev))
    np.testing.assert_array_equal(read_hdr(streamed), read_hdr(expected.with_suffix(".exr")))
    scored = run_program("evaluate", "--method=debevec", f"--data_dir={tiny_data}",
                         f"--output_dir={tmp_path / 'eval'}")
    assert scored.returncode == 0, scored.stderr
    metrics = json.loads((tmp_path / "eval" / "metrics.json").read_text())
    assert set(metrics["mean"]) == {"scene"} | {f"{m}_main" for m in (
        "psnr_mu", "psnr_l", "ssim_mu", "ssim_l", "pu21_psnr", "pu21_ssim")}
    assert 10 < metrics["mean"]["psnr_mu_main"] < 60


def test_a_longer_bracket_merges_the_three_its_evs_choose_or_the_flags_name(tiny_data,
                                                                             tmp_path):
    """Five photos at -4..+4 EV (made from a scene's radiance, given shuffled): the reference is
    the middle one, short and long the farthest within 3 EV of it (-2, +2), exactly as if only
    those three were given; --short picks another; the sidecar says which were used."""
    from hdr_gan_tf.image_io import write_ldr

    radiance = read_hdr(tiny_data / "Test" / "001" / "HDRImg.hdr")
    shoot = tmp_path / "shoot"
    shoot.mkdir()
    photos = {}
    for name, ev in zip("abcde", (-4, -2, 0, 2, 4)):
        photos[ev] = shoot / f"{name}.tif"
        write_ldr(photos[ev], np.clip((radiance * 2.0 ** (ev + 4)) ** (1 / 2.2), 0, 1), 16)
    (shoot / "exposure.txt").write_text("-4\n-2\n0\n2\n4\n")  # file-name order a..e

    def infer(name, *args):
        return name, ("infer", ["--method=debevec", f"--output={tmp_path / name}.hdr", *args])

    results = run_programs(dict([
        infer("five", f"--inputs={','.join(str(photos[ev]) for ev in (4, -4, 0, 2, -2))}"),
        infer("three", f"--inputs={photos[2]},{photos[-2]},{photos[0]}",
              "--exposure_bias=2,-2,0"),
        infer("short", f"--inputs={','.join(str(p) for p in photos.values())}",
              f"--short={photos[-4]}"),
        infer("not in it", f"--inputs={','.join(str(p) for p in photos.values())}",
              f"--long={tiny_data / 'Test' / '001' / 'HDRImg.hdr'}")]))
    for name in ("five", "three", "short"):
        assert results[name].returncode == 0, (name, results[name].stderr)
    np.testing.assert_array_equal(read_hdr(tmp_path / "five.hdr"),
                                  read_hdr(tmp_path / "three.hdr"))
    assert not np.array_equal(read_hdr(tmp_path / "short.hdr"), read_hdr(tmp_path / "five.hdr"))
    record = json.loads((tmp_path / "five.json").read_text())
    assert [(p["ev"], p["role"]) for p in record["photos"]] == [
        (-4, "unused"), (-2, "short"), (0, "reference"), (2, "long"), (4, "unused")]
    assert record["ev_source"] == str(shoot / "exposure.txt")
    assert "nearest the middle EV" in record["chosen_by"]
    record = json.loads((tmp_path / "short.json").read_text())
    assert [p["role"] for p in record["photos"]] == [
        "short", "unused", "reference", "long", "unused"]
    assert record["chosen_by"].startswith("short given")
    assert results["not in it"].returncode == 2
    assert "--long=" in results["not in it"].stderr and "not one of the bracket's photos" in (
        results["not in it"].stderr)


def test_infer_reads_exif_exposure_times(converted, tiny_data, tmp_path):
    from PIL import Image
    from hdr_gan_tf.image_io import read_ldr
    scene = tiny_data / "Test" / "001"
    paths = []
    for i, (src, seconds) in enumerate(zip(sorted(scene.glob("*.tif")), (1 / 400, 1 / 100,
                                                                         1 / 25))):
        image = Image.fromarray((read_ldr(src) * 255).round().astype(np.uint8))
        exif = Image.Exif()
        exif.get_ifd(0x8769)[0x829A] = seconds
        path = tmp_path / f"p{i}.jpg"
        image.save(path, exif=exif, quality=95)
        paths.append(path)
    out = tmp_path / "exif.hdr"
    result = run_program("infer", f"--checkpoint={converted}",
                         f"--inputs={paths[2]},{paths[0]},{paths[1]}", f"--output={out}")
    assert result.returncode == 0, result.stderr
    assert "EV [0.0, 2.0, 4.0]" in result.stdout
    assert out.is_file()


def test_infer_batch_mode(converted, tiny_data, tmp_path):
    shutil.copytree(tiny_data / "Test", tmp_path / "in")
    result = run_program("infer", f"--checkpoint={converted}", f"--input_dir={tmp_path / 'in'}",
                         f"--output_dir={tmp_path / 'out'}")
    assert result.returncode == 0, result.stderr
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == [
        "001.hdr", "001.json", "001.png", "002.hdr", "002.json", "002.png"]


def _other_configuration(converted, tmp_path):
    other = tmp_path / "other"
    shutil.copytree(converted, other)
    config = json.loads((other / "config.json").read_text())
    config["model"]["scales"] = 2
    (other / "config.json").write_text(json.dumps(config))
    return other


@pytest.mark.parametrize("case", ["sizes", "count", "unreadable", "same_exposure",
                                  "no_exposures", "existing_output", "other_configuration"])
def test_infer_bad_input_exits_2_without_output(converted, photos, tmp_path, case):
    paths, ev = photos
    out = tmp_path / "result.hdr"
    args = {"inputs": [str(p) for p in paths], "ev": [str(v) for v in ev],
            "checkpoint": converted}
    expected = {
        "sizes": "photos differ in size", "count": "a bracket is 3 to 9 photos",
        "unreadable": "refusing to decode it", "same_exposure": "increase strictly",
        "no_exposures": "no exposures given", "existing_output": "output exists",
        "other_configuration": "does not match the configuration"}[case]
    if case == "sizes":
        write_ldr(paths[1], np.zeros((64, 64, 3)), 16)
    elif case == "count":
        args["inputs"], args["ev"] = args["inputs"][:2], args["ev"][:2]
    elif case == "unreadable":
        paths[0].write_bytes(b"not an image at all")
    elif case == "same_exposure":
        args["ev"] = ["0", "0", "2"]
    elif case == "no_exposures":
        args["ev"] = []
    elif case == "existing_output":
        out.write_bytes(b"earlier result")
    elif case == "other_configuration":
        args["checkpoint"] = _other_configuration(converted, tmp_path)
    flags = [f"--checkpoint={args['checkpoint']}", f"--inputs={','.join(args['inputs'])}",
             f"--output={out}"]
    if args["ev"]:
        flags.append(f"--exposure_bias={','.join(args['ev'])}")
    result = run_program("infer", *flags)
    assert result.returncode == 2, result.stdout + result.stderr
    assert expected in result.stderr and "Traceback" not in result.stderr
    if case == "existing_output":
        assert out.read_bytes() == b"earlier result"
    else:
        assert not out.exists() and not out.with_suffix(".png").exists()
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".result")]  # no temp files


def test_train_refuses_bad_data_before_writing_anything(tiny_data, tmp_path):
    root = tmp_path / "data"
    shutil.copytree(tiny_data, root)
    (root / "Training" / "003" / "exposure.txt").write_text("0\n2\n")
    logdir = tmp_path / "run"
    result = run_program("train", f"--data_dir={root}", f"--logdir={logdir}", "--patch_size=64",
                         "--iterations=2")
    assert result.returncode == 2
    assert "scene '003'" in result.stderr and "expected 3 exposure values" in result.stderr
    assert not logdir.exists()


def _doc_section(document, title):
    text = (REPO_ROOT / document).read_text()
    start = text.index(f"## {title}\n")
    end = text.find("\n## ", start + 3)
    return text[start:end if end > 0 else None]


def test_the_deploying_examples_run_as_written(converted, tmp_path):
    """Every code block of docs/deploying.md's examples, run in a folder holding
    `checkpoints/paper` and three 16-bit photos (a 125x190 crop of real ones at -3/0/+3 EV:
    neither side a multiple of 4); then the exported ONNX model against the SavedModel."""
    import os
    import re
    import subprocess
    import sys

    import cv2

    from tests.helpers import GOLDEN_LARGE

    work = tmp_path / "deploy"
    shutil.copytree(converted, work / "checkpoints" / "paper")
    golden = dict(np.load(GOLDEN_LARGE / "golden_large.npz"))
    for name in ("short", "mid", "long"):
        cv2.imwrite(str(work / f"{name}.tif"),
                    np.ascontiguousarray(golden[f"ldr_{name}"][0, :125, :190, ::-1]))
    env = dict(os.environ, PYTHONPATH=str(REPO_ROOT), TF_CPP_MIN_LOG_LEVEL="2",
               PATH=os.path.dirname(sys.executable) + os.pathsep + os.environ["PATH"])
    blocks = re.findall(r"```(bash|python)\n(.*?)```",
                        _doc_section("docs/deploying.md", "Examples"), re.S)
    assert [kind for kind, _ in blocks] == ["bash", "bash", "python", "python"]
    for kind, code in blocks:
        command = ["bash", "-e", "-c", code] if kind == "bash" else [sys.executable, "-c", code]
        result = subprocess.run(command, cwd=work, env=env, capture_output=True, text=True,
                                timeout=600)
        assert result.returncode == 0, (code, result.stdout[-2000:], result.stderr[-3000:])
    # saved_model_cli merged its bracket; the REST request holds the photos by input name,
    # which the SavedModel's signature takes as TensorFlow Serving would pass them.
    cli_hdr = np.load(work / "merged" / "hdr.npy")
    assert cli_hdr.shape == (1, 125, 190, 3)
    request = json.loads((work / "request.json").read_text())
    serve = tf.saved_model.load(str(work / "export/hdr_gan/1")).signatures["serving_default"]
    served = serve(**{k: tf.constant(v, tf.float32) for k, v in request["inputs"].items()})
    # onnxruntime's merge of the same photos, written by OpenCV as Radiance RGBE (one shared
    # exponent per pixel: compare relative to each pixel's largest channel).
    onnx_hdr = read_hdr(work / "merged_onnx.hdr")
    tf_hdr = served["hdr"][0].numpy()
    assert onnx_hdr.shape == tf_hdr.shape == (125, 190, 3)
    assert np.all(np.abs(onnx_hdr - tf_hdr) <= 0.01 * tf_hdr.max(axis=-1, keepdims=True) + 1e-6)
    assert (work / "merged_onnx.png").stat().st_size > 1000
    np.testing.assert_allclose(cli_hdr[0], tf_hdr, atol=1e-6)
    assert tf_hdr.max() > 0.01  # a real merge, not a blank image
    # The exported ONNX model, every output by name, against the SavedModel: linear HDR
    # clipped to [0, 1] to 1e-4 (docs/deploying.md gives the measured difference).
    import onnxruntime

    session = onnxruntime.InferenceSession(str(work / "export/hdr_gan.onnx"),
                                           providers=["CPUExecutionProvider"])
    inputs = {name: np.asarray(value, np.float32) for name, value in request["inputs"].items()}
    assert sorted(i.name for i in session.get_inputs()) == sorted(inputs)
    names = [o.name for o in session.get_outputs()]
    assert sorted(names) == sorted(served) == ["hdr", "hdr_aux", "tonemapped"]
    for name, got in zip(names, session.run(names, inputs)):
        assert got.shape == (1, 125, 190, 3)
        difference = np.abs(np.clip(got, 0, 1) - np.clip(served[name].numpy(), 0, 1)).max()
        assert difference <= 1e-4, (name, difference)


def test_gpu_check_says_no_gpu_and_succeeds_without_one(tmp_path):
    import os
    import subprocess

    from hdr_gan_tf.cli.common import gpu_driver_present

    if gpu_driver_present():
        pytest.skip("this machine has an NVIDIA driver; the script would run the GPU checks")
    out = tmp_path / "gpu.json"
    result = subprocess.run(["bash", str(REPO_ROOT / "experiments/gpu_check.sh"), str(out)],
                            capture_output=True, text=True, timeout=600, cwd=tmp_path,
                            env=dict(os.environ, GPU_CHECK_SMOKE="0"))
    assert result.returncode == 0, result.stdout + result.stderr
    assert result.stdout.startswith("no GPU: ")
    collected = subprocess.run([sys.executable, "-m", "pytest", "--collect-only", "-q", "-n",
                                "0", "-m", "gpu", "tests/test_gpu.py"], capture_output=True,
                               text=True, cwd=REPO_ROOT, timeout=120)
    expected = sum(line.startswith("tests/test_gpu.py::") for line in
                   collected.stdout.splitlines())
    assert expected >= 4 and f"{expected} skipped" in result.stdout, result.stdout[-500:]
    assert json.loads(out.read_text())["gpu"] is None


def _saved_model_without_serving_default(folder):
    module = tf.Module()
    module.scale = tf.Variable(2.0)
    module.double = tf.function(lambda x: module.scale * x,
                                input_signature=[tf.TensorSpec([None], tf.float32)])
    tf.saved_model.save(module, str(folder), signatures={"double": module.double})
    return folder


def test_each_bad_flag_gives_one_error_line_and_exit_2(converted, photos, tiny_data, tmp_path):
    """Run side by side (each is a fresh process that stops before any work)."""
    paths, ev = photos
    bracket = [f"--checkpoint={converted}", f"--inputs={','.join(map(str, paths))}",
               f"--exposure_bias={','.join(map(str, ev))}", f"--output={tmp_path / 'o.hdr'}"]
    train = [f"--data_dir={tiny_data}", f"--logdir={tmp_path / 'run'}"]
    broken_data = tmp_path / "broken_data"  # would fail when decoded: flags are checked first
    shutil.copytree(tiny_data, broken_data)
    (broken_data / "Training" / "003" / "exposure.txt").write_text("0\n2\n")
    no_default = _saved_model_without_serving_default(tmp_path / "other_model")
    cases = {
        "overlap negative": ("infer", [*bracket, "--tile=64", "--overlap=-1"], "--overlap"),
        "overlap half the tile": ("infer", [*bracket, "--tile=64", "--overlap=32"],
                                  "--overlap"),
        "summary_every 0": ("train", [*train, "--summary_every=0"], "--summary_every"),
        "checkpoint_every 0": ("train", [*train, "--checkpoint_every=0"],
                               "--checkpoint_every"),
        "batch_size 0": ("train", [*train, "--batch_size=0"], "--batch_size"),
        "mu 0": ("train", [*train, "--mu=0"], "--mu"),
        "mu nan": ("train", [*train, "--mu=nan"], "--mu"),
        "not a number": ("train", [*train, "--batch_size=two"], "batch_size"),
        "unknown flag": ("train", [*train, "--no_such_flag=1"], "no_such_flag"),
        "branch before data": ("train", [f"--data_dir={broken_data}", "--supervise=nosuch",
                                         f"--logdir={tmp_path / 'run'}"],
                               "--supervise: unknown branches ['nosuch']"),
        "patch before data": ("train", [f"--data_dir={broken_data}", "--patch_size=32",
                                        f"--logdir={tmp_path / 'run'}"],
                              "--patch_size: 32: the discriminator needs patches"),
        "lr list": ("train", [*train, "--lr_values=1e-4,x,1"], "--lr_values: must be a"),
        "protocol and its own flags": ("evaluate", [f"--checkpoint={converted}",
                                                    "--protocol=paper", "--ldr_bits=8",
                                                    f"--data_dir={broken_data}",
                                                    f"--output_dir={tmp_path / 'eval'}"],
                                       "--protocol=paper: fixes the crop and the LDR bits; "
                                       "give it or --ldr_bits, not both"),
        "paper crop on small scenes": ("evaluate", [f"--checkpoint={converted}",
                                                    "--protocol=paper", f"--data_dir={tiny_data}",
                                                    f"--output_dir={tmp_path / 'eval'}"],
                                       "scene 001: a centred 960x1440 crop is larger than the "
                                       "96x128 image"),
        "classical with a model": ("evaluate", [f"--checkpoint={converted}", "--method=debevec",
                                                f"--data_dir={broken_data}",
                                                f"--output_dir={tmp_path / 'eval'}"],
                                   "--method: debevec is a classical merge and takes no model"),
        "no model": ("infer", bracket[1:], "--checkpoint: the network needs a trained model"),
        "display peak 0": ("evaluate", [f"--checkpoint={converted}", "--pu21_display_peak=0",
                                        f"--data_dir={broken_data}",
                                        f"--output_dir={tmp_path / 'eval'}"],
                           "--pu21_display_peak=0.0: give a luminance"),
        "tiles of a SavedModel": ("evaluate", [f"--saved_model={no_default}", "--tile=128",
                                               f"--data_dir={tiny_data}",
                                               f"--output_dir={tmp_path / 'eval'}"],
                                  "--tile: an exported SavedModel merges whole images"),
        "no serving_default": ("evaluate", [f"--saved_model={no_default}",
                                            f"--data_dir={tiny_data}",
                                            f"--output_dir={tmp_path / 'eval'}"],
                               "no serving_default signature"),
    }
    assert_each_refused(cases)
    assert not (tmp_path / "run").exists() and not (tmp_path / "eval").exists()
    assert not (tmp_path / "o.hdr").exists()


def test_sigterm_stops_infer_and_leaves_nothing_half_written(converted, photos, tmp_path):
    import signal
    import subprocess
    import sys

    from tests.helpers import REPO

    paths, ev = photos
    out = tmp_path / "out" / "merged.exr"
    out.parent.mkdir()
    proc = subprocess.Popen(
        [sys.executable, "-m", "hdr_gan_tf.cli.infer", f"--checkpoint={converted}",
         f"--inputs={','.join(map(str, paths))}", f"--exposure_bias={','.join(map(str, ev))}",
         f"--output={out}", "--tile=32", "--overlap=12"],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, cwd=REPO,
        env=dict(os.environ, PYTHONPATH=str(REPO), PYTHONUNBUFFERED="1"))
    for line in proc.stdout:  # the merge is under way, its output file open
        if "tile 2/" in line:
            break
    proc.send_signal(signal.SIGTERM)
    _, err = proc.communicate(timeout=120)
    assert proc.returncode == 143, err
    assert [line for line in err.splitlines() if line.startswith("error:")] == [
        "error: stopped by SIGTERM; nothing half-written was left behind"]
    assert list(out.parent.iterdir()) == []


# ------------------------------------------------------------------ nothing lost, second round
def _copy(src, dst):
    shutil.copytree(src, dst)
    return dst


def _truncate_every_checkpoint(logdir):
    for data in logdir.glob("ckpt-*.data-*"):
        data.write_bytes(data.read_bytes()[:100])


def _train(logdir, data, *extra):
    return ("train", [f"--logdir={logdir}", f"--data_dir={data}", "--patch_size=64",
                      "--validation=0", "--summary_every=1", "--checkpoint_every=1",
                      "--cache=memory", *extra])


def test_a_fine_tuned_log_dir_survives_convert_and_damaged_checkpoint_lists(
        converted, golden_checkpoint, tiny_data, tmp_path):
    """The README's workflow (convert, then fine-tune in place), then what must not lose it:
    converting again over it, a trainer holding it, a damaged `checkpoint` state file, every
    checkpoint unreadable (refused, or --restart keeps them aside), TensorFlow's temporary
    folder of a failed save."""
    ft = _copy(converted, tmp_path / "ft")
    program, args = _train(ft, tiny_data, "--iterations=2")
    first = run_program(program, *args)
    assert first.returncode == 0, first.stderr
    trained = sorted(p.name for p in ft.glob("ckpt-*.index"))
    assert trained == ["ckpt-0.index", "ckpt-1.index", "ckpt-2.index"]
    damaged_state = _copy(ft, tmp_path / "damaged_state")
    (damaged_state / "checkpoint").write_text("model_checkpoint_path: {{{ not a state file")
    (damaged_state / "ckpt-2_temp").mkdir()  # what a save on a full disk leaves
    exported_from_damaged = _copy(damaged_state, tmp_path / "damaged_state_export")
    unreadable = _copy(ft, tmp_path / "unreadable")
    _truncate_every_checkpoint(unreadable)
    restarted = _copy(unreadable, tmp_path / "restarted")
    held = _copy(converted, tmp_path / "held")  # not trained yet, but a trainer holds it
    holder, pid = log_dir_holder(held)
    assert pid == str(holder.pid)
    convert = ["convert_tf1", [f"--tf1_checkpoint={golden_checkpoint}", "--overwrite"]]
    try:
        results = run_programs({
            "convert over fine-tuned": (convert[0], [*convert[1], f"--output_dir={ft}"]),
            "convert over held": (convert[0], [*convert[1], f"--output_dir={held}"]),
            # Restored and found complete: what it checks is reading past the damaged state.
            "resume, damaged state": _train(damaged_state, tiny_data, "--iterations=2"),
            "export, damaged state": ("export", [f"--checkpoint={exported_from_damaged}",
                                                 f"--output_dir={tmp_path / 'export'}"]),
            "unreadable": _train(unreadable, tiny_data, "--iterations=3"),
            "restart": _train(restarted, tiny_data, "--iterations=0", "--restart"),
        })
    finally:
        holder.communicate("")
    status = {name: (r.returncode, r.stdout + r.stderr) for name, r in results.items()}
    assert status["convert over fine-tuned"][0] == 2
    assert "is a training log dir" in status["convert over fine-tuned"][1]
    assert sorted(p.name for p in ft.glob("ckpt-*.index")) == trained
    assert status["convert over held"][0] == 2
    assert f"process {holder.pid}" in status["convert over held"][1]
    assert status["resume, damaged state"][0] == 0, status["resume, damaged state"]
    assert f"Resumed from {damaged_state / 'ckpt-2'} at step 2" in status[
        "resume, damaged state"][1]
    assert not (damaged_state / "ckpt-2_temp").exists()
    assert status["export, damaged state"][0] == 0, status["export, damaged state"]
    assert "ckpt-2" in status["export, damaged state"][1]
    assert status["unreadable"][0] == 2, status["unreadable"]
    assert "none of them can be read; pass --restart" in status["unreadable"][1]
    assert status["restart"][0] == 0, status["restart"]
    aside = list(restarted.glob("before_restart_*"))
    assert len(aside) == 1 and "moved into" in status["restart"][1]
    assert sorted(p.name for p in aside[0].glob("ckpt-*.index")) == trained
    assert (aside[0] / "config.json").is_file() and (aside[0] / "train").is_dir()
    assert json.loads(results["restart"].stdout.splitlines()[-1])["final_step"] == 0


def test_a_full_disk_is_named_by_every_writing_program(converted, photos, tiny_data, tmp_path):
    full = tiny_filesystem(tmp_path / "full", free_kb=40)
    try:
        paths, ev = photos
        results = run_programs({
            "train": _train(full / "run", tiny_data, "--iterations=1", "--base_filters=8",
                            "--scales=2"),
            "export": ("export", [f"--checkpoint={converted}", f"--output_dir={full / 'x'}"]),
            "infer": ("infer", [f"--checkpoint={converted}", f"--output={full / 'm.exr'}",
                                f"--inputs={','.join(map(str, paths))}",
                                f"--exposure_bias={','.join(map(str, ev))}"]),
        })
        leftovers = sorted(p.name for p in (full / "run").iterdir()) if (
            full / "run").exists() else []
        listing = sorted(p.name for p in full.iterdir())
    finally:
        subprocess.run(["umount", str(full)], check=True)
    for name, result in results.items():
        errors = [line for line in result.stderr.splitlines() if line.startswith("error:")]
        assert result.returncode == 2, (name, result.stdout, result.stderr)
        assert len(errors) == 1 and "error: disk full writing " in errors[0], (name, errors)
        assert "Traceback" not in result.stderr and "--tile" not in errors[0]
    assert str(full / "run" / "ckpt-1") in results["train"].stderr
    assert not [n for n in leftovers if n.endswith("_temp")]  # no half-written checkpoint
    assert listing == ["filler", "run"]  # nothing of export or infer left


def test_hostile_inputs_get_one_error_line_naming_the_file_or_flag(converted, exported, photos,
                                                                    tiny_data, tmp_path):
    """Run side by side; each must fail before it writes anything."""
    paths, ev = photos
    bracket = [f"--checkpoint={converted}", f"--inputs={','.join(map(str, paths))}",
               f"--exposure_bias={','.join(map(str, ev))}"]
    truncated = _copy(exported, tmp_path / "truncated_model")
    for data in (truncated / "variables").glob("variables.data-*"):
        data.write_bytes(data.read_bytes()[:1000])
    deep = _copy(converted, tmp_path / "deep")
    (deep / "config.json").write_text("[" * 100000 + "]" * 100000)
    latin = _copy(converted, tmp_path / "latin")
    (latin / "config.json").write_bytes((latin / "config.json").read_bytes() + b"\xff\xfe")
    other_architecture = _copy(converted, tmp_path / "other_architecture")
    (other_architecture / "config.json").unlink()
    tiny = tmp_path / "tiny"
    tiny.mkdir()
    for k, name in enumerate(("s.png", "m.png", "l.png")):
        write_ldr(tiny / name, np.full((1, 1, 3), 0.2 * (k + 1)))
    shoots = _copy(tiny_data / "Test", tmp_path / "shoots")
    a_file = tmp_path / "a_file"
    a_file.write_text("not a folder")
    no_tags = tmp_path / "no_tags"  # a TIFF whose one directory has no entries (no size)
    no_tags.mkdir()
    (no_tags / "a.tif").write_bytes(b"II*\x00\x08\x00\x00\x00\x00\x00" + bytes(8))
    latin_flags = tmp_path / "latin.flags"
    latin_flags.write_bytes(b"--iterations=1\n\xff\xfe\n")
    prefix_dir = _copy(converted, tmp_path / "by_prefix")
    cached = _copy(tiny_data, tmp_path / "data_for_cache")
    photo = Path(bracket[1].split("=", 1)[1].split(",")[0])
    scene_photos = {p: p.read_bytes() for p in shoots.rglob("*") if p.is_file()}
    evaluate = [f"--data_dir={tiny_data}", f"--output_dir={tmp_path / 'eval'}"]
    cases = {
        "truncated SavedModel": ("evaluate", [f"--saved_model={truncated}", *evaluate],
                                 f"{truncated}: this SavedModel cannot be loaded"),
        "config nested too deeply": ("evaluate", [f"--checkpoint={deep}", *evaluate],
                                     f"{deep / 'config.json'}: not a config.json"),
        "config not UTF-8": ("export", [f"--checkpoint={latin}",
                                        f"--output_dir={tmp_path / 'e'}"],
                             f"{latin / 'config.json'}: not UTF-8"),
        "center_crop": ("evaluate", [f"--checkpoint={converted}", "--center_crop=abc,64",
                                     *evaluate], "--center_crop=abc,64"),
        "center_crop under the SSIM window": ("evaluate", [f"--checkpoint={converted}",
                                                           "--center_crop=2,2", *evaluate],
                                              "--center_crop=2,2: takes two whole numbers"),
        "checkpoint of another architecture": (
            "train", [f"--logdir={other_architecture}", f"--data_dir={tiny_data}",
                      "--patch_size=64", "--scales=2", "--cache=memory"],
            f"{other_architecture / 'ckpt-0'}: checkpoint does not fit"),
        "1x1 photos": ("infer", [f"--checkpoint={converted}", f"--output={tmp_path / 't.hdr'}",
                                 f"--inputs={tiny / 's.png'},{tiny / 'm.png'},{tiny / 'l.png'}",
                                 "--exposure_bias=-2,0,2"], f"{tiny / 's.png'}: 1x1 pixels"),
        "the same photo twice": ("infer", [f"--checkpoint={converted}",
                                           f"--inputs={photo},{photo.parent / '.' / photo.name},"
                                           f"{bracket[1].split(',')[1]}",
                                           "--exposure_bias=-2,0,2",
                                           f"--output={tmp_path / 'twice.hdr'}"],
                                 "the same photo as"),
        "an output in the folder of a checkpoint prefix": (
            "infer", [f"--checkpoint={prefix_dir / 'ckpt-0'}", *bracket[1:],
                      f"--output={prefix_dir / 'x.hdr'}"], f"lies inside the input {prefix_dir}"),
        "a TIFF without its size": ("infer", [f"--checkpoint={converted}",
                                              f"--inputs={no_tags / 'a.tif'},"
                                              f"{','.join(bracket[1][9:].split(',')[1:])}",
                                              "--exposure_bias=-2,0,2",
                                              f"--output={tmp_path / 'nt.hdr'}"],
                                    "damaged TIFF header"),
        "a flag file that is no text": ("train", [f"--flagfile={latin_flags}"],
                                        "--flagfile: cannot be read"),
        "a cache inside the data": ("train", [f"--logdir={tmp_path / 'cache_run'}",
                                              f"--data_dir={cached}", "--patch_size=64",
                                              "--cache=disk",
                                              f"--cache_dir={cached / 'Training'}"],
                                    f"lies inside the input {cached}"),
        "a preview that is no picture": ("infer", [*bracket, f"--output={tmp_path / 'p.hdr'}",
                                                   f"--preview={tmp_path / 'p.txt'}"],
                                         "--preview must end in"),
        "log dir is a file": ("train", [f"--logdir={a_file}", f"--data_dir={tiny_data}",
                                        "--patch_size=64", "--cache=memory"],
                              f"{a_file}: exists and is not a folder"),
        "output under a file": ("infer", [*bracket, f"--output={a_file / 'x.hdr'}"],
                                f"cannot be written: {a_file} is a file, not a folder"),
        "preview on the output": ("infer", [*bracket, f"--output={tmp_path / 'o.hdr'}",
                                            f"--preview={tmp_path / 'o.hdr'}"],
                                  "--preview must end in"),
        "preview on an input photo": ("infer", [*bracket, f"--output={tmp_path / 'o.hdr'}",
                                                f"--preview={photo}", "--overwrite"],
                                      "refusing to write here: it is the input"),
        "batch output in a scene folder": (
            "infer", [f"--checkpoint={converted}", f"--input_dir={shoots}",
                      f"--output_dir={shoots / '002'}", "--overwrite"],
            f"lies inside the input {shoots}"),
    }
    results = assert_each_refused(cases)
    assert "Merging" not in results["1x1 photos"].stdout
    assert not (other_architecture / "config.json").exists()  # nothing written
    assert {p: p.read_bytes() for p in shoots.rglob("*") if p.is_file()} == scene_photos
    assert not [p for p in tmp_path.iterdir() if p.name in ("eval", "e", "o.hdr", "o.png",
                                                            "t.hdr")]


def test_train_flags_are_the_configuration_fields_with_their_defaults_and_help():
    """One declaration per setting: `--helpfull` lists every `RunConfig` field as a flag, with
    the field's default and help text (and nothing else of the trainer's own)."""
    import dataclasses
    import re

    from hdr_gan_tf.config import ModelConfig, TrainingConfig

    result = run_program("train", "--helpfull", in_process=False)
    assert result.returncode == 1, result.stderr  # absl's status after printing help
    text = result.stdout
    start = text.index("hdr_gan_tf/cli/train.py:")
    own = text[start:text.find("\n\n", start) if "\n\n" in text[start:] else None]
    listed = re.findall(r"^  --(?:\[no\])?(\w+):", own, re.M)
    fields = [f for part in (ModelConfig, TrainingConfig) for f in dataclasses.fields(part)]
    assert sorted(listed) == sorted(f.name for f in fields)
    flat = " ".join(own.split())
    starts = sorted(re.search(rf"--(\[no\])?{name}: ", flat).start() for name in listed)
    entries = {re.match(r"--(?:\[no\])?(\w+):", flat[a:]).group(1): flat[a:b]
               for a, b in zip(starts, starts[1:] + [len(flat)])}
    for field in fields:
        entry = entries[field.name]
        assert " ".join(field.metadata["help"].split()) in entry, field.name
        default = field.default
        if default is None:  # absl shows no default then
            assert "(default: '" not in entry, field.name
            continue
        shown = ",".join(f"{v:g}" for v in default) if isinstance(default, tuple) else (
            str(default).lower() if isinstance(default, bool) else str(default))
        assert f"(default: '{shown}')" in entry, (field.name, entry[-120:])
