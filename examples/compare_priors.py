# %% [markdown]
# # Does the VampPrior help, and how sure is that?
#
# `vampkeras.compare` trains and scores every (model, prior, seed) cell of a grid on one dataset, scores every
# cell on the same test images, and compares the priors paired per image and per seed: the mean difference of
# log-likelihoods with a 95% interval, and one sentence to quote. This script compares the standard prior
# with the VampPrior for the VAE on `mnist5k` (or your own images), then redoes one interval by hand from the
# per-image numbers each cell keeps.
#
#     python examples/compare_priors.py                          # 2 priors x 3 seeds, 30 epochs each
#     python examples/compare_priors.py --dataset path/to/pngs   # your own images
#
# The command line does the same: `vampkeras compare --dataset mnist5k --model vae --prior standard,vampprior
# --seeds 3 --out comparisons/mnist5k`. `jupytext --to notebook examples/compare_priors.py` makes it a
# notebook. With `VAMPKERAS_EXAMPLE_BUDGET=tiny` (the test suite's setting) each cell trains 1 epoch on 100
# images with one seed: the intervals then cover the test images only, and the numbers mean nothing.

# %%
import argparse
import json
import os
import sys
from pathlib import Path

import numpy as np

import vampkeras

TINY = os.environ.get("VAMPKERAS_EXAMPLE_BUDGET") == "tiny"

parser = argparse.ArgumentParser(description="The standard prior against the VampPrior, paired per image.")
parser.add_argument("--dataset", default="mnist5k", help="a named dataset or your own images (as for train)")
parser.add_argument("--out", default="comparisons/example", help="the comparison folder")
args = parser.parse_args([] if "ipykernel" in sys.modules else None)

if TINY:
    SEEDS, SAMPLES, MAX_EXAMPLES = [0], 5, 100
    TRAIN_OPTIONS = {"epochs": 1, "warmup": 1, "num_components": 10}
else:
    SEEDS, SAMPLES, MAX_EXAMPLES = 3, 1000, None
    TRAIN_OPTIONS = {"epochs": 30, "warmup": 10}

# %% [markdown]
# ## The comparison
#
# Each cell is an ordinary run folder `OUT/<model>-<prior>-lr<lr>-seed<seed>/`: calling this again continues
# where it stopped (finished cells are neither retrained nor re-scored), and a changed grid is refused.
# `train_options` takes any option of `vampkeras train` that says what a cell trains.

# %%
summary = vampkeras.compare(args.dataset, models=["vae"], priors=["standard", "vampprior"], seeds=SEEDS,
                            out=args.out, protocol="short", train_options=TRAIN_OPTIONS, samples=SAMPLES,
                            max_examples=MAX_EXAMPLES)
for pair in summary["pairs"]:
    print(pair["sentence"])

# %% [markdown]
# ## The tables
#
# `comparison.md` holds them as Markdown (to paste into a paper or an issue), `comparison.json` every number
# (what `compare` returned), `comparison.csv` one row per cell, `comparison.html` the report with its
# figures.

# %%
out = Path(args.out)
print((out / "comparison.md").read_text())
print("comparison.json holds", ", ".join(json.loads((out / "comparison.json").read_text())))

# %% [markdown]
# ## One interval by hand
#
# Every cell keeps its per-image test log-likelihoods (`comparison-per-image.npz`). For one seed s, the
# difference d_s = mean_i [LL_vampprior(x_i) − LL_standard(x_i)] over the same test images x_i, and its
# paired-t 95% interval over images, are a few lines of NumPy and SciPy; they agree with the report's.

# %%
from scipy import stats

(pair,) = summary["pairs"]
rows = {(row["prior"], row["seed"]): row["cell"] for row in summary["cells"]}
for seed_record in pair["per_seed"]:
    seed = seed_record["seed"]
    per_image = {}
    for prior in (pair["prior_a"], pair["prior_b"]):
        with np.load(out / rows[(prior, seed)] / "comparison-per-image.npz") as arrays:
            per_image[prior] = arrays["log_likelihood"]
    differences = per_image[pair["prior_a"]] - per_image[pair["prior_b"]]
    half_width = stats.t.ppf(0.975, len(differences) - 1) * differences.std(ddof=1) / np.sqrt(len(differences))
    print(f"seed {seed}: {pair['prior_a']} − {pair['prior_b']} = {differences.mean():.3f} nats per image, "
          f"95% CI [{differences.mean() - half_width:.3f}, {differences.mean() + half_width:.3f}] over "
          f"{len(differences)} images (the report: {seed_record['estimate']:.3f}, "
          f"[{seed_record['low']:.3f}, {seed_record['high']:.3f}])")
print(f"over seeds: {pair['interval']['estimate']:.3f}, 95% CI [{pair['interval']['low']:.3f}, "
      f"{pair['interval']['high']:.3f}]; {pair['covers']}")
