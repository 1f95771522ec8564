import json
import math
from pathlib import Path

import cv2
import numpy as np
import pytest

from hdr_gan_tf import alignment, data, evaluation, synthetic
from hdr_gan_tf.classical import DebevecMerger, mertens_fusion
from hdr_gan_tf.image_io import SpooledImages, read_hdr, read_ldr, read_ldr_raw, write_ldr
from hdr_gan_tf.imaging import GAMMA
from hdr_gan_tf.merge import InferenceOptions
from tests.helpers import run_program

HEIGHT, WIDTH = 288, 384
EV = np.array([-2, 0, 2], np.float32)


def _motion(angle, dx, dy, perspective=0.0):
    """A camera turning by `angle` degrees about the centre, shifting and tilting."""
    c, s = math.cos(math.radians(angle)), math.sin(math.radians(angle))
    cx, cy = (WIDTH - 1) / 2, (HEIGHT - 1) / 2
    return (np.array([[1, 0, cx + dx], [0, 1, cy + dy], [0, 0, 1]])
            @ np.array([[c, -s, 0], [s, c, 0], [perspective, perspective / 2, 1]])
            @ np.array([[1, 0, -cx], [0, 1, -cy], [0, 0, 1]]))


def _hand_held(seed, to_photo, flat=False):
    """A bracket of a procedural scene (sun, sky, bricks, shadows; an object moving left to
    right) shot hand-held: `to_photo[i]` maps a reference pixel to photo `i`'s pixel."""
    rng = np.random.default_rng(seed)
    canvas = synthetic._background(rng, HEIGHT, WIDTH)
    if flat:
        canvas = np.full_like(canvas, 0.01)
    look = (rng.uniform(0.4, 1.0, 3).astype(np.float32), 0.02, 7)
    photos = []
    for i, homography in enumerate(to_photo):
        # Photo pixel `homography @ p` shows what the reference shows at `p`.
        scene = cv2.warpPerspective(canvas, homography, (WIDTH, HEIGHT),
                                    flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REFLECT)
        scene = synthetic._paste_object(scene, look, (0.6 * HEIGHT, (0.3 + 0.15 * i) * WIDTH),
                                        (0.15 * HEIGHT, 0.1 * WIDTH))
        photos.append(synthetic._expose(scene, 2.0 ** (EV[i] - EV[0]), rng, 65535))
    return np.stack(photos).astype(np.float32)


def _corner_error(a, b, height=HEIGHT, width=WIDTH):
    """The largest distance between where homographies `a` and `b` take a corner."""
    corners = np.array([[0, 0, 1], [width - 1, 0, 1], [width - 1, height - 1, 1],
                        [0, height - 1, 1]], np.float64)
    pa, pb = corners @ a.T, corners @ b.T
    return np.abs(pa[:, :2] / pa[:, 2:] - pb[:, :2] / pb[:, 2:]).max()


HAND_HELD = {
    "shifted": (_motion(0, 9, -5), _motion(0, -12, 7)),
    "turned": (_motion(1.5, 10, -6), _motion(-2, -11, 8)),
    "tilted": (_motion(1, 8, -4, 2e-5), _motion(-1.5, -10, 6, -3e-5)),
}


def _random_motion(rng):
    return _motion(rng.uniform(-2, 2), *rng.uniform(-0.03, 0.03, 2) * WIDTH,
                   rng.uniform(-3e-5, 3e-5))


def test_hand_held_photos_are_registered_to_the_reference():
    """Random hand-held brackets (rotation up to ±2°, shifts up to ±3 % of the width, slight
    perspective, an object moving between the frames, a 4 EV spread): the median corner error
    of the estimated homographies is under half a pixel, none beyond 3 pixels, and every photo
    moved agrees with the reference better than unmoved."""
    rng = np.random.default_rng(11)
    errors = []
    for seed in range(6):
        short, long = _random_motion(rng), _random_motion(rng)
        photos = _hand_held(seed, [short, np.eye(3), long])
        aligned, found = alignment.align_bracket(photos, EV, "auto")
        assert found[1].method == "reference"
        np.testing.assert_array_equal(aligned.rows(0, HEIGHT)[1], photos[1])
        for a, truth in ((found[0], short), (found[2], long)):
            errors.append(_corner_error(a.homography, truth))
            assert a.residual <= a.residual_unaligned, a
            if a.method != "none":
                assert a.residual < 0.97 * a.residual_unaligned and 0 < a.uncovered < 0.2
    print("corner errors (px):", np.round(sorted(errors), 3).tolist())
    assert np.median(errors) <= 0.5 and max(errors) <= 3, errors


