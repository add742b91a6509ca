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
import math
import os
import signal
import socket
import sys
import time
from collections import Counter
from collections.abc import Awaitable, Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np
from asyncio_throttle import Throttler

from simulator import __version__
from simulator.agent_profile import AgentProfile
from simulator.callscript import CallScript, write_calls
from simulator.driver.arms import Arm, split_index
from simulator.driver.arrivals import ArrivalSpec, build_schedule, warmup_count
from simulator.driver.gctune import load_gc
from simulator.driver.grader import GRADING_MODES, Grader
from simulator.driver.looplag import LoopLagMonitor
from simulator.driver.looplag import lag_verdict as looplag_verdict
from simulator.driver.pacing import PACING_MODES
from simulator.driver.replay import replay_call
from simulator.driver.turntaking import TurnTaking
from simulator.errors import InputError
from simulator.histogram import LatencyHistogram
from simulator.personas import Pack
from simulator.results import CallOutcome, CallRecord
from simulator.seeding import rng
from simulator.storage.store import RunStore
from simulator.tools.answers import ToolAnswers, scheduled_faults
from simulator.tools.backend import LOOKUP_MATCH, ToolBackend
from simulator.tools.relay import start_tool_relay
from simulator.transports.base import Deadlines, TextTransport
from simulator.transports.registry import (
    DEFAULT_TRANSPORT,
    TransportOptions,
    build_transport,
    transport_spec,
)

_now = time.perf_counter_ns


#: A closed loop starts its calls this far apart (see ``ShardRunner.run``).
CLOSED_RAMP_S = 0.001


