import os
import signal
import subprocess
import sys
import time

import numpy as np
import pytest
import tensorflow as tf

from hdr_gan_tf import data, layouts
from hdr_gan_tf.checkpoints import resolve_checkpoint
from hdr_gan_tf.config import ConfigError, RunConfig, build_generator
from hdr_gan_tf.outputs import OutputError, log_dir_lock
from hdr_gan_tf.training import Trainer, TrainingDiverged, WindowMeans, run_training
from tests.helpers import REPO, START_TENSORFLOW, free_port, run_program


def _config(logdir, data_dir, **overrides):
    """A small run: 64x64 patches, 16 base channels, no validation."""
    config = {"logdir": str(logdir), "data_dir": str(data_dir), "patch_size": 64,
              "base_filters": 16, "validation": "0", "summary_every": 50, "image_every": 100,
              "checkpoint_every": 1000, "iterations": 4}
    config.update(overrides)
    return RunConfig.from_flat(config)


# Short runs: λ as in the demo and a larger learning rate. Spectral normalisation divides every
# kernel by σ (about 2 at He initialisation), so at 1e-4 the first tens of iterations move the
# network slowly.
FAST = {"gan_weight": 0.01, "lr_boundaries": (), "lr_values": (3e-4,)}


def _fixed_patches(scenes):
    """Four batches of four unaugmented 64x64 patches, as one batch (one pass measures them)."""
    batches = list(data.training_dataset(scenes, 64, 4, seed=123, augment=False).take(4))
    exposures = [tf.concat([xs[i] for xs, _ in batches], 0) for i in range(3)]
    return exposures, tf.concat([target for _, target in batches], 0)


def _fixed_l1(trainer, patches):
    """Mean μ-law L1 of the main branch on fixed patches (inference mode)."""
    exposures, target = patches  # target: 2·T(H) - 1
    y = trainer.generator(exposures, training=False)[-1]
    return float(tf.reduce_mean(tf.abs(y - target)))


@pytest.fixture(scope="module")
def trained(tiny_data, tmp_path_factory):
    """A 40-iteration run on 64x64 patches (generator with 16 base channels, discriminator,
    λ = 0.01 as in the demo, learning rate 3e-4 so that a short run gets somewhere)."""
    logdir = tmp_path_factory.mktemp("runs") / "l1"
    scenes = data.open_split(tiny_data, data.TRAIN_SPLIT)
    fixed = _fixed_patches(scenes)
    lines = []
    config = _config(logdir, tiny_data, iterations=0, summary_every=20, image_every=40,
                     **FAST)
    trainer, _ = run_training(config, log=lines.append)
    before = _fixed_l1(trainer, fixed)
    status = trainer.fit(scenes, iterations=40)
    return {"trainer": trainer, "before": before, "after": _fixed_l1(trainer, fixed),
            "status": status, "logdir": logdir, "lines": lines}


@pytest.mark.slow
def test_training_with_the_discriminator_lowers_the_main_branch_l1(trained):
    """L1 + Sphere-GAN: the main branch's L1 on fixed batches must fall clearly (0.42 -> 0.17
    in 40 iterations here)."""
    assert trained["status"] == "done"
    assert int(trained["trainer"].step.numpy()) == 40
    assert trained["after"] < 0.6 * trained["before"], (trained["before"], trained["after"])


@pytest.mark.slow
def test_l1_only_training_fits_quickly(tiny_data, tmp_path):
    """Without the discriminator the same step must fit the data fast (0.42 -> 0.10 in 60
    iterations here)."""
    scenes = data.open_split(tiny_data, data.TRAIN_SPLIT)
    fixed = _fixed_patches(scenes)
    trainer, _ = run_training(_config(tmp_path / "run", tiny_data, iterations=0,
                                      use_discriminator=False, **FAST), log=lambda line: None)
    before = _fixed_l1(trainer, fixed)
    trainer.fit(scenes, iterations=60)
    after = _fixed_l1(trainer, fixed)
    assert after < 0.3 * before, (before, after)


