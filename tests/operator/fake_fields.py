"""fieldValidation as the real API server applies it to a request body.

- no parameter is Warn: an unknown field is dropped, and the answer carries
  `Warning: 299 - "unknown field \"spec.foo\""`; Ignore drops it silently;
- Strict refuses it: a 400 "strict decoding error" for a create or PUT, but a 422 quoting the
  whole patched object for a patch; the value is case-sensitive (`strict` is a 422);
- a key twice in one JSON object is the same: Strict refuses, Warn warns and the last wins.
Unknown means unknown to the kind's schema: the CRD's for a ConnectivityCheck, the Kubernetes
OpenAPI schema (kubernetes-validate's) for built-in kinds, ObjectMeta's fields for metadata.
"""

from __future__ import annotations

import copy
import functools
import json
from typing import TYPE_CHECKING, Any

import jsonschema
import kubernetes_validate
import referencing
from kubernetes_validate.utils import schema_contents

from hopscope_operator.cluster import Object, Resource

from .fake_status import BadRequest, InvalidError, cause, invalid_options

if TYPE_CHECKING:
    from .conftest import ApiServer

MODES = ("", "Ignore", "Strict", "Warn")
OBJECT_META = {
    "name",
    "generateName",
    "namespace",
    "selfLink",
    "uid",
    "resourceVersion",
    "generation",
    "creationTimestamp",
    "deletionTimestamp",
    "deletionGracePeriodSeconds",
    "labels",
    "annotations",
    "ownerReferences",
    "finalizers",
    "managedFields",
}
VERSION = kubernetes_validate.latest_version()


def mode(query: dict[str, str], options: str) -> str:
    """Strict, Warn or Ignore; a 422 on the request's options for anything else."""
    value = query.get("fieldValidation", "")
    if value not in MODES:
        supported = ", ".join(f'"{m}"' for m in MODES)
        message = f'Unsupported value: "{value}": supported values: {supported}'
        raise invalid_options(options, "fieldValidation", "FieldValueNotSupported", message)
    return value or "Warn"


class _Pairs(dict[str, Any]):
    duplicates: list[str]


def decode(data: bytes) -> tuple[Any, list[str]]:
    """The JSON body, and the paths of keys given twice (the last one wins)."""

    def pairs(items: list[tuple[str, Any]]) -> _Pairs:
        obj = _Pairs()
        obj.duplicates = [k for i, (k, _) in enumerate(items) if k in dict(items[:i])]
        obj.update(items)
        return obj

    body = json.loads(data, object_pairs_hook=pairs)
    return body, _duplicates(body, "")


def _duplicates(value: Any, at: str) -> list[str]:
    found: list[str] = []
    if isinstance(value, dict):
        found += [f"{at}{key}" for key in getattr(value, "duplicates", [])]
        for key, item in value.items():
            found += _duplicates(item, f"{at}{key}.")
    elif isinstance(value, list):
        for index, item in enumerate(value):
            found += _duplicates(item, f"{at.rstrip('.')}[{index}].")
    return found


def unknown(resource: Resource, obj: Object, schema: ApiServer | None) -> list[str]:
    """The paths (`spec.foo`, `spec.containers[0].bar`) of fields the kind does not have
    (`schema`: a custom resource's CRD schema, None for a built-in kind)."""
    found = [f"metadata.{key}" for key in obj.get("metadata") or {} if key not in OBJECT_META]
    validator = schema.validator if schema is not None else _built_in(resource)
    if validator is None:
        return found
    for error in validator.iter_errors(obj):
        found += _unexpected(error)
    return sorted(set(found), key=found.index)


def _unexpected(error: jsonschema.ValidationError) -> list[str]:
    if error.validator != "additionalProperties":
        return [path for sub in error.context or [] for path in _unexpected(sub)]
    known = set(error.schema.get("properties", {}))
    at = "".join(f"[{p}]" if isinstance(p, int) else f".{p}" for p in error.absolute_path)
    instance = error.instance if isinstance(error.instance, dict) else {}
    return [f"{at}.{key}".lstrip(".") for key in instance if key not in known]


@functools.cache
def _built_in(resource: Resource) -> jsonschema.Validator | None:
    api_version = resource.api_version.split(".")[0].replace("/", "-")
    folder = f"kubernetes-json-schema/v{VERSION}-local-strict"
    try:
        schema = schema_contents(f"{folder}/{resource.kind.lower()}-{api_version}.json", VERSION)
    except FileNotFoundError:
        return None
    definitions = schema_contents(f"{folder}/_definitions.json", VERSION)
    registry: referencing.Registry[Any] = referencing.Registry()
    registry = referencing.Resource.from_contents(schema) @ registry
    registry = referencing.Resource.from_contents(definitions) @ registry
    return jsonschema.Draft202012Validator(schema, registry=registry)


def prune(obj: Object, paths: list[str]) -> Object:
    obj = copy.deepcopy(obj)
    for path in paths:
        node: Any = obj
        *parents, last = path.replace("[", ".[").split(".")
        for part in parents:
            node = node[int(part[1:-1])] if part.startswith("[") else node.get(part, {})
        if isinstance(node, dict):
            node.pop(last, None)
    return obj


def refuse_on_create(resource: Resource, problems: list[str]) -> BadRequest:
    version, kind = resource.version, resource.kind
    return BadRequest(
        f'{kind} in version "{version}" cannot be handled as a {kind}: strict decoding error: '
        + ", ".join(problems)
    )


def refuse_on_patch(patched: Object, problems: list[str]) -> InvalidError:
    value = json.dumps(patched, separators=(",", ":"))
    message = f'Invalid value: "{value}": strict decoding error: ' + ", ".join(problems)
    details = {"causes": [cause("FieldValueInvalid", message, "patch")]}
    return InvalidError(f' "" is invalid: patch: {message}', details)


def warning(problem: str) -> str:
    return "299 - " + json.dumps(problem)
