"""tf.data input pipelines built from in-memory image arrays."""

from __future__ import annotations

import math

import numpy as np
import tensorflow as tf

__all__ = ["training_batches", "evaluation_batches"]

# Fixed parallelism instead of tf.data's AUTOTUNE: with autotuning on, deleting an iterator waits for the
# autotuner's next wake-up (its interval doubles from the iterator's creation), which doubled the time of a
# short epoch in about half the runs of benchmarks/epoch.py (numbers in benchmarks/README.md). The per-batch
# work is a gather and a uniform draw, which two threads and two batches ahead keep well ahead of the step.
PARALLEL_CALLS = 2
PREFETCH_BATCHES = 2


def _fixed_options(dataset: tf.data.Dataset) -> tf.data.Dataset:
    options = tf.data.Options()
    options.autotune.enabled = False
    return dataset.with_options(options)


def training_batches(images: np.ndarray, batch_size: int, seed: int, first_epoch: int = 0,
                     binarize: bool = True) -> tuple[tf.data.Dataset, int]:
    """An endless stream of training batches (B, D) float32, starting at epoch ``first_epoch``.

    The images are held once in memory. Epoch e's order and, for dynamically binarized data
    (``binarize``: x ~ Bernoulli(grey value), redrawn every batch), its binarization are pure functions of
    (``seed``, e), so a resumed run sees exactly the batches an uninterrupted one would.
    Returns the dataset and the number of steps per epoch (the last batch of an epoch may be smaller).
    """
    count = len(images)
    steps = math.ceil(count / batch_size)
    store = tf.Variable(np.asarray(images, dtype=np.float32), trainable=False, name="training_images")

    def one_epoch(epoch):
        epoch_seed = tf.stack([tf.constant(seed, tf.int64), epoch])
        order = tf.random.experimental.stateless_shuffle(tf.range(count, dtype=tf.int64), seed=epoch_seed)
        batches = tf.data.Dataset.from_tensor_slices(order).batch(batch_size).enumerate()

        def gather(step, indices):
            x = tf.gather(store, indices)
            if binarize:
                batch_seed = tf.random.experimental.stateless_fold_in(epoch_seed, step)
                x = tf.cast(tf.random.stateless_uniform(tf.shape(x), seed=batch_seed, alg="philox") < x, tf.float32)
            return x

        return batches.map(gather, num_parallel_calls=PARALLEL_CALLS, deterministic=True)

    dataset = tf.data.Dataset.range(first_epoch, first_epoch + 1_000_000).flat_map(one_epoch)
    return _fixed_options(dataset.prefetch(PREFETCH_BATCHES)), steps


def evaluation_batches(images: np.ndarray, batch_size: int) -> tf.data.Dataset:
    """Fixed images (already binarized where needed) in order, (B, D) float32."""
    dataset = tf.data.Dataset.from_tensor_slices(np.asarray(images, dtype=np.float32)).batch(batch_size)
    return _fixed_options(dataset.prefetch(PREFETCH_BATCHES))
