"""Training: the run folder, KL warm-up, early stopping, checkpoints, TensorBoard, resume, export.

A run folder holds ``config.json`` (the :class:`RunConfig`), ``checkpoints/`` (``epoch-NNNNN.npz`` every
epoch with weights, optimizer state and bookkeeping; ``best.npz`` with the best weights so far),
``logs/`` (TensorBoard scalars) and ``history.csv`` (one row per epoch).
"""

from __future__ import annotations

import csv
import dataclasses
import io
import logging
import math
import time
from pathlib import Path

import keras
import numpy as np
import tensorflow as tf

from vampkeras import checkpoints, export, optimizers
from vampkeras.config import MODEL_FIELDS, RunConfig
from vampkeras.data import load_dataset
from vampkeras.data.pipeline import evaluation_batches, training_batches
from vampkeras.distribution import make_strategy
from vampkeras.errors import ConfigError, TrainingDiverged, VampkerasError
from vampkeras.models import build_model

logger = logging.getLogger(__name__)

HISTORY_COLUMNS = ("epoch", "loss", "reconstruction", "kl", "val_loss", "val_reconstruction", "val_kl", "beta",
                   "learning_rate", "seconds", "examples_per_second")


@dataclasses.dataclass
class TrainResult:
    """What a finished (or early-stopped) run produced."""

    run_dir: Path
    export_dir: Path
    epochs_trained: int
    best_epoch: int
    best_val_loss: float
    stopped_early: bool


def warmup_beta(epoch: int, warmup: int) -> float:
    """β for 1-based ``epoch``: min(1, epoch / warmup) (Bowman et al.; Sønderby et al.), 1 if no warm-up."""
    return 1.0 if warmup <= 0 else min(1.0, epoch / warmup)


def use_xla(config: RunConfig, strategy) -> bool:
    """XLA for ``--jit`` on one device; a mirrored step runs in graph mode (XLA-compiled replica steps
    failed to reach the optimizer's mirrored variables across logical CPU devices here)."""
    if config.jit and strategy.num_replicas_in_sync > 1:
        logger.warning("--jit is ignored under a mirrored strategy; the replicas run in graph mode")
        return False
    return config.jit


def steps_per_execution(steps_per_epoch: int, limit: int = 16) -> int:
    """Train steps run per call into the compiled graph: the largest divisor of the epoch's steps up to
    ``limit`` (measured: Keras' per-step Python overhead otherwise costs ~10% of a CPU epoch)."""
    return max(d for d in range(1, min(limit, steps_per_epoch) + 1) if steps_per_epoch % d == 0)


def fresh_state() -> dict:
    return {"epoch": 0, "best_val_loss": math.inf, "best_epoch": 0, "bad_epochs": 0, "stopped_early": False,
            "history": []}


def write_history(path, history: list[dict]) -> None:
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=HISTORY_COLUMNS, extrasaction="ignore")
    writer.writeheader()
    writer.writerows(history)
    checkpoints.atomic_write_text(path, buffer.getvalue())


