"""The paper's Table 1 from the committed result records, as Markdown: so that docs/RESULTS.md and README.md
cannot drift from docs/results/ (issue #32).

    python benchmarks/table1.py [--root docs/results] [--readme | --check | --write]

Prints the full table (docs/RESULTS.md's block between ``<!-- table1:begin -->`` and ``<!-- table1:end -->``);
``--readme`` prints the short form (README.md's block between ``<!-- table1-short:begin -->`` and
``<!-- table1-short:end -->``); ``--check`` exits 1 with a diff where either file's block differs from what
the records give; ``--write`` puts the generated blocks into both files.

What it reads, per dataset (static_mnist, dynamic_mnist, omniglot, caltech101, freyfaces, histopathology):
- ``<root>/<dataset>/comparison.json`` where ``bash benchmarks/reproduce.sh publish`` left one
  (:mod:`vampkeras.comparison.results`' format): its kept learning rate, its per-seed numbers and the paired
  VampPrior-vs-standard interval are used as they are;
- otherwise the scored cell folders ``<root>/<dataset>/<model>-<prior>-lr<lr>-seed<seed>/`` and the older
  layout ``<root>/<dataset>-<model>-<prior>/`` (config.json, history.csv, evaluation.json or
  comparison-score.json). Per (model, prior), of the learning rates present the one with the lower mean
  best validation loss over its seeds is kept (the paper's choice, §5.1; ``collect`` in
  :mod:`vampkeras.comparison.results` applies the same rule), and its test log-likelihood is reported as
  mean ± sample standard deviation (ddof = 1) over its seeds.

Numbers: nats per image for the binary datasets, bits per dimension for Frey Faces and Histopathology, as the
paper reports them (:mod:`vampkeras.comparison.paper`, whose values fill the paper's rows). Only records of
the paper's protocol (§5.1: at most 2000 epochs, 100 epochs of warm-up, a look-ahead of 50) scored with
S = 5000 are read; anything else under those names is an error, not a silent row.
"""

from __future__ import annotations

import argparse
import csv
import difflib
import json
import math
import re
import statistics
import sys
import textwrap
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from vampkeras.comparison import paper  # noqa: E402
from vampkeras.comparison.grid import PROTOCOLS, format_lr  # noqa: E402

RESULTS_ROOT = ROOT / "docs" / "results"
RESULTS_MD = ROOT / "docs" / "RESULTS.md"
README_MD = ROOT / "README.md"
MARKERS = {"results": ("<!-- table1:begin -->", "<!-- table1:end -->"),
           "readme": ("<!-- table1-short:begin -->", "<!-- table1-short:end -->")}

# The rows and columns of the paper's Table 1, in its order.
DATASETS = ("static_mnist", "dynamic_mnist", "omniglot", "caltech101", "freyfaces", "histopathology")
DATASET_NAMES = {"static_mnist": "static MNIST", "dynamic_mnist": "dynamic MNIST", "omniglot": "Omniglot",
                 "caltech101": "Caltech 101", "freyfaces": "Frey Faces", "histopathology": "Histopathology"}
MLP_MODELS = ("vae", "hvae")
CONV_MODELS = ("convhvae", "pixelhvae")
PRIORS = ("standard", "vampprior")
MODEL_NAMES = {"vae": "VAE", "hvae": "HVAE", "convhvae": "convHVAE", "pixelhvae": "PixelHVAE"}
PRIOR_NAMES = {"standard": "standard", "vampprior": "VampPrior"}
# Datasets with no copy on this machine (/work/shared/data/README.md): their rows say so instead of "not run".
NO_OFFLINE_COPY = ("histopathology",)
# What a record must have been made with to stand in Table 1 (§5.1, and S = 5000 importance samples, §5.2).
PAPER_PROTOCOL = {"epochs": PROTOCOLS["paper"]["epochs"]["default"], "warmup": PROTOCOLS["paper"]["warmup"],
                  "patience": PROTOCOLS["paper"]["patience"]}
SAMPLES = 5000
CELL_NAME = re.compile(r"^(?P<model>[a-z]+)-(?P<prior>[a-z-]+)-lr(?P<lr>[0-9.e+-]+)-seed(?P<seed>\d+)$")
COMPARISON_FILE = "comparison.json"
SCORE_FILE = "comparison-score.json"

