"""Transport ``sip``: callsim is the calling SIP user agent (RFC 3261) towards a phone agent.

Sans-I/O first: SIP messages (build, parse, TCP framing), digest authentication (RFC 2617 /
RFC 8760 MD5), the SDP offer and its answer (RFC 3264), RTP packets (RFC 3550) and DTMF
events (RFC 4733). Then a small asyncio user agent: one INVITE dialog per call over UDP or
TCP, its own RTP/RTCP port pair, caller audio as 20 ms PCMU/PCMA packets sent by the audio
call loop on its deadlines, the agent's RTP stamped on arrival and handed to the loop as
mu-law. Failures of the call set-up are call categories (``sip_busy``, ``no_answer``...).
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import ipaddress
import os
import re
import secrets
import socket
import struct
import time
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from simulator.audio import dsp
from simulator.audio.line import is_voiced_mulaw
from simulator.callscript import CallScript
from simulator.errors import InputError, TransportError
from simulator.transports.base import Deadlines
from simulator.transports.line import LineEvent, MediaPeerLine
from simulator.transports.registry import TransportOptions, TransportSpec, register

_now = time.perf_counter_ns
FRAME_SAMPLES = 160            # 20 ms at 8 kHz
PT_PCMU, PT_PCMA = 0, 8
PT_DTMF = 101                  # our dynamic payload type for telephone-event
USER_AGENT = "callsim"
ALLOW = "INVITE, ACK, CANCEL, BYE, OPTIONS, INFO, UPDATE, NOTIFY"
# Environment variables holding what a SIP trunk needs (never logged or stored).
ENV_USER = "CALLSIM_SIP_USER"
ENV_PASSWORD = "CALLSIM_SIP_PASSWORD"
ENV_FROM = "CALLSIM_SIP_FROM"

# Compact header forms (RFC 3261 7.3.3) -> the full names.
_COMPACT = {"v": "via", "f": "from", "t": "to", "i": "call-id", "m": "contact",
            "l": "content-length", "c": "content-type", "k": "supported", "s": "subject"}


# --------------------------------------------------------------------------- SIP messages


@dataclass(slots=True)
class SipMessage:
    """A parsed SIP request (``method`` set) or response (``status`` set)."""

    method: str = ""
    uri: str = ""
    status: int = 0
    reason: str = ""
    headers: list[tuple[str, str]] = field(default_factory=list)
    body: bytes = b""

    @property
    def is_request(self) -> bool:
        return bool(self.method)

    def get(self, name: str) -> str | None:
        """The first value of header ``name`` (case-insensitive, compact forms accepted)."""
        name = name.lower()
        for k, v in self.headers:
            if k == name:
                return v
        return None

    def get_all(self, name: str) -> list[str]:
        name = name.lower()
        return [v for k, v in self.headers if k == name]

    @property
    def cseq(self) -> tuple[int, str]:
        raw = (self.get("cseq") or "").split()
        if len(raw) != 2 or not raw[0].isdigit():
            raise TransportError("protocol_error", "SIP message without a valid CSeq")
        return int(raw[0]), raw[1].upper()


def parse_message(data: bytes) -> SipMessage:
    """One SIP message (``data`` holds exactly one, as a UDP datagram does). Raises
    ``TransportError("protocol_error")`` when it is not SIP."""
    head, sep, body = data.partition(b"\r\n\r\n")
    if not sep:
        head, sep, body = data.partition(b"\n\n")
    try:
        text = head.decode("utf-8")
    except UnicodeDecodeError:
        raise TransportError("protocol_error", "SIP header is not UTF-8") from None
    lines = text.replace("\r\n", "\n").split("\n")
    while lines and not lines[0].strip():
        lines.pop(0)  # keep-alive CRLFs before a message
    if not lines:
        raise TransportError("protocol_error", "empty SIP message")
    first = lines[0].split(" ", 2)
    msg = SipMessage()
    if first[0] == "SIP/2.0":
        if len(first) < 2 or not first[1].isdigit():
            raise TransportError("protocol_error", f"bad SIP status line {lines[0][:60]!r}")
        msg.status = int(first[1])
        msg.reason = first[2] if len(first) > 2 else ""
    elif len(first) == 3 and first[2].startswith("SIP/2.0"):
        msg.method, msg.uri = first[0].upper(), first[1]
    else:
        raise TransportError("protocol_error", f"not a SIP message: {lines[0][:60]!r}")
    for line in lines[1:]:
        if line[:1] in (" ", "\t") and msg.headers:  # folded continuation
            k, v = msg.headers[-1]
            msg.headers[-1] = (k, v + " " + line.strip())
            continue
        k, sep2, v = line.partition(":")
        if not sep2:
            raise TransportError("protocol_error", f"bad SIP header line {line[:60]!r}")
        k = k.strip().lower()
        msg.headers.append((_COMPACT.get(k, k), v.strip()))
    length = msg.get("content-length")
    if length is not None and length.isdigit():
        body = body[: int(length)]
    msg.body = body
    return msg


class StreamFramer:
    """Splits a TCP byte stream into SIP messages (header end, then ``Content-Length``)."""

    MAX = 64 * 1024

    def __init__(self) -> None:
        self.buf = b""

    def feed(self, data: bytes) -> list[bytes]:
        self.buf += data
        out: list[bytes] = []
        while True:
            self.buf = self.buf.lstrip(b"\r\n")  # keep-alive pings
            end = self.buf.find(b"\r\n\r\n")
            if end < 0:
                if len(self.buf) > self.MAX:
                    raise TransportError("protocol_error", "SIP header over 64 KiB")
                return out
            m = re.search(rb"(?im)^(?:content-length|l)[ \t]*:[ \t]*(\d+)", self.buf[:end])
            total = end + 4 + (int(m.group(1)) if m else 0)
            if len(self.buf) < total:
                return out
            out.append(self.buf[:total])
            self.buf = self.buf[total:]


def build_message(first_line: str, headers: list[tuple[str, str]], body: bytes = b"") -> bytes:
    """A SIP message: start line, headers (``Content-Length`` added), blank line, body."""
    lines = [first_line, *(f"{k}: {v}" for k, v in headers), f"Content-Length: {len(body)}"]
    return ("\r\n".join(lines) + "\r\n\r\n").encode("utf-8") + body


def response_to(req: SipMessage, status: int, reason: str, *, to_tag: str = "",
                extra: list[tuple[str, str]] | None = None, body: bytes = b"") -> bytes:
    """A response to ``req``: its Via, From, To (our tag added), Call-ID and CSeq."""
    to = req.get("to") or ""
    if to_tag and ";tag=" not in to.lower():
        to = f"{to};tag={to_tag}"
    heads = [("Via", v) for v in req.get_all("via")]
    heads += [("From", req.get("from") or ""), ("To", to),
              ("Call-ID", req.get("call-id") or ""), ("CSeq", req.get("cseq") or ""),
              ("User-Agent", USER_AGENT), *(extra or [])]
    return build_message(f"SIP/2.0 {status} {reason}", heads, body)


def header_tag(value: str) -> str:
    m = re.search(r";\s*tag=([^;>\s]+)", value, re.I)
    return m.group(1) if m else ""


def header_uri(value: str) -> str:
    """The URI inside a From/To/Contact/Route value (``"x" <sip:a@b>;p`` -> ``sip:a@b``)."""
    m = re.search(r"<([^>]+)>", value)
    if m:
        return m.group(1)
    return value.split(";", 1)[0].strip()


# --------------------------------------------------------------------------- SIP URIs


@dataclass(frozen=True, slots=True)
class SipUri:
    """``sip:user@host:port;transport=tcp``: where the INVITE goes."""

    user: str
    host: str
    port: int
    transport: str   # "udp" or "tcp"
    text: str        # the URI as given (the Request-URI and To)


def parse_sip_uri(uri: str) -> SipUri:
    """Parse a target like ``sip:agent@127.0.0.1:5060;transport=tcp``. Raises
    :class:`InputError` naming the target when it is not a ``sip:`` URI we can dial."""
    m = re.fullmatch(r"sip:(?:([^@;]+)@)?(\[[0-9a-fA-F:.]+\]|[^:;@]+)(?::(\d+))?((?:;[^;]*)*)",
                     uri.strip())
    if not m:
        raise InputError(f"--target {uri!r}: expected a SIP URI such as "
                         "sip:agent@pbx.example.com:5060;transport=tcp")
    params = {p.split("=", 1)[0].lower(): (p.split("=", 1) + [""])[1].lower()
              for p in m.group(4).split(";") if p}
    transport = params.get("transport", "udp")
    if transport not in ("udp", "tcp"):
        raise InputError(f"--target {uri!r}: transport={transport} (callsim dials udp or tcp)")
    port = int(m.group(3) or 5060)
    if not 0 < port < 65536:
        raise InputError(f"--target {uri!r}: port {port} out of range")
    return SipUri(m.group(1) or "", m.group(2).strip("[]"), port, transport, uri.strip())


# --------------------------------------------------------------------------- digest auth


def parse_challenge(value: str) -> dict[str, str]:
    """``Digest realm="x", nonce="y", qop="auth"`` -> ``{"realm": "x", ...}``."""
    scheme, _, rest = value.strip().partition(" ")
    if scheme.lower() != "digest":
        raise TransportError("sip_auth_failed", f"unsupported auth scheme {scheme[:20]!r}")
    out = {}
    for m in re.finditer(r'(\w+)\s*=\s*(?:"([^"]*)"|([^,\s]+))', rest):
        out[m.group(1).lower()] = m.group(2) if m.group(2) is not None else m.group(3)
    return out


def digest_authorization(chal: dict[str, str], method: str, uri: str, user: str,
                         password: str, cnonce: str, nc: int = 1) -> str:
    """The ``Authorization`` value answering ``chal`` (MD5, qop ``auth`` or none)."""
    algo = chal.get("algorithm", "MD5")
    if algo.upper() not in ("MD5", "MD5-SESS"):
        raise TransportError("sip_auth_failed", f"unsupported digest algorithm {algo[:20]!r}")

    def h(s: str) -> str:
        return hashlib.md5(s.encode("utf-8")).hexdigest()  # noqa: S324 (the protocol's hash)

    realm, nonce = chal.get("realm", ""), chal.get("nonce", "")
    ha1 = h(f"{user}:{realm}:{password}")
    if algo.upper() == "MD5-SESS":
        ha1 = h(f"{ha1}:{nonce}:{cnonce}")
    ha2 = h(f"{method}:{uri}")
    qops = [q.strip() for q in chal.get("qop", "").split(",") if q.strip()]
    parts = [f'username="{user}"', f'realm="{realm}"', f'nonce="{nonce}"', f'uri="{uri}"']
    if "auth" in qops:
        ncs = f"{nc:08x}"
        resp = h(f"{ha1}:{nonce}:{ncs}:{cnonce}:auth:{ha2}")
        parts += [f'response="{resp}"', "qop=auth", f"nc={ncs}", f'cnonce="{cnonce}"']
    else:
        parts.append(f'response="{h(f"{ha1}:{nonce}:{ha2}")}"')
    parts.append(f"algorithm={algo}")
    if "opaque" in chal:
        parts.append(f'opaque="{chal["opaque"]}"')
    return "Digest " + ", ".join(parts)


# --------------------------------------------------------------------------- SDP


def sdp_offer(ip: str, port: int, session_id: int, version: int,
              direction: str = "sendrecv", codecs: tuple[int, ...] = (PT_PCMU, PT_PCMA),
              dtmf_pt: int | None = PT_DTMF) -> bytes:
    """Our SDP: one audio stream at ``ip:port`` offering ``codecs`` and telephone-event."""
    fam = "IP6" if ":" in ip else "IP4"
    pts = [*codecs, *([dtmf_pt] if dtmf_pt is not None else [])]
    names = {PT_PCMU: "PCMU/8000", PT_PCMA: "PCMA/8000"}
    lines = ["v=0", f"o=callsim {session_id} {version} IN {fam} {ip}", "s=callsim",
             f"c=IN {fam} {ip}", "t=0 0", f"m=audio {port} RTP/AVP {' '.join(map(str, pts))}"]
    lines += [f"a=rtpmap:{pt} {names[pt]}" for pt in codecs]
    if dtmf_pt is not None:
        lines += [f"a=rtpmap:{dtmf_pt} telephone-event/8000", f"a=fmtp:{dtmf_pt} 0-15"]
    lines += ["a=ptime:20", f"a={direction}"]
    return ("\r\n".join(lines) + "\r\n").encode("ascii")


@dataclass(frozen=True, slots=True)
class SdpMedia:
    """The peer's audio stream: where to send, which codec, DTMF payload type, direction."""

    ip: str
    port: int
    codec_pt: int
    dtmf_pt: int | None
    direction: str   # the peer's: sendrecv, sendonly (we are on hold), recvonly, inactive


