"""Draws docs/hdr_photos.png: what the two renditions of an Ultra HDR JPEG show.

    python docs/draw_hdr_photos.py

A procedural scene's ground truth (as a merge gives it) is written as an Ultra HDR JPEG by the
program's own writer and decoded back: the SDR base picture (what an SDR screen or an old viewer
shows), the HDR rendition shown 2 stops darker (so that the headroom above white, which an HDR
screen shows brighter than white, is visible here), and where the headroom lies.
"""

import tempfile
from pathlib import Path

import numpy as np

from hdr_gan_tf import hdr_photos
from hdr_gan_tf.display import label
from hdr_gan_tf.formats import FORMATS
from hdr_gan_tf.image_io import write_ldr
from hdr_gan_tf.synthetic import synthesize_scene


def draw(path):
    scene = synthesize_scene(np.random.default_rng(3), 360, 540)
    rendering = hdr_photos.Rendering(hdr_photos.white_of(scene["exposure_bias"]))
    with tempfile.TemporaryDirectory() as folder:
        photo = Path(folder) / "merged.jpg"
        FORMATS["jpg"].write(photo, scene["hdr"], rendering)
        x, sdr = hdr_photos.read_ultra_hdr(photo)
    darker = np.clip(x / 4, 0, 1) ** (1 / 2.2)
    above = np.clip(np.log2(np.maximum(x.max(axis=-1), 1)) / 4, 0, 1)
    headroom = np.stack([above, above * 0.6, 0.15 + 0 * above], axis=-1)
    panels = [label(sdr / np.float32(255), "SDR base (any JPEG viewer)"),
              label(darker, "HDR rendition, 2 stops darker"),
              label(headroom, "above white: 0 to 4 stops")]
    write_ldr(path, np.concatenate(panels, axis=1))


if __name__ == "__main__":
    draw(Path(__file__).resolve().parent / "hdr_photos.png")
