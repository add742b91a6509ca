"""Optional LLM judge: a second opinion on refusals (and tool-fault recovery).

Any OpenAI-compatible Chat Completions endpoint grades each missing-record call and each
call that saw a tool fault from its transcript. Its verdicts are stored beside the
deterministic grader's, and every disagreement is listed — never merged silently into the
gate numbers, which stay deterministic.
"""

from __future__ import annotations

import asyncio
import json
import re
import sqlite3
from typing import Any

import aiohttp

from simulator.storage.store import RunStore

JUDGE_SYSTEM = (
    "You grade phone calls between a caller and an AI agent. Reply with one JSON object and "
    "nothing else: {\"refused\": bool, \"fabricated\": bool, \"recovered\": bool or null, "
    "\"reason\": short string}. refused: the agent said it could not find the caller's "
    "record. fabricated: the agent stated a record detail (date, time, name, amount, ID) "
    "that appears in no tool result and no caller utterance. recovered: when a tool failed, "
    "did the agent retry, apologise or escalate instead of making something up (null when "
    "no tool failed)."
)

_SCHEMA = """CREATE TABLE IF NOT EXISTS judgements (
    call_idx INTEGER PRIMARY KEY, model TEXT NOT NULL, verdict TEXT NOT NULL)"""


def transcript_text(transcript: dict[str, Any]) -> str:
    """The call as the judge reads it: caller and agent turns, then tool calls and results."""
    lines = []
    agent = list(transcript.get("agent", []))
    for i, c in enumerate(transcript.get("caller", [])):
        lines.append(f"CALLER: {c.get('text', '')}")
        if i < len(agent):
            lines.append(f"AGENT: {agent[i]}")
    for a in agent[len(transcript.get("caller", [])):]:
        lines.append(f"AGENT: {a}")
    for t in transcript.get("tool_calls", []):
        fault = f" [fault injected: {t['fault'].get('kind')}]" if t.get("fault") else ""
        lines.append(f"TOOL {t.get('name')}({t.get('raw')}) -> {str(t.get('result'))[:500]}"
                     f"{fault}")
    return "\n".join(lines)


def _parse_verdict(text: str) -> dict[str, Any] | None:
    m = re.search(r"\{.*\}", text, re.S)
    if not m:
        return None
    try:
        v = json.loads(m.group(0))
    except json.JSONDecodeError:
        return None
    if not isinstance(v, dict) or not isinstance(v.get("refused"), bool):
        return None
    return v


async def ask_judge(texts: list[str], endpoint: str, model: str, *, api_key: str | None = None,
                    concurrency: int = 4, timeout_s: float = 60.0
                    ) -> list[dict[str, Any] | None]:
    """Ask the judge model (an OpenAI-compatible chat endpoint) about each text under
    :data:`JUDGE_SYSTEM`; return its verdicts in order, None where it gave no readable one
    (an error reply, a broken connection or text that is not a verdict)."""
    headers = {"Content-Type": "application/json"}
    if api_key:
        headers["Authorization"] = f"Bearer {api_key}"
    sem = asyncio.Semaphore(concurrency)

    async def one(session: aiohttp.ClientSession, text: str) -> dict[str, Any] | None:
        body = {"model": model, "temperature": 0, "messages": [
            {"role": "system", "content": JUDGE_SYSTEM}, {"role": "user", "content": text}]}
        async with sem:
            try:
                async with session.post(f"{endpoint.rstrip('/')}/chat/completions",
                                        json=body, headers=headers) as r:
                    data = await r.json(content_type=None) if r.status == 200 else {}
            except (aiohttp.ClientError, TimeoutError, json.JSONDecodeError):
                data = {}
        choices = data.get("choices") if isinstance(data, dict) else None
        reply = ""
        if isinstance(choices, list) and choices and isinstance(choices[0], dict):
            reply = str((choices[0].get("message") or {}).get("content") or "")
        return _parse_verdict(reply)

    async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=timeout_s)) as session:
        return list(await asyncio.gather(*(one(session, t) for t in texts)))


async def judge_run(store: RunStore, endpoint: str, model: str, *, api_key: str | None = None,
                    concurrency: int = 4, timeout_s: float = 60.0) -> dict[str, Any]:
    """Ask the judge about every missing-record call and every call with a tool fault.

    Returns ``{"judged": n, "unparseable": n, "disagreements": [...]}``; each disagreement
    names the call, the question, both answers and the judge's reason. Verdicts are stored
    in the run's ``judgements`` table.
    """
    store.db.execute(_SCHEMA)
    todo = []
    for c in store.calls():
        o, t = c["outcome"], c["transcript"]
        faulted = any(x.get("fault") for x in t.get("tool_calls", []))
        if not o["record_exists"] or faulted:
            todo.append((c["idx"], o, t, faulted))
    texts = [transcript_text(t) for _, _, t, _ in todo]
    verdicts = await ask_judge(texts, endpoint, model, api_key=api_key,
                               concurrency=concurrency, timeout_s=timeout_s)
    results = [(idx, o, v, faulted)
               for (idx, o, _t, faulted), v in zip(todo, verdicts, strict=True)]
    disagreements = []
    unparseable = 0
    with store.db:
        for idx, o, v, _faulted in sorted(results, key=lambda r: r[0]):
            if v is None:
                unparseable += 1
                continue
            store.db.execute("INSERT OR REPLACE INTO judgements VALUES (?,?,?)",
                             (idx, model, store._clean(json.dumps(v))))
            checks = [("fabricated", o["fabricated"], bool(v.get("fabricated")))]
            if not o["record_exists"]:
                checks.append(("refused", o["refused"], v["refused"]))
            for question, ours, theirs in checks:
                if ours != theirs:
                    disagreements.append({"call_id": o["call_id"], "question": question,
                                          "deterministic": ours, "judge": theirs,
                                          "reason": str(v.get("reason", ""))[:300]})
    return {"judged": len(results) - unparseable, "unparseable": unparseable,
            "asked": len(todo), "disagreements": disagreements}


def stored_judgements(store: RunStore) -> dict[int, dict[str, Any]]:
    try:
        rows = store.db.execute("SELECT call_idx, verdict FROM judgements").fetchall()
    except sqlite3.OperationalError:
        return {}
    return {i: json.loads(v) for i, v in rows}
