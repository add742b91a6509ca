"""What the audio call loop needs from an audio transport: a line per call that sends the
caller's audio and yields the agent's :class:`LineEvent`s, stamped as their bytes arrive."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from typing import Any, Protocol

import numpy as np

from simulator.callscript import CallScript
from simulator.errors import TransportError


@dataclass(frozen=True, slots=True)
class LineEvent:
    """Something the agent did, stamped (``t_ns``) when its bytes arrived.

    ``kind``: ``audio`` (``audio`` is 8 kHz mu-law, ``duration_s`` long), ``clear`` (flush /
    cleared: the agent stopped talking), ``text`` (transcript delta), ``tool_call``,
    ``done`` (end of a response, ``usage``), ``error``."""

    kind: str
    t_ns: int
    audio: bytes = b""
    duration_s: float = 0.0
    voiced: bool = False
    text: str = ""
    call_id: str = ""
    name: str = ""
    arguments: str = ""
    usage: dict[str, Any] | None = None


class AudioLine(Protocol):
    """One connected call to an audio agent (made by an :class:`AudioTransport`).

    ``encode`` turns an utterance into the line's chunks, ready to send (for a WebSocket
    line the whole message, or its payload already base64-encoded), when the turn is queued;
    ``send_audio`` sends one when it falls due, so the work per 20 ms frame is a send. It is
    started from the frame clock's callback and run up to its first suspension there, as an
    eager task's first step is (the rest, if the socket pushes back, runs in a task): it must
    not need ``asyncio.current_task()`` before it first suspends.
    ``silence_chunk`` is the chunk the line sends while the caller is quiet. A line may name
    its encoding in ``encode_key`` (a string): ``encode`` then promises the same chunks for
    the same samples, and calls share an utterance's chunks instead of encoding it again.
    A line may have a boolean ``agent_audio_wanted``: the call sets it False when nothing
    will hear the agent's audio (no listener), and the line may then leave ``audio`` empty
    in its audio events (``duration_s`` and ``voiced`` still set) and skip converting it."""

    chunk_ms: int
    silence_chunk: Any
    conn_setup_ns: int
    agent_calls_tools: bool  # True: the agent calls the HTTP tool backend itself

    def encode(self, pcm8k: np.ndarray) -> list[Any]: ...

    async def send_audio(self, payload: Any) -> None: ...

    async def send_dtmf(self, digit: str) -> None: ...

    async def send_caller_text(self, text: str) -> None: ...

    async def end_of_turn(self) -> None: ...

    async def interrupt(self) -> None: ...

    async def send_tool_result(self, call_id: str, output: str) -> int: ...

    async def receive(self) -> LineEvent | None: ...

    async def aclose(self) -> None: ...


class AudioTransport(Protocol):
    async def open_line(self, call_id: str, script: CallScript, tools: list[dict[str, Any]],
                        system_prompt: str) -> AudioLine: ...

    async def warmup(self, connections: int) -> None: ...

    async def aclose(self) -> None: ...


class MediaPeerLine:
    """What the lines to a media peer (SIP, WebRTC) share: they carry audio only (no caller
    text, no in-band tool results, no explicit end of turn or interrupt: the peer hears the
    caller stop), and what the peer sends reaches :meth:`receive` through ``_events``, a
    queue that ``None`` ends (``_failure``, if set, is then raised)."""

    peer_kind = "media"  # names the peer in errors: "SIP", "WebRTC"
    _events: asyncio.Queue[LineEvent | None]
    _failure: TransportError | None

    async def send_caller_text(self, text: str) -> None:
        return None

    async def end_of_turn(self) -> None:
        return None

    async def interrupt(self) -> None:
        return None

    async def send_tool_result(self, call_id: str, output: str) -> int:
        raise TransportError("protocol_error",
                             f"{self.peer_kind} agents call tools over HTTP, not in-band")

    async def receive(self) -> LineEvent | None:
        ev = await self._events.get()
        if ev is None:
            self._events.put_nowait(None)  # every later receive sees the end too
            if self._failure is not None:
                raise self._failure
        return ev
