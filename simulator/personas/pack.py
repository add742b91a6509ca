"""Persona packs: one YAML file per vertical (see docs/personas.md).

A pack holds what the simulator sends an agent (system prompt, tool schemas), what the
generator needs to make callers (record tables, slots, intents with utterance templates)
and how the tool backend answers each tool. Validation is pydantic with ``extra="forbid"``;
any error is one line naming the file and the field (:class:`~simulator.errors.PackError`).
"""

from __future__ import annotations

import re
import string
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from simulator.errors import PackError, format_validation_error
from simulator.slots import SlotType
from simulator.yamlio import read_yaml_mapping

_NAME_RE = r"^[a-z][a-z0-9_]*$"


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class ValueSpec(_Model):
    """How values of a field or slot are generated (and parsed, for choices/IDs)."""

    type: SlotType
    prefix: str | None = None  # record_id: "P" -> "P-123456"
    digits: int = Field(6, ge=3, le=12)  # record_id
    choices: dict[str, list[str]] | None = None  # choice: canonical -> spoken synonyms
    min: float | None = None  # amount / number
    max: float | None = None
    step: float = 1.0
    examples: list[str] | None = None  # free_text
    days_ahead: tuple[int, int] = (1, 45)  # date: range after the reference date

    @model_validator(mode="after")
    def _check(self) -> ValueSpec:
        if self.type == "choice" and not self.choices:
            raise ValueError("a 'choice' needs 'choices' (canonical value -> synonyms)")
        if self.type == "record_id" and not self.prefix:
            raise ValueError("a 'record_id' needs a 'prefix'")
        if self.type in ("amount", "number") and (self.min is None or self.max is None):
            raise ValueError(f"an '{self.type}' needs 'min' and 'max'")
        if self.type == "free_text" and not self.examples:
            raise ValueError("a 'free_text' needs 'examples'")
        return self

    def options(self) -> dict[str, Any]:
        """Options the renderers/parsers of :mod:`simulator.slots` read."""
        return {"choices": self.choices or {}, "prefix": self.prefix or "", "digits": self.digits}


class TableDef(_Model):
    """A backend table: its primary key field and every field's value spec.

    ``summary`` is how an agent describes a row ("your appointment on {appointment_date}
    at {appointment_time}"); the reference agent uses it when it fabricates."""

    key: str
    fields: dict[str, ValueSpec]
    summary: str = ""

    @model_validator(mode="after")
    def _check(self) -> TableDef:
        if self.key not in self.fields:
            raise ValueError(f"key {self.key!r} is not one of the fields")
        return self


class SlotDef(ValueSpec):
    """A fact the agent must capture from the caller.

    ``from_record`` ties the value to a field of the intent's record (identity slots);
    otherwise it is generated from the spec. ``keywords`` are words in an agent's question
    asking for this slot; ``question`` is the reference agent's question; ``answers`` are
    caller answer templates with ``{value}``."""

    from_record: str | None = None
    keywords: list[str] = Field(min_length=1)
    question: str
    answers: list[str] = Field(min_length=1)
    label: str = ""
    # May an agent pick this slot out of an utterance that did not answer its question?
    # False for generic choices ("yes"/"no") that would match stray words.
    volunteered: bool = True
    # Noun phrases an agent may ask with ("the reason for your visit"); the varied
    # reference agent frames them ("Could I get {phrase}?"). Empty: phrases of the type.
    phrases: list[str] = Field(default_factory=list)

    @model_validator(mode="after")
    def _check_answers(self) -> SlotDef:
        for a in self.answers:
            if "{value}" not in a:
                raise ValueError(f"answer template {a!r} has no {{value}}")
        return self


class ToolStep(_Model):
    """A tool call a correct agent makes: tool name and argument -> source, where a source
    is a slot name or ``record.<field>``."""

    tool: str
    args: dict[str, str]


class IntentDef(_Model):
    weight: float = Field(1.0, gt=0)
    description: str = ""
    keywords: list[str] = Field(min_length=1)
    openings: list[str] = Field(min_length=1)
    record_table: str
    slots: list[str]
    lookup: ToolStep
    action: ToolStep | None = None
    outcome: Literal["completed", "transferred"] = "completed"
    confirmation: str = "All done."
    goal: str = ""


Op = Literal["lookup", "create", "cancel", "update", "transfer"]


class ToolBehaviour(_Model):
    """How the backend executes a tool.

    - lookup: find a row of ``table`` whose fields match the arguments (``match``:
      argument -> field); with ``match_any`` one matching given argument suffices.
    - create: insert a row into ``table`` from the arguments; the new id is ``id_prefix``-N.
    - cancel / update: find the row by ``match`` then set ``updates`` (field -> "arg:NAME"
      or a literal value).
    - transfer: record a transfer to a human.
    """

    op: Op
    table: str | None = None
    match: dict[str, str] = Field(default_factory=dict)
    match_any: bool = False
    updates: dict[str, str] = Field(default_factory=dict)
    id_field: str = "id"
    id_prefix: str = "R"
    required: list[str] = Field(default_factory=list)

    @model_validator(mode="after")
    def _check(self) -> ToolBehaviour:
        if self.op != "transfer" and not self.table:
            raise ValueError(f"op {self.op!r} needs a 'table'")
        if self.op in ("lookup", "cancel", "update") and not self.match:
            raise ValueError(f"op {self.op!r} needs 'match' (argument -> field)")
        return self


class FunctionDef(_Model):
    name: str = Field(pattern=r"^[A-Za-z0-9_-]{1,64}$")
    description: str
    parameters: dict[str, Any]


