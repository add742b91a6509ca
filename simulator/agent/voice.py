"""The reference agent's audio endpoints: Twilio Media Streams (``/twilio``, agent side) and
an OpenAI-Realtime-style server (``/v1/realtime``).

Both end-point the caller with an energy VAD (end of speech = the ``vad_silence_ms / 20``-th
consecutive silent 20 ms frame after speech). Then, by ``stt`` mode:

- ``none``: no recognition. It waits ``ttft_ms`` and answers with synthetic voiced audio
  whose length is proportional to its reply's word count (or speech, with ``voice``). The
  reply's words come from the text reference agent's policy, fed with the caller's words
  when the client sends them beside its audio (``callsim.caller_text``, enabled by
  ``text_hints``), else from a fixed scripted dialogue.
- ``pocketsphinx``: a fully offline voice agent. The turn's audio is recognised by
  pocketsphinx in a worker process, the heard words go to the text policy, and the reply
  is spoken (Piper's reference voice when installed, else espeak-ng; cached, in a thread),
  ``ttft_ms`` after it is ready.

Like a real bot it sends its words only as audio; what it said goes to its own log
(:attr:`Speech.said`, and the ``callsim.voice_agent`` logger).
- ``auto`` (the default): ``pocketsphinx`` when it is installed, else ``none``.

It stops talking at once when the caller barges in and sends ``clear`` (Twilio) /
``output_audio_buffer.cleared`` (Realtime).
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import json
import logging
import multiprocessing
import time
from collections import deque
from collections.abc import AsyncIterator, Mapping
from concurrent.futures import Executor, ProcessPoolExecutor, ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any

import aiohttp
import numpy as np
from aiohttp import web

from simulator.agent.policy import AgentConfig, decide, identify_pack
from simulator.audio import dsp
from simulator.audio.asr import RecogniserConfig
from simulator.audio.line import EnergyVAD, synthetic_speech
from simulator.audio.tts import Voice
from simulator.choices import pick_engine
from simulator.errors import InputError, TransportError
from simulator.personas.pack import Pack, load_packs
from simulator.tools.backend import CALL_ID_HEADER
from simulator.transports import realtime as rt
from simulator.transports import twilio as tw

_now = time.perf_counter
log = logging.getLogger("callsim.voice_agent")
STT_MODES = ("auto", "none", "pocketsphinx")
# The agent's espeak-ng voice when it speaks with TTS and Piper is not installed.
AGENT_VOICE = Voice("en-us+f2", rate=175, pitch=55)
VOICES = ("auto", "piper", "espeak", "tones")
# Caller audio kept before the VAD's first voiced frame (word onsets are quiet).
PREROLL_FRAMES = 15
# Trailing silence kept after the caller's last voiced frame (the rest of the hangover is
# only recognition time).
TAIL_FRAMES = 10
MAX_UTTERANCE_S = 60.0
SCRIPTED = (
    "Thanks for that. Could you tell me a little more?",
    "I see. Let me check that for you.",
    "Alright. Is there anything else I can help you with?",
)


def recogniser_config() -> RecogniserConfig:
    """The agent's recogniser: the one place to choose its model and decoder settings. A
    deployed voice agent's recogniser is tuned to its domain, so this one uses the persona
    packs' domain language model (:mod:`simulator.audio.lm`, built once and cached)."""
    return RecogniserConfig(lm="domain")


def resolve_stt(requested: str) -> tuple[str, str | None]:
    """``(mode, notice)`` for an ``--stt`` value: ``auto`` is ``pocketsphinx`` when it is
    installed, else ``none`` with a one-line notice. Raises :class:`InputError` for an
    unknown mode or ``pocketsphinx`` when it is not installed."""
    from simulator.audio.asr import asr_available

    return pick_engine("--stt", requested, STT_MODES, engine="pocketsphinx", fallback="none",
                       available=asr_available,
                       notice=lambda why: f"voice agent: --stt none ({why})")


