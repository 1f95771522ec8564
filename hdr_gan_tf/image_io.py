"""Reading and writing LDR photographs and HDR images, with atomic writes.

Every writer goes through `atomic_output`: the data land in a temporary file beside the target
and are renamed onto it only when complete, so an interrupted or failed write never leaves a
partial file or damages an earlier one.
"""

import contextlib
import os
import shutil
import tempfile
from pathlib import Path

import cv2
import numpy as np

LDR_SUFFIXES = (".tif", ".tiff", ".png", ".jpg", ".jpeg")
HDR_SUFFIXES = (".hdr", ".exr")


class ImageError(ValueError):
    """An image file that cannot be used; the message names the file and the problem."""


@contextlib.contextmanager
def atomic_output(path):
    """Yields a temporary path beside `path` (same suffix); renames it onto `path` on success."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.stem}.", suffix=path.suffix, dir=path.parent)
    os.close(fd)
    try:
        yield Path(tmp)
        # mkstemp makes the file private; give it the permissions of a normally created file.
        umask = os.umask(0)
        os.umask(umask)
        os.chmod(tmp, 0o666 & ~umask)
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise


@contextlib.contextmanager
def atomic_directory(path, replace=False):
    """Yields a temporary folder beside `path`; renames it onto `path` when the block succeeds.

    An existing `path` is removed first only if `replace`; a failed block leaves nothing behind.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{path.name}.", dir=path.parent))
    try:
        yield tmp
        if path.exists():
            if not replace and any(path.iterdir()):
                raise FileExistsError(f"{path}: exists and is not empty")
            shutil.rmtree(path)
        tmp.rename(path)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise


def refuse_existing(path, overwrite):
    """Refuses an existing output unless `overwrite` (checked before any work starts)."""
    if os.path.exists(path) and not overwrite:
        raise FileExistsError(f"{path}: output exists; pass --overwrite to replace it")


def write_text(path, text):
    with atomic_output(path) as tmp:
        tmp.write_text(text)


def _imwrite(path, array):
    with atomic_output(path) as tmp:
        try:
            written = cv2.imwrite(str(tmp), array)
        except cv2.error as err:  # e.g. a suffix that names no image format
            raise ImageError(f"{path}: OpenCV could not write this file ({err.err})") from None
        if not written:
            raise ImageError(f"{path}: OpenCV could not write this file")


def read_ldr_raw(path):
    """Reads an 8- or 16-bit RGB image without scaling.

    Returns `(rgb, peak)`: a `[H, W, 3]` uint8/uint16 array in RGB order and 255 or 65535.
    Raises ImageError for a missing, unreadable, corrupt, grayscale or RGBA file.
    """
    path = Path(path)
    if not path.is_file():
        raise ImageError(f"{path}: file not found")
    image = cv2.imread(str(path), cv2.IMREAD_UNCHANGED)
    if image is None:
        raise ImageError(f"{path}: cannot decode the image (corrupt, truncated or not an image)")
    if image.ndim == 2 or (image.ndim == 3 and image.shape[2] == 1):
        raise ImageError(f"{path}: grayscale image; an RGB image with 3 channels is needed")
    if image.ndim != 3 or image.shape[2] != 3:
        channels = image.shape[2] if image.ndim == 3 else image.ndim
        kind = "RGBA image" if channels == 4 else f"image with {channels} channels"
        raise ImageError(f"{path}: {kind}; an RGB image with 3 channels is needed")
    if image.dtype == np.uint8:
        peak = 255
    elif image.dtype == np.uint16:
        peak = 65535
    else:
        raise ImageError(f"{path}: unsupported sample type {image.dtype}; use 8- or 16-bit")
    return np.ascontiguousarray(image[..., ::-1]), peak


def read_ldr(path):
    """Reads an 8- or 16-bit RGB image as float32 in [0, 1]."""
    raw, peak = read_ldr_raw(path)
    return raw.astype(np.float32) / np.float32(peak)


def read_hdr(path):
    """Reads a Radiance `.hdr` or OpenEXR image as `[H, W, 3]` float32 RGB, checked finite and
    >= 0."""
    path = Path(path)
    if not path.is_file():
        raise ImageError(f"{path}: file not found")
    image = cv2.imread(str(path), cv2.IMREAD_UNCHANGED)
    if image is None:
        raise ImageError(f"{path}: cannot decode the HDR image (corrupt, truncated or not HDR)")
    if image.ndim != 3 or image.shape[2] < 3:
        raise ImageError(f"{path}: HDR image must have 3 colour channels, got shape {image.shape}")
    image = np.ascontiguousarray(image[..., 2::-1]).astype(np.float32)
    if not np.all(np.isfinite(image)):
        raise ImageError(f"{path}: HDR image holds NaN or Inf values")
    if np.any(image < 0):
        raise ImageError(f"{path}: HDR image holds negative values (min {float(image.min())})")
    return image


