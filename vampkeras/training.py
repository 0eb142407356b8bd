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
import shutil
import tempfile
import time
from pathlib import Path

import keras
import tensorflow as tf

from vampkeras import checkpoints, export, optimizers, tuning
from vampkeras.config import MODEL_FIELDS, RunConfig
from vampkeras.data import load_dataset
from vampkeras.data.pipeline import evaluation_batches, training_batches
from vampkeras.distribution import (ClusterTask, WorkerLost, failure_reason, is_peer_failure, lost_peer,
                                    make_strategy, read_tf_config)
from vampkeras.errors import ConfigError, TrainingDiverged, VampkerasError
from vampkeras.models import build_model, build_model_for_weights

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
    is_chief: bool = True       # False: a multiworker worker whose files were temporary (the chief wrote them)


def warmup_beta(epoch: int, warmup: int) -> float:
    """β for 1-based ``epoch``: min(1, epoch / warmup) (Bowman et al.; Sønderby et al.), 1 if no warm-up."""
    return 1.0 if warmup <= 0 else min(1.0, epoch / warmup)


def shard_by_data(dataset: tf.data.Dataset) -> tf.data.Dataset:
    """Shard by batch across multiworker workers: the datasets are built from tensors in memory, with no
    files to shard by (each worker takes its replicas' slices of every global batch)."""
    options = tf.data.Options()
    options.experimental_distribute.auto_shard_policy = tf.data.experimental.AutoShardPolicy.DATA
    return dataset.with_options(options)


def rank_one_step_outputs(model) -> None:
    """Make ``model``'s train and test steps return their scalar metrics as shape (1,) tensors.

    Keras 3 reduces a step's outputs under MultiWorkerMirroredStrategy with
    ``strategy.reduce("MEAN", value, axis=0)``, which fails on scalars ("Invalid reduction dimension 0 for
    input with 0 dimensions", tensorflow/tensorflow#72388); the reduction over axis 0 makes them scalars
    again."""
    for name in ("train_step", "test_step"):
        step = getattr(model, name)

        def reshaped(data, step=step):
            return {key: tf.reshape(value, [1]) for key, value in step(data).items()}

        object.__setattr__(model, name, reshaped)


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


def prepare_config(config: RunConfig, resume: bool, given: dict | None = None,
                   new_folder_check: bool = True) -> RunConfig:
    """The config a run will use.

    A new run gets default paths and must not reuse a folder that already holds a run (checked later
    without ``new_folder_check``: a multiworker chief checks once all workers are connected). ``resume``
    continues the run in ``config.run_dir`` with its saved config; the options in ``given`` (those the
    user set explicitly) may change how long it trains and where it exports, but not the model: any
    difference in a model-defining field is refused with the list of differences.
    """
    if not resume:
        config = config.with_default_paths().validate()
        if new_folder_check:
            _refuse_existing_run(config)
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
    if changes.get("strategy", saved.strategy) != "mirrored" and "replicas" not in given:
        changes["replicas"] = None          # --replicas belongs to --strategy mirrored
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


def _export_best(model, config: RunConfig, run_dir: Path, spec, require_best: bool = False):
    """Export the best weights seen so far; without them, the current weights unless ``require_best``
    (then nothing is exported and None returned). Returns the exported model: ``model`` itself, or for a
    mixed-precision run a float32 copy of it (the SavedModel computes in float32)."""
    best = run_dir / "checkpoints" / checkpoints.BEST_WEIGHTS
    if best.is_file():
        checkpoints.load(best, model)
    elif require_best:
        return None
    exported = model
    if config.mixed_precision:
        exported = build_model_for_weights(config, spec, mixed_precision=False)
        exported.set_weights(model.get_weights())
        tuning.tune_evaluation(exported, config.jit)
    try:
        export.export(exported, config.to_json(), config.export_dir, overwrite=True)
    except OSError as error:
        raise VampkerasError(f"cannot write the SavedModel to {config.export_dir}: {error.strerror or error}; "
                             f"the run folder {run_dir} is intact") from None
    return exported


def _write_final_figures(model, config: RunConfig, run_dir: Path, test_images) -> None:
    """PNG figures of the exported (best) model and the training curves into ``<run>/figures``."""
    from vampkeras import figures

    try:
        figures.write_run_figures(run_dir, _figure_module(model, config), config, test_images)
    except OSError as error:
        raise VampkerasError(f"cannot write the figures in {run_dir / 'figures'}: {error.strerror or error}") from None


