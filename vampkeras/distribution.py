"""tf.distribute strategies for training: one device (``default``) or ``mirrored`` over local devices."""

from __future__ import annotations

import logging

import tensorflow as tf

from vampkeras.config import STRATEGIES
from vampkeras.errors import ConfigError

logger = logging.getLogger(__name__)

# Stateless random numbers with an explicit algorithm, so that graph-mode draws do not depend on the device.
# (XLA's compiled generator still draws another stream from the same seed: an XLA-compiled run and a
# graph-mode run are equal in distribution, not number for number.)
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
    GPUs, or over ``replicas`` logical CPU devices when there is no GPU (or ``replicas`` is given)."""
    if name not in STRATEGIES:
        raise ConfigError(f"unknown strategy {name!r}; choose one of: {', '.join(STRATEGIES)}")
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
