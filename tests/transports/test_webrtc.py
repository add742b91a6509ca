"""Transport ``webrtc``: the signalling and framing helpers, and whole calls against an aiortc
peer behind an HTTP offer endpoint on 127.0.0.1 (the shape of a Pipecat SmallWebRTC bot:
POST the offer as JSON, get the answer back). The Pipecat bot itself is called in
tests/test_pipecat_bot.py."""

from __future__ import annotations

import asyncio
import contextlib
import fractions
import hashlib
import json
import time
from collections import deque
from collections.abc import AsyncIterator
from typing import Any

import numpy as np
import pytest
from aiohttp import web

from simulator.audio import dsp
from simulator.audio.line import synthetic_speech
from simulator.callscript import CallScript
from simulator.driver.audio_call import run_audio_call
from simulator.errors import InputError, TransportError
from simulator.personas import Caller, generate_calls
from simulator.transports.base import Deadlines
from simulator.transports.registry import TransportOptions, build_transport, transport_names
from tests.agent.voice_harness import PACKS
from tests.conftest import serve_app

pytest.importorskip("aiortc", reason="needs aiortc (callsim[webrtc])")

from aiortc import (  # noqa: E402
    RTCConfiguration,
    RTCPeerConnection,
    RTCSessionDescription,
)
from aiortc.mediastreams import MediaStreamError, MediaStreamTrack  # noqa: E402
from av import AudioFrame, AudioResampler  # noqa: E402

from simulator.transports.webrtc import (  # noqa: E402
    _HOST_ADDRESSES,
    FRAME_SAMPLES,
    RATE,
    WebRTCTransport,
    _hook_host_addresses,
    caller_frames,
    check_target,
    loopback_candidates_only,
    offer_body,
    parse_answer,
)

CALLER = synthetic_speech(4, seconds_per_word=0.25)
GREETING = synthetic_speech(4, seconds_per_word=0.25, f0_hz=210.0)

# --------------------------------------------------------------------------- helpers


