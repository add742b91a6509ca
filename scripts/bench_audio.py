"""Benchmark: speech rendering + line degradation speed, as a multiple of real time.

Pinned to one core (and single-threaded BLAS/FFT). Prints numbers for a first (cold cache)
render and a cached one, per profile; asserts nothing. Usage:

    python scripts/bench_audio.py [--turns 40] [--profiles typical_call,noisy,hostile]
"""

from __future__ import annotations

import os

for _var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ.setdefault(_var, "1")

import argparse  # noqa: E402
import sys  # noqa: E402
import tempfile  # noqa: E402
import time  # noqa: E402
from pathlib import Path  # noqa: E402

import yaml  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from simulator.audio.chain import AudioParams  # noqa: E402
from simulator.audio.render import render_calls  # noqa: E402
from simulator.audio.tts import tts_available  # noqa: E402
from simulator.callscript import CallScript  # noqa: E402

SENTENCES = [
    "Hi, I'd like to book an appointment for next Tuesday morning if you have anything.",
    "Yes.",
    "My date of birth is the third of March, nineteen seventy two.",
    "Um, actually, could we make that the sixteenth instead of the fifteenth?",
    "The number is five five five, one two three, four five six seven.",
    "No, that's all, thank you so much for your help today.",
    "I'm calling about the apartment on Elm Street, is it still available?",
    "Sorry, what was that?",
]


def make_calls(n_turns: int) -> list[CallScript]:
    calls = []
    per_call = 4
    for c in range(max(1, n_turns // per_call)):
        turns = [
            {"index": i, "text": SENTENCES[(c * per_call + i) % len(SENTENCES)] + f" Call {c}."}
            for i in range(per_call)
        ]
        calls.append(
            CallScript.model_validate(
                {
                    "call_id": f"bench-{c:03d}",
                    "pack": "bench",
                    "intent": "book",
                    "seed": c,
                    "persona": {"name": f"Caller {c}"},
                    "record_exists": True,
                    "slots": {},
                    "turns": turns,
                    "expected_tool_calls": [],
                    "expected_outcome": "completed",
                }
            )
        )
    return calls


def audio_seconds(manifest: Path) -> float:
    import json

    return sum(e["duration_s"] for e in json.loads(manifest.read_text())["turns"])


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--turns", type=int, default=40)
    ap.add_argument("--profiles", default="typical_call,noisy,hostile")
    args = ap.parse_args()
    if hasattr(os, "sched_setaffinity"):
        os.sched_setaffinity(0, {sorted(os.sched_getaffinity(0))[0]})
    ok, why = tts_available()
    print(f"tts: {why}")
    if not ok:
        return 0
    calls = make_calls(args.turns)
    with tempfile.TemporaryDirectory() as tmp:
        cache = Path(tmp) / "cache"
        print(f"{'profile':<14}{'render':<8}{'audio s':>9}{'wall s':>9}{'x realtime':>12}")
        for i, name in enumerate(args.profiles.split(",")):
            data = yaml.safe_load((ROOT / "noise_profiles" / f"{name}.yaml").read_text())
            params = AudioParams.from_dict(data.get("audio"))
            # Only the first profile sees a cold TTS cache; the others reuse its renders.
            passes = ("first", "cached") if i == 0 else ("cached",)
            for label in passes:
                t0 = time.perf_counter()
                man = render_calls(calls, params, Path(tmp) / f"{name}-{label}", 1, cache_dir=cache)
                wall = time.perf_counter() - t0
                secs = audio_seconds(man)
                print(f"{name:<14}{label:<8}{secs:>9.1f}{wall:>9.2f}{secs / wall:>12.1f}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
