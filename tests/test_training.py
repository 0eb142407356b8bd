"""vampkeras.training, fast: steps_per_execution (the largest divisor of the epoch's steps up to the limit), one
real but tiny train() run on 200 mnist5k images (its TrainResult, config.json with the data record, history and
SavedModel), resuming it for one more epoch, and the refusals of your own ``networks`` where they do not apply
(a hierarchical model; a run trained without them)."""

import json
import shutil

import numpy as np
import pytest

from vampkeras.training import steps_per_execution


# -- steps_per_execution -----------------------------------------------------------------------------------
@pytest.mark.parametrize("steps, limit, expected", [
    (1, 16, 1), (16, 16, 16), (32, 16, 16), (48, 16, 16), (100, 16, 10), (50, 16, 10), (60, 16, 15),
    (36, 16, 12), (64, 16, 16), (18, 16, 9), (30, 16, 15), (500, 16, 10), (24, 16, 12),
    (12, 5, 4), (100, 7, 5), (9, 1, 1), (10, 10, 10), (10, 9, 5),
])
def test_steps_per_execution_is_the_largest_divisor_up_to_the_limit(steps, limit, expected):
    assert steps_per_execution(steps, limit) == expected


@pytest.mark.parametrize("prime", [17, 19, 23, 97, 101, 499, 7919])
def test_a_prime_number_of_steps_above_the_limit_runs_one_step_per_call(prime):
    assert steps_per_execution(prime) == 1


@pytest.mark.parametrize("steps", [1, 2, 3, 5, 7, 11, 13, 15])
def test_fewer_steps_than_the_limit_run_the_whole_epoch_per_call(steps):
    assert steps_per_execution(steps) == steps
    assert steps_per_execution(steps, limit=100) == steps


def test_steps_per_execution_against_brute_force():
    for steps in range(1, 400):
        for limit in (1, 2, 3, 8, 16, 33):
            result = steps_per_execution(steps, limit)
            assert steps % result == 0 and 1 <= result <= min(steps, limit)
            assert not any(steps % d == 0 for d in range(result + 1, min(steps, limit) + 1))
    assert steps_per_execution(40) == steps_per_execution(40, 16) == 10       # the default limit is 16


# -- a tiny real run -----------------------------------------------------------------------------------------
def tiny_config(root, name="run", **overrides):
    from vampkeras.config import RunConfig

    values = dict(dataset="mnist5k", max_examples=200, epochs=2, warmup=1, num_components=5, latent_dim=2,
                  hidden_units=8, image_every=0, jit=False, run_dir=str(root / name),
                  export_dir=str(root / f"{name}-model"))
    values.update(overrides)
    return RunConfig(**values)


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    """Two epochs on 200 mnist5k images (2 steps of 100 per epoch)."""
    from vampkeras.training import train

    root = tmp_path_factory.mktemp("training")
    return train(tiny_config(root), verbose=0)


def test_a_tiny_run_trains_records_and_exports(trained):
    from vampkeras.run_folder import RunFolder

    run = RunFolder(trained.run_dir)
    history = run.read_history()
    assert trained.is_chief and not trained.stopped_early
    assert trained.epochs_trained == 2 and trained.best_epoch in (1, 2)
    assert [row["epoch"] for row in history] == [1.0, 2.0]
    val_losses = [row["val_loss"] for row in history]
    assert trained.best_val_loss == min(val_losses)
    assert trained.best_epoch == 1 + val_losses.index(min(val_losses))
    assert [row["beta"] for row in history] == [1.0, 1.0]          # warmup 1: β = 1 from the first epoch
    for row in history:
        assert row["val_loss"] == pytest.approx(row["val_reconstruction"] + row["val_kl"], rel=1e-5)
    # the SavedModel, with the run's config as its asset
    assert (trained.export_dir / "saved_model.pb").is_file()
    exported = json.loads((trained.export_dir / "assets" / "config.json").read_text())
    run_id = run.read_config().run_id
    assert run_id is not None and exported["run_id"] == run_id
    assert sorted(p.name for p in run.checkpoint_dir.iterdir()) == ["best.npz", "epoch-00001.npz",
                                                                     "epoch-00002.npz"]
    assert not run.figures_dir.exists()                            # image_every 0: no figures


def test_config_json_records_the_resolved_modelling_and_the_data_before_the_cut(trained):
    from vampkeras.data import load_dataset
    from vampkeras.data.user_data import content_sha256

    saved = json.loads((trained.run_dir / "config.json").read_text())
    assert saved["likelihood"] == "bernoulli" and saved["binarization"] == "dynamic"
    assert saved["max_examples"] == 200 and saved["networks"] is None
    assert (saved["num_components"], saved["pseudo_init_mean"], saved["pseudo_init_std"]) == (5, 0.05, 0.01)
    record = saved["data"]
    assert {k: record[k] for k in ("source", "image_shape", "likelihood", "binarization")} == {
        "source": "mnist5k", "image_shape": [28, 28], "likelihood": "bernoulli", "binarization": "dynamic"}
    # max_examples cuts the splits after the record is made: it describes all of mnist5k, not the 200 used
    assert {name: split["count"] for name, split in record["splits"].items()} == {
        "train": 4000, "validation": 500, "test": 500}
    full = load_dataset("mnist5k")
    cut = load_dataset("mnist5k", max_examples=200)
    assert [len(s) for s in (cut.train, cut.validation, cut.test)] == [200, 200, 200]
    assert record == full.record == cut.record
    assert record["splits"]["train"]["sha256"] == content_sha256(full.train)
    assert record["splits"]["train"]["sha256"] != content_sha256(cut.train)


