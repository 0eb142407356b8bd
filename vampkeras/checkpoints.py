"""Per-epoch checkpoints: model weights, optimizer state and the run's bookkeeping in one ``.npz``.

A checkpoint is a NumPy ``.npz`` archive (a zip of ``.npy`` arrays, readable without vampkeras) holding

* ``format``: the layout version, :data:`FORMAT_VERSION`;
* ``state``: the run's bookkeeping as a JSON string (epoch, best loss, history...);
* ``model/<path>``: every model weight, keyed by its Keras variable path (``encoder/gated_1/kernel``), so
  that a weight is restored into the variable of the same name whatever order the layers were created in;
* ``optimizer/<path>``: the optimizer's variables (step count, learning rate, Adam moments), keyed by their
  path inside the optimizer (``iteration``, ``encoder_gated_1_kernel_momentum``; a loss-scale wrapper's
  inner optimizer under ``inner_optimizer/``).

A checkpoint is restored whole or not at all: every variable of the model must be in it with its shape and
dtype, and nothing else may be (:class:`CheckpointMismatch` lists the differences). The first layout
(``model/0000``, ``optimizer/0000``... by position, without ``format``) is still read, by position after
checking every shape, with a warning; the next save writes the named layout.

Files are written atomically (a temporary sibling, flushed and fsynced, renamed over the target, then the
folder fsynced so that the rename survives a power cut) with the permissions ``open()`` would give (0644
under a 022 umask). Every output file of vampkeras is written this way (:func:`atomic_write_bytes`), and
checked before the work that produces it (:func:`check_writable_file`, :func:`check_writable_folder`,
:func:`check_path_name`): outputs are regular files, ``/dev/stdout``, ``/dev/stderr`` and ``/dev/null`` are
written as streams and never replaced, other special files (FIFOs, devices, sockets) are refused, and a killed
writer's temporary is removed by the next write of its file. The last N epoch checkpoints are kept. On resume, one that cannot be read back whole is
skipped with a warning in favour of the previous one; one that is whole but does not match the model is an
error (an older one would hide the mismatch).
"""

from __future__ import annotations

import errno
import io
import json
import logging
import os
import re
import secrets
import stat
import sys
import zipfile
from pathlib import Path

import numpy as np

from vampkeras.errors import VampkerasError

__all__ = ["save", "load", "save_epoch", "restore_latest", "epoch_checkpoints", "atomic_write_bytes",
           "atomic_write_text", "check_path_name", "check_writable_file", "check_writable_folder", "stream_name",
           "process_alive", "remove_dead_temporaries", "remove_stale_temporaries", "CheckpointError",
           "CheckpointUnreadable", "CheckpointMismatch", "CHECKPOINT_PATTERN", "BEST_WEIGHTS", "FORMAT_VERSION",
           "FORMAT_KEY", "STATE_KEY", "POSITIONAL_KEY", "LISTED_NAMES", "FILE_MODE", "HOW_TO_CONTINUE", "NAME_MAX",
           "PATH_MAX", "STREAMS"]

logger = logging.getLogger(__name__)

CHECKPOINT_PATTERN = re.compile(r"^epoch-(\d{5,})\.npz$")
BEST_WEIGHTS = "best.npz"

# 1: variables by position (model/NNNN, optimizer/NNNN), no "format" entry; 2: variables by path.
FORMAT_VERSION = 2
FORMAT_KEY = "format"
STATE_KEY = "state"
POSITIONAL_KEY = re.compile(r"^(model|optimizer)/(\d+)$")
LISTED_NAMES = 5            # names shown per kind of difference in a mismatch message; the rest are counted
FILE_MODE = 0o666           # before the umask, as open() and TensorFlow's own writers use
HOW_TO_CONTINUE = ("It was written by another model configuration (or vampkeras version): load it into the model "
                   "that wrote it, or start a new run in another --run-dir")


class CheckpointError(VampkerasError):
    """A checkpoint file is unreadable or does not fit the model."""


class CheckpointUnreadable(CheckpointError):
    """The file is missing, truncated, corrupt or not a checkpoint: an older checkpoint may stand in for it."""


