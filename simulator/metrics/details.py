"""Record details (dates, times, amounts, IDs, names) found in free text, in canonical form.

The fabrication grader compares the details an agent asserts with those present in tool
results and caller utterances. Dates, times and amounts are read by the slot parsers of
:mod:`simulator.slots`, so "the seventeenth of June", "June 17th" and "2025-06-17" are one
date and "half past two" is "2:30 PM". Canonical forms: dates ``MM-DD`` (the year is often
left unsaid; weekdays and bare days of the month resolve to their next occurrence after
the reference date), times ``HH:MM`` 24 h (hours 1-7 without AM/PM are afternoon),
amounts as cents, IDs upper-case alphanumerics, names lower-case without a title
("Dr. Patel" -> "patel"). docs/grading.md says what counts and why.
"""

from __future__ import annotations

import datetime as _dt
import functools
import json
import re
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from simulator.slots import (
    REFERENCE_DATE,
    WEEKDAY_WORDS,
    WEEKDAYS,
    find_amounts,
    find_dates,
    find_times,
    fold,
    ordinal_words,
)


@dataclass(frozen=True, slots=True)
class Detail:
    kind: str       # date | time | amount | id | name
    value: str      # canonical form
    text: str       # as written
    # A weaker key for a date said without its month: "wd:fri" ("on Friday"), "dom:17"
    # ("the 17th"). Such a date is not invented when any source date shares the key.
    loose: str = ""


# ------------------------------------------------------------------------------ dates

_WD = [w.lower() for w in WEEKDAYS]
_WEEKDAY_RE = re.compile(
    r"\b(?:(?P<rel>next|this|coming|this coming|this upcoming)\s+)?"
    r"(?P<wd>monday|tuesday|wednesday|thursday|friday|saturday|sunday)\b(?!s\b|'s\b)",
    re.I,
)
_ORD_WORDS = sorted((ordinal_words(n) for n in range(1, 32)), key=len, reverse=True)
_DAY_ONLY_RE = re.compile(
    r"\bthe\s+(?P<day>(?:[12]?\d|3[01])(?:st|nd|rd|th)|"
    + "|".join(w.replace("-", "[- ]") for w in _ORD_WORDS)
    + r")\b(?:\s+(?P<next>[a-z]+))?",
    re.I,
)
_ORD_VALUE = {w: n for n, w in ((n, ordinal_words(n)) for n in range(1, 32))}
# Words that may follow "the 12th" when it is a date ("the 12th at 3", "the 12th instead").
_AFTER_DAY = {
    "at", "and", "or", "instead", "then", "with", "for", "is", "works", "would", "will", "in",
    "if", "but", "so", "around", "by", "to", "from", "through", "until", "that", "which",
    "of",
}


def _next_weekday(name: str, *, strictly_after: _dt.date = REFERENCE_DATE) -> _dt.date:
    want = _WD.index(name.lower())
    d = strictly_after + _dt.timedelta(days=1)
    while d.weekday() != want:
        d += _dt.timedelta(days=1)
    return d


def _next_day_of_month(day: int) -> _dt.date | None:
    d = REFERENCE_DATE
    for _ in range(62):
        if d.day == day:
            return d
        d += _dt.timedelta(days=1)
    return None


def _mmdd(d: _dt.date) -> str:
    return f"{d.month:02d}-{d.day:02d}"


_DAY_AFTER_TOMORROW = re.compile(r"\bday after tomorrow\b", re.I)


