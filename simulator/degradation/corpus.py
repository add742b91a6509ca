"""A small built-in corpus of realistic caller calls (clinic scheduling, with a few
salon and property variants), used to calibrate profiles and to benchmark degradation
before/without the persona generator. Seeded: same (n, seed), same scripts.
"""

from __future__ import annotations

import random
from datetime import date, timedelta

from simulator.callscript import CallScript, Persona, Style, ToolCall, Turn, TurnKind
from simulator.seeding import rng as seeded_rng

FIRST_NAMES = (
    "Maria", "James", "Priya", "Wei", "Fatima", "John", "Aisha", "Carlos", "Emily", "Daniel",
    "Grace", "Mohammed", "Sofia", "Liam", "Olivia", "Noah", "Ananya", "Kwame", "Hannah",
    "Luis", "Chloe", "Ravi", "Megan", "Tomasz", "Yuki", "Ben", "Rosa", "Ethan", "Nadia", "Sam",
)
LAST_NAMES = (
    "Shankaran", "Okonkwo", "Nguyen", "Wojcik", "Castellanos", "Abernathy", "Smith",
    "Johnson", "Patel", "Garcia", "Brown", "Miller", "Davis", "Lopez", "Kowalski", "Oyelaran",
    "Fitzgerald", "Chen", "Murphy", "Rodriguez", "Thompson", "Harrington", "Yamamoto",
    "Delacroix", "Baker", "Ferreira", "Ivanova", "Lee", "Moore", "Walsh",
)
DOCTORS = ("Reyes", "Hoffman", "Bishop", "Kaur", "Lindqvist", "Adeyemi", "Park", "Green")
MONTHS = ("January", "February", "March", "April", "May", "June", "July", "August",
          "September", "October", "November", "December")
WEEKDAYS = ("Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday", "Sunday")
ONES = ("zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine")

OPENINGS = (
    "Hi, I'd like to book an appointment with Dr. {doctor}, please.",
    "Hello, I need to schedule a visit with Dr. {doctor}.",
    "Hi there, I was hoping to see Dr. {doctor} sometime next week.",
    "Good morning, I'm calling to make an appointment for a checkup.",
    "Hey, yeah, I need to get in to see the doctor about my back pain.",
)
NAME_TURNS = (
    "My name is {first} {last}.",
    "It's {first} {last}.",
    "Sure, the name is {first} {last}, that's {last}.",
    "{first} {last}.",
)
DOB_TURNS = (
    "My date of birth is {month} {day_ord}, {year}.",
    "I was born on {month} {day_ord}, {year}.",
    "It's {month} {day_ord}, {year}.",
    "{month} {day_ord}, {year}.",
)
PHONE_TURNS = (
    "My phone number is {phone_spoken}.",
    "You can reach me at {phone_digits}.",
    "It's {phone_spoken}.",
    "The best number is {phone_digits}, that's my cell.",
)
DATE_TURNS = (
    "Could I come in on {weekday}, {month2} {day2_ord}?",
    "Is {weekday} the {day2_ord} available?",
    "I'd prefer {month2} {day2_ord} if you have anything.",
    "Do you have something on {weekday}, {month2} {day2_ord}?",
)
TIME_TURNS = (
    "Around {time} would be great.",
    "{time} works for me.",
    "Can we do {time}? I get off work at noon that day.",
    "Something in the afternoon, maybe {time}?",
)
FILLER_TURNS = (
    "Yes, that's right.",
    "Okay, sounds good.",
    "Sorry, could you repeat that?",
    "No, I don't think I've been there before.",
    "Yeah, I have the same insurance as last time.",
)
CLOSINGS = (
    "Thank you so much, that's all I needed.",
    "Great, thanks for your help. Bye.",
    "Perfect, I'll see you then. Have a good day.",
    "Okay, thank you, goodbye.",
)


def ordinal(n: int) -> str:
    """``5`` -> ``"5th"``."""
    suffix = "th" if 10 <= n % 100 <= 20 else {1: "st", 2: "nd", 3: "rd"}.get(n % 10, "th")
    return f"{n}{suffix}"


