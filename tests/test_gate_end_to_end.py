"""Issue 6 acceptance: the gate on real runs of the reference agent, through the CLI."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from simulator.agent.process import agent_process

CALLSIM = [sys.executable, "-m", "simulator"]

RUBRIC = """\
version: 1
confidence: 0.95
bootstrap_resamples: 1000
seed: 1
min_calls_per_arm: 150
min_missing_record_calls: 20
numbers:
  p95_ttft_ms: {direction: lower, relative: true, win_margin: 0.05, lose_badly: 0.20}
  tool_arg_accuracy: {direction: higher, win_margin: 0.01, lose_badly: 0.05}
  refusal_rate: {direction: higher, win_margin: 0.03, lose_badly: 0.10}
  cost_per_session_usd: {direction: lower, relative: true, win_margin: 0.10, lose_badly: 0.25}
guards:
  error_rate: {max: 0.05}
"""
# Token prices only (no per-minute rate), so cost follows the transcript, not wall time.
PRICES = (
    "name: {name}\nprices: {{input_per_mtok: {i}, output_per_mtok: {o}, telephony_per_min: 0}}\n"
)


@pytest.fixture(scope="module")
def runs(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    tmp = tmp_path_factory.mktemp("gate")
    (tmp / "rubric.yaml").write_text(RUBRIC)
    (tmp / "base.yaml").write_text(PRICES.format(name="base", i=0.15, o=0.60))
    (tmp / "pricier.yaml").write_text(PRICES.format(name="pricier", i=0.153, o=0.612))
    subprocess.run([*CALLSIM, "generate", "--count", "220", "--seed", "21", "-o",
                    str(tmp / "calls.jsonl")], check=True, capture_output=True)
    arms = {
        "baseline": (["--ttft-ms", "100"], "base.yaml"),
        "worse": (["--ttft-ms", "250", "--fabricate-rate", "0.3"], "base.yaml"),
        "reseeded": (["--ttft-ms", "100", "--seed", "99"], "base.yaml"),
        "weak": (["--ttft-ms", "250", "--arg-error-rate", "0.3", "--fabricate-rate", "0.3"],
                 "base.yaml"),
        "better": (["--ttft-ms", "100"], "pricier.yaml"),
    }
    out: dict[str, Path] = {}
    for name, (knobs, prices) in arms.items():
        runs_dir = tmp / name
        with agent_process(*knobs) as url:
            # Concurrency 8, not 20: at 20 the loop and the agent saturate the two cores and
            # two runs of the same agent differed by 9 ms at p95 TTFT (106.6 against 115.3
            # ms, CI on 2026-12-02), over the 5% margin the gate tolerates.
            p = subprocess.run(
                [*CALLSIM, "run", "--target", url, "--calls", str(tmp / "calls.jsonl"),
                 "--concurrency", "8", "--seed", "21", "--runs-dir", str(runs_dir),
                 "--rubric", str(tmp / "rubric.yaml"), "--agent-profile", str(tmp / prices),
                 "--pacing", "none", "--json"], capture_output=True, text=True, timeout=600)
        assert p.returncode == 0, p.stderr
        out[name] = Path(json.loads(p.stdout)["run_dir"])
    out["rubric"] = tmp / "rubric.yaml"
    return out


def gate(runs: dict[str, Path], base: str, cand: str, *extra: str
         ) -> subprocess.CompletedProcess[str]:
    return subprocess.run([*CALLSIM, "gate", str(runs[base]), str(runs[cand]), "--rubric",
                           str(runs["rubric"]), *extra], capture_output=True, text=True,
                          timeout=300)


def test_slower_fabricating_candidate_fails_naming_both_losses(
    runs: dict[str, Path], tmp_path: Path
) -> None:
    junit = tmp_path / "gate.xml"
    p = gate(runs, "baseline", "worse", "--json", "--junit", str(junit))
    assert p.returncode == 1, p.stdout + p.stderr
    res = json.loads(p.stdout)
    decisions = {r["name"]: r["decision"] for r in res["numbers"]}
    assert decisions["p95_ttft_ms"] in ("loss", "loss_badly")
    assert decisions["refusal_rate"] in ("loss", "loss_badly")
    reasons = " ".join(res["reasons"])
    assert "p95_ttft_ms" in reasons and "refusal_rate" in reasons
    assert "<failure" in junit.read_text()


def test_same_agent_other_seed_has_no_losses(runs: dict[str, Path]) -> None:
    p = gate(runs, "baseline", "reseeded", "--json")
    assert p.returncode in (0, 2), p.stdout + p.stderr
    res = json.loads(p.stdout)
    assert not [r for r in res["numbers"] if r["decision"].startswith("loss")]


def test_faster_more_accurate_candidate_passes_despite_slightly_higher_cost(
    runs: dict[str, Path],
) -> None:
    p = gate(runs, "weak", "better", "--json")
    assert p.returncode == 0, p.stdout + p.stderr
    res = json.loads(p.stdout)
    decisions = {r["name"]: r["decision"] for r in res["numbers"]}
    assert decisions["cost_per_session_usd"] not in ("loss_badly",)
    assert res["verdict"] == "PASS"


def test_rubric_edited_after_the_runs_is_refused(runs: dict[str, Path], tmp_path: Path) -> None:
    edited = tmp_path / "rubric.yaml"
    edited.write_text(runs["rubric"].read_text().replace("win_margin: 0.01", "win_margin: 0.02"))
    p = subprocess.run([*CALLSIM, "gate", str(runs["baseline"]), str(runs["worse"]),
                        "--rubric", str(edited)], capture_output=True, text=True, timeout=120)
    assert p.returncode == 2
    assert "rubric" in p.stderr and len(p.stderr.strip().splitlines()) == 1
