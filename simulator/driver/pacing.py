"""Caller pacing on text transports: when a caller turn is due.

A person takes seconds to say a turn; a text transport would otherwise send it the instant
the agent's reply ended, so N concurrent text calls would carry several times the turn rate
of N real calls. With pacing ``speech`` (the default of ``callsim run``) a turn is due when
the persona has finished saying it: the end of the agent's reply (or the call's start, for
the opening) plus the turn's scripted pauses plus its words at the persona's speaking rate.
That moment is the turn's clock start, as an ASR would deliver the text. ``none`` sends
turns back to back (scripted pauses still honoured unless turned off): pure stress.

Pure functions plus a small clock seam (:class:`Clock`) that tests replace with a
controllable one.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Mapping
from typing import Any, Protocol

from simulator.callscript import Turn

PACING_MODES = ("speech", "none")
#: Speaking rate when the persona names none: conversational English, in words per minute.
DEFAULT_WPM = 150.0
# Turn events that are silences inside the turn (placed before word ``at_word``); the same
# names the audio renderer places (docs/audio.md).
_SILENCES = ("hesitation", "silence", "pause", "long_silence")


def speaking_rate_wpm(voice: Mapping[str, Any] | None) -> float:
    """The persona's speaking rate from its ``voice`` dict: ``rate_wpm`` (what the persona
    generator writes), else ``rate`` (the TTS voice's rate, also in words per minute), else
    :data:`DEFAULT_WPM`. A missing, non-numeric or non-positive value falls through."""
    for key in ("rate_wpm", "rate"):
        v = (voice or {}).get(key)
        if isinstance(v, int | float) and not isinstance(v, bool) and v > 0:
            return float(v)
    return DEFAULT_WPM


def speech_s(turn: Turn, wpm: float) -> float:
    """Seconds the caller takes to say ``turn``: its spoken words (``clean_text``, what the
    caller said before recognition errors, else ``text``) at ``wpm``."""
    words = len((turn.clean_text or turn.text).split())
    return words * 60.0 / wpm


def pauses_s(turn: Turn) -> float:
    """The turn's scripted silences: ``pause_before_s`` plus silences placed inside the turn
    (events with an ``at_word``; those without one are already in ``pause_before_s``)."""
    inside = 0.0
    for ev in turn.events:
        if ev.get("type", ev.get("kind")) in _SILENCES and "at_word" in ev:
            secs = ev.get("duration_s", ev.get("seconds"))
            if isinstance(secs, int | float) and secs > 0:
                inside += float(secs)
    return turn.pause_before_s + inside


def turn_delay_s(turn: Turn, wpm: float, *, pacing: str, honour_pauses: bool) -> float:
    """Seconds from the end of the agent's reply (or the call's start) to the moment
    ``turn`` is due: its pauses (when honoured) plus, with pacing ``speech``, its speech."""
    delay = pauses_s(turn) if honour_pauses else 0.0
    if pacing == "speech":
        delay += speech_s(turn, wpm)
    return delay


class Clock(Protocol):
    """The session's time seam: ``perf_counter_ns`` and sleeping until an absolute time."""

    def now_ns(self) -> int: ...

    async def sleep_until(self, t_ns: int) -> None: ...


class MonotonicClock:
    """The real clock: ``time.perf_counter_ns`` (the clock every transport stamps with)."""

    @staticmethod
    def now_ns() -> int:
        return time.perf_counter_ns()

    @staticmethod
    async def sleep_until(t_ns: int) -> None:
        # Loop timers can fire early by up to their resolution (libuv's, under uvloop, is a
        # millisecond): sleep again for what is left, so a turn never leaves before it is due.
        # (ASYNC110: this waits for a time, not for a condition another task sets.)
        while (delay := t_ns - time.perf_counter_ns()) > 0:  # noqa: ASYNC110
            await asyncio.sleep(delay / 1e9)


REAL_CLOCK = MonotonicClock()
