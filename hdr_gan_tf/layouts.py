"""The data-set layouts, one object each (`LAYOUTS`), and the reading of one scene.

A layout finds the scenes of a split folder, lists a scene's files, reads its exposures and
ground truth, and writes a scene (for the synthesizer). Layouts are told apart scene by scene
(`layout_of`), so a split may mix them. Adding a layout is one new `Layout` here.

Kalantari's (as distributed by Kalantari & Ramamoorthi, SIGGRAPH 2017)::

    <root>/Training/<scene>/{3 x *.tif, exposure.txt, HDRImg.hdr}
    <root>/Test/<scene>/...            (or nested one level deeper: Test/PAPER/<scene>/)

The three LDRs sort by file name in exposure order (short, reference, long); `exposure.txt` holds
one EV per line ("0 2 4" or "-2 0 2" style); `HDRImg.hdr` is the ground truth aligned to the
reference. The authors' own training code reads (split folders `train` and `test`)::

    <root>/train/<scene>/{input_1.tif, input_2.tif, input_3.tif, input_exp.txt, ref_hdr.hdr}

where other files (their `ref_*.tif`, `ref_exp.txt`) are ignored. The NTIRE 2021/2022
multi-frame HDR challenge's layout keeps every scene of a split in one folder, by number::

    <root>/Training/{NNNN_short.png, NNNN_medium.png, NNNN_long.png, NNNN_exposures.npy,
                     NNNN_gt.png, NNNN_alignratio.npy, ...}

Its LDRs are 8-bit PNGs with gamma 2.24 (`NTIRE_GAMMA`), re-encoded on reading to the gamma
2.2 that the network's LDR-to-HDR step inverts (`reencode_gamma`); `NNNN_exposures.npy` holds
the three EVs; the ground truth is a 16-bit PNG of `H ** (1 / 2.24)` scaled by the factor in
`NNNN_alignratio.npy`, at the medium frame's exposure (`read_ntire_ground_truth`). A scene of
this layout is named by its number and addressed by the path prefix `<split>/NNNN`.

`ldr_bits=8` reads 16-bit LDRs as the released code did: its loaders used OpenCV's default
flag, which reduces them to 8 bits per channel (`round(v / 257)`), in training and in testing.
"""

import dataclasses
import re
from pathlib import Path

import numpy as np

from hdr_gan_tf.image_io import MAX_PIXELS, read_hdr, read_ldr_raw, write_hdr, write_ldr
from hdr_gan_tf.imaging import GAMMA, parse_exposure_bias, read_exposure_file
from hdr_gan_tf.outputs import atomic_output, write_text
from hdr_gan_tf.settings import SettingError, within

TRAIN_SPLIT = "Training"
TEST_SPLIT = "Test"
GROUND_TRUTH = "HDRImg.hdr"
EXPOSURE_FILE = "exposure.txt"
LDR_PATTERN = re.compile(r".*\.tiff?$", re.IGNORECASE)
# The authors' layout: fixed names, short to long.
AUTHORS_LDRS = ("input_1.tif", "input_2.tif", "input_3.tif")
AUTHORS_EXPOSURE_FILE = "input_exp.txt"
AUTHORS_GROUND_TRUTH = "ref_hdr.hdr"
NTIRE_FRAMES = ("short", "medium", "long")
NTIRE_EXPOSURES, NTIRE_GROUND_TRUTH, NTIRE_ALIGN_RATIO = "exposures.npy", "gt.png", "alignratio.npy"
# The challenge's LDRs and ground truth encode linear values as v ** (1 / 2.24).
NTIRE_GAMMA = 2.24
NTIRE_SHORT = re.compile(r"^(.+)_short\.png$")


class DataError(SettingError):
    """A data set that cannot be used; the message names the scene, the file and the problem."""


@dataclasses.dataclass
class Scene:
    """One decoded scene.

    Attributes:
      name: path of the scene folder relative to its split folder (e.g. `001`, `PAPER/Foo`).
      path: the scene folder.
      ldr_paths: the three LDR files, short / reference / long.
      ldrs: `[3, H, W, 3]` uint8 or uint16 RGB, undecoded scale (see `peak`).
      peak: 255 or 65535.
      exposure_bias: `[3]` float32 EVs.
      hdr: `[H, W, 3]` float32 linear ground truth.
    """
    name: str
    path: Path
    ldr_paths: list
    ldrs: np.ndarray
    peak: int
    exposure_bias: np.ndarray
    hdr: np.ndarray

    @property
    def shape(self):
        return self.hdr.shape[:2]

    def ldr_float(self):
        """`[3, H, W, 3]` float32 LDRs in [0, 1]."""
        return self.ldrs.astype(np.float32) / np.float32(self.peak)

    def window(self, top, left, size):
        """A `size`² crop: `([size, size, 9] float32 LDRs in [0, 1], [size, size, 3] HDR)`."""
        rows, cols = slice(top, top + size), slice(left, left + size)
        ldrs = self.ldrs[:, rows, cols].astype(np.float32) / np.float32(self.peak)
        return np.concatenate(list(ldrs), axis=-1), self.hdr[rows, cols]


