"""The grid of a comparison: one dataclass (:class:`ComparisonConfig`, saved as the comparison folder's
``comparison-config.json``) and the cells it expands to. Each cell is an ordinary run (a
:class:`vampkeras.config.RunConfig`) in ``<out>/<model>-<prior>-lr<lr>-seed<seed>/``, its SavedModel in
``<out>/saved_models/<cell>/``: the names ``benchmarks/reproduce.sh`` gives its runs, so a comparison adopts
them. Nothing here loads TensorFlow: the whole grid is validated before anything is created."""

from __future__ import annotations

import dataclasses
import json
import math
import typing
from pathlib import Path
from typing import Any

import numpy as np

from vampkeras.config import MODEL_FIELDS, MODELS, PRIORS, RunConfig, checked_fields
from vampkeras.errors import ConfigError

__all__ = ["ComparisonConfig", "Cell", "cell_name", "format_lr", "adoption_differences", "PROTOCOLS",
           "PAPER_LEARNING_RATES", "RESERVED_TRAIN_OPTIONS", "CELL_FIELDS", "ADOPTION_FIELDS", "CONFIG_FILE",
           "SAVED_MODELS_DIR"]

CONFIG_FILE = "comparison-config.json"
SAVED_MODELS_DIR = "saved_models"

# The paper's learning rates (§5.1: "we used ... 10^-4 or 5·10^-4", chosen per dataset by validation loss).
PAPER_LEARNING_RATES = (1e-4, 5e-4)
# The training budgets a comparison can start from. "paper" is §5.1's protocol; "short" is the budget that
# benchmarks/reproduce.sh calls PROTOCOL=short (docs/RESULTS.md's short-budget tables). Explicit train options
# override either.
PROTOCOLS = {
    "paper": {"epochs": {"default": 2000}, "warmup": 100, "patience": 50, "lrs": PAPER_LEARNING_RATES},
    "short": {"epochs": {"default": 50, "hvae": 30, "convhvae": 30, "pixelhvae": 30}, "warmup": 10, "patience": 50,
              "lrs": (5e-4,)},
}
# `vampkeras train` options that say where a run lives or how it starts: a comparison decides them per cell.
RESERVED_TRAIN_OPTIONS = ("run_dir", "export_dir", "seed", "resume", "restart", "export_versioned", "overwrite")
# The fields a comparison sets per cell (and so not a train option of it either).
CELL_FIELDS = ("dataset", "model", "prior", "lr", "seed", "data_dir", "run_dir", "export_dir")
# Every RunConfig field a comparison decides itself: none is a train option of it.
COMPARISON_OWNED_FIELDS = RESERVED_TRAIN_OPTIONS + CELL_FIELDS + ("max_examples",)
# Fields of an adopted run that must agree with the cell's: what the model is and how long it trains.
ADOPTION_FIELDS = MODEL_FIELDS + ("epochs", "patience")


def format_lr(lr: float) -> str:
    """A learning rate as cell names write it: the shortest scientific form, ``1e-4``, ``5e-4``, ``2.5e-4``."""
    return np.format_float_scientific(lr, trim="-", exp_digits=1)


def cell_name(model: str, prior: str, lr: float, seed: int) -> str:
    """``<model>-<prior>-lr<lr>-seed<seed>``, e.g. ``hvae-vampprior-lr5e-4-seed14``."""
    return f"{model}-{prior}-lr{format_lr(lr)}-seed{seed}"


@dataclasses.dataclass(frozen=True)
class Cell:
    """One (model, prior, learning rate, seed) of the grid."""

    model: str
    prior: str
    lr: float
    seed: int

    @property
    def name(self) -> str:
        return cell_name(self.model, self.prior, self.lr, self.seed)


