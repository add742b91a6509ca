"""Time to first audio from a Twilio run reaches the export, the summary and the gate: two
runs against the reference agent's Twilio endpoint, exported as JSONL (per-turn rows), then
judged by `callsim gate` with the example rubric's ``p95_ttfa_ms`` guard."""

from __future__ import annotations

import json
import socket
import subprocess
import sys
from pathlib import Path

import yaml

from simulator.agent.process import agent_process

ROOT = Path(__file__).resolve().parents[1]
RUBRIC = ROOT / "examples" / "rubric.yaml"
CALLSIM = [sys.executable, "-m", "simulator"]
TTFT_MS, VAD_MS = 150, 300


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _twilio_run(url: str, relay: int, runs: Path, seed: int) -> dict:
    base = url.removeprefix("http://").removesuffix("/v1")
    p = subprocess.run(
        [*CALLSIM, "run", "--target", f"ws://{base}/twilio", "--transport", "twilio",
         "--text-hints", "--caller-audio", "tones", "--listener", "off",
         "--tools-port", str(relay),
         "--count", "4", "--concurrency", "4", "--seed", str(seed), "--runs-dir", str(runs),
         "--no-pauses", "--rubric", str(RUBRIC), "--json"],
        capture_output=True, text=True, timeout=300)
    assert p.returncode == 0, p.stderr[-2000:]
    return json.loads(p.stdout)


def test_the_example_rubric_guards_time_to_first_audio() -> None:
    guards = yaml.safe_load(RUBRIC.read_text())["guards"]
    assert guards["p95_ttfa_ms"] == {"max": 2500}


def test_twilio_runs_export_time_to_first_audio_and_the_gate_guards_it(tmp_path: Path) -> None:
    relay = _free_port()
    with agent_process("--ttft-ms", str(TTFT_MS), "--vad-silence-ms", str(VAD_MS),
                       "--stt", "none", "--tools-url", f"http://127.0.0.1:{relay}") as url:
        a = _twilio_run(url, relay, tmp_path, seed=2)
        b = _twilio_run(url, relay, tmp_path, seed=2)
    # The summary carries time to first audio: the agent's VAD hangover plus its delay.
    ttfa = b["audio"]["ttfa_ms"]
    assert ttfa["n"] >= 4 and TTFT_MS + VAD_MS <= ttfa["p50"] <= TTFT_MS + VAD_MS + 400
    exported = subprocess.run([*CALLSIM, "export", b["run_dir"], "--format", "jsonl"],
                              capture_output=True, text=True, timeout=60, check=True)
    rows = [json.loads(line) for line in exported.stdout.splitlines()]
    calls = [r for r in rows if r["record"] == "call"]
    turns = [r for r in rows if r["record"] == "turn"]
    assert len(calls) == 4
    assert {t["call_idx"] for t in turns} == {c["idx"] for c in calls}
    caller_turns = [t for t in turns if t["phase"] == "caller"]
    assert caller_turns and all(t["ttfa_ms"] is not None and t["agent_speech_s"] > 0
                                for t in caller_turns)
    # The run's frame timing: every frame every call sent is in the summary's distribution.
    sent = sum(c["transcript"]["audio"]["frames_sent"] for c in calls)
    jitter = b["send_jitter_ms"]
    assert sent > 100 and jitter["frames"] == sent
    assert 0 <= jitter["p50"] <= jitter["p99"] <= jitter["max"]
    # the distribution keeps two significant digits (within 5%)
    worst = max(c["transcript"]["audio"]["send_jitter_max_ms"] for c in calls)
    assert 0.95 * worst - 0.01 <= jitter["max"] <= 1.05 * worst + 0.01

    gate = subprocess.run([*CALLSIM, "gate", a["run_dir"], b["run_dir"], "--rubric",
                           str(RUBRIC), "--json"], capture_output=True, text=True, timeout=120)
    # Four calls are too few for the four numbers (exit 2: inconclusive), but the guard is
    # judged on the candidate's recorded time to first audio.
    assert gate.returncode == 2, gate.stderr
    verdict = json.loads(gate.stdout)
    guard = next(g for g in verdict["guards"] if g["name"] == "p95_ttfa_ms")
    assert guard["applies"] and guard["breached"] is False
    assert TTFT_MS + VAD_MS <= guard["candidate"]["value"] <= 2500

    # The same runs under a guard their time to first audio breaches: the gate fails (exit 1).
    strict = tmp_path / "strict.yaml"
    strict.write_text(RUBRIC.read_text().replace("p95_ttfa_ms: {max: 2500}",
                                                 "p95_ttfa_ms: {max: 100}"))
    failed = subprocess.run([*CALLSIM, "gate", a["run_dir"], b["run_dir"], "--rubric",
                             str(strict), "--allow-mismatch", "--json"],
                            capture_output=True, text=True, timeout=120)
    assert failed.returncode == 1, failed.stderr
    guard = next(g for g in json.loads(failed.stdout)["guards"] if g["name"] == "p95_ttfa_ms")
    assert guard["breached"] is True
