"""Transport ``openai-realtime``: the event parser (GA and beta names) and whole calls
against the reference agent's Realtime endpoint on 127.0.0.1."""

from __future__ import annotations

import base64
import json
import statistics

import pytest
from hypothesis import given
from hypothesis import strategies as st

from simulator.errors import TransportError
from simulator.transports.realtime import (
    RealtimeTransport,
    parse_client_event,
    parse_server_event,
    session_update,
)
from tests.agent.voice_harness import (
    PACKS,
    TTFT_MS,
    VAD_MS,
    call_reference,
    script_with_tool_and_barge_in,
)
from tests.conftest import TIME_FACTOR


@pytest.mark.parametrize(("ga", "beta", "kind"), [
    ("response.output_audio.delta", "response.audio.delta", "audio"),
    ("response.output_text.delta", "response.text.delta", "text"),
    ("response.output_audio_transcript.delta", "response.audio_transcript.delta", "transcript"),
], ids=["audio", "text", "transcript"])
def test_ga_and_beta_event_names_mean_the_same(ga: str, beta: str, kind: str) -> None:
    delta = base64.b64encode(b"\x00\x01").decode()
    a = parse_server_event(json.dumps({"type": ga, "delta": delta}))
    b = parse_server_event(json.dumps({"type": beta, "delta": delta}))
    assert a.kind == b.kind == kind
    assert (a.audio, a.text) == (b.audio, b.text)


def test_response_done_carries_usage_and_function_call_its_arguments() -> None:
    done = parse_server_event(json.dumps({"type": "response.done", "response": {
        "status": "completed", "usage": {"input_tokens": 5, "output_tokens": 7}}}))
    assert done.kind == "done" and done.usage == {"input_tokens": 5, "output_tokens": 7}
    fc = parse_server_event(json.dumps({"type": "response.function_call_arguments.done",
                                        "call_id": "c1", "name": "find", "arguments": "{}"}))
    assert (fc.kind, fc.call_id, fc.name, fc.arguments) == ("function_call", "c1", "find", "{}")
    assert parse_server_event('{"type": "rate_limits.updated"}').kind == "other"


@pytest.mark.parametrize("raw", [
    "{not json",
    '{"no_type": 1}',
    '{"type": "response.output_audio.delta", "delta": "@@@"}',
    '{"type": "response.audio.delta"}',
], ids=["bad-json", "no-type", "bad-base64", "no-delta"])
def test_bad_server_events_are_protocol_errors(raw: str) -> None:
    with pytest.raises(TransportError) as ei:
        parse_server_event(raw)
    assert ei.value.category == "protocol_error"


@given(st.binary(max_size=2000))
def test_append_round_trips_to_the_server_side_parser(audio: bytes) -> None:
    from simulator.transports.realtime import input_audio_append

    msg = input_audio_append(audio)
    assert parse_client_event(msg).audio == audio
    # the hand-built envelope is byte for byte what a JSON encoder writes
    assert msg == json.dumps(json.loads(msg), separators=(",", ":"))


def test_session_update_sends_tools_in_realtime_form() -> None:
    tools = PACKS["salon"].tool_schemas()
    s = json.loads(session_update(instructions="x", tools=tools, audio_format="g711_ulaw",
                                  server_vad=False))["session"]
    assert s["input_audio_format"] == "g711_ulaw" and s["turn_detection"] is None
    assert {t["name"] for t in s["tools"]} == {t["function"]["name"] for t in tools}
    assert all(t["type"] == "function" and "parameters" in t for t in s["tools"])


@pytest.mark.timing
@pytest.mark.parametrize(("fmt", "server_vad"), [("pcm16", True), ("g711_ulaw", False)],
                         ids=["pcm16-server-vad", "g711-manual-commit"])
async def test_multi_turn_call_with_tool_call_and_barge_in_against_reference_agent(
    fmt: str, server_vad: bool
) -> None:
    script = script_with_tool_and_barge_in()
    run = await call_reference(
        lambda u: RealtimeTransport(u, audio_format=fmt, server_vad=server_vad,  # type: ignore[arg-type]
                                    cancel_on_barge_in=True, text_hints=True),
        script, greeting_wait_s=0, path="/v1/realtime")
    assert run.error is None, run.error_detail
    # Function calls were answered in-band through execute_tool, then the agent spoke again.
    assert [c["name"] for c in run.transcript["tool_calls"]] == [
        c.name for c in script.expected_tool_calls]
    tool_phase = [e for e in run.exchanges if e.phase == "tool"]
    assert len(tool_phase) == len(script.expected_tool_calls)
    assert all(e.ttfa_ms is not None for e in tool_phase)
    barge = [e for e in run.events if e[0] == "barge_in"]
    assert len(barge) == 1 and barge[0][1]["cleared"]
    assert run.transcript["usage"]["prompt_tokens"] > 0 and not run.transcript["usage_estimated"]
    assert any("all set" in t.lower() for t in run.transcript["agent"])
    caller_turns = [e for e in run.exchanges if e.phase == "caller" and not e.interrupted
                    and e.text]
    assert all(e.first_text_ms is not None for e in caller_turns)
    # Server VAD: first audio = hangover + configured delay; manual commit: the delay alone.
    offset = VAD_MS if server_vad else 0.0
    plain = [e.ttfa_ms - offset for e in caller_turns]
    assert abs(statistics.median(plain) - TTFT_MS) <= 25 * TIME_FACTOR, plain
