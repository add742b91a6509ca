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
from dataclasses import dataclass

from rapidfuzz.distance import Levenshtein

from simulator.degradation.phonetics import PhoneticIndex, get_index
from simulator.degradation.profile import AsrSection

# --- normalisation and WER ------------------------------------------------------------------

_PUNCT = re.compile(r"[^\w\s]|_")


def normalise(text: str) -> str:
    """Lowercase, strip punctuation, collapse spaces: the form WER is measured on."""
    return " ".join(_PUNCT.sub("", text.lower()).split())


def word_error_rate(reference: str, hypothesis: str) -> float:
    """WER of ``hypothesis`` against ``reference`` after :func:`normalise`.

    Same number as ``jiwer.wer`` on the normalised strings ((S + D + I) / N, via the same
    Levenshtein alignment), computed directly with rapidfuzz for speed on the hot path.
    """
    ref = normalise(reference).split()
    hyp = normalise(hypothesis).split()
    if not ref:
        return 0.0 if not hyp else float(len(hyp))
    return Levenshtein.distance(ref, hyp) / len(ref)


def error_counts(reference: str, hypothesis: str) -> tuple[int, int]:
    """(word errors, reference words) after normalisation: pool these for corpus WER."""
    ref = normalise(reference).split()
    hyp = normalise(hypothesis).split()
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


@dataclass(frozen=True)
class _Sub:
    op: str
    to: str


def _substitute(core: str, lower: str, entity: bool, rng: random.Random,
                ix: PhoneticIndex) -> _Sub | None:
    if any(c.isdigit() for c in core) or lower in _TEEN_TENS:
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

@dataclass(frozen=True)
class AsrResult:
    text: str
    edits: list[dict[str, object]]


def _cumulative(mix: tuple[float, float, float]) -> tuple[float, float]:
    total = sum(mix)
    return mix[0] / total, (mix[0] + mix[1]) / total


def degrade_text(text: str, rng: random.Random, p_word: float, asr: AsrSection,
                 entities: frozenset[str] = frozenset()) -> AsrResult:
    """Apply ASR noise to ``text`` with per-word error probability ``p_word`` (entity words
    ``asr.entity_multiplier`` times that). Returns the transcript and the edits
    (``{"op", "from", "to", "pos"}``, ``pos`` = index of the word in the input)."""
    if p_word <= 0:
        return AsrResult(text, [])
    ix = get_index()
    mix = asr.mix
    c_sub, c_del = _cumulative((mix.substitution, mix.deletion, mix.insertion))
    p_entity = min(0.95, p_word * asr.entity_multiplier)
    p_plain = min(0.95, p_word)
    tokens = text.split()
    out: list[str] = []
    edits: list[dict[str, object]] = []
    sentence_start = True
    i = 0
    n = len(tokens)
    while i < n:
        tok = tokens[i]
        core = tok.strip(_STRIP)
        start_here = sentence_start
        sentence_start = tok.endswith((".", "?", "!"))
        if not core:
            out.append(tok)
            i += 1
            continue
        u = rng.random()
        if u >= p_entity:  # no error whatever the word is: skip the entity test
            out.append(tok)
            i += 1
            continue
        lower = core.lower()
        entity = is_entity(core, lower, entities, start_here)
        if u >= (p_entity if entity else p_plain):
            out.append(tok)
            i += 1
            continue
        lead = tok[: len(tok) - len(tok.lstrip(_STRIP))]
        trail = tok[len(lead) + len(core):]
        u = rng.random()
        if u < c_sub:
            sub = _substitute(core, lower, entity, rng, ix)
            if sub is not None:
                to = sub.to.capitalize() if core[:1].isupper() and sub.op != "number" else sub.to
                out.append(lead + to + trail)
                edits.append({"op": sub.op, "from": core, "to": to, "pos": i})
                i += 1
                continue
            u = c_sub  # no plausible substitute: fall through to a deletion
        if u < c_del:
            if len(core) > 4 and not entity and i + 1 < n and tokens[i + 1].strip(_STRIP):
                # Long words are rarely dropped whole; they run into the next one instead.
                nxt = tokens[i + 1]
                ncore = nxt.strip(_STRIP)
                merged = core + ncore.lower()
                out.append(lead + merged + nxt[nxt.find(ncore) + len(ncore):])
                edits.append({"op": "merge", "from": f"{core} {ncore}", "to": merged, "pos": i})
                sentence_start = nxt.endswith((".", "?", "!"))
                i += 2
                continue
            if trail and out:  # keep the sentence punctuation on the previous word
                out[-1] = out[-1] + trail.strip() if not out[-1].endswith(trail) else out[-1]
            edits.append({"op": "del", "from": core, "to": "", "pos": i})
            i += 1
            continue
        # An inserted filler or a stutter ("I I was"), heard just before the word.
        filler = lower if rng.random() < 0.25 else rng.choice(FILLERS)
        out.append(filler)
        out.append(tok)
        edits.append({"op": "ins", "from": "", "to": filler, "pos": i})
        i += 1
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
