"""Train-step speed at the paper's sizes, as a fraction of a dense matmul's FLOP/s measured in the same run.

    python benchmarks/train_step.py [--models vae hvae] [--batch-size 100] [--components 500]
                                    [--steps-per-call 10] [--repeats N] [--mixed-precision]

For each model (VAE and HVAE by default; ``--models convhvae pixelhvae`` for the convolutional ones) with
the standard prior and the VampPrior: the compiled train step (forward, backward
and the Adam-normgrad update) on a fixed binary batch, ``--steps-per-call`` steps per graph call as
``vampkeras train`` runs them (``--steps-per-call 1`` adds the Python dispatch of every step), with the
forward and backward pass in plain graph mode or XLA-compiled (the model's ``train_jit`` switch; the noise
is always drawn, and the fused Adam update always runs, in graph mode), timed alternately in the same
process, and the XLA forward and backward pass alone (``xla_gradients_only``: the step less its update).
``default_mode`` is the mode :mod:`vampkeras.tuning` picks on this machine (what `vampkeras train` runs).
The matmul reference is measured again in every round and its fastest round counts, as each step's fastest
round does. Matmul FLOPs (forward and backward; the update has none) are counted from the graph. Prints one
JSON line.
"""

from __future__ import annotations

import argparse
import os
import tempfile

import numpy as np

from common import Reference, copy_bytes_per_second, graph_matmul_flops, report, timed, train_steps_per_call

import tensorflow as tf  # noqa: E402  (after common sets the environment)

from vampkeras import optimizers, tuning  # noqa: E402
from vampkeras.config import MODELS, RunConfig  # noqa: E402
from vampkeras.data import DATASETS  # noqa: E402
from vampkeras.models import build_model  # noqa: E402


UPDATE_BYTES_PER_PARAMETER = 40


MNIST = DATASETS["static_mnist"]           # 28x28 binary images, Bernoulli likelihood


def gradients_per_call(model, count: int):
    """Like ``train_steps_per_call`` with the XLA step, but stopping at the gradients: no optimizer update
    (what the step would cost if the update were free)."""
    gradients = model._compiled("gradients", model.loss_and_gradients, True)

    @tf.function
    def run(batches):
        total = tf.constant(0.0)
        for i in tf.range(count):
            noise = model.draw_noise(1, tf.shape(batches)[1], model._step_seed())
            loss, _, _, _ = gradients(batches[i % tf.shape(batches)[0]], noise)
            total += loss
        return total

    return run


def updates_per_call(model, count: int):
    """``count`` Adam-normgrad updates of all trainable variables with fixed gradients, as the train step
    makes them (``optimizers.apply_gradients``), per graph call."""
    gradients = [tf.random.stateless_normal(v.shape, seed=[0, i]) for i, v in enumerate(model.trainable_variables)]

    @tf.function
    def run(batches):
        for _ in tf.range(count):
            optimizers.apply_gradients(model.optimizer, gradients, model.trainable_variables)
        return model.optimizer.iterations

    return run


