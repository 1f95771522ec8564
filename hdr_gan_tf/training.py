"""Training HDR-GAN (docs/design.md §5): the step, the loop, checkpoints, summaries and validation.

Each iteration updates the generator on one batch (μ-law L1 of the supervised branches plus
λ times the Sphere-GAN adversarial term, `losses.generator_objective`), then the discriminator
on a fresh batch (`losses.discriminator_objective`), exactly as the authors' TF1 graph ran
them: both networks run in training mode in both updates, so every spectral-norm vector `u`
advances twice per iteration, once in each update, and the generator is re-run with its
freshly updated weights for the discriminator's update. Within one update a network is called
once, so all the images it scores there share one σ per layer. Gradients are clipped
element-wise (the optimizers' `clipvalue`, applied after loss-scale unscaling) and Adam applies
them. Under `tf.distribute` every loss is divided by the number of replicas, so the summed
replica gradients are those of the global-batch mean.
"""

import contextlib
import dataclasses
import hashlib
import math
import os
import re
import shutil
import signal
import tempfile
import time
from pathlib import Path

import keras
import numpy as np
import tensorflow as tf

from hdr_gan_tf import config as config_lib
from hdr_gan_tf import data as data_lib
from hdr_gan_tf.config import build_discriminator, build_generator
from hdr_gan_tf.generator import branch_names, parse_branches
from hdr_gan_tf.display import comparison_panel
from hdr_gan_tf.image_io import write_ldr
from hdr_gan_tf.evaluation import score_scenes
from hdr_gan_tf.imaging import to_unit
from hdr_gan_tf.losses import discriminator_objective, generator_objective
from hdr_gan_tf.merge import GeneratorMerger
from hdr_gan_tf import checkpoints
from hdr_gan_tf.checkpoints import remove_checkpoint_temps
from hdr_gan_tf.outputs import (SUMMARIES, OutputError, check_apart_from_inputs, clean_leftovers,
                                disk_full, is_disk_full, log_dir_lock, mark_as_training_log_dir,
                                temp_name, write_text)


class TrainingDiverged(RuntimeError):
    """A loss became NaN or Inf; the last good checkpoint was left as it was."""


def check_replicas(config, strategy):
    """The global batch must split evenly over the strategy's replicas (ConfigError)."""
    replicas = strategy.num_replicas_in_sync
    if config.training.batch_size % replicas:
        raise config_lib.ConfigError(f"{config.training.batch_size} is not divisible by the "
                                     f"{replicas} replicas", field="batch_size")


def make_strategy(name, collective_timeout=None):
    """The `tf.distribute` strategy named by `TrainingConfig.strategy`.

    `multi_worker` reads the cluster from `TF_CONFIG`; its collective operations give up after
    `collective_timeout` seconds, so that a lost worker stops the others with an error instead
    of leaving them waiting.
    """
    if name == "multi_worker":
        options = tf.distribute.experimental.CommunicationOptions(
            timeout_seconds=collective_timeout)
        return tf.distribute.MultiWorkerMirroredStrategy(communication_options=options)
    return {"default": tf.distribute.get_strategy,
            "mirrored": tf.distribute.MirroredStrategy}[name]()


def is_chief(strategy):
    """Whether this process writes the log dir: always, but in a multi-worker cluster, where
    only the chief does (the task `chief`, or worker 0 when the cluster names none)."""
    resolver = getattr(strategy, "cluster_resolver", None)
    if resolver is None or not resolver.task_type:
        return True
    if resolver.task_type == "chief":
        return True
    return (resolver.task_type == "worker" and resolver.task_id == 0
            and "chief" not in resolver.cluster_spec().as_dict())


def format_duration(seconds):
    seconds = int(max(seconds, 0))
    h, rem = divmod(seconds, 3600)
    m, s = divmod(rem, 60)
    return f"{h}h{m:02d}m{s:02d}s" if h else f"{m}m{s:02d}s"


