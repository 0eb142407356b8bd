"""The CLI is quiet by default: no TensorFlow C++ log on stderr for train, evaluate, sample, score and report;
`-v` (or the user's own TF_CPP_MIN_LOG_LEVEL) shows it. Names are checked before TensorFlow loads. The HTML
report shows nats to two decimals."""

import html
import json
import os
import re
import subprocess
import sys
import textwrap
from html.parser import HTMLParser

import click
import numpy as np
import pytest

from vampkeras_cli import common
from vampkeras_cli.main import main

TF_LOG_LINE = re.compile(r"^[IWEF]\d{4} ", re.MULTILINE)
NOISE = ("oneDNN", "Could not find cuda drivers", "cuInit", "absl::InitializeLog", "NodeDef mentions attribute",
         "use_unbounded_threadpool", "AVX-512", "This TensorFlow binary is optimized")


def cli_command():
    script = os.path.join(os.path.dirname(sys.executable), "vampkeras")
    return [script] if os.path.exists(script) else [sys.executable, "-m", "vampkeras_cli.main"]


def run_cli(*args, cwd, env_changes=None, timeout=900):
    """Run the installed `vampkeras` in a fresh process with the user's default environment: no
    TF_CPP_MIN_LOG_LEVEL (tests/conftest.py sets one for the test process) unless ``env_changes`` sets it."""
    env = {name: value for name, value in os.environ.items() if name != "TF_CPP_MIN_LOG_LEVEL"}
    env.update(env_changes or {})
    return subprocess.run([*cli_command(), *map(str, args)], capture_output=True, text=True, cwd=cwd, env=env,
                          timeout=timeout)


def assert_quiet(done):
    assert done.returncode == 0, done.stderr
    assert not TF_LOG_LINE.search(done.stderr), done.stderr
    for fragment in NOISE:
        assert fragment not in done.stderr, (fragment, done.stderr)
    assert "Traceback" not in done.stderr


class MetricsTable(HTMLParser):
    """The rows of the first <table> after the "Metrics" heading: {header: cell text}."""

    def __init__(self):
        super().__init__()
        self.rows, self.in_metrics, self.done, self.cell, self.header = {}, False, False, None, None

    def handle_starttag(self, tag, attrs):
        if self.in_metrics and not self.done and tag in ("th", "td"):
            self.cell = tag

    def handle_endtag(self, tag):
        if self.in_metrics and tag == "table":
            self.done = True
        if tag in ("th", "td"):
            self.cell = None

    def handle_data(self, data):
        if data.startswith("Metrics"):
            self.in_metrics = True
        elif self.cell == "th":
            self.header = data
        elif self.cell == "td":
            self.rows[self.header] = data


@pytest.mark.slow
def test_every_command_is_quiet_by_default_and_the_report_shows_two_decimals(tmp_path):
    run_dir, export_dir = tmp_path / "run", tmp_path / "model"
    done = run_cli("train", "--epochs", 1, "--max-examples", 200, "--components", 10, "--run-dir", run_dir,
                   "--export", export_dir, cwd=tmp_path)
    assert_quiet(done)
    assert "trained 1 epochs" in done.stdout

    done = run_cli("evaluate", run_dir, "--samples", 20, "--max-examples", 40, cwd=tmp_path)
    assert_quiet(done)
    assert "evaluating: 40/40 examples" in done.stderr              # our own stderr still shows
    assert json.loads(done.stdout)["num_examples"] == 40

    done = run_cli("sample", export_dir, "-n", 4, "--out", tmp_path / "samples.png", cwd=tmp_path)
    assert_quiet(done)
    assert (tmp_path / "samples.png").is_file()

    images = (np.random.default_rng(0).uniform(size=(5, 28, 28)) < 0.2).astype(np.float32)
    np.save(tmp_path / "images.npy", images)
    done = run_cli("score", run_dir, tmp_path / "images.npy", "--samples", 10, "--out", tmp_path / "scores.csv",
                   cwd=tmp_path)
    assert_quiet(done)
    assert "scored 5 images" in done.stdout

    done = run_cli("report", run_dir, "--samples", 20, "--max-examples", 40, "--out", tmp_path / "report.html",
                   cwd=tmp_path)
    assert_quiet(done)
    # the report's metrics: nats to two decimals; evaluation.json (what the report shows) keeps full precision
    summary = json.loads((run_dir / "evaluation.json").read_text())
    page = (tmp_path / "report.html").read_text()
    table = MetricsTable()
    table.feed(page)
    for name in ("log_likelihood", "elbo", "reconstruction", "kl"):
        value = summary[name]
        assert isinstance(value, float) and round(value, 2) != value             # more digits than shown
        assert table.rows[name] == f"{value:.2f}", (name, table.rows)
        assert repr(value) not in page and str(value) not in page
    assert table.rows["num_examples"] == "40" and table.rows["num_samples"] == "20"
    headline = f"test log-likelihood {summary['log_likelihood']:.2f} nats"
    assert headline in html.unescape(page)

    # -v shows TensorFlow's own log again, and so does the user's own TF_CPP_MIN_LOG_LEVEL
    for args, env in ((["-v"], None), ([], {"TF_CPP_MIN_LOG_LEVEL": "0"})):
        done = run_cli(*args, "sample", export_dir, "-n", 1, "--out", tmp_path / "one.png", cwd=tmp_path,
                       env_changes=env)
        assert done.returncode == 0, done.stderr
        assert TF_LOG_LINE.search(done.stderr), (args, env, done.stderr)


