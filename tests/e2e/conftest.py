"""A small real run shared by the end-to-end tests: 2 epochs of the VampPrior VAE on 1000 mnist5k images."""

import pytest

from vampkeras.config import RunConfig
from vampkeras.training import train


@pytest.fixture(scope="session")
def trained_run(tmp_path_factory):
    root = tmp_path_factory.mktemp("trained")
    config = RunConfig(epochs=2, warmup=2, max_examples=1000, run_dir=str(root / "run"),
                       export_dir=str(root / "export"))
    return train(config, verbose=0)
