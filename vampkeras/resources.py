"""How much memory a run needs, and how much this process may use: checked before a run creates anything, so
that data or a model too large for the machine is one clear refusal instead of an out-of-memory kill or a
ResourceExhaustedError in the middle of a run.

What the process may use (:func:`host_memory_limit`) is the memory limit of its cgroup where one is set (cgroup
v2 ``memory.max``, v1 ``memory.limit_in_bytes``, of the process's cgroup and every cgroup above it), else the
machine's physical memory; training on a GPU also needs the model to fit that GPU's memory
(:func:`gpu_memory_limit`). The limit, not the memory free at the moment: the answer must not depend on what
else happens to run.

What a model needs (:func:`model_estimate`) is counted from the config and the image shape without building the
model: its parameters (exactly, for vampkeras' networks: tests/test_resources.py compares the count with built
models), each held four times in training (the weights, their gradients and Adam's two moments) plus one
temporary, and the activations of a training batch and of the VampPrior's K pseudo-inputs, forward and
backward (an upper bound within a small factor: on 28x28 images 1.9 times what convHVAE and PixelHVAE
took), and TensorFlow's own memory (:data:`RUNTIME_BYTES`). What the data need is counted by the loader from
the files' headers before anything is decoded (:mod:`vampkeras.data.user_data`) and, for a run, from the loaded
arrays.

The host's limit needs nothing but the file system (the data loaders ask for it before TensorFlow loads); the
model's count reads the networks' sizes from :mod:`vampkeras.models.networks`, and the GPU's limit asks
TensorFlow.
"""

from __future__ import annotations

import dataclasses
import logging
import os
from pathlib import Path

from vampkeras import shapes
from vampkeras.errors import VampkerasError

__all__ = ["check_training_memory", "model_estimate", "ModelEstimate", "MemoryLimit", "host_memory_limit",
           "physical_memory", "cgroup_memory_limit", "gpu_memory_limit", "parameter_count", "training_data_bytes",
           "describe_bytes"]

logger = logging.getLogger(__name__)

GIB = 2 ** 30
MIB = 2 ** 20
# Where the process's own cgroup and mounts are described (a seam: tests point it to fake files)
PROC_SELF = Path("/proc/self")
# cgroup v1 writes "no limit" as the largest page-aligned int64; anything from 2^60 on is no limit in practice
_NO_LIMIT = 2 ** 60
FLOAT_BYTES = 4
# Training holds each parameter as the weight, its gradient and Adam's two moments, plus one temporary of the
# update (AdamNormGrad's normalized gradient): 5 float32 copies
TRAINING_COPIES = 5
# Floats an example's activations take per output unit of a gated layer (the fused pre-activation, its two
# halves, the sigmoid and the product), and per value of the likelihood (the discretized logistic's CDFs, logs
# and selections; the Bernoulli needs fewer): counted twice, for the forward and the backward pass
GATED_FLOATS = 6
LIKELIHOOD_FLOATS = 20
BACKWARD_FACTOR = 2
# The memory of TensorFlow itself in a training process, beyond the model and the data: its libraries, graphs
# and thread pools (measured on a CPU: 0.7 GiB once vampkeras and TensorFlow are imported, 0.25 GiB more for a
# small VAE's training)
RUNTIME_BYTES = GIB


def describe_bytes(count: float) -> str:
    """'9.6 GiB', '312.5 MiB': a size for messages."""
    return f"{count / GIB:.1f} GiB" if count >= GIB else f"{max(count / MIB, 0.1):.1f} MiB"


@dataclasses.dataclass(frozen=True)
class MemoryLimit:
    """What this process may use: ``bytes``, and where that number comes from (for messages)."""

    bytes: int
    source: str

    def __str__(self) -> str:
        return f"{describe_bytes(self.bytes)} ({self.source})"


def physical_memory() -> int:
    """The machine's physical memory in bytes."""
    return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")


