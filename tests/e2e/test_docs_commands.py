"""The documented commands a reader types are run, page by page, in the order the page gives them, each with
the small budget of the documented rule (tests/test_docs.small_budget, stated in docs/development.md: options
appended to the documented command, whose last value click keeps; --epochs divided by 100). What the reader
has and CI has not is made small and local first: the reader's pictures and arrays, static MNIST's files
(stand-ins, trusted for the test through tests/known_files.py), a TFDS dataset (TFDS's own mock), a second
machine (two processes on 127.0.0.1). Two pages' commands run where their subject is tested, sharing the
run: the multiworker pair in tests/e2e/test_multiworker.py, the compare command (docs/comparing.md and the
README) in tests/e2e/test_compare.py. docs/python-api.md's Python snippets run in the page's order (its
`vampkeras.compare` call in tests/e2e/test_compare.py too). Commands that take hours are parsed by
tests/test_docs.py and not run."""

from __future__ import annotations

import csv
import json
import os
import re
import shlex
import signal
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner
from PIL import Image

from tests.known_files import trust_dataset
from tests.test_docs import (DOCS, README, Command, commands_in, python_snippets, shell_blocks, small_budget,
                             small_python)
from vampkeras.data import load_dataset
from vampkeras_cli.main import main

QUIET_TF = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"}


def budgeted(command: Command) -> list[str]:
    """The documented arguments, `~` expanded as the shell does, and the small budget appended."""
    return [os.path.expanduser(arg) if arg.startswith("~/") else arg for arg in command.args] + small_budget(command)


def run(command: Command, *, replace: dict[str, str] | None = None):
    """Run ``command`` in this process with its small budget; ``replace`` swaps documented placeholders."""
    args = [(replace or {}).get(arg, arg) for arg in budgeted(command)]
    result = CliRunner().invoke(main, args, catch_exceptions=False)
    assert result.exit_code == 0, f"{command.where}: vampkeras {' '.join(args)}\n{result.output[-3000:]}"
    return result


def page_commands(path) -> list[Command]:
    return commands_in(path.read_text(encoding="utf-8"), path.name)


def history_epochs(run_dir: Path) -> list[int]:
    with open(run_dir / "history.csv", newline="") as stream:
        return [int(row["epoch"]) for row in csv.DictReader(stream)]


def new_runs(before: set[Path], root: Path) -> list[Path]:
    return sorted(set((root / "runs").iterdir()) - before) if (root / "runs").is_dir() else []


@pytest.fixture
def reader(tmp_path, monkeypatch):
    """A reader's shell: the current folder and HOME (where `~` and the default data folder live) are
    scratch folders."""
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    monkeypatch.delenv("VAMPKERAS_DATA", raising=False)
    (tmp_path / "home").mkdir()
    return tmp_path


# -- README and "Evaluating and looking" ---------------------------------------------------------------------

def test_the_quickstart_then_evaluating_and_looking(reader):
    train, evaluate = page_commands(README)[:2]
    assert (train.name, evaluate.name) == ("train", "evaluate")
    run(train)
    summary = json.loads(run(evaluate).stdout)
    assert summary["num_examples"] == 50 and summary["log_likelihood"] < 0

    # `digits/` stands for the reader's own images: 28x28 black-and-white PNGs for the quickstart's model
    (reader / "digits").mkdir()
    for index, image in enumerate(load_dataset("mnist5k", max_examples=20).test.reshape(-1, 28, 28)):
        Image.fromarray((image * 255).astype(np.uint8)).save(reader / "digits" / f"{index:02d}.png")
    commands = page_commands(DOCS / "evaluating.md")
    assert [command.name for command in commands] == ["evaluate", "sample", "sample", "score", "report"]
    for command in commands:
        run(command)
    assert json.loads((reader / "runs" / "quickstart-test.json").read_text())["num_samples"] == 8
    assert np.load(reader / "samples.npy").shape == (64, 28, 28)
    assert (reader / "samples.png").is_file() and (reader / "component3.png").is_file()
    with open(reader / "scores.csv", newline="") as scores:
        assert len(list(csv.DictReader(scores))) == 20
    assert "<img" in (reader / "runs" / "quickstart" / "report.html").read_text()


# -- Training ---------------------------------------------------------------------------------------------------

def write_static_mnist_stand_ins(data_dir: Path, monkeypatch) -> None:
    """Small .amat files where static MNIST's live (300/100/100 binarized mnist5k digits), trusted for this test
    only: the reader has the real files (or downloads them), CI has not."""
    digits = load_dataset("mnist5k", max_examples=300)
    folder = data_dir / "binarized_mnist"
    folder.mkdir(parents=True)
    for split, images in (("train", digits.train[:300]), ("valid", digits.validation[:100]),
                          ("test", digits.test[:100])):
        lines = (" ".join(str(int(value)) for value in image) for image in images)
        (folder / f"binarized_mnist_{split}.amat").write_text("\n".join(lines) + "\n")
    trust_dataset(monkeypatch, data_dir, "static_mnist")


