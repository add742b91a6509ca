"""What a self-correcting caller says first: a near miss of the value it then corrects
("the 15th, no, the 16th"), of the same kind, on the word that carries the value."""

from __future__ import annotations

import random

from simulator.degradation.conversation import _ordinal, _slot_span, _wrong_for


def _wrongs(core: str, nxt: str = "", value: str = "") -> set[str | None]:
    return {_wrong_for(core, nxt, value, random.Random(s)) for s in range(60)}


def test_a_wrong_time_is_an_hour_either_side() -> None:
    assert _wrongs("3:30") == {"2:30", "4:30"}
    assert _wrongs("12:15") == {"11:15", "1:15"}
    assert _wrongs("11", "AM") == {"12"} and _wrongs("12", "pm.") == {"1"}


def test_a_wrong_day_is_the_day_before_or_after_within_the_month() -> None:
    assert _wrongs("15th") == {"14th", "16th"}
    assert _wrongs("5th") == {"4th", "6th"}
    assert _wrongs("1st") == {"2nd"}       # there is no day before the first
    assert _wrongs("28th") == {"27th"}     # nor, in every month, one after the 28th
    assert [_ordinal(n) for n in (1, 2, 3, 4, 11, 12, 13, 20, 21, 22, 23, 31)] == [
        "1st", "2nd", "3rd", "4th", "11th", "12th", "13th", "20th", "21st", "22nd", "23rd",
        "31st"]


def test_a_wrong_number_changes_one_digit() -> None:
    for wrong in _wrongs("5552013344"):
        assert wrong is not None and wrong.isdigit() and len(wrong) == 10
        assert sum(a != b for a, b in zip(wrong, "5552013344", strict=True)) == 1


def test_the_corrected_word_is_the_last_that_carries_the_value() -> None:
    tokens = "my number is five five five, two oh one.".split()
    i, wrong = _slot_span(tokens, "555201", random.Random(1))  # type: ignore[misc]
    assert tokens[i] == "one." and wrong in {"zero", "two", "three", "four", "five", "six",
                                              "seven", "eight", "nine"}
    tokens = "I'd like 11 AM please".split()
    assert _slot_span(tokens, "11:00", random.Random(1)) == (2, "12")


def test_a_self_correction_replaces_only_the_word_that_carries_the_value() -> None:
    from simulator.degradation.conversation import WorkTurn, self_correct
    from simulator.degradation.profile import ConversationSection

    conv = ConversationSection(self_correction_rate=1.0)
    for seed in range(10):
        t = WorkTurn(kind="answer", text="My number is 5552013344, thanks.", slot="phone")
        self_correct(t, {"phone": "5552013344"}, conv, random.Random(seed), None)
        (event,) = t.events
        assert t.text.startswith("My number is ") and t.text.endswith("5552013344, thanks.")
        assert event["wrong"] in t.text and event["correct"] == "5552013344"


def test_a_disfluency_says_what_it_inserted_and_where() -> None:
    from simulator.degradation.conversation import WorkTurn, disfluencies
    from simulator.degradation.profile import ConversationSection

    conv = ConversationSection(disfluency_per_100_words=30)
    text = "I would like to book a cleaning for next Tuesday morning please"
    for seed in range(10):
        t = WorkTurn(kind="answer", text=text, slot=None)
        disfluencies(t, conv, random.Random(seed), None)
        (event,) = t.events
        assert event["type"] == "disfluency" and event["inserted"]
        # The text is the original with each insertion, and a comma, before its word.
        words = text.split()
        for ins in reversed(event["inserted"]):
            words.insert(ins["pos"], ins["text"] + ",")
        assert t.text == " ".join(words)


def test_keypad_entry_needs_three_digits_at_least() -> None:
    from simulator.degradation.conversation import WorkTurn, dtmf
    from simulator.degradation.profile import ConversationSection

    conv = ConversationSection(dtmf_rate=1.0)
    keyed = {}
    for value in ("12", "123", "5552013344"):
        t = WorkTurn(kind="answer", text=f"It's {value}.", slot="pin")
        dtmf(t, {"pin": value}, conv, random.Random(1), None)
        keyed[value] = t.dtmf
    assert keyed == {"12": None, "123": "123#", "5552013344": "5552013344#"}


def test_pauses_and_interruptions_are_timed_to_the_millisecond_within_their_ranges() -> None:
    from simulator.degradation.conversation import WorkTurn, barge_in, pauses
    from simulator.degradation.profile import BargeIn, ConversationSection, Pauses

    conv = ConversationSection(
        long_silence=Pauses(rate=0.5, range_s=(4.0, 10.0)),
        barge_in=BargeIn(rate=1.0, onset_min_s=0.5, onset_max_s=6.0, duration_s=(1.0, 5.0)))
    silences, onsets, durations = [], [], []
    for seed in range(40):
        t = WorkTurn(kind="answer", text="Yes.", slot=None)
        pauses(t, conv, random.Random(seed), None)
        barge_in(t, conv, random.Random(seed), None)
        for e in t.events:
            if e["type"] == "long_silence":
                assert t.pause_before_s == e["duration_s"]
                silences.append(e["duration_s"])
            elif e["type"] == "barge_in":
                # The onset for a long reply, as the driver computes it from onset_frac.
                assert e["onset_s"] == round(0.5 + e["onset_frac"] * (6.0 - 0.5), 3)
                onsets.append(e["onset_s"])
                durations.append(e["duration_s"])
    for values, (lo, hi) in ((silences, (4.0, 10.0)), (onsets, (0.5, 6.0)),
                             (durations, (1.0, 5.0))):
        assert len(values) > 10 and all(lo <= v <= hi for v in values)
        assert all(v == round(v, 3) for v in values)
        assert len({round(v) for v in values}) < len(set(values))  # not whole seconds


def test_the_calibration_corpus_says_days_as_ordinals() -> None:
    from simulator.degradation.corpus import ordinal

    assert [ordinal(n) for n in (1, 2, 3, 4, 11, 12, 13, 20, 21, 22, 23, 31)] == [
        "1st", "2nd", "3rd", "4th", "11th", "12th", "13th", "20th", "21st", "22nd", "23rd",
        "31st"]


def test_the_calibration_corpus_says_times_on_a_twelve_hour_clock() -> None:
    from simulator.degradation.corpus import spoken_time

    assert [spoken_time(h, m) for h, m in ((0, 0), (9, 30), (12, 0), (14, 30), (23, 5))] == [
        "12 AM", "9:30 AM", "12 PM", "2:30 PM", "11:05 PM"]


def test_each_calibration_call_says_the_values_its_script_expects() -> None:
    from simulator.degradation.corpus import sample_calls, spoken_time

    calls = sample_calls(60, 8)
    minutes = set()
    for c in calls:
        answers = {t.slot: t.text for t in c.turns if t.kind == "answer"}
        assert set(answers) == set(c.slots)
        h, m = map(int, c.slots["preferred_time"].split(":"))
        minutes.add(m)
        assert h in (8, 9, 10, 11, 13, 14, 15, 16) and m in (0, 15, 30, 45)
        assert spoken_time(h, m) in answers["preferred_time"]
        assert "1940-01-01" <= c.slots["date_of_birth"] < "2005-01-01"
        assert c.slots["date_of_birth"][:4] in answers["date_of_birth"]
        booked = c.expected_tool_calls[-1]
        assert booked.arguments == {"phone": c.slots["phone"], "date": c.slots["preferred_date"],
                                    "time": c.slots["preferred_time"]}
    assert minutes == {0, 15, 30, 45}
