"""A multiworker cluster (``--strategy multiworker``): the task this process is in the ``TF_CONFIG`` environment
variable, telling a lost peer from other errors and saying which it was, a worker's private copy of the run,
and training as one task of the cluster (the chief writes the run folder and the export)."""

from __future__ import annotations

import dataclasses
import json
import logging
import os
import re
import shutil
import tempfile
from pathlib import Path

import tensorflow as tf

from vampkeras import checkpoints
from vampkeras.errors import ConfigError, VampkerasError
from vampkeras.run_folder import FIGURES_DIR, LOCK_FILE, LOGS_DIR, RunFolder

logger = logging.getLogger(__name__)

TF_CONFIG = "TF_CONFIG"
TASK_TYPES = ("chief", "worker")


@dataclasses.dataclass(frozen=True)
class ClusterTask:
    """This process's place in a ``multiworker`` cluster, as ``TF_CONFIG`` describes it."""

    task_type: str          # "chief" or "worker"
    index: int
    num_workers: int        # every task that trains, the chief included
    has_chief: bool = False

    @property
    def is_chief(self) -> bool:
        """The chief writes the run folder and the export: the ``chief`` task, else worker 0."""
        return self.task_type == "chief" or (self.task_type == "worker" and self.index == 0 and not self.has_chief)

    @property
    def name(self) -> str:
        return "the chief" if self.task_type == "chief" else f"worker {self.index}"


def read_tf_config(text: str | None = None) -> ClusterTask:
    """Validate ``TF_CONFIG`` (``text``, or the environment variable) for ``--strategy multiworker``.

    It must be a JSON object ``{"cluster": {"worker": ["host:port", ...]}, "task": {"type": "worker",
    "index": i}}``; a ``"chief": ["host:port"]`` job is allowed too. Raises :class:`ConfigError`.
    """
    if text is None:
        text = os.environ.get(TF_CONFIG)
    example = ('e.g. TF_CONFIG=\'{"cluster": {"worker": ["hostA:12345", "hostB:12345"]}, '
               '"task": {"type": "worker", "index": 0}}\'')
    if not text or not text.strip():
        raise ConfigError(f"--strategy multiworker needs the {TF_CONFIG} environment variable describing the "
                          f"cluster and this worker's place in it, {example}")
    try:
        values = json.loads(text)
    except json.JSONDecodeError as error:
        raise ConfigError(f"{TF_CONFIG} is not valid JSON ({error}); {example}") from None
    if not isinstance(values, dict):
        raise ConfigError(f"{TF_CONFIG} must be a JSON object with \"cluster\" and \"task\"; {example}")
    cluster, task = values.get("cluster"), values.get("task")
    if not isinstance(cluster, dict):
        raise ConfigError(f"{TF_CONFIG} has no \"cluster\" object; {example}")
    workers = cluster.get("worker")
    if not isinstance(workers, list) or not workers:
        raise ConfigError(f"{TF_CONFIG} has no \"cluster\": {{\"worker\": [...]}} list of host:port addresses; "
                          f"{example}")
    unsupported = sorted(set(cluster) - set(TASK_TYPES))
    if unsupported:
        raise ConfigError(f"{TF_CONFIG}: --strategy multiworker supports only the jobs chief and worker, not "
                          f"{', '.join(unsupported)}")
    chiefs = cluster.get("chief", [])
    if not isinstance(chiefs, list) or len(chiefs) > 1:
        raise ConfigError(f"{TF_CONFIG}: \"chief\" must be a list of one host:port address")
    for address in [*workers, *chiefs]:
        if not isinstance(address, str) or ":" not in address:
            raise ConfigError(f"{TF_CONFIG}: {address!r} is not a host:port address")
    if not isinstance(task, dict):
        raise ConfigError(f"{TF_CONFIG} has no \"task\" object naming this process, e.g. "
                          '{"type": "worker", "index": 0}')
    task_type, index = task.get("type"), task.get("index")
    if task_type not in TASK_TYPES or (task_type == "chief" and not chiefs):
        raise ConfigError(f"{TF_CONFIG}: the task type {task_type!r} is not a job of the cluster "
                          f"(jobs: {', '.join(j for j in TASK_TYPES if cluster.get(j))})")
    size = len(cluster[task_type])
    if isinstance(index, bool) or not isinstance(index, int) or not 0 <= index < size:
        raise ConfigError(f"{TF_CONFIG}: the task index {index!r} is not a {task_type} of the cluster "
                          f"(0 to {size - 1})")
    return ClusterTask(task_type=task_type, index=index, num_workers=len(workers) + len(chiefs),
                       has_chief=bool(chiefs))