def test_training_commands(reader, monkeypatch):
    # the multiworker pair runs in tests/e2e/test_multiworker.py, `--replicas 2` (a process of its own:
    # logical devices exist only if set before TensorFlow starts) in tests/e2e/test_distribute.py
    commands = [command for command in page_commands(DOCS / "training.md")
                if "multiworker" not in command.args and "--replicas" not in command.args]
    default, hvae, mirrored = commands
    assert default.args == ("train",)

    run(default)
    (default_run,) = new_runs(set(), reader)
    assert re.fullmatch(r"mnist5k-vae-vampprior-\d{8}-\d{6}", default_run.name)
    assert history_epochs(default_run) == [1]

    write_static_mnist_stand_ins(reader / "home" / ".vampkeras" / "data", monkeypatch)
    run(hvae)
    config = json.loads((reader / "runs" / "hvae" / "config.json").read_text())
    assert (config["dataset"], config["model"], config["prior"]) == ("static_mnist", "hvae", "vampprior")
    assert config["data"]["splits"]["train"]["count"] == 300          # the stand-ins were read
    assert (reader / "saved_models" / "hvae" / "saved_model.pb").is_file()

    before = set((reader / "runs").iterdir())
    run(mirrored)                       # no GPU here: MirroredStrategy over the one CPU device
    (mirrored_run,) = new_runs(before, reader)
    assert json.loads((mirrored_run / "config.json").read_text())["strategy"] == "mirrored"


# -- Your own data ----------------------------------------------------------------------------------------------

def test_your_own_data_commands(reader):
    faces, evaluate, digits, fashion = [command for command in page_commands(DOCS / "data.md")
                                        if command.name in ("train", "evaluate")]
    rng = np.random.default_rng(0)
    # ~/pictures/faces: 40 grey 28x20 PNGs (Frey Faces' size), smooth faces-like blobs plus noise
    folder = reader / "home" / "pictures" / "faces"
    folder.mkdir(parents=True)
    rows, cols = np.mgrid[0:28, 0:20]
    for index in range(40):
        centre = rng.uniform([10, 7], [18, 13])
        blob = 200 * np.exp(-((rows - centre[0]) ** 2 + (cols - centre[1]) ** 2) / 40)
        image = np.clip(blob + rng.normal(30, 10, blob.shape), 0, 255).astype(np.uint8)
        Image.fromarray(image).save(folder / f"face{index:02d}.png")
    run(faces)
    (faces_run,) = new_runs(set(), reader)
    pattern = r"faces-convhvae-vampprior-\d{8}-\d{6}"
    placeholder = evaluate.args[1]
    assert re.fullmatch(pattern, Path(placeholder).name) and re.fullmatch(pattern, faces_run.name)
    assert json.loads((faces_run / "config.json").read_text())["data"]["likelihood"] == "discretized_logistic"
    summary = json.loads(run(evaluate, replace={placeholder: f"runs/{faces_run.name}"}).stdout)
    assert summary["num_examples"] == 4 and summary["bits_per_dim"] > 0      # 40 images, split 0.8,0.1,0.1

    # digits.npz: grey digits (uint8, 0-255) with the three splits
    source = load_dataset("mnist5k", max_examples=300)
    grey = {split: (images.reshape(-1, 28, 28) * rng.uniform(120, 255, (len(images), 1, 1))).astype(np.uint8)
            for split, images in (("train", source.train), ("validation", source.validation),
                                  ("test", source.test))}
    np.savez(reader / "digits.npz", **grey)
    before = set((reader / "runs").iterdir())
    run(digits)
    (digits_run,) = new_runs(before, reader)
    config = json.loads((digits_run / "config.json").read_text())
    assert (config["data"]["likelihood"], config["data"]["binarization"]) == ("bernoulli", "dynamic")

    tfds = pytest.importorskip("tensorflow_datasets")
    before = set((reader / "runs").iterdir())
    with tfds.testing.mock_data(num_examples=30):
        run(fashion)
    (fashion_run,) = new_runs(before, reader)
    config = json.loads((fashion_run / "config.json").read_text())
    assert (config["dataset"], config["model"]) == ("tfds:fashion_mnist", "hvae")


def test_the_datasets_table(reader):
    commands = [command for command in page_commands(DOCS / "data.md") if command.name == "datasets"]
    assert len(commands) == 2
    for command in commands:
        output = run(command).output
        assert "mnist5k" in output and "cifar10" in output


# -- Serving ----------------------------------------------------------------------------------------------------

