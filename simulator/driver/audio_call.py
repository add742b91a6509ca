"""One simulated call over an audio transport (a registered spec that carries audio).

The caller's audio leaves on absolute 20 ms deadlines (``next += 0.020``), with silence
between turns as on a phone line. Agent audio is timed as it arrives; the agent's turn is
over once its audio has played out and stayed silent for ``agent_silence_s``. The caller
behaves like a person on the phone (:class:`TurnTaking`): it waits for the greeting to end,
says "Hello? Are you still there?" into a long silence and gives up politely, and it reacts
to what it heard: the agent's words come from the protocol when it carries them (Realtime
transcripts), else from the listener (:mod:`simulator.audio.listener`). The result is the
same :class:`~simulator.driver.session.CallRun` as a text call, so the runner, store and
grading work unchanged. See docs/transports.md and docs/listener.md.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import inspect
import json
import time
from collections import OrderedDict, deque
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field, replace
from typing import Any

import numpy as np

from simulator.agent_profile import add_usage
from simulator.audio.line import (
    SR,
    SyntheticSpeech,
    fit_to_duration,
    samples_sha256,
    synthetic_speech,
    voiced_chunks,
)
from simulator.callscript import CallScript, Turn
from simulator.driver.frameclock import (
    FrameClock,
    LoopTimers,
    frame_clock,
    grid_start,
    run_now,
)
from simulator.driver.session import CallRun, awaited_turn
from simulator.driver.turntaking import TurnTaking
from simulator.errors import TransportError
from simulator.histogram import value_counts
from simulator.results import TurnRecord
from simulator.seeding import derive_seed
from simulator.tools.relay import ExecuteTool, ToolRelay
from simulator.transports.base import Deadlines
from simulator.transports.line import AudioLine, AudioTransport, LineEvent

_now = time.perf_counter_ns
MAX_TOOL_ROUNDS = 8

# A turn's caller audio (8 kHz float32), or an awaitable of it (TTS rendered off the loop).
SpeechFn = Callable[[Turn], "np.ndarray | Awaitable[np.ndarray]"]
# The default caller voice, shared by every call so its cache (per word count) is too.
_TONES = SyntheticSpeech()


class _AgentHungUp(Exception):
    """The agent closed the line after it had spoken: the call's normal end."""


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
    audio: bytearray = field(default_factory=bytearray)  # the agent's mu-law, as it arrived
    talk_overs: int = 0
    clears: int = 0

    @property
    def first_content_ns(self) -> int | None:
        """The agent's first answer: voiced audio, text or a tool call. Not its first audio
        frame: a SIP or WebRTC line (and some WebSocket agents) streams silence between
        turns, and a silent frame is no answer."""
        got = [t for t in (self.first_voiced_ns, self.first_text_ns, self.first_tool_ns) if t]
        return min(got) if got else None


