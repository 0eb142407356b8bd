"""The comparison's self-contained HTML page (``comparison.html``): the tables of
:mod:`vampkeras.comparison.results`, the sentences, the ELBO surgery, validation curves overlaid per model,
test log-likelihood histograms overlaid per prior, each cell's samples and pseudo-inputs side by side, and
the prior drawn against the aggregated posterior. Images are embedded; the page loads nothing else."""

from __future__ import annotations

import html
from pathlib import Path

import numpy as np

from vampkeras import figures
from vampkeras.comparison.grid import ComparisonConfig
from vampkeras.comparison.results import MODEL_NAMES, _mean_std, markdown
from vampkeras.comparison.worker import PRIOR_VS_POSTERIOR, read_per_image
from vampkeras.report import _img
from vampkeras.run_folder import RunFolder

__all__ = ["write_page", "render", "validation_curves", "histograms", "PAGE_FILE", "COLOURS"]

PAGE_FILE = "comparison.html"
COLOURS = ("#4477aa", "#cc3311", "#228833", "#ccbb44", "#aa3377", "#66ccee", "#bbbbbb")


def validation_curves(model: str, series: dict[str, list[list[dict]]]) -> bytes:
    """Validation loss per epoch of every cell of ``model``: one colour per (prior, lr) label, one line per seed.
    ``series`` maps a label to the histories of its seeds."""
    plt = figures._pyplot()
    figure, axes = plt.subplots(figsize=(7, 3.5))
    for colour, (label, histories) in zip(COLOURS * 4, series.items()):
        for index, history in enumerate(histories):
            axes.plot([row["epoch"] for row in history], [row["val_loss"] for row in history], color=colour,
                      alpha=0.8, linewidth=1, label=label if index == 0 else None)
    losses = [row["val_loss"] for histories in series.values() for history in histories for row in history]
    if losses:          # the first epochs' losses dwarf the differences that matter
        axes.set_ylim(min(losses) - 1, np.percentile(losses, 90))
    axes.set_xlabel("epoch")
    axes.set_ylabel("validation loss [nats]")
    axes.set_title(f"{MODEL_NAMES[model]}: validation loss")
    axes.legend(fontsize=8)
    return figures._figure_png(figure)


def histograms(model: str, values: dict[str, np.ndarray]) -> bytes:
    """Per-image test log-likelihoods of ``model`` overlaid per prior (``values``: label → (N,) nats)."""
    plt = figures._pyplot()
    figure, axes = plt.subplots(figsize=(7, 3.5))
    pooled = np.concatenate(list(values.values()))
    bins = np.linspace(np.percentile(pooled, 0.5), pooled.max(), 60)
    for colour, (label, array) in zip(COLOURS, values.items()):
        axes.hist(np.clip(array, bins[0], None), bins=bins, histtype="step", color=colour, linewidth=1.5,
                  label=f"{label} (mean {array.mean():.2f})")
    axes.set_xlabel("log p(x) [nats]")
    axes.set_ylabel("test images")
    axes.set_title(f"{MODEL_NAMES[model]}: test log-likelihood per image")
    axes.legend(fontsize=8)
    return figures._figure_png(figure)


def _cell_figure(run: RunFolder, name: str, caption: str) -> str:
    path = run.figure_path(name)
    return _img(path.read_bytes(), caption, scale=2 if name != PRIOR_VS_POSTERIOR else 1) if path.is_file() else ""