class CheckpointMismatch(CheckpointError):
    """The file is whole but its variables are not the model's: loading an older one would hide the problem."""


# -- files ------------------------------------------------------------------------------------------
# What file systems take in a name: NAME_MAX bytes per path component (Linux, macOS and the usual file systems),
# PATH_MAX bytes for a whole path with its terminating NUL (Linux). A longer name fails only when the file is
# opened, hours into a run: every output is checked against these limits first.
NAME_MAX = 255
PATH_MAX = 4096
# The outputs written as streams (never replaced by a file): what a user names to see a result or drop it.
STREAMS = ("/dev/stdout", "/dev/stderr", "/dev/null")
# ``.<name>.<pid>-<8 hex digits>.tmp``, the temporary of :func:`atomic_write_bytes` (without ``<pid>-`` from
# vampkeras versions before the writer's pid was recorded)
_TEMPORARY = re.compile(r"^\.(?P<name>.+)\.(?:(?P<pid>\d+)-)?[0-9a-f]{8}\.tmp$")
_PROBE_NAME = "vampkeras-probe"       # check_writable_folder's test file: .vampkeras-probe.<pid>-<hex>.tmp
_FILE_KINDS = ((stat.S_ISFIFO, "a FIFO (named pipe)"), (stat.S_ISCHR, "a character device"),
               (stat.S_ISBLK, "a block device"), (stat.S_ISSOCK, "a socket"))


def stream_name(path) -> str | None:
    """The stream of :data:`STREAMS` that ``path`` names (``/dev/stdout``, also as ``//dev/./stdout`` or as
    ``stdout`` from within /dev), or None for any other path."""
    text = os.fsdecode(os.fspath(path))
    if not text or "\0" in text:
        return None
    absolute = "/" + os.path.normpath(os.path.abspath(text)).lstrip("/")
    return absolute if absolute in STREAMS else None


def check_path_name(path, what: str) -> None:
    """Refuse (VampkerasError) a path no file system can hold: empty, with a NUL character, not encodable as a
    file name, a component over :data:`NAME_MAX` bytes or a whole (absolute) path of :data:`PATH_MAX` bytes or
    more. ``what`` names the path in the message (``"--json"``, ``"the run folder"``). Only the name is
    looked at, not the file system: nothing is created or opened."""
    text = os.fspath(path)
    if len(text) == 0:
        raise VampkerasError(f"{what} is an empty path; give a name")
    try:
        raw = os.fsencode(text)
        absolute = os.fsencode(os.path.abspath(text)) if b"\0" not in raw else raw
    except UnicodeError:
        raise VampkerasError(f"{what} {text!r} is not a valid file name (it cannot be encoded)") from None
    if b"\0" in raw:
        raise VampkerasError(f"{what} {os.fsdecode(raw)!r} holds a NUL character, which no file name can hold")
    longest = max(raw.split(b"/"), key=len)
    if len(longest) > NAME_MAX:
        shown = os.fsdecode(longest[:40]) + "..."
        raise VampkerasError(f"{what} has a name of {len(longest)} bytes ({shown}); file systems take names of at "
                             f"most {NAME_MAX} bytes")
    if len(absolute) >= PATH_MAX:
        raise VampkerasError(f"{what} is a path of {len(absolute)} bytes (made absolute); file systems take "
                             f"paths of at most {PATH_MAX - 1} bytes")


def _special_kind(mode: int) -> str | None:
    """What a file of ``mode`` is if it is neither a regular file nor a folder (``"a FIFO (named pipe)"``)."""
    if stat.S_ISREG(mode) or stat.S_ISDIR(mode):
        return None
    return next((kind for test, kind in _FILE_KINDS if test(mode)), "a special file")


