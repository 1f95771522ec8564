import re
import shutil

import cv2
import numpy as np
import pytest

from hdr_gan_tf import data, layouts, scene_cache
from hdr_gan_tf.image_io import read_hdr, read_ldr, write_hdr
from hdr_gan_tf.imaging import GAMMA, inverse_mu_law, to_unit
from hdr_gan_tf.synthetic import synthesize_dataset, synthesize_scene
from tests.helpers import START_TENSORFLOW, training_batches


# ------------------------------------------------------------------ generated data set
def test_generated_set_reads_back(tiny_data):
    train = data.open_split(tiny_data, data.TRAIN_SPLIT)
    test = data.open_split(tiny_data, data.TEST_SPLIT)
    assert [s.name for s in train] == ["001", "002", "003", "004"]
    assert len(test) == 2
    for scene in train + test:
        assert scene.ldrs.shape == (3, 96, 128, 3) and scene.ldrs.dtype == np.uint16
        assert scene.hdr.shape == (96, 128, 3) and scene.hdr.dtype == np.float32
        assert 0 < scene.hdr.min() and scene.hdr.max() <= 1.0 + 1e-6
        assert tuple(scene.exposure_bias) in {(-2, 0, 2), (-3, 0, 3), (0, 2, 4), (0, 3, 6)}
        ldr = scene.ldr_float()
        assert 0 <= ldr.min() and ldr.max() <= 1
        # exposure order: brighter with longer exposure
        assert ldr[0].mean() < ldr[1].mean() < ldr[2].mean()
    raw = (tiny_data / "Training" / "002" / "exposure.txt").read_text().split()
    assert raw[0] == "0"  # both EV conventions are written


def test_generated_scenes_are_hdr_with_motion_aligned_to_the_reference():
    rng = np.random.default_rng(5)
    scene = synthesize_scene(rng, 192, 256, ev_step=2)
    hdr = scene["hdr"]
    assert np.log2(hdr.max() / hdr.min()) >= 12
    assert scene["motion"] >= 0.05 * 256
    # The ground truth is the scene at the reference exposure: re-exposing it gives the
    # reference LDR (up to noise) wherever that LDR is not clipped.
    ref = scene["ldrs"][1]
    predicted = np.clip(hdr * 4, 0, 1) ** (1 / GAMMA)
    ok = (ref > 0.05) & (ref < 0.95)
    assert np.median(np.abs(predicted - ref)[ok]) < 0.01
    # The short exposure shows the moving object elsewhere: large disagreement somewhere.
    short_pred = np.clip(hdr, 0, 1) ** (1 / GAMMA)
    disagreement = np.abs(short_pred - scene["ldrs"][0]).max(axis=-1) > 0.1
    assert disagreement.mean() > 0.02


def test_same_seed_same_files(tmp_path):
    a = synthesize_dataset(tmp_path / "a", 1, 1, 64, 96, seed=3)
    b = synthesize_dataset(tmp_path / "b", 1, 1, 64, 96, seed=3)
    c = synthesize_dataset(tmp_path / "c", 1, 1, 64, 96, seed=4)
    for name in ("IMG_0001.tif", "HDRImg.hdr", "exposure.txt"):
        assert (a / "Training/001" / name).read_bytes() == (b / "Training/001" / name).read_bytes()
    assert not np.array_equal(read_ldr(a / "Training/001/IMG_0002.tif"),
                              read_ldr(c / "Training/001/IMG_0002.tif"))


def test_synthesis_refuses_an_existing_folder(tiny_data):
    with pytest.raises(FileExistsError, match="exists"):
        synthesize_dataset(tiny_data, 1, 1, 64, 96)


