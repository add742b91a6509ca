"""What the audio call loop needs from an audio transport: a line per call that sends the
caller's audio and yields the agent's :class:`LineEvent`s, stamped as their bytes arrive."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Protocol

import numpy as np

from simulator.callscript import CallScript


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
    ``send_audio`` sends one when it falls due, so the work per 20 ms frame is a send.
    ``silence_chunk`` is the chunk the line sends while the caller is quiet. A line may name
    its encoding in ``encode_key`` (a string): ``encode`` then promises the same chunks for
    the same samples, and calls share an utterance's chunks instead of encoding it again."""

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
