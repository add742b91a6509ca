"""callsim over WebRTC against a real Pipecat bot: examples/pipecat_bot served over Pipecat's
SmallWebRTC transport on 127.0.0.1 (``bot.py --transport webrtc``: offers POSTed to
``/api/offer``, Opus over aiortc on both sides), its LLM callsim's reference agent.

callsim calls it with Piper caller voices and hears it only through its listener. The bot's
own turn log (``--timing-log``) says what its recogniser heard, what it said, and who hung up.
"""

from __future__ import annotations

import json
import os
import re
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from simulator.agent.process import running_agent
from simulator.audio.asr import asr_available
from simulator.audio.reference_voice import reference_voice_available

pytest.importorskip("pipecat", reason="needs callsim[pipecat]")
pytest.importorskip("aiortc", reason="needs aiortc (callsim[pipecat] or callsim[webrtc])")
for _ok, _why in (asr_available(), reference_voice_available()):
    if not _ok:
        pytest.skip(_why, allow_module_level=True)

ROOT = Path(__file__).resolve().parents[1]
BOT = ROOT / "examples" / "pipecat_bot" / "bot.py"
CALLS, SEED = 2, 5
# Words too common to show that one side heard the other.
_COMMON = {"the", "and", "that", "this", "with", "your", "you", "for", "have", "what", "can",
           "are", "it's", "i'm", "just", "like", "know", "was", "but", "not", "yes", "okay"}


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _words(text: str) -> set[str]:
    return {w for w in re.findall(r"[a-z']+", text.lower()) if len(w) >= 3} - _COMMON


def _read_jsonl(path: Path) -> list[dict[str, Any]]:
    if not path.exists():
        return []
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


@pytest.fixture(scope="module")
def webrtc_bot(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Any]]:
    """The example bot over SmallWebRTC in a child process, with callsim's reference agent
    as its LLM; its offer URL, turn log and the tool relay's port and token."""
    tmp = tmp_path_factory.mktemp("pipecat_webrtc")
    timing, token, relay_port = tmp / "bot_turns.jsonl", "relay-token-webrtc", _free_port()
    with running_agent() as agent:
        log = tmp / "bot.log"
        proc = subprocess.Popen(
            [sys.executable, str(BOT), "--transport", "webrtc", "--port", "0",
             "--llm-url", agent.url, "--tools-url", f"http://127.0.0.1:{relay_port}",
             "--timing-log", str(timing), "--turn", "silence"],
            cwd=BOT.parent, stdout=subprocess.PIPE, stderr=log.open("w"), text=True,
            env={**os.environ, "PYTHONUNBUFFERED": "1", "CALLSIM_TOOLS_TOKEN": token})
        try:
            assert proc.stdout is not None
            url, deadline = "", time.monotonic() + 600  # Pipecat's imports, the bot's LM
            while time.monotonic() < deadline and not url:
                line = proc.stdout.readline()
                if not line:
                    break
                if "http://" in line:
                    url = line[line.index("http://"):].split()[0]
            if not url:
                pytest.fail(f"the Pipecat bot did not start: {log.read_text()[-2000:]}")
            yield {"url": url, "timing": timing, "token": token, "relay_port": relay_port,
                   "tmp": tmp, "log": log}
        finally:
            proc.terminate()
            try:
                proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()


@pytest.fixture(scope="module")
def webrtc_run(webrtc_bot: dict[str, Any]) -> dict[str, Any]:
    """``callsim run --transport webrtc``: two calls, one at a time, then the export."""
    b, tmp = webrtc_bot, webrtc_bot["tmp"]
    env = {**os.environ, "CALLSIM_TOOLS_TOKEN": b["token"], "CALLSIM_TTS_CACHE":
           os.environ.get("CALLSIM_TTS_CACHE", str(Path.home() / ".cache/callsim/tts"))}
    cmd = [sys.executable, "-m", "simulator", "run", "--target", b["url"],
           "--transport", "webrtc", "--caller-audio", "tts", "--caller-voice", "piper",
           "--count", str(CALLS), "--concurrency", "1", "--seed", str(SEED),
           "--tools-port", str(b["relay_port"]), "--tools-token-env", "CALLSIM_TOOLS_TOKEN",
           "--listener", "pocketsphinx",
           # a bot on a busy two-core machine can take seconds to greet and to answer
           "--greeting-wait", "30", "--reprompt-after", "30", "--agent-silence", "2.5",
           "--first-byte-timeout", "90", "--runs-dir", str(tmp / "runs"), "--json"]
    done = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=1200)
    assert done.returncode == 0, done.stderr[-3000:]
    summary = json.loads(done.stdout)
    out = tmp / "export.jsonl"
    subprocess.run([sys.executable, "-m", "simulator", "export", summary["run_dir"],
                    "--runs-dir", str(tmp / "runs"), "-o", str(out)],
                   check=True, capture_output=True, timeout=120)
    rows = _read_jsonl(out)
    return {"summary": summary,
            "calls": [r for r in rows if r["record"] == "call"],
            "turns": [r for r in rows if r["record"] == "turn"],
            "bot": _read_jsonl(b["timing"])}


