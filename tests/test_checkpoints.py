"""Checkpoints: exact round trips, corrupt and mismatched files, rotation, resume, atomic writes."""

import dataclasses
import logging
import os

import numpy as np
import pytest

from vampkeras import checkpoints, optimizers
from vampkeras.checkpoints import CheckpointError
from vampkeras.config import RunConfig
from vampkeras.models import build_model

PIXELS = 20


@dataclasses.dataclass
class Spec:
    image_shape: tuple = (4, 5)
    num_pixels: int = PIXELS
    likelihood: str = "bernoulli"


def make(seed=3, train_steps=0, **overrides):
    """A tiny VampPrior VAE with a built Adam-NormGrad optimizer, optionally trained a few steps."""
    values = dict(num_components=5, latent_dim=4, hidden_units=16, pseudo_init_mean=0.05, pseudo_init_std=0.01,
                  seed=seed)
    values.update(overrides)
    model = build_model(RunConfig(**values), Spec())
    optimizer = optimizers.build("adam-normgrad", 1e-2)
    model.compile(optimizer=optimizer)
    optimizer.build(model.trainable_variables)
    if train_steps:
        x = (np.random.default_rng(seed).random((8, PIXELS)) < 0.4).astype(np.float32)
        model.fit(x, batch_size=8, epochs=train_steps, verbose=0, shuffle=False)
    return model, optimizer


def values(variables):
    return [np.array(v.numpy()) for v in variables]


def assert_all_equal(got, expected):
    assert len(got) == len(expected)
    for a, b in zip(got, expected):
        np.testing.assert_array_equal(a, b)


def epoch_files(directory):
    return sorted(name for name in os.listdir(directory) if name.startswith("epoch-"))


# -- round trip -------------------------------------------------------------------------------------
def test_save_load_round_trip_restores_weights_and_optimizer_exactly(tmp_path):
    source, source_optimizer = make(seed=3, train_steps=2)
    target, target_optimizer = make(seed=9)
    state = {"epoch": 7, "best_val_loss": 12.5, "history": [{"epoch": 1, "loss": 3.25}]}
    path = tmp_path / "ckpt.npz"
    checkpoints.save(path, source, source_optimizer, state)

    # the two models start out different, so the comparison below can fail
    assert any(not np.array_equal(a, b) for a, b in zip(values(source.weights), values(target.weights)))
    assert int(target_optimizer.iterations.numpy()) == 0

    assert checkpoints.load(path, target, target_optimizer) == state
    assert_all_equal(values(target.weights), values(source.weights))
    assert_all_equal(values(target_optimizer.variables), values(source_optimizer.variables))
    assert int(target_optimizer.iterations.numpy()) == 2

    # and the restored model computes the same thing
    x = (np.random.default_rng(1).random((3, PIXELS)) < 0.5).astype(np.float32)
    np.testing.assert_array_equal(target.log_likelihood(x, 5, seed=4).numpy(),
                                  source.log_likelihood(x, 5, seed=4).numpy())


def test_saved_file_holds_every_variable_under_numbered_keys(tmp_path):
    model, optimizer = make(train_steps=1)
    path = tmp_path / "ckpt.npz"
    checkpoints.save(path, model, optimizer, {"epoch": 1})
    with np.load(path) as archive:
        model_keys = sorted(k for k in archive.files if k.startswith("model/"))
        optimizer_keys = sorted(k for k in archive.files if k.startswith("optimizer/"))
        assert len(model_keys) == len(model.weights)
        assert len(optimizer_keys) == len(optimizer.variables)
        assert_all_equal([archive[k] for k in model_keys], values(model.weights))
        assert_all_equal([archive[k] for k in optimizer_keys], values(optimizer.variables))


