"""The fake API server's refusals, shaped as the real server's `Status` bodies.

What the recordings show: `details.kind` is the plural resource for 404/409/403 (with `group`
only outside the core group), but the Kind for a 422 (with `causes`); some refusals carry no
`details` at all and others `details: {}`; a 500 has no `reason`. Each refusal keeps its
`cluster` class (NotFound, Conflict, Invalid) so the Python-level contract is unchanged.
"""

from __future__ import annotations

from typing import Any

from hopscope_operator.cluster import ApiError, Conflict, Invalid, NotFound, Resource

Details = dict[str, Any] | None  # None: the body has no `details` key


class Refusal(ApiError):
    """An ApiError that knows its Status `details`."""

    def __init__(self, message: str, details: Details = None) -> None:
        super().__init__(message)
        self.message = message
        self.details = details


class BadRequest(Refusal):
    status = 400
    reason = "BadRequest"


class Unauthorized(Refusal):
    status = 401
    reason = "Unauthorized"


class Forbidden(Refusal):
    status = 403
    reason = "Forbidden"


class NotFoundError(Refusal, NotFound):
    pass


class MethodNotAllowed(Refusal):
    status = 405
    reason = "MethodNotAllowed"


class NotAcceptable(Refusal):
    status = 406
    reason = "NotAcceptable"


class AlreadyExists(Refusal, Conflict):
    reason = "AlreadyExists"


class ConflictError(Refusal, Conflict):
    pass


class Expired(Refusal):
    status = 410
    reason = "Expired"


class UnsupportedMediaType(Refusal):
    status = 415
    reason = "UnsupportedMediaType"


class InvalidError(Refusal, Invalid):
    pass


class InternalError(Refusal):
    reason = ""  # the real 500s here carry no reason


def status_body(error: ApiError) -> dict[str, Any]:
    body: dict[str, Any] = {
        "kind": "Status",
        "apiVersion": "v1",
        "metadata": {},
        "status": "Failure",
        "message": getattr(error, "message", str(error)),
    }
    if error.reason:
        body["reason"] = error.reason
    details = getattr(error, "details", None)
    if details is not None:
        body["details"] = details
    body["code"] = error.status
    return body


def qualified(resource: Resource) -> str:
    """`pods`, `connectivitychecks.hopscope.dev`: how messages name a resource."""
    return f"{resource.plural}.{resource.group}" if resource.group else resource.plural


def object_details(resource: Resource, name: str | None, kind: str = "") -> dict[str, Any]:
    details: dict[str, Any] = {"name": name} if name else {}
    if resource.group:
        details["group"] = resource.group
    details["kind"] = kind or resource.plural
    return details


def not_found(resource: Resource, name: str) -> NotFoundError:
    message = f'{qualified(resource)} "{name}" not found'
    return NotFoundError(message, object_details(resource, name))


def already_exists(resource: Resource, name: str) -> AlreadyExists:
    message = f'{qualified(resource)} "{name}" already exists'
    return AlreadyExists(message, object_details(resource, name))


def modified(resource: Resource, name: str) -> ConflictError:
    message = (
        f'Operation cannot be fulfilled on {qualified(resource)} "{name}": the object has been '
        "modified; please apply your changes to the latest version and try again"
    )
    return ConflictError(message, object_details(resource, name))


def invalid(resource: Resource, name: str | None, causes: list[dict[str, str]]) -> InvalidError:
    """A 422 naming the Kind, its causes (`reason`, `message`, `field`) in the message."""
    kind = f"{resource.kind}.{resource.group}" if resource.group else resource.kind
    said = [f"{c['field']}: {c['message']}" for c in causes]
    text = said[0] if len(said) == 1 else f"[{', '.join(said)}]"
    details = object_details(resource, name, resource.kind)
    details["causes"] = causes
    return InvalidError(f'{kind} "{name or ""}" is invalid: {text}', details)


def cause(reason: str, message: str, field: str) -> dict[str, str]:
    return {"reason": reason, "message": message, "field": field}


def invalid_options(
    kind: str, field: str, reason: str, message: str, group: str = "meta.k8s.io"
) -> InvalidError:
    """A 422 on a request's options or a nameless body (DeleteOptions, TokenRequest...)."""
    details = {"group": group, "kind": kind, "causes": [cause(reason, message, field)]}
    return InvalidError(f'{kind}.{group} "" is invalid: {field}: {message}', details)
