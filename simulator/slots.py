"""Slot values: canonical forms, spoken renderings and parsers.

Each slot type has a seeded *renderer* from a canonical value to what a caller would say
("1984-03-05" -> "the fifth of March 1984") and a *parser* from caller text back to the
canonical value (used by the reference agent's NLU). :func:`normalise_arg` is the grading
normaliser (case, whitespace, punctuation; dates to ISO; phones to digits).

Canonical forms: dates ``YYYY-MM-DD``, times ``HH:MM`` (24 h), phones digits only,
amounts a plain number string ("450000" or "129.5"), record IDs ``PREFIX-DIGITS``.
"""

from __future__ import annotations

import datetime as _dt
import functools
import random
import re
from collections.abc import Callable, Mapping, Sequence
from typing import Any, Literal, get_args

# The simulated "today": generated appointment dates are relative to it, and dates spoken
# without a year resolve to the next occurrence on or after it. Packs' system prompts say it.
REFERENCE_DATE = _dt.date(2025, 6, 2)

SlotType = Literal[
    "person_name",
    "date_of_birth",
    "date",
    "time",
    "phone",
    "address",
    "amount",
    "number",
    "record_id",
    "choice",
    "free_text",
]
SLOT_TYPES: tuple[str, ...] = get_args(SlotType)

MONTHS = (
    "January",
    "February",
    "March",
    "April",
    "May",
    "June",
    "July",
    "August",
    "September",
    "October",
    "November",
    "December",
)
_MONTH_LOOKUP = {m.lower(): i + 1 for i, m in enumerate(MONTHS)}
_MONTH_LOOKUP.update({m.lower()[:3]: i + 1 for i, m in enumerate(MONTHS)})
_MONTH_LOOKUP["sept"] = 9
WEEKDAYS = ("Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday", "Sunday")

_ONES = (
    "zero",
    "one",
    "two",
    "three",
    "four",
    "five",
    "six",
    "seven",
    "eight",
    "nine",
    "ten",
    "eleven",
    "twelve",
    "thirteen",
    "fourteen",
    "fifteen",
    "sixteen",
    "seventeen",
    "eighteen",
    "nineteen",
)
_TENS = ("", "", "twenty", "thirty", "forty", "fifty", "sixty", "seventy", "eighty", "ninety")
_ORD_ONES = (
    "zeroth",
    "first",
    "second",
    "third",
    "fourth",
    "fifth",
    "sixth",
    "seventh",
    "eighth",
    "ninth",
    "tenth",
    "eleventh",
    "twelfth",
    "thirteenth",
    "fourteenth",
    "fifteenth",
    "sixteenth",
    "seventeenth",
    "eighteenth",
    "nineteenth",
)
_ORD_TENS = {"twentieth": 20, "thirtieth": 30}
_WORD_VALUE: dict[str, int] = {w: i for i, w in enumerate(_ONES)}
_WORD_VALUE.update({w: i * 10 for i, w in enumerate(_TENS) if w})
_WORD_VALUE["oh"] = 0
_ORD_VALUE: dict[str, int] = {w: i for i, w in enumerate(_ORD_ONES) if i}
_ORD_VALUE.update(_ORD_TENS)
_DIGIT_WORDS = {w: str(i) for i, w in enumerate(_ONES[:10])}
_DIGIT_WORDS["oh"] = "0"
_DIGIT_WORDS["o"] = "0"


# --------------------------------------------------------------------------- number words


def number_words(n: int) -> str:
    """English words for 0 <= n < 1,000,000,000 ("four hundred fifty thousand")."""
    if n < 20:
        return _ONES[n]
    if n < 100:
        t, o = divmod(n, 10)
        return _TENS[t] + (f"-{_ONES[o]}" if o else "")
    if n < 1000:
        h, r = divmod(n, 100)
        return f"{_ONES[h]} hundred" + (f" {number_words(r)}" if r else "")
    for size, word in ((1_000_000, "million"), (1000, "thousand")):
        if n >= size:
            q, r = divmod(n, size)
            return f"{number_words(q)} {word}" + (f" {number_words(r)}" if r else "")
    raise ValueError(n)  # pragma: no cover


def ordinal_words(n: int) -> str:
    """'first' .. 'thirty-first'."""
    if n < 20:
        return _ORD_ONES[n]
    t, o = divmod(n, 10)
    if o == 0:
        return _TENS[t][:-1] + "ieth"
    return f"{_TENS[t]}-{_ORD_ONES[o]}"


def ordinal_suffix(n: int) -> str:
    """'1st', '22nd', '13th'."""
    if 10 <= n % 100 <= 20:
        return f"{n}th"
    return f"{n}{ {1: 'st', 2: 'nd', 3: 'rd'}.get(n % 10, 'th') }".replace(" ", "")


def year_words(y: int) -> str:
    """'nineteen eighty-four', 'two thousand three', 'twenty twelve'."""
    if 2000 <= y < 2010:
        return "two thousand" + (f" {_ONES[y - 2000]}" if y > 2000 else "")
    hi, lo = divmod(y, 100)
    if lo == 0:
        return f"{number_words(hi)} hundred"
    if lo < 10:
        return f"{number_words(hi)} oh {_ONES[lo]}"
    return f"{number_words(hi)} {number_words(lo)}"


_TOKEN_RE = re.compile(r"[a-z]+|\d+")


def _words_to_number(tokens: Sequence[str]) -> int | None:
    """Parse a run of number words ("four hundred fifty thousand") into an int."""
    total, current, seen = 0, 0, False
    for tok in tokens:
        if tok == "and" and seen:
            continue
        if tok.isdigit():
            current += int(tok)
        elif tok in _WORD_VALUE:
            current += _WORD_VALUE[tok]
        elif tok == "hundred":
            current = max(current, 1) * 100
        elif tok == "thousand":
            total += max(current, 1) * 1000
            current = 0
        elif tok == "million":
            total += max(current, 1) * 1_000_000
            current = 0
        else:
            return None
        seen = True
    return total + current if seen else None


def _tokens(text: str) -> list[str]:
    return _TOKEN_RE.findall(text.lower().replace("-", " "))


# --------------------------------------------------------------------------- renderers

Renderer = Callable[[Any, random.Random, Mapping[str, Any]], str]


def _iso(value: Any) -> _dt.date:
    if isinstance(value, _dt.date):
        return value
    return _dt.date.fromisoformat(str(value))


def _render_dob(value: Any, r: random.Random, opts: Mapping[str, Any]) -> str:
    d = _iso(value)
    m = MONTHS[d.month - 1]
    forms = (
        f"{m} {ordinal_suffix(d.day)}, {d.year}",
        f"the {ordinal_words(d.day)} of {m} {d.year}",
        f"{d.month}/{d.day}/{d.year}",
        f"{m} {d.day}, {d.year}",
        f"{m} {ordinal_words(d.day)}, {year_words(d.year)}",
        f"{d.month:02d}/{d.day:02d}/{d.year}",
    )
    return r.choice(forms)


