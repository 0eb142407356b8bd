"""`vampkeras` commands. Parsing only: every computation lives in the vampkeras library."""

from __future__ import annotations

import logging

import click
from click.core import ParameterSource

# none of these imports TensorFlow: options are checked before it loads (vampkeras_cli.common.load_tensorflow)
from vampkeras import __version__
from vampkeras.config import (GATED_NORMGRADS, INITS, LIKELIHOODS, MAX_IMPORTANCE_SAMPLES, MODELS, NOISY_DATA_STD,
                              OPTIMIZERS, PRIORS, PSEUDO_INITS, STRATEGIES)
from vampkeras.data.user_data import BINARIZATIONS
from vampkeras.run_folder import EVALUATION_FILE, FIGURES_DIR
from vampkeras_cli.common import (DATASET, FINITE_FLOAT, FOLDER, OUTPUT_FILE, OUTPUT_FOLDER, POSITIVE_FLOAT, SEED,
                                  SPLIT, CheckedPath, PrintableFormatter, Progress, load_tensorflow, user_errors,
                                  writes_to_stdout)
from vampkeras_cli.compare_command import make_compare
from vampkeras_cli.model_commands import report, sample, score

__all__ = ["main", "train", "evaluate", "datasets"]

@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="vampkeras")
@click.option("-v", "--verbose", is_flag=True,
              help="Show the library's log messages (INFO level) and TensorFlow's own C++ log (start-up and "
                   "device messages; without -v only fatal ones, or the TF_CPP_MIN_LOG_LEVEL you set).")
def main(verbose):
    """VAEs with a VampPrior (Tomczak & Welling, 2018): train, evaluate and export them."""
    handler = logging.StreamHandler()
    handler.setFormatter(PrintableFormatter("%(levelname)s %(name)s: %(message)s"))
    logging.basicConfig(level=logging.INFO if verbose else logging.WARNING, handlers=[handler])


@main.command()
@click.option("--dataset", type=DATASET, default="mnist5k", show_default=True,
              help="Dataset name (see `vampkeras datasets`; mnist5k is embedded and works offline), or your own "
                   "images: a folder of PNG/JPEG/BMP files (with train/, validation/, test/ subfolders if you have "
                   "splits), a .npy of (N, H, W[, C]) or a .npz with train/validation/test arrays, or "
                   "tfds:NAME[/CONFIG].")
@click.option("--likelihood", type=click.Choice(LIKELIHOODS), default=None,
              help="Your own data: p(x|z) [default: bernoulli for 0/1 images, discretized_logistic (256 bins per "
                   "channel) for grey or colour ones].")
@click.option("--binarize", "binarization", type=click.Choice(BINARIZATIONS), default=None,
              help="Your own data: 'dynamic' draws grey training images as 0/1 afresh every batch (the paper's "
                   "MNIST; validation and test binarized once), 'static' binarizes every split once [default: "
                   "none; 0/1 images are binary as they are].")
@click.option("--split", type=SPLIT, default=None,
              help="Your own data without train/validation/test splits: the fractions, e.g. 0.8,0.1,0.1 "
                   "[default: 0.8,0.1,0.1, a fixed shuffle].")
@click.option("--model", type=click.Choice(MODELS), default="vae", show_default=True, help="Model architecture.")
@click.option("--prior", type=click.Choice(PRIORS), default="vampprior", show_default=True,
              help="Prior over the top latent layer.")
@click.option("--components", "num_components", type=click.IntRange(min=1), default=None,
              help="Number of pseudo-inputs / mixture components K [default: the dataset's, 500 for MNIST].")
@click.option("--weighted", is_flag=True,
              help="Trainable mixture weights for mog/vampprior priors (the weighted VampPrior, paper §6).")
@click.option("--pseudo-init", type=click.Choice(PSEUDO_INITS), default="random", show_default=True,
              help="Initialise pseudo-inputs from N(mean, std) of the dataset, from K random training images, "
                   f"or from K random training images plus N(0, {NOISY_DATA_STD}²) noise (the authors' code).")
@click.option("--pseudo-init-mean", type=FINITE_FLOAT, default=None,
              help="Mean of the random pseudo-input initialisation [default: the dataset's, 0.05 for MNIST].")
@click.option("--pseudo-init-std", type=FINITE_FLOAT.at_least(0), default=None,
              help="Std of the random pseudo-input initialisation [default: the dataset's, 0.01 for MNIST].")
@click.option("--epochs", type=click.IntRange(min=1), default=2000, show_default=True, help="Maximum number of epochs.")
@click.option("--warmup", type=click.IntRange(min=0), default=100, show_default=True,
              help="KL warm-up epochs: beta = min(1, epoch / warmup); 0 disables it.")
