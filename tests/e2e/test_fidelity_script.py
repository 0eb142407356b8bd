"""benchmarks/fidelity.sh, the script behind docs/RESULTS.md's fidelity measurements, on a tiny setting:
it trains each variant with its options, scores it, and prints one row per variant."""

import json
import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def test_fidelity_script_trains_scores_and_reports_each_variant(tmp_path):
    env = {**os.environ, "ONLY": "paper$|authors-all", "DATASET": "mnist5k", "EPOCHS": "1", "WARMUP": "1",
           "SAMPLES": "2", "OUT": str(tmp_path / "out"), "DATA_DIR": str(tmp_path / "data"),
           "VAMPKERAS": str(Path(sys.executable).parent / "vampkeras")}
    done = subprocess.run(["bash", str(ROOT / "benchmarks" / "fidelity.sh")], env=env, capture_output=True,
                          text=True, timeout=600)
    assert done.returncode == 0, done.stderr + "".join(p.read_text() for p in (tmp_path / "out").glob("*.log"))
    rows = [json.loads(line) for line in done.stdout.splitlines() if line.startswith("{")]
    assert [row["variant"] for row in rows] == ["paper", "authors-all"]
    for row in rows:
        assert row["num_samples"] == 2 and row["val_loss"] == {}            # (epochs 5, 10, ... only)
        assert row["test_elbo"] <= row["test_log_likelihood"] + 3.0        # (the ELBO bounds the LL; S = 2, 500 images)
    saved = json.loads((tmp_path / "out" / "vae-vampprior-authors-all" / "config.json").read_text())
    assert (saved["init"], saved["gated_normgrad"], saved["pseudo_init"]) == ("authors", "per-half", "noisy-data")
    default = json.loads((tmp_path / "out" / "vae-vampprior-paper" / "config.json").read_text())
    assert (default["init"], default["gated_normgrad"], default["pseudo_init"]) == ("paper", "joint", "random")
    assert rows[0]["best_val_loss"] != rows[1]["best_val_loss"]
