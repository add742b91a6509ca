"""The TTS render host: one small process that forks a fresh child per utterance.

Run as a script by :mod:`simulator.audio.tts` (``python espeak_host.py``, not ``-m``, so it
imports neither numpy nor the rest of callsim). It loads libespeak-ng from the
``espeakng-loader`` wheel and pyttsx3's ctypes binding of it, but never initialises espeak
itself: each request is rendered in a forked child that calls ``espeak_Initialize`` in
synchronous mode, synthesises, writes the WAV and exits.

Why a child per utterance: espeak-ng keeps synthesis state (random and phase state in its
wave generator) from one utterance to the next, so in one long-lived engine the same text
and voice come out a few to a few hundred samples different depending on what was rendered
before; a fresh child renders the same bytes every time. And a crash inside espeak-ng costs
one child, not the caller's process. pyttsx3's own engine loop is not used: it runs espeak
asynchronously and races it (see docs/audio.md).

Protocol, one JSON object per line. The host starts with ``{"ok": true, "version": ...}`` or
``{"ok": false, "error": ...}`` (and exits). Then per request ``{"text", "voice", "rate",
"pitch", "path", "timeout_s"}`` it answers ``{"ok": true}`` once the WAV at
``path`` is complete, or ``{"ok": false, "error": "one line"}``.
"""

from __future__ import annotations

import ctypes
import importlib.metadata
import json
import os
import select
import signal
import sys
import time
import wave
from typing import Any

SAMPLE_RATE = 22_050
CRASH_ATTEMPTS = 2  # a child killed by a signal is rendered once more before giving up


def _version(name: str) -> str:
    try:
        return importlib.metadata.version(name)
    except importlib.metadata.PackageNotFoundError:
        return "?"


def load() -> tuple[Any, Any, str]:
    """(libespeak-ng handle, pyttsx3's ``_espeak`` binding, version string). Raises
    RuntimeError with a one-line reason when there is no espeak-ng here."""
    try:
        import espeakng_loader
    except ImportError:
        espeakng_loader = None
    if espeakng_loader is not None:
        # espeak reads ESPEAK_DATA_PATH when initialised with path=NULL, as pyttsx3 does.
        os.environ["ESPEAK_DATA_PATH"] = espeakng_loader.get_data_path()
        # Resident by full path first, so pyttsx3's load of the soname finds this copy.
        lib = ctypes.CDLL(espeakng_loader.get_library_path(), mode=ctypes.RTLD_GLOBAL)
        source = f"espeakng-loader-{_version('espeakng-loader')}"
    else:
        try:
            lib = ctypes.CDLL("libespeak-ng.so.1", mode=ctypes.RTLD_GLOBAL)
        except OSError:
            raise RuntimeError(
                "TTS: no espeak-ng library: pip install espeakng-loader (or callsim[tts])"
            ) from None
        source = "system:libespeak-ng.so.1"
    try:
        from pyttsx3.drivers import _espeak
    except Exception as exc:  # ImportError, or pyttsx3's own failure to find the library
        raise RuntimeError(f"TTS: cannot load pyttsx3's espeak binding: {exc}") from None
    lib.espeak_Info.restype = ctypes.c_char_p
    lib.espeak_Info.argtypes = [ctypes.c_void_p]
    info = (lib.espeak_Info(None) or b"?").decode("ascii", "replace")
    version = f"pyttsx3-{_version('pyttsx3')}|{source}:{info}|child-per-utterance-sync"
    return lib, _espeak, version


