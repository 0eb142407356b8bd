"""The tf.data training and evaluation pipelines: epochs are permutations, binarization is a seeded
Bernoulli draw of the grey values, a resumed stream equals an uninterrupted one, no autotuning."""

import numpy as np
import pytest

from vampkeras.data.pipeline import evaluation_batches, training_batches


@pytest.fixture(scope="module")
def grey_images():
    rng = np.random.default_rng(0)
    images = rng.uniform(size=(25, 6)).astype("float32")
    images[:, 0] = np.arange(25) / 100.0 + 0.005          # column 0 identifies the image
    return images


def take(dataset, count):
    return [batch.numpy() for batch in dataset.take(count)]


def test_each_epoch_is_a_permutation_with_a_smaller_last_batch(grey_images):
    dataset, steps = training_batches(grey_images, batch_size=10, seed=3, binarize=False)
    assert steps == 3
    batches = take(dataset, 2 * steps)
    assert [len(b) for b in batches] == [10, 10, 5, 10, 10, 5]
    for epoch in range(2):
        seen = np.concatenate(batches[epoch * steps:(epoch + 1) * steps])
        np.testing.assert_array_equal(np.sort(seen[:, 0]), np.sort(grey_images[:, 0]))
    first, second = (np.concatenate(batches[e * steps:(e + 1) * steps])[:, 0] for e in range(2))
    assert not np.array_equal(first, second)                                  # reshuffled each epoch


def test_binarization_is_bernoulli_of_the_grey_values():
    images = np.tile(np.array([[0.0, 0.2, 0.5, 0.9, 1.0]], "float32"), (400, 1))
    dataset, steps = training_batches(images, batch_size=100, seed=0, binarize=True)
    draws = np.concatenate(take(dataset, 5 * steps))                          # 2000 draws per pixel
    assert set(np.unique(draws)) <= {0.0, 1.0}
    means = draws.mean(axis=0)
    assert means[0] == 0.0 and means[4] == 1.0
    np.testing.assert_allclose(means[1:4], [0.2, 0.5, 0.9], atol=4 * np.sqrt(0.25 / 2000))


def test_a_resumed_stream_equals_the_uninterrupted_one(grey_images):
    uninterrupted, steps = training_batches(grey_images, batch_size=10, seed=7, binarize=True)
    resumed, _ = training_batches(grey_images, batch_size=10, seed=7, first_epoch=2, binarize=True)
    expected = take(uninterrupted, 4 * steps)[2 * steps:]
    for got, want in zip(take(resumed, 2 * steps), expected):
        np.testing.assert_array_equal(got, want)
    other_seed, _ = training_batches(grey_images, batch_size=10, seed=8, binarize=True)
    assert not all(np.array_equal(a, b) for a, b in zip(take(other_seed, steps), take(uninterrupted, steps)))


def test_evaluation_batches_keep_the_order(grey_images):
    batches = take(evaluation_batches(grey_images, batch_size=10), 10)
    np.testing.assert_array_equal(np.concatenate(batches), grey_images)


def test_pipelines_do_not_autotune(grey_images):
    # with tf.data's autotuner on, deleting an iterator waited for the autotuner's next wake-up (up to
    # half the epoch's time: benchmarks/README.md); both pipelines run with fixed parallelism instead
    training, _ = training_batches(grey_images, batch_size=10, seed=0)
    for dataset in (training, evaluation_batches(grey_images, batch_size=10)):
        assert dataset.options().autotune.enabled is False