def _dates(text: str, taken: list[tuple[int, int]], *, asr: bool) -> list[tuple[int, Detail]]:
    out: list[tuple[int, Detail]] = []
    dated: list[tuple[int, int]] = []  # spans of full dates, which a weekday may lean on

    def free(a: int, b: int) -> bool:
        return not any(a < y and x < b for x, y in taken)

    # A pattern runs only when a word it needs is in the text (looked for first, in C).
    low = fold(text)
    # Before the slot parser's dates, which would read its "tomorrow" alone.
    for m in _DAY_AFTER_TOMORROW.finditer(text) if "day after tomorrow" in low else ():
        if free(*m.span()):
            taken.append(m.span())
            d = REFERENCE_DATE + _dt.timedelta(days=2)
            out.append((m.start(), Detail("date", _mmdd(d), m.group(0))))
    for a, b, d in find_dates(text, future=True, asr=asr):
        raw = text[a:b]
        if re.fullmatch(r"\d{1,2}[.\-]\d{1,2}", raw.strip()):
            continue  # "1.2 million", "3-2": not dates
        if free(a, b):
            taken.append((a, b))
            dated.append((a, b))
            out.append((a, Detail("date", _mmdd(d), raw.strip())))
    for m in _WEEKDAY_RE.finditer(text) if any(w in low for w in WEEKDAY_WORDS) else ():
        a, b = m.span()
        # "Thursday, June 12th" / "Tuesday the 17th": the weekday belongs to that date.
        if not free(a, b) or any(0 <= x - b <= 3 or 0 <= a - y <= 2 for x, y in dated):
            continue
        taken.append((a, b))
        d = _next_weekday(m["wd"])
        out.append((a, Detail("date", _mmdd(d), m.group(0), loose=f"wd:{m['wd'][:3].lower()}")))
    for m in _DAY_ONLY_RE.finditer(text) if "the" in low else ():
        a, b = m.start(), m.end("day")
        if not free(a, b):
            continue
        nxt = (m["next"] or "").lower()
        if nxt and nxt not in _AFTER_DAY:
            continue  # "the first time", "the second booking"
        if nxt == "of":
            continue
        raw = m["day"].lower().replace(" ", "-")
        day = int(re.sub(r"\D", "", raw)) if raw[0].isdigit() else _ORD_VALUE.get(raw)
        d2 = _next_day_of_month(day) if day else None
        if d2 is None:
            continue
        taken.append((a, b))
        out.append((a, Detail("date", _mmdd(d2), text[a:b], loose=f"dom:{d2.day}")))
    return out


# ------------------------------------------------------------------------------ times

_HOUR_WORDS = (
    "one two three four five six seven eight nine ten eleven twelve".split()
)
_HOUR_RE = r"(?:1[0-2]|[1-9]|" + "|".join(_HOUR_WORDS) + ")"
_PERIOD_RE = (
    r"(?P<period>in the morning|in the afternoon|in the evening|at night|tonight"
    r"|this morning|this afternoon|this evening|tomorrow morning|tomorrow afternoon"
    r"|tomorrow evening)"
)
_HOUR_PERIOD = re.compile(rf"\b(?P<h>{_HOUR_RE})(?::(?P<mi>[0-5]\d))?\s+{_PERIOD_RE}\b", re.I)
# "at 2", "around ten", "by 4:30": an hour after a preposition of time.
_AT_HOUR = re.compile(
    rf"\b(?:at|around|by|about|until|till|before|after)\s+(?P<h>{_HOUR_RE})\b"
    r"(?!,\d|\s*(?::|\.\d|a\.?m\b|p\.?m\b|o'?clock|minutes?|mins?|hours?|hrs?|days?|weeks?"
    r"|months?|years?|people|percent|%|bed|bath|(?-i:[A-Z])|dollars?|bucks|k\b|thousand"
    r"|million|hundred|of\b|or\b|and\b|[- ]?(?:thirty|fifteen|forty|twenty|oh|\d)))",
    re.I,
)
_MIDNIGHT = re.compile(r"\bmidnight\b", re.I)
_MONEY_BEFORE = re.compile(
    r"(?:price|priced|listed|asking|cost|costs|fee|rent|balance|offer|deposit|copay|total"
    r"|owe|pay|paid|charge|reduced|countered|runs|comes to|\$)\W*(?:\w+\W+){0,3}$",
    re.I,
)


def _hour_value(tok: str) -> int:
    return int(tok) if tok.isdigit() else _HOUR_WORDS.index(tok.lower()) + 1


def _with_period(h: int, period: str) -> int:
    p = period.lower()
    if "morning" in p:
        return 0 if h == 12 else h
    if h == 12:
        return 12
    return h + 12 if h < 12 else h