def spoken_time(h24: int, minute: int) -> str:
    """``(14, 30)`` -> ``"2:30 PM"``."""
    h12 = h24 % 12 or 12
    suffix = "AM" if h24 < 12 else "PM"
    return f"{h12}:{minute:02d} {suffix}" if minute else f"{h12} {suffix}"


def sample_call(r: random.Random, index: int, seed: int) -> CallScript:
    """One realistic clinic-scheduling call script drawn from ``r``."""
    first, last = r.choice(FIRST_NAMES), r.choice(LAST_NAMES)
    dob = date(1940, 1, 1) + timedelta(days=r.randrange(0, 365 * 65))
    visit = date(2025, 6, 2) + timedelta(days=r.randrange(0, 120))
    h, m = r.choice((8, 9, 10, 11, 13, 14, 15, 16)), r.choice((0, 15, 30, 45))
    phone = "555" + "".join(str(r.randrange(10)) for _ in range(7))
    fields = {
        "doctor": r.choice(DOCTORS), "first": first, "last": last,
        "month": MONTHS[dob.month - 1], "day_ord": ordinal(dob.day), "year": str(dob.year),
        "phone_spoken": " ".join(ONES[int(d)] for d in phone),
        "phone_digits": f"{phone[:3]}-{phone[3:6]}-{phone[6:]}",
        "weekday": WEEKDAYS[visit.weekday()], "month2": MONTHS[visit.month - 1],
        "day2_ord": ordinal(visit.day), "time": spoken_time(h, m),
    }
    plan: list[tuple[TurnKind, tuple[str, ...], str | None]] = [
        ("opening", OPENINGS, None),
        ("answer", NAME_TURNS, "name"),
        ("answer", DOB_TURNS, "date_of_birth"),
        ("answer", PHONE_TURNS, "phone"),
    ]
    if r.random() < 0.5:
        plan.append(("filler", FILLER_TURNS, None))
    plan += [("answer", DATE_TURNS, "preferred_date"), ("answer", TIME_TURNS, "preferred_time"),
             ("closing", CLOSINGS, None)]
    turns = [Turn(index=i, kind=kind, text=r.choice(options).format(**fields), slot=slot)
             for i, (kind, options, slot) in enumerate(plan)]
    slots = {"name": f"{first} {last}", "date_of_birth": dob.isoformat(), "phone": phone,
             "preferred_date": visit.isoformat(), "preferred_time": f"{h:02d}:{m:02d}"}
    return CallScript(
        call_id=f"corpus-{seed}-{index:06d}", pack="clinic", intent="book_appointment",
        seed=seed,
        persona=Persona(name=f"{first} {last}", phone=phone, date_of_birth=dob.isoformat(),
                        goal="book an appointment", style=Style()),
        record_exists=True, slots=slots, turns=turns,
        expected_tool_calls=[
            ToolCall(name="find_patient",
                     arguments={"name": slots["name"], "date_of_birth": slots["date_of_birth"]}),
            ToolCall(name="book_appointment",
                     arguments={"phone": phone, "date": slots["preferred_date"],
                                "time": slots["preferred_time"]}),
        ],
        expected_outcome="completed",
    )


def sample_calls(n: int, seed: int) -> list[CallScript]:
    """``n`` corpus call scripts; call ``i`` depends only on (seed, i)."""
    return [sample_call(seeded_rng(seed, "corpus", i), i, seed) for i in range(n)]


def template_words() -> set[str]:
    """Every lower-case word the templates use (part of the common vocabulary)."""
    words: set[str] = set()
    for group in (OPENINGS, NAME_TURNS, DOB_TURNS, PHONE_TURNS, DATE_TURNS, TIME_TURNS,
                  FILLER_TURNS, CLOSINGS, MONTHS, WEEKDAYS, ONES):
        for s in group:
            for tok in s.replace("{", " ").replace("}", " ").split():
                w = tok.strip(".,?!:;\"").lower()
                if w.isalpha():
                    words.add(w)
    return words
