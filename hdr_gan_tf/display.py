"""Pictures a person can look at: display tonemapping of HDR images and comparison panels.

The μ-law curve is what the network is trained on, but on a screen it looks flat and washed
out; a raw linear image looks almost black. Previews therefore default to Reinhard's operator
(OpenCV), with the others of `TONEMAPPERS` selectable (adding one is one entry there).
"""

import math
import typing

import cv2
import numpy as np

from hdr_gan_tf.imaging import mu_law
from hdr_gan_tf.settings import ConfigError

# Previews larger than this are reduced by a whole factor (a 24-megapixel merge gets a
# 2000x1333 preview): a screen shows no more, and the tonemappers hold several float copies.
PREVIEW_MAX_PIXELS = 4_000_000


def _opencv(operator):
    def apply(hdr):
        # OpenCV works in BGR and needs strictly positive input for its log-luminance.
        bgr = np.ascontiguousarray(hdr[..., ::-1]) + 1e-8
        return np.nan_to_num(np.clip(operator().process(bgr)[..., ::-1], 0, 1))
    return apply


def _mu_law_display(hdr):
    return np.clip(mu_law(np.minimum(hdr, 1)), 0, 1)  # the curve is defined on [0, 1]


class Tonemapper(typing.NamedTuple):
    """A display tonemapper.

    Attributes:
      name: as the programs and the page offer it.
      summary: one line for help texts.
      apply: linear HDR `[H, W, 3]` (not negative) -> display RGB in [0, 1].
      normalises: True if it maps a scaled image to the same picture (so that a preview's
        exposure must scale the displayed light instead of the HDR image).
    """
    name: str
    summary: str
    apply: typing.Callable
    normalises: bool


TONEMAPPERS = {t.name: t for t in (
    Tonemapper("reinhard", "Reinhard's global operator (OpenCV), the default",
               _opencv(lambda: cv2.createTonemapReinhard(gamma=2.2, intensity=0.0,
                                                         light_adapt=0.8, color_adapt=0.0)),
               True),
    Tonemapper("drago", "Drago's logarithmic operator (OpenCV)",
               _opencv(lambda: cv2.createTonemapDrago(gamma=2.2, saturation=1.0, bias=0.85)),
               True),
    Tonemapper("mantiuk", "Mantiuk's contrast operator (OpenCV)",
               _opencv(lambda: cv2.createTonemapMantiuk(gamma=2.2, scale=0.85, saturation=1.2)),
               True),
    Tonemapper("mu_law", "the μ-law curve the network is trained on, [0, 1] as is",
               _mu_law_display, False),
)}
DEFAULT_TONEMAPPER = "reinhard"


def check_tonemapper(method):
    """ConfigError naming `tonemap` unless `method` is one of `TONEMAPPERS`."""
    if method not in TONEMAPPERS:
        raise ConfigError(f"unknown tonemapper {method!r}; choose from "
                          f"{', '.join(TONEMAPPERS)}", field="tonemap")
    return TONEMAPPERS[method]


def tonemap_for_display(hdr, method=DEFAULT_TONEMAPPER):
    """Linear HDR `[H, W, 3]` -> display RGB in [0, 1] with the tonemapper `method`."""
    tonemapper = check_tonemapper(method)
    return tonemapper.apply(np.maximum(np.asarray(hdr, np.float32), 0))


def _mu_law(hdr):
    return mu_law(np.asarray(hdr, np.float32))


def error_map(estimate, reference, scale=0.1):
    """|μ-law difference| shown with a colour map (full colour at `scale`)."""
    diff = np.abs(_mu_law(estimate) - _mu_law(reference)).mean(axis=-1)
    grey = np.clip(diff / scale * 255, 0, 255).astype(np.uint8)
    return cv2.applyColorMap(grey, cv2.COLORMAP_INFERNO)[..., ::-1].astype(np.float32) / 255


def label(image, text):
    """`image` (float RGB in [0, 1]) with `text` written in its top left corner."""
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
    top = [label(ldr, name) for ldr, name in zip(ldrs, labels)]
    bottom = [label(_mu_law(hdr), f"{name} (mu-law)") for name, hdr in outputs.items()]
    if hdr_gt is not None:
        bottom.append(label(_mu_law(hdr_gt), "ground truth"))
        bottom.append(label(error_map(outputs["main"], hdr_gt), "|error| main"))
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


# Bar colours of a comparison chart (RGB), one per method in order, repeated past the last.
_BAR_COLOURS = ((31, 119, 180), (255, 127, 14), (44, 160, 44), (214, 39, 40), (148, 103, 189),
                (140, 86, 75), (227, 119, 194), (127, 127, 127))


def bar_chart(methods, metric):
    """A grouped bar chart `[H, W, 3]` in [0, 1]: one group per scene, one bar per method,
    of `metric` from `methods` `{name: [{"scene": ..., metric: ...}, ...]}` (every method
    over the same scenes); the axis starts a little below the lowest value so that
    differences show. Infinite values (identical images) are drawn at the top."""
    names = list(methods)
    scenes = [row["scene"] for row in methods[names[0]]]
    values = np.array([[row[metric] for row in methods[n]] for n in names], np.float64)
    finite = values[np.isfinite(values)]
    low = math.floor(finite.min() - 1) if finite.size else 0
    high = math.ceil(finite.max() + 1) if finite.size else 1
    bar, gap, left, top, plot_h = 14, 12, 60, 30 + 16 * len(names), 240
    group = bar * len(names) + gap
    width = max(left + group * len(scenes) + gap, 360)
    image = np.full((top + plot_h + 60, width, 3), 255, np.uint8)
    font, ink = cv2.FONT_HERSHEY_SIMPLEX, (0, 0, 0)

    def y_of(value):
        value = high if not np.isfinite(value) else value
        return top + plot_h - int(round((value - low) / (high - low) * plot_h))

    for tick in np.linspace(low, high, 5):
        cv2.line(image, (left - 4, y_of(tick)), (width - 4, y_of(tick)), (220, 220, 220), 1)
        cv2.putText(image, f"{tick:.1f}", (4, y_of(tick) + 4), font, 0.35, ink, 1, cv2.LINE_AA)
    for m, name in enumerate(names):
        colour = _BAR_COLOURS[m % len(_BAR_COLOURS)]
        cv2.rectangle(image, (left, 8 + 16 * m), (left + 10, 18 + 16 * m), colour, -1)
        cv2.putText(image, name, (left + 16, 18 + 16 * m), font, 0.4, ink, 1, cv2.LINE_AA)
        for s in range(len(scenes)):
            x = left + gap + s * group + m * bar
            cv2.rectangle(image, (x, y_of(values[m, s])), (x + bar - 2, top + plot_h), colour, -1)
    for s, scene in enumerate(scenes):
        x = left + gap + s * group
        cv2.putText(image, scene[:10], (x, top + plot_h + 16), font, 0.35, ink, 1, cv2.LINE_AA)
    cv2.putText(image, metric, (4, top + plot_h + 44), font, 0.45, ink, 1, cv2.LINE_AA)
    return image.astype(np.float32) / 255
