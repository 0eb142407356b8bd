"""Before a run starts: the config it will use (a new run's defaults, or a resumed run's saved config with
the changes allowed), the run folder it may write, and an export that loses nothing. Every check here runs
before anything is created."""

from __future__ import annotations

import dataclasses
import logging
import os
from pathlib import Path

from vampkeras import export
from vampkeras.config import MODEL_FIELDS, RunConfig
from vampkeras.errors import ConfigError, VampkerasError
from vampkeras.run_folder import CONFIG_FILE, RunFolder

__all__ = ["prepare_config", "check_export_target", "move_old_run_aside"]

logger = logging.getLogger(__name__)


def prepare_config(config: RunConfig, resume: bool, given: dict | None = None,
                   new_folder_check: bool = True, restart: bool = False) -> RunConfig:
    """The config a run will use.

    A new run gets default paths and must not be written into a folder that holds a run (unless ``restart``:
    then that run is moved aside later, see :func:`train`) or any other files (checked later without
    ``new_folder_check``: a multiworker chief checks once all workers are connected). ``resume``
    continues the run in ``config.run_dir`` with its saved config; the options in ``given`` (those the
    user set explicitly) may change how long it trains and where it exports, but not the model: any
    difference in a model-defining field is refused with the list of differences.
    """
    if resume and restart:
        raise ConfigError("--resume continues a run and --restart starts it again: pass one of them")
    if not resume:
        if restart and config.run_dir is None:
            raise ConfigError("--restart needs --run-dir: the folder of the run to start again")
        config = config.with_default_paths().validate()
        if new_folder_check:
            RunFolder(config.run_dir).check_new_run_target(restart)
        return config
    if config.run_dir is None:
        raise ConfigError("--resume needs --run-dir: the folder of the run to continue")
    run = RunFolder(config.run_dir)
    if not run.holds_run():
        raise VampkerasError(f"there is no run to resume in {config.run_dir} (no {CONFIG_FILE})")
    saved = run.read_config()
    run.check_own_files()
    given = dict(given or {})
    requested = dataclasses.replace(saved, **{k: v for k, v in given.items() if k in MODEL_FIELDS})
    for name in ("num_components", "pseudo_init_mean", "pseudo_init_std"):
        if name not in given:
            setattr(requested, name, getattr(saved, name))
    differences = saved.model_differences(requested)
    if differences:
        raise ConfigError("--resume refuses a configuration that changes the run: " + "; ".join(differences))
    # the run lives where the user points now (the folder may have moved, or been copied, since it was saved;
    # a run folder from before runs recorded their path adopts it here): check_export_target tells which
    changes = {k: v for k, v in given.items() if k not in MODEL_FIELDS}
    changes["run_dir"] = config.run_dir
    if changes.get("strategy", saved.strategy) != "mirrored" and "replicas" not in given:
        changes["replicas"] = None          # --replicas belongs to --strategy mirrored
    return dataclasses.replace(saved, **changes).with_run_path().validate()


def check_export_target(config: RunConfig, overwrite: bool) -> None:
    """Refuse, before anything is created, an export that would destroy work: one into the run folder (or
    around it), into a place that cannot be written, or over another run's SavedModel without ``overwrite``.
    A SavedModel of this very run (same ``run_id``, wherever the run folder is reached from) is refreshed
    without ``overwrite``; one without a run id (older vampkeras) counts as another run's. A versioned export
    adds a new version and overwrites nothing.

    A copied run folder (``cp -a runs/base runs/fork``) carries its original's run id, so a SavedModel with this
    run id is this run's only if it also names this run folder (``run_path``, compared as real paths), or a
    folder that no longer holds a run of this id (the run was moved there from it: carry on; the new export
    records the new path), or no path at all (exported before runs recorded it). A SavedModel whose path
    still holds a run of this id is the original's: replacing it needs ``overwrite``."""
    target = Path(config.export_dir)
    export.check_export_location(target, config.run_dir)
    if config.export_versioned:
        export.check_writable(target)
        export.check_model_base(target)
        return
    export.check_writable(target.parent)
    if target.exists() and not target.is_dir():
        raise VampkerasError(f"the export folder {target} is a file; choose another --export folder")
    # the earlier model of an export that was killed while replacing it is the folder's content too
    occupant = target if target.is_dir() and any(target.iterdir()) else export.interrupted_export(target)
    if overwrite or occupant is None:
        return
    exported = export.exported_config(occupant)
    if exported is not None and config.run_id is not None and exported.run_id == config.run_id:
        original = _original_of_copy(config, exported)
        if original is None:
            return  # a previous export of this very run: refreshing it loses nothing
        raise VampkerasError(f"the export folder {target} holds the SavedModel of the run in {original}, which "
                             f"carries the run id of {config.run_dir}: one of the two folders is a copy of the "
                             "other (cp -a), and exporting would replace that run's model; choose another "
                             "--export folder or pass --overwrite")
    if exported is None:
        whose = "files"
    elif exported.run_dir is None:
        whose = "a SavedModel exported without a run folder (vampkeras.export.export)"
    elif exported.run_id is None or config.run_id is None:
        whose = (f"a SavedModel of the run {exported.run_dir} that cannot be told from another run's (runs and "
                 "exports of older vampkeras versions carry no run id)")
    else:
        whose = f"the SavedModel of another run ({exported.run_dir})"
    raise VampkerasError(f"the export folder {target} already holds {whose}; choose another --export folder "
                         "or pass --overwrite")


def _original_of_copy(config: RunConfig, exported: RunConfig) -> Path | None:
    """The run folder an export of ``config``'s run id was written from, if it is another folder than
    ``config.run_dir`` (as real paths) that still holds a run of this id: then ``config``'s folder is a copy of
    it. None when the export names no path, names this folder, or names a folder the run has left (moved)."""
    if exported.run_path is None or config.run_dir is None:
        return None
    other = Path(exported.run_path)
    try:
        if os.path.realpath(other) == os.path.realpath(config.run_dir):
            return None
        folder = RunFolder(other)
        if not folder.holds_run():
            return None
        still_there = folder.read_config().run_id == config.run_id
    except (OSError, ValueError, VampkerasError):     # unreadable or no longer a run: the run has left it
        return None
    return other if still_there else None


def move_old_run_aside(run: RunFolder) -> None:
    """--restart: move the run in ``run`` aside (never deleting it), once no process trains it."""
    try:
        with run.locked():           # refused, naming the holder, while another process trains or resumes it
            moved = run.move_aside()
    except OSError as error:
        raise VampkerasError(f"cannot move the run {run.path} aside to start it again: "
                             f"{error.strerror or error}") from None
    logger.warning("--restart: the earlier run is kept in %s", moved)