class _AudioCall:
    def __init__(self, line: AudioLine, deadlines: Deadlines, agent_silence_s: float,
                 stats: AudioStats | None, phase_ns: int = 0) -> None:
        self.line = line
        self.phase_ns = phase_ns  # where in its 20 ms this call's frame clock ticks
        self.dl = deadlines
        self.agent_silence_s = agent_silence_s
        self.stats = stats or AudioStats()
        self.queue: deque[tuple[Any, bool]] = deque()  # (chunk, voiced) waiting for its deadline
        self.last_voiced_sent_ns = 0
        self.first_sent_ns = 0             # send time of the first chunk of the current utterance
        self.drained = asyncio.Event()
        self.drained.set()
        self.changed = asyncio.Event()
        self.waiting = False               # someone awaits a time-based condition
        self.turn: _Turn | None = None
        self.playout_end_ns = 0
        self.closed = False
        self.error: TransportError | None = None
        self.sender_stop = False
        self.sender_error: BaseException | None = None
        self._step = int(line.chunk_ms * 1e6)
        self._clock: FrameClock | LoopTimers | None = None
        self._next_ns = 0
        self._pending: asyncio.Future[None] | None = None  # a send the socket held back
        self.barge_armed = False
        self.barge_onset_ns: int | None = None
        self.barge_stop_ns: int | None = None
        self.last_voiced_arrival_ns = 0
        self.agent_spoke = False           # any voiced agent audio on this call yet
        self.talk_overs = 0
        self.clears = 0
        self._talked_over_utterance = False

    # -- sending on absolute deadlines
    def start_sending(self) -> None:
        """The call's one timer: a chunk every ``chunk_ms`` on absolute deadlines, sent by
        the frame clock's callback (:meth:`_tick`); the same tick wakes whoever waits for
        a time-based condition (an agent turn ending after its silence, a barge-in, a
        deadline). :meth:`stop_sending` ends it."""
        self._clock = clock = frame_clock()
        # Each call's frame clock has its own phase, as independent phone lines do: calls
        # connected in the same millisecond (a closed loop's first wave) would otherwise
        # all fall due at once, every 20 ms, and the last of them wait for the others. The
        # seeded phase's slot is taken unless another slot has fewer calls.
        self.phase_ns = clock.take(self._step, self.phase_ns)
        self._next_ns = grid_start(_now(), self._step, self.phase_ns)
        clock.call_at(self._next_ns, self._tick)

    async def stop_sending(self) -> None:
        """No more ticks; waits for a send the socket held back."""
        self._stop_ticks()
        pending = self._pending
        if pending is not None and not pending.done():
            pending.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await pending

    def _tick(self) -> None:
        if self.sender_stop or self.closed:
            return
        queue = self.queue
        if queue:
            payload, voiced = queue.popleft()
        else:
            payload, voiced = self.line.silence_chunk, False
        first = self.first_sent_ns == 0 and not self.drained.is_set()
        try:
            pending = run_now(self.line.send_audio(payload))
        except Exception as exc:  # any failed send ends the call's audio
            self._send_failed(exc)
            return
        if pending is None:
            self._sent(first, voiced)
        else:  # the socket pushed back: the next frame waits for this one
            self._pending = pending
            pending.add_done_callback(lambda f: self._after_pending(f, first, voiced))

    def _after_pending(self, fut: asyncio.Future[None], first: bool, voiced: bool) -> None:
        self._pending = None
        if fut.cancelled():
            return
        exc = fut.exception()
        if exc is not None:
            self._send_failed(exc)
        elif not (self.sender_stop or self.closed):
            self._sent(first, voiced)

    def _send_failed(self, exc: BaseException) -> None:
        self.sender_error = exc
        self._stop_ticks()
        self.changed.set()

    def _stop_ticks(self) -> None:
        if not self.sender_stop:
            self.sender_stop = True
            if self._clock is not None:
                self._clock.give_back(self._step, self.phase_ns)

    def _sent(self, first: bool, voiced: bool) -> None:
        t = _now()
        nxt = self._next_ns
        self.stats.jitter_ms.append((t - nxt) / 1e6)
        self.stats.frames += 1
        if first:
            self.first_sent_ns = t
            if self.barge_armed:
                self.barge_armed = False
                self.barge_onset_ns = t
            self.changed.set()
        if voiced:
            self.last_voiced_sent_ns = t
        if not self.queue and not self.drained.is_set():
            self.drained.set()
            self.changed.set()
        if self.waiting:
            self.changed.set()
        nxt += self._step  # absolute deadlines: lateness never accumulates
        if nxt < t - 5 * self._step:
            nxt = t  # the loop stalled badly: do not burst to catch up
        self._next_ns = nxt
        assert self._clock is not None
        self._clock.call_at(nxt, self._tick)

    async def say(self, pcm8k: np.ndarray, sha256: str | None = None) -> None:
        """Queue one utterance and wait until its last chunk has been sent."""
        chunks, voiced = _frames(self.line, pcm8k, sha256)
        if not chunks:
            return
        self.first_sent_ns = 0
        self._talked_over_utterance = False
        self.drained.clear()
        self.queue.extend(zip(chunks, voiced, strict=True))
        # Not a bare drained.wait(): a line the agent closed mid-utterance never drains.
        if not await self.wait_for(lambda now: self.drained.is_set(), 24 * 3600):
            _raise_line(self, "reset", "the line closed while the caller was speaking")
        if self.sender_error is not None:
            raise TransportError("reset",
                                 f"sending audio failed: {type(self.sender_error).__name__}")

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
                self.agent_spoke = True
                if (not self.drained.is_set() and self.first_sent_ns
                        and not self._talked_over_utterance
                        and ev.t_ns - self.last_voiced_arrival_ns > 200_000_000):
                    # The agent starts talking while the caller is speaking: once per
                    # caller utterance (a barge-in the caller makes is not counted).
                    self._talked_over_utterance = True
                    if self.barge_onset_ns is None:
                        self.talk_overs += 1
                        if tr is not None:
                            tr.talk_overs += 1
                if (self.barge_onset_ns is not None and self.barge_stop_ns is None
                        and self.last_voiced_arrival_ns
                        and ev.t_ns - self.last_voiced_arrival_ns > 200_000_000):
                    self.barge_stop_ns = self.last_voiced_arrival_ns
                    self.changed.set()
                self.last_voiced_arrival_ns = ev.t_ns
            if tr is not None:
                if tr.first_audio_ns is None:
                    tr.first_audio_ns = ev.t_ns
                    self.changed.set()
                if tr.last_arrival_ns is not None:
                    gap = (ev.t_ns - tr.last_arrival_ns) / 1e6
                    tr.max_gap_ms = max(tr.max_gap_ms, gap)
                    if gap >= self.dl.stall_warn_s * 1e3:
                        tr.stalls += 1
                tr.last_arrival_ns = ev.t_ns
                tr.audio += ev.audio
                if ev.voiced:
                    if tr.first_voiced_ns is None:
                        tr.first_voiced_ns = ev.t_ns
                        self.changed.set()
                    tr.voiced_s += ev.duration_s
                    tr.last_voiced_end_ns = self.playout_end_ns
            # Any other audio frame changes nothing a waiter checks before the next tick
            # (a turn's end is a matter of time): no wake-up per frame.
            return
        if ev.kind == "clear":
            self.playout_end_ns = ev.t_ns
            self.clears += 1
            if self.barge_onset_ns is not None and self.barge_stop_ns is None:
                self.barge_stop_ns = ev.t_ns
            if tr is not None:
                tr.clears += 1
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
        """Wait until ``pred(now)`` holds, re-checked on every agent event that can change
        it and on every tick of the sender (20 ms): no timer of its own."""
        end = _now() + int(timeout_s * 1e9)
        while True:
            now = _now()
            if pred(now):
                return True
            if self.closed or self.error is not None or self.sender_error is not None or now >= end:
                return pred(now)
            self.changed.clear()
            self.waiting = True
            try:
                if self.sender_stop:  # no ticks any more: fall back to a timer
                    with contextlib.suppress(TimeoutError):
                        await asyncio.wait_for(self.changed.wait(), min(0.02, (end - now) / 1e9))
                else:
                    await self.changed.wait()
            finally:
                self.waiting = False


