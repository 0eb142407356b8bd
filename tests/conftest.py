"""Shared test setup: quiet TensorFlow's C++ logging before anything imports it, and keep the speed
settings at the models' defaults (no timing: a measured choice would make tests depend on machine load;
tests/test_tuning.py turns it on where it is the subject)."""

import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
os.environ["VAMPKERAS_TUNING"] = "off"


def pytest_collection_modifyitems(config, items):
    """The end-to-end tests (tests/e2e: real trainings, exports, subprocesses) form the slow tier with the
    unit tests marked ``slow``; ``pytest -m "not slow"`` runs the fast tier for the edit-test loop."""
    import pytest

    end_to_end = os.path.join(os.path.dirname(__file__), "e2e") + os.sep
    for item in items:
        if str(item.path).startswith(end_to_end):
            item.add_marker(pytest.mark.slow)


# Modules whose tests share an expensive module-scoped fixture (a comparison, the built site, a trained model):
# under pytest-xdist each of them runs in one worker, so that the fixture is made once, not once per worker.
# (xdist's own `--dist=loadgroup` with `xdist_group` marks does this by renaming node ids, which pytest 9.2 no
# longer honours: pytest-dev/pytest-xdist#1386; this scheduler groups by module path instead.)
MODULES_KEPT_TOGETHER = {"tests/e2e/test_compare.py", "tests/e2e/test_docs_site.py", "tests/e2e/test_serving.py",
                         "tests/e2e/test_inspect.py", "tests/e2e/test_own_data.py", "tests/e2e/test_inputs.py"}


def pytest_xdist_make_scheduler(config, log):
    """`-n N`'s default distribution (any test to whichever worker is free), except that the tests of each of
    MODULES_KEPT_TOGETHER form one unit of work; those units, the largest, are handed out first."""
    from xdist.scheduler import LoadScopeScheduling

    class ModulesKeptTogether(LoadScopeScheduling):
        def _split_scope(self, nodeid: str) -> str:
            module = nodeid.split("::", 1)[0]
            return module if module in MODULES_KEPT_TOGETHER else nodeid

    if config.getvalue("dist") != "load":       # another --dist asked for explicitly: xdist's own
        return None
    return ModulesKeptTogether(config, log)
