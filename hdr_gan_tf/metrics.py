"""The metrics (docs/design.md §7): the paper's PSNR and SSIM in the linear and μ-law domains,
its HDR-VDP-2 quality (`hdr_vdp2`, Mantiuk et al. 2011, version 2.2), and PSNR and SSIM on the
PU21 encoding (Mantiuk & Azimi, PCS 2021).

Images are float arrays `[H, W, 3]` in [0, 1] (NumPy). SSIM follows Wang et al. (Gaussian
window 11, σ 1.5, K1 0.01, K2 0.03) over the window positions that fit inside the image, as
`tf.image.ssim` does, averaged over the channels.
"""

import typing

import cv2
import numpy as np

from hdr_gan_tf.hdr_vdp2 import SMALLEST_SIDE as _HDR_VDP2_SMALLEST_SIDE
from hdr_gan_tf.hdr_vdp2 import hdr_vdp2, pixels_per_degree
from hdr_gan_tf.imaging import MU, mu_law

SSIM_WINDOW = 11
_SSIM_SIGMA = 1.5


def psnr(a, b, peak=1.0):
    """`10 log10(peak² / MSE)` over all pixels and channels; inf for identical images."""
    mse = np.mean((np.asarray(a, np.float64) - np.asarray(b, np.float64)) ** 2)
    return float("inf") if mse == 0 else float(10.0 * np.log10(peak ** 2 / mse))


def ssim(a, b, data_range=1.0, k1=0.01, k2=0.03):
    """Mean SSIM over channels of two `[H, W, C]` images (valid Gaussian filtering)."""
    a = np.asarray(a, np.float64)
    b = np.asarray(b, np.float64)
    if a.shape != b.shape or a.ndim != 3:
        raise ValueError(f"ssim needs two [H, W, C] images of one shape, got {a.shape}, {b.shape}")
    c1, c2 = (k1 * data_range) ** 2, (k2 * data_range) ** 2
    g = cv2.getGaussianKernel(SSIM_WINDOW, _SSIM_SIGMA, cv2.CV_64F)
    kernel = g @ g.T
    half = SSIM_WINDOW // 2

    def blur(x):  # 'valid' filtering: drop the border where the window leaves the image
        out = cv2.filter2D(x, cv2.CV_64F, kernel, borderType=cv2.BORDER_REFLECT)
        return out[half:-half, half:-half] if out.ndim == 2 else out[half:-half, half:-half, :]

    values = []
    for c in range(a.shape[2]):
        x, y = a[..., c], b[..., c]
        mx, my = blur(x), blur(y)
        sxx = blur(x * x) - mx * mx
        syy = blur(y * y) - my * my
        sxy = blur(x * y) - mx * my
        num = (2 * mx * my + c1) * (2 * sxy + c2)
        den = (mx * mx + my * my + c1) * (sxx + syy + c2)
        values.append(np.mean(num / den))
    return float(np.mean(values))


# PU21's "banding + glare" parameters, the encoding its authors recommend (their
# `pu21_encoder.m`, parameters of 06/02/2020), and the luminance range it is defined on (cd/m²).
PU21_PARAMETERS = (0.353487901, 0.3734658629, 8.277049286e-05, 0.9062562627, 0.09150303166,
                   0.9099517204, 596.3148142)
PU21_LUMINANCE_RANGE = (0.005, 10000.0)
# PU21 values of SDR luminances span about 0..256 (100 cd/m² encodes to about 256), so PSNR and
# SSIM on them use 256 as their peak and data range.
PU21_PEAK = 256.0
# Relative HDR images are shown on a display whose peak the ground truth's brightest pixel
# takes, as in PU21's HDR examples.
PU21_DISPLAY_PEAK = 4000.0
# Rec. 709 luminance weights, as PU21's code takes them for its luminance-only metrics.
_LUMINANCE_WEIGHTS = np.array([0.212656, 0.715158, 0.072186])


def pu21_encode(luminance):
    """PU21 values of absolute luminances (cd/m², clamped to `PU21_LUMINANCE_RANGE`), float64:
    `V = p7 ((p1 + p2 Y^p4) / (1 + p3 Y^p4))^p5 - p6)`, at least 0."""
    p1, p2, p3, p4, p5, p6, p7 = PU21_PARAMETERS
    y = np.clip(np.asarray(luminance, np.float64), *PU21_LUMINANCE_RANGE) ** p4
    return np.maximum(p7 * (((p1 + p2 * y) / (1 + p3 * y)) ** p5 - p6), 0.0)


def on_display(hdr, hdr_gt, display_peak=PU21_DISPLAY_PEAK):
    """Both relative images in cd/m², scaled alike so that the ground truth's largest value
    shows at `display_peak`."""
    scale = display_peak / max(float(np.max(hdr_gt)), np.finfo(np.float64).tiny)
    return np.asarray(hdr, np.float64) * scale, np.asarray(hdr_gt, np.float64) * scale


def pu21_psnr(hdr, hdr_gt, display_peak=PU21_DISPLAY_PEAK):
    """PSNR of the PU21-encoded RGB values (peak 256) of a linear HDR estimate against the
    ground truth, both shown on a display of `display_peak` cd/m² (`on_display`)."""
    est, gt = on_display(hdr, hdr_gt, display_peak)
    return psnr(pu21_encode(est), pu21_encode(gt), PU21_PEAK)


