"""Training: KL warm-up, early stopping, checkpoints, TensorBoard, resume, export.

The run's files live in a run folder (:class:`vampkeras.run_folder.RunFolder` owns their names); a training
process holds the folder's lock from before it writes anything until it ends.
"""

from __future__ import annotations

import dataclasses
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
from vampkeras.models import build_model, build_model_for_weights, check_prior_data
from vampkeras.run_folder import FIGURES_DIR, HISTORY_COLUMNS, LOCK_FILE, LOGS_DIR, RunFolder

logger = logging.getLogger(__name__)


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


class RunKeeper(keras.callbacks.Callback):
    """Sets β each epoch, stops on NaN/Inf, and after each epoch records history, TensorBoard scalars,
    the best weights and a checkpoint, and applies early stopping (patience counted after warm-up)."""

    def __init__(self, config: RunConfig, run: RunFolder, state: dict, steps_per_epoch: int, num_examples: int,
                 test_images=None):
        super().__init__()
        self.test_images = test_images          # (n, H, W) for the image summaries, or None
        self.config = config
        self.run = run
        self.state = state
        self.steps_per_epoch = steps_per_epoch
        self.num_examples = num_examples
        self.writer = tf.summary.create_file_writer(str(run.logs_dir))
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
        checkpoint_dir = self.run.checkpoint_dir
        past_warmup = epoch + 1 > self.config.warmup
        try:
            if row["val_loss"] < state["best_val_loss"]:
                state.update(best_val_loss=row["val_loss"], best_epoch=epoch + 1, bad_epochs=0)
                checkpoints.save(self.run.best_checkpoint_path, self.model)
            elif past_warmup:
                state["bad_epochs"] += 1
            if state["bad_epochs"] >= self.config.patience:
                state["stopped_early"] = True
                self.model.stop_training = True
            checkpoints.save_epoch(checkpoint_dir, epoch + 1, self.model, self.model.optimizer, state,
                                   self.config.keep_checkpoints)
            self.run.write_history(state["history"])
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
                   new_folder_check: bool = True, restart: bool = False) -> RunConfig:
    """The config a run will use.

    A new run gets default paths and must not be written into a folder that holds a run (unless ``restart``:
    then that run is moved aside later, see :func:`train`) or any other files (checked later without
    ``new_folder_check``: a multiworker chief checks once all workers are connected). ``resume``
    continues the run in ``config.run_dir`` with its saved config; the options in ``given`` (those the
    user set explicitly) may change how long it trains and where it exports, but not the model: any
    difference in a model-defining field is refused with the list of differences.
    """
    if resume and restart:
        raise ConfigError("--resume continues a run and --restart starts it again: pass one of them")
    if not resume:
        if restart and config.run_dir is None:
            raise ConfigError("--restart needs --run-dir: the folder of the run to start again")
        config = config.with_default_paths().validate()
        if new_folder_check:
            RunFolder(config.run_dir).check_new_run_target(restart)
        return config
    if config.run_dir is None:
        raise ConfigError("--resume needs --run-dir: the folder of the run to continue")
    run = RunFolder(config.run_dir)
    if not run.holds_run():
        raise VampkerasError(f"there is no run to resume in {config.run_dir} (no config.json)")
    saved = run.read_config()
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
    """Refuse, before anything is created, an export that would destroy work: one into the run folder (or
    around it), into a place that cannot be written, or over another run's SavedModel without ``overwrite``.
    A SavedModel of this very run (same ``run_id``, wherever the run folder is reached from) is refreshed
    without ``overwrite``; one without a run id (older vampkeras) counts as another run's. A versioned export
    adds a new version and overwrites nothing."""
    target = Path(config.export_dir)
    export.check_export_location(target, config.run_dir)
    if config.export_versioned:
        export.check_writable(target)
        export.check_model_base(target)
        return
    export.check_writable(target.parent)
    if target.exists() and not target.is_dir():
        raise VampkerasError(f"the export folder {target} is a file; choose another --export folder")
    # the earlier model of an export that was killed while replacing it is the folder's content too
    occupant = target if target.is_dir() and any(target.iterdir()) else export.interrupted_export(target)
    if overwrite or occupant is None:
        return
    own_config = occupant / "assets" / "config.json"
    try:
        exported = RunConfig.from_json(own_config.read_text()) if own_config.is_file() else None
    except (OSError, VampkerasError):
        exported = None
    if exported is not None and config.run_id is not None and exported.run_id == config.run_id:
        return  # a previous export of this very run: refreshing it loses nothing
    if exported is None:
        whose = "files"
    elif exported.run_id is None or config.run_id is None:
        whose = (f"a SavedModel of the run {exported.run_dir} that cannot be told from another run's (runs and "
                 "exports of older vampkeras versions carry no run id)")
    else:
        whose = f"the SavedModel of another run ({exported.run_dir})"
    raise VampkerasError(f"the export folder {target} already holds {whose}; choose another --export folder "
                         "or pass --overwrite")