class WorkerLost(VampkerasError):
    """Another worker of a ``multiworker`` cluster stopped or became unreachable during training."""


# What TensorFlow 2.21 raises in the surviving workers when a peer dies: its coordination service misses
# the peer's heartbeats (10 s by default), or a collective loses its connection to the peer, and every
# collective op is aborted with UnavailableError ("Collective ops is aborted by: ...").
PEER_FAILURES = (tf.errors.UnavailableError, tf.errors.DeadlineExceededError, tf.errors.CancelledError,
                 tf.errors.AbortedError)
_TASK_NAME = re.compile(r"/job:(chief|worker)/(?:replica:\d+/)?task:(\d+)")


def is_peer_failure(error: tf.errors.OpError) -> bool:
    """Whether a TensorFlow error in a multiworker run comes from another worker's failure."""
    return isinstance(error, PEER_FAILURES) or "collective ops is aborted" in error.message.lower()


def lost_peer(error: tf.errors.OpError, task: ClusterTask) -> str:
    """'worker 1', 'the chief'...: the first task other than this one that TensorFlow's error names."""
    for job, index in _TASK_NAME.findall(error.message):
        if (job, int(index)) != (task.task_type, task.index):
            peer = ClusterTask(job, int(index), task.num_workers, task.has_chief)
            return f"{peer.name} (the chief)" if peer.is_chief and job == "worker" else peer.name
    return "a worker"


def failure_reason(error: tf.errors.OpError) -> str:
    """A few words on how a peer's failure showed, from TensorFlow's (long, multi-line) error message."""
    text = error.message.lower()
    if "stopped sending heartbeats" in text:
        return "it stopped sending heartbeats"
    if any(sign in text for sign in ("connection reset", "connection refused", "socket closed", "failed to connect",
                                     "connection closed", "broken pipe")):
        return "the connection to it was lost"
    return f"{type(error).__name__} in a collective operation"


def copy_run_for_worker(source: Path, target: Path) -> None:
    """A non-chief worker's private copy of the run to resume: config and checkpoints (not the
    half-written temporaries of an interrupted save)."""
    try:
        shutil.copytree(source, target, ignore=shutil.ignore_patterns(".*.tmp", LOGS_DIR, FIGURES_DIR, LOCK_FILE))
    except (OSError, shutil.Error) as error:
        raise VampkerasError(f"cannot read the run folder {source} to resume it: {error}; under --strategy "
                             "multiworker every worker must see the run folder (shared storage)") from None


def lost_worker_message(error, task: ClusterTask, run_dir: Path) -> str:
    run = RunFolder(run_dir)
    saved = checkpoints.epoch_checkpoints(run.checkpoint_dir)
    if saved:
        restart = (f"The last complete checkpoint (epoch {saved[-1][0]}) is in {run.checkpoint_dir}: start "
                   "every worker again with the same command plus --resume")
    elif run.holds_run():
        restart = "No epoch was complete: start every worker again with the same command plus --resume"
    else:
        restart = "No epoch was complete: start every worker again with the same command"
    return (f"{lost_peer(error, task)} of the multiworker cluster stopped responding ({failure_reason(error)}: it "
            f"stopped, crashed or became unreachable; its own output may say why), so {task.name} stopped too. "
            + restart)


def train_as_cluster_task(task: ClusterTask, config, resume: bool, train_with):
    """Train as ``task`` of a multiworker cluster: ``train_with(config)`` trains with a RunConfig and returns
    its TrainResult. The chief trains in the run folder and writes the export; every other worker trains in
    a temporary folder of its own (a copy of the run when resuming), deleted at the end: it still saves
    checkpoints and a SavedModel, as reading the model's variables for them may take part in the cluster's
    collective ops. A peer's failure is raised as :class:`WorkerLost` with what to do next."""
    scratch = None
    try:
        if task.is_chief:
            return train_with(config)
        scratch = Path(tempfile.mkdtemp(prefix=f"vampkeras-{task.task_type}{task.index}-"))
        local = dataclasses.replace(config, run_dir=str(scratch / "run"), export_dir=str(scratch / "export"))
        if resume:
            copy_run_for_worker(Path(config.run_dir), Path(local.run_dir))
        result = train_with(local)
        return dataclasses.replace(result, run_dir=Path(config.run_dir), export_dir=Path(config.export_dir),
                                   is_chief=False)
    except tf.errors.OpError as error:
        if not is_peer_failure(error):
            raise
        logger.info("the collective operations were aborted: %s", error.message)
        raise WorkerLost(lost_worker_message(error, task, Path(config.run_dir))) from None
    finally:
        if scratch is not None:
            shutil.rmtree(scratch, ignore_errors=True)
