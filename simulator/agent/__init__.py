"""The reference agent: a deterministic, rule-based agent speaking the OpenAI Chat
Completions API (:mod:`.server`) and answering phone calls over Twilio Media Streams and a
Realtime-style WebSocket (:mod:`.voice`), so callsim has a real server to drive without an
API key. :mod:`.serve` runs both on one port."""

from __future__ import annotations

from simulator.agent.policy import AgentConfig, AgentToolCall, Reply, decide
from simulator.agent.server import create_agent_app, serve_forever, start_agent, tokenize

__all__ = [
    "AgentConfig",
    "Reply",
    "AgentToolCall",
    "create_agent_app",
    "decide",
    "serve_forever",
    "start_agent",
    "tokenize",
]
