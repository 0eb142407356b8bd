"""One cell of a comparison, in a process of its own: train (or resume) the cell's run, then score it.

    python -m vampkeras.comparison.worker COMPARISON_DIR CELL_NAME

The comparison (:mod:`vampkeras.comparison.runner`) starts one such process per cell, with the CPU threads it
gives the cell in the environment (``TF_NUM_INTRAOP_THREADS``), and reads its progress from the JSON lines it
prints on stdout. A cell is finished when its score record exists (:data:`SCORE_FILE` in the run folder):
everything before it can be re-done after a kill, at the cost of the epoch or the scoring in flight. A user
mistake or a hostile file is one line ``Error: ...`` on stderr and exit status 2, as on the command line.
"""

from __future__ import annotations

import io
import json
import logging
import os
import signal
import sys
import time
import zipfile
from pathlib import Path

import numpy as np

from vampkeras.comparison.grid import CONFIG_FILE, ComparisonConfig
from vampkeras.errors import VampkerasError
from vampkeras.run_folder import RunFolder

__all__ = ["main", "run_cell", "score_cell", "surgery_of", "draw_prior_against_posterior", "read_comparison_config",
           "read_score", "read_per_image", "PER_IMAGE_FILE", "SCORE_FILE", "EXIT_USER_ERROR", "PRIOR_VS_POSTERIOR",
           "SURGERY_SAMPLES"]

# What a finished cell keeps beside its run's own records: the per-image values of the test split (paired
# comparisons need them image by image), and the scalars of the scoring (evaluate's summary, the ELBO surgery,
# the training's summary from its history), written last and atomically.
PER_IMAGE_FILE = "comparison-per-image.npz"
SCORE_FILE = "comparison-score.json"
EXIT_USER_ERROR = 2
PARENT_ENV = "VAMPKERAS_COMPARE_PARENT"        # the comparison's process id, which a cell's process dies with
PRIOR_VS_POSTERIOR = "prior_vs_aggregated_posterior"      # a cell's figure (figures/<name>.png)
SURGERY_SAMPLES = 8             # z samples per image for the ELBO surgery's Monte-Carlo estimates

logger = logging.getLogger(__name__)


def read_comparison_config(folder) -> ComparisonConfig:
    """The comparison saved in ``folder``, read bounded and never from a FIFO, checked (a ConfigError if not)."""
    from vampkeras.run_folder import RECORD_LIMIT, read_small_file
    path = Path(folder) / CONFIG_FILE
    try:
        return ComparisonConfig.from_json(read_small_file(path, RECORD_LIMIT).decode())
    except FileNotFoundError:
        raise VampkerasError(f"{folder} holds no comparison ({CONFIG_FILE} is missing)") from None
    except (OSError, UnicodeDecodeError) as error:
        raise VampkerasError(f"cannot read {path}: {getattr(error, 'strerror', None) or error}") from None


# what a score record must hold to be read as one (anything else, e.g. a damaged or foreign file: not scored)
SCORE_NUMBERS = {"evaluation": ("log_likelihood", "elbo", "kl", "reconstruction", "num_examples", "num_samples",
                                "seconds"),
                 "surgery": ("average_kl", "mutual_information", "marginal_kl"),
                 "training": ("epochs", "best_epoch", "best_val_loss", "seconds")}
PER_IMAGE_LIMIT = 1 << 26       # bytes: three float64 values per test image, far beyond any test set


def read_score(run: RunFolder) -> dict | None:
    """A cell's score record, or None where the cell is not scored, or its record is damaged or not one (then
    the cell is scored again)."""
    from vampkeras.run_folder import RECORD_LIMIT, read_small_file
    try:
        record = json.loads(read_small_file(run.path / SCORE_FILE, RECORD_LIMIT))
    except (OSError, ValueError):
        return None
    if not isinstance(record, dict) or not all(
            isinstance(record.get(part), dict) and all(isinstance(record[part].get(key), (int, float))
                                                       and not isinstance(record[part].get(key), bool)
                                                       for key in keys)
            for part, keys in SCORE_NUMBERS.items()):
        return None
    return record