@dataclass(frozen=True)
class VoiceAgentConfig:
    """Knobs of the voice endpoints. ``ttft_ms``: with ``stt`` none, end of caller speech
    (as the VAD decides) -> first agent audio; with pocketsphinx, the delay added after
    recognition, policy and TTS. ``vad_silence_ms``: VAD hangover. ``seconds_per_word``:
    length of the synthetic reply audio (stt none). ``stt``: ``auto`` | ``none`` |
    ``pocketsphinx`` (``auto`` is resolved here; see :func:`resolve_stt`).
    ``asr_workers``: recogniser processes. ``tools_url``: base URL of the HTTP tool backend
    the Twilio endpoint calls (``POST {tools_url}/tools/{name}``)."""

    ttft_ms: float = 300.0
    vad_silence_ms: float = 500.0
    seconds_per_word: float = 0.3
    stt: str = "auto"
    greet: bool = True
    greet_delay_ms: float = 0.0
    silent: bool = False
    voice: str = "auto"
    tools_url: str | None = None
    f0_hz: float = 210.0
    asr_workers: int = 1
    policy: AgentConfig = field(default_factory=AgentConfig)

    def __post_init__(self) -> None:
        if self.ttft_ms < 0 or self.vad_silence_ms < 20 or self.seconds_per_word <= 0:
            raise InputError(
                "voice agent: need ttft_ms >= 0, vad_silence_ms >= 20, seconds_per_word > 0")
        if self.asr_workers < 1:
            raise InputError("voice agent: need asr_workers >= 1")
        if self.voice not in VOICES:
            raise InputError(f"--voice: expected one of {', '.join(VOICES)}, got {self.voice!r}")
        if self.greet_delay_ms < 0:
            raise InputError("--greet-delay-ms: must be >= 0")
        object.__setattr__(self, "stt", resolve_stt(self.stt)[0])

    @property
    def hears(self) -> bool:
        """True when the agent recognises the caller's speech."""
        return self.stt == "pocketsphinx"

    @property
    def speaks(self) -> str:
        """How replies are voiced: "piper", "espeak" or "tones" (``voice`` "auto": Piper
        when installed and the agent hears, espeak-ng when it hears, else tones)."""
        if self.voice != "auto":
            return self.voice
        if not self.hears:
            return "tones"
        from simulator.audio.reference_voice import reference_voice_available

        return "piper" if reference_voice_available()[0] else "espeak"


VCONFIG_KEY: web.AppKey[VoiceAgentConfig] = web.AppKey("voice_config", VoiceAgentConfig)
VPACKS_KEY: web.AppKey[dict[str, Pack]] = web.AppKey("voice_packs", dict)
HTTP_KEY: web.AppKey[dict[str, aiohttp.ClientSession]] = web.AppKey("voice_http", dict)


# --------------------------------------------------------------------------- speech


def _asr_init(config: RecogniserConfig) -> None:
    """Worker process start: load the model once (about a second), before any caller."""
    from simulator.audio.asr import get_recogniser

    get_recogniser(config)


def _asr_job(config: RecogniserConfig, samples: np.ndarray, sr: int) -> str:
    from simulator.audio.asr import get_recogniser

    return get_recogniser(config).transcribe(samples, sr)


def _tts_frames(text: str, voice: str) -> list[bytes]:
    if voice == "piper":
        from simulator.audio.reference_voice import synthesize_reference

        r = synthesize_reference(text)
    else:
        from simulator.audio.tts import synthesize

        r = synthesize(text, AGENT_VOICE)
    return dsp.frames_mulaw_20ms(dsp.resample(r.samples, r.sample_rate, dsp.TELEPHONE_RATE))


