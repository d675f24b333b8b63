"""User-facing errors: one line naming the problem and the fix."""

from __future__ import annotations


class SSLBenchError(Exception):
    """An error the user can fix. The CLI prints ``str(error)`` as one line, no traceback
    (unless ``--debug``)."""


class UnknownIdError(SSLBenchError):
    """An id that no loaded plugin registered."""


class DuplicateIdError(SSLBenchError):
    """Two plugins registered the same id."""


class DataError(SSLBenchError):
    """A dataset on disk is missing, malformed or does not match its layout."""


class RecordError(SSLBenchError):
    """A result record cannot be read or does not validate."""


class CellFailure(Exception):
    """A cell failed for a reason worth recording (NaN loss, plugin error); the run goes on."""
