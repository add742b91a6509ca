"""One simulated call over an audio transport (``twilio``, ``openai-realtime``).

The caller's audio leaves on absolute 20 ms deadlines (``next += 0.020``), with silence
between turns as on a phone line. Agent audio is timed as it arrives; the agent's turn is
over once its audio has played out and stayed silent for ``agent_silence_s``. The result is
the same :class:`~simulator.driver.session.CallRun` as a text call, so the runner, store and
grading work unchanged. See docs/transports.md for every timing's definition.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import math
import re
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any, Protocol

import numpy as np
from aiohttp import web

from simulator.agent_profile import add_usage
from simulator.audio import dsp
from simulator.callscript import CallScript, Turn
from simulator.driver.session import CallRun
from simulator.errors import TransportError
from simulator.transports.base import Deadlines

_now = time.perf_counter_ns
_TOKEN = re.compile(r"\w+|[^\w\s]")
SR = dsp.TELEPHONE_RATE
FRAME_S = 0.020
FRAME_SAMPLES = 160
MAX_TOOL_ROUNDS = 8
# A 20 ms frame whose RMS is below this (dBFS) is silence: above mu-law idle noise and
# a -45 dB line-noise floor, well below speech (about -26 dBFS active level).
VOICED_DBFS = -40.0

ExecuteTool = Callable[[str, "dict[str, Any] | None", str, int], Awaitable[tuple[str, "dict[str, Any] | None"]]]
SpeechFn = Callable[[Turn], np.ndarray]


# --------------------------------------------------------------------------- pure helpers


def frame_dbfs(pcm: np.ndarray) -> float:
    """RMS level of float32 samples in dBFS (-inf for digital silence)."""
    if len(pcm) == 0:
        return -math.inf
    p = float(np.mean(np.square(pcm, dtype=np.float64)))
    return 10 * math.log10(p) if p > 0 else -math.inf


def is_voiced_mulaw(payload: bytes, threshold_dbfs: float = VOICED_DBFS) -> bool:
    """True when mu-law ``payload`` carries sound above ``threshold_dbfs``."""
    return frame_dbfs(dsp.decode(payload, "mulaw")) > threshold_dbfs


def synthetic_speech(
    n_words: int, *, seconds_per_word: float = 0.3, min_s: float = 0.2, f0_hz: float = 140.0,
    sr: int = SR,
) -> np.ndarray:
    """A deterministic stand-in for speech: a voiced tone (f0 plus harmonics) at about
    -20 dBFS with a 4 Hz syllable envelope that never drops to silence, lasting
    ``max(min_s, n_words * seconds_per_word)``. Used when TTS is off (load tests)."""
    dur = max(min_s, n_words * seconds_per_word)
    n = int(round(dur * sr))
    t = np.arange(n) / sr
    voice = sum(np.sin(2 * np.pi * f0_hz * k * t) / k for k in (1, 2, 3, 4))
    env = 0.65 + 0.35 * np.sin(2 * np.pi * 4.0 * t)
    ramp = min(int(0.01 * sr), n // 2)
    if ramp:
        env[:ramp] *= np.linspace(0, 1, ramp)
        env[n - ramp:] *= np.linspace(1, 0, ramp)
    return (0.1 * voice * env).astype(np.float32)


def synthetic_speech_fn(seconds_per_word: float = 0.3, min_s: float = 0.2) -> SpeechFn:
    """A :data:`SpeechFn` giving each turn :func:`synthetic_speech` of its word count."""

    def speech(turn: Turn) -> np.ndarray:
        return synthetic_speech(len(turn.text.split()), seconds_per_word=seconds_per_word,
                                min_s=min_s)

    return speech


class EnergyVAD:
    """Energy end-pointer over 20 ms frames: speech starts at the first voiced frame and
    ends at the ``hangover_frames``-th consecutive silent frame after speech.

    ``feed`` returns ``"start"``, ``"end"`` or None for each frame."""

    def __init__(self, hangover_ms: float = 500.0, threshold_dbfs: float = VOICED_DBFS) -> None:
        self.hangover = max(1, int(round(hangover_ms / 20.0)))
        self.threshold = threshold_dbfs
        self.in_speech = False
        self._silent = 0

    def feed(self, pcm: np.ndarray) -> str | None:
        voiced = frame_dbfs(pcm) > self.threshold
        if voiced:
            self._silent = 0
            if not self.in_speech:
                self.in_speech = True
                return "start"
            return None
        if self.in_speech:
            self._silent += 1
            if self._silent >= self.hangover:
                self.in_speech = False
                self._silent = 0
                return "end"
        return None


def realtime_usage_to_openai(usage: dict[str, Any]) -> dict[str, Any]:
    """Realtime ``response.done`` usage -> Chat-Completions field names used by the cost model."""
    inp = usage.get("input_token_details") or {}
    out = usage.get("output_token_details") or {}
    return {
        "prompt_tokens": int(usage.get("input_tokens") or 0),
        "completion_tokens": int(usage.get("output_tokens") or 0),
        "prompt_tokens_details": {
            "cached_tokens": int(inp.get("cached_tokens") or 0),
            "audio_tokens": int(inp.get("audio_tokens") or 0),
        },
        "completion_tokens_details": {"audio_tokens": int(out.get("audio_tokens") or 0)},
    }


# --------------------------------------------------------------------------- line seam


@dataclass(frozen=True, slots=True)
class LineEvent:
    """Something the agent did, stamped (``t_ns``) when its bytes arrived.

    ``kind``: ``audio`` (``audio`` is 8 kHz mu-law, ``duration_s`` long), ``clear`` (flush /
    cleared: the agent stopped talking), ``text`` (transcript delta), ``tool_call``,
    ``done`` (end of a response, ``usage``), ``error``."""

    kind: str
    t_ns: int
    audio: bytes = b""
    duration_s: float = 0.0
    voiced: bool = False
    text: str = ""
    call_id: str = ""
    name: str = ""
    arguments: str = ""
    usage: dict[str, Any] | None = None


class AudioLine(Protocol):
    """One connected call to an audio agent (made by an :class:`AudioTransport`)."""

    chunk_ms: int
    silence_chunk: bytes
    conn_setup_ns: int
    agent_calls_tools: bool  # True: the agent calls the HTTP tool backend itself

    def encode(self, pcm8k: np.ndarray) -> list[bytes]: ...

    async def send_audio(self, payload: bytes) -> None: ...

    async def send_dtmf(self, digit: str) -> None: ...

    async def send_caller_text(self, text: str) -> None: ...

    async def end_of_turn(self) -> None: ...

    async def interrupt(self) -> None: ...

    async def send_tool_result(self, call_id: str, output: str) -> int: ...

    async def receive(self) -> LineEvent | None: ...

    async def aclose(self) -> None: ...


class AudioTransport(Protocol):
    async def open_line(self, call_id: str, script: CallScript, tools: list[dict[str, Any]],
                        system_prompt: str) -> AudioLine: ...

    async def warmup(self, connections: int) -> None: ...

    async def aclose(self) -> None: ...


# --------------------------------------------------------------------------- tool relay


class ToolRelay:
    """Routes an agent's HTTP tool calls (``POST /tools/{name}``, call id in
    ``X-Callsim-Call-Id``) to the ``execute_tool`` of the running call, so faults and grading
    stay per call exactly as for text agents. Serve it with :func:`create_tool_relay_app`."""

    def __init__(self) -> None:
        self._calls: dict[str, tuple[ExecuteTool, list[dict[str, Any]], list[int]]] = {}

    def register(self, call_id: str, execute_tool: ExecuteTool) -> list[dict[str, Any]]:
        """Route ``call_id``'s tool calls to ``execute_tool``; returns the call's tool log."""
        log: list[dict[str, Any]] = []
        self._calls[call_id] = (execute_tool, log, [0])
        return log

    def unregister(self, call_id: str) -> None:
        self._calls.pop(call_id, None)

    async def call(self, call_id: str, name: str, raw: str) -> tuple[int, str]:
        entry = self._calls.get(call_id)
        if entry is None:
            return 404, json.dumps({"error": "unknown_call", "message": f"no running call {call_id!r}"})
        execute, log, counter = entry
        try:
            parsed = json.loads(raw) if raw else {}
        except json.JSONDecodeError:
            parsed = None
        if not isinstance(parsed, dict):
            parsed = None
        k = counter[0]
        counter[0] += 1
        result, fault = await execute(name, parsed, raw, k)
        log.append({"name": name, "arguments": parsed, "raw": raw, "result": result,
                    "fault": fault, "k": k})
        return 200, result


def create_tool_relay_app(relay: ToolRelay) -> web.Application:
    """``POST /tools/{name}`` -> the running call's ``execute_tool`` (see :class:`ToolRelay`)."""
    from simulator.backend import CALL_ID_HEADER

    async def handle(request: web.Request) -> web.Response:
        call_id = request.headers.get(CALL_ID_HEADER, "")
        raw = (await request.read()).decode("utf-8", "replace")
        status, body = await relay.call(call_id, request.match_info["name"], raw)
        return web.Response(status=status, text=body, content_type="application/json")

    app = web.Application(client_max_size=1024 * 1024)
    app.router.add_post("/tools/{name}", handle)
    return app


