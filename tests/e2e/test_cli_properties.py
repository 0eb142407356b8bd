"""Property: whatever values the numeric options get, a command exits 0 or 2 (one `Error:` line), never with a
traceback, and changes no file outside its own outputs.

Values are drawn from what careless users and hostile scripts type: small valid numbers, zero, negatives,
numbers just past and far past every limit (2^31, 2^32 + 10, 2^40), floats, nan/inf and text. Valid numbers
are kept small so that a command that runs stays quick."""

import contextlib
import os
import shutil
import tempfile
from pathlib import Path

import numpy as np
from click.testing import CliRunner
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from vampkeras_cli.main import main

HOSTILE = ["0", "-1", "-7", "2147483648", "4294967306", "1099511627776", "1e3", "0.5", "nan", "inf", "-inf",
           "1e309", "", "seven", "0x10", " 3"]


def number_text(low: int, high: int):
    """An option value: a valid integer in [low, high] (kept small) or one of the hostile texts."""
    return st.one_of(st.integers(low, high).map(str), st.sampled_from(HOSTILE))


def float_text(low: float, high: float):
    return st.one_of(st.floats(low, high, allow_nan=False).map(repr), st.sampled_from(HOSTILE))


def options(draw_map: dict) -> st.SearchStrategy:
    """A list of CLI arguments: a random subset of the options, each with its drawn value."""
    return st.fixed_dictionaries({}, optional=draw_map).map(
        lambda chosen: [part for name, value in chosen.items() for part in (name, value)])


TRAIN_OPTIONS = options({
    "--components": number_text(1, 8), "--pseudo-init-mean": float_text(0, 1), "--pseudo-init-std": float_text(0, 1),
    "--warmup": number_text(0, 3), "--patience": number_text(1, 3), "--batch-size": number_text(1, 40),
    "--lr": float_text(1e-5, 1e-2), "--seed": number_text(0, 2 ** 31 - 1), "--image-every": number_text(0, 2),
    "--replicas": number_text(1, 2), "--max-examples": number_text(10, 30),
})
EVALUATE_OPTIONS = options({"--samples": number_text(1, 3), "--batch-size": number_text(1, 8),
                            "--max-examples": number_text(1, 6)})
SAMPLE_OPTIONS = options({"-n": number_text(1, 4), "--seed": number_text(0, 2 ** 31 - 1),
                          "--pseudo-input": number_text(0, 600)})
SCORE_OPTIONS = options({"--samples": number_text(1, 3), "--batch-size": number_text(1, 8)})

SETTINGS = settings(max_examples=12, deadline=None, derandomize=True,
                    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])


def snapshot(folder: Path) -> dict:
    return {str(p.relative_to(folder)): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}


def run_and_check(arguments: list[str], workspace: Path, outputs: set[str]) -> None:
    """Run the CLI in ``workspace``; exit 0 or 2, no traceback, and only names in ``outputs`` (relative paths,
    or their parents' names) new or changed."""
    before = snapshot(workspace)
    cwd = os.getcwd()
    os.chdir(workspace)
    try:
        result = CliRunner().invoke(main, arguments)
    finally:
        os.chdir(cwd)
    assert result.exception is None or isinstance(result.exception, SystemExit), (arguments, result.exception)
    assert result.exit_code in (0, 2), (arguments, result.output)
    assert "Traceback" not in result.output, (arguments, result.output)
    if result.exit_code == 2:
        assert "Error:" in result.output, (arguments, result.output)
    after = snapshot(workspace)
    changed = {name for name in set(before) | set(after) if before.get(name) != after.get(name)}
    stray = {name for name in changed if name.split(os.sep)[0] not in outputs}
    assert not stray, (arguments, sorted(stray))


@given(TRAIN_OPTIONS)
@SETTINGS
def test_train_options(arguments):
    with tempfile.TemporaryDirectory() as folder:
        workspace = Path(folder)
        (workspace / "precious.txt").write_text("the user's own file")
        run_and_check(["train", "--epochs", "1", "--quiet", "--run-dir", "run", "--export", "model",
                       "--max-examples", "20", *arguments], workspace, {"run", "model"})


@contextlib.contextmanager
def workspace_with_model(trained_run):
    """A fresh folder holding a copy of the shared run's SavedModel as ``model`` (and binary images.npy)."""
    with tempfile.TemporaryDirectory() as folder:
        workspace = Path(folder)
        shutil.copytree(trained_run.export_dir, workspace / "model")
        images = (np.random.default_rng(0).uniform(size=(5, 28, 28)) > 0.5).astype(np.float32)
        np.save(workspace / "images.npy", images)
        yield workspace


@given(EVALUATE_OPTIONS)
@SETTINGS
def test_evaluate_options(trained_run, arguments):
    with workspace_with_model(trained_run) as workspace:
        run_and_check(["evaluate", "model", "--quiet", "--json", "out.json", "--figures", "figures", *arguments],
                      workspace, {"out.json", "figures"})


@given(SAMPLE_OPTIONS)
@SETTINGS
def test_sample_options(trained_run, arguments):
    with workspace_with_model(trained_run) as workspace:
        run_and_check(["sample", "model", "--out", "grid.png", "--npy", "grid.npy", *arguments], workspace,
                      {"grid.png", "grid.npy"})


@given(SCORE_OPTIONS)
@SETTINGS
def test_score_options(trained_run, arguments):
    with workspace_with_model(trained_run) as workspace:
        run_and_check(["score", "model", "images.npy", "--quiet", "--out", "scores.csv", *arguments], workspace,
                      {"scores.csv"})
