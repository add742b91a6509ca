"""Audio transports through the whole driver: `callsim run --transport twilio|openai-realtime`
against the reference agent's voice endpoints, with tool calls graded like text calls."""

from __future__ import annotations

import json
import socket
import subprocess
import sys
from pathlib import Path

import pytest

from simulator.agent.process import agent_process

CALLSIM = [sys.executable, "-m", "simulator"]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.mark.timing
@pytest.mark.parametrize("transport", ["twilio", "openai-realtime"])
def test_audio_calls_complete_with_tools_and_time_to_first_audio(
    transport: str, tmp_path: Path
) -> None:
    relay = _free_port()
    # --stt none / --caller-audio tones: the timing bounds hold only without recognition.
    with agent_process("--ttft-ms", "150", "--vad-silence-ms", "300", "--stt", "none",
                       "--tools-url", f"http://127.0.0.1:{relay}") as url:
        base = url.removeprefix("http://").removesuffix("/v1")
        path = "/twilio" if transport == "twilio" else "/v1/realtime"
        p = subprocess.run(
            [*CALLSIM, "run", "--target", f"ws://{base}{path}", "--transport", transport,
             "--text-hints", "--caller-audio", "tones", "--listener", "off",
             "--tools-port", str(relay),
             "--count", "3", "--concurrency", "3",
             "--seed", "2", "--runs-dir", str(tmp_path), "--no-pauses", "--json"],
            capture_output=True, text=True, timeout=300)
    assert p.returncode == 0, p.stderr[-2000:]
    s = json.loads(p.stdout)
    assert s["calls"]["ok"] == 3
    assert s["gate"]["tool_arg_accuracy"] >= 0.95
    # End of caller speech -> first agent audio: the agent's VAD hangover plus its delay.
    assert 300 + 150 <= s["ttft_ms"]["p50"] <= 300 + 150 + 100
