"""Walking a Kestra flow's YAML tree, for the flow tests."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any


def walk(node: Any, key: Any = None) -> Iterator[tuple[Any, Any]]:
    """(key, value) for every scalar; a list's items carry the list's key."""
    if isinstance(node, dict):
        for k, v in node.items():
            yield from walk(v, k)
    elif isinstance(node, list):
        for v in node:
            yield from walk(v, key)
    else:
        yield key, node


def tasks(node: Any) -> Iterator[dict[str, Any]]:
    """Every task and trigger (a mapping with an id and a type), nested ones included."""
    if isinstance(node, dict):
        if "type" in node and "id" in node:
            yield node
        for v in node.values():
            yield from tasks(v)
    elif isinstance(node, list):
        for v in node:
            yield from tasks(v)
