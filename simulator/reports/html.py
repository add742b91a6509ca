"""The HTML report: one self-contained file that opens offline in any browser.

Charts are inline SVG drawn in Python (:mod:`.charts`); the per-call drill-down is built by
a small inline script from a JSON blob embedded in ``<script type="application/json">``.
Every string that came from an agent or a caller is escaped on the Python side or written
with ``textContent`` on the JS side; none reaches an attribute, a URL or script source. A
Content-Security-Policy allows only the report's own script (by hash) and no network, so
even a missed escape could not run injected code or fetch anything.
"""

from __future__ import annotations

import base64
import hashlib
import json
import math
import time
from collections.abc import Mapping
from html import escape
from importlib import resources
from pathlib import Path
from typing import Any

from simulator.gate.decide import GateResult, fmt_delta, fmt_value
from simulator.metrics.numbers import GATE_METRICS, METRICS, REPORTED
from simulator.reports import charts
from simulator.reports.data import collect

_GATE_LABELS = {name: d.label for name, d in METRICS.items()}
_LOWER_BETTER = {name for name, d in METRICS.items() if d.direction == "lower"}
_GATE_FOUR = GATE_METRICS


def e(value: object) -> str:
    """Escape anything for HTML text or a quoted attribute."""
    return escape("" if value is None else str(value), quote=True)


def embed_json(data: Any) -> str:
    """JSON safe inside ``<script type="application/json">``: no ``<``, ``>``, ``&``."""
    raw = json.dumps(_finite(data), separators=(",", ":"), ensure_ascii=False,
                     allow_nan=False, default=str)
    return (raw.replace("<", "\\u003c").replace(">", "\\u003e").replace("&", "\\u0026")
            .replace("\u2028", "\\u2028").replace("\u2029", "\\u2029"))


def _finite(v: Any) -> Any:
    """``v`` with NaN / infinities as ``None`` (JSON.parse rejects them)."""
    if isinstance(v, float):
        return v if math.isfinite(v) else None
    if isinstance(v, dict):
        return {k: _finite(x) for k, x in v.items()}
    if isinstance(v, list | tuple):
        return [_finite(x) for x in v]
    return v


def _ms(v: float | None) -> str:
    return "—" if v is None else f"{v:,.0f} ms" if v >= 100 else f"{v:.1f} ms"


def _pct(v: float | None) -> str:
    return "—" if v is None else f"{100 * v:.1f}%"


def _usd(v: float | None) -> str:
    return "—" if v is None else f"${v:.5f}"


def _when(ts: float | None) -> str:
    if not ts:
        return "—"
    return time.strftime("%Y-%m-%d %H:%M:%S UTC", time.gmtime(ts))


# ------------------------------------------------------------------------------ sections


def _header(d: dict[str, Any], base: dict[str, Any] | None) -> str:
    m = d["meta"]
    s = d["summary"]["calls"]
    status = m.get("status") or "unknown"
    cls = "ok" if status == "complete" else "warn"
    items = [
        ("target", m.get("target")), ("profile", m.get("profile")), ("model", m.get("model")),
        ("transport", m.get("transport")), ("seed", m.get("seed")),
        ("started", _when(m.get("started_at"))), ("finished", _when(m.get("finished_at"))),
        ("rubric", str(m["rubric_sha256"])[:12] if m.get("rubric_sha256") else "none recorded"),
    ]
    if m.get("label"):
        items.insert(0, ("label", m["label"]))
    if base is not None:
        base_label = base["meta"].get("label")
        items.insert(0, ("baseline", base["run_id"] + (f" ({base_label})" if base_label
                                                       else "")))
    meta = "".join(f"<span><b>{e(k)}</b> {e(v if v is not None else '—')}</span>"
                   for k, v in items)
    out = [f'<header><h1>callsim report <span class="runid">{e(d["run_id"])}</span> '
           f'<span class="badge {cls}">{e(status)}</span></h1><div class="meta">{meta}</div>']
    total = s.get("total")
    if status != "complete" or (total is not None and s["completed"] < total):
        out.append(f'<div class="banner warn">Partial run: {s["completed"]} of '
                   f'{e(total if total is not None else "?")} calls completed; every number '
                   "below covers the completed calls only.</div>")
    out.append("</header>")
    return "".join(out)