# --------------------------------------------------------------------------- the call


@dataclass
class AudioStats:
    """Send-time jitter samples (actual send - deadline, ms) of every caller chunk."""

    jitter_ms: list[float] = field(default_factory=list)
    frames: int = 0


@dataclass
class _Turn:
    """Timing state of one agent turn (what followed one caller utterance)."""

    sent_ns: int
    first_audio_ns: int | None = None
    first_voiced_ns: int | None = None
    first_text_ns: int | None = None
    first_tool_ns: int | None = None
    voiced_s: float = 0.0
    last_voiced_end_ns: int | None = None
    last_arrival_ns: int | None = None
    text: list[str] = field(default_factory=list)
    max_gap_ms: float = 0.0
    stalls: int = 0
    cleared_ns: int | None = None
    pending_tools: list[LineEvent] = field(default_factory=list)
    usage: dict[str, Any] | None = None
    done_ns: int | None = None

    @property
    def first_content_ns(self) -> int | None:
        got = [t for t in (self.first_audio_ns, self.first_text_ns, self.first_tool_ns) if t]
        return min(got) if got else None


class _AudioCall:
    def __init__(self, line: AudioLine, deadlines: Deadlines, agent_silence_s: float,
                 stats: AudioStats | None) -> None:
        self.line = line
        self.dl = deadlines
        self.agent_silence_s = agent_silence_s
        self.stats = stats or AudioStats()
        self.queue: list[bytes] = []       # caller chunks waiting for their deadline
        self.queue_voiced: list[bool] = []
        self.last_voiced_sent_ns = 0
        self.first_sent_ns = 0             # send time of the first chunk of the current utterance
        self.drained = asyncio.Event()
        self.drained.set()
        self.changed = asyncio.Event()
        self.turn: _Turn | None = None
        self.playout_end_ns = 0
        self.closed = False
        self.error: TransportError | None = None
        self.sender_stop = False
        self.sender_error: BaseException | None = None
        self.barge_onset_ns: int | None = None
        self.barge_stop_ns: int | None = None
        self.last_voiced_arrival_ns = 0

    # -- sending on absolute deadlines
    async def sender(self) -> None:
        chunk_s = self.line.chunk_ms / 1000.0
        step = int(chunk_s * 1e9)
        nxt = _now()
        silence = self.line.silence_chunk
        try:
            while not self.sender_stop:
                delay = (nxt - _now()) / 1e9
                if delay > 0:
                    await asyncio.sleep(delay)
                if self.queue:
                    payload = self.queue.pop(0)
                    voiced = self.queue_voiced.pop(0)
                else:
                    payload, voiced = silence, False
                first = not self.drained.is_set() and self.first_sent_ns == 0
                await self.line.send_audio(payload)
                t = _now()
                self.stats.jitter_ms.append((t - nxt) / 1e6)
                self.stats.frames += 1
                if first:
                    self.first_sent_ns = t
                if voiced:
                    self.last_voiced_sent_ns = t
                if not self.queue and not self.drained.is_set():
                    self.drained.set()
                nxt += step  # absolute deadlines: lateness never accumulates
                if nxt < _now() - 5 * step:
                    nxt = _now()  # the loop stalled badly: do not burst to catch up
        except (ConnectionError, TransportError, OSError) as exc:
            self.sender_error = exc
            self.changed.set()

    async def say(self, pcm8k: np.ndarray) -> None:
        """Queue one utterance and wait until its last chunk has been sent."""
        chunks = self.line.encode(pcm8k)
        samples = int(self.line.chunk_ms * SR / 1000)
        voiced = [frame_dbfs(pcm8k[i * samples:(i + 1) * samples]) > VOICED_DBFS
                  for i in range(len(chunks))]
        if not chunks:
            return
        self.first_sent_ns = 0
        self.drained.clear()
        self.queue.extend(chunks)
        self.queue_voiced.extend(voiced)
        await self.drained.wait()
        if self.sender_error is not None:
            raise TransportError("reset", f"sending audio failed: {type(self.sender_error).__name__}")

    # -- receiving
    async def receiver(self) -> None:
        try:
            while True:
                ev = await self.line.receive()
                if ev is None:
                    break
                self.on_event(ev)
        except TransportError as exc:
            self.error = exc
        except (ConnectionError, OSError) as exc:
            self.error = TransportError("reset", f"connection lost: {type(exc).__name__}")
        finally:
            self.closed = True
            self.changed.set()

    def on_event(self, ev: LineEvent) -> None:
        tr = self.turn
        if ev.kind == "audio":
            start = max(ev.t_ns, self.playout_end_ns)
            self.playout_end_ns = start + int(ev.duration_s * 1e9)
            if ev.voiced:
                if (self.barge_onset_ns is not None and self.barge_stop_ns is None
                        and self.last_voiced_arrival_ns
                        and ev.t_ns - self.last_voiced_arrival_ns > 200_000_000):
                    self.barge_stop_ns = self.last_voiced_arrival_ns
                self.last_voiced_arrival_ns = ev.t_ns
            if tr is not None:
                if tr.first_audio_ns is None:
                    tr.first_audio_ns = ev.t_ns
                if tr.last_arrival_ns is not None:
                    gap = (ev.t_ns - tr.last_arrival_ns) / 1e6
                    tr.max_gap_ms = max(tr.max_gap_ms, gap)
                    if gap >= self.dl.stall_warn_s * 1e3:
                        tr.stalls += 1
                tr.last_arrival_ns = ev.t_ns
                if ev.voiced:
                    if tr.first_voiced_ns is None:
                        tr.first_voiced_ns = ev.t_ns
                    tr.voiced_s += ev.duration_s
                    tr.last_voiced_end_ns = self.playout_end_ns
        elif ev.kind == "clear":
            self.playout_end_ns = ev.t_ns
            if self.barge_onset_ns is not None and self.barge_stop_ns is None:
                self.barge_stop_ns = ev.t_ns
            if tr is not None:
                tr.cleared_ns = ev.t_ns
                if tr.last_voiced_end_ns is not None:
                    tr.last_voiced_end_ns = min(tr.last_voiced_end_ns, ev.t_ns)
        elif ev.kind == "text" and tr is not None:
            if tr.first_text_ns is None and ev.text:
                tr.first_text_ns = ev.t_ns
            tr.text.append(ev.text)
        elif ev.kind == "tool_call" and tr is not None:
            if tr.first_tool_ns is None:
                tr.first_tool_ns = ev.t_ns
            tr.pending_tools.append(ev)
        elif ev.kind == "done" and tr is not None:
            tr.done_ns = ev.t_ns
            if ev.usage:
                tr.usage = ev.usage
        elif ev.kind == "error":
            self.error = TransportError("agent_error", ev.text[:200])
        self.changed.set()

    def agent_done(self, now: int) -> bool:
        tr = self.turn
        if tr is None:
            return False
        if tr.pending_tools:
            return tr.done_ns is not None
        if tr.last_voiced_end_ns is None:
            return False
        return now >= tr.last_voiced_end_ns + int(self.agent_silence_s * 1e9)

    async def wait_for(self, pred: Callable[[int], bool], timeout_s: float) -> bool:
        """Wait until ``pred(now)`` holds (re-checked on every event and every 20 ms)."""
        end = _now() + int(timeout_s * 1e9)
        while True:
            now = _now()
            if pred(now):
                return True
            if self.closed or self.error is not None or self.sender_error is not None or now >= end:
                return pred(now)
            self.changed.clear()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self.changed.wait(), timeout=min(0.02, (end - now) / 1e9))


