"""The patch formats the fake applies besides RFC 7386 merge patches (fakeapi.merge_patch):
JSON patch (RFC 6902) and the part of strategic merge its built-in kinds need; and which part
of a Pod's spec an update may not change."""

from __future__ import annotations

import copy
from typing import Any

from hopscope_operator.cluster import Object

from .fake_status import InvalidError
from .fakeapi import merge_patch


def strategic_merge(target: Any, patch: Any) -> Any:
    """A merge patch, except that lists of named items (containers, ports) merge by name: the
    part of strategic merge the fake's built-in kinds need."""
    if not isinstance(patch, dict) or not isinstance(target, dict):
        return merge_patch(target, patch)
    merged = dict(target)
    for key, value in patch.items():
        old = merged.get(key)
        if value is None:
            merged.pop(key, None)
        elif _named(value) and _named(old):
            by_name = {item["name"]: item for item in old}
            for item in value:
                by_name[item["name"]] = strategic_merge(by_name.get(item["name"], {}), item)
            merged[key] = list(by_name.values())
        else:
            merged[key] = strategic_merge(old, value)
    return merged


def _named(value: Any) -> bool:
    return isinstance(value, list) and all(isinstance(i, dict) and "name" in i for i in value)


def frozen(spec: Object) -> Object:
    """A pod's spec without what an update may change (the real server's list)."""
    spec = copy.deepcopy(spec)
    for key in ("activeDeadlineSeconds", "tolerations", "terminationGracePeriodSeconds"):
        spec.pop(key, None)
    for container in spec.get("containers", []) + spec.get("initContainers", []):
        container.pop("image", None)
    return spec


def json_patch(target: Object, operations: Any) -> Object:
    """RFC 6902, the operations the fake's callers send (add, remove, replace, test)."""
    doc = copy.deepcopy(target)
    rejected = InvalidError("the server rejected our request due to an error in our request", {})
    for op in operations if isinstance(operations, list) else []:
        steps = op["path"].split("/")[1:]
        *parents, last = [step.replace("~1", "/").replace("~0", "~") for step in steps]
        node: Any = doc
        for part in parents:
            if not isinstance(node, dict) or part not in node:
                raise rejected
            node = node[part]
        if op["op"] == "test":
            if not isinstance(node, dict) or node.get(last) != op.get("value"):
                raise rejected
        elif op["op"] in ("add", "replace"):
            if op["op"] == "replace" and last not in node:
                raise rejected
            node[last] = op.get("value")
        elif op["op"] == "remove":
            if last not in node:
                raise rejected
            del node[last]
    return doc
