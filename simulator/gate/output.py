"""Gate results for people and machines: a rich table, a JSON dict, JUnit XML.

Pure rendering: :func:`render` returns rich renderables (the CLI prints them; rich falls back
to plain text when not a TTY), :func:`to_json` a JSON-ready dict, :func:`write_junit` one
file with a testcase per gate number, per guard and one for the verdict.
"""

from __future__ import annotations

import xml.etree.ElementTree as ET
from pathlib import Path
from typing import Any

from rich.console import Group, RenderableType
from rich.table import Table
from rich.text import Text

from simulator.gate.decide import GateResult, fmt_delta, fmt_interval, fmt_value
from simulator.gate.stats import Estimate

DECISION_STYLE = {
    "win": "bold green",
    "tie": "white",
    "loss": "bold yellow",
    "loss_badly": "bold red",
    "inconclusive": "magenta",
}
VERDICT_STYLE = {"PASS": "bold white on green", "FAIL": "bold white on red",
                 "INCONCLUSIVE": "bold black on yellow"}


def _cell(name: str, e: Estimate) -> Text:
    t = Text(fmt_value(name, e.value))
    t.append(f"\n{fmt_interval(name, e)}", style="dim")
    return t


def render(result: GateResult) -> RenderableType:
    """The gate table, guards, context numbers and the verdict line."""
    parts: list[RenderableType] = []
    for problem in result.mismatch:
        parts.append(Text(f"MISMATCH (judged anyway): {problem}", style="bold red"))
    pct = f"{100 * result.confidence:g}%"
    table = Table(title=f"eval gate ({pct} bootstrap intervals, {result.resamples} resamples, "
                  f"{'paired by script' if result.paired else 'unpaired'})")
    table.add_column("number")
    table.add_column(f"baseline\n{result.baseline_calls} calls", justify="right")
    table.add_column(f"candidate\n{result.candidate_calls} calls", justify="right")
    table.add_column("difference", justify="right")
    table.add_column("decision")
    table.add_column("why", overflow="fold", ratio=1)
    for r in result.rows:
        diff = Text(fmt_delta(r.name, r.difference.value))
        diff.append(f"\n{fmt_interval(r.name, r.difference, delta=True)}", style="dim")
        table.add_row(f"{r.name}\n({r.direction} is better)", _cell(r.name, r.baseline),
                      _cell(r.name, r.candidate), diff,
                      Text(r.decision, style=DECISION_STYLE[r.decision]), r.reason)
    for g in result.guards:
        style = "bold red" if g.breached else ("magenta" if g.breached is None else "green")
        label = "breached" if g.breached else ("no data" if g.breached is None else "ok")
        if not g.applies:
            style, label = "dim", "n/a"
        table.add_row(f"guard {g.name}", _cell(g.name, g.baseline), _cell(g.name, g.candidate),
                      "", Text(label, style=style), g.reason, style="dim" if not g.breached
                      else None)
    for name, pe in result.context.items():
        table.add_row(Text(name, style="dim"), _cell(name, pe.baseline),
                      _cell(name, pe.candidate),
                      Text(f"{fmt_delta(name, pe.diff.value)}\n"
                           f"{fmt_interval(name, pe.diff, delta=True)}", style="dim"),
                      Text("info", style="dim"), "")
    parts.append(table)
    verdict = Text(f" {result.verdict} ", style=VERDICT_STYLE[result.verdict])
    verdict.append(f"  {result.wins} of {len(result.rows)} numbers win "
                   f"({result.wins_needed} needed)  exit {result.exit_code}")
    parts.append(verdict)
    for reason in result.reasons:
        parts.append(Text(f"  - {reason}"))
    return Group(*parts)


def _est(e: Estimate) -> dict[str, Any]:
    return {"value": e.value, "lo": e.lo, "hi": e.hi, "n": e.n}


def to_json(result: GateResult) -> dict[str, Any]:
    """A JSON-ready dict of the whole result (stable keys; ``None`` where no data)."""
    return {
        "verdict": result.verdict,
        "exit_code": result.exit_code,
        "wins": result.wins,
        "wins_needed": result.wins_needed,
        "reasons": list(result.reasons),
        "mismatch": list(result.mismatch),
        "rubric_sha256": result.rubric_sha256,
        "confidence": result.confidence,
        "resamples": result.resamples,
        "paired": result.paired,
        "calls": {"baseline": result.baseline_calls, "candidate": result.candidate_calls},
        "numbers": [
            {"name": r.name, "direction": r.direction, "baseline": _est(r.baseline),
             "candidate": _est(r.candidate), "difference": _est(r.difference),
             "win_margin": r.win_margin, "lose_badly": r.lose_badly,
             "decision": r.decision, "reason": r.reason, "not_badly": r.not_badly}
            for r in result.rows
        ],
        "guards": [
            {"name": g.name, "max": g.max, "min": g.min, "baseline": _est(g.baseline),
             "candidate": _est(g.candidate), "breached": g.breached, "reason": g.reason,
             "applies": g.applies}
            for g in result.guards
        ],
        "context": {k: {"baseline": _est(v.baseline), "candidate": _est(v.candidate),
                        "difference": _est(v.diff)} for k, v in result.context.items()},
        "baseline_meta": result.baseline_meta,
        "candidate_meta": result.candidate_meta,
    }


def junit_tree(result: GateResult, suite_name: str = "callsim.gate") -> ET.ElementTree:
    """The JUnit XML tree: a testcase per number and guard, and one for the verdict.

    A loss or a breached guard is a ``<failure>``; an inconclusive number is ``<skipped>``;
    the verdict testcase fails on FAIL and errors on INCONCLUSIVE (the gate could not judge).
    """
    suite = ET.Element("testsuite", name=suite_name)
    failures = errors = skipped = 0

    def case(name: str, body: str) -> ET.Element:
        tc = ET.SubElement(suite, "testcase", classname=suite_name, name=name, time="0")
        ET.SubElement(tc, "system-out").text = body
        return tc

    for r in result.rows:
        tc = case(r.name, f"{r.decision}: {r.reason}")
        if r.decision in ("loss", "loss_badly"):
            ET.SubElement(tc, "failure", message=f"{r.decision}: {r.reason}",
                          type=r.decision).text = r.reason
            failures += 1
        elif r.decision == "inconclusive":
            ET.SubElement(tc, "skipped", message=f"inconclusive: {r.reason}")
            skipped += 1
    for g in result.guards:
        tc = case(f"guard {g.name}", g.reason)
        if g.breached:
            ET.SubElement(tc, "failure", message=g.reason, type="guard").text = g.reason
            failures += 1
    body = "\n".join([*result.mismatch, *result.reasons])
    tc = case("verdict", f"{result.verdict}\n{body}")
    message = f"{result.verdict}: " + "; ".join(result.reasons)
    if result.verdict == "FAIL":
        ET.SubElement(tc, "failure", message=message, type="gate").text = body
        failures += 1
    elif result.verdict == "INCONCLUSIVE":
        ET.SubElement(tc, "error", message=message, type="inconclusive").text = body
        errors += 1
    suite.set("tests", str(len(suite.findall("testcase"))))
    suite.set("failures", str(failures))
    suite.set("errors", str(errors))
    suite.set("skipped", str(skipped))
    root = ET.Element("testsuites", name="callsim")
    root.append(suite)
    ET.indent(root)
    return ET.ElementTree(root)


def write_junit(result: GateResult, path: str | Path) -> None:
    """Write :func:`junit_tree` to ``path`` (UTF-8, with an XML declaration)."""
    junit_tree(result).write(Path(path), encoding="utf-8", xml_declaration=True)