def _render_date(value: Any, r: random.Random, opts: Mapping[str, Any]) -> str:
    d = _iso(value)
    m = MONTHS[d.month - 1]
    wd = WEEKDAYS[d.weekday()]
    forms = [
        f"{m} {ordinal_suffix(d.day)}",
        f"the {ordinal_words(d.day)} of {m}",
        f"{wd}, {m} {d.day}",
        f"{d.month}/{d.day}",
        f"{wd} the {ordinal_suffix(d.day)} of {m}",
        f"{m} {ordinal_words(d.day)}",
    ]
    if (d - REFERENCE_DATE).days == 1:
        forms.append("tomorrow")
    return r.choice(forms)


def _hour12(h: int) -> tuple[int, str]:
    return (h % 12 or 12), ("AM" if h < 12 else "PM")


def _render_time(value: Any, r: random.Random, opts: Mapping[str, Any]) -> str:
    h, m = (int(x) for x in str(value).split(":"))
    h12, ampm = _hour12(h)
    part = "in the morning" if h < 12 else ("in the afternoon" if h < 17 else "in the evening")
    forms = [f"{h12}:{m:02d} {ampm}", f"{h12}:{m:02d} {ampm.lower()}"]
    if m == 0:
        forms += [f"{h12} {ampm.lower()}", f"{_ONES[h12]} o'clock {part}"]
        if h == 12:
            forms.append("noon")
    elif m == 30:
        forms += [f"half past {_ONES[h12]} {part}", f"{_ONES[h12]} thirty {part}"]
    elif m == 15:
        forms += [f"quarter past {_ONES[h12]} {part}", f"{_ONES[h12]} fifteen {part}"]
    elif m == 45:
        nxt, _ = _hour12((h + 1) % 24)
        forms += [f"quarter to {_ONES[nxt]} {part}", f"{_ONES[h12]} forty-five {part}"]
    else:
        mins = f"oh {_ONES[m]}" if m < 10 else number_words(m)
        forms.append(f"{_ONES[h12]} {mins} {part}")
    return r.choice(forms)


def _render_phone(value: Any, r: random.Random, opts: Mapping[str, Any]) -> str:
    d = re.sub(r"\D", "", str(value))
    a, b, c = d[:3], d[3:6], d[6:]

    def spoken(s: str) -> str:
        return " ".join(_ONES[int(ch)] if ch != "0" or r.random() < 0.5 else "oh" for ch in s)

    forms = (
        f"{a}-{b}-{c}",
        f"({a}) {b}-{c}",
        f"{spoken(a)}, {spoken(b)}, {spoken(c)}",
        f"{a} {b} {c}",
        f"{a}, {b}, {spoken(c)}",
    )
    return r.choice(forms)


def _render_address(value: Any, r: random.Random, opts: Mapping[str, Any]) -> str:
    text = str(value)
    num, _, street = text.partition(" ")
    if num.isdigit() and r.random() < 0.3:
        return " ".join(_ONES[int(ch)] for ch in num) + " " + street
    return text


def _render_amount(value: Any, r: random.Random, opts: Mapping[str, Any]) -> str:
    x = float(value)
    n = int(x)
    if x != n:  # cents: keep it to digits, as callers read amounts off a bill
        return f"${x:,.2f}"
    forms = [f"${n:,}", f"{number_words(n)} dollars"]
    if 1000 <= n < 1_000_000 and n % 1000 == 0:
        forms.append(f"{n // 1000}k")
    if n >= 1_000_000 and n % 10_000 == 0:
        forms.append(f"{n / 1_000_000:g} million")
    return r.choice(forms)


def _render_number(value: Any, r: random.Random, opts: Mapping[str, Any]) -> str:
    n = int(value)
    return r.choice((str(n), number_words(n)))


def _render_record_id(value: Any, r: random.Random, opts: Mapping[str, Any]) -> str:
    text = str(value)
    prefix, _, digits = text.partition("-")
    if not digits:
        return text
    forms = (
        text,
        f"{prefix}{digits}",
        f"{' '.join(prefix)} {' '.join(digits)}",
        f"{prefix} dash {' '.join(_ONES[int(c)] for c in digits)}",
    )
    return r.choice(forms)


def _render_choice(value: Any, r: random.Random, opts: Mapping[str, Any]) -> str:
    choices = opts.get("choices") or {}
    synonyms = list(choices.get(str(value), [])) if isinstance(choices, Mapping) else []
    return r.choice([str(value), *synonyms])


def _render_text(value: Any, r: random.Random, opts: Mapping[str, Any]) -> str:
    return str(value)


RENDERERS: dict[str, Renderer] = {
    "person_name": _render_text,
    "date_of_birth": _render_dob,
    "date": _render_date,
    "time": _render_time,
    "phone": _render_phone,
    "address": _render_address,
    "amount": _render_amount,
    "number": _render_number,
    "record_id": _render_record_id,
    "choice": _render_choice,
    "free_text": _render_text,
}


def render(
    slot_type: str, value: Any, r: random.Random, opts: Mapping[str, Any] | None = None
) -> str:
    """Spoken caller text for a canonical ``value`` of ``slot_type``, chosen with ``r``.

    Raises KeyError for an unknown slot type."""
    return RENDERERS[slot_type](value, r, opts or {})


def speak(slot_type: str, value: Any) -> str:
    """How the *agent* says a canonical value: "June 14", "2:30 PM", "$450,000"."""
    try:
        if slot_type in ("date", "date_of_birth"):
            d = _iso(value)
            s = f"{WEEKDAYS[d.weekday()]}, {MONTHS[d.month - 1]} {d.day}"
            return s if slot_type == "date" else f"{MONTHS[d.month - 1]} {d.day}, {d.year}"
        if slot_type == "time":
            h, m = (int(x) for x in str(value).split(":"))
            h12, ampm = _hour12(h)
            return f"{h12}:{m:02d} {ampm}"
        if slot_type == "amount":
            x = float(value)
            return f"${x:,.0f}" if x == int(x) else f"${x:,.2f}"
        if slot_type == "phone":
            ds = re.sub(r"\D", "", str(value))
            return f"{ds[:3]}-{ds[3:6]}-{ds[6:]}" if len(ds) == 10 else ds
    except (ValueError, TypeError):
        pass
    return str(value)


# --------------------------------------------------------------------------- ASR tolerance
#
# Caller text reaches the agent through speech recognition: fillers, doubled words, split
# and merged words, and phonetic near-misses ("Marsh" for March, "do" for two). The helpers
# below let the parsers read through that, deterministically and without looking at
# anything but the text (no clean transcript, no expected value).

_FILLER_WORDS = frozenset(
    {"um", "umm", "uh", "uhh", "uhm", "er", "erm", "ah", "hmm", "mm", "mhm", "uh-huh"}
)
_FILLER_TOKEN_RE = re.compile(
    r"(?<![\w'-])(?:u+m+|u+h+m*|e+rm*|a+h+|h+m+|m+h?m+)(?![\w'-])[,.]?\s*", re.I
)
_NUMBERISH = set(_WORD_VALUE) | set(_ORD_VALUE) | {"oh", "o", "double", "triple", "hundred"}
_DISCOURSE_RE = re.compile(r"(?<![\w'])(?:you know,?|like,|i mean,)\s+", re.I)
_DOUBLED_RE = re.compile(r"\b([A-Za-z']+)(?:[\s,]+\1\b)+", re.I)


