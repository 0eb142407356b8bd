"""Shared test setup: quiet TensorFlow's C++ logging before anything imports it, and keep the speed
settings at the models' defaults (no timing: a measured choice would make tests depend on machine load;
tests/test_tuning.py turns it on where it is the subject)."""

import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
os.environ["VAMPKERAS_TUNING"] = "off"
