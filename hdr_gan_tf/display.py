"""Pictures a person can look at: display tonemapping of HDR images and comparison panels.

The μ-law curve is what the network is trained on, but on a screen it looks flat and washed
out; a raw linear image looks almost black. Previews therefore default to Reinhard's operator
(OpenCV), with Drago and μ-law selectable.
"""

import cv2
import numpy as np

from hdr_gan_tf.metrics import mu_law_np

TONEMAPPERS = ("reinhard", "drago", "mu_law")


def tonemap_for_display(hdr, method="reinhard"):
    """Linear HDR `[H, W, 3]` -> display RGB in [0, 1]."""
    hdr = np.maximum(np.asarray(hdr, np.float32), 0)
    if method == "mu_law":
        return mu_law_np(hdr).astype(np.float32)
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


def error_map(estimate, reference, scale=0.1):
    """|μ-law difference| shown with a colour map (full colour at `scale`)."""
    diff = np.abs(mu_law_np(estimate) - mu_law_np(reference)).mean(axis=-1)
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
    bottom = [_label(mu_law_np(hdr), f"{name} (mu-law)") for name, hdr in outputs.items()]
    if hdr_gt is not None:
        bottom.append(_label(mu_law_np(hdr_gt), "ground truth"))
        bottom.append(_label(error_map(outputs["main"], hdr_gt), "|error| main"))
    width = max(len(top), len(bottom))
    blank = np.zeros_like(top[0])
    rows = [np.concatenate(r + [blank] * (width - len(r)), axis=1) for r in (top, bottom)]
    return np.concatenate(rows, axis=0)
