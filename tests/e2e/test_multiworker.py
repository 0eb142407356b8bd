"""--strategy multiworker: TF_CONFIG validation, two worker processes on 127.0.0.1, a worker killed mid-run.

Every worker process is started with its own TMPDIR inside the test folder, so that the test sees the
temporary folders a non-chief worker trains in, and every process is killed at the end whatever happens.
"""

import csv
import json
import math
import shlex
import os
import signal
import socket
import subprocess
import sys
import time

import pytest
import tensorflow as tf

from tests.test_docs import DOCS, commands_in, shell_blocks
from vampkeras.cluster import ClusterTask, failure_reason, is_peer_failure, lost_peer, read_tf_config
from vampkeras.replicas import make_strategy
from vampkeras.errors import ConfigError

SMALL_RUN = ["--max-examples", "400", "--components", "20", "--warmup", "1", "--image-every", "0", "--no-jit",
             "--quiet"]
TRAINING_PAGE = DOCS / "training.md"
WORKER_TIMEOUT = 300        # seconds for a whole two-worker run (2 CPU cores, shared)
FAILURE_TIMEOUT = 120       # seconds from the kill to the survivor's exit


def free_ports(count):
    sockets = [socket.socket() for _ in range(count)]
    try:
        for s in sockets:
            s.bind(("127.0.0.1", 0))
        return [s.getsockname()[1] for s in sockets]
    finally:
        for s in sockets:
            s.close()


def tf_config(ports, index):
    return json.dumps({"cluster": {"worker": [f"127.0.0.1:{port}" for port in ports]},
                       "task": {"type": "worker", "index": index}})


def cli(*args):
    return [sys.executable, "-m", "vampkeras_cli.main", *map(str, args)]


class Cluster:
    """Two `vampkeras train --strategy multiworker` processes with the same arguments, as on two machines."""

    def __init__(self, tmp_path, *args, name="cluster", tf_configs=None):
        """``tf_configs``: each worker's TF_CONFIG (default: two workers on free ports of 127.0.0.1)."""
        self.root, self.name = tmp_path, name
        self.processes, self.logs = [], []
        ports = free_ports(2)
        tf_configs = tf_configs or [tf_config(ports, index) for index in range(2)]
        for index in range(2):
            temporary = tmp_path / f"{name}-tmp{index}"
            temporary.mkdir()
            stdout, stderr = (open(tmp_path / f"{name}-worker{index}.{kind}", "w") for kind in ("out", "err"))
            self.logs += [stdout, stderr]
            env = {**os.environ, "TF_CONFIG": tf_configs[index], "TMPDIR": str(temporary)}
            self.processes.append(subprocess.Popen(cli("train", "--strategy", "multiworker", *args), cwd=tmp_path,
                                                   env=env, stdout=stdout, stderr=stderr))

    def output(self, index, kind="err"):
        return (self.root / f"{self.name}-worker{index}.{kind}").read_text()

    def temporary(self, index):
        return self.root / f"{self.name}-tmp{index}"

    def wait(self, index, timeout):
        try:
            return self.processes[index].wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            pytest.fail(f"worker {index} still runs after {timeout} s; its stderr ends with:\n"
                        + self.output(index)[-3000:])

    def close(self):
        for process in self.processes:
            if process.poll() is None:
                process.kill()
                process.wait(timeout=30)
        for log in self.logs:
            log.close()


def history(run_dir):
    with open(run_dir / "history.csv") as stream:
        return [{k: float(v) for k, v in row.items()} for row in csv.DictReader(stream)]


def history_rows(run_dir):
    try:
        return len(history(run_dir))
    except (OSError, ValueError):
        return 0


# -- TF_CONFIG --------------------------------------------------------------------------------------------------

CLUSTER = {"worker": ["hostA:2222", "hostB:2222"]}


