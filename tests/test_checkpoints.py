"""Checkpoints: exact round trips, corrupt and mismatched files, rotation, resume, atomic writes."""

import json
import logging
import os
import stat

import keras
import numpy as np
import pytest

from vampkeras import checkpoints, optimizers
from vampkeras.checkpoints import CheckpointError, CheckpointMismatch, CheckpointUnreadable
from vampkeras.config import RunConfig
from vampkeras.models import build_model
from tests.fakes import ImageSpec

PIXELS = 20


def make(seed=3, train_steps=0, **overrides):
    """A tiny VampPrior VAE with a built Adam-NormGrad optimizer, optionally trained a few steps."""
    values = dict(num_components=5, latent_dim=4, hidden_units=16, pseudo_init_mean=0.05, pseudo_init_std=0.01,
                  seed=seed)
    values.update(overrides)
    model = build_model(RunConfig(**values), ImageSpec())
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


class DenseStack(keras.Model):
    """Dense layers on 3 inputs named ``names``, created (and so listed in ``weights``) in that order; ``units``
    maps a name to its width (default 3). Cheap to build, and its variable order is the test's to choose."""

    def __init__(self, names=("first", "second"), units=None, name="stack"):
        super().__init__(name=name)
        for index, layer_name in enumerate(names):
            layer = keras.layers.Dense((units or {}).get(layer_name, 3), name=layer_name)
            layer.build((None, 3))
            setattr(self, f"layer_{index}", layer)      # distinct attributes: two layers may share a name

    def named(self, name):
        return next(layer for layer in self.layers if layer.name == name)


def scramble(variables, seed):
    """Give every variable distinct random values (integers for integer variables)."""
    rng = np.random.default_rng(seed)
    for variable in variables:
        if np.dtype(variable.dtype).kind in "iu":
            variable.assign(rng.integers(1, 1000, size=tuple(variable.shape)).astype(variable.dtype))
        else:
            variable.assign(rng.normal(size=tuple(variable.shape)).astype(variable.dtype))


def stack_with_optimizer(names=("first", "second"), seed=0, loss_scaling=False, **kwargs):
    model = DenseStack(names, **kwargs)
    optimizer = keras.optimizers.Adam(learning_rate=1e-3)
    if loss_scaling:
        optimizer = keras.optimizers.LossScaleOptimizer(optimizer)
    optimizer.build(model.trainable_variables)
    scramble(model.weights, seed)
    scramble(optimizer.variables, seed + 1)
    return model, optimizer


def rewrite(path, change):
    """Rewrite the .npz at ``path`` with ``change(arrays)`` applied to its dict of arrays."""
    with np.load(path) as archive:
        arrays = {key: archive[key] for key in archive.files}
    change(arrays)
    np.savez(path, **arrays)


def write_old_format(path, model, optimizer=None, state=None):
    """A checkpoint in the layout of vampkeras before names: variables by position, no "format" entry."""
    arrays = {f"model/{index:04d}": np.asarray(v.numpy()) for index, v in enumerate(model.weights)}
    if optimizer is not None:
        arrays.update({f"optimizer/{index:04d}": np.asarray(v.numpy()) for index, v in enumerate(optimizer.variables)})
    arrays["state"] = np.array(json.dumps(state or {}))
    np.savez(path, **arrays)


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