def asr_clean(text: str) -> str:
    """``text`` without filler words (um, uh, er, hmm) and with immediately repeated words
    said once ("all all" -> "all"); repeated number words are kept ("eight eight")."""
    out = _FILLER_TOKEN_RE.sub("", text)
    out = _DISCOURSE_RE.sub("", out)
    out = re.sub(r"\b(after|every|any|some) (noon|thing|one|body)\b", r"\1\2", out, flags=re.I)

    def undouble(m: re.Match[str]) -> str:
        return m.group(0) if m.group(1).lower() in _NUMBERISH else m.group(1)

    out = _DOUBLED_RE.sub(undouble, out)
    return re.sub(r"\s{2,}", " ", out).strip() or text.strip()


def _despace(s: str) -> str:
    return re.sub(r"[^a-z0-9]+", "", s.lower())


def _allowed_edits(n: int) -> int:
    """Character edits tolerated in a phrase of ``n`` letters (short words must be exact)."""
    return 0 if n < 5 else (1 if n < 9 else 2)


def fuzzy_phrase_score(phrase: str, text: str) -> float:
    """How well ``phrase`` occurs in ``text`` allowing for recognition errors: 1.0 for a
    word-bounded exact occurrence, about 0.8-0.95 for one with a split or merged word or a
    character edit or two (scaled by how close), 0.0 when it is not there. Case and
    punctuation are ignored."""
    ptoks = re.findall(r"[a-z0-9']+", phrase.lower())
    ttoks = re.findall(r"[a-z0-9']+", text.lower())
    if not ptoks or not ttoks:
        return 0.0
    k = len(ptoks)
    for i in range(len(ttoks) - k + 1):
        if ttoks[i : i + k] == ptoks:
            return 1.0
    target = _despace(phrase)
    n = len(target)
    if n < 5:
        return 0.0
    from rapidfuzz.distance import Levenshtein

    best = 0.0
    budget = _allowed_edits(n)
    for size in range(max(1, k - 1), k + 2):
        for i in range(len(ttoks) - size + 1):
            window = "".join(ttoks[i : i + size]).replace("'", "")
            if n >= 6 and target in window and len(window) - n <= 4:
                score = 0.9  # merged with a neighbouring word: "insidethe"
            else:
                d = Levenshtein.distance(target, window, score_cutoff=budget)
                if d > budget:
                    continue
                score = 0.95 - 0.1 * d if d else 0.95  # split ("vi ewing") or edited
            best = max(best, score)
    return best


@functools.lru_cache(maxsize=1)
def _phones_of() -> Callable[[str], tuple[str, ...] | None]:
    from simulator.degradation.phonetics import get_index

    return get_index().phones


def _phone_distance(a: str, b: str) -> int | None:
    from simulator.degradation.phonetics import phone_edit_distance

    phones = _phones_of()
    pa, pb = phones(a), phones(b)
    if pa is None or pb is None:
        return None
    return phone_edit_distance(pa, pb)


@functools.lru_cache(maxsize=8192)
def _near_word(word: str, candidates: tuple[str, ...]) -> str | None:
    """The one candidate ``word`` was most likely misheard for: same or one phone apart,
    or (words of 4+ letters) one letter apart; None when none or several tie."""
    from rapidfuzz.distance import Levenshtein

    w = word.lower()
    if w in candidates:
        return w
    scored: list[tuple[int, str]] = []
    for c in candidates:
        pd = _phone_distance(w, c)
        ok_ph = pd is not None and (pd == 0 or (pd == 1 and len(c) >= 3 and len(w) >= 2))
        ld = Levenshtein.distance(w, c)
        ok_sp = len(w) >= 4 and ld <= 1
        if ok_ph or ok_sp:
            scored.append((min(pd if ok_ph and pd is not None else 9, ld), c))
    if not scored:
        return None
    scored.sort()
    if len(scored) > 1 and scored[0][0] == scored[1][0]:
        return None
    return scored[0][1]


_MONTH_NAMES = tuple(m.lower() for m in MONTHS)
_DIGIT_NAMES = tuple(_ONES[:10])
_NOT_A_DIGIT = frozenset({"a", "i", "the", "and", "at", "is", "it", "its", "on", "in", "or"})


def _near_month(word: str) -> int | None:
    w = word.lower()
    if w in _MONTH_LOOKUP:
        return _MONTH_LOOKUP[w]
    if len(w) < 3 or w in _NUMBERISH:
        return None
    m = _near_word(w, _MONTH_NAMES)
    return _MONTH_NAMES.index(m) + 1 if m else None


def _near_digit(word: str) -> str | None:
    w = word.lower()
    if w in _DIGIT_WORDS:
        return _DIGIT_WORDS[w]
    if w in _NOT_A_DIGIT or w in _MONTH_LOOKUP:
        return None
    d = _near_word(w, _DIGIT_NAMES)
    return str(_DIGIT_NAMES.index(d)) if d else None


def _is_dayish(tok: str) -> bool:
    t = tok.lower()
    m = re.fullmatch(r"(\d{1,2})(?:st|nd|rd|th)?", t)
    return bool(m and 1 <= int(m.group(1)) <= 31) or t in _ORD_VALUE


_WORDISH_RE = re.compile(r"[A-Za-z]+|\d+(?:st|nd|rd|th)?")


def _fix_months(text: str) -> str:
    """Words next to a day that sound like a month become that month: "Marsh 16" ->
    "March 16", "the twenty-third of Noon" -> "the twenty-third of June"."""
    toks = list(_WORDISH_RE.finditer(text))
    out, last = [], 0
    for i, m in enumerate(toks):
        w = m.group(0)
        if not w.isalpha() or w.lower() in _MONTH_LOOKUP or len(w) < 3:
            continue
        nxt = [t.group(0) for t in toks[i + 1 : i + 3]]
        if nxt and nxt[0].lower() == "the":
            nxt = nxt[1:]
        prev = [t.group(0) for t in toks[max(0, i - 2) : i]]
        ctx = bool(nxt and _is_dayish(nxt[0])) or bool(
            prev and (_is_dayish(prev[-1]) or (prev[-1].lower() == "of" and len(prev) > 1
                                                and _is_dayish(prev[-2])))
        )
        if not ctx:
            continue
        month = _near_month(w)
        if month:
            out.append(text[last : m.start()])
            out.append(MONTHS[month - 1])
            last = m.end()
    out.append(text[last:])
    return "".join(out)


_CORRECTION_RE = re.compile(
    r"(?<!\S)[^\s,]+,\s*(?:no,?\s+wait|no,\s*sorry|no|sorry|i mean),?\s+(?=\S)", re.I
)
_MERGED_SORRY_RE = re.compile(r"(?<!\S)[^\s,]+,\s*sorry(?=[a-z]{3,})", re.I)


def apply_corrections(text: str) -> str:
    """A one-word self-correction replaces the word it corrects: "Ana Garcia, sorry,
    Ruiz" -> "Ana Ruiz", "June 15th, no, 16th" -> "June 16th" (also when recognition
    merged the words: "sorryruiz")."""
    out = _CORRECTION_RE.sub("", text)
    return _MERGED_SORRY_RE.sub("", out)


