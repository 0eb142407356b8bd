"""RunConfig: JSON round trip, validation, dataset defaults, paths, and model differences."""

import dataclasses
import json
import math
import os
import re

import pytest

from vampkeras.config import RunConfig
from vampkeras.errors import ConfigError


def custom_config():
    return RunConfig(dataset="static_mnist", prior="mog", num_components=17, pseudo_init="data",
                     pseudo_init_mean=0.25, pseudo_init_std=0.125, latent_dim=7, hidden_units=33, epochs=9,
                     warmup=3, patience=4, batch_size=21, lr=3.7e-4, optimizer="adam", seed=123, max_examples=999,
                     data_dir="/data/x", run_dir="runs/r", export_dir="out/e", jit=True, keep_checkpoints=5)


def test_json_round_trip_is_exact():
    config = custom_config()
    text = config.to_json()
    restored = RunConfig.from_json(text)
    assert restored == config
    assert restored.lr == 3.7e-4 and isinstance(restored.max_examples, int)
    values = json.loads(text)
    assert set(values) == {f.name for f in dataclasses.fields(RunConfig)}
    assert values["num_components"] == 17 and values["jit"] is True and values["dataset"] == "static_mnist"


def test_default_json_round_trip_keeps_nones():
    config = RunConfig()
    restored = RunConfig.from_json(config.to_json())
    assert restored == config
    assert restored.num_components is None and restored.pseudo_init_std is None


def test_from_dict_refuses_unknown_keys():
    values = RunConfig().to_dict()
    values.update(learning_rate=1.0, zz_top=2)
    with pytest.raises(ConfigError, match="learning_rate, zz_top"):
        RunConfig.from_dict(values)


@pytest.mark.parametrize("text", ["{not json", "[1, 2]", "42", '"vae"'])
def test_from_json_refuses_what_is_not_a_json_object(text):
    with pytest.raises(ConfigError):
        RunConfig.from_json(text)


def test_validate_accepts_defaults_and_boundary_values():
    config = RunConfig()
    assert config.validate() is config
    RunConfig(num_components=1, warmup=0, max_examples=1, pseudo_init_std=0.0, epochs=1, patience=1, batch_size=1,
              lr=1e-12, latent_dim=1, hidden_units=1, keep_checkpoints=1).validate()
    custom_config().validate()


@pytest.mark.parametrize("field, value, message", [
    ("num_components", 0, "--components"),
    ("num_components", -3, "--components"),
    ("lr", 0.0, "--lr"),
    ("lr", -1e-3, "--lr"),
    ("lr", math.nan, "--lr"),
    ("batch_size", 0, "--batch-size"),
    ("warmup", -1, "--warmup"),
    ("prior", "gauss", "unknown prior 'gauss'"),
    ("model", "transformer", "unknown model 'transformer'"),
    ("optimizer", "sgd", "unknown optimizer 'sgd'"),
    ("pseudo_init", "zeros", "--pseudo-init"),
    ("init", "xavier", "unknown --init 'xavier'"),
    ("gated_normgrad", "per-layer", "unknown --gated-normgrad 'per-layer'"),
    ("pseudo_init_std", -0.01, "std"),
    ("latent_dim", 0, "latent dimension"),
    ("hidden_units", 0, "hidden units"),
    ("epochs", 0, "--epochs"),
    ("patience", 0, "--patience"),
    ("max_examples", 0, "--max-examples"),
    ("keep_checkpoints", 0, "checkpoint"),
    ("strategy", "parameter-server", "unknown --strategy 'parameter-server'"),
    ("replicas", 0, "--replicas"),
])
def test_validate_raises_config_error_naming_the_bad_option(field, value, message):
    config = dataclasses.replace(RunConfig(), **{field: value})
    with pytest.raises(ConfigError, match=re.escape(message)):
        config.validate()


@pytest.mark.parametrize("strategy", ["default", "mirrored", "multiworker"])
def test_every_strategy_is_valid(strategy):
    assert RunConfig(strategy=strategy).validate().strategy == strategy


def test_per_half_normgrad_needs_adam_normgrad():
    RunConfig(gated_normgrad="per-half").validate()
    with pytest.raises(ConfigError, match="--gated-normgrad per-half applies to --optimizer adam-normgrad only"):
        RunConfig(gated_normgrad="per-half", optimizer="adam").validate()


def test_a_config_saved_before_the_authors_options_loads_with_the_paper_settings():
    """config.json of runs trained before --init and --gated-normgrad existed (e.g. docs/results/): the
    defaults are what those runs did, so a resumed run agrees with its saved config."""
    values = RunConfig().to_dict()
    del values["init"], values["gated_normgrad"]
    loaded = RunConfig.from_dict(values)
    assert (loaded.init, loaded.gated_normgrad) == ("paper", "joint")
    assert loaded.model_differences(RunConfig()) == []


def test_replicas_only_for_mirrored():
    RunConfig(strategy="mirrored", replicas=2).validate()
    with pytest.raises(ConfigError, match="--replicas applies to --strategy mirrored only"):
        RunConfig(strategy="multiworker", replicas=2).validate()


