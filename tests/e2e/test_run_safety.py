"""No command loses a run: the lock, foreign folders, resume that never goes backwards, --restart, hand-edited
configs, read-only run folders, options checked before anything is created."""

import json
import os
import shutil
import stat

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
    assert_user_error(result, "--json", "cannot write", "is a file")
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


# -- issue #33: files opened as what they claim to be, copies, names, messages --------------------------------
def assert_one_error_line(result):
    """Exit 2 with exactly one `Error:` line and no traceback."""
    assert result.exit_code == 2, result.output
    assert "Traceback" not in result.output
    assert [line for line in result.output.splitlines() if "Error:" in line] == \
        [line for line in result.output.splitlines() if line.startswith("Error: ")], result.output
    assert sum(line.startswith("Error: ") for line in result.output.splitlines()) == 1, result.output


def test_item_4_a_symlinked_lock_is_refused_and_its_target_never_written(run_copy, tmp_path):
    victim = tmp_path / "precious.txt"
    victim.write_text("the user's own file")
    (run_copy / ".lock").unlink(missing_ok=True)
    (run_copy / ".lock").symlink_to(victim)
    before = snapshot(run_copy)
    result = invoke("train", "--resume", "--run-dir", run_copy, "--epochs", 3, "--export", tmp_path / "m", "--quiet")
    assert_one_error_line(result)
    assert "is a symbolic link" in result.output
    assert victim.read_text() == "the user's own file"
    assert snapshot(run_copy) == before and (run_copy / ".lock").is_symlink() and not (tmp_path / "m").exists()


def test_item_7_a_copied_run_folder_does_not_replace_the_originals_savedmodel(tmp_path, monkeypatch):
    """cp -a runs/base runs/fork && train --run-dir runs/fork --resume: refused; after mv, resume carries on."""
    from vampkeras import export

    monkeypatch.chdir(tmp_path)
    result = invoke("train", "--run-dir", "runs/base", "--export", "saved_models/base", "--epochs", 1, *TINY)
    assert result.exit_code == 0, result.output
    shutil.copytree("runs/base", "runs/fork", symlinks=True)                    # cp -a
    model, fork = snapshot(tmp_path / "saved_models"), snapshot(tmp_path / "runs" / "fork")
    result = invoke("train", "--run-dir", "runs/fork", "--resume", "--epochs", 2, "--quiet")
    assert_one_error_line(result)
    assert "runs/base" in result.output and "copy" in result.output and "--overwrite" in result.output
    assert snapshot(tmp_path / "saved_models") == model and snapshot(tmp_path / "runs" / "fork") == fork
    shutil.rmtree("runs/fork")
    os.rename("runs/base", "runs/moved")                                        # mv: the same run, elsewhere
    result = invoke("train", "--run-dir", "runs/moved", "--resume", "--epochs", 2, "--quiet")
    assert result.exit_code == 0, result.output
    assert export.exported_config("saved_models/base").run_path == str(tmp_path.resolve() / "runs" / "moved")


def test_item_9_a_fifo_as_json_is_refused_before_scoring_and_stays_a_fifo(run_copy, tmp_path):
    fifo = tmp_path / "out.json"
    os.mkfifo(fifo)
    result = invoke("evaluate", run_copy, "--quiet", "--max-examples", 5, "--samples", 2, "--json", fifo)
    assert_one_error_line(result)
    assert "FIFO" in result.output and "log_likelihood" not in result.output
    assert stat.S_ISFIFO(os.lstat(fifo).st_mode)


@pytest.mark.skipif(not os.path.isdir("/proc/self"), reason="needs Linux's /proc")
@pytest.mark.parametrize("command", [["evaluate", "RUN", "--json", "/proc/x.json"],
                                     ["score", "RUN", "IMAGES", "--out", "/proc/x.csv"],
                                     ["sample", "RUN", "--out", "/proc/x.png"],
                                     ["sample", "RUN", "--out", "OK", "--npy", "/proc/x.npy"],
                                     ["report", "RUN", "--out", "/proc/x.html"],
                                     ["train", "--run-dir", "/proc/run", "--export", "OK"],
                                     ["train", "--run-dir", "OK", "--export", "/proc/model"]])
def test_item_11_outputs_into_proc_are_refused_before_the_model_loads(run_copy, tmp_path, command, monkeypatch):
    images = tmp_path / "images.npy"
    np.save(images, np.zeros((2, 28, 28), np.float32))
    from vampkeras.trained_model import TrainedModel
    monkeypatch.setattr(TrainedModel, "load", lambda *a, **k: pytest.fail("the model was loaded"))
    arguments = [{"RUN": run_copy, "IMAGES": images, "OK": tmp_path / "ok.png"}.get(a, a) for a in command]
    before = snapshot(run_copy)
    result = invoke(*arguments)
    assert_one_error_line(result)
    assert "takes no new files" in result.output
    assert snapshot(run_copy) == before and sorted(p.name for p in tmp_path.iterdir()) == ["images.npy", "run"]


LONG = "n" * 256                     # one byte over NAME_MAX


