import json

import numpy as np
import pytest

from hdr_gan_tf import memory
from hdr_gan_tf.config import ConfigError
from hdr_gan_tf.image_io import read_hdr
from hdr_gan_tf.memory import MEMORY_SHARE, merge_bytes, plan_tile, tile_work
from hdr_gan_tf.merge import InferenceOptions, decide_tile, tile_setting
from tests.helpers import run_program

GB = 2 ** 30


def test_auto_merges_a_photo_that_fits_whole_and_a_camera_sized_one_in_tiles():
    small = plan_tile(1000, 1500, available=22 * GB, resident=0)
    assert small.tile == 0 and "whole image" in small.reason
    assert small.needed == merge_bytes(1000, 1500) < MEMORY_SHARE * 22 * GB
    large = plan_tile(4000, 6000, available=22 * GB, resident=0)  # 24 MP, a 24 GB machine
    assert large.tile > 0 and large.tile % 4 == 0
    assert large.needed <= MEMORY_SHARE * 22 * GB < merge_bytes(4000, 6000)
    assert tile_work(4000, 6000, large.tile, 32, 4) <= 1.2  # the overlap costs little
    assert f"tiles of {large.tile} pixels" in large.reason


def test_the_plan_follows_the_precision_the_model_and_the_memory_at_hand():
    # 12 MP: too much in float32 for 16 GB, not in bfloat16 (about three quarters the bytes)
    assert plan_tile(3000, 4000, "float32", available=16 * GB).tile > 0
    assert plan_tile(3000, 4000, "bfloat16", available=16 * GB).tile == 0
    assert plan_tile(3000, 4000, base_filters=8, available=16 * GB).tile == 0  # a narrower net
    starved = plan_tile(4000, 6000, available=GB)
    assert starved.tile == memory.MIN_TILE
    assert "more than 70% of the 1.0 GB available" in starved.reason
    # Less memory, smaller tiles: never more than the budget while one fits.
    tiles = [plan_tile(4000, 6000, available=gb * GB).tile for gb in (48, 16, 8, 4)]
    assert tiles[0] == 0 and tiles[1:] == sorted(tiles[1:], reverse=True) and tiles[-1] > 0


def test_a_tile_setting_is_auto_zero_or_a_side():
    assert tile_setting("auto") == (0, True) and tile_setting("") == (0, True)
    assert tile_setting("0") == (0, False) and tile_setting(512) == (512, False)
    with pytest.raises(ConfigError) as refused:
        tile_setting("big")
    assert refused.value.field == "tile"
    explicit = InferenceOptions(tile=256)
    assert decide_tile(explicit, 4000, 6000) == (explicit, None)  # an explicit tile wins


@pytest.mark.slow
def test_infer_tiles_where_the_memory_at_hand_is_short_and_records_why(small_log_dir, tiny_data,
                                                                      tmp_path, monkeypatch):
    scene = tiny_data / "Test" / "001"
    common = [f"--checkpoint={small_log_dir}",
              "--inputs=" + ",".join(map(str, sorted(scene.glob("*.tif")))),
              "--exposure_bias=" + ",".join((scene / "exposure.txt").read_text().split()),
              "--align=none", "--overlap=8"]
    whole = run_program("infer", *common, f"--output={tmp_path / 'whole.hdr'}")
    assert whole.returncode == 0, whole.stderr
    record = json.loads((tmp_path / "whole.json").read_text())
    assert record["options"]["auto_tile"] and record["options"]["tile"] == 0
    assert record["tile_plan"].startswith("whole image")
    # Memory for the program and 48-pixel tiles of this 8-channel network, not the whole image.
    budget = merge_bytes(96, 128, tile=48, base_filters=8) + 1
    assert budget < merge_bytes(96, 128, base_filters=8)
    monkeypatch.setattr(memory, "available_memory", lambda: int(budget / MEMORY_SHARE))
    monkeypatch.setattr(memory, "resident_memory", lambda: 0)
    monkeypatch.setattr(memory, "MIN_TILE", 32)
    tiled = run_program("infer", *common, f"--output={tmp_path / 'tiled.hdr'}")
    assert tiled.returncode == 0, tiled.stderr
    record = json.loads((tmp_path / "tiled.json").read_text())
    tile = record["options"]["tile"]
    assert 32 <= tile <= 48 and f"tiles of {tile} pixels" in record["tile_plan"]
    assert f"Tiles for tiled.hdr: tiles of {tile} pixels" in tiled.stdout
    explicit = run_program("infer", *common, f"--output={tmp_path / 'explicit.hdr'}",
                           f"--tile={tile}")
    assert explicit.returncode == 0, explicit.stderr
    np.testing.assert_array_equal(read_hdr(tmp_path / "tiled.hdr"),
                                  read_hdr(tmp_path / "explicit.hdr"))


def test_plans_for_odd_shapes_classical_merges_and_unknown_memory():
    # No tile smaller than the image: whole, whatever it needs.
    assert plan_tile(100, 120, overlap=64, available=GB // 100).tile == 0
    # A long strip: its tiles found among the sides that cover it exactly.
    strip = plan_tile(2, 10_000_000, available=24 * GB)
    assert strip.tile > 0 and memory.tile_work(2, 10_000_000, strip.tile, 32, 4) < 1.1
    # What the process holds already (TensorFlow, the model) is not available any more.
    assert plan_tile(1000, 1500, available=3 * GB, resident=GB // 2).tile == 0
    assert plan_tile(1000, 1500, available=3 * GB, resident=0).tile > 0
    # Debevec's merge streams in bands of rows when the whole image does not fit.
    assert memory.classical_plan(1000, 1500, available=22 * GB).tile == 0
    assert memory.classical_plan(40_000, 60_000, available=22 * GB).tile > 0
    assert memory.classical_plan(40_000, 60_000, bands=False, available=22 * GB).tile == 0
    options = InferenceOptions(auto_tile=True)
    assert decide_tile(options, 40_000, 60_000, merger="whole")[0].tile == 0


def test_the_memory_available_is_the_least_a_cgroup_above_this_process_leaves(monkeypatch,
                                                                              tmp_path):
    monkeypatch.setattr(memory, "_cgroup_limits", lambda: [(8 * GB, 3 * GB), (6 * GB, 2 * GB)])
    assert memory.available_memory() <= 4 * GB
