"""Text ASR noise: what a recogniser would plausibly have heard.

Errors are phonetic, not random: phonetic neighbours from the CMU dictionary, homophones,
number/date/time mangling ("fifteen" -> "fifty", "2:30" -> "to thirty"), splits of unknown
names ("Shankaran" -> "shank a ran"), merges, deletions of short words and filler
insertions. Entity words (names, digits, dates) are ``entity_multiplier`` times as
error-prone. The per-word error probability is calibrated per profile by measuring WER
(jiwer's definition, after explicit normalisation) on a built-in corpus, so the output
lands on the centre of the profile's target band.
"""

from __future__ import annotations

import functools
import random
import re
from collections.abc import Iterable
from typing import NamedTuple

from rapidfuzz.distance import Levenshtein

from simulator.degradation.phonetics import PhoneticIndex, get_index
from simulator.degradation.profile import AsrSection

# --- normalisation and WER ------------------------------------------------------------------

_PUNCT = re.compile(r"[^\w\s]|_")


def normalise(text: str) -> str:
    """Lowercase, strip punctuation, collapse spaces: the form WER is measured on."""
    return " ".join(_PUNCT.sub("", text.lower()).split())


def normalised_words(text: str) -> list[str]:
    """``normalise(text).split()``, token by token through the token cache (normalising
    never splits or joins whitespace-separated tokens, so the words are the same)."""
    out = []
    get = _TOKENS.get
    for tok in text.split():
        info = get(tok)
        if info is None:
            info = _token(tok)
        if info[7]:
            out.append(info[7])
    return out


def word_error_rate(reference: str, hypothesis: str) -> float:
    """WER of ``hypothesis`` against ``reference`` after :func:`normalise`.

    Same number as ``jiwer.wer`` on the normalised strings ((S + D + I) / N, via the same
    Levenshtein alignment), computed directly with rapidfuzz for speed on the hot path.
    """
    ref = normalised_words(reference)
    hyp = normalised_words(hypothesis)
    if not ref:
        return 0.0 if not hyp else float(len(hyp))
    return Levenshtein.distance(ref, hyp) / len(ref)


def error_counts(reference: str, hypothesis: str) -> tuple[int, int]:
    """(word errors, reference words) after normalisation: pool these for corpus WER."""
    ref = normalised_words(reference)
    hyp = normalised_words(hypothesis)
    return Levenshtein.distance(ref, hyp), len(ref)


# --- entity detection -----------------------------------------------------------------------

MONTHS = frozenset(("january february march april may june july august september october "
                    "november december").split())
WEEKDAYS = frozenset("monday tuesday wednesday thursday friday saturday sunday".split())
ONES = ("zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine")
TEENS = ("ten", "eleven", "twelve", "thirteen", "fourteen", "fifteen", "sixteen",
         "seventeen", "eighteen", "nineteen")
TENS = ("", "", "twenty", "thirty", "forty", "fifty", "sixty", "seventy", "eighty", "ninety")
NUMBER_WORDS = frozenset((*ONES, *TEENS, *TENS[2:], "hundred", "oh"))
# "fifteen" <-> "fifty": the classic teen/tens confusion, both directions.
_TEEN_TENS = {t: TENS[i] for i, t in enumerate(TEENS) if i >= 3}
_TEEN_TENS |= {v: k for k, v in _TEEN_TENS.items()}
# Digits a recogniser confuses (rhymes and near-rhymes of the spoken digit).
_DIGIT_CONFUSION = {"0": "4", "1": "9", "2": "3", "3": "2", "4": "0", "5": "9", "6": "7",
                    "7": "6", "8": "6", "9": "5"}
_DIGIT_HOMOPHONE = {"2": "to", "4": "for", "8": "ate", "1": "won"}
_STRIP = ".,?!;:\"'()"
FILLERS = ("uh", "um", "the", "a", "and", "uh")


def entity_words(slot_values: Iterable[object]) -> frozenset[str]:
    """Lower-case words of the script's slot values (names, IDs...): entity words."""
    out: set[str] = set()
    for v in slot_values:
        for w in str(v).replace("-", " ").split():
            out.add(w.strip(_STRIP).lower())
    out.discard("")
    return frozenset(out)


_HAS_DIGIT = re.compile(r"\d")
_STATIC_ENTITY = MONTHS | WEEKDAYS | NUMBER_WORDS