def _unescape(field: str) -> str:
    """A /proc/self/mountinfo path field, whose spaces and the like are octal escapes (\\040)."""
    import re
    return re.sub(r"\\([0-7]{3})", lambda match: chr(int(match.group(1), 8)), field)


def _cgroup_mounts(proc: Path) -> list[tuple[str, Path, str]]:
    """(version, mount point, mount root) of the cgroup file systems that hold memory limits: every cgroup2
    mount ("2"), and the cgroup v1 mounts of the memory controller ("1")."""
    mounts = []
    try:
        lines = (proc / "mountinfo").read_text().splitlines()
    except OSError:
        return mounts
    for line in lines:
        fields = line.split()
        if " - " not in line or len(fields) < 5:
            continue
        after = line.split(" - ", 1)[1].split()
        if not after:
            continue
        root, mount_point = _unescape(fields[3]), Path(_unescape(fields[4]))
        if after[0] == "cgroup2":
            mounts.append(("2", mount_point, root))
        elif after[0] == "cgroup" and len(after) >= 3 and "memory" in after[2].split(","):
            mounts.append(("1", mount_point, root))
    return mounts


def _read_limit(path: Path) -> int | None:
    """The limit in a memory.max or memory.limit_in_bytes file; None for "max", no limit, or no such file."""
    try:
        text = path.read_text().strip()
    except OSError:
        return None
    if not text.isdigit():
        return None                 # "max": no limit
    value = int(text)
    return value if value < _NO_LIMIT else None


def cgroup_memory_limit(proc: Path | None = None) -> tuple[int, Path] | None:
    """The tightest memory limit of this process's cgroups and every cgroup above them (v2 and v1 alike), and
    the file that sets it; None where no limit is set. ``proc``: the /proc/self to read (a seam for tests)."""
    proc = PROC_SELF if proc is None else Path(proc)
    try:
        memberships = (proc / "cgroup").read_text().splitlines()
    except OSError:
        return None
    paths = {}
    for line in memberships:
        parts = line.split(":", 2)
        if len(parts) != 3:
            continue
        hierarchy, controllers, path = parts
        if hierarchy == "0" and controllers == "":
            paths["2"] = path
        elif "memory" in controllers.split(","):
            paths["1"] = path
    best = None
    for version, mount_point, root in _cgroup_mounts(proc):
        if version not in paths:
            continue
        path = paths[version]
        # inside a container the mount's root is the container's own cgroup, which /proc/self/cgroup names in full
        if root != "/" and (path == root or path.startswith(root.rstrip("/") + "/")):
            path = path[len(root.rstrip("/")):] or "/"
        name = "memory.max" if version == "2" else "memory.limit_in_bytes"
        folder = mount_point / path.lstrip("/")
        while True:
            limit = _read_limit(folder / name)
            if limit is not None and (best is None or limit < best[0]):
                best = (limit, folder / name)
            if folder == mount_point or mount_point not in folder.parents:
                break
            folder = folder.parent
    return best


def host_memory_limit(proc: Path | None = None) -> MemoryLimit:
    """What this process may use of the machine's memory: its cgroup limit where one is set and below the
    physical memory, else the physical memory."""
    physical = physical_memory()
    cgroup = cgroup_memory_limit(proc)
    if cgroup is not None and cgroup[0] < physical:
        return MemoryLimit(cgroup[0], f"the limit of its cgroup, {cgroup[1]}")
    return MemoryLimit(physical, "the machine's physical memory")


