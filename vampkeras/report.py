"""A one-page, self-contained HTML report of a run: config, metrics, curves, images (all embedded)."""

from __future__ import annotations

import base64
import html
import io
import json
import logging
import numbers
from pathlib import Path

from vampkeras import figures
from vampkeras.checkpoints import atomic_write_text, check_writable_file
from vampkeras.errors import VampkerasError
from vampkeras.run_folder import RunFolder

__all__ = ["write_report", "NATS_METRICS"]

logger = logging.getLogger(__name__)


def _img(png: bytes, caption: str, scale: int = 1) -> str:
    """An embedded PNG with a caption; image grids are shown ``scale`` times their pixel size."""
    from PIL import Image
    width = Image.open(io.BytesIO(png)).width * scale
    data = base64.b64encode(png).decode("ascii")
    return (f'<figure><img alt="{html.escape(caption)}" width="{width}" src="data:image/png;base64,{data}">'
            f"<figcaption>{html.escape(caption)}</figcaption></figure>")


# Summary entries measured in nats: shown to two decimals (the saved evaluation keeps full precision).
NATS_METRICS = ("log_likelihood", "elbo", "reconstruction", "kl")


def _nats(value) -> str:
    """A number of nats as people read it, two decimals (``-96.73``); anything else (a missing value) as text."""
    if isinstance(value, numbers.Real) and not isinstance(value, bool):
        return f"{float(value):.2f}"
    return html.escape(str(value))


def _matching_evaluation(run: RunFolder, dataset: str, num_samples: int, num_examples: int) -> dict | None:
    """The run's saved evaluation summary if it scored the whole requested test set (the same dataset and
    number of examples) with at least ``num_samples`` importance samples, in float32; else None."""
    stored = run.read_evaluation()
    if stored is None:
        return None
    matches = (stored.get("dataset") == dataset and stored.get("split") == "test"
               and stored.get("num_examples") == num_examples and stored.get("num_samples", 0) >= num_samples
               and stored.get("precision", "float32") == "float32"
               and isinstance(stored.get("log_likelihood"), (int, float)))
    return stored if matches else None