def test_saved_file_holds_every_variable_under_its_path(tmp_path):
    model, optimizer = make(train_steps=1)
    path = tmp_path / "ckpt.npz"
    checkpoints.save(path, model, optimizer, {"epoch": 1})
    with np.load(path) as archive:
        assert int(archive["format"]) == checkpoints.FORMAT_VERSION
        assert json.loads(str(archive["state"])) == {"epoch": 1}
        model_keys = [k for k in archive.files if k.startswith("model/")]
        optimizer_keys = [k for k in archive.files if k.startswith("optimizer/")]
        assert len(archive.files) == 2 + len(model_keys) + len(optimizer_keys)
        # the model's own variable (β) without the model's name, its layers' variables by their full path
        assert sorted(model_keys) == sorted("model/" + v.path.removeprefix("vae/") for v in model.weights)
        assert "model/beta" in model_keys and "model/encoder/gated_1/kernel" in model_keys
        for variable in model.weights:
            np.testing.assert_array_equal(archive["model/" + variable.path.removeprefix("vae/")], variable.numpy())
        # the optimizer's variables without the optimizer's name, which Keras numbers per process
        assert sorted(optimizer_keys) == sorted("optimizer/" + v.name for v in optimizer.variables)
        assert {"optimizer/iteration", "optimizer/encoder_gated_1_kernel_momentum"} <= set(optimizer_keys)
        for variable in optimizer.variables:
            np.testing.assert_array_equal(archive["optimizer/" + variable.name], variable.numpy())


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
    with pytest.raises(CheckpointUnreadable, match="epoch-00001.npz"):
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
    with pytest.raises(CheckpointMismatch) as error:
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


def test_restore_latest_refuses_a_checkpoint_of_another_model_instead_of_falling_back(tmp_path):
    model, optimizer = make()
    checkpoints.save_epoch(tmp_path, 1, model, optimizer, {"epoch": 1}, keep=3)
    other, other_optimizer = make(hidden_units=8)
    checkpoints.save_epoch(tmp_path, 2, other, other_optimizer, {"epoch": 2}, keep=3)
    target, target_optimizer = make(seed=9)
    before = values(target.weights)
    # epoch 1 would load, but it is not the run's latest state: a mismatch is an error, not a reason to skip
    with pytest.raises(CheckpointMismatch, match="epoch-00002.npz.*encoder/gated_1/kernel"):
        checkpoints.restore_latest(tmp_path, target, target_optimizer)
    assert_all_equal(values(target.weights), before)


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


# -- by name ----------------------------------------------------------------------------------------
def test_weights_and_optimizer_state_follow_their_names_when_layers_are_created_in_another_order(tmp_path):
    source, source_optimizer = stack_with_optimizer(("first", "second"), seed=1)
    target, target_optimizer = stack_with_optimizer(("second", "first"), seed=7)
    # same shapes in another order: matching by position would load first's weights into second
    assert [v.path for v in source.weights] == ["first/kernel", "first/bias", "second/kernel", "second/bias"]
    assert [v.path for v in target.weights] == ["second/kernel", "second/bias", "first/kernel", "first/bias"]
    assert [tuple(v.shape) for v in source.weights] == [tuple(v.shape) for v in target.weights]
    path = tmp_path / "ckpt.npz"
    checkpoints.save(path, source, source_optimizer, {"epoch": 3})

    assert checkpoints.load(path, target, target_optimizer) == {"epoch": 3}
    for name in ("first", "second"):
        np.testing.assert_array_equal(target.named(name).kernel.numpy(), source.named(name).kernel.numpy())
        np.testing.assert_array_equal(target.named(name).bias.numpy(), source.named(name).bias.numpy())
    source_slots = {v.name: v.numpy() for v in source_optimizer.variables}
    target_slots = {v.name: v.numpy() for v in target_optimizer.variables}
    assert source_slots.keys() == target_slots.keys()
    assert "first_kernel_momentum" in source_slots
    for name, value in source_slots.items():
        np.testing.assert_array_equal(target_slots[name], value)


def test_loss_scale_optimizer_state_round_trips_between_processes_naming_it_differently(tmp_path):
    source, source_optimizer = stack_with_optimizer(seed=1, loss_scaling=True)
    target, target_optimizer = stack_with_optimizer(seed=7, loss_scaling=True)
    # Keras numbers optimizer names per process: the keys must not depend on them
    assert source_optimizer.name != target_optimizer.name
    path = tmp_path / "ckpt.npz"
    checkpoints.save(path, source, source_optimizer)
    with np.load(path) as archive:
        keys = {k.removeprefix("optimizer/") for k in archive.files if k.startswith("optimizer/")}
    assert {"iteration", "dynamic_scale", "step_counter", "inner_optimizer/iteration",
            "inner_optimizer/first_kernel_momentum", "inner_optimizer/second_bias_velocity"} <= keys
    assert len(keys) == len(source_optimizer.variables)
    checkpoints.load(path, target, target_optimizer)
    assert_all_equal(values(target_optimizer.variables), values(source_optimizer.variables))
    assert_all_equal(values(target.weights), values(source.weights))