class WindowMeans:
    """Logged values averaged over a window of steps: `add` each step's values, `take` the
    means (the window then starts afresh). PSNR-μ of a branch comes from the window's mean
    squared error (`mse_mu/<branch>` in, `psnr_mu/<branch>` out), not from averaged PSNRs."""

    def __init__(self):
        self._metrics = {}

    def add(self, logs):
        for name, value in logs.items():
            if name not in self._metrics:
                self._metrics[name] = keras.metrics.Mean(name=name)
            self._metrics[name].update_state(value)

    def take(self):
        means = {name: float(metric.result()) for name, metric in self._metrics.items()}
        for metric in self._metrics.values():
            metric.reset_state()
        for name in [n for n in means if n.startswith("mse_mu/")]:
            means["psnr_mu/" + name.split("/", 1)[1]] = (
                10 * math.log10(1 / max(means.pop(name), 1e-12)))
        return means


class Trainer:
    """Owns the networks, optimizers, step counter, checkpoints and summaries of one run.

    In a multi-worker cluster every worker runs the same loop, but only the chief writes the
    log dir (checkpoints, summaries, panels, `best/`). The others save their checkpoints too,
    as TensorFlow asks (a save can involve collective operations in which every worker takes
    part), into a temporary folder of their own that `close` removes. Every worker resumes
    from the chief's latest checkpoint, so the log dir must be visible to all of them.

    Args:
      config: a `hdr_gan_tf.config.RunConfig`.
      strategy: a `tf.distribute.Strategy` (its scope holds every variable).
      log: function taking one line of progress text.
    """

    def __init__(self, config, strategy, log=print):
        self.config = config
        cfg, model = config.training, config.model
        self.strategy = strategy
        self.log = log
        self.logdir = Path(cfg.logdir)
        self.branches = branch_names(model.scales)
        self.supervised = parse_branches(cfg.supervise, model.scales)
        self.use_disc = model.use_discriminator
        self.disc_branches = parse_branches(cfg.disc_branches, model.scales)
        check_replicas(config, strategy)
        with strategy.scope():
            self.step = tf.Variable(0, dtype=tf.int64, trainable=False, name="step")
            # The paper's "1e-5 from iteration 114,300": PiecewiseConstantDecay switches after
            # its boundary, so each boundary is moved one step earlier.
            boundaries = [b - 1 for b in cfg.lr_boundaries]
            values = list(cfg.lr_values)
            self.schedule = (keras.optimizers.schedules.PiecewiseConstantDecay(boundaries, values)
                             if boundaries else lambda step: tf.constant(values[0]))
            self.generator = build_generator(model)
            self.g_optimizer = self._optimizer()
            self.g_optimizer.build(self.generator.trainable_variables)
            objects = {"generator": self.generator, "g_optimizer": self.g_optimizer,
                       "step": self.step}
            self.discriminator = None
            if self.use_disc:
                self.discriminator = build_discriminator(model)
                self.d_optimizer = self._optimizer()
                self.d_optimizer.build(self.discriminator.trainable_variables)
                objects.update(discriminator=self.discriminator, d_optimizer=self.d_optimizer)
            # The best checkpoint carries its own validation score, so that the score and the
            # weights it belongs to are written (and found after a crash) together.
            self.best_score = tf.Variable(-math.inf, dtype=tf.float64, trainable=False,
                                          name="best_score")
        self.checkpoint = tf.train.Checkpoint(**objects)
        self.is_chief = is_chief(strategy)
        self.write_dir = self.logdir if self.is_chief else Path(
            tempfile.mkdtemp(prefix=temp_name("worker-")))
        self._best_checkpoint = tf.train.Checkpoint(**objects, best_score=self.best_score)
        self._open_managers()
        step_fn = self._replica_step
        if cfg.jit_compile:
            step_fn = tf.function(step_fn, jit_compile=True)
        self._step_fn = step_fn
        self.train_step = tf.function(self._distributed_step)
        self._stop_signal = None
        # Each logged value is averaged over the steps since the last summary.
        self.window = WindowMeans()

    def _open_managers(self):
        """The checkpoint managers of the write dir and its best/ (each reads its folder's
        state file when made)."""
        self.manager = _RestoredManager(
            self.checkpoint, str(self.write_dir),
            max_to_keep=self.config.training.keep_checkpoints, checkpoint_name="ckpt")
        self.best_manager = tf.train.CheckpointManager(
            self._best_checkpoint, str(self.write_dir / "best"), max_to_keep=1,
            checkpoint_name="ckpt")

    def _optimizer(self):
        optimizer = keras.optimizers.Adam(
            learning_rate=lambda: self.schedule(self.step), beta_1=0.9, beta_2=0.999,
            epsilon=1e-8, clipvalue=self.config.training.clip_value)
        if self.config.training.precision == "float16":
            optimizer = keras.optimizers.LossScaleOptimizer(optimizer)
        return optimizer

    # ---------------------------------------------------------------- the training step
    def _objective_options(self):
        cfg = self.config.training
        return dict(branches=self.branches, adversarial=self.disc_branches if self.use_disc
                    else (), moments=cfg.sphere_moments, reference=cfg.sphere_reference)

    def generator_gradients(self, batch):
        """The generator update's gradients (before clipping) and named loss parts.

        Runs G, and D on the chosen branches' outputs as one batch: both advance their `u`.
        """
        inputs, target = batch  # 3 x [b, P, P, 6], [b, P, P, 3] (2·T(H) - 1)
        with tf.GradientTape() as tape:
            outputs = self.generator(list(inputs), training=True)  # K x [b, P, P, 3]
            fake_maps = ()
            if self.use_disc:
                fakes = tf.concat([outputs[k] for k in self.disc_branches], axis=0)
                fake_maps = tf.split(self.discriminator(fakes, training=True),
                                     len(self.disc_branches))  # each [b, h, w, 1]
            loss, parts = generator_objective(
                outputs, target, fake_maps, supervised=self.supervised,
                gan_weight=self.config.training.gan_weight, **self._objective_options())
            scaled = self.g_optimizer.scale_loss(loss / self.strategy.num_replicas_in_sync)
        return tape.gradient(scaled, self.generator.trainable_variables), parts

    def discriminator_gradients(self, batch):
        """The discriminator update's gradients (before clipping) and named loss parts.

        Re-runs G (with the weights the generator update just gave it) on this fresh batch,
        then D on the real images and the chosen branches' outputs as one batch.
        """
        inputs, target = batch
        outputs = self.generator(list(inputs), training=True)  # no tape: G is not updated here
        images = tf.concat([target] + [tf.cast(outputs[k], target.dtype)
                                       for k in self.disc_branches], axis=0)  # [(1 + K) b, ...]
        with tf.GradientTape() as tape:
            maps = tf.split(self.discriminator(images, training=True), 1 + len(self.disc_branches))
            loss, parts = discriminator_objective(maps[0], maps[1:], **self._objective_options())
            scaled = self.d_optimizer.scale_loss(loss / self.strategy.num_replicas_in_sync)
        return tape.gradient(scaled, self.discriminator.trainable_variables), parts

    def _replica_step(self, g_batch, d_batch):
        gradients, logs = self.generator_gradients(g_batch)
        self.g_optimizer.apply_gradients(zip(gradients, self.generator.trainable_variables))
        if self.use_disc:
            gradients, d_logs = self.discriminator_gradients(d_batch)
            self.d_optimizer.apply_gradients(
                zip(gradients, self.discriminator.trainable_variables))
            logs.update(d_logs)
        n = self.strategy.num_replicas_in_sync
        return {k: v / n for k, v in logs.items()}

    def _distributed_step(self, g_batch, d_batch):
        per_replica = self.strategy.run(self._step_fn, args=(g_batch, d_batch))
        self.step.assign_add(1)
        return {k: self.strategy.reduce(tf.distribute.ReduceOp.SUM, v, axis=None)
                for k, v in per_replica.items()}

    # ---------------------------------------------------------------- data
    def distributed_dataset(self, scenes):
        cfg = self.config.training
        start_step = int(self.step.numpy())

        def dataset_fn(context):
            pipelines = context.num_input_pipelines
            per_pipeline = 2 * cfg.batch_size // pipelines  # samples taken per iteration
            return data_lib.training_dataset(
                scenes, cfg.patch_size, context.get_per_replica_batch_size(cfg.batch_size),
                seed=cfg.seed * 1009 + context.input_pipeline_id,
                start=start_step * per_pipeline,
                mu=self.config.model.mu)  # ((x_s, x_r, x_l), target)

        return self.strategy.distribute_datasets_from_function(dataset_fn)

    # ---------------------------------------------------------------- checkpoints
    def restore(self):
        """Restores the newest readable checkpoint of the log dir (the chief's, on every
        worker), and the best validation score so far; returns its path or None.

        A log dir that holds checkpoints, none of them readable, is refused (ConfigError)
        rather than trained from step 0; with `restart` its checkpoints are first moved
        aside (`_move_checkpoints_aside`) and the run starts from step 0, saying so.
        """
        if self.config.training.restart:
            self._move_checkpoints_aside()
            return None
        damaged_state = checkpoints.state_file_damaged(self.logdir)
        path = checkpoints.readable_checkpoint(self.logdir, self.log)
        if path is None and checkpoints.checkpoint_prefixes(self.logdir):
            raise config_lib.ConfigError(
                f"{self.logdir}: holds checkpoints but none of them can be read; set "
                f"{{restart}} to train from step 0 anyway (they are then moved aside, not "
                f"deleted), or use another {{logdir}}", mentions=["restart", "logdir"])
        if path:
            try:
                for name in ("generator", "discriminator"):
                    if getattr(self, name) is not None:
                        checkpoints.check_variable_count(path, name, getattr(self, name),
                                                         "these flags'", missing_ok=True)
                self.checkpoint.restore(path).expect_partial()
            except (AssertionError, ValueError, tf.errors.OpError) as err:
                raise config_lib.ConfigError(
                    f"{path}: checkpoint does not fit the networks of these flags "
                    f"({self.config.model}): {str(err).strip().splitlines()[0][:200]}"
                ) from None
            self.log(f"Resumed from {path} at step {int(self.step.numpy())} "
                     f"(learning rate {float(self.schedule(self.step)):.3g})")
            if damaged_state and self.is_chief:
                # The manager keeps its list of checkpoints in the state file: rewrite it.
                tf.compat.v1.train.update_checkpoint_state(
                    str(self.logdir), path, checkpoints.checkpoint_prefixes(self.logdir)[::-1])
                self._open_managers()
        best = checkpoints.readable_checkpoint(self.logdir / "best", self.log)
        if best:
            try:
                self.best_score.assign(tf.train.load_checkpoint(best).get_tensor(
                    "best_score/.ATTRIBUTES/VARIABLE_VALUE"))
            except (tf.errors.NotFoundError, ValueError):
                self.log(f"warning: {best} holds no validation score; the next validation "
                         f"starts the best checkpoint afresh")
        return path

    def _move_checkpoints_aside(self):
        """`--restart`: the log dir's checkpoints, state file, best/, validation panels,
        summaries and config.json go into `before_restart_<time>/`, so that nothing of the
        earlier run is lost, resumed or mixed with the new one."""
        kept = ("checkpoint", "best", "validation", SUMMARIES, config_lib.CONFIG_FILE)
        names = [p for p in (self.logdir.iterdir() if self.logdir.is_dir() else [])
                 if p.name in kept or re.fullmatch(r"ckpt-\d+\..+", p.name)]
        if not names or not self.is_chief:
            self.log("Starting from step 0 as asked (restart); there were no earlier "
                     "checkpoints here")
            return
        aside = self.logdir / time.strftime("before_restart_%Y%m%d-%H%M%S")
        aside.mkdir()
        for path in names:
            path.rename(aside / path.name)
        self._open_managers()
        self.log(f"Starting from step 0 as asked (restart): the earlier checkpoints "
                 f"({len(names)} files and folders) were moved into {aside}")

    def save(self):
        """Saves a checkpoint, after making sure the weights are finite (a NaN can enter in an
        update whose loss was finite): raises TrainingDiverged instead of saving bad weights."""
        self.check_weights()
        return self._saving(self.manager, checkpoint_number=int(self.step.numpy()))

    def _saving(self, manager, **kwargs):
        """`manager.save`, with a full disk reported as `outputs.DiskFull` after TensorFlow's
        half-written temporary folder is removed (the earlier checkpoints stay as they were)."""
        try:
            return manager.save(**kwargs)
        except (tf.errors.OpError, OSError) as err:
            if not is_disk_full(err):
                raise
            remove_checkpoint_temps(Path(manager.directory))
            number = kwargs.get("checkpoint_number")
            raise disk_full(err, Path(manager.directory) / f"ckpt-{number}") from None

    def check_weights(self):
        networks = [n for n in (self.generator, self.discriminator) if n is not None]
        finite = [bool(tf.reduce_all(tf.math.is_finite(v))) for n in networks
                  for v in n.weights]
        if not all(finite):
            names = [v.path for n in networks for v, ok in zip(n.weights, finite) if not ok]
            raise TrainingDiverged(
                f"non-finite weights at step {int(self.step.numpy())} ({', '.join(names[:3])}"
                f"{', ...' if len(names) > 3 else ''}); stopped without saving. Last good "
                f"checkpoint: {self.manager.latest_checkpoint}")

    def close(self):
        """Removes a non-chief worker's temporary checkpoint folder."""
        if not self.is_chief:
            shutil.rmtree(self.write_dir, ignore_errors=True)

    def weights_digest(self):
        """SHA-256 of every network variable's bytes: equal on workers that stayed in step."""
        digest = hashlib.sha256()
        for network in (self.generator, self.discriminator):
            for variable in (network.weights if network is not None else []):
                digest.update(np.ascontiguousarray(variable.numpy()).tobytes())
        return digest.hexdigest()

    def _on_signal(self, signum, frame):
        self._stop_signal = signum

    # ---------------------------------------------------------------- summaries
    def _write_scalars(self, means, rate):
        step = int(self.step.numpy())
        for name, value in means.items():
            tf.summary.scalar(name, value, step)
        tf.summary.scalar("learning_rate", float(self.schedule(self.step)), step)
        tf.summary.scalar("steps_per_sec", rate, step)

    def _write_images(self, g_batch):
        inputs, target = (self.strategy.experimental_local_results(t)[0] for t in g_batch)
        outputs = self.generator(list(inputs), training=False)
        panels = [to_unit(x[:1, ..., :3]) for x in inputs]  # LDR inputs
        panels.append(to_unit(target[:1]))  # ground truth, μ-law
        panels += [tf.clip_by_value(to_unit(tf.cast(y[:1], tf.float32)), 0, 1) for y in outputs]
        tf.summary.image("short_ref_long_gt_" + "_".join(self.branches),
                         tf.concat(panels, axis=2), int(self.step.numpy()))

    # ---------------------------------------------------------------- validation
    def validate(self, scenes, panel_path=None):
        """PSNR-μ of every branch over full-resolution validation scenes, scored as
        `hdr-gan-evaluate` scores (`evaluation.score_scenes`).

        With `panel_path`, the first scene's comparison panel is written there as PNG.
        """
        merge = GeneratorMerger(self.generator, self.branches)
        totals = np.zeros(len(self.branches))
        scored = score_scenes(merge, scenes, self.branches, metrics=("psnr_mu",))
        for n, (_, ldrs, hdr_gt, outputs, row) in enumerate(scored):
            totals += [row[f"psnr_mu_{b}"] for b in self.branches]
            if n == 0 and panel_path is not None:
                write_ldr(panel_path, comparison_panel(ldrs, outputs, hdr_gt))
        return {b: float(t / len(scenes)) for b, t in zip(self.branches, totals)}

    def validate_and_keep_best(self, scenes):
        """Validates (`validate`), logs the scores and, when the main branch beats the best so
        far, saves the best checkpoint (holding its own score) in `best/`."""
        # Every worker validates (the same weights give the same scores), so that all of them
        # take part in saving a new best checkpoint; only the chief writes the results.
        step = int(self.step.numpy())
        panel = self.logdir / "validation" / f"step_{step:07d}.png" if self.is_chief else None
        scores = self.validate(scenes, panel)
        for b, v in scores.items():
            tf.summary.scalar(f"validation/psnr_mu/{b}", v, step)
        line = ", ".join(f"{b} {v:.2f} dB" for b, v in scores.items())
        if scores["main"] > float(self.best_score.numpy()):
            self.check_weights()
            self.best_score.assign(scores["main"])
            self._saving(self.best_manager, checkpoint_number=step)
            # For people; the checkpoint holds the score the program goes by.
            write_text(self.write_dir / "best" / "best.txt",
                       f"step {step}\npsnr_mu_main {scores['main']:.4f}\n")
            line += "  (new best, kept in best/)"
        self.log(f"validation at step {step}: PSNR-mu {line}")

    # ---------------------------------------------------------------- the loop
    def fit(self, train_scenes, val_scenes=(), iterations=None):
        """Trains until step `iterations` (default: the configuration's); returns `"done"` or
        `"interrupted"`.

        Raises:
          TrainingDiverged: a loss was NaN or Inf (no checkpoint is written for that step).
        """
        cfg = self.config.training
        total = cfg.iterations if iterations is None else int(iterations)
        handlers = {s: signal.signal(s, self._on_signal) for s in (signal.SIGINT, signal.SIGTERM)}
        # Several hosts: SIGTERM on any worker (a preemption notice) makes every worker save at
        # one agreed step, through TensorFlow's handler, which takes SIGTERM over from here.
        # (Without TF_CONFIG, multi_worker is one local worker and SIGTERM stays ours.)
        resolver = getattr(self.strategy, "cluster_resolver", None)
        preemption = (tf.distribute.experimental.PreemptionCheckpointHandler(
            resolver, self.manager,
            termination_config=tf.distribute.experimental.TerminationConfig(
                exit_fn=self._preempted, save_fn=lambda *args, **kwargs: self.save()))
            if cfg.strategy == "multi_worker" and resolver and resolver.cluster_spec().jobs
            else None)
        writer = (tf.summary.create_file_writer(str(self.logdir / SUMMARIES)) if self.is_chief
                  else tf.summary.create_noop_writer())
        iterator = iter(self.distributed_dataset(train_scenes))
        step = int(self.step.numpy())
        t_start, step_start, t_last, step_last = time.time(), step, time.time(), step
        status = "done"
        try:
            with writer.as_default():
                while step < total:
                    g_batch, d_batch = next(iterator), next(iterator)
                    logs = {k: float(v) for k, v in self.train_step(g_batch, d_batch).items()}
                    step = int(self.step.numpy())
                    bad = [k for k, v in logs.items() if not math.isfinite(v)]
                    if bad:
                        raise TrainingDiverged(
                            f"non-finite loss at step {step} ({', '.join(bad)}); stopped without "
                            f"saving. Last good checkpoint: {self.manager.latest_checkpoint}")
                    self.window.add(logs)
                    if step % cfg.summary_every == 0 or step == total or step == 1:
                        now = time.time()
                        rate = (step - step_last) / max(now - t_last, 1e-9)
                        overall = (step - step_start) / max(now - t_start, 1e-9)
                        t_last, step_last = now, step
                        means = self.window.take()
                        self._write_scalars(means, rate)
                        self.log(self._progress_line(step, total, means, rate, overall))
                    if self.is_chief and (step % cfg.image_every == 0 or step == total):
                        self._write_images(g_batch)
                    validating = bool(val_scenes) and (step % cfg.validation_every == 0
                                                       or step == total)
                    # Saved before validating, so that a failure there loses no training.
                    if validating or step % cfg.checkpoint_every == 0 or step == total:
                        self.save()
                    if validating:
                        self.validate_and_keep_best(val_scenes)
                    if preemption is not None:
                        preemption.save_checkpoint_if_preempted()
                    if self._stop_signal is not None:
                        path = self.save()
                        self.log(f"Stopped by signal {self._stop_signal} at step {step}; "
                                 f"checkpoint saved to {path}")
                        status = "interrupted"
                        break
        except Preempted:
            self.log(f"Preempted: every worker saved a checkpoint at step "
                     f"{int(self.step.numpy())}; {self.manager.latest_checkpoint}")
            status = "preempted"
        finally:
            writer.flush()
            for s, h in handlers.items():
                signal.signal(s, h)
        return status

    def _preempted(self):
        raise Preempted()

    def _progress_line(self, step, total, logs, rate, overall):
        """One line of progress from the window's means."""
        pix = " ".join(f"{b} {logs[f'l_g_pix/{b}']:.4f}" for b in self.branches)
        parts = [f"step {step}/{total}", f"l_g_pix {pix}"]
        if self.use_disc:
            gan = sum(v for k, v in logs.items() if k.startswith("l_g_gan/"))
            parts += [f"l_g_gan {gan:.3f}", f"l_d_real {logs['l_d_real']:.3f}",
                      f"l_d {logs['l_d_total']:.3f}"]
        parts += [f"lr {float(self.schedule(self.step)):.1e}", f"{rate:.2f} it/s",
                  f"ETA {format_duration((total - step) / max(overall, 1e-9))}"]
        return " | ".join(parts)


