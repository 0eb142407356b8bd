"""`sample`, `score`, `report`, evaluation figures and TensorBoard images on a real 1-epoch run."""

import base64
import csv
import html.parser
import io
import json
import shutil
import subprocess

import numpy as np
import pytest
from click.testing import CliRunner
from PIL import Image

from vampkeras.config import RunConfig
from vampkeras.data import load_dataset
from vampkeras.training import train
from vampkeras_cli.main import main


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    root = tmp_path_factory.mktemp("inspect")
    return train(RunConfig(epochs=1, warmup=1, max_examples=300, num_components=20, image_every=1,
                           run_dir=str(root / "run"), export_dir=str(root / "model")), verbose=0)


@pytest.fixture(scope="module")
def standard_run(tmp_path_factory):
    root = tmp_path_factory.mktemp("inspect-standard")
    return train(RunConfig(prior="standard", epochs=1, warmup=1, max_examples=100, image_every=0,
                           run_dir=str(root / "run"), export_dir=str(root / "model")), verbose=0)


def invoke(*args):
    return CliRunner().invoke(main, [str(a) for a in args], catch_exceptions=False)


def png_array(path_or_bytes):
    data = path_or_bytes if isinstance(path_or_bytes, bytes) else open(path_or_bytes, "rb").read()
    return np.asarray(Image.open(io.BytesIO(data)))


def test_training_writes_figures_and_tensorboard_images(run):
    folder = run.run_dir / "figures"
    for name in ("generations", "reconstructions", "pseudo_inputs", "component_generations", "training_curves"):
        image = png_array(folder / f"{name}.png")
        assert image.std() > 1.0, name
    assert png_array(folder / "generations.png").shape == (8 * 29 + 1, 8 * 29 + 1)
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator
    accumulator = EventAccumulator(str(run.run_dir / "logs"), size_guidance={"tensors": 0, "images": 0})
    accumulator.Reload()
    tags = set(accumulator.Tags()["tensors"]) | set(accumulator.Tags()["images"])
    assert {"generations", "reconstructions", "pseudo_inputs", "loss", "val_loss", "beta", "learning_rate",
            "seconds", "examples_per_second"} <= tags


@pytest.mark.parametrize("source", ["run", "model"])
def test_sample_from_run_folder_and_savedmodel(run, tmp_path, source):
    path = run.run_dir if source == "run" else run.export_dir
    result = invoke("sample", path, "-n", 64, "--seed", 3, "--out", tmp_path / "grid.png", "--npy", tmp_path / "s.npy")
    assert result.exit_code == 0, result.output
    grid = png_array(tmp_path / "grid.png")
    assert grid.shape == (8 * 29 + 1, 8 * 29 + 1) and grid.std() > 1.0
    samples = np.load(tmp_path / "s.npy")
    assert samples.shape == (64, 28, 28) and samples.min() >= 0 and samples.max() <= 1
    result = invoke("sample", path, "-n", 4, "--pseudo-input", 3, "--out", tmp_path / "k.png")
    assert result.exit_code == 0 and png_array(tmp_path / "k.png").shape == (2 * 29 + 1, 2 * 29 + 1)
    result = invoke("sample", path, "--pseudo-input", 999, "--out", tmp_path / "bad.png")
    assert result.exit_code == 2 and "--pseudo-input must lie in 0..19" in result.output
    assert "Traceback" not in result.output and not (tmp_path / "bad.png").exists()


