"""Issue 20 acceptance: routing per pack on real runs of the reference agent, through the CLI.

Four runs of the same 300 scripts, made at the same time: the reference agent; the same
agent with argument errors on healthcare calls only; and an A/A pair, the same agent with
argument errors on every pack under two seeds. Eight processes on a shared machine do not
share its load evenly: one run's latency can sit tens of milliseconds above another's for
nothing the agent did. That is drift between separately made runs, and compare holds them to
the rubric's drift policy as the gate does; these tests rely on it.
"""

from __future__ import annotations

import json
import re
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor
from contextlib import ExitStack
from pathlib import Path

import pytest

from simulator.agent.process import agent_process

# Four 300-call runs at once on a shared machine take minutes: more than the default timeout.
pytestmark = [pytest.mark.slow, pytest.mark.timeout(1800)]

CALLSIM = [sys.executable, "-m", "simulator"]
RUBRIC = Path(__file__).resolve().parents[1] / "examples" / "rubric.yaml"
ARMS = {
    "accurate": [],
    "sloppy on healthcare": ["--arg-error-rate", "healthcare=0.2"],
    "sloppy A": ["--arg-error-rate", "0.2", "--seed", "1"],
    "sloppy B": ["--arg-error-rate", "0.2", "--seed", "2"],
}


@pytest.fixture(scope="module")
def runs(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    tmp = tmp_path_factory.mktemp("compare")
    subprocess.run([*CALLSIM, "generate", "--count", "300", "--seed", "21", "-o",
                    str(tmp / "calls.jsonl")], check=True, capture_output=True)
    with ExitStack() as stack:
        urls = {k: stack.enter_context(agent_process("--stt", "none", "--ttft-ms", "100", *v))
                for k, v in ARMS.items()}

        def run(label: str) -> tuple[str, Path]:
            p = subprocess.run(
                [*CALLSIM, "run", "--target", urls[label], "--calls", str(tmp / "calls.jsonl"),
                 "--concurrency", "20", "--seed", "21", "--no-pauses", "--pacing", "none",
                 "--runs-dir",
                 str(tmp / "runs"), "--label", label, "--json"],
                capture_output=True, text=True, timeout=1200)
            assert p.returncode == 0, p.stderr[-2000:]
            return label, Path(json.loads(p.stdout)["run_dir"])

        with ThreadPoolExecutor(len(ARMS)) as pool:
            out = dict(pool.map(run, ARMS))
    out["runs"] = tmp / "runs"
    return out


def compare(runs: dict[str, Path], *names_and_flags: str) -> subprocess.CompletedProcess[str]:
    args = [str(runs[a]) if a in ARMS else a for a in names_and_flags]
    return subprocess.run([*CALLSIM, "compare", *args, "--rubric", str(RUBRIC)],
                          capture_output=True, text=True, timeout=600)


def test_the_sloppy_pack_routes_to_the_accurate_run_and_no_other_pack_has_a_winner(
    runs: dict[str, Path],
) -> None:
    p = compare(runs, "accurate", "sloppy on healthcare", "--json")
    assert p.returncode == 0, p.stderr
    routes = {r["segment"]: r for r in json.loads(p.stdout)["routes"]}
    hc = routes["pack healthcare"]
    assert hc["winner"] == "accurate", hc
    assert hc["decisive"]["number"] == "tool_arg_accuracy"
    for pack in ("after_hours", "real_estate", "salon"):
        assert routes[f"pack {pack}"]["winner"] is None, routes[f"pack {pack}"]


def test_an_a_over_a_pair_has_no_winner_in_any_segment(runs: dict[str, Path]) -> None:
    p = compare(runs, "sloppy A", "sloppy B", "--json")
    assert p.returncode == 0, p.stderr
    data = json.loads(p.stdout)
    assert data["family_size"] > 0
    assert [(r["segment"], r["reason"]) for r in data["routes"] if r["winner"]] == []


@pytest.mark.parametrize("verbose", [[], ["--verbose"]], ids=["lines", "verbose"])
def test_output_fits_80_columns_and_names_runs_by_label(runs: dict[str, Path],
                                                        verbose: list[str]) -> None:
    p = compare(runs, "accurate", "sloppy on healthcare", "--width", "80", *verbose)
    assert p.returncode == 0, p.stderr
    lines = p.stdout.splitlines()
    assert max(len(line) for line in lines) <= 80, max(lines, key=len)
    hc = next(line for line in lines if line.startswith("pack healthcare"))
    assert re.search(r"accurate\s+wins\s+arg accuracy\s+\+\d", hc), hc
    assert any(line.startswith("pack salon") and "no winner" in line for line in lines)
    legend = [line for line in lines if "run-" in line]
    assert len(legend) == 2 and all(line.startswith("  ") for line in legend)  # ids: legend only
    assert any("sloppy on healthcare" in line for line in legend)
    assert any(line.startswith("separate runs: latency and cost intervals widened by ±")
               for line in lines)
    if not verbose:
        assert len(lines) < 20


def test_runs_list_and_report_show_labels_and_the_routing_table(runs: dict[str, Path],
                                                                  tmp_path: Path) -> None:
    p = subprocess.run([*CALLSIM, "runs", "--runs-dir", str(runs["runs"]), "--json"],
                       capture_output=True, text=True, timeout=120)
    assert p.returncode == 0, p.stderr
    assert {r["label"] for r in json.loads(p.stdout)} == set(ARMS)
    out = tmp_path / "report.html"
    p = subprocess.run([*CALLSIM, "report", str(runs["sloppy on healthcare"]),
                        str(runs["accurate"]), "--rubric", str(RUBRIC), "-o", str(out)],
                       capture_output=True, text=True, timeout=600)
    assert p.returncode == 0, p.stderr
    html = out.read_text()
    row = re.search(r'<tr data-segment="pack healthcare">(.*?)</tr>', html)
    assert row and 'class="dec win">accurate<' in row.group(1)
    assert "<b>label</b> sloppy on healthcare" in html
    assert re.search(r'<p class="note drift">accurate vs sloppy on healthcare: separate '
                     r"runs \(started \d+ s apart\)", html)
