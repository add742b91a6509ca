"""Transport ``sip``: the SIP/SDP/RTP codecs, and whole calls against SIPp (Debian's
``sip-tester``) started by the test on 127.0.0.1 as the answering phone agent."""

from __future__ import annotations

import struct
import time
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from simulator.audio import dsp
from simulator.audio.line import synthetic_speech
from simulator.callscript import CallScript
from simulator.driver.audio_call import run_audio_call
from simulator.errors import InputError, TransportError
from simulator.personas import Caller
from simulator.transports.base import Deadlines
from simulator.transports.registry import TransportOptions, build_transport
from simulator.transports.sip import (
    PT_PCMA,
    PT_PCMU,
    SipSettings,
    SipTransport,
    StreamFramer,
    digest_authorization,
    dtmf_payload,
    failure_category,
    parse_challenge,
    parse_dtmf,
    parse_message,
    parse_rtp,
    parse_sdp,
    parse_sip_uri,
    response_to,
    rtp_packet,
    sdp_offer,
)
from tests.agent.voice_harness import PACKS
from tests.transports.sipp_peer import HAVE_SIPP, sipp_peer, write_rtp_pcap

needs_sipp = pytest.mark.skipif(not HAVE_SIPP, reason="sipp (Debian sip-tester) not installed")

# --------------------------------------------------------------------------- codecs


def test_rfc2617_digest_example() -> None:
    chal = parse_challenge('Digest realm="testrealm@host.com", qop="auth,auth-int", '
                           'nonce="dcd98b7102dd2f0e8b11d0f600bfb0c093", '
                           'opaque="5ccc069c403ebaf9f0171e9517f40e41"')
    value = digest_authorization(chal, "GET", "/dir/index.html", "Mufasa", "Circle Of Life",
                                 cnonce="0a4f113b")
    assert 'response="6629fae49393a05397450978507c4ef1"' in value
    assert "nc=00000001" in value and 'opaque="5ccc069c403ebaf9f0171e9517f40e41"' in value


def test_request_parses_with_compact_headers_and_folding() -> None:
    raw = (b"BYE sip:callsim@127.0.0.1:5070 SIP/2.0\r\nv: SIP/2.0/UDP 10.0.0.1;branch=z9\r\n"
           b"f: <sip:a@b>;tag=1\r\nt: <sip:c@d>\r\n ;tag=2\r\ni: abc@x\r\nCSeq: 7 BYE\r\n"
           b"l: 0\r\n\r\n")
    msg = parse_message(raw)
    assert msg.method == "BYE" and msg.cseq == (7, "BYE")
    assert msg.get("to") == "<sip:c@d> ;tag=2" and msg.get("call-id") == "abc@x"
    resp = parse_message(response_to(msg, 200, "OK", to_tag="zz"))
    assert resp.status == 200 and resp.get("via") == "SIP/2.0/UDP 10.0.0.1;branch=z9"
    assert resp.cseq == (7, "BYE") and resp.get("to") == "<sip:c@d> ;tag=2"


@pytest.mark.parametrize("raw", [b"HELLO\r\n\r\n", b"SIP/2.0 abc OK\r\n\r\n",
                                 b"INVITE sip:x SIP/2.0\r\nno colon here\r\n\r\n", b"\xff\xfe"],
                         ids=["no-sip", "bad-status", "bad-header", "not-utf8"])
def test_garbage_is_a_protocol_error(raw: bytes) -> None:
    with pytest.raises(TransportError) as ei:
        parse_message(raw)
    assert ei.value.category == "protocol_error"


@given(st.lists(st.binary(max_size=300), min_size=1, max_size=4), st.integers(1, 50))
def test_tcp_framer_splits_messages_whatever_the_chunking(bodies: list[bytes], step: int) -> None:
    msgs = [b"INFO sip:x SIP/2.0\r\nCSeq: 1 INFO\r\nContent-Length: %d\r\n\r\n%b"
            % (len(b), b) for b in bodies]
    stream = b"\r\n".join(msgs)
    framer = StreamFramer()
    got: list[bytes] = []
    for i in range(0, len(stream), step):
        got += framer.feed(stream[i:i + step])
    assert got == msgs


