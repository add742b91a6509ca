"""The Piper reference voice that probes the lines in `callsim calibrate --audio`."""

from __future__ import annotations

import hashlib
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from simulator.audio import asr, reference_voice, tts
from simulator.audio.calibrate_audio import caller_utterances
from simulator.degradation.asr_noise import error_counts

REF_OK, REF_WHY = reference_voice.reference_voice_available()
needs_ref = pytest.mark.skipif(not REF_OK, reason=f"needs the reference voice ({REF_WHY})")
TEXT = "I'd like to book a cleaning on March 7th at 2:30 PM, please."

_RENDER_IN_A_FRESH_PROCESS = """
import hashlib, sys
from simulator.audio.reference_voice import synthesize_reference
r = synthesize_reference(sys.argv[1], use_cache=False)
print(r.sample_rate, hashlib.sha256(r.samples.tobytes()).hexdigest())
"""


@needs_ref
def test_the_same_text_gives_the_same_samples_in_any_process(tmp_path: Path) -> None:
    runs = [subprocess.run([sys.executable, "-c", _RENDER_IN_A_FRESH_PROCESS, TEXT],
                           capture_output=True, text=True, check=True, timeout=120).stdout
            for _ in range(2)]
    first = reference_voice.synthesize_reference(TEXT, tmp_path)
    again = reference_voice.synthesize_reference(TEXT, tmp_path)
    other = reference_voice.synthesize_reference("Can I reschedule to Friday?", tmp_path)
    here = f"{first.sample_rate} {hashlib.sha256(first.samples.tobytes()).hexdigest()}\n"
    assert runs == [here, here]
    assert (first.cached, again.cached) == (False, True)
    np.testing.assert_array_equal(first.samples, again.samples)
    assert first.cache_key != other.cache_key
    # about 3 s of speech at the voice's 22,050 Hz, under full scale
    assert first.sample_rate == 22_050
    assert 2.0 < len(first.samples) / first.sample_rate < 5.0
    assert 0.3 < float(np.max(np.abs(first.samples))) <= reference_voice.LEVEL + 1e-4


def test_without_piper_the_error_names_the_extra(monkeypatch: pytest.MonkeyPatch) -> None:
    import importlib.metadata

    real = importlib.metadata.version

    def no_piper(dist: str) -> str:
        if dist == "piper-tts":
            raise importlib.metadata.PackageNotFoundError(dist)
        return real(dist)

    monkeypatch.setattr(importlib.metadata, "version", no_piper)
    ok, why = reference_voice.reference_voice_available()
    assert not ok and "piper-tts" in why and "pip install 'callsim[asr]'" in why
    assert "\n" not in why
    with pytest.raises(tts.TTSUnavailableError, match=r"callsim\[asr\]"):
        reference_voice.synthesize_reference(TEXT)


@needs_ref
@pytest.mark.skipif(not asr.asr_available()[0], reason="needs pocketsphinx")
@pytest.mark.skipif(not tts.tts_available()[0], reason="needs espeak-ng")
def test_the_recogniser_hears_the_reference_voice_far_better_than_espeak(
        tmp_path: Path) -> None:
    rec = asr.Recogniser(asr.RecogniserConfig(lm="domain", lm_cache_dir=str(tmp_path / "lm")))
    wer = {}
    for speech in ("piper", "espeak"):
        errors = words = 0
        for u in caller_utterances(12, 1, str(tmp_path / "tts"), speech):  # type: ignore[arg-type]
            e, n = error_counts(u.reference, rec.transcribe(u.samples, u.sample_rate))
            errors += e
            words += n
        wer[speech] = errors / words
    # measured (200 utterances, undegraded): piper 8.1%, espeak-ng 53%
    assert wer["piper"] < 0.25 and wer["piper"] < wer["espeak"] - 0.2, wer