def is_entity(core: str, lower: str, entities: frozenset[str], sentence_start: bool) -> bool:
    """Names, digits, dates and IDs: the words a recogniser gets wrong most often."""
    if lower in entities or lower in _STATIC_ENTITY or _HAS_DIGIT.search(core):
        return True
    # A capitalised word mid-sentence is a name ("Dr. Kaur"), except "I".
    return not sentence_start and core[:1].isupper() and core not in ("I", "I'm", "I'd")


class _Tok(NamedTuple):
    """What the ASR pass and WER need to know about one whitespace token, computed once
    per distinct token (``_TOKENS``): the pass looks at every word of every turn."""

    core: str  # without surrounding punctuation ("" if the token is only punctuation)
    lower: str
    lead: str  # punctuation before / after the core
    trail: str
    static_entity: bool  # is_entity() whatever the call's slots and sentence position
    cap_name: bool  # is_entity() when not sentence-initial: capitalised, not "I"
    numeric: bool  # _substitute() takes the number path
    norm: str  # normalise(token)


_TOKENS: dict[str, _Tok] = {}
_TOKENS_MAX = 50_000  # distinct tokens kept (~20 MB; names and numbers keep coming): then reset


def _token(tok: str) -> _Tok:
    core = tok.strip(_STRIP)
    lower = core.lower()
    lead = tok[: len(tok) - len(tok.lstrip(_STRIP))]
    info = _Tok(
        core, lower, lead, tok[len(lead) + len(core):],
        lower in _STATIC_ENTITY or _HAS_DIGIT.search(core) is not None,
        core[:1].isupper() and core not in ("I", "I'm", "I'd"),
        any(c.isdigit() for c in core) or lower in _TEEN_TENS,
        _PUNCT.sub("", tok.lower()),
    )
    if len(_TOKENS) >= _TOKENS_MAX:
        _TOKENS.clear()
    _TOKENS[tok] = info
    return info


# --- substitutions --------------------------------------------------------------------------

def _number_words(n: int) -> str:
    if n < 10:
        return ONES[n]
    if n < 20:
        return TEENS[n - 10]
    tens, ones = divmod(n, 10)
    return TENS[tens] + ("" if ones == 0 else " " + ONES[ones])


_ORDINAL = re.compile(r"^(\d{1,2})(st|nd|rd|th)$")
_TIME = re.compile(r"^(\d{1,2}):(\d{2})$")


def _mangle_number(core: str, lower: str, rng: random.Random) -> str | None:
    """A plausible mishearing of a number, date part or time, or None."""
    if lower in _TEEN_TENS:
        return _TEEN_TENS[lower]
    m = _TIME.match(core)
    if m:  # "2:30" -> "to thirty"
        hour, minute = m.group(1), int(m.group(2))
        h = _DIGIT_HOMOPHONE.get(hour) or _number_words(int(hour))
        mins = "" if minute == 0 else _number_words(minute)
        mins = _TEEN_TENS.get(mins, mins) if rng.random() < 0.5 else mins
        return f"{h} {mins}".strip()
    m = _ORDINAL.match(core)
    if m:  # "15th" -> "50th", "5th" -> "5"
        n = int(m.group(1))
        if 13 <= n <= 19:
            return f"{(n - 10) * 10}th"
        return str(n) if rng.random() < 0.5 else _number_words(n)
    if core.isdigit():
        if len(core) == 2 and core[0] == "1" and core[1] >= "3":
            return f"{core[1]}0"
        if len(core) == 2 and core[1] == "0" and core[0] >= "3":
            return f"1{core[0]}"
        if len(core) == 1 and core in _DIGIT_HOMOPHONE and rng.random() < 0.5:
            return _DIGIT_HOMOPHONE[core]
        i = rng.randrange(len(core))
        return core[:i] + _DIGIT_CONFUSION[core[i]] + core[i + 1:]
    if any(c.isdigit() for c in core):  # "555-223-0804": one digit misheard
        positions = [i for i, c in enumerate(core) if c.isdigit()]
        i = rng.choice(positions)
        return core[:i] + _DIGIT_CONFUSION[core[i]] + core[i + 1:]
    return None


