"""Every transport callsim can drive, by name: the one place that knows them.

Each transport module declares a :class:`TransportSpec` (its name, whether it carries text or
audio, whether the agent calls the simulator's tool backend over HTTP, and how it is built
from a run's options) and passes it to :func:`register`. The driver, the CLI, distributed
workers and the pytest plugin ask this module, never branch on a name.

Transports from other packages register through the ``callsim.transports`` entry-point
group: each entry point names a ``TransportSpec`` (or a callable returning one). See
docs/transports.md for a complete example.
"""

from __future__ import annotations

import importlib
import importlib.metadata
import os
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Literal

from simulator.errors import InputError
from simulator.transports.base import Deadlines

ENTRY_POINT_GROUP = "callsim.transports"

#: The transport of a run that names none.
DEFAULT_TRANSPORT = "openai-chat"

#: The transports that ship with callsim: name -> the module that registers it (each calls
#: :func:`register`). A run imports only its own transport's module: the audio ones pull in
#: the audio stack (numpy DSP, scipy.signal, scipy.stats), seconds of CPU a text run need
#: not pay at start-up.
_BUILTIN_MODULES = {
    "openai-chat": "simulator.transports.openai_chat",
    "openai-realtime": "simulator.transports.realtime",
    "twilio": "simulator.transports.twilio",
    "sip": "simulator.transports.sip",
    "webrtc": "simulator.transports.webrtc",
}


@dataclass(frozen=True, slots=True)
class TransportOptions:
    """What a transport may be built from: the run's target and its settings."""

    target: str
    model: str = "callsim-reference"
    api_key: str | None = None
    deadlines: Deadlines = Deadlines()
    # Audio transports: send the caller's words beside the audio (reference agent only).
    text_hints: bool = False


@dataclass(frozen=True, slots=True)
class TransportSpec:
    """One transport. ``build(options)`` returns the run's transport instance (shared by
    every call of a run): a text transport has ``exchange`` (see
    :class:`simulator.transports.base.TextTransport`), an audio one ``open_line``; both have
    ``warmup`` and ``aclose``. ``tool_relay``: the agent runs tools itself and calls the
    simulator's tool backend over HTTP, so a run starts the relay for it."""

    name: str
    carries: Literal["text", "audio"]
    build: Callable[[TransportOptions], Any]
    tool_relay: bool = False
    summary: str = ""

    @property
    def audio(self) -> bool:
        return self.carries == "audio"


_specs: dict[str, TransportSpec] = {}
_broken: dict[str, str] = {}   # entry-point name -> why it could not be loaded
_loaded = False


def register(spec: TransportSpec) -> TransportSpec:
    """Add ``spec`` under its name (a later registration of the same name replaces it)."""
    if spec.carries not in ("text", "audio"):
        raise InputError(f"transport {spec.name!r}: carries must be 'text' or 'audio', "
                         f"not {spec.carries!r}")
    _specs[spec.name] = spec
    return spec


def _load_entry_point(ep: importlib.metadata.EntryPoint) -> None:
    try:
        obj = ep.load()
        spec = obj if isinstance(obj, TransportSpec) else obj()
    except Exception as exc:  # a broken plugin must not break the other transports
        _broken[ep.name] = f"{ep.value}: {type(exc).__name__}: {exc}"
        return
    if not isinstance(spec, TransportSpec):
        _broken[ep.name] = f"{ep.value} is not a TransportSpec"
        return
    register(spec)


def _load() -> None:
    """Every transport: the built-in ones, then the installed plugins (a plugin cannot take a
    built-in name)."""
    global _loaded
    if _loaded:
        return
    _loaded = True
    for mod in _BUILTIN_MODULES.values():
        importlib.import_module(mod)
    for ep in importlib.metadata.entry_points(group=ENTRY_POINT_GROUP):
        if ep.name in _specs or ep.name in _broken:
            continue
        _load_entry_point(ep)


def _load_one(name: str) -> None:
    """Only what registers ``name``: its built-in module, else the entry points of that
    name (nothing else is imported)."""
    if name in _BUILTIN_MODULES:
        importlib.import_module(_BUILTIN_MODULES[name])
        return
    for ep in importlib.metadata.entry_points(group=ENTRY_POINT_GROUP, name=name):
        if name not in _specs and name not in _broken:
            _load_entry_point(ep)


def transport_spec(name: str) -> TransportSpec:
    """The spec registered as ``name``; an unknown name is an :class:`InputError` that lists
    the known ones (a plugin that failed to load says why). Only the module that registers
    ``name`` is imported, unless the name is not found that way."""
    if name not in _specs:
        _load_one(name)
    if name not in _specs and name not in _broken:
        _load()  # a plugin registering under another name than its entry point's, or none
    spec = _specs.get(name)
    if spec is not None:
        return spec
    if name in _broken:
        raise InputError(f"transport {name!r} (entry point {ENTRY_POINT_GROUP}) could not be "
                         f"loaded: {_broken[name]}")
    raise InputError(f"unknown transport {name!r} (known: {', '.join(transport_names())})")


def transport_names() -> list[str]:
    """Every registered transport name, sorted (built-in and installed plugins)."""
    _load()
    return sorted(_specs)


def build_transport(name: str, options: TransportOptions) -> Any:
    """The run's transport instance for ``name``."""
    return transport_spec(name).build(options)


def api_key_from_env(name: str | None) -> str | None:
    """The API key held in environment variable ``name`` (never logged or stored)."""
    if not name:
        return None
    key = os.environ.get(name)
    if not key:
        raise InputError(f"--api-key-env: environment variable {name} is not set or empty")
    return key
