"""The run folder: what makes a folder a run, the lock (refused while held, released by kill -9), move aside."""

import os
import signal
import subprocess
import sys
import time
import tracemalloc

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


# -- item 4: the lock file is opened as what it claims to be -------------------------------------------
@pytest.mark.parametrize("kind", ["symlink", "dangling symlink", "hard link", "fifo", "folder"])
def test_a_lock_file_that_is_not_a_plain_file_of_its_own_is_refused_and_nothing_is_written_through_it(tmp_path,
                                                                                                     kind):
    run = RunFolder(tmp_path / "run")
    run.path.mkdir()
    victim = tmp_path / "precious.txt"
    victim.write_text("the user's own file")
    if kind == "symlink":
        run.lock_path.symlink_to(victim)
    elif kind == "dangling symlink":
        run.lock_path.symlink_to(tmp_path / "would-be-created")
    elif kind == "hard link":
        os.link(victim, run.lock_path)
    elif kind == "fifo":
        os.mkfifo(run.lock_path)
    else:
        run.lock_path.mkdir()
    with pytest.raises(VampkerasError, match=r"lock file .*\.lock is .*remove it"):
        run.lock()
    assert victim.read_text() == "the user's own file"
    assert not (tmp_path / "would-be-created").exists()
    assert run._lock_handle is None


def test_the_lock_records_its_holder_and_reads_a_huge_lock_file_bounded(tmp_path):
    run = RunFolder(tmp_path / "run")
    run.path.mkdir()
    with run.locked():
        recorded = run.lock_path.read_text()
        assert recorded.startswith("{") and f'"pid": {os.getpid()}' in recorded
        run.lock_path.write_text("x" * 50_000_000)          # what a hostile folder's lock could hold
        tracemalloc.start()
        try:
            with pytest.raises(RunFolderLocked, match="in use by another process"):
                RunFolder(run.path).lock()
            peak = tracemalloc.get_traced_memory()[1]
        finally:
            tracemalloc.stop()
        assert peak < 1_000_000


# -- item 17: a run's own files of the wrong kind are named before a resume -----------------------------
@pytest.mark.parametrize("name, kind", [("history.csv", "a folder"), ("checkpoints", "a file"),
                                        ("figures", "a file"), ("evaluation.json", "a folder")])
def test_a_run_whose_own_files_are_of_the_wrong_kind_is_refused_naming_the_file(tmp_path, name, kind):
    run = RunFolder(tmp_path / "run")
    run.path.mkdir()
    (run.path / "config.json").write_text("{}")
    if kind == "a folder":
        (run.path / name).mkdir()
    else:
        (run.path / name).write_text("mine")
    with pytest.raises(VampkerasError, match=rf"{run.path / name} is {kind}, where the run keeps"):
        run.check_own_files()


def test_a_healthy_run_folder_passes_the_check(tmp_path):
    run = RunFolder(tmp_path / "run")
    run.checkpoint_dir.mkdir(parents=True)
    (run.path / "config.json").write_text("{}")
    run.history_path.write_text("epoch\n1\n")
    run.check_own_files()
    RunFolder(tmp_path / "missing").check_own_files()


def test_run_records_are_read_bounded_and_never_from_a_fifo(tmp_path):
    run = RunFolder(tmp_path / "run")
    run.path.mkdir()
    run.config_path.write_bytes(b" " * (2 << 20) + b"{}")
    with pytest.raises(VampkerasError, match="config.json: larger than"):
        run.read_config()
    os.mkfifo(run.evaluation_path)                  # opening it for reading would block forever
    assert run.read_evaluation() is None
