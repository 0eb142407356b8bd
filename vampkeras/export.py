"""SavedModel export: a model that samples and scores without vampkeras (or TFP) installed.

``tf.saved_model.load(path)`` gives these signatures (images are (N, H, W) float32 in [0, 1]):

* ``serving_default(x)`` → ``{"log_likelihood": (N,), "elbo": (N,)}``: the importance-sampled
  log-likelihood with :data:`SERVING_NUM_SAMPLES` samples, equal to ``log_prob(x, SERVING_NUM_SAMPLES)``,
  and the single-sample ELBO, equal to ``elbo(x)["elbo"]`` (what TF Serving and ``keras.layers.TFSMLayer``
  call by default)
* ``sample(num_samples: int32, seed: int32)`` → ``{"images": (num_samples, H, W)}``
* ``log_prob(x, num_samples: int32)`` → ``{"log_likelihood": (N,)}``: IS estimate, paper §5.2
* ``elbo(x)`` → ``{"elbo", "reconstruction", "kl"}``, each (N,), single sample
* ``encode(x)`` → ``{"mean", "log_var"}``, each (N, M) (the top latent layer)
* ``reconstruct(x)`` → ``{"images": (N, H, W)}``
* ``latent_means(x)`` → ``{"z1": (N, M)}`` (and ``"z2"`` for two-level models): E_q[z|x], for active units
* ``metadata()`` → ``{"config_json": the run's RunConfig as JSON, "format_version": int32, "likelihood":
  "bernoulli" or "discretized_logistic"}``
* mixture priors only: ``sample_component(component, num_samples, seed)`` → ``{"images"}`` drawn with the
  top latent from that one component (a VampPrior's q(z|u_k), paper Figure 4)
* VampPriors only: ``pseudo_inputs()`` → ``{"images": (K, H, W)}``

plus ``assets/config.json``. All randomness is seeded (``log_prob``, ``elbo`` and ``serving_default`` use
fixed seeds), so the same call gives the same numbers.

Every function checks its inputs in the graph (``tf.debugging``) and fails with an InvalidArgumentError whose
message starts with the argument's name: ``num_samples`` in [1, MAX_IMPORTANCE_SAMPLES] (``log_prob``) or
[1, MAX_SAMPLE_IMAGES] (``sample``, ``sample_component``), ``component`` in [0, K), ``x`` of shape
(N, H, W), finite and in [0, 1]; the shape is checked at run time too, since a signature called by TF Serving
or ``saved_model_cli`` is fed any shape. N may be 0: every function of x then gives empty outputs. The
functions that score x under p(x|z) (``log_prob``, ``elbo``, ``serving_default``) of a Bernoulli model also
require x to be binary (0 or 1): the Bernoulli density is defined there only. ``encode``, ``reconstruct`` and ``latent_means`` take any values in [0, 1]: the
VampPrior itself encodes its grey pseudo-inputs with the same encoder, q(z|u_k).

:func:`export` writes a plain SavedModel folder, replacing an earlier one so that a kill at any moment leaves
the old or the new model under the folder's name (or the old one beside it, which the next export or load
finds), or with ``versioned`` a new numbered version ``<base>/<N>/`` of a TF Serving model base path.
:func:`resolve_saved_model` finds the SavedModel behind a folder, a base path or an interrupted export;
:func:`verify_saved_model` tells, without running any of it, whether a SavedModel is one of these. (A SavedModel
is a program, as TensorFlow's security guidance says: loading one that someone else made is trusting them.)
"""

from __future__ import annotations

import errno
import json
import logging
import math
import os
import re
import shutil
import tempfile
from pathlib import Path

import tensorflow as tf

from vampkeras.checkpoints import process_alive
from vampkeras.config import MAX_IMPORTANCE_SAMPLES, MAX_SAMPLE_IMAGES, RunConfig
from vampkeras.errors import VampkerasError
from vampkeras.run_folder import CONFIG_FILE, read_small_file

__all__ = ["export", "ExportModule", "resolve_saved_model", "is_saved_model", "verify_saved_model", "model_versions",
           "exported_config", "interrupted_export", "check_export_location", "check_model_base", "check_writable",
           "SIGNATURES", "OPTIONAL_SIGNATURES", "SERVING_NUM_SAMPLES", "LOG_PROB_SEED", "ELBO_SEED", "CONFIG_ASSET",
           "FORMAT_VERSION"]

logger = logging.getLogger(__name__)

FORMAT_VERSION = 1
CONFIG_ASSET = Path("assets", CONFIG_FILE)       # the run's RunConfig inside a SavedModel folder
LOG_PROB_SEED = 20171
ELBO_SEED = 20172
EXAMPLES_PER_BATCH = 100
# Importance samples of serving_default's log-likelihood: fixed (with the fixed seed), so that a served model
# gives reproducible numbers; the paper's test log-likelihoods use 5000 (`vampkeras evaluate`'s default).
SERVING_NUM_SAMPLES = 1000
# The message of a failed input check starts with the argument's name (see the module docstring).
INPUT_ARGUMENTS = ("x", "num_samples", "component")


def traced(function, input_signature=None):
    """``function`` as a tf.function (of ``input_signature``, a list of specs, if given), without AutoGraph.

    The models' code has no Python control flow on tensors (its loops are explicit ``tf.while_loop``s), so
    AutoGraph's source conversion changes nothing but costs a good part of an export's time
    (``benchmarks/export.py``, numbers in benchmarks/README.md); the evaluator traces its log-likelihood this way too. Code that needed
    AutoGraph would fail to trace, not run differently.
    """
    return tf.function(function, input_signature=input_signature, autograph=False)


