"""`vampkeras sample`, `score` and `report`: look at and use a trained model. Parsing only."""

from __future__ import annotations

import click

from vampkeras.config import MAX_IMPORTANCE_SAMPLES, MAX_SAMPLE_IMAGES
from vampkeras.run_folder import REPORT_FILE
from vampkeras_cli.common import (FOLDER, OUTPUT_FILE, SEED, Progress, load_tensorflow, printable, user_errors,
                                  writes_to_stdout)

__all__ = ["sample", "score", "report"]


@click.command()
@click.argument("path", type=click.Path(exists=True, file_okay=False))
@click.option("-n", "--num-samples", type=click.IntRange(1, MAX_SAMPLE_IMAGES), default=64, show_default=True,
              help="Number of images to draw.")
@click.option("--seed", type=SEED, default=0, show_default=True, help="Random seed, in [0, 2^31).")
@click.option("--pseudo-input", "component", type=click.IntRange(min=0), default=None,
              help="Draw from prior component K only (a VampPrior's pseudo-input K, 0-based; mixture priors "
                   "only, paper Figure 4).")
@click.option("--out", type=OUTPUT_FILE, default="samples.png", show_default=True,
              help="PNG grid of the samples.")
@click.option("--npy", type=OUTPUT_FILE, default=None, help="Also save the images as an (n, H, W) float32 .npy file.")
@user_errors
def sample(path, num_samples, seed, component, out, npy):
    """Draw images from a run folder or SavedModel PATH (works from the SavedModel alone) and write them as
    a PNG grid. Binary models give Bernoulli means, grey models grey values. An --out or --npy that cannot
    be written is refused before the model loads."""
    load_tensorflow()
    from vampkeras.inspection import sample_images

    paths = sample_images(path, num_samples, seed, component, out, npy)
    click.echo(printable("wrote " + ", ".join(str(p) for p in paths)), err=writes_to_stdout(out, npy))


@click.command()
@click.argument("path", type=click.Path(exists=True, file_okay=False))
@click.argument("input_path", metavar="INPUT", type=click.Path(exists=True))
@click.option("--samples", "num_samples", type=click.IntRange(1, MAX_IMPORTANCE_SAMPLES), default=1000, show_default=True,
              help="Importance samples per image.")
@click.option("--batch-size", type=click.IntRange(min=1), default=100, show_default=True,
              help="Images scored per call.")
@click.option("--out", type=OUTPUT_FILE, default="scores.csv", show_default=True,
              help="CSV with index, name, log_likelihood, elbo per image.")
@click.option("--quiet", is_flag=True, help="No progress bar.")
@user_errors
def score(path, input_path, num_samples, batch_size, out, quiet):
    """Per-image importance-sampled log-likelihood (and ELBO) of INPUT under the model at PATH (a run
    folder or SavedModel), for anomaly and novelty scoring.

    INPUT is a .npy of (N, H, W), (N, H, W, 1) or (N, H·W) real values in [0, 1]; a .npz holding one such
    array, or several of which exactly one is named "images" or "x"; or a grey PNG of the model's H×W, or a
    folder of them (read in file-name order, divided by 255, or 65535 if 16-bit). Input without images, of
    the wrong shape, with NaN/Inf, outside [0, 1], complex, colour or transparent, or not binary for a
    Bernoulli model is refused before any image is scored; an --out that cannot be written, before the model
    loads."""
    load_tensorflow()
    from vampkeras.inspection import score_file

    summary = score_file(path, input_path, num_samples, batch_size, out, progress=Progress("scoring", quiet))
    line = (f"scored {summary['count']} images: mean log-likelihood {summary['mean_log_likelihood']:.3f} "
            f"nats; wrote {summary['out']}")
    click.echo(printable(line), err=writes_to_stdout(out))


@click.command()
@click.argument("run", type=click.Path(exists=True, file_okay=False))
@click.option("--out", type=OUTPUT_FILE, default=None,
              help=f"HTML file to write.  [default: RUN/{REPORT_FILE}]")
@click.option("--samples", "num_samples", type=click.IntRange(1, MAX_IMPORTANCE_SAMPLES), default=1000, show_default=True,
              help="Importance samples per test image, if the run has no evaluation with at least as many.")
@click.option("--max-examples", type=click.IntRange(min=1), default=None, help="Score at most N test images.")
@click.option("--data-dir", type=FOLDER, default=None,
              help="Dataset folder [default: the run's, else $VAMPKERAS_DATA or ~/.vampkeras/data].")
@user_errors
def report(run, out, num_samples, max_examples, data_dir):
    """One self-contained HTML page about the run folder RUN: config, metrics (IS log-likelihood, ELBO,
    active units), training curves, samples, reconstructions, pseudo-inputs and the log-likelihood
    histogram. Reuses the run's saved evaluation (from `vampkeras evaluate RUN`) when it scored the same
    test images with at least --samples."""
    load_tensorflow()
    from vampkeras.report import write_report

    click.echo(printable(f"wrote {write_report(run, out, num_samples, max_examples, data_dir)}"),
               err=writes_to_stdout(out))