def test_hand_held_brackets_with_a_mostly_clipped_long_photo_are_registered():
    """The hard case of a hand-held shoot (`synthetic.hand_held_bracket`): ±3 EV, the long
    photo clipped over about 60 % of its pixels (sky, sun, lamp), turns of up to 3°, shifts of
    up to 3 % of the width, perspective, an object moving across. Every photo within 2 pixels
    of its true motion at the corners, the median within 0.3, none left unaligned, and every
    residual a finite number measured on the pixels both photos show."""
    height, width, errors = 240, 360, []
    for seed in range(6):
        photos, ev, truth = synthetic.hand_held_bracket(np.random.default_rng(700 + seed),
                                                        height, width)
        assert (photos[2].max(axis=-1) >= 0.999).mean() > 0.5  # the long photo mostly clipped
        _, found = alignment.align_bracket(photos, ev, "auto")
        for i in (0, 2):
            a = found[i]
            assert a.method != "none" and math.isfinite(a.residual), a
            assert a.residual < 0.97 * a.residual_unaligned, a
            errors.append(_corner_error(a.homography, truth[i], height, width))
    print("corner errors (px):", np.round(sorted(errors), 3).tolist())
    assert max(errors) <= 2 and np.median(errors) <= 0.3, errors


@pytest.mark.slow
def test_hand_held_brackets_of_a_real_scene_are_registered():
    """Real content: parts of a real HDR capture (the 1500×1000 ground truth of
    tests/data/hdrvdp2) shot hand-held at ±3 EV, the long photo clipped over about 85 % of
    its pixels, so that little is exposed in both. Every photo within 2 pixels at the corners,
    the median within 0.3, none left unaligned."""
    with np.load(Path(__file__).parent / "data" / "hdrvdp2" / "images.npz") as stored:
        scene = stored["full_1500x1000_ref"].astype(np.float32)
    height, width, errors = 320, 480, []
    for seed in range(940, 946):
        rng = np.random.default_rng(seed)
        top = rng.integers(0, scene.shape[0] - height + 1)
        left = rng.integers(0, scene.shape[1] - width + 1)
        photos, ev, truth = synthetic.hand_held_bracket(
            rng, height, width, clipped=0.85, radiance=scene[top:top + height, left:left + width])
        assert (photos[2].max(axis=-1) >= 0.999).mean() > 0.75
        _, found = alignment.align_bracket(photos, ev, "auto")
        for i in (0, 2):
            assert found[i].method != "none", found[i]
            errors.append(_corner_error(found[i].homography, truth[i], height, width))
    print("corner errors (px):", np.round(sorted(errors), 3).tolist())
    assert max(errors) <= 2 and np.median(errors) <= 0.3, errors


