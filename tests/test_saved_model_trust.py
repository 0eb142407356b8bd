"""Issue 33, item 6: a SavedModel is read as data before anything of it runs. One that is not vampkeras'
(another tool's, or a hostile one whose functions write files, even with vampkeras' signatures and config
asset) is refused by `sample`, `score` and `evaluate` with one `Error:` line and exit 2, and nothing of its
graph has run: not its functions, not the initializers that `tf.saved_model.load` itself runs."""

import os
import shutil

import numpy as np
import pytest
import tensorflow as tf
from click.testing import CliRunner
from tensorflow.core.protobuf import saved_model_pb2

from vampkeras import export
from vampkeras.config import RunConfig
from vampkeras.data import DATASETS
from vampkeras.errors import VampkerasError
from vampkeras_cli.main import main

HEIGHT = WIDTH = 28         # mnist5k


def mnist_config():
    return RunConfig(num_components=3, latent_dim=2, hidden_units=8).resolve(DATASETS["mnist5k"])


class Tripwire(tf.saved_model.experimental.TrackableResource):
    """A resource whose initializer, which ``tf.saved_model.load`` runs, writes ``marker``."""

    def __init__(self, marker):
        super().__init__()
        self.marker = marker

    def _create_resource(self):
        return tf.raw_ops.VarHandleOp(dtype=tf.int32, shape=[], shared_name="tripwire")

    def _initialize(self):
        tf.io.write_file(self.marker, "loaded")


def hostile_module(marker, config_path=None, exact=True):
    """A module whose every function vampkeras calls writes ``marker`` when run (then returns what vampkeras'
    function would). ``exact``: with the arguments and outputs of vampkeras' signatures (else of others);
    ``config_path``: with vampkeras' config asset (a copy of a real run's config)."""
    module = tf.Module()
    module.tripwire = Tripwire(marker)

    def written(value):
        with tf.control_dependencies([tf.io.write_file(marker, "ran")]):
            return tf.identity(value)

    x = tf.TensorSpec([None, HEIGHT, WIDTH] if exact else [None], tf.float32)
    scalar = tf.TensorSpec([], tf.int32)
    per_image = lambda x: written(tf.zeros(tf.shape(x)[:1]))            # noqa: E731
    functions = {
        "metadata": (lambda: {"config_json": written(tf.constant("{}")), "format_version": written(tf.constant(1)),
                              "likelihood": written(tf.constant("bernoulli"))}, []),
        "sample": (lambda num_samples, seed: {"images": written(tf.zeros([num_samples, HEIGHT, WIDTH]))},
                   [scalar, scalar]),
        "serving_default": (lambda x: {"log_likelihood": per_image(x), "elbo": per_image(x)}, [x]),
        "log_prob": (lambda x, num_samples: {"log_likelihood": per_image(x)}, [x, scalar]),
        "elbo": (lambda x: {"elbo": per_image(x), "reconstruction": per_image(x), "kl": per_image(x)}, [x]),
        "encode": (lambda x: {"mean": per_image(x), "log_var": per_image(x)}, [x]),
        "reconstruct": (lambda x: {"images": written(x)}, [x]),
        "latent_means": (lambda x: {"z1": per_image(x)}, [x]),
    }
    for name, (function, specs) in functions.items():
        setattr(module, name, tf.function(function, input_signature=specs))
    if config_path is not None:
        module.config_asset = tf.saved_model.Asset(str(config_path))
    return module, {name: getattr(module, name).get_concrete_function() for name in functions}


@pytest.fixture
def hostile_models(tmp_path):
    """{kind: SavedModel folder}, and the marker file that any of their graph writes when it runs."""
    marker = tmp_path / "ran.txt"
    (tmp_path / "config").mkdir()
    (tmp_path / "config" / "config.json").write_text(mnist_config().to_json())
    models = {}
    for kind, config_path, exact in [("foreign", None, False), ("forged", tmp_path / "config" / "config.json", True)]:
        module, signatures = hostile_module(str(marker), config_path, exact)
        models[kind] = tmp_path / kind
        tf.saved_model.save(module, str(models[kind]), signatures=signatures)
    assert not marker.exists()                  # saving ran nothing of them
    return models, marker


def assert_one_error(result, *fragments):
    assert result.exit_code == 2, result.output
    assert "Traceback" not in result.output, result.output
    assert [line for line in result.output.splitlines() if "Error:" in line] == [result.output.strip()]
    for fragment in fragments:
        assert fragment in result.output, result.output


