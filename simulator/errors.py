"""The one exception hierarchy of callsim.

Every error a user can cause is a ``CallsimError`` whose ``str()`` is one line saying
what went wrong and where (file, line, field). The CLI prints it and exits 2.

    CallsimError
    ├── InputError            bad user input (files, flags)
    │   ├── PackError         a persona pack that does not validate
    │   ├── CallFileError     a call-script file (JSON/JSONL) that does not validate
    │   ├── ProfileError      a noise or agent profile that does not validate
    │   └── RubricError       a gate rubric that does not validate
    ├── StoreError            a run store that cannot be opened, read or resumed
    ├── TransportError        talking to an agent failed (carries a category)
    └── GateError             the gate cannot judge (mismatched runs, ...)
"""

from __future__ import annotations


class CallsimError(Exception):
    """Base of every error callsim raises on purpose. Its message is always one line:
    line breaks that come from user data (a YAML key, an agent's reply) are escaped."""

    exit_code = 2

    def __init__(self, message: str = "", *args: object) -> None:
        one_line = str(message).replace("\r", "\\r").replace("\n", "\\n")
        super().__init__(one_line, *args)


class InputError(CallsimError):
    """Bad user input: a file or a flag that does not make sense."""


class PackError(InputError):
    """A persona pack that does not validate."""


class CallFileError(InputError):
    """A call-script file that does not validate."""


class ProfileError(InputError):
    """A noise profile or agent profile that does not validate."""


class RubricError(InputError):
    """A gate rubric that does not validate."""


class StoreError(CallsimError):
    """A run store that cannot be opened, read or resumed."""


class GateError(CallsimError):
    """The gate cannot judge the runs it was given."""


class TransportError(CallsimError):
    """Talking to an agent failed.

    ``category`` is a short, stable, user-readable name (``connect_refused``, ``reset``,
    ``http_5xx``, ``rate_limited``, ``first_byte_timeout``, ``stall``, ``protocol_error``,
    ``oversized``, ``timeout``...).
    """

    def __init__(self, category: str, message: str) -> None:
        super().__init__(f"{category}: {message}")
        self.category = category


def format_validation_error(where: str, exc: object) -> str:
    """One line from a pydantic ``ValidationError``: ``where: field.path: message``.

    Only the first error is shown; a user fixes one thing at a time.
    """
    errors = getattr(exc, "errors", None)
    if callable(errors):
        errs = errors()
        if errs:
            first = errs[0]
            loc = ".".join(str(p) for p in first.get("loc", ())) or "<root>"
            msg = str(first.get("msg", "invalid")).replace("\n", " ")
            more = f" (and {len(errs) - 1} more)" if len(errs) > 1 else ""
            return f"{where}: field '{loc}': {msg}{more}"
    return f"{where}: {str(exc).splitlines()[0] if str(exc) else type(exc).__name__}"
