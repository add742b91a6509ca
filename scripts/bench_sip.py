"""SIP calls under load: N concurrent calls from one caller process pinned to one core,
against SIPp (Debian's ``sip-tester``) answering on loopback in its own process, reporting
the caller's RTP send-time jitter (actual send - absolute 20 ms deadline) p50 / p99 / max,
post-dial delay and time to first agent audio. Target: p99 < 2 ms at 100 calls.

Each call: INVITE, 100 ms of ringing, the caller talks for ``--duration`` seconds (one
synthetic utterance, sent as 20 ms PCMU packets from the call's own RTP port pair), the agent
answers with a 1.25 s reply (SIPp plays a recording), the caller hangs up (BYE). Calls start
10 ms apart. Needs ``sipp`` on PATH (skipped otherwise).

    .venv/bin/python scripts/bench_sip.py [--calls 100] [--duration 30] [--cpu N] [--floor 10]
                                          [--asyncio]

``floor_jitter_ms`` is a bare 20 ms timer on the same core just before the calls: on a shared
machine it shows how much of the calls' jitter the machine itself adds.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import shutil
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from simulator.audio import dsp  # noqa: E402
from simulator.audio.line import synthetic_speech  # noqa: E402
from simulator.callscript import CallScript, Persona, Turn  # noqa: E402
from simulator.driver.audio_call import AudioStats, run_audio_call  # noqa: E402
from simulator.driver.gctune import load_gc  # noqa: E402
from simulator.transports.base import Deadlines  # noqa: E402
from simulator.transports.sip import SipSettings, SipTransport  # noqa: E402
from tests.transports.sipp_peer import sipp_peer, write_rtp_pcap  # noqa: E402

REPLY = synthetic_speech(5, seconds_per_word=0.25, f0_hz=180.0)


class _OneTurn:
    def first(self) -> Turn:
        return Turn(index=0, text="I would like to book an appointment for next week please")

    def respond(self, agent_text: str) -> Turn | None:
        return None


def _script(i: int) -> CallScript:
    return CallScript(call_id=f"bench-{i}", pack="salon", intent="book", seed=i,
                      persona=Persona(name="Bench Caller"), record_exists=True, slots={},
                      turns=[Turn(index=0, text="hello")], expected_tool_calls=[],
                      expected_outcome="completed")


def _pct(xs: list[float], q: float) -> float | None:
    return round(float(np.percentile(xs, q)), 3) if xs else None


async def floor_jitter(seconds: float) -> list[float]:
    """One bare 20 ms deadline loop (no calls): the jitter the machine alone gives this core
    right now, to read the calls' numbers against on a shared machine."""
    out: list[float] = []
    nxt = time.perf_counter_ns()
    end = nxt + int(seconds * 1e9)
    while nxt < end:
        delay = (nxt - time.perf_counter_ns()) / 1e9
        if delay > 0:
            await asyncio.sleep(delay)
        out.append((time.perf_counter_ns() - nxt) / 1e6)
        nxt += 20_000_000
    return out


