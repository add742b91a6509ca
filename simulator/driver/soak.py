"""Soak mode: keep N long calls up for a duration and count stalls and disconnects per
call-hour, while sampling memory and file descriptors (they must stay flat).

A long call chains call scripts in one conversation — when one caller is done, the next
one's first turn follows, as a caller who has another question — with a gap between turns,
so a single connection and context live for minutes. A call that breaks is counted and
redialled until the soak ends.
"""

from __future__ import annotations

import asyncio
import json
import os
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from simulator.callscript import CallScript, Turn
from simulator.driver.gctune import load_gc
from simulator.driver.replay import CallerFactory, replay_call
from simulator.driver.runner import make_transport
from simulator.personas import Pack
from simulator.seeding import rng
from simulator.tools.answers import ToolAnswers, scheduled_faults
from simulator.tools.backend import ToolBackend
from simulator.transports.base import Deadlines
from simulator.transports.registry import DEFAULT_TRANSPORT, transport_spec

DISCONNECTS = {"reset", "connect_refused", "connect_error", "connection_error"}


class LongCaller:
    """Chains callers of several scripts into one conversation, ``gap_s`` between turns.
    Each script's caller is the one the replay path chooses (see :meth:`around`)."""

    def __init__(self, scripts: list[CallScript], packs: dict[str, Pack], start: int,
                 gap_s: float, until: float) -> None:
        self.scripts, self.packs, self.gap, self.until = scripts, packs, gap_s, until
        self.i = start
        self.current = scripts[start % len(scripts)]
        self.caller: Any = None
        self._choose: CallerFactory | None = None

    def around(self, choose: CallerFactory) -> LongCaller:
        """This long caller, building each script's caller with ``choose`` (given by
        :func:`~simulator.driver.replay.replay_call`)."""
        self._choose = choose
        self.caller = choose(self.current, self.packs[self.current.pack])
        return self

    def _gap(self, t: Turn | None) -> Turn | None:
        if t is None or time.monotonic() >= self.until:
            return None
        return t.model_copy(update={"pause_before_s": max(t.pause_before_s, self.gap)})

    def current_id(self) -> str:
        """The call id of the script being spoken now (its records answer tool calls)."""
        return self.current.call_id

    def first(self) -> Turn | None:
        return self.caller.first()

    def respond(self, agent_text: str) -> Turn | None:
        nxt = self.caller.respond(agent_text)
        if nxt is None and time.monotonic() < self.until:
            self.i += 1
            self.current = self.scripts[self.i % len(self.scripts)]
            assert self._choose is not None
            self.caller = self._choose(self.current, self.packs[self.current.pack])
            nxt = self.caller.first()
        return self._gap(nxt)


def _proc_sample(pid: int | None = None) -> dict[str, int]:
    base = f"/proc/{pid or 'self'}"
    rss = 0
    try:
        with open(f"{base}/status") as fh:
            for line in fh:
                if line.startswith("VmRSS:"):
                    rss = int(line.split()[1])
        fds = len(os.listdir(f"{base}/fd"))
    except OSError:
        return {"rss_kb": 0, "fds": 0}
    return {"rss_kb": rss, "fds": fds}


@dataclass
class SoakResult:
    lines: int
    duration_s: float
    call_hours: float = 0.0
    calls: int = 0
    turns: int = 0
    stalls: int = 0
    disconnects: int = 0
    errors: Counter[str] = field(default_factory=Counter)
    longest_call_s: float = 0.0
    samples: list[dict[str, Any]] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        def per_hour(n: int) -> float | None:
            return n / self.call_hours if self.call_hours else None

        first, last = (self.samples[0], self.samples[-1]) if self.samples else ({}, {})
        return {
            "lines": self.lines, "duration_s": round(self.duration_s, 1),
            "call_hours": round(self.call_hours, 3), "calls": self.calls, "turns": self.turns,
            "stalls": self.stalls, "stalls_per_call_hour": per_hour(self.stalls),
            "disconnects": self.disconnects,
            "disconnects_per_call_hour": per_hour(self.disconnects),
            "errors": dict(self.errors), "longest_call_s": round(self.longest_call_s, 1),
            "memory_kb": {"start": first.get("rss_kb"), "end": last.get("rss_kb"),
                          "max": max((s["rss_kb"] for s in self.samples), default=None)},
            "fds": {"start": first.get("fds"), "end": last.get("fds"),
                    "max": max((s["fds"] for s in self.samples), default=None)},
            "samples": self.samples,
        }


