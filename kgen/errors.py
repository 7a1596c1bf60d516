"""Exceptions kgen raises for problems a user can fix.

The CLI prints any `KgenError` as one line and exits non-zero; everything else
is a bug and keeps its traceback.
"""


class KgenError(Exception):
    """A problem with the user's input, explained in one line."""


class DataError(KgenError, ValueError):
    """A data set that cannot be found or read."""


class RunError(KgenError, ValueError):
    """A run directory that is missing, incomplete or of the wrong model."""
