import errno
import json
import os
from pathlib import Path

import pytest

from hdr_gan_tf import outputs
from hdr_gan_tf.outputs import (MARKER, TEMP_PREFIX, DiskFull, OutputError, check_output_dir,
                                check_output_file, check_outputs, clean_leftovers,
                                disk_full, mark_as_training_log_dir, output_dir, temp_name)
from tests.helpers import log_dir_holder, python_child


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
    with pytest.raises(OutputError, match="set `overwrite` to replace it"):
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
    with pytest.raises(ProcessLookupError):
        os.kill(dead, 0)
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


def test_a_live_writers_folder_set_aside_is_not_put_back(tmp_path):
    """A rename keeps a folder's time, so a folder set aside long ago by a writer that still
    runs must be told apart by the writer's identity, not by times."""
    proc, aside = python_child(f"""
        import os, sys
        from hdr_gan_tf.outputs import temp_name
        aside = os.path.join({str(tmp_path)!r}, temp_name("export-old"))
        os.mkdir(aside)
        os.utime(aside, (1e9, 1e9))  # made in 2001, as an old output renamed aside keeps
        print(aside, flush=True)
    """)
    try:
        assert clean_leftovers(tmp_path) == []
        assert Path(aside).is_dir() and not (tmp_path / "export").exists()
    finally:
        proc.communicate("")
    assert clean_leftovers(tmp_path) == [Path(aside).name]  # its writer is gone: put back
    assert (tmp_path / "export").is_dir()


def test_temporary_names_record_the_process_and_its_start(tmp_path):
    name = temp_name("x")
    assert name.startswith(f"{TEMP_PREFIX}{os.getpid()}")
    (tmp_path / name).write_text("mine")
    # The same pid with another start time is another (earlier) process: stale.
    pid, started, namespace = name[len(TEMP_PREFIX):].split("-", 1)[0].split(".")
    reused = tmp_path / f"{TEMP_PREFIX}{pid}.{int(started) - 1}.{namespace}-y"
    reused.write_text("a dead process's")
    # A name from another pid namespace (another container on a shared folder) says nothing
    # about the processes here: left alone.
    elsewhere = tmp_path / f"{TEMP_PREFIX}{pid}.{int(started) - 1}.{int(namespace) + 1}-z"
    elsewhere.write_text("another container's, maybe live")
    assert clean_leftovers(tmp_path) == [reused.name]
    assert elsewhere.exists() and (tmp_path / name).exists()


def test_a_training_log_dir_is_never_replaced(tmp_path):
    converted = tmp_path / "ft"
    with output_dir(converted, "log_dir") as tmp:
        (tmp / "ckpt-0.index").write_text("converted")
    check_output_dir(converted, "log_dir", overwrite=True)  # the converter's own, untrained
    mark_as_training_log_dir(converted)  # what hdr-gan-train does when it takes a log dir
    for kind in ("log_dir", "saved_model", "evaluation"):
        with pytest.raises(OutputError, match="is a training log dir"):
            check_output_dir(converted, kind, overwrite=True)
    older = tmp_path / "older"  # trained before trainers marked their log dirs
    (older / "train").mkdir(parents=True)
    (older / MARKER).write_text(json.dumps({"kind": "log_dir"}))
    with pytest.raises(OutputError, match="is a training log dir"):
        check_output_dir(older, "log_dir", overwrite=True)


@pytest.mark.parametrize("case", ["same file", "inside an output folder", "input photo",
                                  "inside an input folder"])
def test_outputs_are_checked_against_each_other_and_every_input(tmp_path, case):
    shoot = tmp_path / "shoots" / "b"
    shoot.mkdir(parents=True)
    (shoot / "a.png").write_bytes(b"a photo")
    out = tmp_path / "out.hdr"
    files, folders, inputs = [out, out.with_suffix(".png")], [], [tmp_path / "shoots"]
    if case == "same file":
        files = [out, tmp_path / "." / "out.hdr"]
    elif case == "inside an output folder":
        folders = [(tmp_path / "export", "saved_model")]
        files = [tmp_path / "export" / "model.onnx"]
    elif case == "input photo":
        files, inputs = [shoot / "a.png"], [shoot / "a.png"]
    else:
        files = [shoot / "a.png"]
    with pytest.raises(OutputError, match="refusing to write here"):
        check_outputs(files=files, folders=folders, inputs=inputs, overwrite=True)
    assert (shoot / "a.png").read_bytes() == b"a photo"


def test_a_full_disk_names_the_file_being_written(tmp_path):
    err = disk_full(OSError(errno.ENOSPC, "No space left on device"), tmp_path / "a.hdr")
    assert isinstance(err, DiskFull) and str(err).startswith(f"disk full writing {tmp_path}")
    tf_message = ("{{function_node SaveV2}} /runs/x/ckpt-2_temp/part-00000-of-00001.data-00000"
                  "-of-00001.tempstate1748; No space left on device [Op:SaveV2]")
    assert disk_full(RuntimeError(tf_message), "?").filename == (
        "/runs/x/ckpt-2_temp/part-00000-of-00001.data-00000-of-00001")


