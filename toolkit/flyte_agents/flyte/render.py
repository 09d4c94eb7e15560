"""YAML and unified-diff text of config documents, as people write them."""
from __future__ import annotations

import difflib
from typing import Any

import yaml


class _Dumper(yaml.SafeDumper):
    """Multi-line strings (config files inside ConfigMaps) as literal blocks, as people write them."""


_Dumper.add_representer(str, lambda dumper, text: dumper.represent_scalar(
    "tag:yaml.org,2002:str", text, style="|" if "\n" in text else None))


def render_yaml(document: Any) -> str:
    if document in ({}, None):
        return ""
    return yaml.dump(document, Dumper=_Dumper, sort_keys=False, default_flow_style=False, width=120)


def unified_diff(old: str, new: str, old_name: str, new_name: str) -> str:
    return "".join(difflib.unified_diff(old.splitlines(keepends=True), new.splitlines(keepends=True),
                                        fromfile=old_name, tofile=new_name))