@pytest.mark.slow
def test_mostly_clipped_photos_are_never_moved_wrongly():
    """Where the long photo is mostly clipped, little tells a motion apart: a tripod bracket of
    the real capture at 97 % stays where it is (within half a pixel), and a long photo of
    another part of the capture, or of it upside down, is left where it is, saying why."""
    with np.load(Path(__file__).parent / "data" / "hdrvdp2" / "images.npz") as stored:
        scene = stored["full_1500x1000_ref"].astype(np.float32)
    height, width = 320, 480

    def part(rng):
        top = rng.integers(0, scene.shape[0] - height + 1)
        left = rng.integers(0, scene.shape[1] - width + 1)
        return scene[top:top + height, left:left + width]

    for seed in (400, 401, 402):
        rng = np.random.default_rng(seed)
        photos, ev, _ = synthetic.hand_held_bracket(rng, height, width, clipped=0.97,
                                                    radiance=part(rng), max_angle=0,
                                                    max_shift=0, max_tilt=0)
        _, found = alignment.align_bracket(photos, ev, "auto")
        for a in found:
            assert _corner_error(a.homography, np.eye(3), height, width) < 0.5, (seed, a)
    for seed in (1000, 1001, 1002, 1003):
        rng = np.random.default_rng(seed)
        photos, ev, _ = synthetic.hand_held_bracket(rng, height, width, clipped=0.85,
                                                    radiance=part(rng))
        photos[2] = synthetic.hand_held_bracket(rng, height, width, clipped=0.85,
                                                radiance=part(rng))[0][2]
        _, found = alignment.align_bracket(photos, ev, "auto")
        assert found[2].method == "none" and found[2].fallback, (seed, found[2])
    # At full size, a long photo of the capture turned upside down: a shift of 175 pixels once
    # passed both checks by a little.
    rng = np.random.default_rng(1000)
    photos, ev, _ = synthetic.hand_held_bracket(rng, 1000, 1500, clipped=0.85, radiance=scene)
    photos[2] = synthetic.hand_held_bracket(rng, 1000, 1500, clipped=0.85,
                                            radiance=scene[::-1, ::-1].copy())[0][2]
    _, found = alignment.align_bracket(photos, ev, "auto")
    assert found[2].method == "none" and "weak evidence" in found[2].fallback, found[2]


def test_photos_with_too_little_in_common_are_left_alone_saying_so():
    """A long photo that shows almost nothing the reference shows well (clipped but for a
    corner): no motion can be judged, so none is made, the sidecar says why, and its numbers
    are null rather than infinite."""
    photos, ev, _ = synthetic.hand_held_bracket(np.random.default_rng(3), 240, 360)
    photos[2] = 1.0
    photos[2, :12, :12] = 0.5
    _, found = alignment.align_bracket(photos, ev, "auto")
    assert found[2].method == "none" and "too little in common" in found[2].fallback
    record = found[2].record()
    assert record["alignment"]["residual"] is None and json.dumps(record, allow_nan=False)


def test_every_mode_registers_a_bracket_estimated_on_a_reduced_copy():
    """Forced motions, and the estimate made on copies reduced threefold (96x128) then scaled
    back to full resolution: the homography's corners still land within 3 pixels (one pixel
    of the reduced copy); a translation cannot follow the rotation, but leaves less
    disagreement than none."""
    short, long = HAND_HELD["turned"]
    photos = _hand_held(1, [short, np.eye(3), long])
    for mode, limit in (("homography", 3), ("translation", 12)):
        _, found = alignment.align_bracket(photos, EV, mode, estimate_side=128)
        for a, truth in ((found[0], short), (found[2], long)):
            assert a.method == mode and a.requested == mode, a
            assert _corner_error(a.homography, truth) < limit, (mode, a)
            assert a.residual < (0.5 if mode == "homography" else 0.97) * a.residual_unaligned
    # Too dark to compare anything: left alone, saying so, in every mode.
    dark = photos * 0.01
    for mode in ("auto", "homography", "translation"):
        _, found = alignment.align_bracket(dark, EV, mode)
        assert found[0].method == "none" and found[0].fallback, (mode, found[0])
        assert json.dumps(found[0].record(), allow_nan=False)


