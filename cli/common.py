"""Helpers shared by the command modules: user errors as one message, a progress line, parameter types that
validate names before TensorFlow loads, and loading TensorFlow without its C++ start-up log."""

from __future__ import annotations

import functools
import logging
import math
import os
import re
import subprocess
import sys
import time

import click
from click.shell_completion import CompletionItem

from vampkeras.config import SEED_LIMIT

__all__ = ["user_errors", "printable", "Progress", "PrintableFormatter", "DatasetParam", "DATASET", "CheckedPath",
           "FOLDER", "OUTPUT_FILE", "OUTPUT_FOLDER", "FiniteFloat", "FINITE_FLOAT", "POSITIVE_FLOAT",
           "SplitFractions", "SPLIT", "SEED", "writes_to_stdout", "load_tensorflow", "EXIT_USER_ERROR", "STDOUT"]

EXIT_USER_ERROR = 2

# TensorFlow's C++ log threshold (0 INFO, 1 WARNING, 2 ERROR, 3 FATAL) unless the user chose one or asked for
# -v. Only the log is affected: the computation (oneDNN included) is the same at every level.
QUIET_TF_LOG_LEVEL = "3"


# Characters that would break a message out of its one line or restyle the terminal, whatever file name
# carries them: C0 and C1 controls (newline, carriage return, escape...), DEL, the Unicode line and paragraph
# separators, and lone surrogates (undecodable bytes of a file name).
_UNPRINTABLE = re.compile("[\x00-\x1f\x7f-\x9f\u2028\u2029\ud800-\udfff]")


def printable(text: str) -> str:
    """``text`` with every character of :data:`_UNPRINTABLE` written as its escape (``\\n``, ``\\x1b``,
    ``\\udcff``): a message that names a file called ``bad\\nError: forged line.png`` stays one line."""
    return _UNPRINTABLE.sub(lambda match: match.group().encode("unicode_escape").decode("ascii"), text)


def user_errors(command):
    """Turn a VampkerasError into one message on stderr and exit status 2 (no traceback). This is where every
    user error of a command is printed: the message is made :func:`printable` here, so that no name it quotes
    (a file's, a folder's) can add a line of its own."""

    @functools.wraps(command)
    def wrapper(*args, **kwargs):
        from vampkeras.errors import VampkerasError
        try:
            return command(*args, **kwargs)
        except VampkerasError as error:
            click.echo(f"Error: {printable(str(error))}", err=True)
            sys.exit(EXIT_USER_ERROR)

    return wrapper


class PrintableFormatter(logging.Formatter):
    """A log format whose messages are :func:`printable` (names in warnings cannot forge lines either); a
    traceback appended to a record keeps its lines."""

    def formatMessage(self, record: logging.LogRecord) -> str:
        return printable(super().formatMessage(record))


class Progress:
    """`examples done/total, elapsed, time left` on one stderr line."""

    def __init__(self, label: str, quiet: bool):
        self.label, self.quiet, self.started = label, quiet, time.perf_counter()

    def __call__(self, done: int, total: int) -> None:
        if self.quiet:
            return
        elapsed = time.perf_counter() - self.started
        left = elapsed / done * (total - done) if done else float("nan")
        click.echo(f"\r{self.label}: {done}/{total} examples, {elapsed:.0f} s elapsed, ~{left:.0f} s left ",
                   err=True, nl=done >= total)


