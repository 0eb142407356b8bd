"""`vampkeras compare` end to end: the command docs/comparing.md and the README give, run with the documented
small budget (the cells and the records), a re-run that does nothing, the Python API, a kill -9 mid-cell,
refusals, a run of benchmarks/reproduce.sh adopted, and the page in headless Chromium."""

import json
import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from tests.browser import check_page
from tests.test_docs import DOCS, README, commands_in, python_snippets, small_budget, small_python

# The comparison every test below shares is the one docs/comparing.md (and the README) tells a reader to run,
# with the documented small budget (tests/test_docs.small_budget): 2 priors x 3 seeds, one epoch each.
DOCUMENTED = commands_in((DOCS / "comparing.md").read_text(encoding="utf-8"), "comparing.md")[0]
ARGS = [*DOCUMENTED.args[1:], *small_budget(DOCUMENTED)]
CELLS = [f"vae-{prior}-lr5e-4-seed{seed}" for prior in ("standard", "vampprior") for seed in range(3)]
RECORDS = ["comparison.json", "comparison.csv", "comparison.md", "comparison.html"]


def compare(*args, cwd=None, wait=True):
    command = [sys.executable, "-m", "vampkeras", "compare", *map(str, args)]
    if not wait:
        return subprocess.Popen(command, cwd=cwd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    return subprocess.run(command, cwd=cwd, capture_output=True, text=True, timeout=900)


def cell_numbers(out: Path, cells: list[str]) -> dict:
    numbers = {}
    for cell in cells:
        record = json.loads((out / cell / "comparison-score.json").read_text())
        with np.load(out / cell / "comparison-per-image.npz") as arrays:
            per_image = arrays["log_likelihood"].copy()
        numbers[cell] = (record["evaluation"]["log_likelihood"], record["evaluation"]["elbo"],
                         record["training"]["best_val_loss"], record["surgery"]["marginal_kl"], per_image)
    return numbers


@pytest.fixture(scope="module")
def comparison(tmp_path_factory):
    out = tmp_path_factory.mktemp("compare") / "comparisons" / "mnist5k"
    result = compare(*ARGS, cwd=out.parent.parent)
    assert result.returncode == 0, result.stderr[-3000:]
    return out, result


def test_the_documented_command_is_the_readmes():
    assert DOCUMENTED.args[0] == "compare" and DOCUMENTED.args[-2:] == ("--out", "comparisons/mnist5k")
    readme = commands_in(README.read_text(encoding="utf-8"), "README.md")
    assert [command.args for command in readme if command.name == "compare"] == [DOCUMENTED.args]


def test_the_cells_and_the_records(comparison):
    out, result = comparison
    for cell in CELLS:
        assert (out / cell / "config.json").is_file() and len((out / cell / "history.csv").read_text().splitlines()) == 2
        assert (out / "saved_models" / cell / "saved_model.pb").is_file()
        with np.load(out / cell / "comparison-per-image.npz") as arrays:
            assert arrays["log_likelihood"].shape == (100,) and np.isfinite(arrays["log_likelihood"]).all()
    for name in RECORDS:
        assert (out / name).stat().st_size > 100
    summary = json.loads((out / "comparison.json").read_text())
    assert [row["cell"] for row in summary["cells"]] == CELLS
    (pair,) = summary["pairs"]
    assert pair["sentence"] in result.stdout and pair["num_seeds"] == 3 and pair["num_images"] == 100
    assert re.fullmatch(r"On mnist5k, the VAE's VampPrior .* in \d of 3 seeds\.", pair["sentence"]), pair["sentence"]
    # the cell's test log-likelihood is the mean of its per-image values, and the surgery's terms add up
    for row in summary["cells"]:
        with np.load(out / row["cell"] / "comparison-per-image.npz") as arrays:
            assert row["log_likelihood"] == pytest.approx(arrays["log_likelihood"].mean(), rel=1e-6)
        record = json.loads((out / row["cell"] / "comparison-score.json").read_text())["surgery"]
        assert record["average_kl"] == pytest.approx(record["mutual_information"] + record["marginal_kl"], abs=1e-6)
    assert "6/6 cells done" in result.stderr


def test_a_rerun_trains_and_scores_nothing(comparison):
    out, _ = comparison
    before = {path: path.stat().st_mtime_ns for cell in CELLS for path in (out / cell).rglob("*") if path.is_file()}
    started = time.perf_counter()
    result = compare(*ARGS, cwd=out.parent.parent)
    assert result.returncode == 0, result.stderr[-2000:]
    assert time.perf_counter() - started < 60          # no worker starts (each one takes a TensorFlow import)
    after = {path: path.stat().st_mtime_ns for cell in CELLS for path in (out / cell).rglob("*") if path.is_file()}
    assert after == before


def test_the_python_api_returns_what_comparison_json_holds(comparison, monkeypatch):
    """docs/python-api.md's `vampkeras.compare` snippet, with the small budget (tests/test_docs.small_python),
    run where the documented command ran: it asks for the same comparison, so it adopts every scored cell."""
    (where, source), = [snippet for snippet in python_snippets(DOCS / "python-api.md")
                        if "vampkeras.compare(" in snippet[1]]
    out, _ = comparison
    monkeypatch.chdir(out.parent.parent)
    before = {path: path.stat().st_mtime_ns for cell in CELLS for path in (out / cell).rglob("*") if path.is_file()}
    namespace = {}
    exec(compile(small_python(source), where, "exec"), namespace)        # noqa: S102: the page's own code
    assert json.loads(json.dumps(namespace["summary"])) == json.loads((out / "comparison.json").read_text())
    assert {path: path.stat().st_mtime_ns for cell in CELLS for path in (out / cell).rglob("*") if path.is_file()} \
        == before


def test_a_changed_grid_is_refused(comparison):
    out, _ = comparison
    result = compare(*ARGS, "--epochs", "3", cwd=out.parent.parent)
    assert result.returncode == 2 and result.stderr.count("Error:") == 1, result.stderr
    assert "train option epochs: saved 1, given 3" in result.stderr and "Traceback" not in result.stderr


def test_a_kill_mid_cell_loses_nothing(comparison, tmp_path):
    """The seed-0 column of the shared grid, killed with kill -9 once a cell has trained, then run again: its
    cells hold the numbers and per-image values of the uninterrupted comparison's seed-0 cells."""
    reference, _ = comparison
    out, cells = tmp_path / "K", [cell for cell in CELLS if cell.endswith("seed0")]
    arguments = [*ARGS, "--seeds", "0,", "--out", out]
    process = compare(*arguments, wait=False)
    deadline = time.time() + 600
    while time.time() < deadline and not any((out / cell / "history.csv").is_file() for cell in cells):
        time.sleep(0.05)
    os.kill(process.pid, signal.SIGKILL)
    process.wait()
    unscored = [cell for cell in cells if not (out / cell / "comparison-score.json").exists()]
    assert unscored, "the comparison finished before it could be killed"
    time.sleep(2)       # the cells' processes die with the comparison (PR_SET_PDEATHSIG)
    workers = subprocess.run(["pgrep", "-f", f"vampkeras.comparison.worker {out}"], capture_output=True, text=True)
    assert workers.stdout.strip() == ""
    result = compare(*arguments)
    assert result.returncode == 0, result.stderr[-3000:]
    resumed, uninterrupted = cell_numbers(out, cells), cell_numbers(reference, cells)
    for cell in cells:
        assert resumed[cell][:4] == uninterrupted[cell][:4], cell
        np.testing.assert_array_equal(resumed[cell][4], uninterrupted[cell][4])


@pytest.mark.parametrize("arguments, message", [
    (["--seed", "3"], "No such option '--seed'"),
    (["--run-dir", "x"], "No such option '--run-dir'"),
    (["--model", "gan"], "'gan' is not one of"),
    (["--seeds", "0"], "0 is not in the range"),
    (["--lr", "0"], "not in the range"),
    (["--prior", "vampprior,vampprior"], "names a value twice"),
    (["--epochs", "0"], "0 is not in the range"),
])
def test_bad_options_are_one_error_line_and_create_nothing(tmp_path, arguments, message):
    result = compare("--dataset", "mnist5k", *arguments, "--out", tmp_path / "C")
    assert result.returncode == 2 and message in result.stderr, result.stderr
    assert result.stderr.count("Error:") == 1 and "Traceback" not in result.stderr
    assert not (tmp_path / "C").exists()


def test_an_out_that_is_a_file_is_refused(tmp_path):
    (tmp_path / "C").write_text("mine")
    result = compare("--dataset", "mnist5k", "--out", tmp_path / "C")
    assert result.returncode == 2 and "is a file" in result.stderr and (tmp_path / "C").read_text() == "mine"


def test_a_run_trained_under_the_cells_name_is_adopted_not_retrained(tmp_path):
    """A run that `vampkeras train` made under a cell's name, with the options the cell asks for (as
    benchmarks/reproduce.sh trained its runs before it used compare), is scored, not trained again."""
    cell = tmp_path / "R" / "mnist5k" / "vae-standard-lr5e-4-seed0"
    train = subprocess.run([sys.executable, "-m", "vampkeras", "train", "--dataset", "mnist5k", "--model", "vae",
                            "--prior", "standard", "--lr", "5e-4", "--seed", "0", "--epochs", "2", "--warmup", "1",
                            "--patience", "50", "--max-examples", "100", "--components", "10", "--run-dir", str(cell),
                            "--export",
                            str(cell.parent / "saved_models" / cell.name), "--quiet"],
                           capture_output=True, text=True, timeout=600)
    assert train.returncode == 0, train.stderr[-3000:]
    history, config = (cell / "history.csv").read_text(), (cell / "config.json").read_text()
    result = compare("--dataset", "mnist5k", "--model", "vae", "--prior", "standard", "--seeds", "0,", "--protocol",
                     "short", "--epochs", "2", "--warmup", "1", "--max-examples", "100", "--components", "10",
                     "--samples", "5", "--out", cell.parent, "--quiet")
    assert result.returncode == 0, result.stderr[-3000:]
    assert (cell / "history.csv").read_text() == history and (cell / "config.json").read_text() == config
    assert (cell / "comparison-score.json").is_file()


def test_the_page_renders_in_headless_chromium(comparison, tmp_path):
    out, _ = comparison
    checked = check_page(out / "comparison.html", tmp_path)
    # the curves and histograms, then per prior: samples, pseudo-inputs (VampPrior), prior vs aggregated posterior
    assert checked["images"] >= 7 and checked["broken"] == 0, checked["dom"]
    assert checked["console_errors"] == []
    assert checked["screenshot_std"] > 5.0
