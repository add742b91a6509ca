"""The reference agent's HTTP face: an OpenAI Chat Completions server on aiohttp.

POST /v1/chat/completions (streaming SSE or one JSON object), GET /v1/models, GET /healthz.
Replies come from :func:`simulator.agent.policy.decide`; this module only paces and frames
them (ttft / token delays on absolute deadlines) and counts usage.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import json
import re
import sys
import time
from collections.abc import AsyncIterator, Mapping
from typing import Any

from aiohttp import web

from simulator.agent.policy import AgentConfig, Reply, decide
from simulator.personas.pack import Pack, load_packs

MAX_BODY = 1024 * 1024
_TOKEN_RE = re.compile(r"\s*(?:[\w'$]+|[^\w\s])|\s+$")

CONFIG_KEY: web.AppKey[AgentConfig] = web.AppKey("config", AgentConfig)
PACKS_KEY: web.AppKey[dict[str, Pack]] = web.AppKey("packs")


def tokenize(text: str) -> list[str]:
    """A simple deterministic tokenizer: words and punctuation, each with its leading
    whitespace. ``"".join(tokenize(t)) == t``."""
    return _TOKEN_RE.findall(text)


def count_prompt_tokens(body: Mapping[str, Any]) -> int:
    n = 0
    for m in body.get("messages") or ():
        if not isinstance(m, Mapping):
            continue
        content = m.get("content")
        if isinstance(content, str):
            n += len(tokenize(content))
        elif isinstance(content, list):
            n += sum(
                len(tokenize(str(p.get("text", "")))) for p in content if isinstance(p, Mapping)
            )
        for tc in m.get("tool_calls") or ():
            fn = tc.get("function") or {} if isinstance(tc, Mapping) else {}
            n += len(tokenize(str(fn.get("name", "")))) + len(
                tokenize(str(fn.get("arguments", "")))
            )
        n += 4  # role and framing
    tools = body.get("tools")
    if tools:
        n += len(tokenize(json.dumps(tools, sort_keys=True)))
    return n


def _error(status: int, message: str, code: str = "invalid_request_error") -> web.Response:
    return web.json_response(
        {"error": {"message": message, "type": code, "code": None}}, status=status
    )


async def _sleep_until(deadline: float) -> None:
    delay = deadline - time.perf_counter()
    if delay > 0:
        await asyncio.sleep(delay)


def _completion_tokens(reply: Reply) -> int:
    n = len(tokenize(reply.content))
    for tc in reply.tool_calls:
        n += len(tokenize(tc.name)) + len(tokenize(tc.arguments))
    return n


async def _chat(request: web.Request) -> web.StreamResponse:
    t0 = time.perf_counter()
    config = request.app[CONFIG_KEY]
    packs = request.app[PACKS_KEY]
    try:
        body = await request.json()
    except (json.JSONDecodeError, UnicodeDecodeError):
        return _error(400, "request body is not valid JSON")
    if not isinstance(body, dict):
        return _error(400, "request body must be a JSON object")
    messages = body.get("messages")
    if not isinstance(messages, list) or not all(isinstance(m, dict) for m in messages):
        return _error(400, "'messages' must be a list of objects")
    tools = body.get("tools") or []
    if not isinstance(tools, list):
        return _error(400, "'tools' must be a list")
    reply = decide(messages, tools, packs, config)
    model = str(body.get("model") or config.model)
    cid = (
        "chatcmpl-"
        + hashlib.sha256(json.dumps(messages, sort_keys=True, default=str).encode()).hexdigest()[
            :24
        ]
    )
    created = int(time.time())
    prompt_tokens = count_prompt_tokens(body)
    completion_tokens = _completion_tokens(reply)
    usage = {
        "prompt_tokens": prompt_tokens,
        "completion_tokens": completion_tokens,
        "total_tokens": prompt_tokens + completion_tokens,
    }
    finish = "tool_calls" if reply.tool_calls else "stop"
    first_at = t0 + config.ttft_ms / 1000.0
    step = config.token_ms / 1000.0

    if not body.get("stream"):
        await _sleep_until(first_at + step * max(completion_tokens - 1, 0))
        message: dict[str, Any] = {"role": "assistant", "content": reply.content or None}
        if reply.tool_calls:
            message["tool_calls"] = [
                {
                    "id": tc.id,
                    "type": "function",
                    "function": {"name": tc.name, "arguments": tc.arguments},
                }
                for tc in reply.tool_calls
            ]
        return web.json_response(
            {
                "id": cid,
                "object": "chat.completion",
                "created": created,
                "model": model,
                "choices": [
                    {"index": 0, "message": message, "finish_reason": finish, "logprobs": None}
                ],
                "usage": usage,
            }
        )

    opts = body.get("stream_options") or {}
    include_usage = isinstance(opts, dict) and bool(opts.get("include_usage"))
    resp = web.StreamResponse(
        headers={
            "Content-Type": "text/event-stream",
            "Cache-Control": "no-cache",
            "X-Accel-Buffering": "no",
        }
    )
    await resp.prepare(request)

    def chunk(
        delta: dict[str, Any] | None, finish_reason: str | None = None, with_usage: bool = False
    ) -> bytes:
        obj: dict[str, Any] = {
            "id": cid,
            "object": "chat.completion.chunk",
            "created": created,
            "model": model,
            "choices": []
            if delta is None
            else [{"index": 0, "delta": delta, "finish_reason": finish_reason, "logprobs": None}],
        }
        if with_usage:
            obj["usage"] = usage
        return b"data: " + json.dumps(obj, separators=(",", ":")).encode() + b"\n\n"

    try:
        await resp.write(chunk({"role": "assistant", "content": ""}))
        i = 0  # tokens sent so far: token i goes out at first_at + i * step
        for tok in tokenize(reply.content):
            await _sleep_until(first_at + step * i)
            await resp.write(chunk({"content": tok}))
            i += 1
        for idx, tc in enumerate(reply.tool_calls):
            await _sleep_until(first_at + step * i)
            await resp.write(
                chunk(
                    {
                        "tool_calls": [
                            {
                                "index": idx,
                                "id": tc.id,
                                "type": "function",
                                "function": {"name": tc.name, "arguments": ""},
                            }
                        ]
                    }
                )
            )
            i += 1
            for frag in tokenize(tc.arguments):
                await _sleep_until(first_at + step * i)
                await resp.write(
                    chunk({"tool_calls": [{"index": idx, "function": {"arguments": frag}}]})
                )
                i += 1
        await resp.write(chunk({}, finish))
        if include_usage:
            await resp.write(chunk(None, with_usage=True))
        await resp.write(b"data: [DONE]\n\n")
        await resp.write_eof()
    except (ConnectionResetError, asyncio.CancelledError):
        # The client went away mid-stream (a barge-in or a timeout): nothing to clean up.
        if sys.exc_info()[0] is asyncio.CancelledError:
            raise
    return resp


async def _models(request: web.Request) -> web.Response:
    model = request.app[CONFIG_KEY].model
    return web.json_response(
        {
            "object": "list",
            "data": [{"id": model, "object": "model", "created": 0, "owned_by": "callsim"}],
        }
    )


async def _health(request: web.Request) -> web.Response:
    loaded: dict[str, Pack] = request.app[PACKS_KEY]
    return web.json_response({"ok": True, "packs": sorted(loaded)})


def create_agent_app(
    config: AgentConfig, packs: Mapping[str, Pack] | None = None
) -> web.Application:
    """The reference agent as an aiohttp application (1 MB request body limit).
    ``packs`` defaults to the built-in packs."""
    from simulator.serverlimits import in_flight_limit

    app = web.Application(client_max_size=MAX_BODY, middlewares=[in_flight_limit()])
    app[CONFIG_KEY] = config
    app[PACKS_KEY] = dict(packs) if packs is not None else load_packs()
    app.router.add_post("/v1/chat/completions", _chat)
    app.router.add_get("/v1/models", _models)
    app.router.add_get("/healthz", _health)
    return app


@contextlib.asynccontextmanager
async def start_agent(
    config: AgentConfig,
    host: str = "127.0.0.1",
    port: int = 0,
    packs: Mapping[str, Pack] | None = None,
) -> AsyncIterator[str]:
    """Run the reference agent in the current loop; yields its base URL
    (``http://127.0.0.1:PORT/v1``) and stops it on exit."""
    runner = web.AppRunner(create_agent_app(config, packs), access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, host, port)
    await site.start()
    try:
        addr = runner.addresses[0]
        yield f"http://{host}:{addr[1]}/v1"
    finally:
        await runner.cleanup()


def serve_forever(
    config: AgentConfig,
    host: str = "127.0.0.1",
    port: int = 8000,
    packs: Mapping[str, Pack] | None = None,
) -> None:
    """Serve the reference agent until interrupted (for ``callsim agent serve``). Prints
    one line with the base URL once listening."""

    async def main() -> None:
        async with start_agent(config, host, port, packs) as url:
            print(f"reference agent listening on {url}", flush=True)
            await asyncio.Event().wait()

    with contextlib.suppress(KeyboardInterrupt):
        asyncio.run(main())
