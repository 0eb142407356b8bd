"""Running a comparison: validate the grid and what the comparison folder already holds, take the folder's
lock, then train and score the cells that are not finished, ``jobs`` at a time, each in a process of its own
(:mod:`vampkeras.comparison.worker`) with its share of the CPU threads; finally collect every number
(:mod:`vampkeras.comparison.results`) and write the comparison's records.

Re-running the same comparison continues where it stopped: a scored cell is neither trained nor scored again,
an unfinished one resumes from its last checkpoint (a kill -9 loses at most the epoch or the scoring in
flight). The processes of the cells die with the comparison (Linux: ``PR_SET_PDEATHSIG``), so no orphan keeps
a cell's lock.
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import logging
import os
import selectors
import subprocess
import sys
import time
from pathlib import Path
from typing import Callable

from vampkeras.comparison.grid import CONFIG_FILE, Cell, ComparisonConfig, adoption_differences
from vampkeras.comparison.worker import PARENT_ENV, read_comparison_config, read_score
from vampkeras.errors import ConfigError, VampkerasError
from vampkeras.run_folder import RunFolder, RunFolderLocked

__all__ = ["run_grid", "GridProgress", "CellProgress", "available_cores", "default_jobs", "check_folder",
           "POLL_SECONDS"]

logger = logging.getLogger(__name__)

POLL_SECONDS = 1.0


@dataclasses.dataclass
class CellProgress:
    """Where one running cell is: ``phase`` training or scoring; epochs done of at most ``max_epochs``; the
    measured seconds per epoch (None before the first epoch); scoring: images done of ``total``."""

    name: str
    phase: str
    epoch: int
    max_epochs: int
    seconds_per_epoch: float | None
    done: int = 0
    total: int = 0


@dataclasses.dataclass
class GridProgress:
    """The whole comparison: cells finished of ``total``, elapsed seconds, the running cells, and an upper bound
    on the seconds left (every unfinished cell trained to its maximum epochs at the measured speed; early
    stopping usually ends sooner; None until an epoch has been measured)."""

    finished: int
    total: int
    elapsed: float
    running: list[CellProgress]
    upper_bound_left: float | None


def available_cores() -> int:
    """The CPU cores this process may run on (its affinity, which containers and taskset narrow)."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:          # not Linux
        return max(1, os.cpu_count() or 1)


def default_jobs() -> int:
    """Cells trained at once by default: one per core, one thread each (benchmarks/README.md, "compare --jobs")."""
    return available_cores()


def _is_scored(comparison: ComparisonConfig, cell: Cell) -> bool:
    record = read_score(RunFolder(Path(comparison.out) / cell.name))
    return (record is not None and record.get("samples") == comparison.samples
            and record.get("max_examples") == comparison.max_examples)


def check_folder(comparison: ComparisonConfig, restart: bool) -> ComparisonConfig | None:
    """Refuse, before anything is created, a comparison folder this comparison must not use: a file; a folder
    holding another comparison (naming the difference; ``restart`` moves it aside instead); a cell folder holding
    a run whose configuration differs from the cell's (naming the field) or files that are not a run. Returns
    the saved comparison, if any."""
    out = Path(comparison.out)
    if out.exists() and not out.is_dir():
        raise VampkerasError(f"--out {out} is a file, not a folder")
    saved = None
    if (out / CONFIG_FILE).exists():
        saved = read_comparison_config(out)
        differences = saved.differences(comparison)
        if differences and not restart:
            raise ConfigError(f"{out} holds a comparison with other settings ({'; '.join(differences)}); run it with "
                              "its own settings to continue it, pass --restart to move it aside and start again, or "
                              "choose another --out")
        if restart:
            return saved
    elif restart:
        raise VampkerasError(f"--restart found no comparison to start again in {out} (no {CONFIG_FILE})")
    for cell in comparison.cells():
        run = RunFolder(out / cell.name)
        if run.holds_run():
            differences = adoption_differences(run.read_config(), comparison.run_config(cell))
            if differences:
                raise ConfigError(f"the cell folder {run.path} holds a run with another configuration "
                                  f"({'; '.join(differences)}); move it away or choose another --out")
        elif run.path.exists() and not run.is_empty_or_missing():
            raise VampkerasError(f"the cell folder {run.path} is not empty and holds no run; move it away or choose "
                                 "another --out")
    return saved


def _move_aside(out: Path) -> Path:
    stamp = time.strftime("%Y%m%d-%H%M%S")
    target = out.with_name(f"{out.name}.restarted-{stamp}")
    suffix = 1
    while target.exists():
        suffix += 1
        target = out.with_name(f"{out.name}.restarted-{stamp}-{suffix}")
    os.replace(out, target)
    return target


