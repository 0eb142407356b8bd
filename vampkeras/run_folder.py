"""The run folder: the one module that knows its layout, its lock and what makes a folder a run.

A run folder holds::

    config.json        the run's RunConfig (a folder is a run folder exactly when this file is ours)
    checkpoints/       epoch-NNNNN.npz (the last few epochs: weights, optimizer state, bookkeeping), best.npz
    history.csv        one row per finished epoch
    logs/              TensorBoard event files
    figures/           PNG figures of the best model
    evaluation.json    the last `vampkeras evaluate` summary (test split, float32)
    report.html        the last `vampkeras report`
    .lock              the lock file of the process that trains the run (see :meth:`RunFolder.lock`)

Nothing else in vampkeras spells these names; callers ask a :class:`RunFolder` for its paths.
"""

from __future__ import annotations

import contextlib
import csv
import errno
import io
import json
import logging
import math
import os
import socket
import stat
import time
from pathlib import Path

from vampkeras.config import RunConfig
from vampkeras.errors import ConfigError, VampkerasError

__all__ = ["RunFolder", "RunFolderLocked", "summary_json", "read_small_file", "describe_process", "CONFIG_FILE",
           "CHECKPOINTS_DIR", "HISTORY_FILE", "LOGS_DIR", "FIGURES_DIR", "EVALUATION_FILE", "REPORT_FILE",
           "LOCK_FILE", "HISTORY_COLUMNS", "RECORD_LIMIT", "LOCK_RECORD_LIMIT"]

logger = logging.getLogger(__name__)

CONFIG_FILE = "config.json"
CHECKPOINTS_DIR = "checkpoints"
HISTORY_FILE = "history.csv"
LOGS_DIR = "logs"
FIGURES_DIR = "figures"
EVALUATION_FILE = "evaluation.json"
REPORT_FILE = "report.html"
LOCK_FILE = ".lock"
RECORD_LIMIT = 1 << 20        # bytes of config.json or evaluation.json read at most (vampkeras writes < 10 KB)
LOCK_RECORD_LIMIT = 4096        # bytes of the lock file read to name its holder (describe_process writes < 400)
# history.csv's columns, in order: one row per finished epoch (training losses are the epoch's means,
# validation losses with β = 1, seconds the epoch's wall-clock time)
HISTORY_COLUMNS = ("epoch", "loss", "reconstruction", "kl", "val_loss", "val_reconstruction", "val_kl", "beta",
                   "learning_rate", "seconds", "examples_per_second")


class RunFolderLocked(VampkerasError):
    """Another process is training (or resuming) this run."""


