"""Audio path: speech rendering (pyttsx3/espeak-ng), the telephone-line degradation chain,
per-turn rendering for fixtures, and framing helpers for the audio transports.
See docs/audio.md.
"""

from __future__ import annotations

from simulator.audio.chain import AudioParams, DegradedAudio, degrade_audio
from simulator.audio.dsp import (
    frames_mulaw_20ms,
    from_pcm16_bytes,
    mulaw_to_pcm16_24k,
    pcm16_24k_to_mulaw,
    to_pcm16_bytes,
)
from simulator.audio.render import render_calls, render_turn
from simulator.audio.tts import TTSUnavailableError, Voice, synthesize, voice_for

__all__ = [
    "AudioParams",
    "DegradedAudio",
    "TTSUnavailableError",
    "Voice",
    "degrade_audio",
    "frames_mulaw_20ms",
    "from_pcm16_bytes",
    "mulaw_to_pcm16_24k",
    "pcm16_24k_to_mulaw",
    "render_calls",
    "render_turn",
    "synthesize",
    "to_pcm16_bytes",
    "voice_for",
]
