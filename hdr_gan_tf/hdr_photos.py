"""HDR photos that screens show: a merge as an Ultra HDR JPEG and as an HDR AVIF
(docs/design.md §8, docs/hdr_photos.md).

A merge is scene-referred radiance on the network's scale (relative to the shortest exposure).
A display needs to know which radiance is "white". We take the radiance the reference photo
records as just white, `white = 2 ** -(EV_reference - EV_short)`, and show `x = H / white`:
`x = 1` at SDR white (HDR reference white, 203 cd/m² on a PQ display), what lies above it in
the headroom, up to `2 ** headroom` where `headroom = min(cap, log2(max(x)))` stops.

- Ultra HDR JPEG (libultrahdr through `imagecodecs.ultrahdr_encode`): the encoder takes `x` as
  linear half-float RGB (1.0 = SDR white) and makes both the SDR base picture (its own
  tonemapper: the library does not take one from us) and the gain map. Old viewers show the base.
- HDR AVIF (libavif): `x` in BT.2020 primaries at `203 * x` cd/m², PQ-coded in 10 bits,
  signalled in the file's `nclx` colour box (primaries 9, transfer 16, matrix 9).

Both encoders need the whole image, so their writers gather a compact buffer (half floats, 6
bytes per pixel) band by band and encode when the merge ends.
"""

import contextlib
import dataclasses
import math
import os
from pathlib import Path

import numpy as np

from hdr_gan_tf.arrays import gathered_rows
from hdr_gan_tf.image_io import ImageError
from hdr_gan_tf.outputs import atomic_output
from hdr_gan_tf.settings import ConfigError

# HDR reference white (ITU-R BT.2408): where SDR white sits on a PQ display.
REFERENCE_WHITE_NITS = 203.0
# PQ reaches 10,000 cd/m²: the most headroom an AVIF can hold above reference white.
PQ_PEAK_NITS = 10000.0
MAX_HEADROOM = math.log2(PQ_PEAK_NITS / REFERENCE_WHITE_NITS)
# Stops above white kept by default: what current HDR phone and laptop screens show.
DEFAULT_HEADROOM = 4.0
# Qualities for which the decoded radiance stays within 0.15 stop (95th percentile) of the merge
# over ±5 stops around mid-grey on the procedural scenes (`experiments/bench_hdr_photos.py`).
ULTRA_HDR_QUALITY = 97
AVIF_QUALITY = 90
AVIF_SPEED = 6
AVIF_BITS = 10
# libultrahdr's smallest picture; the AVIFs keep to the same.
MIN_SIDE = 8
# Linear BT.709 RGB -> linear BT.2020 RGB (ITU-R BT.2087).
BT709_TO_BT2020 = np.array([[0.6274, 0.3293, 0.0433],
                            [0.0691, 0.9195, 0.0114],
                            [0.0164, 0.0880, 0.8956]])
# SMPTE ST 2084 (PQ) constants.
_PQ_M1, _PQ_M2 = 2610 / 16384, 2523 / 4096 * 128
_PQ_C1, _PQ_C2, _PQ_C3 = 3424 / 4096, 2413 / 4096 * 32, 2392 / 4096 * 32
# A gathered image is kept in half floats, whose largest value is 65504.
_HALF_MAX = 2.0 ** 15


@dataclasses.dataclass
class Rendering:
    """How a merge becomes a picture on a display.

    Attributes:
      white: the radiance shown as SDR white (`white_of`).
      headroom_cap: the most stops above white kept (`--hdr_headroom`).
      chosen: what each HDR photo written used, by file, for the sidecar.
    """
    white: float
    headroom_cap: float = DEFAULT_HEADROOM
    chosen: dict = dataclasses.field(default_factory=dict)

    def __post_init__(self):
        if not (math.isfinite(self.headroom_cap) and 0 <= self.headroom_cap <= MAX_HEADROOM):
            raise ConfigError(f"stops above white, from 0 to {MAX_HEADROOM:.2f} (PQ's 10,000 "
                              f"cd/m²), not {self.headroom_cap}", field="hdr_headroom")
        if not (math.isfinite(self.white) and self.white > 0):
            raise ValueError(f"the radiance shown as white must be positive, not {self.white}")


def white_of(exposure_bias):
    """The radiance the reference photo (the middle one) records as just white, on the
    network's scale: `2 ** -(EV_reference - EV_short)`."""
    ev = np.asarray(exposure_bias, np.float64)
    return float(2.0 ** -(ev[1] - ev[0]))


def headroom_of(x, cap):
    """Stops above white that `x` (radiance / white) reaches, between 0 and `cap`."""
    peak = float(np.max(x)) if x.size else 0.0
    return float(min(cap, max(0.0, math.log2(peak)) if peak > 0 else 0.0))


def pq_encode(nits):
    """Luminance in cd/m² -> PQ signal in [0, 1] (SMPTE ST 2084)."""
    y = np.clip(np.asarray(nits, np.float64) / PQ_PEAK_NITS, 0, 1) ** _PQ_M1
    return ((_PQ_C1 + _PQ_C2 * y) / (1 + _PQ_C3 * y)) ** _PQ_M2


def pq_decode(signal):
    """PQ signal in [0, 1] -> luminance in cd/m²."""
    e = np.clip(np.asarray(signal, np.float64), 0, 1) ** (1 / _PQ_M2)
    return PQ_PEAK_NITS * (np.maximum(e - _PQ_C1, 0) / (_PQ_C2 - _PQ_C3 * e)) ** (1 / _PQ_M1)