@pytest.mark.parametrize("meanwhile", ["trained", "locked"])
def test_a_folder_that_became_a_training_log_dir_meanwhile_is_not_replaced(tmp_path, meanwhile):
    """An evaluation runs long after its output folder was checked: if a trainer took the folder
    over in between, the swap checks again (under the trainer's lock) and replaces nothing."""
    from hdr_gan_tf.outputs import log_dir_lock

    target = tmp_path / "eval"
    with output_dir(target, "evaluation") as tmp:
        (tmp / "metrics.json").write_text("{}")
    check_output_dir(target, "evaluation", overwrite=True)
    holder = None
    with pytest.raises(OutputError, match="training log dir|is writing this log dir"):
        with output_dir(target, "evaluation") as tmp:
            (tmp / "metrics.json").write_text("new")
            if meanwhile == "trained":  # what hdr-gan-train does when it takes a folder
                with log_dir_lock(target):
                    mark_as_training_log_dir(target)
                (target / "ckpt-1.index").write_text("a trained checkpoint")
            else:
                holder, _ = log_dir_holder(target)
    if holder:
        holder.communicate("")
    else:
        assert (target / "ckpt-1.index").read_text() == "a trained checkpoint"
    assert (target / "metrics.json").read_text() == "{}"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["eval"]  # nothing left over


def test_an_evaluation_holding_a_scene_named_train_is_no_training_log_dir(tmp_path):
    target = tmp_path / "eval"
    with output_dir(target, "evaluation") as tmp:
        (tmp / "train").mkdir()  # the scene "train" of some data set
    check_output_dir(target, "evaluation", overwrite=True)
    with pytest.raises(OutputError, match="not an earlier output of hdr-gan-export"):
        check_output_dir(target, "saved_model", overwrite=True)


def test_a_record_vouches_for_what_it_lists_as_it_is_now(tmp_path, monkeypatch):
    from hdr_gan_tf.outputs import fingerprint, vouched_for

    shoot = tmp_path / "a" / "shoot"
    shoot.mkdir(parents=True)
    (shoot / "out.hdr").write_bytes(b"merged")
    record = shoot / "out.json"
    record.write_text(json.dumps({"program": "hdr-gan-infer",
                                  "files": [fingerprint(shoot / "out.hdr", record=record)]}))
    assert vouched_for(shoot / "out.hdr", [record])
    monkeypatch.chdir(tmp_path)  # named from elsewhere, relatively
    assert vouched_for(Path("a/shoot/out.hdr"), [Path("a/shoot/out.json")])
    moved = tmp_path / "b"
    (tmp_path / "a").rename(moved)  # the folder moved, record and all
    assert vouched_for(moved / "shoot" / "out.hdr", [moved / "shoot" / "out.json"])
    (moved / "shoot" / "out.hdr").write_bytes(b"edited")  # same size, other contents
    assert not vouched_for(moved / "shoot" / "out.hdr", [moved / "shoot" / "out.json"])
    (moved / "notes.json").write_text(json.dumps({"program": "mine", "files": []}))
    with pytest.raises(OutputError, match="no record of ours"):
        check_output_file(moved / "notes.json", overwrite=True, records=[moved / "notes.json"])
    with pytest.raises(OutputError, match="the name of our programs' own records"):
        check_output_file(moved / MARKER, overwrite=True)


def test_a_set_is_replaced_whole_or_not_at_all(tmp_path, monkeypatch):
    from hdr_gan_tf.outputs import output_set, write_text

    for name in ("a.txt", "b.txt", "c.txt"):
        (tmp_path / name).write_text("old")
    with pytest.raises(OSError):
        with output_set():
            write_text(tmp_path / "a.txt", "new")
            write_text(tmp_path / "b.txt", "new")
            raise OSError(errno.ENOSPC, "No space left on device")
    renames, real_rename = [], os.rename

    def failing_third_rename(src, dst):  # aside a, aside b, in a, then in b fails
        renames.append(dst)
        if len(renames) == 4:
            raise OSError(errno.EIO, "input/output error")
        real_rename(src, dst)

    monkeypatch.setattr(os, "rename", failing_third_rename)
    with pytest.raises(OSError, match="input/output"):
        with output_set():
            write_text(tmp_path / "a.txt", "new")
            write_text(tmp_path / "b.txt", "new")
    monkeypatch.setattr(os, "rename", real_rename)
    assert {p.name: p.read_text() for p in tmp_path.iterdir()} == {
        "a.txt": "old", "b.txt": "old", "c.txt": "old"}
    with output_set():
        write_text(tmp_path / "a.txt", "new")
        write_text(tmp_path / "c.txt", "new")
    assert {p.name: p.read_text() for p in tmp_path.iterdir()} == {
        "a.txt": "new", "b.txt": "old", "c.txt": "new"}


def test_an_old_file_a_killed_set_left_aside_is_put_back(tmp_path):
    (tmp_path / "m.hdr").write_text("old")
    aside = tmp_path / outputs.temp_name("m.hdr-old").replace(str(os.getpid()), "999999999", 1)
    (tmp_path / "m.hdr").rename(aside)  # killed between setting it aside and the new one's in
    clean_leftovers(tmp_path)
    assert [p.name for p in tmp_path.iterdir()] == ["m.hdr"]
    assert (tmp_path / "m.hdr").read_text() == "old"
