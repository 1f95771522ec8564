"""The paper's metrics (docs/design.md §7): PSNR and SSIM in the linear and μ-law domains.

Images are float arrays `[H, W, 3]` in [0, 1] (NumPy). SSIM follows Wang et al. (Gaussian
window 11, σ 1.5, K1 0.01, K2 0.03, data range 1) over the window positions that fit inside the
image, as `tf.image.ssim` does, averaged over the three channels.
"""

import cv2
import numpy as np

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


METRICS = ("psnr_mu", "psnr_l", "ssim_mu", "ssim_l")


def hdr_metrics(hdr, hdr_gt, names=METRICS):
    """PSNR-μ, PSNR-L, SSIM-μ, SSIM-L (or those of `names`) of a linear HDR estimate against
    the ground truth. The μ-law of the metrics is the paper's, μ = 5000, whatever μ a model
    was trained with, so that scores stay comparable."""
    hdr, hdr_gt = np.asarray(hdr, np.float64), np.asarray(hdr_gt, np.float64)
    tonemapped = {}

    def domain(name):
        if name.endswith("_l"):
            return hdr, hdr_gt
        if not tonemapped:
            tonemapped.update(est=mu_law(hdr, MU), gt=mu_law(hdr_gt, MU))
        return tonemapped["est"], tonemapped["gt"]

    return {name: (psnr if name.startswith("psnr") else ssim)(*domain(name)) for name in names}
