"""Where and how an export writes: never over the run folder or another run's model, a replace that a kill
at any moment cannot lose, numbered TF Serving versions, and file modes that follow the umask."""

import dataclasses
import json
import os
import re
import shutil
import subprocess
import sys

import numpy as np
import pytest

from vampkeras import export
from vampkeras.config import RunConfig
from vampkeras.errors import VampkerasError
from vampkeras.run_setup import check_export_target, prepare_config
from vampkeras.training import train

# A run that would train for a few seconds if a refusal failed to happen (it must not get that far).
TINY_RUN = dict(epochs=1, max_examples=50, num_components=5, latent_dim=2, hidden_units=8, image_every=0)


# -- a fake SavedModel writer, and a process that can die at any file-system step ---------------------------
def fake_write(marker, config_json, target, staging):
    """Stands in for the TensorFlow save: a folder whose saved_model.pb holds ``marker`` (the "model")."""
    (target / "assets").mkdir(parents=True)
    (target / "saved_model.pb").write_text(marker)
    (target / "assets" / "config.json").write_text(config_json)


@pytest.fixture
def fake_models(monkeypatch):
    monkeypatch.setattr(export, "_write_saved_model", fake_write)


def marker(folder):
    return (folder / "saved_model.pb").read_text()


def dead_pid():
    """The id of a process that has exited."""
    process = subprocess.Popen([sys.executable, "-c", "pass"])
    process.wait()
    return process.pid


class Killed(BaseException):
    """The export's process died here."""


class MortalModule:
    """Stands in for the ``os`` or ``shutil`` module inside vampkeras.export. The calls that change the file
    system (rename, replace, rmtree, unlink) are numbered across both modules: the ``steps.kill_at``-th one raises
    Killed instead of running, and from then on none runs (the process is dead; cleanup code in ``finally``
    clauses must not help it). ``getpid`` names a dead process, as a later export would see it."""

    def __init__(self, module, steps):
        self._module, self._steps = module, steps

    def __getattr__(self, name):
        real = getattr(self._module, name)
        if name == "getpid":
            return lambda: self._steps.pid
        if name not in ("rename", "replace", "rmtree", "unlink"):
            return real

        def step(*args, **kwargs):
            if self._steps.dead:
                return None
            self._steps.count += 1
            self._steps.calls.append((name, *[os.path.basename(str(a)) for a in args]))
            if self._steps.count == self._steps.kill_at:
                self._steps.dead = True
                raise Killed(name)
            return real(*args, **kwargs)

        return step


@dataclasses.dataclass
class Steps:
    kill_at: int
    pid: int
    count: int = 0
    dead: bool = False
    calls: list = dataclasses.field(default_factory=list)


def export_killed_at(monkeypatch, step, *args, **kwargs):
    """export(*args, **kwargs) in a process killed at file-system step ``step``; returns (killed, steps)."""
    steps = Steps(kill_at=step, pid=dead_pid())
    monkeypatch.setattr(export, "os", MortalModule(os, steps))
    monkeypatch.setattr(export, "shutil", MortalModule(shutil, steps))
    try:
        export.export(*args, **kwargs)
        killed = False
    except Killed:
        killed = True
    finally:                                    # the next export runs in a new, healthy process
        monkeypatch.setattr(export, "os", os)
        monkeypatch.setattr(export, "shutil", shutil)
    return killed, steps


def leftovers(directory):
    return sorted(p.name for p in directory.parent.iterdir() if p.name.startswith(f".{directory.name}."))