@dataclasses.dataclass
class ComparisonConfig:
    """Everything that defines a comparison: the grid (models × priors × learning rates × seeds on one dataset),
    the training budget (``protocol`` plus explicit ``train_options``, the fields of :class:`RunConfig` a user
    would pass to ``vampkeras train``), and how every cell is scored (``samples`` importance samples on the
    test split, at most ``max_examples`` test images). ``lrs`` None: the protocol's (paper: both 10⁻⁴ and
    5·10⁻⁴, the kept one chosen by validation loss). ``jobs`` (cells trained at once) and ``data_dir`` are how
    it runs, not what it computes: they may change between re-runs."""

    dataset: str
    models: list[str]
    priors: list[str]
    seeds: list[int]
    out: str
    lrs: list[float] | None = None
    protocol: str = "short"
    train_options: dict[str, Any] = dataclasses.field(default_factory=dict)
    samples: int = 5000
    max_examples: int | None = None
    data_dir: str | None = None
    jobs: int = 1

    # fields that may differ between a comparison and its re-run
    RUNTIME_FIELDS: typing.ClassVar[tuple[str, ...]] = ("jobs", "data_dir", "out")

    @property
    def learning_rates(self) -> list[float]:
        return list(self.lrs) if self.lrs else list(PROTOCOLS[self.protocol]["lrs"])

    def cells(self) -> list[Cell]:
        """The grid in the order it is trained: model, prior, learning rate, seed."""
        return [Cell(model, prior, lr, seed) for model in self.models for prior in self.priors
                for lr in self.learning_rates for seed in self.seeds]

    def run_config(self, cell: Cell) -> RunConfig:
        """The cell's run: the protocol's budget, the explicit train options over it, then the cell's own fields
        (paths relative to ``out`` as given)."""
        protocol = PROTOCOLS[self.protocol]
        epochs = protocol["epochs"].get(cell.model, protocol["epochs"]["default"])
        options = {"epochs": epochs, "warmup": protocol["warmup"], "patience": protocol["patience"],
                   **self.train_options}
        return RunConfig(**options, dataset=self.dataset, model=cell.model, prior=cell.prior, lr=cell.lr,
                         seed=cell.seed, data_dir=self.data_dir, max_examples=self.max_examples,
                         run_dir=str(Path(self.out) / cell.name),
                         export_dir=str(Path(self.out) / SAVED_MODELS_DIR / cell.name))

    def validate(self) -> "ComparisonConfig":
        """Raise :class:`ConfigError` naming the first bad option; every cell's run config is validated too."""

        def need(condition: bool, message: str) -> None:
            if not condition:
                raise ConfigError(message)

        need(self.protocol in PROTOCOLS, f"unknown --protocol {self.protocol!r}; choose one of: {', '.join(PROTOCOLS)}")
        for name, values, allowed in (("--model", self.models, MODELS), ("--prior", self.priors, PRIORS)):
            need(len(values) > 0, f"{name} needs at least one value")
            for value in values:
                need(value in allowed, f"unknown {name} value {value!r}; choose from: {', '.join(allowed)}")
            need(len(set(values)) == len(values), f"{name} names a value twice: {','.join(values)}")
        need(len(self.seeds) > 0, "--seeds needs at least one seed")
        need(len(set(self.seeds)) == len(self.seeds), f"--seeds names a seed twice: {self.seeds}")
        lrs = self.learning_rates
        need(all(isinstance(lr, (int, float)) and math.isfinite(lr) and lr > 0 for lr in lrs),
             f"--lr takes learning rates above 0, not {lrs}")
        names = [format_lr(lr) for lr in lrs]
        need(len(set(names)) == len(names), f"--lr names a learning rate twice: {','.join(names)}")
        need(self.samples >= 1, "--samples must be at least 1")
        need(self.max_examples is None or self.max_examples >= 1, "--max-examples must be at least 1")
        need(self.jobs >= 1, "--jobs must be at least 1")
        reserved = sorted(set(self.train_options) & set(COMPARISON_OWNED_FIELDS))
        need(not reserved, f"the train option(s) {', '.join(reserved)} belong to compare itself: it names, seeds and "
                           "places every cell")
        known = {field.name for field in dataclasses.fields(RunConfig)}
        unknown = sorted(set(self.train_options) - known)
        need(not unknown, f"unknown train option(s): {', '.join(unknown)}")
        checked_fields(RunConfig, self.train_options)          # (from a saved comparison: of the right types)
        need(str(self.out) != "", "--out needs a folder")
        for cell in self.cells():
            self.run_config(cell).validate()
        return self

    # --- the saved form --------------------------------------------------------------------------------------
    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), indent=2, sort_keys=True)

    @classmethod
    def from_json(cls, text: str) -> "ComparisonConfig":
        """A saved comparison, checked: unknown keys, values of the wrong type and out-of-range options are one
        :class:`ConfigError` (a comparison folder from elsewhere is not trusted)."""
        try:
            values = json.loads(text)
        except json.JSONDecodeError as error:
            raise ConfigError(f"not a comparison configuration ({error})") from None
        if not isinstance(values, dict):
            raise ConfigError("not a comparison configuration (not a JSON object)")
        missing = sorted({f.name for f in dataclasses.fields(cls) if f.default is dataclasses.MISSING
                          and f.default_factory is dataclasses.MISSING} - set(values))
        if missing:
            raise ConfigError(f"not a comparison configuration (no {', '.join(missing)})")
        return cls(**checked_fields(cls, values)).validate()

    def differences(self, other: "ComparisonConfig") -> list[str]:
        """The fields (but for how it runs: ``jobs``, ``data_dir``, ``out``) in which ``other`` differs."""
        differences = []
        for field in dataclasses.fields(self):
            saved, given = getattr(self, field.name), getattr(other, field.name)
            if field.name in self.RUNTIME_FIELDS or saved == given:
                continue
            if field.name == "train_options":
                for option in sorted(set(saved) | set(given)):
                    if saved.get(option) != given.get(option):
                        differences.append(f"train option {option}: saved {saved.get(option, 'not given')!r}, "
                                           f"given {given.get(option, 'not given')!r}")
            else:
                differences.append(f"{field.name}: saved {saved!r}, given {given!r}")
        return differences


# Fields a new run resolves from its dataset when left None (RunConfig.resolve): a cell that leaves one None
# matches whatever the saved run resolved it to. Elsewhere None means something (all the data, vampkeras' own
# networks) and must match as it is.
DATASET_DEFAULT_FIELDS = ("likelihood", "binarization", "num_components", "pseudo_init_mean", "pseudo_init_std")


def adoption_differences(saved: RunConfig, wanted: RunConfig) -> list[str]:
    """How a run found in a cell's folder differs from the run the cell asks for, field by field."""
    return [f"{name}: the folder's run has {getattr(saved, name)!r}, the comparison asks for {getattr(wanted, name)!r}"
            for name in ADOPTION_FIELDS
            if not (name in DATASET_DEFAULT_FIELDS and getattr(wanted, name) is None)
            and getattr(saved, name) != getattr(wanted, name)]
