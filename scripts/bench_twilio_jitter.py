"""Voice load as users run it: `callsim run` over Twilio Media Streams (or OpenAI Realtime)
at a ladder of concurrent calls, against the reference voice agent in its own process.

Each level is one `callsim run --concurrency N` (persona callers, tones as the caller's
voice, grading, the store, the summary) that keeps N calls in flight for ``--duration``
seconds. The caller process is pinned to one CPU and the agent to another (when the
machine has two), so the numbers are those of one caller core. Per level it reports what
the run's own summary says: send jitter of every caller frame (send time minus its 20 ms
deadline) p50 / p99 / max, time to first audio p50 / p95, the caller's event-loop lag
p99, calls ok / failed, and the CPU of the caller and of the agent over the run, so the
ladder says where the limit is (caller loop, agent, or neither).

    .venv/bin/python scripts/bench_twilio_jitter.py                       # 50,100,150, 60 s
    .venv/bin/python scripts/bench_twilio_jitter.py --levels 50,100,150,200,300 --duration 60
    .venv/bin/python scripts/bench_twilio_jitter.py --transport openai-realtime --levels 100
    .venv/bin/python scripts/bench_twilio_jitter.py --workers 2 --levels 150   # Ray shards
    .venv/bin/python scripts/bench_twilio_jitter.py --levels 150 --ramp-s 10   # staggered starts
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from simulator.agent.process import running_agent  # noqa: E402

CALLSIM = [sys.executable, "-m", "simulator"]
PATHS = {"twilio": "/twilio", "openai-realtime": "/v1/realtime"}


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _cpu_s(pid: int) -> float:
    """User + system CPU seconds of a live process."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def _cpu_times() -> dict[str, list[int]]:
    """Per-CPU jiffies from /proc/stat (``cpu`` is all of them together)."""
    out = {}
    for line in Path("/proc/stat").read_text().splitlines():
        if line.startswith("cpu"):
            name, *vals = line.split()
            out[name] = [int(v) for v in vals]
    return out


def _steal_share(before: dict[str, list[int]], after: dict[str, list[int]],
                 cpu: int | None) -> float | None:
    """The share of a CPU's time the hypervisor gave to someone else (``steal``, the 8th
    field) between two readings: time the run wanted to run and could not, on a VM."""
    name = "cpu" if cpu is None else f"cpu{cpu}"
    if name not in before or name not in after or len(after[name]) < 8:
        return None
    d = [a - b for a, b in zip(after[name], before[name], strict=False)]
    total = sum(d[:8])
    return round(d[7] / total, 3) if total > 0 else None


def _pin(cpu: int | None) -> Any:
    if cpu is None:
        return None
    return lambda: os.sched_setaffinity(0, {cpu})