# -- the replace is safe at every instant --------------------------------------------------------------------
def test_a_kill_at_any_step_of_a_replacing_export_loses_neither_model(tmp_path, monkeypatch, fake_models):
    directory = tmp_path / "model"
    seen_steps = []
    for step in range(1, 10):
        export.export("old", "{}", directory, overwrite=True)
        killed, steps = export_killed_at(monkeypatch, step, "new", "{}", directory, overwrite=True)
        if not killed:
            break
        seen_steps.append(steps.calls[-1])
        # a load right after the kill finds a whole model: the old one until the new one is in place
        found = export.resolve_saved_model(directory)
        assert found is not None, (step, steps.calls)
        expected = "old" if step <= 2 else "new"
        assert marker(found) == expected, (step, steps.calls)
        # the next export without --overwrite sees the model that is there and keeps it (restored, not deleted)
        with pytest.raises(VampkerasError, match="already holds files"):
            export.export("newer", "{}", directory)
        assert marker(directory) == expected
        # the next export with --overwrite replaces it and leaves nothing behind
        export.export("newer", "{}", directory, overwrite=True)
        assert marker(directory) == "newer" and leftovers(directory) == []
    # every step of the replace was a kill point: old aside, new in, old deleted, staging deleted
    assert [call[0] for call in seen_steps] == ["replace", "replace", "rmtree", "rmtree"]


def test_a_kill_between_the_two_renames_leaves_the_old_model_beside_the_folder(tmp_path, monkeypatch, fake_models):
    directory = tmp_path / "model"
    export.export("old", "{}", directory)
    killed, steps = export_killed_at(monkeypatch, 2, "new", "{}", directory, overwrite=True)
    assert killed and steps.calls[-1][0] == "replace"
    assert not directory.exists()
    kept = export.interrupted_export(directory)
    assert re.fullmatch(rf"\.model\.old-{steps.pid}-\w+", kept.name) and marker(kept) == "old"
    assert export.is_saved_model(directory) and export.resolve_saved_model(directory) == kept


def staging_of(pid, folder, name):
    """A staging folder as an export by process ``pid`` to ``folder/name`` creates it (marker included)."""
    steps = Steps(kill_at=0, pid=pid)
    export.os = MortalModule(os, steps)
    try:
        return export._new_staging(folder, name)
    finally:
        export.os = os


def test_staging_folders_of_live_exports_are_kept_and_those_of_dead_ones_removed(tmp_path, fake_models):
    directory = tmp_path / "model"
    live = staging_of(os.getpid(), tmp_path, "model")      # an export running right now (this process)
    dead = staging_of(dead_pid(), tmp_path, "model")
    (dead / "model").mkdir()
    (dead / "model" / "saved_model.pb").write_text("half")
    half_deleted = staging_of(dead_pid(), tmp_path, "model")   # what a kill midway through a deletion leaves
    # (the marker goes last, so the folder is still known as the tool's own)
    other = staging_of(dead_pid(), tmp_path, "other")      # another export's
    export.export("new", "{}", directory)
    assert live.is_dir() and other.is_dir()
    assert not dead.exists() and not half_deleted.exists()
    assert marker(directory) == "new"


def user_folders(parent, name):
    """Folders of the user's named like the leftovers of an export to ``parent/name``, each holding a file."""
    pid = dead_pid()
    names = ["old-backup", "tmp-x1y2z3", f"tmp-{pid}-abcd1234", f"old-{pid}-abcd1234", f"old-{pid}"]
    folders = [parent / f".{name}.{suffix}" for suffix in names]
    for folder in folders:
        folder.mkdir()
        (folder / "saved_model.pb").write_text(f"the user's {folder.name}")   # even a model
    return folders


def test_a_users_folders_named_like_leftovers_survive_exports(tmp_path, monkeypatch, fake_models):
    """Issue 33 item 8: saved_models/.base.old-backup was deleted by the next export. Only what an export
    created (its marker inside the staging folder) is moved or deleted; a dead export's leftovers still are."""
    directory = tmp_path / "base"
    folders = user_folders(tmp_path, "base")
    # with the export folder missing, the user's ".base.old-<pid>-<token>" model is not taken for an
    # interrupted export's (neither read by a load nor moved into place)
    assert export.interrupted_export(directory) is None and not export.is_saved_model(directory)
    export.export("first", "{}", directory)
    killed, _ = export_killed_at(monkeypatch, 3, "second", "{}", directory, overwrite=True)
    assert killed and len(leftovers(directory)) == len(folders) + 2     # a dead export's staging and old model
    export.export("third", "{}", directory, overwrite=True)
    assert marker(directory) == "third"
    assert leftovers(directory) == sorted(folder.name for folder in folders)
    for folder in folders:
        assert marker(folder) == f"the user's {folder.name}"