def test_serving_versions_then_saved_model_cli(reader):
    first, second = page_commands(DOCS / "serving.md")
    run(first)
    assert sorted(path.name for path in (reader / "serving" / "mnist").iterdir()) == ["1"]
    run(second)
    assert sorted(path.name for path in (reader / "serving" / "mnist").iterdir()) == ["1", "2"]

    np.save(reader / "images.npy", load_dataset("mnist5k", max_examples=20).test[:5].reshape(-1, 28, 28))
    (cli_line,) = [line for _, block in shell_blocks((DOCS / "serving.md").read_text())
                   for line in block.splitlines() if line.startswith("saved_model_cli ")]
    words = shlex.split(cli_line, comments=True)
    program = Path(sys.executable).parent / words[0]
    done = subprocess.run([str(program), *words[1:]], capture_output=True, text=True, cwd=reader, env=QUIET_TF,
                          timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    assert "Result for output key log_likelihood" in done.stdout and "Result for output key elbo" in done.stdout


# -- Runs, resume and safety ------------------------------------------------------------------------------------

# The documented first command in a process that kill -9s itself at the end of epoch 2, as it is about to
# write that epoch's checkpoint: epoch 1 is complete, epoch 2's work is lost.
KILLED_IN_EPOCH_2 = textwrap.dedent("""
    import os, signal, sys
    from vampkeras import checkpoints
    from vampkeras_cli.main import main
    original = checkpoints.atomic_write_bytes
    def die_before_epoch_2(path, data):
        if os.path.basename(str(path)) == "epoch-00002.npz":
            os.kill(os.getpid(), signal.SIGKILL)
        original(path, data)
    checkpoints.atomic_write_bytes = die_before_epoch_2
    main(sys.argv[1:], prog_name="vampkeras")
""")


def test_kill_resume_larger_budget_and_restart(reader):
    first, resume, more, restart = page_commands(DOCS / "runs-and-safety.md")[:4]
    assert ("--resume" in resume.args and "--resume" in more.args and "--restart" in restart.args)
    killed = subprocess.run([sys.executable, "-c", KILLED_IN_EPOCH_2, *budgeted(first)], capture_output=True,
                            text=True, cwd=reader, env=QUIET_TF, timeout=600)
    assert killed.returncode == -signal.SIGKILL, killed.stderr[-3000:]
    run_dir = reader / "runs" / "mnist"
    assert history_epochs(run_dir) == [1]                             # "killed at epoch 120, say"

    run(resume)                                                       # continues at epoch 2 of 3
    assert history_epochs(run_dir) == [1, 2, 3]
    run(more)                                                         # --epochs 500: 5 here
    assert history_epochs(run_dir) == [1, 2, 3, 4, 5]
    # without --overwrite the restart is refused before anything moves (the page says so)
    refused = CliRunner().invoke(main, [arg for arg in budgeted(restart) if arg != "--overwrite"])
    assert refused.exit_code == 2 and refused.output.startswith("Error: the export folder saved_models/mnist")
    assert [path.name for path in (reader / "runs").iterdir()] == ["mnist"]
    run(restart)                                                      # the old run moves aside
    assert history_epochs(run_dir) == [1, 2, 3]
    (aside,) = [path for path in (reader / "runs").iterdir() if path.name.startswith("mnist.restarted-")]
    assert history_epochs(aside) == [1, 2, 3, 4, 5]
    assert json.loads((reader / "saved_models" / "mnist" / "assets" / "config.json").read_text())["run_id"] == \
        json.loads((run_dir / "config.json").read_text())["run_id"]


# -- The Python API ---------------------------------------------------------------------------------------------

def test_the_python_api_page_runs_in_order(reader, capsys):
    """docs/python-api.md's snippets, executed in the page's order in one namespace, as a reader pasting them
    into one notebook would, with the small budget (tests/test_docs.small_python). The reader's own data `x`
    of "Lower level" is 200 mnist5k training images, (200, 784). The snippet calling `vampkeras.compare` runs
    on the shared comparison of tests/e2e/test_compare.py (the one the command on docs/comparing.md makes)."""
    snippets = [(where, source) for where, source in python_snippets(DOCS / "python-api.md")
                if "vampkeras.compare(" not in source]
    assert len(snippets) == 4
    x = load_dataset("mnist5k", max_examples=200).train.reshape(200, -1)
    namespace = {"__name__": "__notebook__", "x": x}
    for where, source in snippets:
        exec(compile(small_python(source), where, "exec"), namespace)       # noqa: S102: the page's own code

    printed = re.search(r"(-?\d+\.\d+) \(50,\)\n", capsys.readouterr().out)      # beside Keras's progress bars
    # "Train and evaluate": the run and its SavedModel, the summary printed
    assert (reader / "runs" / "notebook" / "history.csv").is_file()
    assert history_epochs(reader / "runs" / "notebook") == [1]
    assert (reader / "saved_models" / "notebook" / "saved_model.pb").is_file()
    # "A trained model": samples, scores and pseudo-inputs of the run folder's model
    assert namespace["images"].shape == (16, 28, 28) and namespace["pseudo"].shape == (10, 28, 28)
    # "Lower level": the model trained on x, scored and exported
    log_p = np.asarray(namespace["log_p"])
    assert log_p.shape == (100,) and np.isfinite(log_p).all() and (log_p < 0).all()
    assert (reader / "saved_models" / "mine" / "saved_model.pb").is_file()
    # "Your own networks": a run of the reader's encoder and decoder, scored from its SavedModel
    summary = namespace["summary"]
    assert summary["num_examples"] == 50 and summary["num_samples"] == 8 and np.isfinite(summary["log_likelihood"])
    assert json.loads((reader / "runs" / "mine" / "config.json").read_text())["latent_dim"] == 16
    assert printed and float(printed.group(1)) < 0          # the first snippet's print: the LL and the array's shape
