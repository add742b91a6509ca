"""An LLM plays the caller: the persona of a call script, written turn by turn by any
OpenAI-compatible chat endpoint, then degraded like a scripted turn.

The model gets the script's goal, facts (slot values), style and what it must never say;
it sees the agent's replies as the other side of the conversation. Each line it writes goes
through the script's noise profile (self-corrections, disfluencies, partial input, ASR
noise; audio is rendered downstream for voice transports). Grounding is checked, not
trusted: every value the parsers of :mod:`simulator.slots` find in a line must be one of
the script's facts, else the call is flagged (see :func:`invented_values`).
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

import aiohttp

from simulator.callscript import CallScript, Turn
from simulator.errors import TransportError
from simulator.personas.caller import _GOODBYE
from simulator.personas.pack import Pack
from simulator.seeding import derive_seed
from simulator.slots import normalise_arg, parse, speak

# Types whose values a parser finds reliably in free text (names, addresses and choices
# are left out: "This is Maria" is not an invented name).
CHECKED_TYPES = ("date_of_birth", "date", "time", "phone", "record_id", "amount")
MAX_TURNS = 20


@dataclass(frozen=True)
class CallerLLMConfig:
    """Where the caller's model lives: ``endpoint`` (base URL, ``.../v1``), ``model`` and
    an optional API key; ``prices`` per 1M tokens (input, output) for its cost."""

    endpoint: str
    model: str
    api_key: str | None = None
    price_in_per_m: float = 0.0
    price_out_per_m: float = 0.0
    timeout_s: float = 60.0


@dataclass(frozen=True)
class CallerModel:
    """A run's caller model: its ``config``, the aiohttp ``session`` its requests share and
    the run ``seed`` (keys each request's seed and the degradation of each line)."""

    config: CallerLLMConfig
    session: aiohttp.ClientSession
    seed: int


def persona_prompt(script: CallScript, pack: Pack) -> str:
    """The system prompt that makes a model play ``script``'s caller."""
    p = script.persona
    facts = []
    for name, value in script.slots.items():
        sd = pack.slots.get(name)
        label = (sd.label if sd and sd.label else name.replace("_", " "))
        facts.append(f"- {label}: {speak(sd.type, value) if sd else value}")
    style = p.style
    talk = "short, plain answers" if style.verbosity < 0.5 else "a chatty, friendly manner"
    patience = "patient" if style.patience >= 0.5 else "a little impatient"
    opening = script.turns[0].clean_text or script.turns[0].text
    return (
        f"You are {p.name}, phoning {pack.description.strip()} You are the CALLER, not the "
        f"agent. Your goal: {p.goal or script.intent.replace('_', ' ')}. You might open "
        f"with something like: \"{opening}\"\n"
        "Facts you know (say them exactly when asked; these are the only details you have):\n"
        + "\n".join(facts) + "\n"
        f"Speak in {talk}; you are {patience}. One or two sentences per turn, spoken words "
        "only, no stage directions. Never make up a name, date, time, phone number, ID or "
        "amount that is not in your facts: if asked for something you do not have, say you "
        "don't have it. When your goal is done and you are asked if there is anything else, "
        "say no and goodbye."
    )


def invented_values(text: str, script: CallScript, pack: Pack) -> list[dict[str, str]]:
    """The values in a caller line that are none of the script's facts: for each checked
    slot type of the pack, a strict parse of ``text`` must give a value the script holds
    (any slot, or the persona's own phone / date of birth)."""
    allowed = {normalise_arg(v) for v in script.slots.values()}
    for v in (script.persona.phone, script.persona.date_of_birth):
        if v:
            allowed.add(normalise_arg(v))
    out: list[dict[str, str]] = []
    seen: set[str] = set()
    types = {sd.type: sd for sd in pack.slots.values() if sd.type in CHECKED_TYPES}
    for typ, sd in sorted(types.items()):
        got = parse(typ, text, {**sd.options(), "strict": True})
        if got is None:
            continue
        norm = normalise_arg(got)
        if norm not in allowed and norm not in seen:
            seen.add(norm)
            out.append({"type": typ, "value": str(got), "text": text})
    return out


@dataclass
class LLMCallerStats:
    usage: dict[str, int] = field(default_factory=lambda: {"prompt_tokens": 0,
                                                           "completion_tokens": 0})
    requests: int = 0
    invented: list[dict[str, str]] = field(default_factory=list)
    lines: list[dict[str, Any]] = field(default_factory=list)  # what the model wrote


class LLMCaller:
    """A caller policy (``first`` / ``respond``, both awaitable) whose lines the run's
    caller ``model`` writes."""

    def __init__(self, script: CallScript, pack: Pack, model: CallerModel) -> None:
        self.script, self.pack, self.config = script, pack, model.config
        self.session = model.session
        self.seed = model.seed
        self.stats = LLMCallerStats()
        self._messages: list[dict[str, str]] = [
            {"role": "system", "content": persona_prompt(script, pack)},
            {"role": "user", "content": pack.greeting}]
        self._done = False
        self._n = 0
        self._pending: Turn | None = None
        self._profile: Any = None
        deg = script.degradation
        if deg is not None and deg.profile != "none":
            from simulator.degradation.profile import get_profile

            self._profile = get_profile(deg.profile)

    @property
    def done(self) -> bool:
        return self._done

    async def first(self) -> Turn:
        line = await self._write()
        turn = self._turn(line, "opening")
        assert turn is not None
        return turn

    async def respond(self, agent_text: str) -> Turn | None:
        if self._done:
            return None
        if self._pending is not None:  # the rest of a line cut off by partial input
            turn, self._pending = self._pending, None
            return turn
        if _GOODBYE.search(agent_text) or self._n >= MAX_TURNS:
            self._done = True
            return None
        self._messages.append({"role": "user", "content": agent_text})
        line = await self._write()
        return self._turn(line, "answer")

    async def _write(self) -> str:
        cfg = self.config
        body = {"model": cfg.model, "messages": self._messages, "temperature": 0,
                "max_tokens": 120, "seed": derive_seed(self.seed, self.script.call_id) % 2**31}
        headers = {"Authorization": f"Bearer {cfg.api_key}"} if cfg.api_key else {}
        url = cfg.endpoint.rstrip("/") + "/chat/completions"
        try:
            async with self.session.post(url, json=body, headers=headers,
                                         timeout=aiohttp.ClientTimeout(total=cfg.timeout_s)
                                         ) as resp:
                raw = await resp.text()
                if resp.status != 200:
                    raise TransportError("caller_llm",
                                         f"caller LLM at {url}: HTTP {resp.status}: {raw[:200]}")
        except (aiohttp.ClientError, TimeoutError) as exc:
            raise TransportError("caller_llm", f"caller LLM at {url}: {exc}") from None
        try:
            data = json.loads(raw)
            text = str(data["choices"][0]["message"]["content"] or "").strip()
        except (json.JSONDecodeError, KeyError, IndexError, TypeError):
            raise TransportError("caller_llm",
                                 f"caller LLM at {url}: not a chat completion") from None
        usage = data.get("usage") or {}
        self.stats.requests += 1
        for k in ("prompt_tokens", "completion_tokens"):
            self.stats.usage[k] += int(usage.get(k) or 0)
        self._messages.append({"role": "assistant", "content": text})
        return text

    def _turn(self, line: str, kind: str) -> Turn | None:
        """``line`` checked for invented values and degraded by the script's profile."""
        self._n += 1
        index = len(self.stats.lines)
        bad = invented_values(line, self.script, self.pack)
        self.stats.invented += [{**b, "turn": str(index)} for b in bad]
        self.stats.lines.append({"index": index, "text": line, "invented": bad})
        if _GOODBYE.search(line) and self._n > 1:
            self._done = True
            kind = "closing"
        turn = Turn(index=index, kind=kind, text=line)
        if self._profile is None or not line.strip():
            return turn
        return self._degrade(turn)

    def _degrade(self, turn: Turn) -> Turn:
        """The line through the profile, as if it were a scripted turn (a dummy closing
        after it, so barge-ins and backchannels may fall on it)."""
        from simulator.degradation.engine import degrade_call

        deg = self.script.degradation
        assert deg is not None
        mini = self.script.model_copy(update={
            "call_id": f"{self.script.call_id}/llm{turn.index}",
            "turns": [turn.model_copy(update={"index": 0}),
                      Turn(index=1, kind="closing", text="Bye.")],
            "degradation": None})
        out = degrade_call(mini, self._profile, deg.seed).turns[:-1]
        first = out[0].model_copy(update={"index": turn.index, "kind": turn.kind})
        if len(out) > 1:  # partial input: the rest comes next, whatever the agent says
            self._pending = out[1].model_copy(update={"index": turn.index})
        return first

    def cost_usd(self) -> float:
        u = self.stats.usage
        return (u["prompt_tokens"] * self.config.price_in_per_m
                + u["completion_tokens"] * self.config.price_out_per_m) / 1e6

    def record(self) -> dict[str, Any]:
        """What the call's transcript keeps about the caller model."""
        return {"model": self.config.model, "usage": dict(self.stats.usage),
                "requests": self.stats.requests, "cost_usd": self.cost_usd(),
                "invented": list(self.stats.invented), "lines": list(self.stats.lines)}
