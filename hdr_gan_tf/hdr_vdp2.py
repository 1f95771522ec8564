"""HDR-VDP-2.2: the visible difference and quality of a test image against a reference
(docs/design.md §7; Mantiuk, Kim, Rempel & Heidrich, SIGGRAPH 2011, with the quality pooling
recalibrated in version 2.2 by Narwaria, Mantiuk, Da Silva & Le Callet, J. Electronic Imaging
2015). The paper's fifth metric; computed as the reference implementation 2.2.1 computes it.

The model, in order: the eye's optics (an MTF, glare included), the photoreceptors (L and M
cones, rods) and their luminance-dependent nonlinearity, the steerable pyramid, the neural
contrast sensitivity at each pixel's adapting luminance, contrast masking within and across
orientations and neighbouring bands, the probability of detection, and the pooled quality Q
(100 for no visible difference, lower for larger ones). All in float64.
"""

import concurrent.futures
import csv
import functools
import math
import pathlib
import typing

import cv2
import numpy as np

from hdr_gan_tf import steerable_pyramid

_DATA = pathlib.Path(__file__).with_name("hdr_vdp2_data")

# The calibrated parameters of version 2.2.1 (30 Aug 2011 calibration).
_SENSITIVITY_CORRECTION = 0.006894596 / 10 ** -2.4   # Daly's peak contrast sensitivity
_MASK_P = 10 ** 0.544068
_MASK_Q = 10 ** 0.49576
_MASK_SELF = 10 ** 0.189065
_MASK_ACROSS_ORIENTATIONS = 10 ** 0.449199
_MASK_ACROSS_BANDS = 10 ** 1.52512
_PSYCHOMETRIC_SLOPE = 3.5
# Joint rod-cone sensitivity (peak, p6, p7, p8) and rod sensitivity parameters.
_JOINT_SENSITIVITY = (30.162, 4.0627, 1.6596, 0.2712)
_ROD_SENSITIVITY = (1.1732, 1.1478, 1.2167, 0.5547, 2.9899, 1.1414)
# The neural CSF: per adapting luminance (cd/m²), parameters p1..p4 of the fitted function.
_CSF_LUMINANCES = np.log10([0.002, 0.02, 0.2, 2, 20, 150])
_CSF_PARAMETERS = np.array([
    [0.991265, 3.74038, 0.50722, 4.46044],
    [0.800889, 3.54104, 0.682505, 4.94958],
    [0.476505, 4.37453, 0.750315, 5.28678],
    [0.405782, 4.40602, 0.935314, 5.61425],
    [0.334278, 3.79542, 1.07327, 6.4635],
    [0.394533, 2.7755, 1.16577, 7.45665]])
# The eye's MTF: a sum of exponentials in spatial frequency (cycles per degree).
_MTF_SHARE = (0.061466549455263, 0.99727370023777070)
_MTF_WEIGHTS = (_MTF_SHARE[1] * 0.426, _MTF_SHARE[1] * 0.574,
                (1 - _MTF_SHARE[1]) * _MTF_SHARE[0], (1 - _MTF_SHARE[1]) * (1 - _MTF_SHARE[0]))
_MTF_RATES = (0.028, 0.37, 37.0, 360.0)
# Quality pooling: the weight of each band by its frequency (cycles per degree).
_QUALITY_FREQUENCIES = np.array([60, 30, 15, 7.5, 3.75, 1.875, 0.9375, 0.4688, 0.2344, 0.1172])
_QUALITY_WEIGHTS = np.array([0, 0.2832, 0.2832, 0.2142, 0.2690, 0.0398, 0.0003, 0.0003, 0, 0])
_QUALITY_EPSILON = 1e-12
# Images need sides at least as long as the pyramid's high-pass taps.
SMALLEST_SIDE = 15
# Luminance of the surround, outside the image (cd/m²): almost darkness.
_SURROUND = 1e-5
# Adapting luminances the CSF is tabulated at (cd/m²).
_CSF_TABLE_LUMINANCES = np.logspace(-5, 5, 256)
# The photoreceptor nonlinearity is tabulated at these luminances (cd/m²).
_RESPONSE_TABLE_LUMINANCES = np.logspace(-5, 5, 2048)
# The display sRGB-display and luma-display assume: 100 cd/m² peak, 1 cd/m² black.
_DISPLAY_PEAK, _DISPLAY_BLACK = 100.0, 1.0
# Spectra are integrated on this grid (nm).
_WAVELENGTHS = np.linspace(360, 780, 420)
# CIE XYZ to linear BT.709 RGB.
_XYZ_TO_RGB = np.array([[3.240708, -1.537259, -0.498570],
                        [-0.969257, 1.875995, 0.041555],
                        [0.055636, -0.203996, 1.057069]])