class RunKeeper(keras.callbacks.Callback):
    """Sets β each epoch, stops on NaN/Inf, and after each epoch records history, TensorBoard scalars,
    the best weights and a checkpoint, and applies early stopping (patience counted after warm-up)."""

    def __init__(self, config: RunConfig, run_dir: Path, state: dict, steps_per_epoch: int, num_examples: int,
                 test_images=None):
        super().__init__()
        self.test_images = test_images          # (n, H, W) for the image summaries, or None
        self.config = config
        self.run_dir = run_dir
        self.state = state
        self.steps_per_epoch = steps_per_epoch
        self.num_examples = num_examples
        self.writer = tf.summary.create_file_writer(str(run_dir / "logs"))
        self.diverged_at: tuple[int, int] | None = None
        self._epoch_start = 0.0

    def on_epoch_begin(self, epoch, logs=None):
        self.model.beta.assign(warmup_beta(epoch + 1, self.config.warmup))
        self._epoch_start = time.perf_counter()

    def on_train_batch_end(self, batch, logs=None):
        if logs is not None and not math.isfinite(float(logs.get("loss", 0.0))):
            self.diverged_at = (len(self.state["history"]) + 1, batch + 1)
            self.model.stop_training = True

    def on_epoch_end(self, epoch, logs=None):
        logs = dict(logs or {})
        if self.diverged_at is None and not all(math.isfinite(float(v)) for v in logs.values()):
            self.diverged_at = (epoch + 1, self.steps_per_epoch)
            self.model.stop_training = True
        if self.diverged_at is not None:
            return
        seconds = time.perf_counter() - self._epoch_start
        row = {name: float(logs[name]) for name in HISTORY_COLUMNS if name in logs}
        row.update(epoch=epoch + 1, beta=float(self.model.beta.numpy()),
                   learning_rate=float(keras.ops.convert_to_numpy(self.model.optimizer.learning_rate)),
                   seconds=seconds, examples_per_second=self.num_examples / max(seconds, 1e-9))
        state = self.state
        state["history"].append(row)
        state["epoch"] = epoch + 1
        checkpoint_dir = self.run_dir / "checkpoints"
        past_warmup = epoch + 1 > self.config.warmup
        try:
            if row["val_loss"] < state["best_val_loss"]:
                state.update(best_val_loss=row["val_loss"], best_epoch=epoch + 1, bad_epochs=0)
                checkpoints.save(checkpoint_dir / checkpoints.BEST_WEIGHTS, self.model)
            elif past_warmup:
                state["bad_epochs"] += 1
            if state["bad_epochs"] >= self.config.patience:
                state["stopped_early"] = True
                self.model.stop_training = True
            checkpoints.save_epoch(checkpoint_dir, epoch + 1, self.model, self.model.optimizer, state,
                                   self.config.keep_checkpoints)
            write_history(self.run_dir / "history.csv", state["history"])
        except OSError as error:
            raise VampkerasError(
                f"cannot write the checkpoint of epoch {epoch + 1} in {checkpoint_dir}: "
                f"{error.strerror or error}; the previous checkpoints are intact, free space and resume "
                "with --resume") from None
        with self.writer.as_default(step=epoch + 1):
            for name, value in row.items():
                if name != "epoch":
                    tf.summary.scalar(name, value)
            every = self.config.image_every
            if self.test_images is not None and every and ((epoch + 1) % every == 0 or epoch + 1 == 1):
                for name, grid in model_figures(self.model, self.config, self.test_images).items():
                    tf.summary.image(name, grid[None, :, :, None], max_outputs=1)
        self.writer.flush()


def model_figures(model, config: RunConfig, test_images) -> dict:
    """uint8 image grids of a model in memory (see :func:`vampkeras.figures.model_images`), as many images
    as :func:`vampkeras.figures.figure_sizes` gives for the run."""
    from vampkeras import figures

    sizes = figures.figure_sizes(config)
    return figures.model_images(_figure_module(model, config), test_images[:sizes["num_test_images"]],
                                num_samples=sizes["num_samples"], component_samples=sizes["component_samples"])


def _figure_module(model, config: RunConfig):
    """The model's exported functions, traced once per model and reused for every image summary."""
    module = getattr(model, "_figure_module", None)
    if module is None:
        module = export.ExportModule(model, config.to_json())
        object.__setattr__(model, "_figure_module", module)      # not tracked by Keras as a sublayer
    return module


def prepare_config(config: RunConfig, resume: bool, given: dict | None = None) -> RunConfig:
    """The config a run will use.

    A new run gets default paths and must not reuse a folder that already holds a run. ``resume``
    continues the run in ``config.run_dir`` with its saved config; the options in ``given`` (those the
    user set explicitly) may change how long it trains and where it exports, but not the model: any
    difference in a model-defining field is refused with the list of differences.
    """
    if not resume:
        config = config.with_default_paths().validate()
        if (Path(config.run_dir) / "config.json").exists():
            raise VampkerasError(f"the run folder {config.run_dir} already holds a run; pass --resume to continue "
                                 "it, or choose another --run-dir")
        return config
    if config.run_dir is None:
        raise ConfigError("--resume needs --run-dir: the folder of the run to continue")
    saved_path = Path(config.run_dir) / "config.json"
    if not saved_path.is_file():
        raise VampkerasError(f"there is no run to resume in {config.run_dir} (no config.json)")
    saved = RunConfig.from_json(saved_path.read_text())
    given = dict(given or {})
    requested = dataclasses.replace(saved, **{k: v for k, v in given.items() if k in MODEL_FIELDS})
    for name in ("num_components", "pseudo_init_mean", "pseudo_init_std"):
        if name not in given:
            setattr(requested, name, getattr(saved, name))
    differences = saved.model_differences(requested)
    if differences:
        raise ConfigError("--resume refuses a configuration that changes the run: " + "; ".join(differences))
    # the run lives where the user points now (the folder may have moved since it was saved)
    changes = {k: v for k, v in given.items() if k not in MODEL_FIELDS}
    changes["run_dir"] = config.run_dir
    return dataclasses.replace(saved, **changes).validate()