def _mismatch_banner(problems: list[str]) -> str:
    if not problems:
        return ""
    items = "".join(f"<li>{e(p)}</li>" for p in problems)
    return (f'<div class="banner mismatch" id="mismatch"><b>MISMATCH — judged anyway '
            f"(--allow-mismatch).</b> These runs are not comparable as recorded:<ul>{items}"
            "</ul></div>")


def _meta_problems(base: dict[str, Any], cand: dict[str, Any]) -> list[str]:
    out = []
    for key, label in (("rubric_sha256", "rubric"), ("profile", "profile"),
                       ("scenario_set", "scenario set")):
        b, c = base["meta"].get(key), cand["meta"].get(key)
        if b != c:
            short = (lambda v: str(v)[:12] if v else "none")  # noqa: E731
            out.append(f"{label} differs: baseline {short(b)}, candidate {short(c)}")
    return out


def _est(name: str, est: Mapping[str, Any] | None, delta: bool = False) -> str:
    if not est:
        return "n/a"
    f = fmt_delta if delta else fmt_value
    value = f(name, est.get("value"))
    if est.get("lo") is None or est.get("hi") is None:
        return e(value)
    return (f'{e(value)}<div class="ci">[{e(f(name, est["lo"]))}, '
            f'{e(f(name, est["hi"]))}]</div>')


