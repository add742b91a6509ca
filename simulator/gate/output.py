"""Gate results for people and machines: a rich table, a JSON dict, JUnit XML.

Pure rendering: :func:`render` returns rich renderables (the CLI prints them; rich falls back
to plain text when not a TTY), :func:`to_json` a JSON-ready dict, :func:`write_junit` one
file with a testcase per gate number, per guard and one for the verdict.
"""

from __future__ import annotations

import xml.etree.ElementTree as ET
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from rich import box
from rich.console import Group, RenderableType
from rich.table import Table
from rich.text import Text

from simulator.gate.aa import AAResult
from simulator.gate.decide import GateResult, fmt_delta, fmt_value, unit_of
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


def _interval(name: str, e: Estimate) -> str:
    """``[lo, hi]`` of a difference in the units of the line above it (ms, pp, $)."""
    if e.lo is None or e.hi is None:
        return "[n/a]"
    u = unit_of(name)
    if u == "ms":
        return f"[{e.lo:+.0f}, {e.hi:+.0f}]"
    if u == "rate":
        return f"[{100 * e.lo:+.1f}, {100 * e.hi:+.1f}]"
    if u == "usd":
        return f"[{_usd(e.lo)}, {_usd(e.hi)}]"
    return f"[{e.lo:+.4g}, {e.hi:+.4g}]"


def _usd(v: float) -> str:
    """A signed dollar difference in at most 8 characters (cents only above a dollar)."""
    if abs(v) < 1:
        return f"{v:+.4f}"
    return f"{v:+.2f}" if abs(v) < 10_000 else f"{v:+.1e}"


def _lines(rows: Sequence[tuple[Text, Text | str]]) -> Table:
    """Label + text pairs; the text wraps under itself, not under the label."""
    grid = Table.grid(padding=(0, 1))
    grid.add_column(no_wrap=True)
    grid.add_column(overflow="fold")
    for label, text in rows:
        grid.add_row(label, text)
    return grid


def _title(result: GateResult) -> str:
    pct = f"{100 * result.confidence:g}%"
    if result.mode == "interleaved" and result.arms:
        how = f"interleaved A/B, arm {result.arms[1]} vs arm {result.arms[0]}"
    else:
        how = "two runs"
    pairing = "paired by script" if result.paired else "unpaired"
    return f"eval gate: {how}; {pct} intervals, {pairing}, {result.resamples} resamples"


