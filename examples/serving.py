# %% [markdown]
# # Serving the SavedModel
#
# What `vampkeras train --export` writes is a TensorFlow SavedModel that needs neither vampkeras nor your
# code: this script trains a small model into TF Serving's layout (`--versioned`), then uses it as a server
# would: its signatures, the default one, a request body for TF Serving's REST API, and Keras' `TFSMLayer`.
#
#     python examples/serving.py                          # trains a model into serving/mnist/<N>/ first
#     python examples/serving.py --model serving/mnist    # an existing SavedModel or base path
#
# `jupytext --to notebook examples/serving.py` makes it a notebook. With `VAMPKERAS_EXAMPLE_BUDGET=tiny` (the
# test suite's setting) the model trains for 1 epoch on 200 images.

# %%
import argparse
import json
import os
import sys
from pathlib import Path

import numpy as np

TINY = os.environ.get("VAMPKERAS_EXAMPLE_BUDGET") == "tiny"

parser = argparse.ArgumentParser(description="Serving a vampkeras SavedModel.")
parser.add_argument("--model", help="a SavedModel, or a TF Serving base path of numbered versions "
                                    "[default: train one into serving/mnist]")
args = parser.parse_args([] if "ipykernel" in sys.modules else None)

# %% [markdown]
# ## A model in TF Serving's layout
#
# `export_versioned=True` (the command line's `--versioned`) treats the export folder as a model base path
# and writes the next free version, `serving/mnist/1/`, then `2/`, ...: nothing is ever replaced. Without
# `--model`, train a VampPrior VAE on the embedded `mnist5k` digits.

# %%
if args.model:
    base = Path(args.model)
else:
    from vampkeras.config import RunConfig
    from vampkeras.training import train

    epochs, components, max_examples = (1, 10, 200) if TINY else (30, 500, None)
    result = train(RunConfig(dataset="mnist5k", epochs=epochs, warmup=min(10, epochs), num_components=components,
                             max_examples=max_examples, run_dir="runs/serving-example",
                             export_dir="serving/mnist", export_versioned=True), verbose=0)
    base = Path("serving/mnist")
    print(f"exported {result.export_dir}")

# TF Serving serves the highest version of a base path, and so do vampkeras' commands (this is their rule)
from vampkeras.export import resolve_saved_model

saved_model = resolve_saved_model(base)
if saved_model is None:
    sys.exit(f"{base} holds no SavedModel")
print(f"serving {saved_model}")

# %% [markdown]
# ## Its signatures
#
# Loaded with TensorFlow alone. `serving_default` is what TF Serving, `saved_model_cli` and `TFSMLayer`
# call; the other functions sample, score with any S, encode and reconstruct.

# %%
import tensorflow as tf

loaded = tf.saved_model.load(str(saved_model))
print("signatures:", sorted(loaded.signatures.keys()))
default = loaded.signatures["serving_default"]
print("serving_default takes", default.structured_input_signature[1])
print("and returns", {name: spec.shape for name, spec in default.structured_outputs.items()})

# %% [markdown]
# ## The default signature
#
# `serving_default(x)` takes float32 images (N, H, W) in [0, 1] (0/1 for a Bernoulli model, as here) and
# returns the importance-sampled log-likelihood with S = 1000 and a fixed seed, and the ELBO: the same
# numbers as `log_prob(x, 1000)` and `elbo(x)`.

# %%
from vampkeras.data import load_dataset

test = load_dataset("mnist5k", max_examples=8).test.reshape(-1, 28, 28)     # binarized once: 0/1
served = default(x=tf.constant(test))
log_likelihood = served["log_likelihood"].numpy()
print("log-likelihood per image (nats):", np.round(log_likelihood, 2))
direct = loaded.log_prob(x=tf.constant(test), num_samples=1000)["log_likelihood"].numpy()
print("the same as log_prob(x, 1000):", bool(np.allclose(log_likelihood, direct)))

# %% [markdown]
# ## A request to TF Serving
#
# TF Serving (its Docker image `tensorflow/serving`, with the base path mounted as `/models/mnist` and
# `MODEL_NAME=mnist`) answers `POST /v1/models/mnist:predict`. The body names the signature and gives one
# image per instance, the input `x`. (TF Serving itself is not part of vampkeras; this writes the body.)

# %%
request = {"signature_name": "serving_default", "instances": test[:2].tolist()}
Path("request.json").write_text(json.dumps(request))
print(f"request.json: {len(request['instances'])} instances of shape {np.shape(request['instances'][0])}")
print("curl -d @request.json http://localhost:8501/v1/models/mnist:predict")

# %% [markdown]
# ## In Keras
#
# `keras.layers.TFSMLayer` wraps the default signature as a layer of a Keras model.

# %%
import keras

layer = keras.layers.TFSMLayer(str(saved_model), call_endpoint="serving_default")
outputs = layer(test)
print("TFSMLayer:", {name: tuple(value.shape) for name, value in outputs.items()},
      "same numbers:", bool(np.allclose(np.asarray(outputs["log_likelihood"]), log_likelihood)))

# %% [markdown]
# ## Samples, without vampkeras
#
# The SavedModel draws images from the prior too (`vampkeras sample` writes them as a PNG grid).

# %%
images = loaded.sample(num_samples=16, seed=0)["images"].numpy()
print("16 samples:", images.shape, f"values in [{images.min():.2f}, {images.max():.2f}]")