def test_nested_test_scenes_and_crlf_exposures(tiny_data, tmp_path):
    root = tmp_path / "nested"
    shutil.copytree(tiny_data / "Training", root / "Training")
    shutil.copytree(tiny_data / "Test" / "001", root / "Test" / "PAPER" / "Sunset")
    (root / "Test/PAPER/Sunset/exposure.txt").write_bytes(b"-2.00\r\n0.00\r\n2.00\r\n")
    scenes = data.open_split(root, data.TEST_SPLIT)
    assert [s.name for s in scenes] == ["PAPER/Sunset"]
    np.testing.assert_array_equal(scenes[0].exposure_bias, [-2, 0, 2])


def test_validation_split_by_count_and_by_name(tiny_data):
    scenes = data.open_split(tiny_data, data.TRAIN_SPLIT)
    train, val = data.split_validation(scenes, 2)
    assert [s.name for s in val] == ["001", "004"] and len(train) == 2
    train, val = data.split_validation(scenes, ["003"])
    assert [s.name for s in val] == ["003"] and "003" not in [s.name for s in train]
    with pytest.raises(data.DataError, match="not among"):
        data.split_validation(scenes, ["999"])


# ------------------------------------------------------------------ bad input
def _copy_scene(tiny_data, tmp_path):
    root = tmp_path / "root"
    shutil.copytree(tiny_data / "Training" / "001", root / "Training" / "001")
    return root, root / "Training" / "001"


def _corrupt(kind, scene):
    ldrs = sorted(scene.glob("*.tif"))
    if kind == "two_ldrs":
        ldrs[2].unlink()
    elif kind == "four_ldrs":
        shutil.copy(ldrs[2], scene / "IMG_9999.tif")
    elif kind == "unequal_size":
        cv2.imwrite(str(ldrs[1]), cv2.imread(str(ldrs[1]), cv2.IMREAD_UNCHANGED)[:80])
    elif kind == "truncated_tiff":
        ldrs[0].write_bytes(ldrs[0].read_bytes()[:300])
    elif kind == "grayscale_tiff":
        cv2.imwrite(str(ldrs[0]), cv2.imread(str(ldrs[0]), cv2.IMREAD_UNCHANGED)[..., 0])
    elif kind == "rgba_tiff":
        img = cv2.imread(str(ldrs[0]), cv2.IMREAD_UNCHANGED)
        cv2.imwrite(str(ldrs[0]), np.dstack([img, img[..., :1]]))
    elif kind == "exposure_empty":
        (scene / "exposure.txt").write_text("\n")
    elif kind == "exposure_text":
        (scene / "exposure.txt").write_text("-2\nzero\n2\n")
    elif kind == "exposure_count":
        (scene / "exposure.txt").write_text("-2\n0\n")
    elif kind == "exposure_order":
        (scene / "exposure.txt").write_text("2\n0\n-2\n")
    elif kind == "missing_hdr":
        (scene / "HDRImg.hdr").unlink()
    elif kind == "corrupt_hdr":
        path = scene / "HDRImg.hdr"
        path.write_bytes(path.read_bytes()[:120])
    elif kind == "exr_named_hdr":  # an OpenEXR file renamed: refused before any decoder
        write_hdr(scene / "gt.exr", read_hdr(scene / "HDRImg.hdr"))
        (scene / "gt.exr").replace(scene / "HDRImg.hdr")
    elif kind == "exr_named_tif":
        write_hdr(scene / "x.exr", read_hdr(scene / "HDRImg.hdr"))
        (scene / "x.exr").replace(ldrs[0])


