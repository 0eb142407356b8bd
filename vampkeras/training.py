"""Training a run end to end: prepare it (:mod:`vampkeras.run_setup`), take the run folder's lock, build the
model and optimizer under the strategy (:mod:`vampkeras.replicas`; a multiworker cluster:
:mod:`vampkeras.cluster`), fit with the epoch callback (:mod:`vampkeras.epoch_keeper`: warm-up, checkpoints,
early stopping), then export the best weights and draw the figures. The run's files live in a run folder (:class:`vampkeras.run_folder.RunFolder` owns their names);
a training process holds the folder's lock from before it writes anything until it ends.
"""

from __future__ import annotations

import dataclasses
import logging
import math
from pathlib import Path

import tensorflow as tf

from vampkeras import checkpoints, export, figures, layers, optimizers, resources, tuning
from vampkeras.config import RunConfig
from vampkeras.data import load_dataset
from vampkeras.data.registry import check_same_data
from vampkeras.data.pipeline import evaluation_batches, training_batches
from vampkeras.epoch_keeper import RunKeeper, fresh_state
from vampkeras.errors import ConfigError, TrainingDiverged, VampkerasError
from vampkeras.models import build_model, build_model_for_weights, check_prior_data
from vampkeras.cluster import read_tf_config, train_as_cluster_task
from vampkeras.replicas import make_strategy, rank_one_step_outputs, shard_by_data
from vampkeras.run_folder import CONFIG_FILE, RunFolder
from vampkeras.run_setup import check_export_target, move_old_run_aside, prepare_config
from vampkeras.trained_model import TrainedModel

__all__ = ["train", "TrainResult", "steps_per_execution"]

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


def steps_per_execution(steps_per_epoch: int, limit: int = 16) -> int:
    """Train steps run per call into the compiled graph: the largest divisor of the epoch's steps up to
    ``limit``: Keras' per-step Python overhead is a noticeable part of a CPU epoch (benchmarks/README.md)."""
    return max(d for d in range(1, min(limit, steps_per_epoch) + 1) if steps_per_epoch % d == 0)


def _export_best(model, config: RunConfig, run: RunFolder, spec, require_best: bool = False, networks=None):
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
        exported = build_model_for_weights(config, spec, mixed_precision=False, networks=networks)
        exported.set_weights(model.get_weights())
        tuning.tune_evaluation(exported, config.jit)
    try:
        folder = export.export(exported, config.to_json(), config.export_dir, overwrite=True,
                               versioned=config.export_versioned)
    except OSError as error:
        raise VampkerasError(f"cannot write the SavedModel to {config.export_dir}: {error.strerror or error}; "
                             f"the run folder {run.path} is intact") from None
    return exported, folder


def train(config: RunConfig, resume: bool = False, given: dict | None = None, overwrite: bool = False,
          verbose: int | str = "auto", restart: bool = False, networks=None) -> TrainResult:
    """Train (or resume) a run end to end and export its best weights as a SavedModel.

    ``networks``: your own encoder and decoder for ``config.model == "vae"``, a callable ``networks(spec, config)``
    returning a fresh ``(encoder, decoder)`` pair of Keras layers or models for a
    :class:`vampkeras.data.DatasetSpec` (see :class:`vampkeras.models.VAE`); the run records its qualified name
    (``config.networks``), and resuming it needs the same callable again.

    ``verbose``: Keras's progress display, as ``model.fit`` takes it ("auto", 0 for none, 1, 2).

    ``restart`` starts the run in ``config.run_dir`` again from scratch after moving the old one aside to
    ``<run_dir>.restarted-<time>`` (nothing is deleted).

    Under ``--strategy multiworker`` every worker runs this with the same options; the chief writes the run
    folder and the export (see :func:`vampkeras.cluster.train_as_cluster_task`). A resumed multiworker run
    is read from ``config.run_dir`` by every worker. If a worker stops, the others raise
    :class:`~vampkeras.cluster.WorkerLost` within seconds.
    """
    # MultiWorkerMirroredStrategy must be created before TensorFlow runs anything. All workers connect
    # before one may fail alone on files only it sees (a run folder to resume, an export folder), so that the
    # others then fail too rather than wait for it to connect.
    task = read_tf_config() if config.strategy == "multiworker" else None
    if task is not None and resume:
        strategy = make_strategy("multiworker")
        if config.run_dir and not task.is_chief and not RunFolder(config.run_dir).holds_run():
            raise VampkerasError(f"{task.name} sees no run to resume in {config.run_dir} (no {CONFIG_FILE}): under "
                                 "--strategy multiworker every worker must see the run folder, on storage they "
                                 "share at the same path")
        config = prepare_config(config, resume, {**(given or {}), "strategy": "multiworker"})
    else:
        config = prepare_config(config, resume, given, new_folder_check=task is None, restart=restart)
        if config.strategy == "multiworker" and task is None:      # resuming a multiworker run
            task = read_tf_config()
        strategy = make_strategy(config.strategy, config.replicas)
    if task is None:
        check_export_target(config, overwrite)
        return _train(config, strategy, resume, verbose, restart=restart, networks=networks)
    if task.is_chief:
        if not resume:
            RunFolder(config.run_dir).check_new_run_target(restart)
        check_export_target(config, overwrite)
    return train_as_cluster_task(task, config, resume, lambda local: _train(
        local, strategy, resume, verbose, multiworker=True, restart=restart and task.is_chief, networks=networks))


