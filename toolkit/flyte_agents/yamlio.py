"""Safe YAML loading through libyaml when PyYAML was built with it.

Every command parses the project, values files, Chart.yaml and each key of propeller's ConfigMaps, some of them
several times; the pure-Python parser made that a third of a no-op deploy. The C parser builds the same objects
(same safe constructor and resolver) and raises the same MarkedYAMLError types, so callers only swap the call.
"""
from __future__ import annotations

from typing import Any

import yaml

Error = yaml.YAMLError
_LOADER = getattr(yaml, "CSafeLoader", yaml.SafeLoader)


def load(text: str) -> Any:
    return yaml.load(text, Loader=_LOADER)  # noqa: S506 - a safe loader


def load_all(text: str) -> list[Any]:
    return list(yaml.load_all(text, Loader=_LOADER))  # noqa: S506 - a safe loader


def at_line(err: yaml.YAMLError) -> str:
    """' at line N' for errors that know where they happened, else ''."""
    mark = getattr(err, "problem_mark", None)
    return f" at line {mark.line + 1}" if mark is not None else ""
