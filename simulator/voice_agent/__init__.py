"""The reference agent's audio endpoints (Twilio Media Streams and Realtime), for testing
the audio transports against a real server on loopback. See docs/transports.md."""

from __future__ import annotations

from simulator.voice_agent.server import (
    VoiceAgentConfig,
    create_voice_app,
    create_voice_routes,
    start_voice_agent,
)

__all__ = ["VoiceAgentConfig", "create_voice_app", "create_voice_routes", "start_voice_agent"]
