"""Text as a caller says it, in words: the reference a recogniser's output is scored against
and the text the domain language model is trained on. Pure string work, so the recogniser,
its language model and the calibration all depend on it and not on each other."""

from __future__ import annotations

import re

from simulator.degradation.asr_noise import normalise
from simulator.slots import number_words, ordinal_words

_TIME = re.compile(r"^(\d{1,2}):(\d{2})$")
_ORD = re.compile(r"^(\d{1,3})(?:st|nd|rd|th)$", re.IGNORECASE)
_TOKEN = re.compile(r"\$?\d[\d,]*(?::\d\d)?(?:st|nd|rd|th)?|[A-Za-z']+|[^\sA-Za-z\d']",
                    re.IGNORECASE)
_NOT_APOSTROPHE = re.compile(r"[^\w\s']|_")


def _words(n: int) -> str:
    return number_words(n).replace("-", " ")


def _digit_run(run: str) -> str:
    """A digit string as a caller says it: years and small numbers as numbers, long runs
    (phone numbers, IDs) digit by digit."""
    n = int(run)
    if len(run) == 4 and 1100 <= n <= 1999 or 2010 <= n <= 2099 and len(run) == 4:
        hi, lo = divmod(n, 100)
        tail = "hundred" if lo == 0 else (f"oh {_words(lo)}" if lo < 10 else _words(lo))
        return f"{_words(hi)} {tail}"
    if len(run) <= 4 and not (len(run) > 1 and run.startswith("0")):
        return _words(n)
    return " ".join(_words(int(d)) for d in run)


def spoken_form(text: str, *, keep_apostrophes: bool = False) -> str:
    """``text`` with digits written as the words a caller (and espeak-ng) says, then
    :func:`~simulator.degradation.asr_noise.normalise`d: "2:30 PM" -> "two thirty pm",
    "7th" -> "seventh", "1963" -> "nineteen sixty three", "831 839 9377" -> digit words,
    "$225,000" -> "two hundred twenty five thousand dollars". Hyphens and slashes split
    words (so "L-30538" and "3/10/1963" keep their parts). A recogniser writes words, so
    the reference must be words too, or every number would count as an error.
    ``keep_apostrophes`` keeps "i'd" (the pronouncing dictionary's spelling, which the
    domain LM needs) where ``normalise`` writes "id".
    """
    out: list[str] = []
    for tok in _TOKEN.findall(text):
        dollars = tok.startswith("$")
        core = tok.lstrip("$")
        m = _TIME.match(core)
        if m:
            h, mins = int(m.group(1)), int(m.group(2))
            rest = "" if mins == 0 else (f"oh {_words(mins)}" if mins < 10 else _words(mins))
            out.append(f"{_words(h)} {rest}".strip())
            continue
        m = _ORD.match(core)
        if m:
            out.append(ordinal_words(int(m.group(1))).replace("-", " "))
            continue
        if core[:1].isdigit():
            digits = core.replace(",", "")
            if "," in core and digits.isdigit() and int(digits) < 1_000_000_000:
                out.append(_words(int(digits)))  # "225,000": grouped, so said as a number
            elif digits.isdigit():
                out.append(_digit_run(digits))
            else:
                out.append(" ".join(_digit_run(r) for r in re.findall(r"\d+", digits)))
            if dollars:
                out.append("dollars")
            continue
        out.append(" " if tok in "-/" else tok)
    if keep_apostrophes:
        return " ".join(_NOT_APOSTROPHE.sub("", " ".join(out).lower()).split())
    return normalise(" ".join(out))