def write_report(run_dir, out_path=None, num_samples: int = 1000, max_examples: int | None = None,
                 data_dir=None) -> Path:
    """Write one self-contained HTML page about the run in ``run_dir`` and return its path (default
    the run's report file, written atomically): config, final metrics (IS log-likelihood, ELBO,
    reconstruction, KL, active units per layer), training curves, generations, reconstructions,
    pseudo-inputs and one component's generations (if the prior has them) and the histogram of per-example
    test log-likelihoods (paper Figure 7). All images are embedded as ``data:image/png;base64`` URIs.

    The metrics come from the run's saved evaluation when it scored the same test set (the first
    ``max_examples`` test images, default all) with at least ``num_samples`` importance samples and the
    histogram figure is there; otherwise the run is evaluated with :func:`vampkeras.evaluation.evaluate`
    (which refreshes both)."""
    from vampkeras.data.registry import load_for_run
    from vampkeras.evaluation import evaluate
    from vampkeras.trained_model import TrainedModel

    run_dir = Path(run_dir)
    run = RunFolder(run_dir)
    run.read_config()          # a folder without (or with a broken) config.json is refused before any work
    if num_samples < 1:
        raise VampkerasError("--samples must be at least 1")
    out_path = Path(out_path) if out_path else run.report_path
    try:
        check_writable_file(out_path, "the report")
    except VampkerasError as error:
        hint = "; a read-only run can be reported elsewhere with --out FILE" if out_path == run.report_path else ""
        raise VampkerasError(f"{error}{hint}") from None
    model = TrainedModel.load(run_dir)
    config = model.config
    data_dir = data_dir or config.data_dir
    data = load_for_run(config, data_dir, max_examples=max_examples, what="report")
    histogram_path = run.figure_path(figures.HISTOGRAM)
    summary = _matching_evaluation(run, config.dataset, num_samples, len(data.test))
    histogram = None
    if summary is None or not histogram_path.is_file():
        # the model and data loaded above are scored as they are; the evaluation saves its histogram
        summary, per_example = evaluate(model, num_samples=num_samples, data=data)
        if not histogram_path.is_file() and len(per_example["log_likelihood"]):    # (a read-only run)
            histogram = figures.log_likelihood_histogram(per_example["log_likelihood"])
    if histogram is None and histogram_path.is_file():
        histogram = histogram_path.read_bytes()

    sizes = figures.figure_sizes(config)
    test_images = data.test[:sizes["num_test_images"]].reshape(-1, *model.image_shape)
    images = figures.model_images(model, test_images, num_samples=sizes["num_samples"],
                                  component_samples=sizes["component_samples"])
    history = run.read_history()

    rows = "".join(f"<tr><th>{html.escape(str(k))}</th><td>{html.escape(json.dumps(v))}</td></tr>"
                   for k, v in sorted(config.to_dict().items()))
    metrics = "".join(f"<tr><th>{html.escape(name)}</th><td>{_nats(summary.get(name))}</td></tr>"
                      for name in NATS_METRICS)
    if summary.get("bits_per_dim") is not None:
        metrics += f"<tr><th>bits per dimension</th><td>{float(summary['bits_per_dim']):.3f}</td></tr>"
    metrics += "".join(f"<tr><th>{html.escape(name)}</th><td>{html.escape(str(summary.get(name)))}</td></tr>"
                       for name in ("num_examples", "num_samples", "split"))
    metrics += "".join(f"<tr><th>active units {html.escape(str(layer))}</th>"
                       f"<td>{html.escape(str(count))} / {config.latent_dim}</td></tr>"
                       for layer, count in dict(summary.get("active_units") or {}).items())
    headline = (f"<p class='headline'>test log-likelihood {_nats(summary.get('log_likelihood'))} nats "
                f"(importance sampling, S = {html.escape(str(summary.get('num_samples')))}), "
                f"ELBO {_nats(summary.get('elbo'))} nats</p>")
    sections = [f"<h2>Metrics ({html.escape(str(summary.get('dataset')))}, nats)</h2>{headline}"
                f"<table>{metrics}</table>"]
    if history:
        sections.append("<h2>Training</h2>" + _img(figures.training_curves(history), "training curves"))
    captions = {"generations": "samples from the prior", "reconstructions": "test images (odd rows) and their "
                "reconstructions (even rows)", "pseudo_inputs": "pseudo-inputs (first 100)",
                "component_generations": ("pseudo-input 0, then samples from its component q(z|u_0)"
                                          if "pseudo_inputs" in images else "samples from prior component 0")}
    sections.append("<h2>Images</h2>" + "".join(_img(figures.png_bytes(images[name]), caption, scale=2)
                                                for name, caption in captions.items() if name in images))
    if histogram is not None:
        sections.append("<h2>Test log-likelihood per example</h2>" + _img(histogram, "log-likelihood histogram"))
    sections.append(f"<h2>Configuration</h2><table>{rows}</table>")
    page = ("<!DOCTYPE html><html><head><meta charset='utf-8'><title>vampkeras run "
            f"{html.escape(run_dir.name)}</title><style>body{{font-family:sans-serif;max-width:1100px;margin:auto}}"
            "table{border-collapse:collapse}th,td{border:1px solid #ccc;padding:2px 8px;text-align:left}"
            "img{image-rendering:pixelated;max-width:100%}figure{display:inline-block;margin:8px;vertical-align:top}"
            ".headline{font-size:120%}</style></head>"
            f"<body><h1>{html.escape(config.model)} + {html.escape(config.prior)} on "
            f"{html.escape(config.dataset)}</h1><p>run folder: {html.escape(str(run_dir))}</p>"
            + "".join(sections) + "</body></html>")
    try:
        atomic_write_text(out_path, page)
    except OSError as error:
        raise VampkerasError(f"cannot write the report {out_path}: {error.strerror or error}") from None
    logger.info("wrote %s", out_path)
    return out_path
