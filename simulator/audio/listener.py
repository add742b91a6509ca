"""The listener: callsim's ears on an audio call, so the caller hears what a voice agent said.

A real voice bot sends audio and nothing else. The audio call loop hands each agent turn's
audio (8 kHz mu-law, as it arrived) to :meth:`Listener.hear`, which recognises it in worker
processes (a decode holds the CPU for the whole utterance; on the loop it would stall every
call's 20 ms frames): pocketsphinx with a language model built from what an agent says on
the persona packs' calls plus what their callers say (see
:func:`simulator.audio.lm.build_listener_lm`), or Moonshine. See docs/listener.md.
"""

from __future__ import annotations

import asyncio
import multiprocessing
import time
from concurrent.futures import ProcessPoolExecutor

import numpy as np

from simulator.audio import dsp
from simulator.audio.asr import RecogniserConfig
from simulator.choices import pick_engine
from simulator.errors import InputError

LISTENER_MODES = ("auto", "pocketsphinx", "moonshine", "off")


def listener_config(engine: str = "pocketsphinx") -> RecogniserConfig:
    """The listener's recogniser. pocketsphinx: the listener LM, the default (unpruned)
    decoder (agent turns are a few seconds each and one per caller turn, so accuracy wins
    over speed). moonshine: Moonshine base, about six times pocketsphinx's CPU for far
    fewer errors (docs/listener.md)."""
    if engine == "moonshine":
        return RecogniserConfig(engine="moonshine")
    return RecogniserConfig(lm="listener", preset="default")


def resolve_listener(requested: str) -> tuple[str, str | None]:
    """``(mode, notice)`` for a ``--listener`` value: ``auto`` is ``pocketsphinx`` when it
    is installed, else ``off`` with a one-line notice; ``moonshine`` only when asked for.
    Raises :class:`InputError` for an unknown mode, or for an engine asked for by name that
    is not installed."""
    from simulator.audio.asr import asr_available, moonshine_available

    if requested == "moonshine":
        return pick_engine("--listener", requested, LISTENER_MODES, engine="moonshine",
                           fallback="off", available=moonshine_available,
                           notice=lambda why: f"listener off ({why})")
    return pick_engine("--listener", requested, LISTENER_MODES, engine="pocketsphinx",
                       fallback="off", available=asr_available,
                       notice=lambda why: "listener off: the caller cannot hear agents that "
                                          f"send only audio ({why})")


def _init(config: RecogniserConfig) -> None:
    from simulator.audio.asr import get_recogniser

    get_recogniser(config)  # load the model (and build the LM) before the first turn


def _job(config: RecogniserConfig, mulaw: bytes) -> str:
    from simulator.audio.asr import get_recogniser

    samples = dsp.decode(mulaw, "mulaw")
    return get_recogniser(config).transcribe(samples, dsp.TELEPHONE_RATE)


def hear_now(mulaw: bytes, config: RecogniserConfig | None = None) -> str:
    """Recognise ``mulaw`` (8 kHz G.711) in this process: what a worker does."""
    return _job(config or listener_config(), mulaw)


class Listener:
    """Recognises agent turns off the event loop. ``workers`` recogniser processes start
    (and load the model) on :meth:`start`; :meth:`hear` is safe from many calls at once."""

    def __init__(self, workers: int = 1, config: RecogniserConfig | None = None) -> None:
        if workers < 1:
            raise InputError("--listener-workers: need at least 1")
        self.workers = workers
        self.config = config or listener_config()
        self._pool: ProcessPoolExecutor | None = None

    def start(self) -> None:
        if self._pool is None:
            self._pool = ProcessPoolExecutor(
                self.workers, mp_context=multiprocessing.get_context("spawn"),
                initializer=_init, initargs=(self.config,))

    def warm(self) -> list[asyncio.Future[str]]:
        """Start the workers loading the model (and the LM) now, not at the first agent
        turn; returns their futures (await them to wait until the listener is ready)."""
        self.start()
        assert self._pool is not None
        loop = asyncio.get_running_loop()
        # A voiced frame, so each worker really loads its recogniser.
        frame = bytes([0x10, 0x90]) * 80
        futs = [loop.run_in_executor(self._pool, _job, self.config, frame)
                for _ in range(self.workers)]
        for f in futs:  # a failure shows at the first hear(); do not log it twice
            f.add_done_callback(lambda f: None if f.cancelled() else f.exception())
        return futs

    async def hear(self, mulaw: bytes) -> tuple[str, float]:
        """(the words heard in ``mulaw``, recognition time in ms); ("", 0.0) for silence."""
        if not mulaw or not np.any(np.frombuffer(mulaw, dtype=np.uint8) != dsp.MULAW_SILENCE):
            return "", 0.0
        self.start()
        assert self._pool is not None
        t = time.perf_counter()
        text = await asyncio.get_running_loop().run_in_executor(
            self._pool, _job, self.config, mulaw)
        return text, (time.perf_counter() - t) * 1000.0

    def close(self) -> None:
        if self._pool is not None:
            self._pool.shutdown(wait=False, cancel_futures=True)
            self._pool = None