@pytest.mark.parametrize("text, fragment", [
    (None, "needs the TF_CONFIG environment variable"),
    ("  ", "needs the TF_CONFIG environment variable"),
    ("{not json", "TF_CONFIG is not valid JSON"),
    ("[1, 2]", "must be a JSON object"),
    (json.dumps({"task": {"type": "worker", "index": 0}}), 'has no "cluster" object'),
    (json.dumps({"cluster": {"worker": []}, "task": {"type": "worker", "index": 0}}), '"worker": [...]} list'),
    (json.dumps({"cluster": {"chief": ["a:1"]}, "task": {"type": "chief", "index": 0}}), '"worker": [...]} list'),
    (json.dumps({"cluster": {**CLUSTER, "ps": ["c:1"]}, "task": {"type": "worker", "index": 0}}),
     "only the jobs chief and worker, not ps"),
    (json.dumps({"cluster": {"worker": ["hostA"]}, "task": {"type": "worker", "index": 0}}),
     "'hostA' is not a host:port address"),
    (json.dumps({"cluster": {**CLUSTER, "chief": ["a:1", "b:1"]}, "task": {"type": "worker", "index": 0}}),
     '"chief" must be a list of one'),
    (json.dumps({"cluster": CLUSTER}), 'has no "task" object'),
    (json.dumps({"cluster": CLUSTER, "task": {"type": "evaluator", "index": 0}}), "task type 'evaluator'"),
    (json.dumps({"cluster": CLUSTER, "task": {"type": "chief", "index": 0}}), "task type 'chief'"),
    (json.dumps({"cluster": CLUSTER, "task": {"type": "worker", "index": 2}}), "task index 2 is not a worker"),
    (json.dumps({"cluster": CLUSTER, "task": {"type": "worker", "index": -1}}), "(0 to 1)"),
    (json.dumps({"cluster": CLUSTER, "task": {"type": "worker", "index": "1"}}), "task index '1'"),
    (json.dumps({"cluster": CLUSTER, "task": {"type": "worker"}}), "task index None"),
])
def test_tf_config_errors_name_the_problem(text, fragment, monkeypatch):
    if text is None:
        monkeypatch.delenv("TF_CONFIG", raising=False)
    else:
        monkeypatch.setenv("TF_CONFIG", text)
    with pytest.raises(ConfigError) as caught:
        read_tf_config()
    assert fragment in str(caught.value)
    with pytest.raises(ConfigError):          # before TensorFlow creates anything
        make_strategy("multiworker")


def test_tf_config_places_the_chief():
    def task(cluster, task_type, index):
        return read_tf_config(json.dumps({"cluster": cluster, "task": {"type": task_type, "index": index}}))

    first, second = task(CLUSTER, "worker", 0), task(CLUSTER, "worker", 1)
    assert first.is_chief and not second.is_chief
    assert (first.num_workers, first.name, second.name) == (2, "worker 0", "worker 1")
    with_chief = {**CLUSTER, "chief": ["hostC:2222"]}
    chief, worker = task(with_chief, "chief", 0), task(with_chief, "worker", 0)
    assert chief.is_chief and not worker.is_chief and worker.num_workers == 3 and chief.name == "the chief"


def test_replicas_are_refused_under_multiworker(monkeypatch):
    monkeypatch.setenv("TF_CONFIG", tf_config([2222, 2223], 0))
    with pytest.raises(ConfigError, match="--replicas applies to --strategy mirrored only"):
        make_strategy("multiworker", replicas=2)


def test_multiworker_after_tensorflow_started_is_a_config_error(tmp_path):
    script = ("import tensorflow as tf\n"
              "tf.constant(1.0) + 1\n"
              "from vampkeras.replicas import make_strategy\n"
              "from vampkeras.errors import ConfigError\n"
              "try:\n"
              "    make_strategy('multiworker')\n"
              "except ConfigError as error:\n"
              "    print(error)\n")
    env = {**os.environ, "TF_CONFIG": tf_config(free_ports(2), 0)}
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, cwd=tmp_path, env=env,
                          timeout=120)
    assert done.returncode == 0, done.stderr[-3000:]
    assert "--strategy multiworker must start before TensorFlow runs anything" in done.stdout