def step_seconds_and_flops(model_name: str, prior: str, batch_size: int, components: int, steps_per_call: int,
                           reference: Reference, mixed_precision: bool = False, repeats: int | None = None):
    """({"graph": s, "xla": s, "xla_gradients_only": s, "update_only": s} per step, matmul FLOPs per step,
    ops without static shapes, trainable parameters, the mode vampkeras.tuning chooses by default). The
    matmul ``reference`` is measured again in every round."""
    config = RunConfig(model=model_name, prior=prior, num_components=components, pseudo_init_mean=0.05,
                       pseudo_init_std=0.01, mixed_precision=mixed_precision)
    model = build_model(config, MNIST)
    model.compile(optimizer=optimizers.build("adam-normgrad", 5e-4, loss_scaling=mixed_precision))
    model.optimizer.build(model.trainable_variables)
    x = tf.constant((np.random.default_rng(0).uniform(size=(batch_size, 784)) < 0.13).astype("float32"))
    steps = {}
    for mode in ("graph", "xla"):          # the model's train_jit switch
        model.train_jit = mode == "xla"
        steps[mode] = train_steps_per_call(model, steps_per_call)
        steps[mode](x[None])               # trace with this setting
    steps["xla_gradients_only"] = gradients_per_call(model, steps_per_call)    # the step less its Adam update
    steps["xla_gradients_only"](x[None])
    steps["update_only"] = updates_per_call(model, steps_per_call)              # the Adam update alone
    steps["update_only"](x[None])
    plain = tf.function(lambda x: model.loss_and_gradients(x, model.draw_noise(1, batch_size, tf.constant([0, 0]))))
    flops, unknown = graph_matmul_flops(plain.get_concrete_function(x))
    seconds = {mode: [] for mode in steps}
    for _ in range(3):                                      # alternate, so all see the same machine load
        reference.measure()
        for mode, step in steps.items():
            seconds[mode].append(timed(step, x[None], repeats=repeats or max(3, 15 // steps_per_call))
                                 / steps_per_call)
    parameters = sum(int(np.prod(variable.shape)) for variable in model.trainable_variables)
    default = "xla" if tuning.tune_training(model, batch_size) else "graph"    # what `vampkeras train` picks
    return {mode: min(values) for mode, values in seconds.items()}, flops, unknown, parameters, default


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", nargs="+", choices=MODELS, default=["vae", "hvae"])
    parser.add_argument("--batch-size", type=int, default=100)
    parser.add_argument("--components", type=int, default=500)
    parser.add_argument("--steps-per-call", type=int, default=10,
                        help="train steps per graph call, as `vampkeras train` runs them (10 for 500 steps/epoch)")
    parser.add_argument("--repeats", type=int, default=None,
                        help="timed graph calls per mode and round, the median counts (default: 15 steps' worth, "
                             "at least 3); the conv models' steps take seconds: --steps-per-call 1 --repeats 3")
    parser.add_argument("--mixed-precision", action="store_true",
                        help="float16 layers and loss scaling, as `vampkeras train --mixed-precision` (the "
                             "reference matmul in float16 too)")
    args = parser.parse_args()
    # the tuning measures afresh (a private cache), as on a machine where vampkeras has not run yet
    os.environ["VAMPKERAS_CACHE"] = tempfile.mkdtemp(prefix="vampkeras-benchmark-")
    reference = Reference(mixed_precision=args.mixed_precision)
    bandwidth = max(copy_bytes_per_second() for _ in range(3))
    timings = {}
    for model_name in args.models:
        for prior in ("standard", "vampprior"):
            timings[f"{model_name}/{prior}"] = step_seconds_and_flops(
                model_name, prior, args.batch_size, args.components, args.steps_per_call, reference,
                args.mixed_precision, args.repeats)
    results = {}
    for name, (seconds, flops, unknown, parameters, default) in timings.items():
        results[name] = {
            "gflop": round(flops / 1e9, 4), "ops_without_static_shape": unknown, "parameters": parameters,
            "default_mode": default,
            "default_fraction_of_matmul": round(flops / seconds[default] / reference.best, 3),
            **{f"{mode}_step_ms": round(value * 1e3, 3) for mode, value in seconds.items()},
            **{f"{mode}_fraction_of_matmul": round(flops / value / reference.best, 3)
               for mode, value in seconds.items() if mode != "update_only"},
            # the update streams ~40 bytes per parameter: the gradient norm reads g (4), the division
            # reads g and writes g/‖g‖ (8), the Adam kernel reads it, m, v and θ and writes m, v, θ (28)
            "update_only_fraction_of_copy_bandwidth": round(
                UPDATE_BYTES_PER_PARAMETER * parameters / seconds["update_only"] / bandwidth, 3)}
    for model_name in args.models:
        for mode in ("graph", "xla"):
            results[f"{model_name}/{mode}_vampprior_over_standard_time"] = round(
                results[f"{model_name}/vampprior"][f"{mode}_step_ms"]
                / results[f"{model_name}/standard"][f"{mode}_step_ms"], 2)
    report({"benchmark": "train_step", "batch_size": args.batch_size, "steps_per_call": args.steps_per_call,
            "components": args.components, "mixed_precision": args.mixed_precision, **reference.summary(),
            "copy_gbytes_per_second": round(bandwidth / 1e9, 1), **results})


if __name__ == "__main__":
    main()