NOT_RUN = "not run yet"
NEEDS_GPU = "needs a GPU (cost: below)"
NO_DATA = "no offline copy (below)"
WIDTH = 110                 # the docs' line width: the legend's paragraphs are wrapped to it
MINUS = "\u2212"


class RecordError(ValueError):
    """A record under docs/results/ that cannot stand in Table 1 (wrong protocol, dataset or contents)."""


@dataclass(frozen=True)
class Cell:
    """One scored run: ``best_val_loss`` (nats per image, negative ELBO with β = 1, the lowest over its
    epochs), ``value`` its test number in the dataset's unit (nats per image, or bits per dimension)."""

    model: str
    prior: str
    lr: str
    seed: int
    best_val_loss: float
    value: float
    folder: Path


@dataclass(frozen=True)
class Entry:
    """Table 1's number for one (dataset, model, prior): the kept learning rate, the seeds and their values
    (the dataset's unit), mean and sample standard deviation (None with one seed), and where it came from
    (``"cells"`` or ``"comparison.json"``)."""

    lr: str
    seeds: tuple[int, ...]
    values: tuple[float, ...]
    mean: float
    std: float | None
    source: str


def unit(dataset: str) -> str:
    """"bits/dim" for the datasets the paper reports in bits per dimension, "nats" for the others."""
    return "bits/dim" if dataset in paper.BITS_PER_DIM_DATASETS else "nats"


def _read_json(path: Path) -> dict:
    try:
        value = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as error:
        raise RecordError(f"cannot read {path}: {error}") from None
    if not isinstance(value, dict):
        raise RecordError(f"{path} does not hold a JSON object")
    return value


def _best_val_loss(folder: Path) -> float:
    """The lowest ``val_loss`` of the run's history.csv: what early stopping kept (epoch_keeper's rule)."""
    path = folder / "history.csv"
    try:
        with open(path, newline="", encoding="utf-8") as stream:
            losses = [float(row["val_loss"]) for row in csv.DictReader(stream) if row.get("val_loss")]
    except (OSError, KeyError, ValueError) as error:
        raise RecordError(f"cannot read the validation losses of {path}: {error}") from None
    if not losses:
        raise RecordError(f"{path} holds no validation loss")
    return min(losses)


def read_cell(folder: Path, dataset: str) -> Cell | None:
    """The scored run in ``folder``, or None where it is not scored yet (no evaluation.json and no
    comparison-score.json). A comparison's score record wins over evaluation.json: it is what the
    comparison kept and compared."""
    config = _read_json(folder / "config.json")
    score_path = folder / SCORE_FILE
    if score_path.is_file():
        score = _read_json(score_path)
        try:
            evaluation, best_val_loss = score["evaluation"], float(score["training"]["best_val_loss"])
        except (KeyError, TypeError, ValueError):
            raise RecordError(f"{score_path} is not a comparison's score record") from None
    elif (folder / "evaluation.json").is_file():
        evaluation, best_val_loss = _read_json(folder / "evaluation.json"), _best_val_loss(folder)
    else:
        return None
    if config.get("dataset") != dataset:
        raise RecordError(f"{folder} holds a run on {config.get('dataset')!r}, not {dataset!r}")
    made = {key: config.get(key) for key in PAPER_PROTOCOL}
    if made != PAPER_PROTOCOL or config.get("max_examples") is not None:
        raise RecordError(f"{folder} was not trained with the paper's protocol ({made}, max_examples "
                          f"{config.get('max_examples')}; Table 1 needs {PAPER_PROTOCOL} on every image)")
    if evaluation.get("num_samples") != SAMPLES or evaluation.get("split", "test") != "test":
        raise RecordError(f"{folder} was scored with S = {evaluation.get('num_samples')} on the "
                          f"{evaluation.get('split')} split; Table 1 needs S = {SAMPLES} on the test split")
    key = "bits_per_dim" if unit(dataset) == "bits/dim" else "log_likelihood"
    if not isinstance(evaluation.get(key), (int, float)):
        raise RecordError(f"{folder}'s evaluation has no {key}")
    return Cell(model=config["model"], prior=config["prior"], lr=format_lr(float(config["lr"])),
                seed=int(config["seed"]), best_val_loss=best_val_loss, value=float(evaluation[key]), folder=folder)


