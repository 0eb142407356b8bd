"""Train-step speed at the paper's sizes, as a fraction of a dense matmul's FLOP/s measured in the same run.

    python benchmarks/train_step.py [--batch-size 100] [--components 500] [--steps-per-call 10]

For VAE and HVAE with the standard prior and the VampPrior: the compiled train step (forward, backward
and the Adam-normgrad update) on a fixed binary batch, ``--steps-per-call`` steps per graph call as
``vampkeras train`` runs them (``--steps-per-call 1`` adds the Python dispatch of every step), with the
forward pass, backward pass and update in plain graph mode or XLA-compiled (the model's ``jit`` switch; the
noise is always drawn in graph mode), timed alternately in the same process; its matmul FLOPs (forward and backward; the update has none) are counted
from the graph. Prints one JSON line.
"""

from __future__ import annotations

import argparse
import dataclasses

import numpy as np

from common import graph_matmul_flops, matmul_flops_per_second, report, timed, train_steps_per_call

import tensorflow as tf  # noqa: E402  (after common sets the environment)

from vampkeras import optimizers  # noqa: E402
from vampkeras.config import RunConfig  # noqa: E402
from vampkeras.models import build_model  # noqa: E402


@dataclasses.dataclass
class MnistSpec:
    image_shape: tuple = (28, 28)
    num_pixels: int = 784
    likelihood: str = "bernoulli"


def step_seconds_and_flops(model_name: str, prior: str, batch_size: int, components: int, steps_per_call: int):
    """({"graph": s, "xla": s} per step, matmul FLOPs per step, ops without static shapes)."""
    config = RunConfig(model=model_name, prior=prior, num_components=components, pseudo_init_mean=0.05,
                       pseudo_init_std=0.01)
    model = build_model(config, MnistSpec())
    model.compile(optimizer=optimizers.build("adam-normgrad", 5e-4))
    model.optimizer.build(model.trainable_variables)
    x = tf.constant((np.random.default_rng(0).uniform(size=(batch_size, 784)) < 0.13).astype("float32"))
    steps = {}
    for mode in ("graph", "xla"):          # the model's jit switch
        model.jit = mode == "xla"
        steps[mode] = train_steps_per_call(model, steps_per_call)
        steps[mode](x[None])               # trace with this setting
    plain = tf.function(lambda x: model.loss_and_gradients(x, model.draw_noise(1, batch_size, tf.constant([0, 0]))))
    flops, unknown = graph_matmul_flops(plain.get_concrete_function(x))
    seconds = {mode: [] for mode in steps}
    for _ in range(3):                                      # alternate, so both see the same machine load
        for mode, step in steps.items():
            seconds[mode].append(timed(step, x[None], repeats=max(3, 15 // steps_per_call)) / steps_per_call)
    return {mode: min(values) for mode, values in seconds.items()}, flops, unknown


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--batch-size", type=int, default=100)
    parser.add_argument("--components", type=int, default=500)
    parser.add_argument("--steps-per-call", type=int, default=10,
                        help="train steps per graph call, as `vampkeras train` runs them (10 for 500 steps/epoch)")
    args = parser.parse_args()
    reference = matmul_flops_per_second()
    results = {}
    for model_name in ("vae", "hvae"):
        for prior in ("standard", "vampprior"):
            seconds, flops, unknown = step_seconds_and_flops(model_name, prior, args.batch_size, args.components,
                                                             args.steps_per_call)
            results[f"{model_name}/{prior}"] = {
                "gflop": round(flops / 1e9, 4), "ops_without_static_shape": unknown,
                **{f"{mode}_step_ms": round(value * 1e3, 3) for mode, value in seconds.items()},
                **{f"{mode}_fraction_of_matmul": round(flops / value / reference, 3)
                   for mode, value in seconds.items()}}
        for mode in ("graph", "xla"):
            results[f"{model_name}/{mode}_vampprior_over_standard_time"] = round(
                results[f"{model_name}/vampprior"][f"{mode}_step_ms"]
                / results[f"{model_name}/standard"][f"{mode}_step_ms"], 2)
    report({"benchmark": "train_step", "batch_size": args.batch_size, "steps_per_call": args.steps_per_call,
            "components": args.components, "matmul_gflops": round(reference / 1e9, 1), **results})


if __name__ == "__main__":
    main()