def _child(lib: Any, espeak: Any, req: dict[str, Any], err_fd: int) -> None:
    """In the forked child: render ``req`` to its path and exit 0, or write one line to
    ``err_fd`` and exit 3. Never returns."""
    try:
        # The host's stdout is its answer channel: nothing the library prints may reach it.
        os.dup2(os.open(os.devnull, os.O_WRONLY), 1)
        chunks: list[bytes] = []

        def on_synth(wav: Any, numsamples: int, events: Any) -> int:
            if numsamples > 0:
                chunks.append(ctypes.string_at(wav, numsamples * 2))
            return 0

        if espeak.Initialize(espeak.AUDIO_OUTPUT_SYNCHRONOUS, 1000) != SAMPLE_RATE:
            raise RuntimeError("espeak-ng did not initialise at 22,050 Hz")
        espeak.SetSynthCallback(on_synth)
        # espeak-ng's breath and voicing noise draws on its own generator (seeded from the
        # clock at initialisation) and on libc rand(): both are seeded per utterance.
        set_seed = getattr(lib, "espeak_ng_SetRandSeed", None)  # espeak-ng >= 1.51
        if set_seed is not None:
            set_seed(ctypes.c_long(1))
        ctypes.CDLL(None).srand(1)
        if espeak.SetVoiceByName(str(req["voice"]).encode("utf-8")) != 0:
            raise RuntimeError(f"espeak-ng has no voice {req['voice']!r}")
        espeak.SetParameter(espeak.RATE, int(req["rate"]), 0)
        espeak.SetParameter(espeak.PITCH, int(req["pitch"]), 0)
        status = espeak.Synth(str(req["text"]).encode("utf-8"),
                              flags=espeak.ENDPAUSE | espeak.CHARS_UTF8)
        if status != 0:
            raise RuntimeError(f"espeak_Synth returned {status}")
        pcm = b"".join(chunks)
        if not pcm:
            raise RuntimeError("espeak-ng gave no audio")
        with wave.open(str(req["path"]), "wb") as w:
            w.setnchannels(1)
            w.setsampwidth(2)
            w.setframerate(SAMPLE_RATE)
            w.writeframes(pcm)
        os._exit(0)
    except BaseException as exc:  # the child must never return into the host's loop
        os.write(err_fd, " ".join(str(exc).split()).encode("utf-8", "replace")[:500])
        os._exit(3)


def _render_once(lib: Any, espeak: Any, req: dict[str, Any]) -> tuple[int | None, str]:
    """Fork one child for ``req``; (signal number or None, error text or "")."""
    r, w = os.pipe()
    pid = os.fork()
    if pid == 0:
        os.close(r)
        _child(lib, espeak, req, w)
    os.close(w)
    # The pipe reaches EOF when the child exits (its end closes with it), however it ends.
    timeout_s = float(req.get("timeout_s", 30.0))
    deadline = time.monotonic() + timeout_s
    chunks: list[bytes] = []
    try:
        while True:
            ready, _, _ = select.select([r], [], [], max(0.0, deadline - time.monotonic()))
            if not ready:
                os.kill(pid, signal.SIGKILL)
                os.waitpid(pid, 0)
                return None, f"no audio after {timeout_s:g} s"
            data = os.read(r, 1000)
            if not data:
                break
            chunks.append(data)
        _, status = os.waitpid(pid, 0)
    finally:
        os.close(r)
    message = b"".join(chunks).decode("utf-8", "replace")
    if os.WIFSIGNALED(status):
        return os.WTERMSIG(status), ""
    if os.WEXITSTATUS(status) != 0:
        return None, message or f"render child exited {os.WEXITSTATUS(status)}"
    return None, ""


def render(lib: Any, espeak: Any, req: dict[str, Any]) -> dict[str, Any]:
    """Render one request (again if the child was killed by a signal)."""
    sig = None
    for _ in range(CRASH_ATTEMPTS):
        sig, error = _render_once(lib, espeak, req)
        if sig is None:
            break
    if sig is not None:
        name = signal.Signals(sig).name
        error = f"espeak-ng crashed ({name}) {CRASH_ATTEMPTS} times"
    if error:
        return {"ok": False, "error": f"TTS: {error} rendering {str(req['text'])[:40]!r}"}
    return {"ok": True}


def main() -> int:
    def reply(obj: dict[str, Any]) -> None:
        sys.stdout.write(json.dumps(obj) + "\n")
        sys.stdout.flush()

    try:
        lib, espeak, version = load()
    except RuntimeError as exc:
        reply({"ok": False, "error": str(exc)})
        return 1
    reply({"ok": True, "version": version})
    for line in sys.stdin:
        try:
            reply(render(lib, espeak, json.loads(line)))
        except Exception as exc:  # a bad request must not end the host
            reply({"ok": False, "error": f"TTS: render host: {type(exc).__name__}: {exc}"})
    return 0


if __name__ == "__main__":
    sys.exit(main())