def test_peer_failures_are_recognised_and_named():
    me = ClusterTask("worker", 0, 2)
    heartbeats = tf.errors.UnavailableError(None, None, (
        "Graph execution error:\nDetected at node CollectiveReduceV2 ...\nCollective ops is aborted by: Error "
        "reported from /job:worker/task:1: The following tasks are unhealthy (stopped sending heartbeats):\n"
        "/job:worker/replica:0/task:1\nThe tasks have crashed."))
    assert is_peer_failure(heartbeats)
    assert lost_peer(heartbeats, me) == "worker 1"
    assert failure_reason(heartbeats) == "it stopped sending heartbeats"
    reset = tf.errors.UnavailableError(None, None, (
        "Collective ops is aborted by: recvmsg:Connection reset by peer\nAdditional GRPC error information from "
        "remote target /job:worker/replica:0/task:0 while calling /tensorflow.WorkerService/CompleteInstance"))
    assert lost_peer(reset, ClusterTask("worker", 1, 2)) == "worker 0 (the chief)"
    assert failure_reason(reset) == "the connection to it was lost"
    assert lost_peer(reset, ClusterTask("worker", 1, 3, has_chief=True)) == "worker 0"
    assert not is_peer_failure(tf.errors.InvalidArgumentError(None, None, "Incompatible shapes: [2] vs. [3]"))


def test_the_cli_explains_a_missing_tf_config(tmp_path):
    env = {key: value for key, value in os.environ.items() if key != "TF_CONFIG"}
    done = subprocess.run(cli("train", "--strategy", "multiworker", "--run-dir", tmp_path / "run", "--quiet"),
                          capture_output=True, text=True, cwd=tmp_path, env=env, timeout=120)
    assert done.returncode == 2
    assert done.stderr.strip().splitlines()[-1].startswith(
        "Error: --strategy multiworker needs the TF_CONFIG environment variable")
    assert not (tmp_path / "run").exists()


# -- two workers ------------------------------------------------------------------------------------------------

def documented_two_hosts():
    """docs/training.md's two-machine example: (each host's TF_CONFIG, the command both run, after `train
    --strategy multiworker`)."""
    block = next(block for _, block in shell_blocks(TRAINING_PAGE.read_text()) if "TF_CONFIG" in block)
    configs = [shlex.split(line)[1].split("=", 1)[1] for line in block.splitlines() if line.startswith("export ")]
    commands = [command.args for command in commands_in(f"```bash\n{block}\n```", TRAINING_PAGE.name)]
    assert len(configs) == 2 and len(commands) == 2 and commands[0] == commands[1]       # "the same command"
    assert commands[0][:3] == ("train", "--strategy", "multiworker")
    return configs, commands[0][3:]


