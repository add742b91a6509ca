"""Numbers in a transcript written as numerals, before the LLM sees it.

A recogniser writes what it hears in words: "seven six zero eight six eight one three three
four", "three thousand five hundred sixty gonzalez forge", "four twelve nineteen fifty
nine". Cloud STT services offer to write numbers as numerals instead (Deepgram's
``smart_format``/``numerals``, Google's spoken-number formatting); an offline recogniser
does not, so this bot does it itself: LLMs (and the tool arguments they write) read "(760)
868-1334" far more reliably than ten words. Pure string work, no model.

- runs of three or more single digits -> a digit string ("L dash six eight eight zero
  nine" -> "L dash 68809"; a phone number said in groups becomes one string);
- cardinals -> numerals ("three thousand five hundred sixty" -> "3560");
- numbers said in pairs, as years and house numbers are -> four digits ("seventeen
  nineteen" -> "1719", "nineteen fifty nine" -> "1959", "twenty oh five" -> "2005");
- month, day, year said as numbers -> ``M/D/YYYY`` ("four twelve nineteen fifty nine" ->
  "4/12/1959"); an answer that is only a month and a day -> ``M/D`` ("six eleven" ->
  "6/11"); a month's name and a day -> "june 7";
- clock times -> ``H:MM am/pm`` ("three thirty pm" -> "3:30 pm", "ten am" -> "10:00 am").

A single number word on its own ("I need one appointment") is left as a word.
"""

from __future__ import annotations

import re

_ONES = ("zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine",
         "ten", "eleven", "twelve", "thirteen", "fourteen", "fifteen", "sixteen",
         "seventeen", "eighteen", "nineteen")
_TENS = ("", "", "twenty", "thirty", "forty", "fifty", "sixty", "seventy", "eighty",
         "ninety")
SMALL = {w: i for i, w in enumerate(_ONES)} | {w: 10 * i for i, w in enumerate(_TENS) if w}
DIGIT = {w: str(i) for i, w in enumerate(_ONES[:10])} | {"oh": "0"}
_NUMBERISH = set(SMALL) | {"hundred", "thousand", "oh"}
_AMPM = {"am", "pm", "a.m.", "p.m."}
_MONTHS = {"january", "february", "march", "april", "may", "june", "july", "august",
           "september", "october", "november", "december"}


def _two_digit(words: list[str], i: int) -> tuple[int, int] | None:
    """A number 0-99 said at ``words[i]`` ("fifty nine", "seventeen"): (value, words)."""
    w = words[i] if i < len(words) else ""
    if w not in SMALL:
        return None
    v = SMALL[w]
    if v >= 20 and v % 10 == 0 and i + 1 < len(words) and 1 <= SMALL.get(words[i + 1], 0) <= 9:
        return v + SMALL[words[i + 1]], 2
    return v, 1


def _cardinal(words: list[str], i: int) -> tuple[int, int] | None:
    """A cardinal with "hundred"/"thousand" at ``words[i]``: (value, words used)."""
    total, cur, j, scaled = 0, 0, i, False
    while j < len(words):
        got = _two_digit(words, j)
        if got is not None and cur % 100 == 0:
            cur += got[0]
            j += got[1]
            continue
        if words[j] == "hundred" and 0 < cur < 100:
            cur *= 100
            scaled = True
        elif words[j] == "thousand" and 0 < cur < 1000 and total == 0:
            total, cur = cur * 1000, 0
            scaled = True
        else:
            break
        j += 1
    return (total + cur, j - i) if scaled and j > i else None


def _pair(words: list[str], i: int) -> tuple[int, int] | None:
    """Four digits said as two pairs at ``words[i]``: "seventeen nineteen", "nineteen oh
    five", "thirty five sixty", "nineteen hundred" (years and house numbers)."""
    hi = _two_digit(words, i)
    if hi is None or hi[0] < 10:
        return None
    j = i + hi[1]
    nxt = words[j] if j < len(words) else ""
    if nxt == "hundred":
        return hi[0] * 100, hi[1] + 1
    if nxt == "oh" and j + 1 < len(words) and 1 <= SMALL.get(words[j + 1], 0) <= 9:
        return hi[0] * 100 + SMALL[words[j + 1]], hi[1] + 2
    lo = _two_digit(words, j)
    if lo is None or lo[0] < 10:
        return None
    return hi[0] * 100 + lo[0], hi[1] + lo[1]


def _date(words: list[str], i: int) -> tuple[str, int] | None:
    """Month, day and year said as numbers at ``words[i]`` ("four twelve nineteen fifty
    nine"): ("4/12/1959", words used)."""
    # "for"/"to" before a day and a year are the month "four"/"two" misheard.
    m = (4, 1) if words[i] == "for" else (2, 1) if words[i] in ("to", "too") else (
        _two_digit(words, i))
    if m is None or not 1 <= m[0] <= 12:
        return None
    d = _two_digit(words, i + m[1])
    if d is None or not 1 <= d[0] <= 31:
        return None
    y = _pair(words, i + m[1] + d[1])
    if y is None or not 1900 <= y[0] <= 2099:
        return None
    return f"{m[0]}/{d[0]}/{y[0]}", m[1] + d[1] + y[1]