@pytest.mark.parametrize("command", [
    ["train", "--run-dir", LONG, "--export", "model"],
    ["train", "--run-dir", "run", "--export", f"models/{LONG}"],
    ["train", "--run-dir", "run", "--export", "model", "--dataset", f"{LONG}/images"],
    ["train", "--run-dir", "run", "--export", "model", "--data-dir", LONG],
    ["train", "--run-dir", "run", "--export", "model", "--dataset", "freyfaces", "--data-dir", f"data/{LONG}"],
    ["evaluate", "RUN", "--json", f"{LONG}.json"],
    ["evaluate", "RUN", "--figures", f"figures/{LONG}"],
    ["evaluate", "RUN", "--dataset", f"{LONG}.npy"],
    ["evaluate", "RUN", "--data-dir", LONG],
    ["sample", "RUN", "--out", f"{LONG}.png"],
    ["sample", "RUN", "--npy", f"{LONG}.npy"],
    ["score", "RUN", "IMAGES", "--out", f"{LONG}.csv"],
    ["report", "RUN", "--out", f"{LONG}.html"],
    ["report", "RUN", "--data-dir", LONG],
    ["datasets", "--data-dir", LONG],
    ["evaluate", "RUN", "--json", "/" + "/".join(["d" * 200] * 21)],            # a path over PATH_MAX
])
def test_item_12_a_name_over_255_bytes_is_one_error_before_any_work(run_copy, tmp_path, command, monkeypatch):
    images = tmp_path / "images.npy"
    np.save(images, np.zeros((2, 28, 28), np.float32))
    workspace = tmp_path / "workspace"
    workspace.mkdir()
    monkeypatch.chdir(workspace)
    before = snapshot(run_copy)
    result = invoke(*[{"RUN": run_copy, "IMAGES": images}.get(a, a) for a in command])
    assert_one_error_line(result)
    assert "at most 255 bytes" in result.output or "at most 4095 bytes" in result.output
    assert list(workspace.iterdir()) == [] and snapshot(run_copy) == before


@pytest.mark.parametrize("option", ["--json", "--figures"])
def test_item_17_an_empty_path_is_a_user_error(run_copy, option):
    before = snapshot(run_copy)
    result = invoke("evaluate", run_copy, "--quiet", "--max-examples", 5, "--samples", 2, option, "")
    assert_one_error_line(result)
    assert "empty path" in result.output and "log_likelihood" not in result.output
    assert snapshot(run_copy) == before


def test_standard_streams_are_written_as_streams_and_dash_is_stdout(run_copy, tmp_path):
    from tests.guards import devices_guarded

    with devices_guarded():
        check_streams(run_copy)


def check_streams(run_copy):
    result = CliRunner().invoke(main, ["evaluate", str(run_copy), "--quiet", "--max-examples", "5", "--samples",
                                       "2", "--json", "-"])
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout)["num_examples"] == 5                   # the JSON once, on stdout
    result = CliRunner().invoke(main, ["sample", str(run_copy), "-n", "4", "--out", "-", "--npy", "/dev/null"])
    assert result.exit_code == 0, result.output
    assert result.stdout_bytes.startswith(b"\x89PNG\r\n\x1a\n")           # the PNG alone on stdout
    assert "wrote /dev/stdout, /dev/null" in result.stderr
    assert stat.S_ISCHR(os.stat("/dev/null").st_mode)
    result = invoke("sample", run_copy, "-n", 4, "--out", "-", "--npy", "/dev/stdout")
    assert_one_error_line(result)                          # two outputs would be mixed in one stream


def test_item_16_a_file_name_cannot_forge_a_second_error_line(tmp_path):
    from PIL import Image

    folder = tmp_path / "images"
    folder.mkdir()
    for index in range(6):
        Image.fromarray(np.full((8, 8), 40 * index, np.uint8)).save(folder / f"{index}.png")
    (folder / "bad\nError: forged line.png").write_bytes(b"\x89PNG\r\n\x1a\n damaged")
    result = invoke("train", "--dataset", folder, "--run-dir", tmp_path / "run", "--export", tmp_path / "m",
                    "--epochs", 1, "--quiet")
    assert_one_error_line(result)
    assert "bad\\nError: forged line.png" in result.output
    assert not (tmp_path / "run").exists() and not (tmp_path / "m").exists()


def test_item_17_history_csv_as_a_folder_is_named_before_the_resume_trains(run_copy, tmp_path):
    (run_copy / "history.csv").unlink()
    (run_copy / "history.csv").mkdir()
    before = snapshot(run_copy)
    result = invoke("train", "--resume", "--run-dir", run_copy, "--epochs", 3, "--export", tmp_path / "m", "--quiet")
    assert_one_error_line(result)
    assert f"{run_copy / 'history.csv'} is a folder" in result.output and "checkpoint" not in result.output
    assert snapshot(run_copy) == before and not (tmp_path / "m").exists()


def test_item_17_figures_left_half_written_by_a_killed_process_are_removed_by_the_next_write(run_copy, tmp_path):
    import subprocess
    import sys

    process = subprocess.Popen([sys.executable, "-c", "pass"])
    process.wait()                                                      # its pid is a dead writer's
    figures = run_copy / "figures"
    stale = figures / f".log_likelihood_histogram.png.{process.pid}-0123abcd.tmp"
    stale.write_bytes(b"half a png")
    result = invoke("evaluate", run_copy, "--quiet", "--max-examples", 5, "--samples", 2)
    assert result.exit_code == 0, result.output
    assert (figures / "log_likelihood_histogram.png").is_file()
    assert not [p.name for p in figures.iterdir() if p.name.endswith(".tmp")]
