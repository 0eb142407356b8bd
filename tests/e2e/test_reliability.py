"""Faults: kill -9 at several moments then --resume, a full disk, determinism, foreign SavedModels."""

import csv
import errno
import os
import signal
import subprocess
import sys
import textwrap
import time

import numpy as np
import pytest
import tensorflow as tf
from click.testing import CliRunner

from vampkeras import checkpoints
from vampkeras.config import RunConfig
from vampkeras.errors import VampkerasError
from vampkeras.training import train
from vampkeras_cli.main import main

EPOCHS = 4
RUN_OPTIONS = dict(epochs=EPOCHS, warmup=2, max_examples=400, num_components=20)

# Runs a training in a child process; FAULT decides where it SIGKILLs itself.
CHILD = textwrap.dedent("""
    import os, signal, sys
    import tensorflow as tf
    from vampkeras import checkpoints, export
    from vampkeras.config import RunConfig
    from vampkeras.training import train

    fault, run_dir, export_dir = sys.argv[1], sys.argv[2], sys.argv[3]
    die = lambda: os.kill(os.getpid(), signal.SIGKILL)
    if fault == "checkpoint-write":            # die half-way through writing epoch 3's checkpoint
        original = checkpoints.atomic_write_bytes
        def half_write(path, data):
            if "epoch-00003" in str(path):
                with open(os.path.join(os.path.dirname(path), "." + os.path.basename(path) + ".x.tmp"), "wb") as f:
                    f.write(data[: len(data) // 2])
                die()
            original(path, data)
        checkpoints.atomic_write_bytes = half_write
    elif fault == "export":                   # die after the SavedModel is staged, before it is renamed
        original_save = tf.saved_model.save
        def save_then_die(*args, **kwargs):
            original_save(*args, **kwargs)
            die()
        tf.saved_model.save = save_then_die
    resume = fault == "resume"
    config = RunConfig(run_dir=run_dir, export_dir=export_dir, **{OPTIONS})
    train(config, resume=resume, given={{}} if resume else None, verbose=0)
""").replace("{OPTIONS}", repr(RUN_OPTIONS)).replace("{{}}", "{}")


def run_child(fault, run_dir, export_dir, kill_after_epoch=None):
    process = subprocess.Popen([sys.executable, "-c", CHILD, fault, str(run_dir), str(export_dir)],
                               stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                               env={**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"})
    if kill_after_epoch is not None:          # mid-epoch: kill once this epoch's checkpoint exists
        target = run_dir / "checkpoints" / f"epoch-{kill_after_epoch:05d}.npz"
        deadline = time.time() + 240
        while not target.exists() and process.poll() is None and time.time() < deadline:
            time.sleep(0.02)
        time.sleep(0.05)
        process.send_signal(signal.SIGKILL)
    _, stderr = process.communicate(timeout=300)
    return process.returncode, stderr.decode()


def read_epochs(run_dir):
    with open(run_dir / "history.csv") as stream:
        return [int(float(row["epoch"])) for row in csv.DictReader(stream)]


def assert_whole(run_dir, export_dir):
    """Every file is complete: checkpoints load, no temporaries, the export loads and scores."""
    from vampkeras.data import DATASETS
    from vampkeras.models import build_model
    config = RunConfig.from_json((run_dir / "config.json").read_text())
    model = build_model(config, DATASETS[config.dataset], np.zeros([20, 784], np.float32))
    for _, path in checkpoints.epoch_checkpoints(run_dir / "checkpoints"):
        checkpoints.load(path, model)
    checkpoints.load(run_dir / "checkpoints" / "best.npz", model)
    assert not list((run_dir / "checkpoints").glob(".*.tmp"))
    loaded = tf.saved_model.load(str(export_dir))
    assert np.isfinite(loaded.elbo(tf.zeros([2, 28, 28]))["elbo"].numpy()).all()
    assert not [p for p in export_dir.parent.iterdir() if p.name.startswith(f".{export_dir.name}.")]


@pytest.mark.parametrize("fault", ["mid-epoch", "checkpoint-write", "export"])
def test_kill_9_then_resume_reaches_the_same_end(tmp_path, fault):
    run_dir, export_dir = tmp_path / "run", tmp_path / "model"
    code, stderr = run_child("none" if fault == "mid-epoch" else fault, run_dir, export_dir,
                             kill_after_epoch=2 if fault == "mid-epoch" else None)
    assert code == -signal.SIGKILL, stderr[-2000:]
    assert read_epochs(run_dir)[-1] < EPOCHS or fault == "export"
    code, stderr = run_child("resume", run_dir, export_dir)
    assert code == 0, stderr[-3000:]
    assert read_epochs(run_dir) == list(range(1, EPOCHS + 1))
    assert_whole(run_dir, export_dir)


def test_a_full_disk_while_checkpointing_is_one_clear_error_and_keeps_earlier_work(tmp_path, monkeypatch):
    original = checkpoints.atomic_write_bytes

    def full_disk(path, data):
        if "epoch-00002" in str(path):
            raise OSError(errno.ENOSPC, "No space left on device")
        original(path, data)

    monkeypatch.setattr(checkpoints, "atomic_write_bytes", full_disk)
    config = RunConfig(run_dir=str(tmp_path / "run"), export_dir=str(tmp_path / "model"), **RUN_OPTIONS)
    with pytest.raises(VampkerasError, match="epoch 2 .*No space left on device.*--resume"):
        train(config, verbose=0)
    model_state = checkpoints.epoch_checkpoints(tmp_path / "run" / "checkpoints")
    assert [epoch for epoch, _ in model_state] == [1]
    assert read_epochs(tmp_path / "run") == [1]


def test_same_seed_same_history(tmp_path):
    histories = []
    for name in ("a", "b"):
        result = train(RunConfig(run_dir=str(tmp_path / name), export_dir=str(tmp_path / f"{name}-model"),
                                 **{**RUN_OPTIONS, "epochs": 2}), verbose=0)
        with open(result.run_dir / "history.csv") as stream:
            histories.append([(row["loss"], row["val_loss"]) for row in csv.DictReader(stream)])
    assert histories[0] == histories[1]


def test_an_unwritable_run_folder_is_one_clear_error(tmp_path):
    blocker = tmp_path / "file"
    blocker.write_text("not a folder")
    result = CliRunner().invoke(main, ["train", "--run-dir", str(blocker / "run"), "--max-examples", "50",
                                       "--export", str(tmp_path / "model")])
    assert result.exit_code == 2 and "Traceback" not in result.output
    assert "cannot write the run folder" in result.output


def test_a_savedmodel_that_is_not_ours_is_refused(tmp_path):
    module = tf.Module()
    module.f = tf.function(lambda x: x + 1, input_signature=[tf.TensorSpec([], tf.float32)])
    tf.saved_model.save(module, str(tmp_path / "foreign"))
    result = CliRunner().invoke(main, ["evaluate", str(tmp_path / "foreign")])
    assert result.exit_code == 2 and "Traceback" not in result.output
    assert "not a vampkeras SavedModel" in result.output
