"""What a merge needs and what the machine has: the estimate behind `--tile=auto`.

A merge's peak memory grows with the pixels the network sees at once. Merged whole, that is the
image; in tiles, one tile, plus the rows of one row of tiles that a streamed merge holds (the
photos' rows, the blended output's). The constants are `hdr-gan-infer`'s peak resident memory
as measured per pixel (`experiments/bench_tiles.py --memory`, docs/performance.md), for the
released network's width (32 base channels); the network's share scales with its width.
`plan_tile` merges whole when that fits in `MEMORY_SHARE` of the memory available, and otherwise
picks, among the tiles that fit, the one that computes the fewest pixels.
"""

import math
import os
import typing
from pathlib import Path

# TensorFlow, the model and the program (a merge's peak, less its pixels' share).
BASE_BYTES = 810 * 2 ** 20
# Per pixel merged whole, by precision: the network's working set, the photos and the result.
BYTES_PER_PIXEL = {"float32": 1145, "bfloat16": 842, "float16": 842}
# Per pixel of the rows a streamed tiled merge holds for one row of tiles.
BAND_BYTES_PER_PIXEL = 280
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
    """Bytes this process can still use: the system's available memory, or the cgroup's limit
    less its usage where that is smaller (containers; cgroup v2 or v1)."""
    available = os.sysconf("SC_AVPHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemAvailable:"):
                available = int(line.split()[1]) * 1024
    except OSError:
        pass
    for limit_file, usage_file in (("/sys/fs/cgroup/memory.max", "/sys/fs/cgroup/memory.current"),
                                   ("/sys/fs/cgroup/memory/memory.limit_in_bytes",
                                    "/sys/fs/cgroup/memory/memory.usage_in_bytes")):
        try:
            limit = Path(limit_file).read_text().strip()
            usage = int(Path(usage_file).read_text())
        except (OSError, ValueError):
            continue
        if limit != "max" and int(limit) < 2 ** 60:  # v1 writes a huge number for no limit
            available = min(available, int(limit) - usage)
        break
    return max(available, 0)


def merge_bytes(height, width, precision="float32", tile=0, base_filters=MEASURED_BASE_FILTERS):
    """Estimated peak bytes of merging `height` x `width` photos whole (`tile` 0) or streamed in
    tiles of side `tile`."""
    scale = base_filters / MEASURED_BASE_FILTERS
    per_pixel = BYTES_PER_PIXEL.get(precision, BYTES_PER_PIXEL["float32"]) * scale
    if not tile:
        return int(BASE_BYTES + per_pixel * height * width)
    tile_h, tile_w = min(tile, height), min(tile, width)
    return int(BASE_BYTES + per_pixel * tile_h * tile_w + BAND_BYTES_PER_PIXEL * tile_h * width)


def tile_work(height, width, tile, overlap, multiple=1):
    """Pixels a tiled merge computes per pixel of the image (`merge.merge_bands`' grid: tiles
    of `tile`, rounded up to `multiple`, stepping by `tile - overlap`)."""
    from hdr_gan_tf.merge import tile_starts

    tile = -(-tile // multiple) * multiple
    tile_h, tile_w = min(tile, height), min(tile, width)
    return (len(tile_starts(height, tile_h, overlap)) * tile_h
            * len(tile_starts(width, tile_w, overlap)) * tile_w / (height * width))


def plan_tile(height, width, precision="float32", overlap=32, multiple=4,
              base_filters=MEASURED_BASE_FILTERS, available=None):
    """The `TilePlan` for merging `height` x `width` photos: whole if its estimate fits in
    `MEMORY_SHARE` of `available` bytes (the machine's, `available_memory`, unless given),
    else the tile side (a multiple of `multiple`) that fits and computes the fewest pixels,
    the larger on a tie; the smallest tile when none fits."""
    available = available_memory() if available is None else int(available)
    budget = MEMORY_SHARE * available
    whole = merge_bytes(height, width, precision, 0, base_filters)
    gib = 2 ** 30
    if whole <= budget:
        return TilePlan(0, whole, available, f"whole image: about {whole / gib:.1f} GB of the "
                                             f"{available / gib:.1f} GB available")
    smallest = max(MIN_TILE, 2 * overlap + multiple)
    smallest = -(-smallest // multiple) * multiple
    candidates = range(smallest, -(-max(height, width) // multiple) * multiple + 1, multiple)
    best = None
    for tile in candidates:
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
                        f"GB, more than the {available / gib:.1f} GB available allow")
    work, tile, needed = best
    return TilePlan(tile, needed, available,
                    f"tiles of {tile} pixels (the whole image would need about "
                    f"{whole / gib:.1f} GB of the {available / gib:.1f} GB available; the tiles "
                    f"about {needed / gib:.1f} GB, computing {math.ceil((work - 1) * 100)}% "
                    f"more pixels)")
