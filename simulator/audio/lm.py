"""A domain language model for the recogniser: a trigram over what the personas' callers say.

A production voice agent's recogniser is tuned to its domain; pocketsphinx's generic
``en-us.lm.bin`` is not, and on these calls it hears about a quarter of the words. This
module generates caller text from the built-in persona packs (a seed of its own, never the
one whose utterances are scored), estimates an interpolated Kneser-Ney trigram, and writes
it in ARPA format into a cache directory, where pocketsphinx loads it. Same packs, same
seed -> same bytes. See docs/audio.md, "Closed loop with pocketsphinx".
"""

from __future__ import annotations

import hashlib
import math
import os
import re
from collections import Counter, defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from simulator.callscript import Turn

# The calls the LM is trained on: a seed no scoring run should use (calibrate_audio refuses
# it), and enough calls that every template and most slot values are seen.
LM_SEED = 1_000_003
LM_CALLS = 3000
# The listener's LM (agent speech): fewer calls, each contributing a whole conversation.
LISTENER_CALLS = 400
ORDER = 3
UNK = "<unk>"
BOS, EOS = "<s>", "</s>"
_ESTIMATOR_VERSION = "kn3-v1"  # part of the cache key: bump when the estimator changes

# Letters, digits and apostrophes survive; "I'd" stays "i'd" (CMUdict's I'd, not "id").
_NON_WORD = re.compile(r"[^a-z0-9'\s]")


def default_cache_dir() -> Path:
    """``$CALLSIM_LM_CACHE`` or ``~/.cache/callsim/lm``."""
    env = os.environ.get("CALLSIM_LM_CACHE")
    return Path(env) if env else Path.home() / ".cache" / "callsim" / "lm"


def lm_words(text: str) -> list[str]:
    """Words as the recogniser writes them: numbers spelled out (``spoken_form``), lower
    case, apostrophes kept (the dictionary has "that's", not "thats")."""
    from simulator.audio.spoken import spoken_form

    spelled = spoken_form(text, keep_apostrophes=True)
    return [w.strip("'") for w in _NON_WORD.sub(" ", spelled).split() if w.strip("'")]


def training_sentences(calls: int = LM_CALLS, seed: int = LM_SEED) -> list[list[str]]:
    """Every caller turn of ``calls`` calls generated from all built-in packs with ``seed``,
    plus the calls' text-valued slots (names, services, streets) said on their own, as a
    terse caller would. Numeric and date slots are left out: their raw form ("1963-05-15")
    is not how anyone says them, and the turns already carry them as spoken."""
    from simulator.personas import generate_calls, load_packs

    out: list[list[str]] = []
    for call in generate_calls(load_packs(), "all", calls, seed):
        for turn in call.turns:
            words = lm_words(turn.text)
            if words:
                out.append(words)
        for value in call.slots.values():
            if isinstance(value, str) and re.search(r"[A-Za-z]", value) and not re.search(
                    r"\d", value):
                words = lm_words(value)
                if words:
                    out.append(words)
    return out


