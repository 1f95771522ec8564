"""Pictures a person can look at: display tonemapping of HDR images and comparison panels.

The μ-law curve is what the network is trained on, but on a screen it looks flat and washed
out; a raw linear image looks almost black. Previews therefore default to Reinhard's operator
(OpenCV), with Drago and μ-law selectable.
"""

import math

import cv2
import numpy as np

from hdr_gan_tf.imaging import mu_law

TONEMAPPERS = ("reinhard", "drago", "mu_law")

# Previews larger than this are reduced by a whole factor (a 24-megapixel merge gets a
# 2000x1333 preview): a screen shows no more, and the tonemappers hold several float copies.
PREVIEW_MAX_PIXELS = 4_000_000


def tonemap_for_display(hdr, method="reinhard"):
    """Linear HDR `[H, W, 3]` -> display RGB in [0, 1]."""
    hdr = np.maximum(np.asarray(hdr, np.float32), 0)
    if method == "mu_law":  # the curve is defined on [0, 1]
        return np.clip(mu_law(np.minimum(hdr, 1)), 0, 1)
    if method == "reinhard":
        operator = cv2.createTonemapReinhard(gamma=2.2, intensity=0.0, light_adapt=0.8,
                                             color_adapt=0.0)
    elif method == "drago":
        operator = cv2.createTonemapDrago(gamma=2.2, saturation=1.0, bias=0.85)
    else:
        raise ValueError(f"unknown tonemapper {method!r}; choose from {', '.join(TONEMAPPERS)}")
    # OpenCV works in BGR and needs strictly positive input for its log-luminance.
    bgr = np.ascontiguousarray(hdr[..., ::-1]) + 1e-8
    out = operator.process(bgr)
    return np.nan_to_num(np.clip(out[..., ::-1], 0, 1))


def _mu_law(hdr):
    return mu_law(np.asarray(hdr, np.float32))


def error_map(estimate, reference, scale=0.1):
    """|μ-law difference| shown with a colour map (full colour at `scale`)."""
    diff = np.abs(_mu_law(estimate) - _mu_law(reference)).mean(axis=-1)
    grey = np.clip(diff / scale * 255, 0, 255).astype(np.uint8)
    return cv2.applyColorMap(grey, cv2.COLORMAP_INFERNO)[..., ::-1].astype(np.float32) / 255


def _label(image, text):
    out = np.ascontiguousarray((np.clip(image, 0, 1) * 255).astype(np.uint8))
    scale = max(out.shape[1] / 640, 0.4)
    cv2.putText(out, text, (6, int(22 * scale) + 4), cv2.FONT_HERSHEY_SIMPLEX, scale,
                (255, 255, 255), max(1, int(2 * scale)), cv2.LINE_AA)
    return out.astype(np.float32) / 255


def comparison_panel(ldrs, outputs, hdr_gt=None, labels=("short", "reference", "long")):
    """Two rows: the three LDR inputs; each branch (μ-law), the ground truth and an error map.

    Args:
      ldrs: `[3, H, W, 3]` LDRs in [0, 1].
      outputs: dict branch name -> linear HDR.
      hdr_gt: linear ground truth or None.
    """
    top = [_label(ldr, name) for ldr, name in zip(ldrs, labels)]
    bottom = [_label(_mu_law(hdr), f"{name} (mu-law)") for name, hdr in outputs.items()]
    if hdr_gt is not None:
        bottom.append(_label(_mu_law(hdr_gt), "ground truth"))
        bottom.append(_label(error_map(outputs["main"], hdr_gt), "|error| main"))
    width = max(len(top), len(bottom))
    blank = np.zeros_like(top[0])
    rows = [np.concatenate(r + [blank] * (width - len(r)), axis=1) for r in (top, bottom)]
    return np.concatenate(rows, axis=0)


class PreviewImage:
    """Collects an HDR image band by band, top to bottom, reduced to at most `max_pixels`.

    The image is shrunk by the smallest whole factor `f` that fits, averaging each `f x f`
    block (OpenCV's area interpolation), so only the reduced copy is ever held. `add(rows)` takes
    `[n, width, 3]`; `image()` returns the reduced `[ceil(H / f), round(W / f), 3]` float32.
    """

    def __init__(self, height, width, max_pixels=PREVIEW_MAX_PIXELS):
        self.height, self.width = height, width
        self.factor = max(1, math.ceil(math.sqrt(height * width / max_pixels)))
        self.size = (max(1, round(width / self.factor)), -(-height // self.factor))  # (w, h)
        self._image = np.empty((self.size[1], self.size[0], 3), np.float32)
        self._filled = 0  # reduced rows done
        self._carry = np.empty((0, width, 3), np.float32)  # input rows of an unfinished block

    def add(self, rows):
        rows = np.asarray(rows, np.float32)
        if self.factor == 1:
            self._image[self._filled:self._filled + len(rows)] = rows
            self._filled += len(rows)
            return
        rows = np.concatenate([self._carry, rows]) if len(self._carry) else rows
        blocks = len(rows) // self.factor
        if blocks:
            self._reduce(rows[:blocks * self.factor], blocks)
        self._carry = rows[blocks * self.factor:].copy()

    def _reduce(self, rows, count):
        reduced = cv2.resize(rows, (self.size[0], count), interpolation=cv2.INTER_AREA)
        self._image[self._filled:self._filled + count] = reduced.reshape(count, self.size[0], 3)
        self._filled += count

    def image(self):
        """The reduced image (the last, partial block of rows averaged as it is)."""
        if len(self._carry):
            self._reduce(self._carry, 1)
            self._carry = self._carry[:0]
        if self._filled != self.size[1]:
            raise ValueError(f"preview has {self._filled} of {self.size[1]} rows; rows missing")
        return self._image
