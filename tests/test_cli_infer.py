"""hdr-gan-infer run as a user runs it: brackets in any order, tiles, the classical merges,
longer brackets, EXIF times, batch mode and bad input."""

import json
import shutil
from pathlib import Path

import numpy as np
import pytest

from hdr_gan_tf.metrics import METRICS

from hdr_gan_tf.image_io import read_hdr, write_hdr, write_ldr
from tests.helpers import (run_program, run_programs)

pytestmark = pytest.mark.slow


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
    assert record["ev_source"] == "exposure_bias" and record["reference"].endswith("b_mid.tif")
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
    from hdr_gan_tf.merge import GeneratorMerger, InferenceOptions
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
    merge = GeneratorMerger(generator, ["aux1", "main"],
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
    assert set(metrics["mean"]) == {"scene"} | {f"{m}_main" for m in METRICS}
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
    assert "--long: " in results["not in it"].stderr and "not one of the bracket's photos" in (
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


def test_hdr_photos_are_written_by_suffix_and_by_list_and_bad_combinations_refused(
        photos, tmp_path):
    """`--output=x.jpg` writes an Ultra HDR JPEG, `--formats` more beside it (streamed in
    tiles too); Mertens to an HDR photo, an unknown or repeated format, a headroom beyond PQ:
    one error line naming the flag, nothing written."""
    from hdr_gan_tf import hdr_photos
    from tests.helpers import assert_each_refused

    paths, ev = photos
    common = ["--method=debevec", "--align=none", f"--inputs={','.join(map(str, paths))}",
              f"--exposure_bias={','.join(map(str, ev))}"]
    result = run_program("infer", *common, f"--output={tmp_path / 'a.jpg'}",
                         "--formats=avif,hdr", "--tile=48", "--overlap=8", "--hdr_headroom=2")
    assert result.returncode == 0, result.stderr
    assert sorted(p.name for p in tmp_path.iterdir() if p.name.startswith("a.")) == [
        "a.avif", "a.hdr", "a.jpg", "a.json", "a.png"]
    record = json.loads((tmp_path / "a.json").read_text())
    white = 2.0 ** -(sorted(ev)[1] - sorted(ev)[0])
    for name in ("a.jpg", "a.avif"):
        chosen = record["renderings"][str(tmp_path / name)]
        assert chosen["white"] == white and chosen["headroom_stops"] <= 2
    # The HDR photos hold the radiance file's values, relative to white, where they are lit
    # (within twice docs/hdr_photos.md's 0.15 stop: a 96x128 picture is mostly edges, where
    # JPEG's blocks err most; the promise itself is tested in test_hdr_photos.py).
    hdr = read_hdr(tmp_path / "a.hdr") / white
    lit = (hdr.mean(axis=-1) > 0.18 * 2 ** -5) & (hdr.max(axis=-1) < 4)
    for decoded in (hdr_photos.read_ultra_hdr(tmp_path / "a.jpg")[0],
                    hdr_photos.read_hdr_avif(tmp_path / "a.avif")):
        errors = np.abs(np.log2(np.maximum(decoded, 1e-6) / np.maximum(hdr, 1e-6)))[lit]
        assert np.percentile(errors, 95) <= 0.3

    out = f"--output={tmp_path / 'b.hdr'}"
    assert_each_refused({
        "fusion": ("infer", [*common[1:], "--method=mertens", out, "--formats=avif"],
                   "--formats: the mertens method makes a picture to look at"),
        "unknown": ("infer", [*common, out, "--formats=webp"], "--formats: unknown format 'webp'"),
        "twice": ("infer", [*common, out, "--formats=jpg,jpg"], "--formats: jpg is named twice"),
        "own": ("infer", [*common, out, "--formats=hdr"], "--formats: hdr is named twice"),
        "suffix": ("infer", [*common, f"--output={tmp_path / 'b.webp'}"],
                   "--output: " + str(tmp_path / "b.webp") + ": must end in .hdr or"),
        "headroom": ("infer", [*common, out, "--formats=jpg", "--hdr_headroom=7"],
                     "--hdr_headroom: stops above white, from 0 to 5.62"),
        "preview": ("infer", [*common, out, "--formats=jpg", f"--preview={tmp_path / 'b.jpg'}"],
                    f"--preview={tmp_path / 'b.jpg'}: the same file as another output"),
    })
    assert not [p for p in tmp_path.iterdir() if p.name.startswith("b.")]