def _times(text: str, taken: list[tuple[int, int]]) -> list[tuple[int, Detail]]:
    out: list[tuple[int, Detail]] = []

    def free(a: int, b: int) -> bool:
        return not any(a < y and x < b for x, y in taken)

    def add(a: int, b: int, h: int, mi: int) -> None:
        taken.append((a, b))
        out.append((a, Detail("time", f"{h % 24:02d}:{mi:02d}", text[a:b])))

    low = fold(text)  # a pattern runs only when a word it needs is in the text
    periods = any(w in low for w in ("morning", "afternoon", "evening", "night"))
    for m in _HOUR_PERIOD.finditer(text) if periods else ():
        if free(*m.span()):
            add(m.start(), m.end(), _with_period(_hour_value(m["h"]), m["period"]),
                int(m["mi"] or 0))
    for a, b, h, mi in find_times(text):
        raw = text[a:b]
        plain = not re.search(r"[:]|[ap]\.?m\b|o'?clock|noon|midday|past|quarter", raw, re.I)
        if plain and _MONEY_BEFORE.search(text[max(0, a - 40) : a]):
            continue  # "the price is six fifty-five"
        if free(a, b):
            add(a, b, h, mi)
    for m in _AT_HOUR.finditer(text):
        a, b = m.start("h"), m.end("h")
        if not free(a, b) or _MONEY_BEFORE.search(text[max(0, a - 40) : a]):
            continue
        h = _hour_value(m["h"])
        after = text[b : b + 24].lower()
        if re.match(r"\s*(?:in the morning|this morning|tomorrow morning)", after):
            h = 0 if h == 12 else h
        elif re.match(r"\s*(?:in the (?:afternoon|evening)|tonight|at night|this (?:afternoon"
                      r"|evening))", after):
            h = h if h == 12 else h + 12
        elif 1 <= h <= 7:
            h += 12
        add(a, b, h, 0)
    for m in _MIDNIGHT.finditer(text) if "midnight" in low else ():
        if free(*m.span()):
            add(m.start(), m.end(), 0, 0)
    return out


# ------------------------------------------------------------------------------ amounts

_DIGITS = {w: str(i) for i, w in enumerate(
    "zero one two three four five six seven eight nine".split())} | {"oh": "0"}
_MONEY_AFTER = re.compile(r"^\s*(?:dollars?|bucks|usd)\b", re.I)


def _canon_amount(raw: str) -> str:
    return f"{round(float(raw.replace(',', '')) * 100)}"


_NUM_WORD = (
    r"(?:zero|one|two|three|four|five|six|seven|eight|nine|ten|eleven|twelve|thirteen"
    r"|fourteen|fifteen|sixteen|seventeen|eighteen|nineteen|twenty|thirty|forty|fifty"
    r"|sixty|seventy|eighty|ninety)"
)
_SPOKEN_DECIMAL = re.compile(
    rf"\b(?P<int>\d+|{_NUM_WORD}(?:[\s-]+{_NUM_WORD})?)\s+point\s+"
    r"(?P<frac>(?:(?:zero|oh|one|two|three|four|five|six|seven|eight|nine)\s+)*"
    r"(?:zero|oh|one|two|three|four|five|six|seven|eight|nine))\s+(?P<mult>million|thousand)\b",
    re.I,
)


def spoken_decimals(text: str) -> list[tuple[int, int, float]]:
    """Amounts said with "point": "one point one two five million" -> 1125000."""
    from simulator.slots import _words_to_number

    out = []
    for m in _SPOKEN_DECIMAL.finditer(text) if "point" in fold(text) else ():
        whole = _words_to_number(re.findall(r"[a-z]+|\d+", m["int"].lower()))
        if whole is None:
            continue
        frac = "".join(_DIGITS[w] for w in m["frac"].lower().split())
        mult = 1e6 if m["mult"].lower() == "million" else 1e3
        out.append((m.start(), m.end(), round(float(f"{whole}.{frac}") * mult, 2)))
    return out


def _amounts(text: str, taken: list[tuple[int, int]], *, money_only: bool
             ) -> list[tuple[int, Detail]]:
    out: list[tuple[int, Detail]] = []
    for a, b, x in [*spoken_decimals(text), *find_amounts(text)]:
        raw = text[a:b].rstrip()
        b = a + len(raw)
        if any(a < y and x0 < b for x0, y in taken):
            continue
        if money_only:
            dollar = "$" in raw or text[max(0, a - 2) : a].strip() == "$"
            named = bool(_MONEY_AFTER.search(text[b : b + 12])) or bool(
                re.search(r"dollars?|bucks", raw, re.I))
            k = bool(re.search(r"\d\s*k\b", raw, re.I))
            cue = bool(_MONEY_BEFORE.search(text[max(0, a - 40) : a]))
            if not (dollar or named or k or cue):
                continue
            if x < 10 and not (dollar or named):
                continue
        cents = _CENTS.match(text[b:])
        if cents:
            c = cents["c"]
            x += (int(c) if c.isdigit() else _small_number(c)) / 100
            b += cents.end()
            raw = text[a:b]
        taken.append((a, b))
        out.append((a, Detail("amount", f"{round(x * 100)}", raw)))
    return out


