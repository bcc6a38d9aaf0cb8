"""resolve.ClusterView over the API: the reads resolution needs, absent objects as None.

A view lives for one tick and remembers what it read: a thousand checks from fifty nodes read
each node once. Pods, Services, their EndpointSlices and nodes come from the tick's watch-fed
caches (`cached`: the tick's `SnapshotReader`), so resolving them asks the API nothing;
workloads and ConfigMaps are read from the API. A namespaced install may read only the
namespaces it watches: a read elsewhere raises NamespaceNotWatched (the check then says so)
instead of asking the API for a 403."""

from __future__ import annotations

from collections.abc import Callable, Hashable, Mapping
from typing import Any, Protocol, TypeVar

from hopscope_operator.cluster import (
    CONFIG_MAPS,
    DAEMON_SETS,
    DEPLOYMENTS,
    STATEFUL_SETS,
    ClusterApi,
    NotFound,
    Object,
    Resource,
)
from hopscope_operator.controller.resolve import NamespaceNotWatched

WORKLOADS = {r.kind: r for r in (DEPLOYMENTS, STATEFUL_SETS, DAEMON_SETS)}
T = TypeVar("T")


class CachedReads(Protocol):
    """What the tick's caches answer (raising ApiError for a kind they could not read, and
    NamespaceNotWatched for a namespace this install does not read)."""

    def pod(self, namespace: str, name: str) -> Object | None: ...

    def pods(self, namespace: str, selector: Mapping[str, Any]) -> list[Object]: ...

    def service(self, namespace: str, name: str) -> Object | None: ...

    def endpoint_slices(self, namespace: str, service: str) -> list[Object]: ...

    def node(self, name: str) -> Object | None: ...


class ApiView:
    def __init__(self, api: ClusterApi, cached: CachedReads, watched: tuple[str, ...] = ()) -> None:
        self.api = api
        self.cached = cached
        self.watched = watched  # () for all namespaces
        self._read: dict[Hashable, Any] = {}

    def _readable(self, namespace: str | None) -> str | None:
        if namespace is not None and self.watched and namespace not in self.watched:
            raise NamespaceNotWatched(namespace, self.watched)
        return namespace

    def _once(self, key: Hashable, read: Callable[[], T]) -> T:
        if key not in self._read:
            self._read[key] = read()
        return self._read[key]  # type: ignore[no-any-return]

    def _get(self, resource: Resource, namespace: str | None, name: str) -> Object | None:
        def read() -> Object | None:
            try:
                return self.api.get(resource, namespace, name)
            except NotFound:
                return None

        return self._once((resource.plural, self._readable(namespace), name), read)

    def pod(self, namespace: str, name: str) -> Object | None:
        return self.cached.pod(namespace, name)

    def pods(self, namespace: str, selector: Mapping[str, Any]) -> list[Object]:
        return self.cached.pods(namespace, selector)

    def node(self, name: str) -> Object | None:
        return self.cached.node(name)

    def service(self, namespace: str, name: str) -> Object | None:
        return self.cached.service(namespace, name)  # it raises NamespaceNotWatched too

    def endpoint_slices(self, namespace: str, service: str) -> list[Object]:
        return self.cached.endpoint_slices(namespace, service)

    def workload(self, kind: str, namespace: str, name: str) -> Object | None:
        return self._get(WORKLOADS[kind], namespace, name)

    def config_map(self, namespace: str, name: str) -> Object | None:
        return self._get(CONFIG_MAPS, namespace, name)