def parse_sdp(body: bytes, offered: tuple[int, ...] = (PT_PCMU, PT_PCMA)) -> SdpMedia:
    """The first audio stream of an SDP answer (or re-offer). Picks the first payload type of
    the peer's list that we offered. Raises ``TransportError("sip_media")`` when there is no
    audio stream or no common codec."""
    try:
        text = body.decode("utf-8")
    except UnicodeDecodeError:
        raise TransportError("sip_media", "SDP is not UTF-8") from None
    session_ip, media_ip, port, pts = "", "", -1, []
    rtpmap: dict[int, str] = {}
    direction_s = direction_m = ""
    in_audio = seen_media = False
    for raw in text.splitlines():
        line = raw.strip()
        if line.startswith("m="):
            seen_media = True
            parts = line[2:].split()
            in_audio = bool(parts) and parts[0] == "audio" and port < 0
            if in_audio and len(parts) >= 4 and parts[1].isdigit():
                port = int(parts[1])
                pts = [int(p) for p in parts[3:] if p.isdigit()]
        elif line.startswith("c="):
            addr = line.split()[-1].split("/")[0]
            if in_audio:
                media_ip = addr
            elif not seen_media:
                session_ip = addr
        elif line.startswith("a=rtpmap:") and in_audio:
            pt_s, _, name = line[9:].partition(" ")
            if pt_s.isdigit():
                rtpmap[int(pt_s)] = name.lower()
        elif line[2:] in ("sendrecv", "sendonly", "recvonly", "inactive"):
            if in_audio:
                direction_m = line[2:]
            elif not seen_media:
                direction_s = line[2:]
    if port < 0:
        raise TransportError("sip_media", "SDP has no audio stream")
    codec = next((pt for pt in pts if pt in offered and (pt not in rtpmap or rtpmap[pt]
                  .startswith(("pcmu/8000", "pcma/8000")))), None)
    if codec is None:
        for pt in pts:  # a dynamic number the peer mapped to PCMU/PCMA
            name = rtpmap.get(pt, "")
            if name.startswith("pcmu/8000") and PT_PCMU in offered:
                codec = PT_PCMU
            elif name.startswith("pcma/8000") and PT_PCMA in offered:
                codec = PT_PCMA
            if codec is not None:
                break
    if codec is None:
        raise TransportError("sip_media", f"no common codec in the answer (offered "
                             f"{list(offered)}, got {pts[:8]})")
    dtmf = next((pt for pt in pts if rtpmap.get(pt, "").startswith("telephone-event/8000")),
                None)
    ip = media_ip or session_ip
    direction = direction_m or direction_s or "sendrecv"
    if port == 0 or ip in ("0.0.0.0", "::"):
        direction = "inactive" if direction == "sendrecv" else direction  # old-style hold
    return SdpMedia(ip, port, codec, dtmf, direction)


