import numpy as np
import pytest

from hdr_gan_tf.image_io import (ImageError, SpooledImages, radiance_rows, read_hdr, write_hdr,
                                 write_ldr)


def _hdr_image(height=37, width=53):
    rng = np.random.default_rng(0)
    image = (rng.random((height, width, 3)) ** 4 * 3).astype(np.float32)
    image[0, 0] = 0  # black and a value below RGBE's smallest are stored as zero
    image[1, 1] = 1e-38
    return image


def test_radiance_rows_decode_like_opencvs_whole_image_writer(tmp_path):
    image = _hdr_image()
    with radiance_rows(tmp_path / "bands.hdr", 37, 53) as write:
        for first in range(0, 37, 10):  # uneven bands: 10, 10, 10, 7
            write(image[first:first + 10])
    write_hdr(tmp_path / "whole.hdr", image)
    streamed = read_hdr(tmp_path / "bands.hdr")
    np.testing.assert_array_equal(streamed, read_hdr(tmp_path / "whole.hdr"))
    # RGBE keeps 8 bits per component under a shared exponent.
    assert np.all(np.abs(streamed - image) <= image.max(axis=-1, keepdims=True) / 128 + 1e-30)


def test_radiance_rows_leave_no_file_when_rows_are_missing_or_misshaped(tmp_path):
    target = tmp_path / "out.hdr"
    target.write_bytes(b"earlier result")
    with pytest.raises(ImageError, match="only 10 of 37 rows"):
        with radiance_rows(target, 37, 53) as write:
            write(_hdr_image()[:10])
    with pytest.raises(ImageError, match="do not fit"):
        with radiance_rows(target, 37, 53) as write:
            write(np.zeros((5, 52, 3), np.float32))
    assert target.read_bytes() == b"earlier result"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out.hdr"]  # no temporary files


def test_spooled_images_give_back_bands_of_rows(tmp_path):
    rng = np.random.default_rng(1)
    images = (rng.random((3, 9, 7, 3)) * 65535).astype(np.uint16)
    with SpooledImages(tmp_path) as spooled:
        for image in images:
            spooled.append(image)
        assert spooled.shape == (3, 9, 7, 3)
        np.testing.assert_array_equal(spooled.rows(0, 9), images)
        np.testing.assert_array_equal(spooled.rows(4, 6), images[:, 4:6])
        np.testing.assert_array_equal(spooled.rows(7, 20), images[:, 7:])  # clipped at the end
        with pytest.raises(ImageError, match="late.tif.*does not match"):
            spooled.append(images[0, :8], "late.tif")
        with pytest.raises(ImageError, match="does not match"):
            spooled.append(images[0].astype(np.uint8))
    assert not list(tmp_path.iterdir())  # the spool file has no name


def test_ldr_writer_is_atomic(tmp_path):
    target = tmp_path / "photo.png"
    target.write_bytes(b"earlier")
    with pytest.raises(ImageError):
        write_ldr(tmp_path / "photo.unknown-suffix", np.zeros((4, 4, 3)))
    write_ldr(target, np.full((4, 4, 3), 0.5))
    assert target.read_bytes()[:4] == b"\x89PNG"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["photo.png"]
