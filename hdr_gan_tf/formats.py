"""The formats a merge is written in, one table: each with its suffix, its whole-image writer
and its writer of bands of rows (a streamed merge), and what it holds.

`FORMATS` is the one place a format is added: `hdr-gan-infer`'s `--output` (chosen by suffix)
and `--formats`, batch mode and the web page take their formats from it. Writers take the
merge's `hdr_photos.Rendering` (which radiance is white, how much headroom); the radiance files
ignore it.
"""

import contextlib
import typing
from pathlib import Path

import numpy as np

from hdr_gan_tf.arrays import gathered_rows
from hdr_gan_tf.hdr_photos import avif_rows, ultra_hdr_rows
from hdr_gan_tf.image_io import exr_rows, radiance_rows, write_float_tiff, write_hdr
from hdr_gan_tf.settings import ConfigError


class OutputFormat(typing.NamedTuple):
    """A file format of merged images.

    Attributes:
      name: as `--formats` names it.
      suffix: the file suffix that chooses it.
      summary: one line for help texts.
      write: `write(path, rgb, rendering)` of a whole linear `[H, W, 3]` image, atomically.
      rows: `rows(path, height, width, rendering)`, a context whose value writes successive
        bands of rows, the file complete and in place when it ends; None if it needs the whole
        image (`band_writer` then gathers it).
      display: True if it is a picture for a display (HDR with an SDR fallback), made by the
        `Rendering`; False if it holds the radiance as it is.
    """
    name: str
    suffix: str
    summary: str
    write: typing.Callable
    rows: typing.Optional[typing.Callable]
    display: bool


def _radiance(writer):
    return lambda path, rgb, rendering=None: writer(path, rgb)


def _radiance_rows(writer):
    return lambda path, height, width, rendering=None: writer(path, height, width)


def _whole_by_rows(rows):
    def write(path, rgb, rendering):
        with rows(path, *np.shape(rgb)[:2], rendering) as write_rows:
            write_rows(rgb)
    return write


FORMATS = {f.name: f for f in (
    OutputFormat("hdr", ".hdr", "Radiance RGBE", _radiance(write_hdr),
                 _radiance_rows(radiance_rows), False),
    OutputFormat("exr", ".exr", "OpenEXR, half floats, ZIP", _radiance(write_hdr),
                 _radiance_rows(exr_rows), False),
    OutputFormat("tiff", ".tif", "32-bit float TIFF (linear RGB)", _radiance(write_float_tiff),
                 None, False),
    OutputFormat("jpg", ".jpg", "Ultra HDR JPEG: an SDR JPEG with a gain map, shown in HDR "
                 "where the screen and viewer can", _whole_by_rows(ultra_hdr_rows),
                 ultra_hdr_rows, True),
    OutputFormat("avif", ".avif", "HDR AVIF: 10-bit PQ, BT.2020", _whole_by_rows(avif_rows),
                 avif_rows, True),
)}


def format_of(path, field="output"):
    """The `OutputFormat` that `path`'s suffix chooses; ConfigError naming `field` otherwise."""
    suffix = Path(path).suffix.lower()
    for output_format in FORMATS.values():
        if output_format.suffix == suffix:
            return output_format
    raise ConfigError(f"{path}: must end in "
                      + " or ".join(f.suffix for f in FORMATS.values()), field=field)


def check_formats(names, output=None, field="formats"):
    """The `OutputFormat`s of `names` written beside `output` (besides the one its suffix
    chooses); ConfigError naming `field` for an unknown or repeated name."""
    chosen = [format_of(output).name] if output else []
    for name in names:
        if name not in FORMATS:
            raise ConfigError(f"unknown format {name!r}; choose from {', '.join(FORMATS)}",
                              field=field)
        if name in chosen:
            raise ConfigError(f"{name} is named twice (the output's own suffix counts)",
                              field=field)
        chosen.append(name)
    return [FORMATS[name] for name in chosen]


@contextlib.contextmanager
def band_writer(path, height, width, rendering=None):
    """A context whose value writes successive bands of rows of a `height` x `width` image to
    `path` in the format its suffix chooses: streamed where the format can be, else gathered and
    written whole when the context ends (a format without `rows` costs the image in memory)."""
    output_format = format_of(path)
    if output_format.rows:
        with output_format.rows(path, height, width, rendering) as write:
            yield write
        return
    with gathered_rows(path, height, width) as (gather, image):
        yield gather
    output_format.write(path, image, rendering)