class Speech:
    """The app's ears and mouth. Recognition runs in worker processes (pocketsphinx holds
    the GIL for the whole utterance, so a thread would stall this event loop), TTS in one
    thread that waits on the TTS render host (:mod:`simulator.audio.espeak_host`). Both
    start on the first voice call, so a text-only agent never loads them. ``heard`` keeps
    the last recognised turns (``endpoint``, ``call_id``, ``heard``, ``recognition_ms``,
    ``audio_s``, ``reply``)."""

    def __init__(self, config: VoiceAgentConfig) -> None:
        self.config = config
        self.voice = config.speaks
        self._asr: Executor | None = None
        self._tts: ThreadPoolExecutor | None = None
        self._tts_failed = False
        self.heard: deque[dict[str, Any]] = deque(maxlen=10_000)
        self.said: deque[dict[str, Any]] = deque(maxlen=10_000)

    def note_said(self, endpoint: str, call_id: str, text: str) -> None:
        """The agent's own log of what it said (its words never go on the Twilio wire:
        a test that needs them reads this log or the ``said`` log lines)."""
        self.said.append({"endpoint": endpoint, "call_id": call_id, "text": text})
        log.info("%s %s said %r", endpoint, call_id, text)

    def start(self) -> None:
        """Start the recogniser processes (idempotent); they load the model meanwhile."""
        if self.config.hears and self._asr is None:
            cfg = recogniser_config()
            self._asr = ProcessPoolExecutor(
                self.config.asr_workers, mp_context=multiprocessing.get_context("spawn"),
                initializer=_asr_init, initargs=(cfg,))
            self._asr.submit(int)  # make the workers start now, not at the first turn

    def hear(self, samples: np.ndarray) -> asyncio.Future[str]:
        """Recognise one utterance (8 kHz float32) off the loop."""
        self.start()
        assert self._asr is not None
        return asyncio.get_running_loop().run_in_executor(
            self._asr, _asr_job, recogniser_config(), samples, dsp.TELEPHONE_RATE)

    async def frames(self, text: str) -> list[bytes]:
        """The reply as 20 ms mu-law frames: speech (``config.speaks``) or synthetic."""
        if self.voice != "tones" and not self._tts_failed:
            from simulator.audio.tts import TTSUnavailableError

            if self._tts is None:
                self._tts = ThreadPoolExecutor(1, thread_name_prefix="callsim-agent-tts")
            try:
                return await asyncio.get_running_loop().run_in_executor(
                    self._tts, _tts_frames, text, self.voice)
            except TTSUnavailableError as exc:
                self._tts_failed = True
                log.warning("voice agent: replies as synthetic audio: %s", exc)
        return _speech_frames(text, self.config)

    def close(self) -> None:
        if self._asr is not None:
            self._asr.shutdown(wait=False, cancel_futures=True)
            self._asr = None
        if self._tts is not None:
            self._tts.shutdown(wait=False, cancel_futures=True)
            self._tts = None


SPEECH_KEY: web.AppKey[Speech] = web.AppKey("voice_speech", Speech)


class _Utterance:
    """The caller's audio of the current turn: from ``PREROLL_FRAMES`` before its first
    voiced frame to ``TAIL_FRAMES`` after its last, capped at ``MAX_UTTERANCE_S``."""

    def __init__(self) -> None:
        self.frames: list[np.ndarray] = []
        self.voiced_end = 0
        self.pre: deque[np.ndarray] = deque(maxlen=PREROLL_FRAMES)

    def add(self, frame: np.ndarray, voiced: bool) -> None:
        if self.voiced_end == 0:
            if not voiced:  # nothing said yet in this utterance: keep only the pre-roll
                self.pre.append(frame)
                return
            self.frames = list(self.pre)
            self.pre.clear()
        if len(self.frames) * 0.02 < MAX_UTTERANCE_S:
            self.frames.append(frame)
            if voiced:
                self.voiced_end = len(self.frames)

    def take(self) -> np.ndarray:
        """The utterance so far (and start a new one)."""
        keep = self.frames[: self.voiced_end + TAIL_FRAMES]
        self.frames, self.voiced_end = [], 0
        return np.concatenate(keep) if keep else np.zeros(0, dtype=np.float32)


class _Ears:
    """One call's pending recognitions, in order. A recognition is never cancelled with
    the reply that waits for it: after a barge-in or a mid-turn pause the next reply
    hears every fragment since the last one it answered."""

    def __init__(self, speech: Speech, endpoint: str) -> None:
        self.speech = speech
        self.endpoint = endpoint
        self.call_id = ""
        self.pending: list[tuple[asyncio.Future[str], float, float]] = []

    def submit(self, samples: np.ndarray) -> None:
        if len(samples):
            audio_s = len(samples) / dsp.TELEPHONE_RATE
            self.pending.append((self.speech.hear(samples), _now(), audio_s))

    async def collect(self) -> dict[str, Any]:
        """Wait for every pending recognition; returns the heard-log entry of the turn."""
        taken = list(self.pending)
        texts = [await asyncio.shield(f) for f, _, _ in taken]
        del self.pending[: len(taken)]
        entry = {"endpoint": self.endpoint, "call_id": self.call_id,
                 "heard": " ".join(t for t in texts if t),
                 "recognition_ms": round((_now() - taken[0][1]) * 1000, 1) if taken else 0.0,
                 "audio_s": round(sum(a for _, _, a in taken), 3), "reply": None}
        self.speech.heard.append(entry)
        log.info("%s %s heard %r (%.1f s of audio, %.0f ms)", self.endpoint, self.call_id,
                 entry["heard"], entry["audio_s"], entry["recognition_ms"])
        return entry