# --------------------------------------------------------------------------- parsers

Parser = Callable[[str, Mapping[str, Any]], str | None]

_FILLER_RE = re.compile(
    r"^(?:(?:um+|uh+|er+|so|well|yeah|yes|yep|sure|okay|ok|oh|hi|hello|right|of course"
    r"|absolutely|certainly|no problem)[,.!]?\s+)+",
    re.I,
)
_NAME_PATTERNS = (
    re.compile(
        r"first name (?:is )?([A-Za-z'\-]+),? (?:and )?(?:my )?last name (?:is )?([A-Za-z'\-]+)",
        re.I,
    ),
    re.compile(
        r"(?i:my name is|my name's|name is|name's|this is|i'm|i am|it's|it is|under|for)"
        r"\s+([A-Z][A-Za-z'\-]+(?:\s+[A-Z][A-Za-z'\-]+){1,2})"
    ),
    re.compile(r"([A-Z][A-Za-z'\-]+\s+[A-Z][A-Za-z'\-]+)\s+(?:here|speaking|calling)"),
)
_NOT_NAME = {
    "i",
    "im",
    "hi",
    "hello",
    "yes",
    "no",
    "the",
    "a",
    "an",
    "my",
    "it",
    "its",
    "this",
    "that",
    "sure",
    "okay",
    "ok",
    "um",
    "uh",
    "please",
    "thanks",
    "thank",
    "you",
    "calling",
    "about",
    "and",
    "for",
    "to",
    "on",
    "at",
    "is",
    "am",
    "was",
    "would",
    "like",
    "need",
    "want",
    "it's",
    "i'm",
    "that's",
    "this's",
    "sorry",
    "name",
    "know",
    "yeah",
    "mean",
}


def _clean_name(raw: str) -> str | None:
    words = [w for w in re.split(r"\s+", raw.strip(" ,.!?")) if w]
    while words and words[-1].lower().strip(".,") in _NOT_NAME:
        words.pop()
    while words and words[0].lower().strip(".,") in _NOT_NAME:
        words.pop(0)
    if not 1 <= len(words) <= 4 or not all(re.fullmatch(r"[A-Za-z'\-.]+", w) for w in words):
        return None
    return " ".join(w[:1].upper() + w[1:] for w in words)


def parse_person_name(text: str, opts: Mapping[str, Any] | None = None) -> str | None:
    """A person's name from "My name is Ana Ruiz" / "first name Ana, last name Ruiz" /
    a bare "Ana Ruiz." (the last match wins, so a self-correction keeps the correction)."""
    found: list[tuple[int, str]] = []
    for i, pat in enumerate(_NAME_PATTERNS):
        for m in pat.finditer(text):
            name = " ".join(m.groups()) if i == 0 else m.group(1)
            cleaned = _clean_name(name)
            if cleaned:
                found.append((m.start(), cleaned))
    if found:
        return max(found)[1]
    if (opts or {}).get("strict"):
        return None
    # A bare answer: the whole text minus fillers, if it looks like a name.
    bare = _FILLER_RE.sub("", text.strip()).strip(" .!?,")
    for part in reversed(re.split(r",\s*(?:no|sorry|I mean)[,\s]+", bare, flags=re.I)):
        cleaned = _clean_name(part)
        if cleaned and len(cleaned.split()) >= 2:
            return cleaned
    # Recognition lost the capitals or put a comma mid-name ("this is bruce, keller"):
    # the answer to "what's your name" minus its lead-in is the name.
    bare = _NAME_LEAD_RE.sub("", bare).strip(" .!?,")
    bare = re.sub(r"\s*,\s*", " ", bare)
    bare = re.sub(r"\s+(?:here|speaking|calling|please|thanks|thank you)$", "", bare, flags=re.I)
    cleaned = _clean_name(bare)
    if cleaned and (len(cleaned.split()) >= 2 or (opts or {}).get("guess")):
        return cleaned
    return None


_NAME_LEAD_RE = re.compile(
    r"^(?:(?:yeah|yes|yep|sure|okay|ok|so|well|oh|hi|hello|hey|um|uh)[,.!]?\s+)*"
    r"(?:(?:it's|it is|its|this is|my name is|my name's|the name is|name's|i'm|i am|"
    r"that's|that is|it's under|under)\s+)?",
    re.I,
)


_ORD_WORD_RE = "|".join(
    sorted(
        [re.escape(w) for w in _ORD_VALUE]
        + [rf"{t}[- ]{o}" for t in ("twenty", "thirty") for o in _ORD_ONES[1:10]],
        key=len,
        reverse=True,
    )
)
_MONTH_RE = "|".join(sorted(_MONTH_LOOKUP, key=len, reverse=True))
_DAY_RE = rf"(?:(\d{{1,2}})(?:st|nd|rd|th)?|({_ORD_WORD_RE}))"
_YEAR_WORDS_RE = r"(?:[a-z]+(?:[ -][a-z]+){1,4})"
_YEAR_RE = rf"(?:,?\s*(\d{{4}}|{_YEAR_WORDS_RE}))?"
_DATE_MDY = re.compile(rf"\b({_MONTH_RE})\.?\s+(?:the\s+)?{_DAY_RE}\b{_YEAR_RE}", re.I)
_DATE_DMY = re.compile(
    rf"\b(?:the\s+)?{_DAY_RE}\s+(?:(?:the|a|uh|um)\s+)?(?:of\s+)?({_MONTH_RE})\b\.?{_YEAR_RE}",
    re.I,
)
_DATE_NUM = re.compile(r"\b(\d{1,2})[/\-.](\d{1,2})(?:[/\-.](\d{4}|\d{2}))?\b")
_DATE_ISO = re.compile(r"\b(\d{4})-(\d{2})-(\d{2})\b")
_WEEKDAY_DAY = re.compile(rf"\b(?:{'|'.join(WEEKDAYS)}),?\s+(?:the\s+)?{_DAY_RE}\b", re.I)
_RELATIVE = re.compile(r"\b(today|tomorrow)\b", re.I)
_DIGIT = re.compile(r"\d")


def fold(text: str) -> str:
    """``text`` as case-insensitive patterns see it, for looking up a word a pattern needs
    before running it: casefolded, and the dotless i as i (which ``re.I`` also matches)."""
    low = text.casefold()
    return low.replace("\u0131", "i") if "\u0131" in low else low


#: The weekdays as :func:`fold` gives them (to look for one before running a pattern).
WEEKDAY_WORDS = tuple(w.casefold() for w in WEEKDAYS)


def _ord_to_int(word: str) -> int | None:
    w = word.lower().replace(" ", "-")
    if w in _ORD_VALUE:
        return _ORD_VALUE[w]
    if "-" in w:
        t, _, o = w.partition("-")
        if t in _WORD_VALUE and o in _ORD_VALUE:
            return _WORD_VALUE[t] + _ORD_VALUE[o]
    return None


def _day(num: str | None, word: str | None) -> int | None:
    if num:
        return int(num)
    return _ord_to_int(word) if word else None