async def soak(
    calls: list[CallScript], packs: dict[str, Pack], *, target: str, lines: int,
    duration_s: float, gap_s: float = 5.0, transport: str = DEFAULT_TRANSPORT,
    model: str = "callsim-reference", api_key: str | None = None,
    deadlines: Deadlines | None = None, sample_every_s: float = 10.0,
    watch_pid: int | None = None, progress: Any = None,
) -> SoakResult:
    """Keep ``lines`` long calls up against ``target`` for ``duration_s`` seconds."""
    from simulator.driver.runner import RunConfig

    dl = deadlines or Deadlines(call_s=duration_s + 120)
    cfg = RunConfig(target=target, transport=transport, model=model, deadlines=dl)
    tr = make_transport(cfg, api_key)
    spec = transport_spec(transport)
    backend = ToolBackend(packs)
    backend.load(calls)
    res = SoakResult(lines=lines, duration_s=duration_s)
    t_start = time.monotonic()
    until = t_start + duration_s
    schemas = {p.name: p.tool_schemas() for p in packs.values()}

    async def line(n: int) -> None:
        k = n
        while time.monotonic() < until:
            lc = LongCaller(calls, packs, k, gap_s, until)
            first = lc.current
            tools = ToolAnswers(backend, lc.current_id, dl,
                                rng(0, "faults", k), scheduled_faults(first))
            t0 = time.monotonic()
            run = await replay_call(first, packs[first.pack], tr, spec, tools, caller=lc.around,
                                    deadlines=dl, run_t0_ns=0, call_id=f"{k:06d}",
                                    tool_schemas=schemas[first.pack])
            took = time.monotonic() - t0
            res.call_hours += took / 3600
            res.longest_call_s = max(res.longest_call_s, took)
            res.calls += 1
            res.turns += sum(1 for e in run.exchanges if e.phase == "caller")
            res.stalls += sum(e.stalls for e in run.exchanges)
            if run.error:
                res.errors[run.error] += 1
                if run.error in DISCONNECTS:
                    res.disconnects += 1
                await asyncio.sleep(min(1.0, max(0.0, until - time.monotonic())))
            k += lines

    async def sampler() -> None:
        while True:
            s = {"t_s": round(time.monotonic() - t_start, 1), **_proc_sample()}
            if watch_pid:
                s.update({f"agent_{k}": v for k, v in _proc_sample(watch_pid).items()})
            res.samples.append(s)
            if progress is not None:
                print(f"soak t={s['t_s']:.0f}s calls={res.calls} stalls={res.stalls} "
                      f"disconnects={res.disconnects} rss={s['rss_kb']} kB fds={s['fds']}",
                      file=progress, flush=True)
            await asyncio.sleep(sample_every_s)

    samp = asyncio.create_task(sampler())
    try:
        with load_gc():
            await asyncio.gather(*(line(n) for n in range(lines)))
    finally:
        samp.cancel()
        await tr.aclose()
    res.samples.append({"t_s": round(time.monotonic() - t_start, 1), **_proc_sample(),
                        **({f"agent_{k}": v for k, v in _proc_sample(watch_pid).items()}
                           if watch_pid else {})})
    res.duration_s = time.monotonic() - t_start
    return res


def write_result(res: SoakResult, path: Path) -> None:
    path.write_text(json.dumps(res.to_dict(), indent=2, sort_keys=True) + "\n")
