"""A watch-fed cache of one kind in one namespace (None: all): an informer.

It lists once (taking the list's resourceVersion), then watches from there with bookmarks:
ADDED and MODIFIED store the object, DELETED removes it, BOOKMARK only moves the version on.
A watch that ends (its timeoutSeconds, a dropped connection) is opened again from the last
version seen, so nothing is missed; one the server can no longer serve from there (an ERROR
event with code 410: etcd compacted that history) is answered by one list again.

`sync` is called at the start of a tick and never waits: it applies what has arrived. What the
operator itself wrote is stored from the write's answer (`remember`, `drop`), so its next tick
sees it even before the watch event does; an event older than what is stored is then stale and
ignored (resourceVersions are etcd revisions: integers, ordered, as every server in use gives).

Like client-go's SetTransform and Indexers, an informer may store each object trimmed to what
its readers use (`transform`: a cluster's pods are most of its bytes), and keep indexes of
them by any key (`indexes`: a name -> the keys of an object), so a lookup by label or address
reads the few objects it names, not a scan of all.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Hashable, Iterable, Mapping

from hopscope_operator.cluster import ApiError, ClusterApi, Object, Resource, Watch

log = logging.getLogger("hopscope.operator")

Key = tuple[str | None, str]  # (namespace, name)
Indexer = Callable[[Object], Iterable[Hashable]]  # an object's keys in one index
EXPIRED = 410


class Informer:
    def __init__(
        self,
        api: ClusterApi,
        resource: Resource,
        namespace: str | None,
        labels: dict[str, str] | None = None,
        *,
        transform: Callable[[Object], Object] | None = None,
        indexes: Mapping[str, Indexer] | None = None,
    ) -> None:
        self.api = api
        self.resource = resource
        self.namespace = namespace
        self.labels = labels
        self._transform = transform
        self._indexers = dict(indexes or {})
        self._index: dict[str, dict[Hashable, set[Key]]] = {name: {} for name in self._indexers}
        self.version = ""  # the last resourceVersion seen: a list's, an event's, a bookmark's
        self.lists = 0  # how many times it listed (1 + one per expired watch)
        self._objects: dict[Key, Object] = {}
        self._dropped: dict[Key, str] = {}  # deleted by us: events no newer are stale
        self._watch: Watch | None = None
        # The tick syncs; kopf's handler threads read and drop (`Reconciler.forget`).
        self._lock = threading.RLock()

    @property
    def listed(self) -> bool:
        return self.lists > 0 and self._watch is not None

    def objects(self) -> list[Object]:
        """What the cache holds, in (namespace, name) order (as a list answers)."""
        with self._lock:
            return [self._objects[key] for key in sorted(self._objects, key=str)]

    def get(self, namespace: str | None, name: str) -> Object | None:
        with self._lock:
            return self._objects.get((namespace, name))

    def by(self, index: str, value: Hashable) -> list[Object]:
        """The objects `index` files under `value`, in (namespace, name) order."""
        with self._lock:
            keys = self._index[index].get(value, ())
            return [self._objects[key] for key in sorted(keys, key=str)]

    def sync(self) -> None:
        """Apply every event that has arrived; list first when there is nothing to watch from.
        An ApiError (the list or watch refused) is raised, and the next sync tries again."""
        with self._lock:
            self._sync()

    def _sync(self) -> None:
        if self._watch is None:
            if not self.version:
                self._relist()
            else:
                self._open()
        assert self._watch is not None
        for _ in range(2):  # one reopen per sync: a stream ended with events still queued
            ended = self._watch.ended
            for event in self._watch.poll():
                if not self._apply(event):
                    self._relist()
                    return
            if not ended:
                return
            log.debug("watch of %s ended: resuming from %s", self.resource.plural, self.version)
            self._open()

    def remember(self, obj: Object) -> None:
        """Store an object the operator wrote, from the write's answer (read-your-writes)."""
        key = _key(obj)
        with self._lock:
            if _newer(obj, self._objects.get(key)):
                self._put(key, obj)
                self._dropped.pop(key, None)

    def drop(self, namespace: str | None, name: str) -> None:
        """The operator deleted it: gone from the cache now; its DELETED event follows."""
        with self._lock:
            gone = self._pop((namespace, name))
            if gone is not None:
                self._dropped[(namespace, name)] = _version(gone)

    def close(self) -> None:
        if self._watch is not None:
            self._watch.close()
            self._watch = None

    def _relist(self) -> None:
        self.close()
        listing = self.api.list_versioned(self.resource, self.namespace, self.labels)
        self.lists += 1
        self._objects = {}
        self._index = {name: {} for name in self._indexers}
        for obj in listing.items:
            self._put(_key(obj), obj)
        self._dropped = {}
        self.version = listing.resource_version
        self._open()

    def _open(self) -> None:
        self._watch = None
        self._watch = self.api.watch(self.resource, self.namespace, self.labels, self.version)

    def _apply(self, event: Object) -> bool:
        """Apply one event; False when the watch expired (a relist is due)."""
        kind, obj = event.get("type"), event.get("object") or {}
        if kind == "ERROR":
            if obj.get("code") == EXPIRED:
                log.info(
                    "watch of %s expired at %s: listing again", self.resource.plural, self.version
                )
                return False
            raise ApiError(f"watch of {self.resource.plural}: {obj.get('message', obj)}")
        version = _version(obj)
        if version:
            self.version = version
        if kind == "BOOKMARK":
            return True
        key = _key(obj)
        if key in self._dropped and not _after(version, self._dropped[key]):
            return True  # a change from before the operator deleted it
        if kind == "DELETED":
            self._dropped.pop(key, None)
            stored = self._objects.get(key)
            if stored is None or _after(version, _version(stored)):
                self._pop(key)
        elif _newer(obj, self._objects.get(key)):
            self._dropped.pop(key, None)
            self._put(key, obj)
        return True

    def _put(self, key: Key, obj: Object) -> None:
        """Store (trimmed) and index an object, unfiling what it replaces."""
        self._pop(key)
        obj = self._transform(obj) if self._transform else obj
        self._objects[key] = obj
        for name, keys_of in self._indexers.items():
            for value in keys_of(obj):
                self._index[name].setdefault(value, set()).add(key)

    def _pop(self, key: Key) -> Object | None:
        gone = self._objects.pop(key, None)
        if gone is not None:
            for name, keys_of in self._indexers.items():
                filed = self._index[name]
                for value in keys_of(gone):
                    keys = filed.get(value)
                    if keys is not None:
                        keys.discard(key)
                        if not keys:
                            del filed[value]
        return gone


def _key(obj: Object) -> Key:
    meta = obj["metadata"]
    return meta.get("namespace"), meta["name"]


def _version(obj: Object) -> str:
    return str(obj.get("metadata", {}).get("resourceVersion") or "")


def _after(version: str, than: str) -> bool:
    """Whether `version` is later than `than`; unknown (not integers) counts as later."""
    if version.isdigit() and than.isdigit():
        return int(version) > int(than)
    return True


def _newer(obj: Object, stored: Object | None) -> bool:
    """Whether `obj` is as new as the stored one or newer (the same version: the same write)."""
    if stored is None:
        return True
    version, have = _version(obj), _version(stored)
    return version == have or _after(version, have)
