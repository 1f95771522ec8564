"""Reading and writing LDR photographs and HDR images, with atomic writes.

Every writer goes through `outputs.atomic_output`, so an interrupted or failed write never
leaves a partial file or damages an earlier one.

Before any decoder sees a file, `probe` reads its first bytes and its header: the data must be
of the kind its name says (an OpenEXR file renamed `.tif` or `HDRImg.hdr` is refused, never
handed to a decoder), its size must be within a pixel limit (`MAX_PIXELS` by default), and a
PNG or JPEG must end where its format ends (OpenCV decodes a truncated one into grey with only a
warning). TIFF, PNG, JPEG and Radiance `.hdr` files are decoded by OpenCV, OpenEXR files by the
maintained `OpenEXR` package; OpenCV's own, older OpenEXR decoder stays switched off.
"""

import contextlib
import mmap
import os
import re
import struct
import tempfile
from pathlib import Path

import cv2
import numpy as np
import OpenEXR

from hdr_gan_tf.outputs import DiskFull, atomic_output, is_disk_full
from hdr_gan_tf.settings import SettingError

LDR_SUFFIXES = (".tif", ".tiff", ".png", ".jpg", ".jpeg")
HDR_SUFFIXES = (".hdr", ".exr")


class ImageError(SettingError):
    """An image file that cannot be used; the message names the file and the problem."""


def _imwrite(path, array):
    with atomic_output(path) as tmp:
        try:
            written, encoded = cv2.imencode(Path(path).suffix, array)
        except cv2.error as err:  # e.g. a suffix that names no image format
            raise ImageError(f"{path}: OpenCV could not write this file ({err.err})") from None
        if not written:
            raise ImageError(f"{path}: OpenCV could not write this file")
        tmp.write_bytes(encoded.tobytes())


# The largest image accepted by default: 2^28 pixels (a 16384 x 16384 photo; a 16-bit one
# decodes to 1.5 GB). Programs raise it with --max_pixels.
MAX_PIXELS = 2 ** 28
# Suffix -> the format its data must have.
_FORMATS = {".tif": "TIFF", ".tiff": "TIFF", ".png": "PNG", ".jpg": "JPEG", ".jpeg": "JPEG",
            ".hdr": "Radiance", ".exr": "OpenEXR"}
_MAGIC = [(b"\x76\x2f\x31\x01", "OpenEXR"), (b"#?", "Radiance"), (b"\x89PNG\r\n\x1a\n", "PNG"),
          (b"\xff\xd8\xff", "JPEG"), (b"II*\x00", "TIFF"), (b"MM\x00*", "TIFF"),
          (b"II+\x00", "TIFF"), (b"MM\x00+", "TIFF")]


def probe(path, max_pixels=MAX_PIXELS):
    """`(format, width, height)` of an image file from its first bytes and header, without
    decoding it. Raises ImageError naming the file if it is missing, of another kind than its
    name says, larger than `max_pixels`, or (PNG, JPEG) truncated."""
    path = Path(path)
    if not path.is_file():
        raise ImageError(f"{path}: file not found")
    expected = _FORMATS.get(path.suffix.lower())
    if expected is None:
        raise ImageError(f"{path}: unknown image type (expected one of "
                         f"{', '.join(sorted(_FORMATS))})")
    with open(path, "rb") as f:
        head = f.read(1 << 16)
    actual = next((kind for magic, kind in _MAGIC if head.startswith(magic)), None)
    if actual != expected:
        what = f"{actual} data" if actual else "no image data this program reads"
        raise ImageError(f"{path}: holds {what} but is named {path.suffix}; refusing to decode "
                         f"it (rename it if it is what you meant)")
    try:
        width, height = _HEADER_SIZE[actual](path, head)
    except (ValueError, IndexError, KeyError, struct.error) as err:
        raise ImageError(f"{path}: damaged {actual} header ({err})") from None
    if width <= 0 or height <= 0:
        raise ImageError(f"{path}: its header gives an empty {width}x{height} image")
    if width * height > max_pixels:
        raise ImageError(f"{path}: its header says {width}x{height} = {width * height:,} pixels, "
                         f"more than the limit of {max_pixels:,}; refusing to decode it "
                         f"({{max_pixels}} raises the limit)", mentions=["max_pixels"])
    if actual == "PNG" and not _png_complete(path):
        raise ImageError(f"{path}: truncated PNG (its chunks end before the IEND chunk)")
    if actual == "JPEG" and not _jpeg_complete(path):
        raise ImageError(f"{path}: truncated JPEG (its data ends before the end-of-image "
                         f"marker)")
    return actual, width, height


