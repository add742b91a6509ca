"""Transport ``webrtc``: callsim as the WebRTC peer of a bot behind an HTTP offer endpoint.

One aiortc peer connection per call, signalled the way Pipecat's SmallWebRTC transport
expects: the SDP offer (with every ICE candidate already gathered) is POSTed as JSON to the
target URL, the JSON answer comes back in the response. Caller audio is the line profile's
8 kHz audio upsampled to 48 kHz and handed to aiortc's Opus encoder one 20 ms frame per tick
of the audio call loop; the agent's Opus audio is decoded by aiortc, stamped as aiortc hands
each frame over, and passed to the loop as 8 kHz mu-law, like every audio transport's.
"""

from __future__ import annotations

import asyncio
import contextlib
import contextvars
import fractions
import functools
import ipaddress
import json
import time
from collections import deque
from typing import Any
from urllib.parse import urlsplit

import numpy as np

from simulator.audio import dsp
from simulator.audio.line import is_voiced_mulaw
from simulator.callscript import CallScript
from simulator.errors import InputError, TransportError
from simulator.transports.base import Deadlines, SessionClient
from simulator.transports.line import LineEvent, MediaPeerLine
from simulator.transports.registry import TransportOptions, TransportSpec, register

_now = time.perf_counter_ns
RATE = 48_000                      # Opus's clock; what callsim hands the encoder
FRAME_SAMPLES = RATE // 50         # 20 ms
FRAME_BYTES = FRAME_SAMPLES * 2    # int16 mono
SILENCE = bytes(FRAME_BYTES)
_TIME_BASE = fractions.Fraction(1, RATE)
DTMF_TONE_S, DTMF_GAP_S = 0.1, 0.04


# --------------------------------------------------------------------------- sans-I/O


def caller_frames(pcm8k: np.ndarray) -> list[bytes]:
    """The caller's 8 kHz float32 audio as 20 ms frames of 48 kHz int16 mono (960 samples,
    the last padded with silence): what the Opus encoder is given. Polyphase resampling of
    the whole utterance, so the same audio gives the same bytes."""
    if len(pcm8k) == 0:
        return []
    pcm = dsp.to_int16(dsp.resample(np.asarray(pcm8k, dtype=np.float32), dsp.TELEPHONE_RATE,
                                    RATE)).astype("<i2").tobytes()
    frames = [pcm[i:i + FRAME_BYTES] for i in range(0, len(pcm), FRAME_BYTES)]
    frames[-1] = frames[-1] + bytes(FRAME_BYTES - len(frames[-1]))
    return frames


def offer_body(sdp: str, request_data: dict[str, Any]) -> bytes:
    """The JSON a SmallWebRTC offer endpoint takes (``pc_id`` absent: a new connection)."""
    return json.dumps({"sdp": sdp, "type": "offer", "request_data": request_data},
                      separators=(",", ":")).encode()


def parse_answer(body: bytes) -> tuple[str, str]:
    """The answer's SDP and its ``pc_id`` from the endpoint's JSON response. Raises
    ``TransportError("protocol_error")`` when it is not an SDP answer."""
    try:
        obj = json.loads(body)
    except (json.JSONDecodeError, UnicodeDecodeError):
        raise TransportError("protocol_error", "offer response is not JSON") from None
    if not isinstance(obj, dict) or obj.get("type") != "answer" or \
            not isinstance(obj.get("sdp"), str) or "m=audio" not in obj["sdp"]:
        raise TransportError("protocol_error", "offer response holds no SDP answer with audio")
    return obj["sdp"], str(obj.get("pc_id") or "")


def _is_loopback(host: str) -> bool:
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return host == "localhost"


def loopback_candidates_only(sdp: str) -> str:
    """``sdp`` without the ICE candidates that are not loopback addresses: towards a bot on
    this machine callsim checks connectivity over loopback only, never towards the host's
    other addresses."""
    out = []
    for line in sdp.splitlines():
        if line.startswith("a=candidate:"):
            parts = line.split()
            if len(parts) < 6 or not _is_loopback(parts[4]):
                continue
        out.append(line)
    return "\r\n".join(out) + "\r\n"