def test_auto_never_does_worse_than_not_aligning():
    """A tripod bracket stays (near) where it is; a photo with nothing to compare is left alone
    with the reason; a photo of another scene, or of a scene with nothing to register but a
    moving object, is moved only where that agrees better with the reference than not moving
    it, in every mode."""
    still = _hand_held(2, [np.eye(3)] * 3)
    _, found = alignment.align_bracket(still, EV, "auto")
    for a in found:
        assert _corner_error(a.homography, np.eye(3)) < 0.5 and a.residual <= (
            a.residual_unaligned)
    # A long photo clipped everywhere has nothing to register: left alone, saying why.
    clipped = still.copy()
    clipped[2] = 1.0
    _, found = alignment.align_bracket(clipped, EV, "auto")
    assert found[2].method == "none" and "did not converge" in found[2].fallback
    np.testing.assert_array_equal(found[2].homography, np.eye(3))
    unrelated = _hand_held(2, [np.eye(3)] * 3)
    unrelated[0] = _hand_held(3, [np.eye(3)] * 3)[0]
    flat = _hand_held(4, [_motion(1.5, 10, -6), np.eye(3), _motion(-2, -11, 8)], flat=True)
    for photos in (unrelated, flat):
        for mode in ("auto", "translation", "homography"):
            _, found = alignment.align_bracket(photos, EV, mode)
            for a in (found[0], found[2]):
                assert a.residual <= a.residual_unaligned, (mode, a)
                assert a.method == "none" or a.residual < 0.97 * a.residual_unaligned
    _, found = alignment.align_bracket(still, EV, "none")
    assert [a.method for a in found] == ["none", "reference", "none"]


def test_warped_rows_are_read_band_by_band_and_the_uncovered_part_comes_from_the_reference():
    short, long = HAND_HELD["turned"]
    photos = _hand_held(1, [short, np.eye(3), long])
    uint16 = np.round(photos * 65535).astype(np.uint16)  # as photos are read
    aligned = alignment.AlignedBracket(uint16, 2.0 ** (EV - EV[0]), [short, np.eye(3), long])
    whole = aligned.rows(0, HEIGHT)
    bands = np.concatenate([aligned.rows(top, top + 37) for top in range(0, HEIGHT, 37)],
                           axis=1)
    np.testing.assert_array_equal(bands, whole)
    np.testing.assert_array_equal(whole[1], uint16[1] / np.float32(65535))
    with SpooledImages() as spooled:  # photos spooled to a file, as a streamed merge has them
        for photo in uint16:
            spooled.append(photo)
        from_spool = alignment.AlignedBracket(spooled, 2.0 ** (EV - EV[0]),
                                              [short, np.eye(3), long])
        np.testing.assert_array_equal(from_spool.rows(50, 90), whole[:, 50:90])
    # Where the short photo does not reach: the reference brought to the short exposure.
    ys, xs = np.mgrid[0:HEIGHT, 0:WIDTH]
    points = np.stack([xs, ys, np.ones_like(xs)], axis=-1) @ short.T
    x, y = points[..., 0] / points[..., 2], points[..., 1] / points[..., 2]
    outside = (x < 0) | (x > WIDTH - 1) | (y < 0) | (y > HEIGHT - 1)
    assert 0.01 < outside.mean() < 0.2
    expected = np.minimum(1, whole[1] ** GAMMA * np.float32(2.0 ** (EV[0] - EV[1]))) ** (
        1 / GAMMA)
    np.testing.assert_allclose(whole[0][outside], expected[outside], rtol=1e-6)
    assert alignment.uncovered_share(short, (HEIGHT, WIDTH)) == pytest.approx(
        outside.mean(), abs=0.01)
    # Inside, the warped photo: the reference's static pixels agree with it.
    inside = ~outside & (photos[1].max(-1) < 0.9) & (photos[1].mean(-1) > 0.1)
    linear = whole[0] ** GAMMA * 4, whole[1] ** GAMMA
    assert np.median(np.abs(linear[0] - linear[1])[inside]) < 0.01