def _srgb_display(values):
    linear = np.where(values <= 0.04045, values / 12.92,
                      ((np.maximum(values, 0.04045) + 0.055) / 1.055) ** 2.4)
    return (_DISPLAY_PEAK - _DISPLAY_BLACK) * linear + _DISPLAY_BLACK


def _luma_display(values):
    return (_DISPLAY_PEAK - _DISPLAY_BLACK) * values ** 2.2 + _DISPLAY_BLACK


class ColorEncoding(typing.NamedTuple):
    """How the metric reads pixel values as light.

    Attributes:
      name: the encoding's name, as the reference names it.
      channels: 1 (achromatic, D65 light) or 3 (RGB of an LCD with CCFL backlight).
      to_light: pixel values -> absolute RGB or luminance (cd/m²).
      summary: a few words for help.
    """
    name: str
    channels: int
    to_light: typing.Callable
    summary: str


COLOR_ENCODINGS = {e.name: e for e in (
    ColorEncoding("sRGB-display", 3, _srgb_display,
                  "sRGB values in [0, 1] on a 100 cd/m² display with a 1 cd/m² black"),
    ColorEncoding("rgb-bt.709", 3, lambda v: v, "linear BT.709 RGB in cd/m²"),
    ColorEncoding("XYZ", 3, lambda v: v @ _XYZ_TO_RGB.T, "CIE 1931 XYZ, Y in cd/m²"),
    ColorEncoding("luminance", 1, lambda v: v, "luminance in cd/m²"),
    ColorEncoding("luma-display", 1, _luma_display,
                  "luma in [0, 1] on a 2.2-gamma 100 cd/m² display with a 1 cd/m² black"),
)}


def pixels_per_degree(diagonal_inches, resolution, distance_m):
    """Pixels per visual degree of a display of `diagonal_inches` showing `resolution`
    (width, height) pixels seen from `distance_m` metres, measured along its height."""
    width, height = resolution
    aspect = width / height
    height_mm = math.sqrt((diagonal_inches * 25.4) ** 2 / (1 + aspect ** 2))
    height_degrees = 2 * math.degrees(math.atan(0.5 * height_mm / (distance_m * 1000)))
    return height / height_degrees


# ---------------------------------------------------------------- tables computed once

def _pchip(x, y, at):
    """Shape-preserving piecewise cubic Hermite interpolation (Fritsch & Carlson), 0 outside
    `x`'s range."""
    h, slope = np.diff(x), np.diff(y) / np.diff(x)
    d = np.zeros_like(y)
    w1, w2 = 2 * h[1:] + h[:-1], h[1:] + 2 * h[:-1]
    same = slope[:-1] * slope[1:] > 0
    with np.errstate(divide="ignore", invalid="ignore"):
        inner = (w1 + w2) / (w1 / slope[:-1] + w2 / slope[1:])
    d[1:-1] = np.where(same, inner, 0.0)

    def end(h0, h1, s0, s1):  # a one-sided three-point slope, kept shape-preserving
        e = ((2 * h0 + h1) * s0 - h0 * s1) / (h0 + h1)
        if np.sign(e) != np.sign(s0):
            return 0.0
        if np.sign(s0) != np.sign(s1) and abs(e) > abs(3 * s0):
            return 3 * s0
        return e

    d[0] = end(h[0], h[1], slope[0], slope[1])
    d[-1] = end(h[-1], h[-2], slope[-1], slope[-2])
    k = np.clip(np.searchsorted(x, at, side="right") - 1, 0, len(x) - 2)
    t = (at - x[k]) / h[k]
    t2, t3 = t * t, t * t * t
    value = ((2 * t3 - 3 * t2 + 1) * y[k] + (t3 - 2 * t2 + t) * h[k] * d[k]
             + (-2 * t3 + 3 * t2) * y[k + 1] + (t3 - t2) * h[k] * d[k + 1])
    return np.where((at >= x[0]) & (at <= x[-1]), value, 0.0)


