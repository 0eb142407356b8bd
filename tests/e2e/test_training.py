"""Training end to end on the embedded mnist5k data: run folder, validation loss, resume, refusals."""

import csv
import json

import numpy as np
import pytest

from vampkeras import checkpoints
from vampkeras.config import RunConfig
from vampkeras.errors import ConfigError, TrainingDiverged, VampkerasError
from vampkeras.epoch_keeper import warmup_beta
from vampkeras.training import train


def read_history(run_dir):
    with open(run_dir / "history.csv") as stream:
        return [{k: float(v) for k, v in row.items()} for row in csv.DictReader(stream)]


def small_config(tmp_path, name="run", **overrides):
    values = dict(epochs=2, warmup=2, max_examples=1000, run_dir=str(tmp_path / name),
                  export_dir=str(tmp_path / f"{name}-export"))
    values.update(overrides)
    return RunConfig(**values)


def test_warmup_beta_schedule():
    assert [warmup_beta(e, 4) for e in (1, 2, 4, 9)] == [0.25, 0.5, 1.0, 1.0]
    assert warmup_beta(1, 0) == 1.0


def test_two_epochs_lower_the_validation_loss_and_fill_the_run_folder(trained_run):
    run_dir = trained_run.run_dir
    history = read_history(run_dir)
    assert [row["epoch"] for row in history] == [1.0, 2.0]
    assert history[1]["val_loss"] < history[0]["val_loss"] - 1.0
    assert [row["beta"] for row in history] == [0.5, 1.0]
    for row in history:
        assert np.isclose(row["loss"], row["reconstruction"] + row["beta"] * row["kl"], rtol=0.05)
        assert np.isclose(row["val_loss"], row["val_reconstruction"] + row["val_kl"], rtol=1e-4)
    saved = RunConfig.from_json((run_dir / "config.json").read_text())
    assert saved.num_components == 500 and saved.pseudo_init_mean == 0.05 and saved.prior == "vampprior"
    names = sorted(p.name for p in (run_dir / "checkpoints").iterdir())
    assert names == ["best.npz", "epoch-00001.npz", "epoch-00002.npz"]
    assert trained_run.best_epoch == 2 and trained_run.epochs_trained == 2
    assert (trained_run.export_dir / "saved_model.pb").is_file()


def test_tensorboard_scalars_are_logged(trained_run):
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    accumulator = EventAccumulator(str(trained_run.run_dir / "logs"))
    accumulator.Reload()
    tags = set(accumulator.Tags()["tensors"]) | set(accumulator.Tags()["scalars"])
    assert {"loss", "reconstruction", "kl", "val_loss", "beta"} <= tags


def test_resume_continues_exactly_where_an_uninterrupted_run_would_be(tmp_path):
    straight = train(small_config(tmp_path, "straight", epochs=3), verbose=0)
    first = train(small_config(tmp_path, "split", epochs=2), verbose=0)
    resumed = train(RunConfig(run_dir=str(first.run_dir), epochs=3), resume=True, given={"epochs": 3}, verbose=0)
    assert resumed.epochs_trained == 3
    split_history = read_history(resumed.run_dir)
    straight_history = read_history(straight.run_dir)
    assert [row["epoch"] for row in split_history] == [1.0, 2.0, 3.0]
    for a, b in zip(split_history, straight_history):
        assert a["val_loss"] == pytest.approx(b["val_loss"], rel=1e-4)
        assert a["loss"] == pytest.approx(b["loss"], rel=1e-4)


def test_resume_refuses_a_different_model(trained_run):
    with pytest.raises(ConfigError, match="prior: saved 'vampprior', given 'standard'"):
        train(RunConfig(run_dir=str(trained_run.run_dir), prior="standard"), resume=True,
              given={"prior": "standard"}, verbose=0)


def test_a_new_run_never_reuses_a_run_folder(trained_run):
    before = (trained_run.run_dir / "config.json").read_bytes()
    with pytest.raises(VampkerasError, match="already holds a run"):
        train(RunConfig(run_dir=str(trained_run.run_dir), epochs=1), verbose=0)
    assert (trained_run.run_dir / "config.json").read_bytes() == before


def test_export_into_a_foreign_model_folder_is_refused_before_training(tmp_path, trained_run):
    config = small_config(tmp_path, "other", epochs=1, export_dir=str(trained_run.export_dir))
    with pytest.raises(VampkerasError, match="--overwrite"):
        train(config, verbose=0)
    assert not (tmp_path / "other").exists()


def test_a_diverging_loss_stops_with_a_clear_error(tmp_path):
    config = small_config(tmp_path, "nan", epochs=3, lr=1e12, optimizer="adam")
    with pytest.raises(TrainingDiverged, match=r"NaN/Inf in epoch \d+, step \d+"):
        train(config, verbose=0)


def test_standard_prior_trains_too(tmp_path):
    result = train(small_config(tmp_path, "standard", prior="standard", epochs=1), verbose=0)
    assert json.loads((result.export_dir / "assets" / "config.json").read_text())["prior"] == "standard"
    assert checkpoints.epoch_checkpoints(result.run_dir / "checkpoints")[-1][0] == 1
