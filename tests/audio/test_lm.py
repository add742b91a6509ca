"""The domain language model: caller text from the persona packs -> Kneser-Ney trigram -> ARPA."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest

from simulator.audio import lm


def _parse_arpa(text: str) -> tuple[dict[tuple[str, ...], float], dict[tuple[str, ...], float]]:
    probs: dict[tuple[str, ...], float] = {}
    bows: dict[tuple[str, ...], float] = {}
    order = 0
    for line in text.splitlines():
        if line.startswith("\\") and line.endswith("-grams:"):
            order = int(line[1])
            continue
        if not order or not line or line.startswith("\\"):
            continue
        fields = line.split("\t")
        ng = tuple(fields[1].split())
        assert len(ng) == order, line
        probs[ng] = 10 ** float(fields[0])
        if len(fields) > 2:
            bows[ng] = 10 ** float(fields[2])
    return probs, bows


def _backoff_prob(probs: dict[tuple[str, ...], float], bows: dict[tuple[str, ...], float],
                  ng: tuple[str, ...]) -> float:
    if ng in probs:
        return probs[ng]
    return bows.get(ng[:-1], 1.0) * _backoff_prob(probs, bows, ng[1:])


CORPUS = [s.split() for s in (
    "i would like to book an appointment",
    "i would like to cancel my appointment",
    "i want to cancel",
    "can you book me in for tuesday",
    "tuesday would work",
    "my name is ada lovelace",
    "thank you",
    "thank you very much",
)]


def _contexts(probs: dict[tuple[str, ...], float]) -> Iterator[tuple[str, ...]]:
    yield from sorted({ng[:-1] for ng in probs if len(ng) > 1})


def test_every_context_is_a_probability_distribution() -> None:
    probs, bows = _parse_arpa(lm.estimate_arpa(CORPUS))
    vocab = [ng[0] for ng in probs if len(ng) == 1 and ng[0] != lm.BOS]
    assert lm.UNK in vocab and lm.EOS in vocab
    assert sum(probs[(w,)] for w in vocab) == pytest.approx(1.0, abs=1e-5)
    contexts = list(_contexts(probs))
    assert len(contexts) > 20
    for ctx in contexts:
        total = sum(_backoff_prob(probs, bows, (*ctx, w)) for w in vocab)
        assert total == pytest.approx(1.0, abs=1e-5), ctx


def test_seen_continuations_beat_unseen_ones() -> None:
    probs, bows = _parse_arpa(lm.estimate_arpa(CORPUS))
    seen = _backoff_prob(probs, bows, ("would", "like", "to"))
    unseen = _backoff_prob(probs, bows, ("would", "like", "tuesday"))
    assert seen > 0.5 > 10 * unseen


def test_out_of_dictionary_words_break_ngrams_and_are_counted() -> None:
    frags, oov = lm.split_at_oov([["book", "a", "balayage", "for", "priya"]],
                                 {"book", "a", "for"})
    assert frags == [["book", "a"], ["for"]]
    assert oov == {"balayage": 1, "priya": 1}


def test_training_text_is_spoken_words_with_the_dictionarys_apostrophes() -> None:
    assert lm.lm_words("I'd like 2:30 PM on the 7th, that's all.") == [
        "i'd", "like", "two", "thirty", "pm", "on", "the", "seventh", "that's", "all"]


def test_the_build_is_deterministic_and_cached(tmp_path: Path) -> None:
    dict_path = tmp_path / "dict"
    # a dictionary with most of the packs' words but not every name: some words are OOV
    words = {w for s in lm.training_sentences(300, 5) for w in s}
    dict_path.write_text("".join(f"{w} AH\n" for w in sorted(words) if not w.startswith("k")))
    a = lm.build_domain_lm(dict_path, tmp_path / "a", calls=300, seed=5)
    b = lm.build_domain_lm(dict_path, tmp_path / "b", calls=300, seed=5)
    assert a.path.read_bytes() == b.path.read_bytes()
    assert a.path.name == b.path.name and a.oov == b.oov
    assert a.oov and all(w.startswith("k") for w in a.oov)
    mtime = a.path.stat().st_mtime_ns
    again = lm.build_domain_lm(dict_path, tmp_path / "a", calls=300, seed=5)
    assert again.path == a.path and a.path.stat().st_mtime_ns == mtime
    other = lm.build_domain_lm(dict_path, tmp_path / "a", calls=300, seed=6)
    assert other.path != a.path


def test_the_domain_lm_loads_in_pocketsphinx(tmp_path: Path) -> None:
    ps = pytest.importorskip("pocketsphinx")
    dict_path = os.path.join(ps.get_model_path(), "en-us", "cmudict-en-us.dict")
    built = lm.build_domain_lm(dict_path, tmp_path, calls=300, seed=5)
    # every word the LM can say has a pronunciation; names like "priya" are dropped
    assert 0 < built.oov_share < 0.01, built.oov
    assert built.vocabulary > 500
    decoder = ps.Decoder(lm=str(built.path), loglevel="FATAL")
    assert decoder.lookup_word("appointment")


def test_the_listener_lm_learns_what_agents_say_including_refusals() -> None:
    from simulator.audio.lm import agent_replies, listener_sentences

    replies = agent_replies(30, seed=5)
    assert replies == agent_replies(30, seed=5)           # same calls, same seed: same text
    text = " ".join(replies).lower()
    assert "how can i help" in text                       # greetings
    assert "couldn't find" in text or "could not find" in text or "can't find" in text
    assert "?" in text                                    # the agent's questions
    sentences = [" ".join(s) for s in listener_sentences(30, seed=5)]
    # Agent turns (spelled as the recogniser writes words) and the callers' turns both.
    assert any("help you" in s for s in sentences)
    assert any(s.startswith("hi") for s in sentences)
