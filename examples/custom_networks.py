# %% [markdown]
# # The VampPrior with your own networks
#
# A small convolutional encoder and decoder in plain Keras, trained by vampkeras (its train step, KL warm-up,
# early stopping, checkpoints, resume), scored with the paper's importance-sampled log-likelihood and active
# units, and exported as a SavedModel that needs no vampkeras and not this code.
#
#     python examples/custom_networks.py                      # mnist5k, 10 epochs, a few minutes on 2 cores
#     python examples/custom_networks.py --dataset path/to/pngs --epochs 50
#
# What vampkeras asks of the networks (see `vampkeras.models.VAE`):
#
# * the encoder takes images (N, H, W, C) and returns (mean, log_var), each (N, latent_dim), or one
#   (N, 2·latent_dim) tensor;
# * the decoder takes z (N, latent_dim) and returns the likelihood's parameters, here image-shaped
#   (N, H, W, K·C): K = 1 (Bernoulli logits) for binary images, 2 (means, then log-scales) for the
#   discretized logistic of grey or colour ones.
#
# `jupytext --to notebook examples/custom_networks.py` makes it a notebook. With
# `VAMPKERAS_EXAMPLE_BUDGET=tiny` (the test suite's setting) the defaults shrink to 2 epochs on 300 images.

# %%
from __future__ import annotations

import argparse
import json
import os
import sys

import keras

from vampkeras.config import RunConfig
from vampkeras.evaluation import evaluate
from vampkeras.likelihoods import outputs_per_value
from vampkeras.shapes import with_channels
from vampkeras.training import train

TINY = os.environ.get("VAMPKERAS_EXAMPLE_BUDGET") == "tiny"

# %% [markdown]
# ## The networks
#
# A factory `networks(spec, config)` returns a fresh (encoder, decoder) pair for the data's `spec` (its image
# shape and likelihood) and the run's `config` (its latent size). Name the layers: checkpoints match weights
# by their Keras paths, which Keras otherwise numbers per process.


# %%
def conv_networks(spec, config):
    """A conv encoder and a transposed-conv decoder for images of ``spec.image_shape`` (height and width
    divisible by 4), with ``config.latent_dim`` latent units."""
    height, width, channels = with_channels(spec.image_shape)
    encoder = keras.Sequential([
        keras.layers.Conv2D(32, 3, strides=2, padding="same", activation="relu", name="conv_1"),
        keras.layers.Conv2D(64, 3, strides=2, padding="same", activation="relu", name="conv_2"),
        keras.layers.Flatten(name="flatten"),
        keras.layers.Dense(2 * config.latent_dim, name="mean_and_log_var"),
    ], name="conv_encoder")
    decoder = keras.Sequential([
        keras.layers.Dense((height // 4) * (width // 4) * 64, activation="relu", name="dense"),
        keras.layers.Reshape((height // 4, width // 4, 64), name="reshape"),
        keras.layers.Conv2DTranspose(32, 3, strides=2, padding="same", activation="relu", name="deconv_1"),
        keras.layers.Conv2DTranspose(outputs_per_value(spec.likelihood) * channels, 3, strides=2, padding="same",
                                     name="parameters"),
    ], name="conv_decoder")
    return encoder, decoder


# %% [markdown]
# ## Training, scoring, exporting
#
# `train(config, networks=...)` gives your networks everything vampkeras gives its own: the run records the
# factory's name, and resuming the run (or loading the run folder) needs the same factory again. The
# SavedModel holds the networks: it is scored without them (`vampkeras evaluate OUT-model` does the same).


# %%
def main(argv=None) -> dict:
    parser = argparse.ArgumentParser(description="The VampPrior with your own Keras encoder and decoder.")
    parser.add_argument("--dataset", default="mnist5k", help="a named dataset or your own images (as for train)")
    parser.add_argument("--epochs", type=int, default=2 if TINY else 10)
    parser.add_argument("--components", type=int, default=10 if TINY else 100, help="pseudo-inputs K")
    parser.add_argument("--max-examples", type=int, default=300 if TINY else None)
    parser.add_argument("--samples", type=int, default=16 if TINY else 1000, help="importance samples per test image")
    parser.add_argument("--out", default="runs/custom-networks", help="run folder (the SavedModel goes to OUT-model)")
    args = parser.parse_args(argv)

    config = RunConfig(dataset=args.dataset, model="vae", prior="vampprior", num_components=args.components,
                       latent_dim=16, epochs=args.epochs, warmup=max(1, args.epochs // 2), patience=10,
                       max_examples=args.max_examples, run_dir=args.out, export_dir=args.out + "-model")
    result = train(config, networks=conv_networks, verbose=0)
    summary, _ = evaluate(result.export_dir, num_samples=args.samples, max_examples=args.max_examples)
    report = {"run": str(result.run_dir), "saved_model": str(result.export_dir), "epochs": result.epochs_trained,
              "best_val_loss": result.best_val_loss, "test_log_likelihood": summary["log_likelihood"],
              "active_units": summary["active_units"]["z1"]}
    print(json.dumps(report, indent=2))
    return report


# %%
if __name__ == "__main__":
    # (in a notebook the kernel's own arguments are not ours: the defaults)
    main([] if "ipykernel" in sys.modules else None)