_ANSWER_DIRECTION = {"sendrecv": "sendrecv", "sendonly": "recvonly", "recvonly": "sendonly",
                     "inactive": "inactive"}


# --------------------------------------------------------------------------- RTP


_RTP = struct.Struct("!BBHII")
DTMF_EVENTS = {**{str(d): d for d in range(10)}, "*": 10, "#": 11,
               "A": 12, "B": 13, "C": 14, "D": 15}
DTMF_DIGITS = {v: k for k, v in DTMF_EVENTS.items()}


def rtp_packet(pt: int, seq: int, ts: int, ssrc: int, payload: bytes,
               marker: bool = False) -> bytes:
    """An RTP packet (version 2, no padding, extension or CSRC)."""
    return _RTP.pack(0x80, (0x80 if marker else 0) | pt, seq & 0xFFFF, ts & 0xFFFFFFFF,
                     ssrc) + payload


@dataclass(frozen=True, slots=True)
class RtpPacket:
    pt: int
    seq: int
    ts: int
    ssrc: int
    marker: bool
    payload: bytes


def parse_rtp(data: bytes) -> RtpPacket | None:
    """An RTP packet, or None when ``data`` is not one (RTCP, STUN, junk): the header's
    version, CSRC list, extension and padding are honoured."""
    if len(data) < 12:
        return None
    b0, b1, seq, ts, ssrc = _RTP.unpack_from(data)
    if b0 >> 6 != 2 or 72 <= (b1 & 0x7F) <= 76:  # not v2, or RTCP on a shared port
        return None
    off = 12 + 4 * (b0 & 0x0F)
    if b0 & 0x10:
        if len(data) < off + 4:
            return None
        off += 4 + 4 * struct.unpack_from("!H", data, off + 2)[0]
    end = len(data)
    if b0 & 0x20 and end > off:
        end -= data[-1]
    if end < off:
        return None
    return RtpPacket(b1 & 0x7F, seq, ts, ssrc, bool(b1 & 0x80), data[off:end])


def dtmf_payload(digit: str, end: bool, duration: int, volume: int = 10) -> bytes:
    """An RFC 4733 named-event payload: event, E bit + volume, duration (timestamp units)."""
    return struct.pack("!BBH", DTMF_EVENTS[digit], (0x80 if end else 0) | (volume & 0x3F),
                       duration & 0xFFFF)