def _gate_section(d: dict[str, Any], base: dict[str, Any] | None,
                  gate: dict[str, Any] | None) -> str:
    out = ['<section id="gate"><h2>Eval gate</h2>']
    problems = list(gate.get("mismatch") or []) if gate else []
    if base is not None and not problems:
        problems = _meta_problems(base, d)
    out.append(_mismatch_banner(problems))
    if gate is not None:
        verdict = str(gate.get("verdict", "?"))
        vcls = {"PASS": "pass", "FAIL": "fail"}.get(verdict, "inconclusive")
        out.append(f'<div class="verdict {vcls}" id="verdict"><span>{e(verdict)}</span> '
                   f'{e(gate.get("wins"))} of {len(gate.get("numbers") or [])} numbers win '
                   f'({e(gate.get("wins_needed"))} needed) · exit {e(gate.get("exit_code"))}'
                   "</div>")
        reasons = "".join(f"<li>{e(r)}</li>" for r in gate.get("reasons") or [])
        if reasons:
            out.append(f'<ul class="reasons">{reasons}</ul>')
        conf = gate.get("confidence")
        calls = gate.get("calls") or {}
        out.append(
            '<table class="gate"><thead><tr><th>number</th>'
            f'<th class="r">baseline<div class="ci">{e(calls.get("baseline"))} calls</div></th>'
            f'<th class="r">candidate<div class="ci">{e(calls.get("candidate"))} calls</div>'
            '</th><th class="r">difference</th><th>decision</th><th>why</th></tr></thead><tbody>')
        for r in gate.get("numbers") or []:
            name = str(r.get("name"))
            dec = str(r.get("decision"))
            out.append(
                f'<tr><td>{e(_GATE_LABELS.get(name, name))}<div class="ci">{e(r.get("direction"))}'
                f' is better</div></td><td class="r">{_est(name, r.get("baseline"))}</td>'
                f'<td class="r">{_est(name, r.get("candidate"))}</td>'
                f'<td class="r">{_est(name, r.get("difference"), delta=True)}</td>'
                f'<td><span class="dec {e(dec)}">{e(dec)}</span></td>'
                f'<td class="why">{e(r.get("reason"))}</td></tr>')
        for g in gate.get("guards") or []:
            br = g.get("breached")
            label = "breached" if br else ("no data" if br is None else "ok")
            name = str(g.get("name"))
            out.append(
                f'<tr class="guard"><td>guard {e(name)}</td><td class="r">'
                f'{_est(name, g.get("baseline"))}</td><td class="r">'
                f'{_est(name, g.get("candidate"))}</td><td></td><td><span class="dec '
                f'{"loss_badly" if br else "tie"}">{e(label)}</span></td>'
                f'<td class="why">{e(g.get("reason"))}</td></tr>')
        for name, pe in (gate.get("context") or {}).items():
            out.append(
                f'<tr class="context"><td>{e(_GATE_LABELS.get(name, name))}</td>'
                f'<td class="r">{_est(name, pe.get("baseline"))}</td>'
                f'<td class="r">{_est(name, pe.get("candidate"))}</td>'
                f'<td class="r">{_est(name, pe.get("difference"), delta=True)}</td>'
                '<td><span class="dec info">info</span></td><td></td></tr>')
        out.append("</tbody></table>")
        if conf is not None:
            out.append(f'<p class="note">{e(f"{100 * float(conf):g}")}% bootstrap intervals, '
                       f'{e(gate.get("resamples"))} resamples, '
                       f'{"paired by call script" if gate.get("paired") else "unpaired"}; '
                       f'rubric {e(str(gate.get("rubric_sha256") or "?")[:12])}.</p>')
        out.append("</section>")
        return "".join(out)
    n, nc = d["numbers"], d["numbers_calls"]
    if base is None:
        out.append('<table class="gate"><thead><tr><th>number</th><th class="r">value</th>'
                   '<th class="r">calls</th></tr></thead><tbody>')
        for k in REPORTED:
            cls = "" if k in _GATE_FOUR else ' class="context"'
            out.append(f"<tr{cls}><td>{e(_GATE_LABELS[k])}</td><td class=\"r\">"
                       f"{e(fmt_value(k, n.get(k)))}</td><td class=\"r\">{nc.get(k, 0)}</td></tr>")
        out.append("</tbody></table><p class=\"note\">No baseline given: the numbers of this "
                   "run alone. <code>callsim report RUN --baseline RUN</code> adds the "
                   "comparison; <code>callsim gate</code> the verdict.</p></section>")
        return "".join(out)
    bn = base["numbers"]
    out.append('<table class="gate"><thead><tr><th>number</th><th class="r">baseline</th>'
               '<th class="r">candidate</th><th class="r">difference</th><th>point estimate'
               "</th></tr></thead><tbody>")
    for k in REPORTED:
        b, c = bn.get(k), n.get(k)
        diff = None if b is None or c is None else c - b
        hint = "—"
        if diff is not None:
            better = diff < 0 if k in _LOWER_BETTER else diff > 0
            hint = "same" if diff == 0 else ("better" if better else "worse")
        cls = "" if k in _GATE_FOUR else ' class="context"'
        out.append(f"<tr{cls}><td>{e(_GATE_LABELS[k])}</td><td class=\"r\">"
                   f"{e(fmt_value(k, b))}</td><td class=\"r\">{e(fmt_value(k, c))}</td>"
                   f"<td class=\"r\">{e(fmt_delta(k, diff))}</td>"
                   f'<td><span class="hint {e(hint)}">{e(hint)}</span></td></tr>')
    out.append("</tbody></table><p class=\"note\">Point estimates only, no verdict: "
               "<code>callsim gate</code> decides on bootstrap intervals.</p></section>")
    return "".join(out)