_CENTS = re.compile(
    rf"\s*(?:dollars?\s+)?and\s+(?P<c>\d{{1,2}}|{_NUM_WORD}(?:[\s-]+{_NUM_WORD})?)\s+cents?\b",
    re.I,
)


def _small_number(words: str) -> int:
    from simulator.slots import _words_to_number

    return _words_to_number(re.findall(r"[a-z]+", words.lower())) or 0


# ------------------------------------------------------------------------------ IDs

_ID = re.compile(r"\b(?=[A-Z0-9-]*\d)(?=[A-Z0-9-]*[A-Z])[A-Z][A-Z0-9]*-?[A-Z0-9]*\d[A-Z0-9]*\b")
# A spoken ID after a word that announces one: "confirmation number B 4 4 7 1 2 0",
# "reference A dash seven seven one".
_ID_WORDS = ("confirmation", "reference", "booking", "appointment", "listing", "ticket", "case",
             "order", "account", "tenant", "patient", "client", "member", "offer", "message",
             "showing")
_SPOKEN_ID = re.compile(
    r"\b(?:confirmation|reference|booking|appointment|listing|ticket|case|order|account"
    r"|tenant|patient|client|member|offer|message|showing)\s+(?:number|id|code|#)?\s*"
    r"(?:is\s+)?(?P<id>[A-Z](?:\s+as in\s+\w+)?(?:[\s,-]+(?:dash|hyphen)?[\s,-]*"
    r"(?:\d|zero|one|two|three|four|five|six|seven|eight|nine|oh)\b){3,})",
    re.I,
)


def _ids(text: str, taken: list[tuple[int, int]]) -> list[tuple[int, Detail]]:
    out: list[tuple[int, Detail]] = []
    for m in _ID.finditer(text):
        taken.append(m.span())
        out.append((m.start(), Detail("id", re.sub(r"[^A-Z0-9]", "", m.group(0)), m.group(0))))
    low = fold(text)
    for m in _SPOKEN_ID.finditer(text) if any(w in low for w in _ID_WORDS) else ():
        a, b = m.span("id")
        if any(a < y and x < b for x, y in taken):
            continue
        raw = re.sub(r"\s+as in\s+\w+", "", m["id"], flags=re.I)
        toks = re.findall(r"[A-Za-z]+|\d", raw)
        letter = toks[0].upper()
        digits = "".join(_DIGITS.get(t.lower(), t) for t in toks[1:]
                         if t.lower() not in ("dash", "hyphen"))
        taken.append((a, b))
        out.append((a, Detail("id", letter + digits, m["id"])))
    return out


# ------------------------------------------------------------------------------ names

