"""Output files are opened as what they claim to be (issue #33, items 9, 11, 12 and 17): regular files written
atomically, /dev/stdout, /dev/stderr and /dev/null written as streams and never replaced, special files
refused, names no file system holds refused before any work, and no temporary left forever by a killed
writer. vampkeras.checkpoints owns these rules; every output of vampkeras goes through them."""

import os
import socket
import stat
import subprocess
import sys

import pytest

from tests.guards import devices_guarded
from vampkeras import checkpoints
from vampkeras.errors import VampkerasError


@pytest.fixture(autouse=True)
def no_device_is_replaced():
    with devices_guarded():
        yield


def dead_pid():
    """The id of a process that has exited."""
    process = subprocess.Popen([sys.executable, "-c", "pass"])
    process.wait()
    return process.pid


def special_files(folder):
    """(path, kind) of a FIFO, a socket and, where this process may make one, a character device node, all made
    inside ``folder`` (never a real device of the machine: a test that failed would replace it)."""
    made = []
    fifo = folder / "fifo"
    os.mkfifo(fifo)
    made.append((fifo, "FIFO"))
    listener = socket.socket(socket.AF_UNIX)
    listener.bind(str(folder / "sock"))
    listener.close()
    made.append((folder / "sock", "socket"))
    try:
        os.mknod(folder / "null", stat.S_IFCHR | 0o666, os.makedev(1, 3))      # what /dev/null is
        made.append((folder / "null", "character device"))
    except (PermissionError, OSError):
        pass
    return made


def kinds(paths):
    return [stat.S_IFMT(os.lstat(path).st_mode) for path in paths]


# -- item 9: a device node or FIFO is never replaced by a regular file ---------------------------------
def test_special_files_are_refused_before_the_work_and_never_replaced(tmp_path):
    made = special_files(tmp_path)
    before = kinds(path for path, _ in made)
    for path, kind in made:
        with pytest.raises(VampkerasError, match=f"{kind}.*not a regular file"):
            checkpoints.check_writable_file(path, "--json")
        with pytest.raises(VampkerasError, match=f"{kind}.*not a regular file"):
            checkpoints.atomic_write_text(path, "{}\n")           # (checked again when written)
    assert kinds(path for path, _ in made) == before
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(path.name for path, _ in made)   # no temporary


def test_a_link_to_a_special_file_is_refused_too(tmp_path):
    os.mkfifo(tmp_path / "fifo")
    (tmp_path / "link.json").symlink_to("fifo")
    with pytest.raises(VampkerasError, match="FIFO"):
        checkpoints.check_writable_file(tmp_path / "link.json", "--json")
    assert (tmp_path / "link.json").is_symlink()


@pytest.mark.parametrize("stream", ["/dev/stdout", "/dev/stderr", "//dev/./stdout"])
def test_standard_streams_are_written_as_streams(stream, capfdbinary):
    checkpoints.check_writable_file(stream, "--out")
    checkpoints.atomic_write_bytes(stream, b"one\n")
    checkpoints.atomic_write_text(stream, "two\n")
    captured = capfdbinary.readouterr()
    written, other = (captured.out, captured.err) if "stdout" in stream else (captured.err, captured.out)
    assert written == b"one\ntwo\n" and other == b""


def test_dev_null_takes_the_output_and_stays_a_device(tmp_path, monkeypatch):
    before = os.stat("/dev/null")
    monkeypatch.chdir("/dev")
    for name in ("/dev/null", "null"):                       # (as a relative name from /dev too)
        checkpoints.check_writable_file(name, "--json")
        checkpoints.atomic_write_bytes(name, b"dropped")
    after = os.stat("/dev/null")
    assert stat.S_ISCHR(after.st_mode) and (after.st_ino, after.st_rdev) == (before.st_ino, before.st_rdev)
    assert not [name for name in os.listdir("/dev") if name.startswith(".null.")]


def test_other_paths_are_not_streams():
    for path in ("/dev/stdin", "/dev/fd/1", "/proc/self/fd/1", "stdout", "-", "", "/dev/stdout/x"):
        assert checkpoints.stream_name(path) is None, path
    assert checkpoints.stream_name("/dev/../dev/stderr") == "/dev/stderr"


# -- items 11 and 17 (--json ''): a folder that takes no new files, an empty name ----------------------
@pytest.mark.skipif(not os.path.isdir("/proc/self"), reason="needs Linux's /proc")
@pytest.mark.parametrize("path", ["/proc/x.json", "/proc/new/folder/x.json"])
def test_a_folder_that_takes_no_new_files_is_refused_though_permissions_allow_it(path):
    with pytest.raises(VampkerasError, match="cannot write --json .*the folder /proc takes no new files"):
        checkpoints.check_writable_file(path, "--json")


