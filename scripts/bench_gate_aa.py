"""Benchmark: how often the gate fails the reference agent against itself (A/A).

One reference agent (``--ttft-ms 40``) serves every run. Repetition r makes one
interleaved A/A run (``callsim run --arm a=URL --arm b=URL``, N scripts per arm) and judges
arm b against arm a: that is the interleaved A/A pair. The sequential A/A pair of
repetition r is arm a of run r-1 (baseline) against arm a of run r (candidate): the same
agent, the same scripts, two runs made one after the other, as a team comparing a new run
with last week's would; both sides ran under the same load (an arm b beside them). Each
pair is judged with the example rubric; a FAIL is a false failure. The sequential pairs are
judged under the rubric's drift policy and with the policy set to ``note`` (no widening: the
gate as it was before drift policies). Makes (reps + 1) x 2N calls and writes one JSON line
per repetition to ``--out`` as it goes. Usage:

    python scripts/bench_gate_aa.py [--reps 20] [--scripts 0] [--concurrency 30]
                                    [--out bench_gate_aa.jsonl]

``--scripts 0`` (default): the smallest generated script set that meets the rubric's
minimums (calls per arm and missing-record calls), over generator seeds 0-49.
"""

from __future__ import annotations

import argparse
import contextlib
import io
import json
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from simulator.agent.process import agent_process  # noqa: E402
from simulator.callscript import load_calls, write_calls  # noqa: E402
from simulator.cli import run_from_options  # noqa: E402
from simulator.gate import judge, load_rubric  # noqa: E402
from simulator.storage.store import RunStore  # noqa: E402

RUBRIC = ROOT / "examples" / "rubric.yaml"


def scripts_meeting(rubric: object, path: Path) -> tuple[int, int]:
    """The smallest generated script set meeting the rubric's minimums, over generator
    seeds 0-49 (first seed on ties); written to ``path``. Returns (scripts, seed)."""
    from simulator.personas import generate_calls, load_packs

    packs = load_packs(None)
    need_calls = rubric.min_calls_per_arm  # type: ignore[attr-defined]
    need_missing = rubric.min_missing_record_calls  # type: ignore[attr-defined]
    best: tuple[int, int, list] | None = None
    for seed in range(50):
        calls = generate_calls(packs, "all", 3 * need_calls, seed)
        missing = 0
        for n, c in enumerate(calls, 1):
            missing += not c.record_exists
            if n >= need_calls and missing >= need_missing:
                if best is None or n < best[0]:
                    best = (n, seed, calls[:n])
                break
    if best is None:
        raise SystemExit("no generated script set meets the rubric")
    write_calls(best[2], path)
    return best[0], best[1]


def one_run(url: str, calls: Path, runs: Path, arms: list[str], concurrency: int,
            seed: int, log: io.TextIOBase) -> Path:
    kw = dict(
        target=None if arms else url, arms=tuple(arms), transport="openai-chat",
        model="callsim-reference", api_key_env=None, calls_file=calls, pack="all",
        personas_dir=None, profile="none", profiles_dir=None, count=None, duration=None,
        warmup="0", concurrency=concurrency, rate=None, arrival=None, burstiness=None,
        stages=None, trace=None, max_starts=None, seed=seed, max_rps=None, max_active=None,
        runs_dir=runs, resume_run=None, agent_profile=None, rubric=RUBRIC, no_pauses=True,
        connect_timeout=5.0, first_byte_timeout=30.0, stall_timeout=10.0, call_timeout=600.0,
        tool_timeout=10.0, max_reply_mb=8.0, caller_audio=None, text_hints=False,
        tools_port=0, workers=1, ray_address=None, pacing="none",
    )
    with contextlib.redirect_stderr(log):
        summary = run_from_options(**kw)
    return Path(summary["run_dir"])


def side(run_dir: Path, arm: str | None) -> tuple[list, dict]:
    store = RunStore(run_dir)
    try:
        return store.outcomes(arm=arm), store.meta()
    finally:
        store.close()


def judge_rep(r: int, prev: Path, cur: Path, rubric: object, note: object, sha: str
              ) -> dict[str, object]:
    """Judge repetition ``r``: run ``cur``'s arm b against its arm a (interleaved), and
    arm a of ``cur`` against arm a of ``prev`` (sequential, under both drift policies)."""
    a, meta = side(cur, "a")
    b, _ = side(cur, "b")
    inter = judge(a, b, rubric, meta, meta, rubric_sha256=sha, interleaved=True)  # type: ignore[arg-type]
    bo, bm = side(prev, "a")
    seq = judge(bo, a, rubric, bm, meta, rubric_sha256=sha)  # type: ignore[arg-type]
    seq_note = judge(bo, a, note, bm, meta, rubric_sha256=sha)  # type: ignore[arg-type]

    def p95(res: object) -> list[float | None]:
        row = res.row("p95_ttft_ms")  # type: ignore[attr-defined]
        return [row.baseline.value, row.candidate.value, row.difference.lo,
                row.difference.hi]

    return {
        "rep": r, "runs": [prev.name, cur.name],
        "interleaved": inter.verdict, "sequential": seq.verdict,
        "sequential_note": seq_note.verdict,
        "p95_interleaved": p95(inter), "p95_sequential_note": p95(seq_note),
        "decisions": {"interleaved": {x.name: x.decision for x in inter.rows},
                      "sequential": {x.name: x.decision for x in seq.rows},
                      "sequential_note": {x.name: x.decision for x in seq_note.rows}},
        "drift_notes": list(seq.drift),
        "loop_lag_p99_ms": [bm.get("loop_lag_p99_ms"), meta.get("loop_lag_p99_ms")],
    }