def _month_day(words: list[str]) -> list[str]:
    """A month's name followed by a day said as a number: "june seven" -> "june 7"."""
    out = list(words)
    for i in range(len(out) - 1):
        if out[i] in _MONTHS:
            d = _two_digit(out, i + 1)
            if d is not None and 1 <= d[0] <= 31:
                out[i + 1:i + 1 + d[1]] = [str(d[0])]
    return out


def _numbers(words: list[str]) -> list[str]:
    """Words with number phrases replaced by numerals (single number words kept)."""
    out: list[str] = []
    i = 0
    while i < len(words):
        w = words[i]
        date = _date(words, i) if w in ("for", "to", "too") else None
        if date is not None:
            out.append(date[0])
            i += date[1]
            continue
        if w not in _NUMBERISH:
            out.append(w)
            i += 1
            continue
        date = _date(words, i)
        if date is not None:
            out.append(date[0])
            i += date[1]
            continue
        # A digit run: three or more single digits in a row.
        j = i
        while j < len(words) and words[j] in DIGIT:
            j += 1
        if j - i >= 3 and (w != "oh" or j - i >= 4):
            out.append("".join(DIGIT[x] for x in words[i:j]))
            i = j
            continue
        first = _two_digit(words, i)
        year = first and _pair(words, i + first[1])
        if first and year and 1900 <= year[0] <= 2099 and first[0] <= 31:
            # "twelve nineteen fifty nine": a day, then a year, not 1219 and 59.
            out.append(str(first[0]) if first[1] == 2 else w)
            i += first[1]
            continue
        for parse in (_cardinal, _pair):
            got = parse(words, i)
            if got is not None:
                out.append(str(got[0]))
                i += got[1]
                break
        else:
            got = _two_digit(words, i)
            if got is not None and got[1] == 2:
                out.append(str(got[0]))  # "fifty nine"
                i += 2
            else:
                out.append(w)
                i += 1
    return out


def _as_int(w: str) -> int | None:
    if w.isdigit():
        return int(w)
    return SMALL.get(w)


def _dates_and_times(words: list[str]) -> list[str]:
    out: list[str] = []
    i = 0
    while i < len(words):
        a = _as_int(words[i])
        b = _as_int(words[i + 1]) if i + 1 < len(words) else None
        c = words[i + 2] if i + 2 < len(words) else ""
        # month day year: "4 12 1959" / "four twelve 1959"
        if (a is not None and b is not None and 1 <= a <= 12 and 1 <= b <= 31
                and c.isdigit() and len(c) == 4 and 1900 <= int(c) <= 2099):
            out.append(f"{a}/{b}/{c}")
            i += 3
            continue
        # h [mm] am/pm
        if a is not None and 1 <= a <= 12:
            if words[i + 1:i + 2] and words[i + 1] in _AMPM:
                out.append(f"{a}:00 {words[i + 1]}")
                i += 2
                continue
            if (b is not None and 0 <= b <= 59 and i + 2 < len(words) and c in _AMPM
                    and not (words[i + 1].isdigit() and len(words[i + 1]) > 2)):
                out.append(f"{a}:{b:02d} {c}")
                i += 3
                continue
        out.append(words[i])
        i += 1
    return out


def _bare_month_day(words: list[str]) -> str | None:
    """An answer that is only a month and a day said as numbers ("six eleven" -> "6/11",
    "twelve twenty one" -> "12/21"), as callers answer "What day?". Callers say clock times
    with "am"/"pm", so two bare numbers are a date."""
    m = _two_digit(words, 0)
    if m is None or not 1 <= m[0] <= 12:
        return None
    d = _two_digit(words, m[1])
    if d is None or not 1 <= d[0] <= 31 or m[1] + d[1] != len(words):
        return None
    return f"{m[0]}/{d[0]}"


def numerals(text: str) -> str:
    """``text`` (a recogniser's lower-case words) with spoken numbers, dates and times
    written as numerals (see the module's docstring)."""
    words = text.split()
    if not any(w in _NUMBERISH for w in words):
        return text
    if 2 <= len(words) <= 4 and (md := _bare_month_day(words)) is not None:
        return md
    joined = " ".join(_dates_and_times(_numbers(_month_day(words))))
    return re.sub(r"\s+", " ", joined).strip()


def plain(text: str) -> str:
    """A written transcript ("At 627-813-9362.", "Three p. M.", "It's four twelve, nineteen
    fifty nine.") in the plain form :func:`numerals` reads: number words, months and
    "am"/"pm" in lower case, thousands separators and punctuation gone (digits joined by
    "-", "/" or ":" and apostrophes inside words are kept). Other words keep their case:
    "1719 Chavez Glens" stays a street to the LLM."""
    t = re.sub(r"\b([aApP])\.?\s*[mM]\b\.?", lambda m: m.group(1).lower() + "m", text)
    t = re.sub(r"(?<=\d),(?=\d{3}\b)", "", t)
    t = re.sub(r"[^\w\s'/:-]", " ", t)
    t = re.sub(r"(?<!\d)[-/:]|[-/:](?!\d)", " ", t)
    t = re.sub(r"(?<!\w)'|'(?!\w)", " ", t)
    vocab = _NUMBERISH | _MONTHS
    return " ".join(w.lower() if w.lower() in vocab else w for w in t.split())