def parse_dtmf(payload: bytes) -> tuple[str, bool, int] | None:
    """(digit, end bit, duration) of a telephone-event payload, or None."""
    if len(payload) < 4 or payload[0] not in DTMF_DIGITS:
        return None
    return DTMF_DIGITS[payload[0]], bool(payload[1] & 0x80), struct.unpack_from("!H",
                                                                                payload, 2)[0]


# A-law -> mu-law, byte for byte: the loop and the listener take mu-law.
_ALAW_TO_ULAW = bytes(dsp.lin2ulaw(dsp.alaw2lin(np.arange(256, dtype=np.uint8))).tolist())
DTMF_TONE_FRAMES = 5       # a digit is 100 ms of events (or of in-band tone) ...
DTMF_END_PACKETS = 3       # ... then its end packet three times (RFC 4733 2.5.1.4)
DTMF_GAP_FRAMES = 2        # ... then 40 ms before the next digit
TCP_LINGER_S = 1.0         # a SIP TCP connection stays open this long after the call


# --------------------------------------------------------------------------- sockets


def _bind_rtp_pair(ip: str) -> tuple[socket.socket, socket.socket]:
    """Two UDP sockets on ``ip``: RTP on an even port, RTCP on the next one."""
    fam = socket.AF_INET6 if ":" in ip else socket.AF_INET
    for _ in range(64):
        rtp = socket.socket(fam, socket.SOCK_DGRAM)
        rtp.bind((ip, 0))
        port = rtp.getsockname()[1]
        if port % 2 == 0 and port < 65535:
            rtcp = socket.socket(fam, socket.SOCK_DGRAM)
            try:
                rtcp.bind((ip, port + 1))
            except OSError:
                rtcp.close()
            else:
                rtp.setblocking(False)
                rtcp.setblocking(False)
                return rtp, rtcp
        rtp.close()
    raise TransportError("sip_media", f"no free RTP port pair on {ip}")


def _local_ip_for(host_ip: str) -> str:
    """The address this machine uses to reach ``host_ip`` (what goes into Via/Contact/SDP)."""
    if ipaddress.ip_address(host_ip).is_loopback:
        return host_ip
    fam = socket.AF_INET6 if ":" in host_ip else socket.AF_INET
    with socket.socket(fam, socket.SOCK_DGRAM) as s:
        s.connect((host_ip, 9))  # no packet is sent: this only picks the route
        return str(s.getsockname()[0])


class _Datagrams(asyncio.DatagramProtocol):
    def __init__(self, on_data: Any) -> None:
        self.on_data = on_data

    def datagram_received(self, data: bytes, addr: Any) -> None:
        self.on_data(data, addr)

    def error_received(self, exc: Exception) -> None:
        return None  # ICMP unreachable from a peer that went away: the call's timers decide


class _SipStream(asyncio.Protocol):
    def __init__(self, line: SipLine) -> None:
        self.line = line
        self.framer = StreamFramer()

    def data_received(self, data: bytes) -> None:
        try:
            msgs = self.framer.feed(data)
        except TransportError as exc:
            self.line._fail(exc)
            return
        for raw in msgs:
            self.line._on_sip(raw)

    def connection_lost(self, exc: Exception | None) -> None:
        self.line._sip_lost()


# --------------------------------------------------------------------------- the line


@dataclass(frozen=True, slots=True)
class SipSettings:
    """How callsim dials: credentials (from the environment), the From user, deadlines."""

    user: str | None = None
    password: str | None = None
    from_user: str = "callsim"
    codecs: tuple[int, ...] = (PT_PCMU, PT_PCMA)

    @classmethod
    def from_env(cls) -> SipSettings:
        user = os.environ.get(ENV_USER) or None
        return cls(user=user, password=os.environ.get(ENV_PASSWORD) or None,
                   from_user=os.environ.get(ENV_FROM) or user or "callsim")


def failure_category(status: int) -> str:
    """The call category of a final SIP failure response."""
    if status in (486, 600):
        return "sip_busy"
    if status in (480, 503):
        return "sip_unavailable"
    if status == 408:
        return "sip_timeout"
    if status in (404, 484, 604):
        return "sip_not_found"
    if status == 603:
        return "sip_declined"
    if status in (401, 403, 407):
        return "sip_auth_failed"
    if status == 487:
        return "no_answer"
    return f"sip_{status // 100}xx"


