"""The SavedModel: its signatures, agreement with the in-memory model, and use without vampkeras."""

import json
import os
import shutil
import subprocess
import sys
import textwrap

import numpy as np
import pytest
import tensorflow as tf

from vampkeras import checkpoints
from vampkeras.config import RunConfig
from vampkeras.data import load_dataset
from vampkeras.errors import VampkerasError
from vampkeras.export import ELBO_SEED, EXAMPLES_PER_BATCH, LOG_PROB_SEED, SERVING_NUM_SAMPLES, export
from vampkeras.models import build_model


@pytest.fixture(scope="module")
def loaded(trained_run):
    return tf.saved_model.load(str(trained_run.export_dir))


@pytest.fixture(scope="module")
def in_memory(trained_run):
    config = RunConfig.from_json((trained_run.run_dir / "config.json").read_text())
    data = load_dataset(config.dataset, max_examples=config.max_examples)
    model = build_model(config, data.spec, data.train)
    checkpoints.load(trained_run.run_dir / "checkpoints" / "best.npz", model)
    return model, data


def test_signatures_and_shapes(loaded):
    assert set(loaded.signatures) == {"serving_default", "sample", "log_prob", "elbo", "encode", "reconstruct",
                                      "latent_means", "metadata", "sample_component", "pseudo_inputs"}
    pseudo = loaded.pseudo_inputs()["images"].numpy()
    assert pseudo.shape == (500, 28, 28) and pseudo.min() >= 0.0 and pseudo.max() <= 1.0
    component = loaded.sample_component(component=tf.constant(3), num_samples=tf.constant(5),
                                        seed=tf.constant(0))["images"].numpy()
    assert component.shape == (5, 28, 28)
    images = loaded.sample(num_samples=tf.constant(7), seed=tf.constant(3))["images"].numpy()
    assert images.shape == (7, 28, 28) and images.min() >= 0.0 and images.max() <= 1.0
    assert images.std() > 0.01
    again = loaded.sample(num_samples=tf.constant(7), seed=tf.constant(3))["images"].numpy()
    np.testing.assert_array_equal(images, again)
    metadata = loaded.metadata()
    assert int(metadata["format_version"]) == 1 and metadata["likelihood"].numpy() == b"bernoulli"
    assert json.loads(metadata["config_json"].numpy().decode())["prior"] == "vampprior"


def test_saved_model_holds_the_weights_and_no_optimizer_state(trained_run, in_memory):
    model, _ = in_memory
    # the trained model had Adam's slots (twice the weights) beside it; only the weights are exported
    saved = [shape for name, shape in tf.train.list_variables(str(trained_run.export_dir / "variables" / "variables"))
             if name != "_CHECKPOINTABLE_OBJECT_GRAPH"]
    assert sorted(saved) == sorted(list(w.shape) for w in model.weights)
    assert sum(int(np.prod(shape)) for shape in saved) == model.count_params()


