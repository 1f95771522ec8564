"""The steerable pyramid HDR-VDP-2 decomposes images with (docs/design.md §7; Simoncelli &
Freeman, ICIP 1995), with the four-orientation third-derivative filters of Karasaridis &
Simoncelli (ICASSP 1996), edges reflected about the edge pixels.

A pyramid is a list of bands from fine to coarse, each a list of `[H, W]` float64 arrays: the
high-pass residual (one array), one band of four orientations per level (the first level at
full size, each next at half the size, rounded up), and the low-pass residual (one array).
"""

import functools
import pathlib

import cv2
import numpy as np

_FILTER_FILE = pathlib.Path(__file__).with_name("hdr_vdp2_data") / "steerable_pyramid_sp3.npz"


@functools.lru_cache(maxsize=None)
def filters():
    """The filter taps: `highpass0` 15×15, `lowpass0` 9×9, `lowpass` 17×17 and `bands`
    `[4, 9, 9]`, one per orientation (the taps as published with the pyramid)."""
    with np.load(_FILTER_FILE) as stored:
        return {name: stored[name].astype(np.float64) for name in stored.files}


def _border(edge_count, length):
    # Reflection about the edge pixels needs the filter's reach inside the image.
    if edge_count >= length:
        raise ValueError(f"an image side of {length} pixels is too small for a filter reaching "
                         f"{edge_count} pixels")


def correlate_down(image, taps, step=1):
    """Correlates `image` `[H, W]` with `taps` (odd sides, centred), edges reflected about the
    edge pixels, and keeps every `step`-th row and column from the first:
    `[ceil(H / step), ceil(W / step)]`."""
    _border(taps.shape[0] // 2, min(image.shape))
    out = cv2.filter2D(image, cv2.CV_64F, taps, borderType=cv2.BORDER_REFLECT_101)
    return out[::step, ::step] if step > 1 else out


def convolve_up(image, taps, shape, step=1):
    """Places `image` on every `step`-th pixel (from the first) of a zero image of `shape` and
    convolves that with `taps`, edges reflected about the edge pixels. `shape` must give
    `image`'s shape back under `correlate_down` with the same step.

    Where a side is exactly as long as the taps, the reference implementation leaves out the
    last line of the reflection beyond that side's far edge (the mirror of the middle line); so
    does this."""
    rows, cols = shape
    if (-(-rows // step), -(-cols // step)) != image.shape:
        raise ValueError(f"a {image.shape} band does not expand to {shape} with step {step}")
    _border(taps.shape[0] // 2, min(shape))
    if step > 1:
        spread = np.zeros(shape)
        spread[::step, ::step] = image
        image = spread
    # Correlating with the taps turned by 180° convolves with them.
    turned = np.ascontiguousarray(taps[::-1, ::-1])
    if rows != taps.shape[0] and cols != taps.shape[1]:
        return cv2.filter2D(image, cv2.CV_64F, turned, borderType=cv2.BORDER_REFLECT_101)
    reach_y, reach_x = taps.shape[0] // 2, taps.shape[1] // 2
    padded = np.pad(image, ((reach_y, reach_y), (reach_x, reach_x)), mode="reflect")
    if rows == taps.shape[0]:
        padded[-1] = 0
    if cols == taps.shape[1]:
        padded[:, -1] = 0
    out = cv2.filter2D(padded, cv2.CV_64F, turned, borderType=cv2.BORDER_CONSTANT)
    return out[reach_y:reach_y + rows, reach_x:reach_x + cols]


def height(shape, filter_side=17):
    """Levels of a pyramid of an image of `shape`: halvings (rounded down) while both sides
    stay at least `filter_side`, the low-pass filter's side."""
    levels, sides = 0, np.asarray(shape)
    while np.all(sides >= filter_side):
        levels, sides = levels + 1, sides // 2
    return levels


def build(image):
    """The pyramid (module docstring) of a `[H, W]` image, as many levels as `height` allows."""
    taps = filters()
    image = np.asarray(image, np.float64)
    bands = [[correlate_down(image, taps["highpass0"])]]
    low = correlate_down(image, taps["lowpass0"])
    for _ in range(height(image.shape, taps["lowpass"].shape[0])):
        bands.append([correlate_down(low, oriented) for oriented in taps["bands"]])
        low = correlate_down(low, taps["lowpass"], step=2)
    bands.append([low])
    return bands


def reconstruct(bands):
    """The image a pyramid (`build`'s layout) stands for, its bands expanded and summed."""
    taps = filters()
    image = bands[-1][0]
    for level in reversed(bands[1:-1]):
        shape = level[0].shape
        image = convolve_up(image, taps["lowpass"], shape, step=2)
        for oriented, band in zip(taps["bands"], level):
            image = image + convolve_up(band, oriented, shape)
    image = convolve_up(image, taps["lowpass0"], image.shape)
    return image + convolve_up(bands[0][0], taps["highpass0"], image.shape)
