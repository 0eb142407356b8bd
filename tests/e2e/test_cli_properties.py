"""Property: whatever values the numeric options get, a command exits 0 or 2 (one `Error:` line), never with a
traceback, and changes no file outside its own outputs. The same for the path and data options (issue #33):
odd, long, control-character, special and impossible paths, and hostile data files.

Values are drawn from what careless users and hostile scripts type: small valid numbers, zero, negatives,
numbers just past and far past every limit (2^31, 2^32 + 10, 2^40), floats, nan/inf and text. Valid numbers
are kept small so that a command that runs stays quick."""

import contextlib
import os
import shutil
import stat
import tempfile
from pathlib import Path

import numpy as np
from click.testing import CliRunner
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.guards import devices_guarded
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

SETTINGS = settings(max_examples=8, deadline=None, derandomize=True,
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
    # Small --samples and --max-examples come first, so that the drawn options (click keeps an option's last
    # value) are fuzzed while an example that draws neither does not score the whole test split with S = 5000.
    with workspace_with_model(trained_run) as workspace:
        run_and_check(["evaluate", "model", "--quiet", "--json", "out.json", "--figures", "figures", "--samples", "2",
                       "--max-examples", "5", *arguments], workspace, {"out.json", "figures"})


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


# -- paths and data (issue #33) -------------------------------------------------------------------------------
# Property: whatever a path or data option names (odd, long, control-character, special or impossible paths,
# files of the wrong kind, hostile data), a command exits 0 or 2 with exactly one `Error:` line, never with a
# traceback, changes nothing outside the outputs it was given, and never replaces a special file.
# Random names are single components inside the workspace (no "/", not "." or ".."): a random absolute or
# "../.." path could reach files of the machine itself. /dev paths are given by name only as the streams, and
# tests.guards.devices_guarded is on while a command runs (a regression fails instead of replacing a device).
ODD_PATHS = ["", "-", ".", "fifo", "sock", "dir", "file", "file/below", "new/deeper/name", "n" * 255, "n" * 256,
             "x\nError: forged line", "\x1b[31mred", "tab\there", "\udcffundecodable", "nul\0byte", "\u2028sep",
             "/" + "/".join(["d" * 200] * 21), "/proc/x", "/proc/new/x", "/dev/stdout", "/dev/stderr", "/dev/null",
             "~no-such-user-33/x", "dir/../file", " "]
RANDOM_NAME = st.text(st.characters(blacklist_characters="/", blacklist_categories=("Cs",)), min_size=1,
                      max_size=24).filter(lambda name: name not in (".", ".."))
PATH = st.one_of(st.sampled_from(ODD_PATHS), RANDOM_NAME)
DATASETS = st.one_of(st.sampled_from(["mnist5k", "tiny.npy", "empty.npy", "text.npz", "odd-images", "fifo",
                                      "dir", "tfds:", "tfds:../x", "freyfaces", "no-such.npy", "n" * 256 + ".npy"]),
                     PATH)
DATA_OPTIONS = {"--dataset": DATASETS, "--data-dir": PATH,
                "--split": st.sampled_from(["0.8,0.1,0.1", "1,1", "nan,1,1", "0,1,1", "1e309,1,1", "", "a,b,c"]),
                "--binarize": st.sampled_from(["dynamic", "static", "none", "", "\n"]),
                "--likelihood": st.sampled_from(["bernoulli", "discretized_logistic", "gauss"])}
PATH_SETTINGS = settings(max_examples=8, deadline=None, derandomize=True,
                         suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])


@contextlib.contextmanager
def hostile_workspace(trained_run=None):
    """A fresh folder as the current one for a command (inside ``root``/ws, so that ``..`` stays in the temporary
    folder): a FIFO, a socket, a folder, a file, hostile data (an empty .npy, a text .npz, images with odd
    names) and a tiny valid .npy; with ``trained_run`` also its SavedModel as ``model`` and images.npy."""
    import socket

    from PIL import Image

    with tempfile.TemporaryDirectory() as folder:
        root = Path(folder)
        workspace = root / "ws"
        workspace.mkdir()
        os.mkfifo(workspace / "fifo")
        listener = socket.socket(socket.AF_UNIX)
        listener.bind(str(workspace / "sock"))
        listener.close()
        (workspace / "dir").mkdir()
        (workspace / "file").write_text("the user's own file")
        (workspace / "empty.npy").write_bytes(b"")
        (workspace / "text.npz").write_text("not an archive")
        np.save(workspace / "tiny.npy", np.random.default_rng(0).integers(0, 256, (24, 8, 8), dtype=np.uint8))
        odd = workspace / "odd-images"
        odd.mkdir()
        for index, name in enumerate(["a.png", "bad\nError: forged.png", "\x1b[2Jclear.png", "\udcff.png"]):
            Image.fromarray(np.full((8, 8), 50 * index, np.uint8)).save(odd / name)
        (odd / "broken\rError: forged.png").write_bytes(b"\x89PNG\r\n\x1a\n damaged")
        if trained_run is not None:
            shutil.copytree(trained_run.export_dir, workspace / "model")
            np.save(workspace / "images.npy",
                    (np.random.default_rng(0).uniform(size=(5, 28, 28)) > 0.5).astype(np.float32))
        yield root, workspace