@pytest.mark.slow
@pytest.mark.timeout(1800)
def test_calls_over_webrtc_complete_with_audio_both_ways(webrtc_run: dict[str, Any]) -> None:
    s, calls, bot = webrtc_run["summary"], webrtc_run["calls"], webrtc_run["bot"]
    print(json.dumps({k: s[k] for k in ("calls", "errors", "audio")}, indent=1))
    assert s["calls"]["ok"] == CALLS, s["errors"]
    for c in calls:
        cid = c["call_id"]
        mine = [r for r in bot if r.get("call_id") == cid]
        # The bot's recogniser heard the caller: its transcripts hold the caller's words.
        caller_words = set().union(*(_words(t["text"]) for t in c["transcript"]["caller"]))
        bot_heard = set().union(*(_words(r["text"]) for r in mine if r["event"] == "heard"))
        print(cid, "bot heard caller words:", sorted(caller_words & bot_heard))
        assert caller_words & bot_heard, (cid, sorted(caller_words), sorted(bot_heard))
        # callsim's listener heard the bot: what it heard holds what the bot said.
        said = set().union(*(_words(r["said"]) for r in mine
                             if r["event"] == "bot_stopped_speaking"))
        heard = set().union(*(_words(t) for t in c["transcript"]["agent"]))
        print(cid, "callsim heard bot words:", sorted(said & heard))
        assert len(said & heard) >= 3, (cid, sorted(said), sorted(heard))
        assert c["outcome"]["graded_from"] == "audio"
        # callsim hung up at the end of its script, and the bot saw the caller leave.
        assert [r["by"] for r in mine if r["event"] == "call_ended"] == ["caller"], mine[-3:]
        assert c["transcript"]["audio"]["agent_hung_up"] is False
    first = [t for t in webrtc_run["turns"] if t["conn_setup_ms"]]
    assert len(first) == CALLS
    for t in first:
        # ICE + DTLS set-up, and how long aiortc held the bot's frames before handing them
        # over (its audio jitter buffer releases a frame once four more have arrived).
        assert t["answer_to_audio_ms"] is not None
        assert t["jitter_buffer_ms"] is not None and t["jitter_buffer_ms"] > 0
    print("set-up ms", [round(t["conn_setup_ms"], 1) for t in first], "frames held ms",
          [t["jitter_buffer_ms"] for t in first])


@pytest.mark.slow
@pytest.mark.timeout(600)
async def test_the_bot_hangs_up_and_callsim_takes_it_as_the_end_of_the_call(
        webrtc_bot: dict[str, Any]) -> None:
    """The bot hangs up 25 s into the call (``max_call_secs`` in the offer's request data,
    which Pipecat hands the bot): SmallWebRTC says ``peerLeft`` and closes; callsim ends the
    call as a hang-up, not an error."""
    from simulator.driver.audio_call import run_audio_call
    from simulator.personas import Caller, generate_calls, load_packs
    from simulator.transports.base import Deadlines
    from simulator.transports.webrtc import WebRTCTransport

    packs = load_packs()
    script = generate_calls(packs, "salon", 1, SEED)[0]

    async def no_tools(*_a: Any) -> tuple[str, None]:
        return "{}", None

    transport = WebRTCTransport(webrtc_bot["url"], request_data={"max_call_secs": 25})
    try:
        run = await run_audio_call(
            script, Caller(script, packs[script.pack]), transport, no_tools,
            deadlines=Deadlines(connect_s=20.0, first_byte_s=90.0, call_s=300.0),
            run_t0_ns=time.perf_counter_ns(), greeting_wait_s=30.0, agent_silence_s=2.5)
    finally:
        await transport.aclose()
    assert run.error is None, run.error_detail
    assert ("agent_hung_up", {}) in run.events
    assert transport.lines[0].hangup_by == "agent"
    ended = [r for r in _read_jsonl(webrtc_bot["timing"])
             if r["event"] == "call_ended" and r["call_id"] == script.call_id]
    assert [r["by"] for r in ended] == ["bot"], ended