def _consent_expired(pc: Any) -> bool:
    """Whether aioice gave up on a connected peer connection because consent expired: its
    consent task clears its own handle before it closes the connection, and only then (a
    connection closed any other way, by the agent's DTLS close or by ours, keeps the
    finished task)."""
    for t in pc.getTransceivers() if pc is not None else []:
        ice = getattr(getattr(t.receiver.transport, "transport", None), "_connection", None)
        if ice is not None and getattr(ice, "_query_consent_task", False) is None:
            return True
    return False


def check_target(target: str) -> str:
    """The offer URL, checked: ``http(s)://host[:port]/path``. Raises :class:`InputError`."""
    u = urlsplit(target)
    if u.scheme not in ("http", "https") or not u.hostname:
        raise InputError(f"--target {target!r}: the webrtc transport wants the bot's HTTP "
                         "offer URL, e.g. http://127.0.0.1:7860/api/offer")
    return target


# aioice leaves loopback out of the host candidates it gathers. A call to a bot on this
# machine offers 127.0.0.1 alone (set per call in this context variable while aiortc
# gathers), so no connectivity check goes to the host's other addresses.
_HOST_ADDRESSES: contextvars.ContextVar[list[str] | None] = contextvars.ContextVar(
    "callsim_webrtc_host_addresses", default=None)
_hooked = False


def _hook_host_addresses() -> None:
    global _hooked
    if _hooked:
        return
    import aioice.ice

    original = aioice.ice.get_host_addresses

    def host_addresses(use_ipv4: bool, use_ipv6: bool) -> list[str]:
        chosen = _HOST_ADDRESSES.get()
        return list(chosen) if chosen is not None else original(use_ipv4, use_ipv6)

    aioice.ice.get_host_addresses = host_addresses
    _hooked = True


# --------------------------------------------------------------------------- the line


@functools.cache
def _caller_track_class() -> Any:
    """The caller's outgoing audio track (aiortc is imported only when a call is made):
    aiortc's RTP sender awaits ``recv`` and encodes each frame as it is returned, so frames
    leave on the call loop's deadlines rather than on a clock of aiortc's."""
    from aiortc.mediastreams import MediaStreamError, MediaStreamTrack

    class CallerTrack(MediaStreamTrack):
        kind = "audio"

        def __init__(self) -> None:
            super().__init__()
            self.frames: asyncio.Queue[Any] = asyncio.Queue()

        async def recv(self) -> Any:
            frame = await self.frames.get()
            if frame is None:
                raise MediaStreamError
            return frame

    return CallerTrack


def _require_aiortc() -> None:
    try:
        import aiortc  # noqa: F401
    except ImportError:
        raise InputError("transport 'webrtc' needs aiortc: pip install 'callsim[webrtc]'") \
            from None