def read_cells(root: Path, dataset: str) -> list[Cell]:
    """Every scored cell of ``dataset`` under ``root``: ``<dataset>/<model>-<prior>-lr<lr>-seed<seed>/`` and
    the older ``<dataset>-<model>-<prior>/`` folders (static MNIST's first paper-protocol runs). Where both
    hold the same (model, prior, rate, seed), the first wins: `reproduce.sh publish` writes it, from a
    comparison that adopted the older run."""
    cells = {}
    if (root / dataset).is_dir():
        for folder in sorted(path for path in (root / dataset).iterdir()
                             if path.is_dir() and CELL_NAME.match(path.name)):
            cell = read_cell(folder, dataset)
            if cell is not None:
                cells[(cell.model, cell.prior, cell.lr, cell.seed)] = cell
    older = {}
    for folder in sorted(path for path in root.glob(f"{dataset}-*") if path.is_dir()):
        cell = read_cell(folder, dataset)
        if cell is None:
            continue
        key = (cell.model, cell.prior, cell.lr, cell.seed)
        if key in older:
            raise RecordError(f"{folder} and {older[key].folder} hold the same cell {key}: keep one")
        older[key] = cell
    return list(cells.values()) + [cell for key, cell in older.items() if key not in cells]


def _spread(values: list[float]) -> tuple[float, float | None]:
    """Mean and sample standard deviation (ddof = 1; None for one value: one run says nothing of the spread)."""
    return statistics.fmean(values), (statistics.stdev(values) if len(values) > 1 else None)


def kept_entry(cells: list[Cell]) -> Entry | None:
    """The entry of one (model, prior)'s cells: of their learning rates, the one with the lowest mean best
    validation loss over its seeds (ties: the smaller rate), with its test numbers over those seeds."""
    if not cells:
        return None
    by_lr = {}
    for cell in cells:
        by_lr.setdefault(cell.lr, []).append(cell)
    lr = min(by_lr, key=lambda rate: (statistics.fmean(c.best_val_loss for c in by_lr[rate]), float(rate)))
    kept = sorted(by_lr[lr], key=lambda c: c.seed)
    mean, std = _spread([c.value for c in kept])
    return Entry(lr=lr, seeds=tuple(c.seed for c in kept), values=tuple(c.value for c in kept), mean=mean, std=std,
                 source="cells")


def comparison_entries(summary: dict, dataset: str) -> dict[tuple[str, str], Entry]:
    """(model, prior) → the kept group of a comparison.json (its own choice of rate and its own spread)."""
    key = "bits_per_dim" if unit(dataset) == "bits/dim" else "log_likelihood"
    entries = {}
    for group in summary.get("groups", []):
        if not group.get("kept"):
            continue
        spread = group.get(key)
        if spread is None:
            raise RecordError(f"{dataset}'s {COMPARISON_FILE} has no {key} for {group['model']} + {group['prior']}")
        entries[(group["model"], group["prior"])] = Entry(
            lr=group["lr"], seeds=tuple(group["seeds"]), values=tuple(spread["values"]), mean=spread["mean"],
            std=spread["std"], source=COMPARISON_FILE)
    return entries


def collect(root: Path) -> dict:
    """Everything the tables show: ``{"entries": {(dataset, model, prior): Entry}, "pairs": {(dataset,
    model): sentence}}``; a (dataset, model, prior) with no scored record is absent."""
    root = Path(root)
    entries, pairs = {}, {}
    for dataset in DATASETS:
        from_comparison = {}
        path = root / dataset / COMPARISON_FILE
        if path.is_file():
            summary = _read_json(path)
            if summary.get("dataset") != dataset:
                raise RecordError(f"{path} is a comparison on {summary.get('dataset')!r}, not {dataset!r}")
            from_comparison = comparison_entries(summary, dataset)
            for pair in summary.get("pairs", []):
                if (pair["prior_a"], pair["prior_b"]) == ("vampprior", "standard") and pair["model"] in MLP_MODELS:
                    # the sentence in the dataset's own unit (bits/dim for Frey Faces), as comparison.md says it
                    pairs[(dataset, pair["model"])] = pair.get("sentences", {}).get(unit(dataset), pair["sentence"])
        cells = read_cells(root, dataset)
        for model in MLP_MODELS:
            for prior in PRIORS:
                entry = from_comparison.get((model, prior)) or kept_entry(
                    [cell for cell in cells if (cell.model, cell.prior) == (model, prior)])
                if entry is not None:
                    entries[(dataset, model, prior)] = entry
    return {"entries": entries, "pairs": pairs}