def test_the_writability_test_leaves_nothing_behind(tmp_path):
    checkpoints.check_writable_file(tmp_path / "new" / "deeper" / "out.json", "--json")
    checkpoints.check_writable_folder(tmp_path / "figures", "--figures")
    assert list(tmp_path.iterdir()) == []                      # missing folders are made only when written


@pytest.mark.parametrize("path, message", [
    ("", "--json is an empty path"),
    ("a\0b.json", "NUL"),
    ("\ud800.json", "not a valid file name"),
    ("x" * 256 + ".json", "name of 261 bytes"),
    ("folder/" + "é" * 128 + "/x.json", "name of 256 bytes"),         # bytes, not characters
    ("/" + "/".join(["d" * 200] * 21), "path of 4221 bytes"),
])
def test_names_no_file_system_holds_are_refused_without_touching_it(path, message):
    with pytest.raises(VampkerasError, match=message):
        checkpoints.check_path_name(path, "--json")
    with pytest.raises(VampkerasError, match=message):
        checkpoints.check_writable_file(path, "--json")


def test_the_longest_names_pass(tmp_path):
    name = tmp_path / ("n" * 255)
    checkpoints.check_writable_file(name, "--out")
    checkpoints.atomic_write_bytes(name, b"fits")
    assert name.read_bytes() == b"fits"


def test_a_folder_in_place_of_the_file_is_refused(tmp_path):
    (tmp_path / "out.json").mkdir()
    with pytest.raises(VampkerasError, match="is a folder"):
        checkpoints.check_writable_file(tmp_path / "out.json", "--json")
    with pytest.raises(IsADirectoryError):
        checkpoints.atomic_write_text(tmp_path / "out.json", "{}")
    assert (tmp_path / "out.json").is_dir() and list(tmp_path.iterdir()) == [tmp_path / "out.json"]


# -- item 17: the temporaries of killed writers ----------------------------------------------------
def test_the_next_write_removes_the_temporaries_of_killed_writers_only(tmp_path):
    target = tmp_path / "generations.png"
    dead = tmp_path / f".generations.png.{dead_pid()}-0123abcd.tmp"       # a writer killed by kill -9
    older = tmp_path / ".generations.png.89abcdef.tmp"                     # from a vampkeras without pids
    live = tmp_path / f".generations.png.{os.getpid()}-00ff00ff.tmp"       # a writer running right now
    other = tmp_path / f".curves.png.{dead_pid()}-0123abcd.tmp"           # another file's (its next write's)
    mine = tmp_path / ".generations.png.notes.tmp"                         # not a name vampkeras writes
    for path in (dead, older, live, other, mine):
        path.write_bytes(b"half a png")
    checkpoints.atomic_write_bytes(target, b"png")
    assert target.read_bytes() == b"png"
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(p.name for p in (target, live, other, mine))


def test_a_killed_write_leaves_a_temporary_that_the_next_write_removes(tmp_path):
    """kill -9 of a process half-way through writing a figure, then the figure written again."""
    figures = tmp_path / "figures"
    child = subprocess.run([sys.executable, "-c", (
        "import os, signal, sys\n"
        "from vampkeras import checkpoints\n"
        "real_replace = os.replace\n"
        "def die(*args):\n"
        "    os.kill(os.getpid(), signal.SIGKILL)\n"
        "os.replace = die\n"
        "checkpoints.atomic_write_bytes(sys.argv[1], b'x' * 1000)\n"), str(figures / "generations.png")])
    assert child.returncode == -9
    assert [p.name.startswith(".generations.png.") for p in figures.iterdir()] == [True]
    checkpoints.atomic_write_bytes(figures / "generations.png", b"whole")
    assert [p.name for p in figures.iterdir()] == ["generations.png"]


def test_a_killed_write_of_a_file_with_the_longest_name_is_cleaned_up_too(tmp_path):
    target = tmp_path / ("é" * 127)                                         # 254 bytes
    stem = os.fsdecode(os.fsencode(target.name)[:230])
    dead = tmp_path / f".{stem}.{dead_pid()}-0123abcd.tmp"
    dead.write_bytes(b"half")
    checkpoints.atomic_write_bytes(target, b"whole")
    assert [p.name for p in tmp_path.iterdir()] == [target.name]
