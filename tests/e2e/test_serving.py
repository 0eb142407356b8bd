"""The SavedModel as the TensorFlow ecosystem uses it: TensorFlow's own `saved_model_cli`, Keras' TFSMLayer in a
process that cannot import vampkeras, and the functions' input checks."""

import json
import os
import re
import subprocess
import sys
import textwrap

import numpy as np
import pytest
import tensorflow as tf

from vampkeras.config import MAX_IMPORTANCE_SAMPLES, MAX_SAMPLE_IMAGES
from vampkeras.data import load_dataset
from vampkeras.export import SERVING_NUM_SAMPLES, ExportModule, input_error_message

SAVED_MODEL_CLI = os.path.join(os.path.dirname(sys.executable), "saved_model_cli")
QUIET_TF = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3", "PYTHONPATH": ""}


@pytest.fixture(scope="module")
def loaded(trained_run):
    return tf.saved_model.load(str(trained_run.export_dir))


@pytest.fixture(scope="module")
def images():
    """Seven binarized test images (N, 28, 28): not a whole batch of EXAMPLES_PER_BATCH."""
    return load_dataset("mnist5k", max_examples=1000).test[:7].reshape(-1, 28, 28)


@pytest.fixture(scope="module")
def expected(loaded, images):
    """What serving_default must return: log_prob with SERVING_NUM_SAMPLES samples and the ELBO, in process."""
    x = tf.constant(images)
    return {"log_likelihood": loaded.log_prob(x, tf.constant(SERVING_NUM_SAMPLES))["log_likelihood"].numpy(),
            "elbo": loaded.elbo(x)["elbo"].numpy()}


def saved_model_cli(*arguments, cwd):
    return subprocess.run([SAVED_MODEL_CLI, *map(str, arguments)], capture_output=True, text=True, env=QUIET_TF,
                          cwd=cwd, timeout=300)


@pytest.mark.slow
def test_saved_model_cli_shows_and_runs_serving_default(trained_run, images, expected, tmp_path):
    np.save(tmp_path / "x.npy", images)
    np.save(tmp_path / "grey.npy", images * 0.5)
    shown = saved_model_cli("show", "--dir", trained_run.export_dir, "--tag_set", "serve", "--signature_def",
                            "serving_default", cwd=tmp_path)
    assert shown.returncode == 0, shown.stderr[-2000:]
    assert "inputs['x']" in shown.stdout and "shape: (-1, 28, 28)" in shown.stdout
    assert "outputs['log_likelihood']" in shown.stdout and "outputs['elbo']" in shown.stdout
    done = saved_model_cli("run", "--dir", trained_run.export_dir, "--tag_set", "serve", "--signature_def",
                           "serving_default", "--inputs", f"x={tmp_path / 'x.npy'}", "--outdir", tmp_path / "out",
                           cwd=tmp_path)
    assert done.returncode == 0, done.stderr[-3000:]
    for name, values in expected.items():
        np.testing.assert_allclose(np.load(tmp_path / "out" / f"{name}.npy"), values, rtol=1e-6)
    refused = saved_model_cli("run", "--dir", trained_run.export_dir, "--tag_set", "serve", "--signature_def",
                              "serving_default", "--inputs", f"x={tmp_path / 'grey.npy'}", cwd=tmp_path)
    assert refused.returncode != 0
    assert "x must hold only 0 and 1" in refused.stderr


TFSM_SCRIPT = textwrap.dedent("""
    import json, sys
    for name in ("vampkeras", "vampkeras_cli", "tensorflow_probability"):
        sys.modules[name] = None                # any import of them now fails
    for name in ("vampkeras", "vampkeras_cli", "tensorflow_probability"):
        try:
            __import__(name)
        except ImportError:
            pass
        else:
            raise SystemExit(name + " was importable")
    import keras
    import numpy as np
    layer = keras.layers.TFSMLayer(sys.argv[1], call_endpoint="serving_default")
    inputs = keras.Input(shape=(28, 28))
    model = keras.Model(inputs, layer(inputs))       # a served model composes with Keras layers
    x = np.load(sys.argv[2])
    outputs = {name: np.asarray(value).tolist() for name, value in model(x).items()}
    print(json.dumps(outputs))
""")


