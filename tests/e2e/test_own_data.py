"""Your own images from the CLI: a grey and an RGB folder of PNGs (real MNIST digits, tinted for RGB), every
model on RGB, CIFAR-10 from an archive in the canonical format, data that changed, bad input, and the
custom-networks example."""

import importlib.util
import json
import math
import re
from pathlib import Path

import numpy as np
import pytest
import tensorflow as tf
from click.testing import CliRunner
from PIL import Image

from tests.data.test_user_data import BAD_INPUTS, cifar_archive, tinted, write_pngs
from vampkeras.data import registry, user_data
from vampkeras_cli.main import main

EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "custom_networks.py"


@pytest.fixture(autouse=True)
def no_downloads(monkeypatch):
    monkeypatch.setenv(user_data.OFFLINE_ENV, "1")


@pytest.fixture(scope="module")
def digits():
    return registry.mnist5k_pixels()[:120].reshape(-1, 28, 28)


def cli(*args):
    return CliRunner().invoke(main, [str(a) for a in args], catch_exceptions=False)


def train_and_evaluate(tmp_path, dataset, *options, samples=8):
    run, model = tmp_path / "run", tmp_path / "model"
    result = cli("train", "--dataset", dataset, "--epochs", "1", "--components", "10", "--quiet", "--run-dir", run,
                 "--export", model, *options)
    assert result.exit_code == 0, result.output
    result = cli("evaluate", model, "--samples", samples, "--quiet", "--json", tmp_path / "evaluation.json")
    assert result.exit_code == 0, result.output
    return run, model, json.loads((tmp_path / "evaluation.json").read_text())


def test_a_grey_png_folder_trains_exports_evaluates_and_reports(tmp_path, digits):
    folder = write_pngs(tmp_path / "digits", digits)
    run, model, summary = train_and_evaluate(tmp_path, folder)
    config = json.loads((run / "config.json").read_text())
    assert config["dataset"] == str(folder.resolve()) and config["likelihood"] == "discretized_logistic"
    assert config["data"]["image_shape"] == [28, 28] and config["data"]["splits"]["test"]["count"] == 12
    assert summary["dataset"] == str(folder.resolve()) and summary["num_examples"] == 12
    assert summary["bits_per_dim"] == pytest.approx(-summary["log_likelihood"] / (784 * math.log(2)), rel=1e-6)
    result = cli("evaluate", run, "--samples", 8, "--quiet")                  # the run folder scores too
    assert result.exit_code == 0, result.output
    result = cli("report", run, "--samples", 8)
    assert result.exit_code == 0, result.output
    assert "bits per dimension" in (run / "report.html").read_text()


@pytest.mark.parametrize("model", ["vae", "hvae", "convhvae", "pixelhvae"])
def test_every_model_trains_an_epoch_on_an_rgb_folder(tmp_path, digits, model):
    folder = write_pngs(tmp_path / "rgb", tinted(digits))
    images = "1" if model == "vae" else "0"     # the colour figures once (test_zoo_cli draws every model's)
    run, export, summary = train_and_evaluate(tmp_path, folder, "--model", model, "--image-every", images)
    assert summary["num_examples"] == 12 and np.isfinite(summary["log_likelihood"])
    assert summary["bits_per_dim"] == pytest.approx(-summary["log_likelihood"] / (28 * 28 * 3 * math.log(2)),
                                                    rel=1e-6)
    if images == "1":
        grid = np.asarray(Image.open(run / "figures" / "generations.png"))
        assert grid.shape == (8 * 29 + 1, 8 * 29 + 1, 3)                      # a colour grid of 64 samples
    served = tf.saved_model.load(str(export)).signatures["serving_default"]
    x = tf.constant((tinted(digits[:3]).astype(np.float32) + 0.5) / 256)     # (3, 28, 28, 3), the model's values
    scores = served(x=x)
    assert scores["log_likelihood"].shape == (3,) and np.all(np.isfinite(scores["log_likelihood"].numpy()))


def test_cifar10_end_to_end_on_an_archive_in_the_canonical_format(tmp_path, monkeypatch):
    from tests.known_files import trust
    trust(monkeypatch, "cifar10", cifar_archive(tmp_path / "data" / "cifar10" / "cifar-10-python.tar.gz", per_batch=20))
    run, model, summary = train_and_evaluate(tmp_path, "cifar10", "--data-dir", tmp_path / "data",
                                             "--image-every", "0")
    assert summary["dataset"] == "cifar10" and summary["num_examples"] == 20
    assert summary["bits_per_dim"] == pytest.approx(-summary["log_likelihood"] / (3072 * math.log(2)), rel=1e-6)
    assert json.loads((run / "config.json").read_text())["data"]["splits"]["validation"]["count"] == 20