def check_writable_file(path, what: str = "the file") -> None:
    """Refuse (VampkerasError), before any work, an output file that :func:`atomic_write_bytes` could not
    write: a name no file system holds (:func:`check_path_name`), a folder, a special file (a FIFO, a device
    node, a socket: it would be replaced by a regular file), or a file whose folder cannot take new files (the
    nearest existing ancestor of a missing folder, which is created: see :func:`check_writable_folder`). The
    streams of :data:`STREAMS` pass: they are written as streams. ``what`` names the output in the message
    (``"--out"``, ``"the report"``)."""
    check_path_name(path, what)
    if stream_name(path) is not None:
        return
    path = Path(path)
    try:
        mode = path.stat().st_mode
    except (FileNotFoundError, NotADirectoryError):     # (a missing file, or a parent that is a file: below)
        mode = None
    except OSError as error:
        raise VampkerasError(f"cannot write {what} {path}: {error.strerror or error}") from None
    if mode is not None and stat.S_ISDIR(mode):
        raise VampkerasError(f"{what} {path} is a folder; give a file name")
    if mode is not None and _special_kind(mode):
        raise VampkerasError(f"{what} {path} is {_special_kind(mode)}, not a regular file; vampkeras writes "
                             f"regular files (or the streams {', '.join(STREAMS)}): give a file name")
    check_writable_folder(path.parent, f"{what} {path}")


def check_writable_folder(folder, what: str) -> None:
    """Refuse (VampkerasError) writing ``what`` into ``folder``, missing folders to be created, unless the
    nearest existing ancestor of ``folder`` (links resolved) is a folder that takes new files: writable, and
    found so by creating (and at once deleting) a hidden test file in it, since permissions alone do not tell
    (``/proc``, a read-only mount, root's writes)."""
    check_path_name(folder, what)
    try:
        existing = Path(folder).resolve()
        while not existing.exists():
            existing = existing.parent
        is_folder = existing.is_dir()
    except OSError as error:
        raise VampkerasError(f"cannot write {what}: {error.strerror or error}") from None
    if not is_folder:
        raise VampkerasError(f"cannot write {what}: {existing} is a file, not a folder")
    if not os.access(existing, os.W_OK | os.X_OK):
        raise VampkerasError(f"cannot write {what}: the folder {existing} is not writable")
    try:
        probe, handle = _create_temporary(existing / _PROBE_NAME)
        os.close(handle)
        os.unlink(probe)
    except OSError as error:
        raise VampkerasError(f"cannot write {what}: the folder {existing} takes no new files "
                             f"({error.strerror or error})") from None


def atomic_write_bytes(path, data: bytes) -> None:
    """Write ``data`` to ``path`` so that readers see either the old file or the whole new one.

    The file gets mode 0o666 less the umask, like any file ``open()`` creates; missing parent folders are
    created with the usual 0o777 less the umask. After the rename the folder is fsynced, so that the new
    name, not only the new data, is on disk when this returns; then the temporaries that writers of the same
    file killed meanwhile left beside it are deleted (:func:`remove_dead_temporaries`).

    A stream of :data:`STREAMS` is written as a stream (``/dev/null`` takes nothing), never replaced. A folder
    (IsADirectoryError) or a special file such as a FIFO or a device node (VampkerasError) at ``path`` is
    refused, not replaced by a regular file."""
    stream = stream_name(path)
    if stream is not None:
        _write_stream(stream, data)
        return
    path = Path(path)
    try:
        mode = path.stat().st_mode
    except (FileNotFoundError, NotADirectoryError):
        mode = None
    if mode is not None and stat.S_ISDIR(mode):
        raise IsADirectoryError(errno.EISDIR, os.strerror(errno.EISDIR), str(path))
    if mode is not None and _special_kind(mode):
        raise VampkerasError(f"{path} is {_special_kind(mode)}, not a regular file; it is not replaced by one")
    path.parent.mkdir(parents=True, exist_ok=True)
    temporary, handle = _create_temporary(path)
    try:
        with os.fdopen(handle, "wb") as stream:
            stream.write(data)
            stream.flush()
            os.fsync(stream.fileno())
        os.replace(temporary, path)
    except BaseException:
        if os.path.exists(temporary):
            os.unlink(temporary)
        raise
    _fsync_directory(path.parent)
    remove_dead_temporaries(path)


def atomic_write_text(path, text: str) -> None:
    """:func:`atomic_write_bytes` of ``text`` encoded as UTF-8."""
    atomic_write_bytes(path, text.encode("utf-8"))