@pytest.mark.parametrize("kind, message", [
    ("two_ldrs", "holds 2 LDR TIFF files"),
    ("four_ldrs", "holds 4 LDR TIFF files"),
    ("unequal_size", "LDR images differ in size"),
    ("truncated_tiff", r"IMG_0001.tif: (cannot decode|damaged TIFF header)"),
    ("grayscale_tiff", r"IMG_0001.tif: grayscale"),
    ("rgba_tiff", r"IMG_0001.tif: RGBA"),
    ("exposure_empty", r"exposure.txt: empty"),
    ("exposure_text", r"exposure.txt: exposure values must be numbers"),
    ("exposure_count", r"exposure.txt: expected 3 exposure values"),
    ("exposure_order", r"exposure.txt: exposure values must increase"),
    ("missing_hdr", r"HDRImg.hdr: file not found"),
    ("corrupt_hdr", r"HDRImg.hdr: cannot decode"),
    ("exr_named_hdr", r"HDRImg.hdr: holds OpenEXR data but is named .hdr; refusing"),
    ("exr_named_tif", r"IMG_0001.tif: holds OpenEXR data but is named .tif; refusing"),
])
def test_bad_scenes_are_refused_with_scene_file_and_problem(tiny_data, tmp_path, kind, message):
    root, scene = _copy_scene(tiny_data, tmp_path)
    _corrupt(kind, scene)
    before = sorted(p.name for p in scene.iterdir())
    with pytest.raises(data.DataError, match=f"scene '001': .*{message}"):
        data.open_split(root, data.TRAIN_SPLIT)
    assert sorted(p.name for p in scene.iterdir()) == before  # nothing written


def test_missing_root_no_scenes_and_small_images(tiny_data, tmp_path):
    with pytest.raises(data.DataError, match="data root not found"):
        data.open_split(tmp_path / "nowhere", data.TRAIN_SPLIT)
    (tmp_path / "empty" / "Training" / "junk").mkdir(parents=True)
    with pytest.raises(data.DataError, match="no scenes found"):
        data.open_split(tmp_path / "empty", data.TRAIN_SPLIT)
    with pytest.raises(data.DataError, match=r"scene '001': images are 128x96, smaller than the "
                                             r"256x256 patch size"):
        data.open_split(tiny_data, data.TRAIN_SPLIT, min_size=256)


# ------------------------------------------------------------------ training pipeline
def _pattern_scene(height=40, width=56):
    """A scene whose every image is the same coordinate pattern (16-bit exact)."""
    yy, xx = np.mgrid[0:height, 0:width]
    pattern = np.stack([yy * 1000 + 7, xx * 1000 + 11, (yy * width + xx) % 60000], -1)
    raw = pattern.astype(np.uint16)
    return data.Scene(name="pattern", path=None, ldr_paths=[], ldrs=np.stack([raw] * 3),
                      peak=65535, exposure_bias=np.array([-2, 0, 2], np.float32),
                      hdr=raw.astype(np.float32) / 65535)


def test_crops_of_ldrs_and_ground_truth_stay_aligned_after_augmentation():
    scene = _pattern_scene()
    ds = data.training_dataset([scene], patch_size=16, batch_size=4, seed=0)
    orientations = set()
    for (x_short, x_ref, x_long), target in ds.take(8):
        ldr = [(x.numpy()[..., :3] + 1) / 2 for x in (x_short, x_ref, x_long)]
        hdr = inverse_mu_law(to_unit(target))  # the target is 2·T(H) - 1
        for i in range(3):
            np.testing.assert_allclose(ldr[i], hdr.numpy(), atol=2e-6)
        # Recover the orientation from how the row/column codes change along the patch.
        for sample in hdr.numpy() * 65535:
            rows, cols = np.round(sample[..., 0]), np.round(sample[..., 1])
            assert len(np.unique(rows)) == 16 and len(np.unique(cols)) == 16  # a real crop
            orientations.add((int(np.sign(rows[1, 0] - rows[0, 0])),
                              int(np.sign(cols[0, 1] - cols[0, 0])),
                              int(np.sign(rows[0, 1] - rows[0, 0]))))
    assert len(orientations) >= 4  # rotations and flips do happen


