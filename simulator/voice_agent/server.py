"""The reference agent's audio endpoints: Twilio Media Streams (``/twilio``, agent side) and
an OpenAI-Realtime-style server (``/v1/realtime``).

``--stt none`` (the only mode so far): the agent does not recognise speech. It end-points the
caller with an energy VAD (end of speech = the ``vad_silence_ms / 20``-th consecutive silent
20 ms frame after speech), waits ``ttft_ms``, and answers with synthetic voiced audio whose
length is proportional to its reply's word count. The reply's words come from the text
reference agent's policy, fed with the caller's words when the client sends them on the
callsim side channel (``callsim.caller_text``, enabled by ``text_hints``), else from a
fixed scripted dialogue. It stops talking at once when the caller barges in and sends
``clear`` (Twilio) / ``output_audio_buffer.cleared`` (Realtime).
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import json
import time
from collections.abc import AsyncIterator, Mapping
from dataclasses import dataclass, field
from typing import Any

import aiohttp
import numpy as np
from aiohttp import web

from simulator.agent.policy import AgentConfig, decide, identify_pack
from simulator.audio import dsp
from simulator.backend import CALL_ID_HEADER
from simulator.errors import InputError, TransportError
from simulator.personas.pack import Pack, load_packs
from simulator.transports import realtime as rt
from simulator.transports import twilio as tw
from simulator.transports.audio_session import EnergyVAD, synthetic_speech

_now = time.perf_counter
SCRIPTED = (
    "Thanks for that. Could you tell me a little more?",
    "I see. Let me check that for you.",
    "Alright. Is there anything else I can help you with?",
)


@dataclass(frozen=True)
class VoiceAgentConfig:
    """Knobs of the voice endpoints. ``ttft_ms``: end of caller speech (as the VAD decides)
    -> first agent audio. ``vad_silence_ms``: VAD hangover. ``seconds_per_word``: length of
    the synthetic reply audio. ``tools_url``: base URL of the HTTP tool backend the Twilio
    endpoint calls (``POST {tools_url}/tools/{name}``)."""

    ttft_ms: float = 300.0
    vad_silence_ms: float = 500.0
    seconds_per_word: float = 0.3
    stt: str = "none"
    greet: bool = True
    tools_url: str | None = None
    f0_hz: float = 210.0
    policy: AgentConfig = field(default_factory=AgentConfig)

    def __post_init__(self) -> None:
        if self.stt != "none":
            raise InputError(f"--stt: only 'none' is supported so far, got {self.stt!r}")
        if self.ttft_ms < 0 or self.vad_silence_ms < 20 or self.seconds_per_word <= 0:
            raise InputError(
                "voice agent: need ttft_ms >= 0, vad_silence_ms >= 20, seconds_per_word > 0")


VCONFIG_KEY: web.AppKey[VoiceAgentConfig] = web.AppKey("voice_config", VoiceAgentConfig)
VPACKS_KEY: web.AppKey[dict[str, Pack]] = web.AppKey("voice_packs", dict)
HTTP_KEY: web.AppKey[dict[str, aiohttp.ClientSession]] = web.AppKey("voice_http", dict)


class _Dialogue:
    """The conversation as Chat-Completions messages, decided by the text policy."""

    def __init__(self, config: VoiceAgentConfig, packs: Mapping[str, Pack]) -> None:
        self.config = config
        self.packs = packs
        self.messages: list[dict[str, Any]] = []
        self.tools: list[dict[str, Any]] = []
        self.hinted = False
        self.pending_text: str | None = None
        self.turns = 0

    def set_pack(self, pack: Pack | None, instructions: str = "",
                 tools: list[dict[str, Any]] | None = None) -> None:
        self.tools = tools if tools is not None else (pack.tool_schemas() if pack else [])
        prompt = instructions or (pack.system_prompt if pack else "")
        self.messages = [{"role": "system", "content": prompt}]

    def caller_said(self) -> None:
        text = self.pending_text
        self.pending_text = None
        self.turns += 1
        self.messages.append({"role": "user", "content": text or ""})

    def next(self) -> tuple[str, list[tuple[str, str, str]]]:
        """(reply text, tool calls as (id, name, arguments))."""
        if not self.hinted and self.turns > 0:
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


async def _sleep_until(t: float) -> None:
    d = t - _now()
    if d > 0:
        await asyncio.sleep(d)


# --------------------------------------------------------------------------- Twilio


async def _twilio(request: web.Request) -> web.WebSocketResponse:
    config = request.app[VCONFIG_KEY]
    packs = request.app[VPACKS_KEY]
    ws = web.WebSocketResponse(autoping=True, max_msg_size=1024 * 1024)
    await ws.prepare(request)
    dlg = _Dialogue(config, packs)
    vad = EnergyVAD(config.vad_silence_ms)
    state: dict[str, Any] = {"sid": "", "call_id": "", "speaking": False, "task": None}
    marks = 0

    async def say(text: str, start_at: float) -> None:
        nonlocal marks
        frames = _speech_frames(text, config)
        await _sleep_until(start_at)
        if dlg.hinted:
            await ws.send_str(tw.agent_text(state["sid"], text))
        state["speaking"] = True
        nxt = _now()
        for f in frames:
            await _sleep_until(nxt)
            await ws.send_str(tw.agent_media(state["sid"], f))
            nxt += 0.020
        state["speaking"] = False
        marks += 1
        await ws.send_str(tw.agent_mark(state["sid"], f"reply-{marks}"))

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
        start = t_end + config.ttft_ms / 1000.0
        text, calls = dlg.next()
        rounds = 0
        while calls and rounds < 8:
            await _sleep_until(start)
            for cid, name, args in calls:
                dlg.tool_result(cid, await tool(name, args))
            start = _now() + config.ttft_ms / 1000.0
            text, calls = dlg.next()
            rounds += 1
        if text:
            await say(text, start)

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
                state["call_id"] = m.custom_parameters.get("call_id", m.call_sid)
                dlg.hinted = m.custom_parameters.get("callsim_text_hints") == "1"
                dlg.set_pack(packs.get(m.custom_parameters.get("pack", "")))
                if config.greet:
                    text, _ = dlg.next()
                    launch(say(text, t + config.ttft_ms / 1000.0))
            elif m.event == CALLER_TEXT:
                dlg.pending_text = m.text
            elif m.event == "media":
                pcm = dsp.decode(m.payload, "mulaw")
                ev = vad.feed(pcm)
                if ev == "start":
                    task = state["task"]
                    if task is not None and not task.done():
                        was_speaking = state["speaking"]
                        task.cancel()
                        state["speaking"] = False
                        if was_speaking:  # barge-in: flush what the line still holds
                            await ws.send_str(tw.agent_clear(state["sid"]))
                elif ev == "end":
                    dlg.caller_said()
                    launch(respond(t))
            elif m.event == "stop":
                break
    finally:
        task = state["task"]
        if task is not None:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task
        await ws.close()
    return ws


CALLER_TEXT = tw.CALLER_TEXT_EVENT


# --------------------------------------------------------------------------- Realtime


def _chat_tools(tools: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [{"type": "function", "function": {k: v for k, v in t.items() if k != "type"}}
            for t in tools if isinstance(t, dict)]


async def _realtime(request: web.Request) -> web.WebSocketResponse:
    config = request.app[VCONFIG_KEY]
    packs = request.app[VPACKS_KEY]
    ws = web.WebSocketResponse(autoping=True, max_msg_size=4 * 1024 * 1024)
    await ws.prepare(request)
    dlg = _Dialogue(config, packs)
    dlg.set_pack(None)
    vad = EnergyVAD(config.vad_silence_ms)
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
        await _sleep_until(t_ready + config.ttft_ms / 1000.0)
        text, calls = dlg.next()
        await send("response.created", response={"id": rid, "status": "in_progress"})
        if calls:
            for cid, name, args in calls:
                await send("response.function_call_arguments.done", response_id=rid,
                           call_id=cid, name=name, arguments=args)
            await send("response.done", response={"id": rid, "status": "completed",
                                                  "usage": usage("", 0.0)})
            return
        frames = _speech_frames(text, config)
        await send("response.output_audio_transcript.delta", response_id=rid, delta=text)
        st["speaking"] = True
        nxt = _now()
        for f in frames:
            await _sleep_until(nxt)
            payload = f if st["fmt"] == "g711_ulaw" else dsp.mulaw_to_pcm16_24k(f)
            await ws.send_str(rt.server_event("response.output_audio.delta", response_id=rid,
                                              delta=base64.b64encode(payload).decode()))
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
                dlg.pending_text = ev.text
            elif ev.type == "input_audio_buffer.append":
                pcm = (dsp.decode(ev.audio, "mulaw") if st["fmt"] == "g711_ulaw"
                       else dsp.from_pcm16_bytes(ev.audio, dsp.REALTIME_RATE, dsp.TELEPHONE_RATE))
                st["in_s"] += len(pcm) / dsp.TELEPHONE_RATE
                buf = np.concatenate([st["buf"], pcm])
                while len(buf) >= 160:
                    frame, buf = buf[:160], buf[160:]
                    v = vad.feed(frame)
                    if v == "start" and st["server_vad"]:
                        await send("input_audio_buffer.speech_started")
                        await cancel(cleared=True)
                    elif v == "end" and st["server_vad"]:
                        await send("input_audio_buffer.speech_stopped")
                        await send("input_audio_buffer.committed")
                        dlg.caller_said()
                        launch(t)
                st["buf"] = buf
            elif ev.type == "input_audio_buffer.commit":
                await send("input_audio_buffer.committed")
                dlg.caller_said()
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
        task = st["task"]
        if task is not None:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task
        await ws.close()
    return ws


# --------------------------------------------------------------------------- apps


def create_voice_routes(app: web.Application, config: VoiceAgentConfig,
                        packs: Mapping[str, Pack] | None = None) -> None:
    """Add ``GET /twilio`` and ``GET /v1/realtime`` (WebSocket) to ``app``."""
    app[VCONFIG_KEY] = config
    app[VPACKS_KEY] = dict(packs) if packs is not None else load_packs()
    app[HTTP_KEY] = {}

    async def on_startup(a: web.Application) -> None:
        a[HTTP_KEY]["s"] = aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=30))

    async def on_cleanup(a: web.Application) -> None:
        s = a[HTTP_KEY].pop("s", None)
        if s is not None:
            await s.close()

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