# -- versions of a TF Serving model base path ----------------------------------------------------------------
def test_versioned_exports_take_the_next_free_number_and_never_overwrite(tmp_path, fake_models):
    base = tmp_path / "served"
    assert export.export("a", "{}", base, versioned=True) == base / "1"
    assert export.export("b", "{}", base, versioned=True) == base / "2"
    (base / "10").mkdir()                                   # a version another tool wrote, and other files
    (base / "10" / "saved_model.pb").write_text("ten")
    (base / "notes").write_text("kept")
    assert export.export("c", "{}", base, versioned=True) == base / "11"
    assert [marker(base / n) for n in ("1", "2", "10", "11")] == ["a", "b", "ten", "c"]
    assert (base / "notes").read_text() == "kept"
    assert export.resolve_saved_model(base) == base / "11"
    assert export.resolve_saved_model(base / "2") == base / "2"
    assert [version for version, _ in export.model_versions(base)] == [1, 2, 10, 11]
    assert sorted(p.name for p in base.iterdir()) == ["1", "10", "11", "2", "notes"]


def test_a_version_written_meanwhile_by_another_process_is_not_replaced(tmp_path, monkeypatch, fake_models):
    base = tmp_path / "served"
    export.export("a", "{}", base, versioned=True)
    real_rename = os.rename
    raced = []

    def racing_rename(source, destination):
        if not raced:                                       # another exporter takes this number first
            raced.append(destination)
            os.mkdir(destination)
            with open(os.path.join(destination, "saved_model.pb"), "w") as stream:
                stream.write("theirs")
        return real_rename(source, destination)

    class RacingOs:
        def __getattr__(self, name):
            return racing_rename if name == "rename" else getattr(os, name)

    monkeypatch.setattr(export, "os", RacingOs())
    written = export.export("ours", "{}", base, versioned=True)
    monkeypatch.undo()
    assert written == base / "3"
    assert marker(base / "2") == "theirs" and marker(base / "3") == "ours"


@pytest.mark.parametrize("setup, message", [
    (lambda base: base.write_text("a file"), "is a file"),
    (lambda base: (base.mkdir(), (base / "saved_model.pb").write_text("")), "is a SavedModel, not a model base"),
    (lambda base: (base.mkdir(), (base / "data.csv").write_text("")), "no numbered model versions"),
])
def test_a_versioned_export_refuses_a_folder_that_is_no_model_base(tmp_path, fake_models, setup, message):
    base = tmp_path / "base"
    setup(base)
    before = sorted(p.name for p in tmp_path.rglob("*"))
    with pytest.raises(VampkerasError, match=message):
        export.export("x", "{}", base, versioned=True)
    assert sorted(p.name for p in tmp_path.rglob("*")) == before


# -- where an export may go ----------------------------------------------------------------------------------
def new_config(tmp_path, run_dir, export_dir, **overrides):
    return prepare_config(RunConfig(run_dir=str(run_dir), export_dir=str(export_dir), **{**TINY_RUN, **overrides}),
                          resume=False)


@pytest.mark.parametrize("export_dir, relation", [
    ("runs/a", "is the run folder"),
    ("runs/./b/../a/", "is the run folder"),
    ("link/a", "is the run folder"),                        # the same folder through a symbolic link
    ("runs", "contains the run folder"),
    (".", "contains the run folder"),
    ("runs/a/model", "lies inside the run folder"),
    ("runs/a/checkpoints", "lies inside the run folder"),
])
def test_the_export_may_not_be_the_run_folder_hold_it_or_lie_inside_it(tmp_path, monkeypatch, export_dir,
                                                                       relation):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "runs").mkdir()
    (tmp_path / "link").symlink_to(tmp_path / "runs")
    with pytest.raises(VampkerasError, match=relation):
        train(RunConfig(run_dir="runs/a", export_dir=export_dir, **TINY_RUN), overwrite=True, verbose=0)
    assert sorted(p.name for p in tmp_path.rglob("*")) == ["link", "runs"]     # nothing was created