@dataclass(frozen=True)
class RunConfig:
    """Everything that defines a run (stored in the run's meta for resume and reports)."""

    target: str
    transport: str = DEFAULT_TRANSPORT
    model: str = "callsim-reference"
    api_key_env: str | None = None
    arrival: ArrivalSpec = field(default_factory=lambda: ArrivalSpec(kind="closed", concurrency=10))
    count: int | None = None
    duration_s: float | None = None
    warmup_s: float = 0.0
    seed: int = 0
    profile: str = "none"
    max_starts_per_s: float | None = None
    max_requests_per_s: float | None = None
    deadlines: Deadlines = field(default_factory=Deadlines)
    honour_pauses: bool = True
    # Text transports: "speech" sends a caller turn when the persona has said it (its words
    # at its speaking rate, plus pauses); "none" sends turns back to back (stress).
    pacing: str = "speech"
    grace_s: float = 30.0
    rubric_sha256: str | None = None
    # Open loop: cap on calls in flight; queueing behind it shows as dispatch delay.
    max_active: int | None = None
    # Audio transports: send the caller's words beside the audio (reference agent only).
    text_hints: bool = False
    # Transports with a tool relay: the port the agent calls (0: any free port, printed),
    # the address it binds (a bot elsewhere needs one it can reach) and the environment
    # variable holding the bearer token it requires (None: no token). The token itself is
    # never stored in the run's meta.
    tools_port: int = 0
    tools_host: str = "127.0.0.1"
    tools_token_env: str | None = None
    # Audio transports: the caller's voice. "tts": each turn rendered with pyttsx3/espeak-ng
    # in the persona's voice through the profile's line (``audio_params``, the profile's
    # ``audio`` section; None: a clean telephone line); "tones": synthetic voiced tones.
    caller_audio: str = "tones"
    # With "tts": the voices' engine, "piper" (natural speech; the CLI's default when
    # installed) or "espeak" (formant speech, the fallback).
    caller_voice: str = "espeak"
    audio_params: dict[str, Any] | None = None
    # An interleaved A/B run: every planned script is replayed once per arm (see
    # simulator.driver.arms); empty: one arm, ``target`` and ``model``.
    arms: tuple[Arm, ...] = ()
    # Who plays the caller: "rules" (the scripted, rule-based caller) or "llm" (a model at
    # ``caller_endpoint`` writes each line; see simulator.personas.llm_caller).
    caller: str = "rules"
    caller_endpoint: str | None = None
    caller_model: str | None = None
    caller_api_key_env: str | None = None
    caller_price_in_per_m: float = 0.0
    caller_price_out_per_m: float = 0.0
    # What this run is, in a few words (``--label``); tables name the run by it.
    label: str | None = None
    # Audio transports: how the caller takes turns (greeting wait, end-of-turn silence,
    # re-prompts; simulator.driver.turntaking.TurnTaking) and hears the agent ("auto":
    # pocketsphinx when installed, "pocketsphinx", "off"; simulator.audio.listener).
    turn_taking: TurnTaking = field(default_factory=TurnTaking)
    listener: str = "auto"
    listener_workers: int = 1
    # Where finished calls are graded: "auto", "loop" or "process" (simulator.driver.grader).
    grading: str = "auto"
    # How the tool backend's lookups compare arguments with records: "exact", "sounds-like"
    # (a name or street spelt otherwise but sounding the same matches) or "auto" (sounds-like
    # on audio transports, whose callers' spelling the agent cannot hear; exact on text).
    lookup_match: str = "auto"

    def __post_init__(self) -> None:
        if self.lookup_match not in ("auto", *LOOKUP_MATCH):
            raise InputError(f"--lookup-match: unknown mode {self.lookup_match!r} "
                             f"(known: auto, {', '.join(LOOKUP_MATCH)})")
        if self.pacing not in PACING_MODES:
            raise InputError(f"--pacing: unknown mode {self.pacing!r} "
                             f"(known: {', '.join(PACING_MODES)})")
        if self.grading not in GRADING_MODES:
            raise InputError(f"--grading: unknown mode {self.grading!r} "
                             f"(known: {', '.join(GRADING_MODES)})")

    def tools_token(self) -> str | None:
        """The bearer token the tool relay requires (read from ``tools_token_env``)."""
        return os.environ.get(self.tools_token_env) if self.tools_token_env else None

    def lookup_mode(self) -> str:
        """The tool backend's lookup match for this run ("auto" resolved by transport)."""
        if self.lookup_match != "auto":
            return self.lookup_match
        return "sounds-like" if transport_spec(self.transport).audio else "exact"

    def transport_options(self, api_key: str | None) -> TransportOptions:
        """What the run's transport is built from."""
        return TransportOptions(target=self.target, model=self.model, api_key=api_key,
                                deadlines=self.deadlines, text_hints=self.text_hints)

    def to_meta(self) -> dict[str, Any]:
        d = asdict(self)
        d["arrival"]["stages"] = [asdict(s) for s in self.arrival.stages]
        return d

    @property
    def k_arms(self) -> int:
        return max(1, len(self.arms))

    def for_arm(self, arm: Arm | None) -> RunConfig:
        """This config pointed at one arm's endpoint and model."""
        return self if arm is None else replace(self, target=arm.target, model=arm.model)


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

    _pct: tuple[int, float, float] = (-1, math.nan, math.nan)

    def line(self) -> str:
        el = max(time.monotonic() - self.started, 1e-9)
        if self._pct[0] != self.ttft.count:
            # a pass over the histogram holds the loop for milliseconds: only when it changed
            p50, p95 = self.ttft.percentiles_ms((50, 95))
            self._pct = (self.ttft.count, p50, p95)
        p50, p95 = self._pct[1], self._pct[2]
        errs = ", ".join(f"{k}={v}" for k, v in self.errors.most_common(4)) or "none"
        lag = self.lag.current_ms if self.lag is not None else 0.0
        return (
            f"calls {self.done}/{self.total} done, {self.active} active, {self.failed} failed | "
            f"{self.done / el:.1f} calls/s | ttft p50 {p50:.0f} ms p95 {p95:.0f} ms | "
            f"errors: {errs} | loop lag {lag:.1f} ms"
        )


async def _progress_printer(progress: Progress, shard: Any, every_s: float, out: Any) -> None:
    def line() -> str:
        progress.active = shard.active
        return progress.line()

    if getattr(out, "isatty", lambda: False)():
        from rich.console import Console
        from rich.live import Live

        console = Console(file=out)
        with Live(line(), console=console, refresh_per_second=4, transient=True) as live:
            while True:
                await asyncio.sleep(0.25)
                live.update(line())
    else:
        while True:
            await asyncio.sleep(every_s)
            print(line(), file=out, flush=True)


