"""Benchmark: how often the gate fails the reference agent against itself (A/A).

One reference agent (``--ttft-ms 40``) serves every run. Each repetition makes one
interleaved A/A run (``callsim run --arm a=URL --arm b=URL``, N scripts per arm) and one
single-arm run of the same N scripts; the sequential A/A pairs are consecutive single-arm
runs (repetition r-1 against r: baseline made first, candidate second, with an interleaved
run between them). Each A/A pair is judged with the example rubric; a FAIL is a false
failure. Prints per-repetition verdicts and the false-fail rates; the sequential rate is
given under the rubric's drift policy and with the policy set to ``note`` (no widening, the
gate as it was before drift policies). Runs as long as it takes (about 3N x reps calls)
and writes one JSON line per repetition to ``--out`` as it goes. Usage:

    python scripts/bench_gate_aa.py [--reps 20] [--scripts 0] [--concurrency 20]
                                    [--out bench_gate_aa.jsonl]

``--scripts 0`` (default) takes the smallest script set that meets the rubric's minimums.
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

from simulator.callscript import load_calls, write_calls  # noqa: E402
from simulator.cli import agent_process, run_from_options  # noqa: E402
from simulator.gate import judge, load_rubric  # noqa: E402
from simulator.store import RunStore  # noqa: E402

RUBRIC = ROOT / "examples" / "rubric.yaml"


def scripts_meeting(rubric: object, path: Path, seed: int) -> int:
    """Generate scripts and keep the shortest prefix that meets the rubric's minimums."""
    from simulator.personas import generate_calls, load_packs

    packs = load_packs(None)
    calls = generate_calls(packs, "all", 2000, seed)
    need_calls = rubric.min_calls_per_arm  # type: ignore[attr-defined]
    need_missing = rubric.min_missing_record_calls  # type: ignore[attr-defined]
    missing = 0
    for n, c in enumerate(calls, 1):
        missing += not c.record_exists
        if n >= need_calls and missing >= need_missing:
            write_calls(calls[:n], path)
            return n
    raise SystemExit("no prefix of 2000 scripts meets the rubric")


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
        tools_port=0, workers=1, ray_address=None,
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


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--reps", type=int, default=20)
    ap.add_argument("--scripts", type=int, default=0)
    ap.add_argument("--concurrency", type=int, default=20)
    ap.add_argument("--ttft-ms", type=float, default=40.0)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--out", type=Path, default=Path("bench_gate_aa.jsonl"))
    args = ap.parse_args()

    rubric, sha = load_rubric(RUBRIC)
    note = rubric.model_copy(update={"drift": rubric.drift.model_copy(
        update={"policy": "note"})})
    tmp = Path(tempfile.mkdtemp(prefix="bench_gate_aa-"))
    calls = tmp / "calls.jsonl"
    if args.scripts:
        from simulator.personas import generate_calls, load_packs

        write_calls(generate_calls(load_packs(None), "all", args.scripts, args.seed), calls)
        n = args.scripts
    else:
        n = scripts_meeting(rubric, calls, args.seed)
    n_missing = sum(not c.record_exists for c in load_calls(calls))
    print(f"{n} scripts per arm ({n_missing} on missing records), {args.reps} repetitions, "
          f"concurrency {args.concurrency}, reference agent --ttft-ms {args.ttft_ms:g}; "
          f"runs under {tmp}", flush=True)
    log = open(tmp / "runs.log", "w")  # noqa: SIM115 (open for the whole benchmark)
    verdicts: dict[str, list[str]] = {"interleaved": [], "sequential": [],
                                      "sequential_note": []}
    t_start = time.monotonic()
    with agent_process("--ttft-ms", str(args.ttft_ms)) as url, args.out.open("w") as out:
        prev = one_run(url, calls, tmp / "runs", [], args.concurrency, args.seed, log)
        for r in range(args.reps):
            t0 = time.monotonic()
            ab = one_run(url, calls, tmp / "runs", [f"a={url}", f"b={url}"],
                         args.concurrency, args.seed + 1 + r, log)
            a, meta = side(ab, "a")
            b, _ = side(ab, "b")
            inter = judge(a, b, rubric, meta, meta, rubric_sha256=sha, interleaved=True)
            cur = one_run(url, calls, tmp / "runs", [], args.concurrency,
                          args.seed + 1 + r, log)
            (bo, bm), (co, cm) = side(prev, None), side(cur, None)
            seq = judge(bo, co, rubric, bm, cm, rubric_sha256=sha)
            seq_note = judge(bo, co, note, bm, cm, rubric_sha256=sha)
            prev = cur
            row = {
                "rep": r, "seconds": round(time.monotonic() - t0, 1),
                "interleaved": inter.verdict,
                "interleaved_p95": [inter.row("p95_ttft_ms").baseline.value,
                                    inter.row("p95_ttft_ms").candidate.value],
                "interleaved_diff": [inter.row("p95_ttft_ms").difference.lo,
                                     inter.row("p95_ttft_ms").difference.hi],
                "sequential": seq.verdict, "sequential_note": seq_note.verdict,
                "sequential_p95": [seq.row("p95_ttft_ms").baseline.value,
                                   seq.row("p95_ttft_ms").candidate.value],
                "sequential_diff_note": [seq_note.row("p95_ttft_ms").difference.lo,
                                         seq_note.row("p95_ttft_ms").difference.hi],
                "decisions": {"interleaved": {x.name: x.decision for x in inter.rows},
                              "sequential": {x.name: x.decision for x in seq.rows},
                              "sequential_note": {x.name: x.decision for x in seq_note.rows}},
                "loop_lag": [meta.get("loop_lag_verdict"), bm.get("loop_lag_verdict"),
                             cm.get("loop_lag_verdict")],
            }
            out.write(json.dumps(row) + "\n")
            out.flush()
            for k in verdicts:
                verdicts[k].append(row[k])
            p = row["interleaved_p95"]
            s = row["sequential_p95"]
            print(f"rep {r + 1:2d}/{args.reps}: interleaved {inter.verdict:12s} "
                  f"p95 {p[0]:.1f} -> {p[1]:.1f} ms | sequential {seq.verdict:12s} "
                  f"(policy note: {seq_note.verdict:12s}) p95 {s[0]:.1f} -> {s[1]:.1f} ms "
                  f"| {row['seconds']:.0f} s", flush=True)
    reps = len(verdicts["interleaved"])
    print(f"\nA/A false-fail rate over {reps} repetitions ({n} scripts per arm, "
          f"{time.monotonic() - t_start:.0f} s):")
    for k, label in (("interleaved", "interleaved A/B run"),
                     ("sequential", f"sequential runs, drift policy {rubric.drift.policy}"),
                     ("sequential_note", "sequential runs, drift policy note")):
        fails = verdicts[k].count("FAIL")
        print(f"  {label:42s} {fails:2d} of {reps} FAIL ({100 * fails / max(reps, 1):.0f}%); "
              f"verdicts: " + ", ".join(f"{v} {verdicts[k].count(v)}"
                                        for v in ("PASS", "INCONCLUSIVE", "FAIL")))


if __name__ == "__main__":
    main()
