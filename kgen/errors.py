"""Exceptions kgen raises for problems a user can fix.

The CLI prints any `KgenError` as one line and exits non-zero; everything else
is a bug and keeps its traceback.
"""


class KgenError(Exception):
    """A problem with the user's input, explained in one line."""

    exit_code = 1  # what the CLI exits with


class DataError(KgenError, ValueError):
    """A data set that cannot be found or read."""


class RunError(KgenError, ValueError):
    """A run directory that is missing, incomplete or of the wrong model."""


class RunOptionError(RunError):
    """An option that does not fit the run it is given with (`--epochs` below the epochs done): bad usage, exit 2."""

    exit_code = 2


class Interrupted(KgenError):
    """Training stopped by Ctrl-C or SIGTERM after saving a checkpoint."""

    exit_code = 130


class Diverged(KgenError):
    """Training stopped because a loss became NaN or infinite."""

    exit_code = 3


class PresetError(KgenError, ValueError):
    """A preset that cannot be found or read, or a run that cannot become one.

    A name that is no preset, or a run that cannot be exported, is bad input
    (exit 2); a damaged preset exits 1, as a damaged run does.
    """

    def __init__(self, message, exit_code=1):
        super().__init__(message)
        self.exit_code = exit_code