LDR_BITS = (8, 16)
LDR_BITS_HELP = ("Bits per channel the LDRs are read with: 16 keeps them as stored; 8 reduces "
                 "16-bit files to 8 bits (round(v/257)) as the released code's OpenCV reads did.")


def reduce_to_8_bits(ldrs):
    """16-bit samples as OpenCV's default read reduces them: `round(v / 257)`, uint8.

    (v / 257 never ends in exactly .5, so the rounding rule does not matter.)
    """
    return np.round(ldrs.astype(np.float32) / np.float32(257)).astype(np.uint8)


def reencode_gamma(raw, peak, gamma):
    """8- or 16-bit samples encoded with `gamma`, re-encoded with the network's `GAMMA` as
    uint16 (a table over every possible value; the linear values they stand for are kept)."""
    table = np.arange(peak + 1, dtype=np.float64) / peak
    table = np.round(table ** (gamma / GAMMA) * 65535).astype(np.uint16)
    return table[raw]


def _read_npy(path, what):
    """A small numeric array from a `.npy` file (never a pickle); ValueError naming the file."""
    path = Path(path)
    if not path.is_file():
        raise ValueError(f"{path}: file not found")
    if path.stat().st_size > 1 << 16:
        raise ValueError(f"{path}: {path.stat().st_size} bytes, too large for {what}")
    try:
        array = np.load(path, allow_pickle=False)
    except (OSError, ValueError, EOFError) as err:
        raise ValueError(f"{path}: not a NumPy .npy file ({err})") from None
    if not isinstance(array, np.ndarray) or array.dtype.kind not in "iuf":
        raise ValueError(f"{path}: {what} must be numbers")
    return array


def read_ntire_exposures(path):
    """The three EVs of an NTIRE scene (`NNNN_exposures.npy`), increasing."""
    values = _read_npy(path, "exposure values").ravel().tolist()
    return parse_exposure_bias(values, source=str(path))


def read_ntire_ground_truth(path, ratio_path, max_pixels=MAX_PIXELS):
    """Linear ground truth of an NTIRE scene: `(png / ratio) ** NTIRE_GAMMA`, float32, at the
    exposure the PNG was scaled for (the medium frame's)."""
    raw, peak = read_ldr_raw(path, max_pixels)
    if peak != 65535:
        raise ValueError(f"{path}: an 8-bit image; the NTIRE ground truth is a 16-bit PNG")
    ratio = _read_npy(ratio_path, "the align ratio")
    if ratio.size != 1 or not np.isfinite(ratio).all() or float(ratio.ravel()[0]) <= 0:
        raise ValueError(f"{ratio_path}: the align ratio must be one positive number, got "
                         f"{ratio.ravel()[:4].tolist()}")
    given = ratio.ravel()[0]
    ratio = np.float32(given)
    with np.errstate(over="ignore", divide="ignore"):
        usable = ratio > 0 and np.isfinite(np.float32(65535) / ratio)
    if not usable:
        raise ValueError(f"{ratio_path}: the align ratio {float(given):g} is not a usable float32 scale "
                         f"(it becomes {float(ratio):g} in float32)")
    return (raw.astype(np.float32) / ratio) ** np.float32(NTIRE_GAMMA)


def encode_ntire_ground_truth(hdr):
    """Inverse of `read_ntire_ground_truth`: `(uint16 RGB, ratio)` with the brightest sample of
    `hdr ** (1 / NTIRE_GAMMA)` at 65535."""
    encoded = np.asarray(hdr, np.float32) ** np.float32(1 / NTIRE_GAMMA)
    ratio = np.float32(65535 / encoded.max())
    return np.round(encoded * ratio).astype(np.uint16), ratio


