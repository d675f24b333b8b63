"""User-facing errors: one line naming the problem and the fix."""

from __future__ import annotations


class SSLBenchError(Exception):
    """An error the user can fix. The CLI prints ``str(error)`` as one line, no traceback
    (unless ``--debug``)."""


class UnknownIdError(SSLBenchError):
    """An id that no loaded plugin registered."""


class DuplicateIdError(SSLBenchError):
    """Two plugins registered the same id."""


class PluginLoadError(SSLBenchError):
    """A plugin's class, registered by import path, cannot be imported or differs from its
    registration."""


class DataError(SSLBenchError):
    """A dataset on disk is missing, malformed or does not match its layout."""


class RecordError(SSLBenchError):
    """A result record cannot be read or does not validate."""


class CellFailure(Exception):
    """A cell failed for a reason worth recording (NaN loss, plugin error); the run goes on."""


def describe_exception(exc: BaseException, module_prefix: str = "") -> str:
    """One line for an exception raised while loading plugin code. A pydantic error names the
    model and the field; when the failing frame is a class body in the plugin's own code, the
    class is named too."""
    from pydantic import ValidationError

    where = ""
    frame_tb = exc.__traceback__
    while frame_tb is not None:
        frame = frame_tb.tb_frame
        if module_prefix and str(frame.f_globals.get("__name__", "")).startswith(module_prefix):
            name = frame.f_code.co_name
            where = "" if name.startswith("<") else f"class {name}: "
        frame_tb = frame_tb.tb_next
    if isinstance(exc, ValidationError):
        first = exc.errors()[0]
        field_name = ".".join(str(x) for x in first["loc"]) or "(model)"
        return (f"{where}invalid {exc.title}: field {field_name!r}: {first['msg']} "
                f"({len(exc.errors())} error(s))")
    text = str(exc).strip().splitlines()
    return f"{where}{type(exc).__name__}: {text[0] if text else ''}".rstrip(": ")