class WebRTCLine(MediaPeerLine):
    """One WebRTC call (see :class:`~simulator.transports.line.AudioLine`).

    After the call: ``connected_ns`` (ICE and DTLS up), ``first_audio_ns`` (first agent frame
    handed over by aiortc), ``holds_ms`` (per agent frame: RTP packet arrival -> decoded frame
    handed over, i.e. aiortc's jitter buffer and decoder thread), ``hangup_by``."""

    chunk_ms = 20
    peer_kind = "WebRTC"
    silence_chunk = SILENCE
    agent_calls_tools = True

    def __init__(self, target: str, deadlines: Deadlines, call_id: str,
                 request_data: dict[str, Any]) -> None:
        self.target = target
        self.dl = deadlines
        self.call_ref = call_id
        self.request_data = request_data
        self.conn_setup_ns = 0
        self.connected_ns: int | None = None
        self.first_audio_ns: int | None = None
        self.holds_ms: list[float] = []
        self.hangup_by = ""
        self.pc_id = ""
        self.frames_sent = 0
        self.received_audio: bytearray | None = None
        self.max_bytes = deadlines.max_reply_bytes
        self._events: asyncio.Queue[LineEvent | None] = asyncio.Queue()
        self._closed = False
        self._closing = False
        self._failure: TransportError | None = None
        self._pc: Any = None
        self._track: Any = None
        self._pull_task: asyncio.Task[None] | None = None
        self._arrivals: dict[int, int] = {}   # RTP timestamp -> arrival (perf_counter_ns)
        self._ts_origin: int | None = None
        self._dtmf: deque[bytes] = deque()
        self._dtmf_done: list[tuple[int, asyncio.Future[None]]] = []

    # -- set-up
    async def connect(self, session: Any) -> None:
        """Offer, answer, then wait for ICE and DTLS: ``connect_s`` for the whole of it."""
        import aiohttp
        from aiortc import (
            RTCConfiguration,
            RTCPeerConnection,
            RTCSessionDescription,
        )

        _hook_host_addresses()
        loopback = _is_loopback(urlsplit(self.target).hostname or "")
        t0 = _now()
        self._pc = pc = RTCPeerConnection(RTCConfiguration(iceServers=[]))  # no STUN, no TURN
        self._track = _caller_track_class()()
        pc.addTransceiver(self._track, direction="sendrecv")
        channel = pc.createDataChannel("callsim")
        channel.on("message", self._on_message)
        connected = asyncio.Event()

        @pc.on("connectionstatechange")
        def _state() -> None:
            state = pc.connectionState
            if state == "connected":
                connected.set()
            elif state == "failed":
                self._fail(TransportError("reset", "the WebRTC connection failed"))
                connected.set()
            elif state == "closed":
                self._remote_ended()
                connected.set()

        try:
            async with asyncio.timeout(self.dl.connect_s):
                token = _HOST_ADDRESSES.set(["127.0.0.1"] if loopback else None)
                try:
                    await pc.setLocalDescription(await pc.createOffer())
                finally:
                    _HOST_ADDRESSES.reset(token)
                body = offer_body(pc.localDescription.sdp, self.request_data)
                try:
                    async with session.post(self.target, data=body, headers={
                            "Content-Type": "application/json"}) as resp:
                        raw = await resp.read()
                        status = resp.status
                except aiohttp.ClientConnectorError as exc:
                    refused = isinstance(exc.os_error, ConnectionRefusedError)
                    raise TransportError("connect_refused" if refused else "connect_error",
                                         str(exc.os_error)) from None
                except aiohttp.ClientError as exc:
                    raise TransportError("connect_error", f"offer: {exc}") from None
                if status != 200:
                    raise TransportError("http_4xx" if status < 500 else "http_5xx",
                                         f"offer answered HTTP {status}: {raw[:120]!r}")
                sdp, self.pc_id = parse_answer(raw)
                if loopback:
                    sdp = loopback_candidates_only(sdp)
                await pc.setRemoteDescription(RTCSessionDescription(sdp=sdp, type="answer"))
                receiver = pc.getTransceivers()[0].receiver
                self._stamp_packets(receiver)
                await connected.wait()
        except TimeoutError:
            raise TransportError("connect_timeout", "no WebRTC connection in time "
                                 f"({self.dl.connect_s:g} s: offer, answer, ICE, DTLS)") from None
        if self._failure is not None:
            raise self._failure
        if self._closed:
            raise TransportError("reset", "the agent closed the connection while it was set up")
        self.connected_ns = _now()
        self.conn_setup_ns = self.connected_ns - t0
        self._pull_task = asyncio.create_task(self._pull(receiver.track))

    def _stamp_packets(self, receiver: Any) -> None:
        """Note when each RTP packet of the agent's audio arrived (after SRTP), to measure how
        long aiortc holds it before the decoded frame is handed over."""
        handle = receiver._handle_rtp_packet
        arrivals = self._arrivals

        async def stamped(packet: Any, arrival_time_ms: int) -> None:
            if self._ts_origin is None:
                self._ts_origin = packet.timestamp
            if len(arrivals) > 4096:
                arrivals.clear()  # frames that never came out (lost, or not decoded)
            arrivals[packet.timestamp] = _now()
            await handle(packet, arrival_time_ms)

        receiver._handle_rtp_packet = stamped

    def _on_message(self, message: Any) -> None:
        # Pipecat says goodbye on the data channel before it closes the connection.
        if not isinstance(message, str):
            return
        with contextlib.suppress(ValueError, AttributeError):
            obj = json.loads(message)
            if obj.get("type") == "signalling" and \
                    (obj.get("message") or {}).get("type") == "peerLeft":
                if not self._closing and not self.hangup_by:
                    self.hangup_by = "agent"
                self._end()

    async def _pull(self, track: Any) -> None:
        """The agent's audio as aiortc hands it over: each decoded frame is stamped, mixed
        down to 8 kHz mono mu-law (a resampler that keeps its state across frames) and
        queued for the call loop."""
        from aiortc.mediastreams import MediaStreamError
        from av import AudioResampler

        # Stereo kept through the resampler: its own downmix to mono is 3 dB down.
        resampler = AudioResampler(format="s16", layout="stereo", rate=dsp.TELEPHONE_RATE)
        try:
            while not self._closed:
                frame = await track.recv()
                t = _now()
                if self._ts_origin is not None and frame.pts is not None:
                    arrived = self._arrivals.pop((frame.pts + self._ts_origin) & 0xFFFFFFFF,
                                                 None)
                    if arrived is not None:
                        self.holds_ms.append((t - arrived) / 1e6)
                pcm = b"".join(bytes(f.planes[0])[: f.samples * 4]
                               for f in resampler.resample(frame))
                if not pcm:
                    continue
                lr = np.frombuffer(pcm, dtype="<i2").reshape(-1, 2).astype(np.int32)
                audio = dsp.lin2ulaw(((lr[:, 0] + lr[:, 1]) // 2).astype(np.int16)).tobytes()
                if self.first_audio_ns is None:
                    self.first_audio_ns = t
                rec = self.received_audio
                if rec is not None and len(rec) < self.max_bytes:
                    rec += audio
                self._events.put_nowait(LineEvent("audio", t, audio=audio,
                                                  duration_s=len(audio) / dsp.TELEPHONE_RATE,
                                                  voiced=is_voiced_mulaw(audio)))
        except MediaStreamError:
            self._remote_ended()

    def _remote_ended(self) -> None:
        """The connection or the agent's track ended without callsim hanging up: the agent
        closed it (a hang-up), unless ICE consent expired (RFC 7675: the agent stopped
        answering connectivity checks for 30 s), which is a lost connection."""
        if self._closing or self._closed or self.hangup_by:
            self._end()
            return
        if self.connected_ns is not None and _consent_expired(self._pc):
            self._fail(TransportError("reset", "the agent stopped answering ICE consent "
                                      "checks (consent expired after 30 s)"))
            return
        self.hangup_by = "agent"
        self._end()

    def _fail(self, exc: TransportError) -> None:
        self._failure = self._failure or exc
        self._end()

    def _end(self) -> None:
        if not self._closed:
            self._closed = True
            self._events.put_nowait(None)
            for _, fut in self._dtmf_done:
                if not fut.done():
                    fut.set_result(None)

    # -- AudioLine
    def encode(self, pcm8k: np.ndarray) -> list[bytes]:
        return caller_frames(pcm8k)

    async def send_audio(self, payload: bytes) -> None:
        if self._closed:
            return  # hung up: the receiving side reports the end of the line
        from av import AudioFrame

        if self._dtmf:
            payload = self._dtmf.popleft()  # a digit in progress replaces the audio
        # Both channels, as Opus codes them: aiortc's own mono -> stereo upmix is 3 dB down.
        mono = np.frombuffer(payload, dtype="<i2")
        frame = AudioFrame.from_ndarray(np.repeat(mono, 2).reshape(1, -1), format="s16",
                                        layout="stereo")
        frame.sample_rate = RATE
        frame.pts = self.frames_sent * FRAME_SAMPLES
        frame.time_base = _TIME_BASE
        self.frames_sent += 1
        self._track.frames.put_nowait(frame)
        while self._dtmf_done and self._dtmf_done[0][0] <= self.frames_sent:
            _, fut = self._dtmf_done.pop(0)
            if not fut.done():
                fut.set_result(None)

    async def send_dtmf(self, digit: str) -> None:
        """``digit`` as an in-band tone (100 ms, then 40 ms of silence) in the audio: aiortc
        negotiates no telephone-event. Returns once it has been sent."""
        digit = digit.upper()
        if self._closed or digit not in "0123456789*#ABCD" or len(digit) != 1:
            return
        tone = np.concatenate([dsp.dtmf_tone(digit, dsp.TELEPHONE_RATE, DTMF_TONE_S),
                               dsp.silence(dsp.TELEPHONE_RATE, DTMF_GAP_S)])
        frames = caller_frames(tone)
        self._dtmf.extend(frames)
        fut: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._dtmf_done.append((self.frames_sent + len(self._dtmf), fut))
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(2.0):
                await fut

    def setup_fields(self) -> dict[str, float | None]:
        """Per-call timings for the call's first turn record (ms)."""
        first = (None if self.first_audio_ns is None or self.connected_ns is None
                 else round((self.first_audio_ns - self.connected_ns) / 1e6, 3))
        hold = round(float(np.median(self.holds_ms)), 3) if self.holds_ms else None
        return {"answer_to_audio_ms": first, "jitter_buffer_ms": hold}

    async def aclose(self) -> None:
        """Hang up (close the peer connection unless the agent already did)."""
        self._closing = True
        if not self._closed and not self.hangup_by:
            self.hangup_by = "caller"
        self._end()
        if self._track is not None:
            self._track.frames.put_nowait(None)
        if self._pc is not None:
            with contextlib.suppress(Exception):
                await self._pc.close()
        if self._pull_task is not None:
            self._pull_task.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await self._pull_task


class WebRTCTransport(SessionClient):
    """Calls ``target`` (a SmallWebRTC-style HTTP offer endpoint) once per call; see
    :class:`WebRTCLine`. ``request_data`` goes into every offer beside ``call_id`` and
    ``pack`` (Pipecat hands it to the bot as the runner's ``body``)."""

    connection_limit = None  # the offers' session keeps aiohttp's default cap

    def __init__(self, target: str, *, deadlines: Deadlines | None = None,
                 request_data: dict[str, Any] | None = None,
                 record_audio: bool = False) -> None:
        self.target = check_target(target)
        _require_aiortc()
        self.deadlines = deadlines or Deadlines()
        self.request_data = dict(request_data or {})
        self.record_audio = record_audio
        self.lines: list[WebRTCLine] = []   # the latest calls (tests read what they heard)
        self._session: Any = None

    async def open_line(self, call_id: str, script: CallScript, tools: list[dict[str, Any]],
                        system_prompt: str) -> WebRTCLine:
        data = {**self.request_data, "call_id": call_id, "pack": script.pack}
        line = WebRTCLine(self.target, self.deadlines, call_id, data)
        if self.record_audio:
            line.received_audio = bytearray()
        self.lines.append(line)
        del self.lines[:-256]
        try:
            await line.connect(self._get_session())
        except BaseException:
            await line.aclose()
            raise
        return line


def _build(o: TransportOptions) -> WebRTCTransport:
    return WebRTCTransport(o.target, deadlines=o.deadlines)


register(TransportSpec(name="webrtc", carries="audio", build=_build, tool_relay=True,
                       summary="WebRTC peer of a SmallWebRTC-style bot (HTTP offer, Opus)"))


__all__ = [
    "FRAME_SAMPLES", "RATE", "WebRTCLine", "WebRTCTransport", "caller_frames", "check_target",
    "loopback_candidates_only", "offer_body", "parse_answer",
]
