"""resolve.ClusterView over the API: the reads resolution needs, absent objects as None.

A namespaced install may read only the namespaces it watches: a read elsewhere raises
NamespaceNotWatched (the check then says so) instead of asking the API for a 403."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from hopscope_operator.cluster import (
    DAEMON_SETS,
    DEPLOYMENTS,
    ENDPOINT_SLICES,
    NODES,
    PODS,
    SERVICES,
    STATEFUL_SETS,
    ClusterApi,
    NotFound,
    Object,
    Resource,
)
from hopscope_operator.policy.model import parse_selector
from hopscope_operator.resolve import NamespaceNotWatched

WORKLOADS = {r.kind: r for r in (DEPLOYMENTS, STATEFUL_SETS, DAEMON_SETS)}
SERVICE_NAME_LABEL = "kubernetes.io/service-name"


class ApiView:
    def __init__(self, api: ClusterApi, watched: tuple[str, ...] = ()) -> None:
        self.api = api
        self.watched = watched  # () for all namespaces

    def _readable(self, namespace: str | None) -> str | None:
        if namespace is not None and self.watched and namespace not in self.watched:
            raise NamespaceNotWatched(namespace, self.watched)
        return namespace

    def _get(self, resource: Resource, namespace: str | None, name: str) -> Object | None:
        try:
            return self.api.get(resource, self._readable(namespace), name)
        except NotFound:
            return None

    def pod(self, namespace: str, name: str) -> Object | None:
        return self._get(PODS, namespace, name)

    def pods(self, namespace: str, selector: Mapping[str, Any]) -> list[Object]:
        # matchLabels narrows the list on the server; matchExpressions are applied here.
        labels = dict(selector.get("matchLabels") or {})
        listed = self.api.list(PODS, self._readable(namespace), labels)
        wanted = parse_selector(selector, "selector")
        return [p for p in listed if wanted.matches(p["metadata"].get("labels", {}))]

    def node(self, name: str) -> Object | None:
        return self._get(NODES, None, name)

    def service(self, namespace: str, name: str) -> Object | None:
        return self._get(SERVICES, namespace, name)

    def endpoint_slices(self, namespace: str, service: str) -> list[Object]:
        labels = {SERVICE_NAME_LABEL: service}
        return self.api.list(ENDPOINT_SLICES, self._readable(namespace), labels)

    def workload(self, kind: str, namespace: str, name: str) -> Object | None:
        return self._get(WORKLOADS[kind], namespace, name)