def _write_stream(stream: str, data: bytes) -> None:
    """Write ``data`` to this process's standard output or error (``/dev/null``: nowhere), after what Python
    holds for it already, so that the output keeps its order."""
    if stream == "/dev/null":
        return
    target = sys.stdout if stream == "/dev/stdout" else sys.stderr
    if target is None:                  # (a process without that stream: nothing can be shown)
        return
    target.flush()
    binary = getattr(target, "buffer", None)
    if binary is None:                  # a text-only stream
        target.write(data.decode("utf-8", errors="replace"))
    else:
        binary.write(data)
        binary.flush()


def process_alive(pid: int | None) -> bool:
    """Whether the process ``pid`` runs on this machine (this process included; another user's counts too)."""
    if pid is None:
        return False
    if pid == os.getpid():
        return True
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    except OverflowError:               # (no process has such a number)
        return False
    return True


def remove_dead_temporaries(path) -> list[Path]:
    """Delete the temporaries of ``path`` (``.<name>.<pid>-<hex>.tmp`` beside it) whose writer is no longer
    running: a writer killed (kill -9, a power cut) between creating its temporary and renaming it leaves one,
    which nothing else would ever remove. Temporaries of live writers are kept (another process may be writing
    the same file right now); those without a pid come from older vampkeras versions and are deleted. Returns
    the deleted paths."""
    path = Path(path)
    removed = []
    try:
        entries = list(os.scandir(path.parent))
    except OSError:
        return removed
    for entry in entries:
        match = _TEMPORARY.match(entry.name)
        if (not match or match["name"] not in (path.name, _temporary_stem(path.name))
                or process_alive(int(match["pid"]) if match["pid"] else None)):
            continue
        try:
            if entry.is_file(follow_symlinks=False):
                os.unlink(entry.path)
                removed.append(Path(entry.path))
        except OSError:                 # (gone meanwhile, or not ours to delete: left as it is)
            continue
    if removed:
        logger.info("removed %d unfinished temporary file(s) of killed writers beside %s", len(removed), path)
    return removed


def _temporary_stem(name: str) -> str:
    """``name`` as the temporaries of :func:`_create_temporary` spell it: cut to the bytes that leave room in
    :data:`NAME_MAX` for ``.`` and ``.<pid>-<8 hex>.tmp`` (pids have at most 10 digits), so that a file whose
    own name is up to NAME_MAX bytes long can be written too."""
    raw = os.fsencode(name)
    room = NAME_MAX - len(".") - len(".0123456789-01234567.tmp")
    return name if len(raw) <= room else os.fsdecode(raw[:room])


def _create_temporary(path: Path) -> tuple[Path, int]:
    """A new hidden sibling ``.<name>.<pid>-<random>.tmp`` of ``path`` (its name cut by
    :func:`_temporary_stem`), open for writing: (its path, descriptor). The pid tells
    :func:`remove_dead_temporaries` whether its writer still runs.

    Opened with ``os.open`` and mode :data:`FILE_MODE` so that the kernel applies the umask (and a folder's
    default ACL) as for any new file; ``tempfile.mkstemp`` would make it 0600 whatever the umask."""
    flags = (os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_BINARY", 0) | getattr(os, "O_CLOEXEC", 0)
             | getattr(os, "O_NOFOLLOW", 0))
    for _ in range(100):
        temporary = path.parent / f".{_temporary_stem(path.name)}.{os.getpid()}-{secrets.token_hex(4)}.tmp"
        try:
            return temporary, os.open(temporary, flags, FILE_MODE)
        except FileExistsError:
            continue
    raise FileExistsError(errno.EEXIST, "no free name for a temporary file beside", str(path))


def _fsync_directory(directory: Path) -> None:
    """Make the entries of ``directory`` (a rename into it) durable. Where a folder cannot be opened
    (Windows, no read permission) or the file system does not fsync folders, there is nothing more to do."""
    if not hasattr(os, "O_DIRECTORY"):
        return
    try:
        handle = os.open(directory, os.O_RDONLY | os.O_DIRECTORY)
    except PermissionError:         # a folder one may write into but not read (mode 0300) cannot be opened
        return
    try:
        os.fsync(handle)
    except OSError as error:
        if error.errno not in (errno.EINVAL, errno.ENOTSUP, errno.EOPNOTSUPP):
            raise
    finally:
        os.close(handle)


