# %% [markdown]
# # A VampPrior on your own images
#
# A folder of PNG images becomes a trained VampPrior VAE, its test log-likelihood (in nats and bits per
# dimension), and novelty scores for new images: images unlike the training ones score lower.
#
#     python examples/own_data.py                        # a demo folder of 2000 grey digits: minutes on 2 cores
#     python examples/own_data.py --images path/to/pngs  # your own folder (one size, grey or RGB)
#
# `jupytext --to notebook examples/own_data.py` makes it a notebook. With `VAMPKERAS_EXAMPLE_BUDGET=tiny` in
# the environment (the test suite's setting) it trains 1 epoch on 200 images: it checks that the path works,
# not what it finds.

# %%
import argparse
import os
import sys
from pathlib import Path

import numpy as np
from PIL import Image

TINY = os.environ.get("VAMPKERAS_EXAMPLE_BUDGET") == "tiny"

parser = argparse.ArgumentParser(description="A VampPrior on your own images.")
parser.add_argument("--images", help="a folder of PNG/JPEG/BMP images [default: a demo folder of mnist5k digits]")
parser.add_argument("--out", default="runs/own-data", help="the run folder (the SavedModel goes to OUT-model)")
# (in a notebook the kernel's own arguments are not ours)
args = parser.parse_args([] if "ipykernel" in sys.modules else None)

EPOCHS, WARMUP, COMPONENTS = (1, 1, 10) if TINY else (50, 10, 100)
MAX_EXAMPLES = 200 if TINY else None      # images of each split used (None: all)
SAMPLES = 8 if TINY else 1000             # importance samples per test image

# %% [markdown]
# ## The images
#
# Any folder of images of one size works: grey (one channel) or colour (RGB). Subfolders `train/`,
# `validation/` and `test/` are the splits if you have them; otherwise vampkeras splits 80/10/10 with a
# fixed seed. Without `--images`, this writes 2000 grey digits from the embedded `mnist5k` data as PNGs
# (300 with the tiny budget).

# %%
if args.images:
    images_folder = Path(args.images)
else:
    from vampkeras.data import load_dataset

    images_folder = Path("own-data-demo")
    digits = load_dataset("mnist5k").train[:300 if TINY else 2000].reshape(-1, 28, 28)     # grey, in [0, 1]
    images_folder.mkdir(exist_ok=True)
    for index, digit in enumerate(digits):
        Image.fromarray(np.round(digit * 255).astype(np.uint8)).save(images_folder / f"digit-{index:04d}.png")
print(f"images: {images_folder} ({sum(1 for _ in images_folder.rglob('*.png'))} PNG files)")

# %% [markdown]
# ## Training
#
# The same as `vampkeras train --dataset FOLDER`. Grey images get the discretized logistic likelihood (256
# bins per value); images holding only black and white would get a Bernoulli one. The run folder records a
# sha256 of the data, so evaluating or resuming later refuses images that changed.

# %%
from vampkeras.config import RunConfig
from vampkeras.training import train

config = RunConfig(dataset=str(images_folder), model="vae", prior="vampprior", num_components=COMPONENTS,
                   epochs=EPOCHS, warmup=WARMUP, max_examples=MAX_EXAMPLES, run_dir=args.out,
                   export_dir=args.out + "-model")
result = train(config, verbose=0)
print(f"trained {result.epochs_trained} epochs, best validation loss {result.best_val_loss:.2f} "
      f"at epoch {result.best_epoch}")

# %% [markdown]
# ## The test log-likelihood
#
# The paper's importance-sampled estimate on the test split, in nats per image and, for grey or colour data,
# in bits per dimension (`vampkeras evaluate RUN` prints the same).

# %%
from vampkeras.evaluation import evaluate

summary, per_image = evaluate(result.export_dir, num_samples=SAMPLES, max_examples=MAX_EXAMPLES)
print(f"test log-likelihood {summary['log_likelihood']:.2f} nats per image "
      f"({summary['bits_per_dim']:.3f} bits/dim), ELBO {summary['elbo']:.2f}, "
      f"active units {summary['active_units']['z1']} of {config.latent_dim}")

# %% [markdown]
# ## Novelty scores
#
# The log-likelihood of a new image says how typical it is under the model. Here: the test images as they
# are, the same images upside down, and noise. (`vampkeras score MODEL FOLDER` writes such scores for a
# folder of PNGs as a CSV.)

# %%
from vampkeras.data import load_dataset
from vampkeras.trained_model import TrainedModel

model = TrainedModel.load(result.export_dir)
test = load_dataset(str(images_folder), max_examples=MAX_EXAMPLES).test
test = test.reshape((len(test),) + model.image_shape)[:100]
rng = np.random.default_rng(0)
candidates = {"test images": test, "upside down": test[:, ::-1].copy(),
              "noise": (rng.integers(0, 256, test.shape) + 0.5).astype(np.float32) / 256}
scores = {name: model.log_prob(images, SAMPLES) for name, images in candidates.items()}
for name, values in scores.items():
    print(f"{name:12s} mean log-likelihood {values.mean():10.2f} nats")