def train(config: RunConfig, resume: bool = False, given: dict | None = None, overwrite: bool = False,
          verbose: int | str = "auto") -> TrainResult:
    """Train (or resume) a run end to end and export its best weights as a SavedModel.

    Under ``--strategy multiworker`` every worker runs this with the same options. The chief writes the run
    folder and the export; every other worker trains in a temporary folder of its own, deleted at the end:
    it still saves checkpoints and a SavedModel, as reading the model's variables for them may take part in
    the cluster's collective ops. A resumed multiworker run is read from ``config.run_dir`` by every worker.
    If a worker stops, the others raise :class:`WorkerLost` within seconds.
    """
    # MultiWorkerMirroredStrategy must be created before TensorFlow runs anything. All workers connect
    # before one may fail alone on files only it sees (a run folder to resume, an export folder), so that the
    # others then fail too rather than wait for it to connect.
    task = read_tf_config() if config.strategy == "multiworker" else None
    if task is not None and resume:
        strategy = make_strategy("multiworker")
        if config.run_dir and not task.is_chief and not (Path(config.run_dir) / "config.json").is_file():
            raise VampkerasError(f"{task.name} sees no run to resume in {config.run_dir} (no config.json): under "
                                 "--strategy multiworker every worker must see the run folder, on storage they "
                                 "share at the same path")
        config = prepare_config(config, resume, {**(given or {}), "strategy": "multiworker"})
    else:
        config = prepare_config(config, resume, given, new_folder_check=task is None)
        if config.strategy == "multiworker" and task is None:      # resuming a multiworker run
            task = read_tf_config()
        strategy = make_strategy(config.strategy, config.replicas)
    if task is None:
        _check_export_target(config, overwrite)
        return _train(config, strategy, resume, verbose)
    scratch = None
    try:
        if task.is_chief:
            if not resume:
                _refuse_existing_run(config)
            _check_export_target(config, overwrite)
            return _train(config, strategy, resume, verbose, multiworker=True)
        scratch = Path(tempfile.mkdtemp(prefix=f"vampkeras-{task.task_type}{task.index}-"))
        local = dataclasses.replace(config, run_dir=str(scratch / "run"), export_dir=str(scratch / "export"))
        if resume:
            _copy_run(Path(config.run_dir), Path(local.run_dir))
        result = _train(local, strategy, resume, verbose, multiworker=True)
        return dataclasses.replace(result, run_dir=Path(config.run_dir), export_dir=Path(config.export_dir),
                                   is_chief=False)
    except tf.errors.OpError as error:
        if not is_peer_failure(error):
            raise
        logger.info("the collective operations were aborted: %s", error.message)
        raise WorkerLost(_lost_worker_message(error, task, Path(config.run_dir))) from None
    finally:
        if scratch is not None:
            shutil.rmtree(scratch, ignore_errors=True)


def _lost_worker_message(error, task: ClusterTask, run_dir: Path) -> str:
    saved = checkpoints.epoch_checkpoints(run_dir / "checkpoints")
    if saved:
        restart = (f"The last complete checkpoint (epoch {saved[-1][0]}) is in {run_dir / 'checkpoints'}: start "
                   "every worker again with the same command plus --resume")
    elif (run_dir / "config.json").is_file():
        restart = "No epoch was complete: start every worker again with the same command plus --resume"
    else:
        restart = "No epoch was complete: start every worker again with the same command"
    return (f"{lost_peer(error, task)} of the multiworker cluster stopped responding ({failure_reason(error)}: it "
            f"stopped, crashed or became unreachable; its own output may say why), so {task.name} stopped too. "
            + restart)


def _refuse_existing_run(config: RunConfig) -> None:
    if (Path(config.run_dir) / "config.json").exists():
        raise VampkerasError(f"the run folder {config.run_dir} already holds a run; pass --resume to continue it, "
                             "or choose another --run-dir")