def _routing_section(routing: Mapping[str, Any] | None) -> str:
    """The routing table of ``callsim compare`` (its JSON dict): one row per segment."""
    if routing is None:
        return ""
    runs = routing.get("runs") or []
    out = ['<section id="routing"><h2>Routing: which run wins where</h2><table class="narrow">'
           '<thead><tr><th>run</th><th>run id</th><th class="r">calls</th></tr></thead><tbody>']
    for r in runs:
        out.append(f'<tr><td><b>{e(r.get("label"))}</b></td><td><code>{e(r.get("run_id"))}'
                   f'</code></td><td class="r">{e(r.get("calls"))}</td></tr>')
    out.append('</tbody></table><table class="routing"><thead><tr><th>segment</th>'
               '<th>winner</th><th>decisive number</th><th class="r">difference</th>'
               '<th>why</th></tr></thead><tbody>')
    labels = [str(r.get("label")) for r in runs]
    for route in routing.get("routes") or []:
        winner = route.get("winner")
        dec = route.get("decisive") or {}
        name = str(dec.get("number") or "")
        diff = dict(dec.get("difference") or {})
        if dec and winner is not None and winner == dec.get("baseline"):
            # Shown as the winner minus the other run.
            diff = {"value": None if diff.get("value") is None else -diff["value"],
                    "lo": None if diff.get("hi") is None else -diff["hi"],
                    "hi": None if diff.get("lo") is None else -diff["lo"]}
        who = (f'<span class="dec win">{e(winner)}</span>' if winner is not None else
               f'<span class="dec tie">no winner</span> <span class="ci">'
               f'{e(route.get("status"))}</span>')
        level = 100 * float(dec.get("confidence") or 0)
        pair = (f'<div class="ci">{e(dec.get("candidate"))} vs {e(dec.get("baseline"))}, '
                f'{level:.3g}% interval</div>' if dec else "")
        out.append(
            f'<tr data-segment="{e(route.get("segment"))}"><td>{e(route.get("segment"))}</td>'
            f'<td class="winner">{who}</td>'
            f'<td>{e(_GATE_LABELS.get(name, name)) if dec else "—"}{pair}</td>'
            f'<td class="r">{_est(name, diff, delta=True) if dec else "—"}</td>'
            f'<td class="why">{e(route.get("reason"))}</td></tr>')
    conf = float(routing.get("confidence") or 0.95)
    two = (f"; without a winner, {labels[1]} minus {labels[0]}" if len(labels) == 2 else "")
    out.append(
        '</tbody></table><p class="note">Each segment is judged on the four gate numbers with '
        f'the gate\'s intervals and margins, at least {e(routing.get("min_calls_per_segment"))} '
        "calls behind a number in every run. Winners are controlled across all "
        f'{e(routing.get("family_size"))} tests with Holm\'s method, so the chance of any false '
        f"winner in this table is at most {100 * (1 - conf):.3g}%. Difference: the winner "
        f"minus the other run{e(two)}. "
        "<code>callsim compare --verbose</code> lists every comparison.</p>")
    for d in routing.get("drift") or []:
        out.append(
            f'<p class="note drift">{e(d.get("candidate"))} vs {e(d.get("baseline"))}: '
            f'{e("; ".join(d.get("lines") or []))}.</p>')
    out.append("</section>")
    return "".join(out)


def _pct_row(label: str, p: Mapping[str, Any]) -> str:
    cells = "".join(f'<td class="r">{_ms(p.get(k))}</td>' for k in ("p50", "p90", "p95", "p99",
                                                                     "max"))
    return f'<tr><td>{e(label)}</td>{cells}<td class="r">{e(p.get("n", 0))}</td></tr>'