@pytest.mark.slow
def test_the_best_checkpoint_holds_its_own_score(trained, tiny_data):
    """The score goes into the best checkpoint itself, so that a kill before `best.txt` (for
    people) is written cannot leave a resumed run going by a stale score."""
    trainer, logdir = trained["trainer"], trained["logdir"]
    step = int(trainer.step.numpy())
    scenes = data.open_split(tiny_data, data.TRAIN_SPLIT)[:1]
    lines = []
    trainer.log = lines.append
    trainer.validate_and_keep_best(scenes)
    best = tf.train.latest_checkpoint(str(logdir / "best"))
    assert best.endswith(f"ckpt-{step}") and "new best" in lines[-1]
    score = float(tf.train.load_checkpoint(best).get_tensor(
        "best_score/.ATTRIBUTES/VARIABLE_VALUE"))
    assert (logdir / "best" / "best.txt").read_text() == (
        f"step {step}\npsnr_mu_main {score:.4f}\n")
    (logdir / "best" / "best.txt").unlink()  # killed before best.txt was written
    resumed = Trainer(trainer.config, tf.distribute.get_strategy(), log=lines.append)
    resumed.restore()
    assert float(resumed.best_score.numpy()) == score
    resumed.validate_and_keep_best(scenes)  # the same weights score the same: not better
    assert "new best" not in lines[-1]
    assert tf.train.latest_checkpoint(str(logdir / "best")) == best
    # The best folder names its log dir for the other programs.
    assert resolve_checkpoint(logdir / "best") == (best, logdir)


@pytest.mark.slow
def test_tensorboard_has_per_branch_scalars_and_images(trained):
    from tensorboard.backend.event_processing import event_accumulator
    acc = event_accumulator.EventAccumulator(str(trained["logdir"] / "train"),
                                             size_guidance={"tensors": 0, "images": 0})
    acc.Reload()
    tags = set(acc.Tags()["tensors"])
    for name in ("l_g_pix/aux1", "l_g_pix/main", "psnr_mu/aux1", "psnr_mu/main",
                 "l_g_gan/aux1", "l_g_gan/main", "l_d_real", "l_d_fake/aux1", "l_d_fake/main",
                 "learning_rate", "steps_per_sec"):
        assert name in tags, (name, sorted(tags))
    steps = [e.step for e in acc.Tensors("l_g_pix/main")]
    assert steps[-1] == 40 and 20 in steps
    images = [t for t in tags if t.startswith("short_ref_long_gt_")]
    assert images, sorted(tags)
    event = acc.Tensors(images[0])[-1]
    # image summaries store [width, height, png...]
    assert tf.make_ndarray(event.tensor_proto)[:2].tolist() == [b"384", b"64"]


@pytest.mark.slow
def test_config_json_records_the_training_choices(trained):
    import json

    recorded = json.loads((trained["logdir"] / "config.json").read_text())
    assert recorded["spectral_norm"] == "miyato"
    training = recorded["training"]
    assert training["sphere_reference"] == "first_axis" and training["ldr_bits"] == 16
    assert training["gan_weight"] == 0.01 and recorded["model"]["base_filters"] == 16


def test_summaries_average_each_part_over_the_window():
    """Logged values are the window's means; PSNR-μ comes from the mean squared error of the
    window, not from averaging PSNRs."""
    window = WindowMeans()
    for value, mse in ((0.2, 0.01), (0.4, 0.0001)):
        window.add({"l_g_pix/main": value, "mse_mu/main": mse})
    means = window.take()
    assert means["l_g_pix/main"] == pytest.approx(0.3)
    assert means["psnr_mu/main"] == pytest.approx(10 * np.log10(1 / 0.00505))
    assert "mse_mu/main" not in means
    assert window.take()["l_g_pix/main"] == 0  # the window starts afresh


