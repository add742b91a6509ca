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
    python scripts/mutate.py --survivors FILE     # after new tests: re-run FILE's survivors

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


def generate_mutants() -> None:
    """Copy the package into mutants/ and write every configured file's mutants (what
    ``mutmut run`` does before it tests any), so a sample can be drawn in a fresh clone."""
    code = ("import os\n"
            "import mutmut.__main__ as m\n"
            "from mutmut.mutation.trampoline import set_mutant_under_test\n"
            "set_mutant_under_test('mutant_generation')\n"
            "os.makedirs('mutants', exist_ok=True)\n"
            "m.copy_src_dir(); m.copy_also_copy_files(); m.setup_source_paths()\n"
            "m.store_lines_covered_by_tests(); m.create_mutants(1)\n")
    p = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True)
    if p.returncode != 0:
        sys.exit(f"mutmut could not generate mutants (exit {p.returncode}):\n{p.stderr[-2000:]}")


def all_mutants(path: str) -> list[str]:
    meta = ROOT / "mutants" / f"{path}.meta"
    if not meta.exists():
        generate_mutants()
    return sorted(json.loads(meta.read_text())["exit_code_by_key"]) if meta.exists() else []


def run_files(paths: list[str], jobs: int, only_unfinished: bool = False,
              sample: int = 0, collect_only: bool = False) -> dict[str, dict[str, object]]:
    """Run the mutants of ``paths`` (all, a seeded sample of each, or an interrupted run's
    rest) in one ``mutmut run``, so its start-up (listing the tests, running them clean)
    is paid once; return each file's results."""
    OUT.mkdir(parents=True, exist_ok=True)
    log = OUT / ("mutmut.log" if len(paths) > 1 else f"{module_of(paths[0])}.log")
    # The code measured: mutmut copies the source and the tests when it starts.
    commit = git("rev-parse", "--short", "HEAD")
    t0 = time.monotonic()
    chosen: dict[str, list[str] | None] = {}   # None: every mutant of the file
    populations: dict[str, int] = {}
    names: list[str] = []
    for path in paths:
        population = all_mutants(path)
        populations[path] = len(population)
        if only_unfinished:
            mine = unfinished(path)
        elif sample and not population:
            sys.exit(f"{path}: mutmut generated no mutants for it")
        elif sample and sample < len(population):
            # A seeded random sample: the kill rate over it estimates the file's (see the
            # report); the seed is the file's path, so the same code gives the same sample.
            mine = random.Random(f"mutate:{path}").sample(population, sample)
        else:
            mine = [f"{module_of(path)}.*"]
        chosen[path] = mine if sample and sample < len(population) else None
        names += mine
    if names and not collect_only:
        with log.open("a" if only_unfinished else "w") as f:
            p = subprocess.run([*MUTMUT, "run", "--max-children", str(jobs), *names],
                               cwd=ROOT, stdout=f, stderr=subprocess.STDOUT)
        if p.returncode != 0:
            sys.exit(f"mutmut failed on {', '.join(paths)} (exit {p.returncode}); see {log}")
    elapsed = time.monotonic() - t0
    out: dict[str, dict[str, object]] = {}
    for path in paths:
        meta = ROOT / "mutants" / f"{path}.meta"
        if not meta.exists():
            sys.exit(f"mutmut wrote no results for {path}; see {log}")
        codes: dict[str, int | None] = json.loads(meta.read_text())["exit_code_by_key"]
        sampled = chosen[path]
        if sampled is not None:
            codes = {k: codes[k] for k in sampled}
        if collect_only:   # an interrupted run: what it finished
            codes = {k: c for k, c in codes.items() if c is not None}
        out[path] = {
            "file": path, "elapsed_s": round(elapsed, 1), "jobs": jobs,
            "run_with": len(paths), "interrupted": collect_only,
            "population": populations[path] or len(codes),
            "commit": commit,
            "dirty": bool(git("status", "--porcelain", "--", path, "tests")),
            "source_sha256": hashlib.sha256((ROOT / path).read_bytes()).hexdigest()[:12],
            "measured_at": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
            "codes": codes,
            "survivors": {k: diff_of(k) for k, c in sorted(codes.items())
                          if c not in DETECTED},
        }
    return out


