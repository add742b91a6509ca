"""SIPp (Debian's ``sip-tester``) as the peer of callsim's SIP user agent, on 127.0.0.1.

``sipp_peer(scenario, workdir, ...)`` starts ``sipp`` as a UAS with one of the scenarios in
``tests/transports/sipp/`` (its ``[key]`` placeholders filled from ``keys``; with ``echo``
the peer sends back every RTP packet it gets), yields its ``sip:`` URI once it listens, and on
exit waits for it to finish its call(s) and reports its exit status (0: every call ran its
scenario to the end) and its error log.
"""

from __future__ import annotations

import asyncio
import contextlib
import shutil
import socket
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path

SCENARIOS = Path(__file__).parent / "sipp"
HAVE_SIPP = shutil.which("sipp") is not None


def free_port(kind: int = socket.SOCK_DGRAM, even_pair: bool = False) -> int:
    """A free port on 127.0.0.1 (for a media port, an even one whose successor is free)."""
    for _ in range(200):
        with socket.socket(socket.AF_INET, kind) as s:
            s.bind(("127.0.0.1", 0))
            port = int(s.getsockname()[1])
        if not even_pair:
            return port
        if port % 2 == 0 and all(_free(p) for p in (port, port + 1, port + 2, port + 3)):
            return port
    raise RuntimeError("no free port")


def _free(port: int) -> bool:
    for kind in (socket.SOCK_DGRAM, socket.SOCK_STREAM):
        with socket.socket(socket.AF_INET, kind) as s:
            try:
                s.bind(("127.0.0.1", port))
            except OSError:
                return False
    return True


@dataclass
class SippRun:
    uri: str
    workdir: Path
    returncode: int | None = None
    output: str = ""
    errors: str = field(default="")


@contextlib.asynccontextmanager
async def sipp_peer(scenario: str, workdir: Path, *, transport: str = "udp",
                    keys: dict[str, str] | None = None, calls: int = 1,
                    timeout_s: float = 60.0, echo: bool = True,
                    nice: int = 0) -> AsyncIterator[SippRun]:
    kind = socket.SOCK_STREAM if transport == "tcp" else socket.SOCK_DGRAM
    port = free_port(kind)
    media = free_port(even_pair=True)
    text = (SCENARIOS / f"{scenario}.xml").read_text()
    for k, v in (keys or {}).items():  # sipp takes no keywords in pause lengths or labels
        text = text.replace(f"[{k}]", v)
    xml = workdir / f"{scenario}.xml"
    xml.write_text(text)
    args = [*(["nice", "-n", str(nice)] if nice else []), "sipp", "-sf", str(xml),
            "-i", "127.0.0.1",
            "-p", str(port), "-mi", "127.0.0.1", "-mp", str(media),
            "-t", "t1" if transport == "tcp" else "u1", "-m", str(calls),
            "-timeout", f"{int(timeout_s)}s", "-nostdin", "-trace_err",
            "-max_socket", "4096"]
    if echo:
        args.append("-rtp_echo")
    out = (workdir / "sipp.out").open("wb")
    proc = await asyncio.create_subprocess_exec(*args, cwd=workdir, stdout=out,
                                                stderr=asyncio.subprocess.STDOUT,
                                                stdin=asyncio.subprocess.DEVNULL)
    tp = ";transport=tcp" if transport == "tcp" else ""
    run = SippRun(f"sip:agent@127.0.0.1:{port}{tp}", workdir)
    try:
        for _ in range(200):  # until sipp has bound its SIP port (bounded: 10 s)
            if proc.returncode is not None or not _bindable(port, kind):
                break
            await asyncio.sleep(0.05)
        if proc.returncode is not None:
            raise RuntimeError(f"sipp exited at start: {(workdir / 'sipp.out').read_text()}")
        yield run
        try:
            async with asyncio.timeout(timeout_s):
                run.returncode = await proc.wait()
        except TimeoutError:
            pass
    finally:
        if proc.returncode is None:
            proc.kill()
            await proc.wait()
        out.close()
        run.output, run.errors = _logs(workdir)


def _logs(workdir: Path) -> tuple[str, str]:
    out = (workdir / "sipp.out").read_text(errors="replace")
    return out, "".join(p.read_text(errors="replace") for p in workdir.glob("*_errors.log"))


def _bindable(port: int, kind: int) -> bool:
    with socket.socket(socket.AF_INET, kind) as s:
        try:
            s.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True


def write_rtp_pcap(path: Path, audio: bytes, pt: int = 0, frame: int = 160) -> Path:
    """A pcap of one RTP stream (Ethernet/IPv4/UDP, 20 ms apart) carrying ``audio`` (G.711
    bytes, payload type ``pt``): what ``sipp``'s ``play_pcap_audio`` sends as the agent."""
    import struct

    out = [struct.pack("<IHHiIII", 0xA1B2C3D4, 2, 4, 0, 0, 65535, 1)]
    for k in range(0, len(audio) // frame):
        rtp = struct.pack("!BBHII", 0x80, (0x80 if k == 0 else 0) | pt, k + 1, k * frame,
                          0x5EED) + audio[k * frame:(k + 1) * frame]
        lo = bytes([127, 0, 0, 1])
        # sipp rewrites the ports and patches the UDP checksum from the recorded one, so the
        # recording must hold a correct checksum for 127.0.0.1 -> 127.0.0.1.
        pseudo = lo + lo + struct.pack("!BBH", 0, 17, 8 + len(rtp))
        udp0 = struct.pack("!HHHH", 4000, 4000, 8 + len(rtp), 0) + rtp
        udp = udp0[:6] + struct.pack("!H", _checksum(pseudo + udp0) or 0xFFFF) + rtp
        ip = struct.pack("!BBHHHBBH4s4s", 0x45, 0, 20 + len(udp), k, 0, 64, 17, 0,
                         lo, lo) + udp
        eth = b"\x00\x00\x00\x00\x00\x02" + b"\x00\x00\x00\x00\x00\x01" + b"\x08\x00" + ip
        t_us = k * 20_000
        out.append(struct.pack("<IIII", t_us // 1_000_000, t_us % 1_000_000, len(eth),
                               len(eth)) + eth)
    path.write_bytes(b"".join(out))
    return path


def _checksum(data: bytes) -> int:
    if len(data) % 2:
        data += b"\0"
    total = sum(int.from_bytes(data[i:i + 2], "big") for i in range(0, len(data), 2))
    while total >> 16:
        total = (total & 0xFFFF) + (total >> 16)
    return ~total & 0xFFFF
