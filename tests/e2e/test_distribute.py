"""tf.distribute: MirroredStrategy over 2 logical CPU devices matches one device, and resumes."""

import csv
import os
import subprocess
import sys

import pytest

from tests.test_docs import DOCS, commands_in, small_budget

# The two-replica run is the command docs/training.md gives (`train --strategy mirrored --replicas 2`) with the
# documented small budget (tests/test_docs.small_budget); the one-device run has the same options without the
# strategy. --no-jit for both: mirrored replicas run in graph mode, so the one-device run is compared in the same
# mode; no figures.
DOCUMENTED = next(command for command in commands_in((DOCS / "training.md").read_text(encoding="utf-8"),
                                                     "training.md") if "--replicas" in command.args)
BUDGET = [*small_budget(DOCUMENTED), "--image-every", "0", "--no-jit"]


def vampkeras(*args, cwd):
    """Run the CLI in a fresh process (logical devices can only be set before TensorFlow starts)."""
    done = subprocess.run([sys.executable, "-m", "vampkeras_cli.main", *map(str, args)], capture_output=True,
                          text=True, cwd=cwd, timeout=600, env={**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"})
    assert done.returncode == 0, done.stderr[-3000:]
    return done


def history(run_dir):
    with open(run_dir / "history.csv") as stream:
        return [{k: float(v) for k, v in row.items()} for row in csv.DictReader(stream)]


def test_mirrored_on_two_logical_cpus_matches_one_device_and_resumes(tmp_path):
    assert DOCUMENTED.args == ("train", "--strategy", "mirrored", "--replicas", "2")
    vampkeras("train", *BUDGET, "--run-dir", tmp_path / "one", "--export", tmp_path / "one-model", cwd=tmp_path)
    vampkeras(*DOCUMENTED.args, *BUDGET, "--run-dir", tmp_path / "two", "--export", tmp_path / "two-model",
              cwd=tmp_path)
    one, two = history(tmp_path / "one"), history(tmp_path / "two")
    assert len(one) == len(two) == 1
    for a, b in zip(one, two):
        for key in ("loss", "reconstruction", "kl", "val_loss"):
            # the one-device step updates with TensorFlow's fused Adam kernel, the replicas with Keras' Adam:
            # the same arithmetic, rounded differently (1.3e-5 apart after 2 epochs here)
            assert b[key] == pytest.approx(a[key], rel=1e-4), key

    # resume under mirrored: one more epoch, and the SavedModel of the mirrored run evaluates
    vampkeras("train", "--resume", "--run-dir", tmp_path / "two", "--epochs", 2, "--strategy", "mirrored",
              "--replicas", 2, "--quiet", cwd=tmp_path)
    assert [row["epoch"] for row in history(tmp_path / "two")] == [1.0, 2.0]
    done = vampkeras("evaluate", tmp_path / "two-model", "--samples", 10, "--max-examples", 20, "--quiet",
                     cwd=tmp_path)
    assert '"log_likelihood"' in done.stdout