def number(value: float, dataset: str) -> str:
    """2 decimals in nats, 3 in bits/dim (the paper gives 2; a third shows differences of a few thousandths),
    with a typographic minus."""
    digits = 3 if unit(dataset) == "bits/dim" else 2
    text = f"{round(value, digits) + 0.0:.{digits}f}"
    return text.replace("-", MINUS)


def value_text(entry: Entry, dataset: str) -> str:
    """"−85.60" or "4.498 ± 0.010"."""
    if entry.std is None or math.isnan(entry.std):
        return number(entry.mean, dataset)
    return f"{number(entry.mean, dataset)} ± {number(entry.std, dataset)}"


def cell_text(entry: Entry | None, dataset: str) -> str:
    """"−85.60 (5e-4, 1 seed)", "4.498 ± 0.010 (1e-4, 3 seeds)", "not run yet" or, for a dataset with no
    offline copy, "no offline copy (below)"."""
    if entry is None:
        return NO_DATA if dataset in NO_OFFLINE_COPY else NOT_RUN
    seeds = len(entry.seeds)
    return f"{value_text(entry, dataset)} ({entry.lr}, {seeds} seed{'s' if seeds != 1 else ''})"


def _paper_number(value: float) -> str:
    # The paper's own precision (two decimals everywhere in Table 1).
    return f"{value:.2f}".replace("-", MINUS)


def results_block(root: Path = RESULTS_ROOT) -> str:
    """docs/RESULTS.md's Table 1 (the lines between its markers): a "paper" and an "ours" row per dataset,
    the paper's columns, then the legend."""
    found = collect(root)
    entries, pairs = found["entries"], found["pairs"]
    columns = [(model, prior) for model in MLP_MODELS + CONV_MODELS for prior in PRIORS]
    lines = ["| dataset (unit) | | " + " | ".join(f"{MODEL_NAMES[m]} {PRIOR_NAMES[p]}" for m, p in columns) + " |",
             "|---|---|" + "---|" * len(columns)]
    for dataset in DATASETS:
        name = f"{DATASET_NAMES[dataset]} ({unit(dataset)})"
        lines.append(f"| {name} | paper | " + " | ".join(_paper_number(paper.reported(dataset, m, p)[0])
                                                       for m, p in columns) + " |")
        ours = [cell_text(entries.get((dataset, m, p)), dataset) if m in MLP_MODELS
                else (NO_DATA if dataset in NO_OFFLINE_COPY else NEEDS_GPU) for m, p in columns]
        lines.append("| | ours | " + " | ".join(ours) + " |")
    legend = [
        "Test log-likelihood with S = 5000 importance samples on the whole test set: nats per image for the binary "
        "datasets (higher is better), bits per dimension for Frey Faces and Histopathology (lower is better), as "
        "the paper reports them. Ours: the paper's protocol (§5.1: β warm-up over 100 epochs, early stopping with "
        "a look-ahead of 50, at most 2000 epochs). In parentheses, the kept learning rate (of the rates trained, "
        "the one with the lower mean best validation loss over the seeds, as the paper chose, §5.1) and the "
        "number of seeds; with several seeds, mean ± sample standard deviation over them; with one, no spread. "
        f"\"{NOT_RUN}\": no scored record in `docs/results/` yet.",
        "Records: `docs/results/<dataset>/<model>-<prior>-lr<lr>-seed<seed>/` (static MNIST's: "
        "`docs/results/static_mnist-<model>-<prior>/`); where `docs/results/<dataset>/comparison.json` exists, "
        "its kept rates, numbers and paired intervals are used. Generated from them by "
        "`python benchmarks/table1.py` (`--check` fails where this table and the records differ).",
    ]
    if not pairs:
        legend.append("No dataset has a published `comparison.json` yet, so no paired VampPrior-vs-standard "
                      "interval stands here yet.")
    for paragraph in legend:
        lines += ["", *textwrap.wrap(paragraph, WIDTH, break_long_words=False, break_on_hyphens=False)]
    if pairs:
        lines += ["", *textwrap.wrap("VampPrior against the standard prior, paired per test image at each prior's "
                                     "kept rate (`comparison.json`):", WIDTH), ""]
        lines += [f"- {pairs[key]}" for key in sorted(pairs, key=lambda k: (DATASETS.index(k[0]), k[1]))]
    return "\n".join(lines) + "\n"


