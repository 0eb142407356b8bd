"""Every model with every prior setting, and every model on non-square grey data, from the CLI."""

import json
import os
from pathlib import Path

import pytest
from click.testing import CliRunner

from vampkeras_cli.main import main

SHARED = Path(os.environ.get("VAMPKERAS_TEST_DATA") or Path(__file__).resolve().parents[3] / "shared" / "data")
PRIORS = [["--prior", "standard"], ["--prior", "mog"], ["--prior", "vampprior"], ["--prior", "vampprior-data"],
          ["--prior", "vampprior", "--weighted"]]


def train_export_evaluate(tmp_path, *options):
    runner = CliRunner()
    run_dir, export_dir = tmp_path / "run", tmp_path / "model"
    result = runner.invoke(main, ["train", "--epochs", "1", "--components", "10", "--quiet", "--run-dir",
                                  str(run_dir), "--export", str(export_dir), *options], catch_exceptions=False)
    assert result.exit_code == 0, result.output
    summary_path = tmp_path / "evaluation.json"
    data_dir = list(options[options.index("--data-dir"):][:2]) if "--data-dir" in options else []
    result = runner.invoke(main, ["evaluate", str(export_dir), "--samples", "8", "--max-examples", "20", "--quiet",
                                  "--json", str(summary_path), *data_dir], catch_exceptions=False)
    assert result.exit_code == 0, result.output
    return json.loads(summary_path.read_text())


@pytest.mark.parametrize("prior", PRIORS, ids=lambda p: "-".join(a.strip("-") for a in p))
@pytest.mark.parametrize("model", ["vae", "hvae", "convhvae", "pixelhvae"])
def test_every_model_and_prior_trains_exports_and_evaluates(tmp_path, model, prior):
    # figures (one image pass per pixel for PixelHVAE) only for one prior per model, to keep the suite fast
    images = "1" if prior == ["--prior", "vampprior"] else "0"
    summary = train_export_evaluate(tmp_path, "--model", model, *prior, "--max-examples", "100",
                                    "--image-every", images)
    if images == "1":
        assert {p.name for p in (tmp_path / "run" / "figures").iterdir()} >= {
            "generations.png", "reconstructions.png", "pseudo_inputs.png", "component_generations.png"}
    assert summary["num_examples"] == 20 and summary["log_likelihood"] < 0
    expected_layers = {"z1"} if model == "vae" else {"z1", "z2"}
    assert set(summary["active_units"]) == expected_layers
    assert summary["log_likelihood"] >= summary["elbo"] - 5.0      # S=8: the bound is above the ELBO on average


@pytest.mark.skipif(not SHARED.is_dir(), reason=f"no shared data folder at {SHARED}")
@pytest.mark.parametrize("model", ["vae", "hvae", "convhvae", "pixelhvae"])
def test_frey_faces_28x20_grey_with_every_model(tmp_path, model):
    summary = train_export_evaluate(tmp_path, "--model", model, "--dataset", "freyfaces", "--max-examples", "60",
                                    "--data-dir", str(SHARED), "--image-every", "1" if model == "vae" else "0")
    assert summary["dataset"] == "freyfaces"
    # discretized logistic over 560 pixels: at initialisation (log-scale 0) a bin holds about
    # pdf/256 ≤ 0.25/256 of the mass, so about −6.9 nats per pixel; one epoch stays in that region
    assert -560 * 8 < summary["log_likelihood"] < 0 and summary["elbo"] < 0