@functools.lru_cache(maxsize=8192)
def split_word(lower: str) -> tuple[str, ...] | None:
    """Split a word into real words as a recogniser would: "shankaran" -> ("shank", "a",
    "ran"). Fewest pieces, preferring common words; a word the dictionary knows may only
    split into common words ("sometime" -> "some time"). None if impossible."""
    ix = get_index()
    known = lower in ix.prons
    n = len(lower)
    if n < 4 or n > 16 or not lower.isalpha():
        return None
    best: list[tuple[float, tuple[str, ...]] | None] = [None] * (n + 1)
    best[0] = (0.0, ())
    for i in range(n):
        cur = best[i]
        if cur is None:
            continue
        for j in range(i + 1, n + 1):
            piece = lower[i:j]
            if piece == lower:
                continue
            if len(piece) == 1 and piece not in ("a", "i", "o"):
                continue
            common = piece in ix.vocab or piece in ix.names
            if not common and (known or len(piece) < 3 or piece not in ix.prons):
                continue
            cost = cur[0] + 1.0 + (0.0 if common else 0.6)
            nxt = best[j]
            if nxt is None or cost < nxt[0]:
                best[j] = (cost, (*cur[1], piece))
    end = best[n]
    return end[1] if end is not None and len(end[1]) >= 2 else None


class _Sub(NamedTuple):
    op: str
    to: str


def _substitute(core: str, lower: str, entity: bool, rng: random.Random,
                ix: PhoneticIndex, numeric: bool) -> _Sub | None:
    """A plausible mishearing; ``numeric``: ``core`` has a digit or is a teen/tens word."""
    if numeric:
        to = _mangle_number(core, lower, rng)
        return _Sub("number", to) if to is not None else None
    homs = ix.homophones_of(lower)
    if homs and rng.random() < 0.5:
        return _Sub("homophone", rng.choice(homs))
    known = lower in ix.prons
    neigh = ix.neighbours(lower, names=entity) if known else ()
    if neigh:
        return _Sub("sub", rng.choice(neigh))
    if homs:
        return _Sub("homophone", rng.choice(homs))
    pieces = split_word(lower)
    if pieces is not None:
        return _Sub("split", " ".join(pieces))
    return None


# --- the ASR pass ---------------------------------------------------------------------------

class AsrResult(NamedTuple):
    """A degraded transcript and its edits (a NamedTuple: made once per turn, and a
    frozen dataclass's __init__ was a measurable share of the pass)."""

    text: str
    edits: list[dict[str, object]]


@functools.lru_cache(maxsize=256)
def _pass_constants(asr: AsrSection, p_word: float) -> tuple[float, float, float, float]:
    """(cumulative substitution share, cumulative substitution+deletion share, entity
    error probability, plain-word error probability): fixed per (profile, p_word)."""
    mix = asr.mix
    total = sum((mix.substitution, mix.deletion, mix.insertion))
    c_sub = mix.substitution / total
    c_del = (mix.substitution + mix.deletion) / total
    return c_sub, c_del, min(0.95, p_word * asr.entity_multiplier), min(0.95, p_word)


_SENTENCE_END = (".", "?", "!")


def degrade_text(text: str, rng: random.Random, p_word: float, asr: AsrSection,
                 entities: frozenset[str] = frozenset()) -> AsrResult:
    """Apply ASR noise to ``text`` with per-word error probability ``p_word`` (entity words
    ``asr.entity_multiplier`` times that). Returns the transcript and the edits
    (``{"op", "from", "to", "pos"}``, ``pos`` = index of the word in the input)."""
    if p_word <= 0:
        return AsrResult(text, [])
    return asr_pass(text, rng, _pass_constants(asr, p_word), entities)


def pass_constants(asr: AsrSection, p_word: float) -> tuple[float, float, float, float] | None:
    """What :func:`asr_pass` needs from a profile, or None when ``p_word`` makes no errors
    (compute it once per profile: hashing a pydantic section per turn is measurable)."""
    return _pass_constants(asr, p_word) if p_word > 0 else None


