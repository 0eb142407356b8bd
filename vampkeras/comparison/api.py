"""`vampkeras.compare(...)`: train and score a grid of models × priors × learning rates × seeds on one dataset
and return every number of its report (what ``comparison.json`` holds)."""

from __future__ import annotations

import logging
from typing import Callable, Iterable

from vampkeras.comparison import results
from vampkeras.comparison.grid import ComparisonConfig
from vampkeras.comparison.runner import GridProgress, default_jobs, run_grid

__all__ = ["compare", "build_comparison", "seed_list"]

logger = logging.getLogger(__name__)


def seed_list(seeds: int | Iterable[int]) -> list[int]:
    """``3`` → seeds 0, 1, 2; a list names them."""
    if isinstance(seeds, int):
        if seeds < 1:
            from vampkeras.errors import ConfigError
            raise ConfigError("--seeds needs at least one seed")
        return list(range(seeds))
    return [int(seed) for seed in seeds]


def build_comparison(dataset: str, models, priors, seeds, out, lrs=None, protocol: str = "short",
                     train_options: dict | None = None, samples: int = 5000, max_examples: int | None = None,
                     data_dir=None, jobs: int | None = None) -> ComparisonConfig:
    """The validated :class:`ComparisonConfig` of a :func:`compare` call (nothing is created)."""
    from vampkeras.data.registry import DATASETS
    from vampkeras.data.user_data import is_user_source, parse_source

    dataset = str(dataset)
    if dataset not in DATASETS and is_user_source(dataset):
        dataset = parse_source(dataset).argument          # a path as a run's config.json records it: resolved
    return ComparisonConfig(
        dataset=dataset, models=list(models), priors=list(priors), seeds=seed_list(seeds), out=str(out),
        lrs=None if lrs is None else [float(lr) for lr in lrs], protocol=protocol,
        train_options=dict(train_options or {}), samples=int(samples), max_examples=max_examples,
        data_dir=None if data_dir is None else str(data_dir), jobs=default_jobs() if jobs is None else int(jobs),
    ).validate()


def compare(dataset: str, models=("vae",), priors=("standard", "vampprior"), seeds=3, out="comparison",
            lrs=None, protocol: str = "short", train_options: dict | None = None, samples: int = 5000,
            max_examples: int | None = None, data_dir=None, jobs: int | None = None, restart: bool = False,
            progress: Callable[[GridProgress], None] | None = None) -> dict:
    """Train and score every (model, prior, learning rate, seed) cell on ``dataset`` into the folder ``out``
    and return the comparison's numbers (the content of ``out/comparison.json``).

    ``seeds``: a count (3 → seeds 0, 1, 2) or the seeds themselves. ``lrs`` None: the protocol's
    (``"paper"``: 10⁻⁴ and 5·10⁻⁴ with the kept one chosen by validation loss; ``"short"``: 5·10⁻⁴).
    ``train_options``: any :class:`vampkeras.config.RunConfig` field a user would pass to ``vampkeras train``
    (e.g. ``{"epochs": 20, "warmup": 5}``) but for where a run lives and how it starts. Every cell is scored
    on the same test images with ``samples`` importance samples (at most ``max_examples`` images of each
    split). ``jobs`` cells train at once (default: one per core), each with its share of the cores.
    Calling it again continues where it stopped (scored cells are kept); other settings for the same ``out``
    are refused unless ``restart`` (the old comparison is moved aside)."""
    from vampkeras.comparison import page

    comparison = build_comparison(dataset, models, priors, seeds, out, lrs, protocol, train_options, samples,
                                  max_examples, data_dir, jobs)
    run_grid(comparison, restart=restart, progress=progress)
    summary = results.collect(comparison)
    results.write(comparison, summary)
    page.write_page(comparison, summary)
    return summary