@pytest.mark.slow
def test_infer_aligns_a_hand_held_bracket_and_records_it(tmp_path):
    """hdr-gan-infer (the classical merges: no model needed) aligns by default and writes each
    photo's homography with how it was found into the sidecar; the streamed, tiled merge reads
    the same aligned photos band by band and gives the whole-image result; Mertens' fusion of
    them is written as the preview alone."""
    short, long = HAND_HELD["tilted"]
    photos = _hand_held(1, [short, np.eye(3), long])
    paths = [tmp_path / f"{name}.tif" for name in ("s", "m", "l")]
    for path, photo in zip(paths, photos):
        write_ldr(path, photo, 16)
    common = [f"--inputs={','.join(map(str, paths))}", "--exposure_bias=-2,0,2",
              "--method=debevec"]
    runs = {"whole": ["--panel"], "tiled": ["--tile=96", "--overlap=16"],
            "none": ["--align=none"], "fused": ["--method=mertens"]}
    for name, extra in runs.items():
        result = run_program("infer", *common, f"--output={tmp_path / name}.hdr", *extra)
        assert result.returncode == 0, result.stderr
    sidecar = json.loads((tmp_path / "whole.json").read_text())
    by_role = {p["role"]: p for p in sidecar["photos"]}
    for role, truth in (("short", short), ("long", long)):
        found = by_role[role]
        assert _corner_error(np.array(found["homography_reference_to_photo"]), truth) < 3
        assert found["alignment"]["method"] in ("homography", "rigid", "translation")
        assert found["alignment"]["requested"] == "auto"
        assert 0 < found["alignment"]["uncovered"] < 0.2
    assert by_role["reference"]["homography_reference_to_photo"] == np.eye(3).tolist()
    np.testing.assert_array_equal(read_hdr(tmp_path / "tiled.hdr"),
                                  read_hdr(tmp_path / "whole.hdr"))
    unaligned = json.loads((tmp_path / "none.json").read_text())
    assert {p["alignment"]["method"] for p in unaligned["photos"]} == {"none", "reference"}
    # --panel: the reference photo, the preview without alignment, the preview with it.
    panel = read_ldr(tmp_path / "whole_panel.png")
    assert panel.shape == (HEIGHT, 3 * WIDTH, 3)
    below_labels = slice(40, HEIGHT)
    for k, name in ((1, "none"), (2, "whole")):  # to a step of the 8-bit PNGs
        np.testing.assert_allclose(panel[below_labels, k * WIDTH:(k + 1) * WIDTH],
                                   read_ldr(tmp_path / f"{name}.png")[below_labels],
                                   rtol=0, atol=1.01 / 255)
    # Mertens' fusion of the same aligned photos is a picture: the preview, and no HDR file.
    fused = json.loads((tmp_path / "fused.json").read_text())
    assert fused["outputs"] == [] and not (tmp_path / "fused.hdr").exists()
    assert "Mertens" in fused["merged_by"]
    refused = run_program("infer", *common[:2], "--method=mertens", "--exr",
                          f"--output={tmp_path / 'x.hdr'}")
    assert refused.returncode == 2 and "--exr: the mertens method makes a picture to look at and writes no HDR file" in (
        refused.stderr)
    read = np.stack([read_ldr_raw(p)[0] for p in paths])
    aligned, _ = alignment.align_bracket(read, EV, "auto")
    write_ldr(tmp_path / "expected.png", mertens_fusion(aligned.rows(0, HEIGHT)), 8)
    # OpenCV's vector and scalar loops may round a value differently: one 8-bit step, rarely.
    fused_png, expected_png = read_ldr(tmp_path / "fused.png"), read_ldr(tmp_path / "expected.png")
    np.testing.assert_allclose(fused_png, expected_png, rtol=0, atol=1.01 / 255)
    assert np.mean(fused_png != expected_png) < 1e-3


def test_evaluate_can_align_and_it_helps_on_shaken_scenes(tiny_data):
    """The built-in scenes' non-reference photos are shaken by up to 3 pixels: aligning them
    first raises the classical merge's PSNR-μ (data sets are aligned, so `none` is the
    default)."""
    scenes = data.open_split(tiny_data, data.TEST_SPLIT)
    merge = DebevecMerger(InferenceOptions())
    scores = {}
    for mode in ("none", "auto"):
        rows = [row for *_, row in evaluation.score_scenes(merge, scenes, ["main"],
                                                           metrics=("psnr_mu",), align=mode)]
        scores[mode] = np.mean([r["psnr_mu_main"] for r in rows])
    assert scores["auto"] > scores["none"] + 0.5, scores