def rerun_survivors(path: str, jobs: int, before: dict[str, object]) -> dict[str, object]:
    """Run again only the mutants of ``path`` that survived the stored run (after new tests),
    keeping that run's mutants; the file's source must not have changed since (mutmut
    numbers mutants per function, so an edited function means a new run)."""
    src = (ROOT / path).read_bytes()
    if hashlib.sha256(src).hexdigest()[:12] != before["source_sha256"]:
        sys.exit(f"{path} changed since its stored run: run it again, not --survivors")
    codes: dict[str, int | None] = dict(before["codes"])  # type: ignore[call-overload]
    names = sorted(k for k, c in codes.items() if c not in DETECTED)
    if not names:
        return before
    log = OUT / f"{module_of(path)}.log"
    t0 = time.monotonic()
    with log.open("a") as f:
        p = subprocess.run([*MUTMUT, "run", "--max-children", str(jobs), *names],
                           cwd=ROOT, stdout=f, stderr=subprocess.STDOUT)
    meta = ROOT / "mutants" / f"{path}.meta"
    if p.returncode != 0 or not meta.exists():
        sys.exit(f"mutmut failed on {path} (exit {p.returncode}); see {log}")
    now: dict[str, int | None] = json.loads(meta.read_text())["exit_code_by_key"]
    codes.update({k: now[k] for k in names})
    return {**before, "codes": codes,
            "survivors": {k: diff_of(k) for k, c in sorted(codes.items())
                          if c not in DETECTED},
            "elapsed_s": round(float(before["elapsed_s"])  # type: ignore[arg-type]
                               + time.monotonic() - t0, 1),
            "commit": git("rev-parse", "--short", "HEAD"),
            "dirty": bool(git("status", "--porcelain", "--", path, "tests")),
            "measured_at": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
            "survivors_rerun": len(names)}


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


#: The scopes the kill rate is judged on, with their targets: a prefix of the files, the
#: kill rate (net of equivalents) it must reach.
SCOPES = (("simulator/gate/", 0.90), ("simulator/metrics/grading.py", 0.90),
          ("simulator/metrics/details.py", 0.90), ("simulator/metrics/summary.py", 0.80),
          ("simulator/storage/store.py", 0.80), ("simulator/personas/generator.py", 0.80),
          ("simulator/degradation/", 0.80))


def scope_rate(rows: list[dict[str, object]]) -> tuple[float, float, float, int, int]:
    """The kill rate (net of equivalents) of a scope of files, each file a stratum: the
    files' rates weighted by their mutant counts, with a 95 % normal interval from the
    per-file sampling variances (finite-population corrected; each file's rate shrunk by
    one killed and one survivor for its variance, so that a file at 100 % still counts as
    uncertain). Returns (rate, low, high, mutants run, population)."""
    weights, rates, variances, run, pop = [], [], [], 0, 0
    for s in rows:
        n = int(s["total"]) - int(s["equivalent"])  # type: ignore[call-overload]
        big_n = int(s["population"])  # type: ignore[call-overload]
        run += int(s["total"])  # type: ignore[call-overload]
        pop += big_n
        if n <= 0:
            continue
        share = n / int(s["total"])  # type: ignore[call-overload]
        weights.append(big_n * share)
        p = int(s["detected"]) / n  # type: ignore[call-overload]
        rates.append(p)
        shrunk = (int(s["detected"]) + 1) / (n + 2)  # type: ignore[call-overload]
        fpc = max(0.0, 1 - int(s["total"]) / big_n) if big_n else 0.0  # type: ignore[call-overload]
        variances.append(shrunk * (1 - shrunk) / (n + 2) * fpc)
    total_w = sum(weights) or 1.0
    rate = sum(w * p for w, p in zip(weights, rates, strict=True)) / total_w
    var = sum((w / total_w) ** 2 * v for w, v in zip(weights, variances, strict=True))
    half = 1.96 * math.sqrt(var)
    return rate, max(0.0, rate - half), min(1.0, rate + half), run, pop