def _train(config: RunConfig, strategy, resume: bool, verbose, multiworker: bool = False,
           restart: bool = False, networks=None) -> TrainResult:
    from vampkeras.models import check_networks, networks_name
    check_networks(config, networks)
    if networks_name(networks) != config.networks:
        if resume or config.networks is not None:
            raise ConfigError(f"the run was trained with the networks {config.networks or 'of vampkeras'}; pass "
                              f"those again (given: {networks_name(networks) or 'none'})")
        config.networks = networks_name(networks)
    dataset = load_dataset(config.dataset, config.data_dir, config.max_examples, likelihood=config.likelihood,
                           binarization=config.binarization, split=config.split)
    if resume:
        check_same_data(config.data, dataset, "--resume")
    else:
        config.dataset, config.data = dataset.spec.name, dataset.record     # (your own data: its resolved path)
    config.resolve(dataset.spec).validate()
    check_prior_data(config, len(dataset.train))      # every check passes before anything is created
    resources.check_training_memory(config, dataset, networks)     # the model and the data fit in memory
    run = RunFolder(config.run_dir)
    if restart and run.holds_run():
        move_old_run_aside(run)
    try:
        run.lock()          # until this process ends (the kernel releases it even after kill -9)
    except OSError as error:
        raise VampkerasError(f"cannot write the run folder {run.path}: {error.strerror or error}") from None
    try:
        return _train_locked(config, run, dataset, strategy, resume, verbose, multiworker, networks)
    finally:
        run.unlock()


def _train_locked(config: RunConfig, run: RunFolder, dataset, strategy, resume: bool, verbose,
                  multiworker: bool, networks=None) -> TrainResult:
    if not resume:
        # (checked again under the lock: another process may have started a run here since)
        if run.holds_run() or not run.is_empty_or_missing(besides_lock=True):
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
        model = build_model(config, dataset.spec, dataset.train, networks=networks)
        halved = layers.gated_variables(model) if config.gated_normgrad == "per-half" else ()
        optimizer = optimizers.build(config.optimizer, config.lr, loss_scaling=config.mixed_precision,
                                     halved_variables=halved)
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
    state = (run.restore_latest(model, optimizer) if resume else None) or fresh_state()
    state["best_val_loss"] = float(state["best_val_loss"])

    test_images = dataset.test[:16].reshape(-1, *dataset.spec.image_shape)      # for the figures
    keeper = None
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
            _, folder = _export_best(model, config, run, dataset.spec, require_best=True, networks=networks)
            kept = (f"the last good checkpoint (epoch {state['epoch']}) is kept in {run.checkpoint_dir}"
                    if state["epoch"] else "no epoch was complete, so there is no checkpoint to keep")
            raise TrainingDiverged(
                f"the training loss became NaN/Inf in epoch {epoch}, step {step}; {kept}"
                + (f" and the best model so far is exported to {folder}" if folder is not None else "")
                + ". Try a lower --lr.")

    exported, folder = _export_best(model, config, run, dataset.spec, networks=networks)
    if config.image_every:
        # the keeper's functions of the model, already traced, unless the export is a float32 copy
        trained = (keeper.trained_model if keeper is not None and exported is model
                   else TrainedModel.from_keras(exported, config))
        figures.write_run_figures(run, trained, test_images)        # the best model's, and the curves
    return TrainResult(run_dir=run.path, export_dir=folder, epochs_trained=state["epoch"],
                       best_epoch=state["best_epoch"], best_val_loss=state["best_val_loss"],
                       stopped_early=state["stopped_early"])
