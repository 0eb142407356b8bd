"""Train-step speed at the paper's sizes, as a fraction of a dense matmul's FLOP/s measured in the same run.

    python benchmarks/train_step.py [--jit] [--batch-size 100] [--components 500]

For VAE and HVAE with the standard prior and the VampPrior: the compiled train step (forward, backward
and the Adam-normgrad update) on a fixed binary batch; its matmul FLOPs are counted from the step's
graph. Prints one JSON line.
"""

from __future__ import annotations

import argparse
import dataclasses

import numpy as np

from common import graph_matmul_flops, matmul_flops_per_second, report, timed

import tensorflow as tf  # noqa: E402  (after common sets the environment)

from vampkeras import optimizers  # noqa: E402
from vampkeras.config import RunConfig  # noqa: E402
from vampkeras.models import build_model  # noqa: E402


@dataclasses.dataclass
class MnistSpec:
    image_shape: tuple = (28, 28)
    num_pixels: int = 784
    likelihood: str = "bernoulli"


def step_seconds_and_flops(model_name: str, prior: str, batch_size: int, components: int, jit: bool):
    config = RunConfig(model=model_name, prior=prior, num_components=components, pseudo_init_mean=0.05,
                       pseudo_init_std=0.01, jit=jit)
    model = build_model(config, MnistSpec())
    model.compile(optimizer=optimizers.build("adam-normgrad", 5e-4), jit_compile=jit)
    model.optimizer.build(model.trainable_variables)
    x = tf.constant((np.random.default_rng(0).uniform(size=(batch_size, 784)) < 0.13).astype("float32"))
    step = tf.function(model.train_step, jit_compile=jit)
    flops, unknown = graph_matmul_flops(tf.function(model.train_step).get_concrete_function(x))
    return timed(step, x, repeats=30), flops, unknown


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--jit", action="store_true", help="XLA-compile the step")
    parser.add_argument("--batch-size", type=int, default=100)
    parser.add_argument("--components", type=int, default=500)
    args = parser.parse_args()
    reference = matmul_flops_per_second()
    results = {}
    for model_name in ("vae", "hvae"):
        for prior in ("standard", "vampprior"):
            seconds, flops, unknown = step_seconds_and_flops(model_name, prior, args.batch_size, args.components,
                                                             args.jit)
            results[f"{model_name}/{prior}"] = {"step_ms": round(seconds * 1e3, 3), "gflop": round(flops / 1e9, 4),
                                                "fraction_of_matmul": round(flops / seconds / reference, 3),
                                                "ops_without_static_shape": unknown}
        results[f"{model_name}/vampprior_over_standard_time"] = round(
            results[f"{model_name}/vampprior"]["step_ms"] / results[f"{model_name}/standard"]["step_ms"], 2)
    report({"benchmark": "train_step", "jit": args.jit, "batch_size": args.batch_size,
            "components": args.components, "matmul_gflops": round(reference / 1e9, 1), **results})


if __name__ == "__main__":
    main()
