import cv2
import numpy as np
import pytest

from hdr_gan_tf.image_io import (ImageError, SpooledImages, exr_rows, probe, radiance_rows,
                                 read_hdr, read_ldr, read_ldr_raw, write_hdr, write_ldr)


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
        np.testing.assert_array_equal(spooled.rows(2, 5, images=[2, 0]), images[[2, 0], 2:5])
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


def test_exr_round_trips_through_the_openexr_package_as_half_floats(tmp_path):
    image = _hdr_image()
    write_hdr(tmp_path / "x.exr", image)
    np.testing.assert_array_equal(read_hdr(tmp_path / "x.exr"),
                                  image.astype(np.float16).astype(np.float32))
    bad = image.copy()
    bad[2, 3, 1] = np.nan
    write_hdr(tmp_path / "nan.exr", bad)
    with pytest.raises(ImageError, match="nan.exr: HDR image holds NaN or Inf"):
        read_hdr(tmp_path / "nan.exr")
    bad[2, 3, 1] = -1
    write_hdr(tmp_path / "negative.exr", bad)
    with pytest.raises(ImageError, match="negative.exr: HDR image holds negative values"):
        read_hdr(tmp_path / "negative.exr")


def test_exr_rows_decode_like_the_whole_image_writer(tmp_path):
    image = _hdr_image(height=41, width=29)
    with exr_rows(tmp_path / "streamed.exr", 41, 29) as write:
        for start in range(0, 41, 8):
            write(image[start:start + 8])
    write_hdr(tmp_path / "whole.exr", image)
    np.testing.assert_array_equal(read_hdr(tmp_path / "streamed.exr"),
                                  read_hdr(tmp_path / "whole.exr"))
    with pytest.raises(ImageError, match="only 8 of 41 rows"):
        with exr_rows(tmp_path / "short.exr", 41, 29) as write:
            write(image[:8])
    assert not (tmp_path / "short.exr").exists()
    assert [p.name for p in tmp_path.iterdir()] != [] and not [
        p for p in tmp_path.iterdir() if p.name.startswith(".hdr_gan_tmp")]


@pytest.fixture
def no_opencv_decoding(monkeypatch):
    """Fails the test if OpenCV's decoders are reached."""
    def refuse(*args, **kwargs):
        raise AssertionError("an OpenCV decoder was called")
    monkeypatch.setattr(cv2, "imread", refuse)
    monkeypatch.setattr(cv2, "imdecode", refuse)


@pytest.mark.parametrize("name", ["photo.tif", "HDRImg.hdr", "photo.png", "photo.jpg"])
def test_an_exr_under_another_name_never_reaches_a_decoder(tmp_path, name, no_opencv_decoding,
                                                           monkeypatch):
    import OpenEXR

    write_hdr(tmp_path / "real.exr", _hdr_image())
    renamed = tmp_path / name
    (tmp_path / "real.exr").rename(renamed)
    monkeypatch.setattr(OpenEXR, "File", lambda *a, **k: pytest.fail("OpenEXR was called"))
    read = read_hdr if name.endswith(".hdr") else read_ldr
    with pytest.raises(ImageError, match=f"{name}: holds OpenEXR data but is named"):
        read(renamed)


def _png_header(width, height):
    import struct
    import zlib

    ihdr = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    chunk = b"IHDR" + ihdr
    return (b"\x89PNG\r\n\x1a\n" + struct.pack(">I", len(ihdr)) + chunk
            + struct.pack(">I", zlib.crc32(chunk)))


def test_a_header_over_the_pixel_limit_is_refused_before_decoding(tmp_path, no_opencv_decoding):
    huge = tmp_path / "huge.png"
    huge.write_bytes(_png_header(100_000, 100_000) + b"\0" * 64 + b"IEND\xaeB`\x82")
    with pytest.raises(ImageError, match=r"huge.png: its header says 100000x100000 = "
                                         r"10,000,000,000 pixels, more than the limit"):
        read_ldr(huge)
    with pytest.raises(ImageError, match="more than the limit of 100"):
        read_ldr(huge, max_pixels=100)
    assert probe(huge, max_pixels=10 ** 10) == ("PNG", 100_000, 100_000)


@pytest.mark.parametrize("suffix, cut, message", [
    (".jpg", 200, "truncated JPEG"), (".png", 40, "truncated PNG")])
def test_truncated_photos_are_refused(tmp_path, suffix, cut, message):
    rng = np.random.default_rng(1)
    path = tmp_path / f"photo{suffix}"
    write_ldr(path, rng.random((48, 64, 3)))
    assert read_ldr(path).shape == (48, 64, 3)
    path.write_bytes(path.read_bytes()[:-cut])
    with pytest.raises(ImageError, match=f"photo{suffix}: {message}"):
        read_ldr(path)


