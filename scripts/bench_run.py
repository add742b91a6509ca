"""Benchmark of issue 15: ``callsim run`` as users run it, timed against the server's truth.

``callsim run`` runs as a subprocess (persona callers, grading, the store, progress) against
``scripts/loopback_sse_server.py`` in its own process, which logs each request's true time
to first token (kernel receive of the request -> first content write) keyed by
``X-Callsim-Call-Id`` and the request's order within the call. Those rows are joined with the
run store turn by turn (call id, request sequence) and this prints, per scenario:

  error      callsim's first-token latency - the server's, p50/p99/max (ms)
  loop lag   p50/p99/max of the run's lag monitor; stalls = seconds whose largest per-turn
             ``loop_lag_ms`` exceeded ``--stall-ms``, and the worst of them
  CPU        CPU seconds of the ``callsim run`` process and its grading process (minus its
             start-up, measured on a one-call run planning as many scripts) per caller
             turn; and the same for a minimal aiohttp streaming client
             on the same server and workload shape, measured in this same invocation: the ratio

Scenarios: ``paced`` (``--pacing speech``, every call in flight at once, the default of
``callsim run``) and ``stress`` (``--pacing none``, closed loop).

    .venv/bin/python scripts/bench_run.py                  # reduced scale, ~3 minutes
    .venv/bin/python scripts/bench_run.py --quick          # smaller, ~1 minute
    .venv/bin/python scripts/bench_run.py --paced-calls 1000 --stress-calls 100000 \\
        --stress-concurrency 200 --stress-duration 300 --json out.json   # the issue's scale

Numbers are only as quiet as the machine: the output prints the load average.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from collections import defaultdict
from collections.abc import Iterator
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
sys.path.insert(0, str(ROOT))

from simulator.histogram import LatencyHistogram  # noqa: E402
from simulator.storage.store import RunStore  # noqa: E402


def _pct(values: list[float], q: float) -> float:
    if not values:
        return float("nan")
    s = sorted(values)
    return s[min(len(s) - 1, max(0, int(round(q / 100 * len(s) + 0.5)) - 1))]


def _children_cpu() -> float:
    r = resource.getrusage(resource.RUSAGE_CHILDREN)
    return r.ru_utime + r.ru_stime


@contextlib.contextmanager
def loopback(a: argparse.Namespace, log: Path) -> Iterator[str]:
    """The loopback server in its own process, logging true timings to ``log``."""
    cmd = [sys.executable, str(HERE / "loopback_sse_server.py"), "--ttft-ms", str(a.ttft_ms),
           "--token-ms", str(a.token_ms), "--tokens", str(a.tokens), "--log", str(log)]
    if a.server_cpu is not None:
        cmd += ["--cpu", str(a.server_cpu)]
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, text=True)
    try:
        assert proc.stdout is not None
        yield proc.stdout.readline().strip()
    finally:
        proc.terminate()  # SIGTERM: the server flushes its log and exits
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def callsim_run(url: str, runs: Path, *extra: str) -> tuple[dict[str, Any], float, float]:
    """Run ``callsim run`` as a user would; its summary, CPU seconds and wall seconds."""
    cmd = [sys.executable, "-m", "simulator", "run", "--target", url, "--seed", "1",
           "--runs-dir", str(runs), "--json", *extra]
    cpu0, t0 = _children_cpu(), time.monotonic()
    p = subprocess.run(cmd, capture_output=True, text=True, cwd=ROOT)
    cpu, wall = _children_cpu() - cpu0, time.monotonic() - t0
    if p.returncode != 0:
        raise SystemExit(f"callsim run failed ({p.returncode}): {p.stderr[-2000:]}")
    return json.loads(p.stdout), cpu, wall


def server_rows(log: Path) -> dict[tuple[str, int], float]:
    """(call id, request order) -> the server's true first-token latency in ms."""
    out = {}
    for line in log.read_text().splitlines():
        d = json.loads(line)
        out[(d["call"], d["n"])] = d["ttft_ns"] / 1e6
    return out