def readme_block(root: Path = RESULTS_ROOT) -> str:
    """README.md's short form (the lines between its markers): one row per dataset, VAE and HVAE, standard →
    VampPrior, ours then the paper's."""
    entries = collect(root)["entries"]
    lines = ["| Table 1 | VAE: standard → VampPrior | HVAE: standard → VampPrior | seeds |", "|---|---|---|---|"]
    for dataset in DATASETS:
        texts, seeds = [], set()
        for model in MLP_MODELS:
            reported = " → ".join(_paper_number(paper.reported(dataset, model, p)[0]) for p in PRIORS)
            found = [entries.get((dataset, model, p)) for p in PRIORS]
            if all(e is None for e in found):
                ours = "no offline copy" if dataset in NO_OFFLINE_COPY else NOT_RUN
            else:
                ours = " → ".join(NOT_RUN if e is None else value_text(e, dataset) for e in found)
            seeds |= {len(e.seeds) for e in found if e is not None}
            texts.append(f"{ours} (paper {reported})")
        counts = "–" if not seeds else (f"{min(seeds)}" if len(seeds) == 1 else f"{min(seeds)}–{max(seeds)}")
        lines.append(f"| {DATASET_NAMES[dataset]} ({unit(dataset)}) | {texts[0]} | {texts[1]} | {counts} |")
    return "\n".join(lines) + "\n"


def block_of(text: str, markers: tuple[str, str], where: str) -> str:
    """The lines strictly between the two marker lines of ``text``."""
    begin, end = markers
    if text.count(begin) != 1 or text.count(end) != 1 or text.index(begin) > text.index(end):
        raise RecordError(f"{where} must hold {begin} and then {end}, once each")
    return text[text.index(begin) + len(begin):text.index(end)].strip("\n") + "\n"


def replace_block(text: str, markers: tuple[str, str], block: str, where: str) -> str:
    """``text`` with the lines between its markers replaced by ``block`` (one blank line either side)."""
    block_of(text, markers, where)
    begin, end = markers
    return text[:text.index(begin) + len(begin)] + "\n\n" + block.strip("\n") + "\n\n" + text[text.index(end):]


def check(root: Path = RESULTS_ROOT, results_md: Path = RESULTS_MD, readme_md: Path = README_MD) -> list[str]:
    """A unified diff per file whose block differs from the generated one (empty when both agree)."""
    diffs = []
    for path, kind, block in ((results_md, "results", results_block(root)), (readme_md, "readme", readme_block(root))):
        written = block_of(path.read_text(encoding="utf-8"), MARKERS[kind], str(path))
        if written != block:
            diffs.append("".join(difflib.unified_diff(written.splitlines(True), block.splitlines(True),
                                                      f"{path} (written)", f"{path} (from {root})")))
    return diffs


def write(root: Path = RESULTS_ROOT, results_md: Path = RESULTS_MD, readme_md: Path = README_MD) -> None:
    """Put the generated blocks between the markers of both files."""
    for path, kind, block in ((results_md, "results", results_block(root)), (readme_md, "readme", readme_block(root))):
        text = path.read_text(encoding="utf-8")
        path.write_text(replace_block(text, MARKERS[kind], block, str(path)), encoding="utf-8")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--root", type=Path, default=RESULTS_ROOT, help="the records' folder (docs/results)")
    mode = parser.add_mutually_exclusive_group()
    mode.add_argument("--readme", action="store_true", help="print README.md's short form")
    mode.add_argument("--check", action="store_true", help="exit 1 with a diff where a file's block is stale")
    mode.add_argument("--write", action="store_true", help="write both blocks into docs/RESULTS.md and README.md")
    arguments = parser.parse_args(argv)
    try:
        if arguments.check:
            diffs = check(arguments.root)
            for diff in diffs:
                print(diff, end="")
            if diffs:
                print("stale: run `python benchmarks/table1.py --write`", file=sys.stderr)
            return 1 if diffs else 0
        if arguments.write:
            write(arguments.root)
            return 0
        print(readme_block(arguments.root) if arguments.readme else results_block(arguments.root), end="")
        return 0
    except RecordError as error:
        print(f"Error: {error}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
