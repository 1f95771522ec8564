"""A user's bracket as data: choosing three of up to nine photos, and where the exposures come
from (flags, a file, EXIF)."""

import math

import numpy as np
import pytest
from PIL import Image

from hdr_gan_tf.photos import TRAINED_EV_SPREAD, choose_three, exposures_for
from hdr_gan_tf.settings import ConfigError


def test_three_photos_are_all_three():
    assert choose_three([-2.0, 0.0, 2.0]) == ((0, 1, 2), "all three")


@pytest.mark.parametrize("ev, expected", [
    ([-4, -2, 0, 2, 4], (1, 2, 3)),        # the reference in the middle, ±2 within the spread
    ([-6, -3, 0, 3, 6], (1, 2, 3)),        # ±3 is the trained spread's edge: still within
    ([-2, -1, 0, 1, 2], (0, 2, 4)),        # the farthest within the spread on each side
    ([-8, 0, 8], (0, 1, 2)),               # three photos: all three, however far apart
    ([-9, -8, 0, 8, 9], (1, 2, 3)),        # none within the spread: the nearest on each side
])
def test_the_reference_is_nearest_the_middle_and_the_others_the_farthest_within_the_spread(
        ev, expected):
    chosen, how = choose_three([float(v) for v in ev])
    assert chosen == expected
    if len(ev) > 3:
        assert f"{TRAINED_EV_SPREAD:g} EV" in how


def test_a_given_role_is_kept_and_said():
    chosen, how = choose_three([-4.0, -2.0, 0.0, 2.0, 4.0], {"short": 0})
    assert chosen == (0, 2, 3) and how.startswith("short given")


@pytest.mark.parametrize("given, problem", [
    ({"reference": 0}, "no photo is darker than the reference"),
    ({"reference": 4}, "no photo is brighter than the reference"),
    ({"short": 3}, "must have increasing exposures"),
])
def test_impossible_roles_are_refused_naming_the_settings(given, problem):
    with pytest.raises(ConfigError, match=problem) as err:
        choose_three([-4.0, -2.0, 0.0, 2.0, 4.0], given)
    assert err.value.worded(lambda name: f"--{name}").startswith(f"--{next(iter(given))}: ")


def test_given_exposures_are_numbers_one_per_photo(tmp_path):
    paths = [tmp_path / f"{n}.tif" for n in "abc"]
    assert exposures_for(paths, ["0", "2", "-2"]) == ([0.0, 2.0, -2.0], "exposure_bias")
    for given, problem in ((["0", "x", "2"], "values must be numbers"),
                           (["0", "2"], "2 values for 3 photos")):
        with pytest.raises(ConfigError, match=problem) as err:
            exposures_for(paths, given)
        assert err.value.field == "exposure_bias"


def test_an_exposure_file_beside_the_photos_lists_them_in_file_name_order(tmp_path):
    paths = [tmp_path / n for n in ("c.tif", "a.tif", "b.tif")]
    (tmp_path / "exposure.txt").write_text("-2\n0\n2\n")
    values, source = exposures_for(paths)
    assert values == [2.0, -2.0, 0.0] and source == str(tmp_path / "exposure.txt")


def _jpeg_with_exposure_time(path, seconds):
    exif = Image.Exif()
    exif[0x829A] = seconds  # ExposureTime
    Image.fromarray(np.zeros((8, 8, 3), np.uint8)).save(path, exif=exif)
    return path


def test_exif_exposure_times_give_evs_relative_to_the_shortest(tmp_path):
    paths = [_jpeg_with_exposure_time(tmp_path / f"{i}.jpg", t)
             for i, t in enumerate((1 / 250, 1 / 1000, 1 / 60))]
    values, source = exposures_for(paths)
    assert source == "EXIF ExposureTime"
    np.testing.assert_allclose(values, [2.0, 0.0, math.log2(1000 / 60)], atol=1e-9)


def test_missing_exif_names_the_photos_and_the_setting(tmp_path):
    paths = [_jpeg_with_exposure_time(tmp_path / "a.jpg", 1 / 100)]
    Image.fromarray(np.zeros((8, 8, 3), np.uint8)).save(tmp_path / "b.jpg")
    paths.append(tmp_path / "b.jpg")
    with pytest.raises(ConfigError, match="b.jpg") as err:
        exposures_for(paths)
    assert "give --exposure_bias," in err.value.worded(lambda name: f"--{name}")
