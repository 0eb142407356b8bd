"""SavedModel export time with and without AutoGraph, each in a fresh process as `vampkeras train` runs it.

    python benchmarks/export.py [--models vae hvae convhvae pixelhvae] [--rounds 2]

An export traces the SavedModel's functions (``vampkeras.export.ExportModule``) and serializes them; it
is paid once per `vampkeras train --export`, and the evaluator's first trace pays the same kind of cost.
The functions are traced without AutoGraph (``export.traced``). This times ``export.export`` of each model
(VampPrior, K = 500, MNIST's 28x28 Bernoulli spec, untrained weights) as shipped and with AutoGraph turned
back on, each in a new Python process (AutoGraph caches its conversions within a process, so only the first
export of a process shows its full cost), alternating the two in every round; the fastest round counts.
Prints one JSON line with, per model, ``<model>_seconds`` for both and ``<model>_autograph_off_over_on``.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from common import report

from vampkeras.config import MODELS  # noqa: E402


def export_once(model_name: str, autograph: bool) -> float:
    """Seconds of one ``export.export`` of a fresh ``model_name`` in this process."""
    import tensorflow as tf

    from vampkeras import export
    from vampkeras.config import RunConfig
    from vampkeras.data import DATASETS
    from vampkeras.models import build_model

    if autograph:
        export.traced = tf.function         # the same call, with tf.function's default autograph=True
    spec = DATASETS["static_mnist"]
    config = RunConfig(model=model_name, prior="vampprior", dataset="static_mnist").resolve(spec)
    model = build_model(config, spec)
    with tempfile.TemporaryDirectory() as folder:
        start = time.perf_counter()
        export.export(model, config.to_json(), Path(folder) / "model")
        return time.perf_counter() - start


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", nargs="+", choices=MODELS, default=list(MODELS))
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--one", nargs=2, metavar=("MODEL", "AUTOGRAPH"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.one:
        print(json.dumps(export_once(args.one[0], args.one[1] == "on")))
        return
    seconds = {(model, mode): [] for model in args.models for mode in ("off", "on")}
    for round_index in range(args.rounds):
        for model in args.models:
            modes = ("off", "on") if round_index % 2 == 0 else ("on", "off")
            for mode in modes:
                output = subprocess.run([sys.executable, __file__, "--one", model, mode], check=True,
                                        capture_output=True, text=True).stdout
                seconds[model, mode].append(json.loads(output.strip().splitlines()[-1]))
    best = {key: min(values) for key, values in seconds.items()}
    result = {"benchmark": "export", "prior": "vampprior", "rounds": args.rounds}
    for model in args.models:
        result[f"{model}_seconds"] = {mode: round(best[model, mode], 2) for mode in ("off", "on")}
        result[f"{model}_autograph_off_over_on"] = round(best[model, "off"] / best[model, "on"], 3)
    report(result)


if __name__ == "__main__":
    main()