class _Dialogue:
    """The conversation as Chat-Completions messages, decided by the text policy."""

    def __init__(self, config: VoiceAgentConfig, packs: Mapping[str, Pack]) -> None:
        self.config = config
        self.packs = packs
        self.messages: list[dict[str, Any]] = []
        self.tools: list[dict[str, Any]] = []
        self.hinted = False
        self.hears = config.hears  # words come from the recogniser, not from hints
        self.pending_text: str | None = None
        self.turns = 0

    def set_pack(self, pack: Pack | None, instructions: str = "",
                 tools: list[dict[str, Any]] | None = None) -> None:
        self.tools = tools if tools is not None else (pack.tool_schemas() if pack else [])
        prompt = instructions or (pack.system_prompt if pack else "")
        self.messages = [{"role": "system", "content": prompt}]

    def hint(self, text: str) -> None:
        """Text hints are used only by an agent that does not hear."""
        if not self.hears:
            self.pending_text = text

    def caller_said(self, heard: str | None = None) -> None:
        text = heard if self.hears else self.pending_text
        self.pending_text = None
        self.turns += 1
        self.messages.append({"role": "user", "content": text or ""})

    def next(self) -> tuple[str, list[tuple[str, str, str]]]:
        """(reply text, tool calls as (id, name, arguments))."""
        if not (self.hinted or self.hears) and self.turns > 0:
            return SCRIPTED[min(self.turns - 1, len(SCRIPTED) - 1)], []
        reply = decide(self.messages, self.tools, self.packs, self.config.policy)
        calls = [(c.id, c.name, c.arguments) for c in reply.tool_calls]
        if calls:
            self.messages.append({"role": "assistant", "content": reply.content or None,
                                  "tool_calls": [{"id": i, "type": "function",
                                                  "function": {"name": n, "arguments": a}}
                                                 for i, n, a in calls]})
        else:
            self.messages.append({"role": "assistant", "content": reply.content})
        return reply.content, calls

    def tool_result(self, call_id: str, output: str) -> None:
        self.messages.append({"role": "tool", "tool_call_id": call_id, "content": output})


def _speech_frames(text: str, config: VoiceAgentConfig) -> list[bytes]:
    pcm = synthetic_speech(len(text.split()), seconds_per_word=config.seconds_per_word,
                           f0_hz=config.f0_hz)
    return dsp.frames_mulaw_20ms(pcm)


def _caller_turn_ended(dlg: _Dialogue, ears: _Ears, utt: _Utterance) -> None:
    """The caller's turn is over: an agent that hears sends its audio to be recognised
    (the reply collects it); one that does not takes the turn's text hint, if any."""
    if dlg.hears:
        ears.submit(utt.take())
    else:
        dlg.caller_said()


async def _end_session(task: asyncio.Task[Any] | None, ws: web.WebSocketResponse) -> None:
    """Stop the agent's reply in flight, if any, and close the socket."""
    if task is not None:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError, Exception):
            await task
    await ws.close()


async def _sleep_until(t: float) -> None:
    d = t - _now()
    if d > 0:
        await asyncio.sleep(d)


# --------------------------------------------------------------------------- Twilio