def _latency_section(d: dict[str, Any], base: dict[str, Any] | None) -> str:
    lat = d["latency"]
    series = [charts.Series("candidate" if base else "first-token latency",
                            charts.cdf_points(lat["ttft_ms"]), charts.PALETTE[0], step=True)]
    if base is not None:
        series.append(charts.Series("baseline", charts.cdf_points(base["latency"]["ttft_ms"]),
                                    charts.PALETTE[5], step=True, dashed=True))
    cdf = charts.line_chart(series, title="first-token latency CDF", x_label="ms",
                            y_label="share of turns", y_fmt=lambda v: f"{100 * v:.0f}%",
                            y_min=0.0, y_max=1.0, kind="cdf")
    ot = lat["over_time"]
    over = charts.line_chart(
        [charts.Series("p50", [((b["t0"] + b["t1"]) / 2, b["p50"]) for b in ot],
                       charts.PALETTE[0], markers=True),
         charts.Series("p95", [((b["t0"] + b["t1"]) / 2, b["p95"]) for b in ot],
                       charts.PALETTE[1], markers=True)],
        title="first-token latency over time", x_label="seconds since run start",
        y_label="ms", y_min=0.0, kind="over-time")
    s = d["summary"]
    rows = [_pct_row("first-token latency (from send)", lat["ttft_pcts"]),
            _pct_row("first-token latency (from schedule)", lat["ttft_from_schedule_pcts"]),
            _pct_row("dispatch delay", s.get("dispatch_delay_ms") or {}),
            _pct_row("connection setup", s.get("connection_setup_ms") or {})]
    if base is not None:
        rows.insert(1, _pct_row("baseline first-token latency", base["latency"]["ttft_pcts"]))
    lag = s.get("loop_lag") or {}
    verdict = lag.get("verdict")
    trusted = bool(verdict) and str(verdict).endswith("latencies trustworthy")
    lag_cls = "ok" if trusted else "bad"
    lag_html = (f'<div class="banner {lag_cls}" id="looplag"><b>Loop lag:</b> '
                f'{e(verdict or "not recorded (run interrupted before the end?)")}'
                f' · lag at samples p99 {_ms(lag.get("at_samples_p99_ms"))} · '
                f'stream stalls {e(s.get("stalls", 0))}</div>')
    return (
        '<section id="latency"><h2>Latency</h2>' + lag_html +
        f'<div class="grid2"><figure>{cdf}</figure><figure>{over}</figure></div>'
        '<table class="narrow"><thead><tr><th></th><th class="r">p50</th><th class="r">p90</th>'
        '<th class="r">p95</th><th class="r">p99</th><th class="r">max</th><th class="r">n'
        "</th></tr></thead><tbody>" + "".join(rows) + "</tbody></table></section>"
    )


def _group_chart(groups: list[dict[str, Any]], base_groups: list[dict[str, Any]] | None,
                 title: str, kind: str) -> str:
    names = [g["name"] for g in groups]
    series: list[tuple[str, list[float | None]]] = [
        ("p50", [g["p50"] for g in groups]), ("p95", [g["p95"] for g in groups])]
    colors: tuple[str, ...] = charts.PALETTE
    if base_groups is not None:
        bmap = {g["name"]: g for g in base_groups}
        series.append(("baseline p95", [bmap[n]["p95"] if n in bmap else None for n in names]))
        colors = (charts.PALETTE[0], charts.PALETTE[1], charts.PALETTE[5])
    return charts.bar_chart(names, series, title=title, y_label="ms",
                            notes=[f"n={g['n']}" for g in groups], kind=kind, colors=colors)


def _breakdown_section(d: dict[str, Any], base: dict[str, Any] | None) -> str:
    lat = d["latency"]
    bl = base["latency"] if base else None
    pack = _group_chart(lat["by_pack"], bl["by_pack"] if bl else None,
                        "first-token latency by vertical", "by-pack")
    prof = _group_chart(lat["by_profile"], bl["by_profile"] if bl else None,
                        "first-token latency by noise profile", "by-profile")
    rows = "".join(
        f"<tr><td>{e(g['name'])}</td><td class=\"r\">{_ms(g['p50'])}</td>"
        f"<td class=\"r\">{_ms(g['p95'])}</td><td class=\"r\">{g['n']}</td></tr>"
        for g in lat["by_intent"])
    return (
        '<section id="breakdown"><h2>Latency by vertical, profile and scenario</h2>'
        f'<div class="grid2"><figure>{pack}</figure><figure>{prof}</figure></div>'
        '<table class="narrow"><thead><tr><th>scenario kind</th><th class="r">p50</th>'
        f'<th class="r">p95</th><th class="r">turns</th></tr></thead><tbody>{rows}</tbody>'
        "</table></section>"
    )


