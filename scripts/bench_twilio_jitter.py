"""Twilio frame pacing under load: N concurrent calls of D seconds against the reference
voice agent on loopback (in its own process), reporting caller-frame send-time jitter
(actual send - absolute 20 ms deadline) p50 / p99 / max. Target: p99 < 2 ms at 50 calls.

    .venv/bin/python scripts/bench_twilio_jitter.py [--calls 50] [--duration 60] [--uvloop]
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import multiprocessing as mp
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from simulator.audio.line import SyntheticSpeech  # noqa: E402
from simulator.callscript import CallScript, Persona, Turn  # noqa: E402
from simulator.driver.audio_call import AudioStats, run_audio_call  # noqa: E402
from simulator.driver.gctune import load_gc  # noqa: E402
from simulator.transports.base import Deadlines  # noqa: E402
from simulator.transports.twilio import TwilioTransport  # noqa: E402


def _serve(port_q: Any) -> None:
    from aiohttp import web

    from simulator.agent.voice import VoiceAgentConfig, create_voice_app

    async def main() -> None:
        runner = web.AppRunner(create_voice_app(VoiceAgentConfig(ttft_ms=300, greet=False,
                                                                  stt="none")),
                               access_log=None)
        await runner.setup()
        site = web.TCPSite(runner, "127.0.0.1", 0)
        await site.start()
        port_q.put(runner.addresses[0][1])
        await asyncio.Event().wait()

    asyncio.run(main())


class _Talker:
    """A caller who keeps talking turn after turn until ``until`` (perf_counter s)."""

    def __init__(self, until: float) -> None:
        self.until = until
        self.n = 0

    def _turn(self) -> Turn:
        self.n += 1
        return Turn(index=self.n, text="I would like to book an appointment for next week please")

    def first(self) -> Turn:
        return self._turn()

    def respond(self, agent_text: str) -> Turn | None:
        return self._turn() if time.perf_counter() < self.until else None


def _script(i: int) -> CallScript:
    return CallScript(call_id=f"bench-{i}", pack="salon", intent="book", seed=i,
                      persona=Persona(name="Bench Caller"), record_exists=True, slots={},
                      turns=[Turn(index=0, text="hello")], expected_tool_calls=[],
                      expected_outcome="completed")


async def bench(url: str, calls: int, duration: float) -> dict[str, Any]:
    stats = AudioStats()
    transport = TwilioTransport(url)

    async def no_tools(*_a: Any) -> tuple[str, None]:
        return "{}", None

    async def one(i: int) -> Any:
        await asyncio.sleep(i * 0.020 / max(calls, 1) * 7)  # spread call starts a little
        return await run_audio_call(
            _script(i), _Talker(time.perf_counter() + duration), transport, no_tools,
            deadlines=Deadlines(call_s=duration + 60), run_t0_ns=time.perf_counter_ns(),
            speech=SyntheticSpeech(0.3), greeting_wait_s=0, stats=stats)

    t0 = time.perf_counter()
    runs = await asyncio.gather(*(one(i) for i in range(calls)))
    wall = time.perf_counter() - t0
    await transport.aclose()
    j = np.asarray(stats.jitter_ms)
    ttfa = [e.ttfa_ms for r in runs for e in r.exchanges if e.ttfa_ms is not None]
    return {
        "calls": calls, "duration_s": duration, "wall_s": round(wall, 1),
        "errors": sum(r.error is not None for r in runs),
        "error_kinds": sorted({f"{r.error}: {r.error_detail}"[:120] for r in runs if r.error}),
        "frames": int(len(j)),
        "jitter_ms": {"p50": round(float(np.percentile(j, 50)), 3),
                      "p99": round(float(np.percentile(j, 99)), 3),
                      "max": round(float(j.max()), 3)},
        "ttfa_ms_p50": round(float(np.percentile(ttfa, 50)), 1) if ttfa else None,
        "target_p99_under_2ms": bool(np.percentile(j, 99) < 2.0),
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--calls", type=int, default=50)
    ap.add_argument("--duration", type=float, default=60.0, help="seconds per call")
    ap.add_argument("--uvloop", action="store_true",
                    help="run the callers on uvloop (what `callsim run` does when installed)")
    ap.add_argument("--asyncio", action="store_true", help="run the callers on plain asyncio")
    ap.add_argument("--no-gc-tuning", action="store_true",
                    help="leave the collector at its defaults (the runner tunes it)")
    a = ap.parse_args()
    if not a.asyncio:
        try:
            import uvloop  # noqa: F401

            a.uvloop = True
        except ImportError:
            pass
    q: Any = mp.get_context("spawn").Queue()
    proc = mp.get_context("spawn").Process(target=_serve, args=(q,), daemon=True)
    proc.start()
    try:
        port = q.get(timeout=60)
        url = f"ws://127.0.0.1:{port}/twilio"
        with contextlib.nullcontext() if a.no_gc_tuning else load_gc():
            if a.uvloop:
                import uvloop

                res = uvloop.run(bench(url, a.calls, a.duration))
            else:
                res = asyncio.run(bench(url, a.calls, a.duration))
        res["loop"] = "uvloop" if a.uvloop else "asyncio"
        res["gc_tuning"] = not a.no_gc_tuning
        print(json.dumps(res, indent=2))
    finally:
        proc.terminate()
        proc.join(5)


if __name__ == "__main__":
    main()