def agent_replies(calls: int = LISTENER_CALLS, seed: int = LM_SEED) -> list[str]:
    """What an agent says on ``calls`` calls generated from all built-in packs with
    ``seed``: each call is played in-process between the rule-based caller and the
    reference agent's policy (both styles, alternating), with the tool backend answering its
    lookups, so the text holds greetings, questions, read-backs, refusals and goodbyes as the
    pack words them. Returns the agent's turns in order (same calls, same seed, same list)."""
    import json

    from simulator.agent.policy import AgentConfig, decide
    from simulator.personas import generate_calls, load_packs
    from simulator.personas.caller import Caller
    from simulator.tools.backend import ToolBackend

    packs = load_packs()
    scripts = generate_calls(packs, "all", calls, seed)
    backend = ToolBackend(packs)
    backend.load(scripts)
    out: list[str] = []
    try:
        for i, script in enumerate(scripts):
            pack = packs[script.pack]
            config = AgentConfig(seed=seed + i, style=("template", "varied")[i % 2])
            tools = pack.tool_schemas()
            messages: list[dict[str, object]] = [{"role": "system",
                                                  "content": pack.system_prompt}]
            greeting = decide(messages, tools, packs, config).content
            if greeting:
                out.append(greeting)
                messages.append({"role": "assistant", "content": greeting})
            caller = Caller(script, pack)
            turn: Turn | None = caller.first()
            for _ in range(40):  # bounded: a conversation that loops stops here
                if turn is None:
                    break
                messages.append({"role": "user", "content": turn.text})
                reply = decide(messages, tools, packs, config)
                for _round in range(8):
                    if not reply.tool_calls:
                        break
                    messages.append({"role": "assistant", "content": reply.content or None,
                                     "tool_calls": [{"id": c.id, "type": "function",
                                                     "function": {"name": c.name,
                                                                  "arguments": c.arguments}}
                                                    for c in reply.tool_calls]})
                    for c in reply.tool_calls:
                        result = backend.execute(script.call_id, c.name,
                                                 json.loads(c.arguments or "{}"))
                        messages.append({"role": "tool", "tool_call_id": c.id,
                                         "content": json.dumps(result)})
                    reply = decide(messages, tools, packs, config)
                content = reply.content or ""
                messages.append({"role": "assistant", "content": content})
                if content:
                    out.append(content)
                turn = caller.respond(content)
    finally:
        backend.close()
    return out


def split_at_oov(sentences: Iterable[Sequence[str]], vocabulary: set[str]
                 ) -> tuple[list[list[str]], Counter[str]]:
    """Sentences with words outside ``vocabulary`` cut out: each out-of-vocabulary word
    ends a fragment, so no n-gram spans it (the recogniser could never output it, and a
    made-up pronunciation would be worse than none). Returns (fragments, OOV counts)."""
    out: list[list[str]] = []
    oov: Counter[str] = Counter()
    for sentence in sentences:
        frag: list[str] = []
        for w in sentence:
            if w in vocabulary:
                frag.append(w)
            else:
                oov[w] += 1
                if frag:
                    out.append(frag)
                frag = []
        if frag:
            out.append(frag)
    return out, oov


def _discount(counts: Iterable[int]) -> float:
    """Kneser-Ney's single discount D = n1 / (n1 + 2 n2) (Ney, Essen & Kneser 1994)."""
    c = Counter(counts)
    n1, n2 = c.get(1, 0), c.get(2, 0)
    return n1 / (n1 + 2 * n2) if n1 and n2 else 0.5


def _fmt(p: float) -> str:
    return f"{math.log10(p):.6f}" if p > 0 else "-99.000000"


