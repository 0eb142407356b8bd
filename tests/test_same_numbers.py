"""The paper's datasets give the same numbers after the move to images with channels (#20).

``tests/data/numbers_before_channels.json`` holds what every model computed *before* images gained a channel
axis (commit 654c127, written by ``python -m tests.test_same_numbers`` there): the ELBO terms, the
importance-sampled log-likelihood, samples and reconstructions of small seeded models on the paper's grey and
binary image shapes, for both likelihoods. The code of today must reproduce them (to float rounding across
XLA/graph and machines). Never regenerate the file to make this test pass: it is the record of the old code.
"""

import json
import sys
from pathlib import Path

import numpy as np
import pytest

RECORD = Path(__file__).parent / "data" / "numbers_before_channels.json"
CASES = [  # (model, prior, likelihood, image shape): the paper's binary 28x28 and grey 28x20 (Frey Faces) shapes
    ("vae", "vampprior", "bernoulli", (28, 28)),
    ("vae", "standard", "discretized_logistic", (28, 20)),
    ("hvae", "vampprior", "bernoulli", (28, 28)),
    ("hvae", "mog", "discretized_logistic", (28, 20)),
    ("convhvae", "vampprior", "bernoulli", (28, 28)),
    ("convhvae", "vampprior", "discretized_logistic", (28, 20)),
    ("pixelhvae", "vampprior", "bernoulli", (28, 28)),
    ("pixelhvae", "standard", "discretized_logistic", (28, 20)),
]


def case_name(case) -> str:
    model, prior, likelihood, shape = case
    return f"{model}-{prior}-{likelihood}-{shape[0]}x{shape[1]}"


def compute_numbers(case) -> dict:
    """The numbers of one small seeded model, as lists of floats."""
    import tensorflow as tf

    from vampkeras.config import RunConfig
    from vampkeras.models import as_seed, build_model
    from tests.fakes import ImageSpec

    model_name, prior, likelihood, shape = case
    config = RunConfig(model=model_name, prior=prior, num_components=3, pseudo_init_mean=0.3, pseudo_init_std=0.2,
                       latent_dim=3, hidden_units=8, seed=5)
    model = build_model(config, ImageSpec(shape, likelihood))
    pixels = int(np.prod(shape))
    grey = np.random.default_rng(3).uniform(size=(3, pixels)).astype("float32")
    x = (grey < 0.4).astype("float32") if likelihood == "bernoulli" else grey
    reconstruction, kl = model.elbo_terms(x, as_seed(11))
    return {
        "reconstruction": reconstruction.numpy().tolist(),
        "kl": kl.numpy().tolist(),
        "log_likelihood": model.log_likelihood(x, 6, as_seed(4), chunk_size=2).numpy().tolist(),
        # sampling and reconstructing run compiled, as every caller runs them (the SavedModel, figures): an
        # autoregressive PixelHVAE decodes pixel by pixel, 10x slower op by op in eager mode
        "samples": tf.function(lambda: model.sample(2, as_seed(9)), autograph=False)().numpy()[:, ::37].tolist(),
        "reconstructions": tf.function(model.reconstruct, autograph=False)(x[:2]).numpy()[:, ::41].tolist(),
    }


@pytest.mark.parametrize("case", [case if case[0] == "vae" else pytest.param(case, marks=pytest.mark.slow)
                                  for case in CASES], ids=case_name)
def test_numbers_are_those_of_the_code_before_channels(case):
    expected = json.loads(RECORD.read_text())[case_name(case)]
    numbers = compute_numbers(case)
    for key, values in expected.items():
        np.testing.assert_allclose(numbers[key], values, rtol=2e-4, atol=2e-3, err_msg=f"{case_name(case)}: {key}")


if __name__ == "__main__":      # the record of the code of the day (see the module docstring)
    record = {case_name(case): compute_numbers(case) for case in CASES}
    Path(sys.argv[1] if len(sys.argv) > 1 else RECORD).write_text(json.dumps(record, indent=1) + "\n")