def test_resume_with_the_run_folder_as_export_is_refused_and_keeps_the_run(tmp_path):
    run_dir = tmp_path / "run"
    run_dir.mkdir()
    config = new_config(tmp_path, run_dir, tmp_path / "model")
    (run_dir / "config.json").write_text(config.to_json())
    (run_dir / "history.csv").write_text("epoch\n1\n")
    for export_dir in (run_dir, tmp_path, run_dir / "checkpoints"):
        with pytest.raises(VampkerasError, match="run folder"):
            train(RunConfig(run_dir=str(run_dir), export_dir=str(export_dir)), resume=True,
                  given={"export_dir": str(export_dir)}, overwrite=True, verbose=0)
        assert sorted(p.name for p in run_dir.iterdir()) == ["config.json", "history.csv"]


def test_an_export_whose_parent_is_a_file_is_refused_before_training(tmp_path):
    (tmp_path / "file").write_text("not a folder")
    with pytest.raises(VampkerasError, match="is a file, not a folder"):
        train(RunConfig(run_dir=str(tmp_path / "run"), export_dir=str(tmp_path / "file" / "model"), **TINY_RUN),
              verbose=0)
    assert not (tmp_path / "run").exists()


# -- whose SavedModel is it ----------------------------------------------------------------------------------
def write_export_of(config, folder, with_run_id=True):
    """An export folder as `train` leaves it for ``config`` (only its assets/config.json matters here)."""
    values = config.to_dict()
    if not with_run_id:                         # as vampkeras wrote it before runs had an id
        values.pop("run_id", None)
        values.pop("export_versioned", None)
    (folder / "assets").mkdir(parents=True)
    (folder / "saved_model.pb").write_text("model")
    (folder / "assets" / "config.json").write_text(json.dumps(values))


def test_new_runs_get_an_id_that_resume_keeps(tmp_path):
    first = new_config(tmp_path, tmp_path / "a", tmp_path / "m")
    second = new_config(tmp_path, tmp_path / "b", tmp_path / "n")
    assert len(first.run_id) == 32 and first.run_id != second.run_id
    (tmp_path / "a").mkdir()
    (tmp_path / "a" / "config.json").write_text(first.to_json())
    resumed = prepare_config(RunConfig(run_dir=str(tmp_path / "a")), resume=True, given={})
    assert resumed.run_id == first.run_id


def test_another_run_with_the_same_run_dir_text_does_not_overwrite_the_export(tmp_path, monkeypatch):
    """cd A && train --run-dir runA --export ../SM; cd B && train --seed 99 --run-dir runA --export ../SM."""
    for name in ("A", "B"):
        (tmp_path / name).mkdir()
    monkeypatch.chdir(tmp_path / "A")
    first = new_config(tmp_path, "runA", "../SM")
    write_export_of(first, tmp_path / "SM")
    monkeypatch.chdir(tmp_path / "B")
    with pytest.raises(VampkerasError, match=r"holds the SavedModel of another run \(runA\).*--overwrite"):
        train(RunConfig(run_dir="runA", export_dir="../SM", **{**TINY_RUN, "seed": 99}), verbose=0)
    assert not (tmp_path / "B" / "runA").exists() and marker(tmp_path / "SM") == "model"
    # the first run itself, reached from B by another path, may refresh its export without --overwrite
    check_export_target(dataclasses.replace(first, run_dir="../A/runA"), overwrite=False)


def test_an_export_made_without_a_run_is_named_so_and_only_replaced_with_overwrite(tmp_path, monkeypatch):
    """A SavedModel written by `vampkeras.export.export` from a model built by hand (docs/python-api.md's
    "Lower level") has no run folder: the refusal says so instead of naming a run "None"."""
    monkeypatch.chdir(tmp_path)
    values = {**new_config(tmp_path, "by-hand", "SM").to_dict(), "run_dir": None, "run_id": None}
    (tmp_path / "SM" / "assets").mkdir(parents=True)
    (tmp_path / "SM" / "saved_model.pb").write_text("model")
    (tmp_path / "SM" / "assets" / "config.json").write_text(json.dumps(values))
    config = new_config(tmp_path, "runs/mine", "SM")
    with pytest.raises(VampkerasError, match=r"^the export folder SM already holds a SavedModel exported without a "
                                             r"run folder \(vampkeras.export.export\); .*--overwrite$"):
        check_export_target(config, overwrite=False)
    check_export_target(config, overwrite=True)
    assert marker(tmp_path / "SM") == "model"