@given(st.integers(0, 127).filter(lambda p: not 72 <= p <= 76), st.integers(0, 0xFFFF),
       st.integers(0, 0xFFFFFFFF), st.integers(0, 0xFFFFFFFF), st.binary(max_size=320),
       st.booleans())
def test_rtp_round_trips(pt: int, seq: int, ts: int, ssrc: int, payload: bytes,
                         marker: bool) -> None:
    pkt = parse_rtp(rtp_packet(pt, seq, ts, ssrc, payload, marker))
    assert pkt is not None
    assert (pkt.pt, pkt.seq, pkt.ts, pkt.ssrc, pkt.marker, pkt.payload) == (
        pt, seq, ts, ssrc, marker, payload)


def test_rtp_with_csrc_and_extension_and_non_rtp() -> None:
    hdr = struct.pack("!BBHII", 0x80 | 0x10 | 1, 0, 1, 2, 3) + b"CSRC"
    ext = struct.pack("!HH", 0xBEDE, 1) + b"\x00" * 4
    assert parse_rtp(hdr + ext + b"audio").payload == b"audio"  # type: ignore[union-attr]
    assert parse_rtp(b"\x00" * 20) is None                      # version 0
    assert parse_rtp(struct.pack("!BBH", 0x80, 200, 6) + b"\x00" * 20) is None  # RTCP SR


def test_dtmf_events_round_trip() -> None:
    assert parse_dtmf(dtmf_payload("#", True, 800)) == ("#", True, 800)
    assert parse_dtmf(dtmf_payload("7", False, 160)) == ("7", False, 160)
    assert parse_dtmf(b"\x20\x00\x00\x00") is None


def test_sdp_offer_and_answers() -> None:
    offer = sdp_offer("127.0.0.1", 40000, 1, 1).decode()
    assert "m=audio 40000 RTP/AVP 0 8 101" in offer and "telephone-event/8000" in offer
    ans = parse_sdp(b"v=0\r\nc=IN IP4 10.1.2.3\r\nm=audio 5004 RTP/AVP 8 0 96\r\n"
                    b"a=rtpmap:96 telephone-event/8000\r\n")
    assert (ans.ip, ans.port, ans.codec_pt, ans.dtmf_pt, ans.direction) == (
        "10.1.2.3", 5004, PT_PCMA, 96, "sendrecv")
    held = parse_sdp(b"v=0\r\nc=IN IP4 0.0.0.0\r\nm=audio 5004 RTP/AVP 0\r\n")
    assert held.codec_pt == PT_PCMU and held.direction == "inactive" and held.dtmf_pt is None
    with pytest.raises(TransportError) as ei:
        parse_sdp(b"v=0\r\nc=IN IP4 1.2.3.4\r\nm=audio 5004 RTP/AVP 18\r\n")
    assert ei.value.category == "sip_media"


@pytest.mark.parametrize(("uri", "want"), [
    ("sip:agent@127.0.0.1:5080;transport=tcp", ("agent", "127.0.0.1", 5080, "tcp")),
    ("sip:+15551234567@trunk.example.com", ("+15551234567", "trunk.example.com", 5060, "udp")),
    ("sip:[::1]:5062", ("", "::1", 5062, "udp")),
], ids=["tcp", "number-default-port", "ipv6"])
def test_sip_uris(uri: str, want: tuple[str, str, int, str]) -> None:
    u = parse_sip_uri(uri)
    assert (u.user, u.host, u.port, u.transport) == want


@pytest.mark.parametrize("uri", ["http://x", "sip:a@b;transport=tls", "sip:a@b:99999"],
                         ids=["not-sip", "tls", "port"])
def test_bad_targets_are_input_errors(uri: str) -> None:
    with pytest.raises(InputError, match="--target"):
        build_transport("sip", TransportOptions(target=uri))


