"""Frozen fixtures: the conversations of a run whose caller was a model, turned into call
scripts that replay with no model.

Each frozen turn is the line the caller sent (as sent, and its clean text), with the
sha256 of the agent reply it answered in an event ``{"type": "frozen_after"}``. On replay
:class:`FrozenCaller` sends the frozen lines while the agent says what it said then; from
the first reply that differs it hands over to the rule-based :class:`Caller` (turns that
carry a slot value are tagged with the slot, so it can answer) and records where.
"""

from __future__ import annotations

import hashlib
from pathlib import Path
from typing import Any

from simulator.callscript import CallScript, Turn, load_calls
from simulator.errors import InputError
from simulator.personas.caller import _GOODBYE, Caller
from simulator.personas.pack import Pack
from simulator.slots import normalise_arg, parse

FROZEN = "frozen_after"


def agent_sha(text: str) -> str:
    return hashlib.sha256(text.encode("utf-8")).hexdigest()[:16]


def _slot_of(text: str, script: CallScript, pack: Pack) -> str | None:
    for name, value in script.slots.items():
        sd = pack.slots.get(name)
        if sd is None:
            continue
        got = parse(sd.type, text, {**sd.options(), "strict": True})
        if got is not None and normalise_arg(got) == normalise_arg(value):
            return name
    return None


def freeze_call(script: CallScript, transcript: dict[str, Any], pack: Pack) -> CallScript:
    """``script`` with its turns replaced by what the model-played caller sent."""
    sent = transcript.get("caller") or []
    agent = [a for a in transcript.get("agent") or []]
    turns: list[Turn] = []
    for i, c in enumerate(sent):
        clean = c.get("clean_text") or c["text"]
        kind = c.get("kind") or "answer"
        if kind not in ("opening", "answer", "closing", "partial", "filler"):
            kind = "answer"
        events = []
        if i > 0:
            before = agent[i - 1] if i - 1 < len(agent) else ""
            events.append({"type": FROZEN, "agent_sha": agent_sha(before)})
        last = i == len(sent) - 1
        if last and _GOODBYE.search(clean):
            kind = "closing"
        turns.append(Turn(index=i, kind=kind, text=c["text"],
                          clean_text=c.get("clean_text"),
                          slot=None if kind == "opening" else _slot_of(clean, script, pack),
                          events=events))
    if not any(t.kind == "closing" for t in turns):
        turns.append(Turn(index=len(turns), kind="closing", text="No, that's all. Bye."))
    return script.model_copy(update={"turns": turns})


def freeze_run(run_dir: Path, packs: dict[str, Pack]) -> list[CallScript]:
    """Frozen scripts for every call of the run at ``run_dir`` that a model played (each
    script once: its first call). Raises :class:`InputError` when there is none."""
    from simulator.storage.store import RunStore

    scripts = {s.call_id: s for s in load_calls(run_dir / "calls.jsonl")}
    store = RunStore(run_dir)
    out: dict[str, CallScript] = {}
    try:
        for c in store.calls():
            tr = c["transcript"]
            sid = c["script_id"]
            if "caller_llm" not in tr or sid in out or sid not in scripts:
                continue
            if tr["caller_llm"].get("invented"):
                continue  # not a conversation worth keeping: the caller made a value up
            script = scripts[sid]
            out[sid] = freeze_call(script, tr, packs[script.pack])
    finally:
        store.close()
    if not out:
        raise InputError(f"{run_dir}: no calls played by an LLM caller (--caller llm) to freeze")
    order = list(scripts)
    return sorted(out.values(), key=lambda s: order.index(s.call_id))


def is_frozen(script: CallScript) -> bool:
    return any(e.get("type") == FROZEN for t in script.turns for e in t.events)


class FrozenCaller:
    """Replays a frozen script; falls back to the rule-based caller at the first agent
    reply that differs from the one the frozen line answered."""

    def __init__(self, script: CallScript, pack: Pack) -> None:
        self.script = script
        self.fallback = Caller(script, pack)
        self._i = 0
        self.diverged_at: int | None = None

    @property
    def done(self) -> bool:
        return self.fallback.done

    def first(self) -> Turn:
        self._i = 1
        return self.fallback.first()

    def respond(self, agent_text: str) -> Turn | None:
        if self.diverged_at is None and self._i < len(self.script.turns):
            turn = self.script.turns[self._i]
            want = next((e.get("agent_sha") for e in turn.events if e.get("type") == FROZEN),
                        None)
            if want is None:  # a closing added at freezing: nothing to compare with
                return self.fallback.respond(agent_text)
            if want == agent_sha(agent_text):
                self._i += 1
                self.fallback.note_sent(turn)
                return turn
            self.diverged_at = self._i
        return self.fallback.respond(agent_text)

    def frozen_record(self) -> dict[str, Any]:
        """What the call's transcript keeps: the caller turn at which the agent first
        answered differently (None: the frozen conversation replayed whole)."""
        return {"diverged": self.diverged_at is not None, "diverged_at": self.diverged_at}

