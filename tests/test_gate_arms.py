"""Interleaved A/B runs through the CLI: one run, several arms, the gate on paired arms.

Two runs serve every test: an A/B run with three arms (a baseline, a slower fabricating
candidate, a slow and inaccurate agent) and an A/A run (the baseline agent in both arms).
Their 400 calls take a few minutes on a loaded two-core machine, hence the longer timeout.
"""

from __future__ import annotations

import io
import json
import subprocess
import sys
from pathlib import Path

import pytest
from rich.console import Console

from simulator.agent.process import agent_process
from simulator.gate import judge, load_rubric
from simulator.gate.output import render
from simulator.storage.store import RunStore

CALLSIM = [sys.executable, "-m", "simulator"]
pytestmark = pytest.mark.timeout(900)
SCRIPTS, SEED = 100, 5   # 21 of them on missing records

RUBRIC = """\
version: 1
confidence: 0.95
bootstrap_resamples: 1000
seed: 1
min_calls_per_arm: 60
min_missing_record_calls: 10
numbers:
  p95_ttft_ms: {direction: lower, relative: true, win_margin: 0.05, lose_badly: 0.20}
  tool_arg_accuracy: {direction: higher, win_margin: 0.01, lose_badly: 0.05}
  refusal_rate: {direction: higher, win_margin: 0.03, lose_badly: 0.10}
  cost_per_session_usd: {direction: lower, relative: true, win_margin: 0.10, lose_badly: 0.25}
guards:
  error_rate: {max: 0.05}
"""


