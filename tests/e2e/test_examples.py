"""Every script in examples/ runs as a reader runs it (`python examples/NAME.py`, in a scratch folder) with the
suite's tiny budget (VAMPKERAS_EXAMPLE_BUDGET=tiny: 1-2 epochs, a few hundred images, a few importance
samples), and does what its text says."""

from __future__ import annotations

import json
import math
import os
import re
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
EXAMPLES = ROOT / "examples"
# Each example and the test that runs it (custom_networks.py is run through its main() by the own-data tests).
RUN_BY = {"own_data.py": "tests/e2e/test_examples.py::test_own_data",
          "serving.py": "tests/e2e/test_examples.py::test_serving",
          "compare_priors.py": "tests/e2e/test_examples.py::test_compare_priors",
          "custom_networks.py": "tests/e2e/test_own_data.py::test_the_custom_networks_example_trains_exports_and_scores"}
NUMBER = r"(-?\d+\.\d+)"


def run_example(name: str, folder: Path, *args: str) -> str:
    done = subprocess.run([sys.executable, str(EXAMPLES / name), *args], cwd=folder, capture_output=True, text=True,
                          timeout=600, env={**os.environ, "VAMPKERAS_EXAMPLE_BUDGET": "tiny"})
    assert done.returncode == 0, (done.stdout + done.stderr)[-4000:]
    return done.stdout


def test_every_example_is_run_by_a_test():
    assert {path.name for path in EXAMPLES.glob("*.py")} == set(RUN_BY)
    for test in RUN_BY.values():
        file, function = test.split("::")
        assert f"def {function}(" in (ROOT / file).read_text(encoding="utf-8"), test


def test_own_data(tmp_path):
    out = run_example("own_data.py", tmp_path)
    assert "own-data-demo (300 PNG files)" in out and "trained 1 epochs" in out
    found = re.search(rf"test log-likelihood {NUMBER} nats per image \({NUMBER} bits/dim\)", out)
    assert found and float(found.group(1)) < 0 and float(found.group(2)) > 0, out
    scores = {name: float(value) for name, value in re.findall(rf"^(.+?) +mean log-likelihood +{NUMBER} nats$", out,
                                                                re.MULTILINE)}
    assert set(scores) == {"test images", "upside down", "noise"} and all(map(math.isfinite, scores.values()))
    assert scores["noise"] < scores["test images"]          # noise is unlike the digits, even after 1 epoch
    config = json.loads((tmp_path / "runs" / "own-data" / "config.json").read_text())
    assert config["data"]["source"] == str((tmp_path / "own-data-demo").resolve())
    assert (tmp_path / "runs" / "own-data-model" / "saved_model.pb").is_file()


def test_serving(tmp_path):
    out = run_example("serving.py", tmp_path)
    assert "serving serving/mnist/1" in out and "'serving_default'" in out
    assert "the same as log_prob(x, 1000): True" in out and "same numbers: True" in out
    assert "16 samples: (16, 28, 28)" in out
    request = json.loads((tmp_path / "request.json").read_text())
    assert request["signature_name"] == "serving_default" and len(request["instances"]) == 2
    assert {value for row in request["instances"][0] for value in row} <= {0.0, 1.0}    # binary, as the model scores
    # a second run with --model serves the same base path's highest version without training
    out = run_example("serving.py", tmp_path, "--model", "serving/mnist")
    assert "exported" not in out and "serving serving/mnist/1" in out


def test_compare_priors(tmp_path):
    out = run_example("compare_priors.py", tmp_path)
    assert re.search(r"On mnist5k, the VAE's VampPrior (beats|loses to) the standard prior|On mnist5k, .*no clear "
                     "difference", out), out
    # the interval redone by hand from the per-image arrays is the report's
    found = re.search(rf"seed 0: vampprior − standard = {NUMBER} nats per image, 95% CI \[{NUMBER}, {NUMBER}\] "
                      rf"over 100 images \(the report: {NUMBER}, \[{NUMBER}, {NUMBER}\]\)", out)
    assert found, out
    assert found.group(1, 2, 3) == found.group(4, 5, 6)
    summary = json.loads((tmp_path / "comparisons" / "example" / "comparison.json").read_text())
    assert [row["cell"] for row in summary["cells"]] == ["vae-standard-lr5e-4-seed0", "vae-vampprior-lr5e-4-seed0"]
    assert (tmp_path / "comparisons" / "example" / "comparison.html").is_file()