@pytest.mark.parametrize("kind, reason", [
    ("foreign", "its serving_default signature takes other arguments"),
    ("forged", "uses the operation WriteFile"),
])
def test_a_hostile_savedmodel_is_refused_before_anything_of_it_runs(hostile_models, tmp_path, kind, reason):
    models, marker = hostile_models
    model = models[kind]
    np.save(tmp_path / "in.npy", np.zeros([2, HEIGHT, WIDTH], np.float32))
    runner = CliRunner()
    for command in (["sample", model, "-n", 2, "--out", tmp_path / "s.png"],
                    ["score", model, tmp_path / "in.npy", "--samples", 2, "--out", tmp_path / "s.csv", "--quiet"],
                    ["evaluate", model, "--samples", 2, "--max-examples", 10, "--quiet"]):
        result = runner.invoke(main, [str(a) for a in command])
        assert not marker.exists(), (command, result.output)        # nothing of the model ran
        assert_one_error(result, str(model), "is not a vampkeras SavedModel", reason)
    assert not (tmp_path / "s.png").exists() and not (tmp_path / "s.csv").exists()
    # the models are as hostile as they look: loading one runs its tripwire, a call its function
    loaded = tf.saved_model.load(str(model))
    assert marker.read_text() == "loaded"
    loaded.metadata()
    assert marker.read_text() == "ran"


# -- what is checked, on a real export --------------------------------------------------------------------------
@pytest.fixture(scope="module")
def real_export(tmp_path_factory):
    from vampkeras.models import build_model

    config = mnist_config()
    folder = tmp_path_factory.mktemp("real") / "model"
    export.export(build_model(config, DATASETS["mnist5k"]), config.to_json(), folder)
    return folder, config


def edited_copy(real_export, tmp_path, edit):
    """A copy of the real export whose saved_model.pb ``edit`` (a function of the parsed SavedModel) changed."""
    folder = tmp_path / "edited"
    shutil.copytree(real_export[0], folder)
    saved_model = saved_model_pb2.SavedModel()
    saved_model.ParseFromString((folder / "saved_model.pb").read_bytes())
    edit(saved_model.meta_graphs[0])
    (folder / "saved_model.pb").write_bytes(saved_model.SerializeToString())
    return folder


def test_a_real_export_passes_and_its_signatures_are_the_table(real_export):
    folder, config = real_export
    assert export.verify_saved_model(folder) == config
    saved_model = saved_model_pb2.SavedModel()
    saved_model.ParseFromString((folder / "saved_model.pb").read_bytes())
    written = set(saved_model.meta_graphs[0].signature_def) - {"__saved_model_init_op"}
    assert written == set(export.SIGNATURES) | set(export.OPTIONAL_SIGNATURES)       # a VampPrior has both


def add_write_file(meta_graph):
    """Make one op of the metadata function a WriteFile (what a hostile edit of a real export would add)."""
    function = next(f for f in meta_graph.graph_def.library.function if "_metadata" in f.signature.name)
    function.node_def[0].op = "WriteFile"


def add_signature(meta_graph):
    meta_graph.signature_def["extra"].CopyFrom(meta_graph.signature_def["elbo"])


def drop_signature(meta_graph):
    del meta_graph.signature_def["log_prob"]


def change_argument(meta_graph):
    meta_graph.signature_def["elbo"].inputs["x"].tensor_shape.dim[1].size = 27


def tf1_format(meta_graph):
    meta_graph.ClearField("object_graph_def")


@pytest.mark.parametrize("edit, reason", [
    (add_write_file, "uses the operation WriteFile in its function"),
    (add_signature, "signatures vampkeras does not write: extra"),
    (drop_signature, "lacks the signatures log_prob"),
    (change_argument, "its elbo signature takes other arguments"),
    (tf1_format, "TensorFlow 1's format"),
])
def test_an_edited_saved_model_pb_is_refused(real_export, tmp_path, edit, reason):
    from vampkeras.trained_model import TrainedModel

    folder = edited_copy(real_export, tmp_path, edit)
    with pytest.raises(VampkerasError, match="is not a vampkeras SavedModel") as refused:
        TrainedModel.load(folder)
    assert reason in str(refused.value)


def test_the_files_it_reads_are_bounded_regular_files(real_export, tmp_path, monkeypatch):
    folder = tmp_path / "copy"
    shutil.copytree(real_export[0], folder)
    config = folder / "assets" / "config.json"
    config.unlink()
    with pytest.raises(VampkerasError, match="has no readable assets/config.json"):
        export.verify_saved_model(folder)
    os.mkfifo(config)                           # a FIFO is refused, not read (a read would wait forever)
    with pytest.raises(VampkerasError, match="has no readable assets/config.json"):
        export.verify_saved_model(folder)
    config.unlink()
    config.write_text(real_export[1].to_json() + " " * export.MAX_CONFIG_BYTES)
    with pytest.raises(VampkerasError, match="has no readable assets/config.json"):
        export.verify_saved_model(folder)
    config.write_text(real_export[1].to_json())
    assert export.verify_saved_model(folder) == real_export[1]
    graph = folder / "saved_model.pb"
    monkeypatch.setattr(export, "MAX_GRAPH_BYTES", graph.stat().st_size - 1)
    with pytest.raises(VampkerasError, match="saved_model.pb cannot be read"):
        export.verify_saved_model(folder)
    monkeypatch.undo()
    graph.write_bytes(graph.read_bytes()[:1000])
    with pytest.raises(VampkerasError, match="is damaged or incomplete"):
        export.verify_saved_model(folder)
