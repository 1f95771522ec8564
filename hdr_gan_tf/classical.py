"""Classical merges to set beside the network's: Debevec & Malik's radiance merge (SIGGRAPH
1997) from the known response of the photos, and Mertens, Kautz & Van Reeth's exposure fusion
(Pacific Graphics 2007), which makes a picture to look at rather than radiance.

The response is the one the network assumes (docs/design.md §1): a photo `I` of exposure time
`t` records radiance `H = I ** γ / t`, γ = 2.2, times relative to the shortest exposure. Each
pixel's radiance is the weighted mean of the three photos' estimates, weighted by Debevec's
hat `w(I) = 1 - |2I - 1|` per channel, so that nearly black and nearly clipped values count
least; where every photo is clipped (or black) the short (or long) photo's value stands. The
result is linear HDR on the network's scale, [0, 1] relative to the shortest exposure.
"""

import cv2
import numpy as np

from hdr_gan_tf.imaging import GAMMA
from hdr_gan_tf.arrays import as_unit_float, row_reader
from hdr_gan_tf.merge import Merger

# Rows a banded (streamed) classical merge yields at a time; it is per pixel, so any will do.
BAND_ROWS = 256


def debevec_merge(ldrs, exposure_bias, gamma=GAMMA):
    """Linear HDR `[H, W, 3]` float32 from three photos `[3, H, W, 3]` (float in [0, 1], or
    uint8 / uint16) of EVs `exposure_bias` (short, reference, long)."""
    ldrs = np.asarray(as_unit_float(ldrs), np.float32)
    ev = np.asarray(exposure_bias, np.float32)
    times = 2.0 ** (ev - ev.min())
    weights = 1.0 - np.abs(2.0 * ldrs - 1.0)
    radiance = ldrs ** np.float32(gamma) / times[:, None, None, None]
    total = weights.sum(axis=0)
    merged = (weights * radiance).sum(axis=0) / np.maximum(total, np.float32(1e-8))
    # No photo holds a usable value: clipped ones take the short photo's, dark ones the long's.
    unweighted = total <= 0
    clipped = ldrs[1] >= 0.5
    merged[unweighted & clipped] = radiance[0][unweighted & clipped]
    merged[unweighted & ~clipped] = radiance[2][unweighted & ~clipped]
    return np.clip(merged, 0.0, 1.0).astype(np.float32)


class DebevecMerger(Merger):
    """`debevec_merge` as a `Merger` with the one branch `"main"`; it streams in bands of
    `band_rows` rows (tiles do not change a per-pixel merge)."""
    streams = True
    tile_kind = "classical"

    def __init__(self, options, band_rows=BAND_ROWS):
        super().__init__(options, ["main"], "Debevec's radiance merge")
        self.band_rows = band_rows

    def __call__(self, ldrs, exposure_bias, progress=None, wanted=None, decided=None):
        shape, read = row_reader(ldrs)
        return {"main": debevec_merge(read(0, shape[1]), exposure_bias)}

    def bands(self, ldrs, exposure_bias, progress=None, wanted=None, decided=None):
        shape, read = row_reader(ldrs)
        starts = range(0, shape[1], self.band_rows)
        for done, first in enumerate(starts, start=1):
            last = min(first + self.band_rows, shape[1])
            yield first, {"main": debevec_merge(read(first, last), exposure_bias)}
            if progress:
                progress(done, len(starts))


def mertens_fusion(ldrs):
    """Exposure fusion of three photos `[3, H, W, 3]` as OpenCV's `MergeMertens` computes it
    (contrast, saturation and well-exposedness weights, blended in Laplacian pyramids): a
    display-referred `[H, W, 3]` float32 image in [0, 1], not radiance."""
    ldrs = np.asarray(as_unit_float(ldrs), np.float32)
    # OpenCV scales its inputs by 1/255 whatever their type: give it 8-bit-scaled floats.
    fused = cv2.createMergeMertens().process([np.ascontiguousarray(photo * np.float32(255))
                                              for photo in ldrs])
    return np.clip(fused, 0.0, 1.0).astype(np.float32)


class MertensMerger(Merger):
    """`mertens_fusion` as a display-referred `Merger` (branch `"main"`): the programs show it
    as the preview and write no HDR file. Fusion blends whole pyramids, so it does not stream;
    `hdr-gan-infer` fuses a copy reduced to the preview's size instead."""
    display_referred = True
    tile_kind = "fusion"

    def __init__(self, options):
        super().__init__(options, ["main"], "Mertens' exposure fusion (display-referred)")

    def __call__(self, ldrs, exposure_bias, progress=None, wanted=None, decided=None):
        shape, read = row_reader(ldrs)
        return {"main": mertens_fusion(read(0, shape[1]))}