class RunControls:
    """What every way of running shares: Ctrl-C / SIGTERM set ``stop`` (arrivals end, active
    calls get their grace time), and the progress printer lives until ``close``."""

    def __init__(self) -> None:
        self.stop = asyncio.Event()
        self._signals: list[signal.Signals] = []
        self._printer: asyncio.Task[None] | None = None

    def install(self) -> None:
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            with contextlib.suppress(NotImplementedError, RuntimeError):
                loop.add_signal_handler(sig, self.stop.set)
                self._signals.append(sig)

    def start_printer(self, progress: Progress, active: Any, every_s: float, out: Any) -> None:
        """``active.active`` is read for the in-flight count on every refresh."""
        if out is not None:
            self._printer = asyncio.create_task(_progress_printer(progress, active, every_s,
                                                                  out))

    async def close(self) -> None:
        if self._printer is not None:
            self._printer.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._printer
        loop = asyncio.get_running_loop()
        for sig in self._signals:
            loop.remove_signal_handler(sig)


def make_transport(config: RunConfig, api_key: str | None) -> Any:
    """The run's transport (one instance shared by all calls), built by its registered spec."""
    return build_transport(config.transport, config.transport_options(api_key))


def plan(calls: list[CallScript], config: RunConfig) -> tuple[np.ndarray | None, int, int]:
    """The run's arrival offsets (None for closed loop), its total calls and warm-up calls.

    With arms, ``count`` is per arm: the schedule has one slot per (script, arm) call, cut
    to whole scripts, and the warm-up covers whole scripts so every arm loses the same ones.
    """
    k = config.k_arms
    n_calls = (config.count if config.count is not None else len(calls)) * k
    if config.arrival.closed_loop:
        return None, n_calls, 0
    offsets = build_schedule(config.arrival, n_calls, config.duration_s, config.seed)
    offsets = offsets[: len(offsets) - len(offsets) % k]
    n_warm = warmup_count(offsets, config.warmup_s)
    return offsets, len(offsets), min(len(offsets), -(-n_warm // k) * k)


class _ThrottledTransport:
    """Caps requests per second to the target (asyncio-throttle) around any transport."""

    def __init__(self, inner: TextTransport, rate: float) -> None:
        self.inner = inner
        self.throttler = Throttler(rate_limit=max(1, int(rate)), period=1.0)

    async def exchange(self, messages: list[dict[str, Any]], tools: list[dict[str, Any]], *,
                       interrupt_after_s: float | None = None, call_id: str | None = None
                       ) -> Any:
        async with self.throttler:
            pass
        return await self.inner.exchange(messages, tools, interrupt_after_s=interrupt_after_s,
                                         call_id=call_id)

    async def warmup(self, connections: int) -> None:
        await self.inner.warmup(connections)

    async def aclose(self) -> None:
        await self.inner.aclose()


class ShardRunner:
    """Replays a set of call indices against the target and hands each finished, graded
    call to a sink. The single-process run and every distributed worker use this class."""

    def __init__(self, calls: list[CallScript], packs: dict[str, Pack], config: RunConfig,
                 *, agent: AgentProfile | None = None, api_key: str | None = None,
                 offsets: np.ndarray | None = None, n_warm: int = 0) -> None:
        self.calls, self.packs, self.config = calls, packs, config
        self.agent = agent or AgentProfile(model=config.model)
        self.api_key = api_key
        self.offsets, self.n_warm = offsets, n_warm
        self.backend = ToolBackend(packs, match=config.lookup_mode())
        self.backend.load(calls)
        self.write_tools = {p.name: {n for n, b in p.backend.items() if b.op != "lookup"}
                            for p in packs.values()}
        self.tool_schemas = {p.name: p.tool_schemas() for p in packs.values()}
        self.lag = LoopLagMonitor()
        self.active = 0
        self.started_calls = 0  # calls this shard has started (a closed loop cut by --duration)
        self.relay: Any = None   # routes an agent's HTTP tool calls to its call (tool_relay)
        self.relay_url: str | None = None
        self._relay_runner: Any = None
        self.t0_monotonic_ns: int | None = None  # set when run() starts its clock
        self.caller_audio: Any = None  # CallerAudio when the caller speaks with TTS
        self.spec = transport_spec(config.transport)
        self.caller_model: Any = None  # CallerModel when a model plays the caller
        self.listener: Any = None  # simulator.audio.listener.Listener on audio transports
        self.grader = Grader(config.grading, _concurrency_hint(config))

    def arm_of(self, i: int) -> tuple[int, Arm | None]:
        """Call index -> (script slot, arm); the arm is None in a one-arm run."""
        slot, a = split_index(i, self.config.k_arms, self.config.seed)
        return slot, (self.config.arms[a] if self.config.arms else None)

    async def _one(self, i: int, t0: int, transport: Any, started: int
                   ) -> CallRecord:
        config, calls = self.config, self.calls
        slot, arm = self.arm_of(i)
        script = calls[slot % len(calls)]
        pack = self.packs[script.pack]
        call_id = f"{i:06d}"
        sched_ns = t0 + int(self.offsets[i] * 1e9) if self.offsets is not None else None
        # The backend keeps state per script; a script replayed again (runs longer than the
        # script set, or by another arm) gets a fresh copy of its records under its own key.
        key = script.call_id if slot < len(calls) else f"{script.call_id}#{slot // len(calls)}"
        if arm is not None and arm.name != config.arms[0].name:
            key = f"{key}@{arm.name}"
        if key != script.call_id:
            self.backend.load([script.model_copy(update={"call_id": key})])
        # Seeded by script slot, not call: every arm of a script meets the same tool faults.
        tools = ToolAnswers(self.backend, lambda: key, config.deadlines,
                            rng(config.seed, "faults", slot), scheduled_faults(script))
        run = await replay_call(
            script, pack, transport, self.spec, tools, deadlines=config.deadlines,
            run_t0_ns=t0, call_id=call_id, scheduled_ns=sched_ns,
            lag_ms=lambda: self.lag.current_ms, honour_pauses=config.honour_pauses,
            relay=self.relay, tool_schemas=self.tool_schemas[pack.name],
            speech=(self.caller_audio.speech_for(script)
                    if self.caller_audio is not None else None),
            pacing=config.pacing,
            caller_model=self.caller_model,
            turn_taking=config.turn_taking, listener=self.listener,
        )
        # A call's end is work for the loop that other calls' frames and stamps wait on:
        # yield between its parts so none of them holds the loop for long.
        await asyncio.sleep(0)
        outcome, detail = await self.grader.grade(
            script, run.transcript, call_id=call_id, profile=config.profile,
            ok=run.error is None, error=run.error, ttft_ms=run.ttft_ms, timings=run.timings(),
            prices=self.agent.prices, write_tools=self.write_tools[script.pack],
            arm="" if arm is None else arm.name,
        )
        run.transcript["grading"] = detail
        run.transcript["backend_outcome"] = self.backend.final_outcome(key)
        run.transcript["error_detail"] = run.error_detail
        perturbations = script.degradation.perturbations if script.degradation else []
        return CallRecord(
            idx=i, outcome=outcome, warmup=i < self.n_warm,
            scheduled_s=None if self.offsets is None else float(self.offsets[i]),
            started_s=(started - t0) / 1e9, finished_s=(run.finished_ns - t0) / 1e9,
            dispatch_delay_ms=(started - sched_ns) / 1e6 if sched_ns is not None else None,
            turns=run.exchanges,
            events=run.events + [(str(p.get("type", "perturbation")), p) for p in perturbations],
            transcript=run.transcript,
        )

    def _caller_model(self) -> Any:
        """The run's caller model (``--caller llm``): its endpoint, key and prices, and one
        aiohttp session its requests share (closed when the shard ends)."""
        import aiohttp

        from simulator.personas.llm_caller import CallerLLMConfig, CallerModel

        c = self.config
        assert c.caller_endpoint and c.caller_model
        key = os.environ.get(c.caller_api_key_env) if c.caller_api_key_env else None
        cfg = CallerLLMConfig(endpoint=c.caller_endpoint, model=c.caller_model, api_key=key,
                              price_in_per_m=c.caller_price_in_per_m,
                              price_out_per_m=c.caller_price_out_per_m)
        return CallerModel(cfg, aiohttp.ClientSession(), c.seed)

    async def run(self, indices: list[int], t0: int | None,
                  sink: Callable[[CallRecord], Awaitable[None] | None],
                  stop: asyncio.Event, *, resume_base_s: float = 0.0) -> bool:
        """Run ``indices`` (call i starts at ``t0 + offsets[i] - resume_base_s``; ``t0`` None:
        the moment the connections are warm); return True when ``stop`` interrupted the
        arrivals."""
        config = self.config
        by_arm: dict[str, Any] = {}
        for arm in config.arms or (None,):
            t = make_transport(config.for_arm(arm), self.api_key)
            if config.max_requests_per_s:
                t = _ThrottledTransport(t, config.max_requests_per_s / config.k_arms)
            by_arm["" if arm is None else arm.name] = t
        start_throttle = (Throttler(rate_limit=max(1, int(config.max_starts_per_s)), period=1.0)
                          if config.max_starts_per_s else None)
        cap = asyncio.Semaphore(config.max_active) if config.max_active else None
        tasks: set[asyncio.Task[None]] = set()
        interrupted = False
        base_ns = int(resume_base_s * 1e9)
        clock = [t0 or 0]  # the run's time zero (set below once connections are warm)

        async def start_one(i: int) -> None:
            if cap is not None:
                await cap.acquire()
            try:
                self.active += 1
                self.started_calls += 1
                started = _now()
                arm = self.arm_of(i)[1]
                res = await self._one(i, clock[0] - base_ns,
                                      by_arm["" if arm is None else arm.name], started)
                await asyncio.sleep(0)
                done = sink(res)
                if done is not None:
                    await done
            finally:
                self.active -= 1
                if cap is not None:
                    cap.release()

        gc_tuning = load_gc()
        gc_tuning.__enter__()
        try:
            if self.spec.tool_relay:
                await self.start_relay()
            if self.spec.audio and config.caller_audio == "tts":
                await self._prerender(indices)
            if self.spec.audio:
                await self._start_listener()
            if config.caller == "llm":
                self.caller_model = self._caller_model()
            await self.grader.start()
            for t in by_arm.values():
                await t.warmup(min(_concurrency_hint(config), 256))
            # The lag that matters is the run's: opening the warm connections at once is
            # not timing anything.
            self.lag.start()
            if t0 is None:
                clock[0] = t0 = _now()  # the clock starts once connections are warm
            # The run's time zero on the machine's monotonic clock (CLOCK_MONOTONIC, which
            # every process on the machine reads alike), to line the run's timings up with
            # another process's log, such as a bot's own turn timings.
            self.t0_monotonic_ns = t0 + (time.monotonic_ns() - _now())
            if self.offsets is None:
                queue = list(reversed(indices))
                # --duration bounds a closed loop too: no call starts after it
                last_ns = (None if config.duration_s is None
                           else t0 + int(config.duration_s * 1e9))

                n = max(1, config.arrival.concurrency or 1)
                # The loop's calls start CLOSED_RAMP_S apart (in all at most a second), not
                # all in one go: hundreds of first turns sent in one burst held the loop for
                # tens of ms, and their replies, arriving together, did it again every turn.
                step_ns = int(min(CLOSED_RAMP_S, 1.0 / n) * 1e9)

                async def worker(k: int) -> None:
                    due = t0 + k * step_ns
                    if due > _now():
                        await asyncio.sleep((due - _now()) / 1e9)
                    while queue and not stop.is_set() and (last_ns is None or _now() < last_ns):
                        i = queue.pop()
                        if start_throttle is not None:
                            async with start_throttle:
                                pass
                        await start_one(i)

                workers = [asyncio.create_task(worker(k)) for k in range(n)]
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
                for i in indices:
                    due = t0 - base_ns + int(float(self.offsets[i]) * 1e9)
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
                    task = asyncio.create_task(start_one(i))
                    tasks.add(task)
                    task.add_done_callback(tasks.discard)
                if tasks:
                    await asyncio.wait(set(tasks),
                                       timeout=config.grace_s if interrupted else None)
        finally:
            for t in list(tasks):
                t.cancel()
            if tasks:
                await asyncio.gather(*tasks, return_exceptions=True)
            await self.lag.stop()
            for t in by_arm.values():
                await t.aclose()
            if self.caller_model is not None:
                await self.caller_model.session.close()
            if self._relay_runner is not None:
                await self._relay_runner.close()
                self._relay_runner = None
            if self.caller_audio is not None:
                self.caller_audio.close()
            if self.listener is not None:
                self.listener.close()
            await self.grader.close()
            gc_tuning.__exit__(None, None, None)
        return interrupted

    async def _start_listener(self) -> None:
        """Start the listener's recogniser processes (they load the model, and build the
        listener LM on first use) before the clock starts."""
        from simulator.audio.listener import Listener, listener_config, resolve_listener

        mode, notice = resolve_listener(self.config.listener)
        if notice:
            print(f"callsim: note: {notice}", file=sys.stderr, flush=True)
        if mode == "off":
            return
        self.listener = Listener(self.config.listener_workers, listener_config(mode))
        # Not awaited: the model loads while connections warm up, and a run against an agent
        # whose words travel as text (Realtime) never waits for it.
        self.listener.warm()
        print(f"listener: {mode} in {self.config.listener_workers} process(es) "
              "(docs/listener.md)", file=sys.stderr, flush=True)

    async def _prerender(self, indices: list[int]) -> None:
        """Render every caller turn of this shard's scripts before the clock starts, in
        worker processes: TTS and the line never run on the loop that paces the calls."""
        from simulator.audio.caller_audio import CallerAudio
        from simulator.audio.chain import AudioParams

        params = AudioParams.from_dict(self.config.audio_params)
        self.caller_audio = CallerAudio(params, self.config.seed,
                                        engine=self.config.caller_voice)
        scripts = [self.calls[self.arm_of(i)[0] % len(self.calls)] for i in indices]
        t = time.monotonic()
        n = await self.caller_audio.prerender(scripts)
        print(f"caller audio: {n} turns rendered with {self.config.caller_voice} through the "
              f"{self.config.profile!r} line in {time.monotonic() - t:.1f} s "
              f"(cache {self.caller_audio.cache_dir})", file=sys.stderr, flush=True)

    async def start_relay(self, announce: bool = True) -> None:
        """Serve this shard's tool relay (transports whose agents run their own tools) on
        ``tools_host``:``tools_port``; once, before :meth:`run` (which starts it otherwise)
        and closes it. ``announce``: say on stderr where the agent must send its tools (a
        distributed worker's relay is behind the driver's, which says it instead)."""
        if self._relay_runner is not None:
            return
        c = self.config
        token = c.tools_token()
        running = await start_tool_relay(c.tools_port, c.tools_host, token)
        self._relay_runner = running
        self.relay, self.relay_url = running.relay, running.url
        if announce:
            print(relay_notice(self.relay_url, token), file=sys.stderr, flush=True)


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
    store = RunStore(run_dir, create=True, redact=(api_key,) if api_key else ())
    offsets, total, n_warm = plan(calls, config)
    done_before = store.completed_indices() if resume else set()
    begin_run(store, calls, config, agent, run_dir, total, resume)
    todo = [i for i in range(total) if i not in done_before]
    shard = ShardRunner(calls, packs, config, agent=agent, api_key=api_key, offsets=offsets,
                        n_warm=n_warm)
    progress = Progress(total=total, done=len(done_before), lag=shard.lag)
    sink = StoreSink(store, progress, on_call)
    controls = RunControls()
    controls.install()
    controls.start_printer(progress, shard, progress_every_s, progress_out)
    base = float(offsets[todo[0]]) if (resume and todo and offsets is not None) else 0.0
    try:
        interrupted = await shard.run(todo, None, sink, controls.stop, resume_base_s=base)
    finally:
        await controls.close()
    if shard.t0_monotonic_ns is not None:
        store.set_meta(t0_monotonic_ns=shard.t0_monotonic_ns)
    total = run_total(store, config, offsets, interrupted, total,
                      len(done_before) + shard.started_calls)
    return finish_run(store, run_dir, total, sink, interrupted, shard.lag.histogram,
                      shard.lag.p99_ms(), shard.lag.verdict())


def relay_notice(url: str, token: str | None) -> str:
    """The line that tells the user where the agent's tool handlers must post."""
    return (f"tool relay for the agent at {url} (POST /tools/NAME, header X-Callsim-Call-Id"
            f"{', bearer token required' if token else ''})")


def run_total(store: RunStore, config: RunConfig, offsets: Any, interrupted: bool,
              planned: int, started: int) -> int:
    """The calls the run is made of: the ``planned`` ones, except for a closed loop that
    ``--duration`` ended, which is the calls it had ``started`` (stored as the run's total).
    The same in one process and on workers."""
    if offsets is None and config.duration_s is not None and not interrupted:
        store.set_meta(total_calls=started)
        return started
    return planned


class StoreSink:
    """Commits each finished call to the run store and feeds the live progress and the
    run's latency histograms.

    Commits run on one writer thread, in order, so an SQLite fsync or checkpoint never
    stalls the event loop that is timing other calls; a call is counted only once committed.
    """

    def __init__(self, store: RunStore, progress: Progress,
                 on_call: Callable[[CallOutcome], None] | None = None) -> None:
        self.store, self.progress, self.on_call = store, progress, on_call
        self.ttft = LatencyHistogram()
        self.sched = LatencyHistogram()
        self.dispatch = LatencyHistogram()
        self.pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="callsim-store")

    def commit(self, r: CallRecord) -> None:
        self.store.record_call(r)

    async def __call__(self, r: CallRecord) -> None:
        await asyncio.get_running_loop().run_in_executor(self.pool, self.commit, r)
        self.count(r)

    def count(self, r: CallRecord) -> None:
        """Feed progress and histograms with a committed call."""
        p = self.progress
        p.done += 1
        if not r.outcome.ok:
            p.failed += 1
            p.errors[r.outcome.error or "error"] += 1
        if not r.warmup:
            for e in r.turns:
                if e.phase == "caller" and e.ttft_ms is not None:
                    self.ttft.record_ms(e.ttft_ms)
                    p.ttft.record_ms(e.ttft_ms)
                    if e.ttft_from_schedule_ms is not None:
                        self.sched.record_ms(e.ttft_from_schedule_ms)
            if r.dispatch_delay_ms is not None:
                self.dispatch.record_ms(max(r.dispatch_delay_ms, 0.0))
        if self.on_call is not None:
            self.on_call(r.outcome)


def finish_run(store: RunStore, run_dir: Path, total: int, sink: StoreSink, interrupted: bool,
               lag_hist: LatencyHistogram, lag_p99: float, lag_verdict: str) -> dict[str, Any]:
    """Write histograms, status and summary.json; index the run; return the summary."""
    sink.pool.shutdown(wait=True)
    earlier = store.histograms()  # a resumed run adds to what its first part recorded
    for name, hist in (("ttft_ms", sink.ttft), ("ttft_from_schedule_ms", sink.sched),
                       ("dispatch_delay_ms", sink.dispatch), ("loop_lag_ms", lag_hist)):
        if name in earlier:
            hist = LatencyHistogram.merged([hist, LatencyHistogram.decode(earlier[name])])
            if name == "loop_lag_ms" and hist.count:
                lag_p99 = hist.percentile_ms(99.0)
                lag_verdict = looplag_verdict(lag_p99)
        store.put_histogram(name, hist.encode())
    complete = len(store.completed_indices()) == total
    store.set_meta(status="complete" if complete else "partial", finished_at=time.time(),
                   interrupted=interrupted, loop_lag_p99_ms=lag_p99,
                   loop_lag_verdict=lag_verdict)
    from simulator.metrics.summary import summarize

    summary = summarize(store)
    summary["run_dir"] = str(run_dir)
    (run_dir / "summary.json").write_text(json.dumps(summary, indent=2, sort_keys=True) + "\n")
    from simulator.storage.history import index_run

    index_run(run_dir.parent, run_dir, summary, store.meta())
    store.close()
    return summary


def _concurrency_hint(config: RunConfig) -> int:
    if config.arrival.concurrency:
        return config.arrival.concurrency
    return int(min(256, max(4, (config.arrival.rate or 10) * 2)))


def begin_run(store: RunStore, calls: list[CallScript], config: RunConfig,
              agent: AgentProfile, run_dir: Path, total: int, resume: bool,
              **extra: Any) -> None:
    """Mark the run as running. A new run also gets its calls file and its meta (config,
    seed, versions, rubric hash, agent profile, scenario set); ``extra`` meta (e.g. how a
    distributed run is spread) is written either way."""
    if resume:
        store.set_meta(status="running", resumed_at=time.time(), **extra)
        return
    from simulator.gate.decide import scenario_set_id

    write_calls(calls, run_dir / "calls.jsonl")
    store.set_meta(
        config=config.to_meta(), seed=config.seed, profile=config.profile,
        target=config.target, transport=config.transport,
        carries=transport_spec(config.transport).carries, model=config.model,
        versions={"callsim": __version__, "python": sys.version.split()[0]},
        rubric_sha256=config.rubric_sha256, total_calls=total, status="running",
        started_at=time.time(), agent_profile=agent.model_dump(),
        scenario_set=scenario_set_id(c.call_id for c in calls), label=config.label,
        host=socket.gethostname(), arms=[a.name for a in config.arms],
        lookup_match=config.lookup_mode(), **extra,
    )
