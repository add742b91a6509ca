"""Shared set-up for audio-call tests: the reference voice agent, the tool relay and the
tool backend on 127.0.0.1, and one call script with a tool call and a barge-in."""

from __future__ import annotations

import json
import time
from typing import Any

from simulator.agent.voice import SPEECH_KEY, VoiceAgentConfig, create_voice_app
from simulator.audio.line import SyntheticSpeech
from simulator.callscript import CallScript
from simulator.driver.audio_call import run_audio_call
from simulator.driver.session import CallRun
from simulator.personas import Caller, generate_calls, load_packs
from simulator.tools.backend import ToolBackend
from simulator.tools.relay import ToolRelay, create_tool_relay_app
from simulator.transports.base import Deadlines
from simulator.transports.line import AudioTransport
from tests.conftest import serve_app

TTFT_MS = 120.0
VAD_MS = 200.0
SECONDS_PER_WORD = 0.04

PACKS = load_packs()


def script_with_tool_and_barge_in(onset_s: float = 0.2) -> CallScript:
    """A salon booking (lookup + create) whose opening turn carries a barge-in."""
    calls = generate_calls(PACKS, "salon", 8, 3)
    script = next(c for c in calls if c.record_exists and len(c.expected_tool_calls) >= 2)
    turns = list(script.turns)
    turns[0] = turns[0].model_copy(update={"events": [
        {"type": "barge_in", "onset_s": onset_s, "text": "sorry, one second"}]})
    return script.model_copy(update={"turns": turns})


def voice_config(tools_url: str | None = None, **kw: Any) -> VoiceAgentConfig:
    # stt none: timing tests need time to first audio to be exactly VAD + ttft_ms.
    base: dict[str, Any] = {"ttft_ms": TTFT_MS, "vad_silence_ms": VAD_MS, "stt": "none",
                            "seconds_per_word": SECONDS_PER_WORD, "tools_url": tools_url}
    return VoiceAgentConfig(**{**base, **kw})


async def call_reference(make_transport: Any, script: CallScript, *, greeting_wait_s: float,
                         path: str, agent_kw: dict[str, Any] | None = None,
                         said: list[str] | None = None, listener: Any = None,
                         call_s: float = 60.0) -> CallRun:
    """Run one call of ``script`` against the reference voice agent at ``path``. ``said``
    receives what the agent said, from its own log (its words never travel on the wire)."""
    backend = ToolBackend(PACKS)
    backend.load([script])

    async def execute(name: str, parsed: dict[str, Any] | None, raw: str, k: int
                      ) -> tuple[str, dict[str, Any] | None]:
        if parsed is None:
            return json.dumps({"error": "invalid_arguments"}), None
        return json.dumps(backend.execute(script.call_id, name, parsed)), None

    relay = ToolRelay()
    pack = PACKS[script.pack]
    async with serve_app(create_tool_relay_app(relay)) as tools_url:
        app = create_voice_app(voice_config(tools_url, **(agent_kw or {})), PACKS)
        async with serve_app(app) as url:
            transport: AudioTransport = make_transport(url.replace("http://", "ws://") + path)
            try:
                return await run_audio_call(
                    script, Caller(script, pack), transport, execute,
                    deadlines=Deadlines(first_byte_s=5.0, call_s=call_s),
                    run_t0_ns=time.perf_counter_ns(), call_id=script.call_id,
                    tools=pack.tool_schemas(), system_prompt=pack.system_prompt,
                    speech=SyntheticSpeech(SECONDS_PER_WORD), relay=relay,
                    agent_silence_s=0.25, greeting_wait_s=greeting_wait_s,
                    listener=listener)
            finally:
                await transport.aclose()
                if said is not None:
                    said.extend(e["text"] for e in app[SPEECH_KEY].said)