@pytest.mark.parametrize("suffix, options", [
    (".jpg", []), (".jpg", [cv2.IMWRITE_JPEG_PROGRESSIVE, 1]),
    (".jpg", [cv2.IMWRITE_JPEG_RST_INTERVAL, 2]), (".png", [])])
def test_data_after_the_end_of_an_image_is_no_truncation(tmp_path, suffix, options):
    """A phone's motion photo (a video after the JPEG's end-of-image marker), a second image
    after the first, or any other trailer: the image itself is whole and decodes; the same
    image cut short is refused whatever follows."""
    rng = np.random.default_rng(2)
    picture = np.round(rng.random((48, 64, 3)) * 255).astype(np.uint8)
    _, encoded = cv2.imencode(suffix, picture, options)
    whole = encoded.tobytes()
    trailer = b"\x00\x00\x00\x18ftypmp42" + rng.bytes(3000)
    for name, data in (("motion", whole + trailer), ("twice", whole + whole)):
        path = tmp_path / f"{name}{suffix}"
        path.write_bytes(data)
        np.testing.assert_array_equal(read_ldr_raw(path)[0], cv2.imdecode(
            encoded, cv2.IMREAD_UNCHANGED)[..., ::-1])
    for name, data in (("cut", whole[:len(whole) // 2]),
                       ("cut_then_trailer", whole[:len(whole) // 2] + trailer)):
        path = tmp_path / f"{name}{suffix}"
        path.write_bytes(data)
        with pytest.raises(ImageError, match=f"{name}{suffix}: truncated"):
            read_ldr(path)


def test_file_names_that_are_not_utf8_are_read_and_written(tmp_path):
    import os

    folder = os.fsdecode(bytes(tmp_path) + b"/caf\xe9")  # Latin-1 bytes: not UTF-8
    os.mkdir(folder)
    image = np.random.default_rng(2).random((16, 24, 3)).astype(np.float32)
    write_ldr(os.path.join(folder, "p.png"), image, 16)
    np.testing.assert_allclose(read_ldr(os.path.join(folder, "p.png")), image, atol=1 / 65535)
    write_hdr(os.path.join(folder, "h.hdr"), image)
    assert read_hdr(os.path.join(folder, "h.hdr")).shape == (16, 24, 3)
    with pytest.raises(ImageError) as err:
        read_ldr(os.path.join(folder, "missing.png"))
    from hdr_gan_tf.cli.common import printable
    assert "caf\\xe9" in printable(err.value)


def test_an_exr_without_rgb_channels_is_named_once_in_its_message(tmp_path):
    import OpenEXR

    path = tmp_path / "luminance.exr"
    OpenEXR.File({"compression": OpenEXR.ZIP_COMPRESSION, "type": OpenEXR.scanlineimage},
                 {"Y": np.zeros((4, 4), np.float16)}).write(str(path))
    with pytest.raises(ImageError) as err:
        read_hdr(path)
    assert str(err.value) == f"{path}: OpenEXR image without R, G and B channels (has Y)"


def test_a_jpeg_made_slow_to_walk_is_refused_by_its_count_of_segments(tmp_path):
    import struct

    _, encoded = cv2.imencode(".jpg", np.zeros((16, 16, 3), np.uint8))
    data = encoded.tobytes()
    frame = data.index(b"\xff\xc0")
    frame_end = frame + 2 + struct.unpack(">H", data[frame + 2:frame + 4])[0]
    path = tmp_path / "slow.jpg"  # two million empty comments before the scan
    path.write_bytes(data[:frame_end] + b"\xff\xfe\x00\x02" * 2_000_000 + data[frame_end:])
    with pytest.raises(ImageError, match="slow.jpg: damaged JPEG \\(more than 65,536"):
        probe(path)


def test_a_full_temporary_folder_is_named_as_the_photos_spool(tmp_path):
    import subprocess

    from hdr_gan_tf.outputs import DiskFull
    from tests.helpers import tiny_filesystem

    full = tiny_filesystem(tmp_path / "full", free_kb=64)
    try:
        spool = SpooledImages(directory=full)
        with pytest.raises(DiskFull) as err:
            spool.append(np.zeros((200, 200, 3), np.uint16))  # 240 KB
        spool.close()
    finally:
        subprocess.run(["umount", str(full)], check=True)
    assert str(err.value).startswith(f"disk full writing {full}/<the photos' temporary spool "
                                     f"file>")
