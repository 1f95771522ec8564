"""The output formats' table: chosen by suffix, each written whole and in bands alike."""

import numpy as np
import pytest

from hdr_gan_tf.formats import FORMATS, format_of
from hdr_gan_tf.image_io import read_hdr
from hdr_gan_tf.settings import ConfigError


@pytest.mark.parametrize("name", list(FORMATS))
def test_the_suffix_chooses_the_format_whatever_its_case(name, tmp_path):
    suffix = FORMATS[name].suffix
    assert format_of(tmp_path / f"a{suffix}") is FORMATS[name]
    assert format_of(tmp_path / f"a{suffix.upper()}") is FORMATS[name]


def test_an_unknown_suffix_is_refused_naming_the_setting(tmp_path):
    with pytest.raises(ConfigError, match=r"must end in \.hdr or \.exr or \.tif or \.jpg or \.avif") as err:
        format_of(tmp_path / "a.png")
    assert err.value.field == "output"


@pytest.mark.parametrize("name", [n for n, f in FORMATS.items() if f.rows and not f.display])
def test_a_streamed_file_equals_the_whole_one(name, tmp_path):
    rng = np.random.default_rng(1)
    hdr = (rng.random((37, 21, 3)) ** 3).astype(np.float32)
    output_format = FORMATS[name]
    whole, streamed = tmp_path / f"w{output_format.suffix}", tmp_path / f"s{output_format.suffix}"
    output_format.write(whole, hdr, None)
    with output_format.rows(streamed, 37, 21, None) as write:
        for first in range(0, 37, 10):
            write(hdr[first:first + 10])
    np.testing.assert_array_equal(read_hdr(streamed), read_hdr(whole))
    assert np.abs(read_hdr(whole) - hdr).max() <= 0.01 * hdr.max()


def test_a_format_that_cannot_stream_is_gathered_and_written_whole(tmp_path, monkeypatch):
    from hdr_gan_tf import formats

    written = {}
    whole_only = formats.OutputFormat("npy", ".npy", "NumPy", lambda path, rgb, rendering:
                                      written.update({path: rgb.copy()}), None, False)
    monkeypatch.setitem(formats.FORMATS, "npy", whole_only)
    hdr = np.arange(5 * 4 * 3, dtype=np.float32).reshape(5, 4, 3)
    with formats.band_writer(tmp_path / "a.npy", 5, 4) as write:
        write(hdr[:2])
        write(hdr[2:])
    np.testing.assert_array_equal(written[tmp_path / "a.npy"], hdr)
    with pytest.raises(ValueError, match="3 rows missing"):
        with formats.band_writer(tmp_path / "b.npy", 5, 4) as write:
            write(hdr[:2])
    assert tmp_path / "b.npy" not in written


def test_a_float_tiff_keeps_the_values_exactly(tmp_path):
    import cv2

    hdr = (np.random.default_rng(2).random((9, 7, 3)) * 40).astype(np.float32)
    FORMATS["tiff"].write(tmp_path / "a.tif", hdr, None)
    back = cv2.imread(str(tmp_path / "a.tif"), cv2.IMREAD_UNCHANGED)[..., ::-1]
    np.testing.assert_array_equal(back, hdr)