def _record(seq: int, caller_turn: int | None, phase: str, tr: _Turn, conn_ns: int, t0: int,
            scheduled_ns: int | None, lag: float, interrupted: bool, error: str | None,
            barge_ms: float | None, text: str = "", source: str = "",
            heard: str | None = None, listen_ms: float | None = None) -> TurnRecord:
    def ms(ns: int | None) -> float | None:
        return None if ns is None else (ns - tr.sent_ns) / 1e6

    fc = tr.first_content_ns
    usage = tr.usage or {}
    return TurnRecord(
        seq=seq, caller_turn=caller_turn, phase=phase,
        scheduled_s=None if scheduled_ns is None else (scheduled_ns - t0) / 1e9,
        sent_s=(tr.sent_ns - t0) / 1e9,
        conn_setup_ms=conn_ns / 1e6,
        ttft_ms=ms(fc),
        ttft_from_schedule_ms=(None if fc is None or scheduled_ns is None
                               else (fc - scheduled_ns - conn_ns) / 1e6),
        last_byte_ms=ms(tr.last_arrival_ns),
        loop_lag_ms=lag, stalls=tr.stalls, max_gap_ms=tr.max_gap_ms,
        prompt_tokens=usage.get("prompt_tokens"),
        completion_tokens=usage.get("completion_tokens"),
        interrupted=interrupted, error=error, text=text,
        ttfa_ms=ms(tr.first_audio_ns),
        first_voiced_ms=ms(tr.first_voiced_ns),
        first_text_ms=ms(tr.first_text_ns),
        agent_speech_s=round(tr.voiced_s, 4),
        barge_in_reaction_ms=barge_ms,
        text_source=source, heard_text=heard,
        listen_ms=None if listen_ms is None else round(listen_ms, 1),
        agent_end_ms=ms(tr.last_voiced_end_ns),
        talk_overs=tr.talk_overs, clears=tr.clears,
    )


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
    agent_silence_s: float | None = None,
    greeting_wait_s: float | None = None,
    stats: AudioStats | None = None,
    turn_taking: TurnTaking | None = None,
    listener: Any = None,
) -> CallRun:
    """Replay ``script`` as a phone call over an audio ``transport``.

    ``caller`` has ``first() -> Turn`` and ``respond(agent_text) -> Turn | None``.
    ``execute_tool(name, parsed_args, raw_args, k)`` answers the agent's k-th tool call,
    either in-band (function calls on the line) or through ``relay`` (agents that call the
    HTTP tool backend themselves). ``speech(turn)`` gives the caller's 8 kHz
    float32 audio, or an awaitable of it (default: :class:`SyntheticSpeech`; TTS:
    :class:`simulator.audio.caller_audio.CallSpeech`). ``turn_taking``: greeting wait,
    end-of-turn silence and re-prompts (:class:`TurnTaking`; ``agent_silence_s`` and
    ``greeting_wait_s`` override its fields). ``listener``: a
    :class:`simulator.audio.listener.Listener` that hears agent turns whose words the
    protocol does not carry (None: the caller reacts to protocol text only). Returns a
    ``CallRun`` with one exchange record per agent turn (phase ``caller`` or ``tool``) plus
    audio fields (``ttfa_ms``, ``first_voiced_ms``, ``agent_speech_s``,
    ``barge_in_reaction_ms``); transport failures end up in ``run.error``, never raised."""
    tt = turn_taking or TurnTaking()
    if agent_silence_s is not None:
        tt = replace(tt, agent_silence_s=agent_silence_s)
    if greeting_wait_s is not None:
        tt = replace(tt, greeting_wait_s=greeting_wait_s)
    session = _Session(script, caller, transport, execute_tool, deadlines, run_t0_ns,
                       scheduled_ns, call_id or script.call_id, tools or [], system_prompt,
                       speech or _TONES, relay, lag_ms, honour_pauses, tt,
                       listener, stats)
    return await session.run()


