"""Benchmark of issue 7: concurrent streaming calls sustained on 1 and 2 Ray workers.

capacity (the scaling number): long calls (``--pause-s`` caller pauses before each turn)
arrive at a constant rate chosen to hold ``--levels`` calls in flight per worker for
``--level-seconds``; the steady calls in flight (time-weighted, after the first calls
end, before arrivals stop) of the highest level whose merged worker loop-lag p99 stays
under 5 ms, for 1 and 2 workers, and their ratio. The Poisson levels below measure Ray's
overhead per call.

Against ``scripts/loopback_sse_server.py`` (its own process: a first token after
``--ttft-ms``, then ``--tokens`` tokens every ``--token-ms``), real call scripts are replayed
open loop (Poisson) through :func:`simulator.driver.distributed.run_distributed`, rate stepped up
until the workers' merged loop-lag p99 passes 5 ms. A level's concurrency is measured, not
assumed: the mean number of calls in flight (sum of call durations / span, Little's law).

  sustained  highest measured concurrency with loop-lag p99 <= 5 ms, 1 and 2 workers (a
             level over the limit is run once more, once per ladder: the machine is shared)
  ratio      sustained(2) / sustained(1)
  overhead   Ray's CPU per call: marginal CPU per call (between the first two rates) of the
             driver + worker on 1 Ray worker, minus the same for ``run_load`` in process;
             plus Ray's fixed start-up; and, less noisy, the size and (de)serialisation CPU
             of one finished call shipped from a worker to the driver

    .venv/bin/python scripts/bench_workers.py                  # default, under 3 minutes
    .venv/bin/python scripts/bench_workers.py --seconds 15 --rates 5,10,20,40

Numbers are only as quiet as the machine: the table prints the load average, and the
loopback server and the Ray daemons share the same cores as the workers.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from simulator.driver.arrivals import ArrivalSpec  # noqa: E402
from simulator.driver.runner import RunConfig, run_load  # noqa: E402
from simulator.personas import generate_calls, load_packs  # noqa: E402
from simulator.storage.store import RunStore  # noqa: E402

HERE = Path(__file__).resolve().parent
LAG_LIMIT_MS = 5.0
POLL_S = 0.2  # run_distributed's default


class Server:
    """The loopback SSE server in its own process (or the reference agent as a fallback)."""

    def __init__(self, ttft_ms: float, token_ms: float, tokens: int) -> None:
        script = HERE / "loopback_sse_server.py"
        if script.exists():
            args = [sys.executable, str(script), "--ttft-ms", str(ttft_ms), "--token-ms",
                    str(token_ms), "--tokens", str(tokens)]
            self.kind = "loopback_sse_server"
        else:
            args = [sys.executable, "-m", "simulator", "agent", "serve", "--port", "0",
                    "--ttft-ms", "0", "--token-ms", "0"]
            self.kind = "reference agent (zero delays)"
        self.proc = subprocess.Popen(args, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL,
                                     text=True)
        assert self.proc.stdout is not None
        line = ""
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline and "http://" not in line:
            line = self.proc.stdout.readline()
            if not line:
                break
        if "http://" not in line:
            self.close()
            raise RuntimeError(f"{self.kind} did not start")
        self.url = line[line.index("http://"):].split()[0]

    def close(self) -> None:
        self.proc.terminate()
        try:
            self.proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.proc.kill()


def _concurrency(run_dir: Path) -> tuple[float, float]:
    """(mean calls in flight, mean call duration s) from the stored calls."""
    store = RunStore(run_dir)
    try:
        rows = [(c["started_s"], c["finished_s"]) for c in store.calls()]
    finally:
        store.close()
    if not rows:
        return 0.0, 0.0
    busy = sum(f - s for s, f in rows)
    span = max(f for _, f in rows) - min(s for s, _ in rows)
    return busy / max(span, 1e-9), busy / len(rows)


def run_level(url: str, workers: int, rate: float, seconds: float, pauses: bool,
              seed: int, tmp: Path) -> dict[str, Any]:
    from simulator.driver.distributed import run_distributed

    packs = load_packs()
    n = max(1, int(rate * seconds))
    calls = generate_calls(packs, "all", min(n, 500), seed)
    cfg = RunConfig(target=url, arrival=ArrivalSpec(kind="poisson", rate=rate), count=n,
                    duration_s=seconds, seed=seed, honour_pauses=pauses, grace_s=5.0)
    run_dir = tmp / f"w{workers}-r{rate:g}-{time.monotonic_ns()}"
    cpu0, t0 = time.process_time(), time.monotonic()
    if workers == 0:  # in process, no Ray: the baseline for Ray's overhead
        s = asyncio.run(run_load(calls, packs, cfg, run_dir))
        worker_cpu = 0.0
    else:
        s = asyncio.run(run_distributed(calls, packs, cfg, run_dir, workers=workers,
                                           use_ray=True))
        worker_cpu = sum(w["cpu_s"] for w in s["workers"])
    wall = time.monotonic() - t0
    driver_cpu = time.process_time() - cpu0
    conc, dur = _concurrency(run_dir)
    done = s["calls"]["completed"]
    return {
        "workers": workers, "rate_per_s": rate, "calls": done, "failed": s["calls"]["failed"],
        "concurrency": round(conc, 1), "call_s": round(dur, 2),
        "lag_p99_ms": s["loop_lag"]["p99_ms"], "wall_s": round(wall, 1),
        "driver_cpu_s": round(driver_cpu, 3), "worker_cpu_s": round(worker_cpu, 3),
        "cpu_ms_per_call": round(1000 * (driver_cpu + worker_cpu) / max(done, 1), 2),
        "dispatch_p99_ms": s["dispatch_delay_ms"]["p99"],
    }


def fmt(lv: dict[str, Any]) -> str:
    who = "in-process" if lv["workers"] == 0 else f"{lv['workers']} worker(s)"
    lag = lv["lag_p99_ms"]
    ok = "ok" if lag is not None and lag <= LAG_LIMIT_MS else "OVER"
    return (f"{who:>12} {lv['rate_per_s']:>7g}/s {lv['concurrency']:>8.1f} {lv['calls']:>6} "
            f"{lv['failed']:>5} {lag if lag is not None else float('nan'):>8.2f} {ok:>4} "
            f"{lv['cpu_ms_per_call']:>9.2f} {lv['dispatch_p99_ms'] or 0:>9.1f}")


def climb(steps: list[Any], run: Any) -> tuple[dict[str, Any] | None, bool]:
    """Run ``run(step)`` up through ``steps`` (each returns ``(level, over)``); the best
    level within the limit (None if none) and whether the limit was hit (if not, the best
    is only a lower bound). On a shared machine one level can catch someone else's burst:
    one retry per climb before calling the limit."""
    best = None
    retried = False
    for step in steps:
        lv, over = run(step)
        if over and not retried:
            retried = True
            lv, over = run(step)
        if over:
            return best, True
        best = lv
    return best, False


def ladder(url: str, workers: int, rates: list[float], a: argparse.Namespace, tmp: Path,
           levels: list[dict[str, Any]]) -> tuple[dict[str, Any] | None, bool]:
    """Step the Poisson rate up (see :func:`climb`)."""

    def run(r: float) -> tuple[dict[str, Any], bool]:
        lv = run_level(url, workers, r * workers, a.seconds, not a.no_pauses, a.seed, tmp)
        levels.append(lv)
        print(fmt(lv), flush=True)
        return lv, bool(lv["lag_p99_ms"] is None or lv["lag_p99_ms"] > LAG_LIMIT_MS
                        or lv["failed"])

    return climb(rates, run)


def transfer_cost(url: str, seed: int, n: int = 40) -> dict[str, float]:
    """What shipping one finished call from a worker to the driver costs: its serialised
    size and the CPU to serialise and deserialise it with Ray's serializer (cloudpickle)."""
    import pickle

    from ray import cloudpickle

    from simulator.driver.runner import CallResult, ShardRunner

    packs = load_packs()
    calls = generate_calls(packs, "all", n, seed)
    cfg = RunConfig(target=url, arrival=ArrivalSpec(kind="closed", concurrency=n), seed=seed,
                    honour_pauses=False)
    got: list[CallResult] = []

    async def go() -> None:
        await ShardRunner(calls, packs, cfg).run(list(range(n)), time.perf_counter_ns(),
                                                 got.append, asyncio.Event())

    asyncio.run(go())
    t = time.process_time()
    blobs = [cloudpickle.dumps(r) for _ in range(5) for r in got]
    dumps_s = (time.process_time() - t) / len(blobs)
    t = time.process_time()
    for b in blobs:
        pickle.loads(b)
    loads_s = (time.process_time() - t) / len(blobs)
    return {"kb_per_call": sum(map(len, blobs)) / len(blobs) / 1024,
            "serialise_ms": 1000 * dumps_s, "deserialise_ms": 1000 * loads_s}