def test_resolve_fills_only_missing_dataset_defaults():
    @dataclasses.dataclass
    class Spec:
        num_components: int = 500
        pseudo_init_mean: float = 0.05
        pseudo_init_std: float = 0.01
        likelihood: str = "bernoulli"
        binarization: str = "dynamic"

    config = RunConfig().resolve(Spec())
    assert (config.num_components, config.pseudo_init_mean, config.pseudo_init_std) == (500, 0.05, 0.01)
    assert (config.likelihood, config.binarization) == ("bernoulli", "dynamic")
    explicit = RunConfig(num_components=7, pseudo_init_mean=0.5, pseudo_init_std=0.0).resolve(Spec())
    assert (explicit.num_components, explicit.pseudo_init_mean, explicit.pseudo_init_std) == (7, 0.5, 0.0)


def test_default_paths():
    config = RunConfig(dataset="mnist5k", prior="mog").with_default_paths()
    assert re.fullmatch(r"mnist5k-vae-mog-\d{8}-\d{6}", os.path.basename(config.run_dir))
    assert os.path.dirname(config.run_dir) == "runs"
    assert config.export_dir == os.path.join("saved_models", os.path.basename(config.run_dir))
    assert config.run_name == os.path.basename(config.run_dir)
    kept = RunConfig(run_dir="somewhere/my-run", export_dir="elsewhere").with_default_paths()
    assert (kept.run_dir, kept.export_dir, kept.run_name) == ("somewhere/my-run", "elsewhere", "my-run")
    assert RunConfig(run_dir="a/b").with_default_paths().export_dir == os.path.join("saved_models", "b")


def test_model_differences_lists_changed_model_fields():
    saved = RunConfig(num_components=500, pseudo_init_mean=0.05, pseudo_init_std=0.01)
    assert saved.model_differences(dataclasses.replace(saved)) == []
    given = dataclasses.replace(saved, lr=1e-3, prior="mog", hidden_units=64)
    differences = saved.model_differences(given)
    assert len(differences) == 3
    assert "lr: saved 0.0005, given 0.001" in differences
    assert "prior: saved 'vampprior', given 'mog'" in differences
    assert "hidden_units: saved 300, given 64" in differences


@pytest.mark.parametrize("field, value", [
    ("dataset", "static_mnist"), ("prior", "standard"), ("num_components", 3), ("pseudo_init", "data"),
    ("pseudo_init_mean", 0.5), ("pseudo_init_std", 0.5), ("latent_dim", 2), ("hidden_units", 5),
    ("max_examples", 10), ("seed", 1), ("batch_size", 7), ("optimizer", "adam"), ("lr", 0.1), ("warmup", 1),
    ("init", "authors"), ("gated_normgrad", "per-half"), ("pseudo_init", "noisy-data"),
])
def test_each_model_field_is_a_difference(field, value):
    saved = RunConfig(num_components=500, pseudo_init_mean=0.05, pseudo_init_std=0.01)
    differences = saved.model_differences(dataclasses.replace(saved, **{field: value}))
    assert differences == [f"{field}: saved {getattr(saved, field)!r}, given {value!r}"]


@pytest.mark.parametrize("field, value", [
    ("epochs", 5), ("patience", 2), ("run_dir", "x"), ("export_dir", "y"), ("data_dir", "z"), ("jit", True),
    ("keep_checkpoints", 9),
])
def test_run_only_fields_are_not_differences(field, value):
    saved = RunConfig()
    assert saved.model_differences(dataclasses.replace(saved, **{field: value})) == []


@pytest.mark.parametrize("field, value, message", [
    ("seed", -1, "--seed must be in [0, 2^31)"),
    ("seed", 2 ** 31, "--seed must be in [0, 2^31)"),
    ("lr", float("nan"), "--lr must be a finite number"),
    ("lr", float("inf"), "--lr must be a finite number"),
    ("pseudo_init_mean", float("nan"), "init mean must be a finite number"),
    ("pseudo_init_std", float("inf"), "init std must be a finite number"),
    ("dataset", "nope", "unknown dataset 'nope'"),
])
def test_validate_refuses_values_outside_the_ranges(field, value, message):
    with pytest.raises(ConfigError, match=re.escape(message)):
        dataclasses.replace(RunConfig(), **{field: value}).validate()


def test_replicas_need_the_mirrored_strategy():
    with pytest.raises(ConfigError, match="--replicas applies to --strategy mirrored only"):
        RunConfig(replicas=2).validate()


@pytest.mark.parametrize("field, value, message", [
    ("num_components", "x", "'num_components' must be int or null, not 'x'"),
    ("epochs", 1.5, "'epochs' must be int, not 1.5"),
    ("epochs", True, "'epochs' must be int, not True"),
    ("weighted", 1, "'weighted' must be bool, not 1"),
    ("dataset", None, "'dataset' must be str, not None"),
    ("lr", "fast", "'lr' must be float, not 'fast'"),
])
def test_a_hand_edited_config_of_the_wrong_type_is_one_config_error(field, value, message):
    values = json.loads(RunConfig().to_json())
    values[field] = value
    with pytest.raises(ConfigError, match=re.escape(message)):
        RunConfig.from_json(json.dumps(values))


def test_ints_are_floats_in_a_saved_config():
    values = json.loads(RunConfig().to_json())
    values["lr"] = 1
    assert RunConfig.from_json(json.dumps(values)).lr == 1