def test_changed_data_are_refused_by_evaluate_and_resume(tmp_path, digits):
    folder = write_pngs(tmp_path / "digits", digits)
    run, model, _ = train_and_evaluate(tmp_path, folder, "--image-every", "0")
    write_pngs(folder, 255 - digits[:1])                                      # the user edits one image
    for command in (["evaluate", run, "--samples", 4], ["evaluate", model, "--samples", 4],
                    ["train", "--resume", "--run-dir", run, "--epochs", 2]):
        result = cli(*command)
        assert result.exit_code == 2, result.output
        assert result.output.count("Error:") == 1 and "changed since the run was trained" in result.output


def grey_folder(root, digits):
    return write_pngs(root / "g", digits[:20])


CLI_BAD = {   # each bad input of tests/data/test_user_data.py, and the options that contradict the data
    **{case: (make, message) for case, (make, message) in BAD_INPUTS.items()},
    "grey with --likelihood bernoulli": (grey_folder, "--likelihood bernoulli needs binary images"),
    "fewer images than --components with --pseudo-init data": (grey_folder, "--components 500 needs at least"),
    "TFDS name that does not exist": (lambda root, d: "tfds:no_such_dataset_anywhere", "not a TFDS dataset here"),
    "TFDS not prepared offline": (lambda root, d: "tfds:mnist", "downloads are off; prepare it"),
}
OPTIONS = {"grey with --likelihood bernoulli": ["--likelihood", "bernoulli"],
           "fewer images than --components with --pseudo-init data": ["--pseudo-init", "data"]}


@pytest.mark.parametrize("case", CLI_BAD, ids=list(CLI_BAD))
def test_bad_input_is_one_error_line_and_creates_nothing(tmp_path, digits, case):
    make, message = CLI_BAD[case]
    dataset = make(tmp_path, digits)
    (tmp_path / "data" / "tfds").mkdir(parents=True)
    result = cli("train", "--dataset", dataset, "--run-dir", tmp_path / "run", "--export", tmp_path / "model",
                 "--data-dir", tmp_path / "data", "--epochs", "1", "--quiet", *OPTIONS.get(case, []))
    assert result.exit_code == 2, result.output
    assert result.output.count("Error:") == 1 and re.search(message, result.output), result.output
    assert "Traceback" not in result.output
    assert not (tmp_path / "run").exists() and not (tmp_path / "model").exists()


def test_an_rgb_model_scores_rgb_pngs(tmp_path, digits):
    folder = write_pngs(tmp_path / "rgb", tinted(digits))
    run, model, _ = train_and_evaluate(tmp_path, folder, "--image-every", "0")
    result = cli("score", model, folder / "train" if (folder / "train").exists() else folder, "--samples", 4,
                 "--out", tmp_path / "scores.csv", "--quiet")
    assert result.exit_code == 0, result.output
    rows = (tmp_path / "scores.csv").read_text().splitlines()
    assert len(rows) == 1 + len(digits) and rows[1].split(",")[1] == "0000.png"
    grey = write_pngs(tmp_path / "grey", digits[:2])
    result = cli("score", model, grey, "--samples", 4, "--out", tmp_path / "grey.csv", "--quiet")
    assert result.exit_code == 0, result.output           # a grey PNG is the colour image it shows (R = G = B)
    result = cli("sample", model, "-n", 4, "--out", tmp_path / "samples.png", "--npy", tmp_path / "samples.npy")
    assert result.exit_code == 0, result.output
    assert np.load(tmp_path / "samples.npy").shape == (4, 28, 28, 3)
    assert np.asarray(Image.open(tmp_path / "samples.png")).shape == (2 * 29 + 1, 2 * 29 + 1, 3)


