"""vampkeras.tuning: graph mode or XLA measured on the device at hand, cached per machine and model shape."""

import json
import time

import numpy as np
import pytest
import tensorflow as tf

from vampkeras import optimizers, tuning
from vampkeras.config import RunConfig
from vampkeras.models import build_model
from vampkeras.training import train
from tests.fakes import ImageSpec


def small_model(model="vae", prior="vampprior", compiled=True):
    config = RunConfig(model=model, prior=prior, num_components=5, latent_dim=4, hidden_units=16,
                       pseudo_init_mean=0.3, pseudo_init_std=0.2, seed=5)
    network = build_model(config, ImageSpec())
    if compiled:
        network.compile(optimizer=optimizers.build("adam-normgrad", 1e-3))
        network.optimizer.build(network.trainable_variables)
    return network


@pytest.fixture
def measuring(monkeypatch, tmp_path):
    """Tuning on (the test suite turns it off), with a cache of its own: the cache file's path."""
    monkeypatch.setenv("VAMPKERAS_TUNING", "on")
    monkeypatch.setenv("VAMPKERAS_CACHE", str(tmp_path / "cache"))
    return tmp_path / "cache" / tuning.CACHE_FILE


def no_measuring(*args, **kwargs):
    raise AssertionError("measured although the choice was known")


def test_seconds_per_call_times_each_candidate_alternately_within_the_budget():
    calls = []

    def sleeper(name, seconds):
        def function():
            calls.append(name)
            time.sleep(seconds)
            return tf.constant(0)
        return function

    seconds = tuning.seconds_per_call({"fast": sleeper("fast", 0.01), "slow": sleeper("slow", 0.04)},
                                      budget=2.0, max_rounds=5, min_rounds=2)
    assert 0.01 <= seconds["fast"] < seconds["slow"] and seconds["slow"] >= 0.04
    assert seconds["slow"] / seconds["fast"] > 2.0
    # one call each to compile, then rounds alternating: 2 s / ~0.05 s per round → 5 rounds (the maximum)
    assert calls == ["fast", "slow"] * 6
    calls.clear()
    tuning.seconds_per_call({"fast": sleeper("fast", 0.01), "slow": sleeper("slow", 0.04)}, budget=0.01)
    assert calls == ["fast", "slow"] * 3           # the minimum: 2 rounds


@pytest.mark.slow
def test_tune_training_measures_once_without_changing_the_model_then_reads_the_cache(measuring, monkeypatch):
    model = small_model()
    before = [v.numpy() for v in [*model.variables, *model.optimizer.variables]]
    choice = tuning.tune_training(model, batch_size=8)
    assert model.train_jit is choice
    # the timed steps trained the model; every variable is back as it was (weights, moments, step count)
    for variable, value in zip([*model.variables, *model.optimizer.variables], before):
        np.testing.assert_array_equal(variable.numpy(), value)
    assert int(model.optimizer.iterations.numpy()) == 0
    records = json.loads(measuring.read_text())
    (key, record), = records.items()
    assert key.startswith(tuning.device_description()) and "train vae VampPrior K=5 D=20 M=4" in key
    assert "batch=8" in key and record["choice"] == ("xla" if choice else "graph")
    assert set(record["seconds"]) == {"graph", "xla"} and min(record["seconds"].values()) > 0
    assert record["choice"] == min(record["seconds"], key=record["seconds"].get)

    # the same shape again: the cached choice, no measurement; and the cache is what decides
    monkeypatch.setattr(tuning, "seconds_per_call", no_measuring)
    assert tuning.tune_training(small_model(), batch_size=8) is choice
    records[key]["choice"] = "graph" if choice else "xla"
    measuring.write_text(json.dumps(records))
    assert tuning.tune_training(small_model(), batch_size=8) is (not choice)
    # another batch size or model is another workload: measured anew
    with pytest.raises(AssertionError, match="measured although"):
        tuning.tune_training(small_model(), batch_size=9)
    with pytest.raises(AssertionError, match="measured although"):
        tuning.tune_training(small_model(prior="standard"), batch_size=8)