def _pack(arrays: dict[str, np.ndarray]) -> bytes:
    buffer = io.BytesIO()
    np.savez(buffer, **arrays)
    return buffer.getvalue()


# -- variables by name ------------------------------------------------------------------------------
def _relative_path(variable, owner_name: str) -> str:
    """``variable.path`` without its owner's leading ``<owner_name>/``.

    Keras names an optimizer (and a model built without a name) by a process-wide counter (``adam``,
    ``adam_1``...), so the path relative to the owner is what is the same in the process that saves and the
    one that loads."""
    prefix = owner_name + "/"
    return variable.path[len(prefix):] if variable.path.startswith(prefix) else variable.path


def _keyed(owner: str, entries: list[tuple[str, object]]) -> dict[str, object]:
    """``{key: variable}`` from (key, variable) pairs; two different variables under one key are an error
    (each would overwrite the other in the file)."""
    keyed: dict[str, object] = {}
    for key, variable in entries:
        if key in keyed and keyed[key] is not variable:
            raise CheckpointError(f"cannot checkpoint the {owner}: the variables {keyed[key].path!r} and "
                                  f"{variable.path!r} would both be saved as {key!r}; give their layers "
                                  "distinct names")
        keyed[key] = variable
    return keyed


def _optimizer_entries(optimizer) -> list[tuple[str, object]]:
    """(key, variable) for every variable of ``optimizer``, in its order. A wrapper such as Keras'
    ``LossScaleOptimizer`` lists its inner optimizer's variables too: those are keyed under
    ``inner_optimizer/`` (both have an ``iteration``), the wrapper's own under no prefix."""
    owners, inner, role = {}, optimizer, ""
    while inner is not None:                       # the innermost owner wins: assign outermost first
        for variable in inner.variables:
            owners[id(variable)] = (inner.name, role)
        inner, role = getattr(inner, "inner_optimizer", None), role + "inner_optimizer/"
    entries = []
    for variable in optimizer.variables:
        name, role = owners[id(variable)]
        entries.append((role + _relative_path(variable, name), variable))
    return entries


def _named_variables(model, optimizer=None) -> dict[str, dict[str, object]]:
    """``{"model": {key: variable}, "optimizer": {key: variable}}`` (no optimizer group without one)."""
    groups = {"model": _keyed("model", [(_relative_path(v, model.name), v) for v in model.weights])}
    if optimizer is not None:
        groups["optimizer"] = _keyed("optimizer", _optimizer_entries(optimizer))
    return groups


def _positional_variables(model, optimizer=None) -> dict[str, list]:
    """The variables in the order the positional (format 1) checkpoints stored them."""
    groups = {"model": list(model.weights)}
    if optimizer is not None:
        groups["optimizer"] = list(optimizer.variables)
    return groups


# -- save and load ----------------------------------------------------------------------------------
def save(path, model, optimizer=None, state: dict | None = None) -> None:
    """Save model weights (and optimizer variables and a JSON-able ``state``) to ``path``, each variable
    under its path (module docstring). Raises :class:`CheckpointError` if two variables share a path."""
    arrays = {FORMAT_KEY: np.array(FORMAT_VERSION), STATE_KEY: np.array(json.dumps(state or {}))}
    for group, variables in _named_variables(model, optimizer).items():
        for key, variable in variables.items():
            arrays[f"{group}/{key}"] = np.asarray(variable.numpy())
    atomic_write_bytes(path, _pack(arrays))


def load(path, model, optimizer=None) -> dict:
    """Restore what :func:`save` wrote into ``model`` (and ``optimizer``); return the saved state.

    Without ``optimizer`` the file's optimizer variables are ignored. Nothing is assigned unless every
    variable matches. Raises :class:`CheckpointUnreadable` if the file is missing, truncated or corrupt, and
    :class:`CheckpointMismatch` if its variables are not exactly the model's (and optimizer's).
    """
    arrays = _read(path)
    version = _format_version(path, arrays)
    state = _state(path, arrays)
    if version == 1:
        pending = _match_by_position(path, arrays, _positional_variables(model, optimizer))
        logger.warning("%s is a checkpoint in the old positional format: its variables were matched to the model "
                       "by position, after checking every shape; checkpoints written from now on name them",
                       path)
    else:
        pending = _match_by_name(path, arrays, _named_variables(model, optimizer))
    for variable, value in pending:
        variable.assign(value)
    return state


