"""Watches as the real API server streams them: one JSON event per line, no enclosing array.

- without a resourceVersion (or with "0") the current objects come first as ADDED; with
  allowWatchBookmarks a BOOKMARK annotated `k8s.io/initial-events-end` follows them;
- with a resourceVersion, the changes after it; one older than the fake's history is HTTP 200
  and a single ERROR event carrying a 410 Expired Status, then the stream ends;
- timeoutSeconds ends the stream; sendInitialEvents needs resourceVersionMatch=NotOlderThan;
- a BOOKMARK object is only kind, apiVersion and metadata.resourceVersion (a Pod's also has
  `spec.containers: null` and `status: {}`, its Go type's zero values).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from typing import Any

from hopscope_operator.cluster import PODS, Object, Resource

from .fake_status import invalid_options
from .fakeapi import FakeApi

Event = dict[str, Any]
FIRST_VERSION = 1000  # the fake's first resourceVersion: anything older is history it lacks


def check_options(query: dict[str, str]) -> None:
    """The refusals that come before the stream starts (a 422, not an event)."""
    if query.get("sendInitialEvents") == "true" and (
        query.get("resourceVersionMatch") != "NotOlderThan"
    ):
        message = (
            "Forbidden: sendInitialEvents requires setting resourceVersionMatch to NotOlderThan"
        )
        raise invalid_options("ListOptions", "resourceVersionMatch", "FieldValueForbidden", message)


def bookmark(resource: Resource, version: str, *, initial_end: bool = False) -> Object:
    meta: Object = {"resourceVersion": version}
    if initial_end:
        meta["annotations"] = {"k8s.io/initial-events-end": "true"}
    obj: Object = {"kind": resource.kind, "apiVersion": resource.api_version, "metadata": meta}
    if resource == PODS:
        obj |= {"spec": {"containers": None}, "status": {}}
    return obj


def events(
    fake: FakeApi,
    resource: Resource,
    namespace: str | None,
    match: Callable[[Object], bool],
    query: dict[str, str],
    stopping: Callable[[], bool],
) -> Iterator[Event]:
    """The watch's events, as they happen, until timeoutSeconds or the server stops."""
    timeout = float(query.get("timeoutSeconds") or 0)
    deadline = time.monotonic() + timeout if timeout else None
    bookmarks = query.get("allowWatchBookmarks") == "true"
    since = query.get("resourceVersion", "")
    with fake.changed:
        seen = len(fake.watch_events)
        current = fake.resource_version()
    if since in ("", "0") or query.get("sendInitialEvents") == "true":
        for obj in fake.select(resource, namespace, match):
            yield {"type": "ADDED", "object": obj}
        if bookmarks:
            yield {"type": "BOOKMARK", "object": bookmark(resource, current, initial_end=True)}
    elif not since.isdigit() or int(since) < FIRST_VERSION:
        expired = {
            "kind": "Status",
            "apiVersion": "v1",
            "metadata": {},
            "status": "Failure",
            "message": f"too old resource version: {since} ({current})",
            "reason": "Expired",
            "code": 410,
        }
        yield {"type": "ERROR", "object": expired}
        return
    else:
        seen = next(
            (i for i, e in enumerate(fake.watch_events) if _version(e.object) > int(since)),
            seen,
        )
    while not stopping():
        if deadline is not None and time.monotonic() >= deadline:
            return
        with fake.changed:
            if len(fake.watch_events) == seen:
                fake.changed.wait(0.1)
            fresh = fake.watch_events[seen:]
            seen += len(fresh)
        for event in fresh:
            obj = event.object or {}
            ours = event.resource.plural == resource.plural and (
                namespace is None or event.namespace == namespace
            )
            if ours and match(obj):
                yield {"type": event.type, "object": obj}


def _version(obj: Object | None) -> int:
    return int((obj or {}).get("metadata", {}).get("resourceVersion") or 0)
