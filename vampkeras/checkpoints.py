"""Per-epoch checkpoints: model weights, optimizer state and the run's bookkeeping in one ``.npz``.

Files are written atomically (a temporary sibling, flushed and fsynced, then renamed), the last N are
kept, and a checkpoint that cannot be read back whole is skipped with a warning in favour of the
previous one.
"""

from __future__ import annotations

import io
import json
import logging
import os
import re
import tempfile
import zipfile
from pathlib import Path

import numpy as np

from vampkeras.errors import VampkerasError

logger = logging.getLogger(__name__)

CHECKPOINT_PATTERN = re.compile(r"^epoch-(\d{5,})\.npz$")
BEST_WEIGHTS = "best.npz"


class CheckpointError(VampkerasError):
    """A checkpoint file is unreadable or does not fit the model."""


def atomic_write_bytes(path, data: bytes) -> None:
    """Write ``data`` to ``path`` so that readers see either the old file or the whole new one."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    handle, temporary = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
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


def atomic_write_text(path, text: str) -> None:
    atomic_write_bytes(path, text.encode("utf-8"))


def _pack(arrays: dict[str, np.ndarray]) -> bytes:
    buffer = io.BytesIO()
    np.savez(buffer, **arrays)
    return buffer.getvalue()


def _variables(model, optimizer=None) -> dict[str, list]:
    groups = {"model": list(model.weights)}
    if optimizer is not None:
        groups["optimizer"] = list(optimizer.variables)
    return groups


def save(path, model, optimizer=None, state: dict | None = None) -> None:
    """Save model weights (and optimizer variables and a JSON-able ``state``) to ``path``."""
    arrays = {}
    for group, variables in _variables(model, optimizer).items():
        for index, variable in enumerate(variables):
            arrays[f"{group}/{index:04d}"] = np.asarray(variable.numpy())
    arrays["state"] = np.array(json.dumps(state or {}))
    atomic_write_bytes(path, _pack(arrays))


def load(path, model, optimizer=None) -> dict:
    """Restore what :func:`save` wrote into ``model`` (and ``optimizer``); return the saved state.

    Raises :class:`CheckpointError` if the file is unreadable, truncated, or does not match the model.
    """
    try:
        with np.load(path, allow_pickle=False) as archive:
            arrays = {key: archive[key] for key in archive.files}
    except (OSError, ValueError, zipfile.BadZipFile, EOFError) as error:
        raise CheckpointError(f"checkpoint {path} is unreadable ({error})") from None
    pending = []
    for group, variables in _variables(model, optimizer).items():
        keys = sorted(k for k in arrays if k.startswith(group + "/"))
        if len(keys) != len(variables):
            raise CheckpointError(f"checkpoint {path} holds {len(keys)} {group} variables, the model has "
                                  f"{len(variables)}: it was written by a different model")
        for key, variable in zip(keys, variables):
            if tuple(arrays[key].shape) != tuple(variable.shape):
                raise CheckpointError(f"checkpoint {path}: {variable.path} has shape {arrays[key].shape}, "
                                      f"the model expects {tuple(variable.shape)}")
            pending.append((variable, arrays[key]))
    for variable, value in pending:
        variable.assign(value)
    try:
        return json.loads(str(arrays["state"]))
    except (KeyError, json.JSONDecodeError) as error:
        raise CheckpointError(f"checkpoint {path} has no readable state ({error})") from None


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
    """Load the newest readable epoch checkpoint; corrupt ones are skipped with a warning. None if none.

    Half-written temporary files of an interrupted save are removed first."""
    remove_stale_temporaries(directory)
    for epoch, path in reversed(epoch_checkpoints(directory)):
        try:
            state = load(path, model, optimizer)
        except CheckpointError as error:
            logger.warning("skipping checkpoint: %s", error)
            continue
        logger.info("resumed from %s (epoch %d)", path, epoch)
        return state
    return None
