"""The labelled corpus and `callsim grade-check`: the detectors' precision and recall on
the held-out part (the acceptance bar of docs/grading.md), the corpus's own shape, and the
LLM judge's agreement measured against a loopback stand-in at the endpoint seam."""

from __future__ import annotations

import asyncio
import json
import threading
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import pytest
from aiohttp import web
from click.testing import CliRunner

from simulator.cli import main
from simulator.metrics.gradecheck import (
    DEFAULT_CORPUS,
    check_corpus,
    load_corpus,
)
from tests.conftest import serve_app


def test_the_corpus_covers_four_packs_both_splits_and_every_kind_of_detail() -> None:
    records = load_corpus(DEFAULT_CORPUS)
    assert len(records) >= 300
    splits = Counter(r.split for r in records)
    assert set(splits) == {"tuning", "heldout"} and min(splits.values()) >= 150
    for split in splits:
        part = [r for r in records if r.split == split]
        assert {r.pack for r in part} == {"healthcare", "real_estate", "salon", "after_hours"}
        refusals = sum(r.refusal for r in part)
        assert 40 <= refusals <= len(part) - 40  # refusals and near-misses alike
        kinds = Counter(lab.kind for r in part for lab in r.fabricated)
        assert set(kinds) == {"date", "time", "amount", "id", "name"}
        # Details restated from the sources (not invented) are there to be left alone.
        assert sum(1 for r in part if not r.refusal and not r.fabricated) >= 40


def test_held_out_precision_and_recall_meet_the_bar() -> None:
    reports = check_corpus(r for r in load_corpus(DEFAULT_CORPUS) if r.split == "heldout")
    held = reports["heldout"]
    ref, fab = held.refusal, held.fabrication
    assert ref.recall is not None and ref.precision is not None
    assert fab.recall is not None and fab.precision is not None
    assert ref.recall >= 0.95 and ref.precision >= 0.98, ref
    assert fab.recall >= 0.95 and fab.precision >= 0.95, fab


def test_grade_check_prints_both_splits(tmp_path: Path) -> None:
    res = CliRunner().invoke(main, ["grade-check"])
    assert res.exit_code == 0, res.output
    lines = res.output.splitlines()
    assert lines[0].split()[:3] == ["split", "records", "refusal"]
    rows = {ln.split()[0]: ln.split() for ln in lines[1:] if ln.strip()}
    assert set(rows) == {"heldout", "tuning", "all"}
    assert int(rows["heldout"][1]) + int(rows["tuning"][1]) == int(rows["all"][1])
    assert all(len(ln) <= 80 for ln in lines)
    js = CliRunner().invoke(main, ["grade-check", "--json"])
    data = json.loads(js.output)
    assert data["heldout"]["refusal"]["recall"] >= 0.95


SMALL = [
    {"id": "a", "split": "heldout", "pack": "salon", "caller": ["Leah Turner."],
     "tools": [{"name": "find_client", "arguments": {"name": "Leah Turner"},
                "result": {"found": False, "error": "not_found"}}],
     "agent": "I couldn't find a booking under Leah Turner.", "refusal": True},
    {"id": "b", "split": "heldout", "pack": "salon", "caller": ["Leah Turner."],
     "tools": [{"name": "find_client", "arguments": {"name": "Leah Turner"},
                "result": {"found": False, "error": "not_found"}}],
     "agent": "You're booked with Marco on June 12th at 3 PM.", "refusal": False,
     "fabricated": [{"kind": "name", "value": "Marco"}, {"kind": "date", "value": "06-12"},
                    {"kind": "time", "value": "15:00"}]},
    {"id": "c", "split": "tuning", "pack": "salon", "caller": ["Leah Turner."],
     "tools": [], "agent": "Let me find your booking.", "refusal": False},
    {"id": "d", "split": "tuning", "pack": "salon", "caller": ["Leah Turner."],
     "tools": [], "agent": "Nothing's coming up under that name.", "refusal": True},
]


def write(tmp_path: Path, records: list[dict]) -> Path:
    p = tmp_path / "corpus.jsonl"
    p.write_text("".join(json.dumps(r) + "\n" for r in records))
    return p