def _parse_year_words(text: str) -> int | None:
    toks = _tokens(text)
    if not toks:
        return None
    if toks[:2] == ["two", "thousand"]:
        tail = _words_to_number(toks[2:]) if len(toks) > 2 else 0
        return 2000 + tail if tail is not None and tail < 100 else None
    # "nineteen eighty four", "nineteen oh five", "twenty twelve"
    hi = _WORD_VALUE.get(toks[0])
    if hi is None or not 10 <= hi <= 20:
        return None
    rest = toks[1:]
    if rest and rest[0] == "oh" and len(rest) == 2 and rest[1] in _WORD_VALUE:
        return hi * 100 + _WORD_VALUE[rest[1]]
    lo = _words_to_number(rest)
    if lo is None or lo >= 100:
        return None
    return hi * 100 + lo


def _year(raw: str | None) -> int | None:
    if not raw:
        return None
    if raw.isdigit():
        y = int(raw)
        return y + (1900 if y >= 30 else 2000) if y < 100 else y
    # Trim trailing non-number words ("nineteen eighty four please").
    toks = _tokens(raw)
    for end in range(len(toks), 0, -1):
        year = _parse_year_words(" ".join(toks[:end]))
        if year is not None:
            return year
    return None


def _mkdate(y: int | None, m: int, d: int, *, future: bool) -> _dt.date | None:
    try:
        if y is not None:
            return _dt.date(y, m, d)
        cand = _dt.date(REFERENCE_DATE.year, m, d)
        if future and cand < REFERENCE_DATE:
            cand = _dt.date(REFERENCE_DATE.year + 1, m, d)
        return cand
    except ValueError:
        return None


def _find_dates(text: str, *, future: bool) -> list[tuple[int, _dt.date]]:
    return [(a, d) for a, _, d in find_dates(text, future=future)]


def find_dates(
    text: str, *, future: bool = True, asr: bool = True
) -> list[tuple[int, int, _dt.date]]:
    """Every date in ``text`` as (start, end, date), in the order the patterns find them.

    The forms :func:`parse_date` reads: ISO, "June 17th", "the seventeenth of June",
    "6/17", and with ``future`` "Tuesday the 17th", "today", "tomorrow" (a date without a
    year is its next occurrence on or after :data:`REFERENCE_DATE`; without ``future`` it
    is in the reference year). ``asr``: first read misheard month names ("Marsh 16");
    off for text that did not come through speech recognition."""
    if asr:
        text = _fix_months(text)
    out: list[tuple[int, int, _dt.date]] = []
    spans: list[tuple[int, int]] = []
    # Each pattern below needs a digit or one of its words somewhere in the text: looking
    # for those first (in C) spares the patterns' position-by-position scans of text that
    # holds no date at all, which is most of what agents say.
    low = fold(text)
    digit = _DIGIT.search(text) is not None
    month = any(k in low for k in _MONTH_LOOKUP)

    def add(pos: int, end: int, d: _dt.date | None) -> None:
        if d is not None and not any(a <= pos < b for a, b in spans):
            out.append((pos, end, d))
            spans.append((pos, end))

    for m in _DATE_ISO.finditer(text) if digit else ():
        add(m.start(), m.end(), _mkdate(int(m[1]), int(m[2]), int(m[3]), future=future))
    for m in _DATE_MDY.finditer(text) if month else ():
        day = _day(m[2], m[3])
        if day:
            year = _year(m[4])
            # Words after the day that are not a year are not part of the date's span.
            end = m.end() if year is not None else max(m.end(2), m.end(3))
            add(m.start(), end, _mkdate(year, _MONTH_LOOKUP[m[1].casefold()], day, future=future))
    for m in _DATE_DMY.finditer(text) if month else ():
        day = _day(m[1], m[2])
        if day:
            year = _year(m[4])
            end = m.end() if year is not None else m.end(3)
            add(m.start(), end, _mkdate(year, _MONTH_LOOKUP[m[3].casefold()], day, future=future))
    for m in _DATE_NUM.finditer(text) if digit else ():
        # A time like 2:30 is not a date; "3/5/1984" is US month/day/year.
        add(m.start(), m.end(), _mkdate(_year(m[3]), int(m[1]), int(m[2]), future=future))
    if future:
        weekday = any(w in low for w in WEEKDAY_WORDS)
        for m in _WEEKDAY_DAY.finditer(text) if weekday else ():
            day = _day(m[1], m[2])
            if day:
                d = REFERENCE_DATE
                for _ in range(62):
                    if d.day == day:
                        break
                    d += _dt.timedelta(days=1)
                add(m.start(), m.end(), d)
        for m in _RELATIVE.finditer(text) if "to" in low else ():
            delta = 0 if m[1].lower() == "today" else 1
            add(m.start(), m.end(), REFERENCE_DATE + _dt.timedelta(days=delta))
    return out


def parse_date_of_birth(text: str, opts: Mapping[str, Any] | None = None) -> str | None:
    """ISO date of birth from spoken text; needs a year in the past. Last match wins."""
    found = [
        (p, d)
        for p, d in _find_dates(text, future=False)
        if d.year <= REFERENCE_DATE.year and d <= REFERENCE_DATE and d.year != REFERENCE_DATE.year
    ]
    return max(found)[1].isoformat() if found else None


def parse_date(text: str, opts: Mapping[str, Any] | None = None) -> str | None:
    """ISO date (an appointment date: no year means the next one on/after REFERENCE_DATE)."""
    found = [(p, d) for p, d in _find_dates(text, future=True) if d >= REFERENCE_DATE]
    if found:
        return max(found)[1].isoformat()
    if (opts or {}).get("guess"):
        return _guess_date(text)
    return None


_WEEKDAY_RE = re.compile(rf"\b({'|'.join(WEEKDAYS)})\b", re.I)


def _guess_date(text: str) -> str | None:
    """The closest reading of a date the month of which was lost: a day of the month
    alone is its next occurrence, a weekday alone the next such day."""
    days: list[tuple[int, int]] = []
    for m in _WORDISH_RE.finditer(text):
        n = _day_of(m.group(0)) if _is_dayish(m.group(0)) else None
        if n:
            days.append((m.start(), n))
    words = text.lower().replace("-", " ").split()
    for i in range(len(words) - 1):  # "twenty third"
        t = _ord_to_int(f"{words[i].strip('.,')}-{words[i + 1].strip('.,')}")
        if t:
            days.append((10**6 + i, t))
    if days:
        day = max(days)[1]
        d = REFERENCE_DATE
        for _ in range(62):
            if d.day == day:
                return d.isoformat()
            d += _dt.timedelta(days=1)
    wd = list(_WEEKDAY_RE.finditer(text))
    if wd:
        want = [w.lower() for w in WEEKDAYS].index(wd[-1].group(1).lower())
        d = REFERENCE_DATE + _dt.timedelta(days=1)
        while d.weekday() != want:
            d += _dt.timedelta(days=1)
        return d.isoformat()
    return None


def _day_of(tok: str) -> int | None:
    t = tok.lower()
    m = re.fullmatch(r"(\d{1,2})(?:st|nd|rd|th)?", t)
    if m:
        n = int(m.group(1))
        return n if 1 <= n <= 31 else None
    return _ORD_VALUE.get(t)


