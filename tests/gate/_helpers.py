"""Rubric builders shared by the gate tests."""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

import yaml

from simulator.gate.rubric import Rubric, rubric_from_dict

EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "rubric.yaml"


def rubric_data(**overrides: Any) -> dict[str, Any]:
    """The shipped example rubric as a dict, with top-level overrides (fewer resamples
    keep the tests quick). Its drift policy is ``note``: synthetic runs have no drift, and
    these tests are about the decision rules (drift policies have their own tests)."""
    data = yaml.safe_load(EXAMPLE.read_text())
    data = copy.deepcopy(data)
    data["bootstrap_resamples"] = 1000
    data["drift"] = {**data.get("drift", {}), "policy": "note"}
    data.update(overrides)
    return data


def make_rubric(**overrides: Any) -> Rubric:
    return rubric_from_dict(rubric_data(**overrides), sha256="f" * 64)