def _estimate_tokens(text: str) -> int:
    return len(_TOKEN.findall(text))


def _record(seq: int, caller_turn: int, phase: str, tr: _Turn, conn_ns: int, t0: int,
            scheduled_ns: int | None, lag: float, interrupted: bool, error: str | None,
            barge_ms: float | None) -> dict[str, Any]:
    def ms(ns: int | None) -> float | None:
        return None if ns is None else (ns - tr.sent_ns) / 1e6

    fc = tr.first_content_ns
    ttft = ms(fc)
    text = "".join(tr.text)
    return {
        "seq": seq,
        "caller_turn": caller_turn,
        "phase": phase,
        "scheduled_s": None if scheduled_ns is None else (scheduled_ns - t0) / 1e9,
        "sent_s": (tr.sent_ns - t0) / 1e9,
        "conn_setup_ms": conn_ns / 1e6,
        "ttft_ms": ttft,
        "ttft_from_schedule_ms": (None if fc is None or scheduled_ns is None
                                  else (fc - scheduled_ns - conn_ns) / 1e6),
        "last_byte_ms": ms(tr.last_arrival_ns),
        "loop_lag_ms": lag,
        "stalls": tr.stalls,
        "max_gap_ms": tr.max_gap_ms,
        "prompt_tokens": (tr.usage or {}).get("prompt_tokens"),
        "completion_tokens": (tr.usage or {}).get("completion_tokens"),
        "interrupted": interrupted,
        "error": error,
        "text": text,
        # audio-only fields
        "ttfa_ms": ms(tr.first_audio_ns),
        "first_voiced_ms": ms(tr.first_voiced_ns),
        "first_text_ms": ms(tr.first_text_ns),
        "agent_speech_s": round(tr.voiced_s, 4),
        "barge_in_reaction_ms": barge_ms,
    }


