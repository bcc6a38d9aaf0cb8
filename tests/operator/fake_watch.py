"""Watches as the real API server streams them: one JSON event per line, no enclosing array.

- without a resourceVersion (or with "0") the current objects come first as ADDED; with
  allowWatchBookmarks a BOOKMARK annotated `k8s.io/initial-events-end` follows them;
- with a resourceVersion, the changes after it; one older than the fake's history is HTTP 200
  and a single ERROR event carrying a 410 Expired Status, then the stream ends;
- history older than the last `FakeApi.compact()` is gone too (etcd compaction): the same 410;
- `FakeApi.bookmark()` sends a BOOKMARK at the current version to watches that allow them;
- timeoutSeconds ends the stream; sendInitialEvents needs resourceVersionMatch=NotOlderThan;
- a BOOKMARK object is only kind, apiVersion and metadata.resourceVersion (a Pod's also has
  `spec.containers: null` and `status: {}`, its Go type's zero values).

`MemoryWatch` is the same watch for the in-memory FakeApi (no HTTP): its events are there as
soon as they happen, so a test's change is seen by the next tick; it ends only when the test
says (`FakeApi.end_watches`: a dropped connection).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from typing import TYPE_CHECKING, Any

from hopscope_operator.cluster import PODS, Object, Resource

from .fake_routes import stored_as
from .fake_status import invalid_options

if TYPE_CHECKING:
    from .fakeapi import FakeApi, WatchEvent

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
    elif too_old(fake, since):
        yield expired(since, current)
        return
    else:
        seen = first_after(fake, since)
    marks = len(fake.bookmarks)
    while not stopping():
        if deadline is not None and time.monotonic() >= deadline:
            return
        with fake.changed:
            if len(fake.watch_events) == seen and len(fake.bookmarks) == marks:
                fake.changed.wait(0.1)
            fresh = fake.watch_events[seen:]
            seen += len(fresh)
            sent = fake.bookmarks[marks:]
            marks += len(sent)
        yield from ours(fresh, resource, namespace, match)
        if sent and bookmarks:
            yield {"type": "BOOKMARK", "object": bookmark(resource, sent[-1])}


def too_old(fake: FakeApi, since: str) -> bool:
    return not since.isdigit() or int(since) < max(FIRST_VERSION, fake.compacted)


def expired(since: str, current: str) -> Event:
    status = {
        "kind": "Status",
        "apiVersion": "v1",
        "metadata": {},
        "status": "Failure",
        "message": f"too old resource version: {since} ({current})",
        "reason": "Expired",
        "code": 410,
    }
    return {"type": "ERROR", "object": status}


def first_after(fake: FakeApi, since: str) -> int:
    """The index in the fake's history of the first change after `since`."""
    return next(
        (i for i, e in enumerate(fake.watch_events) if _version(e.object) > int(since)),
        len(fake.watch_events),
    )


def ours(
    fresh: list[WatchEvent],
    resource: Resource,
    namespace: str | None,
    match: Callable[[Object], bool],
) -> Iterator[Event]:
    for event in fresh:
        obj = event.object or {}
        here = stored_as(event.resource) == stored_as(resource) and (
            namespace is None or event.namespace == namespace
        )
        if here and match(obj):
            yield {"type": event.type, "object": obj}


class MemoryWatch:
    """A watch of the in-memory API (allowWatchBookmarks=true) from `since`."""

    def __init__(
        self,
        fake: FakeApi,
        resource: Resource,
        namespace: str | None,
        labels: dict[str, str],
        since: str,
    ) -> None:
        self._fake, self._resource, self._namespace, self._labels = (
            fake,
            resource,
            namespace,
            labels,
        )
        with fake.changed:
            self._expired = too_old(fake, since)
            self._error: Event | None = (
                expired(since, fake.resource_version()) if self._expired else None
            )
            self._seen = 0 if self._expired else first_after(fake, since)
            self._marks = len(fake.bookmarks)
            self._epoch = fake.watch_epoch

    @property
    def ended(self) -> bool:
        return (self._expired and self._error is None) or self._epoch != self._fake.watch_epoch

    def poll(self) -> list[Event]:
        if self._error is not None:
            error, self._error = self._error, None
            return [error]
        if self._expired or self._epoch != self._fake.watch_epoch:
            return []  # dropped: what it had not sent yet is lost with the connection
        fake = self._fake
        with fake.changed:
            fresh = fake.watch_events[self._seen :]
            self._seen += len(fresh)
            sent = fake.bookmarks[self._marks :]
            self._marks += len(sent)
        found = list(ours(fresh, self._resource, self._namespace, self._matches))
        if sent:
            found.append({"type": "BOOKMARK", "object": bookmark(self._resource, sent[-1])})
        return found

    def close(self) -> None:
        self._expired, self._error = True, None

    def _matches(self, obj: Object) -> bool:
        have = obj.get("metadata", {}).get("labels") or {}
        return all(have.get(k) == v for k, v in self._labels.items())


def _version(obj: Object | None) -> int:
    return int((obj or {}).get("metadata", {}).get("resourceVersion") or 0)