_TITLE = re.compile(
    r"\b(?:Dr|Doctor|Mr|Mrs|Ms|Miss|Mx|Nurse|Professor|Prof)\.?\s+"
    r"(?P<name>[A-Z][a-zA-Z'\-]+(?:\s+[A-Z][a-zA-Z'\-]+)?)"
)
_CAPS = re.compile(r"\b[A-Z][a-z][a-zA-Z'\-]*(?:\s+[A-Z][a-z][a-zA-Z'\-]*){0,2}")
# Last words that make a capitalised run a place or a business, not a person.
_ORG_WORDS = frozenset(
    "street st avenue ave road rd lane ln drive dr court ct way boulevard blvd circle"
    " terrace parkway highway trail realty salon medicine management property properties"
    " heating plumbing locksmith services clinic center centre inc llc hospital pharmacy"
    " apartments plaza".split()
)
# Last words that make a run a place unless it starts with a first name ("Linda Park").
_PLACE_WORDS = frozenset(
    "park place heights tower towers studio bank insurance lock service office team group"
    " company hill hills square".split()
)
# Capitalised words that are first names somewhere but, in an agent's reply, rarely are.
_NOT_NAMES = frozenset(
    "will may june april august january march can grant mark bill hope joy faith sunny"
    " summer autumn winter rose ivy holly jack pat sue rich guy nick bob frank miles max"
    " sky star angel honey crystal amber ruby pearl jade iris violet lily daisy hazel art"
    " don ray dawn chase page lane sandy dusty rusty buddy happy sure great perfect"
    " thanks thank hello hi hey dear christian king hunter price baker cook marshal"
    " pier". split()
)
_ROLE_BEFORE = re.compile(
    r"\b(?:agent|technician|tech|stylist|plumber|electrician|locksmith|manager|practitioner"
    r"|hygienist|assistant|colleague|specialist|coordinator|realtor|broker|lead|named"
    r"|called|nurse|dentist|physician|therapist|colorist|contractor|handyman|super"
    r"|superintendent|representative|rep)\s*,?\s*$",
    re.I,
)
_SELF_INTRO = re.compile(
    r"(?:\bI am|\bI'm|\bmy name is|\bmy name's|\bthis is|\bit's|\byou've reached"
    r"|\byou're speaking with|\byou are speaking with)\s*$",
    re.I,
)
_NAME_CUE_AFTER = re.compile(
    r"^(?:'s\b|,|\s+(?:will|can|is|has|should|would|could|might|must|may|from|in|at|on"
    r"|and|or|who|said|says|handles|does|did|was|were|'ll|just|also|already|usually"
    r"|works|covers|sees|takes|checked|confirmed|booked|called|said)\b)"
)
_SENTENCE_START = re.compile(r"(?:^|[.!?]\s+|[\u2014\u2013]\s*|\s-\s|[:\"(]\s*)$")


@functools.lru_cache(maxsize=1)
def _first_names() -> frozenset[str]:
    """First names across faker's person providers for a spread of locales (faker is a
    dependency already: the persona generator draws its names from it)."""
    import importlib

    names: set[str] = set()
    for loc in ("en_US", "en_GB", "en_IE", "en_IN", "en_NG", "es_MX", "es_ES", "fr_FR",
                "it_IT", "de_DE", "pt_BR", "vi_VN"):
        try:
            provider = importlib.import_module(f"faker.providers.person.{loc}").Provider
        except (ImportError, AttributeError):  # pragma: no cover - locale dropped upstream
            continue
        for attr in ("first_names", "first_names_male", "first_names_female"):
            v = getattr(provider, attr, None)
            if v:
                names.update(k.lower() for k in v if re.fullmatch(r"[A-Za-z]+", k))
    return frozenset(names)


def _canon_name(raw: str) -> str:
    words = [re.sub(r"'s$", "", w).lower() for w in raw.split()]
    return " ".join(w for w in words if w)


def _names(text: str) -> list[tuple[int, Detail]]:
    out: list[tuple[int, Detail]] = []
    spans: list[tuple[int, int]] = []
    for m in _TITLE.finditer(text):
        name = m["name"]
        words = name.split()
        if len(words) == 2 and words[1].lower() in _ORG_WORDS | {"office", "team"}:
            name = words[0]
        spans.append(m.span())
        out.append((m.start(), Detail("name", _canon_name(name), m.group(0).strip())))
    first = _first_names()
    months_days = {w.lower() for w in WEEKDAYS} | {
        "january", "february", "march", "april", "may", "june", "july", "august",
        "september", "october", "november", "december"}
    for m in _CAPS.finditer(text):
        a, b = m.span()
        if any(a < y and x < b for x, y in spans):
            continue
        words = m.group(0).split()
        before = text[max(0, a - 40) : a]
        if re.search(r"\d\s*$", before):
            continue  # "77 Harbor View Drive"
        last = re.sub(r"'s$", "", words[-1]).lower()
        if last in _ORG_WORDS or (last in _PLACE_WORDS and (
                len(words) == 1 or re.sub(r"'s$", "", words[0]).lower() not in first)):
            continue
        if _SELF_INTRO.search(before):
            continue  # the agent naming itself is not a record detail
        start = a
        if _SENTENCE_START.search(before):
            # A capital at the start of a sentence says nothing; keep the word only when
            # it is a first name used as one ("Dave should be there", "Victor Huang will").
            head = re.sub(r"'s$", "", words[0]).lower()
            after = text[a + len(words[0]) :]
            if not (head in first and head not in _NOT_NAMES
                    and (len(words) > 1 or _NAME_CUE_AFTER.match(after))):
                words = words[1:]
                if not words:
                    continue
                start = text.index(words[0], a)
        words = [w for w in words if re.sub(r"'s$", "", w).lower() not in months_days]
        if not words:
            continue
        head = re.sub(r"'s$", "", words[0]).lower()
        if head in first or _ROLE_BEFORE.search(text[max(0, start - 40) : start]):
            raw = " ".join(words)
            out.append((start, Detail("name", _canon_name(raw), raw)))
    return out