def test_same_seed_same_batches_and_resume_continues_the_stream():
    scenes = [_pattern_scene(40, 56), _pattern_scene(48, 48)]
    take = lambda ds, n: [b[1].numpy() for b in ds.take(n)]  # noqa: E731
    a = take(data.training_dataset(scenes, 16, 2, seed=7), 3)
    b = take(data.training_dataset(scenes, 16, 2, seed=7), 3)
    c = take(data.training_dataset(scenes, 16, 2, seed=8), 3)
    resumed = take(data.training_dataset(scenes, 16, 2, seed=7, start=2), 2)
    for x, y in zip(a, b):
        np.testing.assert_array_equal(x, y)
    assert not all(np.array_equal(x, y) for x, y in zip(a, c))
    np.testing.assert_array_equal(resumed[0], a[1])
    np.testing.assert_array_equal(resumed[1], a[2])


def test_network_inputs_and_target_from_the_pipeline_are_computed_from_the_scene(tiny_data):
    """The μ-law channels and the target, by hand from the scene's files and exposures:
    X_i = (2 I_i - 1, 2 T(I_i^2.2 / t_i) - 1), t_i = 2^(e_i - min e), target 2 T(H) - 1."""
    scene = data.open_split(tiny_data, data.TRAIN_SPLIT)[1]
    (x_short, x_ref, x_long), target = next(iter(data.training_dataset(
        [scene], 32, 1, seed=3, augment=False)))
    ldrs = scene.ldr_float()
    ldr_ref = (x_ref.numpy()[0, ..., :3] + 1) / 2
    # Where the crop was taken: the one window of the reference photo that matches.
    windows = np.lib.stride_tricks.sliding_window_view(ldrs[1], (32, 32, 3))[..., 0, :, :, :]
    top, left = np.argwhere(np.abs(windows - ldr_ref).max(axis=(-3, -2, -1)) < 1e-6)[0]
    crop = (slice(top, top + 32), slice(left, left + 32))
    times = 2.0 ** (scene.exposure_bias - scene.exposure_bias.min())
    mu_law_np = lambda h: np.log1p(5000 * h) / np.log1p(5000)  # noqa: E731
    for x, ldr, t in zip((x_short, x_ref, x_long), ldrs, times):
        np.testing.assert_allclose(x.numpy()[0, ..., :3], 2 * ldr[crop] - 1, atol=1e-6)
        expected = 2 * mu_law_np(ldr[crop].astype(np.float64) ** 2.2 / t) - 1
        np.testing.assert_allclose(x.numpy()[0, ..., 3:], expected, atol=2e-6)
    np.testing.assert_allclose(target.numpy()[0], 2 * mu_law_np(scene.hdr[crop]) - 1, atol=2e-6)
    assert times.tolist() != [1, 1, 1]


def test_ldr_bits_8_reduces_16_bit_photos_as_opencv_default_reads_do(tiny_data):
    full = data.open_split(tiny_data, data.TEST_SPLIT)[0]
    reduced = data.open_split(tiny_data, data.TEST_SPLIT, ldr_bits=8)[0]
    assert full.peak == 65535 and reduced.peak == 255 and reduced.ldrs.dtype == np.uint8
    opencv = cv2.imread(str(full.ldr_paths[0]))[..., ::-1]  # IMREAD_COLOR, what TF1 read
    np.testing.assert_array_equal(reduced.ldrs[0], opencv)
    assert not np.array_equal(full.ldrs[0], reduced.ldrs[0].astype(np.uint16) * 257)
    with pytest.raises(data.DataError, match="ldr_bits must be 8 or 16"):
        layouts.load_scene(full.path, ldr_bits=12)


def test_test_pipeline_yields_full_scenes(tiny_data):
    scenes = data.open_split(tiny_data, data.TEST_SPLIT)
    items = list(data.test_dataset(scenes))
    assert len(items) == 2
    name, ldrs, ev, hdr = items[0]
    assert name.numpy() == b"001" and ldrs.shape == (3, 96, 128, 3) and hdr.shape == (96, 128, 3)


