"""An offline speech-to-text service for Pipecat: pocketsphinx, run on each VAD segment.

Pipecat has no offline recogniser whose model ships inside a PyPI package, so this is a
small :class:`~pipecat.services.stt_service.SegmentedSTTService` (the base Pipecat's own
Whisper service uses): the VAD cuts the caller's speech into segments and each segment is
transcribed once, off the event loop. The recogniser is callsim's pocketsphinx wrapper with
the wheel's US-English acoustic model and, by default, a domain language model built from
callsim's persona packs (a deployed bot's recogniser would be tuned to its domain too).
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncGenerator

import numpy as np
from loguru import logger
from pipecat.frames.frames import ErrorFrame, Frame, TranscriptionFrame
from pipecat.services.settings import STTSettings
from pipecat.services.stt_service import SegmentedSTTService
from pipecat.utils.time import time_now_iso8601

from simulator.audio.asr import Recogniser, RecogniserConfig


class PocketsphinxSTTService(SegmentedSTTService):
    """Transcribes each speech segment with pocketsphinx.

    ``lm``: "domain" (a trigram over callsim's persona packs' caller text, built once and
    cached) or "generic" (the wheel's general English model). Loading takes a few seconds,
    so the recogniser is created once and shared by every call of the process
    (:meth:`load`)."""

    _shared: dict[str, Recogniser] = {}

    def __init__(self, *, lm: str = "domain", **kwargs: object) -> None:
        settings = STTSettings(model=f"pocketsphinx-en-us/{lm}", language="en-US")
        # Transcripts of a segment arrive in well under a second on a free core.
        super().__init__(settings=settings, ttfs_p99_latency=1.0,  # type: ignore[arg-type]
                         **kwargs)
        self._recogniser = self.load(lm)

    @classmethod
    def load(cls, lm: str = "domain") -> Recogniser:
        """The process's recogniser for ``lm`` (created on first use)."""
        rec = cls._shared.get(lm)
        if rec is None:
            rec = cls._shared[lm] = Recogniser(RecogniserConfig(lm=lm))  # type: ignore[arg-type]
        return rec

    @property
    def wants_wav_segments(self) -> bool:
        return False  # raw 16-bit PCM at the pipeline's input rate

    def can_generate_metrics(self) -> bool:
        return True

    async def run_stt(self, audio: bytes) -> AsyncGenerator[Frame, None]:
        await self.start_processing_metrics()
        samples = np.frombuffer(audio, dtype=np.int16).astype(np.float32) / 32768.0
        try:
            text = await asyncio.to_thread(self._recogniser.transcribe, samples,
                                           self.sample_rate)
        except Exception as exc:  # the decoder raises its own types
            yield ErrorFrame(f"pocketsphinx failed: {exc}")
            return
        finally:
            await self.stop_processing_metrics()
        logger.debug(f"{self}: heard [{text}]")
        if text:
            yield TranscriptionFrame(text, self._user_id, time_now_iso8601())