def test_failure_categories() -> None:
    assert [failure_category(s) for s in (486, 600, 503, 480, 408, 404, 603, 403, 487, 500,
                                          488)] == [
        "sip_busy", "sip_busy", "sip_unavailable", "sip_unavailable", "sip_timeout",
        "sip_not_found", "sip_declined", "sip_auth_failed", "no_answer", "sip_5xx", "sip_4xx"]


def test_alaw_answer_encodes_alaw_frames() -> None:
    from simulator.transports.sip import SipLine

    line = SipLine(parse_sip_uri("sip:a@127.0.0.1"), SipSettings(), Deadlines(), "c")
    line.codec_pt = PT_PCMA
    pcm = synthetic_speech(3)
    frames = line.encode(np.asarray(pcm, dtype=np.float32))
    assert frames and all(len(f) == 160 for f in frames)
    back = dsp.decode(b"".join(frames), "alaw")[: len(pcm)]
    assert float(np.corrcoef(back, pcm[: len(back)])[0, 1]) > 0.99


# --------------------------------------------------------------------------- against SIPp

# The caller says one second of (synthetic) speech per turn; the agent's voice is another.
CALLER = synthetic_speech(4, seconds_per_word=0.25)
GREETING = synthetic_speech(4, seconds_per_word=0.25, f0_hz=210.0)
REPLY = synthetic_speech(5, seconds_per_word=0.25, f0_hz=180.0)


def _script(turns: int = 2, dtmf: str | None = None) -> CallScript:
    from simulator.personas import generate_calls

    s = generate_calls(PACKS, "salon", 1, 1)[0]
    kept = list(s.turns[:turns])
    if dtmf:
        kept[0] = kept[0].model_copy(update={"dtmf": dtmf})
    return s.model_copy(update={"turns": kept})


async def _call(transport: SipTransport, script: CallScript, **kw: Any) -> Any:
    async def no_tools(*_a: Any) -> tuple[str, None]:
        return "{}", None

    try:
        return await run_audio_call(
            script, Caller(script, PACKS[script.pack]), transport, no_tools,
            deadlines=kw.pop("deadlines", Deadlines(connect_s=3.0, first_byte_s=6.0,
                                                    call_s=30.0)),
            run_t0_ns=time.perf_counter_ns(), speech=kw.pop("speech", lambda turn: CALLER),
            agent_silence_s=1.0, greeting_wait_s=kw.pop("greeting_wait_s", 2.0), **kw)
    finally:
        await transport.aclose()


def _answering(tmp_path: Path, tp: str = "udp", *, codec: int = PT_PCMU, ring_ms: int = 0,
               after: str = "caller_hangup", echo: bool = False, reply_at_ms: int = 5000,
               hold_ms: int = 0, bye_ms: int = 0) -> Any:
    """SIPp answering the call. ``echo``: it sends back every RTP packet it gets (so what it
    heard can be checked); else it greets at once and plays a reply ``reply_at_ms`` after
    answering (once the caller has said its first turn)."""
    keys = {"after_answer": after, "ring_ms": str(ring_ms), "codec": str(codec),
            "reply_at_ms": str(reply_at_ms), "hold_ms": str(hold_ms), "bye_ms": str(bye_ms),
            "play_greeting": "", "play_reply": ""}
    if not echo:
        name = "alaw" if codec == PT_PCMA else "mulaw"
        for what, pcm in (("greeting", GREETING), ("reply", REPLY)):
            write_rtp_pcap(tmp_path / f"{what}.pcap", dsp.encode(pcm, name), codec)
            keys[f"play_{what}"] = (f'<nop><action><exec play_pcap_audio="{what}.pcap"/>'
                                    "</action></nop>")
    return sipp_peer("answer", tmp_path, transport=tp, keys=keys, echo=echo)


def _contains(heard: np.ndarray, signal: np.ndarray) -> float:
    """Peak normalised cross-correlation of ``signal`` inside ``heard`` (1.0: intact)."""
    if len(heard) < len(signal):
        return 0.0
    corr = np.correlate(heard, signal, mode="valid")
    return float(corr.max() / (np.linalg.norm(signal) ** 2))


