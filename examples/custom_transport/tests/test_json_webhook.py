"""The json-webhook transport against callsim's reference agent: registered through the
entry point (when this package is installed), and a call replayed over it end to end."""

from __future__ import annotations

import asyncio

from callsim_json_webhook import SPEC, JsonWebhookTransport

from simulator.agent.process import agent_process
from simulator.transports.registry import TransportOptions


def test_one_turn_answers_with_text_and_timings() -> None:
    with agent_process() as url:
        async def go():
            tr = SPEC.build(TransportOptions(target=url))
            try:
                return await tr.exchange(
                    [{"role": "system", "content": "You are a clinic's phone agent."},
                     {"role": "user", "content": "Hi, I'd like to book an appointment."}], [])
            finally:
                await tr.aclose()

        ex = asyncio.run(go())
    assert ex.error is None, ex.error_detail
    assert ex.text
    assert ex.ttft_ms is not None and ex.ttft_ms > 0
    assert ex.usage and ex.usage["completion_tokens"] > 0


def test_spec_says_what_the_transport_is() -> None:
    assert SPEC.name == "json-webhook" and SPEC.carries == "text" and not SPEC.tool_relay
    assert isinstance(SPEC.build(TransportOptions(target="http://x/v1")), JsonWebhookTransport)