def marginal_ms(a: dict[str, Any], b: dict[str, Any]) -> float:
    """CPU per extra call between two levels (ms): cancels each run's fixed costs (start-up,
    summary, index) that a per-call average would spread over the calls."""
    cpu = (b["driver_cpu_s"] + b["worker_cpu_s"]) - (a["driver_cpu_s"] + a["worker_cpu_s"])
    return 1000 * cpu / max(b["calls"] - a["calls"], 1)


def long_calls(n: int, seed: int, pause_s: float) -> list[Any]:
    """``n`` generated calls whose every caller turn after the first waits ``pause_s`` (the
    caller talking): phone calls last tens of seconds, so calls in flight, not calls per
    second, is what a worker must hold."""
    calls = generate_calls(load_packs(), "all", n, seed)
    return [c.model_copy(update={"turns": [t.model_copy(update={"pause_before_s": pause_s})
                                           for t in c.turns]}) for c in calls]


def hold_level(url: str, workers: int, target: int, call_s: float, a: argparse.Namespace,
               tmp: Path) -> dict[str, Any]:
    """Constant arrivals at ``target * workers / call_s`` calls/s for ``a.level_seconds``:
    about ``target`` calls in flight per worker once the first calls end."""
    from simulator.driver.distributed import run_distributed

    packs = load_packs()
    rate = target * max(workers, 1) / call_s
    n = max(1, int(rate * a.level_seconds))
    calls = long_calls(min(n, 2000), a.seed, a.pause_s)
    cfg = RunConfig(target=url, arrival=ArrivalSpec(kind="constant", rate=rate), count=n,
                    seed=a.seed, honour_pauses=True, grace_s=call_s * 3)
    run_dir = tmp / f"hold-w{workers}-{target}-{time.monotonic_ns()}"
    t0 = time.monotonic()
    if workers == 0:
        s = asyncio.run(run_load(calls, packs, cfg, run_dir))
    else:
        s = asyncio.run(run_distributed(calls, packs, cfg, run_dir, workers=workers,
                                           use_ray=True))
    _, dur = _concurrency(run_dir)
    conc, peak = _steady_concurrency(run_dir, call_s, a.level_seconds)
    return {"workers": workers, "target_per_worker": target, "rate_per_s": round(rate, 2),
            "calls": s["calls"]["completed"], "failed": s["calls"]["failed"],
            "concurrency": round(conc, 1), "peak_concurrency": peak, "call_s": round(dur, 2),
            "lag_p99_ms": s["loop_lag"]["p99_ms"], "wall_s": round(time.monotonic() - t0, 1),
            "ttft_p99_ms": (s.get("ttft_ms") or {}).get("p99")}