def _sipp_ok(peer: Any) -> None:
    assert peer.returncode == 0, f"sipp exit {peer.returncode}: {peer.errors[-2000:]}"


@needs_sipp
@pytest.mark.parametrize("tp", ["udp", "tcp"])
async def test_agent_greets_and_answers_then_caller_hangs_up(tp: str, tmp_path: Path) -> None:
    async with _answering(tmp_path, tp, ring_ms=300) as peer:
        transport = SipTransport(peer.uri, settings=SipSettings(), record_audio=True)
        run = await _call(transport, _script(1))
    assert run.error is None, run.error_detail
    _sipp_ok(peer)  # the peer saw INVITE, ACK, then callsim's BYE, and answered it
    line = transport.lines[0]
    assert line.hangup_by == "caller" and ("bye_answered", "200") in line.sip_log
    # callsim heard the agent: its greeting, then its reply as the agent's turn.
    heard = dsp.decode(bytes(line.received_audio or b""), "mulaw")
    assert _contains(heard, GREETING) > 0.8 and _contains(heard, REPLY) > 0.8
    greeting = dict(run.events)["greeting"]
    assert greeting["speech_s"] == pytest.approx(len(GREETING) / 8000, abs=0.1)
    greet, rec = run.exchanges  # the greeting is a turn of its own, then the reply
    assert greet.phase == "greeting" and rec.phase == "caller"
    assert rec.agent_speech_s == pytest.approx(len(REPLY) / 8000, abs=0.1)
    assert rec.ttfa_ms is not None and rec.ttfa_ms > 0
    assert rec.post_dial_delay_ms is not None and rec.post_dial_delay_ms < rec.conn_setup_ms
    assert rec.conn_setup_ms >= 300  # the peer rang for 300 ms before answering
    assert rec.answer_to_audio_ms is not None and rec.answer_to_audio_ms < rec.ttfa_ms


@needs_sipp
async def test_pcma_answer_is_spoken_and_heard_in_pcma(tmp_path: Path) -> None:
    async with _answering(tmp_path, codec=PT_PCMA, reply_at_ms=3500) as peer:
        transport = SipTransport(peer.uri, settings=SipSettings(), record_audio=True)
        run = await _call(transport, _script(1))
    assert run.error is None, run.error_detail
    _sipp_ok(peer)
    assert transport.lines[0].codec_pt == PT_PCMA
    heard = dsp.decode(bytes(transport.lines[0].received_audio or b""), "mulaw")
    assert _contains(heard, REPLY) > 0.8  # A-law from the agent reaches the loop as mu-law
    [rec] = [e for e in run.exchanges if e.phase == "caller"]
    assert rec.agent_speech_s == pytest.approx(len(REPLY) / 8000, abs=0.1)


@needs_sipp
@pytest.mark.parametrize("tp", ["udp", "tcp"])
async def test_peer_hears_speech_and_dtmf_holds_resumes_and_hangs_up(
        tp: str, tmp_path: Path) -> None:
    # The hold comes 8 s after the answer: long after the caller's 1 s turn and its digits,
    # even on a loaded machine.
    async with _answering(tmp_path, tp, echo=True, after="agent_hangup", reply_at_ms=0,
                          hold_ms=8000, bye_ms=500) as peer:
        transport = SipTransport(peer.uri, settings=SipSettings(), record_audio=True)
        # The agent only echoes: once the caller has spoken it sends back silence, which is
        # no answer, so the caller waits (past the hold) until the agent's BYE ends the call.
        run = await _call(transport, _script(1, dtmf="12#9"), greeting_wait_s=0,
                          deadlines=Deadlines(connect_s=3.0, first_byte_s=20.0, call_s=30.0))
    _sipp_ok(peer)  # hold and resume were answered (recvonly, then sendrecv), BYE got its 200
    line = transport.lines[0]
    # The peer got the caller's speech (its echo holds it intact) and the digits, sent as
    # RFC 4733 events (they came back whole).
    heard = dsp.decode(bytes(line.received_audio or b""), "mulaw")
    assert _contains(heard, CALLER) > 0.8, line.sip_log
    assert line.dtmf_received == ["1", "2", "#", "9"], line.sip_log
    assert ("invite", "sendonly") in line.sip_log and ("invite", "sendrecv") in line.sip_log
    assert line.frames_held > 0  # on hold, no RTP left callsim
    assert line.hangup_by == "agent" and "bye_sent" not in dict(line.sip_log)
    # The agent hung up after it had spoken: the normal end of a phone call.
    assert run.error is None, run.error_detail
    assert ("agent_hung_up", {}) in run.events