def parse_validation(spec):
    """`--validation`: a count ("2") or comma-separated scene names."""
    spec = str(spec).strip()
    return int(spec) if spec.isdigit() else [v.strip() for v in spec.split(",") if v.strip()]


def run_training(config, log=print, strategy=None):
    """Everything `hdr-gan-train` does: checks, data, networks, resume, training.

    Args:
      config: a `hdr_gan_tf.config.RunConfig`.

    Data and log dir are checked before anything is written. Returns `(trainer, status)`.
    """
    cfg = config.training
    for folder in (Path(cfg.logdir), Path(cfg.logdir) / "best", Path(tempfile.gettempdir())):
        clean_leftovers(folder)  # what killed runs left: half-written files, worker folders
    strategy = strategy or make_strategy(cfg.strategy, cfg.collective_timeout)
    check_replicas(config, strategy)  # like every check that needs no data: before any is read
    logdir = Path(cfg.logdir)
    for folder in (logdir, logdir / "best"):
        if os.path.lexists(folder) and not folder.is_dir():
            raise OutputError(f"{folder}: exists and is not a folder; {{logdir}} names a folder "
                              f"of folders", mentions=["logdir"])
    with contextlib.ExitStack() as stack:
        chief, locked = is_chief(strategy), False
        if chief and logdir.is_dir():  # an existing run: refuse a second writer at once
            stack.enter_context(log_dir_lock(logdir))
            locked = True
            for folder in (logdir, logdir / "best"):
                remove_checkpoint_temps(folder)  # a failed save's, e.g. on a full disk
        config, train_scenes, val_scenes = _prepare(config, strategy, log)
        trainer = Trainer(config, strategy, log=log)
        stack.callback(trainer.close)
        if chief and not locked:
            logdir.mkdir(parents=True, exist_ok=True)
            stack.enter_context(log_dir_lock(logdir))
        # Restored before config.json is written, so that a checkpoint that does not fit these
        # flags leaves the log dir as it was.
        trainer.restore()
        if chief:
            mark_as_training_log_dir(logdir)
            config_lib.write_config(logdir, config)
        return trainer, trainer.fit(train_scenes, val_scenes)


