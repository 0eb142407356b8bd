"""The benchmarks' FLOP counter (benchmarks/common.py): every speed figure in benchmarks/README.md is
counted FLOPs ÷ time, so the count is checked against closed forms, gradients included."""

import sys
from pathlib import Path

import keras
import numpy as np
import pytest
import tensorflow as tf

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "benchmarks"))
from common import graph_matmul_flops  # noqa: E402


def gradient_graph(layer, x):
    """The concrete function of (loss, gradients w.r.t. the layer's weights and its input), as a train
    step's graph holds them."""
    layer(x)                                                        # build the weights

    @tf.function
    def loss_and_gradients(x):
        with tf.GradientTape() as tape:
            tape.watch(x)
            loss = tf.reduce_sum(layer(x))
        return loss, tape.gradient(loss, [x, *layer.trainable_variables])

    return loss_and_gradients.get_concrete_function(x)


def test_matmul_flops_forward_and_backward():
    x = tf.constant(np.ones((100, 784), "float32"))
    flops, unknown = graph_matmul_flops(gradient_graph(keras.layers.Dense(300), x))
    forward = 2 * 100 * 784 * 300
    assert unknown == 0
    assert flops == 3 * forward                                     # y = xW; dL/dx = dy Wᵀ; dL/dW = xᵀ dy


@pytest.mark.parametrize("strides", [1, 2])
def test_conv_flops_forward_and_backward(strides):
    x = tf.constant(np.ones((8, 28, 28, 32), "float32"))
    layer = keras.layers.Conv2D(64, 3, strides=strides, padding="same")
    flops, unknown = graph_matmul_flops(gradient_graph(layer, x))
    out = 28 // strides
    forward = 2 * 8 * out * out * 3 * 3 * 32 * 64                   # one multiply-add per kernel tap per output
    assert unknown == 0                                             # the kernel's gradient is counted too
    assert flops == 3 * forward                                     # forward, input gradient, kernel gradient
