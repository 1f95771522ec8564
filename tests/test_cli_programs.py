"""What every program shares: importing side by side, their output on a machine without a
GPU, flag files and the training flags generated from the configuration."""

import json
import os
import sys
from pathlib import Path

import pytest

from tests.helpers import REPO as REPO_ROOT
from tests.helpers import run_program

pytestmark = pytest.mark.slow


def test_programs_import_side_by_side_and_only_they_use_flags():
    """Every program module imports next to every other (flags are defined when a program
    runs), and no library module touches absl flags."""
    import ast
    import importlib

    from absl import flags

    from tests.helpers import REPO

    import re

    # Every console script of setup.py, so that a new program is checked too.
    programs = re.findall(r"hdr_gan_tf\.cli\.(\w+):run", (REPO / "setup.py").read_text())
    assert "app" in programs and "train" in programs
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


def test_train_flags_are_the_configuration_fields_with_their_defaults_and_help():
    """One declaration per setting: `--helpfull` lists every `RunConfig` field as a flag, with
    the field's default and help text (and nothing else of the trainer's own)."""
    import dataclasses
    import re

    from hdr_gan_tf.cli.common import spelled
    from hdr_gan_tf.config import ModelConfig, TrainingConfig

    result = run_program("train", "--helpfull", in_process=False)
    assert result.returncode == 1, result.stderr  # absl's status after printing help
    text = result.stdout
    # Generated by `common.define_setting_flags`, which absl names as the flags' module.
    start = text.index("hdr_gan_tf.cli.common:")
    own = text[start:text.find("\n\n", start) if "\n\n" in text[start:] else None]
    listed = re.findall(r"^  --(?:\[no\])?(\w+):", own, re.M)
    fields = [f for part in (ModelConfig, TrainingConfig) for f in dataclasses.fields(part)]
    assert sorted(listed) == sorted(f.name for f in fields)
    flat = " ".join(own.split()).replace("- ", "-")  # absl's wrapping may break at a hyphen
    starts = sorted(re.search(rf"--(\[no\])?{name}: ", flat).start() for name in listed)
    entries = {re.match(r"--(?:\[no\])?(\w+):", flat[a:]).group(1): flat[a:b]
               for a, b in zip(starts, starts[1:] + [len(flat)])}
    for field in fields:
        entry = entries[field.name]
        assert " ".join(spelled(field.metadata["help"]).split()) in entry, field.name
        default = field.default
        if default is None:  # absl shows no default then
            assert "(default: '" not in entry, field.name
            continue
        shown = ",".join(f"{v:g}" for v in default) if isinstance(default, tuple) else (
            str(default).lower() if isinstance(default, bool) else str(default))
        assert f"(default: '{shown}')" in entry, (field.name, entry[-120:])