_DIGIT_1_9 = "one|two|three|four|five|six|seven|eight|nine"
_HOUR_WORD = "|".join(sorted(_ONES[1:13], key=len, reverse=True))
_TIME_PATTERNS: tuple[tuple[re.Pattern[str], str], ...] = (
    (re.compile(r"\b(\d{1,2}):(\d{2})\s*(a\.?m\.?|p\.?m\.?)?", re.I), "hm"),
    (re.compile(r"\b(\d{1,2})\s*(a\.?m\.?|p\.?m\.?)(?![a-z])", re.I), "h"),
    (re.compile(rf"\bhalf past ({_HOUR_WORD}|\d{{1,2}})\b", re.I), "half"),
    (re.compile(rf"\bquarter past ({_HOUR_WORD}|\d{{1,2}})\b", re.I), "qpast"),
    (re.compile(rf"\bquarter to ({_HOUR_WORD}|\d{{1,2}})\b", re.I), "qto"),
    (re.compile(rf"\b({_HOUR_WORD}) o'?clock\b", re.I), "oclock"),
    (
        re.compile(
            rf"\b({_HOUR_WORD})[ -](o'?clock|oh[ -](?:{_DIGIT_1_9})|"
            rf"(?:twenty|thirty|forty|fifty)(?:[ -](?:{_DIGIT_1_9}))?|"
            rf"ten|eleven|twelve|thirteen|fourteen|fifteen|sixteen|seventeen|eighteen|nineteen)"
            rf"(?:\s*(a\.?m\.?|p\.?m\.?))?\b",
            re.I,
        ),
        "words",
    ),
    (re.compile(rf"\b({_HOUR_WORD})\s+(a\.?m\.?|p\.?m\.?)(?![a-z])", re.I), "wordh"),
    (re.compile(r"\b(noon|midday)\b", re.I), "noon"),
)


_HOUR_WORDS = tuple(w.casefold() for w in _ONES[1:13])
_TIME_WORDS = {"half": "half past", "qpast": "quarter past", "qto": "quarter to"}


def _hour_value(tok: str) -> int:
    return int(tok) if tok.isdigit() else _WORD_VALUE[tok.lower()]


def parse_time(text: str, opts: Mapping[str, Any] | None = None) -> str | None:
    """``HH:MM`` from "2:30 PM" / "half past two in the afternoon" / "14:30" / "noon".

    Without AM/PM, hours 1-7 are taken as afternoon (business hours). Last match wins."""
    found = [(a, h, mi) for a, _, h, mi in find_times(text)]
    if not found:
        return _guess_time(text) if (opts or {}).get("guess") else None
    _, h, mi = max(found)
    return f"{h:02d}:{mi:02d}"


def find_times(text: str) -> list[tuple[int, int, int, int]]:
    """Every clock time in ``text`` as (start, end, hour 0-23, minute), in the forms
    :func:`parse_time` reads (with its business-hours rule for a missing AM/PM)."""
    found: list[tuple[int, int, int, int]] = []
    taken: list[tuple[int, int]] = []
    low = fold(text)
    digit = _DIGIT.search(text) is not None
    hour_word = any(w in low for w in _HOUR_WORDS)
    for pat, kind in _TIME_PATTERNS:
        # What each pattern needs somewhere in the text (see find_dates).
        if not (digit if kind in ("hm", "h") else
                hour_word if kind in ("words", "wordh", "oclock") else
                "noon" in low or "midday" in low if kind == "noon" else
                (digit or hour_word) and _TIME_WORDS[kind] in low):
            continue
        for m in pat.finditer(text):
            if any(a <= m.start() < b for a, b in taken):
                continue
            ampm: str | None = None
            if kind == "hm":
                h, mi, ampm = int(m[1]), int(m[2]), m[3]
            elif kind == "h":
                h, mi, ampm = int(m[1]), 0, m[2]
            elif kind in ("half", "qpast", "qto", "oclock"):
                h = _hour_value(m[1])
                mi = {"half": 30, "qpast": 15, "qto": 45, "oclock": 0}[kind]
                if kind == "qto":
                    h = (h - 1) or 12
            elif kind == "words":
                h = _hour_value(m[1])
                tail = m[2].lower().replace("-", " ")
                mi = 0 if "clock" in tail else (_words_to_number(tail.split()) or 0)
                ampm = m[3]
            elif kind == "wordh":
                h, mi, ampm = _hour_value(m[1]), 0, m[2]
            else:
                h, mi = 12, 0
            if h > 23 or mi > 59:
                continue
            after = text[m.end() : m.end() + 24].lower()
            if ampm is None:
                if "morning" in after:
                    ampm = "am"
                elif "afternoon" in after or "evening" in after or "tonight" in after:
                    ampm = "pm"
            if ampm and h <= 12:
                pm = ampm.lower().startswith("p")
                h = (h % 12) + (12 if pm else 0)
            elif ampm is None and 1 <= h <= 7:
                h += 12
            found.append((m.start(), m.end(), h, mi))
            taken.append((m.start(), m.end()))
    return found


def _guess_time(text: str) -> str | None:
    """A bare hour ("around two", "at 10") read with the business-hours rule."""
    found: list[tuple[int, int]] = []
    for m in re.finditer(r"\b(\d{1,2})\b|[A-Za-z]+", text):
        tok = m.group(0).lower()
        h = int(tok) if tok.isdigit() else _WORD_VALUE.get(tok, -1) if tok != "oh" else -1
        if 1 <= h <= 12:
            found.append((m.start(), h))
    if not found:
        return None
    h = max(found)[1]
    if 1 <= h <= 7:
        h += 12
    return f"{h:02d}:00"


def _digits_from_words(text: str, *, soft: bool = False) -> list[tuple[int, str]]:
    """(position, digit string) runs from text mixing digits and digit words. With
    ``soft``, a word that sounds like a digit word ("do", "sixth") counts as that digit
    when it stands next to digits."""
    toks = list(re.finditer(r"\d+|[A-Za-z]+", text))
    pieces: list[str] = []
    for m in toks:
        tok = m.group(0).lower()
        if tok.isdigit():
            pieces.append(tok)
        elif tok in _DIGIT_WORDS:
            pieces.append(_DIGIT_WORDS[tok])
        elif tok in ("double", "triple"):
            pieces.append("*" + tok)
        else:
            pieces.append("")
    if soft:
        hard = [bool(p) for p in pieces]
        for i, m in enumerate(toks):
            if hard[i]:
                continue
            near = (i > 0 and hard[i - 1]) or (i + 1 < len(toks) and hard[i + 1])
            if near:
                d = _near_digit(m.group(0))
                if d is not None:
                    pieces[i] = d
    runs: list[tuple[int, str]] = []
    cur, start, gap = "", -1, 0
    for m, piece in zip(toks, pieces, strict=True):
        if piece:
            if not cur:
                start = m.start()
            cur += piece
            gap = 0
        else:
            gap += 1
            if cur and gap >= 1:
                runs.append((start, cur))
                cur = ""
    if cur:
        runs.append((start, cur))
    out = []
    for pos, s in runs:
        s = re.sub(r"\*double(\d)", r"\1\1", s)
        s = re.sub(r"\*triple(\d)", r"\1\1\1", s)
        out.append((pos, s.replace("*double", "").replace("*triple", "")))
    return out