@contextlib.contextmanager
def _gathered(path, height, width, rendering, encode):
    """A band writer that gathers `H / white` in half floats and, when every row has come,
    calls `encode(x, headroom) -> (bytes, record)` and writes the bytes to `path` atomically.
    ImageError naming `path` for a picture under `MIN_SIDE` or one the encoder refuses."""
    import imagecodecs

    if min(height, width) < MIN_SIDE:
        raise ImageError(f"{path}: an HDR photo needs at least {MIN_SIDE}x{MIN_SIDE} pixels; "
                         f"this merge is {width}x{height}")
    def convert(rows):
        return np.minimum(np.maximum(np.asarray(rows, np.float32), 0) / rendering.white,
                          _HALF_MAX)

    with gathered_rows(path, height, width, np.float16, convert) as (write, image):
        yield write
    headroom = headroom_of(image, rendering.headroom_cap)
    np.minimum(image, np.float16(2.0 ** headroom), out=image)
    try:
        data, record = encode(image, headroom)
    except (imagecodecs.UltrahdrError, imagecodecs.AvifError) as err:
        raise ImageError(f"{path}: the encoder refused this picture ({err})") from None
    with atomic_output(path) as tmp:
        tmp.write_bytes(data)
    rendering.chosen[str(path)] = {"white": rendering.white, "headroom_stops": round(headroom, 3),
                                   **record}


def encode_ultra_hdr(x, headroom, quality=ULTRA_HDR_QUALITY):
    """`(bytes, record)`: an Ultra HDR JPEG of `x` (`[H, W, 3]` radiance / white, at most
    `2 ** headroom`) declaring `headroom` stops."""
    import imagecodecs

    rgba = np.empty(x.shape[:2] + (4,), np.float16)
    rgba[..., :3], rgba[..., 3] = x, 1
    # The display's peak the HDR rendition is meant for: what the gain map's headroom says.
    nits = REFERENCE_WHITE_NITS * 2.0 ** headroom
    data = imagecodecs.ultrahdr_encode(rgba, quality, nits=nits)
    return data, {"format": "Ultra HDR JPEG", "quality": quality,
                  "peak_nits": round(nits, 1), "metadata": "ISO 21496-1 gain map",
                  "sdr_base": "libultrahdr's own tonemapping of the HDR rendition"}


def encode_avif(x, headroom, quality=AVIF_QUALITY):
    """`(bytes, record)`: a 10-bit PQ BT.2020 AVIF of `x` (radiance / white); `headroom` is
    where `x` was clipped (PQ itself holds up to `MAX_HEADROOM`)."""
    import imagecodecs

    peak = 2 ** AVIF_BITS - 1
    coded = np.empty(x.shape, np.uint16)
    for first in range(0, len(x), 256):  # a band at a time: float64 copies of a band only
        band = np.asarray(x[first:first + 256], np.float64) @ BT709_TO_BT2020.T
        coded[first:first + 256] = np.round(
            pq_encode(np.maximum(band, 0) * REFERENCE_WHITE_NITS) * peak)
    data = imagecodecs.avif_encode(
        coded, quality, speed=AVIF_SPEED, bitspersample=AVIF_BITS,
        primaries=imagecodecs.AVIF.COLOR_PRIMARIES.BT2020,
        transfer=imagecodecs.AVIF.TRANSFER_CHARACTERISTICS.PQ,
        matrix=imagecodecs.AVIF.MATRIX_COEFFICIENTS.BT2020_NCL, numthreads=_cores())
    return data, {"format": "HDR AVIF", "quality": quality, "bits": AVIF_BITS,
                  "primaries": "BT.2020", "transfer": "PQ",
                  "white_nits": REFERENCE_WHITE_NITS}


def _cores():
    """The cores this process may run on (libavif encodes on one thread unless told)."""
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()


def ultra_hdr_rows(path, height, width, rendering):
    """Band writer of an Ultra HDR JPEG of the merge (see the module's docstring)."""
    return _gathered(path, height, width, rendering, encode_ultra_hdr)


def avif_rows(path, height, width, rendering):
    """Band writer of an HDR AVIF (10-bit PQ, BT.2020) of the merge."""
    return _gathered(path, height, width, rendering, encode_avif)


def read_ultra_hdr(path, headroom=MAX_HEADROOM):
    """`(x, sdr)`: the HDR rendition of an Ultra HDR JPEG as a display with `headroom` stops
    above white shows it, linear RGB relative to white, and its SDR base picture as 8-bit
    RGB."""
    return decode_ultra_hdr(Path(path).read_bytes(), headroom)


def decode_ultra_hdr(data, headroom=MAX_HEADROOM):
    """`read_ultra_hdr` of the file's bytes."""
    import imagecodecs

    x = imagecodecs.ultrahdr_decode(data, boost=2.0 ** headroom).astype(np.float32)
    sdr = imagecodecs.ultrahdr_decode(data, dtype=np.uint8)
    return x[..., :3], sdr[..., :3]


def read_hdr_avif(path):
    """The linear BT.709 RGB relative to white of a 10-bit PQ BT.2020 AVIF as we write it."""
    return decode_avif(Path(path).read_bytes())


def decode_avif(data):
    """`read_hdr_avif` of the file's bytes."""
    import imagecodecs

    coded = imagecodecs.avif_decode(data).astype(np.float64)
    nits = pq_decode(coded[..., :3] / (2 ** AVIF_BITS - 1))
    return (nits / REFERENCE_WHITE_NITS @ np.linalg.inv(BT709_TO_BT2020).T).astype(np.float32)