# -- names checked before TensorFlow loads -----------------------------------------------------------
class DatasetParam(click.ParamType):
    """A ``--dataset`` value: one of the named datasets (``vampkeras.data.DATASETS``, which loads without
    TensorFlow), an existing folder of images or .npy/.npz file (given as its resolved path), or
    ``tfds:NAME[/CONFIG]``. :meth:`convert` is the one place that decides what a dataset argument may be, and
    :meth:`shell_complete` what the shell offers (names, then paths)."""

    name = "dataset"

    @staticmethod
    def names() -> list[str]:
        from vampkeras.data import DATASETS
        return list(DATASETS)

    def convert(self, value, param, ctx) -> str:
        from vampkeras.checkpoints import check_path_name
        from vampkeras.data.user_data import TFDS_PREFIX, is_user_source, parse_source
        from vampkeras.errors import VampkerasError

        names = self.names()
        if value in names:
            return value
        try:
            if not value.startswith(TFDS_PREFIX):
                check_path_name(value, "the path")      # (the file system would fail on it with a traceback)
            if not is_user_source(value):
                self.fail(f"unknown dataset {value!r}; choose one of: {', '.join(names)}, or give a folder of "
                          "images, a .npy/.npz file or tfds:NAME", param, ctx)
            return parse_source(value).argument
        except VampkerasError as error:
            self.fail(printable(str(error)), param, ctx)
        except (OSError, RuntimeError) as error:     # a folder that cannot be searched; ~user of no such user
            self.fail(printable(f"cannot use {value!r}: {getattr(error, 'strerror', None) or error}"), param, ctx)

    def shell_complete(self, ctx, param, incomplete):
        names = [CompletionItem(name) for name in self.names() if name.startswith(incomplete)]
        return names + [CompletionItem(incomplete, type="file")]


DATASET = DatasetParam()


class CheckedPath(click.Path):
    """A path option or argument (:class:`click.Path`) whose name is checked before any work, even before
    TensorFlow loads: not empty, and one a file system can hold (:func:`vampkeras.checkpoints.check_path_name`:
    names of at most 255 bytes, paths under 4096). ``output="file"``: a file the command writes, checked by
    :func:`vampkeras.checkpoints.check_writable_file` (a regular file in a folder that takes new files, or one
    of the streams /dev/stdout, /dev/stderr, /dev/null, written as streams; ``-`` is /dev/stdout);
    ``output="folder"``: a folder the command writes files into (:func:`vampkeras.checkpoints.
    check_writable_folder`). Paths whose checks belong to the library (a run folder, an export) are given
    without ``output``."""

    def __init__(self, output: str | None = None, **kwargs):
        if output == "file":
            kwargs.setdefault("dir_okay", False)
        elif output == "folder":
            kwargs.setdefault("file_okay", False)
        super().__init__(**kwargs)
        self.output = output

    def convert(self, value, param, ctx):
        from vampkeras.checkpoints import check_path_name, check_writable_file, check_writable_folder
        from vampkeras.errors import VampkerasError

        if isinstance(value, str) and self.output == "file" and value == "-":
            value = STDOUT
        what = "the file" if self.output == "file" else "the folder" if self.output == "folder" else "the path"
        try:
            check_path_name(value, what)
        except VampkerasError as error:
            self.fail(printable(str(error)), param, ctx)
        value = super().convert(value, param, ctx)
        try:
            if self.output == "file":
                check_writable_file(value, what)
            elif self.output == "folder":
                check_writable_folder(value, f"{what} {value}")
        except VampkerasError as error:
            self.fail(printable(str(error)), param, ctx)
        return value


STDOUT = "/dev/stdout"              # what ``-`` means for an output file
FOLDER = CheckedPath(file_okay=False)                          # a folder the library checks (run, export, data)
OUTPUT_FILE = CheckedPath(output="file")
OUTPUT_FOLDER = CheckedPath(output="folder")


def writes_to_stdout(*paths) -> bool:
    """Whether one of the output ``paths`` is standard output: the command's own lines then go to stderr,
    so that what it writes there stays whole."""
    from vampkeras.checkpoints import stream_name
    return any(path is not None and stream_name(path) == STDOUT for path in paths)


