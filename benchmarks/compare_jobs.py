"""How `vampkeras compare --jobs` should split the cores: the same grid trained and scored with each --jobs value
(the cores split evenly between the cells running at once), one after the other, alternating, in fresh
folders; prints one JSON line with each value's wall-clock seconds (fastest round) and their ratios to --jobs 1.

    python benchmarks/compare_jobs.py [--jobs 1 2] [--rounds 2] [--epochs 10] [--max-examples 2000]

The grid is mnist5k, VAE × (standard, VampPrior) × 2 seeds, S = 100 on the (cut) test split: four cells, as a
small comparison a user runs on 2 cores. Run it with nothing else on the machine.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import tempfile
import time
from pathlib import Path


def run(jobs: int, folder: Path, epochs: int, max_examples: int) -> float:
    started = time.perf_counter()
    subprocess.run([sys.executable, "-m", "vampkeras", "compare", "--dataset", "mnist5k", "--model", "vae",
                    "--prior", "standard,vampprior", "--seeds", "2", "--protocol", "short", "--epochs", str(epochs),
                    "--warmup", "5", "--max-examples", str(max_examples), "--samples", "100", "--jobs", str(jobs),
                    "--out", str(folder), "--quiet"], check=True, capture_output=True)
    return time.perf_counter() - started


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--jobs", type=int, nargs="+", default=[1, 2])
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--epochs", type=int, default=10)
    parser.add_argument("--max-examples", type=int, default=2000)
    arguments = parser.parse_args()
    seconds = {jobs: [] for jobs in arguments.jobs}
    with tempfile.TemporaryDirectory() as scratch:
        for round_index in range(arguments.rounds):
            order = arguments.jobs if round_index % 2 == 0 else arguments.jobs[::-1]
            for jobs in order:
                folder = Path(scratch) / f"jobs{jobs}-round{round_index}"
                seconds[jobs].append(run(jobs, folder, arguments.epochs, arguments.max_examples))
    fastest = {jobs: min(values) for jobs, values in seconds.items()}
    base = fastest[arguments.jobs[0]]
    print(json.dumps({"cores": len(os.sched_getaffinity(0)), "cpu": platform.processor() or platform.machine(),
                      "cells": 4, "epochs": arguments.epochs, "max_examples": arguments.max_examples,
                      "seconds_each_round": seconds, "fastest_seconds": fastest,
                      f"time_ratio_to_jobs_{arguments.jobs[0]}": {jobs: round(value / base, 3)
                                                                   for jobs, value in fastest.items()}}))


if __name__ == "__main__":
    main()
