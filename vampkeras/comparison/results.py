"""The numbers of a finished comparison, from its cells' records: one row per cell, mean ± std over seeds per
(model, prior, learning rate), the learning rate kept per (model, prior) (the lower mean best validation loss
over seeds, as the paper chose, §5.1), and for every pair of priors of a model the paired difference of
per-image test log-likelihoods (:mod:`vampkeras.comparison.statistics`). Written as ``comparison.json`` (every
number), ``comparison.csv`` (a row per cell) and ``comparison.md`` (the tables); the HTML page is
:mod:`vampkeras.comparison.page`'s."""

from __future__ import annotations

import csv
import io
from itertools import combinations
from pathlib import Path

from vampkeras.comparison import paper, statistics
from vampkeras.comparison.grid import ComparisonConfig, format_lr
from vampkeras.comparison.worker import read_per_image, read_score
from vampkeras.errors import VampkerasError
from vampkeras.run_folder import RunFolder

__all__ = ["collect", "write", "markdown", "csv_text", "JSON_FILE", "CSV_FILE", "MARKDOWN_FILE",
           "MODEL_NAMES", "SUMMARISED"]

JSON_FILE = "comparison.json"
CSV_FILE = "comparison.csv"
MARKDOWN_FILE = "comparison.md"
MODEL_NAMES = statistics.MODEL_NAMES
# the per-cell numbers summarised over seeds
SUMMARISED = ("log_likelihood", "bits_per_dim", "elbo", "kl", "best_val_loss", "epochs", "best_epoch",
              "train_seconds", "score_seconds", "mutual_information", "marginal_kl", "conditional_kl_z1")


def _cell_row(comparison: ComparisonConfig, cell) -> dict:
    run = RunFolder(Path(comparison.out) / cell.name)
    record = read_score(run)
    if record is None:
        raise VampkerasError(f"the cell {cell.name} is not scored yet")
    evaluation, training, surgery = record["evaluation"], record["training"], record["surgery"]
    row = {"cell": cell.name, "model": cell.model, "prior": cell.prior, "lr": format_lr(cell.lr), "seed": cell.seed,
           "log_likelihood": evaluation["log_likelihood"], "elbo": evaluation["elbo"], "kl": evaluation["kl"],
           "reconstruction": evaluation["reconstruction"], "num_examples": evaluation["num_examples"],
           "samples": evaluation["num_samples"],
           **{f"active_units_{layer}": count for layer, count in sorted(evaluation["active_units"].items())},
           "epochs": training["epochs"], "best_epoch": training["best_epoch"],
           "best_val_loss": training["best_val_loss"], "train_seconds": training["seconds"],
           "score_seconds": evaluation["seconds"],
           "average_kl_prior_latent": surgery["average_kl"], "mutual_information": surgery["mutual_information"],
           "marginal_kl": surgery["marginal_kl"], "mutual_information_bound": surgery.get("mutual_information_bound")}
    if cell.model != "vae":
        # the HVAE's KL term is KL(q(z2|x) ‖ p(z2)) + E KL(q(z1|x,z2) ‖ p(z1|z2)): the prior is on z2, which the
        # surgery splits; z1's conditional KL is the rest (a difference of two Monte-Carlo estimates)
        row["conditional_kl_z1"] = evaluation["kl"] - surgery["average_kl"]
    if "bits_per_dim" in evaluation:
        row["bits_per_dim"] = evaluation["bits_per_dim"]
    return row


def _spread(rows: list[dict], key: str) -> dict | None:
    values = [row[key] for row in rows if key in row]
    if not values:
        return None
    return {**statistics.seed_spread(values).to_json(), "values": [float(v) for v in values]}


def collect(comparison: ComparisonConfig) -> dict:
    """Every number of the finished comparison (what ``comparison.json`` holds)."""
    cells = comparison.cells()
    rows = [_cell_row(comparison, cell) for cell in cells]
    by_cell = {row["cell"]: row for row in rows}
    groups, kept = [], {}
    for model in comparison.models:
        for prior in comparison.priors:
            candidates = []
            for lr in comparison.learning_rates:
                members = [by_cell[cell.name] for cell in cells
                           if (cell.model, cell.prior, cell.lr) == (model, prior, lr)]
                group = {"model": model, "prior": prior, "lr": format_lr(lr), "seeds": [m["seed"] for m in members],
                         **{key: _spread(members, key) for key in SUMMARISED}}
                reported = paper.reported(comparison.dataset, model, prior)
                group["paper"] = None if reported is None else {"value": reported[0], "unit": reported[1]}
                candidates.append((group["best_val_loss"]["mean"], lr, group))
                groups.append(group)
            best_loss, best_lr, _ = min(candidates, key=lambda item: item[0])
            kept[(model, prior)] = best_lr
            for _, lr, group in candidates:
                group["kept"] = lr == best_lr
    pairs = []
    unit = "bits/dim" if "bits_per_dim" in rows[0] else "nats"
    image_shape = RunFolder(Path(comparison.out) / cells[0].name).read_config().data["image_shape"] \
        if unit == "bits/dim" else None
    for model in comparison.models:
        for prior_b, prior_a in combinations(comparison.priors, 2):     # (later vs earlier: baseline first)
            per_seed = {}
            for seed in comparison.seeds:
                arrays = []
                for prior in (prior_a, prior_b):
                    name = next(cell.name for cell in cells if (cell.model, cell.prior, cell.seed) ==
                                (model, prior, seed) and cell.lr == kept[(model, prior)])
                    arrays.append(read_per_image(RunFolder(Path(comparison.out) / name))["log_likelihood"])
                if len(arrays[0]) != len(arrays[1]):
                    raise VampkerasError(f"the cells of seed {seed} were scored on different numbers of images")
                per_seed[seed] = tuple(arrays)
            result = statistics.compare_priors(per_seed)
            sentences = {"nats": statistics.sentence(comparison.dataset, model, prior_a, prior_b, result)}
            if unit == "bits/dim":
                sentences["bits/dim"] = statistics.sentence(comparison.dataset, model, prior_a, prior_b, result,
                                                            unit="bits/dim", image_shape=image_shape)
            pairs.append({"model": model, "prior_a": prior_a, "prior_b": prior_b,
                          "lr_a": format_lr(kept[(model, prior_a)]), "lr_b": format_lr(kept[(model, prior_b)]),
                          **result.to_json(), "sentence": sentences[unit], "sentences": sentences})
    return {"dataset": comparison.dataset, "comparison": comparison.to_dict(), "unit": unit, "cells": rows,
            "groups": groups, "kept_learning_rates": [{"model": m, "prior": p, "lr": format_lr(lr)}
                                                      for (m, p), lr in kept.items()],
            "pairs": pairs}