class SipLine(MediaPeerLine):
    """One SIP call (see :class:`~simulator.transports.line.AudioLine`): a dialog and its RTP.

    After the call: ``post_dial_delay_ns`` (INVITE -> first 180/183, or the 200 if none came),
    ``answered_ns`` (the 200 OK's arrival), ``first_rtp_ns`` (first agent RTP packet),
    ``dtmf_received`` (digits the agent sent as RFC 4733 events), ``sip_log`` (what happened
    on the signalling: re-INVITEs, who hung up)."""

    chunk_ms = 20
    peer_kind = "SIP"
    agent_calls_tools = True

    def __init__(self, uri: SipUri, settings: SipSettings, deadlines: Deadlines,
                 call_id: str) -> None:
        self.uri = uri
        self.settings = settings
        self.dl = deadlines
        self.call_ref = call_id
        self.conn_setup_ns = 0
        self.post_dial_delay_ns: int | None = None
        self.answered_ns: int | None = None
        self.invite_ns = 0
        self.first_rtp_ns: int | None = None
        self.dtmf_received: list[str] = []
        self.sip_log: list[tuple[str, str]] = []
        self.hangup_by = ""
        self._events: asyncio.Queue[LineEvent | None] = asyncio.Queue()
        self._responses: asyncio.Queue[SipMessage] = asyncio.Queue()
        self._closed = False
        self._failure: TransportError | None = None
        # dialog state
        self.local_ip = ""
        self.local_port = 0
        self.sip_call_id = f"{secrets.token_hex(12)}@callsim"
        self.from_tag = secrets.token_hex(6)
        self.to_tag = ""
        self.cseq = 0
        self.cseq_invite = 0
        self._ack = b""
        self._answers: dict[tuple[str, str], bytes] = {}   # (Via, CSeq) -> our response
        self._replying_to: tuple[str, str] | None = None
        self.remote_target = uri.text
        self.route: list[str] = []
        self.sdp_session = int.from_bytes(secrets.token_bytes(4), "big")
        self.sdp_version = 0
        self._sip_udp: asyncio.DatagramTransport | None = None
        self._sip_tcp: asyncio.Transport | None = None
        self._peer: tuple[str, int] = (uri.host, uri.port)
        # media state
        self.codec_pt = PT_PCMU
        self.dtmf_pt: int | None = None
        self.remote_rtp: tuple[str, int] | None = None
        self.send_enabled = True
        self.frames_held = 0        # 20 ms slots not sent: on hold (or no media address)
        self.silence_chunk = dsp_silence(PT_PCMU)
        self._rtp: asyncio.DatagramTransport | None = None
        self._rtcp: asyncio.DatagramTransport | None = None
        self.rtp_port = 0
        self._ssrc = secrets.randbits(32)
        self._seq = secrets.randbits(16)
        self._ts = secrets.randbits(32)
        self._first_packet = True
        self._dtmf: list[str] = []
        self._dtmf_state: tuple[str, int, int] | None = None   # digit, start ts, frame no.
        self._dtmf_tone: list[bytes] = []
        self._dtmf_done: list[asyncio.Future[None]] = []
        self._last_dtmf_ts: int | None = None
        self.max_bytes = deadlines.max_reply_bytes
        # The agent's audio as received (mu-law), kept when the transport records.
        self.received_audio: bytearray | None = None

    # -- the sans-I/O helpers bound to this dialog
    def _via(self, branch: str) -> str:
        return (f"SIP/2.0/{self.uri.transport.upper()} {self._hostport()};branch={branch};"
                "rport")

    def _hostport(self) -> str:
        host = f"[{self.local_ip}]" if ":" in self.local_ip else self.local_ip
        return f"{host}:{self.local_port}"

    def _contact(self) -> str:
        tp = ";transport=tcp" if self.uri.transport == "tcp" else ""
        return f"<sip:{self.settings.from_user}@{self._hostport()}{tp}>"

    def _from(self) -> str:
        host = f"[{self.local_ip}]" if ":" in self.local_ip else self.local_ip
        return f"<sip:{self.settings.from_user}@{host}>;tag={self.from_tag}"

    def _to(self) -> str:
        return f"<{self.uri.text}>" + (f";tag={self.to_tag}" if self.to_tag else "")

    def _request(self, method: str, branch: str, cseq: int, ruri: str, *,
                 body: bytes = b"", extra: list[tuple[str, str]] | None = None) -> bytes:
        heads = [("Via", self._via(branch)), ("Max-Forwards", "70"),
                 *(("Route", r) for r in self.route),
                 ("From", self._from()), ("To", self._to()), ("Call-ID", self.sip_call_id),
                 ("CSeq", f"{cseq} {method}"), ("User-Agent", USER_AGENT), *(extra or [])]
        if method in ("INVITE", "ACK", "BYE") and body:
            heads.append(("Content-Type", "application/sdp"))
        return build_message(f"{method} {ruri} SIP/2.0", heads, body)

    def _offer(self, direction: str = "sendrecv") -> bytes:
        self.sdp_version += 1
        return sdp_offer(self.local_ip, self.rtp_port, self.sdp_session, self.sdp_version,
                         direction, self.settings.codecs)

    # -- sockets
    def _send_sip(self, data: bytes) -> None:
        if self._sip_tcp is not None:
            if not self._sip_tcp.is_closing():
                self._sip_tcp.write(data)
        elif self._sip_udp is not None:
            self._sip_udp.sendto(data, self._peer)

    async def _open_sockets(self) -> None:
        loop = asyncio.get_running_loop()
        infos = await loop.getaddrinfo(self.uri.host, self.uri.port, type=socket.SOCK_DGRAM)
        if not infos:
            raise TransportError("connect_error", f"cannot resolve {self.uri.host}")
        fam, addr = infos[0][0], infos[0][4]
        self._peer = (str(addr[0]), int(addr[1]))
        self.local_ip = _local_ip_for(self._peer[0])
        rtp_sock, rtcp_sock = _bind_rtp_pair(self.local_ip)
        self.rtp_port = rtp_sock.getsockname()[1]
        rtp_t, _ = await loop.create_datagram_endpoint(lambda: _Datagrams(self._on_rtp),
                                                       sock=rtp_sock)
        rtcp_t, _ = await loop.create_datagram_endpoint(lambda: _Datagrams(_drop),
                                                        sock=rtcp_sock)
        self._rtp, self._rtcp = rtp_t, rtcp_t
        if self.uri.transport == "udp":
            udp_t, _ = await loop.create_datagram_endpoint(
                lambda: _Datagrams(lambda d, a: self._on_sip(d)),
                local_addr=(self.local_ip, 0), family=fam)
            self._sip_udp = udp_t
            self.local_port = udp_t.get_extra_info("sockname")[1]
        else:
            try:
                async with asyncio.timeout(self.dl.connect_s):
                    tcp_t, _ = await loop.create_connection(
                        lambda: _SipStream(self), self._peer[0], self._peer[1],
                        local_addr=(self.local_ip, 0))
            except TimeoutError:
                raise TransportError("connect_timeout", "SIP TCP connect timed out") from None
            except ConnectionRefusedError:
                raise TransportError("connect_refused", "SIP TCP connection refused") from None
            except OSError as exc:
                raise TransportError("connect_error", f"SIP TCP: {exc}") from None
            self._sip_tcp = tcp_t
            self.local_port = tcp_t.get_extra_info("sockname")[1]

    # -- incoming signalling
    def _on_sip(self, data: bytes) -> None:
        try:
            msg = parse_message(data)
            if msg.is_request:
                self._on_request(msg)
            elif (msg.get("call-id") or "") == self.sip_call_id:
                if (self.answered_ns is not None and 200 <= msg.status < 300
                        and msg.cseq == (self.cseq_invite, "INVITE")):
                    self._send_sip(self._ack)  # the peer did not get our ACK: send it again
                    return
                self._responses.put_nowait(msg)
        except TransportError:
            return  # a malformed datagram is dropped, as a UA does; timers decide the call

    def _on_request(self, req: SipMessage) -> None:
        if (req.get("call-id") or "") != self.sip_call_id:
            self._send_sip(response_to(req, 481, "Call/Transaction Does Not Exist"))
            return
        method = req.method
        if method == "ACK":
            return
        # A retransmitted request (its answer was lost or late) gets the same answer again,
        # without being acted on twice (RFC 3261 17.2).
        key = ((req.get("via") or "").split(",")[0], req.get("cseq") or "")
        sent = self._answers.get(key)
        if sent is not None:
            self._send_sip(sent)
            return
        self._replying_to = key
        try:
            self._handle_request(req, method)
        finally:
            self._replying_to = None

    def _reply(self, data: bytes) -> None:
        if self._replying_to is not None:
            self._answers[self._replying_to] = data
            if len(self._answers) > 64:
                self._answers.pop(next(iter(self._answers)))
        self._send_sip(data)

    def _handle_request(self, req: SipMessage, method: str) -> None:
        if method == "BYE":
            self._reply(response_to(req, 200, "OK", to_tag=self.from_tag))
            self.sip_log.append(("bye_received", ""))
            if not self.hangup_by:
                self.hangup_by = "agent"
            self._end()
            return
        if method in ("INVITE", "UPDATE"):
            direction = "sendrecv"
            if req.body:
                try:
                    media = parse_sdp(req.body, self.settings.codecs)
                except TransportError as exc:
                    self._reply(response_to(req, 488, "Not Acceptable Here",
                                               to_tag=self.from_tag))
                    self.sip_log.append(("reinvite_rejected", str(exc)))
                    return
                self._apply_media(media)
                direction = _ANSWER_DIRECTION[media.direction]
                self.sip_log.append((method.lower(), media.direction))
            else:
                self.sip_log.append((method.lower(), "no sdp"))
            body = self._offer(direction) if (req.body or method == "INVITE") else b""
            extra = [("Contact", self._contact()), ("Allow", ALLOW)]
            if body:
                extra.append(("Content-Type", "application/sdp"))
            self._reply(response_to(req, 200, "OK", to_tag=self.from_tag, extra=extra,
                                       body=body))
            return
        if method in ("OPTIONS", "INFO", "NOTIFY"):
            self._reply(response_to(req, 200, "OK", to_tag=self.from_tag,
                                       extra=[("Allow", ALLOW)]))
            return
        if method == "CANCEL":
            self._reply(response_to(req, 481, "Call/Transaction Does Not Exist"))
            return
        self._reply(response_to(req, 405, "Method Not Allowed", extra=[("Allow", ALLOW)]))

    def _apply_media(self, media: SdpMedia) -> None:
        self.codec_pt = media.codec_pt
        self.silence_chunk = dsp_silence(media.codec_pt)
        self.dtmf_pt = media.dtmf_pt
        self.remote_rtp = (media.ip, media.port) if media.port else self.remote_rtp
        # On hold (the peer only sends, or nothing flows) we keep the clock but send nothing.
        self.send_enabled = media.direction in ("sendrecv", "recvonly") and media.port != 0

    def _sip_lost(self) -> None:
        if not self._closed:
            self._fail(TransportError("reset", "the SIP TCP connection closed"))

    def _fail(self, exc: TransportError) -> None:
        self._failure = self._failure or exc
        self._end()

    def _end(self) -> None:
        if not self._closed:
            self._closed = True
            self._events.put_nowait(None)
            for fut in self._dtmf_done:
                if not fut.done():
                    fut.set_result(None)

    # -- incoming media
    def _on_rtp(self, data: bytes, addr: Any) -> None:
        t = _now()  # stamped before a byte is parsed
        pkt = parse_rtp(data)
        if pkt is None or self._closed:
            return
        if self.first_rtp_ns is None:
            self.first_rtp_ns = t
        if pkt.pt == self.dtmf_pt and self.dtmf_pt is not None:
            ev = parse_dtmf(pkt.payload)
            if ev is not None and ev[1] and pkt.ts != self._last_dtmf_ts:
                self._last_dtmf_ts = pkt.ts  # the end packet comes three times
                self.dtmf_received.append(ev[0])
            return
        if pkt.pt == PT_PCMU:
            audio = pkt.payload
        elif pkt.pt == PT_PCMA:
            audio = pkt.payload.translate(_ALAW_TO_ULAW)
        else:
            return  # comfort noise or a codec we did not offer
        if not audio:
            return
        rec = self.received_audio
        if rec is not None and len(rec) < self.max_bytes:
            rec += audio
        self._events.put_nowait(LineEvent("audio", t, audio=audio, duration_s=len(audio) / 8000,
                                          voiced=is_voiced_mulaw(audio)))

    # -- the call set-up
    async def dial(self) -> None:
        """INVITE until answered (auth retried once); raises ``TransportError`` with the call
        category when the call is not answered."""
        await self._open_sockets()
        offer = self._offer()
        auth: list[tuple[str, str]] = []
        self.invite_ns = _now()
        for attempt in range(2):
            self.cseq += 1
            branch = "z9hG4bK" + secrets.token_hex(8)
            invite = self._request("INVITE", branch, self.cseq, self.uri.text, body=offer,
                                   extra=[("Contact", self._contact()), ("Allow", ALLOW),
                                          ("X-Callsim-Call-Id", self.call_ref), *auth])
            final = await self._invite_transaction(invite, branch)
            if 200 <= final.status < 300:
                self._answered(final)
                return
            self._ack_failure(final, branch)
            if final.status in (401, 407) and attempt == 0:
                auth = [self._authorize(final)]
                continue
            raise TransportError(failure_category(final.status),
                                 f"INVITE answered {final.status} {final.reason[:60]}")
        raise TransportError("sip_auth_failed", "credentials rejected")

    def _authorize(self, resp: SipMessage) -> tuple[str, str]:
        s = self.settings
        if not s.user or s.password is None:
            raise TransportError("sip_auth_failed",
                                 f"the peer asks for credentials ({resp.status}); set "
                                 f"{ENV_USER} and {ENV_PASSWORD}")
        proxy = resp.status == 407
        chal_h = resp.get("proxy-authenticate" if proxy else "www-authenticate")
        if not chal_h:
            raise TransportError("sip_auth_failed", f"{resp.status} without a challenge")
        value = digest_authorization(parse_challenge(chal_h), "INVITE", self.uri.text, s.user,
                                     s.password, secrets.token_hex(8))
        return ("Proxy-Authorization" if proxy else "Authorization", value)

    async def _invite_transaction(self, invite: bytes, branch: str) -> SipMessage:
        """Send ``invite`` (retransmitted on UDP until a response), wait for a final answer:
        ``connect_s`` for any response at all, then ``first_byte_s`` for the answer."""
        loop = asyncio.get_running_loop()
        self._send_sip(invite)
        t1 = 0.5
        next_retx = loop.time() + t1
        got_provisional = False
        start = loop.time()
        cseq = self.cseq
        while True:
            if self._failure is not None:
                raise self._failure
            limit = start + (self.dl.first_byte_s if got_provisional else self.dl.connect_s)
            wake = min(limit, next_retx) if not got_provisional and self._sip_udp else limit
            try:
                async with asyncio.timeout(max(0.0, wake - loop.time())):
                    resp = await self._responses.get()
            except TimeoutError:
                now = loop.time()
                if now >= limit:
                    if got_provisional:
                        await self._cancel(branch)
                        raise TransportError("no_answer", f"not answered within "
                                             f"{self.dl.first_byte_s:g} s") from None
                    raise TransportError("sip_timeout", f"no response to INVITE within "
                                         f"{self.dl.connect_s:g} s") from None
                self._send_sip(invite)  # Timer A: retransmit, doubling
                t1 *= 2
                next_retx = now + t1
                continue
            try:
                num, method = resp.cseq
            except TransportError:
                continue
            if num != cseq or method != "INVITE":
                continue
            if resp.status < 200:
                got_provisional = True
                if resp.status in (180, 183) and self.post_dial_delay_ns is None:
                    self.post_dial_delay_ns = _now() - self.invite_ns
                continue
            return resp

    async def _cancel(self, branch: str) -> None:
        """CANCEL an INVITE still ringing; ACK the 487 if it comes."""
        cancel = self._request("CANCEL", branch, self.cseq, self.uri.text)
        self._send_sip(cancel)
        self.sip_log.append(("cancel_sent", ""))
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(2.0):
                while True:
                    resp = await self._responses.get()
                    with contextlib.suppress(TransportError):
                        if resp.cseq == (self.cseq, "INVITE") and resp.status >= 300:
                            self._ack_failure(resp, branch)
                            return
                        if resp.cseq[1] == "INVITE" and 200 <= resp.status < 300:
                            self._answered(resp)  # answered as we gave up: hang up cleanly
                            await self._bye()
                            return

    def _ack_failure(self, resp: SipMessage, branch: str) -> None:
        """ACK of a non-2xx final answer: part of the INVITE transaction (same branch)."""
        tag = header_tag(resp.get("to") or "")
        saved, self.to_tag = self.to_tag, tag
        self._send_sip(self._request("ACK", branch, self.cseq, self.uri.text))
        self.to_tag = saved

    def _answered(self, resp: SipMessage) -> None:
        now = _now()
        self.answered_ns = now
        self.conn_setup_ns = now - self.invite_ns
        if self.post_dial_delay_ns is None:
            self.post_dial_delay_ns = self.conn_setup_ns  # answered without ringing
        self.to_tag = header_tag(resp.get("to") or "")
        contact = resp.get("contact")
        if contact:
            self.remote_target = header_uri(contact)
        self.route = list(reversed([r.strip() for rr in resp.get_all("record-route")
                                    for r in rr.split(",")]))
        self.cseq_invite = self.cseq
        self._ack = self._request("ACK", "z9hG4bK" + secrets.token_hex(8), self.cseq,
                                  self.remote_target)
        self._send_sip(self._ack)
        media = parse_sdp(resp.body, self.settings.codecs) if resp.body else None
        if media is None:
            raise TransportError("sip_media", "200 OK without an SDP answer")
        self._apply_media(media)
        self.sip_log.append(("answered", media.direction))

    async def _bye(self) -> None:
        """Hang up: BYE (retransmitted on UDP) and wait briefly for its 200."""
        self.cseq += 1
        branch = "z9hG4bK" + secrets.token_hex(8)
        bye = self._request("BYE", branch, self.cseq, self.remote_target)
        self.sip_log.append(("bye_sent", ""))
        loop = asyncio.get_running_loop()
        end = loop.time() + 4.0
        t1 = 0.5
        self._send_sip(bye)
        while loop.time() < end and self._failure is None:
            try:
                async with asyncio.timeout(min(t1, end - loop.time())):
                    resp = await self._responses.get()
            except TimeoutError:
                if self._sip_udp is not None:
                    self._send_sip(bye)
                t1 *= 2
                continue
            with contextlib.suppress(TransportError):
                if resp.cseq == (self.cseq, "BYE") and resp.status >= 200:
                    self.sip_log.append(("bye_answered", str(resp.status)))
                    return

    # -- AudioLine
    @property
    def encode_key(self) -> str:
        return f"rtp:{self.codec_pt}"  # encode() depends on the samples and the codec only

    def encode(self, pcm8k: np.ndarray) -> list[bytes]:
        if self.codec_pt == PT_PCMA:
            return dsp.frame_bytes(dsp.encode(pcm8k, "alaw"), FRAME_SAMPLES, dsp.ALAW_SILENCE)
        return dsp.frames_mulaw_20ms(pcm8k)

    async def send_audio(self, payload: bytes) -> None:
        self.send_frame(payload)

    def send_frame(self, payload: bytes) -> None:
        """One 20 ms slot of the RTP stream: the caller's audio, or a DTMF digit in progress
        (an RFC 4733 event, or its in-band tone when the peer did not accept events)."""
        if self._closed:
            return  # hung up: the receiving side reports the end of the line
        ts = self._ts
        self._ts = (self._ts + FRAME_SAMPLES) & 0xFFFFFFFF
        if self._dtmf_state is None and self._dtmf:
            digit = self._dtmf.pop(0)
            self._dtmf_state = (digit, ts, 0)
            if self.dtmf_pt is None:
                tone = dsp.dtmf_tone(digit, 8000, DTMF_TONE_FRAMES * 0.02)
                self._dtmf_tone = self.encode(tone)
        pt, marker, out_ts = self.codec_pt, self._first_packet, ts
        if self._dtmf_state is not None:
            digit, start, k = self._dtmf_state
            if self.dtmf_pt is not None:
                if k < DTMF_TONE_FRAMES + DTMF_END_PACKETS - 1:
                    end = k >= DTMF_TONE_FRAMES - 1
                    dur = FRAME_SAMPLES * min(k + 1, DTMF_TONE_FRAMES)
                    payload = dtmf_payload(digit, end, dur)
                    pt, marker, out_ts = self.dtmf_pt, k == 0, start
            elif self._dtmf_tone:
                payload = self._dtmf_tone.pop(0)
            k += 1
            total = (DTMF_TONE_FRAMES + DTMF_END_PACKETS - 1 if self.dtmf_pt is not None
                     else DTMF_TONE_FRAMES) + DTMF_GAP_FRAMES
            if k >= total:
                self._dtmf_state = None
                if self._dtmf_done:
                    fut = self._dtmf_done.pop(0)
                    if not fut.done():
                        fut.set_result(None)
            else:
                self._dtmf_state = (digit, start, k)
        if not (self.send_enabled and self.remote_rtp and self._rtp is not None):
            self.frames_held += 1
            return
        self._seq = (self._seq + 1) & 0xFFFF
        self._first_packet = False
        self._rtp.sendto(rtp_packet(pt, self._seq, out_ts, self._ssrc, payload, marker),
                         self.remote_rtp)

    async def send_dtmf(self, digit: str) -> None:
        """Queue ``digit`` into the RTP stream; returns once it has been sent (160 ms of
        events, or 100 ms of tone, then a 40 ms gap)."""
        digit = digit.upper()
        if digit not in DTMF_EVENTS or self._closed:
            return
        fut: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._dtmf.append(digit)
        self._dtmf_done.append(fut)
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(2.0):
                await fut

    def setup_fields(self) -> dict[str, float | None]:
        """Per-call timings for the call's first turn record (ms)."""
        def ms(ns: int | None) -> float | None:
            return None if ns is None else round(ns / 1e6, 3)

        first = (None if self.first_rtp_ns is None or self.answered_ns is None
                 else self.first_rtp_ns - self.answered_ns)
        return {"post_dial_delay_ms": ms(self.post_dial_delay_ns),
                "answer_to_audio_ms": ms(first)}

    async def aclose(self) -> None:
        """Hang up (BYE unless the agent already did), then close every socket."""
        try:
            if not self._closed and self.answered_ns is not None:
                self.hangup_by = self.hangup_by or "caller"
                await self._bye()
        finally:
            self._end()
            for t in (self._rtp, self._rtcp, self._sip_udp):
                if t is not None:
                    t.close()
            if self._sip_tcp is not None:
                # The peer ends its side of the dialog on its own schedule; a connection
                # closed under it at once can count as a failed call there (SIPp does).
                asyncio.get_running_loop().call_later(TCP_LINGER_S, self._sip_tcp.close)