def _read(path) -> dict[str, np.ndarray]:
    """Every array of the ``.npz`` at ``path``. Reading each array in full checks the zip's CRC, so a
    flipped byte is caught here rather than loaded."""
    try:
        archive = np.load(path, allow_pickle=False)
        if not isinstance(archive, np.lib.npyio.NpzFile):
            raise ValueError("a single array, not an archive of them")
        with archive:
            return {key: archive[key] for key in archive.files}
    except (OSError, ValueError, zipfile.BadZipFile, EOFError, KeyError) as error:
        raise CheckpointUnreadable(f"checkpoint {path} is unreadable ({error})") from None


def _format_version(path, arrays: dict[str, np.ndarray]) -> int:
    if FORMAT_KEY not in arrays:
        if all(key == STATE_KEY or POSITIONAL_KEY.match(key) for key in arrays):
            return 1
        raise CheckpointUnreadable(f"checkpoint {path} is unreadable (no {FORMAT_KEY!r} entry: not a vampkeras "
                                   "checkpoint)")
    value = arrays[FORMAT_KEY]
    if value.shape != () or value.dtype.kind not in "iu":
        raise CheckpointUnreadable(f"checkpoint {path} is unreadable (its {FORMAT_KEY!r} entry is not a number)")
    version = int(value)
    if version not in (1, FORMAT_VERSION):
        # whole, and not to be skipped in favour of an older checkpoint: that would lose the newer epochs
        raise CheckpointError(f"checkpoint {path} has format {version}, which this vampkeras does not read "
                              f"(it reads 1 to {FORMAT_VERSION}): it was written by a newer vampkeras; "
                              "upgrade vampkeras to use it")
    return version


def _state(path, arrays: dict[str, np.ndarray]) -> dict:
    try:
        state = json.loads(str(arrays[STATE_KEY]))
    except (KeyError, json.JSONDecodeError) as error:
        raise CheckpointUnreadable(f"checkpoint {path} has no readable state ({error})") from None
    if not isinstance(state, dict):
        raise CheckpointUnreadable(f"checkpoint {path} has no readable state (not a JSON object)")
    return state


def _listing(names: list[str]) -> str:
    shown = ", ".join(names[:LISTED_NAMES])
    return shown + (f" and {len(names) - LISTED_NAMES} more" if len(names) > LISTED_NAMES else "")


def _fits(array: np.ndarray, variable) -> bool:
    return tuple(array.shape) == tuple(variable.shape) and array.dtype == np.dtype(variable.dtype)


def _difference(name: str, array: np.ndarray, variable) -> str:
    """``name (20, 16) vs (20, 32)``: the checkpoint's shape, then the model's (with dtypes if they differ)."""
    saved, wanted = str(tuple(array.shape)), str(tuple(variable.shape))
    if array.dtype != np.dtype(variable.dtype):
        saved, wanted = f"{saved} {array.dtype}", f"{wanted} {np.dtype(variable.dtype)}"
    return f"{name} {saved} vs {wanted}"


def _mismatch(path, counts: list[str], missing: list[str], extra: list[str], reshaped: list[str],
              old_format: bool = False) -> CheckpointMismatch:
    parts = ["; ".join(counts)] if counts else []
    if missing:
        parts.append(f"missing from the checkpoint: {_listing(missing)}")
    if extra:
        parts.append(f"not in the model: {_listing(extra)}")
    if reshaped:
        parts.append(f"other shapes (checkpoint vs model): {_listing(reshaped)}")
    kind = " (in the old positional format)" if old_format else ""
    return CheckpointMismatch(f"checkpoint {path}{kind} does not match this model: " + "; ".join(parts)
                              + ". " + HOW_TO_CONTINUE)


def _owner(group: str) -> str:
    return "model" if group == "model" else "optimizer"


