import json

import pytest

from hdr_gan_tf.config import (ConfigError, ModelConfig, RunConfig, TrainingConfig, read_config,
                               write_config)


def test_defaults_are_the_papers_configuration():
    config = RunConfig()
    assert config.model == ModelConfig(scales=3, base_filters=32, merging_blocks=True,
                                       use_discriminator=True, mu=5000.0)
    t = config.training
    assert (t.batch_size, t.patch_size, t.iterations) == (2, 256, 1_215_000)
    assert (t.lr_boundaries, t.lr_values) == ((114_300, 706_400), (1e-4, 1e-5, 1e-6))
    assert (t.gan_weight, t.sphere_moments, t.sphere_reference, t.clip_value) == (
        1.0, 3, "first_axis", 1.0)
    assert config.spectral_norm == "miyato"


def test_config_json_round_trips(tmp_path):
    config = RunConfig.from_flat({"scales": 4, "patch_size": 64, "lr_values": (1e-3,),
                                  "lr_boundaries": (), "gan_weight": 0.5},
                                 converted_from="model")
    write_config(tmp_path, config)
    assert read_config(tmp_path) == config
    data = json.loads((tmp_path / "config.json").read_text())
    assert data["model"]["scales"] == 4 and data["training"]["lr_values"] == [1e-3]
    assert data["converted_from"] == "model"
    assert config.replace(seed=7).training.seed == 7
    assert config.replace(seed=7).converted_from == "model"


@pytest.mark.parametrize("change, message", [
    (lambda d: d["model"].update(depth=3), "unknown ModelConfig fields depth"),
    (lambda d: d.update(extra=1), "unknown fields extra"),
    (lambda d: d["model"].update(scales="3"), "scales must be int, got '3'"),
    (lambda d: d["model"].update(merging_blocks=1), "merging_blocks must be bool"),
    (lambda d: d["training"].update(batch_size=2.5), "batch_size must be int"),
    (lambda d: d["training"].update(lr_values=0.1), "lr_values must be a list"),
    (lambda d: d["training"].update(batch_size=0), "batch_size: must be at least 1"),
    (lambda d: d["training"].update(patch_size=66), "must be a multiple of 4"),
    (lambda d: d.update(training=[]), "training must be a JSON object"),
    (lambda d: d.pop("spectral_norm"), "before 0.2.0"),
])
def test_config_json_with_a_bad_field_is_refused_by_name(tmp_path, change, message):
    data = json.loads(RunConfig().to_json())
    change(data)
    (tmp_path / "config.json").write_text(json.dumps(data))
    with pytest.raises(ConfigError, match=message) as info:
        read_config(tmp_path)
    assert str(tmp_path / "config.json") in str(info.value)


def test_config_json_that_is_not_an_object_or_not_json(tmp_path):
    (tmp_path / "config.json").write_text("[1, 2]")
    with pytest.raises(ConfigError, match="expected a JSON object"):
        read_config(tmp_path)
    (tmp_path / "config.json").write_text("{")
    with pytest.raises(ConfigError, match="not valid JSON"):
        read_config(tmp_path)
    # An integer of thousands of digits: Python's parser refuses it with a bare ValueError.
    (tmp_path / "config.json").write_text('{"model": {"base_filters": ' + "9" * 5000 + "}}")
    with pytest.raises(ConfigError, match=f"{tmp_path / 'config.json'}: not a config.json"):
        read_config(tmp_path)
    with pytest.raises(ConfigError, match="not found"):
        read_config(tmp_path / "nowhere")


@pytest.mark.parametrize("values, message", [
    ({"mu": 0.0}, "mu: must be at least"),
    ({"mu": float("nan")}, "mu: must be a finite number"),
    ({"scales": 5}, "scales: must be one of 2, 3, 4"),
    ({"summary_every": 0}, "summary_every: must be at least 1"),
    ({"sphere_reference": "equator"}, "sphere_reference: must be one of first_axis"),
    ({"lr_boundaries": (10, 5), "lr_values": (1e-4, 1e-5, 1e-6)}, "must be increasing"),
    ({"ldr_bits": 12}, "ldr_bits: must be one of 8, 16"),
    ({"clip_value": -1.0}, "clip_value: must be at least 0"),
    ({"precision": "none"}, "precision: must be one of float32, bfloat16, float16"),
    ({"supervise": "aux2"}, "supervise: unknown branches"),
    ({"patch_size": 32}, "patch_size: 32: the discriminator needs patches of at least 54"),
    ({"seed": -1}, "seed: must be at least 0"),
    ({"batch_size": 10 ** 20}, "batch_size: must be at most"),
    ({"no_such": 1}, "no_such: no such setting"),
])
def test_values_out_of_range_are_refused_by_name(values, message):
    with pytest.raises(ConfigError, match=message):
        RunConfig.from_flat(values)


def test_training_config_is_frozen():
    with pytest.raises(AttributeError):
        TrainingConfig().batch_size = 4