def gpu_memory_limit() -> MemoryLimit | None:
    """The memory TensorFlow may use on the smallest visible GPU, or None when no GPU is visible (training then
    runs on the CPU) or its memory cannot be read (then logged, and the run not checked against it). The number
    is TensorFlow's own: the memory limit of its allocator on that device."""
    import tensorflow as tf

    if not tf.config.list_physical_devices("GPU"):
        return None
    try:
        # the runtime's own devices first (as training creates them): device_lib then reports theirs, and
        # creates no others
        tf.config.list_logical_devices("GPU")
        from tensorflow.python.client import device_lib     # (the one API that reports a device's memory limit)
        limits = [(int(device.memory_limit), device.name) for device in device_lib.list_local_devices()
                  if device.device_type == "GPU" and device.memory_limit]
    except Exception as error:          # (a probe: the run goes on unchecked rather than fail on it)
        logger.warning("could not read the GPU's memory (%s); the run is not checked against it", error)
        return None
    if not limits:
        return None
    limit, name = min(limits)
    return MemoryLimit(limit, f"what TensorFlow may allocate on {name}")


# -- what a model needs -------------------------------------------------------------------------------
def _dense(inputs: int, units: int) -> int:
    return inputs * units + units


def _gated(inputs: int, units: int) -> int:
    return _dense(inputs, 2 * units)


def _conv(kernel: int, channels: int, filters: int) -> int:
    return kernel * kernel * channels * filters + filters


def _gated_conv(kernel: int, channels: int, filters: int) -> int:
    return _conv(kernel, channels, 2 * filters)


def _gaussian_mlp(inputs: int, hidden: int, latent: int) -> int:
    """:class:`~vampkeras.models.networks.GaussianMLP`: two gated layers and a mean and log-variance head."""
    return _gated(inputs, hidden) + _gated(hidden, hidden) + 2 * _dense(hidden, latent)


def _conv_stack(channels: int, stack) -> int:
    total = 0
    for filters, kernel, _ in stack:
        total += _gated_conv(kernel, channels, filters)
        channels = filters
    return total


@dataclasses.dataclass(frozen=True)
class ModelEstimate:
    """A model's memory in training: ``parameters`` (the prior's included), ``state_bytes`` (the weights,
    gradients, optimizer moments and an update's temporary) and ``activation_bytes`` (a batch forward and
    backward, and the VampPrior's pseudo-inputs through the encoder). ``counted`` False: your own networks,
    whose parameters are not counted (only the prior's are)."""

    parameters: int
    state_bytes: int
    activation_bytes: int
    batch_size: int
    counted: bool = True

    @property
    def total_bytes(self) -> int:
        return self.state_bytes + self.activation_bytes

    def describe(self) -> str:
        own = "; your own networks not counted" if not self.counted else ""
        return (f"{self.parameters / 1e6:,.1f} million parameters: {describe_bytes(self.state_bytes)} with their "
                f"gradients and the optimizer's moments, and {describe_bytes(self.activation_bytes)} of activations "
                f"for a batch of {self.batch_size}{own}")


