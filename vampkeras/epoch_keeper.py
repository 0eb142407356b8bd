"""The epoch callback of a run: β warm-up, NaN/Inf detection, and after every epoch the history row,
TensorBoard scalars and images, the best weights, the epoch checkpoint and early stopping (paper §5.1)."""

from __future__ import annotations

import math
import time

import keras
import tensorflow as tf

from vampkeras import checkpoints
from vampkeras.config import RunConfig
from vampkeras.errors import VampkerasError
from vampkeras.run_folder import HISTORY_COLUMNS, RunFolder
from vampkeras.trained_model import TrainedModel

__all__ = ["RunKeeper", "warmup_beta", "fresh_state", "model_figures"]


def warmup_beta(epoch: int, warmup: int) -> float:
    """β for 1-based ``epoch``: min(1, epoch / warmup) (Bowman et al.; Sønderby et al.), 1 if no warm-up."""
    return 1.0 if warmup <= 0 else min(1.0, epoch / warmup)


def fresh_state() -> dict:
    return {"epoch": 0, "best_val_loss": math.inf, "best_epoch": 0, "bad_epochs": 0, "stopped_early": False,
            "history": []}


class RunKeeper(keras.callbacks.Callback):
    """Sets β each epoch, stops on NaN/Inf, and after each epoch records history, TensorBoard scalars,
    the best weights and a checkpoint, and applies early stopping (patience counted after warm-up)."""

    def __init__(self, config: RunConfig, run: RunFolder, state: dict, steps_per_epoch: int, num_examples: int,
                 test_images=None):
        super().__init__()
        self.test_images = test_images          # (n, H, W) for the image summaries, or None
        self.config = config
        self.run = run
        self.state = state
        self.steps_per_epoch = steps_per_epoch
        self.num_examples = num_examples
        self.writer = tf.summary.create_file_writer(str(run.logs_dir))
        self.diverged_at: tuple[int, int] | None = None
        self._epoch_start = 0.0
        self._trained_model = None

    @property
    def trained_model(self) -> TrainedModel:
        """The model being trained as a TrainedModel: its functions are traced once, for every image summary."""
        if self._trained_model is None:
            self._trained_model = TrainedModel.from_keras(self.model, self.config)
        return self._trained_model

    def on_epoch_begin(self, epoch, logs=None):
        self.model.beta.assign(warmup_beta(epoch + 1, self.config.warmup))
        self._epoch_start = time.perf_counter()

    def on_train_batch_end(self, batch, logs=None):
        if logs is not None and not math.isfinite(float(logs.get("loss", 0.0))):
            self.diverged_at = (len(self.state["history"]) + 1, batch + 1)
            self.model.stop_training = True

    def on_epoch_end(self, epoch, logs=None):
        logs = dict(logs or {})
        if self.diverged_at is None and not all(math.isfinite(float(v)) for v in logs.values()):
            self.diverged_at = (epoch + 1, self.steps_per_epoch)
            self.model.stop_training = True
        if self.diverged_at is not None:
            return
        seconds = time.perf_counter() - self._epoch_start
        row = {name: float(logs[name]) for name in HISTORY_COLUMNS if name in logs}
        row.update(epoch=epoch + 1, beta=float(self.model.beta.numpy()),
                   learning_rate=float(keras.ops.convert_to_numpy(self.model.optimizer.learning_rate)),
                   seconds=seconds, examples_per_second=self.num_examples / max(seconds, 1e-9))
        state = self.state
        state["history"].append(row)
        state["epoch"] = epoch + 1
        checkpoint_dir = self.run.checkpoint_dir
        past_warmup = epoch + 1 > self.config.warmup
        try:
            if row["val_loss"] < state["best_val_loss"]:
                state.update(best_val_loss=row["val_loss"], best_epoch=epoch + 1, bad_epochs=0)
                checkpoints.save(self.run.best_checkpoint_path, self.model)
            elif past_warmup:
                state["bad_epochs"] += 1
            if state["bad_epochs"] >= self.config.patience:
                state["stopped_early"] = True
                self.model.stop_training = True
            checkpoints.save_epoch(checkpoint_dir, epoch + 1, self.model, self.model.optimizer, state,
                                   self.config.keep_checkpoints)
        except OSError as error:
            raise VampkerasError(
                f"cannot write the checkpoint of epoch {epoch + 1} in {checkpoint_dir}: "
                f"{error.strerror or error}; the previous checkpoints are intact, free space and resume "
                "with --resume") from None
        try:
            self.run.write_history(state["history"])
        except OSError as error:
            # (the checkpoint holds the history too: a resume writes the file again from it)
            raise VampkerasError(
                f"cannot write the history of epoch {epoch + 1} to {self.run.history_path}: "
                f"{error.strerror or error}; the checkpoint of epoch {epoch + 1} is saved, fix the file and "
                "resume with --resume") from None
        with self.writer.as_default(step=epoch + 1):
            for name, value in row.items():
                if name != "epoch":
                    tf.summary.scalar(name, value)
            every = self.config.image_every
            if self.test_images is not None and every and ((epoch + 1) % every == 0 or epoch + 1 == 1):
                for name, images in model_figures(self.trained_model, self.test_images).items():
                    tf.summary.image(name, images, max_outputs=1)
        self.writer.flush()


def model_figures(model: TrainedModel, test_images) -> dict:
    """The TensorBoard images of a trained model (see :func:`vampkeras.figures.tensorboard_images`), as many
    images as :func:`vampkeras.figures.figure_sizes` gives for its run."""
    from vampkeras import figures

    sizes = figures.figure_sizes(model.config)
    return figures.tensorboard_images(model, test_images[:sizes["num_test_images"]], num=sizes["num_samples"],
                                      component_samples=sizes["component_samples"])
