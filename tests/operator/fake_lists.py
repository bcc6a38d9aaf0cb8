"""A list's options as the real API server reads them: limit/continue pages (its continue-token
format and errors, remainingItemCount) and resourceVersionMatch."""

from __future__ import annotations

import base64
import json

from hopscope_operator.cluster import Object

from .fake_status import BadRequest, Expired, invalid_options
from .fake_watch import FIRST_VERSION


def page(items: list[Object], query: dict[str, str], version: str) -> tuple[list[Object], int]:
    """limit/continue: the page, and how many items come after it."""
    limit = integer(query.get("limit", "0"))
    if "continue" in query:
        start = _continue_from(query["continue"])
        items = [i for i in items if _key(i) > start]
    if limit <= 0 or len(items) <= limit:
        return items, 0
    return items[:limit], len(items) - limit


def _key(item: Object) -> str:
    meta = item["metadata"]
    return f"{meta.get('namespace', '')}/{meta['name']}"


def continue_token(version: int, last: Object) -> str:
    """The API server's continue token: base64url of {"v", "rv", "start"} without padding."""
    key = {"v": "meta.k8s.io/v1", "rv": version, "start": _key(last) + "\x00"}
    return base64.urlsafe_b64encode(json.dumps(key).encode()).decode().rstrip("=")


def _continue_from(token: str) -> str:
    prefix = "invalid continue token: continue key is not valid: "
    try:
        data = base64.urlsafe_b64decode(token + "=" * (-len(token) % 4))
    except ValueError:
        raise BadRequest(prefix + "illegal base64 data") from None
    try:
        return str(json.loads(data)["start"]).rstrip("\x00")
    except (ValueError, KeyError, TypeError):
        first = data.lstrip()[:1].decode("latin-1") or " "
        shown = first if first.isprintable() and first.isascii() else f"\\u{ord(first):04x}"
        raise BadRequest(
            f"{prefix}invalid character '{shown}' looking for beginning of value"
        ) from None


def integer(value: str) -> int:
    try:
        return int(value)
    except ValueError:
        raise BadRequest(f'strconv.ParseInt: parsing "{value}": invalid syntax') from None


def check_version_match(query: dict[str, str]) -> None:
    """resourceVersionMatch needs a resourceVersion; Exact of one the fake never had is gone."""
    match, version = query.get("resourceVersionMatch"), query.get("resourceVersion")
    if match and not version:
        message = "Forbidden: resourceVersionMatch is forbidden unless resourceVersion is provided"
        raise invalid_options("ListOptions", "resourceVersionMatch", "FieldValueForbidden", message)
    if match == "Exact" and version and (not version.isdigit() or int(version) < FIRST_VERSION):
        raise Expired("The resourceVersion for the provided list is too old.")
