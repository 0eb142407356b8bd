"""The `vampkeras` command line: the train → export → evaluate contract and its user errors."""

import json
import os
import subprocess
import sys

import pytest
from click.testing import CliRunner

from vampkeras import __version__
from vampkeras_cli.main import main

EXPECTED_KEYS = {"dataset", "split", "num_examples", "num_samples", "log_likelihood", "elbo", "reconstruction", "kl"}


def invoke(*args):
    return CliRunner().invoke(main, [str(a) for a in args], catch_exceptions=False)


def assert_user_error(result, *fragments):
    assert result.exit_code == 2, result.output
    assert "Traceback" not in result.output
    for fragment in fragments:
        assert fragment in result.output


def test_version_and_help():
    assert invoke("--version").output.strip() == f"vampkeras, version {__version__}"
    for command in ("train", "evaluate"):
        text = invoke(command, "--help").output
        assert "Usage: main " + command in text or f"Usage: vampkeras {command}" in text or "Usage:" in text
    train_help = invoke("train", "--help").output
    for option in ("--dataset", "--prior", "--components", "--pseudo-init", "--epochs", "--warmup", "--patience",
                   "--batch-size", "--lr", "--seed", "--max-examples", "--data-dir", "--run-dir", "--export",
                   "--resume", "--jit / --no-jit", "--optimizer", "--init", "--gated-normgrad"):
        assert option in train_help, option
    evaluate_help = invoke("evaluate", "--help").output
    for option in ("--dataset", "--split", "--samples", "--batch-size", "--max-examples", "--data-dir", "--json",
                   "--quiet"):
        assert option in evaluate_help, option


def test_train_then_evaluate_from_the_cli(tmp_path):
    run_dir, export_dir = tmp_path / "run", tmp_path / "model"
    result = invoke("train", "--epochs", 1, "--max-examples", 600, "--components", 50, "--quiet",
                    "--run-dir", run_dir, "--export", export_dir)
    assert result.exit_code == 0, result.output
    assert "trained 1 epochs" in result.output and str(export_dir) in result.output
    outputs = {}
    for path in (run_dir, export_dir):
        json_path = tmp_path / f"{path.name}.json"
        result = invoke("evaluate", path, "--samples", 50, "--max-examples", 40, "--quiet", "--json", json_path)
        assert result.exit_code == 0, result.output
        outputs[path.name] = json.loads(json_path.read_text())
        assert EXPECTED_KEYS <= set(outputs[path.name])
        assert outputs[path.name]["num_examples"] == 40 and outputs[path.name]["num_samples"] == 50
    assert outputs["run"]["log_likelihood"] == pytest.approx(outputs["model"]["log_likelihood"], rel=1e-5)
    assert outputs["run"]["log_likelihood"] > outputs["run"]["elbo"]

    # resuming with a different model is refused, and the run is untouched
    before = (run_dir / "config.json").read_text()
    result = invoke("train", "--resume", "--run-dir", run_dir, "--prior", "standard")
    assert_user_error(result, "--resume refuses", "prior")
    assert (run_dir / "config.json").read_text() == before


@pytest.mark.parametrize("args, fragments", [
    (["train", "--dataset", "nope"], ["unknown dataset", "mnist5k"]),
    (["train", "--components", "0"], ["--components"]),
    (["train", "--lr", "0", "--max-examples", "10"], ["--lr", "not above 0"]),
    (["train", "--lr", "nan"], ["--lr", "not a finite number"]),
    (["train", "--pseudo-init-mean", "nan"], ["--pseudo-init-mean", "not a finite number"]),
    (["train", "--pseudo-init-std", "inf"], ["--pseudo-init-std", "not a finite number"]),
    (["train", "--seed", "-1"], ["--seed", "0<=x<=2147483647"]),
    (["train", "--seed", "2147483648"], ["--seed"]),
    (["train", "--seed", "1099511627776"], ["--seed"]),
    (["train", "--replicas", "2"], ["--replicas applies to --strategy mirrored only"]),
    (["sample", ".", "-n", "2147483648"], ["--num-samples", "1<=x<=100000"]),
    (["sample", ".", "--seed", "-1"], ["--seed"]),
    (["sample", ".", "--pseudo-input", "-1"], ["--pseudo-input"]),
    (["score", ".", ".", "--samples", "4294967306"], ["--samples", "1<=x<=1073741824"]),
    (["evaluate", ".", "--samples", "2147483648"], ["--samples"]),
    (["report", ".", "--samples", "2147483648"], ["--samples"]),
    (["train", "--batch-size", "0"], ["--batch-size"]),
    (["train", "--warmup", "-1"], ["--warmup"]),
    (["train", "--prior", "bogus"], ["--prior", "vampprior"]),
    (["train", "--resume"], ["--resume needs --run-dir"]),
    (["evaluate", "/definitely/not/here"], ["does not exist"]),
    (["evaluate", ".", "--samples", "0"], ["--samples"]),
])
def test_user_errors_are_one_message_and_exit_2(args, fragments, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    assert_user_error(invoke(*args), *fragments)
    assert list(tmp_path.iterdir()) == []        # nothing created: options are checked first


def test_a_diverging_run_exits_2_with_the_epoch_and_step(tmp_path):
    result = invoke("train", "--lr", "1e12", "--optimizer", "adam", "--epochs", 2, "--max-examples", 200,
                    "--components", 10, "--quiet", "--run-dir", tmp_path / "run", "--export", tmp_path / "model")
    assert_user_error(result, "NaN/Inf in epoch 1,", "step", "Try a lower --lr",
                      "no epoch was complete, so there is no checkpoint to keep")


def test_evaluate_refuses_a_model_of_another_format_version(tmp_path, monkeypatch):
    from vampkeras import export
    from vampkeras.config import RunConfig
    from vampkeras.data import DATASETS
    from vampkeras.models import build_model

    config = RunConfig(num_components=5).resolve(DATASETS["mnist5k"])
    model = build_model(config, DATASETS["mnist5k"])
    monkeypatch.setattr(export, "FORMAT_VERSION", 99)
    export.export(model, config.to_json(), tmp_path / "future")
    monkeypatch.undo()
    assert_user_error(invoke("evaluate", tmp_path / "future"), "exported in format 99", "reads format 1")


def test_evaluate_refuses_a_folder_that_is_no_model(tmp_path):
    assert_user_error(invoke("evaluate", tmp_path), "neither a run folder", "nor a SavedModel")


def test_console_script_reports_errors_without_traceback(tmp_path):
    script = os.path.join(os.path.dirname(sys.executable), "vampkeras")
    command = [script] if os.path.exists(script) else [sys.executable, "-m", "vampkeras_cli.main"]
    done = subprocess.run([*command, "train", "--dataset", "imagenet"], capture_output=True, text=True,
                          cwd=tmp_path, timeout=300)
    assert done.returncode == 2
    assert "Traceback" not in done.stderr
    assert done.stderr.strip().splitlines()[-1].startswith(
        "Error: Invalid value for '--dataset': unknown dataset 'imagenet'; choose one of: mnist5k")
