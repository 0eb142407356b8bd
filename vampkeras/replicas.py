"""Training on replicas: the tf.distribute strategies (one device (``default``), ``mirrored`` over local devices,
or ``multiworker`` over the cluster of :mod:`vampkeras.cluster`), what they need around Keras (data sharding,
rank-one step outputs), and each replica's slice of the batch's noise.

(Named for what it holds: "distribution" in vampkeras means a probability distribution.)"""

from __future__ import annotations

import logging

import tensorflow as tf

from vampkeras.config import STRATEGIES
from vampkeras.errors import ConfigError

logger = logging.getLogger(__name__)

# Stateless random numbers with an explicit algorithm, so that graph-mode draws do not depend on the device.
# (XLA's compiled generator would draw another stream from the same seed, so the models draw their noise in
# graph mode and XLA-compile only what follows: see vampkeras.models.base.)
RNG_ALGORITHM = "philox"

def split_cpu(replicas: int) -> None:
    """Make the CPU appear as ``replicas`` logical devices (for ``mirrored`` on machines without GPUs).
    Must run before TensorFlow initialises its devices."""
    cpus = tf.config.list_physical_devices("CPU")
    wanted = [tf.config.LogicalDeviceConfiguration()] * replicas
    if tf.config.get_logical_device_configuration(cpus[0]) == wanted:
        return
    try:
        tf.config.set_logical_device_configuration(cpus[0], wanted)
    except RuntimeError:
        raise ConfigError("--replicas must be set before TensorFlow has started; run it in a fresh process "
                          "(the `vampkeras train` command does)") from None


def make_strategy(name: str, replicas: int | None = None) -> tf.distribute.Strategy:
    """``default``: TensorFlow's default (one device). ``mirrored``: MirroredStrategy over all visible
    GPUs, or over ``replicas`` logical CPU devices when there is no GPU (or ``replicas`` is given).
    ``multiworker``: MultiWorkerMirroredStrategy over the cluster in ``TF_CONFIG`` (each worker's GPUs,
    or its CPU); it must be created before TensorFlow runs anything else in the process."""
    if name not in STRATEGIES:
        raise ConfigError(f"unknown strategy {name!r}; choose one of: {', '.join(STRATEGIES)}")
    if name == "multiworker":
        if replicas is not None:
            raise ConfigError("--replicas applies to --strategy mirrored only")
        from vampkeras.cluster import read_tf_config
        task = read_tf_config()
        logger.info("multiworker: %s of %d workers", task.name, task.num_workers)
        # No collective timeout (CommunicationOptions): a dead peer already aborts the collectives through the
        # coordination service's heartbeats, and a timeout would also end long chief-only work (figures).
        try:
            return tf.distribute.MultiWorkerMirroredStrategy()
        except RuntimeError as error:          # "Collective ops must be configured at program startup"
            raise ConfigError(f"--strategy multiworker must start before TensorFlow runs anything ({error}); "
                              "run it in a fresh process (the `vampkeras train` command does)") from None
    if replicas is not None:
        if replicas < 1:
            raise ConfigError("--replicas must be at least 1")
        split_cpu(replicas)
    if name == "default":
        return tf.distribute.get_strategy()
    gpus = tf.config.list_logical_devices("GPU")
    if gpus and replicas is None:
        return tf.distribute.MirroredStrategy([d.name for d in gpus])
    cpus = [d.name for d in tf.config.list_logical_devices("CPU")]
    logger.info("mirrored over %s", cpus)
    return tf.distribute.MirroredStrategy(cpus, cross_device_ops=tf.distribute.ReductionToOneDevice())


def replica_slice_normal(shape, seed, batch_axis: int = 1):
    """Standard normal noise of ``shape`` for this replica's slice of the global batch: every replica draws
    the global batch's noise from ``seed`` and keeps its own rows, so a mirrored run draws exactly the
    numbers a single-device run would."""
    context = tf.distribute.get_replica_context()
    replicas = context.num_replicas_in_sync if context is not None else 1
    if replicas == 1:
        return tf.random.stateless_normal(shape, seed=seed, alg=RNG_ALGORITHM)
    shape = tf.convert_to_tensor(shape)
    local = shape[batch_axis]
    global_shape = tf.tensor_scatter_nd_update(shape, [[batch_axis]], [local * replicas])
    noise = tf.random.stateless_normal(global_shape, seed=seed, alg=RNG_ALGORITHM)
    start = tf.cast(context.replica_id_in_sync_group, local.dtype) * local
    return tf.gather(noise, tf.range(start, start + local), axis=batch_axis)


# -- a multiworker run around Keras ---------------------------------------------------------------------
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
