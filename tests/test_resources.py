"""Memory estimates (vampkeras.resources, issue #33 item 13): the limit this process may use, read from fake cgroup
files (v2 and v1, nested, inside a container), the parameter count of every model against the built model, and
a run that cannot fit refused with its numbers before anything is created."""

import numpy as np
import pytest

from vampkeras import resources
from vampkeras.config import RunConfig
from vampkeras.data.registry import Dataset, DatasetSpec
from vampkeras.errors import VampkerasError

GIB = 2 ** 30


def fake_proc(root, cgroup_lines, mount_lines):
    """A fake /proc/self under ``root``: its ``cgroup`` and ``mountinfo`` files."""
    proc = root / "proc-self"
    proc.mkdir(parents=True, exist_ok=True)
    (proc / "cgroup").write_text("".join(line + "\n" for line in cgroup_lines))
    (proc / "mountinfo").write_text("".join(line + "\n" for line in mount_lines))
    return proc


def cgroup2_mount(mount_point, root="/"):
    return f"35 24 0:30 {root} {mount_point} rw,nosuid,nodev,noexec,relatime shared:9 - cgroup2 cgroup2 rw"


def cgroup1_memory_mount(mount_point, root="/"):
    return f"40 31 0:35 {root} {mount_point} rw,relatime - cgroup cgroup rw,memory"


def fake_cgroup_limit(root, monkeypatch, limit: int):
    """Make this process's cgroup (v2) limit ``limit`` bytes, through fake files under ``root``
    (resources.PROC_SELF, the seam): every memory check then sees it, the CLI's included."""
    mount = root / "cgroup-fs"
    (mount / "user.slice" / "run").mkdir(parents=True, exist_ok=True)
    (mount / "user.slice" / "run" / "memory.max").write_text(f"{limit}\n")
    proc = fake_proc(root, ["0::/user.slice/run"], [cgroup2_mount(mount)])
    monkeypatch.setattr(resources, "PROC_SELF", proc)
    return proc


# -- the limit ------------------------------------------------------------------------------------------------
def test_cgroup_v2_limit_of_the_process_and_its_ancestors(tmp_path):
    mount = tmp_path / "fs"
    leaf = mount / "a" / "b"
    leaf.mkdir(parents=True)
    (leaf / "memory.max").write_text("max\n")                      # no limit here...
    (mount / "a" / "memory.max").write_text(f"{3 * GIB}\n")        # ...but the parent has one
    proc = fake_proc(tmp_path, ["0::/a/b"], [cgroup2_mount(mount)])
    assert resources.cgroup_memory_limit(proc) == (3 * GIB, mount / "a" / "memory.max")
    (leaf / "memory.max").write_text(f"{GIB}\n")                   # the tighter one wins
    assert resources.cgroup_memory_limit(proc) == (GIB, leaf / "memory.max")
    limit = resources.host_memory_limit(proc)
    assert limit.bytes == GIB and "cgroup" in limit.source and str(leaf / "memory.max") in str(limit)


def test_cgroup_v1_limit_and_no_limit(tmp_path):
    mount = tmp_path / "memory"
    (mount / "docker" / "x").mkdir(parents=True)
    (mount / "docker" / "x" / "memory.limit_in_bytes").write_text("9223372036854771712\n")     # v1's "no limit"
    (mount / "memory.limit_in_bytes").write_text("9223372036854771712\n")
    lines = ["12:cpu,cpuacct:/docker/x", "4:memory:/docker/x", "0::/"]
    proc = fake_proc(tmp_path, lines, [cgroup1_memory_mount(mount)])
    assert resources.cgroup_memory_limit(proc) is None
    assert resources.host_memory_limit(proc).bytes == resources.physical_memory()
    (mount / "docker" / "x" / "memory.limit_in_bytes").write_text(f"{2 * GIB}\n")
    assert resources.cgroup_memory_limit(proc) == (2 * GIB, mount / "docker" / "x" / "memory.limit_in_bytes")