@needs_sipp
@pytest.mark.parametrize(("status", "category"), [("486", "sip_busy"),
                                                  ("503", "sip_unavailable")])
async def test_rejected_calls_are_categorised(status: str, category: str,
                                              tmp_path: Path) -> None:
    async with sipp_peer("reject", tmp_path, keys={"status": status}, echo=False) as peer:
        run = await _call(SipTransport(peer.uri, settings=SipSettings()), _script(1))
    assert run.error == category and status in run.error_detail
    assert not run.exchanges
    _sipp_ok(peer)  # the failure was ACKed


@needs_sipp
async def test_unanswered_call_is_cancelled_as_no_answer(tmp_path: Path) -> None:
    async with sipp_peer("ring", tmp_path, echo=False) as peer:
        transport = SipTransport(peer.uri, settings=SipSettings())
        run = await _call(transport, _script(1),
                          deadlines=Deadlines(connect_s=2.0, first_byte_s=1.5, call_s=20.0))
    assert run.error == "no_answer"
    _sipp_ok(peer)  # CANCEL, then the 487 was ACKed
    line = transport.lines[0]
    assert line.post_dial_delay_ns is not None and ("cancel_sent", "") in line.sip_log


async def test_peer_that_never_responds_is_a_sip_timeout() -> None:
    import socket

    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sink:  # reads nothing, answers nothing
        sink.bind(("127.0.0.1", 0))
        port = sink.getsockname()[1]
        run = await _call(SipTransport(f"sip:agent@127.0.0.1:{port}", settings=SipSettings()),
                          _script(1), deadlines=Deadlines(connect_s=1.2, call_s=10.0))
        data = sink.recv(4096)
    assert run.error == "sip_timeout"
    assert data.startswith(b"INVITE sip:agent@127.0.0.1")


@needs_sipp
@pytest.mark.parametrize(("password", "error"), [("s3cret", None),
                                                 ("wrong", "sip_auth_failed")])