@click.option("--patience", type=click.IntRange(min=1), default=50, show_default=True,
              help="Early stopping: epochs after warm-up without a better validation loss.")
@click.option("--batch-size", type=click.IntRange(min=1), default=100, show_default=True, help="Mini-batch size.")
@click.option("--lr", type=POSITIVE_FLOAT, default=5e-4, show_default=True, help="Learning rate (> 0).")
@click.option("--optimizer", type=click.Choice(OPTIMIZERS), default="adam-normgrad", show_default=True,
              help="Adam on normalized gradients (the paper's) or plain Adam.")
@click.option("--gated-normgrad", type=click.Choice(GATED_NORMGRADS), default="joint", show_default=True,
              help="adam-normgrad on a gated layer's two halves (h, g), which share one kernel here: normalize "
                   "them together, or each half alone as the authors' code does (docs/RESULTS.md compares).")
@click.option("--init", type=click.Choice(INITS), default="paper", show_default=True,
              help="Weight initialisation: the paper's Glorot with zero biases, or the authors' code's "
                   "(He-normal dense weights, PyTorch's default biases and convolutions).")
@click.option("--seed", type=SEED, default=14, show_default=True, help="Random seed of the run, in [0, 2^31).")
@click.option("--max-examples", type=click.IntRange(min=1), default=None,
              help="Use at most N examples of every split (quick runs).")
@click.option("--data-dir", type=FOLDER, default=None,
              help="Dataset folder [default: $VAMPKERAS_DATA or ~/.vampkeras/data].")
@click.option("--run-dir", type=FOLDER, default=None,
              help="Run folder [default: runs/<dataset>-<model>-<prior>-<timestamp>].")
@click.option("--export", "export_dir", type=FOLDER, default=None,
              help="SavedModel folder for the best model [default: saved_models/<run name>].")
@click.option("--versioned/--no-versioned", "export_versioned", default=False, show_default=True,
              help="Treat --export as a TF Serving model base path: write the model to <export>/<N>/, N the next "
                   "free version number (1 in a new or empty folder); earlier versions are never overwritten.")
@click.option("--overwrite", is_flag=True, help="Allow --export into a folder that already holds a model.")
@click.option("--resume", is_flag=True, help="Continue the run in --run-dir from its last checkpoint.")
@click.option("--restart", is_flag=True,
              help="Start the run in --run-dir again from scratch; the old run is moved aside to "
                   "<run-dir>.restarted-<time>, never deleted.")
@click.option("--jit/--no-jit", default=None,
              help="XLA-compile the train step and the log-likelihood, or run them in graph mode [default: "
                   "whichever measures faster on this device, timed on the first run of a model shape and "
                   "cached in $VAMPKERAS_CACHE/tuning.json]; both modes draw the same noise and give the same "
                   "numbers. Several replicas always run in graph mode.")
@click.option("--mixed-precision", is_flag=True,
              help="Train with float16 layers (Keras' mixed_float16: float32 weights and densities, dynamic loss "
                   "scaling), for GPUs' tensor cores; slower on a CPU. The SavedModel computes in float32.")
@click.option("--strategy", type=click.Choice(STRATEGIES), default="default", show_default=True,
              help="tf.distribute strategy: one device; MirroredStrategy over the local GPUs (or over "
                   "--replicas logical CPU devices); or MultiWorkerMirroredStrategy over the machines in the "
                   "TF_CONFIG environment variable (run the same command on every worker; the chief writes "
                   "the run folder and the SavedModel).")
@click.option("--replicas", type=click.IntRange(min=1), default=None,
              help="Split the CPU into N logical devices for --strategy mirrored (machines without GPUs, tests).")
@click.option("--image-every", type=click.IntRange(min=0), default=10, show_default=True,
              help="Log sample/reconstruction/pseudo-input images to TensorBoard every N epochs (0: never).")
