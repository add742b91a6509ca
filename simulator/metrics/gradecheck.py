"""How well the deterministic grader reads real agent phrasing, measured on a labelled
corpus (``tests/data/grading_corpus.jsonl``; format in docs/grading.md).

Each record is one agent utterance with the context it was said in (caller turns, tool
calls and results) and two labels: is it a refusal, and which record details in it no
source holds. :func:`check_corpus` scores the refusal and fabrication detectors against
them per split (tuning, held-out) and :func:`judge_corpus` asks an LLM judge the same two
questions, for its agreement with the labels and with the detectors.
"""

from __future__ import annotations

import asyncio
import json
import re
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from simulator.errors import InputError, format_validation_error
from simulator.metrics.details import fabricated_details
from simulator.metrics.grading import detail_sources
from simulator.metrics.refusal import says_not_found


def _default_corpus() -> Path:
    """The corpus of the checkout this package runs from (the nearest parent folder
    holding ``tests/data/grading_corpus.jsonl``; the path where it would be otherwise)."""
    rel = Path("tests") / "data" / "grading_corpus.jsonl"
    here = Path(__file__).resolve()
    for parent in here.parents:
        if (parent / rel).is_file():
            return parent / rel
    return here.parents[2] / rel


DEFAULT_CORPUS = _default_corpus()
KINDS = ("date", "time", "amount", "id", "name")


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class ToolEntry(_Model):
    name: str
    arguments: dict[str, Any] = Field(default_factory=dict)
    result: Any = None


class Label(_Model):
    kind: Literal["date", "time", "amount", "id", "name"]
    value: str = Field(min_length=1)
    text: str = ""


class CorpusRecord(_Model):
    """One labelled utterance. ``fabricated`` lists the details (canonical values, see
    docs/grading.md) the utterance asserts that neither ``caller`` nor ``tools`` hold."""

    id: str
    split: str = Field(min_length=1)
    pack: str
    caller: list[str] = Field(default_factory=list)
    tools: list[ToolEntry] = Field(default_factory=list)
    agent: str
    refusal: bool
    fabricated: list[Label] = Field(default_factory=list)

    def transcript(self) -> dict[str, Any]:
        """The record in the shape the driver stores a call's transcript."""
        return {
            "caller": [{"text": t} for t in self.caller],
            "agent": [self.agent],
            "tool_calls": [
                {"name": t.name, "arguments": t.arguments,
                 "raw": json.dumps(t.arguments, separators=(", ", ": ")),
                 "result": t.result if isinstance(t.result, str) else json.dumps(t.result)}
                for t in self.tools
            ],
        }


def load_corpus(path: Path) -> list[CorpusRecord]:
    """Records of a JSONL corpus. Raises :class:`InputError` naming the file and line of
    the first record that does not validate, or a repeated id."""
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except OSError as e:
        raise InputError(f"{path}: cannot read the corpus ({e.strerror or e})") from None
    out: list[CorpusRecord] = []
    seen: set[str] = set()
    for n, line in enumerate(lines, 1):
        if not line.strip():
            continue
        try:
            rec = CorpusRecord.model_validate(json.loads(line))
        except json.JSONDecodeError as e:
            raise InputError(f"{path} line {n}: not JSON ({e.msg})") from None
        except ValidationError as e:
            raise InputError(format_validation_error(f"{path} line {n}", e)) from None
        if rec.id in seen:
            raise InputError(f"{path} line {n}: id {rec.id!r} appears twice")
        seen.add(rec.id)
        out.append(rec)
    if not out:
        raise InputError(f"{path}: the corpus holds no records")
    return out


@dataclass(frozen=True)
class Score:
    tp: int
    fp: int
    fn: int

    @property
    def precision(self) -> float | None:
        return self.tp / (self.tp + self.fp) if self.tp + self.fp else None

    @property
    def recall(self) -> float | None:
        return self.tp / (self.tp + self.fn) if self.tp + self.fn else None

    def to_dict(self) -> dict[str, Any]:
        return {"tp": self.tp, "fp": self.fp, "fn": self.fn,
                "precision": self.precision, "recall": self.recall}


@dataclass
class SplitReport:
    split: str
    records: int = 0
    refusal: Score = Score(0, 0, 0)
    fabrication: Score = Score(0, 0, 0)
    # (record id, what was missed or invented) for reading, not for tuning held-out data.
    misses: list[tuple[str, str]] = field(default_factory=list)
    judge: dict[str, Any] | None = None

    def to_dict(self) -> dict[str, Any]:
        return {"split": self.split, "records": self.records,
                "refusal": self.refusal.to_dict(), "fabrication": self.fabrication.to_dict(),
                "judge": self.judge}


