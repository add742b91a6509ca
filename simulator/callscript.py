"""The call-script format: one JSON object per call, JSONL for many (see docs/format.md).

A call script is what the persona generator writes and the degradation layer annotates:
the caller's persona, turns, slot facts, the tool calls a correct agent must make and the
expected outcome. Loading validates with pydantic; errors name file, line and field.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any, Literal, TypeVar

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from simulator.errors import CallFileError, format_validation_error

SCHEMA_VERSION: Literal[1] = 1

Outcome = Literal["completed", "refused_missing_record", "transferred"]
TurnKind = Literal["opening", "answer", "closing", "partial", "barge_in", "filler"]


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid")


class Style(_Model):
    """How the persona talks: each 0..1."""

    verbosity: float = Field(0.5, ge=0, le=1)
    patience: float = Field(0.5, ge=0, le=1)
    disfluency: float = Field(0.5, ge=0, le=1)
    interruptiveness: float = Field(0.5, ge=0, le=1)


class Persona(_Model):
    name: str
    phone: str | None = None
    date_of_birth: str | None = None
    email: str | None = None
    goal: str = ""
    style: Style = Field(default_factory=Style)
    environment: str = "indoors"
    voice: dict[str, Any] = Field(default_factory=dict)


class Turn(_Model):
    """One caller turn. ``text`` is what is sent; the degradation layer keeps the clean
    original in ``clean_text`` and records what it did in ``wer``, ``edits`` and ``events``.
    """

    index: int = Field(ge=0)
    kind: TurnKind = "answer"
    text: str
    slot: str | None = None
    clean_text: str | None = None
    wer: float | None = None
    edits: list[dict[str, Any]] = Field(default_factory=list)
    events: list[dict[str, Any]] = Field(default_factory=list)
    pause_before_s: float = Field(0.0, ge=0)
    dtmf: str | None = None


class ToolCall(_Model):
    name: str
    arguments: dict[str, Any] = Field(default_factory=dict)


class BackendRecord(_Model):
    """A row the tool backend must hold for this call (``table``, primary ``key``, ``data``)."""

    table: str
    key: str
    data: dict[str, Any]


class Degradation(_Model):
    """What the degradation layer did to this call (empty for a clean script)."""

    profile: str
    seed: int
    target_wer: tuple[float, float] | None = None
    measured_wer: float | None = None
    perturbations: list[dict[str, Any]] = Field(default_factory=list)
    tool_faults: list[dict[str, Any]] = Field(default_factory=list)


class CallScript(_Model):
    schema_version: Literal[1] = SCHEMA_VERSION
    call_id: str
    pack: str
    intent: str
    seed: int
    persona: Persona
    record_exists: bool
    slots: dict[str, Any]
    turns: list[Turn] = Field(min_length=1)
    expected_tool_calls: list[ToolCall]
    expected_outcome: Outcome
    backend_records: list[BackendRecord] = Field(default_factory=list)
    degradation: Degradation | None = None

    def to_json(self) -> str:
        """Canonical one-line JSON (sorted keys, no spaces): same script, same bytes."""
        return json.dumps(
            self.model_dump(mode="json", exclude_none=False),
            sort_keys=True,
            separators=(",", ":"),
            ensure_ascii=False,
        )


_M = TypeVar("_M", bound=BaseModel)
_osa = object.__setattr__


def trusted(cls: type[_M], values: dict[str, Any]) -> _M:
    """``cls`` from ``values`` that name every field with a valid value, without validating.

    For hot paths that build records from data they have just made (the generator, the
    degradation engine): pydantic's ``model_construct`` minus its per-field alias/default
    loop, which made it slower than validating; ~3x faster than either. Never use it on
    user input. Tests re-validate generated and degraded scripts.
    """
    m = cls.__new__(cls)
    _osa(m, "__dict__", values)
    _osa(m, "__pydantic_fields_set__", set(values))
    _osa(m, "__pydantic_extra__", None)
    _osa(m, "__pydantic_private__", None)
    return m


def parse_call(obj: Any, where: str) -> CallScript:
    """Validate one decoded JSON object; raise :class:`CallFileError` naming ``where``."""
    if isinstance(obj, dict) and "schema_version" in obj and obj["schema_version"] != 1:
        raise CallFileError(
            f"{where}: field 'schema_version': unsupported version {obj['schema_version']!r}"
            f" (this callsim reads {SCHEMA_VERSION})"
        )
    try:
        return CallScript.model_validate(obj)
    except ValidationError as exc:
        raise CallFileError(format_validation_error(where, exc)) from None


def iter_calls(path: str | Path) -> Iterator[CallScript]:
    """Yield the call scripts of a ``.jsonl`` file (one per line) or a ``.json`` file
    (one object or a list). Blank lines are skipped. Raises :class:`CallFileError`."""
    p = Path(path)
    try:
        fh = p.open("r", encoding="utf-8")
    except OSError as exc:
        raise CallFileError(f"{p}: cannot read: {exc.strerror or exc}") from None
    with fh:
        if p.suffix == ".json":
            try:
                data = json.load(fh)
            except json.JSONDecodeError as exc:
                raise CallFileError(f"{p}:{exc.lineno}: invalid JSON: {exc.msg}") from None
            items = data if isinstance(data, list) else [data]
            for i, obj in enumerate(items):
                yield parse_call(obj, f"{p}[{i}]")
            return
        for lineno, line in enumerate(fh, start=1):
            if not line.strip():
                continue
            try:
                obj = json.loads(line)
            except json.JSONDecodeError as exc:
                raise CallFileError(f"{p}:{lineno}: invalid JSON: {exc.msg}") from None
            yield parse_call(obj, f"{p}:{lineno}")


def load_calls(path: str | Path) -> list[CallScript]:
    """All call scripts of a file (see :func:`iter_calls`)."""
    return list(iter_calls(path))


def write_calls(calls: Iterable[CallScript], path: str | Path) -> int:
    """Write scripts as canonical JSONL (``\\n`` endings, UTF-8). Returns the count."""
    n = 0
    with Path(path).open("w", encoding="utf-8", newline="\n") as fh:
        for c in calls:
            fh.write(c.to_json())
            fh.write("\n")
            n += 1
    return n
