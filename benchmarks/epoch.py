"""Input-pipeline overhead: a full training epoch through the tf.data pipeline vs. the bare compiled step.

    python benchmarks/epoch.py [--dataset dynamic_mnist] [--data-dir ../shared/data] [--prior vampprior]
                               [--strategy mirrored --replicas 2]

Both run the same model and train step with `vampkeras train`'s defaults (the measured mode, steps per call): the
first through ``model.fit`` on the real pipeline (shuffle, gather, on-the-fly binarization, prefetch), the
epochs of one ``fit`` call timed from start to end as `vampkeras train` runs them, the second calling the
compiled step on batches already in memory, as many steps per graph call as ``model.fit`` runs, after each
epoch. Prints one JSON line with examples per second of each and their ratio (1.0 = a free pipeline).
"""

from __future__ import annotations

import argparse
import time

import keras
import numpy as np

from common import report, train_steps_per_call

import tensorflow as tf  # noqa: E402

from vampkeras import optimizers, tuning  # noqa: E402
from vampkeras.config import RunConfig  # noqa: E402
from vampkeras.data import load_dataset  # noqa: E402
from vampkeras.data.pipeline import training_batches  # noqa: E402
from vampkeras.replicas import make_strategy  # noqa: E402
from vampkeras.models import build_model  # noqa: E402
from vampkeras.training import steps_per_execution  # noqa: E402


class EpochTimer(keras.callbacks.Callback):
    """Seconds of each epoch of a ``fit`` (start to end); after each, the bare step's seconds for as many
    examples, when ``bare_seconds`` is given, so that the two alternate under the same machine load."""

    def __init__(self, bare_seconds=None):
        super().__init__()
        self.bare_seconds = bare_seconds
        self.pipeline, self.bare = [], []

    def on_epoch_begin(self, epoch, logs=None):
        self.start = time.perf_counter()

    def on_epoch_end(self, epoch, logs=None):
        self.pipeline.append(time.perf_counter() - self.start)
        if self.bare_seconds is not None:
            self.bare.append(self.bare_seconds())


def bare_epoch_timer(model, data, batch_size: int):
    """A function timing the model's own (XLA) step on batches already in memory, ``steps_per_execution``
    steps per graph call as ``model.fit`` runs them, scaled to one epoch's examples: seconds."""
    per_call = model.steps_per_execution
    rng = np.random.default_rng(0)
    batches = tf.constant(np.stack([
        (rng.uniform(size=(batch_size, data.spec.num_pixels))
         < data.train[i * batch_size:(i + 1) * batch_size].mean()).astype("float32")
        for i in range(per_call)]))
    steps_on_memory = train_steps_per_call(model, per_call)
    steps_on_memory(batches)
    count = len(data.train)
    calls = max(1, -(-count // batch_size) // per_call)

    def seconds():
        start = time.perf_counter()
        for _ in range(calls):
            loss = steps_on_memory(batches)
        float(loss)
        return (time.perf_counter() - start) * count / (calls * per_call * batch_size)

    return seconds


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dataset", default="dynamic_mnist")
    parser.add_argument("--data-dir", default=None)
    parser.add_argument("--model", default="vae")
    parser.add_argument("--prior", default="vampprior")
    parser.add_argument("--batch-size", type=int, default=100)
    parser.add_argument("--strategy", default="default", help="default | mirrored")
    parser.add_argument("--replicas", type=int, default=None, help="logical CPU devices for mirrored")
    parser.add_argument("--max-examples", type=int, default=None)
    parser.add_argument("--jit", type=int, choices=[0, 1], default=None, help="default: measured (vampkeras.tuning)")
    parser.add_argument("--repeats", type=int, default=6, help="epochs timed (each way); the fastest counts")
    parser.add_argument("--steps-per-execution", type=int, default=None,
                        help="default: what `vampkeras train` uses")
    args = parser.parse_args()
    strategy = make_strategy(args.strategy, args.replicas)
    data = load_dataset(args.dataset, args.data_dir, args.max_examples)
    config = RunConfig(dataset=args.dataset, model=args.model, prior=args.prior,
                       jit=None if args.jit is None else bool(args.jit)).resolve(data.spec)
    steps = -(-len(data.train) // args.batch_size)
    with strategy.scope():
        model = build_model(config, data.spec, data.train)
        model.compile(optimizer=optimizers.build(config.optimizer, config.lr), jit_compile=False,
                      steps_per_execution=args.steps_per_execution or steps_per_execution(steps))
        model.optimizer.build(model.trainable_variables)
    if strategy.num_replicas_in_sync == 1:
        tuning.tune_training(model, args.batch_size, config.jit)           # as `vampkeras train` does
    count = len(data.train)

    dataset, steps = training_batches(data.train, args.batch_size, config.seed,
                                      binarize=data.spec.binarization == "dynamic")
    model.fit(dataset, steps_per_epoch=steps, epochs=1, verbose=0)          # warm-up epoch (tracing)
    bare_seconds = bare_epoch_timer(model, data, args.batch_size) if args.strategy == "default" else None
    timer = EpochTimer(bare_seconds)
    # one fit call for all timed epochs, as `vampkeras train` makes: each epoch is timed from its start to its
    # end (the pipeline's per-epoch work, Keras' per-step work), not fit's own setup
    model.fit(dataset, steps_per_epoch=steps, epochs=1 + args.repeats, initial_epoch=1, verbose=0,
              callbacks=[timer])
    pipeline_rate = count / min(timer.pipeline)
    record = {}
    if bare_seconds is not None:
        bare_rate = count / min(timer.bare)
        record.update(bare_step_examples_per_second=round(bare_rate, 1), steps_per_call=model.steps_per_execution,
                      pipeline_over_bare=round(pipeline_rate / bare_rate, 3),
                      pipeline_over_bare_each_repeat=[round(b / p, 3) for p, b in zip(timer.pipeline, timer.bare)],
                      bare_seconds_each_repeat=[round(b, 2) for b in timer.bare])
    record["pipeline_seconds_each_repeat"] = [round(p, 2) for p in timer.pipeline]
    record["pipeline_examples_per_second"] = round(pipeline_rate, 1)
    report({"benchmark": "epoch", "dataset": args.dataset, "model": args.model, "prior": args.prior,
            "strategy": args.strategy, "replicas": strategy.num_replicas_in_sync, "jit": model.train_jit,
            "examples": count, **record})


if __name__ == "__main__":
    main()
