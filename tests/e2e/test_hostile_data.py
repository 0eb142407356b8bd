"""Dataset files that would run code, through the CLI (#33 items 1-3): `vampkeras train` and `vampkeras evaluate`
refuse them with one `Error:` line and exit status 2, run no payload, create no run folder and keep nothing
unverified in the data folder."""

import pickle

import numpy as np
import pytest
from click.testing import CliRunner

from tests.data.test_loaders import Server, histopathology_archive, malicious_pickle
from tests.known_files import trust
from vampkeras.data.download import ALLOW_UNVERIFIED_ENV, MIRROR_ENV
from vampkeras_cli.main import main


@pytest.fixture(autouse=True)
def no_mirror(monkeypatch, tmp_path):
    monkeypatch.delenv(MIRROR_ENV, raising=False)
    monkeypatch.delenv(ALLOW_UNVERIFIED_ENV, raising=False)
    monkeypatch.setenv("VAMPKERAS_CACHE", str(tmp_path / "cache"))


def cli(*args):
    return CliRunner().invoke(main, [str(a) for a in args], catch_exceptions=False)


def refused(result, *expected):
    assert result.exit_code == 2, result.output
    assert result.output.count("Error:") == 1 and "Traceback" not in result.output, result.output
    for text in expected:
        assert text in result.output, result.output


def train(data_dir, run_dir, dataset, *options):
    return cli("train", "--dataset", dataset, "--data-dir", data_dir, "--run-dir", run_dir, "--epochs", 1,
               "--export", run_dir.parent / "model", "--components", 5, "--quiet", "--image-every", 0, *options)


@pytest.mark.parametrize("registered", [False, True], ids=["as placed", "checksum registered"])
def test_train_on_a_malicious_frey_faces_pickle(tmp_path, monkeypatch, registered):
    marker = tmp_path / "payload-ran"
    path = tmp_path / "data" / "freyfaces" / "freyfaces.pkl"
    path.parent.mkdir(parents=True)
    path.write_bytes(malicious_pickle(marker, protocol=0))
    if registered:
        trust(monkeypatch, "freyfaces", path)
    result = train(tmp_path / "data", tmp_path / "run", "freyfaces")
    refused(result, "refusing to unpickle" if registered else "is not the file vampkeras knows as freyfaces")
    assert not marker.exists() and not (tmp_path / "run").exists() and not (tmp_path / "model").exists()


def test_evaluate_a_run_whose_data_folder_now_holds_a_malicious_pickle(tmp_path, monkeypatch):
    data_dir, run = tmp_path / "data", tmp_path / "run"
    path = data_dir / "freyfaces" / "freyfaces.pkl"
    path.parent.mkdir(parents=True)
    faces = np.random.default_rng(0).integers(0, 256, (500, 560)).astype(np.uint8)
    path.write_bytes(pickle.dumps([faces], protocol=2))
    with monkeypatch.context() as patch:
        trust(patch, "freyfaces", path)                  # a stand-in for the real file, for this training only
        result = train(data_dir, run, "freyfaces", "--max-examples", 20)
        assert result.exit_code == 0, result.output
    marker = tmp_path / "payload-ran"
    path.write_bytes(malicious_pickle(marker))
    refused(cli("evaluate", run, "--samples", 2, "--quiet"), "is not the file vampkeras knows as freyfaces")
    trust(monkeypatch, "freyfaces", path)
    refused(cli("evaluate", run, "--samples", 2, "--quiet"), "refusing to unpickle")
    assert not marker.exists() and not (run / "evaluation.json").exists()


@pytest.mark.parametrize("name", ["histopathology.pkl.tar.gz", "histopathology.pkl"])
def test_train_on_a_malicious_histopathology_pickle(tmp_path, name):
    marker = tmp_path / "payload-ran"
    path = tmp_path / "data" / "histopathology" / name
    if name.endswith(".tar.gz"):
        histopathology_archive(path, malicious_pickle(marker))
    else:
        path.parent.mkdir(parents=True)
        path.write_bytes(malicious_pickle(marker))
    refused(train(tmp_path / "data", tmp_path / "run", "histopathology"), "refusing to unpickle")
    assert not marker.exists() and not (tmp_path / "run").exists() and not (tmp_path / "model").exists()


@pytest.mark.parametrize("allowed", [False, True], ids=["by default", "with VAMPKERAS_ALLOW_UNVERIFIED=1"])
def test_train_on_histopathology_from_a_mirror_serving_a_malicious_archive(tmp_path, monkeypatch, allowed):
    marker = tmp_path / "payload-ran"
    histopathology_archive(tmp_path / "served" / "histopathology" / "histopathology.pkl.tar.gz",
                           malicious_pickle(marker))
    server = Server(tmp_path / "served")
    monkeypatch.setenv(MIRROR_ENV, server.url)
    if allowed:
        monkeypatch.setenv(ALLOW_UNVERIFIED_ENV, "1")
    try:
        result = train(tmp_path / "data", tmp_path / "run", "histopathology")
    finally:
        server.close()
    refused(result, "was not saved" if allowed else "no published sha256")
    assert len(server.requests) == (1 if allowed else 0)
    assert not marker.exists() and not (tmp_path / "run").exists() and not (tmp_path / "model").exists()
    folder = tmp_path / "data" / "histopathology"
    assert not folder.exists() or list(folder.iterdir()) == []