def _spectra(file_name):
    with open(_DATA / file_name, newline="") as f:
        rows = np.array([[float(v) for v in row] for row in csv.reader(f) if row])
    return np.stack([_pchip(rows[:, 0], rows[:, k], _WAVELENGTHS)
                     for k in range(1, rows.shape[1])], axis=1)


@functools.lru_cache(maxsize=None)
def _to_photoreceptors(channels):
    """`[channels, 4]`: what each display channel excites in L, M, S cones and rods."""
    log_cones = _spectra("cone_fundamentals_smith_pokorny_1975_log.csv")
    log_cones[log_cones == 0] = log_cones.min()   # outside the measured range: the least
    sensitivity = np.concatenate(
        [10.0 ** log_cones, _spectra("cie_1951_scotopic_luminosity.csv")], axis=1)
    emission = (_spectra("emission_ccfl_lcd.csv") if channels == 3
                else _spectra("cie_d65.csv"))
    product = sensitivity[:, None, :] * emission[:, :, None]
    return np.sum(np.diff(_WAVELENGTHS)[:, None, None] * (product[1:] + product[:-1]) / 2, axis=0)


def _joint_sensitivity(luminance):
    peak, drop, transition, low = _JOINT_SENSITIVITY
    return peak * ((drop / luminance) ** transition + 1) ** -low


def _rod_sensitivity(luminance):
    peak_l, low_s, low_exp, high_s, high_exp, scale = _ROD_SENSITIVITY
    distance = np.abs(np.log10(luminance / peak_l))
    above = luminance > peak_l
    return np.exp(-np.where(above, distance ** high_exp / high_s,
                            distance ** low_exp / low_s)) * 10 ** scale


@functools.lru_cache(maxsize=None)
def _responses():
    """The photoreceptor nonlinearity, cones then rods: response (in JNDs) at each
    log10 luminance of `_RESPONSE_TABLE_LUMINANCES`, from integrating sensitivity."""
    lum = _RESPONSE_TABLE_LUMINANCES
    rods = _rod_sensitivity(lum)
    cones = 0.5 * np.interp(np.minimum(lum * 2, lum[-1]), lum,
                            np.maximum(_joint_sensitivity(lum) - rods, 1e-3))
    log_lum = np.log10(lum)

    def integrated(sensitivity):
        step = sensitivity * math.log(10)   # dR/dlog10(L) for R' = S / L
        cumulative = np.concatenate([[0.0], np.cumsum(np.diff(log_lum) * (step[1:] + step[:-1])
                                                       / 2)])
        return cumulative * _SENSITIVITY_CORRECTION

    return log_lum, integrated(cones), integrated(rods)


def _neural_csf(rho, luminance):
    """Contrast sensitivity at spatial frequency `rho` (cycles/degree) and adapting
    `luminance` (cd/m²); broadcast against each other."""
    at = np.clip(np.log10(luminance), _CSF_LUMINANCES[0], _CSF_LUMINANCES[-1])
    p1, p2, p3, p4 = (np.interp(at, _CSF_LUMINANCES, _CSF_PARAMETERS[:, k]) for k in range(4))
    return p4 * np.sqrt((1 - np.exp(-(rho / 7) ** 2)) ** p3 / (1 + (p1 * rho) ** p2))


