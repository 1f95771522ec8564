from fractions import Fraction

import numpy as np
import pytest

from hdr_gan_tf.image_io import read_hdr
from hdr_gan_tf.photos import load_bracket
from hdr_gan_tf.raw_photos import raw_exposure_time, raw_size, raw_white_balance, read_raw
from tests.helpers import run_program

tifffile = pytest.importorskip("tifffile")

HEIGHT, WIDTH = 64, 96
# XYZ to linear sRGB (D65): a camera whose native space is linear sRGB.
XYZ_TO_SRGB = [3.2406, -1.5372, -0.4986, -0.9689, 1.8758, 0.0415, 0.0557, -0.2040, 1.0570]


def _rationals(values):
    out = []
    for value in values:
        f = Fraction(value).limit_denominator(100000)
        out += [f.numerator, f.denominator]
    return out


def write_dng(path, linear_rgb, seconds=None, neutral=(1, 1, 1)):
    """A minimal DNG of a Bayer (RGGB) sensor whose native colours are linear sRGB: each
    photosite keeps its colour's value of `linear_rgb` (in [0, 1], 16 bits, black 0)."""
    values = np.round(np.clip(linear_rgb, 0, 1) * 65535).astype(np.uint16)
    cfa = np.empty(values.shape[:2], np.uint16)
    cfa[0::2, 0::2] = values[0::2, 0::2, 0]
    cfa[0::2, 1::2] = values[0::2, 1::2, 1]
    cfa[1::2, 0::2] = values[1::2, 0::2, 1]
    cfa[1::2, 1::2] = values[1::2, 1::2, 2]
    tags = [(33421, "H", 2, (2, 2), True), (33422, "B", 4, (0, 1, 1, 2), True),
            (50706, "B", 4, (1, 4, 0, 0), True), (50707, "B", 4, (1, 1, 0, 0), True),
            (50708, "s", 0, "hdr_gan_tf synthetic", True), (50717, "I", 1, 65535, True),
            (50714, "I", 1, 0, True), (50721, "2i", 9, _rationals(XYZ_TO_SRGB), True),
            (50778, "H", 1, 21, True), (50728, "2I", 3, _rationals(neutral), True),
            (271, "s", 0, "hdr_gan_tf", True), (272, "s", 0, "synthetic", True)]
    if seconds:
        tags.append((33434, "2I", 1, _rationals([seconds]), True))
    tifffile.imwrite(path, cfa, photometric=32803, extratags=tags, subfiletype=0)


def _scene():
    """Smooth linear radiance (demosaicing is exact where colours change slowly)."""
    yy, xx = np.mgrid[0:HEIGHT, 0:WIDTH].astype(np.float32)
    base = 0.02 + 0.9 * (xx / WIDTH) ** 3
    return np.stack([base, base * (0.6 + 0.3 * yy / HEIGHT), base * 0.8], axis=-1)


def test_a_dng_develops_to_its_linear_values_with_the_networks_gamma(tmp_path):
    scene = _scene()
    write_dng(tmp_path / "a.dng", scene, seconds=1 / 100)
    assert raw_size(tmp_path / "a.dng") == (WIDTH, HEIGHT)
    assert raw_exposure_time(tmp_path / "a.dng") == pytest.approx(0.01)
    image, peak = read_raw(tmp_path / "a.dng", [1, 1, 1, 1])
    assert image.dtype == np.uint16 and peak == 65535
    linear = (image / 65535.0) ** 2.2
    inner = (slice(4, -4), slice(4, -4))
    assert np.median(np.abs(linear - scene)[inner] / scene[inner]) < 0.01


def test_a_raw_bracket_merges_to_the_radiance_it_was_shot_from(tmp_path):
    """Three DNGs at 1/400, 1/100 and 1/25 s (the short one with another white balance
    recorded, which the reference's replaces): exposures from their metadata, the classical
    merge gives back the scene's radiance within what demosaicing allows."""
    radiance = _scene() / 4  # the shortest exposure's scale
    paths = []
    for name, seconds, gain, neutral in (("s", 1 / 400, 1, (0.5, 1, 1)), ("m", 1 / 100, 4,
                                                                          (1, 1, 1)),
                                         ("l", 1 / 25, 16, (1, 1, 1))):
        paths.append(tmp_path / f"{name}.dng")
        write_dng(paths[-1], radiance * gain, seconds, neutral)
    # Developed with the reference's white balance, the short frame holds the scene's colours
    # (with its own as-shot balance its red would double).
    assert raw_white_balance(paths[0])[0] == pytest.approx(2 * raw_white_balance(paths[1])[0])
    short = (load_bracket(paths).ldrs[0] / 65535.0) ** 2.2
    inner = (slice(4, -4), slice(4, -4))
    assert np.median(np.abs(short - radiance)[inner] / radiance[inner]) < 0.01
    out = tmp_path / "raw.hdr"
    result = run_program("infer", "--method=debevec", "--align=none",
                         f"--inputs={','.join(map(str, paths))}", f"--output={out}")
    assert result.returncode == 0, result.stderr
    assert "EV [0.0, 2.0, 4.0]" in result.stdout
    merged = read_hdr(tmp_path / "raw.hdr")
    relative = np.abs(merged - radiance)[inner] / radiance[inner]
    print("median relative error", float(np.median(relative)))
    assert np.median(relative) < 0.02
    write_dng(tmp_path / "none.dng", radiance)
    refused = run_program("infer", "--method=debevec", f"--output={tmp_path / 'x.hdr'}",
                          f"--inputs={paths[0]},{paths[1]},{tmp_path / 'none.dng'}")
    assert refused.returncode == 2 and "EXIF ExposureTime (missing in" in refused.stderr
    assert str(tmp_path / "none.dng") in refused.stderr
