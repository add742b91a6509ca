"""The HTML report: self-contained, escaped, charts drawn, drill-down working in Chromium."""

from __future__ import annotations

import json
import re
from html.parser import HTMLParser
from pathlib import Path
from typing import Any

import pytest
import yaml

from simulator.gate import judge, rubric_from_dict, to_json
from simulator.reports import render_html, report_json, write_report
from simulator.reports.data import outcomes_of
from simulator.reports.html import embed_json

from ._browser import CHROMIUM, chromium_page
from ._fixture import (
    HOSTILE_CALL_IDX,
    HOSTILE_PACK,
    SCRIPT_PAYLOAD,
    build_run,
)

EXAMPLE_RUBRIC = Path(__file__).resolve().parents[2] / "examples" / "rubric.yaml"
CHARTS = ("cdf", "over-time", "by-pack", "by-profile", "accuracy-by-wer", "cost")
needs_chromium = pytest.mark.skipif(
    not CHROMIUM.exists(),
    reason="/usr/bin/chromium absent: apt-get install -y chromium (the browser tests need it)",
)


class _Tags(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.tags: list[tuple[str, list[tuple[str, str | None]]]] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.tags.append((tag, attrs))


def _tags(html: str) -> list[tuple[str, list[tuple[str, str | None]]]]:
    p = _Tags()
    p.feed(html)
    return p.tags


def _gate(base: Path, cand: Path, allow_mismatch: bool = False) -> dict[str, Any]:
    data = yaml.safe_load(EXAMPLE_RUBRIC.read_text())
    data.update(bootstrap_resamples=200, min_calls_per_arm=5, min_missing_record_calls=3)
    data.pop("guards", None)
    rubric = rubric_from_dict(data, sha256="a" * 64)
    from simulator.storage.store import RunStore

    metas = []
    for d in (base, cand):
        s = RunStore(d)
        metas.append(s.meta())
        s.close()
    result = judge(outcomes_of(base), outcomes_of(cand), rubric, metas[0], metas[1],
                   allow_mismatch=allow_mismatch)
    return to_json(result)


@pytest.fixture
def run(tmp_path: Path) -> Path:
    return build_run(tmp_path / "run-cand")


def test_report_needs_nothing_from_the_network(run: Path) -> None:
    html = render_html(run)
    for tag, attrs in _tags(html):
        assert tag not in ("link", "iframe", "img", "object", "embed"), tag
        for name, value in attrs:
            assert name != "src", (tag, value)
            assert not name.startswith("on"), (tag, name)
            if name == "href":
                assert (value or "").startswith("#"), value
    assert "@import" not in html and "url(" not in html
    csp = [dict(a).get("content") for t, a in _tags(html)
           if t == "meta" and dict(a).get("http-equiv") == "Content-Security-Policy"]
    assert csp and "default-src 'none'" in (csp[0] or "")


def test_hostile_strings_stay_text_in_the_html(run: Path) -> None:
    html = render_html(run)
    assert SCRIPT_PAYLOAD not in html          # neither raw in markup nor in the JSON blob
    assert 'onmouseover="' not in html
    assert "javascript:" not in [v for _, a in _tags(html) for _, v in a]
    # The hostile vertical name is shown (escaped) in table cells and chart labels.
    assert "salon&quot; onmouseover=&quot;window.__pwned=2" in html
    blob = html.split('id="callsim-data">', 1)[1].split("</script>", 1)[0]
    assert "<" not in blob and ">" not in blob
    data = json.loads(blob)
    assert SCRIPT_PAYLOAD in data["calls_detail"][str(HOSTILE_CALL_IDX)]["transcript"]["agent"][1]


def test_embed_json_cannot_close_the_script_element() -> None:
    raw = embed_json({"t": "</script><!-- & \u2028", "n": float("nan")})
    assert "<" not in raw and ">" not in raw and "&" not in raw
    assert json.loads(raw) == {"t": "</script><!-- & \u2028", "n": None}


def test_partial_run_renders_with_what_was_stored(tmp_path: Path) -> None:
    run = build_run(tmp_path / "run-partial", calls=20, partial=True)
    html = render_html(run)
    assert "Partial run: 20 of 26 calls completed" in html
    assert "first_byte_timeout" in html          # failed calls listed with their error
    assert "<b>Loop lag:</b> not recorded" in html  # killed before the verdict was written
    data = report_json(run)
    assert data["summary"]["calls"]["failed"] == 4
    assert data["meta"]["status"] == "running"
    assert len(data["calls"]) == 20 and "calls_detail" not in data
    json.dumps(data)   # JSON-serialisable as is


def test_report_json_numbers_match_the_gate(run: Path) -> None:
    from simulator.metrics.numbers import gate_numbers

    data = report_json(run)
    assert data["numbers"] == pytest.approx(gate_numbers(outcomes_of(run)))
    buckets = {b["label"]: b for b in data["accuracy_by_wer"]["buckets"]}
    assert sum(b["calls"] for b in buckets.values()) == 24
    assert data["faults"]["kinds"] and data["faults"]["total"] == sum(
        k["count"] for k in data["faults"]["kinds"])
    assert {g["name"] for g in data["latency"]["by_pack"]} == {"healthcare", HOSTILE_PACK}


def test_baseline_and_mismatch_are_shown(tmp_path: Path) -> None:
    base = build_run(tmp_path / "run-base", seed=5, profile="noisy")
    cand = build_run(tmp_path / "run-cand", seed=6, ttft_scale=1.5)
    html = render_html(cand, baseline_dir=base)
    assert 'id="mismatch"' in html and "profile differs" in html
    assert ">baseline</th>" in html
    gate = _gate(base, cand, allow_mismatch=True)
    html = render_html(cand, baseline_dir=base, gate=gate)
    assert 'id="verdict"' in html and gate["verdict"] in html
    assert "profile differs" in html


def test_write_report_writes_one_file(run: Path, tmp_path: Path) -> None:
    out = write_report(run, tmp_path / "out" / "report.html")
    assert out.read_text(encoding="utf-8").startswith("<!DOCTYPE html>")


_CHART_CHECK = """
(() => {
  const out = {};
  for (const kind of %s) {
    const svg = document.querySelector('svg[data-chart="' + kind + '"]');
    if (!svg) { out[kind] = "missing"; continue; }
    const marks = [...svg.querySelectorAll("path.series, rect.bar")].filter(m => {
      const b = m.getBBox(); return b.width > 0 && b.height > 0;
    });
    const box = svg.getBoundingClientRect();
    out[kind] = (box.width > 100 && box.height > 100) ? marks.length : "no size";
  }
  return out;
})()
"""

_NO_HANDLERS = """
[...document.querySelectorAll("*")].flatMap(el => [...el.attributes]
  .filter(a => a.name.startsWith("on") || /^\\s*javascript:/i.test(a.value))
  .map(a => el.tagName + " " + a.name))
"""


@needs_chromium
async def test_report_in_chromium_renders_and_runs_nothing_injected(run: Path,
                                                                   tmp_path: Path) -> None:
    out = write_report(run, tmp_path / "report.html")
    async with chromium_page() as page:
        await page.goto(out.as_uri())
        assert await page.eval("document.body.getAttribute('data-ready')") == "1"
        charts = await page.eval(_CHART_CHECK % json.dumps(CHARTS))
        assert all(isinstance(v, int) and v > 0 for v in charts.values()), charts
        # Open the hostile call and hover everything: nothing injected may run.
        await page.eval(f"document.querySelector('tr[data-idx=\"{HOSTILE_CALL_IDX}\"]').click()")
        await page.eval("""[...document.querySelectorAll('*')].forEach(el =>
            el.dispatchEvent(new MouseEvent('mouseover', {bubbles: true})))""")
        drill = await page.eval("document.getElementById('drill').textContent")
        assert SCRIPT_PAYLOAD in drill                       # shown as text
        assert 'onmouseover="alert(1)' in drill
        assert "javascript:window.__pwned=4" in drill
        assert await page.eval("typeof window.__pwned") == "undefined"
        assert await page.eval("document.querySelectorAll('#drill script').length") == 0
        assert await page.eval(_NO_HANDLERS) == []
        assert await page.eval("document.querySelectorAll('a[href^=\"javascript\"]').length") == 0
        # The clean vs degraded caller text: the ASR-changed words are marked.
        marks = await page.eval("[...document.querySelectorAll('#drill mark')]"
                                ".map(m => m.textContent)")
        assert "apointment" in marks
        # The filter narrows the table to calls with problems.
        shown = await page.eval("""(() => { const c = document.getElementById('problems-only');
            c.click(); return [...document.querySelectorAll('#calls-table tbody tr')]
            .filter(r => r.style.display !== 'none').length; })()""")
        assert 0 < shown < 24
        assert page.dialogs == []
        assert page.errors == []


@needs_chromium
async def test_partial_candidate_with_gate_in_chromium(tmp_path: Path) -> None:
    base = build_run(tmp_path / "run-base", seed=5, profile="noisy")
    cand = build_run(tmp_path / "run-cand", calls=20, partial=True, seed=6)
    gate = _gate(base, cand, allow_mismatch=True)
    out = write_report(cand, tmp_path / "report.html", baseline_dir=base, gate=gate)
    async with chromium_page() as page:
        await page.goto(out.as_uri())
        assert await page.eval("document.body.getAttribute('data-ready')") == "1"
        charts = await page.eval(_CHART_CHECK % json.dumps(CHARTS))
        assert all(isinstance(v, int) and v > 0 for v in charts.values()), charts
        bg = await page.eval("getComputedStyle(document.getElementById('mismatch'))"
                             ".backgroundColor")
        assert bg == "rgb(194, 59, 78)"            # the mismatch flag is red
        # A failed call with no exchanges opens without errors.
        await page.eval("document.querySelector('tr[data-idx=\"4\"]').click()")
        assert "No exchanges recorded" in await page.eval(
            "document.getElementById('drill').textContent")
        assert page.errors == []


def test_big_runs_keep_problem_transcripts_first(run: Path) -> None:
    html = render_html(run, max_transcripts=3)
    data = json.loads(html.split('id="callsim-data">', 1)[1].split("</script>", 1)[0])
    problems = [str(c["idx"]) for c in data["calls"] if c["problems"]]
    assert len(data["calls"]) == 24                      # every call stays in the table
    assert sorted(data["calls_detail"]) == sorted(problems[:3], key=str)


HOSTILE_LABEL = '<script>window.__pwned=6</script>" onmouseover="window.__pwned=7'


def _routing(base: Path, cand: Path) -> dict[str, Any]:
    from simulator.gate import compare, compare_to_json

    data = yaml.safe_load(EXAMPLE_RUBRIC.read_text())
    data.update(bootstrap_resamples=200, min_calls_per_segment=10)
    res = compare({"fast": outcomes_of(base), HOSTILE_LABEL: outcomes_of(cand)},
                  rubric_from_dict(data))
    return compare_to_json(res, run_ids={"fast": base.name, HOSTILE_LABEL: cand.name})


def test_routing_table_is_in_the_report_with_labels_escaped(tmp_path: Path) -> None:
    base = build_run(tmp_path / "run-base", calls=40, seed=5)
    cand = build_run(tmp_path / "run-cand", calls=40, seed=6, ttft_scale=3.0)
    routing = _routing(base, cand)
    from simulator.storage.store import RunStore

    store = RunStore(cand)
    store.set_meta(label="prompt v2")
    store.close()
    html = render_html(cand, baseline_dir=base, routing=routing)
    assert "<b>label</b> prompt v2" in html
    assert '<section id="routing">' in html and '<a href="#routing">' in html
    rows = re.findall(r'<tr data-segment="([^"]*)">', html)
    assert rows == [r["segment"].replace('"', "&quot;") for r in routing["routes"]]
    assert len(rows) >= 3                      # all calls and the two verticals
    assert "window.__pwned=6" in html and "<script>window.__pwned=6" not in html
    assert 'onmouseover="window' not in html
    assert "Holm" in html and base.name in html and cand.name in html
    assert 'id="routing"' not in render_html(cand)    # one run: no routing table


@needs_chromium
async def test_routing_table_in_chromium(tmp_path: Path) -> None:
    base = build_run(tmp_path / "run-base", calls=40, seed=5)
    cand = build_run(tmp_path / "run-cand", calls=40, seed=6, ttft_scale=3.0)
    out = write_report(cand, tmp_path / "report.html", baseline_dir=base,
                       routing=_routing(base, cand))
    async with chromium_page() as page:
        await page.goto(out.as_uri())
        cells = await page.eval("[...document.querySelectorAll('#routing tr[data-segment] "
                                "td.winner')].map(td => td.textContent)")
        assert cells and all(c == "fast" or c.startswith("no winner") for c in cells), cells
        assert await page.eval("typeof window.__pwned") == "undefined"
        assert await page.eval(_NO_HANDLERS) == []
        assert page.errors == []
