"""One dataclass per run: every option of `vampkeras train`, validated, saved as JSON beside the checkpoints."""

from __future__ import annotations

import dataclasses
import json
import math
import os
import time
import types
import typing
import uuid
from pathlib import Path
from typing import Any

from vampkeras.errors import ConfigError

__all__ = ["RunConfig", "MODELS", "PRIORS", "PSEUDO_INITS", "NOISY_DATA_STD", "OPTIMIZERS", "INITS",
           "GATED_NORMGRADS", "STRATEGIES", "LIKELIHOODS", "MAX_IMPORTANCE_SAMPLES", "MAX_SAMPLE_IMAGES",
           "SEED_LIMIT", "MODEL_FIELDS"]

MODELS = ("vae", "hvae", "convhvae", "pixelhvae")
PRIORS = ("standard", "mog", "vampprior", "vampprior-data")
PSEUDO_INITS = ("random", "data", "noisy-data")
NOISY_DATA_STD = 0.01    # --pseudo-init noisy-data: the std of the noise on the images (the authors' value)
OPTIMIZERS = ("adam-normgrad", "adam")
INITS = ("paper", "authors")                    # vampkeras.layers.initialize_as_authors
GATED_NORMGRADS = ("joint", "per-half")         # vampkeras.optimizers.AdamNormGrad
STRATEGIES = ("default", "mirrored", "multiworker")
LIKELIHOODS = ("bernoulli", "discretized_logistic")     # vampkeras.likelihoods.LIKELIHOODS, without TensorFlow

# Upper bounds of the SavedModel's counts (checked by its functions, and fit for CLI ranges before TensorFlow
# loads). Importance samples per image: far beyond any useful estimate (the paper uses 5000), and far from
# where log_prob's int32 chunk arithmetic (S + chunk - 1) would overflow. Images per sample() call: their
# (n, H, W) float32 output stays a few hundred MB for 28x28 images, with an int32 element count up to
# 146x146 images; more images take several calls with different seeds.
MAX_IMPORTANCE_SAMPLES = 2 ** 30
MAX_SAMPLE_IMAGES = 100_000
# Seeds are in [0, SEED_LIMIT): TensorFlow's stateless seeds and the per-epoch seeds derived from them stay
# within int32, and NumPy takes them as they are.
SEED_LIMIT = 2 ** 31

# Fields that change what the model is; a resumed run must agree on all of them.
MODEL_FIELDS = (
    "dataset", "likelihood", "binarization", "split", "model", "prior", "num_components", "pseudo_init", "weighted",
    "pseudo_init_mean", "pseudo_init_std", "latent_dim", "hidden_units", "networks", "max_examples", "seed",
    "batch_size", "optimizer", "lr", "warmup", "mixed_precision", "init", "gated_normgrad",
)


def _is_instance(value: Any, kind: type) -> bool:
    """isinstance as JSON means it: a bool is not a number, an int is a float."""
    if isinstance(value, bool):
        return kind is bool
    if kind is float:
        return isinstance(value, (int, float))
    return isinstance(value, kind)


def _fits(value: Any, hint) -> bool:
    """Whether a JSON value fits a field's type hint: ``X | None``, ``list[X]``, ``dict[...]`` or a plain type."""
    origin, arguments = typing.get_origin(hint), typing.get_args(hint)
    if origin in (typing.Union, types.UnionType):
        return any(_fits(value, argument) for argument in arguments)
    if origin is list:
        return isinstance(value, list) and all(_fits(item, arguments[0]) for item in value) if arguments \
            else isinstance(value, list)
    if origin is dict:
        return isinstance(value, dict)
    if hint is Any:
        return True
    return _is_instance(value, hint)


def _type_name(hint) -> str:
    arguments = typing.get_args(hint)
    if typing.get_origin(hint) in (typing.Union, types.UnionType):
        return " or ".join(_type_name(argument) for argument in arguments)
    if hint is type(None):
        return "null"
    if typing.get_origin(hint) is list:
        return f"a list of {_type_name(arguments[0])}" if arguments else "a list"
    return getattr(hint, "__name__", str(hint))