class FiniteFloat(click.ParamType):
    """A float that is finite (click's ``float`` accepts ``nan`` and ``inf``) and, optionally, at least or above
    a bound."""

    name = "float"

    def __init__(self, minimum: float | None = None, minimum_open: bool = False):
        self.minimum, self.minimum_open = minimum, minimum_open

    def at_least(self, minimum: float) -> "FiniteFloat":
        return FiniteFloat(minimum)

    def above(self, minimum: float) -> "FiniteFloat":
        return FiniteFloat(minimum, minimum_open=True)

    def convert(self, value, param, ctx) -> float:
        try:
            number = float(value)
        except (TypeError, ValueError):
            self.fail(f"{value!r} is not a number", param, ctx)
        if not math.isfinite(number):
            self.fail(f"{value!r} is not a finite number", param, ctx)
        if self.minimum is not None:
            if self.minimum_open and not number > self.minimum:
                self.fail(f"{value!r} is not above {self.minimum:g}", param, ctx)
            if not self.minimum_open and not number >= self.minimum:
                self.fail(f"{value!r} is below {self.minimum:g}", param, ctx)
        return number


class SplitFractions(click.ParamType):
    """``--split TRAIN,VALIDATION,TEST``: three finite fractions above 0 (normalised by their sum)."""

    name = "fractions"

    def convert(self, value, param, ctx) -> list:
        if isinstance(value, (list, tuple)):
            return list(value)
        try:
            fractions = [float(part) for part in str(value).split(",")]
        except ValueError:
            fractions = []
        if len(fractions) != 3 or not all(math.isfinite(f) and f > 0 for f in fractions):
            self.fail(f"{value!r} is not three fractions TRAIN,VALIDATION,TEST above 0, such as 0.8,0.1,0.1",
                      param, ctx)
        return fractions


SPLIT = SplitFractions()
FINITE_FLOAT = FiniteFloat()
POSITIVE_FLOAT = FINITE_FLOAT.above(0)
# Seeds feed TensorFlow's and NumPy's int32/int64 seeds through arithmetic of their own: [0, 2^31) is safe in all.
SEED = click.IntRange(0, SEED_LIMIT - 1)


# -- TensorFlow without its start-up log -------------------------------------------------------------
def wants_tensorflow_log() -> bool:
    """Whether `vampkeras -v` asked for TensorFlow's own messages (the root command's ``--verbose``)."""
    context = click.get_current_context(silent=True)
    return bool(context and context.find_root().params.get("verbose"))


def quiet_tensorflow_environment() -> int:
    """Set TensorFlow's C++ log threshold to :data:`QUIET_TF_LOG_LEVEL` unless the user's environment already
    sets ``TF_CPP_MIN_LOG_LEVEL`` (theirs wins); return the threshold in force (a value that is not a number
    counts as 0: nothing is filtered)."""
    level = os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", QUIET_TF_LOG_LEVEL)
    try:
        return int(level)
    except ValueError:
        return 0


def load_tensorflow() -> None:
    """Import TensorFlow for a command that needs it, after its options were checked.

    Unless `vampkeras -v`, TensorFlow logs only what reaches the threshold of
    :func:`quiet_tensorflow_environment`. TensorFlow applies that threshold once its logging is set up, but
    loading its libraries already writes lines below it to file descriptor 2 ("Could not find cuda drivers",
    "WARNING: All log messages before absl::InitializeLog() is called ..."). So during the import, descriptor 2
    goes through :func:`filter_tensorflow_log` in a child process, which drops exactly those lines and passes
    everything else on, in order: a fatal message, or anything that is not TensorFlow's log, still shows, even
    if the import crashes this process (the child then reads to the end of the pipe before it exits)."""
    level = 0 if wants_tensorflow_log() else quiet_tensorflow_environment()
    if "tensorflow" in sys.modules:
        return
    if level <= 0:
        import tensorflow  # noqa: F401
        return
    with TensorflowLogFiltered(level):
        import tensorflow  # noqa: F401


# Run by the filter process, whose stdout is the real stderr (python -P: a module in the working folder cannot
# stand in for these imports). It says "1" on its stderr, a pipe, once it is ready (a failed start says
# something else there, which the user does not see), and ignores Ctrl-C, which also reaches the parent: it
# exits when the parent closes the pipe of descriptor 2 (or dies).
_FILTER_PROCESS = """
import os, signal, sys
signal.signal(signal.SIGINT, signal.SIG_IGN)
from vampkeras_cli.common import filter_tensorflow_log
os.write(2, b"1")
os.dup2(os.open(os.devnull, os.O_WRONLY), 2)

def write(data):
    sys.stdout.buffer.write(data)
    sys.stdout.buffer.flush()

filter_tensorflow_log(iter(lambda: os.read(0, 65536), b""), write, int(sys.argv[1]))
"""