def test_save_refuses_two_variables_with_one_path(tmp_path):
    model = DenseStack(("twin", "twin"))
    with pytest.raises(CheckpointError, match="'twin/kernel' and 'twin/kernel' would both be saved"):
        checkpoints.save(tmp_path / "ckpt.npz", model)
    assert not list(tmp_path.iterdir())


@pytest.mark.parametrize("names, units, message", [
    (("first",), None, "it holds 4 model variables, the model has 2; not in the model: second/bias, second/kernel"),
    (("first", "second", "third"), None,
     "it holds 4 model variables, the model has 6; missing from the checkpoint: third/bias, third/kernel"),
    (("first", "second"), {"second": 5},
     "other shapes (checkpoint vs model): second/kernel (3, 3) vs (3, 5), second/bias (3,) vs (5,)"),
], ids=["extra", "missing", "reshaped"])
def test_a_checkpoint_of_other_variables_is_one_error_naming_them(tmp_path, names, units, message):
    source = DenseStack(("first", "second"))
    path = tmp_path / "ckpt.npz"
    checkpoints.save(path, source)
    target = DenseStack(names, units)
    scramble(target.weights, 3)
    before = values(target.weights)
    with pytest.raises(CheckpointMismatch) as error:
        checkpoints.load(path, target)
    assert message in str(error.value)
    assert "ckpt.npz does not match this model" in str(error.value)
    assert "start a new run" in str(error.value)
    assert_all_equal(values(target.weights), before)        # nothing was half-loaded


def test_a_mismatch_lists_a_few_names_then_a_count(tmp_path):
    path = tmp_path / "ckpt.npz"
    checkpoints.save(path, DenseStack([f"layer{i}" for i in range(8)]))
    with pytest.raises(CheckpointMismatch) as error:
        checkpoints.load(path, DenseStack(("first", "second")))
    message = str(error.value)
    assert ("not in the model: layer0/bias, layer0/kernel, layer1/bias, layer1/kernel, layer2/bias and 11 more"
            in message)
    assert "missing from the checkpoint: first/bias, first/kernel, second/bias, second/kernel" in message


def test_a_changed_dtype_is_a_mismatch(tmp_path):
    model = DenseStack()
    path = tmp_path / "ckpt.npz"
    checkpoints.save(path, model)
    rewrite(path, lambda arrays: arrays.update({"model/first/bias": arrays["model/first/bias"].astype(np.float64)}))
    with pytest.raises(CheckpointMismatch, match=r"first/bias \(3,\) float64 vs \(3,\) float32"):
        checkpoints.load(path, model)


def test_a_checkpoint_of_a_newer_format_is_refused_not_skipped(tmp_path):
    model, optimizer = stack_with_optimizer()
    checkpoints.save_epoch(tmp_path, 1, model, optimizer, {"epoch": 1}, keep=3)
    checkpoints.save_epoch(tmp_path, 2, model, optimizer, {"epoch": 2}, keep=3)
    rewrite(tmp_path / "epoch-00002.npz", lambda arrays: arrays.update(format=np.array(99)))
    with pytest.raises(CheckpointError, match="epoch-00002.npz has format 99.*newer vampkeras") as error:
        checkpoints.restore_latest(tmp_path, model, optimizer)
    assert not isinstance(error.value, CheckpointUnreadable)