# ------------------------------------------------------------------ data sets larger than memory
def _write_big_split(root, count, height, width):
    """A Training split of random 16-bit scenes (files in the real layout, no synthesis)."""
    rng = np.random.default_rng(11)
    for k in range(count):
        scene = root / "Training" / f"{k:03d}"
        scene.mkdir(parents=True)
        for i in range(3):
            cv2.imwrite(str(scene / f"ldr_{i}.tif"),
                        rng.integers(0, 65536, (height, width, 3), dtype=np.uint16))
        write_hdr(scene / "HDRImg.hdr", rng.random((height, width, 3), np.float32) * 4)
        (scene / "exposure.txt").write_text("0\n2\n4\n")
    return root


_DISK_PATH = START_TENSORFLOW + """
import json, resource, sys
import numpy as np
from hdr_gan_tf import data, scene_cache
from tests.helpers import training_batches
def peak_kb():
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
training_batches([data.Scene("warm-up", ".", [], np.zeros((3, 64, 64, 3), np.uint16), 65535,
                     np.array([0, 2, 4], np.float32), np.zeros((64, 64, 3), np.float32))], 1)
before = peak_kb()
scenes = data.open_split(sys.argv[1], "Training", cache=sys.argv[3], cache_dir=sys.argv[2])
batches = training_batches(scenes)
np.save(sys.argv[2] + "/batches.npy", np.stack(batches))
print(json.dumps({"growth_mb": (peak_kb() - before) / 1024,
                  "kinds": sorted({type(s).__name__ for s in scenes})}))
"""


@pytest.mark.slow
def test_a_split_larger_than_the_memory_budget_trains_from_the_disk_cache(tmp_path):
    """Six 1500x1000 scenes decode to 270 MB; with the disk cache the process's peak memory
    grows by less than a 120 MB budget while it opens the split and draws batches (measured
    with getrusage in a fresh process), and the batches are those of the in-memory path."""
    import json
    import subprocess
    import sys

    from tests.helpers import REPO

    budget_mb = 120
    root = _write_big_split(tmp_path / "big", count=6, height=1000, width=1500)
    scenes = data.open_split(root, "Training")
    decoded_mb = sum(s.ldrs.nbytes + s.hdr.nbytes for s in scenes) / 2 ** 20
    assert decoded_mb > 2 * budget_mb
    assert scene_cache.decoded_size([s.path for s in scenes]) == pytest.approx(
        decoded_mb * 2 ** 20)
    in_memory = training_batches(scenes)
    del scenes

    cache = tmp_path / "cache"
    cache.mkdir()
    result = subprocess.run([sys.executable, "-c", _DISK_PATH, str(root), str(cache), "disk"],
                            capture_output=True, text=True, cwd=REPO, timeout=300)
    assert result.returncode == 0, result.stderr
    report = json.loads(result.stdout.strip().splitlines()[-1])
    assert report["kinds"] == ["DiskScene"]
    assert report["growth_mb"] < budget_mb, report
    for ours, theirs in zip(np.load(cache / "batches.npy"), in_memory):
        np.testing.assert_array_equal(ours, theirs)
    assert len(list(cache.glob("*.bin"))) == 6


def test_the_disk_cache_is_reused_until_a_scene_changes(tiny_data, tmp_path):
    root = tmp_path / "data"
    shutil.copytree(tiny_data, root)
    cache = tmp_path / "cache"
    first = data.open_split(root, "Training", cache="disk", cache_dir=cache)
    memory = data.open_split(root, "Training")
    for a, b in zip(first, memory):
        assert (a.name, a.shape, a.peak) == (b.name, b.shape, b.peak)
        np.testing.assert_array_equal(a.ldrs, b.ldrs)
        np.testing.assert_array_equal(a.hdr, b.hdr)
        np.testing.assert_array_equal(a.window(3, 5, 16)[0], b.window(3, 5, 16)[0])
        np.testing.assert_array_equal(a.window(3, 5, 16)[1], b.window(3, 5, 16)[1])
    assert all(s.decoded for s in first)
    reopened = data.open_split(root, "Training", cache="disk", cache_dir=cache)
    assert not any(s.decoded for s in reopened)  # every scene came from the cache
    changed = root / "Training" / first[0].name / "exposure.txt"
    changed.write_text("0\n3\n6\n")
    again = data.open_split(root, "Training", cache="disk", cache_dir=cache)
    assert [s.name for s in again if s.decoded] == [first[0].name]
    np.testing.assert_array_equal(again[0].exposure_bias, [0, 3, 6])
    # "auto" keeps a split in memory while the headers announce less than half the memory
    # available, and goes to disk beyond.
    lines = []
    assert all(isinstance(s, data.Scene) for s in data.open_split(
        root, "Training", cache="auto", cache_dir=cache, log=lines.append))
    assert lines == []
    needed = scene_cache.decoded_size(s.path for s in first)
    assert all(isinstance(s, scene_cache.DiskScene) for s in data.open_split(
        root, "Training", cache="auto", cache_dir=cache, log=lines.append,
        available=int(1.9 * needed)))
    assert len(lines) == 1 and "training reads its patches from a disk cache" in lines[0]


