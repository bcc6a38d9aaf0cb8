"""A ConnectivityCheck's 422 causes as the API server words them (kube-openapi's validation
of the CRD schema, then its CEL rules), from the fake's own schema validator and CEL.

- each schema error is a cause on its field: `Required value`, `Unsupported value: ...`,
  `... in body must be of type integer: "string"`, `... should be less than or equal to N`;
- an `anyOf` that no branch satisfies is a cause on field `<nil>`, followed by its first
  branch's errors;
- an error of a blocking type (required, unsupported, too long, type) stops the CEL rules,
  which the server says with one more `<nil>` cause; otherwise each broken rule is a cause
  on its fieldPath with its reason.
"""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Any

import jsonschema

from .fake_status import cause

if TYPE_CHECKING:
    from .conftest import ApiServer

Cause = dict[str, str]
BLOCKING = {"FieldValueRequired", "FieldValueNotSupported", "FieldValueTooLong"}
BLOCKING |= {"FieldValueTooMany", "FieldValueTypeInvalid"}
CEL_SKIPPED = (
    "Invalid value: null: some validation rules were not checked because the object was "
    "invalid; correct the existing errors to complete validation"
)
BOUNDS = {
    "maximum": "less than or equal to",
    "minimum": "greater than or equal to",
    "exclusiveMaximum": "less than",
    "exclusiveMinimum": "greater than",
}
JSON_TYPES = {str: "string", bool: "boolean", int: "integer", float: "number", dict: "object"}


def causes(schema: ApiServer, obj: Any, only: str = "") -> list[Cause]:
    """The causes for `obj` (already defaulted); `only`: just those under this field."""
    errors = sorted(schema.validator.iter_errors(obj), key=lambda e: _field(e.absolute_path))
    found = [c for error in errors for c in _translate(error, only)]
    found = [c for c in found if c["field"].startswith(only) or c["field"] == "<nil>"]
    if any(c["reason"] in BLOCKING for c in found):
        return [*found, cause("FieldValueInvalid", CEL_SKIPPED, "<nil>")]
    for where, rule in schema.failed_rules(obj):
        field = (_field(where) + rule.get("fieldPath", "")).lstrip(".")
        if field.startswith(only):
            found.append(_rule_cause(rule, field, _type_of(_at(obj, where))))
    return found


def _at(obj: Any, where: list[str | int]) -> Any:
    for step in where:
        obj = obj[step]
    return obj


def _field(path: Any) -> str:
    return "".join(f"[{p}]" if isinstance(p, int) else f".{p}" for p in path).lstrip(".")


def _go(value: Any) -> str:
    """A value as field.Error prints it."""
    if isinstance(value, str):
        return json.dumps(value)
    if isinstance(value, bool) or value is None:
        return json.dumps(value)
    if isinstance(value, dict | list):
        return json.dumps("object" if isinstance(value, dict) else "array")
    return str(int(value) if isinstance(value, float) and value.is_integer() else value)


def _type_of(value: Any) -> str:
    return "null" if value is None else JSON_TYPES.get(type(value), "array")


def _translate(error: jsonschema.ValidationError, root: str = "") -> list[Cause]:
    """`root`: the subresource validated (status): messages name paths below it."""
    field, value, rule = _field(error.absolute_path), error.instance, error.validator_value
    named = field.removeprefix(f"{root}.") if root else field
    said = f"Invalid value: {_go(value)}: {named} in body"
    match error.validator:
        case "type":  # the value is shown as its type's name
            actual = json.dumps(_type_of(value))
            message = f"Invalid value: {actual}: {named} in body must be of type {rule}: {actual}"
            return [cause("FieldValueTypeInvalid", message, field)]
        case "format":
            message = f"{said} must be of type {rule}: {_go(value)}"
            return [cause("FieldValueTypeInvalid", message, field)]
        case "required":
            missing = [name for name in rule if name not in (value or {})]
            prefix = f"{field}." if field else ""
            return [cause("FieldValueRequired", "Required value", prefix + m) for m in missing]
        case "enum":
            supported = ", ".join(_go(v) for v in rule)
            message = f"Unsupported value: {_go(value)}: supported values: {supported}"
            return [cause("FieldValueNotSupported", message, field)]
        case "maximum" | "minimum" | "exclusiveMaximum" | "exclusiveMinimum":
            message = f"{said} should be {BOUNDS[error.validator]} {rule}"
            return [cause("FieldValueInvalid", message, field)]
        case "maxLength":
            message = f"Too long: may not be more than {rule} bytes"
            return [cause("FieldValueTooLong", message, field)]
        case "pattern":
            return [cause("FieldValueInvalid", f"{said} should match '{rule}'", field)]
        case "anyOf" | "oneOf":
            name = "anyOf" if error.validator == "anyOf" else "oneOf"
            message = f'Invalid value: "": "{field}" must validate at least one schema ({name})'
            first = [e for e in error.context or [] if e.relative_schema_path[0] == 0]
            return [cause("FieldValueInvalid", message, "<nil>")] + [
                c for sub in first for c in _translate(sub, root)
            ]
        case _:
            message = f"Invalid value: {_go(value)}: {error.message}"
            return [cause("FieldValueInvalid", message, field)]


def _rule_cause(rule: dict[str, Any], field: str, node_type: str) -> Cause:
    """A broken CEL rule, as the API server words it: the node's schema type stands for the
    value (`Invalid value: "string": ...` for a rule on a string)."""
    reason = rule.get("reason", "FieldValueInvalid")
    prefix = {
        "FieldValueRequired": "Required value",
        "FieldValueForbidden": "Forbidden",
        "FieldValueDuplicate": "Duplicate value",
    }.get(reason, f"Invalid value: {json.dumps(node_type)}")
    return cause(reason, f"{prefix}: {rule['message']}", field)