def check_ground_truth(hdr, where):
    """DataError naming `where` unless a decoded ground truth can be scored: finite, not
    negative, not black everywhere."""
    if not np.all(np.isfinite(hdr)):
        raise DataError(f"{where}: the ground truth holds NaN or Inf values")
    if hdr.size and (hdr.min() < 0 or not hdr.max() > 0):
        raise DataError(f"{where}: the ground truth must be at least 0 and not black everywhere "
                        f"(its values span {float(hdr.min()):g} to {float(hdr.max()):g})")


def check_patch_fits(name, shape, size):
    """DataError unless images of `shape` (H, W) hold a `size` x `size` patch."""
    if min(shape) < size:
        raise DataError(f"scene '{name}': images are {shape[1]}x{shape[0]}, smaller than the "
                        f"{size}x{size} patch size")


class Layout:
    """One data-set layout.

    Attributes:
      name: as `hdr-gan-synth --layout` and the docs call it.
      summary: one line on its files, for help texts.
      split_names: the folder of each split (`TRAIN_SPLIT`, `TEST_SPLIT`) in this layout.
    """
    name = ""
    summary = ""
    split_names = {TRAIN_SPLIT: TRAIN_SPLIT, TEST_SPLIT: TEST_SPLIT}

    def scenes_in(self, folder):
        """The scenes of this layout directly in `folder` (paths), sorted."""
        return sorted(p for p in Path(folder).iterdir() if p.is_dir() and self.holds(p))

    def holds(self, path):
        """Whether `path` is a scene of this layout."""
        raise NotImplementedError

    def files(self, path):
        """`(ldr_paths, exposure_file, ground_truth)`, the LDRs short to long."""
        raise NotImplementedError

    def sources(self, path):
        """Every file the scene is decoded from (what its disk cache must match)."""
        return sorted(p for p in Path(path).iterdir() if p.is_file())

    def read_labels(self, path, max_pixels=MAX_PIXELS):
        """`(exposure_bias [3], linear ground truth [H, W, 3])` of the scene, on the network's
        scale (radiance relative to the shortest exposure)."""
        _, exposure_file, ground_truth = self.files(path)
        return read_exposure_file(exposure_file), read_hdr(ground_truth, max_pixels)

    def stored_ldrs(self, ldrs, peak, ldr_bits):
        """`(ldrs, peak)` as a `Scene` keeps the decoded LDRs."""
        if ldr_bits == 8 and peak == 65535:
            return reduce_to_8_bits(ldrs), 255
        return ldrs, peak

    def ldr_bytes(self, ldr_bits):
        """Bytes per decoded LDR sample."""
        return 1 if ldr_bits == 8 else 2

    def scene_name(self, number, index):
        """The name of the synthesizer's `number`-th scene of a split (from 0), its first photo
        the `index`-th of the set (from 1)."""
        return f"{number + 1:03d}"

    def write(self, path, scene, bit_depth=16, first_index=1, ev=None):
        """Writes `scene` (`synthetic.synthesize_scene`'s record) as a scene of this layout at
        `path`, with its EVs `ev` (default the scene's own)."""
        raise NotImplementedError


class KalantariLayout(Layout):
    name = "kalantari"
    summary = "Training/<scene>/{3 x *.tif, exposure.txt, HDRImg.hdr}"

    def holds(self, path):
        path = Path(path)
        return path.is_dir() and not AUTHORS.holds(path) and (
            (path / GROUND_TRUTH).exists() or (path / EXPOSURE_FILE).exists()
            or any(LDR_PATTERN.match(p.name) for p in path.iterdir() if p.is_file()))

    def files(self, path):
        path = Path(path)
        ldr_paths = sorted(p for p in path.iterdir() if p.is_file() and LDR_PATTERN.match(p.name))
        if len(ldr_paths) != 3:
            raise DataError(f"scene '{path.name}': {path} holds {len(ldr_paths)} LDR TIFF files "
                            f"({', '.join(p.name for p in ldr_paths) or 'none'}); expected 3")
        return ldr_paths, path / EXPOSURE_FILE, path / GROUND_TRUTH

    def write(self, path, scene, bit_depth=16, first_index=1, ev=None):
        ev = scene["exposure_bias"] if ev is None else ev
        for i, ldr in enumerate(scene["ldrs"]):
            write_ldr(path / f"IMG_{first_index + i:04d}.tif", ldr, bit_depth)
        write_text(path / EXPOSURE_FILE, "\n".join(f"{v:g}" for v in ev) + "\n")
        write_hdr(path / GROUND_TRUTH, scene["hdr"])