def test_log_dirs_with_normalised_kernels_are_refused(tiny_data, tmp_path):
    """A log dir of a version that stored W/σ in the kernels (no `spectral_norm` in its
    config.json): neither training nor the programs (`restore_generator`) take it."""
    import json

    from hdr_gan_tf import checkpoints
    from hdr_gan_tf import config as config_lib

    logdir = tmp_path / "old"
    config = _config(logdir, tiny_data)
    generator = build_generator(config.model)
    tf.train.CheckpointManager(tf.train.Checkpoint(generator=generator), str(logdir), 1,
                               checkpoint_name="ckpt").save(0)
    # What 0.1 wrote: every flag in one flat object, no "spectral_norm".
    (logdir / "config.json").write_text(json.dumps(config.flat()))
    with pytest.raises(ConfigError, match="stored W/σ in the kernel variables"):
        checkpoints.restore_generator(logdir)
    with pytest.raises(ConfigError, match="stored W/σ in the kernel variables"):
        run_training(config, log=lambda line: None)
    config_lib.write_config(logdir, config)
    restored, _, _ = checkpoints.restore_generator(logdir)
    np.testing.assert_array_equal(restored.weights[0].numpy(), generator.weights[0].numpy())


def test_constant_learning_rate_without_boundaries(tiny_data, tmp_path):
    trainer = Trainer(_config(tmp_path, tiny_data, lr_boundaries=(), lr_values=(2e-4,)),
                      tf.distribute.get_strategy())
    assert float(trainer.schedule(10 ** 6)) == pytest.approx(2e-4)
    with pytest.raises(ConfigError, match="one more value than"):
        _config(tmp_path, tiny_data, lr_boundaries=(5,), lr_values=(2e-4,))


def test_patch_size_checks(tiny_data, tmp_path):
    strategy = tf.distribute.get_strategy()
    with pytest.raises(ValueError, match="at least 54"):
        Trainer(_config(tmp_path, tiny_data, patch_size=48), strategy)
    with pytest.raises(ConfigError, match="multiple of 4"):
        _config(tmp_path, tiny_data, patch_size=66)


@pytest.mark.slow
def test_non_finite_loss_stops_without_touching_the_last_checkpoint(tiny_data, tmp_path):
    config = _config(tmp_path / "run", tiny_data, iterations=2, checkpoint_every=1,
                     use_discriminator=False, scales=2)
    trainer, status = run_training(config, log=lambda line: None)
    assert status == "done"
    latest = trainer.manager.latest_checkpoint
    saved = {p.name: p.read_bytes() for p in (tmp_path / "run").glob("ckpt-*")}
    scenes = data.open_split(tiny_data, data.TRAIN_SPLIT)
    for scene in scenes:
        scene.hdr[:] = np.nan
    with pytest.raises(TrainingDiverged, match="non-finite loss at step 3"):
        trainer.fit(scenes, iterations=4)  # the same trainer goes on (its step is traced)
    assert trainer.manager.latest_checkpoint == latest
    assert {p.name: p.read_bytes() for p in (tmp_path / "run").glob("ckpt-*")} == saved

    # A NaN that entered the weights (with a finite loss) is not saved either.
    kernel = trainer.generator.trainable_variables[0]
    kernel.assign(tf.tensor_scatter_nd_update(kernel, [[0, 0, 0, 0]], [np.nan]))
    with pytest.raises(TrainingDiverged, match="non-finite weights at step 3"):
        trainer.save()
    assert {p.name: p.read_bytes() for p in (tmp_path / "run").glob("ckpt-*")} == saved

    # A truncated latest checkpoint (disk full while it was written) is skipped, with a
    # warning, for the one before it, by training and by the other programs alike.
    assert latest.endswith("ckpt-2")
    data_file = tmp_path / "run" / "ckpt-2.data-00000-of-00001"
    data_file.write_bytes(data_file.read_bytes()[:1000])
    warnings = []
    resumed = Trainer(config, tf.distribute.get_strategy(), log=warnings.append)
    assert resumed.restore().endswith("ckpt-1") and int(resumed.step.numpy()) == 1
    assert any("skipping the unreadable checkpoint" in w and "ckpt-2" in w for w in warnings)
    prefix, logdir = resolve_checkpoint(tmp_path / "run", log=warnings.append)
    assert prefix.endswith("ckpt-1") and logdir == tmp_path / "run"


def _start_training(logdir, data_dir, *extra):
    """A `hdr-gan-train` process; two scales, as the other runs about checkpoints, signals and
    strategies take: what they check is not the network's depth, and its step traces sooner."""
    args = [sys.executable, "-m", "hdr_gan_tf.cli.train", f"--logdir={logdir}",
            f"--data_dir={data_dir}", "--patch_size=64", "--base_filters=16", "--scales=2",
            "--validation=0", "--summary_every=1", *extra]
    env = dict(os.environ, PYTHONPATH=str(REPO), PYTHONUNBUFFERED="1")
    return subprocess.Popen(args, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                            env=env, cwd=REPO)