def _export_best(model, config: RunConfig, run: RunFolder, spec, require_best: bool = False):
    """Export the best weights seen so far; without them, the current weights unless ``require_best``
    (then nothing is exported and (None, None) returned). Returns the exported model (``model`` itself, or
    for a mixed-precision run a float32 copy of it: the SavedModel computes in float32) and the SavedModel's
    folder (``config.export_dir``, or its new version folder for a versioned export)."""
    if run.best_checkpoint_path.is_file():
        checkpoints.load(run.best_checkpoint_path, model)
    elif require_best:
        return None, None
    exported = model
    if config.mixed_precision:
        exported = build_model_for_weights(config, spec, mixed_precision=False)
        exported.set_weights(model.get_weights())
        tuning.tune_evaluation(exported, config.jit)
    try:
        folder = export.export(exported, config.to_json(), config.export_dir, overwrite=True,
                               versioned=config.export_versioned)
    except OSError as error:
        raise VampkerasError(f"cannot write the SavedModel to {config.export_dir}: {error.strerror or error}; "
                             f"the run folder {run.path} is intact") from None
    return exported, folder


def _write_final_figures(model, config: RunConfig, run: RunFolder, test_images) -> None:
    """PNG figures of the exported (best) model and the training curves into the run's figures folder."""
    from vampkeras import figures

    try:
        figures.write_run_figures(run, _figure_module(model, config), config, test_images)
    except OSError as error:
        raise VampkerasError(f"cannot write the figures in {run.figures_dir}: {error.strerror or error}") from None


def _restored_state(run: RunFolder, model, optimizer) -> dict:
    """The state of the newest readable epoch checkpoint (weights and optimizer restored into ``model``).

    Resume never goes backwards silently: if the run has finished epochs (checkpoints or history rows) but
    no epoch checkpoint can be read, starting at epoch 1 would overwrite its history and its best weights,
    so it is refused. A run stopped before its first epoch ended starts at epoch 1."""
    state = checkpoints.restore_latest(run.checkpoint_dir, model, optimizer)
    if state is not None:
        return state
    saved = checkpoints.epoch_checkpoints(run.checkpoint_dir)
    finished = len(run.read_history())
    if saved or finished or run.best_checkpoint_path.is_file():
        what = (f"none of its {len(saved)} epoch checkpoint(s) in {run.checkpoint_dir} can be read" if saved
                else f"it has no epoch checkpoint in {run.checkpoint_dir}")
        raise VampkerasError(
            f"cannot resume the run in {run.path}: {what}, though it has "
            f"{finished or 'some'} finished epoch(s); resuming would start again at epoch 1 and overwrite its "
            f"history and best weights. Pass --restart to move the run aside and start it again, or restore "
            f"its checkpoints")
    return fresh_state()


