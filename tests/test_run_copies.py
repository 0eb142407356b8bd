"""A run folder knows it is a copy (issue #33, item 7): a run records its real path beside its run id, and an
export that names this run id but another folder still holding a run of that id is the other run's model,
replaced only with --overwrite. A moved run (mv) carries on and records its new path; a run folder from
before the field adopts its path on first use. No training here: exports are stand-in folders with the
config asset that check_export_target reads (tests/e2e/test_run_safety.py runs the real `cp -a`)."""

import json
import os
import shutil

import pytest

from vampkeras.config import RunConfig
from vampkeras.errors import VampkerasError
from vampkeras.run_setup import check_export_target, prepare_config

RUN = dict(epochs=1, max_examples=50, num_components=5, latent_dim=2, hidden_units=8)


def start_run(run_dir, export_dir) -> RunConfig:
    """A new run's config as `train` prepares it, saved in its run folder's config.json."""
    config = prepare_config(RunConfig(run_dir=str(run_dir), export_dir=str(export_dir), **RUN), resume=False)
    os.makedirs(run_dir)
    (run_dir / "config.json").write_text(config.to_json())
    return config


def export_of(config: RunConfig, folder) -> None:
    """The export `train` leaves for ``config`` (only its assets/config.json matters to the checks)."""
    (folder / "assets").mkdir(parents=True)
    (folder / "saved_model.pb").write_text("model")
    (folder / "assets" / "config.json").write_text(config.to_json())


def resume(run_dir, **given) -> RunConfig:
    return prepare_config(RunConfig(run_dir=str(run_dir)), resume=True, given=given)


def test_a_new_run_records_its_real_path(tmp_path, monkeypatch):
    (tmp_path / "real").mkdir()
    (tmp_path / "link").symlink_to("real")
    monkeypatch.chdir(tmp_path)
    config = start_run(tmp_path / "link" / ".." / "link" / "run", tmp_path / "m")
    assert config.run_path == str(tmp_path.resolve() / "real" / "run")
    assert json.loads((tmp_path / "real" / "run" / "config.json").read_text())["run_path"] == config.run_path


def test_a_copied_run_does_not_replace_the_originals_savedmodel_without_overwrite(tmp_path):
    base = start_run(tmp_path / "runs" / "base", tmp_path / "saved" / "base")
    export_of(base, tmp_path / "saved" / "base")
    shutil.copytree(tmp_path / "runs" / "base", tmp_path / "runs" / "fork", symlinks=True)      # cp -a
    fork = resume(tmp_path / "runs" / "fork")
    assert fork.run_id == base.run_id and fork.run_path == str((tmp_path / "runs" / "fork").resolve())
    with pytest.raises(VampkerasError, match=rf"holds the SavedModel of the run in {tmp_path / 'runs' / 'base'}"
                                             r".*copy.*--overwrite"):
        check_export_target(fork, overwrite=False)
    check_export_target(fork, overwrite=True)
    # the original itself refreshes its own model as before, from any path that leads to it
    check_export_target(resume(tmp_path / "runs" / ".." / "runs" / "base"), overwrite=False)


def test_a_moved_run_carries_on_and_records_its_new_path(tmp_path):
    base = start_run(tmp_path / "runs" / "base", tmp_path / "saved" / "base")
    export_of(base, tmp_path / "saved" / "base")
    os.rename(tmp_path / "runs" / "base", tmp_path / "runs" / "moved")                       # mv
    moved = resume(tmp_path / "runs" / "moved")
    check_export_target(moved, overwrite=False)
    assert moved.run_path == str((tmp_path / "runs" / "moved").resolve())           # what its next export records


def test_a_folder_that_now_holds_another_run_does_not_make_this_one_a_copy(tmp_path):
    base = start_run(tmp_path / "runs" / "base", tmp_path / "saved" / "base")
    export_of(base, tmp_path / "saved" / "base")
    os.rename(tmp_path / "runs" / "base", tmp_path / "runs" / "moved")
    start_run(tmp_path / "runs" / "base", tmp_path / "saved" / "other")           # a new run in the old place
    check_export_target(resume(tmp_path / "runs" / "moved"), overwrite=False)


def test_a_run_folder_from_before_the_field_adopts_its_path(tmp_path):
    base = start_run(tmp_path / "runs" / "base", tmp_path / "saved" / "base")
    values = json.loads(base.to_json())
    del values["run_path"]                                  # as vampkeras wrote config.json before it
    (tmp_path / "runs" / "base" / "config.json").write_text(json.dumps(values))
    old_export = RunConfig.from_dict(values)
    export_of(old_export, tmp_path / "saved" / "base")
    resumed = resume(tmp_path / "runs" / "base")
    assert resumed.run_path == str((tmp_path / "runs" / "base").resolve())
    check_export_target(resumed, overwrite=False)           # an export without a path is this run's own