async def bench(calls: int, duration: float, cpu: int | None,
                floor_s: float = 10.0) -> dict[str, Any]:
    work = Path(tempfile.mkdtemp(prefix="bench_sip_"))
    write_rtp_pcap(work / "reply.pcap", dsp.encode(REPLY, "mulaw"), 0)
    reply_at_ms = int((duration + 2.5) * 1000)
    keys = {"after_answer": "caller_hangup", "ring_ms": "100", "codec": "0",
            "reply_at_ms": str(reply_at_ms), "hold_ms": "0", "bye_ms": "0",
            "play_greeting": "",
            "play_reply": '<nop><action><exec play_pcap_audio="reply.pcap"/></action></nop>'}
    speech = synthetic_speech(int(duration / 0.25), seconds_per_word=0.25)
    stats = AudioStats()
    # SIPp runs at the lowest priority: on a shared core the peer, which is not under test,
    # yields to the caller.
    async with sipp_peer("answer", work, keys=keys, calls=calls, echo=False,
                         timeout_s=duration + 120, nice=19) as peer:
        if cpu is not None:
            os.sched_setaffinity(0, {cpu})  # after sipp started: it keeps its own cores
        floor = await floor_jitter(floor_s) if floor_s > 0 else []
        transport = SipTransport(peer.uri, settings=SipSettings())

        async def no_tools(*_a: Any) -> tuple[str, None]:
            return "{}", None

        async def one(i: int) -> Any:
            await asyncio.sleep(i * 0.010)
            return await run_audio_call(
                _script(i), _OneTurn(), transport, no_tools,
                deadlines=Deadlines(connect_s=10, first_byte_s=30, call_s=duration + 60),
                run_t0_ns=time.perf_counter_ns(), speech=lambda turn: speech,
                greeting_wait_s=0, stats=stats)

        t0 = time.perf_counter()
        cpu0 = time.process_time()
        runs = await asyncio.gather(*(one(i) for i in range(calls)))
        wall = time.perf_counter() - t0
        busy = (time.process_time() - cpu0) / wall
        await transport.aclose()
    j = stats.jitter_ms
    firsts = [r.exchanges[0] for r in runs if r.exchanges]
    pdd = [e.post_dial_delay_ms for e in firsts if e.post_dial_delay_ms is not None]
    setup = [e.conn_setup_ms for e in firsts if e.conn_setup_ms is not None]
    ttfa = [e.ttfa_ms for e in firsts if e.ttfa_ms is not None]
    errors: dict[str, int] = {}
    for r in runs:
        if r.error:
            errors[r.error] = errors.get(r.error, 0) + 1
    shutil.rmtree(work, ignore_errors=True)
    return {
        "calls": calls, "duration_s": duration, "wall_s": round(wall, 1),
        "caller_cpu": cpu, "caller_core_busy": round(busy, 3), "errors": errors,
        "peer_exit": peer.returncode,
        "frames": len(j),
        "jitter_ms": {"p50": _pct(j, 50), "p99": _pct(j, 99),
                      "max": round(float(max(j)), 3) if j else None},
        "floor_jitter_ms": {"p50": _pct(floor, 50), "p99": _pct(floor, 99),
                            "max": round(max(floor), 3) if floor else None},
        "post_dial_delay_ms": {"p50": _pct(pdd, 50), "p95": _pct(pdd, 95)},
        "call_setup_ms": {"p50": _pct(setup, 50), "p95": _pct(setup, 95)},
        "reply_ttfa_ms": {"p50": _pct(ttfa, 50), "p95": _pct(ttfa, 95)},
        "target_p99_under_2ms": bool(j) and float(np.percentile(j, 99)) < 2.0,
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--calls", type=int, default=100)
    ap.add_argument("--duration", type=float, default=30.0, help="seconds the caller talks")
    ap.add_argument("--cpu", type=int, default=None,
                    help="the core the caller runs on (default: the last one it may use)")
    ap.add_argument("--floor", type=float, default=10.0,
                    help="seconds of a bare 20 ms timer on the same core first (0: none)")
    ap.add_argument("--asyncio", action="store_true",
                    help="plain asyncio instead of uvloop (uvloop: what `callsim run` uses)")
    a = ap.parse_args()
    if shutil.which("sipp") is None:
        print("bench_sip: sipp (Debian package sip-tester) is not installed: skipped")
        return
    cpu = a.cpu if a.cpu is not None else max(os.sched_getaffinity(0))
    use_uvloop = not a.asyncio
    if use_uvloop:
        try:
            import uvloop  # noqa: F401
        except ImportError:
            use_uvloop = False
    with load_gc():
        if use_uvloop:
            import uvloop

            res = uvloop.run(bench(a.calls, a.duration, cpu, a.floor))
        else:
            res = asyncio.run(bench(a.calls, a.duration, cpu, a.floor))
    res["loop"] = "uvloop" if use_uvloop else "asyncio"
    res["cpus_online"] = os.cpu_count()
    with contextlib.suppress(OSError):
        res["load_avg_1m"] = round(os.getloadavg()[0], 2)
    print(json.dumps(res, indent=2))


if __name__ == "__main__":
    main()