@click.option("--quiet", is_flag=True, help="No progress bar.")
@click.pass_context
@user_errors
def train(ctx, overwrite, resume, restart, quiet, **options):
    """Train a model, keep the best weights, export them as a SavedModel."""
    from vampkeras.config import RunConfig

    from vampkeras.run_folder import RunFolder

    config = RunConfig(**options)
    given = {name: value for name, value in options.items()
             if ctx.get_parameter_source(name) == ParameterSource.COMMANDLINE}
    # before TensorFlow loads, a mistake is refused at once (train() checks everything again)
    if resume and restart:
        raise click.UsageError("--resume continues a run and --restart starts it again: pass one of them")
    if not resume:            # (a resumed run is checked once merged with its saved config)
        config.validate()
        if config.run_dir is not None and config.strategy != "multiworker":
            RunFolder(config.run_dir).check_new_run_target(restart=restart)
    load_tensorflow()
    from vampkeras.training import train as run_training

    result = run_training(config, resume=resume, given=given, overwrite=overwrite,
                          verbose=0 if quiet else "auto", restart=restart)
    where = (f"run {result.run_dir}; SavedModel {result.export_dir}" if result.is_chief
             else "the chief wrote the run folder and the SavedModel")
    click.echo(f"trained {result.epochs_trained} epochs"
               f"{' (early stop)' if result.stopped_early else ''}; best validation loss "
               f"{result.best_val_loss:.3f} at epoch {result.best_epoch}; {where}")


@main.command()
@click.argument("path", type=CheckedPath(exists=True, file_okay=False))
@click.option("--dataset", type=DATASET, default=None,
              help="Dataset to score, a name or your own images as for `train` [default: the one the model was "
                   "trained on, refused if its files changed since].")
@click.option("--split", type=click.Choice(["test", "validation", "train"]), default="test", show_default=True)
@click.option("--samples", "num_samples", type=click.IntRange(1, MAX_IMPORTANCE_SAMPLES), default=5000, show_default=True,
              help="Importance samples per example (the paper uses 5000).")
@click.option("--batch-size", type=click.IntRange(min=1), default=100, show_default=True,
              help="Examples scored per call.")
@click.option("--max-examples", type=click.IntRange(min=1), default=None, help="Score at most N examples.")
@click.option("--data-dir", type=FOLDER, default=None, help="Dataset folder.")
@click.option("--json", "json_path", type=OUTPUT_FILE, default=None,
              help="Also write the results to this JSON file (- or /dev/stdout: only to standard output).")
@click.option("--figures", "figures_dir", type=OUTPUT_FOLDER, default=None,
              help="Write the log-likelihood histogram and active-units figure here [default for a run "
                   f"folder: RUN/{FIGURES_DIR}, where {EVALUATION_FILE} is saved too].")
@click.option("--mixed-precision", is_flag=True,
              help="Score a run folder with float16 layers (faster on GPUs; the densities stay float32). "
                   "benchmarks/README.md measures the difference to float32.")
@click.option("--quiet", is_flag=True, help="No progress bar.")
@user_errors
def evaluate(path, dataset, split, num_samples, batch_size, max_examples, data_dir, json_path, figures_dir,
             mixed_precision, quiet):
    """Test log-likelihood (importance sampling, paper §5.2), ELBO and active units of a run folder or
    SavedModel PATH."""
    from vampkeras.checkpoints import atomic_write_text
    from vampkeras.run_folder import summary_json

    # (--json and --figures were checked by their types, before the scoring and before TensorFlow loads)
    load_tensorflow()
    from vampkeras.evaluation import evaluate as run_evaluation

    summary, _ = run_evaluation(path, dataset=dataset, split=split, num_samples=num_samples,
                                batch_size=batch_size, max_examples=max_examples, data_dir=data_dir,
                                progress=Progress("evaluating", quiet), figures_dir=figures_dir,
                                mixed_precision=mixed_precision)
    text = summary_json(summary)
    if not writes_to_stdout(json_path):           # (--json - writes it there once)
        click.echo(text)
    if json_path:
        atomic_write_text(json_path, text + "\n")


@main.command()
@click.option("--data-dir", type=FOLDER, default=None,
              help="Dataset folder [default: $VAMPKERAS_DATA or ~/.vampkeras/data].")
def datasets(data_dir):
    """List the datasets: image shape, input type, split sizes, whether the files are present, source."""
    from vampkeras.data import DATASETS, default_data_dir, files_present

    folder = data_dir or str(default_data_dir())
    rows = [("name", "shape", "input", "train/valid/test", "present", "source")]
    for spec in DATASETS.values():
        rows.append((spec.name, "x".join(map(str, spec.image_shape)), spec.input_type,
                     "/".join(map(str, spec.split_sizes)), "yes" if files_present(spec.name, folder) else "no",
                     spec.source))
    widths = [max(len(row[i]) for row in rows) for i in range(5)]
    click.echo(f"data folder: {folder}")
    for row in rows:
        click.echo("  ".join(cell.ljust(width) for cell, width in zip(row, widths)) + "  " + row[5])


main.add_command(sample)
main.add_command(score)
main.add_command(report)
main.add_command(make_compare(train))

if __name__ == "__main__":
    main()