@pytest.mark.slow
def test_tune_evaluation_chooses_between_modes_that_give_the_same_estimates(measuring, monkeypatch):
    model = small_model(model="hvae", compiled=False)
    model.evaluation_rows = 300                   # 3 samples x 100 examples per chunk: a quick measurement
    choice = tuning.tune_evaluation(model)
    assert model.evaluation_jit is choice
    (key, record), = json.loads(measuring.read_text()).items()
    assert "evaluation hvae VampPrior K=5" in key and "rows=300" in key
    assert record["choice"] == ("xla" if choice else "graph")
    x = (np.random.default_rng(2).uniform(size=(7, 20)) < 0.4).astype(np.float32)
    estimates = {}
    for mode in (False, True):
        model.evaluation_jit = mode
        estimates[mode] = model.log_likelihood(x, 30, seed=1, chunk_size=4).numpy()
    np.testing.assert_allclose(estimates[True], estimates[False], rtol=1e-5, atol=1e-4)
    monkeypatch.setattr(tuning, "seconds_per_call", no_measuring)
    again = small_model(model="hvae", compiled=False)
    again.evaluation_rows = 300
    assert tuning.tune_evaluation(again) is choice


def test_a_fixed_mode_or_the_switch_off_measures_nothing(measuring, monkeypatch):
    monkeypatch.setattr(tuning, "seconds_per_call", no_measuring)
    model = small_model()
    assert tuning.tune_training(model, 8, jit=False) is False and model.train_jit is False
    assert tuning.tune_evaluation(model, jit=True) is True and model.evaluation_jit is True
    assert not measuring.exists()
    monkeypatch.setenv("VAMPKERAS_TUNING", "off")
    model = small_model(model="pixelhvae", compiled=True)
    defaults = (model.train_jit, model.evaluation_jit)
    assert defaults == (False, False)             # PixelHVAE's built-in default: graph mode
    assert tuning.tune_training(model, 8) is False and tuning.tune_evaluation(model) is False
    assert not measuring.exists()
    # a model without a built optimizer cannot time its train step: its default stays
    monkeypatch.setenv("VAMPKERAS_TUNING", "on")
    assert tuning.tune_training(small_model(compiled=False), 8) is True
    assert not measuring.exists()


@pytest.mark.slow
def test_a_broken_or_unwritable_cache_costs_a_measurement_not_a_failure(measuring, monkeypatch, tmp_path, caplog):
    measuring.parent.mkdir(parents=True)
    measuring.write_text("{not json")
    choice = tuning.tune_training(small_model(), batch_size=8)
    assert json.loads(measuring.read_text())           # replaced by a valid record
    blocker = tmp_path / "a-file"
    blocker.write_text("")
    monkeypatch.setenv("VAMPKERAS_CACHE", str(blocker / "cache"))       # cannot be created
    with caplog.at_level("WARNING", logger="vampkeras.tuning"):
        assert tuning.tune_training(small_model(), batch_size=8) in (True, False)
    assert "could not save the speed measurement" in caplog.text
    assert isinstance(choice, bool)


@pytest.mark.slow
def test_training_measures_on_its_first_run_and_repeats_a_run_exactly(measuring, tmp_path):
    def run(name):
        config = RunConfig(epochs=2, warmup=1, max_examples=200, num_components=10, image_every=0,
                           run_dir=str(tmp_path / name), export_dir=str(tmp_path / f"{name}-export"))
        result = train(config, verbose=0)
        return (result.run_dir / "history.csv").read_text().splitlines()

    first = run("first")
    records = json.loads(measuring.read_text())
    assert sorted(key.split(" | ")[1].split()[0] for key in records) == ["evaluation", "train"]
    second = run("second")
    assert json.loads(measuring.read_text()) == records          # reused, not measured again
    loss_columns = [[row.split(",")[:7] for row in history[1:]] for history in (first, second)]
    assert loss_columns[0] == loss_columns[1]                    # same seed, same device: the same history