def input_error_message(error: tf.errors.InvalidArgumentError) -> str | None:
    """The message of a failed input check, e.g. "x must lie in [0, 1]; it holds values from 0 to 2", or None
    for another error. TensorFlow prints an assertion's data as "assertion failed: [a] [b] ..."."""
    text = (error.message or "").replace("\\'", "'")
    numerics = re.search(r"\b(x must be finite[^:\n]*)", text)
    if numerics:
        return numerics.group(1).strip()
    found = re.search(r"assertion failed: (.*)", text)
    if not found:               # a check that failed while tracing (its values known then): the message's line
        line = re.search(rf"^((?:{'|'.join(INPUT_ARGUMENTS)}) must .*)$", text, re.MULTILINE)
        return line.group(1).strip() if line else None
    parts = re.findall(r"\[(.*?)\](?= \[|$)", found.group(1).strip())
    if not parts or not parts[0].startswith(tuple(f"{name} must" for name in INPUT_ARGUMENTS)):
        return None
    if len(parts) > 1 and parts[1].startswith("Condition"):      # tf.debugging.assert_*: [message] [Condition...]
        return parts[0] + (f"; got {parts[3]}" if len(parts) > 3 else "")
    return " ".join(part.strip() for part in parts)


def image_shape_message(image_shape) -> str:
    """What a function of a model of images (H, W[, C]) says of an x of another shape (before "; got shape ...")."""
    return f"x must be a batch of images of shape (N, {', '.join(str(int(d)) for d in image_shape)})"