def _prepare(config, strategy, log):
    """Precision, seed, the log dir's recorded configuration, the data: checked before
    anything is written. Returns `(config, training scenes, validation scenes)`."""
    cfg = config.training
    config_lib.set_precision(cfg.precision)
    keras.utils.set_random_seed(cfg.seed)
    logdir = Path(cfg.logdir)
    if (logdir / config_lib.CONFIG_FILE).is_file():
        recorded = config_lib.read_config(logdir)
        if recorded.model != config.model:
            raise config_lib.ConfigError(f"{logdir} holds a run of {recorded.model}; these "
                                         f"settings ask for {config.model}. Use another "
                                         f"{{logdir}}.", mentions=["logdir"])
        # What the log dir recorded of its origin stays recorded.
        config = dataclasses.replace(config, converted_from=recorded.converted_from)
    if not cfg.data_dir:
        from hdr_gan_tf.synthetic import builtin_dataset
        config = config.replace(data_dir=str(builtin_dataset(log)))
        cfg = config.training
    # Only the chief writes the log dir; another worker keeps its disk cache in the system's
    # temporary folder, where it outlives restarts (entries are keyed by the scenes' files).
    # Training writes into its log dir (never replacing it): that must not be in the data.
    check_apart_from_inputs(logdir, [cfg.data_dir], around=False)
    if cfg.cache_dir:
        check_apart_from_inputs(cfg.cache_dir, [cfg.data_dir], around=False)
    cache_dir = cfg.cache_dir or str(logdir / DATA_CACHE if is_chief(strategy) else
                                     Path(tempfile.gettempdir()) / WORKER_DATA_CACHE)
    clean_leftovers(Path(cache_dir))  # half-written scenes of a killed run
    scenes = data_lib.open_split(cfg.data_dir, data_lib.TRAIN_SPLIT, min_size=cfg.patch_size,
                                 ldr_bits=cfg.ldr_bits, max_pixels=cfg.max_pixels,
                                 cache=cfg.cache, cache_dir=cache_dir, log=log)
    train_scenes, val_scenes = data_lib.split_validation(scenes,
                                                         parse_validation(cfg.validation))
    replicas = strategy.num_replicas_in_sync
    log(f"Data: {len(train_scenes)} training and {len(val_scenes)} validation scenes from "
        f"{cfg.data_dir}; {replicas} replica(s), each taking {cfg.batch_size // replicas} of "
        f"the {cfg.batch_size} patches of a batch")
    return config, train_scenes, val_scenes


class Preempted(Exception):
    """Raised (by `PreemptionCheckpointHandler`'s exit function) once every worker saved."""


class _RestoredManager(tf.train.CheckpointManager):
    """A CheckpointManager whose `restore_or_initialize` leaves the variables alone:
    `Trainer.restore` has already restored the newest readable checkpoint (the one this would
    pick may be damaged), and `PreemptionCheckpointHandler` calls it when it is created."""

    def restore_or_initialize(self):
        return None


# Default home of the decoded scenes when they are kept on disk (`--cache`), in the log dir.
DATA_CACHE = "data_cache"
WORKER_DATA_CACHE = "hdr_gan_tf_data_cache"