def _accuracy_section(d: dict[str, Any], base: dict[str, Any] | None) -> str:
    acc = d["accuracy_by_wer"]
    buckets = [b for b in acc["buckets"] if b["calls"]] or acc["buckets"]
    series: list[tuple[str, list[float | None]]] = [
        ("argument accuracy", [b["accuracy"] for b in buckets]),
        ("strict pass", [b["strict_rate"] for b in buckets])]
    if base is not None:
        bm = {b["label"]: b for b in base["accuracy_by_wer"]["buckets"]}
        series.append(("baseline accuracy",
                       [bm[b["label"]]["accuracy"] if b["label"] in bm else None
                        for b in buckets]))
    chart = charts.bar_chart(
        [b["label"] for b in buckets], series, title="tool-call accuracy by injected WER",
        x_label="injected word error rate", y_label="share",
        y_fmt=lambda v: f"{100 * v:.0f}%", y_max=1.0, notes=[f"n={b['calls']}" for b in buckets],
        kind="accuracy-by-wer",
        colors=(charts.PALETTE[2], charts.PALETTE[0], charts.PALETTE[5]))
    nw = acc["no_wer"]
    if not any(b["calls"] for b in acc["buckets"]):
        chart = ('<p class="note">No call in this run carries an injected WER, so there is '
                 "nothing to put on a noise axis.</p>")
    note = ""
    if nw["calls"]:
        note = (f'<p class="note">{nw["calls"]} calls carry no injected WER (clean profile or '
                f"undegraded): argument accuracy {_pct(nw['accuracy'])}, strict pass "
                f"{_pct(nw['strict_rate'])}.</p>")
    rows = "".join(
        f"<tr><td>{e(b['label'])}</td><td class=\"r\">{b['calls']}</td>"
        f"<td class=\"r\">{b['arg_correct']}/{b['arg_total']}</td>"
        f"<td class=\"r\">{_pct(b['accuracy'])}</td><td class=\"r\">{_pct(b['strict_rate'])}"
        "</td></tr>" for b in acc["buckets"] if b["calls"])
    table = ('<table class="narrow"><thead><tr><th>injected WER</th><th class="r">calls</th>'
             '<th class="r">args right</th><th class="r">accuracy</th><th class="r">strict pass'
             f"</th></tr></thead><tbody>{rows}</tbody></table>") if rows else ""
    return ('<section id="accuracy"><h2>Tool-call accuracy by noise level</h2>'
            f'<div class="grid2"><figure>{chart}</figure><div>{table}{note}</div></div>'
            "</section>")


def _cost_section(d: dict[str, Any], base: dict[str, Any] | None) -> str:
    c = d["cost"]
    vals = c["values"]
    span = (max(vals) - min(vals)) if vals else 0.0
    # Enough decimals that neighbouring ticks (about span/5 apart) read differently.
    digits = min(8, max(2, 1 - math.floor(math.log10(span / 5))) if span > 0 else 4)
    hist = charts.histogram(vals, title="cost per session", x_label="USD per session",
                            x_fmt=lambda v: f"${v:.{digits}f}", kind="cost")
    rows = [("mean", _usd(c["mean"])), ("p50", _usd(c.get("p50"))), ("p95", _usd(c.get("p95"))),
            ("max", _usd(c.get("max"))), ("sessions", str(c["n"])),
            ("usage estimated", _pct(c["estimated_share"]))]
    if base is not None:
        rows.insert(1, ("baseline mean", _usd(base["cost"]["mean"])))
    body = "".join(f"<tr><td>{e(k)}</td><td class=\"r\">{e(v)}</td></tr>" for k, v in rows)
    warn = ""
    if c["estimated_share"]:
        warn = ('<p class="note warn-text">Some sessions had no usage in the agent\'s '
                "responses; their cost was estimated (tokens from the words, or the "
                "profile's per-minute voice rate).</p>")
    return ('<section id="cost"><h2>Cost per session</h2><div class="grid2">'
            f'<figure>{hist}</figure><div><table class="narrow"><tbody>{body}</tbody></table>'
            f"{warn}</div></div></section>")