# ------------------------------------------------------------------------------ extraction

# A clause about opening hours or call-back times states no record detail.
_HOURS_CLAUSE = re.compile(
    r"\b(?:opens|closes|reopens?|office hours|business hours|opening hours|hours are"
    r"|open (?:at|from|until|till|between)|close (?:at|early)|call (?:us )?back"
    r"|(?:we|they|office|clinic|salon|desk|line|store|shop|team|staff)(?: is| are|'s|'re)?"
    r" (?:open|closed)|through friday|to friday)\b",
    re.I,
)
# "I don't see any openings on Saturday": a date in a clause denying availability is not
# asserted as a record detail.
# A word each of the two patterns needs (looked for first, in C: most clauses have none).
_HOURS_HINTS = ("open", "close", "hours", "call", "friday")
_NO_HINTS = ("no", "never", "n't", "booked")
_NO_AVAILABILITY = re.compile(
    r"(?:\bnot|\bno|\bnever|\bnothing|n't)\b[^.!?;]*\b(?:openings?|availability|available"
    r"|slots?|spots?|open|free|earlier|sooner|a time|any time|times)\b"
    r"|\b(?:fully|all) booked\b|\bbooked up\b",
    re.I,
)


_BOUNDARY = re.compile(
    # The lookahead first: the titles are only looked behind at a full stop (the scan
    # is then ten times faster; what matches is the same).
    r"(?=[.!?;])(?<!\bDr)(?<!\bMr)(?<!\bMs)(?<!\bMrs)(?<!\bSt)(?<!\bProf)(?<!\bMx)"
    r"[.!?;]+(?=\s|$)"
)


def sentences(text: str) -> Iterable[tuple[int, str]]:
    """(offset, sentence) pieces of ``text``, split after . ! ? ; followed by a space, but
    not after a title ("Dr. Patel") or inside a number ("$1.1 million")."""
    start = 0
    for m in _BOUNDARY.finditer(text):
        if text[start : m.end()].strip():
            yield start, text[start : m.end()]
        start = m.end()
    if text[start:].strip():
        yield start, text[start:]


def extract_details(text: str, *, asr: bool = False) -> list[Detail]:
    """Every date, time, amount, ID and name asserted in ``text`` (canonical, in order).

    Amounts count only when said as money ("$450", "six hundred dollars", "450k", or after
    "listed at", "rent", "fee", ...); clauses about opening hours are skipped. ``asr``:
    the text came through speech recognition (read misheard month names)."""
    return list(_extract(text, asr))


_CONTRAST = re.compile(r",?\s+(?:but|however|though|although)\s+|\s+[\u2014\u2013-]+\s+"
                       r"|\u2014")


def _clauses(text: str) -> Iterable[tuple[int, str]]:
    """Sentences cut at "but" and dashes: "I couldn't find a time Friday, but Monday at 10
    is open" denies one slot and asserts another."""
    for start, sentence in sentences(text):
        at = 0
        for m in _CONTRAST.finditer(sentence):
            if sentence[at : m.start()].strip():
                yield start + at, sentence[at : m.start()]
            at = m.end()
        if sentence[at:].strip():
            yield start + at, sentence[at:]


# Without a digit or one of these words a sentence holds no date, time, amount or ID (the
# parsers are not cheap and grading runs inside the load driver's event loop).
_NUMERIC_HINT = re.compile(
    r"\d|\b(?:zero|oh|one|two|three|four|five|six|seven|eight|nine|ten|eleven|twelve"
    r"|\w+teen|twenty|thirty|forty|fifty|sixty|seventy|eighty|ninety|hundred|thousand"
    r"|million|noon|midday|midnight|today|tomorrow|tonight|first|second|third|\w+th"
    r"|\w+day|jan\w*|feb\w*|mar\w*|apr\w*|may|jun\w*|jul\w*|aug\w*|sep\w*|oct\w*"
    r"|nov\w*|dec\w*)\b",
    re.I,
)


