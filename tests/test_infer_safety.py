"""hdr-gan-infer against hostile and unlucky input: what `--overwrite` may replace, a set of
outputs on a full disk, refusals that name their flag or file, a batch that outlives a bad
shoot."""

import json
import shutil
import subprocess
from pathlib import Path

import numpy as np
import pytest

from hdr_gan_tf.image_io import write_ldr
from hdr_gan_tf.outputs import TEMP_PREFIX
from tests.helpers import assert_each_refused, fill_to, run_program, tiny_filesystem

pytestmark = pytest.mark.slow


@pytest.fixture()
def photos(tiny_data):
    """A built-in test scene's photos and EVs, as flags give them."""
    scene = tiny_data / "Test" / "002"
    return (sorted(scene.glob("*.tif")),
            [float(v) for v in (scene / "exposure.txt").read_text().split()])


def _infer(small_log_dir, photos, output, *extra):
    paths, ev = photos
    return run_program("infer", f"--checkpoint={small_log_dir}",
                       f"--inputs={','.join(map(str, paths))}",
                       f"--exposure_bias={','.join(map(str, ev))}", f"--output={output}",
                       "--align=none", *extra)


def _contents(folder):
    return {p.name: p.read_bytes() for p in Path(folder).iterdir() if p.name != "filler"}


def test_overwrite_replaces_only_what_the_sidecar_vouches_for(small_log_dir, photos, tmp_path):
    out = tmp_path / "shoot.hdr"
    assert _infer(small_log_dir, photos, out, "--exr").returncode == 0
    record = json.loads(out.with_suffix(".json").read_text())
    # Named relative to the sidecar's folder, so that the set can move together.
    assert [f["path"] for f in record["files"]] == ["shoot.hdr", "shoot.exr", "shoot.png"]
    assert all(f["bytes"] == (tmp_path / f["path"]).stat().st_size for f in record["files"])
    again = _infer(small_log_dir, photos, out, "--exr", "--overwrite")
    assert again.returncode == 0, again.stderr  # our own earlier merge is replaced

    notes = tmp_path / "notes.hdr"  # the user's own JSON where the sidecar would go
    notes.with_suffix(".json").write_text('{"location": "the lake", "program": "mine"}')
    mine = tmp_path / "mine.tif"  # the user's own picture named as the preview
    write_ldr(mine, np.full((8, 8, 3), 0.5))
    edited = tmp_path / "edited.hdr"  # our merge, whose preview the user then retouched
    assert _infer(small_log_dir, photos, edited).returncode == 0
    edited.with_suffix(".png").write_bytes(mine.read_bytes())
    before = _contents(tmp_path)
    paths, ev = photos
    common = [f"--checkpoint={small_log_dir}", f"--inputs={','.join(map(str, paths))}",
              f"--exposure_bias={','.join(map(str, ev))}", "--overwrite"]
    assert_each_refused({
        "the user's JSON": ("infer", [*common, f"--output={notes}"],
                            f"{notes.with_suffix('.json')}: exists and no record of ours"),
        "the user's TIFF": ("infer", [*common, f"--output={tmp_path / 'new.hdr'}",
                                      f"--preview={mine}"], f"{mine}: exists and no record"),
        "a retouched preview": ("infer", [*common, f"--output={edited}"],
                                f"{edited.with_suffix('.png')}: exists and no record"),
    })
    assert _contents(tmp_path) == before


