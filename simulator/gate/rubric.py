"""The gate rubric: which numbers count, by how much, with what confidence.

A rubric is a YAML file a team publishes before an eval. It is validated with pydantic
(``extra="forbid"``); an error is one line naming the file and the field. Each run records
the sha256 of the rubric file's bytes, and the gate refuses to judge runs recorded under a
different rubric (see :func:`simulator.gate.decide.judge`).
"""

from __future__ import annotations

import hashlib
import re
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, PrivateAttr, ValidationError, model_validator

from simulator.errors import RubricError, format_validation_error
from simulator.metrics.numbers import GATE_METRICS, METRICS

Direction = Literal["lower", "higher"]

#: The four gate numbers and which way is better (from their metric definitions).
GATE_NUMBERS: dict[str, Direction] = {n: METRICS[n].direction for n in GATE_METRICS}


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid")


class NumberRule(_Model):
    """How one gate number is judged.

    ``win_margin`` is the improvement that counts as a win and ``lose_badly`` the
    deterioration that vetoes a pass. With ``relative: true`` both are fractions of the
    baseline's value (0.05 = 5 %); otherwise they are in the number's own units
    (milliseconds, a rate 0..1, US dollars).
    """

    direction: Direction | None = None
    win_margin: float = Field(ge=0)
    lose_badly: float = Field(gt=0)
    relative: bool = False


class Numbers(_Model):
    p95_ttft_ms: NumberRule
    tool_arg_accuracy: NumberRule
    refusal_rate: NumberRule
    cost_per_session_usd: NumberRule

    @model_validator(mode="after")
    def _directions(self) -> Numbers:
        for name, natural in GATE_NUMBERS.items():
            rule: NumberRule = getattr(self, name)
            if rule.direction is not None and rule.direction != natural:
                raise ValueError(
                    f"{name}.direction must be '{natural}' ({natural} is better), "
                    f"got '{rule.direction}'"
                )
        return self

    def rule(self, name: str) -> NumberRule:
        rule: NumberRule = getattr(self, name)
        return rule


_GUARD_NAME = re.compile(r"^[a-z][a-z0-9_]*$")


class GuardRule(_Model):
    """A limit on the candidate's value of one extra metric (``max`` and/or ``min``)."""

    max: float | None = None
    min: float | None = None

    @model_validator(mode="after")
    def _one_limit(self) -> GuardRule:
        if self.max is None and self.min is None:
            raise ValueError("a guard needs 'max' or 'min'")
        return self


class Drift(_Model):
    """What the gate (and compare) does about drift it cannot see, when baseline and
    candidate are two runs made separately (an interleaved A/B run needs none of this).

    ``policy``: ``note`` (the default, so a rubric written before drift policies keeps its
    meaning under its sha256) states the conditions and judges as is; ``widen`` widens
    the difference interval of every number that drifts with load (latencies, and cost,
    whose per-minute charges follow call length) by ``widen`` times the baseline's value on
    each side, once for the sequential comparison itself and once more
    for each condition that holds (different hosts, different loop-lag verdicts or both
    untrustworthy, starts more than ``max_hours_apart`` apart); ``refuse`` declines to judge
    (exit 2) when any of those conditions holds, and otherwise widens as ``widen`` does.
    """

    policy: Literal["note", "widen", "refuse"] = "note"
    widen: float = Field(0.10, ge=0, le=1)
    max_hours_apart: float = Field(1.0, gt=0)


class Rubric(_Model):
    """A validated rubric. ``sha256`` is set by :func:`load_rubric` (the file's bytes)."""

    version: Literal[1] = 1
    description: str = ""
    confidence: float = Field(0.95, gt=0.5, lt=1)
    min_calls_per_arm: int = Field(100, ge=1)
    min_missing_record_calls: int = Field(30, ge=1)
    # `callsim compare`: calls behind a number in one segment (a pack, an intent) of each run
    # before that number is tested there; docs/gate.md says why 50.
    min_calls_per_segment: int = Field(50, ge=1)
    bootstrap_resamples: int = Field(2000, ge=100, le=100_000)
    seed: int = 0
    wins_needed: int = Field(3, ge=1, le=4)
    numbers: Numbers
    guards: dict[str, GuardRule] = Field(default_factory=dict)
    drift: Drift = Field(default_factory=Drift)

    _sha256: str | None = PrivateAttr(default=None)

    @model_validator(mode="after")
    def _guard_names(self) -> Rubric:
        for name in self.guards:
            if not _GUARD_NAME.match(name):
                raise ValueError(f"guard name '{name}' must be lower_snake_case")
        return self

    @property
    def sha256(self) -> str | None:
        return self._sha256


def rubric_from_dict(data: Any, *, where: str = "<rubric>", sha256: str | None = None) -> Rubric:
    """Validate an already-parsed rubric; raises :class:`RubricError` (one line)."""
    if not isinstance(data, dict):
        raise RubricError(f"{where}: a rubric is a mapping, got {type(data).__name__}")
    try:
        rubric = Rubric.model_validate(data)
    except ValidationError as exc:
        raise RubricError(format_validation_error(where, exc)) from None
    rubric._sha256 = sha256
    return rubric


def load_rubric(path: str | Path) -> tuple[Rubric, str]:
    """Read and validate a YAML rubric.

    Returns the rubric and the sha256 (hex) of the file's bytes, which runs record and the
    gate compares. Raises :class:`RubricError` with one line naming the file (and the field
    or YAML line) when the file is missing, not YAML, or does not validate.
    """
    p = Path(path)
    try:
        raw = p.read_bytes()
    except OSError as exc:
        raise RubricError(f"{p}: cannot read rubric: {exc.strerror or exc}") from None
    sha = hashlib.sha256(raw).hexdigest()
    try:
        data = yaml.safe_load(raw.decode("utf-8"))
    except UnicodeDecodeError:
        raise RubricError(f"{p}: rubric is not UTF-8 text") from None
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        line = f"line {mark.line + 1}: " if mark is not None else ""
        problem = getattr(exc, "problem", None) or str(exc).splitlines()[0]
        raise RubricError(f"{p}: {line}invalid YAML: {problem}") from None
    return rubric_from_dict(data, where=str(p), sha256=sha), sha
