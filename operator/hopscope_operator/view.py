"""resolve.ClusterView over the API: the reads resolution needs, absent objects as None."""

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

WORKLOADS = {r.kind: r for r in (DEPLOYMENTS, STATEFUL_SETS, DAEMON_SETS)}
SERVICE_NAME_LABEL = "kubernetes.io/service-name"


class ApiView:
    def __init__(self, api: ClusterApi) -> None:
        self.api = api

    def _get(self, resource: Resource, namespace: str | None, name: str) -> Object | None:
        try:
            return self.api.get(resource, namespace, name)
        except NotFound:
            return None

    def pod(self, namespace: str, name: str) -> Object | None:
        return self._get(PODS, namespace, name)

    def pods(self, namespace: str, selector: Mapping[str, Any]) -> list[Object]:
        # matchLabels narrows the list on the server; matchExpressions are applied here.
        listed = self.api.list(PODS, namespace, dict(selector.get("matchLabels") or {}))
        wanted = parse_selector(selector, "selector")
        return [p for p in listed if wanted.matches(p["metadata"].get("labels", {}))]

    def node(self, name: str) -> Object | None:
        return self._get(NODES, None, name)

    def service(self, namespace: str, name: str) -> Object | None:
        return self._get(SERVICES, namespace, name)

    def endpoint_slices(self, namespace: str, service: str) -> list[Object]:
        return self.api.list(ENDPOINT_SLICES, namespace, {SERVICE_NAME_LABEL: service})

    def workload(self, kind: str, namespace: str, name: str) -> Object | None:
        return self._get(WORKLOADS[kind], namespace, name)
