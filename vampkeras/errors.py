"""Errors a user can cause.

Every exception derived from :class:`VampkerasError` carries one clear, complete message meant for the
person at the terminal. The CLI prints it (without a traceback) and exits with status 2; library code
raises it instead of printing.
"""

__all__ = ["VampkerasError", "DataError", "ConfigError", "TrainingDiverged"]


class VampkerasError(Exception):
    """A problem the user can fix: a bad option, a missing or corrupt file, data of the wrong shape."""


class DataError(VampkerasError):
    """A dataset cannot be found, downloaded, verified or parsed, or its values do not fit the model."""


class ConfigError(VampkerasError):
    """An option value is out of range or a saved configuration does not match."""


class TrainingDiverged(VampkerasError):
    """The training loss became NaN or infinite."""