def show(row: dict[str, object], reps: int, seconds: float | None) -> None:
    p, s = row["p95_interleaved"], row["p95_sequential_note"]
    took = f" | {seconds:.0f} s" if seconds is not None else ""
    print(f"rep {int(row['rep']) + 1:2d}/{reps}: interleaved {row['interleaved']:12s} "  # type: ignore[call-overload]
          f"p95 {p[0]:.0f} -> {p[1]:.0f} ms | sequential {row['sequential']:12s} "  # type: ignore[index]
          f"(policy note: {row['sequential_note']:12s}) p95 {s[0]:.0f} -> {s[1]:.0f} ms"  # type: ignore[index]
          f"{took}", flush=True)


def summary(rows: list[dict[str, object]], n: int, policy: str, seconds: float | None) -> None:
    reps = len(rows)
    took = f", {seconds:.0f} s" if seconds is not None else ""
    print(f"\nA/A false-fail rate over {reps} repetitions ({n} scripts per arm{took}):")
    for k, label in (("interleaved", "interleaved A/B run"),
                     ("sequential", f"sequential runs, drift policy {policy}"),
                     ("sequential_note", "sequential runs, drift policy note")):
        verdicts = [str(r[k]) for r in rows]
        fails = verdicts.count("FAIL")
        losses: dict[str, int] = {}
        for r in rows:
            for name, d in r["decisions"][k].items():  # type: ignore[index]
                losses[name] = losses.get(name, 0) + d.startswith("loss")
        lost = ", ".join(f"{k2} {v}" for k2, v in losses.items() if v) or "none"
        print(f"  {label:40s} {fails:2d} of {reps} FAIL ({100 * fails / max(reps, 1):.0f}%); "
              + ", ".join(f"{v} {verdicts.count(v)}" for v in ("PASS", "INCONCLUSIVE", "FAIL"))
              + f"; numbers lost: {lost}")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--reps", type=int, default=20)
    ap.add_argument("--scripts", type=int, default=0)
    ap.add_argument("--concurrency", type=int, default=30)
    ap.add_argument("--ttft-ms", type=float, default=40.0)
    ap.add_argument("--seed", type=int, default=0, help="run seed (and generator seed "
                    "with --scripts N)")
    ap.add_argument("--out", type=Path, default=Path("bench_gate_aa.jsonl"))
    ap.add_argument("--rejudge", type=Path, metavar="DIR",
                    help="judge the runs a previous benchmark left in DIR again (same "
                         "pairs; after a change to the gate), without making new calls")
    args = ap.parse_args()

    rubric, sha = load_rubric(RUBRIC)
    note = rubric.model_copy(update={"drift": rubric.drift.model_copy(
        update={"policy": "note"})})
    if args.rejudge:
        runs = sorted(d for d in (args.rejudge / "runs").iterdir()
                      if (d / "store.sqlite").exists())
        rows = [judge_rep(r, prev, cur, rubric, note, sha)
                for r, (prev, cur) in enumerate(zip(runs, runs[1:], strict=False))]
        n = len(side(runs[0], "a")[0])
        for row in rows:
            show(row, len(rows), None)
        summary(rows, n, rubric.drift.policy, None)
        return
    tmp = Path(tempfile.mkdtemp(prefix="bench_gate_aa-"))
    calls = tmp / "calls.jsonl"
    if args.scripts:
        from simulator.personas import generate_calls, load_packs

        write_calls(generate_calls(load_packs(None), "all", args.scripts, args.seed), calls)
        n, gen_seed = args.scripts, args.seed
    else:
        n, gen_seed = scripts_meeting(rubric, calls)
    n_missing = sum(not c.record_exists for c in load_calls(calls))
    print(f"{n} scripts per arm (generator seed {gen_seed}, {n_missing} on missing records), "
          f"{args.reps} repetitions, "
          f"concurrency {args.concurrency}, reference agent --ttft-ms {args.ttft_ms:g}; "
          f"runs under {tmp}", flush=True)
    log = open(tmp / "runs.log", "w")  # noqa: SIM115 (open for the whole benchmark)
    rows = []
    t_start = time.monotonic()
    with agent_process("--ttft-ms", str(args.ttft_ms)) as url, args.out.open("w") as out:
        arms = [f"a={url}", f"b={url}"]
        prev = one_run(url, calls, tmp / "runs", arms, args.concurrency, args.seed, log)
        for r in range(args.reps):
            t0 = time.monotonic()
            cur = one_run(url, calls, tmp / "runs", arms, args.concurrency,
                          args.seed + 1 + r, log)
            row = judge_rep(r, prev, cur, rubric, note, sha)
            prev = cur
            out.write(json.dumps(row) + "\n")
            out.flush()
            rows.append(row)
            show(row, args.reps, time.monotonic() - t0)
    summary(rows, n, rubric.drift.policy, time.monotonic() - t_start)


if __name__ == "__main__":
    main()
