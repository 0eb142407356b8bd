"""Issue 23, no input ever shows a traceback: every user mistake with `score` and `sample` (and a SavedModel that
`evaluate` cannot use) ends in one `Error: ...` line and exit status 2, and what is accepted is scored as given."""

import csv
import os
import shutil

import numpy as np
import pytest
import tensorflow as tf
from click.testing import CliRunner
from PIL import Image

from vampkeras_cli.main import main

HEIGHT = WIDTH = 28          # mnist5k, the dataset of the shared trained_run


def invoke(*args):
    return CliRunner().invoke(main, [str(a) for a in args], catch_exceptions=False)


def assert_user_error(result, *fragments):
    assert result.exit_code == 2, result.output
    assert "Error:" in result.output and "Traceback" not in result.output, result.output
    for fragment in fragments:
        assert fragment in result.output, result.output


def binary_images(count=3):
    """(count, 28, 28) float32 0/1 images: the shared model has a Bernoulli likelihood."""
    return (np.random.default_rng(23).uniform(size=(count, HEIGHT, WIDTH)) < 0.3).astype(np.float32)


def log_likelihoods(csv_path):
    return [float(row["log_likelihood"]) for row in csv.DictReader(open(csv_path))]


def score(model, input_path, out):
    return invoke("score", model, input_path, "--samples", 2, "--out", out, "--quiet")


@pytest.fixture(scope="module")
def reference(trained_run, tmp_path_factory):
    """The binary images, and the scores of them and of the first alone, from plain (N, H, W) .npy files."""
    folder = tmp_path_factory.mktemp("reference")
    images, scores = binary_images(), {}
    for count in (len(images), 1):
        np.save(folder / "images.npy", images[:count])
        result = score(trained_run.export_dir, folder / "images.npy", folder / "scores.csv")
        assert result.exit_code == 0, result.output
        scores[count] = log_likelihoods(folder / "scores.csv")
    return images, scores


# -- input that is accepted: the same images give the same scores, whatever the form ----------------------
def grey_png_folder(tmp_path, images, mode):
    """The binary ``images`` as a folder of PNGs of ``mode``."""
    folder = tmp_path / "pngs"
    folder.mkdir()
    for index, image in enumerate(images):
        grey = (image * 255).astype(np.uint8)
        picture = {
            "L": lambda: Image.fromarray(grey),
            "1": lambda: Image.fromarray(grey).convert("1"),
            "LA": lambda: Image.fromarray(np.stack([grey, np.full_like(grey, 255)], axis=-1)),  # all opaque
            "RGB": lambda: Image.fromarray(np.stack([grey] * 3, axis=-1)),      # grey stored as colour
            "I;16": lambda: Image.fromarray(image.astype(np.uint16) * 65535),
        }[mode]()
        assert picture.mode == mode
        picture.save(folder / f"{index:02d}.png")
    return folder


def accepted(make, count=3):
    return count, make


ACCEPTED = {
    "npz of one array": accepted(lambda tmp_path, images: np.savez(tmp_path / "in.npz", images)
                                 or tmp_path / "in.npz"),
    "npz with an array named images": accepted(lambda tmp_path, images: np.savez(
        tmp_path / "in.npz", labels=np.arange(3), images=images) or tmp_path / "in.npz"),
    "npz with an array named x": accepted(lambda tmp_path, images: np.savez_compressed(
        tmp_path / "in.npz", x=images, y=np.arange(3)) or tmp_path / "in.npz"),
    "npy of (N, H, W, 1)": accepted(lambda tmp_path, images: np.save(tmp_path / "in.npy", images[..., None])
                                    or tmp_path / "in.npy"),
    "npy of bools": accepted(lambda tmp_path, images: np.save(tmp_path / "in.npy", images > 0.5)
                             or tmp_path / "in.npy"),
    "1-bit PNGs": accepted(lambda tmp_path, images: grey_png_folder(tmp_path, images, "1")),
    "grey PNGs with an opaque alpha": accepted(lambda tmp_path, images: grey_png_folder(tmp_path, images, "LA")),
    "RGB PNGs with equal channels": accepted(lambda tmp_path, images: grey_png_folder(tmp_path, images, "RGB")),
    "16-bit grey PNGs": accepted(lambda tmp_path, images: grey_png_folder(tmp_path, images, "I;16")),
    "one PNG file": accepted(lambda tmp_path, images: grey_png_folder(tmp_path, images[:1], "L") / "00.png", 1),
}


