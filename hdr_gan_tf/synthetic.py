"""Procedural HDR scenes written in the Kalantari data-set layout (or the authors' or NTIRE's).

The real data set cannot be downloaded on every machine, so tests and the demo use scenes made
here. Each scene has what makes HDR merging hard: a sun and a bright lamp far above the
shadows (the radiance spans more than 12 stops), textured surfaces, a foreground object that
moves a large distance between the three exposures (ghosting), small camera shake, and an
imaging chain of exposure time, sensor noise, clipping, gamma 2.2 response and 8/16-bit
quantisation. The ground truth is the scene at the moment of the reference exposure.

Radiance is relative to the shortest exposure (time 1): the short LDR is `H ** (1/2.2)`, so the
brightest value (the sun) is 1 and the long exposure clips everything above `1 / t_long`.
"""

from pathlib import Path

import cv2
import numpy as np

from hdr_gan_tf.imaging import GAMMA
from hdr_gan_tf.layouts import LAYOUTS, TEST_SPLIT, TRAIN_SPLIT
from hdr_gan_tf.outputs import output_dir as new_output_dir
from hdr_gan_tf.settings import ConfigError

# Darkest and brightest radiance of a scene: log2(1 / 1.2e-4) = 13 stops.
SHADOW_FLOOR = 1.2e-4
SUN_RADIANCE = 1.0
MIN_MOTION_FRACTION = 0.05
DEFAULT_SET = {"num_train": 12, "num_test": 3, "height": 384, "width": 512, "seed": 0}


def _noise(rng, height, width, octaves=4, base=4):
    """Smooth fractal value noise in [0, 1]."""
    total = np.zeros((height, width), np.float32)
    amplitude, weight = 1.0, 0.0
    for o in range(octaves):
        cells = base * 2 ** o
        grid = rng.random((cells + 1, int(cells * width / height) + 2)).astype(np.float32)
        total += amplitude * cv2.resize(grid, (width, height), interpolation=cv2.INTER_CUBIC)
        weight += amplitude
        amplitude *= 0.5
    total /= weight
    return (total - total.min()) / max(float(np.ptp(total)), 1e-6)