class TensorflowLogFiltered:
    """A ``with`` block whose writes to file descriptor 2 (C++ or Python) pass through
    :func:`filter_tensorflow_log` at ``level`` before they reach the real stderr. Where the filter process
    cannot start, the block runs unfiltered."""

    def __init__(self, level: int):
        self.level, self.filter, self.saved_stderr_fd = level, None, None

    def __enter__(self):
        try:
            _flush_python_streams()
            self.filter = subprocess.Popen([sys.executable, "-P", "-c", _FILTER_PROCESS, str(self.level)],
                                           stdin=subprocess.PIPE, stdout=2, stderr=subprocess.PIPE)
            ready = self.filter.stderr.read(1) == b"1"
        except OSError:
            ready = False
        if not ready:
            self._stop_filter()
            return self
        self.saved_stderr_fd = os.dup(2)
        os.dup2(self.filter.stdin.fileno(), 2)
        return self

    def __exit__(self, *exc_info):
        if self.saved_stderr_fd is not None:
            _flush_python_streams()
            os.dup2(self.saved_stderr_fd, 2)
            os.close(self.saved_stderr_fd)
            self.saved_stderr_fd = None
        self._stop_filter()
        return False

    def _stop_filter(self) -> None:
        """Close the pipe (end of input) and wait for the filter to pass on what is left."""
        if self.filter is None:
            return
        for pipe in (self.filter.stdin, self.filter.stderr):
            pipe.close()
        try:
            self.filter.wait(timeout=60)
        except subprocess.TimeoutExpired:         # something else still holds the pipe open
            self.filter.kill()
            self.filter.wait()
        self.filter = None


def _flush_python_streams() -> None:
    """Write out what Python holds for stdout and stderr, so that it goes where the descriptors point now."""
    for stream in (sys.stdout, sys.stderr):
        if stream is not None:
            stream.flush()


_ABSL_PREFACE = b"WARNING: All log messages before absl::InitializeLog() is called are written to STDERR"


def filter_tensorflow_log(chunks, write, level: int) -> None:
    """Pass ``chunks`` (the bytes of successive reads from a pipe) to ``write`` line by line, less the lines
    that are TensorFlow C++ log entries below ``level`` (0 INFO, 1 WARNING, 2 ERROR, 3 FATAL) and absl's notice
    that it logs to stderr until it is initialized. Every other line passes, in order, including the text after
    the last newline. (A rare entry of several lines would show its later lines: they cannot be told from
    the lines of others, and showing too much is the safe side.)"""
    unfinished = b""
    for chunk in chunks:
        *lines, unfinished = (unfinished + chunk).split(b"\n")
        for line in lines:
            _pass_line(line + b"\n", level, write)
    if unfinished:
        _pass_line(unfinished, level, write)


def _pass_line(line: bytes, level: int, write) -> None:
    severity = _log_entry_severity(line)
    hidden = (severity is not None and severity < level) or line.rstrip(b"\r\n") == _ABSL_PREFACE
    if not hidden:
        write(line)


def _log_entry_severity(line: bytes) -> int | None:
    """0..3 (INFO..FATAL) for a line that starts an absl / TensorFlow C++ log entry, such as
    ``I0000 00:00:1796130685.670337    5314 cudart_stub.cc:31] ...``, else None."""
    if line[:1] not in (b"I", b"W", b"E", b"F") or not line[1:5].isdigit() or line[5:6] != b" ":
        return None
    head, separator, _ = line.partition(b"] ")
    fields = head[6:].split()
    if not separator or len(fields) != 3 or not fields[1].isdigit() or b":" not in fields[2]:
        return None
    return b"IWEF".index(line[:1])
