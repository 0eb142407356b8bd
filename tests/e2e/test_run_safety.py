"""No command loses a run: the lock, foreign folders, resume that never goes backwards, --restart, hand-edited
configs, read-only run folders, options checked before anything is created."""

import json
import os
import shutil

import numpy as np
import pytest
from click.testing import CliRunner

from vampkeras.run_folder import RunFolder
from vampkeras_cli.main import main

TINY = ["--max-examples", "200", "--components", "10", "--warmup", "1", "--quiet"]


def invoke(*args):
    return CliRunner().invoke(main, [str(a) for a in args], catch_exceptions=False)


def assert_user_error(result, *fragments):
    assert result.exit_code == 2, result.output
    assert "Traceback" not in result.output and "Error: " in result.output
    for fragment in fragments:
        assert fragment in result.output, result.output


def snapshot(folder):
    """Every file under ``folder`` with its bytes (what a refused command must leave unchanged)."""
    return {str(path.relative_to(folder)): path.read_bytes() for path in sorted(folder.rglob("*")) if path.is_file()}


@pytest.fixture
def run_copy(trained_run, tmp_path):
    """A private copy of the shared 2-epoch run folder (tests may damage it)."""
    target = tmp_path / "run"
    shutil.copytree(trained_run.run_dir, target)
    return target


def test_a_run_folder_in_use_is_refused_naming_the_holder(run_copy, tmp_path):
    before = snapshot(run_copy)
    with RunFolder(run_copy).locked():                 # as another `vampkeras train` would hold it
        result = invoke("train", "--resume", "--run-dir", run_copy, "--epochs", 3, "--export", tmp_path / "m")
    assert_user_error(result, "is in use by process", str(os.getpid()))
    assert snapshot(run_copy) == {**before, ".lock": snapshot(run_copy)[".lock"]}
    assert not (tmp_path / "m").exists()


def test_a_non_empty_folder_that_holds_no_run_is_refused_before_anything_is_written(tmp_path):
    folder = tmp_path / "mine"
    folder.mkdir()
    (folder / "history.csv").write_text("my own notes\n")
    (folder / "checkpoints").mkdir()
    (folder / "checkpoints" / "best.npz").write_bytes(b"my weights")
    before = snapshot(folder)
    result = invoke("train", "--run-dir", folder, "--export", tmp_path / "m", *TINY)
    assert_user_error(result, "is not empty and holds no run")
    assert snapshot(folder) == before and not (tmp_path / "m").exists()


def test_resume_never_goes_backwards_when_no_checkpoint_can_be_read(run_copy, tmp_path):
    for path in (run_copy / "checkpoints").glob("epoch-*.npz"):
        path.write_bytes(path.read_bytes()[:100])        # truncated, as by a failing disk
    before = snapshot(run_copy)
    result = invoke("train", "--resume", "--run-dir", run_copy, "--epochs", 4, "--export", tmp_path / "m")
    assert_user_error(result, "cannot resume", "can be read", "--restart")
    after = snapshot(run_copy)
    after.pop(".lock"), before.pop(".lock")     # (the lock file records its last holder)
    assert after == before                      # history.csv and best.npz untouched
    assert not (tmp_path / "m").exists()


def test_restart_moves_the_old_run_aside_and_trains_afresh(run_copy, tmp_path):
    old = snapshot(run_copy)
    old_config = json.loads((run_copy / "config.json").read_text())
    result = invoke("train", "--restart", "--run-dir", run_copy, "--epochs", 1, "--export", tmp_path / "m", *TINY)
    assert result.exit_code == 0, result.output
    aside = [p for p in tmp_path.iterdir() if p.name.startswith("run.restarted-")]
    assert len(aside) == 1
    moved = snapshot(aside[0])
    moved.pop(".lock", None)
    old.pop(".lock", None)
    assert moved == old                                  # the old run, byte for byte
    new_config = json.loads((run_copy / "config.json").read_text())
    assert new_config["run_id"] != old_config["run_id"] and new_config["epochs"] == 1
    assert len(RunFolder(run_copy).read_history()) == 1


@pytest.mark.parametrize("args, message", [
    (["--restart", "--resume"], "pass one of them"),
    (["--restart"], "--restart found no run"),
])
def test_restart_is_refused_where_it_makes_no_sense(tmp_path, args, message):
    result = invoke("train", "--run-dir", tmp_path / "empty", "--export", tmp_path / "m", *args, *TINY)
    assert_user_error(result, message)
    assert list(tmp_path.iterdir()) == []


