import tensorflow as tf
import pytest

from hdr_gan_tf.checkpoints import (checkpoint_prefixes, readable_checkpoint,
                                    remove_checkpoint_temps, resolve_checkpoint,
                                    state_file_damaged)
from hdr_gan_tf.config import ConfigError
from hdr_gan_tf.outputs import OutputError, log_dir_lock
from tests.helpers import log_dir_holder


def _save(folder, numbers):
    step = tf.Variable(0, dtype=tf.int64)
    manager = tf.train.CheckpointManager(tf.train.Checkpoint(step=step), str(folder),
                                         max_to_keep=10, checkpoint_name="ckpt")
    for n in numbers:
        step.assign(n)
        manager.save(checkpoint_number=n)


def test_checkpoints_are_found_by_listing_whatever_the_state_file_says(tmp_path):
    _save(tmp_path, [1, 2, 10])
    assert [p.rsplit("/", 1)[1] for p in checkpoint_prefixes(tmp_path)] == [
        "ckpt-10", "ckpt-2", "ckpt-1"]  # by number, not by name
    (tmp_path / "checkpoint").write_text("model_checkpoint_path: {{{ damaged")
    assert state_file_damaged(tmp_path)
    lines = []
    assert readable_checkpoint(tmp_path, lines.append).endswith("ckpt-10")
    assert "is damaged" in lines[0]
    (tmp_path / "checkpoint").unlink()
    data = next(tmp_path.glob("ckpt-10.data-*"))
    data.write_bytes(data.read_bytes()[:10])
    lines = []
    assert readable_checkpoint(tmp_path, lines.append).endswith("ckpt-2")
    assert "skipping the unreadable checkpoint" in lines[0] and "ckpt-10" in lines[0]


def test_only_tensorflows_temporary_checkpoint_folders_are_removed(tmp_path):
    (tmp_path / "ckpt-3_temp").mkdir()
    (tmp_path / "ckpt-3_temp" / "part").write_text("half")
    for kept in ("my_temp", "scans-2_temp"):
        (tmp_path / kept).mkdir()
    (tmp_path / "ckpt-3.index").write_text("kept")
    remove_checkpoint_temps(tmp_path)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["ckpt-3.index", "my_temp",
                                                          "scans-2_temp"]


def test_a_state_file_naming_checkpoints_that_are_gone_adds_none(tmp_path):
    _save(tmp_path, [4])
    for path in tmp_path.glob("ckpt-4.*"):
        path.unlink()
    assert (tmp_path / "checkpoint").is_file() and checkpoint_prefixes(tmp_path) == []


def test_a_truncated_checkpoint_named_by_its_prefix_is_refused_by_name(tmp_path):
    _save(tmp_path, [1])
    data = next(tmp_path.glob("ckpt-1.data-*"))
    data.write_bytes(data.read_bytes()[:10])
    with pytest.raises(ConfigError, match="ckpt-1: this checkpoint cannot be read in full"):
        resolve_checkpoint(tmp_path / "ckpt-1")
    with pytest.raises(ConfigError, match="ckpt-1: this checkpoint cannot be read in full"):
        resolve_checkpoint(tmp_path / "ckpt-1.index")  # its index file, meaning the same


def test_the_lock_never_follows_a_link(tmp_path):
    victim = tmp_path / "victim.txt"
    victim.write_text("precious")
    logdir = tmp_path / "run"
    logdir.mkdir()
    (logdir / ".hdr_gan_train.lock").symlink_to(victim)
    with pytest.raises(OutputError, match="is a link"):
        with log_dir_lock(logdir):
            pass
    assert victim.read_text() == "precious"


def test_a_log_dir_lock_held_elsewhere_is_refused_naming_the_holder(tmp_path):
    proc, pid = log_dir_holder(tmp_path)
    try:
        with pytest.raises(OutputError, match=f"process {pid}"):
            with log_dir_lock(tmp_path):
                pass
    finally:
        proc.communicate("")
    with log_dir_lock(tmp_path):  # free again
        pass