def level(n: int, a: argparse.Namespace) -> dict[str, Any]:
    cpus = sorted(os.sched_getaffinity(0))
    caller_cpu, agent_cpu = (cpus[0], cpus[1]) if len(cpus) >= 2 and a.workers == 1 else (None,
                                                                                          None)
    relay = _free_port()
    with running_agent("--stt", "none", "--ttft-ms", str(a.agent_ttft_ms),
                       "--tools-url", f"http://127.0.0.1:{relay}") as agent:
        if agent_cpu is not None:
            try:
                os.sched_setaffinity(agent.pid, {agent_cpu})
            except OSError:  # a cpuset keeps it elsewhere: leave it there
                pass
        target = agent.url.replace("http://", "ws://").removesuffix("/v1") + PATHS[a.transport]
        with tempfile.TemporaryDirectory() as runs:
            cmd = [*CALLSIM, "run", "--target", target, "--transport", a.transport,
                   "--caller-audio", "tones", "--profile", "none", "--seed", "1",
                   # the agent answers in tones: nothing for the listener to hear, and its
                   # recogniser processes would share the caller's core
                   "--listener", "off",
                   "--count", str(int(n * (a.duration / 10 + 3))), "--duration", f"{a.duration}s",
                   "--concurrency", str(n), "--runs-dir", runs, "--json",
                   "--call-timeout", str(a.duration + 120)]
            if a.transport == "twilio":
                cmd += ["--tools-port", str(relay)]
            if a.workers > 1:
                cmd += ["--workers", str(a.workers)]
            if a.grading:
                cmd += ["--grading", a.grading]
            if a.ramp_s:
                # calls start over --ramp-s seconds, as a load tool ramps up, instead of all
                # in the first second (their turns then fall due together for the whole run)
                cmd += ["--max-starts", f"{max(1.0, n / a.ramp_s):g}"]
            agent_cpu0 = _cpu_s(agent.pid)
            ru0 = resource.getrusage(resource.RUSAGE_CHILDREN)
            stat0 = _cpu_times()
            t0 = time.perf_counter()
            p = subprocess.run(cmd, capture_output=True, text=True, cwd=ROOT,
                               preexec_fn=_pin(caller_cpu), timeout=a.duration * 3 + 600)
            wall = time.perf_counter() - t0
            ru1 = resource.getrusage(resource.RUSAGE_CHILDREN)
            stat1 = _cpu_times()
            agent_cpu_s = _cpu_s(agent.pid) - agent_cpu0
    if p.returncode not in (0, 1):
        raise SystemExit(f"callsim run failed at {n} calls (exit {p.returncode}): "
                         f"{p.stderr.strip().splitlines()[-1:]}")
    s = json.loads(p.stdout)
    sj = s.get("send_jitter_ms") or {}
    ttfa = s["audio"]["ttfa_ms"]
    caller_cpu_s = (ru1.ru_utime - ru0.ru_utime) + (ru1.ru_stime - ru0.ru_stime)
    return {
        "calls_in_flight": n, "transport": a.transport, "workers": a.workers,
        "ramp_s": a.ramp_s,
        "wall_s": round(wall, 1),
        "calls_ok": s["calls"]["ok"], "calls_failed": s["calls"]["failed"],
        "errors": s["errors"],
        "concurrent_calls_mean": round(s["load"]["concurrent_calls_mean"] or 0, 1),
        "frames": sj.get("frames"),
        "jitter_ms": {k: round(sj[k], 3) for k in ("p50", "p99", "max")} if sj else None,
        "ttfa_ms": {"p50": ttfa["p50"], "p95": ttfa["p95"]},
        "loop_lag_p99_ms": s["loop_lag"]["p99_ms"],
        "caller_cpu_share": round(caller_cpu_s / wall, 2),
        "agent_cpu_share": round(agent_cpu_s / wall, 2),
        # on a VM, CPU time the host took from the caller's core (or from all, unpinned)
        "caller_core_steal": _steal_share(stat0, stat1, caller_cpu),
        "target_p99_under_2ms": bool(sj and sj["p99"] < 2.0),
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--levels", default="50,100,150", help="calls in flight, comma-separated")
    ap.add_argument("--duration", type=float, default=60.0,
                    help="seconds of calls being started at each level")
    ap.add_argument("--transport", choices=sorted(PATHS), default="twilio")
    ap.add_argument("--workers", type=int, default=1, help="Ray shard workers (callsim run "
                    "--workers); more than 1 leaves the processes unpinned")
    ap.add_argument("--agent-ttft-ms", type=float, default=300.0)
    ap.add_argument("--grading", choices=("auto", "loop", "process"), default=None,
                    help="callsim run --grading (default: callsim's own)")
    ap.add_argument("--ramp-s", type=float, default=0.0, help="start the calls over this many "
                    "seconds (callsim run --max-starts N/ramp); 0: all at once")
    a = ap.parse_args()
    rows = []
    for n in (int(x) for x in a.levels.split(",")):
        r = level(n, a)
        rows.append(r)
        print(json.dumps(r), flush=True)
    print()
    print("| calls | frames | jitter p50 / p99 / max (ms) | ttfa p50 / p95 (ms) | loop lag p99 "
          "| caller CPU | agent CPU | steal (caller core) | ok / failed |")
    print("|---|---|---|---|---|---|---|---|---|")
    for r in rows:
        j = r["jitter_ms"] or {"p50": None, "p99": None, "max": None}
        print(f"| {r['calls_in_flight']} | {r['frames']} | {j['p50']} / {j['p99']} / {j['max']} "
              f"| {r['ttfa_ms']['p50']} / {r['ttfa_ms']['p95']} | {r['loop_lag_p99_ms']} "
              f"| {r['caller_cpu_share']:.0%} | {r['agent_cpu_share']:.0%} "
              f"| {_pct(r['caller_core_steal'])} | {r['calls_ok']} / {r['calls_failed']} |")


def _pct(x: float | None) -> str:
    return "n/a" if x is None else f"{x:.1%}"


if __name__ == "__main__":
    main()
