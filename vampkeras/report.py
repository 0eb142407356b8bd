"""A one-page, self-contained HTML report of a run: config, metrics, curves, images (all embedded)."""

from __future__ import annotations

import base64
import csv
import html
import io
import json
import logging
from pathlib import Path

import numpy as np

from vampkeras import figures
from vampkeras.checkpoints import atomic_write_text
from vampkeras.errors import VampkerasError

logger = logging.getLogger(__name__)

EVALUATION_FILE = "evaluation.json"


def read_history(run_dir) -> list[dict]:
    path = Path(run_dir) / "history.csv"
    if not path.is_file():
        return []
    with open(path, newline="") as stream:
        return [{key: float(value) for key, value in row.items() if value != ""} for row in csv.DictReader(stream)]


def _img(png: bytes, caption: str, scale: int = 1) -> str:
    """An embedded PNG with a caption; image grids are shown ``scale`` times their pixel size."""
    from PIL import Image
    width = Image.open(io.BytesIO(png)).width * scale
    data = base64.b64encode(png).decode("ascii")
    return (f'<figure><img alt="{html.escape(caption)}" width="{width}" src="data:image/png;base64,{data}">'
            f"<figcaption>{html.escape(caption)}</figcaption></figure>")


def write_report(run_dir, out_path=None, num_samples: int = 1000, max_examples: int | None = None,
                 data_dir=None) -> Path:
    """Evaluate the run (or reuse its ``evaluation.json`` when it used at least ``num_samples``) and write
    ``report.html`` (default: inside the run folder). Returns the report's path."""
    from vampkeras.data import load_dataset
    from vampkeras.evaluation import evaluate, load_scorer

    run_dir = Path(run_dir)
    if not (run_dir / "config.json").is_file():
        raise VampkerasError(f"{run_dir} is not a run folder (no config.json)")
    scorer = load_scorer(run_dir)
    config = scorer.config
    saved = run_dir / EVALUATION_FILE
    summary, per_example = None, None
    if saved.is_file():
        stored = json.loads(saved.read_text())
        if stored.get("num_samples", 0) >= num_samples and (max_examples is None
                                                            or stored.get("num_examples", 0) <= max_examples):
            summary = stored
    if summary is None:
        summary, per_example = evaluate(run_dir, num_samples=num_samples, max_examples=max_examples,
                                        data_dir=data_dir or config.data_dir)
    histogram_path = run_dir / "figures" / "log_likelihood_histogram.png"
    if per_example is not None:
        histogram = figures.log_likelihood_histogram(per_example["log_likelihood"])
        figures.save_png(histogram_path, histogram)
    elif histogram_path.is_file():
        histogram = histogram_path.read_bytes()
    else:
        histogram = None

    data = load_dataset(config.dataset, data_dir or config.data_dir, max_examples=16)
    test_images = data.test[:16].reshape(-1, *scorer.image_shape)
    images = figures.model_images(scorer.module, test_images)
    history = read_history(run_dir)

    rows = "".join(f"<tr><th>{html.escape(str(k))}</th><td>{html.escape(json.dumps(v))}</td></tr>"
                   for k, v in sorted(config.to_dict().items()))
    metric_names = ("log_likelihood", "elbo", "reconstruction", "kl", "num_examples", "num_samples", "split")
    metrics = "".join(f"<tr><th>{name}</th><td>{html.escape(str(summary.get(name)))}</td></tr>"
                      for name in metric_names)
    metrics += "".join(f"<tr><th>active units {html.escape(layer)}</th><td>{count} / {config.latent_dim}</td></tr>"
                       for layer, count in summary.get("active_units", {}).items())
    sections = [f"<h2>Metrics ({html.escape(str(summary.get('dataset')))}, nats)</h2><table>{metrics}</table>"]
    if history:
        sections.append("<h2>Training</h2>" + _img(figures.training_curves(history), "training curves"))
    captions = {"generations": "samples from the prior", "reconstructions": "test images (odd rows) and their "
                "reconstructions (even rows)", "pseudo_inputs": "pseudo-inputs (first 100)",
                "component_generations": "samples from one prior component (pseudo-input first)"}
    sections.append("<h2>Images</h2>" + "".join(_img(figures.png_bytes(images[name]), caption, scale=2)
                                                for name, caption in captions.items() if name in images))
    if histogram is not None:
        sections.append("<h2>Test log-likelihood per example</h2>" + _img(histogram, "log-likelihood histogram"))
    sections.append(f"<h2>Configuration</h2><table>{rows}</table>")
    page = ("<!DOCTYPE html><html><head><meta charset='utf-8'><title>vampkeras run "
            f"{html.escape(run_dir.name)}</title><style>body{{font-family:sans-serif;max-width:1100px;margin:auto}}"
            "table{border-collapse:collapse}th,td{border:1px solid #ccc;padding:2px 8px;text-align:left}"
            "img{image-rendering:pixelated;max-width:100%}figure{display:inline-block;margin:8px}</style></head>"
            f"<body><h1>{html.escape(config.model)} + {html.escape(config.prior)} on "
            f"{html.escape(config.dataset)}</h1><p>run folder: {html.escape(str(run_dir))}</p>"
            + "".join(sections) + "</body></html>")
    out_path = Path(out_path) if out_path else run_dir / "report.html"
    atomic_write_text(out_path, page)
    logger.info("wrote %s", out_path)
    return out_path