def _same(kind: str, predicted: str, label: str) -> bool:
    if kind == "name":
        p, lab = set(predicted.split()), set(label.split())
        return bool(p) and bool(lab) and (p <= lab or lab <= p)
    return predicted == label


def _label_value(label: Label) -> str:
    """A label's value in the detectors' canonical form (amounts: dollars -> cents;
    IDs: upper-case alphanumerics; names: lower case without a title)."""
    v = label.value.strip()
    if label.kind == "amount":
        return f"{round(float(v.replace(',', '').replace('$', '')) * 100)}"
    if label.kind == "id":
        return re.sub(r"[^A-Z0-9]", "", v.upper())
    if label.kind == "name":
        words = [w for w in re.findall(r"[a-z'-]+", v.lower())
                 if w not in ("dr", "doctor", "mr", "mrs", "ms", "miss")]
        return " ".join(words)
    return v


def grade_record(rec: CorpusRecord) -> tuple[bool, list[tuple[str, str, str]]]:
    """The detectors' reading of one record: (refusal?, fabricated (kind, value, text))."""
    refused = says_not_found(rec.agent)
    fab = fabricated_details([rec.agent], detail_sources(rec.transcript()))
    seen: set[tuple[str, str]] = set()
    out = []
    for d in fab:
        if (d.kind, d.value) not in seen:
            seen.add((d.kind, d.value))
            out.append((d.kind, d.value, d.text))
    return refused, out


def check_corpus(records: Iterable[CorpusRecord]) -> dict[str, SplitReport]:
    """Precision and recall of both detectors per split (and over all records, ``all``).

    Refusal is scored per utterance; fabrication per detail (a detail is a hit when the
    detector reports the labelled kind and value)."""
    counts: dict[str, list[int]] = {}
    reports: dict[str, SplitReport] = {}
    for rec in records:
        refused, predicted = grade_record(rec)
        labels = [(lab.kind, _label_value(lab), lab.text) for lab in rec.fabricated]
        unmatched = list(labels)
        ftp = 0
        extra: list[tuple[str, str, str]] = []
        for kind, value, text in predicted:
            hit = next((lab for lab in unmatched if lab[0] == kind and _same(kind, value,
                                                                            lab[1])), None)
            if hit is not None:
                unmatched.remove(hit)
                ftp += 1
            else:
                extra.append((kind, value, text))
        for split in (rec.split, "all"):
            rep = reports.setdefault(split, SplitReport(split))
            c = counts.setdefault(split, [0] * 6)
            rep.records += 1
            c[0] += refused and rec.refusal
            c[1] += refused and not rec.refusal
            c[2] += rec.refusal and not refused
            c[3] += ftp
            c[4] += len(extra)
            c[5] += len(unmatched)
            if split == "all":
                continue
            if refused != rec.refusal:
                what = "refusal missed" if rec.refusal else "not a refusal, read as one"
                rep.misses.append((rec.id, f"{what}: {rec.agent}"))
            for kind, value, text in extra:
                rep.misses.append((rec.id, f"{kind} {value} ({text!r}) read as invented"))
            for kind, value, text in unmatched:
                rep.misses.append((rec.id, f"invented {kind} {value} ({text!r}) missed"))
    for split, rep in reports.items():
        c = counts[split]
        rep.refusal = Score(c[0], c[1], c[2])
        rep.fabrication = Score(c[3], c[4], c[5])
    order = sorted(reports, key=lambda s: (s == "all", s))
    return {s: reports[s] for s in order}


# ---------------------------------------------------------------------------- LLM judge


def judge_text(rec: CorpusRecord) -> str:
    """The record as the judge reads it: caller turns, tool calls, then the agent's reply."""
    lines = [f"CALLER: {t}" for t in rec.caller]
    for t in rec.tools:
        lines.append(f"TOOL {t.name}({json.dumps(t.arguments)}) -> "
                     f"{(t.result if isinstance(t.result, str) else json.dumps(t.result))[:500]}")
    lines.append(f"AGENT: {rec.agent}")
    return "\n".join(lines)