# Agents repeat their questions and greetings on every call: read each text once.
@functools.lru_cache(maxsize=8192)
def _extract(text: str, asr: bool, generous: bool = False) -> tuple[Detail, ...]:
    """``generous``: read a source, where any number may be an amount and no clause is
    skipped."""
    found: list[tuple[int, Detail]] = []
    for start, clause in _clauses(text):
        taken: list[tuple[int, int]] = []
        part: list[tuple[int, Detail]] = []
        if _NUMERIC_HINT.search(clause):
            part += _ids(clause, taken)
            low = fold(clause)
            if generous or not (
                    (any(w in low for w in _HOURS_HINTS) and _HOURS_CLAUSE.search(clause))
                    or (any(w in low for w in _NO_HINTS) and _NO_AVAILABILITY.search(clause))):
                part += _times(clause, taken)
                part += _dates(clause, taken, asr=asr)
            part += _amounts(clause, taken, money_only=not generous)
        if not generous:
            part += _names(clause)
        found += [(start + a, d) for a, d in part]
    return tuple(d for _, d in sorted(found, key=lambda x: x[0]))


# ------------------------------------------------------------------------------ sources


@dataclass(frozen=True)
class Known:
    """What the sources hold, read generously: every number is also an amount, every time
    counts in both halves of the day, a weekday or a bare day counts by itself."""

    values: frozenset[tuple[str, str]]
    words: frozenset[str]          # every word, lower case (names are checked against it)
    digit_runs: frozenset[str]     # digit strings, including spoken ones ("four eight two")


def known_values(texts: list[str]) -> set[tuple[str, str]]:
    """Canonical (kind, value) pairs present in source texts (tool results, caller turns)."""
    return set(_known(tuple(texts)).values)


def _known(texts: tuple[str, ...]) -> Known:
    values: set[tuple[str, str]] = {("date", _mmdd(REFERENCE_DATE))}  # the packs' prompts say it
    words: set[str] = set()
    runs: set[str] = set()
    for t in texts:
        for facts in _facts_of(t):
            values |= facts.values
            words |= facts.words
            runs |= facts.digit_runs
    return Known(frozenset(values), frozenset(words), frozenset(runs))


def _facts_of(t: str) -> list[Known]:
    """Facts of a source: a JSON tool result or argument list value by value (each value
    is short and most recur across calls), anything else as text."""
    if t[:1] in "{[":
        try:
            data = json.loads(t)
        except ValueError:
            data = None
        if isinstance(data, dict | list):
            out: list[Known] = []
            stack: list[Any] = [data]
            while stack:
                v = stack.pop()
                if isinstance(v, dict):
                    stack.extend(v.values())
                elif isinstance(v, list):
                    stack.extend(v)
                elif isinstance(v, str):
                    out.append(_source_facts(v))
                elif isinstance(v, int | float) and not isinstance(v, bool):
                    out.append(_source_facts(str(v)))
            return out
    return [_source_facts(t)]


_DIGIT_WORDS_RE = re.compile(r"\b(?:zero|oh|one|two|three|four|five|six|seven|eight|nine)\b",
                             re.I)


def _date_keys(d: _dt.date) -> set[tuple[str, str]]:
    """A source date as known: its ``MM-DD``, and when it is near, the weaker keys a date
    said without its month matches ("Tuesday" within four weeks, "the 17th" within two
    months: a birthday in November makes no "Sunday" known)."""
    keys = {("date", _mmdd(d))}
    ahead = (d - REFERENCE_DATE).days
    if 0 <= ahead <= 28:
        keys.add(("date", f"wd:{_WD[d.weekday()][:3]}"))
    if 0 <= ahead <= 62:
        keys.add(("date", f"dom:{d.day}"))
    return keys


def _near_dates(month: int, day: int) -> list[_dt.date]:
    """The dates a ``MM-DD`` may be, this year or next."""
    out = []
    for year in (REFERENCE_DATE.year, REFERENCE_DATE.year + 1):
        try:
            out.append(_dt.date(year, month, day))
        except ValueError:
            pass
    return out