def write_report(results: dict[str, dict[str, object]]) -> Path:
    equivalents = load_equivalents()
    lines_scope = ["## Kill rate per scope", "",
                   "Net of equivalents; a scope of several files weights each file's rate by "
                   "its number of mutants (a stratified sample).", "",
                   "| scope | mutants run | kill rate (net) | 95% interval | target | met |",
                   "|---|---:|---:|---:|---:|---|"]
    for prefix, target in SCOPES:
        rows = [summarise(r, equivalents) for path, r in results.items()
                if path.startswith(prefix)]
        if not rows:
            lines_scope.append(f"| {prefix} | - | not measured | - | {100 * target:.0f}% | - |")
            continue
        rate, lo, hi, run, pop = scope_rate(rows)
        met = "yes" if rate >= target else "NO"
        if rate >= target > lo:
            met = "yes (interval reaches below)"
        unrun = sum(1 for r in rows if not r["total"])
        if unrun:   # an interrupted run: the rate is over the files it reached
            met = f"{met}; {unrun} of {len(rows)} files not run"
        lines_scope.append(f"| {prefix} | {run} of {pop} | {100 * rate:.1f}% | "
                           f"{100 * lo:.0f}-{100 * hi:.0f}% | {100 * target:.0f}% | {met} |")
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
        shared = (f" (run with {r['run_with']} files)"
                  if int(r.get("run_with", 1)) > 1 else "")  # type: ignore[call-overload]
        lo, hi = s["ci"]  # type: ignore[misc]
        ci = f" (95%: {100 * lo:.0f}-{100 * hi:.0f}%)" if lo is not None else ""
        rate = f"{100 * s['rate']:.1f}%{ci}" if s["total"] else "not run"
        net = f"{100 * s['rate_net']:.1f}%" if s["total"] else "-"
        lines.append(
            f"| {path} | {run} | {s['detected']} | {s['undetected']} | {s['equivalent']} "
            f"| {rate} | {net} "
            f"| {float(r['elapsed_s']) / 60:.1f} min{shared} | {r['jobs']} | {where} |")
    lines += ["", *lines_scope, "", "## Surviving mutants", ""]
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
                    help="run a seeded random sample of N mutants per file (every mutant of "
                         "a file with fewer); 0 (the default here, FULL=1 in make) runs all")
    ap.add_argument("--survivors", action="store_true",
                    help="run again only the stored run's survivors (after adding tests)")
    ap.add_argument("--collect", action="store_true",
                    help="run nothing: record what an interrupted run of the same files and "
                         "--sample finished")
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
        if args.survivors:
            missing = [f for f in files if f not in results]
            if missing:
                sys.exit(f"no stored run to take the survivors of: {', '.join(missing)}")
            for path in files:
                results[path] = rerun_survivors(path, args.jobs, results[path])
        else:
            print(f"== {len(files)} file(s): {', '.join(files)}", flush=True)
            results.update(run_files(files, args.jobs, args.unfinished, args.sample,
                                     args.collect))
        for path in files:
            s = summarise(results[path], load_equivalents())
            print(f"   {path}: {s['detected']}/{s['total']} detected "
                  f"({100 * s['rate']:.1f}%)", flush=True)
        OUT.mkdir(parents=True, exist_ok=True)
        store.write_text(json.dumps(results, indent=1, sort_keys=True) + "\n")
    # Configured files first; results of files since moved or dropped are kept, last.
    results = {k: results[k] for k in [*known, *sorted(set(results) - set(known))]
               if k in results}
    print(f"report: {write_report(results)}")


if __name__ == "__main__":
    main()
