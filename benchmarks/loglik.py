"""Speed and memory of the S-sample importance-sampled log-likelihood (paper §5.2) for the VAE + VampPrior.

    python benchmarks/loglik.py [--model vae] [--samples 5000] [--examples 100] [--memory-samples 5000 20000]
                                [--mixed-precision]

``--model hvae|convhvae|pixelhvae`` scores that model with a VampPrior instead of the VAE.

Prints one JSON line: seconds per test image for S samples in graph mode and XLA-compiled (timed
alternately), the mode :mod:`vampkeras.tuning` picks on this machine (``default_mode``, what `vampkeras
evaluate` runs), the achieved matmul FLOP/s as a fraction of a dense matmul measured in every round (its
fastest round counts, as each mode's does), and the peak memory (resident, and on a GPU the device's) of a
fresh process scoring ``--examples`` images with each S in ``--memory-samples`` (it must not grow with S or
with the number of images: scoring works through 100 images × (5000 / 100) samples at a time).
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time

import numpy as np

from common import Reference, graph_matmul_flops, report

import tensorflow as tf  # noqa: E402

from vampkeras import tuning  # noqa: E402
from vampkeras.config import MODELS, RunConfig  # noqa: E402
from vampkeras.data import DATASETS  # noqa: E402
from vampkeras.export import EXAMPLES_PER_BATCH, ExportModule  # noqa: E402
from vampkeras.models import build_model  # noqa: E402


MNIST = DATASETS["static_mnist"]           # 28x28 binary images, Bernoulli likelihood


def build(components: int, mixed_precision: bool = False, model_name: str = "vae"):
    config = RunConfig(model=model_name, prior="vampprior", num_components=components, pseudo_init_mean=0.05,
                       pseudo_init_std=0.01, mixed_precision=mixed_precision)
    model = build_model(config, MNIST)
    return model, ExportModule(model, config.to_json())


def images(count: int) -> tf.Tensor:
    return tf.constant((np.random.default_rng(0).uniform(size=(count, 28, 28)) < 0.13).astype("float32"))


def peak_memory_mb(samples: int, examples: int, components: int, mixed_precision: bool, model_name: str) -> dict:
    """Peak memory (MB) of a fresh process that builds the model and scores ``examples`` images with
    S = ``samples``: {"rss": the kernel's VmHWM[, "gpu": TensorFlow's peak on GPU:0]}."""
    code = (f"import sys; sys.argv=['x']; sys.path.insert(0, {str(__file__.rsplit('/', 1)[0])!r}); "
            f"import common, loglik, tensorflow as tf; model, module = loglik.build({components}, {mixed_precision}, {model_name!r}); "
            f"module.log_prob(loglik.images({examples}), tf.constant({samples}))['log_likelihood'].numpy(); "
            "gpu = tf.config.experimental.get_memory_info('GPU:0')['peak'] if common.has_gpu() else -1; "
            "print([l for l in open('/proc/self/status') if l.startswith('VmHWM')][0].split()[1], gpu)")
    done = subprocess.run([sys.executable, "-c", code], check=True, capture_output=True, text=True)
    rss_kb, gpu_bytes = done.stdout.strip().splitlines()[-1].split()
    peaks = {"rss": round(int(rss_kb) / 1024.0, 1)}
    if int(gpu_bytes) >= 0:
        peaks["gpu"] = round(int(gpu_bytes) / 2 ** 20, 1)
    return peaks


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", choices=MODELS, default="vae")
    parser.add_argument("--samples", type=int, default=5000)
    parser.add_argument("--examples", type=int, default=100)
    parser.add_argument("--components", type=int, default=500)
    parser.add_argument("--rounds", type=int, default=3, help="timings per mode, graph and XLA alternately")
    parser.add_argument("--memory-samples", type=int, nargs="*", default=[5000, 20000])
    parser.add_argument("--mixed-precision", action="store_true",
                        help="float16 layers (the reference matmul in float16 too)")
    args = parser.parse_args()
    # the tuning measures afresh (a private cache), as on a machine where vampkeras has not run yet
    os.environ["VAMPKERAS_CACHE"] = tempfile.mkdtemp(prefix="vampkeras-benchmark-")
    reference = Reference(mixed_precision=args.mixed_precision)
    model, _ = build(args.components, args.mixed_precision, args.model)
    x = images(args.examples)
    modules = {}
    for mode in ("graph", "xla"):                 # one traced log_prob per mode (the model's evaluation_jit)
        model.evaluation_jit = mode == "xla"
        modules[mode] = ExportModule(model, "{}")
        modules[mode].log_prob(x[:1], tf.constant(10))                     # trace and compile
    seconds = {mode: [] for mode in modules}
    values = {}
    for _ in range(args.rounds):                  # alternate, so both modes see the same machine load
        reference.measure()
        for mode, module in modules.items():
            start = time.perf_counter()
            values[mode] = module.log_prob(x, tf.constant(args.samples))["log_likelihood"].numpy()
            seconds[mode].append(time.perf_counter() - start)
    seconds = {mode: min(times) for mode, times in seconds.items()}
    assert all(np.all(np.isfinite(v)) for v in values.values())

    # FLOPs: one chunk's importance weights (static shapes) times the number of chunks, plus the prior
    chunk = max(1, model.evaluation_rows // EXAMPLES_PER_BATCH)
    batch = min(EXAMPLES_PER_BATCH, args.examples)
    parameters = model.prior_parameters()
    weights = tf.function(lambda xb, noise: model.log_importance_weights_given_noise(xb, noise, parameters))
    noise = model.draw_noise(chunk, batch, tf.constant([0, 0]))
    chunk_flops, unknown = graph_matmul_flops(weights.get_concrete_function(tf.zeros([batch, 784]), noise))
    batches = -(-args.examples // EXAMPLES_PER_BATCH)
    chunks = -(-args.samples // chunk)
    flops = chunk_flops * chunks * batches * args.examples / (batch * batches)
    memory = {str(s): peak_memory_mb(s, args.examples, args.components, args.mixed_precision, args.model)
              for s in args.memory_samples}
    default = "xla" if tuning.tune_evaluation(model) else "graph"      # what `vampkeras evaluate` picks
    report({"benchmark": "loglik", "model": args.model, "samples": args.samples, "examples": args.examples,
            "components": args.components, "rows_per_chunk": chunk * batch, "default_mode": default,
            "default_fraction_of_matmul": round(flops / seconds[default] / reference.best, 3),
            **{f"{mode}_seconds_per_image": round(value / args.examples, 4) for mode, value in seconds.items()},
            **{f"{mode}_hours_for_10000_images": round(value / args.examples * 10000 / 3600, 3)
               for mode, value in seconds.items()},
            **{f"{mode}_fraction_of_matmul": round(flops / value / reference.best, 3)
               for mode, value in seconds.items()},
            "graph_vs_xla_max_abs_difference": float(np.max(np.abs(values["graph"] - values["xla"]))),
            **reference.summary(), "ops_without_static_shape": unknown, "peak_memory_mb_by_samples": memory,
            "precision": model.compute_dtype})


if __name__ == "__main__":
    main()
