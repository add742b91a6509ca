"""A complete callsim transport that lives outside callsim: ``json-webhook``.

Each agent turn is one ``POST {target}/chat/completions`` with ``"stream": false``; the
answer is one JSON object (an OpenAI-style ``chat.completion``). Nothing streams, so the
first content arrives with the whole body: time to first token is the full response time.

callsim finds it through the ``callsim.transports`` entry point in this package's
pyproject.toml, which names :data:`SPEC`.
"""

from __future__ import annotations

import json
import time
from typing import Any

import aiohttp

from simulator.transports.base import Deadlines, Exchange, ToolCallOut
from simulator.transports.registry import TransportOptions, TransportSpec


class JsonWebhookTransport:
    """One instance per run, shared by every call (so one connection pool)."""

    def __init__(self, base_url: str, model: str, *, api_key: str | None = None,
                 deadlines: Deadlines | None = None) -> None:
        self.url = base_url.rstrip("/") + "/chat/completions"
        self.model = model
        self.deadlines = deadlines or Deadlines()
        self.headers = {"Content-Type": "application/json"}
        if api_key:
            self.headers["Authorization"] = f"Bearer {api_key}"
        self._session: aiohttp.ClientSession | None = None

    def _get_session(self) -> aiohttp.ClientSession:
        if self._session is None or self._session.closed:
            self._session = aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(
                total=self.deadlines.first_byte_s, sock_connect=self.deadlines.connect_s))
        return self._session

    async def exchange(self, messages: list[dict[str, Any]], tools: list[dict[str, Any]], *,
                       interrupt_after_s: float | None = None,
                       call_id: str | None = None) -> Exchange:
        body = {"model": self.model, "messages": messages, "stream": False}
        if tools:
            body["tools"] = tools
        headers = dict(self.headers)
        if call_id:
            headers["X-Callsim-Call-Id"] = call_id
        ex = Exchange(sent_ns=time.perf_counter_ns())
        try:
            async with self._get_session().post(self.url, json=body, headers=headers) as r:
                raw = await r.read()
                ex.first_byte_ns = ex.last_byte_ns = time.perf_counter_ns()
                ex.status = r.status
        except TimeoutError:
            ex.error, ex.error_detail = "first_byte_timeout", "no answer in time"
            return ex
        except aiohttp.ClientError as exc:
            ex.error, ex.error_detail = "connect_error", str(exc)
            return ex
        if ex.status >= 400:
            ex.error = "http_4xx" if ex.status < 500 else "http_5xx"
            ex.error_detail = f"HTTP {ex.status}"
            return ex
        try:
            reply = json.loads(raw)
            choice = reply["choices"][0]
            message = choice["message"]
        except (ValueError, KeyError, IndexError, TypeError) as exc:
            ex.error, ex.error_detail = "protocol_error", f"not a chat.completion: {exc!r}"
            return ex
        ex.text = message.get("content") or ""
        for tc in message.get("tool_calls") or []:
            args = tc["function"].get("arguments") or ""
            try:
                parsed = json.loads(args)
            except ValueError:
                parsed = None
            ex.tool_calls.append(ToolCallOut(id=tc.get("id", ""), name=tc["function"]["name"],
                                             arguments=args,
                                             parsed=parsed if isinstance(parsed, dict) else None))
        if ex.text or ex.tool_calls:
            ex.first_content_ns = ex.first_byte_ns
        ex.usage = reply.get("usage")
        ex.finish_reason = choice.get("finish_reason")
        return ex

    async def warmup(self, connections: int) -> None:
        self._get_session()

    async def aclose(self) -> None:
        if self._session is not None:
            await self._session.close()
            self._session = None


def _build(o: TransportOptions) -> JsonWebhookTransport:
    return JsonWebhookTransport(o.target, o.model, api_key=o.api_key, deadlines=o.deadlines)


SPEC = TransportSpec(name="json-webhook", carries="text", build=_build,
                     summary="one JSON request, one JSON answer per agent turn")