def output_names(workspace: Path, values) -> set:
    """The first component (relative to ``workspace``, perhaps "..") of each output path in ``values``."""
    names = set()
    for value in values:
        try:
            relative = os.path.relpath(os.path.normpath(os.path.join(workspace, value)), workspace)
        except ValueError:          # (a NUL byte: no file is written)
            continue
        names.add(relative.split(os.sep)[0])
    return names


def special_files(workspace: Path) -> dict:
    return {name: stat.S_IFMT(os.lstat(workspace / name).st_mode) for name in ("fifo", "sock")}


def run_path_command(arguments: list[str], root: Path, workspace: Path, outputs: set) -> None:
    """Run the CLI in ``workspace``: exit 0 or 2, exactly one `Error:` line on a refusal, no traceback, nothing
    new or changed under ``root`` but in ``outputs`` (first components of paths relative to ``workspace``; "."
    allows the files directly in it), /dev/null and the workspace's FIFO and socket as they were."""
    before, specials, null = snapshot(root), special_files(workspace), os.stat("/dev/null")
    cwd = os.getcwd()
    os.chdir(workspace)
    try:
        with devices_guarded():
            result = CliRunner().invoke(main, arguments)
    finally:
        os.chdir(cwd)
    assert result.exception is None or isinstance(result.exception, SystemExit), (arguments, result.exception)
    assert result.exit_code in (0, 2), (arguments, result.output)
    assert "Traceback" not in result.output, (arguments, result.output)
    if result.exit_code == 2:
        errors = [line for line in result.stderr.splitlines() if line.startswith("Error:")]
        assert len(errors) == 1, (arguments, result.stderr)
    after = snapshot(root)
    changed = {name for name in set(before) | set(after) if before.get(name) != after.get(name)}
    relative = {name: os.path.relpath(root / name, workspace) for name in changed}
    stray = {name for name, path in relative.items()
             if path.split(os.sep)[0] not in outputs and not ("." in outputs and os.sep not in path)}
    assert not stray, (arguments, sorted(stray))
    assert special_files(workspace) == specials and os.stat("/dev/null").st_rdev == null.st_rdev


def chosen(draw_map: dict) -> st.SearchStrategy:
    """A random subset of the options in ``draw_map``, as a dict of option -> drawn value."""
    return st.fixed_dictionaries({}, optional=draw_map)


def as_arguments(options: dict) -> list[str]:
    return [part for name, value in options.items() for part in (name, value)]


@given(chosen({"--run-dir": PATH, "--export": PATH, **DATA_OPTIONS}))
@settings(max_examples=8, deadline=None, derandomize=True,
          suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])
def test_train_path_and_data_options(monkeypatch, options):
    monkeypatch.setenv("VAMPKERAS_OFFLINE", "1")                      # never a download
    with hostile_workspace() as (root, workspace):
        outputs = output_names(workspace, [options.get("--run-dir", "runs"), options.get("--export", "saved_models"),
                                           options.get("--data-dir", "data")])
        run_path_command(["train", "--epochs", "1", "--quiet", "--max-examples", "12", "--components", "2",
                          "--image-every", "0", *as_arguments(options)], root, workspace, outputs)


@given(chosen({"--json": PATH, "--figures": PATH, "--dataset": DATASETS, "--data-dir": PATH}))
@PATH_SETTINGS
def test_evaluate_path_and_data_options(trained_run, options):
    with hostile_workspace(trained_run) as (root, workspace):
        outputs = output_names(workspace, [options[name] for name in ("--json", "--figures") if name in options])
        run_path_command(["evaluate", "model", "--quiet", "--samples", "2", "--max-examples", "4",
                          *as_arguments(options)], root, workspace, outputs)


COMMANDS = {"sample": (["sample", "model", "-n", "4"], {"--out": "samples.png"}, ("--out", "--npy")),
            "score": (["score", "model", "images.npy", "--quiet", "--samples", "2"], {"--out": "scores.csv"},
                      ("--out",)),
            "report": (["report", "run", "--samples", "2", "--max-examples", "4"], {"--out": "run"},
                       ("--out", "--data-dir"))}


@given(st.sampled_from(sorted(COMMANDS)), chosen({"--out": PATH, "--npy": PATH, "--data-dir": PATH}))
@PATH_SETTINGS
def test_sample_score_report_path_options(trained_run, command, options):
    arguments, defaults, accepted = COMMANDS[command]
    options = {name: value for name, value in options.items() if name in accepted}
    with hostile_workspace(trained_run) as (root, workspace):
        if command == "report":
            shutil.copytree(trained_run.run_dir, workspace / "run")
        written = {**defaults, **{name: value for name, value in options.items() if name in ("--out", "--npy")}}
        outputs = output_names(workspace, written.values()) | ({"run"} if command == "report" else set())
        run_path_command([*arguments, *as_arguments(options)], root, workspace, outputs)