class AuthorsLayout(Layout):
    name = "authors"
    summary = ("what the authors' training code reads, train/<scene>/{input_1..3.tif, "
               "input_exp.txt, ref_hdr.hdr}")
    split_names = {TRAIN_SPLIT: "train", TEST_SPLIT: "test"}

    def holds(self, path):
        path = Path(path)
        names = (*AUTHORS_LDRS, AUTHORS_EXPOSURE_FILE, AUTHORS_GROUND_TRUTH)
        return path.is_dir() and any((path / n).exists() for n in names)

    def files(self, path):
        path = Path(path)
        return ([path / n for n in AUTHORS_LDRS], path / AUTHORS_EXPOSURE_FILE,
                path / AUTHORS_GROUND_TRUTH)

    def write(self, path, scene, bit_depth=16, first_index=1, ev=None):
        # Their EV file has CRLF line ends; so has ours.
        ev = scene["exposure_bias"] if ev is None else ev
        for name, ldr in zip(AUTHORS_LDRS, scene["ldrs"]):
            write_ldr(path / name, ldr, bit_depth)
        write_text(path / AUTHORS_EXPOSURE_FILE, "".join(f"{v:.6f}\r\n" for v in ev))
        write_hdr(path / AUTHORS_GROUND_TRUTH, scene["hdr"])


class NtireLayout(Layout):
    """A scene is the path prefix `<split>/NNNN` of its files."""
    name = "ntire"
    summary = ("the NTIRE challenge's Training/NNNN_{short,medium,long}.png, "
               "NNNN_exposures.npy, NNNN_gt.png, NNNN_alignratio.npy")

    def scenes_in(self, folder):
        return sorted(Path(folder) / m.group(1) for m in (
            NTIRE_SHORT.match(p.name) for p in Path(folder).iterdir()) if m)

    def holds(self, path):
        return not Path(path).is_dir() and ntire_file(path, "short").is_file()

    def files(self, path):
        return ([ntire_file(path, f) for f in NTIRE_FRAMES], ntire_file(path, NTIRE_EXPOSURES),
                ntire_file(path, NTIRE_GROUND_TRUTH))

    def sources(self, path):
        ldr_paths, exposure_file, ground_truth = self.files(path)
        return [*ldr_paths, exposure_file, ground_truth, ntire_file(path, NTIRE_ALIGN_RATIO)]

    def read_labels(self, path, max_pixels=MAX_PIXELS):
        _, exposure_file, ground_truth = self.files(path)
        exposure_bias = read_ntire_exposures(exposure_file)
        hdr = read_ntire_ground_truth(ground_truth, ntire_file(path, NTIRE_ALIGN_RATIO),
                                      max_pixels)
        # From the medium frame's exposure to ours, where the shortest exposure time is 1.
        hdr *= np.float32(2.0 ** (exposure_bias[0] - exposure_bias[1]))
        return exposure_bias, hdr

    def stored_ldrs(self, ldrs, peak, ldr_bits):
        # Re-encoded to the network's gamma in 16 bits, whatever `ldr_bits`.
        return reencode_gamma(ldrs, peak, NTIRE_GAMMA), 65535

    def ldr_bytes(self, ldr_bits):
        return 2

    def scene_name(self, number, index):
        return f"{index // 3 + 1:04d}"  # numbered across the set

    def write(self, path, scene, bit_depth=16, first_index=1, ev=None):
        """8-bit LDRs with gamma 2.24 (whatever `bit_depth`), the EVs relative to the medium
        frame as the challenge stores them (so `ev`'s origin does not matter), the ground truth at the medium frame's exposure as a 16-bit PNG and its align
        ratio (`read_ntire_ground_truth` reads it back)."""
        for frame, ldr in zip(NTIRE_FRAMES, scene["ldrs"]):
            write_ldr(ntire_file(path, frame), np.clip(ldr, 0, 1) ** (GAMMA / NTIRE_GAMMA), 8)
        ev = np.asarray(scene["exposure_bias"], np.float32)
        encoded, ratio = encode_ntire_ground_truth(
            scene["hdr"] * np.float32(2.0 ** (ev[1] - ev[0])))
        write_ldr(ntire_file(path, NTIRE_GROUND_TRUTH), encoded / np.float32(65535), 16)
        for part, array in ((NTIRE_EXPOSURES, ev - ev[1]), (NTIRE_ALIGN_RATIO, ratio)):
            with atomic_output(ntire_file(path, part)) as tmp, open(tmp, "wb") as f:
                np.save(f, array)


AUTHORS = AuthorsLayout()
LAYOUTS = {layout.name: layout for layout in (KalantariLayout(), AUTHORS, NtireLayout())}
DATA_DIR_HELP = (f"Data root: scenes in any of the layouts {', '.join(LAYOUTS)}. Default: the "
                 f"built-in procedural data set, generated on first use in the cache folder.")


