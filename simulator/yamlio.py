"""Reading the YAML files users write (packs, noise profiles, rubrics, agent profiles).

One place that turns an unreadable file, bad YAML or a non-mapping document into a one-line
error naming the file (and the line, for YAML syntax errors). Only ``yaml.safe_load``: no
YAML tag can construct a Python object.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml

from simulator.errors import InputError


def read_yaml_mapping(path: Path, error: type[InputError]) -> dict[str, Any]:
    """The mapping in ``path`` (an empty file is ``{}``). Raises ``error`` in one line."""
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise error(f"{path}: cannot read: {exc.strerror or exc}") from None
    except UnicodeDecodeError:
        raise error(f"{path}: not UTF-8 text") from None
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f"{path}:{mark.line + 1}" if mark is not None else str(path)
        problem = getattr(exc, "problem", None) or "invalid YAML"
        raise error(f"{where}: invalid YAML: {problem}") from None
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise error(f"{path}: field '<root>': expected a mapping, got {type(data).__name__}")
    return data
