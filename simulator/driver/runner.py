"""The load driver: arrivals -> concurrent calls -> grading -> run store, with live progress.

``run_load`` replays call scripts against one agent endpoint. Open-loop runs start call i
at its scheduled offset on an absolute clock (a late start shows up as dispatch delay, never
hidden); closed-loop runs keep N calls in flight. Each finished call is graded and committed
to the run store before the next is counted, so an interrupted run keeps every finished call.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import signal
import sys
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from asyncio_throttle import Throttler

from simulator import __version__
from simulator.agent_profile import AgentProfile
from simulator.backend import ToolBackend
from simulator.callscript import CallScript, write_calls
from simulator.driver.arrivals import ArrivalSpec, build_schedule, warmup_count
from simulator.driver.looplag import LoopLagMonitor
from simulator.driver.session import run_text_call, tool_result_text
from simulator.histogram import LatencyHistogram
from simulator.metrics.grading import grade_call
from simulator.personas import Caller, Pack
from simulator.results import CallOutcome
from simulator.seeding import rng
from simulator.store import RunStore
from simulator.transports.base import Deadlines, TextTransport

_now = time.perf_counter_ns


@dataclass(frozen=True)
class RunConfig:
    """Everything that defines a run (stored in the run's meta for resume and reports)."""

    target: str
    transport: str = "openai-chat"
    model: str = "callsim-reference"
    api_key_env: str | None = None
    arrival: ArrivalSpec = field(default_factory=lambda: ArrivalSpec(kind="closed", concurrency=10))
    count: int | None = None
    duration_s: float | None = None
    warmup_s: float = 0.0
    seed: int = 0
    profile: str = "clean"
    max_starts_per_s: float | None = None
    max_requests_per_s: float | None = None
    deadlines: Deadlines = field(default_factory=Deadlines)
    honour_pauses: bool = True
    grace_s: float = 30.0
    rubric_sha256: str | None = None

    def to_meta(self) -> dict[str, Any]:
        d = asdict(self)
        d["arrival"]["stages"] = [asdict(s) for s in self.arrival.stages]
        return d


@dataclass
class Progress:
    """Live counters for the progress display (read by the printer task)."""

    total: int
    done: int = 0
    failed: int = 0
    active: int = 0
    errors: Counter[str] = field(default_factory=Counter)
    ttft: LatencyHistogram = field(default_factory=LatencyHistogram)
    started: float = field(default_factory=time.monotonic)
    lag: LoopLagMonitor | None = None

    def line(self) -> str:
        el = max(time.monotonic() - self.started, 1e-9)
        p50 = self.ttft.percentile_ms(50) if self.ttft.count else float("nan")
        p95 = self.ttft.percentile_ms(95) if self.ttft.count else float("nan")
        errs = ", ".join(f"{k}={v}" for k, v in self.errors.most_common(4)) or "none"
        lag = self.lag.current_ms if self.lag is not None else 0.0
        return (
            f"calls {self.done}/{self.total} done, {self.active} active, {self.failed} failed | "
            f"{self.done / el:.1f} calls/s | ttft p50 {p50:.0f} ms p95 {p95:.0f} ms | "
            f"errors: {errs} | loop lag {lag:.1f} ms"
        )


class _Stop(Exception):
    pass


async def _progress_printer(progress: Progress, every_s: float, out: Any) -> None:
    if getattr(out, "isatty", lambda: False)():
        from rich.console import Console
        from rich.live import Live

        console = Console(file=out)
        with Live(progress.line(), console=console, refresh_per_second=4, transient=True) as live:
            while True:
                await asyncio.sleep(0.25)
                live.update(progress.line())
    else:
        while True:
            await asyncio.sleep(every_s)
            print(progress.line(), file=out, flush=True)


def make_transport(config: RunConfig, api_key: str | None) -> TextTransport:
    from simulator.transports.base import transports
    from simulator.transports.openai_chat import OpenAIChatTransport  # noqa: F401 (registers)

    cls = transports.get(config.transport)
    t: TextTransport = cls(config.target, config.model, api_key=api_key,
                           deadlines=config.deadlines)
    return t


async def run_load(
    calls: list[CallScript],
    packs: dict[str, Pack],
    config: RunConfig,
    run_dir: Path,
    *,
    agent: AgentProfile | None = None,
    api_key: str | None = None,
    resume: bool = False,
    progress_out: Any = None,
    progress_every_s: float = 5.0,
    on_call: Callable[[CallOutcome], None] | None = None,
) -> dict[str, Any]:
    """Replay ``calls`` per ``config`` and store everything under ``run_dir``.

    Returns the run summary (also written to ``summary.json``). With ``resume``, only the
    call indices not yet in the store are run. Ctrl-C / SIGTERM stop arrivals, let active
    calls finish for ``config.grace_s``, then write the summary.
    """
    agent = agent or AgentProfile(model=config.model)
    store = RunStore(run_dir, create=True)
    n_calls = config.count if config.count is not None else len(calls)
    if config.arrival.closed_loop:
        offsets: np.ndarray | None = None
        total = n_calls
    else:
        offsets = build_schedule(config.arrival, n_calls, config.duration_s, config.seed)
        total = len(offsets)
    n_warm = warmup_count(offsets, config.warmup_s) if offsets is not None else 0
    done_before = store.completed_indices() if resume else set()
    if not resume:
        write_calls(calls, run_dir / "calls.jsonl")
        store.set_meta(
            config=config.to_meta(), seed=config.seed, profile=config.profile,
            target=config.target, transport=config.transport, model=config.model,
            versions={"callsim": __version__, "python": sys.version.split()[0]},
            rubric_sha256=config.rubric_sha256, total_calls=total, status="running",
            started_at=time.time(), agent_profile=agent.model_dump(),
            scenario_set=_scenario_set(calls),
        )
    else:
        store.set_meta(status="running", resumed_at=time.time())
    todo = [i for i in range(total) if i not in done_before]
    backend = ToolBackend(packs)
    backend.load(calls)
    transport = make_transport(config, api_key)
    progress = Progress(total=total, done=len(done_before))
    hist_ttft = LatencyHistogram()
    hist_sched = LatencyHistogram()
    hist_dispatch = LatencyHistogram()
    write_tools = {p.name: {n for n, b in p.backend.items() if b.op != "lookup"}
                   for p in packs.values()}
    tool_schemas = {p.name: p.tool_schemas() for p in packs.values()}
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    installed: list[signal.Signals] = []
    for sig in (signal.SIGINT, signal.SIGTERM):
        with contextlib.suppress(NotImplementedError, RuntimeError):
            loop.add_signal_handler(sig, stop.set)
            installed.append(sig)
    start_throttle = Throttler(rate_limit=int(config.max_starts_per_s), period=1.0) \
        if config.max_starts_per_s else None
    lag = LoopLagMonitor()
    progress.lag = lag
    interrupted = False

    async def one(i: int, t0: int) -> None:
        script = calls[i % len(calls)]
        pack = packs[script.pack]
        call_id = f"{i:06d}"
        sched_ns = t0 + int(offsets[i] * 1e9) if offsets is not None else None
        # The backend keeps state per script; a script replayed again (runs longer than the
        # script set) gets a fresh copy of its records under its own key.
        key = script.call_id if i < len(calls) else f"{script.call_id}#{i // len(calls)}"
        if key != script.call_id:
            backend.load([script.model_copy(update={"call_id": key})])
        started = _now()
        progress.active += 1
        try:
            fault_rng = rng(config.seed, "faults", i)
            faults = {int(f["tool_call_index"]): f for f in
                      (script.degradation.tool_faults if script.degradation else [])}

            async def execute(name: str, parsed: dict[str, Any] | None, raw: str, k: int
                              ) -> tuple[str, dict[str, Any] | None]:
                if parsed is None:
                    return json.dumps({"error": "invalid_arguments",
                                       "message": "arguments are not a JSON object"}), None
                result = backend.execute(key, name, parsed)
                return await _apply_fault(faults.get(k), result, fault_rng, config.deadlines)

            run = await run_text_call(
                script, Caller(script, pack), pack.system_prompt, tool_schemas[pack.name],
                transport, execute,
                deadlines=config.deadlines, run_t0_ns=t0, scheduled_ns=sched_ns,
                lag_ms=lambda: lag.current_ms, honour_pauses=config.honour_pauses,
                call_id=call_id,
            )
            outcome, detail = grade_call(
                script, run.transcript, call_id=call_id, profile=config.profile,
                ok=run.error is None, error=run.error, ttft_ms=run.ttft_ms,
                prices=agent.prices, write_tools=write_tools[script.pack],
            )
            run.transcript["grading"] = detail
            run.transcript["backend_outcome"] = backend.final_outcome(key)
            run.transcript["error_detail"] = run.error_detail
            warm = i < n_warm
            dispatch = (started - sched_ns) / 1e6 if sched_ns is not None else None
            store.record_call(
                i, outcome, warmup=warm,
                scheduled_s=None if offsets is None else float(offsets[i]),
                started_s=(started - t0) / 1e9, finished_s=(run.finished_ns - t0) / 1e9,
                dispatch_delay_ms=dispatch, turns=run.exchanges,
                events=run.events + [(p.get("type", "perturbation"), p) for p in
                                     (script.degradation.perturbations if script.degradation
                                      else [])],
                transcript=run.transcript,
            )
            progress.done += 1
            if not outcome.ok:
                progress.failed += 1
                progress.errors[outcome.error or "error"] += 1
            if not warm:
                for e in run.exchanges:
                    if e["phase"] == "caller" and e["ttft_ms"] is not None:
                        hist_ttft.record_ms(e["ttft_ms"])
                        progress.ttft.record_ms(e["ttft_ms"])
                        if e["ttft_from_schedule_ms"] is not None:
                            hist_sched.record_ms(e["ttft_from_schedule_ms"])
                if dispatch is not None:
                    hist_dispatch.record_ms(max(dispatch, 0.0))
            if on_call is not None:
                on_call(outcome)
        finally:
            progress.active -= 1

    printer: asyncio.Task[None] | None = None
    tasks: set[asyncio.Task[None]] = set()
    try:
        if progress_out is not None:
            printer = asyncio.create_task(_progress_printer(progress, progress_every_s,
                                                            progress_out))
        lag.start()
        await transport.warmup(min(_concurrency_hint(config), 256))
        t0 = _now()
        if offsets is None:
            queue = list(reversed(todo))

            async def worker() -> None:
                while queue and not stop.is_set():
                    i = queue.pop()
                    if start_throttle is not None:
                        async with start_throttle:
                            pass
                    await one(i, t0)

            n = max(1, config.arrival.concurrency or 1)
            workers = [asyncio.create_task(worker()) for _ in range(n)]
            tasks.update(workers)
            waiter = asyncio.create_task(stop.wait())
            await asyncio.wait([*workers, waiter], return_when=asyncio.FIRST_COMPLETED)
            if stop.is_set():
                interrupted = True
                await asyncio.wait(workers, timeout=config.grace_s)
            else:
                await asyncio.gather(*workers)
            waiter.cancel()
        else:
            base = float(offsets[todo[0]]) if (resume and todo) else 0.0
            for i in todo:
                due = t0 + int((float(offsets[i]) - base) * 1e9)
                delay = (due - _now()) / 1e9
                if delay > 0:
                    with contextlib.suppress(TimeoutError):
                        async with asyncio.timeout(delay):
                            await stop.wait()
                if stop.is_set():
                    interrupted = True
                    break
                if start_throttle is not None:
                    async with start_throttle:
                        pass
                task = asyncio.create_task(one(i, t0 - int(base * 1e9)))
                tasks.add(task)
                task.add_done_callback(tasks.discard)
            if tasks:
                await asyncio.wait(set(tasks), timeout=config.grace_s if interrupted else None)
    finally:
        for t in list(tasks):
            t.cancel()
        if tasks:
            await asyncio.gather(*tasks, return_exceptions=True)
        if printer is not None:
            printer.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await printer
        await lag.stop()
        await transport.aclose()
        for sig in installed:
            loop.remove_signal_handler(sig)
    store.put_histogram("ttft_ms", hist_ttft.encode())
    store.put_histogram("ttft_from_schedule_ms", hist_sched.encode())
    store.put_histogram("dispatch_delay_ms", hist_dispatch.encode())
    store.put_histogram("loop_lag_ms", lag.histogram.encode())
    complete = len(store.completed_indices()) == total
    store.set_meta(status="complete" if complete else "partial", finished_at=time.time(),
                   interrupted=interrupted, loop_lag_p99_ms=lag.p99_ms(),
                   loop_lag_verdict=lag.verdict())
    from simulator.metrics.summary import summarize

    summary = summarize(store)
    summary["run_dir"] = str(run_dir)
    (run_dir / "summary.json").write_text(json.dumps(summary, indent=2, sort_keys=True) + "\n")
    from simulator.history import index_run

    index_run(run_dir.parent, run_dir, summary, store.meta())
    store.close()
    return summary


def _concurrency_hint(config: RunConfig) -> int:
    if config.arrival.concurrency:
        return config.arrival.concurrency
    return int(min(256, max(4, (config.arrival.rate or 10) * 2)))


def _scenario_set(calls: list[CallScript]) -> str:
    from simulator.gate.decide import scenario_set_id

    return scenario_set_id(c.call_id for c in calls)


async def _apply_fault(
    fault: dict[str, Any] | None, result: dict[str, Any], r: Any, deadlines: Deadlines
) -> tuple[str, dict[str, Any] | None]:
    """Apply a scheduled tool fault (see simulator.degradation.faults) to a backend result."""
    if fault is None:
        return tool_result_text(result), None
    from simulator.degradation.faults import apply_fault

    effect = apply_fault(fault, result, r)
    delay = min(effect.delay_s, deadlines.tool_s)
    if delay > 0:
        await asyncio.sleep(delay)
    if effect.delay_s > deadlines.tool_s:
        body = json.dumps({"error": "timeout",
                           "message": f"tool did not answer within {deadlines.tool_s:g} s"})
        return body, {"kind": fault.get("kind"), "effect": "timeout", "delay_s": delay}
    return effect.body, {"kind": fault.get("kind"), "status": effect.status, "delay_s": delay}


