"""Reads the `analysis.Snapshot` of one check from the analysis caches, for one tick.

One reader lives for one tick, over caches synced at its start (`AnalysisCache.sync`): it asks
the API nothing. Lookups are the caches' indexes: a Service's pods by its selector, its
EndpointSlices by their service-name label, the pods at a bare address by IP. What every check
shares (the policies and namespaces, the cluster DNS Service, slices and pods) is gathered
once per tick and reused. A kind the caches could not read this tick (RBAC, a timeout: the
sync's report) is recorded in `Snapshot.unreadable`, so the analysis says Unknown for that part
and the tick goes on.

A namespaced install caches pods, Services, slices and policies of the namespaces it watches
plus the cluster DNS namespace (for DNS); a bare address that is a pod of an unwatched
namespace (kube-system's included) is judged as an address outside the cluster, as before.
The other policy families' kinds the cluster serves (discovered: `PolicyKinds`) have their own
caches in `AnalysisCache.policies`, namespaced ones over the same namespaces, cluster-scoped
ones across the cluster (they select pods of every namespace); each kind is its own part, so
one refused kind leaves the others read.

It is also the tick's `identify.NameView` (which Service or pod a destination names) and the
cached reads of its `view.ApiView` (the pods, Services, slices and nodes resolution reads).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any, TypeVar

from hopscope_operator import analysis as a
from hopscope_operator.api import ConnectivityCheck
from hopscope_operator.cluster import NETWORK_POLICIES, ApiError, Object, Resource
from hopscope_operator.controller.analysis_cache import (
    ADDRESS,
    HOST,
    LABEL,
    NAMESPACE,
    SERVICE,
    AnalysisCache,
    Spread,
)
from hopscope_operator.controller.resolve import (
    NamespaceNotWatched,
    ResolvedDestination,
    ResolvedSource,
)
from hopscope_policy.model import parse_selector

T = TypeVar("T")


class _Unread(ApiError):
    """A part the caches could not read this tick."""


class SnapshotReader:
    def __init__(
        self,
        cache: AnalysisCache,
        watched: tuple[str, ...] = (),
        unread: Mapping[Resource, str] | None = None,
        undiscovered: str | None = None,
    ) -> None:
        self.cache = cache
        self.watched = watched  # () for all namespaces
        self._unread = dict(unread or {})  # what the tick's sync could not read, and why
        self._undiscovered = undiscovered  # why no policy kind could be discovered, if so
        self._shared: dict[str, object] = {}  # per tick: name -> value
        self._rules = a.ParsedRules()  # the shared policies, parsed once for every check

    def _readable(self, namespace: str) -> bool:
        return not self.watched or namespace in self.watched

    def _read(self, spread: Spread, namespace: str | None = None) -> Spread:
        """`spread`, when this tick's sync read it (and it holds `namespace`)."""
        why = self._unread.get(spread.kind.resource)
        if why is not None:
            raise _Unread(why)
        if not spread.listed:
            raise _Unread(f"{spread.kind.resource.plural} are not listed yet")
        if namespace is not None and not spread.covers(namespace):
            raise _Unread(str(NamespaceNotWatched(namespace, self.watched)))
        return spread

    def _once(self, name: str, read: Callable[[], T]) -> T:
        if name not in self._shared:
            self._shared[name] = read()
        return self._shared[name]  # type: ignore[return-value]

    # ---- identify.NameView ---------------------------------------------------------------

    def service(self, namespace: str, name: str) -> Object | None:
        if not self._readable(namespace):
            raise NamespaceNotWatched(namespace, self.watched)
        return self._read(self.cache.services, namespace).get(namespace, name)

    def services_at(self, address: str) -> list[Object]:
        found = self._read(self.cache.services).by(ADDRESS, address)
        return [s for s in found if self._readable(s["metadata"]["namespace"])]

    def pods_at(self, address: str) -> list[Object]:
        found = self._read(self.cache.pods).by(ADDRESS, address)
        return [p for p in found if self._readable(p["metadata"]["namespace"])]

    def pods_by_hostname(self, namespace: str, subdomain: str, hostname: str) -> list[Object]:
        return self._read(self.cache.pods, namespace).by(HOST, (namespace, subdomain, hostname))

    # ---- view.CachedReads (resolution's) ---------------------------------------------------

    def pod(self, namespace: str, name: str) -> Object | None:
        if not self._readable(namespace):
            raise NamespaceNotWatched(namespace, self.watched)
        return self._read(self.cache.pods, namespace).get(namespace, name)

    def pods(self, namespace: str, selector: Mapping[str, Any]) -> list[Object]:
        """The pods of `namespace` a label selector (matchLabels, matchExpressions) matches."""
        if not self._readable(namespace):
            raise NamespaceNotWatched(namespace, self.watched)
        return self._matching(namespace, selector)

    def endpoint_slices(self, namespace: str, service: str) -> list[Object]:
        if not self._readable(namespace):
            raise NamespaceNotWatched(namespace, self.watched)
        return self._slices(namespace, service)

    def node(self, name: str) -> Object | None:
        return self._read(self.cache.nodes).get(None, name)

    # ---- the snapshot ----------------------------------------------------------------------

    def snapshot(
        self, check: ConnectivityCheck, source: ResolvedSource, destination: ResolvedDestination
    ) -> a.Snapshot:
        unreadable: dict[str, str] = {}
        pods: dict[tuple[str, str], Object] = {}
        target = check.spec.destination

        def attempt(part: str, read: Callable[[], T], default: T) -> T:
            try:
                return read()
            except ApiError as exc:
                unreadable.setdefault(part, str(exc) or type(exc).__name__)
            return default

        def add_pods(found: list[Object]) -> None:
            for pod in found:
                meta = pod["metadata"]
                pods.setdefault((meta.get("namespace", "default"), meta["name"]), pod)

        def pod(ns: str, name: str) -> None:
            if (ns, name) not in pods:
                found = attempt(a.PODS, lambda: self._read(self.cache.pods, ns).get(ns, name), None)
                add_pods([found] if found else [])

        if source.pod_namespace and source.pod_name:
            pod(source.pod_namespace, source.pod_name)
        if destination.pod is not None:
            pod(*destination.pod)

        service, service_slices = None, []
        if destination.service is not None:
            ns, name = destination.service
            service = attempt(
                a.SERVICE, lambda: self._read(self.cache.services, ns).get(ns, name), None
            )
            if service is not None:
                service_slices = attempt(a.ENDPOINT_SLICES, lambda: self._slices(ns, name), [])
                add_pods(attempt(a.PODS, lambda: self._selected(service), []))
                for _, ref in a.ready_endpoints(service_slices):
                    if ref is not None and self._readable(ref[0]):
                        pod(*ref)
        elif destination.pod is None and destination.addresses:
            # A bare address may be a pod's: looked up by IP, in the namespaces watched.
            for address in destination.addresses:
                add_pods(attempt(a.PODS, lambda address=address: self.pods_at(address), []))

        dns_service, dns_slices = None, []
        try:
            dns_service, dns_slices, dns_pods = self._once("dns", self._dns)
            add_pods(dns_pods)
        except _Unread as exc:
            unreadable[a.DNS] = str(exc)

        policies = attempt(
            a.POLICIES,
            lambda: self._once("policies", lambda: self._policies(NETWORK_POLICIES)),
            [],
        )
        if self._undiscovered is not None:
            unreadable[a.POLICY_KINDS] = self._undiscovered
        others = []
        for kind in self.cache.policies:
            if kind != NETWORK_POLICIES:
                part = f"{kind.plural}.{kind.group}"  # as kubectl and RBAC name it
                others += attempt(part, lambda kind=kind: self._policies(kind), [])
        namespaces = attempt(
            a.NAMESPACES,
            lambda: self._once("namespaces", lambda: self._read(self.cache.namespaces).objects()),
            [],
        )
        node_names = {source.node_name}
        node_names.update(
            p.get("spec", {}).get("nodeName")
            for p in pods.values()
            if p.get("spec", {}).get("nodeName")
        )
        if target.node is not None:
            node_names.add(target.node.name)
        nodes = {}
        for name in sorted(n for n in node_names if n):
            node = attempt(a.NODES, lambda name=name: self.node(name), None)
            if node is not None:
                nodes[name] = node
        return a.Snapshot(
            pods=list(pods.values()),
            namespaces=namespaces,
            policies=policies,
            other_policies=others,
            service=service,
            service_slices=service_slices,
            nodes=nodes,
            dns_service=dns_service,
            dns_slices=dns_slices,
            unreadable=unreadable,
            rules=self._rules,
        )

    def _policies(self, kind: Resource) -> list[Object]:
        """The cached policies of one kind (`AnalysisCache.policy`)."""
        return self._read(self.cache.policies[kind]).objects()

    def _slices(self, namespace: str, service: str) -> list[Object]:
        return self._read(self.cache.slices, namespace).by(SERVICE, (namespace, service))

    def _matching(self, namespace: str, selector: Mapping[str, Any]) -> list[Object]:
        """The cached pods of `namespace` that `selector` matches: the label index narrows
        them to one of its matchLabels, then the whole selector is applied."""
        pods = self._read(self.cache.pods, namespace)
        labels = sorted((selector.get("matchLabels") or {}).items())
        found = pods.by(LABEL, (namespace, *labels[0])) if labels else pods.by(NAMESPACE, namespace)
        wanted = parse_selector(selector, "selector")
        return [p for p in found if wanted.matches(p["metadata"].get("labels") or {})]

    def _selected(self, service: Object) -> list[Object]:
        """The pods the Service's selector (plain labels) matches; none for no selector."""
        selector = (service.get("spec") or {}).get("selector") or {}
        if not selector:
            return []
        return self._matching(service["metadata"]["namespace"], {"matchLabels": selector})

    def _dns(self) -> tuple[Object | None, list[Object], list[Object]]:
        service = self._read(self.cache.services, a.DNS_NAMESPACE).get(
            a.DNS_NAMESPACE, a.DNS_SERVICE
        )
        if service is None:
            return None, [], []
        slices = self._slices(a.DNS_NAMESPACE, a.DNS_SERVICE)
        return service, slices, self._selected(service)