def _wait_for(predicate, process, timeout=240):
    deadline = time.time() + timeout
    while time.time() < deadline:
        if predicate():
            return
        if process.poll() is not None:
            raise AssertionError(f"training exited early:\n{process.stdout.read()}")
        time.sleep(0.2)
    process.kill()
    raise AssertionError("timed out waiting for training")


def _wait_for_line(process, prefix, timeout=240):
    """Reads `process`'s output until a line starts with `prefix`; returns the lines read.
    A reader thread takes the lines, so that a child that stalls without a word cannot block
    the wait past `timeout`. Reading goes on only while a caller waits (no line is lost
    between calls: the thread hands over every line it read). A later `communicate` reads the
    pipe itself and misses what the text buffer already held past the line found."""
    import queue
    import threading

    lines, found = [], threading.Event()
    arrived = queue.Queue()

    def read():
        for line in iter(process.stdout.readline, ""):
            arrived.put(line)
            if line.startswith(prefix):
                found.set()
                return
        arrived.put(None)

    threading.Thread(target=read, daemon=True).start()
    deadline = time.time() + timeout
    while time.time() < deadline:
        try:
            line = arrived.get(timeout=0.2)
        except queue.Empty:
            continue
        if line is None:
            raise AssertionError("training exited early:\n" + "".join(lines))
        lines.append(line)
        if line.startswith(prefix):
            return lines
    process.kill()
    raise AssertionError(f"timed out waiting for a line starting {prefix!r}:\n" + "".join(lines))


@pytest.mark.slow
def test_killed_run_resumes_at_its_last_checkpoint_with_the_schedule(tiny_data, tmp_path):
    logdir = tmp_path / "run"
    flags = ["--checkpoint_every=2", "--lr_boundaries=3", "--lr_values=1e-4,3e-5"]
    proc = _start_training(logdir, tiny_data, "--iterations=100000", *flags)
    _wait_for(lambda: tf.train.latest_checkpoint(str(logdir)) not in (None,)
              and int(tf.train.latest_checkpoint(str(logdir)).rsplit("-", 1)[1]) >= 4, proc)
    proc.send_signal(signal.SIGKILL)
    proc.wait(timeout=60)
    prefix = tf.train.latest_checkpoint(str(logdir))
    saved_step = int(prefix.rsplit("-", 1)[1])
    reader = tf.train.load_checkpoint(prefix)
    assert reader.get_tensor("step/.ATTRIBUTES/VARIABLE_VALUE") == saved_step

    # Restored in-process: same step, same weights, the schedule's rate at that step.
    config = _config(logdir, tiny_data, checkpoint_every=2, lr_boundaries=(3,),
                     lr_values=(1e-4, 3e-5), iterations=saved_step, scales=2)
    trainer = Trainer(config, tf.distribute.get_strategy(), log=lambda line: None)
    trainer.restore()
    assert int(trainer.step.numpy()) == saved_step
    saved = build_generator(config.model)
    tf.train.Checkpoint(generator=saved).restore(prefix).expect_partial()
    fresh = build_generator(config.model)
    assert not np.array_equal(fresh.weights[0].numpy(), saved.weights[0].numpy())
    for ours, theirs in zip(trainer.generator.weights, saved.weights):
        np.testing.assert_array_equal(ours.numpy(), theirs.numpy())
    assert float(trainer.g_optimizer.learning_rate) == pytest.approx(3e-5)
    assert float(trainer.schedule(2)) == pytest.approx(1e-4)  # step 2 is before iteration 3

    # And training continues from there.
    scenes = data.open_split(tiny_data, data.TRAIN_SPLIT)
    assert trainer.fit(scenes, iterations=saved_step + 2) == "done"
    assert int(trainer.step.numpy()) == saved_step + 2
    assert tf.train.latest_checkpoint(str(logdir)).endswith(f"ckpt-{saved_step + 2}")


