"""Mixed precision against float32: the importance-sampled test log-likelihood of one trained run, both ways.

    python benchmarks/precision.py RUN [--samples 5000] [--max-examples 1000] [--data-dir DIR]

RUN is a run folder (`vampkeras train --run-dir RUN`). Scores its test images with float32 layers and with
float16 layers (``--mixed-precision``: Keras' mixed_float16, densities in float32), with the same seeds, and
prints one JSON line: both mean log-likelihoods, the difference of the means and the largest per-image
difference (the bar for --mixed-precision is 0.1 nat), and float32 seconds ÷ mixed seconds (above 1: mixed
precision is faster here; CPUs compute float16 in software, GPUs on tensor cores).
"""

from __future__ import annotations

import argparse
import tempfile

import numpy as np

from common import report

from vampkeras.evaluation import evaluate  # noqa: E402


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("run")
    parser.add_argument("--samples", type=int, default=5000)
    parser.add_argument("--max-examples", type=int, default=1000)
    parser.add_argument("--data-dir", default=None)
    args = parser.parse_args()
    results = {}
    with tempfile.TemporaryDirectory() as figures:          # leave the run folder's own figures alone
        for precision, mixed in (("float32", False), ("mixed_float16", True)):
            results[precision] = evaluate(args.run, num_samples=args.samples, max_examples=args.max_examples,
                                          data_dir=args.data_dir, figures_dir=figures, mixed_precision=mixed)
    (plain, plain_values), (mixed, mixed_values) = results["float32"], results["mixed_float16"]
    report({"benchmark": "precision", "run": args.run, "dataset": plain["dataset"], "samples": args.samples,
            "examples": plain["num_examples"],
            "float32_log_likelihood": round(plain["log_likelihood"], 4),
            "mixed_log_likelihood": round(mixed["log_likelihood"], 4),
            "mean_difference": round(mixed["log_likelihood"] - plain["log_likelihood"], 4),
            "largest_per_image_difference": round(float(np.max(np.abs(
                mixed_values["log_likelihood"] - plain_values["log_likelihood"]))), 4),
            "float32_seconds_over_mixed_seconds": round(plain["seconds"] / mixed["seconds"], 3)})


if __name__ == "__main__":
    main()