def estimate_arpa(sentences: Iterable[Sequence[str]]) -> str:
    """An interpolated Kneser-Ney trigram over ``sentences`` (lists of words), as ARPA text.

    Each sentence is wrapped in ``<s> ... </s>``. Lower orders use continuation counts
    (how many distinct words precede an n-gram), except n-grams starting with ``<s>``,
    which have no left context and keep their raw counts (as KenLM does). One discount per
    order from the count-of-counts. An interpolated model is a backoff model whose backoff
    weight is the interpolation weight, so it is written exactly, with no renormalising.
    ``<unk>`` gets the uniform share of the unigram mass. Output is sorted and printed with
    fixed precision: same sentences, same text.
    """
    tri: Counter[tuple[str, str, str]] = Counter()
    bi_raw: Counter[tuple[str, str]] = Counter()
    for s in sentences:
        toks = [BOS, *s, EOS]
        for i in range(1, len(toks)):
            bi_raw[(toks[i - 1], toks[i])] += 1
            if i >= 2:
                tri[(toks[i - 2], toks[i - 1], toks[i])] += 1
    if not bi_raw:
        raise ValueError("estimate_arpa: no sentences")

    # adjusted counts: continuation counts below the top order
    bi: Counter[tuple[str, str]] = Counter()
    for (_, v, w) in tri:
        bi[(v, w)] += 1
    for (v, w), c in bi_raw.items():
        if v == BOS:
            bi[(v, w)] = c
    uni: Counter[str] = Counter()
    for (_, w) in bi_raw:
        uni[w] += 1
    d1, d2, d3 = _discount(uni.values()), _discount(bi.values()), _discount(tri.values())

    vocab = sorted(set(uni) | {UNK})
    total1 = sum(uni.values())
    gamma1 = d1 * len(uni) / total1
    p1 = {w: max(uni[w] - d1, 0.0) / total1 + gamma1 / len(vocab) for w in vocab}

    def context_stats(counts: Counter[tuple[str, ...]]) -> dict[tuple[str, ...], tuple[int, int]]:
        stats: dict[tuple[str, ...], list[int]] = defaultdict(lambda: [0, 0])
        for ng, c in counts.items():
            st = stats[ng[:-1]]
            st[0] += c
            st[1] += 1
        return {k: (v[0], v[1]) for k, v in stats.items()}

    ctx2 = context_stats(bi)  # type: ignore[arg-type]
    gamma2 = {v[0]: d2 * n / t for v, (t, n) in ctx2.items()}
    p2 = {ng: max(c - d2, 0.0) / ctx2[ng[:1]][0] + gamma2[ng[0]] * p1[ng[1]]
          for ng, c in bi.items()}

    def p2_any(v: str, w: str) -> float:
        p = p2.get((v, w))
        return p if p is not None else gamma2.get(v, 1.0) * p1[w]

    ctx3 = context_stats(tri)  # type: ignore[arg-type]
    gamma3 = {(u, v): d3 * n / t for (u, v), (t, n) in ctx3.items()}
    p3 = {ng: max(c - d3, 0.0) / ctx3[ng[:2]][0] + gamma3[ng[:2]] * p2_any(ng[1], ng[2])
          for ng, c in tri.items()}

    lines = ["\\data\\", f"ngram 1={len(vocab) + 1}", f"ngram 2={len(p2)}",
             f"ngram 3={len(p3)}", "", "\\1-grams:"]
    unigram_rows = [(BOS, "-99.000000", gamma2.get(BOS))]
    unigram_rows += [(w, _fmt(p1[w]), gamma2.get(w)) for w in vocab]
    for w, lp, g in sorted(unigram_rows):
        lines.append(f"{lp}\t{w}" + (f"\t{_fmt(g)}" if g is not None else ""))
    lines += ["", "\\2-grams:"]
    for (v, w) in sorted(p2):
        g = gamma3.get((v, w))
        lines.append(f"{_fmt(p2[(v, w)])}\t{v} {w}" + (f"\t{_fmt(g)}" if g is not None else ""))
    lines += ["", "\\3-grams:"]
    for ng in sorted(p3):
        lines.append(f"{_fmt(p3[ng])}\t{' '.join(ng)}")
    lines += ["", "\\end\\", ""]
    return "\n".join(lines)


def dictionary_words(dict_path: str | Path) -> set[str]:
    """The words of a CMUdict-format pronouncing dictionary (alternates like ``read(2)``
    folded into their word)."""
    words: set[str] = set()
    with open(dict_path, encoding="utf-8") as f:
        for line in f:
            head = line.split(maxsplit=1)[0] if line.strip() else ""
            if head:
                words.add(head.split("(", 1)[0])
    return words


@dataclass(frozen=True)
class DomainLM:
    """A built domain LM: the ARPA ``path``, its vocabulary size, the training sentences
    and words, and the out-of-vocabulary words dropped (word -> occurrences)."""

    path: Path
    vocabulary: int
    sentences: int
    words: int
    oov: dict[str, int]

    @property
    def oov_share(self) -> float:
        """Share of training word tokens not in the pronouncing dictionary."""
        return sum(self.oov.values()) / self.words if self.words else 0.0