def test_the_authors_layout_reads_as_the_same_scenes(tiny_data, tmp_path):
    """The same seed in the authors' layout (train/ and test/, input_1..3.tif, input_exp.txt
    with CRLF, ref_hdr.hdr, beside files their code also had) opens to the very same scenes."""
    authors = synthesize_dataset(tmp_path / "authors", num_train=4, num_test=2, height=96,
                                 width=128, seed=1, layout="authors")
    assert sorted(p.name for p in authors.iterdir()) == ["test", "train"]
    scene_dir = authors / "train" / "002"
    assert sorted(p.name for p in scene_dir.iterdir()) == [
        "input_1.tif", "input_2.tif", "input_3.tif", "input_exp.txt", "ref_hdr.hdr"]
    assert b"\r\n" in (scene_dir / "input_exp.txt").read_bytes()
    shutil.copy(scene_dir / "input_1.tif", scene_dir / "ref_1.tif")  # theirs: ignored
    (scene_dir / "ref_exp.txt").write_text("0\n2\n4\n")
    assert layouts.layout_of(scene_dir).name == "authors"
    assert layouts.layout_of(tiny_data / "Training" / "002").name == "kalantari"
    for split in (data.TRAIN_SPLIT, data.TEST_SPLIT):
        ours, theirs = data.open_split(tiny_data, split), data.open_split(authors, split)
        assert [s.name for s in ours] == [s.name for s in theirs]
        for a, b in zip(ours, theirs):
            np.testing.assert_array_equal(a.ldrs, b.ldrs)
            np.testing.assert_array_equal(a.hdr, b.hdr)
            np.testing.assert_array_equal(a.exposure_bias, b.exposure_bias)
    # Malformed scenes of this layout get the same kind of message: scene, file, problem.
    (scene_dir / "input_exp.txt").unlink()
    with pytest.raises(data.DataError, match=r"scene '002': .*input_exp.txt: file not found"):
        data.open_split(authors, data.TRAIN_SPLIT)
    shutil.rmtree(authors / "test")
    with pytest.raises(data.DataError, match=r"Test: split folder not found .*\(nor .*test\)"):
        data.open_split(authors, data.TEST_SPLIT)


