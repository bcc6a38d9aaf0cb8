"""The watch-fed caches the tick reads, and the API seam that keeps them read-your-writes.

A tick reads the checks (per watched namespace, or all), the ClusterConnectivityChecks
(cluster-wide installs only), the probe pods and what the analysis reads (`analysis_cache`)
from informers (`informer`), so a steady tick lists nothing: its requests are the pods it
creates and deletes and the statuses it writes.
`ReadYourWrites` is the ClusterApi the reconciler writes through: each answer to a write of a
cached kind goes into its cache, so the next tick sees the pod it created (and creates no
second one) and the status it wrote (and writes no result twice) before the watch says so.
"""

from __future__ import annotations

import threading
from collections import Counter

from hopscope_operator.cluster import (
    CHECKS,
    CLUSTER_CHECKS,
    PODS,
    ClusterApi,
    Listing,
    Object,
    Resource,
    Watch,
)
from hopscope_operator.controller.analysis_cache import AnalysisCache
from hopscope_operator.controller.informer import Informer
from hopscope_operator.controller.runs import selector


class ClusterCache:
    def __init__(self, api: ClusterApi, watched: tuple[str, ...], probe_namespace: str) -> None:
        self.checks = {ns: Informer(api, CHECKS, ns) for ns in watched or (None,)}
        # A namespaced install is granted no cluster-wide power: it has no cluster checks.
        self.cluster_checks = None if watched else Informer(api, CLUSTER_CHECKS, None)
        self.probe_pods = Informer(api, PODS, probe_namespace, selector())
        self.analysis = AnalysisCache(api, watched)

    def informers(self) -> list[Informer]:
        found = [*self.checks.values(), self.probe_pods]
        found += [self.cluster_checks] if self.cluster_checks else []
        return found + self.analysis.informers()

    def of(self, resource: Resource, namespace: str | None) -> Informer | None:
        """The informer that holds objects of `resource` in `namespace`, if one does."""
        if resource == PODS:
            return self.probe_pods if namespace == self.probe_pods.namespace else None
        if resource == CLUSTER_CHECKS:
            return self.cluster_checks
        if resource == CHECKS:
            return self.checks.get(namespace) or self.checks.get(None)
        return None

    def close(self) -> None:
        for informer in self.informers():
            informer.close()


class ReadYourWrites:
    """A ClusterApi that forwards every call and keeps the caches up with the writes made
    through it; it counts the requests by verb (what `bench/operator.py` prints per tick)."""

    def __init__(self, api: ClusterApi, cache: ClusterCache) -> None:
        self.inner = api
        self.cache = cache
        self.requests: Counter[str] = Counter()
        self._counting = threading.Lock()  # writes come from a pool of threads (`writes`)

    def _count(self, verb: str) -> None:
        with self._counting:
            self.requests[verb] += 1

    def _stored(self, resource: Resource, obj: Object) -> Object:
        informer = self.cache.of(resource, obj.get("metadata", {}).get("namespace"))
        if informer is not None and _selected(obj, informer.labels):
            obj.setdefault("apiVersion", resource.api_version)
            obj.setdefault("kind", resource.kind)
            informer.remember(obj)
        return obj

    def discovery(self, path: str) -> Object | None:
        self._count("discovery")
        return self.inner.discovery(path)

    def get(self, resource: Resource, namespace: str | None, name: str) -> Object:
        self._count("get")
        return self.inner.get(resource, namespace, name)

    def list(
        self, resource: Resource, namespace: str | None, labels: dict[str, str] | None = None
    ) -> list[Object]:
        self._count("list")
        return self.inner.list(resource, namespace, labels)

    def list_versioned(
        self, resource: Resource, namespace: str | None, labels: dict[str, str] | None = None
    ) -> Listing:
        self._count("list")
        return self.inner.list_versioned(resource, namespace, labels)

    def watch(
        self,
        resource: Resource,
        namespace: str | None,
        labels: dict[str, str] | None,
        resource_version: str,
    ) -> Watch:
        self._count("watch")
        return self.inner.watch(resource, namespace, labels, resource_version)

    def create(self, resource: Resource, namespace: str | None, body: Object) -> Object:
        self._count("create")
        return self._stored(resource, self.inner.create(resource, namespace, body))

    def replace(self, resource: Resource, namespace: str, name: str, body: Object) -> Object:
        self._count("update")
        return self._stored(resource, self.inner.replace(resource, namespace, name, body))

    def delete(self, resource: Resource, namespace: str | None, name: str) -> None:
        self._count("delete")
        self.inner.delete(resource, namespace, name)
        informer = self.cache.of(resource, namespace)
        if informer is not None:
            informer.drop(namespace, name)

    def patch_status(
        self,
        resource: Resource,
        namespace: str | None,
        name: str,
        status: Object,
        resource_version: str,
    ) -> Object:
        self._count("patch")
        stored = self.inner.patch_status(resource, namespace, name, status, resource_version)
        return self._stored(resource, stored)

    def pod_log(self, namespace: str, name: str) -> str:
        self._count("get")
        return self.inner.pod_log(namespace, name)

    def request_token(
        self, namespace: str, service_account: str, audience: str, seconds: int
    ) -> str:
        self._count("create")
        return self.inner.request_token(namespace, service_account, audience, seconds)


def _selected(obj: Object, labels: dict[str, str] | None) -> bool:
    have = obj.get("metadata", {}).get("labels") or {}
    return all(have.get(k) == v for k, v in (labels or {}).items())