class _Session:
    def __init__(self, script: CallScript, caller: Any, transport: AudioTransport,
                 execute_tool: ExecuteTool, deadlines: Deadlines, run_t0_ns: int,
                 scheduled_ns: int | None, call_id: str, tools: list[dict[str, Any]],
                 system_prompt: str, speech: SpeechFn, relay: ToolRelay | None,
                 lag_ms: Callable[[], float], honour_pauses: bool, tt: TurnTaking,
                 listener: Any, stats: AudioStats | None) -> None:
        self.script = script
        self.caller = caller
        self.transport = transport
        self.execute_tool = execute_tool
        self.dl = deadlines
        self.t0 = run_t0_ns
        self.scheduled_ns = scheduled_ns
        self.call_id = call_id
        self.tools = tools
        self.system_prompt = system_prompt
        self.speech = speech
        self.relay = relay
        self.lag_ms = lag_ms
        self.honour_pauses = honour_pauses
        self.tt = tt
        self.listener = listener
        self.sources: set[str] = set()
        self.reprompts = 0
        self.hung_up = False
        self.answered = False
        self.stats = stats
        self.run_ = CallRun(started_ns=_now())
        self.deadline_ns = self.run_.started_ns + int(deadlines.call_s * 1e9)
        self.caller_log: list[dict[str, Any]] = []
        self.agent_log: list[str] = []
        self.tool_log: list[dict[str, Any]] = relay.register(call_id, execute_tool) if relay else []
        self.usage: dict[str, Any] = {}
        self.estimated = False
        self.audio_in_s = 0.0
        self.seq = 0
        self.tool_k = 0
        self.first_turn = True
        self.call: _AudioCall | None = None

    def remaining(self) -> float:
        return max(0.0, (self.deadline_ns - _now()) / 1e9)

    async def run(self) -> CallRun:
        run = self.run_
        line: AudioLine | None = None
        tasks: list[asyncio.Task[None]] = []
        try:
            line = await self.transport.open_line(self.call_id, self.script, self.tools,
                                                  self.system_prompt)
            self.call = call = _AudioCall(line, self.dl, self.tt.agent_silence_s, self.stats,
                                          derive_seed("frame-phase", self.call_id))
            if hasattr(line, "agent_audio_wanted"):  # only the listener hears the samples
                line.agent_audio_wanted = self.listener is not None
            call.start_sending()
            tasks = [asyncio.create_task(call.receiver())]
            # The whole call is bounded by its deadline, whatever the agent does.
            async with asyncio.timeout(self.remaining()):
                if self.tt.greeting_wait_s > 0:
                    await self._greeting(call)
                turn: Turn | None = await awaited_turn(self.caller.first())
                while turn is not None:
                    turn = await self._caller_turn(call, line, turn)
                    self.first_turn = False
        except _AgentHungUp:
            self.hung_up = True
            run.events.append(("agent_hung_up", {}))
        except TransportError as exc:
            if exc.category == "reset" and self.call is not None and _hung_up(self.call):
                # It put the phone down while the caller was talking: still a hang-up.
                self.hung_up = True
                run.events.append(("agent_hung_up", {}))
            else:
                run.error, run.error_detail = exc.category, str(exc)
        except TimeoutError:
            run.error, run.error_detail = "call_timeout", "call exceeded its deadline"
        finally:
            if self.call is not None:
                await self.call.stop_sending()
            if line is not None:
                with contextlib.suppress(Exception):
                    await line.aclose()
            for t in tasks:
                t.cancel()
            for t in tasks:
                with contextlib.suppress(asyncio.CancelledError, Exception):
                    await t
            if self.relay is not None:
                self.relay.unregister(self.call_id)
        run.finished_ns = _now()
        await asyncio.sleep(0)  # let due frames of other calls go before the summing up
        return self._finish()

    async def _greeting(self, call: _AudioCall) -> None:
        """A phone agent usually greets first: listen for it before speaking."""
        tr = call.turn = _Turn(sent_ns=_now())
        started = await call.wait_for(lambda now: tr.first_voiced_ns is not None,
                                      min(self.tt.greeting_wait_s, self.remaining()))
        if started:
            # Let it finish (up to greeting_max_s), as a person would before answering.
            finished = await call.wait_for(call.agent_done,
                                           min(self.tt.greeting_max_s, self.remaining()))
            await self._record(call, tr, None, "greeting", False, None)
            greet = self.run_.exchanges[-1].text
            self.run_.events.append(("greeting", {"text": greet, "speech_s": tr.voiced_s,
                                                  "finished": finished}))
            if not finished and _hung_up(call):
                raise _AgentHungUp()
        else:
            self.run_.events.append(("no_greeting", {"waited_s": self.tt.greeting_wait_s}))
        call.turn = None

    async def _say(self, call: _AudioCall, line: AudioLine, turn: Turn) -> None:
        entry: dict[str, Any] = {"index": turn.index, "kind": turn.kind, "text": turn.text,
                                 "clean_text": turn.clean_text}
        self.caller_log.append(entry)
        pcm = await self._speech(turn)
        entry["audio_s"] = round(len(pcm) / SR, 4)
        entry["audio_sha256"] = sha = samples_sha256(pcm)
        await line.send_caller_text(turn.text)
        self.audio_in_s += len(pcm) / SR
        await call.say(pcm, sha)

    async def _speech(self, turn: Turn) -> np.ndarray:
        got = self.speech(turn)
        if inspect.isawaitable(got):
            return await got
        return got

    async def _caller_turn(self, call: _AudioCall, line: AudioLine, turn: Turn) -> Turn | None:
        """Speak ``turn``, time the agent's answer(s); returns the caller's next turn."""
        if _now() > self.deadline_ns:
            raise TransportError("call_timeout", "call exceeded its deadline")
        if self.honour_pauses and turn.pause_before_s > 0 and not self.first_turn:
            await asyncio.sleep(turn.pause_before_s)  # the line keeps sending silence
            self.run_.events.append(("pause", {"turn": turn.index, "seconds": turn.pause_before_s}))
        await self._say(call, line, turn)
        if turn.dtmf:
            for d in turn.dtmf:
                if d not in " -":
                    await line.send_dtmf(d)
            self.run_.events.append(("dtmf", {"turn": turn.index, "digits": turn.dtmf}))
        sent_ns = call.last_voiced_sent_ns or _now()
        await line.end_of_turn()  # explicit commit (a line without server VAD); timed from sent_ns
        barge = next((e for e in turn.events if e.get("type") == "barge_in"), None)
        phase = "caller"
        for _ in range(MAX_TOOL_ROUNDS + 1):
            tr = call.turn = _Turn(sent_ns=sent_ns)
            await self._wait_first(call, line, tr)
            barge_turn: Turn | None = None
            barge_ms: float | None = None
            if barge is not None and phase == "caller":
                barge_turn, barge_ms = await self._barge_in(call, line, tr, turn, barge)
            if barge_turn is None:
                if not await call.wait_for(call.agent_done, self.remaining()) and \
                        not _hung_up(call):
                    _raise_line(call, "stall", "agent turn did not end")
            said = await self._record(call, tr, turn.index, phase, barge_turn is not None,
                                      barge_ms)
            if barge_turn is not None:
                # The barge-in utterance is the caller's next turn: time the answer to it.
                self.caller_log.append({"index": barge_turn.index, "kind": "barge_in",
                                        "text": barge_turn.text, "clean_text": None})
                await line.end_of_turn()
                tr = call.turn = _Turn(sent_ns=call.last_voiced_sent_ns)
                await self._wait_first(call, line, tr)
                await call.wait_for(call.agent_done, self.remaining())
                said = await self._record(call, tr, turn.index, "caller", False, None)
                if tr.pending_tools:
                    sent_ns = await self._answer_tools(line, tr)
                    phase = "tool"
                    barge = None
                    continue
                return await self._respond(call, said)
            if tr.pending_tools:
                sent_ns = await self._answer_tools(line, tr)
                phase = "tool"
                continue
            return await self._respond(call, said)
        raise TransportError("tool_loop", "agent kept calling tools")

    async def _respond(self, call: _AudioCall, said: str) -> Turn | None:
        """The caller's next turn after the agent said ``said``; None once it hung up."""
        if _hung_up(call):
            raise _AgentHungUp()  # it said its piece and put the phone down
        return await awaited_turn(self.caller.respond(said))

    async def _wait_first(self, call: _AudioCall, line: AudioLine, tr: _Turn) -> None:
        """Wait for the agent's answer. A person on the phone says "Hello? Are you still
        there?" into a long silence (``reprompts`` times, ``reprompt_after_s`` apart) and
        then gives up: the call fails as ``agent_silent``. The turn stays timed from the
        caller's own end of speech; ``first_byte_s`` still bounds the whole wait."""
        limit_ns = _now() + int(self.dl.first_byte_s * 1e9)
        asked = 0
        while True:
            wait = min(self.tt.reprompt_after_s, (limit_ns - _now()) / 1e9, self.remaining())
            if await call.wait_for(lambda now: tr.first_content_ns is not None, max(wait, 0.0)):
                return
            if call.closed:
                if _hung_up(call):
                    raise _AgentHungUp()
                _raise_line(call, "reset", "agent closed the connection")
            if _now() >= limit_ns:
                _raise_line(call, "first_byte_timeout", "no agent audio in time")
            if asked >= self.tt.reprompts:
                _raise_line(call, "agent_silent",
                            f"agent silent for {self.tt.reprompt_after_s:g} s after "
                            f"{asked} re-prompt(s)")
            asked += 1
            self.reprompts += 1
            turn = Turn(index=len(self.caller_log), kind="filler", text=self.tt.reprompt_text)
            self.run_.events.append(("reprompt", {"after_s": self.tt.reprompt_after_s,
                                                  "n": asked}))
            await self._say(call, line, turn)
            self.caller_log[-1]["kind"] = "reprompt"

    async def _barge_in(self, call: _AudioCall, line: AudioLine, tr: _Turn, turn: Turn,
                        barge: dict[str, Any]) -> tuple[Turn | None, float | None]:
        """Start talking ``onset_s`` into the agent's reply; returns the barge-in turn (None
        when the agent finished first) and the agent's reaction time in ms."""
        onset_s = float(barge.get("onset_s", 1.0))
        at = (tr.first_voiced_ns or tr.first_content_ns or _now()) + int(onset_s * 1e9)
        await call.wait_for(lambda now: now >= at or call.agent_done(now), self.remaining())
        if call.agent_done(_now()):
            self.run_.events.append(("barge_in_skipped", {"turn": turn.index, "onset_s": onset_s}))
            return None, None
        text = str(barge.get("text") or "Sorry, wait.")
        bturn = Turn(index=turn.index, kind="barge_in", text=text)
        dur = float(barge.get("duration_s") or 0)
        if dur > 0 and isinstance(self.speech, SyntheticSpeech):
            words = max(1, len(text.split()))
            pcm = synthetic_speech(words, seconds_per_word=dur / words)
        else:
            # Rendered speech: the scripted line, repeated while the barge-in lasts.
            pcm = await self._speech(bturn)
            if dur > 0:
                pcm = fit_to_duration(pcm, dur)
        call.barge_stop_ns = None
        call.barge_onset_ns = None
        call.last_voiced_arrival_ns = 0
        call.barge_armed = True
        await line.interrupt()
        self.caller_log.append({"index": turn.index, "kind": "barge_in_audio", "text": text,
                                "clean_text": None})
        await line.send_caller_text(text)
        self.audio_in_s += len(pcm) / SR
        await call.say(pcm)
        self.caller_log.pop()
        onset = call.barge_onset_ns or _now()

        def stopped(now: int) -> bool:
            if call.barge_stop_ns is not None:
                return True
            last = max(call.last_voiced_arrival_ns, onset)
            if now - last > 300_000_000:
                call.barge_stop_ns = last
                return True
            return False

        await call.wait_for(stopped, min(5.0, self.remaining()))
        reaction = None if call.barge_stop_ns is None else (call.barge_stop_ns - onset) / 1e6
        call.barge_onset_ns = None
        self.run_.events.append(("barge_in", {
            "turn": turn.index, "onset_s": onset_s, "text": text, "reaction_ms": reaction,
            "cleared": tr.cleared_ns is not None, "agent_said": "".join(tr.text),
        }))
        return bturn, reaction

    async def _answer_tools(self, line: AudioLine, tr: _Turn) -> int:
        """Function calls on the line: answer in-band; returns when the last answer was sent."""
        sent = _now()
        for ev in tr.pending_tools:
            try:
                parsed = json.loads(ev.arguments) if ev.arguments else {}
            except json.JSONDecodeError:
                parsed = None
            parsed = parsed if isinstance(parsed, dict) else None
            result, fault = await self.execute_tool(ev.name, parsed, ev.arguments, self.tool_k)
            self.tool_log.append({"name": ev.name, "arguments": parsed, "raw": ev.arguments,
                                  "result": result, "fault": fault, "k": self.tool_k})
            if fault:
                self.run_.events.append(("tool_fault", {"k": self.tool_k, "tool": ev.name,
                                                        **fault}))
            self.tool_k += 1
            sent = await line.send_tool_result(ev.call_id, result)
        return sent

    async def _words(self, tr: _Turn) -> tuple[str, str, str | None, float | None]:
        """What the agent said this turn: (text, source, the listener's transcript, its
        recognition time). The protocol's own text wins when it carries any (``text``);
        else the listener hears the turn's audio (``audio``); else nothing (``""``)."""
        text = "".join(tr.text)
        if text.strip():
            return text, "text", None, None
        if self.listener is not None and tr.voiced_s > 0:
            heard, ms = await self.listener.hear(bytes(tr.audio))
            return heard, "audio", heard, ms
        return "", "", None, None

    async def _record(self, call: _AudioCall, tr: _Turn, caller_turn: int | None, phase: str,
                      interrupted: bool, barge_ms: float | None) -> str:
        """Store the turn's record; returns what the agent said (as far as callsim knows)."""
        text, source, heard, listen_ms = await self._words(tr)
        if source:
            self.sources.add(source)
        # The connection set-up and the scheduled start belong to the first answer to the
        # caller (a greeting before it is not a reply to anything the caller sent).
        first = phase != "greeting" and not self.answered
        if first:
            self.answered = True
        sched = self.scheduled_ns if (self.first_turn and phase == "caller" and first) else None
        rec = _record(self.seq, caller_turn, phase, tr, call.line.conn_setup_ns if first else 0,
                      self.t0, sched, self.lag_ms(), interrupted, None, barge_ms, text, source,
                      heard, listen_ms)
        setup = getattr(call.line, "setup_fields", None)  # per-call timings of a line (SIP)
        if first and setup is not None:
            rec = dataclasses.replace(rec, **setup())
        self.run_.exchanges.append(rec)
        self.seq += 1
        if text:
            self.agent_log.append(text)
        if tr.usage:
            add_usage(self.usage, tr.usage)
        elif phase != "greeting":
            self.estimated = True
        tr.audio = bytearray()  # heard: the samples are not kept
        return text

    def _finish(self) -> CallRun:
        """The call's transcript and audio summary."""
        run = self.run_
        call = self.call
        jit = np.asarray(call.stats.jitter_ms if call else [], dtype=np.float64)
        # every frame's lateness, as counts (a call's end must not hold the loop that
        # other calls' frames wait on): the run summary merges them into one distribution
        jitter_counts = value_counts(jit)
        run.transcript = {
            "caller": self.caller_log,
            "agent": self.agent_log,
            "tool_calls": self.tool_log,
            "tool_relay": self.relay is not None,  # tools seen only if the agent calls them
            "usage": self.usage,
            "usage_estimated": self.estimated,
            # No usage from the agent: a voice platform bills by the minute (the profile's
            # voice_agent_per_min), so the cost is that, flagged as estimated.
            "cost_basis": "per_minute" if self.estimated and not self.usage else "tokens",
            "agent_source": _source(self.sources),
            "duration_s": (run.finished_ns - run.started_ns) / 1e9,
            "audio": {
                "caller_audio": getattr(self.speech, "mode", "custom"),
                "caller_speech_s": round(self.audio_in_s, 3),
                "frames_sent": int(call.stats.frames) if call else 0,
                "send_jitter_p99_ms": float(np.percentile(jit, 99)) if len(jit) else None,
                "send_jitter_max_ms": float(jit.max()) if len(jit) else None,
                # every frame's send time minus its deadline, for the run's distribution
                "send_jitter_us_counts": jitter_counts or None,
                "talk_overs": call.talk_overs if call else 0,
                "clears": call.clears if call else 0,
                "reprompts": self.reprompts,
                "agent_hung_up": self.hung_up,
            },
        }
        return run