def test_weights_only_checkpoint_loads_without_optimizer(tmp_path):
    source, _ = make(seed=3, train_steps=1)
    target, target_optimizer = make(seed=9)
    optimizer_before = values(target_optimizer.variables)
    path = tmp_path / "best.npz"
    checkpoints.save(path, source)
    assert checkpoints.load(path, target) == {}
    assert_all_equal(values(target.weights), values(source.weights))
    assert_all_equal(values(target_optimizer.variables), optimizer_before)
    with pytest.raises(CheckpointError, match="0 optimizer variables"):
        checkpoints.load(path, target, target_optimizer)


# -- corrupt files ----------------------------------------------------------------------------------
def truncate_half(data):
    return data[: len(data) // 2]


def flip_middle_byte(data):
    middle = len(data) // 2
    return data[:middle] + bytes([data[middle] ^ 0xFF]) + data[middle + 1:]


@pytest.mark.parametrize("corrupt", [truncate_half, lambda d: b"", lambda d: d[:3], lambda d: b"not a checkpoint\n",
                                     flip_middle_byte],
                         ids=["half", "empty", "three-bytes", "text", "flipped-byte"])
def test_corrupt_checkpoint_raises_checkpoint_error_and_leaves_model_alone(tmp_path, corrupt):
    source, source_optimizer = make(seed=3, train_steps=1)
    path = tmp_path / "epoch-00001.npz"
    checkpoints.save(path, source, source_optimizer, {"epoch": 1})
    path.write_bytes(corrupt(path.read_bytes()))
    target, target_optimizer = make(seed=9)
    before = values(target.weights)
    with pytest.raises(CheckpointError, match="epoch-00001.npz"):
        checkpoints.load(path, target, target_optimizer)
    assert_all_equal(values(target.weights), before)


def test_missing_checkpoint_raises_checkpoint_error(tmp_path):
    model, optimizer = make()
    with pytest.raises(CheckpointError):
        checkpoints.load(tmp_path / "nope.npz", model, optimizer)


# -- mismatched models ------------------------------------------------------------------------------
@pytest.mark.parametrize("overrides, fragments", [
    (dict(hidden_units=8), ["encoder/gated_1/kernel", "(20, 32)", "(20, 16)"]),
    (dict(num_components=3), ["pseudo_inputs", "(5, 20)", "(3, 20)"]),
    (dict(latent_dim=2), ["(16, 4)", "(16, 2)"]),
])
def test_checkpoint_of_a_different_size_model_names_the_mismatch(tmp_path, overrides, fragments):
    source, source_optimizer = make()
    path = tmp_path / "ckpt.npz"
    checkpoints.save(path, source, source_optimizer, {"epoch": 1})
    target, target_optimizer = make(seed=9, **overrides)
    before, optimizer_before = values(target.weights), values(target_optimizer.variables)
    with pytest.raises(CheckpointError) as error:
        checkpoints.load(path, target, target_optimizer)
    message = str(error.value)
    for fragment in fragments:
        assert fragment in message
    # nothing was half-loaded
    assert_all_equal(values(target.weights), before)
    assert_all_equal(values(target_optimizer.variables), optimizer_before)


def test_checkpoint_of_a_model_with_other_variables_is_refused(tmp_path):
    source, source_optimizer = make(prior="vampprior")
    path = tmp_path / "ckpt.npz"
    checkpoints.save(path, source, source_optimizer, {"epoch": 1})
    target, target_optimizer = make(prior="standard")
    expected = f"holds {len(source.weights)} model variables, the model has {len(target.weights)}"
    assert len(source.weights) != len(target.weights)
    with pytest.raises(CheckpointError, match=expected):
        checkpoints.load(path, target, target_optimizer)


# -- rotation and resume ----------------------------------------------------------------------------
def test_save_epoch_keeps_only_the_newest(tmp_path):
    model, optimizer = make()
    checkpoints.save(tmp_path / checkpoints.BEST_WEIGHTS, model)
    for epoch in range(1, 6):
        path = checkpoints.save_epoch(tmp_path, epoch, model, optimizer, {"epoch": epoch}, keep=2)
        assert path == tmp_path / f"epoch-{epoch:05d}.npz" and path.is_file()
    assert epoch_files(tmp_path) == ["epoch-00004.npz", "epoch-00005.npz"]
    assert (tmp_path / checkpoints.BEST_WEIGHTS).is_file()                # not an epoch checkpoint
    assert [e for e, _ in checkpoints.epoch_checkpoints(tmp_path)] == [4, 5]


def test_epoch_checkpoints_sort_numerically_past_five_digits(tmp_path):
    model, optimizer = make()
    for epoch in (99999, 100000, 100001):
        checkpoints.save_epoch(tmp_path, epoch, model, optimizer, {"epoch": epoch}, keep=2)
    assert [e for e, _ in checkpoints.epoch_checkpoints(tmp_path)] == [100000, 100001]
    assert epoch_files(tmp_path) == ["epoch-100000.npz", "epoch-100001.npz"]


def test_restore_latest_skips_a_corrupt_newest_checkpoint(tmp_path, caplog):
    model, optimizer = make(train_steps=1)
    saved = {}
    first_kernel = model.trainable_variables[0]
    for epoch in (1, 2, 3):
        first_kernel.assign(first_kernel + float(epoch))                # each epoch's weights differ
        checkpoints.save_epoch(tmp_path, epoch, model, optimizer, {"epoch": epoch}, keep=5)
        saved[epoch] = values(model.weights)
    newest = tmp_path / "epoch-00003.npz"
    newest.write_bytes(truncate_half(newest.read_bytes()))

    target, target_optimizer = make(seed=9)
    with caplog.at_level(logging.WARNING, logger="vampkeras.checkpoints"):
        state = checkpoints.restore_latest(tmp_path, target, target_optimizer)
    assert state == {"epoch": 2}
    assert_all_equal(values(target.weights), saved[2])
    assert any("epoch-00003.npz" in record.getMessage() for record in caplog.records)


def test_restore_latest_skips_a_checkpoint_of_another_model(tmp_path):
    model, optimizer = make()
    checkpoints.save_epoch(tmp_path, 1, model, optimizer, {"epoch": 1}, keep=3)
    other, other_optimizer = make(hidden_units=8)
    checkpoints.save_epoch(tmp_path, 2, other, other_optimizer, {"epoch": 2}, keep=3)
    target, target_optimizer = make(seed=9)
    assert checkpoints.restore_latest(tmp_path, target, target_optimizer) == {"epoch": 1}
    assert_all_equal(values(target.weights), values(model.weights))


def test_restore_latest_returns_none_when_nothing_is_readable(tmp_path):
    model, optimizer = make()
    assert checkpoints.restore_latest(tmp_path / "missing", model, optimizer) is None
    assert checkpoints.restore_latest(tmp_path, model, optimizer) is None
    (tmp_path / "epoch-00001.npz").write_bytes(b"garbage")
    assert checkpoints.restore_latest(tmp_path, model, optimizer) is None


# -- atomic writes ----------------------------------------------------------------------------------
def test_atomic_write_leaves_only_the_target(tmp_path):
    target = tmp_path / "deep" / "er" / "file.bin"
    checkpoints.atomic_write_bytes(target, b"first")
    checkpoints.atomic_write_bytes(target, b"second version")
    assert target.read_bytes() == b"second version"
    assert os.listdir(target.parent) == ["file.bin"]
    checkpoints.atomic_write_text(tmp_path / "t.txt", "héllo")
    assert (tmp_path / "t.txt").read_bytes() == "héllo".encode("utf-8")
    model, optimizer = make()
    checkpoints.save_epoch(tmp_path / "ck", 1, model, optimizer, {"epoch": 1}, keep=1)
    assert os.listdir(tmp_path / "ck") == ["epoch-00001.npz"]


def test_failed_atomic_write_keeps_the_old_file_and_no_temporary(tmp_path):
    target = tmp_path / "file.bin"
    checkpoints.atomic_write_bytes(target, b"old")
    with pytest.raises(TypeError):
        checkpoints.atomic_write_bytes(target, "text is not bytes")
    assert target.read_bytes() == b"old"
    assert os.listdir(tmp_path) == ["file.bin"]