# -- before TensorFlow loads --------------------------------------------------------------------------
NO_TENSORFLOW_CHECK = textwrap.dedent("""
    import json, sys
    from click.testing import CliRunner
    from vampkeras_cli.main import main
    results = []
    for args in json.loads(sys.argv[1]):
        result = CliRunner().invoke(main, args, prog_name="vampkeras")
        results.append([result.exit_code, result.output])
    print(json.dumps({"results": results, "tensorflow_loaded": "tensorflow" in sys.modules}))
""")


def test_names_and_options_are_refused_before_tensorflow_loads(tmp_path):
    (tmp_path / "mine").mkdir()
    (tmp_path / "mine" / "notes.txt").write_text("the user's own files")
    cases = [
        (["train", "--dataset", "nope"], "Invalid value for '--dataset': unknown dataset 'nope'; choose one of: "
                                         "mnist5k, dynamic_mnist"),
        (["evaluate", str(tmp_path), "--dataset", "imagenet"], "unknown dataset 'imagenet'"),
        (["train", "--model", "resnet"], "Invalid value for '--model'"),
        (["train", "--prior", "bogus"], "Invalid value for '--prior'"),
        (["train", "--lr", "0"], "Invalid value for '--lr': '0' is not above 0"),
        (["train", "--weighted", "--prior", "standard"], "--weighted needs a mixture prior"),
        (["train", "--seed", "-1"], "Invalid value for '--seed'"),
        (["train", "--pseudo-init-mean", "nan"], "is not a finite number"),
        (["train", "--replicas", "2"], "--replicas applies to --strategy mirrored only"),
        (["train", "--run-dir", str(tmp_path / "mine")], "is not empty and holds no run"),
    ]
    done = subprocess.run([sys.executable, "-c", NO_TENSORFLOW_CHECK, json.dumps([args for args, _ in cases])],
                          capture_output=True, text=True, cwd=tmp_path, timeout=300)
    assert done.returncode == 0, done.stderr
    outcome = json.loads(done.stdout.strip().splitlines()[-1])
    assert outcome["tensorflow_loaded"] is False
    for (args, message), (exit_code, output) in zip(cases, outcome["results"]):
        assert exit_code == 2, (args, output)
        errors = [line for line in output.splitlines() if line.startswith("Error:")]
        assert len(errors) == 1 and message in errors[0], (args, output)
        assert "Traceback" not in output
    assert [p.name for p in tmp_path.rglob("*")] == ["mine", "notes.txt"]   # nothing created


def test_dataset_names_complete_in_the_shell():
    """The named datasets first, then the shell's own path completion (your own images are a path)."""
    context = click.Context(main, info_name="vampkeras")
    assert [(item.type, item.value) for item in common.DATASET.shell_complete(context, None, "s")] == [
        ("plain", "static_mnist"), ("file", "s")]
    assert "mnist5k" in [item.value for item in common.DATASET.shell_complete(context, None, "")]
    from click.testing import CliRunner
    result = CliRunner().invoke(main, [], prog_name="vampkeras", env={
        "_VAMPKERAS_COMPLETE": "bash_complete", "COMP_WORDS": "vampkeras train --dataset om", "COMP_CWORD": "3"})
    assert result.output.split() == ["plain,omniglot", "file,om"]