def _png_complete(path):
    """Whether a PNG's chunks, walked from the signature, reach IEND whole (data after it, as
    some programs append, is allowed). ImageError for more chunks than any encoder writes."""
    with open(path, "rb") as f, contextlib.closing(
            mmap.mmap(f.fileno(), 0, access=mmap.ACCESS_READ)) as data:
        at, size = 8, len(data)
        for _ in range(MAX_PNG_CHUNKS):
            if at + 12 > size:
                return False
            length, kind = struct.unpack_from(">I4s", data, at)
            at += 12 + length
            if kind == b"IEND":
                return at <= size
    raise ImageError(f"{path}: damaged PNG (more than {MAX_PNG_CHUNKS:,} chunks)")


# A JPEG's entropy-coded data: 0xFF is followed by 0x00 (a stuffed byte), a restart marker
# (0xD0-0xD7) or more 0xFF fill; anything else is the next marker.
_ENTROPY_MARKER = re.compile(rb"\xff(?=[\x01-\xcf\xd8-\xfe])")
_FILL = re.compile(rb"\xff+(?=[^\xff])")
# More chunks (segments outside a JPEG's scans) than any encoder writes: a file made to be
# slow to walk. A PNG of 8 KB chunks holds 8 GB; a JPEG's tables and scans number in the tens.
MAX_PNG_CHUNKS = 1 << 20
MAX_JPEG_SEGMENTS = 1 << 16


def _jpeg_complete(path):
    """Whether a JPEG's segments and scans, walked from its start, reach the end-of-image
    marker (a phone's motion-photo video or any other trailer after it is allowed).
    ImageError for more segments than any encoder writes."""
    with open(path, "rb") as f, contextlib.closing(
            mmap.mmap(f.fileno(), 0, access=mmap.ACCESS_READ)) as data:
        at, size = 2, len(data)
        for _ in range(MAX_JPEG_SEGMENTS):
            if at + 2 > size or data[at] != 0xFF:
                return False
            fill = _FILL.match(data, at)  # fill bytes before a marker
            at = fill.end() - 1 if fill else at
            if at + 2 > size:
                return False
            marker = data[at + 1]
            if marker == 0xD9:  # end of image
                return True
            if marker == 0x01 or 0xD0 <= marker <= 0xD7:  # markers without a length
                at += 2
                continue
            if at + 4 > size:
                return False
            at += 2 + struct.unpack_from(">H", data, at + 2)[0]
            if marker == 0xDA:  # start of scan: its entropy-coded data runs to a marker
                found = _ENTROPY_MARKER.search(data, at)
                if found is None:
                    return False
                at = found.start()
    raise ImageError(f"{path}: damaged JPEG (more than {MAX_JPEG_SEGMENTS:,} segments)")


def _png_size(path, head):
    return struct.unpack(">II", head[16:24])


def _jpeg_size(path, head):
    with open(path, "rb") as f:
        data = f.read(1 << 20)
    i = 2
    while i + 9 < len(data):
        if data[i] != 0xFF:
            raise ValueError("marker expected")
        marker = data[i + 1]
        if marker == 0xFF:
            i += 1
            continue
        length = struct.unpack(">H", data[i + 2:i + 4])[0]
        if 0xC0 <= marker <= 0xCF and marker not in (0xC4, 0xC8, 0xCC):
            height, width = struct.unpack(">HH", data[i + 5:i + 9])
            return width, height
        i += 2 + length
    raise ValueError("no frame header in the first megabyte")