def test_restore_latest_skips_an_unreadable_checkpoint_but_not_a_mismatched_one(tmp_path, caplog):
    model, optimizer = stack_with_optimizer(seed=1)
    checkpoints.save_epoch(tmp_path, 1, model, optimizer, {"epoch": 1}, keep=5)
    saved = values(model.weights)
    scramble(model.weights, 2)
    checkpoints.save_epoch(tmp_path, 2, model, optimizer, {"epoch": 2}, keep=5)
    newest = tmp_path / "epoch-00002.npz"
    newest.write_bytes(flip_middle_byte(newest.read_bytes()))
    target, target_optimizer = stack_with_optimizer(seed=9)
    with caplog.at_level(logging.WARNING, logger="vampkeras.checkpoints"):
        assert checkpoints.restore_latest(tmp_path, target, target_optimizer) == {"epoch": 1}
    assert_all_equal(values(target.weights), saved)
    assert any("skipping checkpoint" in r.getMessage() and "epoch-00002.npz" in r.getMessage() for r in caplog.records)

    # a whole checkpoint of another model as the newest: an error, even with a good one before it
    checkpoints.save_epoch(tmp_path, 3, DenseStack(("first", "other")), None, {"epoch": 3}, keep=5)
    with pytest.raises(CheckpointMismatch, match="epoch-00003.npz"):
        checkpoints.restore_latest(tmp_path, target, None)


# -- checkpoints of the positional format (before names) --------------------------------------------
def test_an_old_positional_checkpoint_loads_by_position_with_a_warning(tmp_path, caplog):
    source, source_optimizer = make(seed=3)
    scramble(source_optimizer.variables, 5)
    folder = tmp_path / "checkpoints"
    folder.mkdir()
    write_old_format(folder / "epoch-00004.npz", source, source_optimizer, {"epoch": 4, "best_epoch": 2})
    target, target_optimizer = make(seed=9)
    with caplog.at_level(logging.WARNING, logger="vampkeras.checkpoints"):
        state = checkpoints.restore_latest(folder, target, target_optimizer)
    assert state == {"epoch": 4, "best_epoch": 2}
    assert_all_equal(values(target.weights), values(source.weights))
    assert_all_equal(values(target_optimizer.variables), values(source_optimizer.variables))
    assert any("old positional format" in r.getMessage() and "epoch-00004.npz" in r.getMessage()
               for r in caplog.records)
    # the next checkpoint of the run is written by name
    path = checkpoints.save_epoch(folder, 5, target, target_optimizer, {"epoch": 5}, keep=3)
    with np.load(path) as archive:
        assert int(archive["format"]) == checkpoints.FORMAT_VERSION
        assert "model/encoder/gated_1/kernel" in archive.files and "model/0000" not in archive.files


def test_an_old_positional_checkpoint_of_other_shapes_is_refused(tmp_path):
    source, source_optimizer = make(hidden_units=8)
    folder = tmp_path / "checkpoints"
    folder.mkdir()
    write_old_format(folder / "epoch-00001.npz", make()[0], None, {"epoch": 1})     # a good one to fall back to
    write_old_format(folder / "epoch-00002.npz", source, source_optimizer, {"epoch": 2})
    target, target_optimizer = make(seed=9)
    before = values(target.weights)
    with pytest.raises(CheckpointMismatch) as error:
        checkpoints.restore_latest(folder, target, target_optimizer)
    message = str(error.value)
    assert "epoch-00002.npz (in the old positional format) does not match this model" in message
    assert "model variable 1 (encoder/gated_1/kernel) (20, 16) vs (20, 32)" in message
    assert_all_equal(values(target.weights), before)


def test_an_old_positional_checkpoint_with_another_count_is_refused(tmp_path):
    path = tmp_path / "best.npz"
    write_old_format(path, DenseStack(("first", "second", "third")))
    with pytest.raises(CheckpointMismatch, match="old positional format.*it holds 6 model variables, the model has 4"):
        checkpoints.load(path, DenseStack(("first", "second")))