@pytest.mark.slow
def test_sigterm_saves_a_checkpoint_and_exits_cleanly(tiny_data, tmp_path):
    logdir = tmp_path / "run"
    proc = _start_training(logdir, tiny_data, "--iterations=100000", "--checkpoint_every=1000",
                           "--cache=disk")
    _wait_for_line(proc, "step 2/")
    # One writer per log dir: the running trainer holds its lock, so a second one is refused.
    with pytest.raises(OutputError, match=f"process {proc.pid}.* is writing this log dir"):
        with log_dir_lock(logdir):
            pass
    second = run_program("train", f"--logdir={logdir}", f"--data_dir={tiny_data}",
                         "--patch_size=64", "--base_filters=16", "--scales=2",
                         "--iterations=100000")
    second_out = second.stdout + second.stderr
    assert second.returncode == 2, second_out
    assert [line for line in second_out.splitlines() if line.startswith("error:")] == [
        f"error: {logdir}: another program (hdr-gan-train or hdr-gan-convert-tf1, process "
        f"{proc.pid}) is writing this log dir; wait for it to finish or use another folder"]
    proc.send_signal(signal.SIGTERM)
    out, _ = proc.communicate(timeout=120)
    assert proc.returncode == 0, out
    assert "Stopped by signal" in out
    with log_dir_lock(logdir):  # released when the trainer ended
        pass
    # --cache=disk: the scenes were decoded once into the log dir's cache and read from there.
    assert len(list((logdir / "data_cache").glob("*.bin"))) == len(
        layouts.find_scene_dirs(tiny_data, data.TRAIN_SPLIT))
    prefix = tf.train.latest_checkpoint(str(logdir))
    step = int(prefix.rsplit("-", 1)[1])
    assert step >= 2 and f"interrupted at step {step}" in out


@pytest.mark.slow
def test_mirrored_strategy_on_two_logical_cpus(tiny_data, tmp_path):
    script = START_TENSORFLOW + f"""
import tensorflow as tf
cpu = tf.config.list_physical_devices("CPU")[0]
tf.config.set_logical_device_configuration(cpu, [tf.config.LogicalDeviceConfiguration()] * 2)
from hdr_gan_tf.config import RunConfig
from hdr_gan_tf.training import run_training
strategy = tf.distribute.MirroredStrategy(["/cpu:0", "/cpu:1"])
config = RunConfig.from_flat(dict(
    logdir=r"{tmp_path / 'run'}", data_dir=r"{tiny_data}", patch_size=64, base_filters=8,
    scales=2, validation="0", iterations=2, summary_every=1, batch_size=2, strategy="mirrored"))
trainer, status = run_training(config, log=print, strategy=strategy)
print("REPLICAS", strategy.num_replicas_in_sync, "STATUS", status,
      "STEP", int(trainer.step.numpy()))
"""
    env = dict(os.environ, PYTHONPATH=str(REPO))
    result = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True,
                            timeout=300, env=env, cwd=REPO)
    assert "REPLICAS 2 STATUS done STEP 2" in result.stdout, result.stdout + result.stderr
    assert tf.train.latest_checkpoint(str(tmp_path / "run")).endswith("ckpt-2")


def _start_workers(logdir, data_dir, *extra):
    """Two `hdr-gan-train --strategy=multi_worker` processes on loopback, one CPU each (two
    scales: the strategy, not the network's depth, is the point; the step traces sooner)."""
    import json
    import shutil

    ports = [free_port(), free_port()]
    cluster = {"worker": [f"127.0.0.1:{p}" for p in ports]}
    procs = []
    for index in range(2):
        env = dict(os.environ, PYTHONPATH=str(REPO), PYTHONUNBUFFERED="1",
                   TF_CONFIG=json.dumps({"cluster": cluster,
                                         "task": {"type": "worker", "index": index}}))
        pin = ["taskset", "-c", str(index % (os.cpu_count() or 1))] if shutil.which(
            "taskset") else []
        args = pin + [sys.executable, "-m", "hdr_gan_tf.cli.train", "--strategy=multi_worker",
                      f"--logdir={logdir}", f"--data_dir={data_dir}", "--patch_size=64",
                      "--base_filters=8", "--scales=2", "--batch_size=2", "--validation=0",
                      "--summary_every=1", "--collective_timeout=30", *extra]
        procs.append(subprocess.Popen(args, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                                      text=True, env=env, cwd=REPO))
    return procs


