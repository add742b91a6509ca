"""Caller pacing on text transports: a caller turn is sent when the persona has said it.

Run on a controllable clock (the session's time seam) with a transport that answers at
chosen instants of that clock, so the due times are checked exactly and nothing sleeps.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from simulator.agent.process import agent_process
from simulator.callscript import CallScript, Persona, Turn, write_calls
from simulator.driver.pacing import (
    DEFAULT_WPM,
    pauses_s,
    speaking_rate_wpm,
    speech_s,
)
from simulator.driver.runner import RunConfig
from simulator.driver.session import run_text_call
from simulator.errors import InputError
from simulator.personas import generate_calls, load_packs
from simulator.storage.store import RunStore
from simulator.transports.base import Deadlines, Exchange
from tests.conftest import TIME_FACTOR

S = 1_000_000_000
T0 = 5_000 * S  # the controllable clock's start (any value)


class ManualClock:
    """Time moves only when the session sleeps or the transport says a reply took time."""

    def __init__(self) -> None:
        self.t = T0
        self.sleeps: list[int] = []

    def now_ns(self) -> int:
        return self.t

    async def sleep_until(self, t_ns: int) -> None:
        self.sleeps.append(t_ns)
        self.t = max(self.t, t_ns)


class TimedAgent:
    """A transport at the seam: each exchange's first token comes ``ttft_s`` after it is
    sent and its last byte ``reply_s`` after it is sent, on the manual clock."""

    def __init__(self, clock: ManualClock, ttft_s: float = 0.3, reply_s: float = 1.2) -> None:
        self.clock, self.ttft_s, self.reply_s = clock, ttft_s, reply_s
        self.sent: list[int] = []
        self.replies: list[Exchange] = []

    async def exchange(self, messages: list[dict[str, Any]], tools: list[dict[str, Any]], *,
                       interrupt_after_s: float | None = None, call_id: str | None = None
                       ) -> Exchange:
        t = self.clock.t
        self.sent.append(t)
        ex = Exchange(sent_ns=t, first_byte_ns=t, first_content_ns=t + int(self.ttft_s * S),
                      last_byte_ns=t + int(self.reply_s * S), text="Okay.",
                      finish_reason="stop")
        self.clock.t = ex.last_byte_ns  # type: ignore[assignment]
        self.replies.append(ex)
        return ex

    async def warmup(self, connections: int) -> None:
        pass

    async def aclose(self) -> None:
        pass


class ListCaller:
    """Says its turns in order whatever the agent answers (the policy is not under test)."""

    def __init__(self, turns: list[Turn]) -> None:
        self.turns = list(turns)

    def first(self) -> Turn:
        return self.turns.pop(0)

    def respond(self, _agent_text: str) -> Turn | None:
        return self.turns.pop(0) if self.turns else None


def _words(n: int) -> str:
    return " ".join(["word"] * n)


def _script(turns: list[Turn], voice: dict[str, Any]) -> CallScript:
    return CallScript(call_id="c1", pack="p", intent="i", seed=1,
                      persona=Persona(name="Ann Lee", voice=voice), record_exists=True,
                      slots={}, turns=turns, expected_tool_calls=[],
                      expected_outcome="completed")


async def _run(turns: list[Turn], *, wpm: float = 150, pacing: str = "speech",
               honour_pauses: bool = True, scheduled_ns: int | None = None
               ) -> tuple[TimedAgent, Any, ManualClock]:
    clock = ManualClock()
    agent = TimedAgent(clock)

    async def no_tools(*_a: Any) -> tuple[str, None]:
        return "{}", None

    run = await run_text_call(
        _script(turns, {"rate_wpm": wpm}), ListCaller(turns), "sys", [], agent, no_tools,
        deadlines=Deadlines(), run_t0_ns=T0, scheduled_ns=scheduled_ns,
        honour_pauses=honour_pauses, pacing=pacing, clock=clock)
    return agent, run, clock


async def test_a_20_word_turn_at_150_wpm_is_due_8_s_after_the_agents_reply() -> None:
    turns = [Turn(index=0, kind="opening", text=_words(5)),
             Turn(index=1, text=_words(20))]
    agent, run, _ = await _run(turns, wpm=150)
    reply_end = agent.replies[0].last_byte_ns
    assert agent.sent[1] == reply_end + 8 * S
    # The turn's clock starts there: its scheduled time is the end of the speech, and its
    # first-token latency from schedule is the agent's 0.3 s.
    second = run.exchanges[1]
    assert second.scheduled_s == pytest.approx((reply_end + 8 * S - T0) / S)
    assert second.ttft_from_schedule_ms == pytest.approx(300.0)


async def test_the_opening_is_due_when_said_counted_from_the_calls_arrival() -> None:
    turns = [Turn(index=0, kind="opening", text=_words(10))]  # 10 words at 120 wpm: 5 s
    arrival = T0 + 2 * S
    agent, run, _ = await _run(turns, wpm=120, scheduled_ns=arrival)
    assert agent.sent[0] == arrival + 5 * S
    assert run.exchanges[0].scheduled_s == pytest.approx(7.0)


async def test_scripted_pauses_add_to_the_speech_once() -> None:
    # A hesitation before the turn is in pause_before_s (its event has no at_word) and
    # must not count twice; a silence placed inside the turn (at_word) adds its own time.
    t1 = Turn(index=1, text=_words(15), pause_before_s=1.5,
              events=[{"type": "hesitation", "duration_s": 1.5},
                      {"type": "silence", "duration_s": 0.75, "at_word": 4}])
    agent, _, _ = await _run([Turn(index=0, kind="opening", text="hi"), t1], wpm=180)
    assert agent.sent[1] == agent.replies[0].last_byte_ns + int((5.0 + 1.5 + 0.75) * S)


async def test_no_pauses_keeps_the_speech_time_only() -> None:
    t1 = Turn(index=1, text=_words(15), pause_before_s=3.0)
    agent, _, _ = await _run([Turn(index=0, kind="opening", text="hi"), t1], wpm=180,
                             honour_pauses=False)
    assert agent.sent[1] == agent.replies[0].last_byte_ns + 5 * S


async def test_pacing_none_sends_back_to_back_with_only_the_pauses() -> None:
    turns = [Turn(index=0, kind="opening", text=_words(30)),
             Turn(index=1, text=_words(20)),
             Turn(index=2, text=_words(20), pause_before_s=2.0)]
    agent, run, clock = await _run(turns, pacing="none")
    assert agent.sent[0] == T0
    assert agent.sent[1] == agent.replies[0].last_byte_ns
    assert agent.sent[2] == agent.replies[1].last_byte_ns + 2 * S
    assert clock.sleeps == [agent.sent[2]]
    # Unpaced turns of a closed-loop call have no schedule to measure from.
    assert [e.scheduled_s for e in run.exchanges] == [None, None, None]


def test_speaking_rate_comes_from_the_persona_voice() -> None:
    assert speaking_rate_wpm({"rate_wpm": 172, "gender": "male"}) == 172
    assert speaking_rate_wpm({"rate": 160}) == 160  # a TTS voice's rate, also in wpm
    assert speaking_rate_wpm({}) == DEFAULT_WPM
    assert speaking_rate_wpm({"rate_wpm": 0}) == DEFAULT_WPM
    assert speaking_rate_wpm({"rate_wpm": "fast"}) == DEFAULT_WPM


def test_speech_counts_what_the_caller_said_not_what_asr_heard() -> None:
    # ASR noise may drop words from ``text``; the caller still spoke ``clean_text``.
    t = Turn(index=1, text="my number is", clean_text="um my number is five five five one")
    assert speech_s(t, 120) == pytest.approx(4.0)
    assert pauses_s(Turn(index=0, text="x", pause_before_s=0.4)) == pytest.approx(0.4)


def test_an_unknown_pacing_mode_is_a_one_line_input_error() -> None:
    with pytest.raises(InputError, match="--pacing: unknown mode 'fast'"):
        RunConfig(target="http://x", pacing="fast")


def test_callsim_run_paces_callers_by_default_and_states_the_turn_rate(tmp_path: Path) -> None:
    """``callsim run`` as users run it: each caller turn after the opening is scheduled at
    the end of the agent's previous reply plus its words at the persona's rate, is never
    sent before that, and the summary states turns/s beside the calls in flight."""
    packs = load_packs()
    calls = [c.model_copy(update={"persona": c.persona.model_copy(
                 update={"voice": {**c.persona.voice, "rate_wpm": 1200}})})
             for c in generate_calls(packs, "all", 4, 3)]
    write_calls(calls, tmp_path / "calls.jsonl")
    with agent_process("--ttft-ms", "20", "--token-ms", "1") as url:
        p = subprocess.run(
            [sys.executable, "-m", "simulator", "run", "--target", url, "--calls",
             str(tmp_path / "calls.jsonl"), "--concurrency", "4", "--runs-dir",
             str(tmp_path / "runs"), "--json"],
            capture_output=True, text=True, timeout=120 * TIME_FACTOR)
    assert p.returncode == 0, p.stderr
    summary = json.loads(p.stdout)
    load = summary["load"]
    assert load["pacing"] == "speech" and load["turns_per_s"] > 0
    assert 0 < load["concurrent_calls_mean"] <= 4
    store = RunStore(Path(summary["run_dir"]))
    turns = list(store.turns())
    said = {c["idx"]: c["transcript"]["caller"] for c in store.calls()}
    store.close()
    checked = 0
    for prev, cur in zip(turns, turns[1:], strict=False):
        if cur["call_idx"] != prev["call_idx"] or cur["phase"] != "caller":
            continue
        k = sum(1 for t in turns if t["call_idx"] == cur["call_idx"]
                and t["phase"] == "caller" and t["seq"] < cur["seq"])
        words = len((said[cur["call_idx"]][k]["clean_text"]
                     or said[cur["call_idx"]][k]["text"]).split())
        reply_end = prev["sent_s"] + prev["last_byte_ms"] / 1e3
        assert cur["scheduled_s"] == pytest.approx(reply_end + words * 60 / 1200, abs=1e-6)
        assert cur["sent_s"] >= cur["scheduled_s"]
        checked += 1
    assert checked >= 4


def test_a_run_stored_before_pacing_existed_resumes_unpaced() -> None:
    from simulator.cli import _config_from_meta

    meta = RunConfig(target="http://x").to_meta()
    assert meta["pacing"] == "speech"  # new runs record their pacing
    del meta["pacing"]
    assert _config_from_meta(meta).pacing == "none"


def test_duration_stops_a_closed_loop_from_starting_calls(tmp_path: Path) -> None:
    """``--duration`` with ``--concurrency``: calls in flight finish, no call starts after
    the duration (the run used to go on until ``--count`` was used up)."""
    with agent_process("--ttft-ms", "300") as url:
        p = subprocess.run(
            [sys.executable, "-m", "simulator", "run", "--target", url, "--count", "400",
             "--concurrency", "2", "--duration", "2s", "--pacing", "none", "--runs-dir",
             str(tmp_path / "runs"), "--json"],
            capture_output=True, text=True, timeout=120 * TIME_FACTOR)
    assert p.returncode == 0, p.stderr
    summary = json.loads(p.stdout)
    store = RunStore(Path(summary["run_dir"]))
    starts = [c["started_s"] for c in store.calls()]
    store.close()
    # each call takes several 300 ms turns, so 2 s admit a handful, not 400
    assert 2 <= len(starts) < 40
    assert max(starts) < 2.0 + 0.5 * TIME_FACTOR