def ntire_file(prefix, part):
    """The file `<prefix>_<part>` of an NTIRE scene (`part`: a frame name, `NTIRE_EXPOSURES`,
    `NTIRE_GROUND_TRUTH` or `NTIRE_ALIGN_RATIO`)."""
    prefix = Path(prefix)
    return prefix.parent / f"{prefix.name}_{part}{'' if '.' in part else '.png'}"


def layout_of(path):
    """The `Layout` of the scene at `path`: the first that holds it, else the first
    (Kalantari's, whose scenes are the plainest folders)."""
    default, *others = LAYOUTS.values()
    return next((layout for layout in others if layout.holds(path)), default)


def scene_sources(path):
    """Every file a scene is decoded from (what its disk cache must match)."""
    return layout_of(path).sources(path)


def split_folder(root, split):
    """The folder of `split` under `root` in the first layout that has it (`Training`/`Test`,
    or the authors' `train`/`test`), or the split's own name for any other."""
    names = list(dict.fromkeys(layout.split_names.get(split, split)
                               for layout in LAYOUTS.values()))
    for name in names:
        if (Path(root) / name).is_dir():
            return Path(root) / name
    raise DataError(f"{Path(root) / split}: split folder not found in data root {root}"
                    + (f" (nor {', '.join(str(Path(root) / n) for n in names[1:])})"
                       if len(names) > 1 else ""))


def _scenes_in(folder):
    return [p for layout in LAYOUTS.values() for p in layout.scenes_in(folder)]


def find_scene_dirs(root, split):
    """Scenes of a split, sorted; looks one level deeper for nested test sets."""
    root = Path(root)
    if not root.is_dir():
        raise DataError(f"{root}: data root not found (expected {root}/{TRAIN_SPLIT} and "
                        f"{root}/{TEST_SPLIT})")
    split_dir = split_folder(root, split)
    scenes = _scenes_in(split_dir)
    for child in sorted(p for p in split_dir.iterdir() if p.is_dir() and p not in scenes):
        scenes.extend(_scenes_in(child))
    if not scenes:
        raise DataError(f"{split_dir}: no scenes found (a scene in any of these layouts: "
                        + "; ".join(f"{layout.name}: {layout.summary}"
                                    for layout in LAYOUTS.values()) + ")")
    return sorted(scenes)


def load_scene(path, name=None, min_size=0, ldr_bits=16, max_pixels=MAX_PIXELS):
    """Decodes and checks one scene; raises DataError naming scene, file and problem.

    `ldr_bits=8` reduces 16-bit LDRs to 8 bits per channel (`reduce_to_8_bits`); 8-bit files
    are kept as they are either way (an NTIRE scene's too, with their 16-bit re-encoding).
    """
    if ldr_bits not in LDR_BITS:
        raise DataError(f"ldr_bits must be 8 or 16, got {ldr_bits}")
    path = Path(path)
    name = name or path.name
    where = f"scene '{name}'"
    layout = layout_of(path)
    ldr_paths, _, ground_truth = layout.files(path)
    try:
        exposure_bias, hdr = layout.read_labels(path, max_pixels)
        raws = [read_ldr_raw(p, max_pixels) for p in ldr_paths]
    except (ValueError, OSError) as err:  # ImageError and the exposure file's ValueError
        raise within(err, where, DataError) from None
    shapes = [r.shape for r, _ in raws]
    if len(set(shapes)) != 1:
        sizes = ", ".join(f"{p.name} {s[1]}x{s[0]}" for p, s in zip(ldr_paths, shapes))
        raise DataError(f"{where}: LDR images differ in size ({sizes})")
    if len({peak for _, peak in raws}) != 1:
        raise DataError(f"{where}: LDR images mix 8- and 16-bit files")
    if hdr.shape != shapes[0]:
        raise DataError(f"{where}: {ground_truth} is {hdr.shape[1]}x{hdr.shape[0]} but "
                        f"the LDRs are {shapes[0][1]}x{shapes[0][0]}")
    check_ground_truth(hdr, f"{where}: {ground_truth}")
    check_patch_fits(name, shapes[0][:2], min_size)
    ldrs, peak = layout.stored_ldrs(np.stack([r for r, _ in raws]), raws[0][1], ldr_bits)
    return Scene(name=name, path=path, ldr_paths=ldr_paths, ldrs=ldrs, peak=peak,
                 exposure_bias=exposure_bias, hdr=hdr)