@pytest.mark.parametrize("kind", ACCEPTED)
def test_score_accepts_the_same_images_in_other_forms(trained_run, reference, tmp_path, kind):
    images, expected = reference
    count, make = ACCEPTED[kind]
    result = score(trained_run.export_dir, make(tmp_path, images), tmp_path / "scores.csv")
    assert result.exit_code == 0, result.output
    np.testing.assert_allclose(log_likelihoods(tmp_path / "scores.csv"), expected[count], rtol=1e-5)


# -- input that is refused --------------------------------------------------------------------------------
class Planted:
    """Unpickling it creates the file ``marker``: proof that an input was unpickled."""

    def __init__(self, marker):
        self.marker = marker

    def __reduce__(self):
        return open, (self.marker, "w")


def npy(array, **options):
    def make(tmp_path):
        np.save(tmp_path / "in.npy", array, **options)
        return tmp_path / "in.npy"
    return make


def npz(**arrays):
    def make(tmp_path):
        np.savez(tmp_path / "in.npz", **arrays)
        return tmp_path / "in.npz"
    return make


def png_folder(image_or_maker, name="bad.png"):
    """A folder of one good binary PNG and ``name``, saved from a PIL image or written by a function."""
    def make(tmp_path):
        folder = tmp_path / "pngs"
        folder.mkdir()
        Image.fromarray((binary_images(1)[0] * 255).astype(np.uint8)).save(folder / "a_good.png")
        if callable(image_or_maker):
            image_or_maker(folder / name)
        else:
            image_or_maker.save(folder / name)
        return folder
    return make


def empty_folder(tmp_path):
    (tmp_path / "empty").mkdir()
    (tmp_path / "empty" / "notes.txt").write_text("no images here")
    return tmp_path / "empty"