def test_an_export_without_a_run_id_is_only_replaced_with_overwrite(tmp_path, monkeypatch):
    """The same scenario with an export written before runs had an id: its run_dir text cannot tell."""
    for name in ("A", "B"):
        (tmp_path / name).mkdir()
    monkeypatch.chdir(tmp_path / "A")
    write_export_of(new_config(tmp_path, "runA", "../SM"), tmp_path / "SM", with_run_id=False)
    monkeypatch.chdir(tmp_path / "B")
    with pytest.raises(VampkerasError, match="cannot be told from another run's.*--overwrite"):
        train(RunConfig(run_dir="runA", export_dir="../SM", **{**TINY_RUN, "seed": 99}), verbose=0)
    assert not (tmp_path / "B" / "runA").exists()
    check_export_target(new_config(tmp_path, "runA", "../SM", seed=99), overwrite=True)


def test_the_model_an_interrupted_export_left_aside_still_counts_as_the_folders_content(tmp_path, monkeypatch,
                                                                                       fake_models):
    owner = new_config(tmp_path, tmp_path / "runA", tmp_path / "SM")
    write_export_of(owner, tmp_path / "SM")
    killed, _ = export_killed_at(monkeypatch, 2, "new", "{}", tmp_path / "SM", overwrite=True)
    assert killed and not (tmp_path / "SM").exists()         # the owner's model lies aside, under .SM.old-*
    other = new_config(tmp_path, tmp_path / "runB", tmp_path / "SM")
    with pytest.raises(VampkerasError, match="another run"):
        check_export_target(other, overwrite=False)
    check_export_target(owner, overwrite=False)


# -- a real SavedModel: modes, versions, loading after an interrupted replace ----------------------------------
@pytest.fixture(scope="module")
def tiny_model():
    from vampkeras.data import DATASETS
    from vampkeras.models import build_model

    config = RunConfig(num_components=3, latent_dim=2, hidden_units=8).resolve(DATASETS["mnist5k"])
    return build_model(config, DATASETS["mnist5k"]), config


@pytest.mark.slow
def test_a_real_export_honours_the_umask_and_loads_from_its_base_path_or_aside(tmp_path, monkeypatch,
                                                                                 tiny_model):
    from vampkeras.trained_model import TrainedModel

    model, config = tiny_model
    base = tmp_path / "served"
    previous = os.umask(0o002)                  # group-writable: TensorFlow alone makes its folders 0755
    try:
        written = export.export(model, config.to_json(), base, versioned=True)
    finally:
        os.umask(previous)
    assert written == base / "1" and export.resolve_saved_model(base) == written
    modes = {path.relative_to(tmp_path).as_posix(): path.stat().st_mode & 0o777
             for path in [base, *base.rglob("*")]}
    assert modes["served"] == modes["served/1"] == modes["served/1/variables"] == 0o775
    assert modes["served/1/saved_model.pb"] == modes["served/1/assets/config.json"] == 0o664
    assert {mode for mode in modes.values()} == {0o775, 0o664}
    x = (np.random.default_rng(0).uniform(size=(3, 28, 28)) < 0.3).astype(np.float32)
    expected = TrainedModel.load(base).log_prob(x, 20)             # the base path reads its highest version
    assert expected.shape == (3,) and np.all(np.isfinite(expected))
    # the same model as a plain folder, killed while an export replaced it: a load reads it from aside
    plain = tmp_path / "plain"
    os.rename(written, plain)
    monkeypatch.setattr(export, "_write_saved_model", fake_write)
    killed, steps = export_killed_at(monkeypatch, 2, "new", "{}", plain, overwrite=True)
    assert killed and not plain.exists()
    np.testing.assert_array_equal(TrainedModel.load(plain).log_prob(x, 20), expected)