def _faults_section(d: dict[str, Any]) -> str:
    f = d["faults"]
    out = ['<section id="faults"><h2>Faults and recoveries</h2>']
    if f["kinds"]:
        out.append('<table class="narrow"><thead><tr><th>fault</th><th class="r">injected</th>'
                   '<th class="r">calls</th><th class="r">timed out</th>'
                   '<th class="r">retried → ok</th><th class="r">retried → failed again</th>'
                   '<th class="r">calls ok</th><th class="r">calls strict pass</th></tr>'
                   "</thead><tbody>")
        for k in f["kinds"]:
            out.append(f"<tr><td>{e(k['kind'])}</td>" + "".join(
                f'<td class="r">{e(k[c])}</td>' for c in
                ("count", "calls", "timed_out", "retried_ok", "retried_failed", "calls_ok",
                 "calls_strict_pass")) + "</tr>")
        out.append("</tbody></table>")
        out.append(f'<p class="note">{f["total"]} tool faults in {f["calls_with_faults"]} '
                   f"calls. Strict pass with faults {_pct(f['strict_pass_with_faults'])}, "
                   f"without {_pct(f['strict_pass_without_faults'])}.</p>")
    else:
        out.append('<p class="note">No tool faults were injected in this run.</p>')
    errors = d["summary"].get("errors") or {}
    extra = [("call errors", errors), ("degradations injected", d["degradations"]),
             ("driver events", d["driver_events"])]
    cells = []
    for title, counts in extra:
        if counts:
            items = "".join(f"<tr><td>{e(k)}</td><td class=\"r\">{e(v)}</td></tr>"
                            for k, v in counts.items())
            cells.append(f'<table class="narrow"><thead><tr><th>{e(title)}</th>'
                         f'<th class="r">count</th></tr></thead><tbody>{items}</tbody></table>')
    if cells:
        out.append('<div class="grid3">' + "".join(cells) + "</div>")
    out.append("</section>")
    return "".join(out)


def _calls_section(d: dict[str, Any]) -> str:
    rows = []
    for c in d["calls"]:
        prob = "1" if c["problems"] else "0"
        status = ('<span class="badge ok">ok</span>' if c["ok"] else
                  f'<span class="badge bad">{e(c["error"] or "error")}</span>')
        rows.append(
            f'<tr data-idx="{int(c["idx"])}" data-problem="{prob}" tabindex="0">'
            f'<td>{e(c["call_id"])}</td><td>{e(c["pack"])}</td><td>{e(c["intent"])}</td>'
            f'<td>{status}</td><td class="problems">{e(", ".join(c["problems"]))}</td>'
            f'<td class="r">{_ms(c["ttft_max_ms"])}</td>'
            f'<td class="r">{c["arg_correct"]}/{c["arg_total"]}</td>'
            f'<td class="r">{_usd(c["cost_usd"])}</td>'
            f'<td class="r">{_pct(c["injected_wer"]) if c["injected_wer"] is not None else "—"}'
            f'</td><td class="r">{c["faults"] or ""}</td><td>{e(c["profile"])}</td></tr>')
    n_prob = sum(1 for c in d["calls"] if c["problems"])
    return (
        '<section id="calls"><h2>Calls</h2><div class="toolbar">'
        '<input id="call-filter" type="search" placeholder="filter calls (id, vertical, '
        'scenario, problem…)" aria-label="filter calls">'
        f'<label><input id="problems-only" type="checkbox"> problems only ({n_prob})</label>'
        f'<span class="note" id="shown-count">{len(d["calls"])} calls</span></div>'
        '<div class="calls-wrap"><div class="calls-table"><table id="calls-table"><thead><tr>'
        '<th>call</th><th>vertical</th><th>scenario</th><th>status</th><th>problems</th>'
        '<th class="r">max ttft</th><th class="r">args</th><th class="r">cost</th>'
        '<th class="r">WER</th><th class="r">faults</th><th>profile</th></tr></thead>'
        f'<tbody>{"".join(rows)}</tbody></table></div>'
        '<div id="drill" class="drill" aria-live="polite"><p class="note">Click a call to see '
        "its transcript, tool calls, timings and grading.</p></div></div></section>"
    )


_HERE = resources.files("simulator.reports")
_CSS = _HERE.joinpath("report.css").read_text(encoding="utf-8")
_JS = _HERE.joinpath("report.js").read_text(encoding="utf-8")