def read_per_image(run: RunFolder) -> dict[str, np.ndarray]:
    """The per-image arrays of a scored cell: ``log_likelihood``, ``elbo``, ``kl`` ((N,) float64); a missing,
    oversized or damaged file is a :class:`VampkerasError` naming it."""
    from vampkeras.run_folder import read_small_file
    path = run.path / PER_IMAGE_FILE
    try:
        with np.load(io.BytesIO(read_small_file(path, PER_IMAGE_LIMIT)), allow_pickle=False) as arrays:
            values = {name: np.asarray(arrays[name], dtype=np.float64) for name in ("log_likelihood", "elbo", "kl")}
    except (OSError, ValueError, KeyError, zipfile.BadZipFile) as error:
        raise VampkerasError(f"cannot read the cell's per-image values {path} ({error}); delete "
                             f"{run.path / SCORE_FILE} to score the cell again") from None
    if any(array.ndim != 1 or not np.isfinite(array).all() for array in values.values()):
        raise VampkerasError(f"{path} does not hold finite per-image values; delete {run.path / SCORE_FILE} to "
                             "score the cell again")
    return values


def _emit(**message) -> None:
    print(json.dumps(message), flush=True)


def run_cell(folder, name: str) -> dict:
    """Train (or resume) and score the cell ``name`` of the comparison in ``folder``; return its score record."""
    comparison = read_comparison_config(folder)
    cells = {cell.name: cell for cell in comparison.cells()}
    if name not in cells:
        raise VampkerasError(f"the comparison in {folder} has no cell {name}")
    config = comparison.run_config(cells[name])
    run = RunFolder(config.run_dir)

    from vampkeras.training import train

    resume = run.holds_run()
    _emit(phase="training", resume=resume)
    # what a user would pass again to resume it: how long it trains and where it exports
    given = {"epochs": config.epochs, "patience": config.patience, "export_dir": config.export_dir,
             "data_dir": config.data_dir}
    result = train(config, resume=resume, given=given, overwrite=False, verbose=0)
    _emit(phase="scoring", epochs=result.epochs_trained)
    return score_cell(comparison, run, result)


def score_cell(comparison: ComparisonConfig, run: RunFolder, result) -> dict:
    """Score a trained cell on the test split (``comparison.samples`` importance samples, at most
    ``comparison.max_examples`` images), split its KL term (ELBO surgery), and write the cell's per-image arrays
    and score record; ``result`` is its training's :class:`vampkeras.training.TrainResult`."""
    from vampkeras import checkpoints
    from vampkeras.checkpoints import atomic_write_bytes, atomic_write_text
    from vampkeras.data.registry import load_for_run, spec_for
    from vampkeras.evaluation import evaluate
    from vampkeras.models import build_model_for_weights
    from vampkeras.trained_model import TrainedModel

    config = run.read_config()
    data = load_for_run(config, comparison.data_dir, comparison.max_examples, what="compare")
    model = build_model_for_weights(config, spec_for(config))
    checkpoints.load(run.best_checkpoint_path, model)
    trained = TrainedModel.from_keras(model, config, source=run.path)

    def progress(done, total):
        _emit(phase="scoring", done=done, total=total)

    summary, values = evaluate(trained, split="test", num_samples=comparison.samples, data=data, progress=progress)
    surgery = surgery_of(model, data.test, run)
    record = {
        "cell": run.path.name, "samples": comparison.samples, "max_examples": comparison.max_examples,
        "evaluation": summary, "surgery": surgery,
        "training": {"epochs": result.epochs_trained, "best_epoch": result.best_epoch,
                     "best_val_loss": result.best_val_loss,
                     "seconds": float(sum(row.get("seconds", 0.0) for row in run.read_history()))},
    }
    buffer = io.BytesIO()
    np.savez(buffer, **{key: np.asarray(values[key], np.float64) for key in ("log_likelihood", "elbo", "kl")})
    atomic_write_bytes(run.path / PER_IMAGE_FILE, buffer.getvalue())
    atomic_write_text(run.path / SCORE_FILE, json.dumps(record, indent=2, sort_keys=True) + "\n")
    return record