def _check_export_target(config: RunConfig, overwrite: bool) -> None:
    target = Path(config.export_dir)
    if overwrite or not target.exists() or not any(target.iterdir()):
        return
    own_config = target / "assets" / "config.json"
    try:
        if own_config.is_file() and RunConfig.from_json(own_config.read_text()).run_dir == config.run_dir:
            return  # a previous export of this very run: refreshing it loses nothing
    except VampkerasError:
        pass
    raise VampkerasError(f"the export folder {target} already holds files; choose another --export folder "
                         "or pass --overwrite")


def _export_best(model, config: RunConfig, run_dir: Path, require_best: bool = False) -> bool:
    """Export the best weights seen so far; without them, the current weights unless ``require_best``
    (then nothing is exported and False returned)."""
    best = run_dir / "checkpoints" / checkpoints.BEST_WEIGHTS
    if best.is_file():
        checkpoints.load(best, model)
    elif require_best:
        return False
    try:
        export.export(model, config.to_json(), config.export_dir, overwrite=True)
    except OSError as error:
        raise VampkerasError(f"cannot write the SavedModel to {config.export_dir}: {error.strerror or error}; "
                             f"the run folder {run_dir} is intact") from None
    return True


def _write_final_figures(model, config: RunConfig, run_dir: Path, test_images) -> None:
    """PNG figures of the exported (best) model and the training curves into ``<run>/figures``."""
    from vampkeras import figures

    try:
        figures.write_run_figures(run_dir, _figure_module(model, config), config, test_images)
    except OSError as error:
        raise VampkerasError(f"cannot write the figures in {run_dir / 'figures'}: {error.strerror or error}") from None


def train(config: RunConfig, resume: bool = False, given: dict | None = None, overwrite: bool = False,
          verbose: int | str = "auto") -> TrainResult:
    """Train (or resume) a run end to end and export its best weights as a SavedModel."""
    config = prepare_config(config, resume, given)
    _check_export_target(config, overwrite)
    dataset = load_dataset(config.dataset, config.data_dir, config.max_examples)
    config.resolve(dataset.spec).validate()
    run_dir = Path(config.run_dir)
    try:
        (run_dir / "checkpoints").mkdir(parents=True, exist_ok=True)
        if not resume:
            checkpoints.atomic_write_text(run_dir / "config.json", config.to_json())
    except OSError as error:
        raise VampkerasError(f"cannot write the run folder {run_dir}: {error.strerror}") from None

    strategy = make_strategy(config.strategy, config.replicas)
    if config.deterministic and not config.jit:
        # (Keras silently turns XLA off when op determinism is on, so --jit runs without it)
        tf.config.experimental.enable_op_determinism()
    steps = math.ceil(len(dataset.train) / config.batch_size)
    with strategy.scope():
        model = build_model(config, dataset.spec, dataset.train)
        optimizer = optimizers.build(config.optimizer, config.lr)
        model.compile(optimizer=optimizer, jit_compile=use_xla(config, strategy),
                      steps_per_execution=steps_per_execution(steps))
        optimizer.build(model.trainable_variables)
    state = (checkpoints.restore_latest(run_dir / "checkpoints", model, optimizer) if resume else None) or fresh_state()
    state["best_val_loss"] = float(state["best_val_loss"])

    test_images = dataset.test[:16].reshape(-1, *dataset.spec.image_shape)      # for the figures
    if state["epoch"] < config.epochs and not state["stopped_early"]:
        train_data, _ = training_batches(dataset.train, config.batch_size, config.seed, state["epoch"],
                                         binarize=dataset.spec.binarization == "dynamic")
        keeper = RunKeeper(config, run_dir, state, steps, len(dataset.train), test_images)
        model.fit(train_data, steps_per_epoch=steps, epochs=config.epochs, initial_epoch=state["epoch"],
                  validation_data=evaluation_batches(dataset.validation, config.batch_size),
                  callbacks=[keeper], verbose=verbose, shuffle=False)
        if keeper.diverged_at is not None:
            epoch, step = keeper.diverged_at
            exported = _export_best(model, config, run_dir, require_best=True)
            raise TrainingDiverged(
                f"the training loss became NaN/Inf in epoch {epoch}, step {step}; the last good checkpoint "
                f"(epoch {state['epoch']}) is kept in {run_dir / 'checkpoints'}"
                + (f" and the best model so far is exported to {config.export_dir}" if exported else "")
                + ". Try a lower --lr.")

    _export_best(model, config, run_dir)
    if config.image_every:
        _write_final_figures(model, config, run_dir, test_images)
    return TrainResult(run_dir=run_dir, export_dir=Path(config.export_dir), epochs_trained=state["epoch"],
                       best_epoch=state["best_epoch"], best_val_loss=state["best_val_loss"],
                       stopped_early=state["stopped_early"])
