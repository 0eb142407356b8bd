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


def test_conv_cost_turns_step_times_into_epoch_and_cell_hours(tmp_path, monkeypatch):
    """benchmarks/conv_cost.py's arithmetic, against the hand count for Frey Faces' split sizes: 16 training
    batches (1565 images, the last one partial) and 2 validation batches per epoch, 200 test images."""
    import conv_cost

    times = {"train_step_s": 0.5, "validation_step_s": 0.2, "score_image_s": 4.5}
    result = conv_cost.estimate((1565, 200, 200), times, hvae_epochs=1000)
    epoch = 16 * 0.5 + 2 * 0.2                                         # 8.4 s
    assert result["epoch_s"] == pytest.approx(epoch)
    assert result["score_test_set_h"] == pytest.approx(200 * 4.5 / 3600, abs=0.005)          # 0.25 h
    assert result["cell_h_at_2000_epochs"] == pytest.approx(2000 * epoch / 3600 + 0.25, abs=0.05)
    assert result["cell_h_at_hvae_epochs"] == pytest.approx(1000 * epoch / 3600 + 0.25, abs=0.05)
    assert conv_cost.estimate((1565, 200, 200), times, hvae_epochs=None)["cell_h_at_hvae_epochs"] is None

    # the HVAE's epochs come from the records: the longer of the seed-14 runs, in either folder layout
    for folder, epochs in (("freyfaces/hvae-vampprior-lr1e-4-seed14", 7),
                           ("freyfaces/hvae-vampprior-lr5e-4-seed14", 3), ("static_mnist-hvae-vampprior", 5)):
        (tmp_path / folder).mkdir(parents=True)
        rows = "".join(f"{epoch},1\n" for epoch in range(1, epochs + 1))
        (tmp_path / folder / "history.csv").write_text("epoch,val_loss\n" + rows)
    monkeypatch.setattr(conv_cost, "RESULTS", tmp_path)
    assert conv_cost.recorded_hvae_epochs("freyfaces", "vampprior") == 7
    assert conv_cost.recorded_hvae_epochs("static_mnist", "vampprior") == 5
    assert conv_cost.recorded_hvae_epochs("caltech101", "vampprior") is None