def join(run_dir: Path, truth: dict[tuple[str, int], float], stall_ms: float
         ) -> dict[str, Any]:
    """callsim's stored turns joined with the server's log; errors, lag and stalls."""
    store = RunStore(run_dir)
    ids = {c["idx"]: c["call_id"] for c in store.calls()}
    turns = list(store.turns())
    hist = store.histograms().get("loop_lag_ms")
    store.close()
    errors: list[float] = []
    missing = 0
    per_second: dict[int, float] = defaultdict(float)
    for t in turns:
        if t["sent_s"] is not None and t["loop_lag_ms"] is not None:
            sec = int(t["sent_s"])
            per_second[sec] = max(per_second[sec], t["loop_lag_ms"])
        if t["ttft_ms"] is None:
            continue
        true = truth.get((ids[t["call_idx"]], t["seq"]))
        if true is None:
            missing += 1
            continue
        errors.append(t["ttft_ms"] - true)
    lag = LatencyHistogram.decode(hist) if hist else LatencyHistogram()
    stalls = sorted(((v, sec) for sec, v in per_second.items() if v > stall_ms), reverse=True)
    return {
        "joined": len(errors), "unjoined": missing,
        "error_ms": {"p50": _pct(errors, 50), "p99": _pct(errors, 99),
                     "max": max(errors, default=float("nan")),
                     "min": min(errors, default=float("nan"))},
        "loop_lag_ms": {"p50": lag.percentile_ms(50) if lag.count else float("nan"),
                        "p99": lag.percentile_ms(99) if lag.count else float("nan"),
                        "max": lag.percentile_ms(100) if lag.count else float("nan")},
        "stall_seconds": len(stalls), "seconds": len(per_second),
        # The worst seconds: (second of the run, largest turn lag in it, ms).
        "worst_stalls": [(sec, round(v, 1)) for v, sec in stalls[:5]],
    }


# -- the minimal client: the CPU floor of streaming the same replies -----------------------
async def _minimal(url: str, calls: int, concurrency: int, turns: int) -> dict[str, Any]:
    import aiohttp

    system = "You are the friendly receptionist of a clinic. " * 24  # ~1 KB, like a pack's
    line = "Hi, I'd like to book an appointment for next Tuesday afternoon please."
    queue = list(range(calls))
    done = 0
    errors = 0
    conn = aiohttp.TCPConnector(limit=0)
    async with aiohttp.ClientSession(connector=conn) as session:
        async def call(i: int) -> None:
            nonlocal done, errors
            messages: list[dict[str, str]] = [{"role": "system", "content": system}]
            for _ in range(turns):
                messages.append({"role": "user", "content": line})
                body = json.dumps({"model": "m", "messages": messages, "stream": True,
                                   "stream_options": {"include_usage": True}})
                parts: list[bytes] = []
                async with session.post(f"{url}/chat/completions", data=body,
                                        headers={"Content-Type": "application/json",
                                                 "X-Callsim-Call-Id": f"m{i:06d}"}) as r:
                    if r.status != 200:
                        errors += 1
                        return
                    async for chunk in r.content.iter_any():
                        parts.append(chunk)
                messages.append({"role": "assistant", "content": "ok"})
                done += 1

        async def worker() -> None:
            while queue:
                await call(queue.pop())

        async with session.get(f"{url}/models") as r:
            await r.read()
        cpu0, t0 = time.process_time(), time.monotonic()
        await asyncio.gather(*(worker() for _ in range(concurrency)))
        return {"turns": done, "errors": errors, "cpu_s": time.process_time() - cpu0,
                "wall_s": time.monotonic() - t0}


def minimal_client(url: str, calls: int, concurrency: int, turns: int) -> dict[str, Any]:
    """The minimal client in its own process (so its CPU is its own)."""
    p = subprocess.run([sys.executable, __file__, "--minimal", url, "--minimal-calls",
                        str(calls), "--stress-concurrency", str(concurrency),
                        "--minimal-turns", str(turns)],
                       capture_output=True, text=True, cwd=ROOT)
    if p.returncode != 0:
        raise SystemExit(f"minimal client failed: {p.stderr[-2000:]}")
    return json.loads(p.stdout)