def test_inside_a_container_the_mount_root_is_the_containers_cgroup(tmp_path):
    # /proc/self/cgroup names the cgroup in full, the mount shows it as its root ("/docker/x" at mount/)
    mount = tmp_path / "memory"
    mount.mkdir()
    (mount / "memory.limit_in_bytes").write_text(f"{GIB // 2}\n")
    proc = fake_proc(tmp_path, ["4:memory:/docker/x"], [cgroup1_memory_mount(mount, root="/docker/x")])
    assert resources.cgroup_memory_limit(proc) == (GIB // 2, mount / "memory.limit_in_bytes")


def test_missing_or_unreadable_cgroup_files_mean_physical_memory(tmp_path):
    assert resources.cgroup_memory_limit(tmp_path / "nowhere") is None
    proc = fake_proc(tmp_path, ["0::/gone"], [cgroup2_mount(tmp_path / "no-fs")])
    limit = resources.host_memory_limit(proc)
    assert (limit.bytes, limit.source) == (resources.physical_memory(), "the machine's physical memory")
    # a limit above the physical memory is no limit
    (tmp_path / "fs").mkdir()
    (tmp_path / "fs" / "memory.max").write_text(f"{resources.physical_memory() * 2}\n")
    proc = fake_proc(tmp_path, ["0::/"], [cgroup2_mount(tmp_path / "fs")])
    assert resources.host_memory_limit(proc).source == "the machine's physical memory"


def test_gpu_limit_only_when_a_gpu_is_visible(monkeypatch):
    import tensorflow as tf
    from tensorflow.python.client import device_lib

    class Device:
        def __init__(self, name, kind, limit):
            self.name, self.device_type, self.memory_limit = name, kind, limit

    listed = []
    monkeypatch.setattr(device_lib, "list_local_devices", lambda: listed.append(1) or [
        Device("/device:CPU:0", "CPU", 1 << 28), Device("/device:GPU:0", "GPU", 40 * GIB),
        Device("/device:GPU:1", "GPU", 16 * GIB)])
    monkeypatch.setattr(tf.config, "list_physical_devices", lambda kind=None: [])
    assert resources.gpu_memory_limit() is None and not listed          # no GPU: nothing asked
    monkeypatch.setattr(tf.config, "list_physical_devices", lambda kind=None: ["GPU:0", "GPU:1"])
    monkeypatch.setattr(tf.config, "list_logical_devices", lambda kind=None: [])
    limit = resources.gpu_memory_limit()
    assert limit.bytes == 16 * GIB and "/device:GPU:1" in limit.source     # the smallest GPU


# -- what a model needs -------------------------------------------------------------------------------------
MODELS = [("vae", "vampprior", (28, 20), "discretized_logistic"), ("vae", "standard", (28, 28), "bernoulli"),
          ("hvae", "mog", (28, 28), "bernoulli"), ("convhvae", "vampprior", (20, 28, 3), "discretized_logistic"),
          ("pixelhvae", "standard", (13, 9), "discretized_logistic")]


def spec_of(shape, likelihood, count=10):
    return DatasetSpec("x", shape, "grey", "none", likelihood, 0.5, 0.1, 7, (count, count, count), "x")


@pytest.mark.parametrize("model,prior,shape,likelihood", MODELS, ids=[f"{m}-{p}-{s}" for m, p, s, _ in MODELS])
def test_the_parameter_count_is_the_built_models(model, prior, shape, likelihood):
    from vampkeras.models import build_model

    config = RunConfig(model=model, prior=prior, num_components=7, latent_dim=5, hidden_units=11,
                       pseudo_init_mean=0.5, pseudo_init_std=0.1)
    built = build_model(config, spec_of(shape, likelihood))
    assert resources.parameter_count(config, shape, likelihood) == built.count_params()


def test_a_model_of_megapixel_images_needs_tens_of_gibibytes():
    """Ten 1024x1024 PNGs (the issue's case): the paper's VAE + VampPrior on them has 1.8 billion parameters."""
    estimate = resources.model_estimate(RunConfig(num_components=500), (1024, 1024), "discretized_logistic")
    # encoder D·600, decoder 300·2D, pseudo-inputs 500·D
    assert estimate.parameters > (600 + 600 + 500) * 1024 * 1024
    assert estimate.state_bytes == 5 * 4 * estimate.parameters and estimate.total_bytes > 40 * GIB
    small = resources.model_estimate(RunConfig(num_components=500), (28, 28), "bernoulli")
    assert small.total_bytes < 200 * 2 ** 20


def test_a_run_that_cannot_fit_is_refused_with_its_numbers(tmp_path, monkeypatch):
    images = np.zeros([10, 784], np.float32)
    dataset = Dataset(spec_of((28, 28), "bernoulli"), images, images, images)
    config = RunConfig(num_components=500, likelihood="bernoulli")
    fake_cgroup_limit(tmp_path, monkeypatch, 2 * GIB)
    resources.check_training_memory(config, dataset)                    # ~1.1 GiB with TensorFlow: fits
    fake_cgroup_limit(tmp_path, monkeypatch, GIB)
    with pytest.raises(VampkerasError) as refused:
        resources.check_training_memory(config, dataset)
    message = str(refused.value)
    assert message.startswith("this run does not fit in memory: the model needs about ")
    assert "1.5 million parameters" in message and "the data 0.1 MiB (30 images of 28×28" in message
    assert "TensorFlow itself about 1.0 GiB; this process may use 1.0 GiB (the limit of its cgroup" in message