def write_hdr(path, rgb):
    """Writes a linear RGB float image as Radiance `.hdr` or OpenEXR (by the suffix), atomically."""
    path = Path(path)
    if path.suffix.lower() not in HDR_SUFFIXES:
        raise ImageError(f"{path}: HDR output must end in .hdr or .exr")
    _imwrite(path, np.ascontiguousarray(np.asarray(rgb, np.float32)[..., ::-1]))


def write_ldr(path, rgb, bit_depth=8):
    """Writes RGB values in [0, 1] as an 8- or 16-bit PNG/TIFF, atomically."""
    peak = 255 if bit_depth == 8 else 65535
    dtype = np.uint8 if bit_depth == 8 else np.uint16
    data = np.round(np.clip(np.asarray(rgb, np.float32), 0, 1) * peak).astype(dtype)
    _imwrite(path, np.ascontiguousarray(data[..., ::-1]))


def rgbe_pixels(rgb):
    """Linear RGB `[..., 3]` (>= 0) -> Radiance RGBE bytes `[..., 4]`, as Radiance encodes them.

    The largest component `v = m * 2**e` (`m` in [0.5, 1)) sets the shared exponent `e + 128`;
    each component is stored as `floor(c * 256 * m / v)`. Values below 1e-32 are stored as 0.
    """
    rgb = np.asarray(rgb, np.float32)
    peak = rgb.max(axis=-1)
    mantissa, exponent = np.frexp(peak)
    visible = peak > 1e-32
    scale = np.where(visible, mantissa * 256 / np.where(visible, peak, 1), 0).astype(np.float32)
    rgbe = np.empty(rgb.shape[:-1] + (4,), np.uint8)
    rgbe[..., :3] = np.minimum(rgb * scale[..., None], 255)
    rgbe[..., 3] = np.where(visible, exponent + 128, 0)
    return rgbe


@contextlib.contextmanager
def radiance_rows(path, height, width):
    """Writes a Radiance `.hdr` a band of rows at a time, top to bottom, atomically.

    Yields `write(rgb)` taking `[n, width, 3]` linear RGB rows. Scanlines are stored flat (not
    run-length encoded), which every Radiance reader accepts; OpenCV can only write a whole image
    at once. The file appears at `path` only when all `height` rows have been written.
    """
    path = Path(path)
    if path.suffix.lower() != ".hdr":
        raise ImageError(f"{path}: a Radiance file must end in .hdr")
    written = 0

    def write(rgb):
        nonlocal written
        rgb = np.asarray(rgb)
        if rgb.ndim != 3 or rgb.shape[1:] != (width, 3) or written + len(rgb) > height:
            raise ImageError(f"{path}: rows of shape {rgb.shape} do not fit a {width}x{height} "
                             f"image with {written} rows written")
        stream.write(rgbe_pixels(np.maximum(rgb, 0)).tobytes())
        written += len(rgb)

    with atomic_output(path) as tmp:
        with open(tmp, "wb") as stream:
            stream.write(f"#?RADIANCE\nFORMAT=32-bit_rle_rgbe\n\n-Y {height} +X {width}\n"
                         .encode("ascii"))
            yield write
        if written != height:
            raise ImageError(f"{path}: only {written} of {height} rows were written")


class SpooledImages:
    """Images of one size and sample type kept in a temporary file, read back by bands of rows.

    For photos too large to hold at once: `append` one image at a time, then `rows(first, last)`
    returns `[count, last - first, W, C]`. Reads are plain file reads into fresh arrays rather
    than `np.memmap` views, whose pages would stay in the process's resident memory. The file has
    no name and disappears when closed (`close`, a `with` block, or garbage collection).
    """

    def __init__(self, directory=None):
        self._file = tempfile.TemporaryFile(dir=directory)
        self.count = 0
        self.image_shape = None
        self.dtype = None

    @property
    def shape(self):
        return (self.count,) + tuple(self.image_shape or ())

    def append(self, image, name="image"):
        image = np.ascontiguousarray(image)
        if self.image_shape is None:
            self.image_shape, self.dtype = image.shape, image.dtype
        elif image.shape != self.image_shape or image.dtype != self.dtype:
            raise ImageError(f"{name}: {image.shape} {image.dtype} does not match the earlier "
                             f"images' {self.image_shape} {self.dtype}")
        self._file.seek(0, os.SEEK_END)
        self._file.write(image.data)
        self.count += 1

    def rows(self, first, last):
        height, width = self.image_shape[:2]
        first, last = max(first, 0), min(last, height)
        row_bytes = width * int(np.prod(self.image_shape[2:])) * self.dtype.itemsize
        out = np.empty((self.count, last - first) + tuple(self.image_shape[1:]), self.dtype)
        for i in range(self.count):
            self._file.seek((i * height + first) * row_bytes)
            if self._file.readinto(out[i].data) != out[i].nbytes:
                raise OSError("spool file ended early")
        return out

    def close(self):
        self._file.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()