class _Worker:
    """A cell's process, its log and the progress it last reported."""

    def __init__(self, comparison: ComparisonConfig, cell: Cell, threads: int):
        out = Path(comparison.out)
        self.cell = cell
        self.run = RunFolder(out / cell.name)
        self.max_epochs = comparison.run_config(cell).epochs
        self.log_path = out / f"{cell.name}.log"
        self.log = open(self.log_path, "ab")
        self.log.write(f"--- {time.strftime('%Y-%m-%d %H:%M:%S')} compare starts this cell\n".encode())
        self.log.flush()
        # (the worker itself asks to die with this process: see vampkeras.comparison.worker.die_with_parent)
        environment = dict(os.environ, TF_NUM_INTRAOP_THREADS=str(threads), TF_NUM_INTEROP_THREADS="1",
                           PYTHONUNBUFFERED="1", **{PARENT_ENV: str(os.getpid())})
        self.process = subprocess.Popen(
            [sys.executable, "-m", "vampkeras.comparison.worker", str(out), cell.name], stdout=subprocess.PIPE,
            stderr=self.log, stdin=subprocess.DEVNULL, env=environment)
        self.phase, self.done, self.total, self.buffer = "starting", 0, 0, b""
        self.last_error = None

    def read(self) -> bytes:
        """Take what the cell's process printed; returns it (empty once the process closed its output)."""
        chunk = os.read(self.process.stdout.fileno(), 65536)
        self.buffer += chunk
        *lines, self.buffer = self.buffer.split(b"\n")
        for line in lines:
            try:
                message = json.loads(line)
            except ValueError:
                continue
            self.phase = message.get("phase", self.phase)
            self.done, self.total = message.get("done", self.done), message.get("total", self.total)
        return chunk

    def progress(self) -> CellProgress:
        try:
            history = self.run.read_history() if self.run.history_path.is_file() else []
        except (VampkerasError, OSError, ValueError):      # (being rewritten, or damaged: the cell reports it)
            history = []
        recent = [row["seconds"] for row in history[-5:] if isinstance(row.get("seconds"), (int, float))]
        return CellProgress(self.cell.name, self.phase, len(history), self.max_epochs,
                            sum(recent) / len(recent) if recent else None, self.done, self.total)

    def error_line(self) -> str:
        self.log.flush()
        try:
            lines = self.log_path.read_text(errors="replace").splitlines()
        except OSError:
            return "see its log"
        errors = [line for line in lines if line.startswith("Error: ")]
        if errors:
            return errors[-1][len("Error: "):]
        tail = [line for line in lines if line.strip()][-1:]
        return f"it failed ({tail[0].strip() if tail else 'no output'}); its log is {self.log_path}"

    def close(self) -> None:
        self.process.stdout.close()
        self.log.close()


def run_grid(comparison: ComparisonConfig, restart: bool = False,
             progress: Callable[[GridProgress], None] | None = None) -> None:
    """Train and score every unfinished cell of ``comparison`` (validated), ``comparison.jobs`` at a time."""
    from vampkeras.checkpoints import atomic_write_text

    out = Path(comparison.out)
    check_folder(comparison, restart)
    if restart:
        with _locked(out):              # (never moves a comparison that another process is running)
            moved = _move_aside(out)
        logger.warning("--restart: the earlier comparison is kept in %s", moved)
    with _locked(out):
        # written every time: the grid is the saved one (check_folder refused any other), but where the folder
        # is now, the data folder and --jobs are this run's, and the cells' processes read them from here
        atomic_write_text(out / CONFIG_FILE, comparison.to_json() + "\n")
        _run_cells(comparison, progress)


@contextlib.contextmanager
def _locked(out: Path):
    """The comparison folder's lock (the run folder's kind of lock, on ``out/.lock``), held while in the block."""
    folder = RunFolder(out)
    try:
        folder.lock()
    except RunFolderLocked:
        raise VampkerasError(f"the comparison {out} is in use by another process; wait for it to finish (or stop "
                             "it) before running it again") from None
    try:
        yield folder
    finally:
        folder.unlock()


def _run_cells(comparison: ComparisonConfig, progress) -> None:
    cells = comparison.cells()
    pending = [cell for cell in cells if not _is_scored(comparison, cell)]
    finished = len(cells) - len(pending)
    # the cores split between the cells that can run at once; fixed for the grid (not for what is left of it), so
    # that a cell resumed after a kill computes with the threads it started with
    threads = max(1, available_cores() // min(comparison.jobs, len(cells)))
    started = time.perf_counter()
    running: list[_Worker] = []
    measured: dict[str, float] = {}         # seconds per epoch, by model
    selector = selectors.DefaultSelector()
    failure = None
    try:
        while pending or running:
            while pending and len(running) < comparison.jobs and failure is None:
                worker = _Worker(comparison, pending.pop(0), threads)
                selector.register(worker.process.stdout, selectors.EVENT_READ, worker)
                running.append(worker)
            if not running:
                break
            for key, _ in selector.select(timeout=POLL_SECONDS):
                key.data.read()
            for worker in list(running):
                if worker.process.poll() is None:
                    continue
                while worker.read():
                    pass
                selector.unregister(worker.process.stdout)
                running.remove(worker)
                worker.close()
                if worker.process.returncode == 0 and _is_scored(comparison, worker.cell):
                    finished += 1
                elif failure is None:
                    failure = f"the cell {worker.cell.name} failed: {worker.error_line()}"
            if progress is not None:
                states = [worker.progress() for worker in running]
                for state, worker in zip(states, running):
                    if state.seconds_per_epoch is not None:
                        measured[worker.cell.model] = state.seconds_per_epoch
                progress(GridProgress(finished, len(cells), time.perf_counter() - started, states,
                                      _upper_bound(comparison, states, pending, measured)))
    finally:
        for worker in running:          # (an exception here: stop the cells, which resume next time)
            worker.process.kill()
            worker.process.wait()
            worker.close()
    if failure is not None:
        raise VampkerasError(failure + "; the other cells are kept: fix it and run the same command again")


def _upper_bound(comparison: ComparisonConfig, running: list[CellProgress], pending: list[Cell],
                 measured: dict[str, float]) -> float | None:
    """Seconds left if every unfinished cell trained to its maximum epochs at the measured speed, ``jobs`` at a
    time (scoring not counted)."""
    total = 0.0
    for state in running:
        if state.seconds_per_epoch is None:
            return None
        total += (state.max_epochs - state.epoch) * state.seconds_per_epoch
    for cell in pending:
        if cell.model not in measured:
            return None
        total += comparison.run_config(cell).epochs * measured[cell.model]
    return total / max(1, min(comparison.jobs, len(running) + len(pending)))
