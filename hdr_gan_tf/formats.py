"""The formats a merge is written in, one table: each with its suffix, its whole-image writer
and its writer of bands of rows (a streamed merge), and what it holds.

`FORMATS` is the one place a format is added: `hdr-gan-infer`'s `--output` (chosen by suffix),
batch mode and the web page take their formats from it.
"""

import contextlib
import typing
from pathlib import Path

import numpy as np

from hdr_gan_tf.image_io import exr_rows, radiance_rows, write_float_tiff, write_hdr
from hdr_gan_tf.settings import ConfigError


class OutputFormat(typing.NamedTuple):
    """A file format of merged images.

    Attributes:
      name: as the programs name it.
      suffix: the file suffix that chooses it.
      summary: one line for help texts.
      write: `write(path, rgb)` of a whole linear `[H, W, 3]` image, atomically.
      rows: `rows(path, height, width)`, a context whose value writes successive bands of
        rows, the file complete and in place when it ends; None if it needs the whole image.
      radiance: True if it holds scene-referred linear radiance (a display-referred merge
        cannot be written in it).
    """
    name: str
    suffix: str
    summary: str
    write: typing.Callable
    rows: typing.Optional[typing.Callable]
    radiance: bool


FORMATS = {f.name: f for f in (
    OutputFormat("hdr", ".hdr", "Radiance RGBE", write_hdr, radiance_rows, True),
    OutputFormat("exr", ".exr", "OpenEXR, half floats, ZIP", write_hdr, exr_rows, True),
    OutputFormat("tiff", ".tif", "32-bit float TIFF (linear RGB)", write_float_tiff, None, True),
)}


def format_of(path, field="output"):
    """The `OutputFormat` that `path`'s suffix chooses; ConfigError naming `field` otherwise."""
    suffix = Path(path).suffix.lower()
    for output_format in FORMATS.values():
        if output_format.suffix == suffix:
            return output_format
    raise ConfigError(f"{path}: must end in "
                      + " or ".join(f.suffix for f in FORMATS.values()), field=field)


@contextlib.contextmanager
def band_writer(path, height, width):
    """A context whose value writes successive bands of rows of a `height` x `width` image to
    `path` in the format its suffix chooses: streamed where the format can be, else gathered and
    written whole when the context ends (a format without `rows` costs the image in memory)."""
    output_format = format_of(path)
    if output_format.rows:
        with output_format.rows(path, height, width) as write:
            yield write
        return
    image, done = np.empty((height, width, 3), np.float32), [0]

    def gather(rows):
        image[done[0]:done[0] + len(rows)] = rows
        done[0] += len(rows)

    yield gather
    if done[0] != height:
        raise ValueError(f"{path}: {height - done[0]} rows missing")
    output_format.write(path, image)