@functools.lru_cache(maxsize=8192)
def _source_facts(t: str) -> Known:
    """What one source text holds (cached: the same tool results and caller lines recur)."""
    from simulator.slots import _digits_from_words

    if not _NUMERIC_HINT.search(t):  # a name, a reason, "not_found": words only
        return Known(frozenset(), frozenset(w.lower() for w in re.findall(r"[A-Za-z]+", t)),
                     frozenset())
    known: set[tuple[str, str]] = set()
    digits = re.sub(r"\D", "", t)
    # The common forms of tool-result values, read without the parsers.
    if re.fullmatch(r"\d{4}-\d{2}-\d{2}", t):
        for near in _near_dates(int(t[5:7]), int(t[8:10])):
            known |= _date_keys(near)
    elif re.fullmatch(r"[01]?\d:[0-5]\d|2[0-3]:[0-5]\d", t):
        hh, mm = t.split(":")
        known |= {("time", f"{int(hh):02d}:{mm}"), ("time", f"{(int(hh) + 12) % 24:02d}:{mm}")}
    elif re.fullmatch(r"\d+(?:\.\d+)?", t):
        known |= {("amount", _canon_amount(t)), ("id", t)}
    elif re.fullmatch(r"[A-Za-z]{1,4}-?\d+", t):
        known.add(("id", t.upper().replace("-", "")))
    if known:
        return Known(frozenset(known), frozenset(), frozenset({digits} if len(digits) >= 3
                                                             else ()))
    for d in _extract(t, False, True):
        if d.kind == "date" and d.loose.startswith("wd:"):
            # "Friday" from a caller may be this Friday or the next.
            first = _next_weekday(_weekday_name(d.loose))
            known |= _date_keys(first) | _date_keys(first + _dt.timedelta(days=7))
        elif d.kind == "date":
            known.add(("date", d.value))
            if d.loose:
                known.add(("date", d.loose))
            month, day = (int(x) for x in d.value.split("-"))
            for when in _near_dates(month, day):
                known |= _date_keys(when)
        else:
            known.add((d.kind, d.value))
    # Bare numbers ("price": 655000) are amounts too, but not the parts of a date, a time
    # or an ID ("2025-06-20" holds no $20).
    for num in re.findall(r"(?<![\w\-:/.])\d[\d,]*(?:\.\d+)?(?![\w\-:/])", t):
        try:
            known.add(("amount", _canon_amount(num)))
        except ValueError:
            continue
    for hour in re.findall(r"\b(?:at|around|by|about)\s+(" + _HOUR_RE + r")\b", t, re.I):
        known.add(("time", f"{_hour_value(hour) % 24:02d}:00"))
    for tok in re.findall(r"[A-Za-z0-9-]*\d[A-Za-z0-9-]*", t):  # an ID has a digit
        known.add(("id", tok.upper().replace("-", "")))
    for kind, value in list(known):
        if kind == "time":  # a time counts in both halves of the day
            hh, mm = value.split(":")
            known.add(("time", f"{(int(hh) + 12) % 24:02d}:{mm}"))
    words = frozenset(w.lower() for w in re.findall(r"[A-Za-z]+", t))
    runs = ({s for _, s in _digits_from_words(t) if len(s) >= 3}
            if _DIGIT_WORDS_RE.search(t) else set())
    runs.update(re.findall(r"\d{3,}", t))
    return Known(frozenset(known), words, frozenset(runs))


def _weekday_name(loose: str) -> str:
    key = loose.split(":", 1)[1]
    return next(w for w in _WD if w.startswith(key))


def _word_known(word: str, words: frozenset[str]) -> bool:
    if word in words:
        return True
    if len(word) < 5:
        return False
    from rapidfuzz.distance import Levenshtein

    return any(abs(len(w) - len(word)) <= 1 and Levenshtein.distance(w, word) <= 1
               for w in words)


def is_known(d: Detail, known: Known) -> bool:
    """Does a source hold ``d`` (in any form the parsers read)?"""
    if (d.kind, d.value) in known.values:
        return True
    if d.kind == "date":
        return bool(d.loose) and ("date", d.loose) in known.values
    if d.kind == "name":
        return all(_word_known(w, known.words) for w in d.value.split())
    if d.kind == "id":
        digits = re.sub(r"\D", "", d.value)
        return len(digits) >= 3 and digits in known.digit_runs
    return False


def fabricated_details(agent_texts: list[str], sources: list[str]) -> list[Detail]:
    """Details the agent asserted that appear in no source text."""
    known = _known(tuple(sources))
    return [d for t in agent_texts for d in extract_details(t) if not is_known(d, known)]