def test_saved_model_matches_the_in_memory_model(loaded, in_memory):
    model, data = in_memory
    x = data.test[:20]
    images = x.reshape(-1, 28, 28)
    reconstruction, kl = model.elbo_terms(x, tf.constant([ELBO_SEED, 0]))
    saved = loaded.elbo(tf.constant(images))
    np.testing.assert_allclose(saved["reconstruction"].numpy(), reconstruction.numpy(), rtol=1e-5)
    np.testing.assert_allclose(saved["kl"].numpy(), kl.numpy(), rtol=1e-4, atol=1e-4)
    np.testing.assert_allclose(saved["elbo"].numpy(), -(reconstruction + kl).numpy(), rtol=1e-5)
    mean, log_var = model.encode(x)
    encoded = loaded.encode(tf.constant(images))
    np.testing.assert_allclose(encoded["mean"].numpy(), mean.numpy(), rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(encoded["log_var"].numpy(), log_var.numpy(), rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(loaded.reconstruct(tf.constant(images))["images"].numpy().reshape(20, -1),
                               model.reconstruct(x).numpy(), rtol=1e-5, atol=1e-6)


def test_log_prob_is_an_importance_sampled_bound_above_the_elbo(loaded, in_memory):
    _, data = in_memory
    images = tf.constant(data.test[:50].reshape(-1, 28, 28))
    elbo = loaded.elbo(images)["elbo"].numpy()
    few = loaded.log_prob(images, tf.constant(2))["log_likelihood"].numpy()
    many = loaded.log_prob(images, tf.constant(1000))["log_likelihood"].numpy()
    assert many.shape == (50,) and np.all(np.isfinite(many))
    assert many.mean() > elbo.mean() + 0.5       # log-likelihood is above the ELBO ...
    assert many.mean() > few.mean()              # ... and the IS bound tightens with S
    assert np.all(many < 0)


def test_saved_model_runs_where_vampkeras_cannot_be_imported(trained_run, loaded, in_memory, tmp_path):
    _, data = in_memory
    np.save(tmp_path / "x.npy", data.test[:5].reshape(-1, 28, 28))
    script = textwrap.dedent(f"""
        import sys
        sys.modules["vampkeras"] = None                 # any `import vampkeras` now fails
        sys.modules["tensorflow_probability"] = None    # and so does TFP
        try:
            import vampkeras
        except ImportError:
            pass
        else:
            raise SystemExit("vampkeras was importable")
        import json
        import numpy as np
        import tensorflow as tf
        model = tf.saved_model.load({str(trained_run.export_dir)!r})
        x = tf.constant(np.load({str(tmp_path / 'x.npy')!r}))
        out = {{
            "log_prob": model.log_prob(x, tf.constant(100))["log_likelihood"].numpy().tolist(),
            "sample": model.sample(tf.constant(4), tf.constant(1))["images"].numpy().shape,
            "config": json.loads(open({str(trained_run.export_dir / 'assets' / 'config.json')!r}).read())["dataset"],
        }}
        print(json.dumps(out))
    """)
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3", "PYTHONPATH": ""}
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, env=env,
                          cwd=tmp_path, timeout=300)
    assert done.returncode == 0, done.stderr[-2000:]
    result = json.loads(done.stdout.strip().splitlines()[-1])
    expected = loaded.log_prob(tf.constant(data.test[:5].reshape(-1, 28, 28)), tf.constant(100))
    np.testing.assert_allclose(result["log_prob"], expected["log_likelihood"].numpy(), rtol=1e-5)
    assert result["sample"] == [4, 28, 28] and result["config"] == "mnist5k"


def test_export_refuses_an_occupied_folder_and_keeps_it(trained_run, in_memory):
    model, _ = in_memory
    before = sorted(p.name for p in trained_run.export_dir.iterdir())
    with pytest.raises(VampkerasError, match="already holds files"):
        export(model, "{}", trained_run.export_dir)
    assert sorted(p.name for p in trained_run.export_dir.iterdir()) == before


def test_serving_default_is_log_prob_with_the_fixed_sample_count_and_the_elbo(loaded, in_memory):
    _, data = in_memory
    images = tf.constant(data.test[:7].reshape(-1, 28, 28))
    served = loaded.serving_default(images)
    assert set(served) == {"log_likelihood", "elbo"} and served["log_likelihood"].shape == (7,)
    np.testing.assert_array_equal(served["log_likelihood"].numpy(),
                                  loaded.log_prob(images, tf.constant(SERVING_NUM_SAMPLES))["log_likelihood"].numpy())
    np.testing.assert_array_equal(served["elbo"].numpy(), loaded.elbo(images)["elbo"].numpy())
    assert np.all(served["log_likelihood"].numpy() > served["elbo"].numpy() - 1.0)
    signature = loaded.signatures["serving_default"]
    assert list(signature.structured_input_signature[1]) == ["x"]
    assert signature.structured_input_signature[1]["x"].shape.as_list() == [None, 28, 28]


def test_the_run_folder_model_computes_the_documented_estimate(trained_run, in_memory):
    """The evaluation of a run folder (ExportModule.log_prob_given_prior, input checks included) gives the
    numbers of the paper's estimator as the models compute it: batches of EXAMPLES_PER_BATCH images, batch
    b seeded by fold_in((LOG_PROB_SEED, 0), b)."""
    from vampkeras.trained_model import TrainedModel

    model, data = in_memory
    x = data.test[:130]
    samples_per_chunk = max(1, model.evaluation_rows // EXAMPLES_PER_BATCH)
    seed = tf.constant([LOG_PROB_SEED, 0], tf.int32)
    parameters = model.prior_parameters()
    expected = np.concatenate([
        model.log_likelihood(tf.constant(x[start:start + EXAMPLES_PER_BATCH]), 30,
                             tf.random.experimental.stateless_fold_in(seed, index), parameters,
                             samples_per_chunk).numpy()
        for index, start in enumerate(range(0, len(x), EXAMPLES_PER_BATCH))])
    model = TrainedModel.load(trained_run.run_dir)
    np.testing.assert_allclose(model.log_prob(x.reshape(-1, 28, 28), 30), expected, rtol=1e-6)


def test_a_loaded_saved_model_reports_a_refused_input_as_one_error(trained_run, in_memory):
    from vampkeras.trained_model import TrainedModel

    _, data = in_memory
    model = TrainedModel.load(trained_run.export_dir)
    grey = data.test[:3].reshape(-1, 28, 28) * 0.5
    with pytest.raises(VampkerasError, match="refuses its input: x must hold only 0 and 1"):
        model.log_prob(grey, 10)
    with pytest.raises(VampkerasError, match="x must hold only 0 and 1"):
        model.elbo(grey)
    assert model.latent_means(grey)["z1"].shape == (3, 40)     # encoding grey images is fine


def test_a_model_base_path_is_read_at_its_highest_version_by_every_command(trained_run, tmp_path):
    from click.testing import CliRunner
    from vampkeras_cli.main import main

    base = tmp_path / "served"
    (base / "1").mkdir(parents=True)
    (base / "1" / "saved_model.pb").write_bytes(b"not a model: must not be the one read")
    shutil.copytree(trained_run.export_dir, base / "2")
    np.save(tmp_path / "x.npy", np.eye(28, dtype=np.float32)[None].repeat(3, axis=0))
    outputs = {}
    for name, path in (("base", base), ("version", base / "2")):
        runner = CliRunner()
        evaluated = runner.invoke(main, ["evaluate", str(path), "--samples", "5", "--max-examples", "20", "--quiet"])
        assert evaluated.exit_code == 0, evaluated.output
        scored = runner.invoke(main, ["score", str(path), str(tmp_path / "x.npy"), "--samples", "5", "--quiet",
                                      "--out", str(tmp_path / f"{name}.csv")])
        assert scored.exit_code == 0, scored.output
        sampled = runner.invoke(main, ["sample", str(path), "-n", "4", "--out", str(tmp_path / f"{name}.png")])
        assert sampled.exit_code == 0, sampled.output
        outputs[name] = (json.loads(evaluated.output[evaluated.output.index("{"):])["log_likelihood"],
                         (tmp_path / f"{name}.csv").read_text(), (tmp_path / f"{name}.png").read_bytes())
    assert outputs["base"] == outputs["version"]


@pytest.mark.slow
def test_a_versioned_run_exports_a_new_version_at_every_training(tmp_path):
    from vampkeras.training import train

    options = dict(epochs=1, warmup=1, max_examples=100, num_components=5, latent_dim=2, hidden_units=8,
                   image_every=0, run_dir=str(tmp_path / "run"), export_dir=str(tmp_path / "served"),
                   export_versioned=True)
    first = train(RunConfig(**options), verbose=0)
    assert first.export_dir == tmp_path / "served" / "1"
    resumed = train(RunConfig(**{**options, "epochs": 2}), resume=True, given={"epochs": 2}, verbose=0)
    assert resumed.export_dir == tmp_path / "served" / "2"
    assert sorted(p.name for p in (tmp_path / "served").iterdir()) == ["1", "2"]
    exported = [RunConfig.from_json((tmp_path / "served" / v / "assets" / "config.json").read_text()) for v in "12"]
    assert exported[0].run_id == exported[1].run_id is not None and exported[1].epochs == 2