def test_a_clean_error_after_loading_the_data_leaves_no_file_behind(tmp_path):
    result = invoke("train", "--run-dir", tmp_path / "run", "--export", tmp_path / "m", "--max-examples", 1,
                    "--pseudo-init", "data", "--quiet")
    assert_user_error(result, "needs at least that many training images")
    assert list(tmp_path.iterdir()) == []
    # and the same command with a valid K now runs (no left-over config.json blocks it)
    result = invoke("train", "--run-dir", tmp_path / "run", "--export", tmp_path / "m", "--max-examples", 20,
                    "--components", 5, "--pseudo-init", "data", "--epochs", 1, "--quiet")
    assert result.exit_code == 0, result.output


@pytest.mark.parametrize("key, value, message", [
    ("dataset", "nope", "unknown dataset 'nope'"),
    ("num_components", "x", "'num_components' must be int or null"),
    ("seed", -3, "--seed must be in [0, 2^31)"),
    ("colour", "blue", "unknown configuration keys: colour"),
])
@pytest.mark.parametrize("command", ["evaluate", "report", "resume"])
def test_a_hand_edited_config_is_one_error_naming_the_file(run_copy, tmp_path, key, value, message, command):
    config = json.loads((run_copy / "config.json").read_text())
    config[key] = value
    (run_copy / "config.json").write_text(json.dumps(config))
    args = {"evaluate": ["evaluate", run_copy, "--max-examples", 5, "--samples", 2, "--quiet"],
            "report": ["report", run_copy, "--max-examples", 5, "--samples", 2],
            "resume": ["train", "--resume", "--run-dir", run_copy, "--export", tmp_path / "m"]}[command]
    assert_user_error(invoke(*args), str(run_copy / "config.json"), message)


def test_a_broken_config_json_is_one_error(run_copy):
    (run_copy / "config.json").write_text("{ not json")
    assert_user_error(invoke("evaluate", run_copy, "--quiet"), "not valid JSON")


def test_a_read_only_run_folder_is_evaluated_and_reported_elsewhere(run_copy, tmp_path, monkeypatch):
    # (as root every folder is writable: the read-only state is what RunFolder.is_writable and os.access see)
    real_access = os.access
    monkeypatch.setattr(os, "access", lambda path, mode, **kw: False if str(path).startswith(str(run_copy))
                        and mode & os.W_OK else real_access(path, mode, **kw))
    before = snapshot(run_copy)
    result = invoke("evaluate", run_copy, "--max-examples", 10, "--samples", 5, "--quiet",
                    "--json", tmp_path / "eval.json", "--figures", tmp_path / "figures")
    assert result.exit_code == 0, result.output
    assert json.loads((tmp_path / "eval.json").read_text())["num_examples"] == 10
    assert (tmp_path / "figures" / "log_likelihood_histogram.png").is_file()
    assert snapshot(run_copy) == before
    assert_user_error(invoke("report", run_copy, "--max-examples", 10, "--samples", 5),
                      "not writable", "--out FILE")
    result = invoke("report", run_copy, "--max-examples", 10, "--samples", 5, "--out", tmp_path / "r.html")
    assert result.exit_code == 0, result.output
    assert (tmp_path / "r.html").read_text().startswith("<!DOCTYPE html>")
    assert snapshot(run_copy) == before


def test_evaluate_json_into_an_impossible_place_is_refused_before_scoring(run_copy, tmp_path):
    blocker = tmp_path / "file"
    blocker.write_text("x")
    result = invoke("evaluate", run_copy, "--quiet", "--json", blocker / "eval.json")
    assert_user_error(result, "cannot write --json", "is a file")
    assert "log_likelihood" not in result.output          # refused before the work, not after printing it


def test_a_nan_result_is_an_error_not_invalid_json(run_copy, tmp_path, monkeypatch):
    from vampkeras import evaluation

    real_score = evaluation.score

    def nan_scores(*args, **kwargs):
        values = real_score(*args, **kwargs)
        values["log_likelihood"] = np.full_like(values["log_likelihood"], np.nan)
        return values

    monkeypatch.setattr(evaluation, "score", nan_scores)
    before = snapshot(run_copy)           # (the shared run may hold an earlier evaluation.json)
    result = invoke("evaluate", run_copy, "--max-examples", 4, "--samples", 2, "--quiet",
                    "--json", tmp_path / "eval.json")
    assert_user_error(result, "not a finite number", "log_likelihood = nan")
    assert not (tmp_path / "eval.json").exists() and snapshot(run_copy) == before


def test_restart_keeps_the_old_runs_export_unless_overwrite(trained_run, run_copy, tmp_path):
    export_copy = tmp_path / "model"
    shutil.copytree(trained_run.export_dir, export_copy)
    run_before, export_before = snapshot(run_copy), snapshot(export_copy)
    result = invoke("train", "--restart", "--run-dir", run_copy, "--export", export_copy, "--epochs", 1, *TINY)
    assert_user_error(result, "already holds the SavedModel of another run", "--overwrite")
    assert snapshot(run_copy) == run_before and snapshot(export_copy) == export_before   # nothing moved
    assert not [p for p in tmp_path.iterdir() if ".restarted-" in p.name]