class RunFolder:
    """A run folder at ``path`` (which need not exist yet): its paths, its lock, its status."""

    def __init__(self, path):
        self.path = Path(path)
        self._lock_handle = None

    def __repr__(self) -> str:
        return f"RunFolder({str(self.path)!r})"

    # --- paths --------------------------------------------------------------------------------------------
    @property
    def config_path(self) -> Path:
        return self.path / CONFIG_FILE

    @property
    def checkpoint_dir(self) -> Path:
        return self.path / CHECKPOINTS_DIR

    @property
    def history_path(self) -> Path:
        return self.path / HISTORY_FILE

    @property
    def logs_dir(self) -> Path:
        return self.path / LOGS_DIR

    @property
    def figures_dir(self) -> Path:
        return self.path / FIGURES_DIR

    @property
    def evaluation_path(self) -> Path:
        return self.path / EVALUATION_FILE

    @property
    def report_path(self) -> Path:
        return self.path / REPORT_FILE

    @property
    def lock_path(self) -> Path:
        return self.path / LOCK_FILE

    def figure_path(self, name: str) -> Path:
        """``figures/<name>.png``."""
        return self.figures_dir / f"{name}.png"

    @property
    def best_checkpoint_path(self) -> Path:
        from vampkeras.checkpoints import BEST_WEIGHTS
        return self.checkpoint_dir / BEST_WEIGHTS

    # --- records ------------------------------------------------------------------------------------------
    def read_config(self) -> RunConfig:
        """The run's saved config, checked: a missing, damaged or hand-edited ``config.json`` (unknown keys,
        values of the wrong type or out of range) is one :class:`ConfigError` naming the file."""
        try:
            text = read_small_file(self.config_path, RECORD_LIMIT).decode("utf-8")
        except FileNotFoundError:
            raise VampkerasError(f"{self.path} is not a run folder (no {CONFIG_FILE})") from None
        except (OSError, UnicodeDecodeError) as error:
            raise VampkerasError(f"cannot read {self.config_path}: {getattr(error, 'strerror', None) or error}") \
                from None
        try:
            return RunConfig.from_json(text).validate()
        except ConfigError as error:
            raise ConfigError(f"{self.config_path} is not a valid run configuration: {error}") from None

    def write_config(self, config: RunConfig) -> None:
        from vampkeras.checkpoints import atomic_write_text
        atomic_write_text(self.config_path, config.to_json())

    def read_history(self) -> list[dict]:
        """history.csv's rows (one per finished epoch) as dicts of floats; [] if there is none."""
        if not self.history_path.is_file():
            return []
        with open(self.history_path, newline="") as stream:
            return [{key: float(value) for key, value in row.items() if value not in ("", None)}
                    for row in csv.DictReader(stream)]

    def write_history(self, history: list[dict]) -> None:
        from vampkeras.checkpoints import atomic_write_text
        buffer = io.StringIO()
        writer = csv.DictWriter(buffer, fieldnames=HISTORY_COLUMNS, extrasaction="ignore")
        writer.writeheader()
        writer.writerows(history)
        atomic_write_text(self.history_path, buffer.getvalue())

    def read_evaluation(self) -> dict | None:
        """The last saved evaluation summary, or None if there is none or it cannot be read."""
        if not self.evaluation_path.is_file():
            return None
        try:
            stored = json.loads(read_small_file(self.evaluation_path, RECORD_LIMIT))
        except (OSError, ValueError):
            logger.warning("ignoring the unreadable %s", self.evaluation_path)
            return None
        return stored if isinstance(stored, dict) else None

    def write_evaluation(self, summary: dict) -> None:
        from vampkeras.checkpoints import atomic_write_text
        atomic_write_text(self.evaluation_path, summary_json(summary) + "\n")

    def restore_latest(self, model, optimizer) -> dict | None:
        """Restore ``model`` and ``optimizer`` from the newest readable epoch checkpoint and return the run's
        state saved with it; None for a run stopped before its first epoch ended (it starts at epoch 1).

        Resume never goes backwards silently: if the run has finished epochs (checkpoints, history rows or
        best weights) but no epoch checkpoint can be read, starting at epoch 1 would overwrite its history and
        its best weights, so it is refused."""
        from vampkeras import checkpoints

        state = checkpoints.restore_latest(self.checkpoint_dir, model, optimizer)
        if state is not None:
            return state
        saved = checkpoints.epoch_checkpoints(self.checkpoint_dir)
        finished = len(self.read_history())
        if saved or finished or self.best_checkpoint_path.is_file():
            what = (f"none of its {len(saved)} epoch checkpoint(s) in {self.checkpoint_dir} can be read" if saved
                    else f"it has no epoch checkpoint in {self.checkpoint_dir}")
            raise VampkerasError(
                f"cannot resume the run in {self.path}: {what}, though it has {finished or 'some'} finished "
                "epoch(s); resuming would start again at epoch 1 and overwrite its history and best weights. "
                "Pass --restart to move the run aside and start it again, or restore its checkpoints")
        return None

    def check_own_files(self) -> None:
        """Refuse (VampkerasError) a run folder whose own entries are not of their kind: config.json,
        history.csv, evaluation.json and report.html must be regular files, checkpoints/, logs/ and figures/
        folders (each may be missing). Checked before a run resumes: otherwise the first write into one of them
        would fail only after an epoch's work, in a message about whatever was written then."""
        files = (self.config_path, self.history_path, self.evaluation_path, self.report_path)
        folders = (self.checkpoint_dir, self.logs_dir, self.figures_dir)
        for path, wanted in [(path, "a file") for path in files] + [(path, "a folder") for path in folders]:
            try:
                mode = path.stat().st_mode
            except FileNotFoundError:
                continue
            except OSError as error:
                raise VampkerasError(f"cannot use the run folder {self.path}: {path}: "
                                     f"{error.strerror or error}") from None
            kind = "a folder" if stat.S_ISDIR(mode) else "a file" if stat.S_ISREG(mode) else "a special file"
            if kind != wanted:
                raise VampkerasError(f"{path} is {kind}, where the run keeps {wanted} of its own; move it out of "
                                     f"the run folder {self.path} and try again")

    def is_writable(self) -> bool:
        """Whether files can be created in the folder (a read-only run can still be evaluated elsewhere)."""
        return os.access(self.path, os.W_OK | os.X_OK)

    # --- status -------------------------------------------------------------------------------------------
    def holds_run(self) -> bool:
        """Whether the folder holds a run (its ``config.json``)."""
        return self.config_path.is_file()

    def is_empty_or_missing(self, besides_lock: bool = False) -> bool:
        """Whether the folder is missing or empty (``besides_lock``: empty but for this folder's lock file, as
        a new run's folder is once its process holds the lock)."""
        if not self.path.exists():
            return True
        return self.path.is_dir() and not any(entry.name != self.lock_path.name or not besides_lock
                                              for entry in self.path.iterdir())

    def check_new_run_target(self, restart: bool = False) -> None:
        """Refuse a folder a new run must not be written into: one that holds a run already (unless
        ``restart``: the run will be moved aside), a file, a non-empty folder that is not a run folder (its
        files would be overwritten or mixed with the run's), or one that cannot be created or written
        (:func:`vampkeras.checkpoints.check_writable_folder`: found now, not after the data are loaded)."""
        if restart:
            if self.holds_run():
                return
            raise VampkerasError(f"--restart found no run to start again in {self.path} (no {CONFIG_FILE}); "
                                 "drop --restart to start a new run there")
        if self.holds_run():
            raise VampkerasError(f"the run folder {self.path} already holds a run; pass --resume to continue it, "
                                 "--restart to start it again (the old run is moved aside, not deleted), or "
                                 "choose another --run-dir")
        if self.path.exists() and not self.path.is_dir():
            raise VampkerasError(f"--run-dir {self.path} is a file, not a folder")
        if not self.is_empty_or_missing():
            raise VampkerasError(f"the folder {self.path} is not empty and holds no run (no {CONFIG_FILE}); a new "
                                 "run needs a new or empty --run-dir, so that nothing in it is overwritten")
        from vampkeras.checkpoints import check_writable_folder
        check_writable_folder(self.path, f"the run folder {self.path}")

    # --- the lock -----------------------------------------------------------------------------------------
    def lock(self) -> "RunFolder":
        """Take the run's lock (an exclusive OS file lock on ``.lock``, held until :meth:`unlock` or the
        process ends: the kernel releases it when the process dies, even by kill -9, so no stale lock is
        ever left). A second process is refused with :class:`RunFolderLocked`, naming the holder.

        The lock file is opened as what it claims to be: a ``.lock`` that is a symbolic link (never followed),
        has other names (hard links) or is not a regular file is refused with a VampkerasError, so that the
        lock's record of its holder is never written into another file."""
        import fcntl

        self.path.mkdir(parents=True, exist_ok=True)
        self._check_lock_file(os.lstat)          # before opening: opening a device node may act on it
        flags = os.O_RDWR | os.O_CREAT | os.O_NOFOLLOW | os.O_NONBLOCK | getattr(os, "O_CLOEXEC", 0)
        try:
            descriptor = os.open(self.lock_path, flags, 0o666)
        except OSError as error:
            if error.errno == errno.ELOOP:       # made a link since the check above
                self._refuse_lock_file("a symbolic link")
            raise
        try:
            self._check_lock_file(lambda _: os.fstat(descriptor))
            os.set_blocking(descriptor, True)
            handle = os.fdopen(descriptor, "r+")
        except BaseException:
            os.close(descriptor)
            raise
        try:
            fcntl.flock(handle.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError as error:
            handle.seek(0)
            holder = _holder_text(handle.read(LOCK_RECORD_LIMIT))
            handle.close()
            if error.errno in (errno.EAGAIN, errno.EACCES, errno.EWOULDBLOCK):
                raise RunFolderLocked(f"the run folder {self.path} is in use by {holder}; wait for it to finish "
                                      "(or stop it) before training or resuming this run") from None
            raise
        handle.seek(0)
        handle.truncate()
        handle.write(describe_process())
        handle.flush()
        self._lock_handle = handle
        return self

    def _check_lock_file(self, status_of) -> None:
        """Refuse the lock file unless ``status_of(lock_path)`` (``os.lstat``, or the open file's fstat) is
        that of a regular file with one name; a missing one is fine (it is created)."""
        try:
            status = status_of(self.lock_path)
        except FileNotFoundError:
            return
        if stat.S_ISLNK(status.st_mode):
            self._refuse_lock_file("a symbolic link")
        if not stat.S_ISREG(status.st_mode):
            self._refuse_lock_file("not a regular file")
        if status.st_nlink > 1:
            self._refuse_lock_file(f"a file with {status.st_nlink} names (hard links)")

    def _refuse_lock_file(self, what: str):
        raise VampkerasError(f"the run's lock file {self.lock_path} is {what}; vampkeras writes its lock record "
                             "into a regular file of its own only, never through a link into another file: "
                             "remove it and try again")

    def unlock(self) -> None:
        if self._lock_handle is not None:
            self._lock_handle.close()        # closing the descriptor releases the flock
            self._lock_handle = None

    @contextlib.contextmanager
    def locked(self):
        self.lock()
        try:
            yield self
        finally:
            self.unlock()

    def move_aside(self) -> Path:
        """Rename the folder to ``<name>.restarted-<YYYYmmdd-HHMMSS>`` next to it (never deleting anything)
        and return the new path."""
        stamp = time.strftime("%Y%m%d-%H%M%S")
        target = self.path.with_name(f"{self.path.name}.restarted-{stamp}")
        suffix = 1
        while target.exists():
            suffix += 1
            target = self.path.with_name(f"{self.path.name}.restarted-{stamp}-{suffix}")
        os.replace(self.path, target)
        logger.info("moved the old run %s aside to %s", self.path, target)
        return target


def summary_json(summary: dict) -> str:
    """A results summary as JSON text. A NaN or infinite result is an error that says which (JSON has no NaN:
    ``json.dumps`` would write the invalid token ``NaN``)."""
    bad = sorted(key for key, value in summary.items() if isinstance(value, float) and not math.isfinite(value))
    if bad:
        raise VampkerasError(f"the result is not a finite number ({', '.join(f'{k} = {summary[k]}' for k in bad)}): "
                             "the model or its input is broken (a diverged run, or too many importance samples "
                             "for float32)")
    return json.dumps(summary, indent=2, allow_nan=False)


def read_small_file(path, limit: int) -> bytes:
    """The bytes of the regular file ``path`` (links followed), refused (OSError EFBIG) if it holds more than
    ``limit``: a record of the run's own or a SavedModel's, read whole but never unbounded. A FIFO or device in its place is refused (OSError
    EINVAL) without blocking or reading it."""
    descriptor = os.open(path, os.O_RDONLY | os.O_NONBLOCK | getattr(os, "O_CLOEXEC", 0))
    with os.fdopen(descriptor, "rb") as stream:
        status = os.fstat(descriptor)
        if not stat.S_ISREG(status.st_mode):
            raise OSError(errno.EINVAL, "not a regular file", str(path))
        if status.st_size > limit:              # (refused unread; the read below catches a file that grows)
            raise OSError(errno.EFBIG, f"larger than the {limit} bytes such a file may hold", str(path))
        data = stream.read(limit + 1)
    if len(data) > limit:
        raise OSError(errno.EFBIG, f"larger than the {limit} bytes such a file may hold", str(path))
    return data


def _holder_text(recorded: str) -> str:
    """What the lock file says of its holder, as a phrase: ``process 1234 on host "vampkeras train ..."
    (since 2026-12-01 14:03:05)``."""
    try:
        holder = json.loads(recorded)
        return (f"process {holder['pid']} on {holder['host']} \"{holder['command']}\" (since {holder['started']})")
    except (ValueError, KeyError, TypeError):
        return "another process"


def describe_process() -> str:
    """This process as the lock file records it (JSON: pid, host, command line, start of the lock)."""
    try:
        with open(f"/proc/{os.getpid()}/cmdline", "rb") as stream:
            command = " ".join(part.decode(errors="replace") for part in stream.read().split(b"\0") if part)
    except OSError:
        command = ""
    program, _, arguments = " ".join(command.split()).partition(" ")    # one line, whatever the arguments hold
    command = (os.path.basename(program) + " " + arguments).strip()
    return json.dumps({"pid": os.getpid(), "host": socket.gethostname(), "command": command[:200],
                       "started": time.strftime("%Y-%m-%d %H:%M:%S")})