def render(result: GateResult) -> RenderableType:
    """The gate for an 80-column terminal: a table of numbers and decisions, then why.

    The table holds the values, the difference with its interval and the decision for each
    gate number, guard and context number; every reason is a line below the table (the
    JSON and JUnit outputs carry the same content).
    """
    parts: list[RenderableType] = []
    for problem in result.mismatch:
        parts.append(Text(f"MISMATCH (judged anyway): {problem}", style="bold red"))
    # 80 columns: name 20 + values 9 + 9 + difference 18 + decision 12, one space each side
    # of a column, none at the table's edges.
    table = Table(title=_title(result), box=box.SIMPLE_HEAD, padding=(0, 1), pad_edge=False,
                  title_justify="left", show_edge=False)
    table.add_column("number")
    table.add_column(f"baseline\n{result.baseline_calls} calls", justify="right",
                     no_wrap=True)
    table.add_column(f"candidate\n{result.candidate_calls} calls", justify="right",
                     no_wrap=True)
    table.add_column("difference\n(interval)", justify="right")
    table.add_column("decision", no_wrap=True)
    for r in result.rows:
        diff = Text(fmt_delta(r.name, r.difference.value))
        diff.append(f"\n{_interval(r.name, r.difference)}", style="dim")
        table.add_row(Text(f"{r.name}\n({r.direction} better)"),
                      fmt_value(r.name, r.baseline.value), fmt_value(r.name, r.candidate.value),
                      diff, Text(r.decision, style=DECISION_STYLE[r.decision]))
    for g in result.guards:
        style = "bold red" if g.breached else ("magenta" if g.breached is None else "green")
        label = "breached" if g.breached else ("no data" if g.breached is None else "ok")
        if not g.applies:
            style, label = "dim", "n/a"
        limit = (f"max {fmt_value(g.name, g.max)}" if g.max is not None
                 else f"min {fmt_value(g.name, g.min)}")
        table.add_row(Text(f"guard {g.name}\n({limit})"), fmt_value(g.name, g.baseline.value),
                      fmt_value(g.name, g.candidate.value), "", Text(label, style=style),
                      style="dim" if not g.breached else None)
    for name, pe in result.context.items():
        table.add_row(Text(name, style="dim"), fmt_value(name, pe.baseline.value),
                      fmt_value(name, pe.candidate.value),
                      Text(fmt_delta(name, pe.diff.value), style="dim"),
                      Text("info", style="dim"))
    parts.append(table)
    why: list[tuple[Text, Text | str]] = []
    for r in result.rows:
        text = Text(r.decision, style=DECISION_STYLE[r.decision])
        text.append(f": {r.reason}")
        why.append((Text(r.name, style="bold"), text))
    for g in result.guards:
        why.append((Text(f"guard {g.name}", style="bold"), g.reason))
    parts.append(Text("why:", style="bold"))
    parts.append(_lines(why))
    if result.drift:
        parts.append(_lines([(Text("note:", style="yellow"), n) for n in result.drift]))
    verdict = Text(f" {result.verdict} ", style=VERDICT_STYLE[result.verdict])
    verdict.append(f"  {result.wins} of {len(result.rows)} numbers win "
                   f"({result.wins_needed} needed)  exit {result.exit_code}")
    parts.append(verdict)
    reasons: list[tuple[Text, Text | str]] = []
    for reason in result.reasons:
        # A number's reason is already under "why:"; here it is named, not repeated.
        for r in result.rows:
            if reason.endswith(f": {r.reason}"):
                reason = reason[: -len(r.reason) - 2] + " (see why)"
                break
        reasons.append((Text(" -"), reason))
    parts.append(_lines(reasons))
    return Group(*parts)


def render_aa(res: AAResult) -> RenderableType:
    """The A/A calibration: the verdict as recorded, then false-loss rates over draws."""
    d = res.direct
    arms = f"arm {d.arms[1]} vs arm {d.arms[0]}" if d.arms else "the two arms"
    parts: list[RenderableType] = [
        Text(f"A/A calibration: {arms}, {res.scripts} scripts, {res.draws} relabelled draws",
             style="bold"),
        Text(f"as recorded: {d.verdict} ({', '.join(f'{r.name} {r.decision}' for r in d.rows)})"),
    ]
    table = Table(box=box.SIMPLE_HEAD, show_edge=False, padding=(0, 1))
    table.add_column("number")
    table.add_column("false losses", justify="right")
    table.add_column("rate", justify="right")
    for name, n in res.losses.items():
        table.add_row(name, f"{n} of {res.draws}", f"{100 * n / res.draws:.1f}%")
    table.add_row(Text("verdict FAIL", style="bold"), f"{res.fails} of {res.draws}",
                  Text(f"{100 * res.false_fail_rate:.1f}%", style="bold"))
    parts.append(table)
    ok = res.ok
    head = Text(" OK " if ok else " TOO MANY ",
                style=VERDICT_STYLE["PASS" if ok else "FAIL"])
    head.append(f"  false-fail rate {100 * res.false_fail_rate:.1f}%, allowed "
                f"{100 * res.allowed:g}% (1 - confidence)  exit {0 if ok else 1}")
    parts.append(head)
    if not ok:
        parts.append(Text("  the gate fails this agent against itself too often here: more "
                          "calls, a wider margin, or a steadier setup (docs/gate.md)"))
    return Group(*parts)


def aa_to_json(res: AAResult) -> dict[str, Any]:
    return {"direct": to_json(res.direct), "draws": res.draws, "fails": res.fails,
            "false_fail_rate": res.false_fail_rate, "allowed": res.allowed,
            "losses": res.losses, "scripts": res.scripts, "ok": res.ok}


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
        "mode": result.mode,
        "arms": list(result.arms) if result.arms else None,
        "drift": list(result.drift),
        "widened": result.widened,
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
    body = "\n".join([*result.mismatch, *result.drift, *result.reasons])
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