def listener_sentences(calls: int = LISTENER_CALLS, seed: int = LM_SEED) -> list[list[str]]:
    """The listener LM's training text: every agent turn of ``calls`` played calls
    (:func:`agent_replies`), each sentence of a turn also on its own (an agent's turn may be
    heard in parts), plus the caller turns of the same number of generated calls: general
    conversational English with the packs' names, places and spoken numbers, which agents
    read back."""
    out: list[list[str]] = []
    for reply in agent_replies(calls, seed):
        words = lm_words(reply)
        if words:
            out.append(words)
        parts = [p for p in re.split(r"(?<=[.?!])\s+", reply) if p]
        if len(parts) > 1:
            out.extend(w for w in (lm_words(p) for p in parts) if w)
    out.extend(training_sentences(calls, seed))
    return out


def build_listener_lm(dict_path: str | Path, cache_dir: str | Path | None = None, *,
                      calls: int = LISTENER_CALLS, seed: int = LM_SEED) -> DomainLM:
    """The listener's trigram (:func:`listener_sentences`), written to ``cache_dir``.

    Playing the calls takes tens of seconds, so the file is found by a key computed before
    any text is generated: the packs' contents, the source of the agent's policy and
    phrasings and of this module, the dictionary, ``calls`` and ``seed``. A changed pack or
    policy builds a new model; an unchanged one loads the cached file."""
    import simulator.agent.phrasing as phrasing
    import simulator.agent.policy as policy
    from simulator.personas import load_packs

    h = hashlib.sha256(f"{_ESTIMATOR_VERSION}|{calls}|{seed}".encode())
    for name, pack in sorted(load_packs().items()):
        h.update(name.encode() + pack.model_dump_json().encode())
    for mod in (phrasing, policy):
        h.update(Path(str(mod.__file__)).read_bytes())
    h.update(Path(__file__).read_bytes())
    h.update(Path(dict_path).read_bytes())
    directory = Path(cache_dir) if cache_dir is not None else default_cache_dir()
    path = directory / f"listener-{seed}-{calls}-{h.hexdigest()[:16]}.arpa"
    if path.exists():
        return DomainLM(path, 0, 0, 0, {})
    sentences = listener_sentences(calls, seed)
    vocab = dictionary_words(dict_path)
    fragments, oov = split_at_oov(sentences, vocab)
    directory.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(f".{os.getpid()}.tmp")
    tmp.write_text(estimate_arpa(fragments), encoding="utf-8")
    os.replace(tmp, path)  # atomic: concurrent builders write the same bytes
    return DomainLM(path, len({w for f in fragments for w in f}), len(sentences),
                    sum(len(s) for s in sentences), dict(sorted(oov.items())))


def build_domain_lm(dict_path: str | Path, cache_dir: str | Path | None = None, *,
                    calls: int = LM_CALLS, seed: int = LM_SEED) -> DomainLM:
    """Generate the training text (``calls`` calls, ``seed``), drop words ``dict_path`` has
    no pronunciation for, estimate the trigram and write it to ``cache_dir`` (default
    :func:`default_cache_dir`) under a name hashed from the text, the dictionary's
    vocabulary and the estimator version, so a changed pack rebuilds it and an unchanged
    one reuses the file. Raises ``OSError`` when the directory cannot be written."""
    sentences = training_sentences(calls, seed)
    vocab = dictionary_words(dict_path)
    fragments, oov = split_at_oov(sentences, vocab)
    h = hashlib.sha256(_ESTIMATOR_VERSION.encode())
    for frag in fragments:
        h.update(" ".join(frag).encode() + b"\n")
    directory = Path(cache_dir) if cache_dir is not None else default_cache_dir()
    path = directory / f"domain-{seed}-{calls}-{h.hexdigest()[:16]}.arpa"
    if not path.exists():
        directory.mkdir(parents=True, exist_ok=True)
        tmp = path.with_suffix(f".{os.getpid()}.tmp")
        tmp.write_text(estimate_arpa(fragments), encoding="utf-8")
        os.replace(tmp, path)  # atomic: concurrent builders write the same bytes
    n_words = sum(len(s) for s in sentences)
    return DomainLM(path, len({w for f in fragments for w in f}), len(sentences), n_words,
                    dict(sorted(oov.items())))