def _script_hash(js: str) -> str:
    return base64.b64encode(hashlib.sha256(js.encode()).digest()).decode()


def _gate_dict(gate: GateResult | Mapping[str, Any] | None) -> dict[str, Any] | None:
    if gate is None:
        return None
    if isinstance(gate, GateResult):
        from simulator.gate.output import to_json

        return to_json(gate)
    return dict(gate)


def render_html(run_dir: str | Path, baseline_dir: str | Path | None = None,
                gate: GateResult | Mapping[str, Any] | None = None, *,
                max_transcripts: int = 2000,
                routing: Mapping[str, Any] | None = None) -> str:
    """The report of ``run_dir`` as one self-contained HTML document.

    ``baseline_dir`` adds a side-by-side comparison (and overlays on the charts); ``gate``
    (a :class:`GateResult` or its :func:`simulator.gate.output.to_json` dict) adds the
    verdict, intervals and decisions; ``routing`` (:func:`simulator.gate.compare_to_json` of
    a comparison of several runs) adds the routing table. At most ``max_transcripts``
    transcripts are embedded (calls with problems first), so a run of many thousand calls
    stays a file a browser opens; every call stays in the table. Works on partial runs. Raises
    :class:`simulator.errors.StoreError` when a directory is not a run.
    """
    d = collect(run_dir)
    base = collect(baseline_dir, transcripts=False) if baseline_dir is not None else None
    g = _gate_dict(gate)
    detail = d["calls_detail"]
    if len(detail) > max_transcripts:
        # Keep the report openable on big runs: calls with problems first, then the rest.
        keep = sorted(d["calls"], key=lambda c: (not c["problems"], c["idx"]))[:max_transcripts]
        detail = {str(c["idx"]): detail[str(c["idx"])] for c in keep}
    blob = {"run_id": d["run_id"], "calls": d["calls"], "calls_detail": detail,
            "max_transcripts": max_transcripts}
    csp = ("default-src 'none'; style-src 'unsafe-inline'; img-src data:; "
           f"script-src 'sha256-{_script_hash(_JS)}'; base-uri 'none'; form-action 'none'")
    title = f"callsim report {d['run_id']}"
    nav = "".join(f'<a href="#{a}">{t}</a>' for a, t in (
        ("gate", "gate"), *((("routing", "routing"),) if routing is not None else ()),
        ("latency", "latency"), ("breakdown", "by vertical / profile"),
        ("accuracy", "accuracy by noise"), ("cost", "cost"), ("faults", "faults"),
        ("calls", "calls")))
    return "".join([
        "<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">",
        f'<meta http-equiv="Content-Security-Policy" content="{e(csp)}">',
        '<meta name="viewport" content="width=device-width, initial-scale=1">',
        f"<title>{e(title)}</title><style>{_CSS}</style></head><body>",
        _header(d, base), f"<nav>{nav}</nav><main>",
        _gate_section(d, base, g), _routing_section(routing), _latency_section(d, base),
        _breakdown_section(d, base),
        _accuracy_section(d, base), _cost_section(d, base), _faults_section(d),
        _calls_section(d),
        f'<p class="note">Generated by callsim from {e(d["run_id"])}'
        f'{" against baseline " + e(base["run_id"]) if base else ""}.</p></main>',
        f'<script type="application/json" id="callsim-data">{embed_json(blob)}</script>',
        f"<script>{_JS}</script></body></html>\n",
    ])


def write_report(run_dir: str | Path, out_path: str | Path,
                 baseline_dir: str | Path | None = None,
                 gate: GateResult | Mapping[str, Any] | None = None, *,
                 max_transcripts: int = 2000,
                 routing: Mapping[str, Any] | None = None) -> Path:
    """Write :func:`render_html` to ``out_path`` (UTF-8); returns the path written."""
    out = Path(out_path)
    if out.parent and not out.parent.exists():
        out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(render_html(run_dir, baseline_dir, gate, max_transcripts=max_transcripts,
                               routing=routing), encoding="utf-8")
    return out
