"""The one rule behind --caller-audio, --caller-voice, --listener and --stt: what a user
gets when the engine they want is, or is not, installed here."""

from __future__ import annotations

import pytest

from simulator.choices import pick_engine
from simulator.errors import InputError

CHOICES = ("auto", "engine", "fallback")


def _pick(requested: str | None, ok: bool) -> tuple[str, str | None]:
    return pick_engine("--thing", requested, CHOICES, engine="engine", fallback="fallback",
                       available=lambda: (ok, None if ok else "its package is missing"),
                       notice=lambda why: f"thing: fallback ({why})")


def test_the_engine_when_it_runs_here_and_the_fallback_with_a_reason_when_not() -> None:
    assert _pick(None, True) == ("engine", None)
    assert _pick("auto", True) == ("engine", None)
    assert _pick("auto", False) == ("fallback", "thing: fallback (its package is missing)")


def test_the_fallback_asked_for_is_given_without_a_notice() -> None:
    assert _pick("fallback", False) == ("fallback", None)


def test_the_engine_asked_for_by_name_but_missing_is_a_one_line_error() -> None:
    with pytest.raises(InputError, match=r"^--thing engine: its package is missing$"):
        _pick("engine", False)


def test_an_unknown_value_names_the_choices() -> None:
    with pytest.raises(InputError, match=r"expected one of auto, engine, fallback, got 'x'"):
        _pick("x", True)