async def run_audio_call(
    script: CallScript,
    caller: Any,
    transport: AudioTransport,
    execute_tool: ExecuteTool,
    *,
    deadlines: Deadlines,
    run_t0_ns: int,
    scheduled_ns: int | None = None,
    call_id: str | None = None,
    tools: list[dict[str, Any]] | None = None,
    system_prompt: str = "",
    speech: SpeechFn | None = None,
    relay: ToolRelay | None = None,
    lag_ms: Callable[[], float] = lambda: 0.0,
    honour_pauses: bool = True,
    agent_silence_s: float = 0.7,
    greeting_wait_s: float = 2.0,
    stats: AudioStats | None = None,
) -> CallRun:
    """Replay ``script`` as a phone call over an audio ``transport``.

    ``caller`` has ``first() -> Turn`` and ``respond(agent_text) -> Turn | None``.
    ``execute_tool(name, parsed_args, raw_args, k)`` answers the agent's k-th tool call,
    either in-band (Realtime function calls) or through ``relay`` (agents that call the HTTP
    tool backend themselves, e.g. behind Twilio). ``speech(turn)`` gives the caller's 8 kHz
    float32 audio (default: :func:`synthetic_speech_fn`). Returns a ``CallRun`` with one
    exchange record per agent turn (phase ``caller`` or ``tool``) plus audio fields."""
    speech = speech or synthetic_speech_fn()
    cid = call_id or script.call_id
    run = CallRun(started_ns=_now())
    caller_log: list[dict[str, Any]] = []
    agent_log: list[str] = []
    tool_log: list[dict[str, Any]] = relay.register(cid, execute_tool) if relay else []
    usage: dict[str, Any] = {}
    estimated = False
    audio_in_s = 0.0
    seq = 0
    tool_k = 0
    deadline_ns = run.started_ns + int(deadlines.call_s * 1e9)
    line: AudioLine | None = None
    call: _AudioCall | None = None
    tasks: list[asyncio.Task[None]] = []
    try:
        try:
            line = await transport.open_line(cid, script, tools or [], system_prompt)
        except TransportError as exc:
            run.error, run.error_detail = exc.category, str(exc)
            return run
        call = _AudioCall(line, deadlines, agent_silence_s, stats)
        tasks = [asyncio.create_task(call.sender()), asyncio.create_task(call.receiver())]

        def remaining() -> float:
            return max(0.0, (deadline_ns - _now()) / 1e9)

        # A phone agent usually greets first: listen for it before speaking.
        if greeting_wait_s > 0:
            call.turn = _Turn(sent_ns=_now())
            started = await call.wait_for(lambda now: call.turn is not None
                                          and call.turn.first_voiced_ns is not None,
                                          min(greeting_wait_s, remaining()))
            if started:
                await call.wait_for(call.agent_done, min(deadlines.call_s, remaining()))
                greet = "".join(call.turn.text)
                run.events.append(("greeting", {"text": greet, "speech_s": call.turn.voiced_s}))
                if greet:
                    agent_log.append(greet)
            call.turn = None

        turn: Turn | None = caller.first()
        first_turn = True
        while turn is not None:
            if _now() > deadline_ns:
                raise TransportError("call_timeout", "call exceeded its deadline")
            if honour_pauses and turn.pause_before_s > 0 and not first_turn:
                await asyncio.sleep(turn.pause_before_s)  # the line keeps sending silence
                run.events.append(("pause", {"turn": turn.index, "seconds": turn.pause_before_s}))
            caller_log.append({"index": turn.index, "kind": turn.kind, "text": turn.text,
                               "clean_text": turn.clean_text})
            await line.send_caller_text(turn.text)
            pcm = speech(turn)
            audio_in_s += len(pcm) / SR
            await call.say(pcm)
            if turn.dtmf:
                for d in turn.dtmf:
                    if d not in " -":
                        await line.send_dtmf(d)
                run.events.append(("dtmf", {"turn": turn.index, "digits": turn.dtmf}))
            sent_ns = call.last_voiced_sent_ns or _now()
            await line.end_of_turn()  # explicit commit (Realtime, VAD off); still timed from sent_ns
            barge = next((e for e in turn.events if e.get("type") == "barge_in"), None)
            phase = "caller"
            rounds = 0
            next_turn: Turn | None = None
            while True:
                tr = call.turn = _Turn(sent_ns=sent_ns)
                barge_ms: float | None = None
                interrupted = False
                ok = await call.wait_for(lambda now: tr.first_content_ns is not None,
                                         min(deadlines.first_byte_s, remaining()))
                if not ok:
                    _raise_line(call, "first_byte_timeout", "no agent audio in time")
                if barge is not None and phase == "caller":
                    onset_s = float(barge.get("onset_s", 1.0))
                    base = tr.first_voiced_ns or tr.first_content_ns or _now()
                    at = base + int(onset_s * 1e9)
                    await call.wait_for(lambda now: now >= at or call.agent_done(now),
                                        remaining())
                    if not call.agent_done(_now()):
                        interrupted = True
                        text = str(barge.get("text") or "Sorry, wait.")
                        words = len(text.split())
                        dur = float(barge.get("duration_s") or 0) or None
                        bturn = Turn(index=turn.index, kind="barge_in", text=text)
                        bpcm = speech(bturn)
                        if dur:
                            bpcm = synthetic_speech(words, seconds_per_word=dur / max(words, 1))
                        await line.send_caller_text(text)
                        await line.interrupt()
                        call.barge_onset_ns = None
                        call.barge_stop_ns = None
                        call.last_voiced_arrival_ns = 0
                        say = asyncio.create_task(call.say(bpcm))
                        await call.wait_for(lambda now: call.first_sent_ns != 0 or say.done(), 5.0)
                        call.barge_onset_ns = call.first_sent_ns or _now()
                        await say
                        audio_in_s += len(bpcm) / SR
                        onset = call.barge_onset_ns

                        def stopped(now: int) -> bool:
                            if call.barge_stop_ns is not None:
                                return True
                            last = call.last_voiced_arrival_ns
                            if last and last < onset:
                                last = onset
                            if now - max(last, onset) > 300_000_000:
                                call.barge_stop_ns = max(last, onset)
                                return True
                            return False

                        await call.wait_for(stopped, min(5.0, remaining()))
                        if call.barge_stop_ns is not None:
                            barge_ms = (call.barge_stop_ns - onset) / 1e6
                        run.events.append(("barge_in", {
                            "turn": turn.index, "onset_s": onset_s, "text": text,
                            "reaction_ms": barge_ms, "cleared": tr.cleared_ns is not None,
                            "agent_said": "".join(tr.text),
                        }))
                        next_turn = bturn
                if not interrupted:
                    done = await call.wait_for(call.agent_done, min(deadlines.call_s, remaining()))
                    if not done:
                        _raise_line(call, "stall", "agent turn did not end")
                rec = _record(seq, turn.index, phase, tr, line.conn_setup_ns if seq == 0 else 0,
                              run_t0_ns, scheduled_ns if (first_turn and phase == "caller") else None,
                              lag_ms(), interrupted, None, barge_ms)
                run.exchanges.append(rec)
                seq += 1
                said = "".join(tr.text)
                if tr.usage:
                    add_usage(usage, tr.usage)
                else:
                    estimated = True
                    add_usage(usage, {"prompt_tokens": _estimate_tokens(turn.text),
                                      "completion_tokens": _estimate_tokens(said)})
                if said:
                    agent_log.append(said)
                if tr.pending_tools and not interrupted:
                    # Realtime function calls: answer in-band, then the agent talks again.
                    for ev in tr.pending_tools:
                        try:
                            parsed = json.loads(ev.arguments) if ev.arguments else {}
                        except json.JSONDecodeError:
                            parsed = None
                        parsed = parsed if isinstance(parsed, dict) else None
                        result, fault = await execute_tool(ev.name, parsed, ev.arguments, tool_k)
                        tool_log.append({"name": ev.name, "arguments": parsed, "raw": ev.arguments,
                                         "result": result, "fault": fault, "k": tool_k})
                        if fault:
                            run.events.append(("tool_fault", {"k": tool_k, "tool": ev.name, **fault}))
                        tool_k += 1
                        sent_ns = await line.send_tool_result(ev.call_id, result)
                    phase = "tool"
                    rounds += 1
                    if rounds > MAX_TOOL_ROUNDS:
                        raise TransportError("tool_loop", "agent kept calling tools")
                    continue
                break
            first_turn = False
            if next_turn is not None:
                # The barge-in utterance is the caller's next turn; time the agent's answer.
                sent_ns = call.last_voiced_sent_ns
                turn = next_turn
                caller_log.append({"index": turn.index, "kind": turn.kind, "text": turn.text,
                                   "clean_text": None})
                await line.end_of_turn()
                tr = call.turn = _Turn(sent_ns=sent_ns)
                ok = await call.wait_for(lambda now: tr.first_content_ns is not None,
                                         min(deadlines.first_byte_s, remaining()))
                if not ok:
                    _raise_line(call, "first_byte_timeout", "no agent audio after barge-in")
                await call.wait_for(call.agent_done, min(deadlines.call_s, remaining()))
                run.exchanges.append(_record(seq, turn.index, "caller", tr, 0, run_t0_ns, None,
                                             lag_ms(), False, None, None))
                seq += 1
                said = "".join(tr.text)
                if said:
                    agent_log.append(said)
                if tr.usage:
                    add_usage(usage, tr.usage)
                else:
                    estimated = True
                    add_usage(usage, {"prompt_tokens": _estimate_tokens(turn.text),
                                      "completion_tokens": _estimate_tokens(said)})
                turn = caller.respond(said)
                continue
            turn = caller.respond("".join(tr.text))
    except TransportError as exc:
        run.error, run.error_detail = exc.category, str(exc)
    finally:
        if call is not None:
            call.sender_stop = True
        if line is not None:
            with contextlib.suppress(Exception):
                await line.aclose()
        for t in tasks:
            t.cancel()
        for t in tasks:
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await t
        if relay is not None:
            relay.unregister(cid)
    run.finished_ns = _now()
    jit = np.asarray(call.stats.jitter_ms if call else [], dtype=np.float64)
    run.transcript = {
        "caller": caller_log,
        "agent": agent_log,
        "tool_calls": tool_log,
        "usage": usage,
        "usage_estimated": estimated,
        "duration_s": (run.finished_ns - run.started_ns) / 1e9,
        "audio": {
            "caller_speech_s": round(audio_in_s, 3),
            "frames_sent": int(call.stats.frames) if call else 0,
            "send_jitter_p99_ms": float(np.percentile(jit, 99)) if len(jit) else None,
            "send_jitter_max_ms": float(jit.max()) if len(jit) else None,
        },
    }
    return run


def _raise_line(call: _AudioCall, category: str, message: str) -> None:
    if call.error is not None:
        raise call.error
    if call.sender_error is not None:
        raise TransportError("reset", f"sending audio failed: {type(call.sender_error).__name__}")
    if call.closed:
        raise TransportError("reset", "agent closed the connection")
    raise TransportError(category, message)
