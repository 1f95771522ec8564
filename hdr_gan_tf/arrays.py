"""Low-level helpers on brackets held as arrays, shared by the tiler, the mergers and the
alignment (it imports nothing of ours)."""

import contextlib

import numpy as np

# Reflect padding needs a pixel to reflect: the smallest side a merge takes.
MIN_SIDE = 2


def as_unit_float(window):
    """An LDR window as float32 in [0, 1]: floats as they are, 8-/16-bit integers scaled."""
    if window.dtype == np.uint8:
        return window.astype(np.float32) / np.float32(255)
    if window.dtype == np.uint16:
        return window.astype(np.float32) / np.float32(65535)
    return window.astype(np.float32, copy=False)


def row_reader(ldrs):
    """`(shape, read)` of a bracket given as an array (or array-like) or a `SpooledImages`:
    `read(first, last)` returns rows `first .. last - 1`, `[3, last - first, W, 3]`."""
    if hasattr(ldrs, "rows"):
        return ldrs.shape, ldrs.rows
    ldrs = np.asarray(ldrs)
    return ldrs.shape, lambda first, last: ldrs[:, first:last]


@contextlib.contextmanager
def gathered_rows(where, height, width, dtype=np.float32, convert=None):
    """Yields `(write, image)`: `write(rows)` puts successive bands of `[n, width, 3]` rows
    (through `convert` if given) into `image`, `[height, width, 3]` of `dtype`, top to bottom.
    ValueError naming `where` if rows are missing when the context ends."""
    image, done = np.empty((height, width, 3), dtype), [0]

    def write(rows):
        image[done[0]:done[0] + len(rows)] = convert(rows) if convert else rows
        done[0] += len(rows)

    yield write, image
    if done[0] != height:
        raise ValueError(f"{where}: {height - done[0]} rows missing")
