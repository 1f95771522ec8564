import csv
import pathlib

import numpy as np
import pytest

from hdr_gan_tf import hdr_vdp2, metrics

DATA = pathlib.Path(__file__).parent / "data" / "hdrvdp2"
# The reference's values carry ten significant digits (Q in steps of 1e-8); ours are computed
# in float64, whose rounding moves Q by 1e-12 and P_map by 1e-13 (inputs perturbed by 1e-15:
# experiments/bench_hdr_vdp2.py --noise). A hundred times the digits' step is left for other
# machines' FFTs and filters; noise at float32's resolution already moves Q by 1e-5, and a
# different computation by 0.01 or more.
Q_TOLERANCE = 1e-6
P_TOLERANCE = 1e-8
# What the reference's one-channel and XYZ rows were made of (tests/data/hdrvdp2/README.md).
_RGB_TO_Y = np.array([0.2126, 0.7152, 0.0722])
_RGB_TO_XYZ = np.array([[0.4124, 0.3576, 0.1805], [0.2126, 0.7152, 0.0722],
                        [0.0193, 0.1192, 0.9505]])


def _rows(name):
    with open(DATA / name, newline="") as f:
        return list(csv.DictReader(f, delimiter="\t"))


@pytest.fixture(scope="module")
def images():
    with np.load(DATA / "images.npz") as stored:
        return {key: stored[key].astype(np.float64) for key in stored.files}


def _pair(images, row):
    scene = row["pair"].rsplit("_", 1)[0]
    return images[row["pair"] + "_test"], images[scene + "_ref"]


def _assert_reference(result, row):
    assert result.q == pytest.approx(float(row["Q"]), abs=Q_TOLERANCE)
    assert result.p_map.mean() == pytest.approx(float(row["P_map_mean"]), abs=P_TOLERANCE)
    assert result.p_map.max() == pytest.approx(float(row["P_map_max"]), abs=P_TOLERANCE)


def _marked(rows):
    return [pytest.param(row, id=f"{row['pair']}-{row['encoding']}-{row['ppd_from']}",
                         marks=[pytest.mark.slow] if row["width"] == "1500" else [])
            for row in rows]


@pytest.mark.parametrize("row", _marked(_rows("golden.tsv")))
def test_matches_the_reference(images, row):
    test, reference = _pair(images, row)
    scale = float(row["scale"])
    _assert_reference(hdr_vdp2.hdr_vdp2(test * scale, reference * scale, row["encoding"],
                                        float(row["ppd"])), row)


def _encoded(rgb, encoding, scale):
    if encoding == "luminance":
        return scale * (rgb @ _RGB_TO_Y)
    if encoding == "luma-display":
        return np.clip(rgb @ _RGB_TO_Y, 0, 1) ** (1 / 2.2)
    return scale * (rgb @ _RGB_TO_XYZ.T)


@pytest.mark.parametrize("row", _marked(_rows("other_encodings.tsv")))
def test_other_encodings_match_the_reference(images, row):
    test, reference = _pair(images, row)
    scale = float(row["scale"])
    _assert_reference(hdr_vdp2.hdr_vdp2(_encoded(test, row["encoding"], scale),
                                        _encoded(reference, row["encoding"], scale),
                                        row["encoding"], float(row["ppd"])), row)


def test_pixels_per_degree_of_the_protocol():
    for row in _rows("golden.tsv"):
        size = (1500, 1000) if row["ppd_from"] == "1500x1000" else (int(row["width"]),
                                                                     int(row["height"]))
        assert hdr_vdp2.pixels_per_degree(24, size, 0.5) == pytest.approx(float(row["ppd"]),
                                                                           rel=1e-9)


def test_names_as_the_reference_reads_them(images):
    test, reference = images["s0_192x128_noise_test"], images["s0_192x128_ref"]
    result = hdr_vdp2.hdr_vdp2(test, reference, "srgb-DISPLAY", np.float32(30))
    assert result.Q == result.q and result.P_map is result.p_map
    assert result.q == hdr_vdp2.hdr_vdp2(test, reference, "sRGB-display", 30.0).q


def test_identical_images_show_no_difference(images):
    reference = images["s0_192x128_ref"]
    result = hdr_vdp2.hdr_vdp2(reference, reference, "sRGB-display", 30.0)
    assert result.q == 100.0
    assert result.p_det == 0.0 and result.c_max == 0.0
    assert result.p_map.shape == reference.shape[:2]


def test_quality_falls_as_noise_grows(images):
    reference = images["s0_192x128_ref"]
    rng = np.random.default_rng(3)
    noise = rng.standard_normal(reference.shape)
    qualities = [hdr_vdp2.hdr_vdp2(reference * (1 + level * noise).clip(0), reference,
                                   "rgb-bt.709", 20.0).q for level in (0.005, 0.02, 0.08)]
    assert qualities[0] > qualities[1] > qualities[2]


def test_the_metric_in_evaluation_uses_the_protocol(images):
    test, reference = images["s0_192x128_noise_test"], images["s0_192x128_ref"]
    row = next(r for r in _rows("golden.tsv") if r["pair"] == "s0_192x128_noise"
               and r["encoding"] == "sRGB-display" and r["ppd_from"] == "image")
    scores = metrics.hdr_metrics(test, reference, ("hdr_vdp2",))
    assert scores["hdr_vdp2"] == pytest.approx(float(row["Q"]), abs=Q_TOLERANCE)
    assert metrics.METRICS.index("hdr_vdp2") == 4   # the paper's fifth column


@pytest.mark.parametrize("change, argument", [
    (lambda t, r: (t[:-1], r), "differ in shape"),
    (lambda t, r: (t - 0.5, r), "negative"),
    (lambda t, r: (np.where(t > 0.5, np.nan, t), r), "NaN"),
    (lambda t, r: (t, r[..., :2]), "reference must be [H, W, 3]"),
    (lambda t, r: (t[:14], r[:14]), "at least 15 pixels"),
    (lambda t, r: (t + 0j, r), "real numbers"),
])
def test_bad_images_are_refused(images, change, argument):
    test, reference = change(images["s0_192x128_noise_test"], images["s0_192x128_ref"])
    with pytest.raises(ValueError, match=argument.replace("[", r"\[").replace("]", r"\]")):
        hdr_vdp2.hdr_vdp2(test, reference, "sRGB-display", 30.0)


@pytest.mark.parametrize("encoding, ppd, argument", [
    ("sRGB", 30.0, "color_encoding 'sRGB' is unknown"),
    ("sRGB-display", 0.0, "pixels_per_degree must be a positive number"),
    ("sRGB-display", float("inf"), "pixels_per_degree must be a positive number"),
    ("sRGB-display", "30", "pixels_per_degree must be a positive number"),
    ("sRGB-display", True, "pixels_per_degree must be a positive number"),
    (["sRGB-display"], 30.0, "is unknown"),
])
def test_bad_arguments_are_refused(images, encoding, ppd, argument):
    reference = images["s0_192x128_ref"]
    with pytest.raises(ValueError, match=argument):
        hdr_vdp2.hdr_vdp2(reference, reference, encoding, ppd)
