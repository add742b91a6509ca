"""Choosing between an engine that may be missing here and the fallback that always works.

``--caller-audio``, ``--caller-voice``, ``--listener`` and the reference agent's ``--stt``
all follow one rule: the fallback when asked for it; the engine when it runs here; a
one-line error when the engine was asked for by name and cannot run; otherwise the
fallback, with a one-line notice saying why.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

from simulator.errors import InputError


def pick_engine(option: str, requested: str | None, choices: Sequence[str], *, engine: str,
                fallback: str, available: Callable[[], tuple[bool, str | None]],
                notice: Callable[[str | None], str]) -> tuple[str, str | None]:
    """``(choice, notice or None)`` for ``option``'s ``requested`` value (None or a value
    that is neither ``engine`` nor ``fallback``, such as ``auto``: whichever runs here).
    Raises :class:`InputError` for a value not in ``choices``, or for ``engine`` asked for
    by name when ``available()`` says it cannot run."""
    if requested is not None and requested not in choices:
        raise InputError(f"{option}: expected one of {', '.join(choices)}, got {requested!r}")
    if requested == fallback:
        return fallback, None
    ok, why = available()
    if ok:
        return engine, None
    if requested == engine:
        raise InputError(f"{option} {engine}: {why}")
    return fallback, notice(why)