def pu21_ssim(hdr, hdr_gt, display_peak=PU21_DISPLAY_PEAK):
    """SSIM (data range 256) of the PU21-encoded luminance, both images shown as `pu21_psnr`
    shows them."""
    est, gt = on_display(hdr, hdr_gt, display_peak)
    return ssim(pu21_encode(est @ _LUMINANCE_WEIGHTS)[..., None],
                pu21_encode(gt @ _LUMINANCE_WEIGHTS)[..., None], PU21_PEAK)


# The field's HDR-VDP-2 protocol: the linear HDR values read as sRGB-display pixel values, the
# image filling a 24-inch display seen from 0.5 m.
HDR_VDP2_ENCODING = "sRGB-display"
HDR_VDP2_DISPLAY_INCHES = 24.0
HDR_VDP2_DISTANCE_M = 0.5
# What `metrics.json` records of it.
HDR_VDP2_PROTOCOL = {"encoding": HDR_VDP2_ENCODING, "display_inches": HDR_VDP2_DISPLAY_INCHES,
                     "distance_m": HDR_VDP2_DISTANCE_M, "pixels_per_degree": "of the image's size"}
# The smallest side every metric can score: SSIM's window, HDR-VDP-2's pyramid.
SMALLEST_SIDE = max(SSIM_WINDOW, _HDR_VDP2_SMALLEST_SIDE)


def hdr_vdp2_quality(hdr, hdr_gt, display_peak=None):
    """HDR-VDP-2.2's Q of a linear HDR estimate against the ground truth under the field's
    protocol (`HDR_VDP2_ENCODING`, pixels per degree of the image on the display above);
    negative values, which an .hdr file cannot hold, count as 0. `display_peak` is unused."""
    rows, cols = np.shape(hdr_gt)[:2]
    per_degree = pixels_per_degree(HDR_VDP2_DISPLAY_INCHES, (cols, rows), HDR_VDP2_DISTANCE_M)
    return hdr_vdp2(np.maximum(hdr, 0.0), np.maximum(hdr_gt, 0.0), HDR_VDP2_ENCODING,
                    per_degree).q


def _in_mu_law(measure):
    return lambda hdr, hdr_gt, display_peak: measure(mu_law(hdr, MU), mu_law(hdr_gt, MU))


def _linear(measure):
    return lambda hdr, hdr_gt, display_peak: measure(hdr, hdr_gt)


class Metric(typing.NamedTuple):
    """A score of a linear HDR estimate against the ground truth.

    Attributes:
      name: its column in tables, CSV and JSON.
      summary: what it measures, in a few words.
      score: `score(hdr, hdr_gt, display_peak)` -> float (float64 arrays, finite).
    """
    name: str
    summary: str
    score: typing.Callable


METRIC_TABLE = {m.name: m for m in (
    Metric("psnr_mu", "PSNR of the μ-law tonemapped images", _in_mu_law(psnr)),
    Metric("psnr_l", "PSNR of the linear images", _linear(psnr)),
    Metric("ssim_mu", "SSIM of the μ-law tonemapped images", _in_mu_law(ssim)),
    Metric("ssim_l", "SSIM of the linear images", _linear(ssim)),
    Metric("hdr_vdp2", "HDR-VDP-2.2 quality Q (100: no visible difference)",
           hdr_vdp2_quality),
    Metric("pu21_psnr", "PSNR of the PU21-encoded luminance on a display", pu21_psnr),
    Metric("pu21_ssim", "SSIM of the PU21-encoded luminance on a display", pu21_ssim),
)}
# The names, in the order of tables.
METRICS = tuple(METRIC_TABLE)


def hdr_metrics(hdr, hdr_gt, names=METRICS, display_peak=PU21_DISPLAY_PEAK):
    """The `METRIC_TABLE` scores of `names` (default all: PSNR-μ, PSNR-L, SSIM-μ, SSIM-L,
    HDR-VDP-2, PU21-PSNR and PU21-SSIM) of a linear HDR estimate against the ground truth. The μ-law of
    the metrics is the paper's, μ = 5000, whatever μ a model was trained with, so that scores
    stay comparable; PU21 shows the ground truth's peak at `display_peak` cd/m².

    Raises ValueError when an image holds NaN or Inf or a name is not a metric: a score is a
    number or nothing (a PSNR of identical images is +inf, the one score that may not be
    finite).
    """
    unknown = [name for name in names if name not in METRIC_TABLE]
    if unknown:
        raise ValueError(f"unknown metrics {', '.join(map(repr, unknown))}; choose from "
                         f"{', '.join(METRICS)}")
    hdr, hdr_gt = np.asarray(hdr, np.float64), np.asarray(hdr_gt, np.float64)
    for image, what in ((hdr, "the merged image"), (hdr_gt, "the ground truth")):
        if not np.all(np.isfinite(image)):
            raise ValueError(f"{what} holds NaN or Inf values; it cannot be scored")
    scores = {name: METRIC_TABLE[name].score(hdr, hdr_gt, display_peak) for name in names}
    broken = [name for name, value in scores.items() if np.isnan(value) or value == -np.inf]
    if broken:
        raise ValueError(f"{', '.join(broken)} came out undefined ({scores[broken[0]]}); the "
                         f"images are degenerate (e.g. the ground truth's peak is 0)")
    return scores