def surgery_of(model, images: np.ndarray, run: RunFolder) -> dict:
    """The ELBO surgery of the model's prior latent (z for the VAE, z2 for the HVAE) on ``images`` (N, D): the
    average KL(q(z|x) ‖ p(z)) split into I(x; z) and KL(q(z) ‖ p(z)) (paper §3: the optimal prior is the
    aggregated posterior q(z), so the second term is what a better prior can remove). Also draws the prior
    against the aggregated posterior into the run's figures."""
    import tensorflow as tf

    from vampkeras.comparison.surgery import elbo_surgery

    means, log_vars = [], []
    for start in range(0, len(images), 500):
        mean, log_var = model.encode(tf.constant(images[start:start + 500]))
        means.append(mean.numpy())
        log_vars.append(log_var.numpy())
    parameters = model.prior_parameters()

    def log_prior(z):
        return model.prior.log_prob(tf.constant(z, tf.float32), parameters).numpy()

    means, log_vars = np.concatenate(means), np.concatenate(log_vars)
    result = elbo_surgery(means, log_vars, log_prior, num_samples=SURGERY_SAMPLES, seed=0)
    from vampkeras.models.base import as_seed
    prior_samples = model.prior.sample(len(means), parameters, as_seed(1)).numpy()
    generator = np.random.default_rng(0)
    posterior_samples = means + np.exp(0.5 * log_vars) * generator.standard_normal(means.shape)
    draw_prior_against_posterior(prior_samples, posterior_samples, run.figure_path(PRIOR_VS_POSTERIOR))
    return result.to_json()


def draw_prior_against_posterior(prior_samples: np.ndarray, posterior_samples: np.ndarray, path) -> None:
    """Samples of the prior p(z) and of the aggregated posterior q(z) (each (N, M): one z ~ q(z|x_n) per image),
    projected onto the aggregated posterior's two principal axes, drawn side by side on the same axes."""
    from vampkeras import figures

    centre = posterior_samples.mean(axis=0)
    _, _, axes_t = np.linalg.svd(posterior_samples - centre, full_matrices=False)
    basis = axes_t[:2].T                                         # (M, 2)
    plt = figures._pyplot()
    figure, panels = plt.subplots(1, 2, figsize=(8, 4), sharex=True, sharey=True)
    for panel, samples, title, colour in ((panels[0], posterior_samples, "aggregated posterior q(z)", "#4477aa"),
                                          (panels[1], prior_samples, "prior p(z)", "#cc3311")):
        projected = (samples - centre) @ basis
        panel.scatter(projected[:, 0], projected[:, 1], s=2, alpha=0.4, color=colour)
        panel.set_title(title)
        panel.set_xlabel("principal axis 1 of q(z)")
    panels[0].set_ylabel("principal axis 2 of q(z)")
    figures.save_png(path, figures._figure_png(figure))


def die_with_parent() -> None:
    """Be killed when the comparison's process dies, even by kill -9 (Linux: PR_SET_PDEATHSIG), so that no
    orphan keeps training a cell and holding its lock; if it died before this ran, stop now. Done here, in the
    cell's own process, rather than between fork and exec (unsafe in a parent with threads)."""
    parent = os.environ.get(PARENT_ENV)
    if parent is None:
        return
    try:
        import ctypes
        ctypes.CDLL(None, use_errno=True).prctl(1, signal.SIGKILL)         # PR_SET_PDEATHSIG
    except (OSError, AttributeError):
        pass
    if str(os.getppid()) != parent:
        sys.exit(EXIT_USER_ERROR)


def main(argv=None) -> int:
    die_with_parent()
    arguments = sys.argv[1:] if argv is None else argv
    if len(arguments) != 2:
        print("usage: python -m vampkeras.comparison.worker COMPARISON_DIR CELL_NAME", file=sys.stderr)
        return EXIT_USER_ERROR
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    started = time.perf_counter()
    try:
        record = run_cell(*arguments)
    except VampkerasError as error:
        print(f"Error: {error}", file=sys.stderr, flush=True)
        return EXIT_USER_ERROR
    _emit(phase="done", seconds=time.perf_counter() - started,
          log_likelihood=record["evaluation"]["log_likelihood"])
    return 0


if __name__ == "__main__":
    sys.exit(main())