async def _twilio(request: web.Request) -> web.WebSocketResponse:
    config = request.app[VCONFIG_KEY]
    packs = request.app[VPACKS_KEY]
    speech = request.app[SPEECH_KEY]
    speech.start()
    ws = web.WebSocketResponse(autoping=True, max_msg_size=1024 * 1024)
    await ws.prepare(request)
    dlg = _Dialogue(config, packs)
    vad = EnergyVAD(config.vad_silence_ms)
    utt = _Utterance()
    ears = _Ears(speech, "twilio")
    state: dict[str, Any] = {"sid": "", "call_id": "", "speaking": False, "task": None}
    marks = 0

    async def say(text: str, frames: list[bytes], start_at: float) -> None:
        nonlocal marks
        await _sleep_until(start_at)
        speech.note_said("twilio", state["call_id"], text)
        state["speaking"] = True
        nxt = _now()
        for f in frames:
            await _sleep_until(nxt)
            await ws.send_str(tw.agent_media(state["sid"], f))
            nxt += 0.020
        state["speaking"] = False
        marks += 1
        await ws.send_str(tw.agent_mark(state["sid"], f"reply-{marks}"))

    async def greet(t: float) -> None:
        text, _ = dlg.next()
        frames = await speech.frames(text)
        start = max(t, _now()) if config.hears else t
        await say(text, frames, start + config.ttft_ms / 1000.0)

    async def tool(name: str, args: str) -> str:
        if not config.tools_url:
            return json.dumps({"error": "no_backend", "message": "agent has no tools URL"})
        http = request.app[HTTP_KEY]["s"]
        try:
            async with http.post(f"{config.tools_url.rstrip('/')}/tools/{name}", data=args,
                                 headers={CALL_ID_HEADER: state["call_id"],
                                          "Content-Type": "application/json"}) as r:
                return await r.text()
        except (aiohttp.ClientError, OSError) as exc:
            return json.dumps({"error": "backend_unreachable", "message": type(exc).__name__})

    async def respond(t_end: float) -> None:
        entry = None
        if config.hears:
            entry = await ears.collect()
            dlg.caller_said(entry["heard"])
        start = t_end + config.ttft_ms / 1000.0
        text, calls = dlg.next()
        rounds = 0
        while calls and rounds < 8:
            await _sleep_until(_now() + config.ttft_ms / 1000.0 if config.hears else start)
            for cid, name, args in calls:
                dlg.tool_result(cid, await tool(name, args))
            start = _now() + config.ttft_ms / 1000.0
            text, calls = dlg.next()
            rounds += 1
        if entry is not None:
            entry["reply"] = text
        if text:
            frames = await speech.frames(text)
            if config.hears:  # recognition + policy + TTS, then the configured delay
                start = _now() + config.ttft_ms / 1000.0
            await say(text, frames, start)

    def launch(coro: Any) -> None:
        task = state["task"]
        if task is not None and not task.done():
            task.cancel()
        state["task"] = asyncio.create_task(coro)

    try:
        async for msg in ws:
            t = _now()
            if msg.type != aiohttp.WSMsgType.TEXT:
                continue
            try:
                m = tw.parse_twilio_message(msg.data)
            except TransportError:
                await ws.close(code=1003, message=b"protocol error")
                break
            if m.event == "start":
                state["sid"] = m.stream_sid
                state["call_id"] = ears.call_id = m.custom_parameters.get("call_id", m.call_sid)
                dlg.hinted = m.custom_parameters.get("callsim_text_hints") == "1"
                dlg.set_pack(packs.get(m.custom_parameters.get("pack", "")))
                if config.greet and not config.silent:
                    launch(greet(t + config.greet_delay_ms / 1000.0))
            elif m.event == CALLER_TEXT:
                dlg.hint(m.text)
            elif m.event == "media":
                pcm = dsp.decode(m.payload, "mulaw")
                ev = vad.feed(pcm)
                if config.hears:
                    utt.add(pcm, vad.voiced)
                if ev == "start":
                    task = state["task"]
                    if task is not None and not task.done():
                        was_speaking = state["speaking"]
                        task.cancel()
                        state["speaking"] = False
                        if was_speaking:  # barge-in: flush what the line still holds
                            await ws.send_str(tw.agent_clear(state["sid"]))
                elif ev == "end":
                    _caller_turn_ended(dlg, ears, utt)
                    if not config.silent:
                        launch(respond(t))
            elif m.event == "stop":
                break
    finally:
        await _end_session(state["task"], ws)
    return ws


CALLER_TEXT = tw.CALLER_TEXT_EVENT


# --------------------------------------------------------------------------- Realtime