def parse_phone(text: str, opts: Mapping[str, Any] | None = None) -> str | None:
    """Ten phone digits from "(555) 123-4567" / "five five five, one two three, ...".
    A leading country code 1 is dropped. Last match wins."""
    for soft in (False, True):
        found = [s for _, s in _digits_from_words(text, soft=soft) if len(s) in (10, 11)]
        found = [s[1:] if len(s) == 11 and s[0] == "1" else s for s in found]
        found = [s for s in found if len(s) == 10]
        if found:
            return found[-1]
    if (opts or {}).get("guess"):  # a digit lost: the closest thing said
        runs = [s for _, s in _digits_from_words(text, soft=True) if 7 <= len(s) <= 12]
        if runs:
            return max(reversed(runs), key=lambda s: -abs(len(s) - 10))[:10]
    return None


def _street_suffixes() -> frozenset[str]:
    try:
        from faker.providers.address.en_US import Provider
    except ImportError:  # pragma: no cover - faker is a dependency
        return frozenset()
    return frozenset(s.lower() for s in Provider.street_suffixes)


_STREET_SUFFIXES = _street_suffixes()

_STOP_WORDS = {
    "and",
    "please",
    "for",
    "on",
    "at",
    "to",
    "i",
    "i'd",
    "i'm",
    "is",
    "it",
    "that",
    "this",
    "thanks",
    "thank",
    "who",
    "which",
    "if",
    "can",
    "could",
    "would",
    "about",
    "tomorrow",
    "next",
    "with",
    "in",
    "the",
    "my",
    "we",
    "you",
    "so",
    "but",
    "or",
}


def parse_address(text: str, opts: Mapping[str, Any] | None = None) -> str | None:
    """A street address "4821 Maple Grove" (building number then street words), the
    number in digits or spoken digit by digit. Last match wins."""
    norm = re.sub(
        r"\b(?:zero|one|two|three|four|five|six|seven|eight|nine|oh)(?:[ -](?:zero|one|two|"
        r"three|four|five|six|seven|eight|nine|oh))+\b",
        lambda m: "".join(_DIGIT_WORDS[w] for w in re.split(r"[ -]", m.group(0).lower())),
        text,
        flags=re.I,
    )
    found: list[str] = []
    for m in re.finditer(r"\b(\d{1,6})\s+((?:[A-Za-z][A-Za-z'.]*\s*){1,5})", norm):
        words: list[str] = []
        for w in m.group(2).split():
            wl = w.lower().strip(".,")
            if wl in _STOP_WORDS or wl in ("am", "pm", "a.m.", "p.m."):
                break
            words.append(w.strip(",."))
        # A known street suffix ends the street name ("Dennis Trafficway sometime").
        ends = [i for i, w in enumerate(words) if w.lower() in _STREET_SUFFIXES]
        if ends and ends[-1] >= 1:
            words = words[: ends[-1] + 1]
        elif not all(w[:1].isupper() for w in words):
            continue  # "16 around half past eleven" is not a street
        if words:
            found.append(f"{m.group(1)} {' '.join(words)}")
    return found[-1] if found else None


_AMOUNT_RE = re.compile(
    r"\$\s*([\d,]+(?:\.\d+)?)\s*(k|thousand|million|m)?\b|\b([\d,]+(?:\.\d+)?)\s*(k|thousand|million)?\s*(?:dollars|bucks)?",
    re.I,
)


def _fmt_amount(x: float) -> str:
    return str(int(x)) if x == int(x) else f"{x:.2f}".rstrip("0").rstrip(".")


def parse_amount(text: str, opts: Mapping[str, Any] | None = None) -> str | None:
    """A money amount ("$450,000", "450k", "four hundred fifty thousand dollars")."""
    if (opts or {}).get("strict") and not re.search(
        r"\$|dollar|bucks|\d\s*k\b|thousand|million", text, re.I
    ):
        return None  # a bare number in passing is not an amount
    found = [(a, x) for a, _, x in find_amounts(text)]
    if not found:
        return None
    return _fmt_amount(max(found)[1])


_AMOUNT_WORDS = frozenset(set(_WORD_VALUE) - {"oh"} | {"hundred", "thousand", "million", "and"})


def find_amounts(text: str) -> list[tuple[int, int, float]]:
    """Every amount in ``text`` as (start, end, value): digits with an optional "$", "k",
    "thousand" or "million" ("$450,000", "450k", "1.2 million"; bare numbers from 100 up)
    and runs of number words ("four hundred fifty thousand"). Nothing here says the
    amount is money: callers of this decide from the words around it."""
    found: list[tuple[int, int, float]] = []
    for m in _AMOUNT_RE.finditer(text):
        num = m[1] or m[3]
        if not num or not re.search(r"\d", num):
            continue
        mult = (m[2] or m[4] or "").lower()
        x = float(num.replace(",", ""))
        x *= {"k": 1e3, "thousand": 1e3, "m": 1e6, "million": 1e6}.get(mult, 1)
        if m[1] or mult or x >= 100 or "dollar" in m.group(0).lower():
            found.append((m.start(), m.end(), x))
    toks = list(re.finditer(r"[A-Za-z]+", text.replace("-", " ")))
    i = 0
    while i < len(toks):
        j = i
        while (
            j < len(toks)
            and toks[j].group(0).lower() in _AMOUNT_WORDS
        ):
            j += 1
        if j > i:
            words = [t.group(0).lower() for t in toks[i:j]]
            n = _words_to_number(words)
            after = text[toks[j - 1].end() : toks[j - 1].end() + 9].lower()
            # "one of your listings" is not an amount; a multiplier word right after
            # digits ("1.6 million") was already read with them.
            if (
                n is not None
                and words[0] not in ("hundred", "thousand", "million", "and")
                and (n >= 100 or "dollar" in after)
            ):
                found.append((toks[i].start(), toks[j - 1].end(), float(n)))
            i = j
        else:
            i += 1
    return found


def parse_number(text: str, opts: Mapping[str, Any] | None = None) -> str | None:
    """A small count ("3", "three")."""
    found: list[tuple[int, int]] = [
        (m.start(), int(m.group(0))) for m in re.finditer(r"\b\d+\b", text)
    ]
    for m in re.finditer(r"[A-Za-z]+", text):
        w = m.group(0).lower()
        if w in _WORD_VALUE and w != "oh":
            found.append((m.start(), _WORD_VALUE[w]))
    return str(max(found)[1]) if found else None