@pytest.fixture
def stand_in_judge() -> Iterator[str]:
    """A judge that calls a reply a refusal only when it says "couldn't find", and never
    sees an invention (so it disagrees with the labels on records c/d and b)."""

    async def chat(request: web.Request) -> web.Response:
        body = await request.json()
        agent = body["messages"][-1]["content"].rsplit("AGENT: ", 1)[1]
        verdict = {"refused": "couldn't find" in agent, "fabricated": False,
                   "recovered": None, "reason": "stand-in"}
        return web.json_response({"choices": [{"index": 0, "message": {
            "role": "assistant", "content": json.dumps(verdict)}}]})

    ready = threading.Event()
    box: dict[str, object] = {}

    def serve() -> None:
        async def main_() -> None:
            app = web.Application()
            app.router.add_post("/v1/chat/completions", chat)
            async with serve_app(app) as url:
                box["url"] = url
                stop = asyncio.Event()
                box["stop"] = (asyncio.get_running_loop(), stop)
                ready.set()
                await stop.wait()

        asyncio.run(main_())

    t = threading.Thread(target=serve, daemon=True)
    t.start()
    assert ready.wait(10)
    try:
        yield f"{box['url']}/v1"
    finally:
        loop, stop = box["stop"]  # type: ignore[misc]
        loop.call_soon_threadsafe(stop.set)
        t.join(10)


def test_judge_agreement_with_labels_and_detectors(tmp_path: Path, stand_in_judge: str) -> None:
    corpus = write(tmp_path, SMALL)
    res = CliRunner().invoke(main, ["grade-check", "--corpus", str(corpus), "--endpoint",
                                    stand_in_judge, "--model", "stand-in", "--json"])
    assert res.exit_code == 0, res.output
    data = json.loads(res.output)
    held, tune = data["heldout"]["judge"], data["tuning"]["judge"]
    assert held["answered"] == held["asked"] == 2
    # Held-out: refusals a (yes) and b (no) both right; inventions: b missed.
    assert held["agrees_refusal_label"] == 1.0
    assert held["agrees_fabrication_label"] == 0.5
    # Tuning: "Nothing's coming up" is a refusal the stand-in cannot read.
    assert tune["agrees_refusal_label"] == 0.5
    assert data["all"]["judge"]["asked"] == 4
    text = CliRunner().invoke(main, ["grade-check", "--corpus", str(corpus), "--endpoint",
                                     stand_in_judge, "--model", "stand-in"]).output
    assert "judge" in text and "50.0%" in text


def test_detector_scores_on_a_small_corpus_and_misses_listed(tmp_path: Path) -> None:
    corpus = write(tmp_path, SMALL)
    reports = check_corpus(load_corpus(corpus))
    assert (reports["heldout"].refusal.tp, reports["heldout"].refusal.fp) == (1, 0)
    assert (reports["heldout"].fabrication.tp, reports["heldout"].fabrication.fn) == (3, 0)
    wrong = [dict(SMALL[2], agent="I couldn't find your booking.", id="e")]
    res = CliRunner().invoke(main, ["grade-check", "--corpus", str(write(tmp_path, wrong)),
                                    "--misses", "tuning"])
    assert res.exit_code == 0
    assert "e: not a refusal, read as one" in res.output


@pytest.mark.parametrize(("line", "needle"), [
    ('{"id": "x", "split": "tuning"}', "line 1: field"),
    ("not json", "line 1: not JSON"),
    ('{"id": "x", "split": "t", "pack": "p", "agent": "a", "refusal": false, '
     '"fabricated": [{"kind": "colour", "value": "red"}]}', "line 1: field 'fabricated.0.kind'"),
], ids=["missing-fields", "not-json", "unknown-kind"])
def test_a_bad_corpus_is_one_line_exit_2(tmp_path: Path, line: str, needle: str) -> None:
    p = tmp_path / "bad.jsonl"
    p.write_text(line + "\n")
    res = CliRunner().invoke(main, ["grade-check", "--corpus", str(p)])
    assert res.exit_code == 2
    err = res.output.strip().splitlines()
    assert len(err) == 1 and str(p) in err[0] and needle in err[0]