def _number(value, digits: int = 2) -> str:
    return "" if value is None else f"{value:.{digits}f}"


def _mean_std(spread: dict | None, digits: int = 2) -> str:
    if spread is None:
        return ""
    if spread["std"] is None:
        return _number(spread["mean"], digits)
    return f"{spread['mean']:.{digits}f} ± {spread['std']:.{digits}f}"


def markdown(summary: dict) -> str:
    """The comparison's tables as Markdown: per (model, prior, learning rate) over seeds, then the paired
    differences with their sentences."""
    bits = summary["unit"] == "bits/dim"
    lines = [f"# Comparison on {summary['dataset']}", "",
             f"Test log-likelihood with S = {summary['comparison']['samples']} importance samples, mean ± std over "
             f"seeds {', '.join(map(str, summary['comparison']['seeds']))}; the kept learning rate (lower mean best "
             "validation loss) is marked *.", "",
             "| model | prior | lr | test LL (nats) |" + (" bits/dim |" if bits else "") +
             " ELBO | KL | I(x;z) | KL(q(z)‖p(z)) | best val loss | epochs (best) | paper |",
             "|---|---|---|---|" + ("---|" if bits else "") + "---|---|---|---|---|---|---|"]
    for group in summary["groups"]:
        reported = group["paper"]
        lines.append(
            f"| {MODEL_NAMES[group['model']]} | {group['prior']} | {group['lr']}{' *' if group['kept'] else ''} | "
            f"{_mean_std(group['log_likelihood'])} |" + (f" {_mean_std(group['bits_per_dim'], 3)} |" if bits else "")
            + f" {_mean_std(group['elbo'])} | {_mean_std(group['kl'])} | {_mean_std(group['mutual_information'])} | "
            f"{_mean_std(group['marginal_kl'])} | {_mean_std(group['best_val_loss'])} | "
            f"{_mean_std(group['epochs'], 0)} ({_mean_std(group['best_epoch'], 0)}) | "
            f"{'' if reported is None else reported['value']} |")
    bounds = {row["mutual_information_bound"] for row in summary["cells"] if row.get("mutual_information_bound")}
    if bounds:
        # the estimate of I(x; z) over N test images cannot exceed log N: near it, the posteriors of different
        # images barely overlap, and the estimate says more about N than about the model
        lines += ["", f"I(x; z) is estimated over the N scored test images and cannot exceed log N = "
                      f"{min(bounds):.2f}; where it is close to that bound, the posteriors of different images barely "
                      "overlap, and the split says more about N than about the model."]
    lines += ["", "## Paired differences (A − B, per image, at each prior's kept learning rate)", "",
              "| model | A | B | mean difference (nats) | 95% CI | seeds with A better |", "|---|---|---|---|---|---|"]
    for pair in summary["pairs"]:
        interval = pair["interval"]
        bounds = ("no interval" if interval["low"] is None else f"[{interval['low']:.3f}, {interval['high']:.3f}]")
        lines.append(f"| {MODEL_NAMES[pair['model']]} | {pair['prior_a']} | {pair['prior_b']} | "
                     f"{interval['estimate']:.3f} | {bounds} | {pair['seeds_a_better']} of {pair['num_seeds']} |")
    lines.append("")
    lines += [f"- {pair['sentence']} ({pair['covers']})" for pair in summary["pairs"]]
    return "\n".join(lines) + "\n"


def csv_text(summary: dict) -> str:
    """One row per cell."""
    columns = []
    for row in summary["cells"]:
        columns += [key for key in row if key not in columns]
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=columns, lineterminator="\n")
    writer.writeheader()
    writer.writerows(summary["cells"])
    return buffer.getvalue()


def write(comparison: ComparisonConfig, summary: dict) -> list[Path]:
    """Write comparison.json, .csv and .md into the comparison folder (atomically, each)."""
    from vampkeras.checkpoints import atomic_write_text
    from vampkeras.run_folder import summary_json

    out = Path(comparison.out)
    paths = [out / JSON_FILE, out / CSV_FILE, out / MARKDOWN_FILE]
    for path, text in zip(paths, (summary_json(summary) + "\n", csv_text(summary), markdown(summary))):
        atomic_write_text(path, text)
    return paths
