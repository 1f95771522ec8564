"""A user's bracketed photos: reading three exposures and finding out how they were exposed.

The photos may come in any order; they are sorted by exposure, and the middle one is the
reference the merge is aligned to. Exposures come from the caller, an `exposure.txt` file or
the photos' EXIF ExposureTime (read with Pillow; with `exifread` from RAW photos, which
`hdr_gan_tf.raw_photos` develops).
"""

import math
import os
import typing
from pathlib import Path

import numpy as np
from PIL import Image

from hdr_gan_tf.arrays import MIN_SIDE
from hdr_gan_tf.image_io import MAX_PIXELS, SpooledImages, probe, read_ldr_raw
from hdr_gan_tf.imaging import parse_exposure_bias, read_exposure_file
from hdr_gan_tf.raw_photos import (is_raw, raw_exposure_time, raw_size, raw_white_balance,
                                   read_raw)
from hdr_gan_tf.settings import ConfigError

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


# A bracket may hold this many photos; three of them are merged (`choose_three`).
MAX_PHOTOS = 9
# How far (EV) from the reference the short and long photos are chosen: about the spread of
# the brackets the network was trained on ({-2, 0, +2} and {-3, 0, +3} EV).
TRAINED_EV_SPREAD = 3.0
ROLES = ("short", "reference", "long")


class Bracket(typing.NamedTuple):
    """A loaded bracket (`load_bracket`), short exposure first."""
    ldrs: typing.Any  # [3, H, W, 3] uint8 / uint16 / float32, or a SpooledImages
    ev: np.ndarray  # [3] EVs
    photos: list  # the three photos' paths
    ev_source: str  # where the EVs came from: "exposure_bias" (given), an exposure file, or EXIF
    unused: tuple = ()  # `(path, EV)` of the bracket's other photos, when it had more than three
    chosen_by: str = "all three"  # how the three were picked


def choose_three(ev, given=None):
    """Indices `(short, reference, long)` into a bracket's EVs `ev` (increasing), and how they
    were chosen. The reference is the photo nearest the middle EV, the short and long ones the
    darkest and brightest within `TRAINED_EV_SPREAD` of it (the nearest on a side that has none
    within it). `given` `{role: index}` fixes any of the roles.
    """
    given = dict(given or {})
    if len(ev) == 3 and not given:
        return (0, 1, 2), "all three"
    middle = (ev[0] + ev[-1]) / 2
    ref = given.get("reference", min(range(len(ev)), key=lambda i: (abs(ev[i] - middle), i)))
    below = [i for i in range(ref)
             if ev[ref] - ev[i] <= TRAINED_EV_SPREAD] or list(range(ref))[-1:]
    above = [i for i in range(ref + 1, len(ev))
             if ev[i] - ev[ref] <= TRAINED_EV_SPREAD] or list(range(ref + 1, len(ev)))[:1]
    short = given.get("short", below[0] if below else None)
    long = given.get("long", above[-1] if above else None)
    problem = None
    if short is None:
        problem = f"no photo is darker than the reference (EV {ev[ref]:g})"
    elif long is None:
        problem = f"no photo is brighter than the reference (EV {ev[ref]:g})"
    elif not ev[short] < ev[ref] < ev[long]:
        problem = ("the short, reference and long photos must have increasing exposures (EV "
                   + ", ".join(f"{ev[i]:g}" for i in (short, ref, long)) + ")")
    if problem:
        named = [role for role in ROLES if role in given]
        if named:
            problem = " and ".join("{" + role + "}" for role in named) + ": " + problem
        raise ConfigError(problem, mentions=named)
    how = ("reference nearest the middle EV, short and long the farthest within "
           f"{TRAINED_EV_SPREAD:g} EV of it")
    return (short, ref, long), (f"{', '.join(sorted(given))} given; " if given else "") + how


def exposures_for(paths, given=None, exposure_file=None):
    """EV of each path (in the given order): the `given` values (`exposure_bias`), else an
    exposure file (`exposure_file`, or an `exposure.txt` beside the photos; one EV per photo in
    file-name order), else the photos' EXIF ExposureTime (aperture and ISO taken as fixed).
    Returns `(values, source)`, `source` saying which of these gave them."""
    if given:
        try:
            values = [float(v) for v in given]
        except ValueError:
            raise ConfigError(f"{','.join(given)}: values must be numbers",
                              field="exposure_bias") from None
        if len(values) != len(paths):
            raise ConfigError(f"{len(values)} values for {len(paths)} photos",
                              field="exposure_bias")
        return values, "exposure_bias"
    candidates = [Path(exposure_file)] if exposure_file else sorted(
        {Path(p).parent / "exposure.txt" for p in paths})
    for candidate in candidates:
        if candidate.is_file() or exposure_file:
            # increasing values, one per photo, in file-name order
            ev = read_exposure_file(candidate, count=len(paths))
            by_name = sorted(paths, key=lambda p: Path(p).name)
            return [float(ev[by_name.index(p)]) for p in paths], str(candidate)
    times = [raw_exposure_time(p) if is_raw(p) else exif_exposure_time(p) for p in paths]
    missing = [str(p) for p, t in zip(paths, times) if t is None]
    if missing:
        raise ConfigError(f"no exposures given: give {{exposure_bias}}, an exposure.txt, or "
                          f"photos with EXIF ExposureTime (missing in {', '.join(missing)})",
                          mentions=["exposure_bias"])
    shortest = min(times)
    return [math.log2(t / shortest) for t in times], "EXIF ExposureTime"