def checked_fields(cls, values: dict[str, Any]) -> dict[str, Any]:
    """``values`` (a saved dataclass's JSON object) checked against the dataclass ``cls``: no unknown key, every
    value of its field's type (a hand-edited or foreign file is one :class:`ConfigError`, never a traceback)."""
    known = {f.name for f in dataclasses.fields(cls)}
    unknown = sorted(set(values) - known)
    if unknown:
        raise ConfigError(f"unknown configuration keys: {', '.join(unknown)}")
    hints = typing.get_type_hints(cls)
    for name, value in values.items():
        if not _fits(value, hints[name]):
            raise ConfigError(f"the configuration's {name!r} must be {_type_name(hints[name])}, not {value!r}")
    return values


@dataclasses.dataclass
class RunConfig:
    """Everything that defines one training run (paper §5.1 defaults).

    `None` for `num_components`, `pseudo_init_mean`, `pseudo_init_std`, `likelihood` and `binarization` means
    "the dataset's default" (for your own data: what the data are, see :mod:`vampkeras.data.user_data`),
    filled in by :meth:`resolve` once the dataset is known. `dataset` is a named dataset, a folder or
    ``.npy``/``.npz`` file (its resolved path) or ``tfds:NAME[/CONFIG]``; `data` records what was loaded
    (source, image shape, modelling, each split's size and content hash), so that a resumed run, `evaluate`
    and `report` refuse data that changed.
    """

    dataset: str = "mnist5k"
    likelihood: str | None = None    # "bernoulli" | "discretized_logistic"
    binarization: str | None = None  # "dynamic" | "static" | "none"
    split: list | None = None        # train/validation/test fractions for data without their own splits
    data: dict | None = None
    model: str = "vae"
    prior: str = "vampprior"
    num_components: int | None = None
    pseudo_init: str = "random"
    weighted: bool = False
    pseudo_init_mean: float | None = None
    pseudo_init_std: float | None = None
    latent_dim: int = 40
    hidden_units: int = 300
    networks: str | None = None      # your own encoder/decoder: the qualified name of their factory (training.train)
    epochs: int = 2000
    warmup: int = 100
    patience: int = 50
    batch_size: int = 100
    lr: float = 5e-4
    optimizer: str = "adam-normgrad"
    gated_normgrad: str = "joint"    # adam-normgrad on a gated layer's fused h/g halves: together or each alone
    init: str = "paper"              # "paper": Glorot, zero biases; "authors": as the authors' released code
    seed: int = 14
    max_examples: int | None = None
    data_dir: str | None = None
    run_dir: str | None = None
    export_dir: str | None = None
    export_versioned: bool = False   # export_dir is a TF Serving model base path: write <export_dir>/<next version>/
    run_id: str | None = None        # random, given to a new run: tells an export of this run from another run's
    run_path: str | None = None      # the run folder's real path when it last started: tells a copy (cp -a) from a move
    jit: bool | None = None          # None: graph mode or XLA, whichever measures faster here (vampkeras.tuning)
    mixed_precision: bool = False    # train with float16 layers (float32 variables and densities, loss scaling)
    keep_checkpoints: int = 3
    image_every: int = 10
    deterministic: bool = True
    strategy: str = "default"
    replicas: int | None = None

    def validate(self) -> "RunConfig":
        """Raise :class:`ConfigError` naming the first option that is out of range."""

        def need(condition: bool, message: str) -> None:
            if not condition:
                raise ConfigError(message)

        from vampkeras.data.registry import DATASETS     # (the registry loads without TensorFlow)
        from vampkeras.data.user_data import BINARIZATIONS, is_user_source

        need(self.dataset in DATASETS or is_user_source(self.dataset),
             f"unknown dataset {self.dataset!r}; choose one of: {', '.join(DATASETS)} (or give a folder of images, "
             "a .npy/.npz file or tfds:NAME)")
        need(self.likelihood is None or self.likelihood in LIKELIHOODS,
             f"unknown --likelihood {self.likelihood!r}; choose one of: {', '.join(LIKELIHOODS)}")
        need(self.binarization is None or self.binarization in BINARIZATIONS,
             f"unknown --binarize {self.binarization!r}; choose one of: {', '.join(BINARIZATIONS)}")
        need(self.split is None or (len(self.split) == 3 and all(_is_instance(f, float) and math.isfinite(f)
                                                                 and f > 0 for f in self.split)),
             f"--split takes three fractions train,validation,test above 0, not {self.split}")
        need(self.model in MODELS, f"unknown model {self.model!r}; choose one of: {', '.join(MODELS)}")
        need(self.prior in PRIORS, f"unknown prior {self.prior!r}; choose one of: {', '.join(PRIORS)}")
        need(self.pseudo_init in PSEUDO_INITS,
             f"unknown --pseudo-init {self.pseudo_init!r}; choose one of: {', '.join(PSEUDO_INITS)}")
        need(self.optimizer in OPTIMIZERS,
             f"unknown optimizer {self.optimizer!r}; choose one of: {', '.join(OPTIMIZERS)}")
        need(self.gated_normgrad in GATED_NORMGRADS,
             f"unknown --gated-normgrad {self.gated_normgrad!r}; choose one of: {', '.join(GATED_NORMGRADS)}")
        need(self.gated_normgrad == "joint" or self.optimizer == "adam-normgrad",
             "--gated-normgrad per-half applies to --optimizer adam-normgrad only")
        need(self.init in INITS, f"unknown --init {self.init!r}; choose one of: {', '.join(INITS)}")
        need(self.num_components is None or self.num_components >= 1, "--components must be at least 1")
        need(not self.weighted or self.prior in ("mog", "vampprior", "vampprior-data"),
             "--weighted needs a mixture prior (mog, vampprior or vampprior-data)")
        need(self.pseudo_init_std is None or self.pseudo_init_std >= 0, "the pseudo-input init std must be >= 0")
        need(self.latent_dim >= 1, "the latent dimension must be at least 1")
        need(self.hidden_units >= 1, "the number of hidden units must be at least 1")
        need(self.epochs >= 1, "--epochs must be at least 1")
        need(self.warmup >= 0, "--warmup must be >= 0 (0 disables the KL warm-up)")
        need(self.patience >= 1, "--patience must be at least 1")
        need(self.batch_size >= 1, "--batch-size must be at least 1")
        need(math.isfinite(self.lr) and self.lr > 0, "--lr must be a finite number > 0")
        need(0 <= self.seed < SEED_LIMIT, f"--seed must be in [0, 2^31), got {self.seed}")
        need(self.pseudo_init_mean is None or math.isfinite(self.pseudo_init_mean),
             "the pseudo-input init mean must be a finite number")
        need(self.pseudo_init_std is None or math.isfinite(self.pseudo_init_std),
             "the pseudo-input init std must be a finite number")
        need(self.max_examples is None or self.max_examples >= 1, "--max-examples must be at least 1")
        need(self.keep_checkpoints >= 1, "at least one checkpoint must be kept")
        need(self.strategy in STRATEGIES, f"unknown --strategy {self.strategy!r}; choose one of: {', '.join(STRATEGIES)}")
        need(self.replicas is None or self.replicas >= 1, "--replicas must be at least 1")
        need(self.replicas is None or self.strategy != "multiworker",
             "--replicas applies to --strategy mirrored only (each multiworker worker uses its GPUs or its CPU)")
        need(self.replicas is None or self.strategy == "mirrored",
             "--replicas applies to --strategy mirrored only (it splits the CPU into logical devices for it)")
        need(self.image_every >= 0, "--image-every must be >= 0 (0: no images in TensorBoard)")
        self._check_path_names()
        return self

    def _check_path_names(self) -> None:
        """Refuse (ConfigError) a run folder, export or data folder that no file system can hold (empty, a name
        over 255 bytes...: :func:`vampkeras.checkpoints.check_path_name`), before anything is created."""
        from vampkeras.checkpoints import check_path_name
        from vampkeras.errors import VampkerasError

        for option, value in (("--run-dir", self.run_dir), ("--export", self.export_dir),
                              ("--data-dir", self.data_dir or None)):      # (an empty --data-dir: the default)
            if value is not None:
                try:
                    check_path_name(value, option)
                except VampkerasError as error:
                    raise ConfigError(str(error)) from None

    def resolve(self, spec) -> "RunConfig":
        """Fill the dataset-dependent defaults from a :class:`vampkeras.data.DatasetSpec`: K, the pseudo-input
        initialisation, the likelihood and the binarization."""
        if self.likelihood is None:
            self.likelihood = spec.likelihood
        if self.binarization is None:
            self.binarization = spec.binarization
        if self.num_components is None:
            self.num_components = spec.num_components
        if self.pseudo_init_mean is None:
            self.pseudo_init_mean = spec.pseudo_init_mean
        if self.pseudo_init_std is None:
            self.pseudo_init_std = spec.pseudo_init_std
        return self

    @property
    def dataset_label(self) -> str:
        """The dataset's name in run and export folder names: a named dataset's name, a folder's or file's name,
        or tfds-NAME[-CONFIG]."""
        from vampkeras.data.registry import DATASETS
        from vampkeras.data.user_data import DataSource, TFDS_PREFIX
        if self.dataset in DATASETS:
            return self.dataset
        if self.dataset.startswith(TFDS_PREFIX):
            return DataSource("tfds", self.dataset[len(TFDS_PREFIX):]).label
        return DataSource("path", self.dataset).label

    @property
    def run_name(self) -> str:
        return Path(self.run_dir).name if self.run_dir else f"{self.dataset_label}-{self.model}-{self.prior}"

    def with_default_paths(self) -> "RunConfig":
        """Defaults of a new run: `run_dir` (runs/<dataset>-<model>-<prior>-<timestamp>), `export_dir`
        (saved_models/<run name>), a fresh random `run_id` (saved in config.json and in every export of the
        run, so that a later export knows a SavedModel of this run, wherever the run folder is reached from) and
        `run_path`, the run folder's real path (:meth:`with_run_path`)."""
        if self.run_id is None:
            self.run_id = uuid.uuid4().hex
        if self.run_dir is None:
            stamp = time.strftime("%Y%m%d-%H%M%S")
            self.run_dir = os.path.join("runs", f"{self.dataset_label}-{self.model}-{self.prior}-{stamp}")
        if self.export_dir is None:
            self.export_dir = os.path.join("saved_models", Path(self.run_dir).name)
        return self.with_run_path()

    def with_run_path(self) -> "RunConfig":
        """Record where the run folder is now: `run_path`, the real path of `run_dir` (links and ``..``
        resolved). A run folder copied elsewhere carries its original's `run_id` and, until it starts, its
        `run_path`: an export that names this run id and another run path still holding the run is the
        original's (see :func:`vampkeras.run_setup.check_export_target`)."""
        if self.run_dir is not None:
            self.run_path = os.path.realpath(self.run_dir)
        return self

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), indent=2, sort_keys=True)

    @classmethod
    def from_dict(cls, values: dict[str, Any]) -> "RunConfig":
        return cls(**checked_fields(cls, values))

    @classmethod
    def from_json(cls, text: str) -> "RunConfig":
        try:
            values = json.loads(text)
        except json.JSONDecodeError as error:
            raise ConfigError(f"the saved configuration is not valid JSON: {error}") from None
        if not isinstance(values, dict):
            raise ConfigError("the saved configuration is not a JSON object")
        return cls.from_dict(values)

    def model_differences(self, other: "RunConfig") -> list[str]:
        """Human-readable list of the model-defining fields in which `other` differs from this config."""
        return [
            f"{name}: saved {getattr(self, name)!r}, given {getattr(other, name)!r}"
            for name in MODEL_FIELDS
            if getattr(self, name) != getattr(other, name)
        ]