def _steady_concurrency(run_dir: Path, lo: float, hi: float) -> tuple[float, int]:
    """(time-weighted mean, peak) of calls in flight between ``lo`` and ``hi`` seconds of
    the run: after the first calls have ended, before arrivals stop."""
    store = RunStore(run_dir)
    try:
        rows = [(c["started_s"], c["finished_s"]) for c in store.calls()]
    finally:
        store.close()
    busy = sum(max(0.0, min(f, hi) - max(s, lo)) for s, f in rows)
    ev = sorted([(s, 1) for s, _ in rows] + [(f, -1) for _, f in rows])
    cur = peak = 0
    for t, d in ev:
        cur += d
        if lo <= t <= hi:
            peak = max(peak, cur)
    return busy / max(hi - lo, 1e-9), peak


def capacity_ladder(url: str, workers: int, call_s: float, a: argparse.Namespace, tmp: Path,
                    rows: list[dict[str, Any]]) -> tuple[dict[str, Any] | None, bool]:
    """Step calls in flight per worker up through ``a.levels`` (see :func:`climb`)."""

    def run(target: int) -> tuple[dict[str, Any], bool]:
        lv = hold_level(url, workers, target, call_s, a, tmp)
        rows.append(lv)
        lag = lv["lag_p99_ms"]
        over = lag is None or lag > LAG_LIMIT_MS or bool(lv["failed"])
        print(f"{workers:>8} {target:>8} {lv['rate_per_s']:>8.1f} {lv['concurrency']:>9.1f} "
              f"{lv['peak_concurrency']:>6} {lv['calls']:>6} {lv['failed']:>5} "
              f"{lag if lag is not None else float('nan'):>8.2f} "
              f"{'OVER' if over else 'ok':>4}", flush=True)
        return lv, over

    steps = a.levels_2 if workers == 2 and a.levels_2 else a.levels
    return climb([int(x) for x in steps.split(",")], run)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--seconds", type=float, default=6.0, help="arrivals per level")
    ap.add_argument("--rates", default="4,8,16,24",
                    help="arrival rates per worker to step through (calls/s)")
    ap.add_argument("--ttft-ms", type=float, default=250.0)
    ap.add_argument("--token-ms", type=float, default=20.0)
    ap.add_argument("--tokens", type=int, default=20)
    ap.add_argument("--no-pauses", action="store_true", help="ignore scripted caller pauses")
    ap.add_argument("--seed", type=int, default=7)
    ap.add_argument("--json", type=Path, help="also write the results here")
    ap.add_argument("--levels", default="250,500,750,1000,1250",
                    help="capacity: calls in flight per worker to step through")
    ap.add_argument("--levels-2", default="",
                    help="capacity: calls in flight per worker for the 2-worker ladder "
                         "(default: --levels)")
    ap.add_argument("--pause-s", type=float, default=3.0,
                    help="capacity: caller pause before every turn after the first (s)")
    ap.add_argument("--level-seconds", type=float, default=40.0,
                    help="capacity: arrivals per level (s)")
    ap.add_argument("--skip-overhead", action="store_true",
                    help="only the capacity ladders (not the short Poisson levels)")
    ap.add_argument("--skip-capacity", action="store_true",
                    help="only the Poisson levels and Ray's overhead per call")
    a = ap.parse_args(argv)
    try:
        import ray
    except ImportError:
        print("bench_workers: Ray is not installed (pip install 'callsim[ray]'); skipped")
        return 0
    rates = [float(x) for x in a.rates.split(",")]
    if len(rates) < 2:
        ap.error("--rates needs at least two rates (the overhead is a difference)")
    server = Server(a.ttft_ms, a.token_ms, a.tokens)
    levels: list[dict[str, Any]] = []
    holds: list[dict[str, Any]] = []
    cap: dict[int, tuple[dict[str, Any] | None, bool]] = {}
    pauses = not a.no_pauses
    try:
        with tempfile.TemporaryDirectory() as td:
            tmp = Path(td)
            t = time.monotonic()
            # Workers at normal priority, as run_distributed starts its own instance.
            os.environ.setdefault("RAY_worker_niceness", "0")
            ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False)
            ray_start_s = time.monotonic() - t
            print(f"server: {server.kind}; cpus {os.cpu_count()}; load average "
                  f"{os.getloadavg()[0]:.2f}; ray start-up {ray_start_s:.1f} s")
            print(f"{'':>12} {'rate':>9} {'in flight':>8} {'calls':>6} {'fail':>5} "
                  f"{'lag p99':>8} {'':>4} {'cpu ms/call':>9} {'disp p99':>9}")
            try:
                # Unreported: pays the first run's imports and caches in this process.
                run_level(server.url, 0, rates[0], 2.0, pauses, a.seed, tmp)
                local: list[dict[str, Any]] = []
                best: dict[int, tuple[dict[str, Any] | None, bool]] = {}
                if not a.skip_overhead:
                    for r in rates[:2]:
                        lv = run_level(server.url, 0, r, a.seconds, pauses, a.seed, tmp)
                        levels.append(lv)
                        local.append(lv)
                        print(fmt(lv), flush=True)
                    best = {w: ladder(server.url, w, rates, a, tmp, levels) for w in (1, 2)}
                xfer = transfer_cost(server.url, a.seed)
                if not a.skip_capacity:
                    # One call's length with these pauses, measured, sets the rates.
                    short = argparse.Namespace(**{**vars(a), "level_seconds": 8.0})
                    probe = hold_level(server.url, 0, 10, 10.0, short, tmp)
                    call_s = probe["call_s"]
                    # Unreported: the first run in fresh Ray worker processes pays imports.
                    hold_level(server.url, 2, 10, call_s, short, tmp)
                    print(f"capacity: calls of {call_s:.1f} s ({a.pause_s:g} s caller pauses), "
                          f"{a.level_seconds:g} s of constant arrivals per level, loop-lag "
                          f"p99 of the workers' loops (merged)")
                    print(f"{'workers':>8} {'target':>8} {'rate/s':>8} {'in flight':>9} "
                          f"{'peak':>6} {'calls':>6} {'fail':>5} {'lag p99':>8}")
                    cap = {w: capacity_ladder(server.url, w, call_s, a, tmp, holds)
                           for w in (1, 2)}
            finally:
                ray.shutdown()
    finally:
        server.close()
    out: dict[str, Any] = {"machine": {"cpus": os.cpu_count(), "loadavg": os.getloadavg()},
                           "server": server.kind, "ray_start_s": ray_start_s,
                           "transfer_per_call": xfer}
    print(f"shipping a finished call worker -> driver: {xfer['kb_per_call']:.1f} KB, "
          f"{xfer['serialise_ms']:.2f} ms to serialise + {xfer['deserialise_ms']:.2f} ms to "
          f"deserialise (plus a {POLL_S * 1000:.0f} ms poll RPC per worker)")
    if best:
        # The last run at each rate (a retried level replaces its first try).
        one = list({lv["rate_per_s"]: lv for lv in levels if lv["workers"] == 1}.values())
        per_call_local = marginal_ms(local[0], local[1])
        per_call_ray = marginal_ms(one[0], one[1]) if len(one) >= 2 else float("nan")
        overhead = per_call_ray - per_call_local
        print(f"CPU per call (marginal, driver + workers): in process {per_call_local:.1f} ms, "
              f"1 Ray worker {per_call_ray:.1f} ms; Ray overhead {overhead:+.1f} ms per call, "
              f"plus {ray_start_s:.1f} s Ray start-up and ~1 s actor start per run")
        out.update({"seconds": a.seconds, "pauses": pauses, "levels": levels,
                    "cpu_ms_per_call": {"in_process": per_call_local,
                                        "ray_1_worker": per_call_ray},
                    "ray_overhead_cpu_ms_per_call": overhead})
    if cap:
        sus = {w: (b["concurrency"] if b else 0.0) for w, (b, _) in cap.items()}
        s1, s2 = sus[1], sus[2]
        ratio = s2 / s1 if s1 else float("nan")
        bound = {w: ("" if hit else " (lower bound: limit not reached)")
                 for w, (_, hit) in cap.items()}
        print(f"capacity at loop-lag p99 <= {LAG_LIMIT_MS:g} ms (steady calls in flight): "
              f"1 worker {s1:.0f}{bound[1]}, 2 workers {s2:.0f}{bound[2]}; ratio {ratio:.2f}")
        out.update({"capacity_levels": holds, "sustained": {"1": s1, "2": s2},
                    "ratio": ratio, "pause_s": a.pause_s, "level_seconds": a.level_seconds})
    if a.json:
        a.json.write_text(json.dumps(out, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