def parameter_count(config, image_shape, likelihood: str, networks=None) -> int:
    """The number of parameters (trainable or not) of the model ``config`` describes for images of
    ``image_shape`` under ``likelihood``, the prior's included, as :func:`vampkeras.models.build_model` builds it
    (``model.count_params()``); with your own ``networks`` the prior's only. Counted from the architecture,
    without building anything."""
    from vampkeras.models.networks import (DECODER_CONV_CHANNELS, DECODER_CONV_LAYERS, PIXELCNN_CHANNELS,
                                           PIXELCNN_LAYERS, Z1_CONV_STACK, Z2_CONV_STACK, conv_output_size)

    num_values = shapes.num_values(image_shape)
    channels = shapes.channels(image_shape)
    per_value = 1 if likelihood == "bernoulli" else 2
    hidden, latent = config.hidden_units, config.latent_dim
    components = config.num_components or 0
    if config.prior == "standard":
        prior = 0
    elif config.prior == "mog":
        prior = 2 * components * latent + components
    else:                               # the VampPrior's pseudo-inputs and its mixture weights
        prior = components * num_values + components
    prior += 1                          # (the model's KL weight β, a non-trainable weight)
    if networks is not None:
        return prior
    if config.model == "vae":
        encoder = _gaussian_mlp(num_values, hidden, latent)
        decoder = _gated(latent, hidden) + _gated(hidden, hidden) + _dense(hidden, per_value * num_values)
        return prior + encoder + decoder
    p_z1 = _gaussian_mlp(latent, hidden, latent)
    if config.model == "hvae":
        q_z2 = _gaussian_mlp(num_values, hidden, latent)
        q_z1 = (_gated(num_values, hidden) + _gated(latent, hidden) + _gated(2 * hidden, hidden)
                + 2 * _dense(hidden, latent))
        p_x = (2 * _gated(latent, hidden) + _gated(2 * hidden, hidden)
               + _dense(hidden, per_value * num_values))
        return prior + q_z2 + q_z1 + p_x + p_z1
    z2_features = conv_output_size(image_shape, Z2_CONV_STACK)
    z1_features = conv_output_size(image_shape, Z1_CONV_STACK)
    q_z2 = _conv_stack(channels, Z2_CONV_STACK) + 2 * _dense(z2_features, latent)
    q_z1 = (_conv_stack(channels, Z1_CONV_STACK) + _gated(latent, z1_features) + _gated(2 * z1_features, hidden)
            + 2 * _dense(hidden, latent))
    if config.model == "convhvae":
        p_x = 2 * _gated(latent, hidden) + _gated(2 * hidden, num_values)
        p_x += _gated_conv(3, channels, DECODER_CONV_CHANNELS)
        p_x += (DECODER_CONV_LAYERS - 1) * _gated_conv(3, DECODER_CONV_CHANNELS, DECODER_CONV_CHANNELS)
        p_x += _conv(1, DECODER_CONV_CHANNELS, per_value * channels)
    else:                               # pixelhvae
        positions = shapes.num_positions(image_shape)
        p_x = 2 * _gated(latent, positions) + _conv(3, channels + 2, PIXELCNN_CHANNELS)
        p_x += (PIXELCNN_LAYERS - 1) * _conv(3, PIXELCNN_CHANNELS, PIXELCNN_CHANNELS)
        p_x += _conv(1, PIXELCNN_CHANNELS, per_value * channels)
    return prior + q_z2 + q_z1 + p_x + p_z1


