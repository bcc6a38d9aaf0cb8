"""Content negotiation as the real API server does it, before any object is looked up.

- pods/log serves text/plain, yet refuses `Accept: text/plain` (with or without a charset)
  with a 406 that lists only the serializers; any serializer's type or `*/*` is fine;
- any other endpoint lists its representations in the 406's message;
- a PATCH is judged on its Content-Type: strategic merge only for built-in kinds, and
  `application/json` (or none) is a 415.
"""

from __future__ import annotations

from .fake_status import NotAcceptable, UnsupportedMediaType

SERIALIZERS = ("application/json", "application/yaml", "application/vnd.kubernetes.protobuf")
MERGE = "application/merge-patch+json"
JSON_PATCH = "application/json-patch+json"
STRATEGIC = "application/strategic-merge-patch+json"
APPLY = "application/apply-patch+yaml"


def _ranges(accept: str | None) -> list[str]:
    """The media ranges of an Accept header, parameters dropped ("" when none was sent)."""
    if accept is None:
        return ["*/*"]
    return [part.split(";")[0].strip().lower() for part in accept.split(",") if part.strip()]


def _serializer(ranges: list[str]) -> str | None:
    for media in ranges:
        if media in ("*/*", "application/*"):
            return "application/json"
        if media in SERIALIZERS:
            return media
    return None


def for_log(accept: str | None) -> None:
    ranges = _ranges(accept)
    if _serializer(ranges):
        return
    if "text/plain" in ranges:
        listed = ", ".join(SERIALIZERS)
        raise NotAcceptable(f"only the following media types are accepted: {listed}")
    available = ", ".join(("text/plain", *SERIALIZERS))
    raise NotAcceptable(f"406: Not Acceptable\n\nAvailable representations: {available}", {})


def for_object(accept: str | None) -> str:
    """The media type to answer in: application/json or application/yaml."""
    chosen = _serializer(_ranges(accept))
    if chosen is None:
        available = ", ".join(SERIALIZERS)
        raise NotAcceptable(f"406: Not Acceptable\n\nAvailable representations: {available}", {})
    return "application/yaml" if chosen == "application/yaml" else "application/json"


def patch_type(content_type: str | None, *, built_in: bool) -> str:
    media = (content_type or "").split(";")[0].strip().lower()
    accepted = [JSON_PATCH, MERGE, APPLY] + ([STRATEGIC] if built_in else [])
    if media in accepted:
        return media
    if built_in and media == "application/json":
        raise UnsupportedMediaType("415: Unsupported Media Type", {})
    listed = ", ".join(accepted)
    raise UnsupportedMediaType(
        f"the body of the request was in an unknown format - accepted media types include: {listed}"
    )
