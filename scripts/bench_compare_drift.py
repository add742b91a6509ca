"""Benchmark: does `callsim compare` name winners between runs that differ only by drift?

Each repetition makes four `callsim run`s of the same 300 scripts at the same time, against
four reference agents in their own processes (as `tests/test_compare_end_to_end.py` does):
the agent; the agent with argument errors on healthcare calls only; and an A/A pair, the
agent with argument errors on every pack under two seeds. Eight processes share the
machine, so the runs' latencies differ by whatever share of it each got.

Every repetition is judged twice with `callsim compare --json`: under the example rubric
(drift policy ``widen``) and under the same rubric with the policy set to ``note`` (judged as
is: compare before it applied drift). Counted per repetition:

* A/A: segments with a winner (every one is false: the two runs are the same agent);
* sloppy-on-healthcare against accurate: whether healthcare is routed to the accurate run,
  and segments other than healthcare with a winner (false).

Usage::

    python scripts/bench_compare_drift.py [--reps 8] [--concurrency 20] [--out FILE]

Writes one JSON line per repetition to ``--out`` as it goes and prints the table.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from contextlib import ExitStack
from pathlib import Path
from typing import Any

import yaml

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from simulator.agent.process import agent_process  # noqa: E402

CALLSIM = [sys.executable, "-m", "simulator"]
RUBRIC = ROOT / "examples" / "rubric.yaml"
ARMS = {
    "accurate": [],
    "sloppy-hc": ["--arg-error-rate", "healthcare=0.2"],
    "sloppy-A": ["--arg-error-rate", "0.2", "--seed", "1"],
    "sloppy-B": ["--arg-error-rate", "0.2", "--seed", "2"],
}


def _runs(tmp: Path, calls: Path, rep: int, concurrency: int) -> dict[str, Path]:
    with ExitStack() as stack:
        urls = {k: stack.enter_context(agent_process("--stt", "none", "--ttft-ms", "100", *v))
                for k, v in ARMS.items()}

        def run(label: str) -> tuple[str, Path]:
            p = subprocess.run(
                [*CALLSIM, "run", "--target", urls[label], "--calls", str(calls),
                 "--concurrency", str(concurrency), "--seed", str(21 + rep), "--no-pauses",
                 "--pacing", "none", "--runs-dir", str(tmp / "runs"), "--label", label,
                 "--json"], capture_output=True, text=True, timeout=1200)
            if p.returncode != 0:
                raise SystemExit(f"callsim run {label} failed: {p.stderr[-2000:]}")
            return label, Path(json.loads(p.stdout)["run_dir"])

        with ThreadPoolExecutor(len(ARMS)) as pool:
            return dict(pool.map(run, ARMS))


def _compare(a: Path, b: Path, rubric: Path) -> dict[str, Any]:
    p = subprocess.run([*CALLSIM, "compare", str(a), str(b), "--rubric", str(rubric), "--json"],
                       capture_output=True, text=True, timeout=600)
    if p.returncode != 0:
        raise SystemExit(f"callsim compare failed: {p.stderr[-2000:]}")
    return json.loads(p.stdout)


def _judge(runs: dict[str, Path], rubric: Path) -> dict[str, Any]:
    aa = _compare(runs["sloppy-A"], runs["sloppy-B"], rubric)
    hc = _compare(runs["accurate"], runs["sloppy-hc"], rubric)
    routes = {r["segment"]: r for r in hc["routes"]}
    return {
        "aa_false_winners": [r["segment"] for r in aa["routes"] if r["winner"]],
        "hc_routed": routes["pack healthcare"]["winner"] == "accurate",
        "hc_false_winners": [s for s, r in routes.items()
                             if r["winner"] and s not in ("pack healthcare", "all calls")],
        "widened": [d["widened"] for d in aa.get("drift", [])],
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--reps", type=int, default=8)
    ap.add_argument("--concurrency", type=int, default=20)
    ap.add_argument("--out", type=Path, default=Path("bench_compare_drift.jsonl"))
    args = ap.parse_args()
    tmp = Path(tempfile.mkdtemp(prefix="bench_compare_drift-"))
    calls = tmp / "calls.jsonl"
    subprocess.run([*CALLSIM, "generate", "--count", "300", "--seed", "21", "-o", str(calls)],
                   check=True, capture_output=True)
    note = tmp / "rubric-note.yaml"
    data = yaml.safe_load(RUBRIC.read_text())
    data["drift"] = {**data.get("drift", {}), "policy": "note"}
    note.write_text(yaml.safe_dump(data))
    rows: list[dict[str, Any]] = []
    with args.out.open("w") as out:
        for rep in range(args.reps):
            t0 = time.monotonic()
            runs = _runs(tmp / f"rep{rep}", calls, rep, args.concurrency)
            lat = {}
            for label, d in runs.items():
                s = json.loads((d / "summary.json").read_text())
                lat[label] = (s["gate"]["p95_ttft_ms"], s["loop_lag"]["p99_ms"])
            row: dict[str, Any] = {"rep": rep, "p95_ttft_ms_and_loop_lag_p99_ms": lat,
                   "widen": _judge(runs, RUBRIC), "note": _judge(runs, note),
                   "seconds": round(time.monotonic() - t0, 1)}
            rows.append(row)
            out.write(json.dumps(row) + "\n")
            out.flush()
            print(f"rep {rep}: p95 " + ", ".join(f"{k} {v[0]:.0f}" for k, v in lat.items())
                  + f" | widen: A/A {len(row['widen']['aa_false_winners'])} false, hc routed "
                  f"{row['widen']['hc_routed']} | note: A/A "
                  f"{len(row['note']['aa_false_winners'])} false, hc routed "
                  f"{row['note']['hc_routed']}", flush=True)
    n = len(rows)
    print("\n| policy | reps with an A/A winner | A/A false winners (segments) | "
          "healthcare routed to accurate | other packs with a winner |")
    print("|---|---|---|---|---|")
    for policy in ("widen", "note"):
        j = [r[policy] for r in rows]
        print(f"| {policy} | {sum(bool(x['aa_false_winners']) for x in j)} of {n} | "
              f"{sum(len(x['aa_false_winners']) for x in j)} | "
              f"{sum(x['hc_routed'] for x in j)} of {n} | "
              f"{sum(len(x['hc_false_winners']) for x in j)} |")


if __name__ == "__main__":
    main()
