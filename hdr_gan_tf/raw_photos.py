"""RAW photos (DNG and the cameras' own formats) as the network expects its photos.

LibRaw (through `rawpy`) demosaics each frame with one white balance for the whole bracket
(the reference's as-shot), no automatic brightening and no stretching of the white level, into
linear 16-bit sRGB, which is then encoded with the gamma 2.2 the network's LDR-to-HDR step
inverts (docs/design.md §1): the frames then differ only by exposure. LibRaw gives no exposure
time; `exifread` reads it from the file's EXIF (the TIFF-based formats, DNG, CR2, NEF, ARW, ORF
and RW2, carry it where it reads; CR3 and RAF where its parsers reach it).
"""

import contextlib
import math
from pathlib import Path

import numpy as np

from hdr_gan_tf.imaging import GAMMA

RAW_SUFFIXES = (".dng", ".cr2", ".cr3", ".nef", ".arw", ".raf", ".orf", ".rw2")
_EXPOSURE_TAGS = ("EXIF ExposureTime", "Image ExposureTime")


def is_raw(path):
    return Path(path).suffix.lower() in RAW_SUFFIXES


def _open(path):
    import rawpy

    try:
        return rawpy.imread(str(path))
    except (rawpy.LibRawError, OSError, ValueError) as err:
        raise ValueError(f"{path}: not a RAW photo LibRaw can read ({err})") from None


@contextlib.contextmanager
def _reading(path, what):
    """Around LibRaw's work on an opened photo: its errors (a truncated file often opens and
    fails only here) as one ValueError naming the file and `what` failed."""
    import rawpy

    try:
        yield
    except (rawpy.LibRawError, OSError) as err:
        detail = err.args[0].decode(errors="replace") if err.args and isinstance(
            err.args[0], bytes) else str(err)
        raise ValueError(f"{path}: LibRaw could not {what} ({detail}); the file may be "
                         f"truncated or damaged") from None


def raw_size(path):
    """`(width, height)` of the image a RAW photo develops to."""
    with _open(path) as raw, _reading(path, "read its size"):
        sizes = raw.sizes
        width, height = sizes.width, sizes.height
        return (height, width) if sizes.flip in (5, 6) else (width, height)


def raw_white_balance(path):
    """The photo's as-shot white balance multipliers (R, G, B, G), or ones where none is
    recorded."""
    with _open(path) as raw, _reading(path, "read its white balance"):
        balance = [float(v) for v in raw.camera_whitebalance]
    if not any(balance):
        return [1.0, 1.0, 1.0, 1.0]
    return [v if v > 0 else balance[1] for v in balance]


def raw_exposure_time(path):
    """ExposureTime in seconds from a RAW photo's EXIF, or None."""
    import exifread

    try:
        with open(path, "rb") as f:
            tags = exifread.process_file(f, details=False)
    except Exception:  # noqa: BLE001 - any unreadable metadata means "no time"
        return None
    for name in _EXPOSURE_TAGS:
        if name in tags:
            try:
                value = tags[name].values[0]
                seconds = float(value.num) / float(value.den) if hasattr(value, "num") else (
                    float(value))
            except (TypeError, ValueError, ZeroDivisionError, IndexError):
                continue
            if math.isfinite(seconds) and seconds > 0:
                return seconds
    return None


def read_raw(path, white_balance):
    """A RAW photo developed as `([H, W, 3] uint16 RGB, 65535)`: linear sRGB with
    `white_balance`, then encoded as `v ** (1 / 2.2)` (a table over every 16-bit value)."""
    import rawpy

    with _open(path) as raw, _reading(path, "develop it"):
        linear = raw.postprocess(
            output_bps=16, gamma=(1, 1), no_auto_bright=True, adjust_maximum_thr=0.0,
            use_camera_wb=False, use_auto_wb=False, user_wb=list(white_balance),
            output_color=rawpy.ColorSpace.sRGB)
    table = np.round((np.arange(65536) / 65535.0) ** (1 / GAMMA) * 65535).astype(np.uint16)
    return table[linear], 65535
