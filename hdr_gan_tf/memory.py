"""What a merge needs and what the machine has: the estimate behind `--tile=auto`.

A merge's peak memory grows with the pixels the network sees at once. Merged whole, that is the
image; in tiles, one tile, plus the rows of one row of tiles that a streamed merge holds (the
photos' rows, the blended output's). The constants are `hdr-gan-infer`'s peak resident memory
as measured per pixel (`experiments/bench_tiles.py --memory`, docs/performance.md), for the
released network's width (32 base channels); the network's share scales with its width.
`plan_tile` merges whole when that fits in `MEMORY_SHARE` of the memory available, and otherwise
picks, among the tiles that fit, the one that computes the fewest pixels. The estimates are for
the network on the CPU (a GPU's own memory is not considered).
"""

import math
import os
import typing
from pathlib import Path

# TensorFlow, the model and the program (a merge's peak, less its pixels' share).
BASE_BYTES = 810 * 2 ** 20
# Per pixel merged whole: the photos, the result and the files' buffers, whatever the network;
# and the network's working set, by precision, for the released network's width (it scales
# with the width: a network of 8 base channels measured 367 bytes per pixel in all).
FIXED_BYTES_PER_PIXEL = 150
NETWORK_BYTES_PER_PIXEL = {"float32": 1000, "bfloat16": 700, "float16": 700}
# Per pixel of the rows a streamed tiled merge holds for one row of tiles.
BAND_BYTES_PER_PIXEL = 280
# Per pixel of a classical merge or fusion, whole (the photos and their float copies).
CLASSICAL_BYTES_PER_PIXEL = 200
# The share of the available memory a merge plans to use (the estimate's own spread, other
# programs' growth).
MEMORY_SHARE = 0.7
# The released network's width, which the constants were measured with.
MEASURED_BASE_FILTERS = 32
# The smallest tile `plan_tile` picks, and the overlap the programs blend tiles over (tiled
# against whole, 77 dB PSNR-μ at 32 pixels: docs/performance.md).
MIN_TILE = 128


class TilePlan(typing.NamedTuple):
    """How a merge of one image runs, and why."""
    tile: int  # 0: the whole image
    needed: int  # estimated peak bytes
    available: int  # bytes available when it was planned
    reason: str  # one line for the log and the sidecar