def train(config: RunConfig, resume: bool = False, given: dict | None = None, overwrite: bool = False,
          verbose: int | str = "auto", restart: bool = False) -> TrainResult:
    """Train (or resume) a run end to end and export its best weights as a SavedModel.

    ``restart`` starts the run in ``config.run_dir`` again from scratch after moving the old one aside to
    ``<run_dir>.restarted-<time>`` (nothing is deleted).

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
        if config.run_dir and not task.is_chief and not RunFolder(config.run_dir).holds_run():
            raise VampkerasError(f"{task.name} sees no run to resume in {config.run_dir} (no config.json): under "
                                 "--strategy multiworker every worker must see the run folder, on storage they "
                                 "share at the same path")
        config = prepare_config(config, resume, {**(given or {}), "strategy": "multiworker"})
    else:
        config = prepare_config(config, resume, given, new_folder_check=task is None, restart=restart)
        if config.strategy == "multiworker" and task is None:      # resuming a multiworker run
            task = read_tf_config()
        strategy = make_strategy(config.strategy, config.replicas)
    if task is None:
        _check_export_target(config, overwrite)
        return _train(config, strategy, resume, verbose, restart=restart)
    scratch = None
    try:
        if task.is_chief:
            if not resume:
                RunFolder(config.run_dir).check_new_run_target(restart)
            _check_export_target(config, overwrite)
            return _train(config, strategy, resume, verbose, multiworker=True, restart=restart)
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
    run = RunFolder(run_dir)
    saved = checkpoints.epoch_checkpoints(run.checkpoint_dir)
    if saved:
        restart = (f"The last complete checkpoint (epoch {saved[-1][0]}) is in {run.checkpoint_dir}: start "
                   "every worker again with the same command plus --resume")
    elif run.holds_run():
        restart = "No epoch was complete: start every worker again with the same command plus --resume"
    else:
        restart = "No epoch was complete: start every worker again with the same command"
    return (f"{lost_peer(error, task)} of the multiworker cluster stopped responding ({failure_reason(error)}: it "
            f"stopped, crashed or became unreachable; its own output may say why), so {task.name} stopped too. "
            + restart)


def _move_old_run_aside(run: RunFolder) -> None:
    """--restart: move the run in ``run`` aside (never deleting it), once no process trains it."""
    try:
        with run.locked():           # refused, naming the holder, while another process trains or resumes it
            moved = run.move_aside()
    except OSError as error:
        raise VampkerasError(f"cannot move the run {run.path} aside to start it again: "
                             f"{error.strerror or error}") from None
    logger.warning("--restart: the earlier run is kept in %s", moved)


def _copy_run(source: Path, target: Path) -> None:
    """A non-chief worker's private copy of the run to resume: config and checkpoints (not the
    half-written temporaries of an interrupted save)."""
    try:
        shutil.copytree(source, target, ignore=shutil.ignore_patterns(".*.tmp", LOGS_DIR, FIGURES_DIR, LOCK_FILE))
    except (OSError, shutil.Error) as error:
        raise VampkerasError(f"cannot read the run folder {source} to resume it: {error}; under --strategy "
                             "multiworker every worker must see the run folder (shared storage)") from None


def _train(config: RunConfig, strategy, resume: bool, verbose, multiworker: bool = False,
           restart: bool = False) -> TrainResult:
    dataset = load_dataset(config.dataset, config.data_dir, config.max_examples)
    config.resolve(dataset.spec).validate()
    check_prior_data(config, len(dataset.train))      # every check passes before anything is created
    run = RunFolder(config.run_dir)
    if restart and run.holds_run():
        _move_old_run_aside(run)
    try:
        run.lock()          # until this process ends (the kernel releases it even after kill -9)
    except OSError as error:
        raise VampkerasError(f"cannot write the run folder {run.path}: {error.strerror or error}") from None
    try:
        return _train_locked(config, run, dataset, strategy, resume, verbose, multiworker)
    finally:
        run.unlock()


def _train_locked(config: RunConfig, run: RunFolder, dataset, strategy, resume: bool, verbose,
                  multiworker: bool) -> TrainResult:
    if not resume:
        # (checked again under the lock: another process may have started a run here since)
        if run.holds_run() or any(entry.name != run.lock_path.name for entry in run.path.iterdir()):
            raise VampkerasError(f"the run folder {run.path} was filled by another process meanwhile; choose "
                                 "another --run-dir")
    try:
        run.checkpoint_dir.mkdir(parents=True, exist_ok=True)
        if not resume:
            run.write_config(config)
    except OSError as error:
        raise VampkerasError(f"cannot write the run folder {run.path}: {error.strerror or error}") from None
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
    state = _restored_state(run, model, optimizer) if resume else fresh_state()
    state["best_val_loss"] = float(state["best_val_loss"])

    test_images = dataset.test[:16].reshape(-1, *dataset.spec.image_shape)      # for the figures
    if state["epoch"] < config.epochs and not state["stopped_early"]:
        train_data, _ = training_batches(dataset.train, config.batch_size, config.seed, state["epoch"],
                                         binarize=dataset.spec.binarization == "dynamic")
        keeper = RunKeeper(config, run, state, steps, len(dataset.train), test_images)
        model.fit(shard_by_data(train_data), steps_per_epoch=steps, epochs=config.epochs,
                  initial_epoch=state["epoch"],
                  validation_data=shard_by_data(evaluation_batches(dataset.validation, config.batch_size)),
                  callbacks=[keeper], verbose=verbose, shuffle=False)
        if keeper.diverged_at is not None:
            epoch, step = keeper.diverged_at
            _, folder = _export_best(model, config, run, dataset.spec, require_best=True)
            kept = (f"the last good checkpoint (epoch {state['epoch']}) is kept in {run.checkpoint_dir}"
                    if state["epoch"] else "no epoch was complete, so there is no checkpoint to keep")
            raise TrainingDiverged(
                f"the training loss became NaN/Inf in epoch {epoch}, step {step}; {kept}"
                + (f" and the best model so far is exported to {folder}" if folder is not None else "")
                + ". Try a lower --lr.")

    exported, folder = _export_best(model, config, run, dataset.spec)
    if config.image_every:
        _write_final_figures(exported, config, run, test_images)
    return TrainResult(run_dir=run.path, export_dir=folder, epochs_trained=state["epoch"],
                       best_epoch=state["best_epoch"], best_val_loss=state["best_val_loss"],
                       stopped_early=state["stopped_early"])