def dsp_silence(pt: int) -> bytes:
    return bytes([dsp.ALAW_SILENCE if pt == PT_PCMA else dsp.MULAW_SILENCE]) * FRAME_SAMPLES


def _drop(data: bytes, addr: Any) -> None:
    return None  # RTCP from the peer: read so the socket never fills, not used


class SipTransport:
    """Dials ``target`` (a ``sip:`` URI) once per call; see :class:`SipLine`."""

    def __init__(self, target: str, *, deadlines: Deadlines | None = None,
                 settings: SipSettings | None = None, record_audio: bool = False) -> None:
        self.uri = parse_sip_uri(target)
        self.record_audio = record_audio
        self.deadlines = deadlines or Deadlines()
        self.settings = settings or SipSettings.from_env()
        self.lines: list[SipLine] = []   # the latest calls (tests read what the peer sent)

    async def open_line(self, call_id: str, script: CallScript, tools: list[dict[str, Any]],
                        system_prompt: str) -> SipLine:
        line = SipLine(self.uri, self.settings, self.deadlines, call_id)
        if self.record_audio:
            line.received_audio = bytearray()
        self.lines.append(line)
        del self.lines[:-256]
        try:
            await line.dial()
        except BaseException:
            line._end()
            for t in (line._rtp, line._rtcp, line._sip_udp, line._sip_tcp):
                if t is not None:
                    t.close()
            raise
        return line

    async def warmup(self, connections: int) -> None:
        return None  # nothing to open ahead: every call dials its own dialog

    async def aclose(self) -> None:
        return None


def _build(o: TransportOptions) -> SipTransport:
    return SipTransport(o.target, deadlines=o.deadlines)


register(TransportSpec(name="sip", carries="audio", build=_build, tool_relay=True,
                       summary="SIP user agent: INVITE over UDP/TCP, RTP PCMU/PCMA, RFC 4733"))


__all__ = [
    "DTMF_EVENTS", "RtpPacket", "SdpMedia", "SipLine", "SipMessage", "SipSettings",
    "SipTransport", "SipUri", "StreamFramer", "build_message", "digest_authorization",
    "dtmf_payload", "failure_category", "parse_challenge", "parse_dtmf", "parse_message",
    "parse_rtp", "parse_sdp", "parse_sip_uri", "response_to", "rtp_packet", "sdp_offer",
]
