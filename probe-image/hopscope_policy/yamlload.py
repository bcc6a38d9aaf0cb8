"""YAML read as Kubernetes reads it, and bounded: what `kubectl apply` would refuse is an error.

PyYAML's safe loader is YAML 1.1 and unbounded. Against that:
- no base-60 numbers: `port: 88:12` is the string "88:12" (a bad port name the API server
  refuses), not the port 5292;
- a key given twice in one mapping is an error (kubectl's strict decoding refuses it), not
  "the last one wins";
- nesting is bounded, so a deep document is an error, not a RecursionError;
- aliases may add at most MAX_ALIAS_NODES nodes to a file (a 1.4 KB "billion laughs" would
  otherwise be walked as a billion), and an alias inside its own anchor is an error.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from typing import Any

import yaml
from yaml.composer import ComposerError
from yaml.constructor import ConstructorError
from yaml.nodes import MappingNode, Node, ScalarNode, SequenceNode

MAX_DEPTH = 100  # Kubernetes objects nest a few dozen levels; PyYAML recurses per level
MAX_ALIAS_NODES = 100_000  # what aliases may add to a file, over its own nodes
INT, FLOAT, MERGE = "tag:yaml.org,2002:int", "tag:yaml.org,2002:float", "tag:yaml.org,2002:merge"
# YAML 1.1's numbers less the base-60 forms (go-yaml, the API server's parser, has none).
INT_FORM = re.compile(
    r"^(?:[-+]?0b[0-1_]+|[-+]?0[0-7_]+|[-+]?(?:0|[1-9][0-9_]*)|[-+]?0x[0-9a-fA-F_]+)$"
)
FLOAT_FORM = re.compile(
    r"^(?:[-+]?[0-9][0-9_]*\.[0-9_]*(?:[eE][-+][0-9]+)?|\.[0-9][0-9_]*(?:[eE][-+][0-9]+)?"
    r"|[-+]?\.(?:inf|Inf|INF)|\.(?:nan|NaN|NAN))$"
)


class ManifestLoader(yaml.SafeLoader):
    """One file's documents; errors are yaml.YAMLError with the line they are at."""

    def __init__(self, stream: str) -> None:
        super().__init__(stream)
        self.depth = 0
        self.alias_nodes = 0  # over the whole file: many documents share one budget

    def compose_node(self, parent: Node | None, index: object) -> Node:
        if self.depth >= MAX_DEPTH:
            mark = self.peek_event().start_mark
            raise ComposerError(None, None, f"nested deeper than {MAX_DEPTH} levels", mark)
        self.depth += 1
        try:
            return super().compose_node(parent, index)  # type: ignore[no-any-return]
        finally:
            self.depth -= 1

    def compose_document(self) -> Node:
        node: Node = super().compose_document()
        expanded, own = _sizes(node)
        self.alias_nodes += expanded - own
        if self.alias_nodes > MAX_ALIAS_NODES:
            raise ComposerError(
                None,
                None,
                f"aliases (*name) expand to more than {MAX_ALIAS_NODES} nodes",
                node.start_mark,
            )
        return node

    def construct_mapping(self, node: MappingNode, deep: bool = False) -> dict[Any, Any]:
        seen: set[object] = set()
        for key_node, _ in node.value:
            if not isinstance(key_node, ScalarNode) or key_node.tag == MERGE:
                continue  # `<<: *base` may override on purpose
            key = self.construct_object(key_node)
            if key in seen:
                raise ConstructorError(
                    "while reading a mapping",
                    node.start_mark,
                    f"key {key!r} is given twice",
                    key_node.start_mark,
                )
            seen.add(key)
        return super().construct_mapping(node, deep)  # type: ignore[no-any-return]


ManifestLoader.yaml_implicit_resolvers = {
    first: [(tag, form) for tag, form in resolvers if tag not in (INT, FLOAT)]
    for first, resolvers in yaml.SafeLoader.yaml_implicit_resolvers.items()
}
ManifestLoader.add_implicit_resolver(INT, INT_FORM, list("-+0123456789"))
ManifestLoader.add_implicit_resolver(FLOAT, FLOAT_FORM, list("-+0123456789."))


def load_all(text: str) -> Iterator[Any]:
    """Every document of `text`, as plain Python data."""
    loader = ManifestLoader(text)
    try:
        while loader.check_data():
            yield loader.get_data()
    finally:
        loader.dispose()


def _sizes(root: Node) -> tuple[int, int]:
    """(nodes with every alias expanded, distinct nodes); ComposerError for an alias inside its
    own anchor. Iterative, each node visited once: aliases are the same node object."""
    size: dict[int, int] = {}
    open_: set[int] = set()
    stack: list[tuple[Node, bool]] = [(root, False)]
    while stack:
        node, children_done = stack.pop()
        key = id(node)
        if children_done:
            size[key] = 1 + sum(size[id(child)] for child in _children(node))
            open_.discard(key)
            continue
        if key in size:
            continue
        if key in open_:
            raise ComposerError(None, None, "an alias inside its own anchor", node.start_mark)
        open_.add(key)
        stack.append((node, True))
        stack.extend((child, False) for child in _children(node) if id(child) not in size)
    return size[id(root)], len(size)


def _children(node: Node) -> list[Node]:
    if isinstance(node, SequenceNode):
        return list(node.value)
    if isinstance(node, MappingNode):
        return [part for pair in node.value for part in pair]
    return []
