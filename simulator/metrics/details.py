"""Record details (dates, times, amounts, IDs) found in free text, in canonical form.

The fabrication grader compares the details an agent asserts with those present in tool
results and caller utterances. Canonical forms: dates ``MM-DD`` (the year is often left
unsaid), times ``HH:MM`` 24 h, amounts as cents, IDs upper-case alphanumerics.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

_MONTHS = {
    m: i + 1
    for i, m in enumerate(
        "january february march april may june july august september october november december"
        .split()
    )
}
_MONTHS.update({k[:3]: v for k, v in list(_MONTHS.items())})
_MON = (
    r"(?P<mon>jan(?:uary)?|feb(?:ruary)?|mar(?:ch)?|apr(?:il)?|may|june?|july?|aug(?:ust)?"
    r"|sep(?:t(?:ember)?)?|oct(?:ober)?|nov(?:ember)?|dec(?:ember)?)"
)
_DAY = r"(?P<day>[0-3]?\d)(?:st|nd|rd|th)?"
_DATE_PATTERNS = [
    re.compile(rf"\b{_MON}\.?\s+(?:the\s+)?{_DAY}\b", re.I),
    re.compile(rf"\b(?:the\s+)?{_DAY}\s+(?:of\s+)?{_MON}\b", re.I),
    re.compile(r"\b(?P<y>\d{4})-(?P<m>\d{2})-(?P<d>\d{2})\b"),
    re.compile(r"\b(?P<m>[01]?\d)/(?P<d>[0-3]?\d)(?:/(?P<y>\d{2,4}))?\b"),
]
_TIME = re.compile(
    r"\b(?P<h>[012]?\d)(?::(?P<mi>[0-5]\d))?\s*(?P<ap>a\.?m\.?|p\.?m\.?)(?![a-z])"
    r"|\b(?P<h2>[012]?\d):(?P<mi2>[0-5]\d)\b",
    re.I,
)
_MONEY = re.compile(
    r"\$\s?(?P<a>\d[\d,]*(?:\.\d{1,2})?)|\b(?P<b>\d[\d,]*(?:\.\d{1,2})?)\s+dollars\b", re.I
)
_ID = re.compile(r"\b(?=[A-Z0-9-]*\d)(?=[A-Z0-9-]*[A-Z])[A-Z][A-Z0-9]*-?[A-Z0-9]*\d[A-Z0-9]*\b")
_NUMBER = re.compile(r"\b\d[\d,]*(?:\.\d+)?\b")


@dataclass(frozen=True, slots=True)
class Detail:
    kind: str       # date | time | amount | id
    value: str      # canonical form
    text: str       # as written


def _canon_amount(raw: str) -> str:
    return f"{round(float(raw.replace(',', '')) * 100)}"


def extract_details(text: str) -> list[Detail]:
    """Every date, time, amount and ID asserted in ``text`` (canonical, in order found)."""
    out: list[Detail] = []
    for pat in _DATE_PATTERNS:
        for m in pat.finditer(text):
            g = m.groupdict()
            if g.get("mon"):
                month, day = _MONTHS[g["mon"].lower()[:3]], int(g["day"])
            else:
                month, day = int(g["m"]), int(g["d"])
            if 1 <= month <= 12 and 1 <= day <= 31:
                out.append(Detail("date", f"{month:02d}-{day:02d}", m.group(0)))
    for m in _TIME.finditer(text):
        if m.group("h") is not None:
            h, mi = int(m.group("h")), int(m.group("mi") or 0)
            pm = m.group("ap").lower().startswith("p")
            if h == 12:
                h = 0
            h += 12 if pm else 0
        else:
            h, mi = int(m.group("h2")), int(m.group("mi2"))
        if 0 <= h < 24:
            out.append(Detail("time", f"{h:02d}:{mi:02d}", m.group(0)))
    for m in _MONEY.finditer(text):
        raw = m.group("a") or m.group("b")
        out.append(Detail("amount", _canon_amount(raw), m.group(0)))
    for m in _ID.finditer(text):
        out.append(Detail("id", re.sub(r"[^A-Z0-9]", "", m.group(0)), m.group(0)))
    return out


def known_values(texts: list[str]) -> set[tuple[str, str]]:
    """Canonical (kind, value) pairs present in source texts (tool results, caller turns).

    Sources are read generously: every bare number also counts as an amount, every
    ``HH:MM`` as a time in both halves of the day, so a detail restated from a source in
    another form is not called a fabrication.
    """
    known: set[tuple[str, str]] = set()
    for t in texts:
        for d in extract_details(t):
            known.add((d.kind, d.value))
            if d.kind == "time":
                h, mi = d.value.split(":")
                known.add(("time", f"{(int(h) + 12) % 24:02d}:{mi}"))
        for m in _NUMBER.finditer(t):
            try:
                known.add(("amount", _canon_amount(m.group(0))))
            except ValueError:
                continue
        for m in re.finditer(r"[A-Za-z0-9-]+", t):
            known.add(("id", re.sub(r"[^A-Z0-9]", "", m.group(0).upper())))
    return known


def fabricated_details(agent_texts: list[str], sources: list[str]) -> list[Detail]:
    """Details the agent asserted that appear in no source text."""
    known = known_values(sources)
    return [d for t in agent_texts for d in extract_details(t) if (d.kind, d.value) not in known]