def test_the_ntire_layout_decodes_as_the_challenge_encodes(tmp_path):
    """NNNN_{short,medium,long}.png (8 bits, gamma 2.24), NNNN_exposures.npy and NNNN_gt.png
    (16 bits, `H ** (1/2.24)` times NNNN_alignratio.npy) decode to what the challenge's own
    reading gives, re-encoded for gamma 2.2 and brought to our exposure scale; the 16-bit
    ground truth encodes back to the very file; the scenes are those of the Kalantari layout
    up to the two layouts' quantisation."""
    root = synthesize_dataset(tmp_path / "ntire", num_train=2, num_test=1, height=64, width=96,
                              seed=3, layout="ntire")
    kalantari = synthesize_dataset(tmp_path / "kalantari", num_train=2, num_test=1, height=64,
                                   width=96, seed=3)
    split = root / "Training"
    assert sorted(p.name for p in split.iterdir())[:6] == [
        f"0001_{part}" for part in ("alignratio.npy", "exposures.npy", "gt.png", "long.png",
                                    "medium.png", "short.png")]
    scenes = data.open_split(root, data.TRAIN_SPLIT)
    assert [s.name for s in scenes] == ["0001", "0002"]
    # float32 rounding of a division, a power and a scaling: a few ulps, well inside 8.
    rtol = 8 * np.finfo(np.float32).eps
    for scene, twin in zip(scenes, data.open_split(kalantari, data.TRAIN_SPLIT)):
        prefix = str(split / scene.name)
        assert layouts.layout_of(prefix).name == "ntire"
        png = cv2.imread(prefix + "_gt.png", cv2.IMREAD_UNCHANGED)[..., ::-1]
        ratio = np.load(prefix + "_alignratio.npy").astype(np.float32)
        ev = np.load(prefix + "_exposures.npy")
        assert png.dtype == np.uint16 and png.max() == 65535 and ev[1] == 0
        np.testing.assert_array_equal(scene.exposure_bias, ev)
        at_medium = scene.hdr.astype(np.float64) * 2.0 ** (ev[1] - ev[0])
        np.testing.assert_allclose(at_medium, (png / ratio) ** 2.24, rtol=rtol)
        np.testing.assert_array_equal(np.round(at_medium ** (1 / 2.24) * ratio), png)
        for frame, ldr in zip(("short", "medium", "long"), scene.ldr_float()):
            raw = cv2.imread(prefix + f"_{frame}.png", cv2.IMREAD_UNCHANGED)[..., ::-1]
            assert raw.dtype == np.uint8
            np.testing.assert_allclose(ldr, (raw / 255) ** (2.24 / GAMMA), rtol=0,
                                       atol=0.5 / 65535 + rtol)
        # The twin: 16-bit TIFFs at gamma 2.2 and an RGBE ground truth (8-bit mantissas).
        assert np.abs(scene.ldr_float() - twin.ldr_float()).max() <= 1 / 255
        peak = twin.hdr.max(axis=-1, keepdims=True)
        assert np.all(np.abs(scene.hdr - twin.hdr) <= 2.0 ** -7 * peak + 1e-6)


@pytest.mark.parametrize("part, damage, message", [
    ("exposures.npy", None, "0001_exposures.npy: file not found"),
    ("exposures.npy", b"not numpy", "0001_exposures.npy: not a NumPy .npy file"),
    ("exposures.npy", np.array([0.0, 2.0]), "expected 3 exposure values, got 2"),
    ("alignratio.npy", np.float32(0), "0001_alignratio.npy: the align ratio must be one "
                                      "positive number"),
    # positive as float64, 0 once float32: the ground truth would be Inf and every score NaN
    ("alignratio.npy", np.float64(1e-300), "0001_alignratio.npy: the align ratio 1e-300 is "
                                           "not a usable float32 scale"),
    ("exposures.npy", np.array([-300.0, 0.0, 300.0]), "exposure values must lie within ±30 EV"),
    ("gt.png", np.zeros((64, 96, 3), np.uint8), "0001_gt.png: an 8-bit image; the NTIRE "
                                                "ground truth is a 16-bit PNG"),
])
def test_a_malformed_ntire_scene_is_named_with_its_file(tmp_path, part, damage, message):
    root = synthesize_dataset(tmp_path / "ntire", num_train=1, num_test=1, height=64, width=96,
                              layout="ntire")
    target = root / "Training" / f"0001_{part}"
    if damage is None:
        target.unlink()
    elif isinstance(damage, bytes):
        target.write_bytes(damage)
    elif part.endswith(".png"):
        cv2.imwrite(str(target), damage)
    else:
        np.save(target, damage)
    with pytest.raises(data.DataError, match=f"scene '0001': .*{re.escape(message)}"):
        data.open_split(root, data.TRAIN_SPLIT)
