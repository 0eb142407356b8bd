"""Shared benchmark helpers: a same-run dense-matmul reference and matmul FLOP counting from graphs."""

from __future__ import annotations

import json
import os
import platform
import sys
import time
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import tensorflow as tf  # noqa: E402


def timed(function, *args, repeats: int = 20, warmup: int = 3) -> float:
    """Median seconds per call of a compiled ``function(*args)`` (results forced to host)."""
    for _ in range(warmup):
        tf.nest.map_structure(lambda t: t.numpy() if hasattr(t, "numpy") else t, function(*args))
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        tf.nest.map_structure(lambda t: t.numpy() if hasattr(t, "numpy") else t, function(*args))
        times.append(time.perf_counter() - start)
    times.sort()
    return times[len(times) // 2]


def train_steps_per_call(model, count: int):
    """A tf.function running ``count`` train steps of ``model`` per call, as ``model.fit`` does with
    ``steps_per_execution``: step i trains on ``batches[i % len(batches)]`` of a (N, B, D) stack; returns
    the running loss."""

    @tf.function
    def run(batches):
        for i in tf.range(count):
            model.train_step(batches[i % tf.shape(batches)[0]])
        return model.loss_tracker.result()

    return run


def has_gpu() -> bool:
    return bool(tf.config.list_physical_devices("GPU"))


def matmul_flops_per_second(size: int = 2048, repeats: int = 20, dtype=tf.float32) -> float:
    """FLOP/s of one large dense matmul (size x size) @ (size x size) in ``dtype``, measured now. The call
    returns the product's sum, so that only a scalar goes to the host (a GPU would otherwise spend longer
    copying the product than computing it)."""
    a = tf.cast(tf.random.normal([size, size]), dtype)
    b = tf.cast(tf.random.normal([size, size]), dtype)
    matmul = tf.function(lambda a, b: tf.reduce_sum(tf.cast(tf.matmul(a, b), tf.float32)))
    return 2.0 * size ** 3 / timed(matmul, a, b, repeats=repeats)


class Reference:
    """The dense-matmul reference, measured again in every round of a benchmark (between the timings it
    is the reference for), so that a slow spell of a shared machine at one moment does not set it: the
    fastest round counts, as the fastest round of each timed candidate does. ``rates`` keeps every round.
    2048² on a CPU (the issue's reference), 8192² on a GPU (2048² is too small to keep one busy); float16
    for the mixed-precision benchmarks."""

    def __init__(self, size: int | None = None, repeats: int = 10, mixed_precision: bool = False):
        self.size = size or (8192 if has_gpu() else 2048)
        self.repeats = repeats
        self.dtype = tf.float16 if mixed_precision else tf.float32
        self.rates: list[float] = []

    def measure(self) -> float:
        self.rates.append(matmul_flops_per_second(self.size, self.repeats, self.dtype))
        return self.rates[-1]

    @property
    def best(self) -> float:
        return max(self.rates) if self.rates else self.measure()

    def summary(self) -> dict:
        return {"matmul_gflops": round(self.best / 1e9, 1), "matmul_size": self.size,
                "matmul_dtype": self.dtype.name,
                "matmul_gflops_each_round": [round(rate / 1e9, 1) for rate in self.rates]}


def copy_bytes_per_second(megabytes: int = 64, repeats: int = 20) -> float:
    """Memory bandwidth, bytes/s, of a large in-place float32 ``y ← y + x`` in graph mode (two reads and one
    write per element, no allocation, spread over the CPU's threads), measured now. (A ``y ← 0.5·y`` that
    allocates its result measured page faults on one virtual machine: 4 GB/s against numpy's 17.)"""
    count = megabytes * 2 ** 20 // 4
    variable = tf.Variable(tf.random.normal([count]))
    addend = tf.random.normal([count])

    @tf.function
    def add():
        variable.assign_add(addend, read_value=False)
        return tf.constant(0)

    return 3.0 * 4 * count / timed(add, repeats=repeats)


def _matmul_flops(op) -> int | None:
    a, b = op.inputs[0].shape, op.inputs[1].shape
    if not (a.is_fully_defined() and b.is_fully_defined()):
        return None
    if op.type == "MatMul":
        transpose_a, transpose_b = op.get_attr("transpose_a"), op.get_attr("transpose_b")
    else:
        transpose_a, transpose_b = op.get_attr("adj_x"), op.get_attr("adj_y")
    rows = a[-1] if transpose_a else a[-2]
    inner = a[-2] if transpose_a else a[-1]
    cols = b[-2] if transpose_b else b[-1]
    batch = 1
    for d in a[:-2]:
        batch *= d
    return 2 * batch * rows * inner * cols


def graph_matmul_flops(concrete_function) -> tuple[int, int]:
    """(FLOPs of the MatMul/BatchMatMul/Conv2D ops with static shapes, number of such ops whose shape is
    not static) in a concrete function's graph, including the gradient ops of a train step."""
    flops, unknown = 0, 0
    for op in concrete_function.graph.get_operations():
        if op.type in ("MatMul", "BatchMatMulV2", "BatchMatMulV3"):
            count = _matmul_flops(op)
        elif op.type in ("Conv2D", "Conv2DBackpropInput", "Conv2DBackpropFilter"):
            count = _conv_flops(op)
        else:
            continue
        if count is None:
            unknown += 1
        else:
            flops += count
    return flops, unknown


def _conv_flops(op) -> int | None:
    if op.type == "Conv2D":
        out, kernel = op.outputs[0].shape, op.inputs[1].shape
    elif op.type == "Conv2DBackpropInput":
        out, kernel = op.inputs[2].shape, op.inputs[1].shape        # out_backprop has the output's shape
    else:                                                           # Conv2DBackpropFilter: the kernel's gradient
        out, kernel = op.inputs[2].shape, op.outputs[0].shape
    if not (out.is_fully_defined() and kernel.is_fully_defined()):
        return None
    return 2 * out[0] * out[1] * out[2] * kernel[0] * kernel[1] * kernel[2] * kernel[3]


def report(record: dict) -> None:
    """Print one JSON line with the machine's description."""
    record = {**record, "tensorflow": tf.__version__, "machine": platform.machine(),
              "cpus": os.cpu_count(), "gpus": len(tf.config.list_physical_devices("GPU"))}
    print(json.dumps(record, sort_keys=True))
