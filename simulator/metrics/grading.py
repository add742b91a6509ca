"""Grade one replayed call against its script: tool-call arguments, refusal vs.
fabrication on missing records, and cost. Pure: takes the script and the transcript the
driver recorded, returns a :class:`~simulator.results.CallOutcome`.
"""

from __future__ import annotations

from typing import Any

from simulator.agent_profile import Prices, session_cost, voice_minute_cost
from simulator.callscript import CallScript
from simulator.metrics.details import fabricated_details
from simulator.metrics.refusal import says_not_found
from simulator.results import CallOutcome
from simulator.slots import normalise_arg


def detail_sources(transcript: dict[str, Any]) -> list[str]:
    """Texts that may legitimately hold record details: tool results, caller turns (as
    sent and clean), and the arguments of the agent's own tool calls (its reading of what
    the caller said: "quarter past eleven" becomes "11:15" there, so restating it is not an
    invention)."""
    calls = transcript.get("tool_calls", [])
    sources = [str(c.get("result", "")) for c in calls]
    sources += [str(c.get("raw") or c.get("arguments") or "") for c in calls]
    for c in transcript.get("caller", []):
        sources.append(c.get("text", ""))
        if c.get("clean_text"):
            sources.append(c["clean_text"])
    return sources


def score_tool_calls(
    expected: list[dict[str, Any]], made: list[dict[str, Any]], write_tools: set[str]
) -> tuple[int, int, bool, list[dict[str, Any]]]:
    """Match expected calls to calls made and score their arguments.

    Each expected call is matched to the not-yet-matched call of the same name with the most
    arguments right (the earliest on a tie): an agent that retries a lookup after mishearing
    and then gets it right made the call it should have.
    Returns (arguments expected, arguments right, strict pass, per-argument mismatches).
    An expected call without arguments counts as one "argument": whether it was made.
    Strict pass: every expected call made with every argument right and no extra write call.
    """
    used: set[int] = set()
    total = correct = 0
    mismatches: list[dict[str, Any]] = []
    all_right = True
    for exp in expected:
        args = exp.get("arguments") or {}
        want = {k: normalise_arg(v) for k, v in args.items()}

        def right(m: dict[str, Any], want: dict[str, Any] = want) -> int:
            got = m.get("arguments") or {}
            return sum(1 for k, v in want.items() if k in got and normalise_arg(got[k]) == v)

        cands = [i for i, m in enumerate(made) if i not in used and m.get("name") == exp["name"]]
        match = max(cands, key=lambda i: (right(made[i]), -i)) if cands else None
        if match is None:
            n = max(1, len(args))
            total += n
            all_right = False
            mismatches.append({"call": exp["name"], "argument": None, "problem": "not called"})
            continue
        used.add(match)
        got = made[match].get("arguments") or {}
        if not args:
            total += 1
            correct += 1
            continue
        for k, v in args.items():
            total += 1
            if k in got and normalise_arg(got[k]) == normalise_arg(v):
                correct += 1
            else:
                all_right = False
                mismatches.append(
                    {"call": exp["name"], "argument": k, "expected": v, "got": got.get(k)}
                )
    expected_names = [e["name"] for e in expected]
    extra_writes = [
        m["name"] for i, m in enumerate(made)
        if i not in used and m.get("name") in write_tools and m.get("name") not in expected_names
    ]
    if extra_writes:
        mismatches.append({"call": extra_writes[0], "argument": None, "problem": "extra write"})
    return total, correct, all_right and not extra_writes, mismatches


def grade_call(
    script: CallScript,
    transcript: dict[str, Any],
    *,
    call_id: str,
    profile: str,
    ok: bool,
    error: str | None,
    ttft_ms: tuple[float, ...],
    prices: Prices,
    write_tools: set[str],
    timings: dict[str, tuple[float, ...]] | None = None,
    arm: str = "",
) -> tuple[CallOutcome, dict[str, Any]]:
    """Grade a finished call. Returns the outcome and a grading detail dict for the store.

    ``timings``: the other per-turn timings of the call by :class:`CallOutcome` field
    (``ttfa_ms``, ``barge_in_reaction_ms``...: see ``CallRun.timings``), kept on the outcome;
    ``arm``: the arm of an interleaved A/B run the call belongs to ("" in a one-arm run).

    ``transcript`` holds ``agent`` (texts), ``caller`` (texts as sent and clean),
    ``tool_calls`` (name, arguments, result), ``usage`` (summed), ``usage_estimated`` and
    ``duration_s``; ``caller_llm`` (a model played the caller: its usage, cost and invented
    values) and ``frozen`` (a frozen fixture's divergence) when the caller reported them.
    """
    agent_texts: list[str] = [t for t in transcript.get("agent", []) if t]
    made = [
        {"name": c["name"], "arguments": c.get("arguments") or {}}
        for c in transcript.get("tool_calls", [])
    ]
    expected = [c.model_dump() for c in script.expected_tool_calls]
    total, correct, strict, mismatches = score_tool_calls(expected, made, write_tools)
    fabricated = fabricated_details(agent_texts, detail_sources(transcript))
    refused = any(says_not_found(t) for t in agent_texts)
    usage = transcript.get("usage") or {}
    minutes = float(transcript.get("duration_s", 0.0)) / 60.0
    cost_basis = str(transcript.get("cost_basis") or "tokens")
    cost = (voice_minute_cost(minutes, prices) if cost_basis == "per_minute"
            else session_cost(usage, minutes, prices))
    audio = transcript.get("audio") or {}
    tm = timings or {}
    model = transcript.get("caller_llm") or {}   # a model played the caller
    model_usage = model.get("usage") or {}
    frozen = transcript.get("frozen") or {}
    outcome = CallOutcome(
        call_id=call_id,
        script_id=script.call_id,
        pack=script.pack,
        profile=profile,
        intent=script.intent,
        ok=ok,
        error=error,
        ttft_ms=ttft_ms,
        arg_total=total,
        arg_correct=correct,
        strict_pass=strict and ok,
        record_exists=script.record_exists,
        refused=refused,
        fabricated=bool(fabricated),
        cost_usd=cost,
        cost_estimated=bool(transcript.get("usage_estimated")),
        injected_wer=script.degradation.measured_wer if script.degradation else None,
        ttfa_ms=tm.get("ttfa_ms", ()),
        first_voiced_ms=tm.get("first_voiced_ms", ()),
        barge_in_reaction_ms=tm.get("barge_in_reaction_ms", ()),
        agent_speech_s=tm.get("agent_speech_s", ()),
        arm=arm,
        caller_prompt_tokens=int(model_usage.get("prompt_tokens", 0)),
        caller_completion_tokens=int(model_usage.get("completion_tokens", 0)),
        caller_cost_usd=float(model.get("cost_usd", 0.0)),
        caller_invented=len(model.get("invented") or ()),
        frozen_diverged_at=frozen.get("diverged_at"),
        graded_from=str(transcript.get("agent_source") or "text"),
        talk_overs=int(audio.get("talk_overs") or 0),
        clears=int(audio.get("clears") or 0),
        reprompts=int(audio.get("reprompts") or 0),
        cost_basis=cost_basis,
    )
    detail = {
        "mismatches": mismatches,
        "fabricated": [{"kind": d.kind, "value": d.value, "text": d.text} for d in fabricated],
    }
    return outcome, detail