def test_score_npy_and_png_folder(run, tmp_path):
    images = load_dataset("mnist5k", max_examples=12).test.reshape(-1, 28, 28)
    np.save(tmp_path / "x.npy", images)
    result = invoke("score", run.export_dir, tmp_path / "x.npy", "--samples", 50, "--out", tmp_path / "a.csv",
                    "--quiet")
    assert result.exit_code == 0, result.output
    rows = list(csv.DictReader(open(tmp_path / "a.csv")))
    assert len(rows) == 12 and [r["index"] for r in rows] == [str(i) for i in range(12)]
    ll = np.array([float(r["log_likelihood"]) for r in rows])
    elbo = np.array([float(r["elbo"]) for r in rows])
    assert np.all(np.isfinite(ll)) and ll.mean() > elbo.mean()
    folder = tmp_path / "pngs"
    folder.mkdir()
    for index, image in enumerate(images[:5]):
        Image.fromarray((image * 255).astype(np.uint8)).save(folder / f"img{index:02d}.png")
    result = invoke("score", run.run_dir, folder, "--samples", 50, "--out", tmp_path / "b.csv", "--quiet")
    assert result.exit_code == 0, result.output
    rows = list(csv.DictReader(open(tmp_path / "b.csv")))
    assert [r["name"] for r in rows] == [f"img{i:02d}.png" for i in range(5)]
    # the same five images as a .npy, scored through the SavedModel: the same numbers (same batch, same seed)
    np.save(tmp_path / "five.npy", images[:5])
    invoke("score", run.export_dir, tmp_path / "five.npy", "--samples", 50, "--out", tmp_path / "c.csv", "--quiet")
    np.testing.assert_allclose([float(r["log_likelihood"]) for r in rows],
                               [float(r["log_likelihood"]) for r in csv.DictReader(open(tmp_path / "c.csv"))],
                               rtol=1e-5)


@pytest.mark.parametrize("make, message", [
    (lambda: np.zeros((3, 28, 27)), "shape (N, 28, 28) or (N, 784)"),
    (lambda: np.full((3, 28, 28), 2.0), "must lie in [0, 1]"),
    (lambda: np.full((3, 28, 28), 0.5), "binary images only"),
    (lambda: np.full((3, 784), np.nan), "NaN"),
])
def test_score_refuses_bad_input(run, tmp_path, make, message):
    np.save(tmp_path / "bad.npy", make())
    result = invoke("score", run.export_dir, tmp_path / "bad.npy", "--out", tmp_path / "s.csv")
    assert result.exit_code == 2 and message in result.output and "Traceback" not in result.output
    assert not (tmp_path / "s.csv").exists()


class ImageCollector(html.parser.HTMLParser):
    def __init__(self):
        super().__init__()
        self.sources = []

    def handle_starttag(self, tag, attrs):
        if tag == "img":
            self.sources.append(dict(attrs)["src"])


def test_evaluate_figures_and_report(run, tmp_path):
    result = invoke("evaluate", run.run_dir, "--samples", 30, "--max-examples", 60, "--quiet")
    assert result.exit_code == 0, result.output
    summary = json.loads((run.run_dir / "evaluation.json").read_text())
    assert summary["num_samples"] == 30
    for name in ("log_likelihood_histogram", "active_units"):
        assert png_array(run.run_dir / "figures" / f"{name}.png").std() > 1.0
    out = tmp_path / "report.html"
    result = invoke("report", run.run_dir, "--out", out, "--samples", 30, "--max-examples", 60)
    assert result.exit_code == 0, result.output
    page = out.read_text()
    collector = ImageCollector()
    collector.feed(page)
    assert len(collector.sources) >= 6
    for source in collector.sources:
        assert source.startswith("data:image/png;base64,")
        assert png_array(base64.b64decode(source.split(",", 1)[1])).size > 0
    # nats to two decimals in the page; evaluation.json keeps the full precision
    assert f"{summary['log_likelihood']:.2f}" in page and str(summary["log_likelihood"]) not in page
    assert "active units z1" in page
    assert "http://" not in page and "https://" not in page           # self-contained