def test_a_full_disk_changes_nothing_of_an_earlier_set_of_outputs(small_log_dir, photos,
                                                                  tmp_path):
    full = tiny_filesystem(tmp_path / "full", free_kb=1600)
    try:
        out = full / "m.hdr"
        assert _infer(small_log_dir, photos, out, "--exr").returncode == 0
        before = _contents(full)
        # Room for a new .hdr, not for the .exr too.
        fill_to(full, free_kb=len(before["m.hdr"]) // 1024 + 8)
        result = _infer(small_log_dir, photos, out, "--exr", "--overwrite",
                        "--exposure_bias=" + ",".join(map(str, np.add(photos[1], 0.5))))
        after = _contents(full)
        shutil.rmtree(full / "new", ignore_errors=True)
        (full / "filler").unlink()
        fill_to(full, free_kb=20)
        fresh = _infer(small_log_dir, photos, full / "new.hdr", "--exr")
        left = sorted(p.name for p in full.iterdir())
    finally:
        subprocess.run(["umount", str(full)], check=True)
    errors = [line for line in result.stderr.splitlines() if line.startswith("error:")]
    assert result.returncode == 2 and len(errors) == 1, result.stderr
    assert errors[0].startswith(f"error: disk full writing {out.with_suffix('.exr')}"), errors
    assert after == before  # the old .hdr, .exr, preview and sidecar, all as they were
    assert fresh.returncode == 2 and "disk full writing" in fresh.stderr
    assert left == ["filler", "m.exr", "m.hdr", "m.json", "m.png"]  # nothing of new.*
    assert not [n for n in left if n.startswith(TEMP_PREFIX)]


def test_refusals_name_the_flag_or_the_file(small_log_dir, photos, tmp_path):
    from tests.test_raw_photos import _scene, write_dng

    paths, ev = photos
    common = [f"--checkpoint={small_log_dir}", f"--inputs={','.join(map(str, paths))}",
              f"--exposure_bias={','.join(map(str, ev))}"]
    raws = []
    for n, seconds in enumerate((1 / 400, 1 / 100, 1 / 25)):
        raws.append(tmp_path / f"raw_{n}.dng")
        write_dng(raws[-1], np.clip(_scene() * 4 ** n / 8, 0, 1), seconds=seconds)
    raws[1].write_bytes(raws[1].read_bytes()[:2000])  # the reference, truncated
    out = f"--output={tmp_path / 'out.hdr'}"
    assert_each_refused({
        "short is long": ("infer", [*common, out, f"--short={paths[0]}", f"--long={paths[0]}"],
                          "--short and --long name the same photo"),
        "reference is short": ("infer", [*common, out, f"--reference={paths[0]}",
                                         f"--short={paths[0]}"],
                               "--reference and --short name the same photo"),
        "darkest as reference": ("infer", [*common, out, f"--reference={paths[0]}"],
                                 "--reference: no photo is darker than the reference"),
        "truncated RAW reference": ("infer", [f"--checkpoint={small_log_dir}", out,
                                              f"--inputs={','.join(map(str, raws))}"],
                                    f"{raws[1]}: LibRaw could not"),
        "exposures far apart": ("infer", [*common[:2], "--exposure_bias=-300,0,300", out],
                                "within ±30 EV"),
    })
    assert not (tmp_path / "out.hdr").exists()


def test_strips_narrower_than_the_alignment_reduction_merge_unaligned(small_log_dir, tmp_path):
    rng = np.random.default_rng(0)
    for height in (2, 4):
        base = rng.random((height, 5000, 3)).astype(np.float32) * 0.4
        paths = []
        for n, gain in enumerate((0.25, 1, 4)):
            paths.append(tmp_path / f"{height}_{n}.png")
            write_ldr(paths[-1], np.clip(base * gain, 0, 1), 16)
        out = tmp_path / f"strip_{height}.hdr"
        result = run_program("infer", f"--checkpoint={small_log_dir}",
                             f"--inputs={','.join(map(str, paths))}",
                             "--exposure_bias=-2,0,2", f"--output={out}")
        assert result.returncode == 0, result.stderr
        record = json.loads(out.with_suffix(".json").read_text())
        assert "too narrow to align" in record["photos"][0]["alignment"]["fallback"], record


def test_a_batch_reports_a_shoot_that_fails_unexpectedly_and_goes_on(small_log_dir, tiny_data,
                                                                     tmp_path, monkeypatch):
    import hdr_gan_tf.cli.infer as infer

    merge_and_write = infer.merge_and_write

    def failing_for_the_first(merge, bracket, output, *args, **kwargs):
        if Path(output).stem == "001":
            raise RuntimeError("a bug met in one shoot")
        return merge_and_write(merge, bracket, output, *args, **kwargs)

    monkeypatch.setattr(infer, "merge_and_write", failing_for_the_first)
    result = run_program("infer", f"--checkpoint={small_log_dir}",
                         f"--input_dir={tiny_data / 'Test'}", f"--output_dir={tmp_path / 'out'}",
                         "--align=none")
    assert result.returncode == 2, result.stderr
    assert "skipped 001: unexpected RuntimeError: a bug met in one shoot" in result.stdout
    assert "error: 1 of 2 scenes failed" in result.stderr and "Traceback" not in result.stderr
    assert (tmp_path / "out" / "002.hdr").is_file() and not (tmp_path / "out" / "001.hdr").exists()