def _chat_tools(tools: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [{"type": "function", "function": {k: v for k, v in t.items() if k != "type"}}
            for t in tools if isinstance(t, dict)]


async def _realtime(request: web.Request) -> web.WebSocketResponse:
    config = request.app[VCONFIG_KEY]
    packs = request.app[VPACKS_KEY]
    speech = request.app[SPEECH_KEY]
    speech.start()
    ws = web.WebSocketResponse(autoping=True, max_msg_size=4 * 1024 * 1024)
    await ws.prepare(request)
    dlg = _Dialogue(config, packs)
    dlg.set_pack(None)
    vad = EnergyVAD(config.vad_silence_ms)
    utt = _Utterance()
    ears = _Ears(speech, "realtime")
    down = dsp.MulawFrom24k()  # the caller's 24 kHz appends onto the 8 kHz line
    st: dict[str, Any] = {"fmt": "pcm16", "server_vad": True, "task": None, "speaking": False,
                          "buf": np.zeros(0, dtype=np.float32), "n": 0, "in_s": 0.0}

    async def send(typ: str, **fields: Any) -> None:
        await ws.send_str(rt.server_event(typ, **fields))

    def usage(text: str, out_s: float) -> dict[str, Any]:
        words = sum(len(str(m.get("content") or "").split()) for m in dlg.messages)
        out_audio = int(out_s * 10)
        in_audio = int(st["in_s"] * 10)
        return {"total_tokens": words + in_audio + len(text.split()) + out_audio,
                "input_tokens": words + in_audio, "output_tokens": len(text.split()) + out_audio,
                "input_token_details": {"text_tokens": words, "audio_tokens": in_audio,
                                        "cached_tokens": 0},
                "output_token_details": {"text_tokens": len(text.split()),
                                         "audio_tokens": out_audio}}

    async def respond(t_ready: float) -> None:
        st["n"] += 1
        rid = f"resp_{st['n']}"
        entry = None
        if config.hears and ears.pending:
            entry = await ears.collect()
            dlg.caller_said(entry["heard"])
            item = f"item_heard_{st['n']}"
            await send("conversation.item.input_audio_transcription.completed", item_id=item,
                       content_index=0, transcript=entry["heard"])
        if not config.hears:
            await _sleep_until(t_ready + config.ttft_ms / 1000.0)
        text, calls = dlg.next()
        if entry is not None:
            entry["reply"] = text
        frames: list[bytes] = []
        if config.hears:  # recognition + policy + TTS, then the configured delay
            if text and not calls:
                frames = await speech.frames(text)
            await _sleep_until(_now() + config.ttft_ms / 1000.0)
        await send("response.created", response={"id": rid, "status": "in_progress"})
        if calls:
            for cid, name, args in calls:
                await send("response.function_call_arguments.done", response_id=rid,
                           call_id=cid, name=name, arguments=args)
            await send("response.done", response={"id": rid, "status": "completed",
                                                  "usage": usage("", 0.0)})
            return
        if not config.hears:
            frames = await speech.frames(text)
        await send("response.output_audio_transcript.delta", response_id=rid, delta=text)
        st["speaking"] = True
        if st["fmt"] != "g711_ulaw":
            # the reply to 24 kHz pcm16 in one piece (a filter per 20 ms frame would cost the
            # server more than everything else it does), then cut into 20 ms deltas
            pcm = dsp.mulaw_to_pcm16_24k(b"".join(frames))
            frames = [pcm[i:i + 960] for i in range(0, len(pcm), 960)]
        nxt = _now()
        for f in frames:
            await _sleep_until(nxt)
            await ws.send_str(rt.server_event("response.output_audio.delta", response_id=rid,
                                              delta=base64.b64encode(f).decode()))
            nxt += 0.020
        st["speaking"] = False
        await send("response.output_audio.done", response_id=rid)
        await send("response.done", response={"id": rid, "status": "completed",
                                              "usage": usage(text, len(frames) * 0.02)})

    async def cancel(cleared: bool) -> None:
        task = st["task"]
        if task is not None and not task.done():
            was = st["speaking"]
            task.cancel()
            st["speaking"] = False
            if was and cleared:
                await send("output_audio_buffer.cleared")
            await send("response.done", response={"status": "cancelled",
                                                  "usage": usage("", 0.0)})

    def launch(t: float) -> None:
        st["task"] = asyncio.create_task(respond(t))

    await send("session.created", session={"id": "sess_callsim", "model": config.policy.model})
    try:
        async for msg in ws:
            t = _now()
            if msg.type != aiohttp.WSMsgType.TEXT:
                continue
            try:
                ev = rt.parse_client_event(msg.data)
            except TransportError as exc:
                await send("error", error={"type": "invalid_request_error", "message": str(exc)})
                continue
            if ev.type == "session.update":
                s = ev.session or {}
                st["fmt"] = s.get("input_audio_format", st["fmt"])
                st["server_vad"] = s.get("turn_detection", {"type": "server_vad"}) is not None
                tools = _chat_tools(list(s.get("tools") or []))
                pack = identify_pack(tools, [{"role": "system",
                                              "content": s.get("instructions", "")}], packs)
                dlg.set_pack(pack, str(s.get("instructions") or ""), tools)
                await send("session.updated", session=s)
            elif ev.type == rt.CALLER_TEXT_EVENT:
                dlg.hinted = True
                dlg.hint(ev.text)
            elif ev.type == "input_audio_buffer.append":
                # pcm16 at 24 kHz heard as on an 8 kHz line: the caller's appends filtered as
                # one stream, not a filter designed per 20 ms append
                pcm = dsp.decode(ev.audio if st["fmt"] == "g711_ulaw" else down(ev.audio), "mulaw")
                st["in_s"] += len(pcm) / dsp.TELEPHONE_RATE
                buf = np.concatenate([st["buf"], pcm])
                while len(buf) >= 160:
                    frame, buf = buf[:160], buf[160:]
                    v = vad.feed(frame)
                    if config.hears:
                        utt.add(frame, vad.voiced)
                    if v == "start" and st["server_vad"]:
                        await send("input_audio_buffer.speech_started")
                        await cancel(cleared=True)
                    elif v == "end" and st["server_vad"]:
                        await send("input_audio_buffer.speech_stopped")
                        await send("input_audio_buffer.committed")
                        _caller_turn_ended(dlg, ears, utt)
                        launch(t)
                st["buf"] = buf
            elif ev.type == "input_audio_buffer.commit":
                await send("input_audio_buffer.committed")
                _caller_turn_ended(dlg, ears, utt)
            elif ev.type == "conversation.item.create":
                item = ev.item or {}
                if item.get("type") == "function_call_output":
                    dlg.tool_result(str(item.get("call_id")), str(item.get("output") or ""))
                await send("conversation.item.created", item=item)
            elif ev.type == "response.create":
                launch(t)
            elif ev.type == "response.cancel":
                await cancel(cleared=True)
    finally:
        await _end_session(st["task"], ws)
    return ws


# --------------------------------------------------------------------------- apps


def create_voice_routes(app: web.Application, config: VoiceAgentConfig,
                        packs: Mapping[str, Pack] | None = None) -> None:
    """Add ``GET /twilio`` and ``GET /v1/realtime`` (WebSocket) to ``app``."""
    app[VCONFIG_KEY] = config
    app[VPACKS_KEY] = dict(packs) if packs is not None else load_packs()
    app[HTTP_KEY] = {}
    app[SPEECH_KEY] = Speech(config)

    async def on_startup(a: web.Application) -> None:
        a[HTTP_KEY]["s"] = aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=30))

    async def on_cleanup(a: web.Application) -> None:
        s = a[HTTP_KEY].pop("s", None)
        if s is not None:
            await s.close()
        a[SPEECH_KEY].close()

    app.on_startup.append(on_startup)
    app.on_cleanup.append(on_cleanup)
    app.router.add_get("/twilio", _twilio)
    app.router.add_get("/v1/realtime", _realtime)


def create_voice_app(
    config: VoiceAgentConfig, packs: Mapping[str, Pack] | None = None
) -> web.Application:
    """An aiohttp app serving only the voice endpoints (see :func:`create_voice_routes`)."""
    app = web.Application()
    create_voice_routes(app, config, packs)
    return app


@contextlib.asynccontextmanager
async def start_voice_agent(config: VoiceAgentConfig, host: str = "127.0.0.1", port: int = 0,
                            packs: Mapping[str, Pack] | None = None) -> AsyncIterator[str]:
    """Run the voice endpoints in the current loop; yields ``ws://HOST:PORT`` (append
    ``/twilio`` or ``/v1/realtime``)."""
    runner = web.AppRunner(create_voice_app(config, packs), access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, host, port)
    await site.start()
    try:
        yield f"ws://{host}:{runner.addresses[0][1]}"
    finally:
        await runner.cleanup()
