"""Mutation testing of the pure core, one source file at a time, with a kill-rate report.

The files and the tests that guard them are configured under ``[tool.mutmut]`` in
pyproject.toml (``only_mutate``, ``pytest_add_cli_args_test_selection``). For each file this
runs ``mutmut run`` on that file's mutants alone, reads mutmut's results and writes
``runs/mutation/report.md`` (kill rate per file, every surviving mutant with its diff and,
where it was judged equivalent, why) and ``runs/mutation/results.json``. Results accumulate
across invocations, so one file can be re-run without losing the others.

    python scripts/mutate.py                      # every configured file, 2 workers
    python scripts/mutate.py --jobs 1 simulator/store.py
    python scripts/mutate.py --report-only        # rewrite the report from stored results
    python scripts/mutate.py --unfinished FILE    # finish an interrupted run of FILE
    python scripts/mutate.py --sample 60          # an estimate from 60 random mutants a file

Surviving mutants judged equivalent (no test can tell them apart from the original) are
listed in scripts/mutation_equivalents.tsv: ``<mutant name><TAB><one-line reason>``.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import math
import random
import subprocess
import sys
import time
import tomllib
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
OUT = ROOT / "runs" / "mutation"
EQUIVALENTS = ROOT / "scripts" / "mutation_equivalents.tsv"
MUTMUT = [sys.executable, "-m", "mutmut"]

# mutmut's exit codes per mutant (mutmut/stats.py): what counts as detected.
DETECTED = {1: "killed", 3: "killed", 36: "timeout", -24: "timeout", 24: "timeout",
            152: "timeout", 255: "timeout", 37: "type check", -11: "crash", -9: "crash"}
UNDETECTED = {0: "survived", 5: "no tests", 33: "no tests"}


def configured_files() -> list[str]:
    """The files of ``only_mutate``, globs expanded (package ``__init__.py`` files left out:
    they only re-export)."""
    cfg = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["mutmut"]
    out: list[str] = []
    for pattern in cfg["only_mutate"]:
        found = sorted(str(p.relative_to(ROOT)) for p in ROOT.glob(pattern)
                       if p.name != "__init__.py")
        if not found:
            sys.exit(f"[tool.mutmut] only_mutate: {pattern} matches no file")
        out += [f for f in found if f not in out]
    return out


def module_of(path: str) -> str:
    return path.removesuffix(".py").replace("/", ".")


def load_equivalents() -> dict[str, str]:
    out: dict[str, str] = {}
    if EQUIVALENTS.exists():
        for line in EQUIVALENTS.read_text().splitlines():
            if line.strip() and not line.startswith("#"):
                name, _, reason = line.partition("\t")
                out[name.strip()] = reason.strip()
    return out


def git(*args: str) -> str:
    p = subprocess.run(["git", *args], cwd=ROOT, capture_output=True, text=True)
    return p.stdout.strip() if p.returncode == 0 else "?"


def diff_of(name: str) -> str:
    """The changed lines of one mutant, as ``mutmut show`` prints them."""
    p = subprocess.run([*MUTMUT, "show", name], cwd=ROOT, capture_output=True, text=True)
    lines = [ln for ln in p.stdout.splitlines()
             if ln[:1] in "-+" and not ln.startswith(("---", "+++"))]
    return "\n".join(lines) or "(no diff shown)"


def unfinished(path: str) -> list[str]:
    """Mutants of ``path`` without a result yet (an interrupted run), or [] if none known."""
    meta = ROOT / "mutants" / f"{path}.meta"
    if not meta.exists():
        return []
    codes = json.loads(meta.read_text())["exit_code_by_key"]
    return sorted(k for k, c in codes.items() if c is None)


def all_mutants(path: str) -> list[str]:
    meta = ROOT / "mutants" / f"{path}.meta"
    return sorted(json.loads(meta.read_text())["exit_code_by_key"]) if meta.exists() else []


def run_file(path: str, jobs: int, only_unfinished: bool = False,
             sample: int = 0) -> dict[str, object]:
    OUT.mkdir(parents=True, exist_ok=True)
    log = OUT / f"{module_of(path)}.log"
    # The code measured: mutmut copies the source and the tests when it starts.
    commit = git("rev-parse", "--short", "HEAD")
    dirty = bool(git("status", "--porcelain", "--", path, "tests"))
    src = (ROOT / path).read_bytes()
    t0 = time.monotonic()
    names = (unfinished(path) if only_unfinished else []) or [f"{module_of(path)}.*"]
    population = all_mutants(path)
    if sample and not population:
        sys.exit(f"{path}: no mutants generated yet; run it once in full (or any file) first")
    if sample and sample < len(population):
        # A seeded random sample: the kill rate over it estimates the file's (see the report).
        names = random.Random(f"mutate:{path}").sample(population, sample)
    with log.open("a" if only_unfinished else "w") as f:
        p = subprocess.run([*MUTMUT, "run", "--max-children", str(jobs), *names],
                           cwd=ROOT, stdout=f, stderr=subprocess.STDOUT)
    elapsed = time.monotonic() - t0
    meta = ROOT / "mutants" / f"{path}.meta"
    if p.returncode != 0 or not meta.exists():
        sys.exit(f"mutmut failed on {path} (exit {p.returncode}); see {log}")
    codes: dict[str, int | None] = json.loads(meta.read_text())["exit_code_by_key"]
    if sample and sample < len(population):
        codes = {k: codes[k] for k in names}
    survivors = {k: diff_of(k) for k, c in sorted(codes.items()) if c not in DETECTED}
    return {
        "file": path, "elapsed_s": round(elapsed, 1), "jobs": jobs,
        "population": len(population) or len(codes),
        "commit": commit, "dirty": dirty,
        "source_sha256": hashlib.sha256(src).hexdigest()[:12],
        "measured_at": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
        "codes": codes, "survivors": survivors,
    }


def summarise(r: dict[str, object], equivalents: dict[str, str]) -> dict[str, object]:
    codes: dict[str, int | None] = r["codes"]  # type: ignore[assignment]
    total = len(codes)
    detected = sum(c in DETECTED for c in codes.values())
    unchecked = sum(c is None for c in codes.values())
    undetected = [k for k, c in codes.items() if c not in DETECTED]
    equiv = [k for k in undetected if k in equivalents]
    # 95 % Wilson interval of the kill rate when only a sample of the mutants was run.
    pop = int(r.get("population", total))  # type: ignore[call-overload]
    lo = hi = None
    if total and pop > total:
        z, ph = 1.96, detected / total
        mid = (ph + z * z / (2 * total)) / (1 + z * z / total)
        half = z * math.sqrt(ph * (1 - ph) / total + z * z / (4 * total * total)) / (
            1 + z * z / total)
        lo, hi = mid - half, mid + half
    return {"total": total, "population": pop, "ci": (lo, hi),
            "detected": detected, "undetected": len(undetected),
            "unchecked": unchecked, "equivalent": len(equiv),
            "rate": detected / total if total else 1.0,
            "rate_net": detected / (total - len(equiv)) if total > len(equiv) else 1.0}


def write_report(results: dict[str, dict[str, object]]) -> Path:
    equivalents = load_equivalents()
    lines = ["# Mutation testing report", "",
             "Written by `make mutate` (scripts/mutate.py, mutmut). Kill rate = mutants detected "
             "(a test failed or timed out) / all mutants; *net* leaves out the survivors judged "
             "equivalent (scripts/mutation_equivalents.tsv).", "",
             "A file run on a seeded random sample (`--sample N`) shows the sample size out of "
             "all its mutants, and a 95% interval for its kill rate.", "",
             "| file | mutants run | detected | survived | equivalent | kill rate | net | time | "
             "jobs | code measured |",
             "|---|---:|---:|---:|---:|---:|---:|---:|---:|---|"]
    for path, r in results.items():
        s = summarise(r, equivalents)
        where = f"{r['commit']}{'+edits' if r['dirty'] else ''} ({r['source_sha256']})"
        run = f"{s['total']}" if s["population"] == s["total"] else (
            f"{s['total']} of {s['population']} (sample)")
        lo, hi = s["ci"]  # type: ignore[misc]
        ci = f" (95%: {100 * lo:.0f}-{100 * hi:.0f}%)" if lo is not None else ""
        lines.append(
            f"| {path} | {run} | {s['detected']} | {s['undetected']} | {s['equivalent']} "
            f"| {100 * s['rate']:.1f}%{ci} | {100 * s['rate_net']:.1f}% "
            f"| {float(r['elapsed_s']) / 60:.1f} min | {r['jobs']} | {where} |")
    lines += ["", "## Surviving mutants", ""]
    for path, r in results.items():
        survivors: dict[str, str] = r["survivors"]  # type: ignore[assignment]
        if not survivors:
            continue
        lines += [f"### {path}", ""]
        for name, diff in survivors.items():
            why = equivalents.get(name)
            status = f"equivalent: {why}" if why else "NOT JUDGED: needs a test or a reason"
            lines += [f"- `{name}` ({status})", "", "  ```diff",
                      *[f"  {ln}" for ln in diff.splitlines()], "  ```", ""]
    report = OUT / "report.md"
    OUT.mkdir(parents=True, exist_ok=True)
    report.write_text("\n".join(lines) + "\n")
    return report


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("files", nargs="*", help="source files (default: all of only_mutate)")
    ap.add_argument("--jobs", type=int, default=2, help="mutmut workers (default 2)")
    ap.add_argument("--report-only", action="store_true")
    ap.add_argument("--sample", type=int, default=0, metavar="N",
                    help="run a seeded random sample of N mutants per file (an estimate)")
    ap.add_argument("--unfinished", action="store_true",
                    help="run only the mutants an interrupted run left without a result")
    args = ap.parse_args()
    known = configured_files()
    files = args.files or known
    unknown = [f for f in files if f not in known]
    if unknown:
        sys.exit(f"not configured in [tool.mutmut] only_mutate: {', '.join(unknown)} "
                 f"(known: {', '.join(known)})")
    store = OUT / "results.json"
    results: dict[str, dict[str, object]] = (json.loads(store.read_text())
                                             if store.exists() else {})
    if not args.report_only:
        for path in files:
            print(f"== {path}", flush=True)
            results[path] = run_file(path, args.jobs, args.unfinished, args.sample)
            s = summarise(results[path], load_equivalents())
            print(f"   {s['detected']}/{s['total']} detected ({100 * s['rate']:.1f}%), "
                  f"{results[path]['elapsed_s']} s", flush=True)
            OUT.mkdir(parents=True, exist_ok=True)
            store.write_text(json.dumps(results, indent=1, sort_keys=True) + "\n")
    # Configured files first; results of files since moved or dropped are kept, last.
    results = {k: results[k] for k in [*known, *sorted(set(results) - set(known))]
               if k in results}
    print(f"report: {write_report(results)}")


if __name__ == "__main__":
    main()