def test_two_workers_train_like_one_device_and_only_the_chief_writes(tmp_path):
    """The documented two-machine example, hosts A and B played by two processes on 127.0.0.1 (the small
    budget of SMALL_RUN appended, as tests/test_docs.small_budget does)."""
    one = subprocess.run(cli("train", *SMALL_RUN, "--epochs", 1, "--run-dir", tmp_path / "one", "--export",
                             tmp_path / "one-model"), capture_output=True, text=True, cwd=tmp_path, timeout=300)
    assert one.returncode == 0, one.stderr[-3000:]

    configs, documented = documented_two_hosts()
    hosts = json.loads(configs[0])["cluster"]["worker"]
    local = [f"127.0.0.1:{port}" for port in free_ports(2)]
    for index, config in enumerate(configs):
        assert json.loads(config) == {"cluster": {"worker": hosts}, "task": {"type": "worker", "index": index}}
    tf_configs = [json.dumps({**json.loads(config), "cluster": {"worker": local}}) for config in configs]
    assert documented == ("--run-dir", "runs/big", "--export", "saved_models/big")
    run_dir, export_dir = tmp_path / "runs" / "big", tmp_path / "saved_models" / "big"
    cluster = Cluster(tmp_path, *documented, *SMALL_RUN, "--epochs", 1, tf_configs=tf_configs)
    try:
        codes = [cluster.wait(index, WORKER_TIMEOUT) for index in (0, 1)]
        assert codes == [0, 0], cluster.output(0)[-3000:] + cluster.output(1)[-3000:]
    finally:
        cluster.close()
    assert f"SavedModel {export_dir.relative_to(tmp_path)}" in cluster.output(0, "out")
    assert "the chief wrote the run folder and the SavedModel" in cluster.output(1, "out")

    # the global batch is --batch-size, split over the two workers: the same epoch as on one device
    (row,) = history(run_dir)
    (reference,) = history(tmp_path / "one")
    for key in ("loss", "reconstruction", "kl", "val_loss", "val_reconstruction", "val_kl"):
        assert row[key] == pytest.approx(reference[key], rel=1e-5), key

    # the chief wrote the run folder alone; worker 1 trained in a temporary folder that it deleted
    assert sorted(p.name for p in run_dir.iterdir()) == [".lock", "checkpoints", "config.json", "history.csv", "logs"]
    assert sorted(p.name for p in (run_dir / "checkpoints").iterdir()) == ["best.npz", "epoch-00001.npz"]
    assert len(list((run_dir / "logs").iterdir())) == 1       # one TensorBoard event file
    assert sorted(p.name for p in export_dir.parent.iterdir()) == ["big"]     # no export leftovers
    assert list(cluster.temporary(1).iterdir()) == []
    assert not [p for p in cluster.temporary(0).iterdir() if p.name.startswith("vampkeras-")]

    json_path = tmp_path / "evaluation.json"
    done = subprocess.run(cli("evaluate", export_dir, "--samples", 10, "--max-examples", 20, "--quiet", "--json",
                              json_path), capture_output=True, text=True, cwd=tmp_path, timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    summary = json.loads(json_path.read_text())
    assert summary["num_examples"] == 20 and math.isfinite(summary["log_likelihood"])


def test_a_killed_worker_stops_the_chief_with_a_clear_message_and_the_run_resumes(tmp_path):
    run_dir, export_dir = tmp_path / "run", tmp_path / "model"
    cluster = Cluster(tmp_path, *SMALL_RUN, "--epochs", 200, "--run-dir", run_dir, "--export", export_dir)
    try:
        deadline = time.monotonic() + WORKER_TIMEOUT
        while history_rows(run_dir) < 1:
            assert all(p.poll() is None for p in cluster.processes), cluster.output(0)[-3000:]
            assert time.monotonic() < deadline, "no epoch finished in time:\n" + cluster.output(0)[-3000:]
            time.sleep(0.2)
        cluster.processes[1].send_signal(signal.SIGKILL)
        killed = time.monotonic()
        code = cluster.wait(0, FAILURE_TIMEOUT)
        took = time.monotonic() - killed
    finally:
        cluster.close()
    stderr = cluster.output(0)
    assert code == 2, stderr[-3000:]
    assert took < FAILURE_TIMEOUT
    assert "Traceback" not in stderr
    last = stderr.strip().splitlines()[-1]
    assert last.startswith("Error: worker 1 of the multiworker cluster stopped responding ("), last
    saved = int(sorted((run_dir / "checkpoints").glob("epoch-*.npz"))[-1].stem.split("-")[1])
    assert f"The last complete checkpoint (epoch {saved}) is in {run_dir / 'checkpoints'}" in last
    assert last.endswith("with the same command plus --resume")

    # every worker resumes from the chief's run folder; worker 1 again writes only to its temporary folder
    resumed = Cluster(tmp_path, "--resume", "--run-dir", run_dir, "--epochs", saved + 1, "--quiet", name="resumed")
    try:
        codes = [resumed.wait(index, WORKER_TIMEOUT) for index in (0, 1)]
        assert codes == [0, 0], resumed.output(0)[-3000:] + resumed.output(1)[-3000:]
    finally:
        resumed.close()
    rows = history(run_dir)
    assert [row["epoch"] for row in rows] == [float(e) for e in range(1, saved + 2)]
    assert all(math.isfinite(row["val_loss"]) for row in rows)
    assert f"trained {saved + 1} epochs" in resumed.output(1, "out")
    assert list(resumed.temporary(1).iterdir()) == []
    assert (export_dir / "saved_model.pb").is_file()