def _background(rng, height, width):
    """Linear radiance `[H, W, 3]` of the static scene: sky, sun, lamp, walls, floor, shadows."""
    yy, xx = np.mgrid[0:height, 0:width].astype(np.float32)
    horizon = int(height * rng.uniform(0.3, 0.5))
    radiance = np.zeros((height, width, 3), np.float32)
    # Sky: blue gradient with clouds, 2^-5 .. 2^-3 of the sun.
    sky_tint = np.array([0.55, 0.75, 1.0], np.float32)
    gradient = 0.03 + 0.09 * (1 - yy / max(horizon, 1))
    clouds = 0.5 + _noise(rng, height, width, octaves=5, base=3)
    radiance[:horizon] = (gradient[..., None] * clouds[..., None] * sky_tint)[:horizon]
    # Sun with glow.
    cy, cx = rng.uniform(0.1, 0.8) * horizon, rng.uniform(0.1, 0.9) * width
    r = np.hypot(yy - cy, xx - cx)
    radius = 0.03 * min(height, width) + 2
    glow = 0.25 * np.exp(-((r / (4 * radius)) ** 2))
    sun = np.where(r < radius, SUN_RADIANCE, glow)
    radiance[:horizon] = np.maximum(radiance[:horizon], (sun[..., None] *
                                    np.array([1.0, 0.95, 0.85], np.float32))[:horizon])
    # Ground: textured surfaces (bricks and noise), 2^-9 .. 2^-5.
    ground = slice(horizon, height)
    albedo = rng.uniform(0.3, 0.9, 3).astype(np.float32)
    texture = 0.4 + 0.6 * _noise(rng, height, width, octaves=6, base=6)
    brick_h, brick_w = rng.integers(8, 20), rng.integers(20, 48)
    row = (yy // brick_h).astype(int)
    mortar = ((yy % brick_h) < 2) | (((xx + (row % 2) * brick_w / 2) % brick_w) < 2)
    bricks = np.where(mortar, 0.35, 1.0).astype(np.float32) * texture
    light = 0.03 * (0.25 + 0.75 * (yy - horizon) / max(height - horizon, 1))
    radiance[ground] = (light[..., None] * bricks[..., None] * albedo)[ground]
    # A deep shadow band and a lamp.
    sx = int(rng.uniform(0.1, 0.6) * width)
    sw = int(rng.uniform(0.15, 0.3) * width)
    shadow = radiance[horizon:, sx:sx + sw]
    radiance[horizon:, sx:sx + sw] = np.maximum(shadow * 0.02, SHADOW_FLOOR)
    ly, lx = int(rng.uniform(horizon, height - 12)), int(rng.uniform(0, width - 16))
    radiance[ly:ly + max(4, height // 40), lx:lx + max(6, width // 30)] = \
        np.array([0.45, 0.4, 0.3], np.float32)
    return np.maximum(radiance, SHADOW_FLOOR)


def _paste_object(radiance, rng_state, centre, size):
    """Draws the moving foreground object (a textured ellipse with a stripe) at `centre`."""
    out = radiance.copy()
    height, width = out.shape[:2]
    yy, xx = np.mgrid[0:height, 0:width].astype(np.float32)
    cy, cx = centre
    ry, rx = size
    inside = ((yy - cy) / ry) ** 2 + ((xx - cx) / rx) ** 2 <= 1.0
    colour, level, pattern_seed = rng_state
    pattern = _noise(np.random.default_rng(pattern_seed), height, width, octaves=3, base=8)
    stripe = (np.abs(xx - cx) < rx * 0.15).astype(np.float32)
    body = level * (0.5 + 0.5 * pattern)[..., None] * colour + 4 * level * stripe[..., None]
    out[inside] = body[inside]
    return out


def _expose(radiance, time, rng, peak):
    """Camera: exposure, shot and read noise, clipping, gamma 2.2, quantisation."""
    signal = radiance * time
    noise = rng.standard_normal(signal.shape).astype(np.float32)
    signal = signal + noise * np.sqrt(2e-5 * signal + 1e-7)
    ldr = np.clip(signal, 0.0, 1.0) ** (1.0 / GAMMA)
    return np.round(ldr * peak) / peak


def synthesize_scene(rng, height, width, ev_step=None):
    """Makes one scene.

    Returns:
      dict with `ldrs` (3 float32 `[H, W, 3]` LDRs in [0, 1], short/reference/long, before
      quantisation to file bits), `exposure_bias` (`[-s, 0, s]`), `hdr` (`[H, W, 3]` linear ground
      truth aligned to the reference) and `motion` (object displacement between consecutive
      exposures, pixels).
    """
    ev_step = ev_step if ev_step is not None else int(rng.choice([2, 3]))
    margin = 4
    canvas = _background(rng, height + 2 * margin, width + 2 * margin)
    # Foreground object moving left to right (or back) by 6-10% of the width per exposure.
    step = rng.uniform(0.06, 0.10) * width * rng.choice([-1, 1])
    size = (rng.uniform(0.12, 0.22) * height, rng.uniform(0.08, 0.14) * width)
    cy = rng.uniform(0.45, 0.75) * height + margin
    cx_ref = width / 2 + margin + rng.uniform(-0.1, 0.1) * width
    appearance = (rng.uniform(0.4, 1.0, 3).astype(np.float32), rng.uniform(0.004, 0.03),
                  int(rng.integers(1 << 30)))
    times = 2.0 ** (np.arange(3) * ev_step)
    frames = []
    for i in range(3):
        scene = _paste_object(canvas, appearance, (cy, cx_ref + (i - 1) * step), size)
        # Camera shake: the non-reference frames are shifted by up to 3 pixels.
        dy, dx = (0, 0) if i == 1 else tuple(rng.integers(-3, 4, 2))
        frame = scene[margin + dy:margin + dy + height, margin + dx:margin + dx + width]
        frames.append(frame)
    ldrs = [_expose(f, t, rng, 65535).astype(np.float32) for f, t in zip(frames, times)]
    return {"ldrs": ldrs, "exposure_bias": np.array([-ev_step, 0, ev_step], np.float32),
            "hdr": frames[1].astype(np.float32), "motion": abs(step)}


def builtin_dataset(log=print):
    """The built-in data set (DEFAULT_SET) in the cache folder, generated on first use."""
    from hdr_gan_tf.config import default_cache_dir

    target = default_cache_dir() / "synthetic_v1"
    if not (target / TRAIN_SPLIT).is_dir():
        log(f"Generating the built-in data set in {target} ...")
        try:
            synthesize_dataset(target, **DEFAULT_SET)
        except FileExistsError:
            pass  # made meanwhile by another process
    return target


def write_scene(scene_dir, scene, bit_depth=16, first_index=1, zero_based_ev=False,
                layout="kalantari"):
    """Writes a scene in `layout` (`layouts.LAYOUTS`), its EVs from 0 if `zero_based_ev`."""
    ev = scene["exposure_bias"] - (scene["exposure_bias"][0] if zero_based_ev else 0)
    LAYOUTS[layout].write(Path(scene_dir), scene, bit_depth, first_index, ev)


def synthesize_dataset(output_dir, num_train=DEFAULT_SET["num_train"],
                       num_test=DEFAULT_SET["num_test"], height=DEFAULT_SET["height"],
                       width=DEFAULT_SET["width"], seed=DEFAULT_SET["seed"], bit_depth=16,
                       progress=None, layout="kalantari"):
    """Writes a data set of procedural scenes in `layout` (`layouts.LAYOUTS`: its split folders,
    scene names and files); deterministic by seed.

    The set is built in a temporary folder beside `output_dir` and renamed into place when
    complete; an existing `output_dir` is refused rather than mixed into.

    Returns:
      the output folder as a Path.
    """
    output_dir = Path(output_dir)
    if output_dir.exists() and any(output_dir.iterdir()):
        raise FileExistsError(f"{output_dir}: exists and is not empty; choose a new folder")
    if layout not in LAYOUTS:
        raise ConfigError(f"one of {', '.join(LAYOUTS)}, not {layout!r}", field="layout")
    if min(height, width) < 32 or height % 2 or width % 2:
        raise ValueError(f"height and width must be even and at least 32, got {height}x{width}")
    with new_output_dir(output_dir) as tmp:
        rng = np.random.default_rng(seed)
        index = 1
        splits = LAYOUTS[layout].split_names
        train, test = splits[TRAIN_SPLIT], splits[TEST_SPLIT]
        jobs = [(train, n) for n in range(num_train)] + [(test, n) for n in range(num_test)]
        for count, (split, n) in enumerate(jobs, start=1):
            scene = synthesize_scene(rng, height, width)
            # Alternate the two EV conventions, as real copies of the data set do.
            name = LAYOUTS[layout].scene_name(n, index)
            write_scene(tmp / split / name, scene, bit_depth, index,
                        zero_based_ev=bool(n % 2), layout=layout)
            index += 3
            if progress:
                progress(count, len(jobs))
    return output_dir


def camera_motion(rng, height, width, max_angle=3.0, max_shift=0.03, max_tilt=3e-5):
    """A hand-held camera's motion between two frames as a homography from reference pixels
    to the frame's: a turn of up to `max_angle` degrees about the centre, a shift of up to
    `max_shift` of the width each way and a tilt (perspective) of up to `max_tilt` per pixel
    at 384 pixels wide."""
    angle = rng.uniform(-max_angle, max_angle)
    dx, dy = rng.uniform(-max_shift, max_shift, 2) * width
    tilt = rng.uniform(-max_tilt, max_tilt) * 384 / width
    c, s = np.cos(np.radians(angle)), np.sin(np.radians(angle))
    cx, cy = (width - 1) / 2, (height - 1) / 2
    return (np.array([[1, 0, cx + dx], [0, 1, cy + dy], [0, 0, 1]])
            @ np.array([[c, -s, 0], [s, c, 0], [tilt, tilt / 2, 1]])
            @ np.array([[1, 0, -cx], [0, 1, -cy], [0, 0, 1]]))


def hand_held_bracket(rng, height, width, ev_step=3.0, clipped=0.6, radiance=None, **motion):
    """A bracket of a procedural scene shot hand-held, the hard way: `ev_step` stops apart,
    exposed so that the long photo clips about `clipped` of its pixels (sky, sun, lamp), the
    camera moving between frames (`camera_motion(**motion)`) and an object moving across.
    `radiance` (`[height, width, 3]` linear, e.g. a real HDR image) replaces the procedural scene.

    Returns:
      `(photos [3, H, W, 3] float32 in [0, 1], exposure_bias [3], homographies)`: short,
      reference, long; `homographies[i]` maps a reference pixel to photo `i`'s (the truth an
      alignment is scored against; the identity for the reference).
    """
    canvas = (_background(rng, height, width) if radiance is None
              else np.asarray(radiance, np.float32)[:height, :width])
    # The long photo's time: the `clipped` quantile of the scene's brightest channel clips.
    long_time = 1.0 / float(np.quantile(canvas.max(axis=-1), 1.0 - clipped))
    times = long_time * 2.0 ** (np.arange(3) * ev_step - 2 * ev_step)
    look = (rng.uniform(0.4, 1.0, 3).astype(np.float32), 0.3 / long_time,
            int(rng.integers(1 << 30)))
    homographies, photos = [], []
    for i in range(3):
        to_photo = np.eye(3) if i == 1 else camera_motion(rng, height, width, **motion)
        scene = cv2.warpPerspective(canvas, to_photo, (width, height), flags=cv2.INTER_LINEAR,
                                    borderMode=cv2.BORDER_REFLECT)
        scene = _paste_object(scene, look, (0.65 * height, (0.3 + 0.15 * i) * width),
                              (0.12 * height, 0.08 * width))
        photos.append(_expose(scene, times[i], rng, 65535))
        homographies.append(to_photo)
    ev = np.array([-ev_step, 0.0, ev_step], np.float32)
    return np.stack(photos).astype(np.float32), ev, homographies
