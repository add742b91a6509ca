"""The reference agent over real HTTP: the official openai client, SSE framing, usage."""

from __future__ import annotations

import asyncio
import json
import time
from typing import Any

import aiohttp
import openai

from simulator.agent import AgentConfig, start_agent
from simulator.personas.pack import Pack


def _opening(pack: Pack, text: str) -> list[dict[str, Any]]:
    return [{"role": "system", "content": pack.system_prompt}, {"role": "user", "content": text}]


def test_official_openai_client_streaming_and_not(packs: dict[str, Pack]) -> None:
    pack = packs["healthcare"]

    async def main() -> tuple[Any, list[Any], Any]:
        async with start_agent(AgentConfig(), packs=packs) as url:
            client = openai.AsyncOpenAI(base_url=url, api_key="unused", max_retries=0)
            msgs = _opening(pack, "Hi, I'd like to book an appointment.")
            plain = await client.chat.completions.create(
                model="ref",
                messages=msgs,
                tools=pack.tool_schemas(),  # type: ignore[arg-type]
            )
            stream = await client.chat.completions.create(
                model="ref",
                messages=msgs,
                tools=pack.tool_schemas(),
                stream=True,  # type: ignore[arg-type]
                stream_options={"include_usage": True},
            )
            chunks = [c async for c in stream]
            models = await client.models.list()
            await client.close()
            return plain, chunks, models

    plain, chunks, models = asyncio.run(main())
    assert plain.choices[0].message.content == pack.slots["patient_name"].question
    assert plain.choices[0].finish_reason == "stop"
    assert plain.usage is not None and plain.usage.completion_tokens > 0
    assert plain.usage.total_tokens == plain.usage.prompt_tokens + plain.usage.completion_tokens
    # Streaming: role-only first chunk, content token by token, finish, then usage alone.
    assert chunks[0].choices[0].delta.role == "assistant"
    assert not chunks[0].choices[0].delta.content
    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert text == plain.choices[0].message.content
    assert sum(1 for c in chunks if c.choices and c.choices[0].delta.content) > 3
    assert [c.choices[0].finish_reason for c in chunks if c.choices][-1] == "stop"
    assert chunks[-1].choices == [] and chunks[-1].usage is not None
    assert chunks[-1].usage.completion_tokens == plain.usage.completion_tokens
    assert [m.id for m in models.data] == ["callsim-reference"]


def test_tool_call_streams_id_and_name_first_then_argument_fragments(
    packs: dict[str, Pack],
) -> None:
    pack = packs["salon"]
    msgs = _opening(pack, "Hi, I need to cancel my appointment, my number is 555-201-3344.")

    async def main() -> tuple[list[dict[str, Any]], dict[str, Any]]:
        async with start_agent(AgentConfig(), packs=packs) as url, aiohttp.ClientSession() as s:
            body = {"model": "m", "messages": msgs, "tools": pack.tool_schemas(), "stream": True}
            async with s.post(f"{url}/chat/completions", json=body) as r:
                raw = (await r.read()).decode()
            async with s.post(f"{url}/chat/completions", json={**body, "stream": False}) as r:
                plain = await r.json()
        events = [e for e in raw.split("\n\n") if e]
        assert events[-1] == "data: [DONE]"
        return [json.loads(e[6:]) for e in events[:-1]], plain

    chunks, plain = asyncio.run(main())
    deltas = [c["choices"][0]["delta"] for c in chunks]
    tc_deltas = [d["tool_calls"][0] for d in deltas if d.get("tool_calls")]
    assert (
        tc_deltas[0]["id"].startswith("call_") and tc_deltas[0]["function"]["name"] == "find_client"
    )
    assert all("id" not in d and d["index"] == 0 for d in tc_deltas[1:])
    args = "".join(d["function"]["arguments"] for d in tc_deltas)
    assert len(tc_deltas) > 2
    assert json.loads(args) == {"phone": "5552013344"}
    assert chunks[-1]["choices"][0]["finish_reason"] == "tool_calls"
    assert "usage" not in chunks[-1]  # not asked for
    msg = plain["choices"][0]["message"]
    assert plain["choices"][0]["finish_reason"] == "tool_calls"
    assert json.loads(msg["tool_calls"][0]["function"]["arguments"]) == {"phone": "5552013344"}


def test_ttft_knob_delays_first_content_not_role_chunk(packs: dict[str, Pack]) -> None:
    pack = packs["healthcare"]

    async def main() -> tuple[float, float]:
        async with (
            start_agent(AgentConfig(ttft_ms=150), packs=packs) as url,
            aiohttp.ClientSession() as s,
        ):
            body = {
                "model": "m",
                "messages": _opening(pack, "Hi, I need to cancel my appointment."),
                "tools": pack.tool_schemas(),
                "stream": True,
            }
            t0 = time.perf_counter()
            first_role = first_content = 0.0
            async with s.post(f"{url}/chat/completions", json=body) as r:
                async for line in r.content:
                    if line.startswith(b"data: {"):
                        delta = json.loads(line[6:])["choices"][0]["delta"]
                        now = time.perf_counter() - t0
                        if delta.get("role") and not first_role:
                            first_role = now
                        if delta.get("content") and not first_content:
                            first_content = now
            return first_role, first_content

    role_at, content_at = asyncio.run(main())
    assert content_at >= 0.150
    assert role_at < content_at


def test_bad_requests_get_openai_style_errors(packs: dict[str, Pack]) -> None:
    async def main() -> list[tuple[int, Any]]:
        out = []
        async with start_agent(AgentConfig(), packs=packs) as url, aiohttp.ClientSession() as s:
            for data in (b"not json", b'{"messages": 3}', b"x" * (1024 * 1024 + 10)):
                async with s.post(f"{url}/chat/completions", data=data) as r:
                    out.append((r.status, await r.text()))
            async with s.get(url.removesuffix("/v1") + "/healthz") as r:
                out.append((r.status, await r.json()))
        return out

    (s1, b1), (s2, b2), (s3, _), (s4, health) = asyncio.run(main())
    assert s1 == 400 and "not valid JSON" in json.loads(b1)["error"]["message"]
    assert s2 == 400 and "messages" in json.loads(b2)["error"]["message"]
    assert s3 == 413
    assert s4 == 200 and health["packs"] == sorted(packs)