def _activation_floats(config, image_shape, likelihood: str) -> tuple[int, int]:
    """Floats of activations (forward) per training example, and per pseudo-input through the encoder."""
    from vampkeras.models.networks import (DECODER_CONV_CHANNELS, DECODER_CONV_LAYERS, PIXELCNN_CHANNELS,
                                           PIXELCNN_LAYERS, Z1_CONV_STACK, Z2_CONV_STACK)

    num_values = shapes.num_values(image_shape)
    positions = shapes.num_positions(image_shape)
    per_value = 1 if likelihood == "bernoulli" else 2
    hidden, latent = config.hidden_units, config.latent_dim
    likelihood_floats = per_value * num_values + LIKELIHOOD_FLOATS * num_values
    latents = 8 * latent
    if config.model in ("vae", "hvae"):
        encoder = num_values + 2 * GATED_FLOATS * hidden + latents
        if config.model == "vae":
            return encoder + 2 * GATED_FLOATS * hidden + likelihood_floats + latents, encoder
        # q(z1|x, z2), p(z1|z2) and p(x|z1, z2): gated layers of `hidden` units each
        return encoder + 8 * GATED_FLOATS * hidden + likelihood_floats + 3 * latents, encoder

    def stack_floats(stack):
        height, width = shapes.height_width(image_shape)
        total = 0
        for filters, _, stride in stack:
            height, width = -(-height // stride), -(-width // stride)
            total += GATED_FLOATS * filters * height * width
        return total

    encoder = num_values + stack_floats(Z2_CONV_STACK) + latents
    rest = stack_floats(Z1_CONV_STACK) + 4 * GATED_FLOATS * hidden + likelihood_floats + 3 * latents
    if config.model == "convhvae":
        rest += GATED_FLOATS * num_values + DECODER_CONV_LAYERS * GATED_FLOATS * DECODER_CONV_CHANNELS * positions
    else:                               # masked convolutions and their ReLUs
        rest += 2 * GATED_FLOATS * positions + PIXELCNN_LAYERS * 3 * PIXELCNN_CHANNELS * positions
    return encoder + rest, encoder


def model_estimate(config, image_shape, likelihood: str, networks=None) -> ModelEstimate:
    """The memory the model of ``config`` needs in training on images of ``image_shape`` (see
    :class:`ModelEstimate`); ``likelihood`` None counts the larger (the discretized logistic's)."""
    likelihood = likelihood or "discretized_logistic"
    parameters = parameter_count(config, image_shape, likelihood, networks)
    copies = TRAINING_COPIES + (1 if config.mixed_precision else 0)      # (float16 copies of the weights)
    per_example, per_pseudo_input = _activation_floats(config, image_shape, likelihood)
    if networks is not None:
        per_example = per_pseudo_input = shapes.num_values(image_shape)  # at least the images themselves
    pseudo_inputs = (config.num_components or 0) if config.prior in ("vampprior", "vampprior-data") else 0
    activations = BACKWARD_FACTOR * FLOAT_BYTES * (config.batch_size * per_example
                                                   + pseudo_inputs * per_pseudo_input)
    # the mixture prior's table of log N(z_b | component k), in float64, a few of them
    if config.prior != "standard":
        activations += 4 * 8 * config.batch_size * (config.num_components or 0)
    return ModelEstimate(parameters, copies * FLOAT_BYTES * parameters, activations, config.batch_size,
                         counted=networks is None)


def training_data_bytes(train, validation, test) -> int:
    """The host memory of a run's data: the splits as loaded, and the copies the input pipelines hold of the
    training and validation images (:mod:`vampkeras.data.pipeline`)."""
    return 2 * (train.nbytes + validation.nbytes) + test.nbytes


def check_training_memory(config, dataset, networks=None) -> None:
    """Refuse (:class:`VampkerasError`) a run whose model and data, with TensorFlow's own memory
    (:data:`RUNTIME_BYTES`), do not fit in what this process may use, naming the numbers; on a GPU the model and
    the training images must fit the GPU's memory instead. A run calls this before it creates anything."""
    spec = dataset.spec
    model = model_estimate(config, spec.image_shape, config.likelihood, networks)
    data = training_data_bytes(dataset.train, dataset.validation, dataset.test)
    host = host_memory_limit()
    gpu = gpu_memory_limit()
    count = len(dataset.train) + len(dataset.validation) + len(dataset.test)
    needs = (f"the model needs about {describe_bytes(model.total_bytes)} ({model.describe()}) and the data "
             f"{describe_bytes(data)} ({count} images of {shapes.describe(spec.image_shape)} as float32 values, with "
             f"the input pipelines' copies)")
    runtime = f"TensorFlow itself about {describe_bytes(RUNTIME_BYTES)}"
    advice = "use smaller images, fewer --hidden-units or --components, a smaller --batch-size, or --max-examples"
    if gpu is None and RUNTIME_BYTES + model.total_bytes + data > host.bytes:
        raise VampkerasError(f"this run does not fit in memory: {needs}, {runtime}; this process may use {host}; "
                             f"{advice}")
    if gpu is not None and model.total_bytes + dataset.train.nbytes > gpu.bytes:
        raise VampkerasError(f"this run does not fit in the GPU's memory: {needs}; the GPU has {gpu}; {advice}")
    if gpu is not None and RUNTIME_BYTES + data > host.bytes:
        raise VampkerasError(f"this run's data do not fit in memory: {needs}, {runtime}; this process may use "
                             f"{host}; {advice}")
    logger.info("memory: %s, %s; this process may use %s%s", needs, runtime, host,
                f", the GPU {gpu}" if gpu is not None else "")
