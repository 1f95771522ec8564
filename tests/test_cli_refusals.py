"""Refusals and accidents across the programs: bad data and flags, SIGTERM, damaged log dirs,
a full disk and hostile inputs, each one error line and nothing lost."""

import json
import os
import shutil
import subprocess
from pathlib import Path

import numpy as np
import pytest
import tensorflow as tf

from hdr_gan_tf.image_io import write_ldr
from tests.helpers import (assert_each_refused, log_dir_holder, run_program, run_programs,
                           tiny_filesystem)

pytestmark = pytest.mark.slow


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
    assert "none of them can be read; set --restart" in status["unreadable"][1]
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
        "center_crop under what the metrics need": (
            "evaluate", [f"--checkpoint={converted}", "--center_crop=12,12", *evaluate],
            "--center_crop=12,12: takes two whole numbers of pixels H,W of at least 15"),
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
