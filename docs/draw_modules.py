"""Draws docs/modules.png: the package's modules and the two flows through them.

    python docs/draw_modules.py

Top rows: photos to an HDR image (`hdr-gan-infer`, the web page); bottom row: a data set to a
checkpoint (`hdr-gan-train`); the middle row holds what both share. Pillow only, with its
bundled font.
"""

from pathlib import Path

from PIL import Image, ImageDraw, ImageFont

WIDTH, HEIGHT = 1500, 760
FONT = ImageFont.load_default(size=17)
SMALL = ImageFont.load_default(size=14)
TITLE = ImageFont.load_default(size=20)
INK, LINE, FILE = (30, 30, 40), (90, 90, 110), (238, 238, 238)
COLOURS = {"io": (222, 235, 250), "net": (226, 244, 226), "run": (252, 236, 214),
           "cli": (240, 226, 246)}

# name: (x, y, width, kind, lines)
BOXES = {
    "photos_in": (30, 90, 150, "file", ["3 photos", "TIFF / PNG / JPEG"]),
    "photos": (220, 90, 190, "io", ["photos.py", "read, sort, EVs"]),
    "alignment": (200, 205, 170, "run", ["alignment.py", "register, warp"]),
    "merge": (450, 90, 210, "run", ["merge.py, methods.py", "Merger, METHODS, tiles"]),
    "outputs": (700, 90, 220, "io", ["outputs.py", "atomic writes, checks, lock"]),
    "web_page": (960, 205, 220, "cli", ["web_page.py: the page", "page_sessions.py"]),
    "merge_files": (700, 205, 220, "io", ["merge_files.py", "FORMATS, preview, sidecar"]),
    "image_io": (960, 90, 220, "io", ["image_io.py", ".hdr .exr .png, probe"]),
    "hdr_out": (1220, 90, 240, "file", [".hdr / .exr", "+ preview .png"]),
    "imaging": (220, 330, 190, "net", ["imaging.py", "EV, gamma, mu-law"]),
    "generator": (450, 330, 210, "net", ["generator.py", "layers.py, conv_ops.py"]),
    "config": (700, 330, 220, "run", ["config.py, settings.py", "RunConfig, setting()"]),
    "checkpoints": (960, 330, 220, "run", ["checkpoints.py", "find, restore"]),
    "ckpt": (1220, 330, 240, "file", ["log dir", "config.json, ckpt-N"]),
    "dataset": (30, 570, 150, "file", ["data set", "3 layouts"]),
    "data": (220, 570, 190, "io", ["data.py, layouts.py", "LAYOUTS, tf.data"]),
    "cache": (220, 680, 190, "io", ["scene_cache.py", "disk cache"]),
    "training": (450, 570, 210, "run", ["training.py", "Trainer: step, loop"]),
    "losses": (700, 570, 220, "net", ["losses.py", "L1, Sphere GAN"]),
    "discriminator": (960, 570, 220, "net", ["discriminator.py", "PatchGAN"]),
    "evaluation": (1220, 570, 240, "run", ["evaluation.py, metrics.py", "hdr_vdp2.py: scores"]),
}
ARROWS = [("photos_in", "photos"), ("photos", "alignment"), ("alignment", "merge"),
          ("merge", "merge_files"), ("merge_files", "outputs"), ("web_page", "merge_files"),
          ("outputs", "image_io"), ("image_io", "hdr_out"), ("imaging", "merge"),
          ("generator", "merge"), ("config", "checkpoints"), ("checkpoints", "ckpt"),
          ("checkpoints", "generator"), ("dataset", "data"), ("data", "training"),
          ("cache", "data"), ("imaging", "data"), ("generator", "training"),
          ("losses", "training"), ("discriminator", "losses"), ("training", "checkpoints"),
          ("config", "training")]
BOX_HEIGHT = 64


def _centre(name):
    x, y, w, _, _ = BOXES[name]
    return x + w / 2, y + BOX_HEIGHT / 2


def _edge(name, towards):
    """Where the line from box `name`'s centre towards a point leaves the box."""
    x, y, w, _, _ = BOXES[name]
    cx, cy = _centre(name)
    dx, dy = towards[0] - cx, towards[1] - cy
    scale = min(w / 2 / abs(dx) if dx else 1e9, BOX_HEIGHT / 2 / abs(dy) if dy else 1e9)
    return cx + dx * scale, cy + dy * scale


def _arrow(draw, start, end):
    a, b = _edge(start, _centre(end)), _edge(end, _centre(start))
    draw.line([a, b], fill=LINE, width=3)
    dx, dy = b[0] - a[0], b[1] - a[1]
    length = (dx * dx + dy * dy) ** 0.5 or 1
    ux, uy = dx / length, dy / length
    tip = [b, (b[0] - 12 * ux + 6 * uy, b[1] - 12 * uy - 6 * ux),
           (b[0] - 12 * ux - 6 * uy, b[1] - 12 * uy + 6 * ux)]
    draw.polygon(tip, fill=LINE)


def draw(path):
    image = Image.new("RGB", (WIDTH, HEIGHT), "white")
    draw = ImageDraw.Draw(image)
    draw.text((30, 25), "photos -> HDR  (hdr-gan-infer, -app, -evaluate, -export)", font=TITLE,
              fill=INK)
    draw.text((30, 505), "data set -> checkpoint  (hdr-gan-train)", font=TITLE, fill=INK)
    for k, line in enumerate(("shared:", "conventions,", "networks,", "configuration")):
        draw.text((30, 318 + 22 * k), line, font=TITLE if k == 0 else SMALL, fill=INK)
    for start, end in ARROWS:
        _arrow(draw, start, end)
    for name, (x, y, w, kind, lines) in BOXES.items():
        fill = FILE if kind == "file" else COLOURS[kind]
        draw.rounded_rectangle([x, y, x + w, y + BOX_HEIGHT], radius=10, fill=fill,
                               outline=LINE, width=2)
        draw.text((x + 12, y + 10), lines[0], font=FONT, fill=INK)
        draw.text((x + 12, y + 36), lines[1], font=SMALL, fill=INK)
    legend = [("io", "files and data"), ("net", "the model's computation"),
              ("run", "running it"), ("cli", "the page and cli/: they call the rest")]
    for k, (kind, text) in enumerate(legend):
        x = 700 + k * 200 if k < 3 else 700
        y = 25 if k < 3 else 265
        if k == 3:
            x, y = 1200, 285
        draw.rectangle([x, y + 4, x + 16, y + 20], fill=COLOURS[kind], outline=LINE)
        draw.text((x + 24, y + 2), text, font=SMALL, fill=INK)
    image.save(path)


if __name__ == "__main__":
    draw(Path(__file__).resolve().parent / "modules.png")