def parse_record_id(text: str, opts: Mapping[str, Any] | None = None) -> str | None:
    """``PREFIX-DIGITS`` from "L-48213" / "L 4 8 2 1 3" / "L dash four eight two one three".

    ``opts['prefix']`` names the expected letters; without it any 1-4 letter prefix."""
    prefix = str((opts or {}).get("prefix") or "")
    digits_runs = _digits_from_words(text)
    pat = re.escape(prefix) if prefix else "[A-Za-z]{1,4}"
    letters_spaced = r"\s*".join(re.escape(c) for c in prefix) if prefix else pat
    best: tuple[int, str] | None = None
    for m in re.finditer(rf"\b({letters_spaced})(?:\s*(?:-|dash|hyphen|number)?\s*)", text, re.I):
        after = m.end()
        for pos, run in digits_runs:
            if pos >= after and pos - after <= 2 and len(run) >= 3:
                pre = prefix or re.sub(r"\s", "", m.group(1)).upper()
                cand = (m.start(), f"{pre.upper()}-{run}")
                if best is None or cand[0] >= best[0]:
                    best = cand
                break
    if best:
        return best[1]
    # Bare digits: assume the expected prefix.
    want = int((opts or {}).get("digits") or 0)
    runs = [s for _, s in digits_runs if (len(s) == want if want else len(s) >= 4)]
    if runs and prefix:
        return f"{prefix.upper()}-{runs[-1]}"
    return None


def parse_choice(text: str, opts: Mapping[str, Any] | None = None) -> str | None:
    """The canonical choice whose name or a synonym occurs in the text (last mention wins;
    longer phrases beat shorter ones at the same place)."""
    choices = (opts or {}).get("choices") or {}
    low = " " + re.sub(r"[^a-z0-9' ]+", " ", text.lower()) + " "
    best: tuple[int, int, str] | None = None
    items = list(
        choices.items() if isinstance(choices, Mapping) else ((c, []) for c in choices)
    )
    for canon, syns in items:
        for phrase in (canon, *syns):
            p = " " + re.sub(r"[^a-z0-9' ]+", " ", str(phrase).lower()).strip() + " "
            idx = low.rfind(p)
            if idx >= 0:
                cand = (idx, len(p), str(canon))
                if best is None or cand[:2] > best[:2]:
                    best = cand
    if best or (opts or {}).get("strict"):
        return best[2] if best else None
    # Asked for it: a misheard, split or merged phrase ("pleasecall first") will do, and
    # on a guess the closest option at all.
    guess = bool((opts or {}).get("guess"))
    scored: list[tuple[float, int, str]] = []
    for canon, syns in items:
        for phrase in (canon, *syns):
            sc = fuzzy_phrase_score(str(phrase), text)
            if sc == 0.0 and guess:
                sc = _partial_score(str(phrase), text)
            if sc > 0:
                scored.append((sc, len(str(phrase)), str(canon)))
    if not scored:
        return None
    top = max(scored)
    return top[2] if top[0] >= (0.5 if guess else 0.7) else None


def _partial_score(phrase: str, text: str) -> float:
    """0..1 similarity of ``phrase`` to its best-matching stretch of ``text`` (letters
    only), for phrases of 4+ letters."""
    from rapidfuzz import fuzz

    p, t = _despace(phrase), _despace(text)
    if len(p) < 4 or not t:
        return 0.0
    return float(fuzz.partial_ratio(p, t)) / 100.0 * 0.8


def parse_free_text(text: str, opts: Mapping[str, Any] | None = None) -> str | None:
    """The caller's words, fillers stripped."""
    out = _FILLER_RE.sub("", text.strip()).strip()
    return out or None


PARSERS: dict[str, Parser] = {
    "person_name": parse_person_name,
    "date_of_birth": parse_date_of_birth,
    "date": parse_date,
    "time": parse_time,
    "phone": parse_phone,
    "address": parse_address,
    "amount": parse_amount,
    "number": parse_number,
    "record_id": parse_record_id,
    "choice": parse_choice,
    "free_text": parse_free_text,
}


def parse(slot_type: str, text: str, opts: Mapping[str, Any] | None = None) -> str | None:
    """Canonical value of ``slot_type`` found in caller ``text``, or None.

    Recognition debris is read through first (fillers, doubled words, one-word
    self-corrections; see :func:`asr_clean`). ``opts['strict']``: only unambiguous
    mentions (for values volunteered in passing). ``opts['guess']``: the agent has asked
    twice and takes its best guess (a lone first name, a day without a month, the closest
    choice, a phone number with a digit missing) rather than nothing."""
    if slot_type != "free_text":
        text = apply_corrections(asr_clean(text))
    return PARSERS[slot_type](text, opts or {})


# --------------------------------------------------------------------------- grading


_PUNCT_RE = re.compile(r"[^\w\s]", re.UNICODE)
_WS_RE = re.compile(r"\s+")


def _sound_keys(word: str) -> tuple[str, str]:
    import jellyfish

    letters = re.sub(r"[^a-z]", "", word.lower())
    return jellyfish.metaphone(letters), jellyfish.nysiis(letters)


def sounds_like(a: str, b: str) -> bool:
    """Whether two normalised argument values (:func:`normalise_arg`) can be the same words
    heard on a call: word for word, a word with a digit equal, other words equal or sharing
    a phonetic code (Metaphone or NYSIIS: "khan"/"kahn", "gonzalez"/"gonzales",
    "glens"/"glenn s"). Spelling that speech does not carry; not a different name."""
    if a == b:
        return True
    wa, wb = a.replace("'", "").split(), b.replace("'", "").split()
    if not wa or len(wa) != len(wb):
        return False
    for x, y in zip(wa, wb, strict=True):
        if x == y:
            continue
        if any(c.isdigit() for c in x + y):
            return False
        kx, ky = _sound_keys(x), _sound_keys(y)
        if not (kx[0] and kx[0] == ky[0]) and not (kx[1] and kx[1] == ky[1]):
            return False
    return True


def normalise_arg(value: Any) -> str:
    """Normalise a tool-call argument for comparison: dates to ISO, times to HH:MM, phone
    numbers to digits, numbers without trailing zeros, everything else lower case with
    punctuation removed and whitespace collapsed. ``None`` becomes ""."""
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float):
        return _fmt_amount(float(value))
    text = str(value).strip()
    if not text:
        return ""
    if re.fullmatch(r"\d{4}-\d{1,2}-\d{1,2}", text):
        y, mo, d = (int(x) for x in text.split("-"))
        return f"{y:04d}-{mo:02d}-{d:02d}"
    if re.fullmatch(r"\d{1,2}/\d{1,2}/\d{4}", text) or re.fullmatch(
        rf"(?i)(?:{_MONTH_RE})\.?\s+\d{{1,2}}(?:st|nd|rd|th)?,?\s+\d{{4}}", text
    ):
        dob = parse_date_of_birth(text) or parse_date(text)
        if dob:
            return dob
    if re.fullmatch(r"(?i)\d{1,2}(?::\d{2})?\s*(?:[ap]\.?m\.?)?", text) and (
        ":" in text or "m" in text.lower()
    ):
        t = parse_time(text)
        if t:
            return t
    digits = re.sub(r"\D", "", text)
    if re.fullmatch(r"[\d\s()+.\-]+", text) and 10 <= len(digits) <= 11:
        return digits[1:] if len(digits) == 11 and digits[0] == "1" else digits
    if re.fullmatch(r"\$?\s*[\d,]+(?:\.\d+)?", text):
        try:
            return _fmt_amount(float(text.replace("$", "").replace(",", "")))
        except ValueError:
            pass
    return _WS_RE.sub(" ", _PUNCT_RE.sub("", text.lower())).strip()