def test_resume_trains_exactly_the_epochs_asked_for(trained, tmp_path):
    from vampkeras.config import RunConfig
    from vampkeras.run_folder import RunFolder
    from vampkeras.training import train

    # a copy of the run (its own export folder), so that the shared run stays as it was
    copy = tmp_path / "run"
    shutil.copytree(trained.run_dir, copy)
    before = RunFolder(copy).read_history()
    result = train(RunConfig(run_dir=str(copy), epochs=3), resume=True,
                   given={"epochs": 3, "export_dir": str(tmp_path / "model")}, verbose=0)
    history = RunFolder(copy).read_history()
    assert result.epochs_trained == 3 and len(history) == 3
    assert [row["epoch"] for row in history] == [1.0, 2.0, 3.0]
    assert history[:2] == before                                    # the first two epochs are kept as they were
    assert result.best_val_loss == min(row["val_loss"] for row in history)
    assert result.best_epoch in (1, 2, 3)
    assert (tmp_path / "model" / "saved_model.pb").is_file()


def test_resume_without_the_networks_it_was_not_trained_with(trained):
    from vampkeras.config import RunConfig
    from vampkeras.errors import ConfigError
    from vampkeras.training import train

    def my_networks(spec, config):
        raise AssertionError("the networks must not be built")

    config_before = (trained.run_dir / "config.json").read_bytes()
    history_before = (trained.run_dir / "history.csv").read_bytes()
    with pytest.raises(ConfigError, match=r"trained with the networks of vampkeras.*given: "
                                          r".*my_networks"):
        train(RunConfig(run_dir=str(trained.run_dir), epochs=3), resume=True, given={"epochs": 3},
              networks=my_networks, verbose=0)
    assert (trained.run_dir / "config.json").read_bytes() == config_before
    assert (trained.run_dir / "history.csv").read_bytes() == history_before


def own_networks(spec, config):
    raise AssertionError("the networks must not be built")


def test_own_networks_for_a_hierarchical_model_are_refused(tmp_path):
    from vampkeras.errors import ConfigError
    from vampkeras.training import train

    with pytest.raises(ConfigError, match="your own networks replace the VAE's; --model hvae has its own"):
        train(tiny_config(tmp_path, model="hvae", epochs=1), networks=own_networks, verbose=0)
    assert not (tmp_path / "run-model").exists()


def test_own_networks_for_a_hierarchical_model_are_refused_before_any_run_folder_is_created(tmp_path):
    from vampkeras.errors import ConfigError
    from vampkeras.training import train

    with pytest.raises(ConfigError, match="--model hvae"):
        train(tiny_config(tmp_path, model="hvae", epochs=1), networks=own_networks, verbose=0)
    assert not (tmp_path / "run").exists()


def test_the_authors_settings_reach_the_model_and_the_optimizer(tmp_path, monkeypatch):
    """--init authors, --gated-normgrad per-half and --pseudo-init noisy-data: recorded in config.json, and
    what the run builds uses them (the layers' and the optimizer's own tests check the arithmetic)."""
    from vampkeras import layers, models, optimizers
    from vampkeras.training import train

    built, initialised = {}, []
    real_build, real_init = optimizers.build, models.initialize_as_authors

    def spy_build(name, learning_rate, loss_scaling=False, halved_variables=()):
        optimizer = real_build(name, learning_rate, loss_scaling, halved_variables)
        built["optimizer"] = optimizer
        return optimizer

    def spy_init(model, seed):
        initialised.append(seed)
        real_init(model, seed)
        built["model"] = model

    monkeypatch.setattr(optimizers, "build", spy_build)
    monkeypatch.setattr(models, "initialize_as_authors", spy_init)
    result = train(tiny_config(tmp_path, epochs=1, init="authors", gated_normgrad="per-half",
                               pseudo_init="noisy-data", seed=9), verbose=0)
    saved = json.loads((result.run_dir / "config.json").read_text())
    assert (saved["init"], saved["gated_normgrad"], saved["pseudo_init"]) == ("authors", "per-half", "noisy-data")
    assert initialised[0] == 9                                    # the training model, with the run's seed
    gated = layers.gated_variables(built["model"])
    assert len(gated) == 8                                        # 4 gated layers in the VAE: kernels and biases
    assert built["optimizer"].halved_paths == tuple(sorted(v.path for v in gated))
    assert np.isfinite(result.best_val_loss)
