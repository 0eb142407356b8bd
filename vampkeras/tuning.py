"""Speed settings measured on the device at hand instead of assumed (see benchmarks/README.md).

Two choices are made per model shape and device:

* ``model.train_jit``: the train step's forward and backward pass XLA-compiled, or in plain graph mode;
* ``model.evaluation_jit``: the importance-sampled log-likelihood's densities XLA-compiled, or in graph mode.

Which is fastest depends on the device: on an AVX-512 CPU XLA won both (by 10–25 %), on an AVX2 CPU XLA
won the train step but lost the evaluation at 5000-row chunks by ~15 %. So each choice is the fastest of
its candidates, timed on the model itself (candidates alternately, the median of several rounds), the first
time a model of that shape is trained or scored on a machine; the result is cached in
``$VAMPKERAS_CACHE/tuning.json`` (default ``~/.cache/vampkeras``), keyed by the device, the TensorFlow
version and the model's shape, so that later runs on the machine reuse it and repeat their numbers exactly.

Every candidate draws the same noise and computes the same values to float rounding (the noise is drawn in
graph mode either way, tested), so a choice changes the speed, not the results. ``--jit/--no-jit``
(``RunConfig.jit``) fixes the mode by hand; ``VAMPKERAS_TUNING=off`` skips all measurement and keeps each
model's built-in defaults.
"""

from __future__ import annotations

import json
import logging
import os
import platform
import statistics
import time
from typing import Callable

import numpy as np
import tensorflow as tf

from vampkeras import __version__

__all__ = ["tune_training", "tune_evaluation", "enabled", "cache_path", "device_description",
           "workload_description", "seconds_per_call", "CACHE_FILE", "ENVIRONMENT_SWITCH"]

logger = logging.getLogger(__name__)

CACHE_FILE = "tuning.json"
ENVIRONMENT_SWITCH = "VAMPKERAS_TUNING"
MAX_ROUNDS = 5              # timings per candidate, alternating between candidates...
MIN_ROUNDS = 2
BUDGET_SECONDS = 8.0        # ...as many rounds as fit in this time, after one call each to compile
PROBE_STEPS = 4             # train steps per timed call
PROBE_CHUNKS = 4            # evaluation chunks per timed call: one alone missed real differences between modes
TIMING_SEED = (20181, 0)


def enabled() -> bool:
    """False when ``$VAMPKERAS_TUNING`` is ``off`` (or ``0``/``false``/``no``)."""
    return os.environ.get(ENVIRONMENT_SWITCH, "on").strip().lower() not in ("off", "0", "false", "no")


def cache_path():
    """The file that remembers each measured choice: ``$VAMPKERAS_CACHE/tuning.json``."""
    from vampkeras.data.registry import cache_dir

    return cache_dir() / CACHE_FILE


def _cpu_name() -> str:
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as stream:
            lines = stream.read().splitlines()
    except OSError:
        return platform.processor() or platform.machine()
    name = next((line.split(":", 1)[1].strip() for line in lines if line.startswith("model name")),
                platform.machine())
    flags = next((line.split(":", 1)[1].split() for line in lines if line.startswith("flags")), [])
    vector = next((flag for flag in ("avx512f", "avx2", "avx") if flag in flags), "")
    return f"{name} {vector}".strip()


def device_description() -> str:
    """The device the models run on, as a cache key: GPU names, else the CPU's name, widest vector unit and
    cores; plus TensorFlow's version."""
    gpus = tf.config.list_physical_devices("GPU")
    if gpus:
        names = [tf.config.experimental.get_device_details(gpu).get("device_name", "GPU") for gpu in gpus]
        device = f"{len(gpus)} GPU {names[0]}"
    else:
        cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
        device = f"CPU {_cpu_name()} x{cores}"
    return f"{device}; tensorflow {tf.__version__}; vampkeras {__version__}"


def workload_description(model, purpose: str, batch_size: int) -> str:
    """What a measurement depends on besides the device: the model's kind and sizes, and the batch."""
    parameters = sum(int(np.prod(variable.shape)) for variable in model.trainable_variables)
    prior = model.prior
    return (f"{purpose} {model.name} {type(prior).__name__} K={prior.num_mixture_components} "
            f"D={model.num_pixels} M={model.latent_dim} {model.likelihood} parameters={parameters} "
            f"{model.compute_dtype} batch={batch_size}")


