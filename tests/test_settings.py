"""Errors that name settings, worded by each program its own way."""

import pytest

from hdr_gan_tf.image_io import ImageError
from hdr_gan_tf.outputs import OutputError
from hdr_gan_tf.settings import ConfigError, SettingError, plain, worded


def test_a_message_names_its_settings_plainly_until_a_program_words_them():
    err = ConfigError("set {overwrite} or use another {logdir}", field="logdir",
                      mentions=["overwrite", "logdir"])
    assert str(err) == "logdir: set `overwrite` or use another `logdir`"
    flag = lambda name: f"--{name}"  # noqa: E731
    assert err.worded(flag) == "--logdir: set --overwrite or use another --logdir"
    assert worded(err, lambda name: name.upper()) == "LOGDIR: set OVERWRITE or use another LOGDIR"


def test_braces_of_anything_but_a_mentioned_setting_are_left_alone():
    err = SettingError("/tmp/{odd}/x: bad {tile}", mentions=["tile"])
    assert err.worded(lambda name: f"--{name}") == "/tmp/{odd}/x: bad --tile"
    assert str(err) == f"/tmp/{{odd}}/x: bad {plain('tile')}"


def test_other_errors_are_worded_as_they_are():
    assert worded(ValueError("plain"), lambda name: f"--{name}") == "plain"


@pytest.mark.parametrize("error", [ImageError, OutputError, ConfigError])
def test_the_library_errors_that_may_name_settings_are_value_errors(error):
    assert issubclass(error, SettingError) and issubclass(error, ValueError)


def test_an_error_wrapped_for_its_context_keeps_the_settings_it_names():
    from hdr_gan_tf.layouts import DataError
    from hdr_gan_tf.settings import within

    inner = ImageError("a.tif: too large ({max_pixels} raises the limit)", field="input",
                       mentions=["max_pixels"])
    outer = within(inner, "scene '001'", DataError)
    assert isinstance(outer, DataError)
    assert outer.worded(lambda name: f"--{name}") == (
        "scene '001': --input: a.tif: too large (--max_pixels raises the limit)")
    assert str(within(OSError("disk"), "scene '001'", DataError)) == "scene '001': disk"