def _size(path, max_pixels):
    """`(width, height)` of a photo from its header (a RAW photo's as it develops)."""
    if not is_raw(path):
        return probe(path, max_pixels)[1:]
    if not Path(path).is_file():
        raise ValueError(f"{path}: file not found")
    width, height = raw_size(path)
    if width * height > max_pixels:
        raise ValueError(f"{path}: {width}x{height} pixels, more than the {max_pixels} allowed")
    return width, height


def _reader(paths, max_pixels):
    """`read(path) -> (image, peak)` for the bracket's photos: RAW ones developed with the
    reference's (`paths[1]`) white balance, so that the frames differ only by exposure."""
    balance = raw_white_balance(paths[1]) if is_raw(paths[1]) else [1.0, 1.0, 1.0, 1.0]

    def read(path):
        return read_raw(path, balance) if is_raw(path) else read_ldr_raw(path, max_pixels)

    return read


def check_bracket_files(paths, max_pixels=MAX_PIXELS):
    """Checks a bracket from the photos' headers alone (before a model is loaded): three
    photos, each readable as what its name says, within `max_pixels`, all of one size, each
    side at least `MIN_SIDE`. Returns `(width, height)`; ValueError names the file."""
    paths = [str(p) for p in paths]
    if not 3 <= len(paths) <= MAX_PHOTOS:
        raise ValueError(f"a bracket is 3 to {MAX_PHOTOS} photos (HDR-GAN merges exactly 3 of "
                         f"them), got {len(paths)}: {', '.join(paths)}")
    sizes = {p: _size(p, max_pixels) for p in paths}
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


def load_bracket(paths, given=None, exposure_file=None, spool=False, max_pixels=MAX_PIXELS,
                 roles=None):
    """Sorts a bracket's photos by exposure, chooses three (`choose_three`; `roles`
    `{role: path}` fixes any of them) and reads those; returns a `Bracket`.

    The photos stay 8- or 16-bit (uint8 / uint16; float32 in [0, 1] if their depths differ) so
    that a large bracket is not held as float32; the merge converts it tile by tile. With
    `spool`, they go one at a time into a `SpooledImages` file instead (as uint16: an 8-bit
    value v is stored as 257 v, the same fraction of full scale), for a merge by bands.
    Photos whose headers say they exceed `max_pixels` are refused before they are decoded.
    """
    paths = [str(p) for p in paths]
    check_bracket_files(paths, max_pixels)
    ev, source = exposures_for(paths, given, exposure_file)
    by_ev = sorted(range(len(paths)), key=lambda i: ev[i])
    parse_exposure_bias([ev[i] for i in by_ev], source="exposures of " + ", ".join(paths),
                        count=len(paths))
    fixed = {}
    for role, path in (roles or {}).items():
        matches = [k for k, i in enumerate(by_ev)
                   if Path(paths[i]).resolve() == Path(path).resolve()]
        if not matches:
            raise ConfigError(f"{path}: not one of the bracket's photos", field=role)
        for other, index in fixed.items():
            if index == matches[0]:
                raise ConfigError(f"{{{other}}} and {{{role}}} name the same photo, {path}; "
                                  f"each role needs a photo of its own",
                                  mentions=[other, role])
        fixed[role] = matches[0]
    chosen, chosen_by = choose_three([ev[i] for i in by_ev], fixed)
    order = [by_ev[k] for k in chosen]
    unused = tuple((paths[i], float(ev[i])) for i in by_ev if i not in order)
    sorted_ev = np.asarray([ev[i] for i in order], np.float32)
    paths = [paths[i] for i in order]  # short, reference, long: the three to read
    read = _reader(paths, max_pixels)
    if spool:
        spooled = SpooledImages()
        try:
            for path in paths:
                image, peak = read(path)
                if spooled.count and image.shape != spooled.image_shape:
                    h, w = spooled.image_shape[:2]
                    raise ValueError(f"photos differ in size: {paths[0]} {w}x{h}, "
                                     f"{path} {image.shape[1]}x{image.shape[0]}")
                spooled.append(image.astype(np.uint16) * np.uint16(257) if peak == 255
                               else image, path)
                del image
        except BaseException:
            spooled.close()
            raise
        return Bracket(spooled, sorted_ev, paths, source, unused, chosen_by)
    raw = [read(p) for p in paths]
    images = [image for image, _ in raw]
    if len({image.dtype for image in images}) > 1:
        images = [image.astype(np.float32) / np.float32(peak) for image, peak in raw]
    sizes = {p: im.shape[:2] for p, im in zip(paths, images)}
    if len(set(sizes.values())) != 1:
        raise ValueError("photos differ in size: " + ", ".join(
            f"{p} {s[1]}x{s[0]}" for p, s in sizes.items()))
    return Bracket(np.stack(images), sorted_ev, paths, source, unused, chosen_by)