async def test_digest_auth_with_credentials_from_the_environment(
        password: str, error: str | None, tmp_path: Path,
        monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CALLSIM_SIP_USER", "alice")
    monkeypatch.setenv("CALLSIM_SIP_PASSWORD", password)
    write_rtp_pcap(tmp_path / "reply.pcap", dsp.encode(REPLY, "mulaw"), PT_PCMU)
    async with sipp_peer("auth", tmp_path, echo=False, keys={
            "user": "alice", "password": "s3cret", "reply_at_ms": "4000"}) as peer:
        transport = build_transport("sip", TransportOptions(
            target=peer.uri, deadlines=Deadlines(connect_s=3.0, first_byte_s=3.0, call_s=30)))
        run = await _call(transport, _script(1))
    assert run.error == error, run.error_detail
    if error is None:
        assert run.exchanges[-1].agent_speech_s == pytest.approx(len(REPLY) / 8000, abs=0.1)
    _sipp_ok(peer)


@needs_sipp
async def test_callsim_run_over_sip_counts_busy_calls(tmp_path: Path) -> None:
    import asyncio
    import json
    import subprocess
    import sys

    async with sipp_peer("reject", tmp_path, keys={"status": "486"}, echo=False,
                         calls=2) as peer:
        proc = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "simulator", "run", "--transport", "sip", "--target",
            peer.uri, "--count", "2", "--caller-audio", "tones",
            "--runs-dir", str(tmp_path / "runs"), "--json",
            stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        out, err = await proc.communicate()
    assert proc.returncode == 0, err.decode()[-2000:]
    summary = json.loads(out)
    assert summary["calls"]["failed"] == 2 and summary["errors"] == {"sip_busy": 2}
    _sipp_ok(peer)


@needs_sipp
async def test_callsim_run_over_sip_records_the_call_timings(tmp_path: Path) -> None:
    """`callsim run --transport sip` end to end: the call is answered, the agent's reply is
    timed, and post-dial delay and time to first audio reach the run store and the export."""
    import asyncio
    import json
    import subprocess
    import sys

    script = _script(1)
    calls = tmp_path / "calls.jsonl"
    calls.write_text(script.model_dump_json() + "\n")
    speech_s = 0.3 * len(script.turns[0].text.split())  # --caller-audio tones: 0.3 s a word
    # The reply comes well after the caller's turn (the listener recognises the greeting
    # first, slowly on a loaded machine); the caller waits for it without re-prompting.
    async with _answering(tmp_path, ring_ms=200,
                          reply_at_ms=int((2.0 + speech_s + 12.0) * 1000)) as peer:
        proc = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "simulator", "run", "--transport", "sip", "--target",
            peer.uri, "--calls", str(calls), "--caller-audio", "tones",
            "--reprompt-after", "40", "--first-byte-timeout", "60",
            "--runs-dir", str(tmp_path / "runs"), "--json",
            stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        out, err = await proc.communicate()
    assert proc.returncode == 0, err.decode()[-2000:]
    summary = json.loads(out)
    assert summary["calls"]["ok"] == 1, summary["errors"]
    _sipp_ok(peer)
    exp = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "simulator", "export", summary["run_id"],
        "--runs-dir", str(tmp_path / "runs"), stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    rows, err = await exp.communicate()
    assert exp.returncode == 0, err.decode()[-2000:]
    [turn] = [r for r in map(json.loads, rows.splitlines())
              if r["record"] == "turn" and r["phase"] == "caller"]
    assert turn["conn_setup_ms"] >= 200  # it rang 200 ms
    assert 0 < turn["post_dial_delay_ms"] < turn["conn_setup_ms"]
    assert 0 < turn["answer_to_audio_ms"] < 1000  # the greeting starts as the call is answered
    assert turn["agent_speech_s"] == pytest.approx(len(REPLY) / 8000, abs=0.1)


def test_a_retransmitted_reinvite_is_answered_again_not_acted_on_twice() -> None:
    from simulator.transports.sip import SipLine, build_message

    line = SipLine(parse_sip_uri("sip:a@127.0.0.1"), SipSettings(), Deadlines(), "c")
    line.local_ip, line.rtp_port = "127.0.0.1", 40000
    sent: list[bytes] = []
    line._send_sip = sent.append  # type: ignore[method-assign]  # the socket write: the seam
    sdp = b"v=0\r\nc=IN IP4 127.0.0.1\r\nm=audio 6000 RTP/AVP 0\r\na=sendonly\r\n"
    reinvite = build_message("INVITE sip:callsim@127.0.0.1 SIP/2.0", [
        ("Via", "SIP/2.0/UDP 127.0.0.1:5060;branch=z9hG4bKhold"), ("From", "<sip:a@x>;tag=p"),
        ("To", f"<sip:c@y>;tag={line.from_tag}"), ("Call-ID", line.sip_call_id),
        ("CSeq", "1 INVITE"), ("Content-Type", "application/sdp")], sdp)
    line._on_sip(reinvite)
    line._on_sip(reinvite)  # its 200 was lost: the peer sends it again
    assert len(sent) == 2 and sent[0] == sent[1]
    answer = parse_message(sent[0])
    assert answer.status == 200 and b"a=recvonly" in answer.body
    assert line.sip_log == [("invite", "sendonly")] and not line.send_enabled