# -- files as users expect --------------------------------------------------------------------------
@pytest.mark.parametrize("umask, file_mode, folder_mode", [(0o022, 0o644, 0o755), (0o077, 0o600, 0o700)])
def test_written_files_and_folders_honour_the_umask(tmp_path, umask, file_mode, folder_mode):
    previous = os.umask(umask)
    try:
        text = tmp_path / "new" / "deeper" / "config.json"
        checkpoints.atomic_write_text(text, "{}\n")
        checkpoints.atomic_write_text(text, "{\"again\": 1}\n")           # replacing keeps the mode
        model, optimizer = stack_with_optimizer()
        epoch = checkpoints.save_epoch(tmp_path / "run" / "checkpoints", 1, model, optimizer, {"epoch": 1}, keep=1)
        best = tmp_path / "run" / "checkpoints" / checkpoints.BEST_WEIGHTS
        checkpoints.save(best, model)
    finally:
        os.umask(previous)
    for path in (text, epoch, best):
        assert stat.S_IMODE(path.stat().st_mode) == file_mode, path
    for path in (tmp_path / "new", tmp_path / "new" / "deeper", tmp_path / "run", tmp_path / "run" / "checkpoints"):
        assert stat.S_IMODE(path.stat().st_mode) == folder_mode, path


def test_the_folder_is_fsynced_after_the_rename(tmp_path, monkeypatch):
    target = tmp_path / "history.csv"
    target.write_bytes(b"old")
    synced = []
    real_fsync = os.fsync

    def recording_fsync(descriptor):
        status = os.fstat(descriptor)
        # what a reader of the folder sees when it is synced: the rename must already have happened
        synced.append((stat.S_ISDIR(status.st_mode), status.st_ino, target.read_bytes()))
        real_fsync(descriptor)

    monkeypatch.setattr(os, "fsync", recording_fsync)
    checkpoints.atomic_write_bytes(target, b"new")
    assert synced == [(False, target.stat().st_ino, b"old"), (True, tmp_path.stat().st_ino, b"new")]


@pytest.mark.slow
@pytest.mark.parametrize("model_name, prior", [("vae", "vampprior"), ("hvae", "mog"), ("convhvae", "standard"),
                                               ("pixelhvae", "vampprior-data")])
def test_every_model_saves_under_distinct_names_that_another_instance_finds(tmp_path, model_name, prior):
    from vampkeras.data import DATASETS
    from vampkeras.models import build_model_for_weights

    spec = DATASETS["static_mnist"]
    config = RunConfig(model=model_name, prior=prior, num_components=3, latent_dim=2, hidden_units=8).resolve(spec)

    def built(mixed_precision, optimizer_name):
        model = build_model_for_weights(config, spec, mixed_precision=mixed_precision)
        optimizer = optimizers.build(optimizer_name, 1e-3, loss_scaling=mixed_precision)
        optimizer.build(model.trainable_variables)
        return model, optimizer

    source, source_optimizer = built(False, "adam-normgrad")
    scramble(source.weights, 1)
    scramble(source_optimizer.variables, 2)
    path = tmp_path / "ckpt.npz"
    checkpoints.save(path, source, source_optimizer, {"epoch": 1})          # raises if two variables collide
    with np.load(path) as archive:
        assert len(archive.files) == 2 + len(source.weights) + len(source_optimizer.variables)

    # a second instance in the same process (its optimizer has another name) finds every variable
    target, target_optimizer = built(False, "adam-normgrad")
    checkpoints.load(path, target, target_optimizer)
    assert_all_equal(values(target.weights), values(source.weights))
    assert_all_equal(values(target_optimizer.variables), values(source_optimizer.variables))

    # mixed precision: the same weight names (float32 variables), and a loss-scaled Adam's names are distinct
    mixed, mixed_optimizer = built(True, "adam")
    checkpoints.load(path, mixed)
    assert_all_equal(values(mixed.weights), values(source.weights))
    checkpoints.save(tmp_path / "mixed.npz", mixed, mixed_optimizer)
    with np.load(tmp_path / "mixed.npz") as archive:
        assert len(archive.files) == 2 + len(mixed.weights) + len(mixed_optimizer.variables)
