"""hdr-gan-convert-tf1 and hdr-gan-export, and the deploying guide's examples run as written."""

import json
import shutil

import numpy as np
import pytest
import tensorflow as tf

from hdr_gan_tf.image_io import read_hdr
from tests.helpers import REPO as REPO_ROOT
from tests.helpers import (run_program, run_programs)

pytestmark = pytest.mark.slow


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