def test_the_custom_networks_example_trains_exports_and_scores(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    spec = importlib.util.spec_from_file_location("custom_networks", EXAMPLE)
    example = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(example)
    report = example.main(["--epochs", "2", "--max-examples", "300", "--components", "10", "--samples", "16"])
    assert report["epochs"] == 2 and math.isfinite(report["test_log_likelihood"])
    assert report["test_log_likelihood"] < 0 and 0 <= report["active_units"] <= 16
    config = json.loads(Path(report["run"], "config.json").read_text())
    assert config["networks"] == "conv_networks"
    # the run folder needs the networks again; the SavedModel does not
    result = cli("evaluate", report["run"], "--samples", 4, "--max-examples", 10, "--quiet")
    assert result.exit_code == 2 and "trained with your own networks" in result.output
    result = cli("evaluate", report["saved_model"], "--samples", 4, "--max-examples", 10, "--quiet")
    assert result.exit_code == 0, result.output


# -- issue #33: each numbered case through the CLI: one Error: line, exit status 2, nothing created -----------
def assert_refused(tmp_path, result, message):
    assert result.exit_code == 2, result.output
    assert result.output.count("Error:") == 1 and re.search(message, result.output), result.output
    assert "Traceback" not in result.output
    assert not (tmp_path / "run").exists() and not (tmp_path / "model").exists()


def train_cli(tmp_path, dataset, *options):
    return cli("train", "--dataset", dataset, "--run-dir", tmp_path / "run", "--export", tmp_path / "model",
               "--epochs", "1", "--quiet", *options)


def test_item_5_an_npz_bomb_and_a_lying_header_are_refused(tmp_path, monkeypatch):
    from tests.data.test_user_data import npy_bytes
    from tests.test_resources import fake_cgroup_limit

    np.savez_compressed(tmp_path / "bomb.npz", np.zeros((40000, 32, 32), np.uint8))      # 40 KB on disk
    fake_cgroup_limit(tmp_path, monkeypatch, 128 << 20)
    assert_refused(tmp_path, train_cli(tmp_path, tmp_path / "bomb.npz"),
                   r"bomb\.npz holds 40000 images of 32×32: reading them needs about 235\.3 MiB .* more than this "
                   r"process may use, 128\.0 MiB")
    (tmp_path / "lies.npy").write_bytes(npy_bytes((400000, 32, 32), data=bytes(1000)))
    assert_refused(tmp_path, train_cli(tmp_path, tmp_path / "lies.npy", "--max-examples", 20),
                   r"lies\.npy is truncated or corrupt: its header declares an array of shape \(400000, 32, 32\)")


def test_item_13_a_model_or_data_that_cannot_fit_are_refused_before_the_run_folder_exists(tmp_path, monkeypatch,
                                                                                          digits):
    """Ten 1024x1024 PNGs (grey ramps, a few KB each): the paper's VAE on them needs about 55 GiB, refused against
    a fake 16 GiB limit (so that no machine would start it); three PNG headers of 12000x12000 against 1 GiB."""
    from tests.data.test_user_data import png_header_only
    from tests.test_resources import fake_cgroup_limit

    ramps = np.broadcast_to((np.arange(1024) % 256).astype(np.uint8), (10, 1024, 1024))
    write_pngs(tmp_path / "mega", ramps)
    fake_cgroup_limit(tmp_path, monkeypatch, 16 << 30)
    assert_refused(tmp_path, train_cli(tmp_path, tmp_path / "mega"),
                   r"Error: this run does not fit in memory: the model needs about 5\d\.\d GiB \(1,785\.1 million "
                   r"parameters: .*\) and the data 76\.0 MiB \(10 images of 1024×1024 .*; this process may use 16\.0 "
                   r"GiB \(the limit of its cgroup")
    huge = tmp_path / "huge"
    huge.mkdir()
    for index in range(3):
        (huge / f"{index}.png").write_bytes(png_header_only(12000, 12000))
    fake_cgroup_limit(tmp_path, monkeypatch, 1 << 30)
    assert_refused(tmp_path, train_cli(tmp_path, huge), r"holds 3 images of 12000×12000: reading them needs about "
                                                        r"2\.1 GiB .* more than this process may use, 1\.0 GiB")
    # the small digits fit the same limit's data check, but not with the model and TensorFlow
    assert_refused(tmp_path, train_cli(tmp_path, write_pngs(tmp_path / "small", digits[:20])),
                   r"this run does not fit in memory: the model needs about .* TensorFlow itself about 1\.0 GiB; "
                   r"this process may use 1\.0 GiB")


def test_item_14_a_fifo_in_an_image_folder_is_refused_not_waited_on(tmp_path, digits):
    import os
    import signal

    def blocked(*_):
        raise TimeoutError("train blocked on the FIFO")
    previous = signal.signal(signal.SIGALRM, blocked)
    signal.alarm(60)
    try:
        folder = write_pngs(tmp_path / "f", digits[:20])
        os.mkfifo(folder / "x.png")
        assert_refused(tmp_path, train_cli(tmp_path, folder),
                       r"x\.png is a FIFO \(named pipe\), not a regular file: a --dataset folder holds regular image "
                       "files only")
        (folder / "x.png").unlink()
        (folder / "x.png").symlink_to(folder / "x.png")
        assert_refused(tmp_path, train_cli(tmp_path, folder), r"x\.png: Too many levels of symbolic links")
    finally:
        signal.alarm(0)
        signal.signal(signal.SIGALRM, previous)


def test_item_15_validation_of_0_and_1_beside_grey_splits_is_read_as_grey(tmp_path, digits):
    from vampkeras.data.user_data import content_sha256

    dark = (digits[80:100] > 127).astype(np.uint8)
    np.savez(tmp_path / "mixed.npz", train=digits[:80], validation=dark, test=digits[100:])
    run, _, _ = train_and_evaluate(tmp_path, tmp_path / "mixed.npz", "--image-every", "0", samples=2)
    record = json.loads((run / "config.json").read_text())["data"]
    assert record["likelihood"] == "discretized_logistic"
    grey = (dark.reshape(20, -1).astype(np.float32) + 0.5) / 256          # (k + 0.5)/256, as train and test
    assert record["splits"]["validation"]["sha256"] == content_sha256(grey)
