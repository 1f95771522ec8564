"""HDR photos: an Ultra HDR JPEG and an HDR AVIF of a merge, decoded back with the libraries'
decoders and compared with the radiance."""

import struct

import cv2
import numpy as np
import pytest
from PIL import Image

from hdr_gan_tf import hdr_photos
from hdr_gan_tf.formats import FORMATS
from hdr_gan_tf.settings import ConfigError
from hdr_gan_tf.synthetic import synthesize_scene

# The promise of docs/hdr_photos.md: within 0.15 stop at the 95th percentile over ±5 stops
# around mid-grey (0.18 of white).
STOPS_P95 = 0.15


@pytest.fixture(scope="module")
def scene():
    """A procedural scene's ground truth as a merge would give it, and its EVs."""
    made = synthesize_scene(np.random.default_rng(3), 240, 360)
    return made["hdr"].astype(np.float32), made["exposure_bias"]


def stop_errors(decoded, x):
    """|log2(decoded / x)| of the pixels within ±5 stops of mid-grey."""
    grey = x.mean(axis=-1)
    kept = (grey > 0.18 * 2 ** -5) & (grey < 0.18 * 2 ** 5)
    assert kept.mean() > 0.5  # most of the picture is tested
    return np.abs(np.log2(np.maximum(decoded, 1e-6) / np.maximum(x, 1e-6)))[kept]


def nclx(data):
    """`(primaries, transfer, matrix, full_range)` of an ISOBMFF file's `colr` box of type
    `nclx` (ISO/IEC 23091-2 code points)."""
    at = data.index(b"colrnclx") + 8
    primaries, transfer, matrix = struct.unpack(">HHH", data[at:at + 6])
    return primaries, transfer, matrix, bool(data[at + 6] >> 7)


def _written(name, tmp_path, hdr, ev, headroom=hdr_photos.DEFAULT_HEADROOM, bands=None):
    path = tmp_path / f"merged{FORMATS[name].suffix}"
    rendering = hdr_photos.Rendering(hdr_photos.white_of(ev), headroom)
    if bands:
        with FORMATS[name].rows(path, *hdr.shape[:2], rendering) as write:
            for first in range(0, len(hdr), bands):
                write(hdr[first:first + bands])
    else:
        FORMATS[name].write(path, hdr, rendering)
    return path, rendering


def test_the_white_is_what_the_reference_photo_records_as_white():
    assert hdr_photos.white_of([-3.0, 0.0, 3.0]) == 0.125
    assert hdr_photos.white_of([0.0, 2.0, 4.0]) == 0.25


def test_ultra_hdr_decodes_to_the_radiance_and_its_base_is_an_ordinary_jpeg(scene, tmp_path):
    hdr, ev = scene
    path, rendering = _written("jpg", tmp_path, hdr, ev)
    chosen = rendering.chosen[str(path)]
    # As a display with just the headroom the file declares shows it: the declaration is right.
    x, sdr = hdr_photos.read_ultra_hdr(path, chosen["headroom_stops"])
    errors = stop_errors(x, hdr / rendering.white)
    assert np.percentile(errors, 95) <= STOPS_P95, np.percentile(errors, 95)
    with Image.open(path) as base:  # a JPEG whose gain map is a second picture (MPF)
        assert base.format in ("JPEG", "MPO") and base.size == (360, 240)
    picture = cv2.imread(str(path))[..., ::-1]  # what an ordinary JPEG decoder shows
    assert np.abs(picture.astype(int) - sdr.astype(int)).mean() < 1  # the same SDR picture
    assert 64 < picture.mean() < 200  # a picture, neither black nor white
    assert chosen["headroom_stops"] == pytest.approx(np.log2(hdr.max() / rendering.white), 1e-3)
    assert chosen["quality"] == hdr_photos.ULTRA_HDR_QUALITY and "sdr_base" in chosen


def test_hdr_avif_is_pq_bt2020_and_decodes_to_the_radiance(scene, tmp_path):
    hdr, ev = scene
    path, rendering = _written("avif", tmp_path, hdr, ev)
    assert nclx(path.read_bytes())[:3] == (9, 16, 9)  # BT.2020, PQ, BT.2020 non-constant
    errors = stop_errors(hdr_photos.read_hdr_avif(path), hdr / rendering.white)
    assert np.percentile(errors, 95) <= STOPS_P95, np.percentile(errors, 95)


@pytest.mark.parametrize("name", [n for n, f in FORMATS.items() if f.display])
def test_a_streamed_hdr_photo_is_the_whole_one_and_the_headroom_is_capped(name, scene,
                                                                         tmp_path):
    hdr, ev = scene
    whole, _ = _written(name, tmp_path / "whole", hdr, ev, headroom=1.0)
    banded, rendering = _written(name, tmp_path / "banded", hdr, ev, headroom=1.0, bands=70)
    assert banded.read_bytes() == whole.read_bytes()
    assert rendering.chosen[str(banded)]["headroom_stops"] == 1.0
    decoded = (hdr_photos.read_ultra_hdr(banded, 1.0)[0] if name == "jpg"
               else hdr_photos.read_hdr_avif(banded))
    assert decoded.max() < 2.0 * 1.1  # nothing shown above the cap (with the codec's error)


@pytest.mark.parametrize("cap", [-1.0, 6.0, float("nan")])
def test_a_headroom_beyond_pq_is_refused_naming_the_setting(cap):
    with pytest.raises(ConfigError) as err:
        hdr_photos.Rendering(0.25, cap)
    assert err.value.field == "hdr_headroom"


def test_pq_round_trips_over_its_range():
    nits = np.geomspace(0.01, 10000, 50)
    np.testing.assert_allclose(hdr_photos.pq_decode(hdr_photos.pq_encode(nits)), nits,
                               rtol=1e-9)
    assert hdr_photos.pq_encode(10000.0) == pytest.approx(1.0)


@pytest.mark.parametrize("name", [n for n, f in FORMATS.items() if f.display])
def test_a_picture_too_small_for_the_encoder_is_named(name, tmp_path):
    from hdr_gan_tf.image_io import ImageError

    path = tmp_path / f"tiny{FORMATS[name].suffix}"
    with pytest.raises(ImageError, match=r"tiny\.\w+: an HDR photo needs at least 8x8"):
        FORMATS[name].write(path, np.ones((6, 40, 3), np.float32), hdr_photos.Rendering(0.25))
    assert not path.exists()
