"""A user's bracketed photos: reading three exposures and finding out how they were exposed.

The photos may come in any order; they are sorted by exposure, and the middle one is the
reference the merge is aligned to. Exposures come from the caller, an `exposure.txt` file or
the photos' EXIF ExposureTime (read with Pillow).
"""

import math
import os
import typing
from pathlib import Path

import numpy as np
from PIL import Image

from hdr_gan_tf.image_io import MAX_PIXELS, SpooledImages, probe, read_ldr_raw
from hdr_gan_tf.imaging import parse_exposure_bias, read_exposure_file
from hdr_gan_tf.merge import MIN_SIDE

_EXIF_IFD = 0x8769
_EXPOSURE_TIME = 0x829A


def exif_exposure_time(path):
    """ExposureTime in seconds from a photo's EXIF, or None."""
    try:
        with Image.open(path) as image:
            exif = image.getexif()
            value = exif.get_ifd(_EXIF_IFD).get(_EXPOSURE_TIME) or exif.get(_EXPOSURE_TIME)
    except Exception:  # noqa: BLE001 - any unreadable metadata means "no EXIF time"
        return None
    try:
        return float(value) if value is not None and float(value) > 0 else None
    except (TypeError, ValueError, ZeroDivisionError):
        return None


class Bracket(typing.NamedTuple):
    """A loaded bracket (`load_bracket`), short exposure first."""
    ldrs: typing.Any  # [3, H, W, 3] uint8 / uint16 / float32, or a SpooledImages
    ev: np.ndarray  # [3] EVs
    photos: list  # the photos' paths
    ev_source: str  # where the EVs came from: the flag, an exposure file, or EXIF


def exposures_for(paths, given=None, exposure_file=None):
    """EV of each path (in the given order): the `given` values (`--exposure_bias`), else an
    exposure file (`exposure_file`, or an `exposure.txt` beside the photos; one EV per photo in
    file-name order), else the photos' EXIF ExposureTime (aperture and ISO taken as fixed).
    Returns `(values, source)`, `source` saying which of these gave them."""
    if given:
        try:
            values = [float(v) for v in given]
        except ValueError:
            raise ValueError(f"--exposure_bias={','.join(given)}: values must be numbers") from None
        if len(values) != len(paths):
            raise ValueError(f"--exposure_bias has {len(values)} values for {len(paths)} photos")
        return values, "--exposure_bias"
    candidates = [Path(exposure_file)] if exposure_file else sorted(
        {Path(p).parent / "exposure.txt" for p in paths})
    for candidate in candidates:
        if candidate.is_file() or exposure_file:
            ev = read_exposure_file(candidate)  # three increasing values, in file-name order
            by_name = sorted(paths, key=lambda p: Path(p).name)
            return [float(ev[by_name.index(p)]) for p in paths], str(candidate)
    times = [exif_exposure_time(p) for p in paths]
    missing = [str(p) for p, t in zip(paths, times) if t is None]
    if missing:
        raise ValueError(f"no exposures given: pass --exposure_bias, an exposure.txt, or photos "
                         f"with EXIF ExposureTime (missing in {', '.join(missing)})")
    shortest = min(times)
    return [math.log2(t / shortest) for t in times], "EXIF ExposureTime"


def check_bracket_files(paths, max_pixels=MAX_PIXELS):
    """Checks a bracket from the photos' headers alone (before a model is loaded): three
    photos, each readable as what its name says, within `max_pixels`, all of one size, each
    side at least `MIN_SIDE`. Returns `(width, height)`; ValueError names the file."""
    paths = [str(p) for p in paths]
    if len(paths) != 3:
        raise ValueError(f"HDR-GAN merges exactly 3 photos, got {len(paths)}: {', '.join(paths)}")
    sizes = {p: probe(p, max_pixels)[1:] for p in paths}
    for i, path in enumerate(paths):
        for other in paths[:i]:
            if os.path.samefile(path, other):
                raise ValueError(f"{path}: the same photo as {other}; a bracket needs three "
                                 f"different exposures")
    for path, (width, height) in sizes.items():
        if min(width, height) < MIN_SIDE:
            raise ValueError(f"{path}: {width}x{height} pixels; the merge needs photos of at "
                             f"least {MIN_SIDE}x{MIN_SIDE}")
    if len(set(sizes.values())) != 1:
        raise ValueError("photos differ in size: " + ", ".join(
            f"{p} {w}x{h}" for p, (w, h) in sizes.items()))
    return sizes[paths[0]]


def load_bracket(paths, given=None, exposure_file=None, spool=False, max_pixels=MAX_PIXELS):
    """Reads three photos, sorts them by exposure; returns a `Bracket`.

    The photos stay 8- or 16-bit (uint8 / uint16; float32 in [0, 1] if their depths differ) so
    that a large bracket is not held as float32; the merge converts it tile by tile. With
    `spool`, they go one at a time into a `SpooledImages` file instead (as uint16: an 8-bit
    value v is stored as 257 v, the same fraction of full scale), for a merge by bands.
    Photos whose headers say they exceed `max_pixels` are refused before they are decoded.
    """
    paths = [str(p) for p in paths]
    check_bracket_files(paths, max_pixels)
    ev, source = exposures_for(paths, given, exposure_file)
    order = sorted(range(3), key=lambda i: ev[i])
    sorted_ev = parse_exposure_bias([ev[i] for i in order],
                                    source="exposures of " + ", ".join(paths))
    if spool:
        spooled = SpooledImages()
        try:
            for i in order:
                image, peak = read_ldr_raw(paths[i], max_pixels)
                if spooled.count and image.shape != spooled.image_shape:
                    h, w = spooled.image_shape[:2]
                    raise ValueError(f"photos differ in size: {paths[order[0]]} {w}x{h}, "
                                     f"{paths[i]} {image.shape[1]}x{image.shape[0]}")
                spooled.append(image.astype(np.uint16) * np.uint16(257) if peak == 255
                               else image, paths[i])
                del image
        except BaseException:
            spooled.close()
            raise
        return Bracket(spooled, sorted_ev, [paths[i] for i in order], source)
    raw = [read_ldr_raw(p, max_pixels) for p in paths]
    images = [image for image, _ in raw]
    if len({image.dtype for image in images}) > 1:
        images = [image.astype(np.float32) / np.float32(peak) for image, peak in raw]
    sizes = {p: im.shape[:2] for p, im in zip(paths, images)}
    if len(set(sizes.values())) != 1:
        raise ValueError("photos differ in size: " + ", ".join(
            f"{p} {s[1]}x{s[0]}" for p, s in sizes.items()))
    return Bracket(np.stack([images[i] for i in order]), sorted_ev, [paths[i] for i in order],
                   source)
