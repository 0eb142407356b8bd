"""PixelHVAE sampling speed, as a fraction of a dense matmul's FLOP/s and against whole-image passes.

    python benchmarks/sampling.py [--samples 16] [--rounds 3]

PixelHVAE draws an image one pixel at a time (784 steps at 28x28, paper §5.1). Each step runs the masked
stack on the window of pixels the new one depends on (``PixelCNNDecoder.pixel_outputs``); the plain
algorithm runs it on the whole image at every step. In the same process this times the compiled decode of
``--samples`` images (graph mode and XLA, what the SavedModel's ``sample`` and the figures run), one
whole-image pass of the masked stack, and the matmul reference, in alternating rounds (the fastest round of
each counts). Conv FLOPs are counted from the graphs. Prints one JSON line with:

* ``<mode>_fraction_of_matmul``: the decode's FLOP/s (784 windows) ÷ the matmul's;
* ``whole_pass_fraction_of_matmul``: the same for one whole-image pass;
* ``<mode>_speedup_over_whole_image_passes``: 784 whole-image passes' time ÷ the decode's time;
* ``flops_whole_over_windows``: how much less arithmetic the windows do.
"""

from __future__ import annotations

import argparse

import numpy as np

from common import Reference, graph_matmul_flops, report, timed

import tensorflow as tf  # noqa: E402  (after common sets the environment)

from vampkeras.config import RunConfig  # noqa: E402
from vampkeras.data import DATASETS  # noqa: E402
from vampkeras.models import build_model  # noqa: E402


MNIST = DATASETS["static_mnist"]           # 28x28 binary images, Bernoulli likelihood


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--samples", type=int, default=16, help="images per decode (the run figures draw 16)")
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    model = build_model(RunConfig(model="pixelhvae", prior="standard"), MNIST)
    decoder, count = model.p_x, args.samples
    z = tf.random.stateless_normal([count, model.latent_dim], seed=[1, 2])
    x = tf.cast(tf.random.stateless_uniform([count, 784], seed=[3, 4]) < 0.13, tf.float32)
    decodes = {mode: tf.function(lambda z: model.decode(z, z, 0), jit_compile=mode == "xla")
               for mode in ("graph", "xla")}
    whole_pass = tf.function(lambda z, x: decoder(z, z, x))
    window = tf.function(decoder.pixel_outputs)
    padded_pixels = decoder.pad_for_pixels(tf.reshape(x, [count, 28, 28, 1]))
    padded_latents = decoder.pad_for_pixels(decoder.latent_channels(z, z))
    window_flops, _ = graph_matmul_flops(window.get_concrete_function(padded_pixels, padded_latents,
                                                                      tf.constant(0), tf.constant(0)))
    whole_flops, _ = graph_matmul_flops(whole_pass.get_concrete_function(z, x))
    decode_flops = 784 * window_flops

    reference = Reference()
    seconds = {name: [] for name in (*decodes, "whole_pass")}
    same = np.abs(decodes["graph"](z).numpy() - decodes["xla"](z).numpy()).max()      # also traces both
    for _ in range(args.rounds):                       # alternate, so all see the same machine load
        reference.measure()
        for mode, decode in decodes.items():
            seconds[mode].append(timed(decode, z, repeats=1, warmup=0))
        seconds["whole_pass"].append(timed(whole_pass, z, x, repeats=10))
    best = {name: min(values) for name, values in seconds.items()}
    report({
        "benchmark": "sampling", "model": "pixelhvae", "image_shape": [28, 28], "samples": count,
        "window_gflop_per_pixel": round(window_flops / 1e9, 4), "whole_pass_gflop": round(whole_flops / 1e9, 4),
        "flops_whole_over_windows": round(784 * whole_flops / decode_flops, 2),
        **{f"{mode}_fraction_of_matmul": round(decode_flops / best[mode] / reference.best, 3) for mode in decodes},
        "whole_pass_fraction_of_matmul": round(whole_flops / best["whole_pass"] / reference.best, 3),
        **{f"{mode}_speedup_over_whole_image_passes": round(784 * best["whole_pass"] / best[mode], 2)
           for mode in decodes},
        **{f"{name}_seconds": round(value, 3) for name, value in best.items()},
        "max_mean_difference_graph_xla": float(same),
        **reference.summary()})


if __name__ == "__main__":
    main()
