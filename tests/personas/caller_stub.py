"""A deterministic OpenAI-compatible chat server that plays a caller, for tests of
``--caller llm``: it stands in for an external model at the seam (an HTTP endpoint).

It reads the facts from the persona prompt ("- label: value"), opens with the prompt's
example opening, answers a question with the fact whose label it names (longest first;
"day" means the date), says no and goodbye to "anything else", else "Okay.". With
``lie=True`` it gives a date of birth, date or phone number that is not its fact.
"""

from __future__ import annotations

import contextlib
import re
from collections.abc import AsyncIterator
from typing import Any

from aiohttp import web

_FACT = re.compile(r"^- ([^:]+): (.+)$", re.M)
_OPENING = re.compile(r'open with something like: "([^"]*)"')
_LIES = {"date of birth": "January 1, 1901", "date": "December 31", "phone number":
         "555-010-0199"}
_ALIASES = {"date": ("day", "date"), "time": ("time",), "phone number": ("phone", "number")}


def reply(messages: list[dict[str, Any]], lie: bool) -> str:
    system = str(messages[0]["content"])
    facts = dict(_FACT.findall(system))
    if len(messages) == 2:
        m = _OPENING.search(system)
        return m.group(1) if m else "Hi."
    said = str(messages[-1]["content"]).lower()
    if "anything else" in said:
        return "No, that's all. Goodbye."
    for label in sorted(facts, key=len, reverse=True):
        words = _ALIASES.get(label, (label,))
        if any(re.search(rf"\b{re.escape(w)}\b", said) for w in words):
            if label == "date" and "birth" in said:
                continue
            value = _LIES.get(label, facts[label]) if lie else facts[label]
            return f"It's {value}."
    return "Okay."


def create_app(lie: bool = False) -> web.Application:
    calls: list[int] = []

    async def chat(request: web.Request) -> web.Response:
        body = await request.json()
        text = reply(body["messages"], lie)
        calls.append(1)
        return web.json_response({
            "id": f"stub-{len(calls)}", "object": "chat.completion", "model": body["model"],
            "choices": [{"index": 0, "finish_reason": "stop",
                         "message": {"role": "assistant", "content": text}}],
            "usage": {"prompt_tokens": sum(len(str(m["content"]).split())
                                           for m in body["messages"]),
                      "completion_tokens": len(text.split())}})

    app = web.Application()
    app.router.add_post("/v1/chat/completions", chat)
    return app


@contextlib.asynccontextmanager
async def serve(lie: bool = False) -> AsyncIterator[str]:
    runner = web.AppRunner(create_app(lie), access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    try:
        yield f"http://127.0.0.1:{runner.addresses[0][1]}/v1"
    finally:
        await runner.cleanup()