def _copy_run(source: Path, target: Path) -> None:
    """A non-chief worker's private copy of the run to resume: config and checkpoints (not the
    half-written temporaries of an interrupted save)."""
    try:
        shutil.copytree(source, target, ignore=shutil.ignore_patterns(".*.tmp", "logs", "figures"))
    except (OSError, shutil.Error) as error:
        raise VampkerasError(f"cannot read the run folder {source} to resume it: {error}; under --strategy "
                             "multiworker every worker must see the run folder (shared storage)") from None


def _train(config: RunConfig, strategy, resume: bool, verbose, multiworker: bool = False) -> TrainResult:
    dataset = load_dataset(config.dataset, config.data_dir, config.max_examples)
    config.resolve(dataset.spec).validate()
    run_dir = Path(config.run_dir)
    try:
        (run_dir / "checkpoints").mkdir(parents=True, exist_ok=True)
        if not resume:
            checkpoints.atomic_write_text(run_dir / "config.json", config.to_json())
    except OSError as error:
        raise VampkerasError(f"cannot write the run folder {run_dir}: {error.strerror}") from None
    if config.deterministic:
        tf.config.experimental.enable_op_determinism()
    if config.mixed_precision and not tf.config.list_logical_devices("GPU"):
        logger.warning("--mixed-precision on a CPU: float16 is computed in software there, slower than float32 "
                       "(it is meant for GPUs)")
    if config.jit and strategy.num_replicas_in_sync > 1:
        logger.warning("--jit is ignored with several replicas (mirrored or multiworker); they run in graph mode")
    steps = math.ceil(len(dataset.train) / config.batch_size)
    with strategy.scope():
        model = build_model(config, dataset.spec, dataset.train)
        optimizer = optimizers.build(config.optimizer, config.lr, loss_scaling=config.mixed_precision)
        if multiworker:
            rank_one_step_outputs(model)
        # (Keras' loop over several steps per call fails to trace under MultiWorkerMirroredStrategy:
        # "You must feed a value for placeholder tensor", from the cross-worker check for a next batch)
        # the model XLA-compiles its own step (model.train_jit), leaving the noise to graph mode: Keras' jit_compile
        # would compile the noise too (another random stream) and is off under op determinism
        model.compile(optimizer=optimizer, jit_compile=False,
                      steps_per_execution=1 if multiworker else steps_per_execution(steps))
        optimizer.build(model.trainable_variables)
    if strategy.num_replicas_in_sync == 1:
        # graph mode or XLA for the train step and the evaluation: the faster on this device (cached per machine)
        tuning.tune_training(model, config.batch_size, config.jit)
        tuning.tune_evaluation(model, config.jit)
    state = (checkpoints.restore_latest(run_dir / "checkpoints", model, optimizer) if resume else None) or fresh_state()
    state["best_val_loss"] = float(state["best_val_loss"])

    test_images = dataset.test[:16].reshape(-1, *dataset.spec.image_shape)      # for the figures
    if state["epoch"] < config.epochs and not state["stopped_early"]:
        train_data, _ = training_batches(dataset.train, config.batch_size, config.seed, state["epoch"],
                                         binarize=dataset.spec.binarization == "dynamic")
        keeper = RunKeeper(config, run_dir, state, steps, len(dataset.train), test_images)
        model.fit(shard_by_data(train_data), steps_per_epoch=steps, epochs=config.epochs,
                  initial_epoch=state["epoch"],
                  validation_data=shard_by_data(evaluation_batches(dataset.validation, config.batch_size)),
                  callbacks=[keeper], verbose=verbose, shuffle=False)
        if keeper.diverged_at is not None:
            epoch, step = keeper.diverged_at
            exported = _export_best(model, config, run_dir, dataset.spec, require_best=True) is not None
            raise TrainingDiverged(
                f"the training loss became NaN/Inf in epoch {epoch}, step {step}; the last good checkpoint "
                f"(epoch {state['epoch']}) is kept in {run_dir / 'checkpoints'}"
                + (f" and the best model so far is exported to {config.export_dir}" if exported else "")
                + ". Try a lower --lr.")

    exported = _export_best(model, config, run_dir, dataset.spec)
    if config.image_every:
        _write_final_figures(exported, config, run_dir, test_images)
    return TrainResult(run_dir=run_dir, export_dir=Path(config.export_dir), epochs_trained=state["epoch"],
                       best_epoch=state["best_epoch"], best_val_loss=state["best_val_loss"],
                       stopped_early=state["stopped_early"])