def _kill_left(procs):
    for proc in procs:
        if proc.poll() is None:
            proc.kill()


def _finish(procs, timeout=150):
    outputs = []
    for proc in procs:
        try:
            outputs.append(proc.communicate(timeout=timeout)[0])
        except subprocess.TimeoutExpired:
            _kill_left(procs)
            raise AssertionError("multi-worker training did not finish in time")
    return outputs


def _final(output):
    import json

    return json.loads(output.strip().splitlines()[-1])


@pytest.mark.slow
@pytest.mark.waits  # the chief waits out the collective timeout
def test_two_workers_train_in_step_resume_from_the_chiefs_checkpoint_and_stop_together(
        tiny_data, tmp_path):
    """Two processes (TF_CONFIG, loopback), one CPU each. A worker killed stops the other with
    an error. Restarted, both resume from the chief's last checkpoint: one global step, the
    global batch of 2 split into one sample per worker, the same all-reduced losses on both;
    SIGTERM to one of them (a preemption notice) makes both save at one agreed step with
    identical weights and exit with the restart status 42, only the chief writing the log
    dir."""
    import re

    logdir = tmp_path / "run"
    procs = _start_workers(logdir, tiny_data, "--iterations=100000", "--checkpoint_every=2")
    try:
        chief, worker = procs
        _wait_for_line(chief, "step 3/", timeout=150)  # ckpt-2 is written
        worker.kill()
        killed_at = time.time()
        try:
            out = chief.communicate(timeout=90)[0]
        except subprocess.TimeoutExpired:
            raise AssertionError("the chief kept waiting for the killed worker")
    finally:
        _kill_left(procs)
    assert chief.returncode == 2, out
    assert "error: lost contact with another worker" in out
    assert time.time() - killed_at < 90
    saved = int(tf.train.latest_checkpoint(str(logdir)).rsplit("-", 1)[1])
    assert saved >= 2

    procs = _start_workers(logdir, tiny_data, "--iterations=100000", "--checkpoint_every=1000")
    try:
        chief, worker = procs
        lines = _wait_for_line(chief, f"step {saved + 1}/", timeout=150)
        worker.send_signal(signal.SIGTERM)
        outputs = _finish(procs)
    finally:
        _kill_left(procs)
    outputs[0] = "".join(lines) + outputs[0]
    assert [chief.returncode, worker.returncode] == [42, 42], outputs
    finals = [_final(out) for out in outputs]
    assert finals[0] == finals[1] and finals[0]["status"] == "preempted"  # weights included
    assert finals[0]["final_step"] > saved
    steps = []
    for out in outputs:
        assert f"Resumed from {logdir / f'ckpt-{saved}'} at step {saved}" in out
        assert "2 replica(s), each taking 1 of the 2 patches of a batch" in out
        steps += [line[:60] for line in out.splitlines() if line.startswith(f"step {saved + 1}/")]
    assert len(steps) == 2 and steps[0] == steps[1]
    assert tf.train.latest_checkpoint(str(logdir)).endswith(f"ckpt-{finals[0]['final_step']}")
    others = [p.name for p in logdir.iterdir() if not re.fullmatch(
        r"ckpt-\d+\.(index|data-00000-of-00001)", p.name)]
    assert sorted(others) == [".hdr_gan_tf.json", ".hdr_gan_train.lock", "checkpoint",
                              "config.json", "train"]


@pytest.mark.slow
def test_each_validated_step_is_saved_before_it_is_validated(tiny_data, tmp_path):
    """Validation runs the network at full resolution and can fail (memory, a full disk):
    the step it validates is saved first, whatever `checkpoint_every` says."""
    config = _config(tmp_path / "run", tiny_data, base_filters=8, scales=2, iterations=2,
                     validation="1",
                     validation_every=1, checkpoint_every=1000)
    _, status = run_training(config, log=lambda line: None)
    assert status == "done"
    assert sorted(p.name for p in (tmp_path / "run").glob("ckpt-*.index")) == [
        "ckpt-1.index", "ckpt-2.index"]