def available_memory():
    """Bytes this process can still use: the system's available memory, or less where a memory
    cgroup this process is in (its own or any above it, v2 or v1) leaves less below its limit.
    None where the system does not tell (not Linux)."""
    available = None
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemAvailable:"):
                available = int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        pass
    if available is None:
        try:
            available = os.sysconf("SC_AVPHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
        except (AttributeError, ValueError, OSError):
            return None
    for limit, usage in _cgroup_limits():
        available = min(available, limit - usage)
    return max(available, 0)


def _cgroup_limits():
    """`(limit, usage)` in bytes of every memory cgroup this process is in that has a limit:
    its own and those above it, as /proc/self/cgroup names them."""
    try:
        lines = Path("/proc/self/cgroup").read_text().splitlines()
    except OSError:
        return []
    found = []
    for line in lines:
        _, controllers, path = (line.split(":", 2) + ["", ""])[:3]
        if controllers == "":  # v2: one hierarchy
            root, limit_name, usage_name = Path("/sys/fs/cgroup"), "memory.max", "memory.current"
        elif "memory" in controllers.split(","):
            root = Path("/sys/fs/cgroup/memory")
            limit_name, usage_name = "memory.limit_in_bytes", "memory.usage_in_bytes"
        else:
            continue
        folder = root / path.strip("/")
        while True:
            try:
                limit = (folder / limit_name).read_text().strip()
                usage = int((folder / usage_name).read_text())
                if limit != "max" and int(limit) < 2 ** 60:  # v1's "no limit" is huge
                    found.append((int(limit), usage))
            except (OSError, ValueError):
                pass
            if folder == root or root not in folder.parents:
                break
            folder = folder.parent
    return found


def resident_memory():
    """Bytes this process holds now (its resident set), 0 where the system does not tell."""
    try:
        pages = int(Path("/proc/self/statm").read_text().split()[1])
        return pages * os.sysconf("SC_PAGE_SIZE")
    except (OSError, ValueError, IndexError, AttributeError):
        return 0


def classical_plan(height, width, bands=True, available=None):
    """The `TilePlan` of Debevec's merge (`bands`: it can stream) or Mertens' fusion:
    whole when its estimate fits in `MEMORY_SHARE` of the memory available, else (`bands`)
    streamed in bands of rows (`tile` 256)."""
    available = available_memory() if available is None else available
    needed = int(BASE_BYTES + CLASSICAL_BYTES_PER_PIXEL * height * width)
    gib = 2 ** 30
    if available is None or needed <= MEMORY_SHARE * available or not bands:
        room = ("the memory available is unknown here" if available is None
                else f"{MEMORY_SHARE:.0%} of the {available / gib:.1f} GB available")
        return TilePlan(0, needed, available or 0,
                        f"whole image (a classical merge or fusion): about {needed / gib:.1f} "
                        f"GB; {room}")
    return TilePlan(256, int(BASE_BYTES + CLASSICAL_BYTES_PER_PIXEL * 256 * width), available,
                    f"streamed in bands of rows (a classical merge): the whole image would need "
                    f"about {needed / gib:.1f} GB, more than {MEMORY_SHARE:.0%} of the "
                    f"{available / gib:.1f} GB available")


def merge_bytes(height, width, precision="float32", tile=0, base_filters=MEASURED_BASE_FILTERS):
    """Estimated peak bytes of a program merging `height` x `width` photos whole (`tile` 0) or
    streamed in tiles of side `tile`."""
    network = (NETWORK_BYTES_PER_PIXEL.get(precision, NETWORK_BYTES_PER_PIXEL["float32"])
               * base_filters / MEASURED_BASE_FILTERS)
    if not tile:
        return int(BASE_BYTES + (FIXED_BYTES_PER_PIXEL + network) * height * width)
    tile_h, tile_w = min(tile, height), min(tile, width)
    return int(BASE_BYTES + (FIXED_BYTES_PER_PIXEL + network) * tile_h * tile_w
               + BAND_BYTES_PER_PIXEL * tile_h * width)


def _tiles_along(size, tile, overlap):
    """How many tiles `merge.tile_starts` lays along a side of `size` pixels."""
    return 1 if size <= tile else -(-(size - tile) // (tile - overlap)) + 1


def tile_work(height, width, tile, overlap, multiple=1):
    """Pixels a tiled merge computes per pixel of the image (`merge.merge_bands`' grid: tiles
    of `tile`, rounded up to `multiple`, stepping by `tile - overlap`)."""
    tile = -(-tile // multiple) * multiple
    tile_h, tile_w = min(tile, height), min(tile, width)
    return (_tiles_along(height, tile_h, overlap) * tile_h
            * _tiles_along(width, tile_w, overlap) * tile_w / (height * width))


def _candidate_tiles(height, width, smallest, overlap, multiple):
    """Tile sides worth trying, increasing: every multiple up to a few thousand pixels, and
    beyond that the sides whose grid covers a side of the image in n tiles exactly."""
    largest = -(-max(height, width) // multiple) * multiple
    sides = set(range(smallest, min(largest, 4096) + 1, multiple))
    for size in (height, width):
        for n in range(1, 65):
            side = -(-(size + (n - 1) * overlap) // n)
            side = -(-side // multiple) * multiple
            if smallest <= side <= largest:
                sides.add(side)
    return sorted(sides)


def plan_tile(height, width, precision="float32", overlap=32, multiple=4,
              base_filters=MEASURED_BASE_FILTERS, available=None, resident=None):
    """The `TilePlan` for merging `height` x `width` photos: whole if its estimate fits in
    `MEMORY_SHARE` of the memory available (`available` bytes, the machine's unless given;
    what the process holds already, `resident`, counts towards the estimate's base), else the
    tile side (a multiple of `multiple`) that fits and computes the fewest pixels, the larger on
    a tie; the smallest tile when none fits, or the whole image when no tile is smaller."""
    gib = 2 ** 30
    if available is None:
        available = available_memory()
        resident = resident_memory() if resident is None else resident
    whole = merge_bytes(height, width, precision, 0, base_filters)
    if available is None:
        return TilePlan(0, whole, 0, f"whole image (the memory available is unknown here): "
                                     f"about {whole / gib:.1f} GB")
    available, held = int(available), min(int(resident or 0), BASE_BYTES)
    budget = MEMORY_SHARE * available + held  # what the process holds is not available
    share = f"{MEMORY_SHARE:.0%} of the {available / gib:.1f} GB available"
    if whole <= budget:
        return TilePlan(0, whole, available, f"whole image: about {whole / gib:.1f} GB, within "
                                             f"{share}")
    smallest = -(-max(MIN_TILE, 2 * overlap + multiple) // multiple) * multiple
    if smallest >= max(height, width):
        return TilePlan(0, whole, available, f"whole image: about {whole / gib:.1f} GB, more "
                                             f"than {share}, and no tile would be smaller")
    best = None
    for tile in _candidate_tiles(height, width, smallest, overlap, multiple):
        needed = merge_bytes(height, width, precision, tile, base_filters)
        if needed > budget:
            break  # larger tiles need more
        work = tile_work(height, width, tile, overlap, multiple)
        if best is None or work <= best[0] + 1e-9:
            best = (work, tile, needed)
    if best is None:
        needed = merge_bytes(height, width, precision, smallest, base_filters)
        return TilePlan(smallest, needed, available,
                        f"tiles of {smallest} pixels, the smallest: about {needed / gib:.1f} "
                        f"GB, more than {share}")
    work, tile, needed = best
    return TilePlan(tile, needed, available,
                    f"tiles of {tile} pixels: about {needed / gib:.1f} GB, computing "
                    f"{math.ceil(round((work - 1) * 100, 6))}% more pixels (the whole image "
                    f"would need about {whole / gib:.1f} GB, more than {share})")