def seconds_per_call(candidates: dict[str, Callable[[], object]], budget: float = BUDGET_SECONDS,
                     max_rounds: int = MAX_ROUNDS, min_rounds: int = MIN_ROUNDS) -> dict[str, float]:
    """Median seconds per call of each candidate, timed alternately so that all see the same machine load:
    {name: seconds}. Each is called once first (to compile it); then as many rounds as fit in ``budget``
    seconds, between ``min_rounds`` and ``max_rounds``."""

    def timed(function) -> float:
        start = time.perf_counter()
        tf.nest.map_structure(lambda tensor: tensor.numpy(), function())
        return time.perf_counter() - start

    first = {name: timed(function) for name, function in candidates.items()}       # includes compiling
    seconds = {name: [timed(function)] for name, function in candidates.items()}
    per_round = sum(values[0] for values in seconds.values())
    rounds = int(min(max_rounds, max(min_rounds, budget // max(per_round, 1e-6))))
    for _ in range(rounds - 1):
        for name, function in candidates.items():
            seconds[name].append(timed(function))
    logger.debug("first calls (with compiling): %s", first)
    return {name: statistics.median(values) for name, values in seconds.items()}


def _read_cache() -> dict:
    try:
        values = json.loads(cache_path().read_text())
    except (OSError, ValueError):
        return {}
    return values if isinstance(values, dict) else {}


def _remember(key: str, record: dict) -> None:
    from vampkeras.checkpoints import atomic_write_text

    values = _read_cache()
    values[key] = record
    try:
        atomic_write_text(cache_path(), json.dumps(values, indent=1, sort_keys=True) + "\n")
    except OSError as error:        # an unwritable cache only costs a new measurement next time
        logger.warning("could not save the speed measurement in %s: %s", cache_path(), error)


def _choose(key: str, measure: Callable[[], dict[str, float]], per: str) -> tuple[str, dict | None]:
    """The cached choice for ``key``, or the fastest of ``measure()`` (then cached, with its seconds per
    ``per``): (name, seconds or None if cached)."""
    cached = _read_cache().get(key)
    if isinstance(cached, dict) and "choice" in cached:
        return cached["choice"], None
    seconds = measure()
    choice = min(seconds, key=seconds.get)
    _remember(key, {"choice": choice, "seconds": seconds, "per": per, "measured": time.strftime("%Y-%m-%d %H:%M:%S")})
    return choice, seconds


def _example_images(model, batch_size: int) -> tf.Tensor:
    """A fixed batch of valid inputs for the model's likelihood: (batch_size, D)."""
    values = tf.random.stateless_uniform([batch_size, model.num_pixels], seed=TIMING_SEED)
    if model.likelihood == "bernoulli":
        values = tf.cast(values < 0.2, tf.float32)
    return values


def _tune(model, attribute: str, jit: bool | None, workload: str, candidate: Callable[[bool], Callable],
          what: str, per: str, can_measure: bool = True, restore: Callable[[], None] = lambda: None) -> bool:
    """Set ``model.<attribute>`` (``train_jit`` or ``evaluation_jit``): to ``jit`` if given; else to the
    cached choice for this device and ``workload``; else to the faster of ``candidate(False)`` (graph mode)
    and ``candidate(True)`` (XLA), measured now (then ``restore()``) and cached. Without measuring
    (``can_measure`` false, or the switch off) the model's default stays. Returns the setting."""
    if jit is not None:
        setattr(model, attribute, bool(jit))
    elif enabled() and can_measure:
        def measure():
            try:
                return seconds_per_call({"graph": candidate(False), "xla": candidate(True)})
            finally:
                restore()

        choice, seconds = _choose(f"{device_description()} | {workload}", measure, per)
        setattr(model, attribute, choice == "xla")
        if seconds is None:
            logger.info("speed: %s uses %s (measured earlier on this device, %s)", what, choice, cache_path())
        else:
            timings = ", ".join(f"{name} {value * 1e3:.2f}" for name, value in seconds.items())
            logger.info("speed: %s measured on this device (ms per %s: %s); using %s", what, per, timings, choice)
    return getattr(model, attribute)


def tune_training(model, batch_size: int, jit: bool | None = None) -> bool:
    """Set ``model.train_jit`` to the faster of graph mode and XLA for the model's train step at
    ``batch_size``, unless ``jit`` fixes it; returns the setting.

    The steps are timed as training runs them (several per graph call, weights changing after each, which
    keeps graph mode from hoisting work out of the loop); every variable of the model, its optimizer and its
    metrics is put back afterwards, so the measurement leaves no trace. Needs a compiled model with a built
    optimizer (else the model's default stays), on one device (several replicas always run graph mode)."""
    optimizer = getattr(model, "optimizer", None)
    can_measure = optimizer is not None and optimizer.built
    state = [*model.variables, *(optimizer.variables if can_measure else []),
             *(v for metric in model.metrics for v in metric.variables)]
    saved = []

    def candidate(jit_compile):
        if not saved:
            saved.extend(variable.numpy() for variable in state)
        batches = tf.stack([_example_images(model, batch_size), 1.0 - _example_images(model, batch_size)])
        model.train_jit = jit_compile                         # read when the step is traced

        @tf.function
        def steps():
            for step in tf.range(PROBE_STEPS):
                logs = model.train_step(batches[step % 2])
            return logs["loss"]

        steps.get_concrete_function()
        return steps

    def restore():
        for variable, value in zip(state, saved):
            variable.assign(value)

    return _tune(model, "train_jit", jit, workload_description(model, "train", batch_size), candidate,
                 "train step", f"{PROBE_STEPS} train steps", can_measure, restore)


def tune_evaluation(model, jit: bool | None = None) -> bool:
    """Set ``model.evaluation_jit`` to the faster of graph mode and XLA for the importance-sampled
    log-likelihood (timed over a few chunks of ``model.evaluation_rows`` rows, as evaluation runs them),
    unless ``jit`` fixes it. Returns the setting.

    The chunk size stays the model's own: it decides which noise each sample gets, so changing it would
    change the estimates, not only the speed."""
    from vampkeras.export import EXAMPLES_PER_BATCH

    samples_per_chunk = max(1, model.evaluation_rows // EXAMPLES_PER_BATCH)

    def candidate(jit_compile):
        x = _example_images(model, EXAMPLES_PER_BATCH)
        parameters = model.prior_parameters()
        model.evaluation_jit = jit_compile                    # read when the function is traced
        function = tf.function(lambda: model.log_likelihood(x, PROBE_CHUNKS * samples_per_chunk, TIMING_SEED,
                                                            parameters, samples_per_chunk))
        function.get_concrete_function()
        return function

    workload = f"{workload_description(model, 'evaluation', EXAMPLES_PER_BATCH)} rows={model.evaluation_rows}"
    return _tune(model, "evaluation_jit", jit, workload, candidate, "importance-sampled evaluation",
                 f"{PROBE_CHUNKS} chunks of {model.evaluation_rows} rows")