def test_report_renders_every_image_in_headless_chromium(run, tmp_path):
    browser = shutil.which("chromium") or shutil.which("chromium-browser")
    if browser is None:
        pytest.skip("chromium is not installed (CI installs Debian's chromium)")
    invoke("report", run.run_dir, "--out", tmp_path / "report.html", "--samples", 30, "--max-examples", 60)
    checker = tmp_path / "check.html"
    checker.write_text(
        "<html><body><iframe id='f' src='report.html' width='1200' height='800'></iframe><div id='result'>"
        "pending</div><script>document.getElementById('f').onload = function () {"
        "  const images = Array.from(this.contentDocument.images);"
        "  const broken = images.filter(i => !(i.complete && i.naturalWidth > 0)).length;"
        "  document.getElementById('result').textContent = 'images=' + images.length + ' broken=' + broken;"
        "};</script></body></html>")
    flags = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
             "--disable-background-networking", "--disable-component-update", "--disable-sync",
             "--allow-file-access-from-files", f"--user-data-dir={tmp_path / 'profile'}"]
    dom = subprocess.run([browser, *flags, "--virtual-time-budget=10000", "--dump-dom", checker.as_uri()],
                         capture_output=True, text=True, timeout=120).stdout
    assert "broken=0" in dom and "images=0" not in dom, dom[-500:]
    shot = tmp_path / "shot.png"
    subprocess.run([browser, *flags, "--window-size=1200,1600", f"--screenshot={shot}", (tmp_path / "report.html").as_uri()],
                   capture_output=True, timeout=120)
    assert png_array(shot)[..., :3].std() > 5.0


def test_commands_are_registered_with_help():
    assert {"sample", "score", "report"} <= set(main.commands)
    for name in ("sample", "score", "report"):
        result = invoke(name, "--help")
        assert result.exit_code == 0 and f"Usage: main {name}" in result.output


def test_run_folder_and_savedmodel_draw_the_same_figures(run, tmp_path):
    from vampkeras import figures
    from vampkeras.trained_model import TrainedModel

    test_images = load_dataset("mnist5k", max_examples=16).test.reshape(-1, 28, 28)
    grids = {}
    for source, path in (("run", run.run_dir), ("model", run.export_dir)):
        model = TrainedModel.load(path)
        paths = figures.write_run_figures(tmp_path / source, model, test_images=test_images)
        assert sorted(paths) == ["component_generations", "generations", "pseudo_inputs", "reconstructions"]
        grids[source] = {name: png_array(p) for name, p in paths.items()}
        tensorboard = figures.tensorboard_images(model, test_images, num=16, seed=1)
        assert tensorboard["generations"].shape == (1, 4 * 29 + 1, 4 * 29 + 1, 1)
        assert tensorboard["pseudo_inputs"].shape == (1, 2 * 29 + 1, 10 * 29 + 1, 1)   # K = 20
    assert grids["run"]["generations"].shape == (8 * 29 + 1, 8 * 29 + 1)
    for name, grid in grids["run"].items():       # same weights, same seeds: the same pixels (to rounding)
        assert np.abs(grid.astype(int) - grids["model"][name].astype(int)).max() <= 1, name


def test_standard_prior_has_no_components(standard_run, tmp_path):
    from vampkeras import figures
    from vampkeras.trained_model import TrainedModel

    result = invoke("sample", standard_run.export_dir, "--pseudo-input", 0, "--out", tmp_path / "k.png")
    assert result.exit_code == 2 and "has no components" in result.output and "Traceback" not in result.output
    paths = figures.write_run_figures(standard_run.run_dir, TrainedModel.load(standard_run.run_dir))
    assert sorted(paths) == ["generations", "reconstructions", "training_curves"]
    assert png_array(paths["training_curves"])[..., :3].std() > 10


def test_report_reuses_a_matching_evaluation_and_refuses_a_savedmodel(run, tmp_path):
    assert invoke("evaluate", run.run_dir, "--samples", 20, "--max-examples", 40, "--quiet").exit_code == 0
    saved = run.run_dir / "evaluation.json"
    before = saved.read_text()
    result = invoke("report", run.run_dir, "--out", tmp_path / "a.html", "--samples", 20, "--max-examples", 40)
    assert result.exit_code == 0 and saved.read_text() == before        # reused, not re-evaluated
    log_likelihood = json.loads(before)["log_likelihood"]
    assert f"{log_likelihood:.2f}" in (tmp_path / "a.html").read_text()
    result = invoke("report", run.run_dir, "--out", tmp_path / "b.html", "--samples", 20, "--max-examples", 30)
    assert result.exit_code == 0 and json.loads(saved.read_text())["num_examples"] == 30   # another test set
    result = invoke("report", run.export_dir, "--out", tmp_path / "c.html")
    assert result.exit_code == 2 and "not a run folder" in result.output and not (tmp_path / "c.html").exists()
