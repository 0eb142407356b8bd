"""vampkeras: VAEs with a VampPrior (Tomczak & Welling, 2018) in TensorFlow 2 / Keras 3 with TFP.

Importing this package is cheap; TensorFlow is loaded by the submodules that need it:
``vampkeras.training.train``, ``vampkeras.evaluation.evaluate``, ``vampkeras.export.export``,
``vampkeras.models.build_model``, ``vampkeras.data.load_dataset``, ``vampkeras.compare``.
``python -m vampkeras`` runs the command line.
"""

# The one version number: pyproject.toml reads it (setuptools' dynamic `attr:`, without importing this
# package) and `vampkeras --version` prints it.
__version__ = "0.2.0"

__all__ = ["__version__", "compare"]


def compare(*args, **kwargs) -> dict:
    """Train and score a grid of models × priors × learning rates × seeds on one dataset and return every
    number of its report (what ``comparison.json`` holds); see :func:`vampkeras.comparison.api.compare`."""
    from vampkeras.comparison.api import compare as run_comparison
    return run_comparison(*args, **kwargs)
