"""Observation models p(x | z): build a ``tfd.Distribution`` over flattened images from decoder outputs."""

from __future__ import annotations

import tensorflow as tf
import tensorflow_probability as tfp

tfd = tfp.distributions

LIKELIHOODS = ("bernoulli",)


def bernoulli(logits) -> tfd.Distribution:
    """Independent Bernoulli pixels: logits (..., D) → distribution with event shape (D,).

    ``log_prob(x)`` accepts x in [0, 1] (binary data, or grey values as soft targets) and returns (...).
    ``mean()`` is sigmoid(logits), the image shown for binary data.
    """
    return tfd.Independent(tfd.Bernoulli(logits=logits, dtype=tf.float32), reinterpreted_batch_ndims=1)


def output_units(likelihood: str, num_pixels: int) -> int:
    """Number of decoder outputs per example the likelihood needs."""
    if likelihood == "bernoulli":
        return num_pixels
    raise ValueError(f"unknown likelihood {likelihood!r}")


def build(likelihood: str, outputs) -> tfd.Distribution:
    """The distribution for decoder ``outputs`` (..., output_units)."""
    if likelihood == "bernoulli":
        return bernoulli(outputs)
    raise ValueError(f"unknown likelihood {likelihood!r}")