# -- the switches --------------------------------------------------------------------------------------
def test_the_quiet_level_is_a_default_that_the_user_and_verbose_override(monkeypatch):
    monkeypatch.delenv("TF_CPP_MIN_LOG_LEVEL", raising=False)
    with click.Context(main, info_name="vampkeras") as context:
        context.params["verbose"] = True
        common.load_tensorflow()                           # -v: TensorFlow's own default threshold
        assert "TF_CPP_MIN_LOG_LEVEL" not in os.environ
        context.params["verbose"] = False
        common.load_tensorflow()
        assert os.environ["TF_CPP_MIN_LOG_LEVEL"] == common.QUIET_TF_LOG_LEVEL == "3"
    monkeypatch.setenv("TF_CPP_MIN_LOG_LEVEL", "0")        # the user's choice wins
    assert common.quiet_tensorflow_environment() == 0 and os.environ["TF_CPP_MIN_LOG_LEVEL"] == "0"
    monkeypatch.setenv("TF_CPP_MIN_LOG_LEVEL", "1")
    assert common.quiet_tensorflow_environment() == 1


# -- the filter ------------------------------------------------------------------------------------------
PREFACE = b"WARNING: All log messages before absl::InitializeLog() is called are written to STDERR\n"
CUDA = b"I0000 00:00:1796130685.670337    5314 cudart_stub.cc:31] Could not find cuda drivers on your machine.\n"
CU_INIT = b"E0000 00:00:1796130712.063547    5314 cuda_platform.cc:52] failed call to cuInit: UNKNOWN ERROR (303)\n"
ONEDNN = b"W0416 10:00:00.123456  140 mkl_util.h:12] oneDNN supports DT_INT32 only on platforms with AVX-512.\n"
FATAL = b"F0416 10:00:00.123456  140 cpu_feature_guard.cc:90] The TensorFlow library was compiled to use AVX.\n"


def filtered(chunks, level):
    out = []
    common.filter_tensorflow_log(iter(chunks), out.append, level)
    return b"".join(out)


def test_the_filter_drops_only_tensorflow_log_entries_below_the_level():
    warning = b"/x/y.py:3: UserWarning: something the user should see\n"
    others = b"a line of someone else's\nError: ours\n"
    chunks = [PREFACE + CUDA, CU_INIT + warning, ONEDNN, others, FATAL, b"progress 1/2\r"]
    assert filtered(chunks, 3) == warning + others + FATAL + b"progress 1/2\r"
    assert filtered(chunks, 2) == CU_INIT + warning + others + FATAL + b"progress 1/2\r"
    assert filtered(chunks, 1) == CU_INIT + warning + ONEDNN + others + FATAL + b"progress 1/2\r"
    # a line split over two reads is one line
    assert filtered([CUDA[:30], CUDA[30:] + FATAL[:9], FATAL[9:]], 3) == FATAL
    for line in (b"E0000 no file and line] here\n", b"I0000 00:00:17.5 x a.cc:1] thread not a number\n",
                 b"I am fine\n", b"W1234\n"):
        assert filtered([line], 3) == line


FILTERED_THEN = textwrap.dedent("""
    import os, sys
    from vampkeras_cli.common import TensorflowLogFiltered
    with TensorflowLogFiltered(3):
        os.write(2, {noise!r})
        print("python's own stderr", file=sys.stderr, flush=True)
        os.write(2, {fatal!r})
        {then}
    print("after", file=sys.stderr)
""")


@pytest.mark.parametrize("then", ["pass", "os.abort()"])
def test_descriptor_2_is_filtered_and_a_crash_loses_nothing(then, tmp_path):
    program = FILTERED_THEN.format(noise=PREFACE + CUDA + CU_INIT + ONEDNN, fatal=FATAL, then=then)
    done = subprocess.run([sys.executable, "-c", program], capture_output=True, cwd=tmp_path, timeout=120)
    expected = b"python's own stderr\n" + FATAL + (b"after\n" if then == "pass" else b"")
    assert done.stderr == expected, done.stderr
    assert done.returncode == (0 if then == "pass" else -6)