class ExportModule(tf.Module):
    """The exported functions, usable in memory too (the evaluator runs the same code)."""

    def __init__(self, model, config_json: str, config_path: str | None = None):
        super().__init__(name="vampkeras_model")
        # The SavedModel holds the model's weights, not the Keras model: tracking the model would drag in its
        # optimizer (three times the weights' size in Adam's slots) and every layer's object graph.
        object.__setattr__(self, "model", model)
        # The tf.Variables inside Keras' variables: the ones the traced functions read. Tracking Keras' wrappers
        # instead saves wrapper copies that a TF1-style loader (TF Serving, saved_model_cli run) restores while
        # the functions' own variables stay uninitialized ("Could not find variable decoder/bias").
        self.model_weights = [getattr(weight, "value", weight) for weight in model.weights]
        self.image_shape = tuple(model.image_shape)
        self.config_json = config_json
        # Known when the functions are traced: the SavedModel checks binary inputs without vampkeras
        self.likelihood = str(model.likelihood)
        self.num_components = model.prior.num_mixture_components
        if config_path is not None:
            self.config_asset = tf.saved_model.Asset(config_path)
        image_spec = tf.TensorSpec([None, *self.image_shape], tf.float32, name="x")
        scalar_int = tf.TensorSpec([], tf.int32)
        self.serving_default = traced(self._serve, [image_spec])
        self.sample = traced(self._sample, [scalar_int, scalar_int])
        self.log_prob = traced(self._log_prob, [image_spec, scalar_int])
        self.elbo = traced(self._elbo, [image_spec])
        self.encode = traced(self._encode, [image_spec])
        self.reconstruct = traced(self._reconstruct, [image_spec])
        self.latent_means = traced(self._latent_means, [image_spec])
        self.metadata = traced(self._metadata, [])
        self.names = ["serving_default", "sample", "log_prob", "elbo", "encode", "reconstruct", "latent_means",
                      "metadata"]
        if self.num_components is not None:
            self.sample_component = traced(self._sample_component, [scalar_int, scalar_int, scalar_int])
            self.names.append("sample_component")
        if model.prior.pseudo_inputs() is not None:
            self.pseudo_inputs = traced(self._pseudo_inputs, [])
            self.names.append("pseudo_inputs")

    def signatures(self) -> dict:
        return {name: getattr(self, name).get_concrete_function() for name in self.names}

    # -- input checks: cheap reductions, next to the work they guard ------------------------------
    def _checked_images(self, x, scored: bool):
        """x (N, H, W[, C]) after asserting its shape, finite values in [0, 1] and, when ``scored`` under a
        Bernoulli likelihood, values in {0, 1}; each failure names ``x``."""
        image_shape = list(self.image_shape)
        x = tf.convert_to_tensor(x)
        shape_message = image_shape_message(image_shape)
        if x.shape.rank is not None and (x.shape.rank != 1 + len(image_shape)
                                         or not x.shape[1:].is_compatible_with(image_shape)):
            # known while tracing: fail here, before the reshapes below fail with a message about reshapes
            raise tf.errors.InvalidArgumentError(None, None, f"{shape_message}; got shape {x.shape}")
        # At run time x may have another rank than the traced one: a signature called by TF Serving,
        # saved_model_cli or loaded.signatures[...] does not check its argument's shape. The rank is therefore
        # read from the values of tf.shape(x), never from its length (known while tracing, so tf.size(shape) is
        # a constant): padded holds x's dimensions, then zeros, so that element 1 + rank(image) is 0 exactly when
        # x has no further dimension (or one of size 0, which the size comparison catches).
        shape = tf.shape(x)
        padded = tf.concat([shape, tf.zeros([len(image_shape) + 2], tf.int32)], axis=0)    # a slice at any rank
        right_shape = (tf.reduce_all(tf.equal(padded[1:1 + len(image_shape)], image_shape))
                       & tf.equal(padded[1 + len(image_shape)], 0)
                       & tf.equal(tf.size(x, out_type=tf.int64),
                                  tf.cast(padded[0], tf.int64) * math.prod(image_shape)))
        # the shape as "(2, 28, 28, 1)", every dimension shown (Assert shows only the first 3 of a tensor)
        got = tf.strings.join(["(", tf.strings.reduce_join(tf.strings.as_string(shape), separator=", "), ")"])
        checks = [tf.debugging.Assert(right_shape, [shape_message + "; got shape", got])]
        with tf.control_dependencies(checks):
            x = tf.debugging.check_numerics(x, "x must be finite (it holds NaN or Inf)")
        # (an assertion whose data are strings and int32 only needs no tf.cond around it: cheaper to trace and save)
        in_range = tf.debugging.Assert(tf.reduce_all((x >= 0.0) & (x <= 1.0)),
                                       ["x must lie in [0, 1]; it holds values from",
                                        tf.strings.as_string(tf.reduce_min(x), shortest=True), "to",
                                        tf.strings.as_string(tf.reduce_max(x), shortest=True)])
        checks = [in_range]
        if scored and self.likelihood == "bernoulli":
            with tf.control_dependencies([in_range]):
                checks.append(tf.debugging.Assert(
                    tf.reduce_all((x == 0.0) | (x == 1.0)),
                    ["x must hold only 0 and 1: the model has a Bernoulli likelihood (binarize the images)"]))
        with tf.control_dependencies(checks):
            return tf.identity(x)

    @staticmethod
    def _checked_count(num_samples, maximum: int):
        """num_samples as int32 after asserting 1 <= num_samples <= ``maximum``."""
        num_samples = tf.cast(num_samples, tf.int32)
        checks = [tf.debugging.assert_greater_equal(num_samples, 1, message="num_samples must be at least 1"),
                  tf.debugging.assert_less_equal(num_samples, maximum, message=f"num_samples must be at most "
                                                                                f"{maximum}")]
        with tf.control_dependencies(checks):
            return tf.identity(num_samples)

    def _checked_component(self, component):
        component = tf.cast(component, tf.int32)
        message = f"component must lie in [0, {self.num_components}): the prior has {self.num_components} components"
        checks = [tf.debugging.assert_greater_equal(component, 0, message=message),
                  tf.debugging.assert_less(component, self.num_components, message=message)]
        with tf.control_dependencies(checks):
            return tf.identity(component)

    # -- the functions ----------------------------------------------------------------------------
    def _flat(self, x):
        return tf.reshape(x, [-1, self.model.num_pixels])

    def _images(self, flat):
        return tf.reshape(flat, [-1, *self.image_shape])

    def _serve(self, x):
        # calls of the two traced functions (not their code again): the same numbers, and one copy of each in
        # the SavedModel
        return {"log_likelihood": self.log_prob(x, tf.constant(SERVING_NUM_SAMPLES))["log_likelihood"],
                "elbo": self.elbo(x)["elbo"]}

    def _sample(self, num_samples, seed):
        num_samples = self._checked_count(num_samples, MAX_SAMPLE_IMAGES)
        return {"images": self._images(self.model.sample(num_samples, tf.cast(seed, tf.int32)))}

    def _sample_component(self, component, num_samples, seed):
        component = self._checked_component(component)
        num_samples = self._checked_count(num_samples, MAX_SAMPLE_IMAGES)
        images = self.model.sample_component(component, num_samples, tf.cast(seed, tf.int32))
        return {"images": self._images(images)}

    def _pseudo_inputs(self):
        return {"images": self._images(self.model.prior.pseudo_inputs())}

    def _log_prob(self, x, num_samples):
        return self.log_prob_given_prior(x, num_samples, self.model.prior_parameters())

    def log_prob_given_prior(self, x, num_samples, parameters):
        """IS log-likelihood of images x (N, H, W[, C]) → {"log_likelihood": (N,)}, with the prior's parameters
        (``model.prior_parameters()``) computed by the caller, once for any number of calls."""
        x = self._checked_images(x, scored=True)
        num_samples = self._checked_count(num_samples, MAX_IMPORTANCE_SAMPLES)
        return {"log_likelihood": self._log_likelihood(x, num_samples, parameters)}

    def _log_likelihood(self, x, num_samples, parameters):
        """(N,) IS estimates for checked images x (N, H, W[, C]), EXAMPLES_PER_BATCH images at a time."""
        flat = self._flat(x)
        count = tf.shape(flat)[0]
        num_batches = (count + EXAMPLES_PER_BATCH - 1) // EXAMPLES_PER_BATCH
        seed = tf.constant([LOG_PROB_SEED, 0], tf.int32)
        samples_per_chunk = max(1, self.model.evaluation_rows // EXAMPLES_PER_BATCH)

        def body(index, results):
            batch = flat[index * EXAMPLES_PER_BATCH:(index + 1) * EXAMPLES_PER_BATCH]
            batch_seed = tf.random.experimental.stateless_fold_in(seed, tf.cast(index, tf.int32))
            values = self.model.log_likelihood(batch, num_samples, batch_seed, parameters, samples_per_chunk)
            return index + 1, results.write(index, values)

        # element_shape [None]: each batch gives a vector, which lets an empty batch (N = 0, no element)
        # concatenate to an empty vector (without it TensorFlow cannot concatenate an empty list)
        _, results = tf.while_loop(lambda index, _: index < num_batches, body,
                                   (tf.constant(0), tf.TensorArray(tf.float32, size=num_batches, infer_shape=False,
                                                                   element_shape=tf.TensorShape([None]))))
        return tf.reshape(results.concat(), [count])

    def _elbo(self, x):
        return self._elbo_terms(self._checked_images(x, scored=True))

    def _elbo_terms(self, x):
        reconstruction, kl = self.model.elbo_terms(self._flat(x), tf.constant([ELBO_SEED, 0], tf.int32))
        return {"elbo": -(reconstruction + kl), "reconstruction": reconstruction, "kl": kl}

    def _encode(self, x):
        mean, log_var = self.model.encode(self._flat(self._checked_images(x, scored=False)))
        return {"mean": mean, "log_var": log_var}

    def _reconstruct(self, x):
        return {"images": self._images(self.model.reconstruct(self._flat(self._checked_images(x, scored=False))))}

    def _latent_means(self, x):
        return self.model.latent_means(self._flat(self._checked_images(x, scored=False)))

    def _metadata(self):
        return {"config_json": tf.constant(self.config_json), "format_version": tf.constant(FORMAT_VERSION),
                "likelihood": tf.constant(self.likelihood)}


# -- where SavedModels live ---------------------------------------------------------------------------
# An export stages the model in a new folder ``.<name>.tmp-<pid>-<token>`` beside its target, holding the
# marker file STAGING_MARKER (which names the export and the pid) from its first instant to its last, and, when
# it replaces an earlier model, moves that one to ``.<name>.old-<pid>-<token>`` (the staging folder's pid and
# token) for the instant between two renames. A leftover is known as the tool's own by that marker, never by
# its name alone: a folder of the user's named alike (``.model.old-backup``) is never moved or deleted.
_LEFTOVER = re.compile(r"^\.(?P<name>.+)\.(?P<kind>tmp|old)-(?P<pid>\d+)-(?P<token>[A-Za-z0-9_]+)$")
_VERSION = re.compile(r"^\d+$")
STAGING_MARKER = ".vampkeras-staging.json"
MAX_CONFIG_BYTES = 1 << 20          # a RunConfig's JSON is under 2 KB; a bigger "config" is not one


def exported_config(folder) -> RunConfig | None:
    """The RunConfig a vampkeras SavedModel ``folder`` was exported with (its config asset), or None if the
    folder holds none that can be read (files of another tool, or a damaged model). Only a regular file of at
    most MAX_CONFIG_BYTES is read."""
    try:
        return RunConfig.from_json(read_small_file(Path(folder) / CONFIG_ASSET, MAX_CONFIG_BYTES).decode())
    except (OSError, UnicodeDecodeError, VampkerasError):
        return None


def _is_own_staging(folder: Path, name: str, pid: int) -> bool:
    """Whether ``folder`` holds the marker an export to ``name`` by process ``pid`` writes into its staging folder."""
    try:
        marker = json.loads(read_small_file(folder / STAGING_MARKER, 4096))
    except (OSError, UnicodeDecodeError, ValueError):
        return False
    return isinstance(marker, dict) and marker.get("export") == name and marker.get("pid") == pid


def _leftovers(directory: Path, kind: str) -> list[tuple[Path, int]]:
    """(path, pid) of the folders exports to ``directory`` left beside it, of ``kind`` "tmp" (staging folders:
    ``.<name>.tmp-<pid>-<token>`` holding the staging marker) or "old" (an earlier model moved aside:
    ``.<name>.old-<pid>-<token>`` whose staging folder, of the same pid and token, is still there). Folders
    of other names, symbolic links, and look-alikes without the marker are not leftovers: they are the user's."""
    if not directory.parent.is_dir():
        return []
    named = {}
    for entry in directory.parent.iterdir():
        match = _LEFTOVER.match(entry.name)
        if match and match["name"] == directory.name and entry.is_dir() and not entry.is_symlink():
            named[match["kind"], int(match["pid"]), match["token"]] = entry
    staging = {(pid, token): path for (found, pid, token), path in named.items()
               if found == "tmp" and _is_own_staging(path, directory.name, pid)}
    if kind == "tmp":
        return [(path, pid) for (pid, _), path in staging.items()]
    return [(path, pid) for (found, pid, token), path in named.items() if found == "old" and (pid, token) in staging]


def interrupted_export(directory) -> Path | None:
    """The model an export killed between its two renames left beside ``directory`` (then missing):
    ``.<name>.old-<pid>-<token>`` beside that export's staging folder, or None. The next :func:`export` moves
    it back; loads read it meanwhile."""
    directory = Path(directory)
    if directory.exists():
        return None
    candidates = [path for path, _ in _leftovers(directory, "old") if is_saved_model(path, follow=False)]
    # more than one only if several exports were killed mid-swap: the latest rename is the latest model
    return max(candidates, key=lambda path: path.stat().st_ctime, default=None)


def model_versions(base) -> list[tuple[int, Path]]:
    """(version, folder) of the numbered SavedModels in a TF Serving model base path, oldest first."""
    base = Path(base)
    if not base.is_dir():
        return []
    return sorted((int(entry.name), entry) for entry in base.iterdir()
                  if _VERSION.match(entry.name) and (entry / "saved_model.pb").is_file())


def resolve_saved_model(path) -> Path | None:
    """The SavedModel folder behind ``path``: ``path`` itself; for a TF Serving model base path its highest
    version ``<path>/<N>``; for an export interrupted while it replaced ``path``, the earlier model kept
    beside it (see :func:`interrupted_export`). None if there is none."""
    path = Path(path)
    if (path / "saved_model.pb").is_file():
        return path
    versions = model_versions(path)
    if versions:
        return versions[-1][1]
    return interrupted_export(path)


def is_saved_model(path, follow: bool = True) -> bool:
    """Whether ``path`` is a SavedModel folder or (``follow``) leads to one: see :func:`resolve_saved_model`."""
    if not follow:
        return (Path(path) / "saved_model.pb").is_file()
    return resolve_saved_model(path) is not None


# -- what a vampkeras SavedModel is, read without running it -----------------------------------------------
# The signatures ExportModule writes: name -> ({argument: kind}, required outputs, optional outputs). Kinds:
# IMAGE_BATCH a float32 (None, H, W[, C]) batch of the model's images, INT_SCALAR an int32 scalar.
IMAGE_BATCH, INT_SCALAR = "image batch", "int32 scalar"
SIGNATURES = {
    "serving_default": ({"x": IMAGE_BATCH}, {"log_likelihood", "elbo"}, set()),
    "sample": ({"num_samples": INT_SCALAR, "seed": INT_SCALAR}, {"images"}, set()),
    "log_prob": ({"x": IMAGE_BATCH, "num_samples": INT_SCALAR}, {"log_likelihood"}, set()),
    "elbo": ({"x": IMAGE_BATCH}, {"elbo", "reconstruction", "kl"}, set()),
    "encode": ({"x": IMAGE_BATCH}, {"mean", "log_var"}, set()),
    "reconstruct": ({"x": IMAGE_BATCH}, {"images"}, set()),
    "latent_means": ({"x": IMAGE_BATCH}, {"z1"}, {"z2"}),
    "metadata": ({}, {"config_json", "format_version", "likelihood"}, set()),
}
OPTIONAL_SIGNATURES = {           # mixture priors, VampPriors
    "sample_component": ({"component": INT_SCALAR, "num_samples": INT_SCALAR, "seed": INT_SCALAR}, {"images"}, set()),
    "pseudo_inputs": ({}, {"images"}, set()),
}
# TensorFlow adds this signature to every SavedModel (a no-op that TF1 loaders run after restoring variables).
_INIT_SIGNATURE = "__saved_model_init_op"
MAX_GRAPH_BYTES = 256 << 20     # saved_model.pb: a vampkeras model's is a few MB (its weights lie in variables/)
# Operations that reach outside the tensors of the call: files, Python, the network, other devices and
# processes, nested serialized graphs. No function of vampkeras' uses one; the save and restore functions that
# TensorFlow writes beside them use CHECKPOINT_OPERATIONS (never run by tf.saved_model.load). A screen for a
# hostile graph's plainest means, not a sandbox: see :func:`verify_saved_model`.
CHECKPOINT_OPERATIONS = frozenset({"SaveV2", "RestoreV2", "MergeV2Checkpoints"})
OUTSIDE_OPERATIONS = CHECKPOINT_OPERATIONS | frozenset({
    "ReadFile", "WriteFile", "MatchingFiles", "ImmutableConst", "FileSystemSetConfiguration",
    "PyFunc", "PyFuncStateless", "EagerPyFunc",
    "Print", "PrintV2",
    "Save", "SaveSlices", "Restore", "RestoreSlice", "DTensorRestoreV2", "LoadAndRemapMatrix",
    "GenerateVocabRemapping", "CalibrationStatisticsSaver",
    "InitializeTableFromTextFile", "InitializeTableFromTextFileV2",
    "DecodeProtoV2", "EncodeProto",
    "CreateSummaryFileWriter", "CreateSummaryDbWriter", "SummaryWriter", "WriteSummary", "WriteRawProtoSummary",
    "WriteScalarSummary", "WriteHistogramSummary", "WriteImageSummary", "WriteAudioSummary", "WriteGraphSummary",
    "ImportEvent", "FlushSummaryWriter", "CloseSummaryWriter", "StatsAggregatorSetSummaryWriter",
    "WholeFileReader", "WholeFileReaderV2", "TextLineReader", "TextLineReaderV2", "TFRecordReader",
    "TFRecordReaderV2", "FixedLengthRecordReader", "FixedLengthRecordReaderV2", "LMDBReader", "IdentityReader",
    "IdentityReaderV2", "RecordInput",
    "TFRecordDataset", "TFRecordDatasetV2", "TextLineDataset", "FixedLengthRecordDataset",
    "FixedLengthRecordDatasetV2", "CSVDataset", "CSVDatasetV2", "ExperimentalCSVDataset", "LMDBDataset",
    "ExperimentalLMDBDataset", "SqlDataset", "ExperimentalSqlDataset", "MatchingFilesDataset",
    "ExperimentalMatchingFilesDataset", "SaveDataset", "SaveDatasetV2", "LoadDataset", "SnapshotDataset",
    "SnapshotDatasetV2", "SnapshotDatasetReader", "SnapshotNestedDatasetReader", "SnapshotChunkDataset",
    "ListSnapshotChunksDataset", "CacheDataset", "CacheDatasetV2", "DatasetToTFRecord",
    "ExperimentalDatasetToTFRecord", "DatasetFromGraph", "DistributedSave", "DataServiceDataset",
    "DataServiceDatasetV2", "DataServiceDatasetV3", "DataServiceDatasetV4",
    "DebugIdentity", "DebugIdentityV2", "DebugIdentityV3", "DebugNanCount", "DebugNumericSummary",
    "DebugNumericSummaryV2",
    "RemoteCall", "Send", "Recv", "_Send", "_Recv", "_HostSend", "_HostRecv", "RpcClient", "RpcCall",
    "RpcServer", "RpcServerRegister", "RpcServerStart",
})


def _function_references(nodes, functions) -> set[str]:
    """The library functions that ``nodes`` (NodeDefs) call: as their op, or in a function-valued attribute
    (PartitionedCall's f, While's body and cond, If's branches, a dataset's map function, ...)."""
    found = set()
    for node in nodes:
        if node.op in functions:
            found.add(node.op)
        for value in node.attr.values():
            if value.func.name:
                found.add(value.func.name)
            found.update(function.name for function in value.list.func)
    return found


def _reachable(roots, functions) -> set[str]:
    """The names of the functions ``roots`` and the functions they call, transitively (names in ``functions``)."""
    seen, pending = set(), [name for name in roots if name in functions]
    while pending:
        name = pending.pop()
        if name not in seen:
            seen.add(name)
            pending.extend(_function_references(functions[name].node_def, functions) - seen)
    return seen


def _outside_operation(meta_graph) -> str | None:
    """An operation of OUTSIDE_OPERATIONS that ``meta_graph``'s graph or functions use ("WriteFile in function
    f"), or None. Checkpoint operations are allowed only in functions that the saver alone calls."""
    functions = {function.signature.name: function for function in meta_graph.graph_def.library.function}
    saver = meta_graph.saver_def
    saver_nodes = {saver.restore_op_name, saver.save_tensor_name.partition(":")[0]} - {""}
    other_nodes = [node for node in meta_graph.graph_def.node if node.name not in saver_nodes]
    saver_roots = _function_references([node for node in meta_graph.graph_def.node if node.name in saver_nodes],
                                       functions)
    loaded = _reachable(_function_references(other_nodes, functions)
                        | set(meta_graph.object_graph_def.concrete_functions), functions)
    saver_only = _reachable(saver_roots, functions) - loaded
    for node in meta_graph.graph_def.node:
        if node.op in OUTSIDE_OPERATIONS and node.name not in saver_nodes:
            return f"{node.op} in its graph"
    for name, function in functions.items():
        allowed = CHECKPOINT_OPERATIONS if name in saver_only else frozenset()
        for node in function.node_def:
            if node.op in OUTSIDE_OPERATIONS - allowed:
                return f"{node.op} in its function {name}"
    return None


def _tensor_kind(info, image_shape) -> str | None:
    """The kind (IMAGE_BATCH, INT_SCALAR) of a signature's TensorInfo, or None for another tensor."""
    shape = None if info.tensor_shape.unknown_rank else [dim.size for dim in info.tensor_shape.dim]
    if info.dtype == tf.int32.as_datatype_enum and shape == []:
        return INT_SCALAR
    if info.dtype == tf.float32.as_datatype_enum and shape == [-1, *image_shape]:
        return IMAGE_BATCH
    return None


def _signature_problem(signatures) -> str | None:
    """Why ``signatures`` (a MetaGraphDef's signature_def map) are not those of :class:`ExportModule`, or None."""
    known = {**SIGNATURES, **OPTIONAL_SIGNATURES}
    unknown = sorted(set(signatures) - set(known) - {_INIT_SIGNATURE})
    if unknown:
        return f"it has signatures vampkeras does not write: {', '.join(unknown[:5])}"
    missing = sorted(set(SIGNATURES) - set(signatures))
    if missing:
        return f"it lacks the signatures {', '.join(missing)}"
    images = signatures["sample"].outputs.get("images")
    image_shape = None if images is None or images.tensor_shape.unknown_rank else \
        [dim.size for dim in images.tensor_shape.dim][1:]
    if (image_shape is None or len(image_shape) not in (2, 3) or min(image_shape, default=-1) < 1
            or (len(image_shape) == 3 and image_shape[-1] == 1)):
        return "its sample signature gives no (N, H, W) or (N, H, W, C) images"
    for name, (arguments, outputs, optional) in known.items():
        if name not in signatures:
            continue
        signature = signatures[name]
        found = {key: _tensor_kind(info, image_shape) for key, info in signature.inputs.items()}
        if found != arguments:
            return f"its {name} signature takes other arguments"
        if not outputs <= set(signature.outputs) <= outputs | optional:
            return f"its {name} signature gives other outputs"
    return None


def verify_saved_model(folder) -> RunConfig:
    """The RunConfig of the vampkeras SavedModel ``folder`` (its ``assets/config.json``), after checking
    what can be checked without running any of its graph; a VampkerasError if it is not one.

    A SavedModel is a program: ``tf.saved_model.load`` may run functions of it (the initializers of its
    resources), and every call runs its graph. So before anything of it is loaded, its ``saved_model.pb`` (at
    most MAX_GRAPH_BYTES, a regular file) is parsed as data: it must hold one graph tagged "serve" in TF2's
    object format, exactly the signatures :class:`ExportModule` writes (SIGNATURES, and OPTIONAL_SIGNATURES),
    with their arguments and outputs, and no operation that reaches outside the tensors of a call
    (OUTSIDE_OPERATIONS: files, Python, the network); and its config asset must be a RunConfig. Another tool's
    SavedModel, or a hostile one whose functions write files, is refused here, with nothing of it run.

    What passes is still a program, as TensorFlow's own security guidance says of every SavedModel: a graph
    of ordinary operations can still compute wrong numbers, or exhaust memory and time. Loading a SavedModel
    that someone else made (vampkeras' or not) is trusting them, like running their code.
    """
    from tensorflow.core.protobuf import saved_model_pb2
    from google.protobuf.message import DecodeError

    folder = Path(folder)
    try:
        data = read_small_file(folder / "saved_model.pb", MAX_GRAPH_BYTES)
    except OSError as error:
        reason = error.strerror or type(error).__name__
        raise VampkerasError(f"{folder} is not a vampkeras SavedModel (its saved_model.pb cannot be read: "
                             f"{reason})") from None
    saved_model = saved_model_pb2.SavedModel()
    try:
        saved_model.ParseFromString(data)
    except (DecodeError, RuntimeError, ValueError) as error:
        reason = (str(error).strip().splitlines() or [type(error).__name__])[0]
        raise VampkerasError(f"{folder} is damaged or incomplete: its saved_model.pb cannot be parsed ({reason}); "
                             "export or copy it again") from None

    def refuse(problem):
        raise VampkerasError(f"{folder} is not a vampkeras SavedModel ({problem})")

    if len(saved_model.meta_graphs) != 1 or list(saved_model.meta_graphs[0].meta_info_def.tags) != ["serve"]:
        refuse("it does not hold exactly one graph, tagged serve")
    meta_graph = saved_model.meta_graphs[0]
    if not meta_graph.object_graph_def.nodes:
        refuse("it is in TensorFlow 1's format")
    problem = _signature_problem(meta_graph.signature_def)
    if problem is not None:
        refuse(problem)
    operation = _outside_operation(meta_graph)
    if operation is not None:
        refuse(f"it uses the operation {operation}, which reaches outside the model and which vampkeras never "
               "writes")
    config = exported_config(folder)
    if config is None:
        refuse(f"it has no readable {CONFIG_ASSET.as_posix()}")
    return config


def _real(path) -> Path:
    return Path(os.path.realpath(os.path.abspath(path)))


def check_export_location(export_dir, run_dir) -> None:
    """Refuse an export folder that is the run folder, holds it, or lies inside it (compared as real paths,
    after symbolic links and ``..``): replacing it would delete the run, and a model inside the run folder
    would be moved, copied and locked with the run's own files."""
    target, run = _real(export_dir), _real(run_dir)
    if target == run:
        relation = "is the run folder"
    elif run.is_relative_to(target):
        relation = f"contains the run folder {run_dir}"
    elif target.is_relative_to(run):
        relation = f"lies inside the run folder {run_dir}"
    else:
        return
    raise VampkerasError(f"the export folder {export_dir} {relation}; the SavedModel must go to a folder outside "
                         "the run folder: choose another --export")


def check_writable(folder) -> None:
    """Refuse an export that cannot write into ``folder`` (the folder its SavedModel goes into: the export
    folder's parent, or a model base path): its nearest existing ancestor must be a writable folder. Checked
    before any work, so that hours of training do not end in a failed export."""
    from vampkeras.checkpoints import check_writable_folder

    check_writable_folder(folder, f"the SavedModel into {folder}")


def check_model_base(base) -> None:
    """Refuse a TF Serving model base path that cannot take a new version: a file, a SavedModel itself, or a
    folder holding other files but no numbered versions (not a model base path: a mistyped folder)."""
    base = Path(base)
    if base.exists() and not base.is_dir():
        raise VampkerasError(f"the model base path {base} is a file, not a folder")
    if (base / "saved_model.pb").is_file():
        raise VampkerasError(f"{base} is a SavedModel, not a model base path: a versioned export writes numbered "
                             "versions <base>/1, <base>/2, ... into a folder of its own; choose another --export")
    if base.is_dir():
        names = [entry.name for entry in base.iterdir() if not entry.name.startswith(".")]
        if names and not any(_VERSION.match(name) for name in names):
            raise VampkerasError(f"{base} holds files but no numbered model versions, so it is no model base path; "
                                 "choose a new or empty folder, or the base path of earlier versions")


# -- writing ------------------------------------------------------------------------------------------
def _umask() -> int:
    """The process's umask, read without changing it where the kernel tells (Linux), else set and restored."""
    try:
        with open("/proc/self/status") as status:
            for line in status:
                if line.startswith("Umask:"):
                    return int(line.split()[1], 8)
    except (OSError, ValueError, IndexError):
        pass
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


def _honour_umask(folder: Path) -> None:
    """Give ``folder`` and everything in it the modes the umask gives new files (0644/0755 under 022):
    TensorFlow creates folders 0755 whatever the umask, and a staging folder of tempfile's would be 0700."""
    mask = _umask()
    for root, folders, files in os.walk(folder):
        os.chmod(root, 0o777 & ~mask)
        for name in files:
            os.chmod(os.path.join(root, name), 0o666 & ~mask)


def _fsync_folder(folder: Path) -> None:
    """Make a rename in ``folder`` durable (POSIX; a no-op where folders cannot be opened)."""
    try:
        handle = os.open(folder, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(handle)
    except OSError:
        pass
    finally:
        os.close(handle)


def _write_saved_model(model, config_json: str, target: Path, staging: Path) -> None:
    """Save ``model``'s :class:`ExportModule` as a SavedModel in the new folder ``target``, with
    ``assets/config.json`` (written first into ``staging``)."""
    config_path = staging / CONFIG_ASSET.name
    config_path.write_text(config_json)
    module = ExportModule(model, config_json, str(config_path))
    tf.saved_model.save(module, str(target), signatures=module.signatures())


def _new_staging(folder: Path, name: str) -> Path:
    """A new staging folder ``.<name>.tmp-<pid>-<token>`` in ``folder``, holding the marker that makes it (and
    the earlier model the export moves aside under its pid and token) known as this tool's own. (A kill in the
    instant between the folder's creation and the marker's leaves an empty folder, which stays: it cannot be
    told from a user's.)"""
    staging = Path(tempfile.mkdtemp(prefix=f".{name}.tmp-{os.getpid()}-", dir=folder))
    with open(staging / STAGING_MARKER, "w") as stream:
        json.dump({"export": name, "pid": os.getpid(), "created_by": "vampkeras export"}, stream)
    return staging


def _aside_name(staging: Path) -> str:
    """The name under which the export of ``staging`` moves an earlier model aside: ``.<name>.old-<pid>-<token>``."""
    match = _LEFTOVER.match(staging.name)
    return f".{match['name']}.old-{match['pid']}-{match['token']}"


def _remove_staging(staging: Path) -> None:
    """Delete a staging folder, its marker last: a kill midway leaves a folder still known as the tool's own,
    which the next export deletes."""
    try:
        entries = [entry for entry in staging.iterdir() if entry.name != STAGING_MARKER]
    except OSError:
        return
    for entry in entries:
        if entry.is_dir() and not entry.is_symlink():
            shutil.rmtree(entry, ignore_errors=True)
        else:
            try:
                os.unlink(entry)
            except OSError:
                pass
    shutil.rmtree(staging, ignore_errors=True)


def _stage(model, config_json: str, folder: Path, name: str) -> tuple[Path, Path]:
    """Write the SavedModel into a new staging folder inside ``folder`` (see :func:`_new_staging`); returns
    (staging, model folder)."""
    staging = _new_staging(folder, name)
    try:
        target = staging / "model"
        _write_saved_model(model, config_json, target, staging)
        _honour_umask(target)
    except BaseException:
        _remove_staging(staging)
        raise
    return staging, target


def _clear_leftovers(directory: Path) -> None:
    """Before an export to ``directory``: move an interrupted export's earlier model back into place, and
    delete what dead exports left (earlier models already replaced, then staging folders: these mark the
    former as the tool's own, so they go last). Only folders known as the tool's own by their marker are
    touched (see :func:`_leftovers`)."""
    recovered = interrupted_export(directory)
    if recovered is not None:
        os.replace(recovered, directory)
        _fsync_folder(directory.parent)
        logger.warning("an earlier export to %s was interrupted; its previous model is back in place", directory)
    if directory.exists():
        for path, _ in _leftovers(directory, "old"):
            shutil.rmtree(path, ignore_errors=True)
    for path, pid in _leftovers(directory, "tmp"):
        if not process_alive(pid):         # (a live process may be exporting there right now)
            _remove_staging(path)


def export(model, config_json: str, directory, overwrite: bool = False, versioned: bool = False) -> Path:
    """Write ``model`` as a SavedModel to ``directory``, atomically; returns the SavedModel's folder.

    The model is saved into a temporary folder and renamed into place only when complete, so an interrupted
    export never leaves a half-written model. An existing non-empty ``directory`` is refused unless
    ``overwrite``; it is then replaced by two renames (old model aside, new one in), and a kill between them
    leaves the old model beside ``directory``, which :func:`resolve_saved_model` finds and the next export
    moves back before anything else.

    With ``versioned``, ``directory`` is a TF Serving model base path: the model becomes its next version,
    ``<directory>/<N>`` with N one more than the highest version there (1 in a new or empty folder); an
    existing version is never overwritten.
    """
    directory = Path(directory)
    if directory.name in ("", ".", ".."):       # ".", "a/..": the folder by its own name, beside its siblings
        directory = Path(os.path.abspath(directory))
    if versioned:
        return _export_version(model, config_json, directory)
    _clear_leftovers(directory)
    if directory.exists() and not directory.is_dir():
        raise VampkerasError(f"the export folder {directory} is a file; choose another --export folder")
    if directory.exists() and any(directory.iterdir()) and not overwrite:
        raise VampkerasError(f"the export folder {directory} already holds files; choose another --export "
                             "folder or pass --overwrite")
    directory.parent.mkdir(parents=True, exist_ok=True)
    staging, target = _stage(model, config_json, directory.parent, directory.name)
    try:
        if directory.exists():
            old = directory.with_name(_aside_name(staging))
            os.replace(directory, old)
            os.replace(target, directory)
            _fsync_folder(directory.parent)
            shutil.rmtree(old, ignore_errors=True)
        else:
            os.replace(target, directory)
            _fsync_folder(directory.parent)
    finally:
        _remove_staging(staging)
    logger.info("exported SavedModel to %s", directory)
    return directory


def _export_version(model, config_json: str, base: Path) -> Path:
    check_model_base(base)
    base.mkdir(parents=True, exist_ok=True)
    for path, pid in _leftovers(base / "version", "tmp"):
        if not process_alive(pid):
            _remove_staging(path)
    staging, target = _stage(model, config_json, base, "version")
    try:
        for _ in range(100):
            version = 1 + max((int(entry.name) for entry in base.iterdir() if _VERSION.match(entry.name)),
                              default=0)
            destination = base / str(version)
            try:
                # rename(2) moves a folder onto a missing or empty one only: a version another process wrote
                # meanwhile is never replaced (then the next number is tried)
                os.rename(target, destination)
                break
            except OSError as error:
                if error.errno not in (errno.EEXIST, errno.ENOTEMPTY):
                    raise
        else:
            raise VampkerasError(f"cannot find a free version number in {base}: other processes keep adding "
                                 "versions there")
        _fsync_folder(base)
    finally:
        _remove_staging(staging)
    logger.info("exported SavedModel version %d to %s", version, destination)
    return destination