def _frequencies(shape, per_degree, half=False):
    """Cycles per degree of each coefficient of an FFT of `shape` (its own layout); with
    `half`, only the columns a real FFT keeps."""
    nyquist = 0.5 * per_degree

    def axis(n):
        count = n // 2
        step = nyquist / count
        if n % 2:
            return np.concatenate([np.linspace(0, nyquist, count + 1),
                                   np.linspace(-nyquist, -step, count)])
        return np.concatenate([np.linspace(0, nyquist - step, count),
                               np.linspace(-nyquist, -step, count)])

    across = axis(shape[1])
    if half:
        across = across[:shape[1] // 2 + 1]
    return np.hypot(across[None, :], axis(shape[0])[:, None])


class _Filter:
    """A real, even frequency response `[2H, 2W]`, held as OpenCV's packed spectrum (its
    fastest real FFT) for filtering `[H, W]` images padded below and right."""

    def __init__(self, half_response, shape):
        self.shape = shape
        kernel = np.fft.irfft2(half_response, s=shape)
        self.packed = cv2.dft(kernel)

    def __call__(self, image, pad_value):
        rows, cols = image.shape
        padded = np.full(self.shape, pad_value, np.float64)
        padded[:rows, :cols] = image
        spectrum = cv2.mulSpectrums(cv2.dft(padded), self.packed, 0)
        return cv2.idft(spectrum, flags=cv2.DFT_REAL_OUTPUT | cv2.DFT_SCALE)[:rows, :cols]


def _optics(shape, per_degree):
    """The eye's MTF for images of `shape` as a `_Filter`."""
    padded = (2 * shape[0], 2 * shape[1])
    rho = _frequencies(padded, per_degree, half=True)
    return _Filter(sum(weight * np.exp(-rate * rho)
                       for weight, rate in zip(_MTF_WEIGHTS, _MTF_RATES)), padded)


# ---------------------------------------------------------------- resampling

@functools.lru_cache(maxsize=64)
def _resampling(size_in, size_out):
    """`(index, weights)`, each `[taps, size_out]`: output sample `i` is `sum_k weights[k, i] *
    input[index[k, i]]`, bicubic (Keys, a = -0.5), the kernel widened by the scale when
    reducing, edges mirrored, the weights not normalised: what the reference's resizing (the
    Octave image package's imresize) computes."""
    scale = size_out / size_in
    centres = 0.5 + 0.5 / scale + np.arange(size_out) / scale   # 1-based input coordinates
    stretch = min(scale, 1.0)
    reach = math.ceil(4 / stretch / 2)
    floor = np.floor(centres)
    indices, weights = [], []
    for shift in range(1 - reach, reach + 1):
        h = np.abs((shift - (centres - floor)) * stretch)
        weights.append(np.where(h <= 1, 1.5 * h ** 3 - 2.5 * h ** 2 + 1,
                                np.where(h <= 2, -0.5 * h ** 3 + 2.5 * h ** 2 - 4 * h + 2, 0.0))
                       * stretch)
        index = (floor + shift - 1).astype(int)
        period = np.floor_divide(index, size_in) % 2 == 1
        indices.append(np.where(period, size_in - 1 - np.mod(index, size_in),
                                np.mod(index, size_in)))
    return np.array(indices), np.array(weights)


def _resized(image, shape):
    """`image` `[H, W]` resampled to `shape` (`_resampling` along each side that changes,
    columns first)."""
    if image.shape == tuple(shape):
        return image
    if shape[1] != image.shape[1]:
        index, weights = _resampling(image.shape[1], shape[1])
        image = sum(image[:, i] * w for i, w in zip(index, weights))
    if shape[0] != image.shape[0]:
        index, weights = _resampling(image.shape[0], shape[0])
        image = sum(image[i] * w[:, None] for i, w in zip(index, weights))
    return image


# ---------------------------------------------------------------- the model

def _mean_box(values):
    # A 3×3 mean with zeros outside: the reference's phase-uncertainty blur.
    return cv2.boxFilter(values, cv2.CV_64F, (3, 3), normalize=True,
                         borderType=cv2.BORDER_CONSTANT)


def _visual_pathway(light, optics):
    """The pyramid of the photoreceptor response of an image of absolute light `[H, W, C]`
    seen through `optics` (`_optics`), and its adapting luminance `[H, W]`."""
    channels = light.shape[2]
    retina = np.stack([np.clip(optics(light[..., c], _SURROUND), 1e-5, 1e10)
                       for c in range(channels)], axis=-1)
    excitation = retina @ _to_photoreceptors(channels)   # L, M, S, rods
    adapting = excitation[..., 0] + excitation[..., 1]
    log_lum, cone_table, rod_table = _responses()

    def response(values, table):
        position = (np.log10(np.clip(values, 10 ** log_lum[0], 10 ** log_lum[-1]))
                    - log_lum[0]) / (log_lum[1] - log_lum[0])
        index = np.clip(position.astype(int), 0, len(table) - 2)
        return table[index] + (table[index + 1] - table[index]) * (position - index)

    cones = response(excitation[..., 0], cone_table) + response(excitation[..., 1], cone_table)
    rods = response(excitation[..., 3], rod_table)
    return steerable_pyramid.build((cones - cones.mean()) + (rods - rods.mean())), adapting


def _lowpass_seen(lowpass, frequency, adapting, pad_value):
    """The low-pass band filtered by the CSF at the image's mean adapting luminance, padded
    with `pad_value` (the reference's low-pass mean, for both images)."""
    padded = (2 * lowpass.shape[0], 2 * lowpass.shape[1])
    rho = _frequencies(padded, frequency * 2 * math.sqrt(2), half=True)
    return _Filter(_neural_csf(rho, adapting.mean()), padded)(lowpass, pad_value)


def _sign_power(x, exponent):
    return np.copysign(np.abs(x) ** exponent, x)


class VisualDifference(typing.NamedTuple):
    """What HDR-VDP-2 predicts for a test image against its reference.

    Attributes:
      q: the quality correlate Q: 100 for no visible difference, lower for larger ones.
      p_map: `[H, W]` probability of detecting a difference at each pixel (0..1).
      p_det: the largest of `p_map`.
      c_map: `[H, W]` contrast normalised by the detection threshold (1: P = 0.5).
      c_max: the largest of `c_map`.
    """
    q: float
    p_map: np.ndarray
    p_det: float
    c_map: np.ndarray
    c_max: float

    # The reference's names for the same fields.
    Q = property(lambda self: self.q)
    P_map = property(lambda self: self.p_map)
    P_det = property(lambda self: self.p_det)
    C_map = property(lambda self: self.c_map)
    C_max = property(lambda self: self.c_max)


def _checked(image, what, encoding):
    image = np.asarray(image)
    if not (np.issubdtype(image.dtype, np.floating) or np.issubdtype(image.dtype, np.integer)):
        raise ValueError(f"{what} must hold real numbers, not {image.dtype}")
    image = image.astype(np.float64)
    if image.ndim == 2 and encoding.channels == 1:
        image = image[..., None]
    if image.ndim != 3 or image.shape[2] != encoding.channels:
        raise ValueError(f"{what} must be [H, W, {encoding.channels}] for the "
                         f"{encoding.name} encoding, got shape {image.shape}")
    if not np.all(np.isfinite(image)):
        raise ValueError(f"{what} holds NaN or Inf values")
    if np.any(image < 0):
        raise ValueError(f"{what} holds negative values (smallest {image.min():g}); light "
                         f"is never negative")
    return image


def hdr_vdp2(test, reference, color_encoding, pixels_per_degree):
    """HDR-VDP-2.2 (module docstring) of `test` against `reference`.

    Args:
      test, reference: `[H, W, 3]` (or `[H, W]`/`[H, W, 1]` for the one-channel encodings)
        real arrays of one shape, at least `SMALLEST_SIDE` pixels a side, read as `color_encoding` says.
      color_encoding: a name of `COLOR_ENCODINGS` (`sRGB-display`, `rgb-bt.709`, `XYZ`,
        `luminance`, `luma-display`), in any case.
      pixels_per_degree: the angular resolution the images are seen at (`pixels_per_degree()`
        gives it for a display).

    Returns:
      A `VisualDifference` (its fields also under the reference's names: `Q`, `P_map`, ...).

    Raises:
      ValueError naming the argument: an unknown encoding, a ppd that is not positive and
      finite, images of different shapes or the wrong channel count, negative or non-finite
      values.
    """
    # Names as the reference reads them: whatever the case.
    encoding = next((e for name, e in COLOR_ENCODINGS.items() if isinstance(color_encoding, str)
                     and name.lower() == color_encoding.lower()), None)
    if encoding is None:
        raise ValueError(f"color_encoding {color_encoding!r} is unknown; choose from "
                         f"{', '.join(COLOR_ENCODINGS)}")
    number = np.asarray(pixels_per_degree)
    if not (number.ndim == 0 and number.dtype.kind in "iuf" and math.isfinite(number)
            and number > 0):
        raise ValueError(f"pixels_per_degree must be a positive number, got "
                         f"{pixels_per_degree!r}")
    test = _checked(test, "test", encoding)
    reference = _checked(reference, "reference", encoding)
    if test.shape != reference.shape:
        raise ValueError(f"test {test.shape} and reference {reference.shape} differ in shape")
    if min(test.shape[:2]) < SMALLEST_SIDE:
        raise ValueError(f"test and reference are {test.shape[1]}×{test.shape[0]}; HDR-VDP-2 "
                         f"needs at least {SMALLEST_SIDE} pixels a side")
    per_degree = float(number)
    test, reference = encoding.to_light(test), encoding.to_light(reference)

    optics = _optics(test.shape[:2], per_degree)
    # The two images' pathways are independent; side by side they use both cores.
    with concurrent.futures.ThreadPoolExecutor(max_workers=2) as pool:
        (ref_bands, ref_adapting), (test_bands, test_adapting) = pool.map(
            lambda light: _visual_pathway(light, optics), (reference, test))
    frequencies = 2.0 ** -np.arange(len(ref_bands)) * per_degree / 2
    pad = ref_bands[-1][0].mean()
    for bands, adapting in ((ref_bands, ref_adapting), (test_bands, test_adapting)):
        bands[-1][0] = _lowpass_seen(bands[-1][0], frequencies[-1], adapting, pad)
    log_adapting = np.log10(np.clip((test_adapting + ref_adapting) / 2,
                                    _CSF_TABLE_LUMINANCES[0], _CSF_TABLE_LUMINANCES[-1]))
    csf_log_lum = np.log10(_CSF_TABLE_LUMINANCES)
    with np.errstate(divide="ignore", invalid="ignore"):
        differs = np.any(np.abs(test - reference) / reference > 0.001, axis=2).astype(np.float64)

    masking = [[_mean_box(np.minimum(np.abs(t), np.abs(r))) for t, r in zip(tb, rb)]
               for tb, rb in zip(test_bands, ref_bands)]
    count = len(test_bands)
    difference_bands, q = [], 0.0
    for b in range(count):
        shape = test_bands[b][0].shape
        norm = 2.0 ** b
        across_orientations = sum(masking[b])
        log_la = np.clip(_resized(log_adapting, shape), csf_log_lum[0], csf_log_lum[-1])
        csf = np.interp(log_la, csf_log_lum, _neural_csf(frequencies[b], _CSF_TABLE_LUMINANCES))
        noise = 1.0 if b == count - 1 else 1.0 / csf
        threshold = noise ** (2 * _MASK_P)
        weight = np.interp(np.clip(frequencies[b], _QUALITY_FREQUENCIES[-1],
                                   _QUALITY_FREQUENCIES[0]),
                           _QUALITY_FREQUENCIES[::-1], _QUALITY_WEIGHTS[::-1])
        differs_here = _resized(differs, shape)
        level = []
        for o in range(len(test_bands[b])):
            excitation = _sign_power((test_bands[b][o] - ref_bands[b][o]) / norm, _MASK_P) * norm
            own = masking[b][o]
            neighbours = np.zeros(shape)
            if b > 0:
                finer = masking[b - 1][min(o, len(masking[b - 1]) - 1)]
                neighbours += np.maximum(_resized(finer, shape), 0) / (norm / 2)
            if b < count - 2:
                coarser = masking[b + 1][min(o, len(masking[b + 1]) - 1)]
                neighbours += np.maximum(_resized(coarser, shape), 0) / (norm * 2)
            others = np.maximum(across_orientations - own, 0)
            masked = norm * (_MASK_SELF * (own / noise / norm) ** _MASK_Q
                             + _MASK_ACROSS_ORIENTATIONS * (others / noise / norm) ** _MASK_Q
                             + _MASK_ACROSS_BANDS * (neighbours / noise) ** _MASK_Q)
            d = excitation / np.sqrt(threshold + masked ** 2)
            level.append(_sign_power(d / norm, _PSYCHOMETRIC_SLOPE / _MASK_P) * norm)
            d = d * differs_here
            pooled = math.sqrt(float(np.sum(d * d))) / d.size
            q += (math.log(pooled + _QUALITY_EPSILON) - math.log(_QUALITY_EPSILON)) * weight
        difference_bands.append(level)

    c_map = np.abs(steerable_pyramid.reconstruct(difference_bands))
    c_map = np.sum(c_map) / (np.max(c_map) + 1e-12) * c_map
    p_map = 1 - np.exp(math.log(0.5) * c_map)
    return VisualDifference(q=100.0 - q, p_map=p_map, p_det=float(p_map.max()), c_map=c_map,
                            c_max=float(c_map.max()))
