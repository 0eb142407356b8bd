"""The documented commands that take seconds once their budget is shrunk are run, in the order a reader types
them: the README's quickstart (train, then evaluate the SavedModel), then every command of "Evaluating and
looking" on that run, and the datasets table. The budget rule (tests/test_docs.SMALL_BUDGET, stated in
docs/development.md): options appended to the documented command, whose last value click keeps. Every other
documented command is parsed by tests/test_docs.py."""

from __future__ import annotations

import csv
import json

import numpy as np
from click.testing import CliRunner
from PIL import Image

from tests.test_docs import DOCS, README, SMALL_BUDGET, Command, commands_in
from vampkeras.data import load_dataset
from vampkeras_cli.main import main


def run(command: Command):
    args = [*command.args, *SMALL_BUDGET.get(command.name, [])]
    result = CliRunner().invoke(main, args, catch_exceptions=False)
    assert result.exit_code == 0, f"{command.where}: vampkeras {' '.join(args)}\n{result.output[-3000:]}"
    return result


def page_commands(path) -> list[Command]:
    return commands_in(path.read_text(encoding="utf-8"), path.name)


def test_the_quickstart_then_evaluating_and_looking(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    train, evaluate = page_commands(README)[:2]
    assert (train.name, evaluate.name) == ("train", "evaluate")
    run(train)
    summary = json.loads(run(evaluate).stdout)
    assert summary["num_examples"] == 50 and summary["log_likelihood"] < 0

    # `digits/` stands for the reader's own images: 28x28 black-and-white PNGs for the quickstart's model
    (tmp_path / "digits").mkdir()
    for index, image in enumerate(load_dataset("mnist5k", max_examples=20).test.reshape(-1, 28, 28)):
        Image.fromarray((image * 255).astype(np.uint8)).save(tmp_path / "digits" / f"{index:02d}.png")
    commands = page_commands(DOCS / "evaluating.md")
    assert [command.name for command in commands] == ["evaluate", "sample", "sample", "score", "report"]
    for command in commands:
        run(command)
    assert json.loads((tmp_path / "runs" / "quickstart-test.json").read_text())["num_samples"] == 8
    assert np.load(tmp_path / "samples.npy").shape == (64, 28, 28)
    assert (tmp_path / "samples.png").is_file() and (tmp_path / "component3.png").is_file()
    with open(tmp_path / "scores.csv", newline="") as scores:
        assert len(list(csv.DictReader(scores))) == 20
    assert "<img" in (tmp_path / "runs" / "quickstart" / "report.html").read_text()


def test_the_datasets_table(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    commands = [command for command in page_commands(DOCS / "data.md") if command.name == "datasets"]
    assert len(commands) == 2
    for command in commands:
        output = run(command).output
        assert "mnist5k" in output and "cifar10" in output