def _tiff_size(path, head):
    order = "<" if head[:2] == b"II" else ">"
    big = struct.unpack(order + "H", head[2:4])[0] == 43
    with open(path, "rb") as f:
        if big:
            f.seek(8)
            f.seek(struct.unpack(order + "Q", f.read(8))[0])
            count = struct.unpack(order + "Q", f.read(8))[0]
            entry, value_at, fmt = 20, 12, "Q"
        else:
            f.seek(4)
            f.seek(struct.unpack(order + "I", f.read(4))[0])
            count = struct.unpack(order + "H", f.read(2))[0]
            entry, value_at, fmt = 12, 8, "I"
        table = f.read(entry * min(count, 4096))
    size = {}
    for k in range(len(table) // entry):
        tag, kind = struct.unpack(order + "HH", table[k * entry:k * entry + 4])
        if tag in (256, 257):
            raw = table[k * entry + value_at:k * entry + entry]
            code = {3: "H", 4: "I", 16: "Q"}.get(kind, fmt)
            size[tag] = struct.unpack(order + code, raw[:struct.calcsize(code)])[0]
    return size[256], size[257]


def _radiance_size(path, head):
    for line in head.split(b"\n")[1:]:
        fields = line.split()
        if len(fields) == 4 and fields[0] in (b"-Y", b"+Y") and fields[2] in (b"+X", b"-X"):
            return int(fields[3]), int(fields[1])
    raise ValueError("no resolution line")


def _exr_size(path, head):
    with open(path, "rb") as stream, _exr_errors(path):
        window = OpenEXR.File(stream, header_only=True).header()["dataWindow"]
    (x0, y0), (x1, y1) = window
    return int(x1 - x0 + 1), int(y1 - y0 + 1)


_HEADER_SIZE = {"PNG": _png_size, "JPEG": _jpeg_size, "TIFF": _tiff_size,
                "Radiance": _radiance_size, "OpenEXR": _exr_size}


@contextlib.contextmanager
def _exr_errors(path):
    try:
        yield
    except (RuntimeError, ValueError, KeyError, TypeError) as err:
        raise ImageError(f"{path}: cannot read this OpenEXR file ({err})") from None


def _decode(path, flags):
    """OpenCV's decoder on a file already `probe`d; paths that are not valid UTF-8 (which
    OpenCV cannot open by name) are read into memory first."""
    try:
        str(path).encode("utf-8")
    except UnicodeEncodeError:
        with open(path, "rb") as f:
            return cv2.imdecode(np.frombuffer(f.read(), np.uint8), flags)
    return cv2.imread(str(path), flags)


def read_ldr_raw(path, max_pixels=MAX_PIXELS):
    """Reads an 8- or 16-bit RGB photo (TIFF, PNG or JPEG) without scaling.

    Returns `(rgb, peak)`: a `[H, W, 3]` uint8/uint16 array in RGB order and 255 or 65535.
    Raises ImageError for a missing, misnamed, oversized, truncated, corrupt, grayscale or RGBA
    file.
    """
    path = Path(path)
    kind, _, _ = probe(path, max_pixels)
    if kind not in ("TIFF", "PNG", "JPEG"):
        raise ImageError(f"{path}: an {kind} image is not an LDR photo (use TIFF, PNG or JPEG)")
    image = _decode(path, cv2.IMREAD_UNCHANGED)
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


def read_ldr(path, max_pixels=MAX_PIXELS):
    """Reads an 8- or 16-bit RGB image as float32 in [0, 1]."""
    raw, peak = read_ldr_raw(path, max_pixels)
    return raw.astype(np.float32) / np.float32(peak)


def read_hdr(path, max_pixels=MAX_PIXELS):
    """Reads a Radiance `.hdr` or OpenEXR image as `[H, W, 3]` float32 RGB, checked finite and
    >= 0."""
    path = Path(path)
    kind, _, _ = probe(path, max_pixels)
    if kind == "OpenEXR":
        image = _read_exr(path)
    elif kind == "Radiance":
        image = _decode(path, cv2.IMREAD_UNCHANGED)
        if image is None:
            raise ImageError(f"{path}: cannot decode the HDR image (corrupt or truncated)")
        if image.ndim != 3 or image.shape[2] < 3:
            raise ImageError(f"{path}: HDR image must have 3 colour channels, got shape "
                             f"{image.shape}")
        image = image[..., 2::-1]
    else:
        raise ImageError(f"{path}: a {kind} image is not an HDR image (use .hdr or .exr)")
    image = np.ascontiguousarray(image).astype(np.float32)
    if not np.all(np.isfinite(image)):
        raise ImageError(f"{path}: HDR image holds NaN or Inf values")
    if np.any(image < 0):
        raise ImageError(f"{path}: HDR image holds negative values (min {float(image.min())})")
    return image


def _read_exr(path):
    with open(path, "rb") as stream, _exr_errors(path):
        channels = OpenEXR.File(stream, separate_channels=True).channels()
    # Checked outside `_exr_errors`, which would wrap this ImageError (a ValueError) again.
    if not {"R", "G", "B"} <= set(channels):
        raise ImageError(f"{path}: OpenEXR image without R, G and B channels (has "
                         f"{', '.join(sorted(channels))})")
    return np.stack([channels[c].pixels for c in "RGB"], axis=-1)


def write_hdr(path, rgb, exact=False):
    """Writes a linear RGB float image as Radiance `.hdr` or OpenEXR (ZIP compression; half
    floats, or with `exact` 32-bit floats that read back bit for bit), by the suffix,
    atomically."""
    path = Path(path)
    if path.suffix.lower() not in HDR_SUFFIXES:
        raise ImageError(f"{path}: HDR output must end in .hdr or .exr")
    if exact and path.suffix.lower() != ".exr":
        raise ImageError(f"{path}: only OpenEXR (.exr) stores 32-bit floats exactly")
    rgb = np.asarray(rgb, np.float32)
    if path.suffix.lower() == ".exr":
        with atomic_output(path) as tmp:
            header = {"compression": OpenEXR.ZIP_COMPRESSION, "type": OpenEXR.scanlineimage}
            stored = np.float32 if exact else np.float16
            channels = {c: np.ascontiguousarray(rgb[..., i].astype(stored))
                        for i, c in enumerate("RGB")}
            try:
                OpenEXR.File(header, channels).write(str(tmp))
            except (RuntimeError, ValueError, TypeError) as err:
                if is_disk_full(err):
                    raise DiskFull(path) from None
                raise ImageError(f"{path}: could not write this OpenEXR file ({err})") from None
        return
    _imwrite(path, np.ascontiguousarray(rgb[..., ::-1]))


def write_ldr(path, rgb, bit_depth=8):
    """Writes RGB values in [0, 1] as an 8- or 16-bit PNG/TIFF, atomically."""
    peak = 255 if bit_depth == 8 else 65535
    dtype = np.uint8 if bit_depth == 8 else np.uint16
    data = np.round(np.clip(np.asarray(rgb, np.float32), 0, 1) * peak).astype(dtype)
    _imwrite(path, np.ascontiguousarray(data[..., ::-1]))


def write_float_tiff(path, rgb):
    """Writes linear RGB as a 32-bit float TIFF (values as they are), atomically."""
    _imwrite(path, np.ascontiguousarray(np.asarray(rgb, np.float32)[..., ::-1]))


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
    header = f"#?RADIANCE\nFORMAT=32-bit_rle_rgbe\n\n-Y {height} +X {width}\n".encode("ascii")
    with _rows_to_file(path, height, width, header,
                       lambda rgb, first: rgbe_pixels(np.maximum(rgb, 0)).tobytes()) as write:
        yield write


@contextlib.contextmanager
def _rows_to_file(path, height, width, header, encode):
    """The streamed writers' common part: `header`, then each band of rows as
    `encode(rows, index of its first row)` stores it; the file appears at `path` (atomically)
    only when all `height` rows have come."""
    written = 0

    def write(rgb):
        nonlocal written
        rgb = np.asarray(rgb)
        if rgb.ndim != 3 or rgb.shape[1:] != (width, 3) or written + len(rgb) > height:
            raise ImageError(f"{path}: rows of shape {rgb.shape} do not fit a {width}x{height} "
                             f"image with {written} rows written")
        stream.write(encode(rgb, written))
        written += len(rgb)

    with atomic_output(path) as tmp:
        with open(tmp, "wb") as stream:
            stream.write(header)
            yield write
        if written != height:
            raise ImageError(f"{path}: only {written} of {height} rows were written")


@contextlib.contextmanager
def exr_rows(path, height, width):
    """Writes an OpenEXR file a band of rows at a time, top to bottom, atomically.

    Yields `write(rgb)` taking `[n, width, 3]` linear RGB rows, stored as half floats in
    uncompressed scanlines: every scanline's place in the file is known in advance, so the
    header and line-offset table are written first and each band is appended as it comes.
    The maintained OpenEXR library reads the result; it appears at `path` only when all
    `height` rows have been written.
    """
    path = Path(path)
    if path.suffix.lower() != ".exr":
        raise ImageError(f"{path}: an OpenEXR file must end in .exr")

    def attribute(name, kind, value):
        return name.encode() + b"\0" + kind.encode() + b"\0" + struct.pack("<i", len(value)) + value

    channels = b"".join(c.encode() + b"\0" + struct.pack("<iB3xii", 1, 0, 1, 1) for c in "BGR")
    window = struct.pack("<4i", 0, 0, width - 1, height - 1)
    header = (b"\x76\x2f\x31\x01" + struct.pack("<I", 2)
              + attribute("channels", "chlist", channels + b"\0")
              + attribute("compression", "compression", b"\0")  # NO_COMPRESSION
              + attribute("dataWindow", "box2i", window)
              + attribute("displayWindow", "box2i", window)
              + attribute("lineOrder", "lineOrder", b"\0")  # INCREASING_Y
              + attribute("pixelAspectRatio", "float", struct.pack("<f", 1.0))
              + attribute("screenWindowCenter", "v2f", struct.pack("<2f", 0.0, 0.0))
              + attribute("screenWindowWidth", "float", struct.pack("<f", 1.0)) + b"\0")
    line_bytes = 3 * width * 2  # B, G, R planes of half floats
    first = len(header) + 8 * height
    offsets = np.arange(height, dtype="<u8") * (8 + line_bytes) + first

    def encode(rgb, first_row):
        lines = np.empty((len(rgb), 8 + line_bytes), np.uint8)
        lines[:, :8] = np.stack([np.arange(first_row, first_row + len(rgb), dtype="<i4"),
                                 np.full(len(rgb), line_bytes, "<i4")], 1).view(np.uint8)
        planes = np.ascontiguousarray(rgb[..., ::-1].astype("<f2").transpose(0, 2, 1))
        lines[:, 8:] = planes.reshape(len(rgb), -1).view(np.uint8)
        return lines.tobytes()

    with _rows_to_file(path, height, width, header + offsets.tobytes(), encode) as write:
        yield write


class SpooledImages:
    """Images of one size and sample type kept in a temporary file, read back by bands of rows.

    For photos too large to hold at once: `append` one image at a time, then `rows(first, last)`
    returns `[count, last - first, W, C]`. Reads are plain file reads into fresh arrays rather
    than `np.memmap` views, whose pages would stay in the process's resident memory. The file has
    no name and disappears when closed (`close`, a `with` block, or garbage collection).
    """

    def __init__(self, directory=None):
        self.directory = directory or tempfile.gettempdir()
        try:
            self._file = tempfile.TemporaryFile(dir=self.directory)
        except OSError as err:
            self._disk_full(err)
            raise
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
        try:
            self._file.write(image.data)
            self._file.flush()
        except OSError as err:
            self._disk_full(err)
            raise
        self.count += 1

    def _disk_full(self, err):
        """DiskFull naming the spool's folder for a full disk there."""
        if is_disk_full(err):
            raise DiskFull(f"{self.directory}/<the photos' temporary spool file>",
                           "the photos of a tiled merge are kept there") from None

    def rows(self, first, last, images=None):
        """Rows `first .. last - 1` of every image, or of those whose indices `images` lists."""
        height, width = self.image_shape[:2]
        first, last = max(first, 0), min(last, height)
        images = range(self.count) if images is None else list(images)
        row_bytes = width * int(np.prod(self.image_shape[2:])) * self.dtype.itemsize
        out = np.empty((len(images), last - first) + tuple(self.image_shape[1:]), self.dtype)
        for k, i in enumerate(images):
            self._file.seek((i * height + first) * row_bytes)
            if self._file.readinto(out[k].data) != out[k].nbytes:
                raise OSError("spool file ended early")
        return out

    def close(self):
        self._file.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()