def truncated_npy(tmp_path):
    np.save(tmp_path / "in.npy", binary_images(5))
    os.truncate(tmp_path / "in.npy", os.path.getsize(tmp_path / "in.npy") // 2)
    return tmp_path / "in.npy"


def other_file(tmp_path):
    (tmp_path / "in.csv").write_text("0,1,0\n")
    return tmp_path / "in.csv"


def decompression_bomb(path):
    Image.new("1", (20000, 20000)).save(path)     # 400 million pixels, 50 kB on disk


def grey_with_alpha(alpha):
    pixels = np.stack([np.zeros((HEIGHT, WIDTH), np.uint8), np.full((HEIGHT, WIDTH), alpha, np.uint8)], axis=-1)
    return Image.fromarray(pixels)              # mode LA


COLOUR = np.zeros((HEIGHT, WIDTH, 3), np.uint8)
COLOUR[..., 0] = 255                               # red
TRANSPARENT_CORNER = np.full((HEIGHT, WIDTH, 4), 255, np.uint8)
TRANSPARENT_CORNER[0, 0, 3] = 0

REFUSED = {
    "npz of several arrays, none named images or x": (npz(a=binary_images(), b=binary_images()),
                                                      ["holds 2 arrays (a, b)", "images or x"]),
    "npz with both images and x": (npz(images=binary_images(), x=binary_images()), ["(images, x)"]),
    "npz of no arrays": (npz(), ["no images in", "no arrays"]),
    "0-d npy": (npy(np.float32(1.0)), ["a single number", "(N, 28, 28) or (N, 784)"]),
    "1-d npy": (npy(binary_images(1).reshape(-1)), ["shape (784,)", "(1, 28, 28)"]),
    "4-d npy with 3 channels": (npy(np.zeros((2, 28, 28, 3))), ["shape (2, 28, 28, 3)", "(N, 28, 28, 1)"]),
    "npy of no images": (npy(np.zeros((0, 28, 28))), ["no images in", "(0, 28, 28)"]),
    "folder of no PNGs": (empty_folder, ["no images in"]),
    "complex npy": (npy(binary_images() + 1j), ["complex numbers", "real numbers"]),
    "object npy in a npz": (npz(images=np.array([None, 1], dtype=object)), ["Python objects"]),
    "truncated npy": (truncated_npy, ["truncated"]),
    "neither array nor image": (other_file, ["neither a .npy or .npz file nor a PNG"]),
    "decompression bomb PNG": (png_folder(decompression_bomb), ["bad.png", "far larger", "not decoded"]),
    "PNG of another size": (png_folder(Image.new("L", (30, 28))), ["bad.png", "28 pixels high and 30 wide"]),
    "PNG over PIL's warning limit": (png_folder(Image.new("1", (10000, 10000))),
                                     ["bad.png", "10000 pixels high and 10000 wide"]),
    # 1000/65535 is nearly black, not the white of a 16-bit value clipped to 8 bits
    "16-bit PNG of grey values": (png_folder(Image.fromarray(np.full((HEIGHT, WIDTH), 1000, np.uint16))),
                                  ["binary images only"]),
    "PNG with a see-through alpha": (png_folder(grey_with_alpha(128)), ["bad.png", "transparent"]),
    "RGBA PNG with one clear pixel": (png_folder(Image.fromarray(TRANSPARENT_CORNER)),
                                      ["bad.png", "transparent"]),
    "colour PNG": (png_folder(Image.fromarray(COLOUR)), ["bad.png", "colour image"]),
    "not a PNG": (png_folder(lambda path: path.write_text("not an image")), ["bad.png", "cannot read"]),
}


@pytest.mark.parametrize("kind", REFUSED)
def test_score_refuses_input_with_one_message(trained_run, tmp_path, kind):
    make, fragments = REFUSED[kind]
    result = score(trained_run.export_dir, make(tmp_path), tmp_path / "scores.csv")
    assert_user_error(result, *fragments)
    assert not (tmp_path / "scores.csv").exists()


def test_an_object_array_is_refused_unread(trained_run, tmp_path):
    # the planted pickle works: loading it the unsafe way creates its marker
    np.save(tmp_path / "control.npy", np.array([Planted(str(tmp_path / "control"))], dtype=object), allow_pickle=True)
    np.load(tmp_path / "control.npy", allow_pickle=True)
    assert (tmp_path / "control").exists()
    marker = tmp_path / "unpickled"
    np.save(tmp_path / "in.npy", np.array([Planted(str(marker))], dtype=object), allow_pickle=True)
    result = score(trained_run.export_dir, tmp_path / "in.npy", tmp_path / "scores.csv")
    assert_user_error(result, "Python objects", "in.npy")
    assert not marker.exists()


# -- output files: refused before the model loads -----------------------------------------------------------
def output_cases(tmp_path):
    """(option, path) pairs that cannot be written. As root, permissions do not stop a write: only a path below
    a file is tested then."""
    (tmp_path / "afile").write_text("a file, not a folder")
    cases = [("below a file", tmp_path / "afile" / "x.out")]
    if os.geteuid() != 0:
        locked = tmp_path / "locked"
        locked.mkdir()
        locked.chmod(0o555)
        cases.append(("in a read-only folder", locked / "x.out"))
    return cases


@pytest.mark.parametrize("option", ["--out", "--npy"])
def test_sample_refuses_an_unwritable_output_before_loading(tmp_path, option):
    # PATH is no model at all: the output must be refused first, with no model loaded
    (tmp_path / "nomodel").mkdir()
    for _, path in output_cases(tmp_path):
        other = ["--npy", tmp_path / "s.npy"] if option == "--out" else ["--out", tmp_path / "s.png"]
        result = invoke("sample", tmp_path / "nomodel", option, path, *other)
        assert_user_error(result, f"Invalid value for '{option}': cannot write the file {path}")
        assert not (tmp_path / "s.npy").exists() and not (tmp_path / "s.png").exists()
    result = invoke("sample", tmp_path / "nomodel", option, tmp_path)     # an existing folder
    assert_user_error(result, str(tmp_path))


def test_score_refuses_an_unwritable_output_before_loading(tmp_path):
    (tmp_path / "nomodel").mkdir()
    np.save(tmp_path / "in.npy", binary_images())
    for _, path in output_cases(tmp_path):
        assert_user_error(invoke("score", tmp_path / "nomodel", tmp_path / "in.npy", "--out", path),
                          f"Invalid value for '--out': cannot write the file {path}")
    assert_user_error(invoke("score", tmp_path / "nomodel", tmp_path / "in.npy", "--out", tmp_path), str(tmp_path))
    before = (tmp_path / "in.npy").read_bytes()
    assert_user_error(invoke("score", tmp_path / "nomodel", tmp_path / "in.npy", "--out", tmp_path / "in.npy"),
                      "is the input file")
    assert (tmp_path / "in.npy").read_bytes() == before


def test_sample_writes_to_a_new_folder(trained_run, tmp_path):
    # the checks above refuse only what cannot be written: missing folders are created
    result = invoke("sample", trained_run.export_dir, "-n", 4, "--out", tmp_path / "new" / "s.png",
                    "--npy", tmp_path / "new" / "deeper" / "s.npy")
    assert result.exit_code == 0, result.output
    assert np.load(tmp_path / "new" / "deeper" / "s.npy").shape == (4, HEIGHT, WIDTH)


# -- SavedModels that are not ours, or damaged ---------------------------------------------------------------
class Foreign(tf.Module):
    """Another tool's SavedModel: a metadata() without vampkeras' keys."""

    @tf.function(input_signature=[])
    def metadata(self):
        return {"name": tf.constant("another tool")}


class Impostor(tf.Module):
    """vampkeras' metadata, but functions of other arguments (or, ``with_sample=False``, no sample at all)."""

    def __init__(self, config_json, with_sample=True):
        super().__init__()
        self.config_json = config_json
        if with_sample:
            self.sample = tf.function(lambda x: {"images": tf.zeros([3, HEIGHT, WIDTH]) + tf.reduce_sum(x)},
                                      input_signature=[tf.TensorSpec([None], tf.float32)])
            self.log_prob = tf.function(lambda x: {"log_likelihood": x},
                                        input_signature=[tf.TensorSpec([None], tf.float32)])

    @tf.function(input_signature=[])
    def metadata(self):
        return {"config_json": tf.constant(self.config_json), "format_version": tf.constant(1),
                "likelihood": tf.constant("bernoulli")}


@pytest.fixture(scope="module")
def broken_models(trained_run, tmp_path_factory):
    root = tmp_path_factory.mktemp("broken")
    half = root / "half-copied"
    shutil.copytree(trained_run.export_dir, half)
    data = half / "variables" / "variables.data-00000-of-00001"
    os.truncate(data, data.stat().st_size // 2)
    config_json = (trained_run.export_dir / "assets" / "config.json").read_text()
    tf.saved_model.save(Foreign(), str(root / "foreign"))
    tf.saved_model.save(Impostor(config_json, with_sample=False), str(root / "no-sample"))
    impostor = Impostor(config_json)
    tf.saved_model.save(impostor, str(root / "other-arguments"),
                        signatures={"sample": impostor.sample, "metadata": impostor.metadata})
    np.save(root / "in.npy", binary_images())
    return root


@pytest.mark.parametrize("name, message", [
    ("half-copied", "is damaged"),
    ("foreign", "is not a vampkeras SavedModel"),
    ("no-sample", "is not a vampkeras SavedModel"),
    ("other-arguments", "is not a vampkeras SavedModel"),
])
def test_a_savedmodel_that_is_damaged_or_not_ours_is_one_error(broken_models, tmp_path, name, message):
    model = broken_models / name
    assert_user_error(invoke("sample", model, "-n", 2, "--out", tmp_path / "s.png"), str(model), message)
    assert_user_error(invoke("score", model, broken_models / "in.npy", "--samples", 2, "--out", tmp_path / "s.csv"),
                      str(model), message)
    assert_user_error(invoke("evaluate", model, "--samples", 2, "--max-examples", 10, "--quiet"), str(model), message)
    assert not (tmp_path / "s.png").exists() and not (tmp_path / "s.csv").exists()
