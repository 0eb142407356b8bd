"""Input-pipeline overhead: a full training epoch through the tf.data pipeline vs. the bare compiled step.

    python benchmarks/epoch.py [--dataset dynamic_mnist] [--data-dir ../shared/data] [--prior vampprior]
                               [--strategy mirrored --replicas 2]

Both run the same model and train step with `vampkeras train`'s defaults (XLA, steps per execution): the
first through ``model.fit`` on the real pipeline (shuffle, gather, on-the-fly binarization, prefetch), the
second calling the compiled step on batches already in memory, as many steps per graph call as
``model.fit`` runs. Prints one JSON line with examples per second of each and their ratio (1.0 = a free
pipeline).
"""

from __future__ import annotations

import argparse
import time

import numpy as np

from common import report, train_steps_per_call

import tensorflow as tf  # noqa: E402

from vampkeras import optimizers  # noqa: E402
from vampkeras.config import RunConfig  # noqa: E402
from vampkeras.data import load_dataset  # noqa: E402
from vampkeras.data.pipeline import training_batches  # noqa: E402
from vampkeras.distribution import make_strategy  # noqa: E402
from vampkeras.models import build_model  # noqa: E402
from vampkeras.training import steps_per_execution  # noqa: E402


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
    parser.add_argument("--jit", type=int, choices=[0, 1], default=None, help="default: the model's own default")
    parser.add_argument("--repeats", type=int, default=3, help="epochs timed (each way); the fastest counts")
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
    count = len(data.train)

    dataset, steps = training_batches(data.train, args.batch_size, config.seed,
                                      binarize=data.spec.binarization == "dynamic")
    model.fit(dataset, steps_per_epoch=steps, epochs=1, verbose=0)          # warm-up epoch (tracing)

    def pipeline_seconds():
        start = time.perf_counter()
        model.fit(dataset, steps_per_epoch=steps, epochs=2, initial_epoch=1, verbose=0)
        return time.perf_counter() - start

    record = {}
    if args.strategy == "default":           # the bare step on in-memory batches, for the pipeline's overhead
        # the model's own (XLA) step, run `per_call` steps per graph call as `model.fit` does
        per_call = model.steps_per_execution
        rng = np.random.default_rng(0)
        batches = tf.constant(np.stack([
            (rng.uniform(size=(args.batch_size, data.spec.num_pixels))
             < data.train[i * args.batch_size:(i + 1) * args.batch_size].mean()).astype("float32")
            for i in range(per_call)]))
        steps_on_memory = train_steps_per_call(model, per_call)
        steps_on_memory(batches)
        calls = max(1, steps // per_call)

        def bare_seconds():
            start = time.perf_counter()
            for _ in range(calls):
                loss = steps_on_memory(batches)
            float(loss)
            return (time.perf_counter() - start) * count / (calls * per_call * args.batch_size)

        # alternate, so that both see the same machine load; keep each one's fastest epoch
        pipeline, bare = [], []
        for _ in range(args.repeats):
            pipeline.append(pipeline_seconds())
            bare.append(bare_seconds())
        pipeline_rate, bare_rate = count / min(pipeline), count / min(bare)
        record.update(bare_step_examples_per_second=round(bare_rate, 1), steps_per_call=per_call,
                      pipeline_over_bare=round(pipeline_rate / bare_rate, 3),
                      pipeline_over_bare_each_repeat=[round(b / p, 3) for p, b in zip(pipeline, bare)])
    else:
        pipeline_rate = count / min(pipeline_seconds() for _ in range(args.repeats))
    record["pipeline_examples_per_second"] = round(pipeline_rate, 1)
    report({"benchmark": "epoch", "dataset": args.dataset, "model": args.model, "prior": args.prior,
            "strategy": args.strategy, "replicas": strategy.num_replicas_in_sync, "jit": model.jit,
            "examples": count, **record})


if __name__ == "__main__":
    main()