def scenario(name: str, a: argparse.Namespace, tmp: Path, fixed_cpu: float,
             extra: list[str], minimal: bool) -> dict[str, Any]:
    log = tmp / f"{name}.server.jsonl"
    with loopback(a, log) as url:
        summary, cpu, wall = callsim_run(url, tmp / name, *extra)
        mini = None
        if minimal:
            turns = summary["load"]["caller_turns"]
            per_call = max(1, round(turns / max(1, summary["calls"]["completed"])))
            mini = minimal_client(url, max(1, turns // per_call), a.stress_concurrency,
                                  per_call)
    res = join(Path(summary["run_dir"]), server_rows(log), a.stall_ms)
    turns = summary["load"]["caller_turns"]
    res.update({
        "scenario": name, "args": extra, "wall_s": wall,
        "turns": turns, "turns_per_s": summary["load"]["turns_per_s"],
        "calls_in_flight_mean": summary["load"]["concurrent_calls_mean"],
        "cpu_s": cpu, "cpu_ms_per_turn": (cpu - fixed_cpu) * 1e3 / max(1, turns),
        "loop_lag_verdict": summary["loop_lag"]["verdict"],
        "failed_calls": summary["calls"]["failed"],
    })
    if mini is not None:
        res["minimal"] = {**mini, "cpu_ms_per_turn": mini["cpu_s"] * 1e3 / max(1, mini["turns"])}
        res["cpu_ratio"] = res["cpu_ms_per_turn"] / res["minimal"]["cpu_ms_per_turn"]
    return res


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--paced-calls", type=int, default=200,
                    help="paced scenario: calls, all in flight at once")
    ap.add_argument("--stress-calls", type=int, default=300)
    ap.add_argument("--stress-concurrency", type=int, default=20)
    ap.add_argument("--stress-duration", type=float, default=None,
                    help="seconds of the stress scenario (callsim run --duration; "
                         "--stress-calls then only caps it)")
    ap.add_argument("--ttft-ms", type=float, default=250.0)
    ap.add_argument("--token-ms", type=float, default=20.0)
    ap.add_argument("--tokens", type=int, default=20)
    ap.add_argument("--stall-ms", type=float, default=10.0)
    ap.add_argument("--server-cpu", type=int, default=None, help="pin the server to this CPU")
    ap.add_argument("--only", choices=["paced", "stress"])
    ap.add_argument("--quick", action="store_true", help="60 paced calls, 100 stress calls")
    ap.add_argument("--json", type=Path, help="also write the results here")
    ap.add_argument("--minimal", help=argparse.SUPPRESS)
    ap.add_argument("--minimal-calls", type=int, default=0, help=argparse.SUPPRESS)
    ap.add_argument("--minimal-turns", type=int, default=0, help=argparse.SUPPRESS)
    a = ap.parse_args(argv)
    if a.minimal:
        print(json.dumps(asyncio.run(_minimal(a.minimal, a.minimal_calls, a.stress_concurrency,
                                              a.minimal_turns))))
        return 0
    if a.quick:
        a.paced_calls, a.stress_calls = 60, 100
    results: list[dict[str, Any]] = []
    with tempfile.TemporaryDirectory() as td:
        tmp = Path(td)
        def start_up(count: int) -> float:
            """CPU of a run that plans ``count`` scripts (generating them is part of the
            start-up) and makes one call: what is not per turn."""
            with loopback(a, tmp / f"startup-{count}.jsonl") as url:
                return callsim_run(url, tmp / f"startup-{count}", "--count", str(count),
                                   "--concurrency", "1", "--pacing", "none",
                                   "--duration", "0.001s")[1]

        fixed_cpu = start_up(1)
        if a.only in (None, "paced"):
            results.append(scenario("paced", a, tmp, start_up(a.paced_calls),
                                    ["--count", str(a.paced_calls), "--concurrency",
                                     str(a.paced_calls)], minimal=False))
        if a.only in (None, "stress"):
            results.append(scenario("stress", a, tmp, start_up(a.stress_calls),
                                    ["--pacing", "none", "--count", str(a.stress_calls),
                                     "--concurrency", str(a.stress_concurrency),
                                     *(["--duration", f"{a.stress_duration:g}s"]
                                       if a.stress_duration else [])], minimal=True))
    load = os.getloadavg()
    print(f"load average {load[0]:.1f} {load[1]:.1f} {load[2]:.1f} on {os.cpu_count()} CPUs; "
          f"callsim start-up {fixed_cpu:.2f} s CPU for one script (subtracted, with each "
          f"scenario's script generation); server ttft {a.ttft_ms:g} ms, "
          f"{a.tokens} tokens every {a.token_ms:g} ms")
    for r in results:
        e, lag = r["error_ms"], r["loop_lag_ms"]
        print(f"\n{r['scenario']}: callsim run {' '.join(r['args'])}")
        print(f"  {r['turns']} caller turns, {r['turns_per_s']:.1f} turns/s at "
              f"{r['calls_in_flight_mean']:.1f} calls in flight, {r['failed_calls']} failed "
              f"calls, {r['wall_s']:.0f} s")
        print(f"  TTFT error vs server truth ({r['joined']} turns joined, {r['unjoined']} not): "
              f"p50 {e['p50']:.2f} ms, p99 {e['p99']:.2f} ms, max {e['max']:.2f} ms, "
              f"min {e['min']:.2f} ms")
        print(f"  loop lag p50 {lag['p50']:.2f} ms, p99 {lag['p99']:.2f} ms, max "
              f"{lag['max']:.1f} ms; {r['stall_seconds']} of {r['seconds']} s with a turn "
              f"lag > {a.stall_ms:g} ms; worst (second, ms): {r['worst_stalls']}")
        print(f"  CPU {r['cpu_ms_per_turn']:.2f} ms per turn ({r['cpu_s']:.1f} s in all)")
        if "minimal" in r:
            m = r["minimal"]
            print(f"  minimal aiohttp client, same server and shape: {m['turns']} turns, "
                  f"{m['cpu_ms_per_turn']:.2f} ms CPU per turn -> ratio {r['cpu_ratio']:.2f}x")
    if a.json:
        a.json.write_text(json.dumps({"load": load, "results": results}, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
