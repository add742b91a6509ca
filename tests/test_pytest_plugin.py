"""Issue 6: the pytest plugin turns a fixture file of calls into one test per call; the
example suite passes against the reference agent and fails, with the transcript in the
message, against an agent that gets every tool argument wrong."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from simulator.agent.process import agent_process

EXAMPLE = Path(__file__).parents[1] / "examples" / "regression"


def _pytest(url: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", str(EXAMPLE),
         "--callsim-calls", str(EXAMPLE / "calls.jsonl"), "--callsim-target", url,
         "--rootdir", str(EXAMPLE)],
        capture_output=True, text=True, timeout=300)


def test_example_suite_passes_against_the_reference_agent() -> None:
    with agent_process() as url:
        p = _pytest(url)
    assert p.returncode == 0, p.stdout[-3000:]
    n = sum(1 for line in (EXAMPLE / "calls.jsonl").read_text().splitlines() if line.strip())
    assert f"{n} passed" in p.stdout


def test_example_suite_fails_per_call_with_transcript_against_a_bad_agent() -> None:
    with agent_process("--arg-error-rate", "1") as url:
        p = _pytest(url)
    assert p.returncode == 1
    assert "failed" in p.stdout
    assert "expected" in p.stdout and "transcript:" in p.stdout and "caller:" in p.stdout
    # One failing call is one failing test, named by its call id.
    assert "test_call_does_what_it_should[" in p.stdout


def test_replay_applies_the_scripts_scheduled_tool_faults() -> None:
    """A call whose degraded script schedules a 5xx on its first tool call: the agent gets
    the error body (as in `callsim run`), and the transcript records the fault."""
    from simulator.callscript import Degradation
    from simulator.personas import generate_calls, load_packs
    from simulator.pytest_plugin import replay_call

    packs = load_packs()
    script = next(c for c in generate_calls(packs, "all", 20, 5) if c.expected_tool_calls)
    faulty = script.model_copy(update={"degradation": Degradation(
        profile="test", seed=1,
        tool_faults=[{"tool_call_index": 0, "kind": "http_5xx", "latency_s": 0.0}])})
    with agent_process() as url:
        clean = replay_call(script, url, packs=packs)
        hit = replay_call(faulty, url, packs=packs)
    assert clean.transcript["tool_calls"][0]["fault"] is None
    first = hit.transcript["tool_calls"][0]
    assert first["fault"] == {"kind": "http_5xx", "status": 500, "delay_s": 0.0}
    assert "internal server error" in first["result"]
    assert "internal server error" not in clean.transcript["tool_calls"][0]["result"]
