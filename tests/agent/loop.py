"""A minimal conversation loop for tests: Caller <-> agent (in-process or over HTTP) with
the tool backend executing tool calls. The real driver lives in simulator/driver/."""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

from simulator.callscript import CallScript
from simulator.personas.caller import Caller
from simulator.personas.pack import Pack
from simulator.tools.backend import ToolBackend

# complete(messages, tools) -> (content, [(id, name, arguments_json)])
Complete = Callable[
    [list[dict[str, Any]], list[dict[str, Any]]], Awaitable[tuple[str, list[tuple[str, str, str]]]]
]


@dataclass
class Transcript:
    agent_texts: list[str] = field(default_factory=list)
    tool_calls: list[tuple[str, dict[str, Any]]] = field(default_factory=list)
    messages: list[dict[str, Any]] = field(default_factory=list)


async def run_call(
    call: CallScript, pack: Pack, backend: ToolBackend, complete: Complete, max_requests: int = 40
) -> Transcript:
    caller = Caller(call, pack)
    tools = pack.tool_schemas()
    messages: list[dict[str, Any]] = [{"role": "system", "content": pack.system_prompt}]
    out = Transcript(messages=messages)
    turn: Any = caller.first()
    messages.append({"role": "user", "content": turn.text})
    for _ in range(max_requests):
        content, calls = await complete(messages, tools)
        if calls:
            messages.append(
                {
                    "role": "assistant",
                    "content": content or None,
                    "tool_calls": [
                        {"id": i, "type": "function", "function": {"name": n, "arguments": a}}
                        for i, n, a in calls
                    ],
                }
            )
            for i, n, a in calls:
                args = json.loads(a)
                out.tool_calls.append((n, args))
                result = backend.execute(call.call_id, n, args)
                messages.append({"role": "tool", "tool_call_id": i, "content": json.dumps(result)})
            continue
        messages.append({"role": "assistant", "content": content})
        out.agent_texts.append(content)
        turn = caller.respond(content)
        if turn is None:
            return out
        messages.append({"role": "user", "content": turn.text})
    raise AssertionError(f"{call.call_id}: conversation did not end")


def in_process(packs: dict[str, Pack], config: Any) -> Complete:
    from simulator.agent.policy import decide

    async def complete(
        messages: list[dict[str, Any]], tools: list[dict[str, Any]]
    ) -> tuple[str, list[tuple[str, str, str]]]:
        r = decide(messages, tools, packs, config)
        return r.content, [(t.id, t.name, t.arguments) for t in r.tool_calls]

    return complete


def over_http(session: Any, base_url: str, stream: bool) -> Complete:
    """Complete over HTTP against an OpenAI-compatible server (aiohttp ``session``)."""

    async def complete(
        messages: list[dict[str, Any]], tools: list[dict[str, Any]]
    ) -> tuple[str, list[tuple[str, str, str]]]:
        body: dict[str, Any] = {
            "model": "m",
            "messages": messages,
            "tools": tools,
            "stream": stream,
        }
        if stream:
            body["stream_options"] = {"include_usage": True}
        async with session.post(f"{base_url}/chat/completions", json=body) as resp:
            assert resp.status == 200, await resp.text()
            if not stream:
                data = await resp.json()
                msg = data["choices"][0]["message"]
                calls = [
                    (t["id"], t["function"]["name"], t["function"]["arguments"])
                    for t in msg.get("tool_calls") or []
                ]
                return msg.get("content") or "", calls
            text = ""
            parts: dict[int, list[str]] = {}
            buf = b""
            async for chunk in resp.content.iter_any():
                buf += chunk
            events = [e for e in buf.decode().split("\n\n") if e.strip()]
            assert events[-1] == "data: [DONE]"
            for e in events[:-1]:
                obj = json.loads(e[len("data: ") :])
                for ch in obj.get("choices") or []:
                    d = ch["delta"]
                    text += d.get("content") or ""
                    for tc in d.get("tool_calls") or []:
                        p = parts.setdefault(tc["index"], ["", "", ""])
                        p[0] = tc.get("id") or p[0]
                        p[1] = (tc.get("function") or {}).get("name") or p[1]
                        p[2] += (tc.get("function") or {}).get("arguments") or ""
            return text, [tuple(parts[i]) for i in sorted(parts)]  # type: ignore[misc]

    return complete
