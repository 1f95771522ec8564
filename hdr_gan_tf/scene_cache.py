"""Where decoded training scenes are kept when a data set is larger than the memory at hand:
a cache on disk, decoded once per scene and read back a crop at a time (`DiskScene`), and the
measure `open_split(cache="auto")` decides by (`decoded_size`; the memory available is
`memory.available_memory`).
"""

import hashlib
import json
import os
from pathlib import Path

import numpy as np

from hdr_gan_tf.layouts import (DataError, Scene, check_patch_fits, layout_of, load_scene,
                                scene_sources)
from hdr_gan_tf.image_io import MAX_PIXELS, ImageError, probe
from hdr_gan_tf.outputs import atomic_output

CACHE_MODES = ("auto", "memory", "disk")
# `cache="auto"` keeps a split in memory while its decoded size stays under this share of the
# memory available to the process (what is left serves TensorFlow and the networks).
AUTO_MEMORY_SHARE = 0.5
CACHE_VERSION = 1



def decoded_size(scene_dirs, ldr_bits=16, max_pixels=MAX_PIXELS):
    """Bytes the scenes take once decoded, from their image headers alone (16-bit LDRs unless
    `ldr_bits=8`; 4 bytes per ground-truth sample). Damaged headers count as nothing here:
    decoding reports them."""
    total = 0
    for folder in scene_dirs:
        try:
            layout = layout_of(folder)
            ldr_paths, _, ground_truth = layout.files(folder)
        except DataError:  # reported when the scene is decoded
            continue
        ldr_size = layout.ldr_bytes(ldr_bits)
        for path, size in [(p, ldr_size) for p in ldr_paths] + [(ground_truth, 4)]:
            try:
                _, width, height = probe(path, max_pixels)
                total += width * height * 3 * size
            except (ImageError, OSError):
                pass
    return total


class DiskScene:
    """A scene decoded once into a cache file and read from it a window at a time.

    The file holds the LDRs `[3, H, W, 3]` (uint8 or uint16) followed by the ground truth
    `[H, W, 3]` float32, raw and row-major; a JSON file beside it records the shapes and what
    the scene was decoded from (paths, sizes, modification times, `ldr_bits`), so that a
    changed scene is decoded again. `window` reads one crop's rows with `os.preadv` straight
    into its result: no mapping of the file, so the process's memory holds only the crops in
    flight, however large the data set. `ldrs`, `hdr` and `ldr_float()` read the whole scene
    (validation and testing), as `Scene` holds it.
    """

    def __init__(self, name, path, ldr_paths, peak, exposure_bias, shape, file, decoded=False):
        self.name, self.path, self.ldr_paths = name, Path(path), list(ldr_paths)
        self.decoded = decoded  # whether opening it decoded the scene (False: the cache had it)
        self.peak, self.exposure_bias = int(peak), np.asarray(exposure_bias, np.float32)
        self.shape, self.file = tuple(shape), Path(file)
        self._ldr_dtype = np.dtype(np.uint8 if self.peak == 255 else np.uint16)
        self._fd = os.open(self.file, os.O_RDONLY)
        height, width = self.shape
        self._hdr_offset = 3 * height * width * 3 * self._ldr_dtype.itemsize

    def __del__(self):
        if getattr(self, "_fd", None) is not None:
            os.close(self._fd)
            self._fd = None

    @staticmethod
    def cache_key(path, ldr_bits):
        """What identifies a decoded scene: its files' paths, sizes and modification times."""
        path = Path(path).resolve()
        entries = [[str(p), p.stat().st_size, p.stat().st_mtime_ns]
                   for p in scene_sources(path) if p.is_file()]
        return {"version": CACHE_VERSION, "scene": str(path), "ldr_bits": ldr_bits,
                "files": entries}

    @classmethod
    def open(cls, path, name, cache_dir, min_size=0, ldr_bits=16, max_pixels=MAX_PIXELS):
        """The cached scene of folder `path`, decoding it (`load_scene`) into `cache_dir` first
        unless an up-to-date copy is there."""
        key = cls.cache_key(path, ldr_bits)
        stem = hashlib.sha256(json.dumps(key, sort_keys=True).encode()).hexdigest()[:32]
        meta_path, data_path = Path(cache_dir) / f"{stem}.json", Path(cache_dir) / f"{stem}.bin"
        meta, decoded = None, False
        if meta_path.is_file() and data_path.is_file():
            try:
                meta = json.loads(meta_path.read_text())
            except (OSError, ValueError):
                meta = None
        if not meta or meta.get("key") != key or data_path.stat().st_size != meta.get("bytes"):
            scene, decoded = load_scene(path, name, min_size, ldr_bits, max_pixels), True
            meta = {"key": key, "name": name, "ldr_paths": [str(p) for p in scene.ldr_paths],
                    "peak": scene.peak, "exposure_bias": scene.exposure_bias.tolist(),
                    "shape": list(scene.shape), "bytes": scene.ldrs.nbytes + scene.hdr.nbytes}
            with atomic_output(data_path) as tmp, open(tmp, "wb") as f:
                f.write(np.ascontiguousarray(scene.ldrs).data)
                f.write(np.ascontiguousarray(scene.hdr, np.float32).data)
            del scene
            with atomic_output(meta_path) as tmp:
                Path(tmp).write_text(json.dumps(meta))
        check_patch_fits(name, meta["shape"], min_size)
        return cls(name, path, [Path(p) for p in meta["ldr_paths"]], meta["peak"],
                   meta["exposure_bias"], meta["shape"], data_path, decoded)

    def _pread_into(self, buffer, offset):
        """Fills the byte view `buffer` from the cache file at `offset`."""
        if os.preadv(self._fd, [buffer], offset) != len(buffer):
            raise DataError(f"scene '{self.name}': cache file {self.file} is truncated")

    def _read(self, offset, shape, dtype):
        out = np.empty(shape, dtype)
        self._pread_into(memoryview(out).cast("B"), offset)
        return out

    def _read_rows(self, offset, dtype, top, left, size):
        """`[size, size, 3]` of a row-major `[H, W, 3]` array starting at byte `offset`."""
        width, itemsize = self.shape[1], np.dtype(dtype).itemsize
        out = np.empty((size, size, 3), dtype)
        rows = memoryview(out).cast("B")
        row_bytes = size * 3 * itemsize
        for r in range(size):
            self._pread_into(rows[r * row_bytes:(r + 1) * row_bytes],
                             offset + ((top + r) * width + left) * 3 * itemsize)
        return out

    def window(self, top, left, size):
        """As `Scene.window`, read from the cache file."""
        height, width = self.shape
        plane = height * width * 3 * self._ldr_dtype.itemsize
        ldrs = [self._read_rows(k * plane, self._ldr_dtype, top, left, size)
                for k in range(3)]
        ldrs = np.concatenate(ldrs, axis=-1).astype(np.float32) / np.float32(self.peak)
        return ldrs, self._read_rows(self._hdr_offset, np.float32, top, left, size)

    @property
    def ldrs(self):
        return self._read(0, (3,) + self.shape + (3,), self._ldr_dtype)

    @property
    def hdr(self):
        return self._read(self._hdr_offset, self.shape + (3,), np.float32)

    ldr_float = Scene.ldr_float
