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