def render(comparison: ComparisonConfig, summary: dict) -> str:
    out = Path(comparison.out)
    kept = {(entry["model"], entry["prior"]): entry["lr"] for entry in summary["kept_learning_rates"]}
    cells = {row["cell"]: row for row in summary["cells"]}
    findings = "".join(f"<li>{html.escape(pair['sentence'])} <small>({html.escape(pair['covers'])})</small></li>"
                       for pair in summary["pairs"])
    sections = [f"<h2>Findings</h2><ul>{findings}</ul>"]
    table = markdown(summary)
    sections.append("<h2>Tables</h2>" + _markdown_tables(table))
    for model in comparison.models:
        series, lls, images = {}, {}, []
        for prior in comparison.priors:
            for lr in sorted({row["lr"] for row in cells.values() if row["model"] == model and row["prior"] == prior}):
                members = [name for name, row in cells.items()
                           if (row["model"], row["prior"], row["lr"]) == (model, prior, lr)]
                label = f"{prior} lr {lr}" + (" (kept)" if kept[(model, prior)] == lr else "")
                series[label] = [RunFolder(out / name).read_history() for name in members]
                if kept[(model, prior)] == lr:
                    lls[prior] = np.concatenate([read_per_image(RunFolder(out / name))["log_likelihood"]
                                                 for name in members])
                    first = RunFolder(out / members[0])
                    images.append(f"<div class='cell'><h4>{html.escape(prior)} ({html.escape(members[0])})</h4>"
                                  + _cell_figure(first, "generations", "samples")
                                  + _cell_figure(first, "pseudo_inputs", "pseudo-inputs")
                                  + _cell_figure(first, PRIOR_VS_POSTERIOR, "prior vs aggregated posterior")
                                  + "</div>")
        sections.append(f"<h2>{MODEL_NAMES[model]}</h2>"
                        + _img(validation_curves(model, series), "validation loss of every cell")
                        + _img(histograms(model, lls), "test log-likelihood per image, seeds pooled")
                        + "<h3>Samples, pseudo-inputs and the prior against the aggregated posterior</h3>"
                        + "".join(images))
    surgery = "".join(
        f"<tr><td>{MODEL_NAMES[g['model']]}</td><td>{html.escape(g['prior'])}</td><td>{g['lr']}</td>"
        f"<td>{_mean_std(g['kl'])}</td><td>{_mean_std(g['mutual_information'])}</td>"
        f"<td>{_mean_std(g['marginal_kl'])}</td><td>{_mean_std(g['conditional_kl_z1'])}</td></tr>"
        for g in summary["groups"] if g["kept"])
    sections.append(
        "<h2>Why it helps: ELBO surgery</h2><p>The KL term of the ELBO, averaged over test images, is I(x; z) + "
        "KL(q(z) ‖ p(z)), where q(z) is the aggregated posterior (Hoffman &amp; Johnson 2016). The paper's argument "
        "(§3) is that the best prior is q(z) itself: a better prior shrinks the second term. For the HVAE the "
        "split is of z2, the latent the prior is on, and z1's conditional KL, E KL(q(z1|x, z2) ‖ p(z1|z2)), is its "
        "own column; the KL column is the whole KL term.</p><table><tr><th>model</th><th>prior</th><th>lr</th>"
        "<th>KL term</th><th>I(x; z)</th><th>KL(q(z) ‖ p(z))</th><th>z1's conditional KL (HVAE)</th></tr>"
        f"{surgery}</table>")
    style = ("body{font-family:sans-serif;max-width:1200px;margin:auto}table{border-collapse:collapse}"
             "th,td{border:1px solid #ccc;padding:2px 8px;text-align:left}img{image-rendering:pixelated;"
             "max-width:100%}figure{display:inline-block;margin:8px;vertical-align:top}.cell{display:inline-block;"
             "vertical-align:top;margin-right:16px}")
    return (f"<!DOCTYPE html><html><head><meta charset='utf-8'><title>vampkeras comparison on "
            f"{html.escape(summary['dataset'])}</title><style>{style}</style></head><body>"
            f"<h1>Priors compared on {html.escape(summary['dataset'])}</h1>"
            f"<p>comparison folder: {html.escape(str(out))}</p>" + "".join(sections) + "</body></html>")


def _markdown_tables(text: str) -> str:
    """The Markdown tables of :func:`vampkeras.comparison.results.markdown` as HTML tables (other lines as
    paragraphs)."""
    parts, rows = [], []

    def flush():
        if rows:
            header, *body = rows
            parts.append("<table><tr>" + "".join(f"<th>{html.escape(c)}</th>" for c in header) + "</tr>"
                         + "".join("<tr>" + "".join(f"<td>{html.escape(c)}</td>" for c in row) + "</tr>"
                                   for row in body) + "</table>")
            rows.clear()

    for line in text.splitlines():
        if line.startswith("|"):
            cells = [cell.strip() for cell in line.strip("|").split("|")]
            if not all(set(cell) <= {"-"} for cell in cells):
                rows.append(cells)
            continue
        flush()
        if line.startswith("#"):
            parts.append(f"<h3>{html.escape(line.lstrip('# '))}</h3>")
        elif line.startswith("- "):
            continue            # the sentences are the Findings above
        elif line.strip():
            parts.append(f"<p>{html.escape(line)}</p>")
    flush()
    return "".join(parts)


def write_page(comparison: ComparisonConfig, summary: dict) -> Path:
    from vampkeras.checkpoints import atomic_write_text

    path = Path(comparison.out) / PAGE_FILE
    atomic_write_text(path, render(comparison, summary))
    return path