async def judge_corpus(records: list[CorpusRecord], endpoint: str, model: str, *,
                       api_key: str | None = None, concurrency: int = 4,
                       timeout_s: float = 60.0) -> list[dict[str, Any] | None]:
    """The judge's verdict on each record (None where it gave no readable verdict), with
    the system prompt ``callsim judge`` uses on runs."""
    from simulator.metrics.llm_judge import ask_judge

    return await ask_judge([judge_text(r) for r in records], endpoint, model, api_key=api_key,
                           concurrency=concurrency, timeout_s=timeout_s)


def judge_agreement(records: list[CorpusRecord], verdicts: list[dict[str, Any] | None],
                    reports: dict[str, SplitReport]) -> None:
    """Fill each split's ``judge`` entry: how often the judge agrees with the labels and
    with the detectors on "refused?" and "invented anything?"."""
    tallies: dict[str, dict[str, int]] = {}
    for rec, v in zip(records, verdicts, strict=True):
        refused, fab = grade_record(rec)
        for split in (rec.split, "all"):
            t = tallies.setdefault(split, dict.fromkeys(
                ("asked", "answered", "refusal_label", "refusal_detector",
                 "fabrication_label", "fabrication_detector"), 0))
            t["asked"] += 1
            if v is None:
                continue
            t["answered"] += 1
            judge_ref, judge_fab = bool(v.get("refused")), bool(v.get("fabricated"))
            t["refusal_label"] += judge_ref == rec.refusal
            t["refusal_detector"] += judge_ref == refused
            t["fabrication_label"] += judge_fab == bool(rec.fabricated)
            t["fabrication_detector"] += judge_fab == bool(fab)
    for split, t in tallies.items():
        n = t["answered"]
        reports[split].judge = {
            "asked": t["asked"], "answered": n,
            **{f"agrees_{k}": (t[k] / n if n else None)
               for k in ("refusal_label", "refusal_detector", "fabrication_label",
                         "fabrication_detector")},
        }


def run_check(corpus: Path | None = None, *, endpoint: str | None = None,
              model: str | None = None, api_key: str | None = None,
              concurrency: int = 4) -> dict[str, SplitReport]:
    """Load a corpus, score the detectors and, given an endpoint, the judge."""
    records = load_corpus(corpus or DEFAULT_CORPUS)
    reports = check_corpus(records)
    if endpoint:
        if not model:
            raise InputError("--model: required with --endpoint")
        verdicts = asyncio.run(judge_corpus(records, endpoint, model, api_key=api_key,
                                            concurrency=concurrency))
        judge_agreement(records, verdicts, reports)
    return reports


def render(reports: dict[str, SplitReport], *, misses: str | None = None) -> str:
    """Plain-text table (fits 80 columns), then the misses of split ``misses`` if asked."""

    def pct(x: float | None) -> str:
        return "   -  " if x is None else f"{100 * x:5.1f}%"

    lines = [f"{'split':<10}{'records':>8}  {'refusal P':>9} {'R':>6}   "
             f"{'fabricated P':>12} {'R':>6}  {'details':>7}"]
    for rep in reports.values():
        f = rep.fabrication
        lines.append(
            f"{rep.split:<10}{rep.records:>8}  {pct(rep.refusal.precision):>9} "
            f"{pct(rep.refusal.recall):>6}   {pct(f.precision):>12} {pct(f.recall):>6}"
            f"  {f.tp + f.fn:>7}")
    judged = [r for r in reports.values() if r.judge]
    if judged:
        lines.append("")
        lines.append(f"{'judge':<10}{'answered':>9}  {'refusal: label':>14} {'detector':>9}"
                     f"  {'fabricated: label':>17} {'detector':>9}")
        for rep in judged:
            j = rep.judge or {}
            lines.append(
                f"{rep.split:<10}{j['answered']:>4}/{j['asked']:<4}  "
                f"{pct(j['agrees_refusal_label']):>14} {pct(j['agrees_refusal_detector']):>9}"
                f"  {pct(j['agrees_fabrication_label']):>17}"
                f" {pct(j['agrees_fabrication_detector']):>9}")
    if misses is not None:
        rep2 = reports.get(misses)
        if rep2 is None:
            raise InputError(f"--misses: no split {misses!r} (have: "
                             f"{', '.join(s for s in reports if s != 'all')})")
        lines.append("")
        lines.append(f"misses in {misses}: {len(rep2.misses)}")
        lines += [f"  {rid}: {what}" for rid, what in rep2.misses]
    return "\n".join(lines)
