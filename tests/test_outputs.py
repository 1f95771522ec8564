import json
import os
from pathlib import Path

import pytest

from hdr_gan_tf import outputs
from hdr_gan_tf.outputs import (MARKER, TEMP_PREFIX, OutputError, check_output_dir,
                                check_output_file, clean_leftovers, output_dir)


def _export(folder, text="old"):
    """An earlier hdr-gan-export output."""
    with output_dir(folder, "saved_model") as tmp:
        (tmp / "saved_model.pb").write_text(text)
    return folder


@pytest.mark.parametrize("target, why", [
    (".", "current folder or one above it"), ("..", "current folder or one above it"),
    ("/", "current folder or one above it"), ("~", "home folder")])
def test_the_working_folder_its_parents_and_home_are_refused(tmp_path, monkeypatch, target,
                                                              why):
    monkeypatch.chdir(tmp_path)
    with pytest.raises(OutputError, match=why):
        check_output_dir(os.path.expanduser(target), "saved_model", overwrite=True)


def test_inputs_and_folders_around_them_are_refused(tmp_path):
    logdir = tmp_path / "runs" / "x"
    logdir.mkdir(parents=True)
    (logdir / "ckpt-1.index").write_text("checkpoint")
    for target, relation in ((logdir, "is"), (tmp_path / "runs", "contains"),
                             (logdir / "export", "lies inside")):
        with pytest.raises(OutputError, match=f"it {relation} the input"):
            check_output_dir(target, "saved_model", overwrite=True, inputs=[logdir])
    with pytest.raises(OutputError, match="it lies inside the input"):
        check_output_file(logdir / "model.onnx", overwrite=True, inputs=[logdir])
    assert (logdir / "ckpt-1.index").read_text() == "checkpoint"


def test_only_an_earlier_output_of_the_same_program_is_replaced(tmp_path):
    other = tmp_path / "photos"
    other.mkdir()
    (other / "holiday.jpg").write_text("precious")
    with pytest.raises(OutputError, match="not an earlier output of hdr-gan-export"):
        check_output_dir(other, "saved_model", overwrite=True)
    earlier = _export(tmp_path / "export")
    with pytest.raises(OutputError, match="pass --overwrite"):
        check_output_dir(earlier, "saved_model", overwrite=False)
    check_output_dir(earlier, "saved_model", overwrite=True)  # allowed
    with pytest.raises(OutputError, match="not an earlier output of hdr-gan-evaluate"):
        check_output_dir(earlier, "evaluation", overwrite=True)  # another program's
    legacy = tmp_path / "legacy"  # an export written before markers
    (legacy / "variables").mkdir(parents=True)
    (legacy / "saved_model.pb").write_text("pb")
    check_output_dir(legacy, "saved_model", overwrite=True)
    (tmp_path / "empty").mkdir()
    check_output_dir(tmp_path / "empty", "saved_model", overwrite=False)


def test_the_swap_keeps_the_old_output_when_it_fails_between_the_renames(tmp_path,
                                                                        monkeypatch):
    target = _export(tmp_path / "export", "old")
    renames = []
    real_rename = os.rename

    def second_rename_fails(src, dst):
        renames.append((Path(src).name, Path(dst).name))
        if len(renames) == 2:
            raise OSError("disk went away between the renames")
        real_rename(src, dst)

    monkeypatch.setattr(outputs.os, "rename", second_rename_fails)
    with pytest.raises(OSError, match="between the renames"):
        _export(target, "new")
    monkeypatch.undo()
    assert (target / "saved_model.pb").read_text() == "old"  # back in place, complete
    assert sorted(p.name for p in tmp_path.iterdir()) == ["export"]  # nothing left over
    assert renames[0][1].startswith(TEMP_PREFIX) and renames[0][1].endswith("export-old")
    _export(target, "new")
    assert (target / "saved_model.pb").read_text() == "new"
    assert json.loads((target / MARKER).read_text())["program"] == "hdr-gan-export"


def test_output_folders_get_the_users_usual_permissions(tmp_path):
    umask = os.umask(0o022)
    try:
        target = _export(tmp_path / "export")
    finally:
        os.umask(umask)
    assert target.stat().st_mode & 0o777 == 0o755


def test_stale_leftovers_are_removed_and_an_old_output_put_back(tmp_path):
    dead = 2 ** 22 + 17  # above the kernel's default pid_max: no such process
    assert outputs._process_started(dead) is None
    aside = tmp_path / f"{TEMP_PREFIX}{dead}-export-old"
    aside.mkdir()
    (aside / "saved_model.pb").write_text("old")
    stale_new = tmp_path / f"{TEMP_PREFIX}{dead}-export-new-abc"
    stale_new.mkdir()
    stale_file = tmp_path / f"{TEMP_PREFIX}{dead}-result.hdr.x1"
    stale_file.write_text("half")
    live = tmp_path / f"{TEMP_PREFIX}{os.getpid()}-busy"
    live.write_text("being written")
    handled = clean_leftovers(tmp_path)
    assert len(handled) == 3
    assert (tmp_path / "export" / "saved_model.pb").read_text() == "old"
    assert not stale_new.exists() and not stale_file.exists() and live.exists()