# Encoded utterances by (the line's encoding, the samples' hash): a load test says the same
# utterance on many calls (tones by word count, a script's rendered turns on every replay),
# and encoding one for a Realtime line (resampling to 24 kHz, an append message per 20 ms)
# takes milliseconds in one piece on the loop that sends every call's frames.
_ENCODED: OrderedDict[tuple[str, str], tuple[list[Any], list[bool]]] = OrderedDict()
_ENCODED_MAX = 64


def _frames(line: AudioLine, pcm8k: np.ndarray, sha256: str | None = None
            ) -> tuple[list[Any], list[bool]]:
    """An utterance as the line's chunks and whether each is voiced. A line whose
    ``encode_key`` names its encoding (the same samples always give the same chunks) shares
    them between calls."""
    enc = getattr(line, "encode_key", None)
    key = None if enc is None else (enc, sha256 or samples_sha256(pcm8k))
    if key is not None and (hit := _ENCODED.get(key)) is not None:
        _ENCODED.move_to_end(key)
        return hit
    chunks = line.encode(pcm8k)
    voiced = voiced_chunks(pcm8k, int(line.chunk_ms * SR / 1000))[: len(chunks)]
    voiced += [False] * (len(chunks) - len(voiced))
    if key is not None:
        _ENCODED[key] = (chunks, voiced)
        if len(_ENCODED) > _ENCODED_MAX:
            _ENCODED.popitem(last=False)
    return chunks, voiced


def _hung_up(call: _AudioCall) -> bool:
    """The agent closed the line cleanly (no protocol or agent error) after it had spoken:
    a hang-up, the normal end of a phone call, not a ``reset``."""
    return call.closed and call.error is None and call.agent_spoke


def _source(sources: set[str]) -> str:
    """What a call's agent words came from, for grading: "text", "audio", "mixed", "none"."""
    if not sources:
        return "none"
    return next(iter(sources)) if len(sources) == 1 else "mixed"


def _raise_line(call: _AudioCall, category: str, message: str) -> None:
    if call.error is not None:
        raise call.error
    if call.sender_error is not None:
        raise TransportError("reset", f"sending audio failed: {type(call.sender_error).__name__}")
    if call.closed:
        raise TransportError("reset", "agent closed the connection")
    raise TransportError(category, message)
