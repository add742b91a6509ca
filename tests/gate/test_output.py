from __future__ import annotations

import json
import xml.etree.ElementTree as ET
from pathlib import Path

from rich.console import Console

from simulator.gate.decide import GateResult, evaluate
from simulator.gate.output import render, to_json, write_junit
from simulator.gate.synthetic import AgentModel, synthetic_run

from ._helpers import make_rubric


def _failing() -> GateResult:
    base = synthetic_run(800, AgentModel(), seed=1)
    cand = synthetic_run(800, AgentModel(ttft_shift_ms=200, fabricate_rate=0.3,
                                         refusal_rate=0.65), seed=2)
    return evaluate(base, cand, make_rubric())


def test_junit_parses_and_fails_on_fail(tmp_path: Path) -> None:
    res = _failing()
    assert res.verdict == "FAIL"
    out = tmp_path / "gate.xml"
    write_junit(res, out)
    root = ET.parse(out).getroot()
    suite = root.find("testsuite")
    assert suite is not None
    cases = {tc.get("name"): tc for tc in suite.findall("testcase")}
    assert {"p95_ttft_ms", "tool_arg_accuracy", "refusal_rate", "cost_per_session_usd",
            "verdict"} <= set(cases)
    failed = {name for name, tc in cases.items() if tc.find("failure") is not None}
    assert failed == {"p95_ttft_ms", "refusal_rate", "verdict"}
    msg = cases["refusal_rate"].find("failure").get("message")  # type: ignore[union-attr]
    assert msg and "worse" in msg
    assert int(suite.get("failures", "0")) == len(failed)


def test_junit_marks_inconclusive_as_error(tmp_path: Path) -> None:
    base = synthetic_run(40, AgentModel(), seed=1)
    res = evaluate(base, synthetic_run(40, AgentModel(), seed=2), make_rubric())
    out = tmp_path / "gate.xml"
    write_junit(res, out)
    suite = ET.parse(out).getroot().find("testsuite")
    assert suite is not None
    verdict = [tc for tc in suite.findall("testcase") if tc.get("name") == "verdict"][0]
    assert verdict.find("error") is not None and verdict.find("failure") is None
    assert len(suite.findall("testcase/skipped")) == 4


def test_json_round_trips_with_decisions_and_intervals() -> None:
    data = json.loads(json.dumps(to_json(_failing())))
    assert data["verdict"] == "FAIL" and data["exit_code"] == 1
    by_name = {n["name"]: n for n in data["numbers"]}
    ttft = by_name["p95_ttft_ms"]
    assert ttft["decision"] in ("loss", "loss_badly")
    assert ttft["difference"]["lo"] > 0
    assert ttft["difference"]["lo"] <= ttft["difference"]["value"] <= ttft["difference"]["hi"]


def test_table_shows_numbers_decisions_and_verdict() -> None:
    console = Console(record=True, width=200)
    console.print(render(_failing()))
    text = console.export_text()
    for needle in ("p95_ttft_ms", "refusal_rate", "FAIL", "exit 1", "guard error_rate"):
        assert needle in text
