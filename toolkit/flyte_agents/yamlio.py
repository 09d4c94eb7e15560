"""Safe YAML loading through libyaml when PyYAML was built with it, strict about what YAML lets slip.

Every command parses the project, values files, Chart.yaml and each key of propeller's ConfigMaps, some of them
several times; the pure-Python parser made that a third of a no-op deploy. The C parser builds the same objects
(same safe constructor and resolver) and raises the same MarkedYAMLError types, so callers only swap the call.

Two things PyYAML accepts are refused here, as errors with the line (so every caller's YAML error names them):

* a key twice in one mapping: PyYAML keeps the last one, so the first entry (a whole service) vanishes without a
  word. Go's yaml.v3, which propeller and helm use, refuses it too. Merge keys (`<<: *base`) may still be
  overridden.
* aliases that expand to more than MAX_ALIAS_NODES extra nodes (a "billion laughs" document): PyYAML shares the
  aliased objects, but everything that walks, merges or dumps the result expands them, to gigabytes for a few
  hundred bytes of input. Anchors that repeat a block a few times stay far below the bound.
* nesting deeper than MAX_DEPTH: merging, copying and dumping recurse, and a few hundred levels end in a
  RecursionError; real configs nest a dozen levels.
"""
from __future__ import annotations

from typing import Any

import yaml
from yaml.constructor import ConstructorError

Error = yaml.YAMLError
_BASE = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
_LOADER = _BASE  # the parser in use (tests check that it is libyaml's)
MAX_ALIAS_NODES = 100_000
MAX_DEPTH = 100
_MERGE_TAG = "tag:yaml.org,2002:merge"


class _StrictLoader(_BASE):  # type: ignore[misc, valid-type]
    def construct_mapping(self, node: yaml.MappingNode, deep: bool = False) -> dict:
        seen: dict[Any, yaml.Node] = {}
        for key_node, _ in node.value:
            if key_node.tag == _MERGE_TAG or not isinstance(key_node, yaml.ScalarNode):
                continue
            key = self.construct_object(key_node)
            if key in seen:
                raise ConstructorError(
                    None, None, f"duplicate key {key!r} (first at line {seen[key].start_mark.line + 1}): keep one",
                    key_node.start_mark)
            seen[key] = key_node
        return super().construct_mapping(node, deep)


def _check_shape(root: yaml.Node) -> None:
    """Refuse a node graph whose alias expansion adds more than MAX_ALIAS_NODES nodes, that contains itself, or
    that nests deeper than MAX_DEPTH once expanded. One pass over the distinct nodes (an aliased node is the same
    object each time it is used): each node's expanded size and height come from its children's."""
    size: dict[int, int] = {}  # id(node) -> how many nodes it expands to
    height: dict[int, int] = {}  # id(node) -> how many levels it expands to
    on_path: set[int] = set()
    stack: list[tuple[yaml.Node, bool]] = [(root, False)]
    while stack:
        node, children_done = stack.pop()
        if children_done:
            on_path.discard(id(node))
            children = _children(node)
            size[id(node)] = 1 + sum(size[id(c)] for c in children)
            height[id(node)] = 1 + max((height[id(c)] for c in children), default=0)
            if height[id(node)] > MAX_DEPTH:
                raise ConstructorError(None, None, f"nested more than {MAX_DEPTH} levels deep: flatten it",
                                       node.start_mark)
        elif id(node) in on_path:
            raise ConstructorError(None, None, "an alias refers to a node that contains it: write it out instead",
                                   node.start_mark)
        elif id(node) not in size:
            on_path.add(id(node))
            stack.append((node, True))
            stack += [(c, False) for c in _children(node)]
    if size[id(root)] - len(size) > MAX_ALIAS_NODES:
        raise ConstructorError(None, None, f"aliases expand to more than {MAX_ALIAS_NODES:,} nodes (an alias bomb?): "
                               "write the repeated parts out or use fewer aliases", root.start_mark)


def _children(node: yaml.Node) -> list[yaml.Node]:
    if isinstance(node, yaml.SequenceNode):
        return node.value
    if isinstance(node, yaml.MappingNode):
        return [n for pair in node.value for n in pair]
    return []


def _document(loader: _StrictLoader, node: yaml.Node | None) -> Any:
    if node is None:
        return None
    _check_shape(node)
    return loader.construct_document(node)


def load(text: str) -> Any:
    loader = _StrictLoader(text)
    try:
        return _document(loader, loader.get_single_node())
    finally:
        loader.dispose()


def load_all(text: str) -> list[Any]:
    loader = _StrictLoader(text)
    try:
        docs = []
        while loader.check_node():
            docs.append(_document(loader, loader.get_node()))
        return docs
    finally:
        loader.dispose()


def at_line(err: yaml.YAMLError) -> str:
    """' at line N' for errors that know where they happened, else ''."""
    mark = getattr(err, "problem_mark", None)
    return f" at line {mark.line + 1}" if mark is not None else ""