class ToolDef(_Model):
    type: Literal["function"]
    function: FunctionDef


class Pack(_Model):
    name: str = Field(pattern=_NAME_RE)
    description: str
    missing_record_share: float = Field(0.15, ge=0, le=1)
    system_prompt: str
    tools: list[ToolDef] = Field(min_length=1)
    tables: dict[str, TableDef]
    slots: dict[str, SlotDef]
    intents: dict[str, IntentDef] = Field(min_length=1)
    backend: dict[str, ToolBehaviour]
    greeting: str = "Thank you for calling. How can I help you today?"

    def check(self) -> None:
        """Cross-references (tools, tables, slots, templates). Raises ValueError with a
        message ``"field.path: what is wrong"``; :func:`load_pack` turns it into one line."""
        tool_names = {t.function.name for t in self.tools}
        for tname in self.backend:
            if tname not in tool_names:
                raise ValueError(f"backend.{tname}: no tool of that name in 'tools'")
        for tname in tool_names:
            if tname not in self.backend:
                raise ValueError(f"tools: {tname!r} has no entry in 'backend'")
        for tname, beh in self.backend.items():
            if beh.table and beh.table not in self.tables and beh.op != "create":
                raise ValueError(f"backend.{tname}.table: unknown table {beh.table!r}")
        for sname in self.slots:
            if not re.match(_NAME_RE, sname):
                raise ValueError(f"slots.{sname}: names are lower_snake_case")
        total_openings = 0
        for iname, intent in self.intents.items():
            where = f"intents.{iname}"
            if intent.record_table not in self.tables:
                raise ValueError(f"{where}.record_table: unknown table {intent.record_table!r}")
            table = self.tables[intent.record_table]
            for s in intent.slots:
                if s not in self.slots:
                    raise ValueError(f"{where}.slots: unknown slot {s!r}")
                src = self.slots[s].from_record
                if src and src not in table.fields:
                    raise ValueError(
                        f"slots.{s}.from_record: {src!r} is not a field of table "
                        f"{intent.record_table!r} (used by {where})"
                    )
            for step_name, step in (("lookup", intent.lookup), ("action", intent.action)):
                if step is None:
                    continue
                if step.tool not in self.backend:
                    raise ValueError(f"{where}.{step_name}.tool: unknown tool {step.tool!r}")
                for arg, src in step.args.items():
                    if src.startswith("record."):
                        if src[7:] not in table.fields:
                            raise ValueError(
                                f"{where}.{step_name}.args.{arg}: no field {src[7:]!r}"
                            )
                    elif src not in intent.slots:
                        raise ValueError(
                            f"{where}.{step_name}.args.{arg}: {src!r} is not a slot of the intent"
                        )
            if self.backend[intent.lookup.tool].op != "lookup":
                raise ValueError(f"{where}.lookup.tool: {intent.lookup.tool!r} is not a lookup")
            for i, tmpl in enumerate(intent.openings):
                for field in _template_fields(tmpl):
                    if field not in intent.slots:
                        raise ValueError(
                            f"{where}.openings.{i}: placeholder {{{field}}} is not a slot of "
                            "the intent"
                        )
            total_openings += len(intent.openings)
        if total_openings < 20:
            raise ValueError(f"intents: {total_openings} opening templates, need at least 20")

    # -------------------------------------------------------------- helpers

    def tool_names(self) -> frozenset[str]:
        return frozenset(t.function.name for t in self.tools)

    def tool_schemas(self) -> list[dict[str, Any]]:
        """The ``tools`` list to send to an OpenAI-compatible endpoint."""
        return [t.model_dump(mode="json") for t in self.tools]


def _template_fields(template: str) -> list[str]:
    return [f for _, f, _, _ in string.Formatter().parse(template) if f]


def template_fields(template: str) -> list[str]:
    """Placeholder names of a ``str.format`` template."""
    return _template_fields(template)


def load_pack(path: Path) -> Pack:
    """Load and validate one pack YAML. Raises :class:`PackError` (one line)."""
    data = read_yaml_mapping(path, PackError)
    try:
        pack = Pack.model_validate(data)
    except ValidationError as exc:
        raise PackError(format_validation_error(str(path), exc)) from None
    try:
        pack.check()
    except ValueError as exc:
        loc, _, msg = str(exc).partition(": ")
        raise PackError(f"{path}: field '{loc}': {msg}") from None
    return pack


def builtin_pack_dir() -> Path:
    """Where the built-in packs live: ``simulator/_data/personas`` in a wheel, else the
    repository's ``personas/``."""
    here = Path(__file__).resolve().parent.parent
    installed = here / "_data" / "personas"
    if installed.is_dir():
        return installed
    return here.parent / "personas"


def load_packs(extra_dir: Path | str | None = None) -> dict[str, Pack]:
    """All built-in packs plus the ``*.yaml``/``*.yml`` files of ``extra_dir``, by name.

    A user pack with a built-in's name replaces it. Raises :class:`PackError`."""
    packs: dict[str, Pack] = {}
    dirs = [builtin_pack_dir()]
    if extra_dir is not None:
        d = Path(extra_dir)
        if not d.is_dir():
            raise PackError(f"{d}: not a directory of persona packs")
        dirs.append(d)
    for d in dirs:
        if not d.is_dir():
            continue
        seen: dict[str, Path] = {}
        for path in sorted([*d.glob("*.yaml"), *d.glob("*.yml")]):
            pack = load_pack(path)
            if pack.name in seen:
                raise PackError(
                    f"{path}: field 'name': pack {pack.name!r} already defined in {seen[pack.name]}"
                )
            seen[pack.name] = path
            packs[pack.name] = pack
    return packs