def test_tfsmlayer_serves_the_model_in_a_process_without_vampkeras(trained_run, images, expected, tmp_path):
    np.save(tmp_path / "x.npy", images)
    # -I: isolated mode (no PYTHONPATH, no user site, not the current folder), run from an empty folder
    done = subprocess.run([sys.executable, "-I", "-c", TFSM_SCRIPT, str(trained_run.export_dir),
                           str(tmp_path / "x.npy")], capture_output=True, text=True, env=QUIET_TF, cwd=tmp_path,
                          timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    outputs = json.loads(done.stdout.strip().splitlines()[-1])
    assert set(outputs) == {"log_likelihood", "elbo"}
    for name, values in expected.items():
        np.testing.assert_allclose(outputs[name], values, rtol=1e-6)


# -- input checks: every bad input fails in the graph with a message that names the argument ------------------
def call(loaded, function, *arguments):
    return getattr(loaded, function)(*[tf.constant(a) for a in arguments])


GREY = np.full([2, 28, 28], 0.5, np.float32)
OUT_OF_RANGE = np.full([2, 28, 28], 1.5, np.float32)
NAN = np.where(np.arange(2 * 28 * 28).reshape(2, 28, 28) == 5, np.nan, 0.0).astype(np.float32)
BINARY = np.zeros([2, 28, 28], np.float32)


@pytest.mark.parametrize("function, arguments, message", [
    ("log_prob", (BINARY, 0), "num_samples must be at least 1; got 0"),
    ("log_prob", (BINARY, -3), "num_samples must be at least 1; got -3"),
    ("log_prob", (BINARY, MAX_IMPORTANCE_SAMPLES + 1), f"num_samples must be at most {MAX_IMPORTANCE_SAMPLES}"),
    ("log_prob", (BINARY, 2 ** 31 - 1), f"num_samples must be at most {MAX_IMPORTANCE_SAMPLES}"),
    ("sample", (0, 1), "num_samples must be at least 1"),
    ("sample", (MAX_SAMPLE_IMAGES + 1, 1), f"num_samples must be at most {MAX_SAMPLE_IMAGES}"),
    ("sample_component", (-1, 3, 0), r"component must lie in \[0, 500\).*; got -1"),
    ("sample_component", (500, 3, 0), r"component must lie in \[0, 500\).*; got 500"),
    ("sample_component", (2, 0, 0), "num_samples must be at least 1"),
    ("log_prob", (GREY, 10), "x must hold only 0 and 1: the model has a Bernoulli likelihood"),
    ("elbo", (GREY,), "x must hold only 0 and 1"),
    ("serving_default", (GREY,), "x must hold only 0 and 1"),
    ("serving_default", (OUT_OF_RANGE,), r"x must lie in \[0, 1\]; it holds values from 1.5 to 1.5"),
    ("encode", (OUT_OF_RANGE,), r"x must lie in \[0, 1\]"),
    ("reconstruct", (-OUT_OF_RANGE,), r"x must lie in \[0, 1\]; it holds values from -1.5"),
    ("latent_means", (NAN,), "x must be finite"),
    ("log_prob", (NAN, 5), "x must be finite"),
])
def test_a_bad_input_fails_with_a_message_that_names_it(loaded, function, arguments, message):
    with pytest.raises(tf.errors.InvalidArgumentError) as caught:
        call(loaded, function, *arguments)
    name = message.split(" ", 1)[0]
    assert f"{name} must" in caught.value.message          # TensorFlow's own message names the argument ...
    assert re.fullmatch(message + ".*", input_error_message(caught.value))     # ... and reads as one line


def test_the_checks_let_good_inputs_through_unchanged(loaded, images):
    assert call(loaded, "log_prob", images, 1)["log_likelihood"].shape == (7,)
    assert call(loaded, "sample_component", 499, 1, 0)["images"].shape == (1, 28, 28)
    assert call(loaded, "sample", 1, 0)["images"].shape == (1, 28, 28)
    grey = call(loaded, "encode", GREY)                     # encoding grey images is fine (pseudo-inputs are)
    assert grey["mean"].shape == (2, 40)
    assert call(loaded, "reconstruct", np.zeros([0, 28, 28], np.float32))["images"].shape == (0, 28, 28)


def test_the_in_memory_functions_check_the_image_shape_too(trained_run):
    """Evaluation traces ExportModule.log_prob_given_prior without a fixed signature: a wrong shape is one
    InvalidArgumentError naming x, however the shape is known."""
    from vampkeras.config import RunConfig
    from vampkeras.data import DATASETS
    from vampkeras.models import build_model_for_weights

    config = RunConfig.from_json((trained_run.run_dir / "config.json").read_text())
    model = build_model_for_weights(config, DATASETS[config.dataset])
    module = ExportModule(model, config.to_json())
    parameters = model.prior_parameters()
    static = tf.function(module.log_prob_given_prior, autograph=False)
    for shape in ([2, 27, 27], [2, 784], [28, 28]):
        with pytest.raises(tf.errors.InvalidArgumentError, match=r"x must be a batch of images of shape \(N, 28, 28\)"):
            static(tf.zeros(shape), tf.constant(3), parameters)
    dynamic = tf.function(module.log_prob_given_prior, autograph=False, input_signature=[
        tf.TensorSpec(None, tf.float32), tf.TensorSpec([], tf.int32),
        {name: tf.TensorSpec(value.shape, value.dtype) for name, value in parameters.items()}])
    with pytest.raises(tf.errors.InvalidArgumentError, match=r"x must be a batch of images of shape \(N, 28, 28\)"):
        dynamic(tf.zeros([2, 27, 27]), tf.constant(3), parameters)
    assert dynamic(tf.zeros([2, 28, 28]), tf.constant(3), parameters)["log_likelihood"].shape == (2,)


# -- issue 33 item 17: empty batches, and x of another rank, through every signature ----------------------------
# The signatures that take a batch x (N, 28, 28), with their other arguments.
BATCH_SIGNATURES = {"serving_default": {}, "log_prob": {"num_samples": 3}, "elbo": {}, "encode": {},
                    "reconstruct": {}, "latent_means": {}}
EMPTY_OUTPUTS = {"serving_default": {"log_likelihood": (0,), "elbo": (0,)}, "log_prob": {"log_likelihood": (0,)},
                 "elbo": {"elbo": (0,), "reconstruction": (0,), "kl": (0,)}, "encode": {"mean": (0, 40),
                 "log_var": (0, 40)}, "reconstruct": {"images": (0, 28, 28)}, "latent_means": {"z1": (0, 40)}}


def test_an_empty_batch_gives_empty_outputs_from_every_signature(loaded, trained_run):
    """serving_default and log_prob failed with "TensorListConcatV2 ... empty tensor list" for N = 0."""
    from vampkeras.trained_model import TrainedModel

    for name, others in BATCH_SIGNATURES.items():
        arguments = {"x": tf.zeros([0, 28, 28]), **{key: tf.constant(value) for key, value in others.items()}}
        # the signature (TF Serving, saved_model_cli) and the function (tf.saved_model.load) alike
        for function in (loaded.signatures[name], getattr(loaded, name)):
            outputs = function(**arguments)
            assert {key: tuple(value.shape) for key, value in outputs.items()} == EMPTY_OUTPUTS[name], name
    assert TrainedModel.load(trained_run.export_dir).log_prob(np.zeros([0, 28, 28], np.float32), 5).shape == (0,)


@pytest.mark.parametrize("shape", [(2, 28, 28, 1), (2, 28, 28, 3), (2, 784), (28, 28), (), (2, 28, 28, 0),
                                   (1, 2, 28, 28)])
def test_a_batch_of_another_rank_is_refused_naming_x_and_the_shape(loaded, trained_run, shape):
    """A signature does not check its arguments' shapes (TF Serving and saved_model_cli feed it anything):
    a rank-4 x failed with "In[0] should be a scalar", naming nothing."""
    from vampkeras.errors import VampkerasError
    from vampkeras.trained_model import TrainedModel

    expected = f"x must be a batch of images of shape (N, 28, 28); got shape ({', '.join(map(str, shape))})"
    for name, others in BATCH_SIGNATURES.items():
        with pytest.raises(tf.errors.InvalidArgumentError) as caught:
            loaded.signatures[name](x=tf.zeros(shape), **{key: tf.constant(value) for key, value in others.items()})
        assert input_error_message(caught.value) == expected, name
    # through vampkeras' own interface: one VampkerasError with the same words
    with pytest.raises(VampkerasError, match=re.escape("x must be a batch of images of shape (N, 28, 28); got shape")):
        TrainedModel.load(trained_run.export_dir).log_prob(np.zeros(shape, np.float32), 5)
