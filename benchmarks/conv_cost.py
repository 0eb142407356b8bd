"""What a convHVAE or PixelHVAE cell of Table 1 costs on this machine, per dataset (issue #32).

    python benchmarks/conv_cost.py [--datasets static_mnist dynamic_mnist omniglot caltech101 freyfaces]
                                   [--models convhvae pixelhvae] [--priors standard vampprior] [--steps 3]

For each model × prior and each distinct dataset shape (image size, likelihood, K: static MNIST, dynamic MNIST
and Caltech 101 share one; Omniglot has K = 1000; Frey Faces is 28x20 grey), measures in one process:
- a training step (batch 100, the paper's architecture, graph mode) and a validation step, as `vampkeras train`
  runs them, on images of the dataset's shape (the time does not depend on the pixel values);
- the importance-sampled log-likelihood of one test image with S = 5000 (paper §5.2), as `vampkeras evaluate`
  runs it;
and prints per dataset one JSON line: seconds per epoch (its training and validation sizes), hours to score
its test set, and the hours of a whole cell (epochs + scoring) at the paper's 2000-epoch bound and, where
docs/results/<dataset>/ holds our paper-protocol records of the HVAE with the same prior, at the epochs that
run took (the early stop a conv cell would likely meet earlier or later: an estimate, not a bound).
"""

from __future__ import annotations

import argparse
import csv
import math
import time
from pathlib import Path

import numpy as np

from common import report, timed, train_steps_per_call

import tensorflow as tf  # noqa: E402

from vampkeras import optimizers  # noqa: E402
from vampkeras.config import RunConfig  # noqa: E402
from vampkeras.data import DATASETS  # noqa: E402
from vampkeras.export import ExportModule  # noqa: E402
from vampkeras.models import build_model  # noqa: E402

BATCH = 100
SAMPLES = 5000
EPOCH_BOUND = 2000                  # the paper's §5.1 maximum
RESULTS = Path(__file__).resolve().parents[1] / "docs" / "results"


def shape_key(spec) -> tuple:
    """What decides a step's cost: image shape, likelihood and K."""
    return spec.image_shape, spec.likelihood, spec.num_components


def random_images(spec, count: int, seed: int) -> np.ndarray:
    """(count, pixels) float32 images of the dataset's kind: 0/1 for Bernoulli, bin centres for grey."""
    rng = np.random.default_rng(seed)
    pixels = int(np.prod(spec.image_shape))
    if spec.likelihood == "bernoulli":
        return (rng.uniform(size=(count, pixels)) < 0.2).astype(np.float32)
    return ((rng.integers(0, 256, size=(count, pixels)) + 0.5) / 256).astype(np.float32)


def measure(spec, model_name: str, prior: str, steps: int) -> dict:
    """Seconds of one training step, one validation step (batch 100) and one S = 5000 image."""
    config = RunConfig(dataset=spec.name, model=model_name, prior=prior).resolve(spec)
    train_images = random_images(spec, max(BATCH * steps, config.num_components), seed=0)
    model = build_model(config, spec, train_images=train_images)
    model.compile(optimizer=optimizers.build(config.optimizer, config.lr))
    model.optimizer.build(model.trainable_variables)
    model.train_jit = model.evaluation_jit = False          # graph mode: the comparison of modes is train_step.py's
    batches = tf.constant(train_images[: BATCH * steps].reshape(steps, BATCH, -1))
    train_seconds = timed(train_steps_per_call(model, steps), batches, repeats=2, warmup=1) / steps
    validation = tf.function(lambda x: model.test_step(x))
    validation_seconds = timed(validation, batches[0], repeats=3, warmup=1)
    module = ExportModule(model, config.to_json())          # the compiled scoring `evaluate` and the SavedModel run
    image = tf.constant(random_images(spec, 1, seed=1).reshape(1, *spec.image_shape))
    module.log_prob(image, tf.constant(SAMPLES // 10))["log_likelihood"].numpy()          # trace once
    start = time.perf_counter()
    module.log_prob(image, tf.constant(SAMPLES))["log_likelihood"].numpy()
    return {"train_step_s": round(train_seconds, 3), "validation_step_s": round(validation_seconds, 3),
            "score_image_s": round(time.perf_counter() - start, 2)}


def recorded_hvae_epochs(dataset: str, prior: str) -> int | None:
    """Epochs our paper-protocol HVAE with ``prior`` ran on ``dataset`` (the kept rate's run at seed 14, the
    longer one if both rates are there): None without records."""
    epochs = []
    histories = [*RESULTS.glob(f"{dataset}/hvae-{prior}-lr*-seed14/history.csv"),
                 *RESULTS.glob(f"{dataset}-hvae-{prior}/history.csv")]         # static MNIST's earlier layout
    for history in histories:
        with open(history, newline="") as stream:
            epochs.append(sum(1 for _ in csv.DictReader(stream)))
    return max(epochs) if epochs else None


def estimate(split_sizes: tuple[int, int, int], times: dict, hvae_epochs: int | None) -> dict:
    """Seconds per epoch (every training batch of 100 and every validation batch, the last ones partial but
    timed as whole), hours to score the test set, and hours of a cell (epochs + scoring) at the 2000-epoch
    bound and at ``hvae_epochs``; ``times`` as :func:`measure` returns them."""
    train_n, validation_n, test_n = split_sizes
    epoch = (math.ceil(train_n / BATCH) * times["train_step_s"]
             + math.ceil(validation_n / BATCH) * times["validation_step_s"])
    score_hours = test_n * times["score_image_s"] / 3600
    return {"epoch_s": round(epoch, 1), "score_test_set_h": round(score_hours, 2),
            "cell_h_at_2000_epochs": round(EPOCH_BOUND * epoch / 3600 + score_hours, 1),
            "hvae_epochs_seed14": hvae_epochs,
            "cell_h_at_hvae_epochs": round(hvae_epochs * epoch / 3600 + score_hours, 1) if hvae_epochs else None}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--datasets", nargs="+",
                        default=["static_mnist", "dynamic_mnist", "omniglot", "caltech101", "freyfaces"])
    parser.add_argument("--models", nargs="+", default=["convhvae", "pixelhvae"])
    parser.add_argument("--priors", nargs="+", default=["standard", "vampprior"])
    parser.add_argument("--steps", type=int, default=3)
    args = parser.parse_args()
    measured: dict[tuple, dict] = {}
    for model_name in args.models:
        for prior in args.priors:
            for name in args.datasets:
                spec = DATASETS[name]
                key = (model_name, prior, shape_key(spec))
                if key not in measured:
                    measured[key] = measure(spec, model_name, prior, args.steps)
                times = measured[key]
                report({"dataset": name, "model": model_name, "prior": prior, **times,
                        "image_shape": list(spec.image_shape), "K": spec.num_components,
                        **estimate(spec.split_sizes, times, recorded_hvae_epochs(name, prior)),
                        "threads": tf.config.threading.get_intra_op_parallelism_threads() or "all cores"})


if __name__ == "__main__":
    main()