def _run(tmp: Path, name: str, arms: list[str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [*CALLSIM, "run", *(a for arm in arms for a in ("--arm", arm)),
         "--calls", str(tmp / "calls.jsonl"), "--concurrency", "8", "--seed", "3",
         "--runs-dir", str(tmp / name), "--rubric", str(tmp / "rubric.yaml"),
         "--no-pauses", "--pacing", "none", "--json"], capture_output=True, text=True, timeout=900)


@pytest.fixture(scope="module")
def ab(tmp_path_factory: pytest.TempPathFactory) -> dict[str, object]:
    """An A/B run of three agents (each its own process, so each serves a third of the
    calls) and an A/A run of one agent (both arms on the same process). On a loaded machine
    CPU stalls dominate p95 latency, so the weak agent thinks 600 ms a turn (slower beyond
    doubt; longer calls cost more per minute) and fabricates on most missing records, so
    that every number is decided on 21 missing-record calls."""
    tmp = tmp_path_factory.mktemp("arms")
    (tmp / "rubric.yaml").write_text(RUBRIC)
    subprocess.run([*CALLSIM, "generate", "--count", str(SCRIPTS), "--seed", str(SEED), "-o",
                    str(tmp / "calls.jsonl")], check=True, capture_output=True)
    quiet = ("--stt", "none")
    with agent_process(*quiet, "--ttft-ms", "40") as base, \
            agent_process(*quiet, "--ttft-ms", "250", "--fabricate-rate", "0.3") as worse, \
            agent_process(*quiet, "--ttft-ms", "600", "--arg-error-rate", "0.3",
                          "--fabricate-rate", "0.8") as weak:
        p = _run(tmp, "ab", [f"base={base}", f"worse={worse}", f"weak={weak}"])
        assert p.returncode == 0, p.stderr
        aa = _run(tmp, "aa", [f"a={base}", f"b={base}"])
        assert aa.returncode == 0, aa.stderr
    return {"run": Path(json.loads(p.stdout)["run_dir"]), "rubric": tmp / "rubric.yaml",
            "aa": Path(json.loads(aa.stdout)["run_dir"]), "stderr": p.stderr, "tmp": tmp}


def gate(ab: dict[str, object], *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([*CALLSIM, "gate", *args, "--rubric", str(ab["rubric"])],
                          capture_output=True, text=True, timeout=300)


def test_one_store_holds_every_arm_with_each_script_once_per_arm(ab: dict[str, object]) -> None:
    store = RunStore(ab["run"])  # type: ignore[arg-type]
    try:
        meta = store.meta()
        arms = {a: store.outcomes(arm=a) for a in meta["arms"]}
        calls = list(store.calls())
    finally:
        store.close()
    assert meta["arms"] == ["base", "worse", "weak"]
    for outcomes in arms.values():
        assert len(outcomes) == SCRIPTS
        assert len({o.script_id for o in outcomes}) == SCRIPTS
    # The arms of a script take consecutive calls, not always in the same order.
    firsts = {calls[i]["outcome"]["arm"] for i in range(0, len(calls), 3)}
    assert len(firsts) > 1
    for i in range(0, len(calls), 3):
        block = calls[i:i + 3]
        assert len({c["script_id"] for c in block}) == 1
        assert {c["outcome"]["arm"] for c in block} == set(meta["arms"])


def test_slower_fabricating_arm_fails_with_the_losses_named(ab: dict[str, object]) -> None:
    p = gate(ab, f"{ab['run']}:base", f"{ab['run']}:worse", "--json")
    assert p.returncode == 1, p.stdout + p.stderr
    res = json.loads(p.stdout)
    assert res["mode"] == "interleaved" and res["paired"]
    assert res["verdict"] == "FAIL"
    rows = {r["name"]: r for r in res["numbers"]}
    assert rows["p95_ttft_ms"]["decision"] in ("loss", "loss_badly")
    # 30% fabrication on 21 missing-record calls shows as a lower refusal rate; whether its
    # interval clears the margin depends on how many fabrications the grader catches.
    assert rows["refusal_rate"]["difference"]["value"] < 0
    reasons = " ".join(res["reasons"])
    losses = [n for n, r in rows.items() if r["decision"] in ("loss", "loss_badly")]
    assert losses and all(n in reasons for n in losses)
    assert res["drift"] == []   # arms of one run: no drift policy applied
    text = gate(ab, f"{ab['run']}:base", f"{ab['run']}:worse").stdout
    assert all(f"{n} loses" in text for n in losses)


def test_faster_more_accurate_arm_passes(ab: dict[str, object]) -> None:
    p = gate(ab, str(ab["run"]), "--arms", "weak,base", "--json")
    assert p.returncode == 0, p.stdout + p.stderr
    assert json.loads(p.stdout)["verdict"] == "PASS"


def test_aa_arms_do_not_fail_and_calibration_reports_the_false_fail_rate(
    ab: dict[str, object],
) -> None:
    p = gate(ab, str(ab["aa"]), "--json")
    assert p.returncode in (0, 2), p.stdout + p.stderr
    res = json.loads(p.stdout)
    assert res["mode"] == "interleaved" and res["arms"] == ["a", "b"]
    assert not [r for r in res["numbers"] if r["decision"].startswith("loss")]
    p = gate(ab, str(ab["aa"]), "--aa", "--draws", "20")
    assert p.returncode == 0, p.stdout + p.stderr
    assert "false-fail rate" in p.stdout and "of 20" in p.stdout


def test_aa_on_two_different_agents_is_flagged(ab: dict[str, object]) -> None:
    p = gate(ab, str(ab["run"]), "--arms", "base,worse", "--aa", "--draws", "5")
    assert p.returncode == 1, p.stdout + p.stderr
    assert "TOO MANY" in p.stdout


def test_a_run_with_more_than_two_arms_needs_them_named(ab: dict[str, object]) -> None:
    p = gate(ab, str(ab["run"]))
    assert p.returncode == 2
    assert "--arms" in p.stderr and len(p.stderr.strip().splitlines()) == 1
    p = gate(ab, f"{ab['run']}:nope", f"{ab['run']}:base")
    assert p.returncode == 2 and "no arm 'nope'" in p.stderr


def test_compare_reads_the_arms_of_an_ab_run(ab: dict[str, object]) -> None:
    p = subprocess.run([*CALLSIM, "compare", str(ab["run"]), "--rubric", str(ab["rubric"]),
                        "--json"], capture_output=True, text=True, timeout=300)
    assert p.returncode == 0, p.stderr
    res = json.loads(p.stdout)
    ranking = [s["run"] for s in res["ranking"]]
    name = Path(str(ab["run"])).name
    # Each arm is ranked under its own name; its id says which run and arm it is.
    assert sorted(ranking) == ["base", "weak", "worse"]
    assert {r["label"]: r["run_id"] for r in res["runs"]} == {
        a: f"{name}:{a}" for a in ("base", "worse", "weak")}
    assert ranking[0] == "base"


def test_pre_run_notice_says_whether_the_rubric_minimums_are_met(
    ab: dict[str, object],
) -> None:
    err = str(ab["stderr"])
    assert ("rubric: needs 60 calls per arm and 10 on missing records; this run plans "
            f"{SCRIPTS} per arm") in err
    assert "enough, if the calls complete" in err
    tmp = Path(str(ab["tmp"]))
    # A small run is told before it starts which numbers will be inconclusive.
    p = subprocess.run(
        [*CALLSIM, "run", "--target", "http://127.0.0.1:9/v1", "--calls",
         str(tmp / "calls.jsonl"), "--count", "3", "--concurrency", "3", "--runs-dir",
         str(tmp / "small"), "--rubric", str(ab["rubric"]), "--connect-timeout", "0.5",
         "--json"], capture_output=True, text=True, timeout=300)
    assert "this run plans 3 in the run" in p.stderr
    assert "NOT enough" in p.stderr
    assert "refusal_rate:" in p.stderr and "10 needed" in p.stderr


def test_gate_table_fits_80_columns(ab: dict[str, object]) -> None:
    rubric, sha = load_rubric(Path(str(ab["rubric"])))
    store = RunStore(ab["run"])  # type: ignore[arg-type]
    try:
        meta = store.meta()
        base, worse = store.outcomes(arm="base"), store.outcomes(arm="worse")
    finally:
        store.close()
    result = judge(base, worse, rubric, meta, meta, rubric_sha256=sha, interleaved=True)
    buf = io.StringIO()
    console = Console(file=buf, width=80, color_system=None, legacy_windows=False)
    console.print(render(result))
    lines = buf.getvalue().splitlines()
    assert max(len(line.rstrip()) for line in lines) <= 80
    # Below the header rule: two lines per gate number and guard, one per context number;
    # a cell that wrapped further would add lines.
    rule = next(i for i, line in enumerate(lines) if line.startswith("───"))
    end = lines.index("why:")
    body = [line for line in lines[rule + 1:end] if line.strip()]
    assert len(body) == 2 * len(result.rows) + 2 * len(result.guards) + len(result.context)
    assert body[0].startswith("p95_ttft_ms") and result.row("p95_ttft_ms").decision in body[0]