def asr_pass(text: str, rng: random.Random, consts: tuple[float, float, float, float] | None,
             entities: frozenset[str] = frozenset()) -> AsrResult:
    """:func:`degrade_text` with the profile's :func:`pass_constants` already computed."""
    if consts is None:
        return AsrResult(text, [])
    c_sub, c_del, p_entity, p_plain = consts
    tokens = text.split()
    n = len(tokens)
    # Every word gets one draw, in order, and most draws miss: this loop is the ASR pass's
    # hot path. So a word costs one cache lookup and its draw; the entity test runs only
    # when the draw could hit, and the output is only assembled from the first hit on
    # (``copied``: tokens[:copied] are already in ``out``).
    get = _TOKENS.get
    rnd = rng.random
    out: list[str] = []
    edits: list[dict[str, object]] = []
    ix: PhoneticIndex | None = None
    copied = 0
    i = 0
    while i < n:
        tok = tokens[i]
        info = get(tok)
        if info is None:
            info = _token(tok)
        if not info[0]:  # only punctuation: no word, no draw
            i += 1
            continue
        u = rnd()
        if u >= p_entity:  # no error whatever the word is: skip the entity test
            i += 1
            continue
        core, lower, lead, trail, static_entity, cap_name, numeric, _ = info
        # is_entity(), from the cached parts. A sentence starts at the text's start or
        # after a token ending in . ? !
        entity = static_entity or lower in entities or (
            cap_name and not (i == 0 or tokens[i - 1].endswith(_SENTENCE_END)))
        if u >= (p_entity if entity else p_plain):
            i += 1
            continue
        if copied < i:
            out += tokens[copied:i]
        copied = i + 1
        u = rnd()
        if u < c_sub:
            if ix is None:
                ix = get_index()
            sub = _substitute(core, lower, entity, rng, ix, numeric)
            if sub is not None:
                to = sub.to.capitalize() if core[:1].isupper() and sub.op != "number" else sub.to
                out.append(lead + to + trail)
                edits.append({"op": sub.op, "from": core, "to": to, "pos": i})
                i += 1
                continue
            u = c_sub  # no plausible substitute: fall through to a deletion
        if u < c_del:
            nxt = tokens[i + 1] if i + 1 < n else ""
            if len(core) > 4 and not entity and nxt and (get(nxt) or _token(nxt))[0]:
                # Long words are rarely dropped whole; they run into the next one instead.
                ncore = nxt.strip(_STRIP)
                merged = core + ncore.lower()
                out.append(lead + merged + nxt[nxt.find(ncore) + len(ncore):])
                edits.append({"op": "merge", "from": f"{core} {ncore}", "to": merged, "pos": i})
                copied = i + 2
                i += 2
                continue
            if trail and out:  # keep the sentence punctuation on the previous word
                out[-1] = out[-1] + trail.strip() if not out[-1].endswith(trail) else out[-1]
            edits.append({"op": "del", "from": core, "to": "", "pos": i})
            i += 1
            continue
        # An inserted filler or a stutter ("I I was"), heard just before the word.
        filler = lower if rnd() < 0.25 else rng.choice(FILLERS)
        out.append(filler)
        out.append(tok)
        edits.append({"op": "ins", "from": "", "to": filler, "pos": i})
        i += 1
    if not edits:
        return AsrResult(" ".join(tokens), edits)
    if copied < n:
        out += tokens[copied:]
    return AsrResult(" ".join(out), edits)


# --- calibration ----------------------------------------------------------------------------

_CAL_CALLS = 90
_CAL_SEED = 20240917


@functools.lru_cache(maxsize=1)
def _calibration_corpus() -> tuple[tuple[str, frozenset[str]], ...]:
    from simulator.degradation.corpus import sample_calls

    items: list[tuple[str, frozenset[str]]] = []
    for call in sample_calls(_CAL_CALLS, _CAL_SEED):
        ents = entity_words(call.slots.values())
        items.extend((t.text, ents) for t in call.turns)
    return tuple(items)


def measure_wer(asr: AsrSection, p_word: float,
                corpus: Iterable[tuple[str, frozenset[str]]], seed: int) -> float:
    """Pooled WER (errors / reference words) of :func:`degrade_text` over ``corpus``."""
    r = random.Random(seed)
    errs = words = 0
    for text, ents in corpus:
        res = degrade_text(text, r, p_word, asr, ents)
        e, w = error_counts(text, res.text)
        errs += e
        words += w
    return errs / words if words else 0.0


@functools.lru_cache(maxsize=64)
def calibrated_p_word(asr: AsrSection) -> float:
    """The per-word error probability whose measured WER on the calibration corpus is
    the centre of ``asr.target_wer`` (bisection with a fixed seed: deterministic)."""
    target = sum(asr.target_wer) / 2
    if target <= 0:
        return 0.0
    corpus = _calibration_corpus()
    lo, hi = 0.0, 0.95
    for _ in range(18):
        mid = (lo + hi) / 2
        if measure_wer(asr, mid, corpus, _CAL_SEED) < target:
            lo = mid
        else:
            hi = mid
    return round((lo + hi) / 2, 6)