def test_caller_frames_are_20ms_at_48k_and_the_same_audio_gives_the_same_bytes() -> None:
    frames = caller_frames(CALLER)
    assert all(len(f) == FRAME_SAMPLES * 2 for f in frames)
    assert len(frames) == -(-len(CALLER) * 6 // FRAME_SAMPLES)
    again = caller_frames(CALLER.copy())
    assert frames == again
    # what the Opus encoder is given is the caller's audio, upsampled
    back = dsp.resample(dsp.from_int16(np.frombuffer(b"".join(frames), "<i2")), RATE, 8000)
    assert float(np.corrcoef(back[: len(CALLER)], CALLER)[0, 1]) > 0.99
    # pinned: a change here changes what every seeded run sends
    assert hashlib.sha256(b"".join(frames)).hexdigest()[:16] == GOLDEN_FRAMES
    assert caller_frames(np.zeros(0, dtype=np.float32)) == []


GOLDEN_FRAMES = "0e7658f3b1ca5d1c"


def test_offer_and_answer_bodies() -> None:
    body = json.loads(offer_body("v=0\r\nm=audio 9 x\r\n", {"call_id": "000001", "pack": "salon"}))
    assert body == {"sdp": "v=0\r\nm=audio 9 x\r\n", "type": "offer",
                    "request_data": {"call_id": "000001", "pack": "salon"}}
    sdp, pc_id = parse_answer(json.dumps({"sdp": "v=0\r\nm=audio 9\r\n", "type": "answer",
                                          "pc_id": "SmallWebRTCConnection#0-ab"}).encode())
    assert pc_id == "SmallWebRTCConnection#0-ab" and sdp.startswith("v=0")
    for bad in (b"<html>", b"[]", b'{"type": "offer", "sdp": "m=audio"}',
                b'{"type": "answer", "sdp": "m=video 9"}'):
        with pytest.raises(TransportError) as ei:
            parse_answer(bad)
        assert ei.value.category == "protocol_error"


def test_only_loopback_candidates_are_kept_for_a_bot_on_this_machine() -> None:
    sdp = ("v=0\r\nm=audio 9 UDP/TLS/RTP/SAVPF 96\r\n"
           "a=candidate:1 1 udp 2130706431 127.0.0.1 40000 typ host\r\n"
           "a=candidate:2 1 udp 2130706431 192.0.2.2 40001 typ host\r\n"
           "a=candidate:3 1 udp 2130706431 fd00::2 40002 typ host\r\n"
           "a=candidate:4 1 udp 2130706431 ::1 40003 typ host\r\na=end-of-candidates\r\n")
    kept = loopback_candidates_only(sdp)
    assert "127.0.0.1 40000" in kept and "::1 40003" in kept
    assert "192.0.2.2" not in kept and "fd00::2" not in kept
    assert "a=end-of-candidates" in kept and kept.startswith("v=0\r\nm=audio")


@pytest.mark.parametrize("target", ["ws://127.0.0.1:1/ws", "127.0.0.1:7860", "sip:a@b"],
                         ids=["websocket", "no-scheme", "sip"])
def test_a_target_that_is_not_an_http_offer_url_is_an_input_error(target: str) -> None:
    with pytest.raises(InputError, match="offer URL"):
        check_target(target)


def test_the_registry_builds_it_by_name() -> None:
    assert "webrtc" in transport_names()
    t = build_transport("webrtc", TransportOptions(target="http://127.0.0.1:7860/api/offer"))
    assert isinstance(t, WebRTCTransport)


# --------------------------------------------------------------------------- a peer


def _frames_48k(pcm8k: np.ndarray) -> deque[bytes]:
    return deque(caller_frames(pcm8k))


class _PeerTrack(MediaStreamTrack):
    """What the peer sends: its greeting, then what it heard (an echo), silence between,
    paced on its own 20 ms clock as a bot's output track is."""

    kind = "audio"

    def __init__(self, peer: _Peer) -> None:
        super().__init__()
        self.peer = peer
        self.n = 0
        self.t0 = 0.0

    async def recv(self) -> Any:
        if self.readyState != "live":
            raise MediaStreamError
        if self.n == 0:
            self.t0 = time.monotonic()
        wait = self.t0 + self.n * 0.02 - time.monotonic()
        if wait > 0:
            await asyncio.sleep(wait)
        q = self.peer.to_send
        payload = q.popleft() if q else bytes(FRAME_SAMPLES * 2)
        mono = np.frombuffer(payload, "<i2")
        frame = AudioFrame.from_ndarray(np.repeat(mono, 2).reshape(1, -1), format="s16",
                                        layout="stereo")
        frame.sample_rate, frame.pts = RATE, self.n * FRAME_SAMPLES
        frame.time_base = fractions.Fraction(1, RATE)
        self.n += 1
        return frame


class _Peer:
    """An aiortc peer answering offers POSTed to ``/api/offer`` (one call at a time): it
    greets, records and echoes what it hears, and hangs up after ``hangup_after_s`` when
    set (a Pipecat-style ``peerLeft`` on the data channel, then it closes)."""

    def __init__(self, *, echo: bool = True, hangup_after_s: float | None = None,
                 deaf_after_s: float | None = None, status: int = 200,
                 body: bytes | None = None) -> None:
        self.echo = echo
        self.hangup_after_s = hangup_after_s
        self.deaf_after_s = deaf_after_s
        self.status, self.body = status, body
        self.requests: list[dict[str, Any]] = []
        self.to_send: deque[bytes] = _frames_48k(GREETING)
        self.heard = bytearray()      # 8 kHz int16 mono: what reached the peer
        self.closed_by_caller = asyncio.Event()
        self.pcs: list[Any] = []
        self.tasks: list[asyncio.Task[None]] = []
        self.hung_up = False

    async def offer(self, request: web.Request) -> web.Response:
        if self.status != 200 or self.body is not None:
            return web.Response(status=self.status, body=self.body or b"no")
        body = await request.json()
        self.requests.append(body["request_data"])
        pc = RTCPeerConnection(RTCConfiguration(iceServers=[]))
        self.pcs.append(pc)
        channels: list[Any] = []

        @pc.on("datachannel")
        def on_channel(channel: Any) -> None:
            channels.append(channel)

        @pc.on("track")
        def on_track(track: Any) -> None:
            self.tasks.append(asyncio.create_task(self._listen(track)))

        @pc.on("connectionstatechange")
        def on_state() -> None:
            if pc.connectionState == "closed" and not self.hung_up:
                self.closed_by_caller.set()

        await pc.setRemoteDescription(RTCSessionDescription(sdp=body["sdp"], type="offer"))
        pc.addTrack(_PeerTrack(self))
        token = _HOST_ADDRESSES.set(["127.0.0.1"])
        try:
            await pc.setLocalDescription(await pc.createAnswer())
        finally:
            _HOST_ADDRESSES.reset(token)
        if self.hangup_after_s is not None:
            self.tasks.append(asyncio.create_task(self._hang_up(pc, channels)))
        if self.deaf_after_s is not None:
            self.tasks.append(asyncio.create_task(self._go_deaf(pc)))
        return web.json_response({"sdp": pc.localDescription.sdp, "type": "answer",
                                  "pc_id": "peer-1"})

    async def _listen(self, track: Any) -> None:
        to8k = AudioResampler(format="s16", layout="stereo", rate=8000)
        with contextlib.suppress(MediaStreamError):
            while True:
                frame = await track.recv()
                for f in to8k.resample(frame):
                    lr = np.frombuffer(bytes(f.planes[0])[: f.samples * 4], "<i2")
                    self.heard += lr.reshape(-1, 2)[:, 0].tobytes()
                if self.echo:
                    # the decoded 48 kHz audio, mixed to mono, goes back out behind the
                    # greeting: the caller hears itself about a second late
                    x = frame.to_ndarray().reshape(-1, 2).mean(axis=1).astype("<i2")
                    self.to_send.append(x.tobytes())

    async def _hang_up(self, pc: Any, channels: list[Any]) -> None:
        assert self.hangup_after_s is not None
        await asyncio.sleep(self.hangup_after_s)
        self.hung_up = True
        for ch in channels:
            if ch.readyState == "open":
                ch.send(json.dumps({"type": "signalling", "message": {"type": "peerLeft"}}))
        await asyncio.sleep(0.05)
        await pc.close()

    async def _go_deaf(self, pc: Any) -> None:
        """Stop reading the network (as a peer whose process hangs does): nothing callsim
        sends is answered any more, its ICE consent checks included."""
        assert self.deaf_after_s is not None
        await asyncio.sleep(self.deaf_after_s)
        ice = pc.getTransceivers()[0].receiver.transport.transport._connection
        for protocol in ice._protocols:
            protocol.datagram_received = lambda data, addr: None

    async def aclose(self) -> None:
        for t in self.tasks:
            t.cancel()
        for pc in self.pcs:
            await pc.close()


@contextlib.asynccontextmanager
async def _serve(peer: _Peer) -> AsyncIterator[str]:
    _hook_host_addresses()
    app = web.Application()
    app.router.add_post("/api/offer", peer.offer)
    try:
        async with serve_app(app) as base:
            yield f"{base}/api/offer"
    finally:
        await peer.aclose()


def _script(turns: int = 1) -> CallScript:
    s = generate_calls(PACKS, "salon", 1, 1)[0]
    return s.model_copy(update={"turns": list(s.turns[:turns])})


async def _call(transport: WebRTCTransport, script: CallScript, **kw: Any) -> Any:
    async def no_tools(*_a: Any) -> tuple[str, None]:
        return "{}", None

    try:
        return await run_audio_call(
            script, Caller(script, PACKS[script.pack]), transport, no_tools,
            deadlines=kw.pop("deadlines", Deadlines(connect_s=10.0, first_byte_s=8.0,
                                                    call_s=40.0)),
            run_t0_ns=time.perf_counter_ns(), speech=lambda turn: CALLER,
            agent_silence_s=1.0, greeting_wait_s=kw.pop("greeting_wait_s", 5.0), **kw)
    finally:
        await transport.aclose()


def _contains(heard: np.ndarray, signal: np.ndarray) -> float:
    """Peak normalised cross-correlation of ``signal`` inside ``heard`` (1.0: intact)."""
    if len(heard) < len(signal):
        return 0.0
    corr = np.correlate(heard, signal, mode="valid")
    return float(corr.max() / (np.linalg.norm(signal) * np.sqrt(np.convolve(
        heard ** 2, np.ones(len(signal)), mode="valid").max())))


# --------------------------------------------------------------------------- whole calls


@pytest.mark.timeout(120)
async def test_a_call_with_audio_both_ways_then_the_caller_hangs_up() -> None:
    peer = _Peer()
    async with _serve(peer) as url:
        transport = WebRTCTransport(url, record_audio=True)
        run = await _call(transport, _script(1))
        # the caller closed its peer connection: the peer sees its side close
        await asyncio.wait_for(peer.closed_by_caller.wait(), 10)
    assert run.error is None, run.error_detail
    line = transport.lines[0]
    assert line.hangup_by == "caller"
    assert peer.requests == [{"call_id": run_call_id(run), "pack": "salon"}]
    # callsim heard the greeting and the echo of its own speech, through Opus both ways
    heard = dsp.decode(bytes(line.received_audio or b""), "mulaw")
    assert _contains(heard, GREETING) > 0.8
    # the peer heard the caller's speech (after Opus and back to 8 kHz)
    peer_heard = dsp.from_int16(np.frombuffer(bytes(peer.heard), "<i2"))
    assert _contains(peer_heard, CALLER) > 0.8
    greet, rec = run.exchanges
    assert greet.phase == "greeting" and rec.phase == "caller"
    # the echo of the caller's speech came back as the agent's answer, as long as it was
    # (Opus is not waveform-exact: after two passes the samples no longer line up well)
    assert rec.agent_speech_s == pytest.approx(len(CALLER) / 8000, abs=0.25)
    assert rec.ttfa_ms is not None and rec.ttfa_ms > 0
    assert greet.agent_speech_s == pytest.approx(len(GREETING) / 8000, abs=0.25)
    # set-up and aiortc's hold of the agent's frames are recorded on the first answer
    assert rec.conn_setup_ms and rec.conn_setup_ms > 0
    assert rec.answer_to_audio_ms is not None and rec.answer_to_audio_ms >= 0
    assert rec.jitter_buffer_ms is not None and rec.jitter_buffer_ms > 0
    print(f"webrtc echo call: setup {rec.conn_setup_ms:.1f} ms, ttfa {rec.ttfa_ms:.1f} ms, "
          f"frames held {rec.jitter_buffer_ms:.1f} ms (median)")


def run_call_id(run: Any) -> str:
    return str(_script(1).call_id)


@pytest.mark.timeout(120)
async def test_the_agent_hangs_up_after_it_has_spoken() -> None:
    peer = _Peer(echo=False, hangup_after_s=3.0)
    async with _serve(peer) as url:
        transport = WebRTCTransport(url)
        run = await _call(transport, _script(3), greeting_wait_s=5.0)
    assert run.error is None, run.error_detail
    assert ("agent_hung_up", {}) in run.events
    assert transport.lines[0].hangup_by == "agent"
    assert not peer.closed_by_caller.is_set()


@pytest.mark.timeout(120)
async def test_a_peer_that_stops_answering_is_a_reset_not_a_hang_up(
        monkeypatch: pytest.MonkeyPatch) -> None:
    import aioice.ice

    # consent checks every ~0.2 s instead of ~5 s: expiry after six missed answers
    monkeypatch.setattr(aioice.ice, "CONSENT_INTERVAL", 0.2)
    peer = _Peer(echo=False, deaf_after_s=3.0)
    async with _serve(peer) as url:
        transport = WebRTCTransport(url)
        run = await _call(transport, _script(3))
    assert run.error == "reset", (run.error, run.error_detail, run.events)
    assert "consent" in run.error_detail
    assert ("agent_hung_up", {}) not in run.events


@pytest.mark.timeout(60)
@pytest.mark.parametrize(("status", "body", "category"), [
    (500, b"boom", "http_5xx"), (404, b"nope", "http_4xx"), (200, b"<html>hi</html>",
                                                            "protocol_error")],
    ids=["500", "404", "not-json"])
async def test_a_failed_offer_is_categorised(status: int, body: bytes, category: str) -> None:
    peer = _Peer(status=status, body=body)
    async with _serve(peer) as url:
        run = await _call(WebRTCTransport(url), _script(1))
    assert run.error == category, run.error_detail


@pytest.mark.timeout(60)
async def test_nobody_listening_is_connect_refused() -> None:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    run = await _call(WebRTCTransport(f"http://127.0.0.1:{port}/api/offer"), _script(1))
    assert run.error == "connect_refused", run.error_detail