def _match_by_name(path, arrays, expected: dict[str, dict[str, object]]) -> list[tuple[object, np.ndarray]]:
    """(variable, value) for every expected variable, or :class:`CheckpointMismatch` naming what differs."""
    counts, missing, extra, reshaped, pending = [], [], [], [], []
    for group, variables in expected.items():
        prefix = group + "/"
        saved = {key[len(prefix):]: value for key, value in arrays.items() if key.startswith(prefix)}
        shown = "" if group == "model" else prefix          # optimizer variables are named as such
        if len(saved) != len(variables):
            counts.append(f"it holds {len(saved)} {group} variables, the {_owner(group)} has {len(variables)}")
        missing += [shown + key for key in variables if key not in saved]
        extra += [shown + key for key in saved if key not in variables]
        for key, variable in variables.items():
            if key not in saved:
                continue
            if _fits(saved[key], variable):
                pending.append((variable, saved[key]))
            else:
                reshaped.append(_difference(shown + key, saved[key], variable))
    if counts or missing or extra or reshaped:
        raise _mismatch(path, counts, sorted(missing), sorted(extra), reshaped)
    return pending


def _match_by_position(path, arrays, expected: dict[str, list]) -> list[tuple[object, np.ndarray]]:
    """Like :func:`_match_by_name` for a format-1 file, whose variables are known only by their order."""
    counts, reshaped, pending = [], [], []
    for group, variables in expected.items():
        found = sorted((int(m.group(2)), m.group(0)) for m in map(POSITIONAL_KEY.match, arrays)
                       if m and m.group(1) == group)
        if [index for index, _ in found] != list(range(len(found))) or len(found) != len(variables):
            counts.append(f"it holds {len(found)} {group} variables, the {_owner(group)} has {len(variables)}")
            continue
        for (index, key), variable in zip(found, variables):
            if _fits(arrays[key], variable):
                pending.append((variable, arrays[key]))
            else:
                reshaped.append(_difference(f"{group} variable {index} ({variable.path})", arrays[key], variable))
    if counts or reshaped:
        raise _mismatch(path, counts, [], [], reshaped, old_format=True)
    return pending


# -- a folder of epoch checkpoints ------------------------------------------------------------------
def epoch_checkpoints(directory) -> list[tuple[int, Path]]:
    """(epoch, path) of the per-epoch checkpoints in ``directory``, oldest first."""
    directory = Path(directory)
    if not directory.is_dir():
        return []
    found = [(int(m.group(1)), directory / m.group(0))
             for m in map(CHECKPOINT_PATTERN.match, os.listdir(directory)) if m]
    return sorted(found)


def save_epoch(directory, epoch: int, model, optimizer, state: dict, keep: int) -> Path:
    """Write ``epoch-NNNNN.npz`` and delete all but the newest ``keep`` epoch checkpoints."""
    path = Path(directory) / f"epoch-{epoch:05d}.npz"
    save(path, model, optimizer, state)
    for _, old in epoch_checkpoints(directory)[:-keep]:
        old.unlink(missing_ok=True)
    return path


def remove_stale_temporaries(directory) -> list[Path]:
    """Delete the half-written temporary files a killed process may have left in ``directory``."""
    directory = Path(directory)
    stale = [p for p in directory.glob(".*.tmp") if p.is_file()] if directory.is_dir() else []
    for path in stale:
        path.unlink(missing_ok=True)
        logger.warning("removed the unfinished file %s", path)
    return stale


def restore_latest(directory, model, optimizer) -> dict | None:
    """Load the newest readable epoch checkpoint; unreadable (truncated, corrupt) ones are skipped with a
    warning. None if none is readable. A readable checkpoint that does not match the model raises
    :class:`CheckpointMismatch`: falling back to an older one would hide the mismatch (and lose epochs).

    Half-written temporary files of an interrupted save are removed first."""
    remove_stale_temporaries(directory)
    for epoch, path in reversed(epoch_checkpoints(directory)):
        try:
            state = load(path, model, optimizer)
        except CheckpointUnreadable as error:
            logger.warning("skipping checkpoint: %s", error)
            continue
        logger.info("resumed from %s (epoch %d)", path, epoch)
        return state
    return None
