"""The reference agent: a deterministic, rule-based voice agent speaking the OpenAI Chat
Completions API, so callsim has a real server to drive without an API key."""

from __future__ import annotations

from simulator.agent.policy import AgentConfig, Reply, ToolCallOut, decide
from simulator.agent.server import create_agent_app, serve_forever, start_agent, tokenize

__all__ = [
    "AgentConfig",
    "Reply",
    "ToolCallOut",
    "create_agent_app",
    "decide",
    "serve_forever",
    "start_agent",
    "tokenize",
]
