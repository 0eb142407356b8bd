"""The run folder: what makes a folder a run, the lock (refused while held, released by kill -9), move aside."""

import os
import signal
import subprocess
import sys
import time

import pytest

from vampkeras.errors import VampkerasError
from vampkeras.run_folder import RunFolder, RunFolderLocked

HOLD_LOCK = """
import sys, time
from vampkeras.run_folder import RunFolder
folder = RunFolder(sys.argv[1]).lock()   # kept: the lock lives as long as its open file
print("locked", flush=True)
time.sleep(600)
"""


def hold_lock_in_child(path):
    child = subprocess.Popen([sys.executable, "-c", HOLD_LOCK, str(path)], stdout=subprocess.PIPE, text=True)
    assert child.stdout.readline().strip() == "locked"
    return child


def test_a_second_process_is_refused_naming_the_holder_and_kill_9_releases_the_lock(tmp_path):
    run = tmp_path / "run"
    child = hold_lock_in_child(run)
    try:
        with pytest.raises(RunFolderLocked, match=rf"in use by process {child.pid} on .*since"):
            RunFolder(run).lock()
    finally:
        os.kill(child.pid, signal.SIGKILL)
        child.wait()
    folder = RunFolder(run).lock()          # the kernel released the dead holder's lock: no stale lock
    folder.unlock()


def test_the_lock_is_released_by_unlock_and_by_the_context_manager(tmp_path):
    first = RunFolder(tmp_path / "run").lock()
    with pytest.raises(RunFolderLocked):
        RunFolder(tmp_path / "run").lock()          # another open file description: refused even in-process
    first.unlock()
    with RunFolder(tmp_path / "run").locked():
        with pytest.raises(RunFolderLocked):
            RunFolder(tmp_path / "run").lock()
    RunFolder(tmp_path / "run").lock().unlock()


def test_only_a_folder_with_config_json_is_a_run_and_a_new_run_needs_an_empty_folder(tmp_path):
    RunFolder(tmp_path / "new").check_new_run_target()           # missing: fine
    (tmp_path / "empty").mkdir()
    RunFolder(tmp_path / "empty").check_new_run_target()         # empty: fine
    foreign = tmp_path / "foreign"
    foreign.mkdir()
    (foreign / "history.csv").write_text("epoch\n1\n")
    assert not RunFolder(foreign).holds_run()
    with pytest.raises(VampkerasError, match="not empty and holds no run"):
        RunFolder(foreign).check_new_run_target()
    (foreign / "config.json").write_text("{}")
    assert RunFolder(foreign).holds_run()
    with pytest.raises(VampkerasError, match="already holds a run.*--restart"):
        RunFolder(foreign).check_new_run_target()
    (tmp_path / "file").write_text("x")
    with pytest.raises(VampkerasError, match="is a file"):
        RunFolder(tmp_path / "file").check_new_run_target()


def test_move_aside_renames_and_never_overwrites(tmp_path, monkeypatch):
    monkeypatch.setattr(time, "strftime", lambda *_: "20261201-120000")
    run = tmp_path / "run"
    run.mkdir()
    (run / "config.json").write_text("first")
    moved = RunFolder(run).move_aside()
    assert moved == tmp_path / "run.restarted-20261201-120000" and (moved / "config.json").read_text() == "first"
    assert not run.exists()
    run.mkdir()
    (run / "config.json").write_text("second")
    again = RunFolder(run).move_aside()         # same second: a new name, the first one is kept
    assert again == tmp_path / "run.restarted-20261201-120000-2"
    assert (moved / "config.json").read_text() == "first" and (again / "config.json").read_text() == "second"


def test_a_folder_empty_but_for_its_lock(tmp_path):
    run = RunFolder(tmp_path / "run")
    assert run.is_empty_or_missing() and run.is_empty_or_missing(besides_lock=True)
    run.path.mkdir()
    run.lock_path.write_text("")
    assert not run.is_empty_or_missing() and run.is_empty_or_missing(besides_lock=True)
    (run.path / "other").write_text("x")
    assert not run.is_empty_or_missing(besides_lock=True)
