"""Reads the `analysis.Snapshot` of one check from the API, for one tick.

One reader lives for one tick: what every check shares (NetworkPolicies, namespaces, the cluster
DNS Service and its pods, nodes, and all pods when a destination is a bare address) is read once
and reused; what belongs to one check (its pods, its Service and EndpointSlices) per check.
A read the API refuses (RBAC, a timeout) is recorded in `Snapshot.unreadable`, never raised, so
the analysis says Unknown for that part and the tick goes on.

A namespaced install lists pods and policies in the namespaces it watches, plus the policies of
the cluster DNS namespace (they may block DNS); not across the cluster. A bare address that is a
pod of an unwatched namespace is then judged as an address outside the cluster. The other policy
families' kinds the cluster serves (`PolicyKinds`) are listed the same way when namespaced, and
across the cluster when cluster-scoped (they select pods of every namespace); each kind is its own
part, so one refused kind leaves the others read.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TypeVar

from hopscope_operator import analysis as a
from hopscope_operator.api import ConnectivityCheck
from hopscope_operator.cluster import (
    ENDPOINT_SLICES,
    NETWORK_POLICIES,
    NODES,
    PODS,
    SERVICES,
    ApiError,
    ClusterApi,
    NotFound,
    Object,
    Resource,
)
from hopscope_operator.controller.policykinds import PolicyKinds
from hopscope_operator.controller.resolve import ResolvedDestination, ResolvedSource
from hopscope_operator.controller.view import SERVICE_NAME_LABEL
from hopscope_operator.policykinds import PolicyKind

NAMESPACES = Resource("", "v1", "namespaces", "Namespace")
T = TypeVar("T")


class _Unread(Exception):
    """A shared read that failed; remembered for the rest of the tick."""


class SnapshotReader:
    def __init__(
        self, api: ClusterApi, watched: tuple[str, ...] = (), kinds: PolicyKinds | None = None
    ) -> None:
        self.api = api
        self.watched = watched  # () for all namespaces
        self.kinds = kinds  # None: core NetworkPolicies only
        self._shared: dict[str, object] = {}  # per tick: name -> value or _Unread
        self._rules = a.ParsedRules()  # the shared policies, parsed once for every check

    def _list_watched(self, resource: Resource, *also: str) -> list[Object]:
        """Every `resource` in the watched namespaces (and `also`): one list for all of them
        when the install is cluster-wide."""
        if not self.watched:
            return self.api.list(resource, None)
        namespaces = sorted({*self.watched, *also})
        return [item for ns in namespaces for item in self.api.list(resource, ns)]

    def _readable(self, namespace: str) -> bool:
        return not self.watched or namespace in self.watched

    def _once(self, name: str, read: Callable[[], T]) -> T:
        if name not in self._shared:
            try:
                self._shared[name] = read()
            except ApiError as exc:
                self._shared[name] = _Unread(str(exc) or type(exc).__name__)
        value = self._shared[name]
        if isinstance(value, _Unread):
            raise value
        return value  # type: ignore[return-value]

    def _get(self, resource: Resource, namespace: str | None, name: str) -> Object | None:
        try:
            return self.api.get(resource, namespace, name)
        except NotFound:
            return None

    def snapshot(
        self, check: ConnectivityCheck, source: ResolvedSource, destination: ResolvedDestination
    ) -> a.Snapshot:
        unreadable: dict[str, str] = {}
        pods: dict[tuple[str, str], Object] = {}
        target = check.spec.destination

        def attempt(part: str, read: Callable[[], T], default: T) -> T:
            try:
                return read()
            except _Unread as exc:
                unreadable.setdefault(part, str(exc))
            except ApiError as exc:
                unreadable.setdefault(part, str(exc) or type(exc).__name__)
            return default

        def add_pods(found: list[Object]) -> None:
            for pod in found:
                meta = pod["metadata"]
                pods.setdefault((meta.get("namespace", "default"), meta["name"]), pod)

        def pod(ns: str, name: str) -> None:
            if (ns, name) not in pods:
                found = attempt(a.PODS, lambda: self._get(PODS, ns, name), None)
                add_pods([found] if found else [])

        if source.pod_namespace and source.pod_name:
            pod(source.pod_namespace, source.pod_name)
        if destination.pod is not None:
            pod(*destination.pod)

        service, service_slices = None, []
        if destination.service is not None:
            ns, name = destination.service
            service = attempt(a.SERVICE, lambda: self._get(SERVICES, ns, name), None)
            if service is not None:
                service_slices = attempt(
                    a.ENDPOINT_SLICES,
                    lambda: self.api.list(ENDPOINT_SLICES, ns, {SERVICE_NAME_LABEL: name}),
                    [],
                )
                add_pods(attempt(a.PODS, lambda: self._selected(service), []))
                for _, ref in a.ready_endpoints(service_slices):
                    if ref is not None and self._readable(ref[0]):
                        pod(*ref)
        elif destination.pod is None and destination.addresses:
            # A bare address may be a pod's: find it among all pods (listed once per tick).
            wanted = set(destination.addresses)
            every = attempt(
                a.PODS, lambda: self._once("pods", lambda: self._list_watched(PODS)), []
            )
            add_pods([p for p in every if wanted & set(_pod_ips(p))])

        dns_service, dns_slices = None, []
        try:
            dns_service, dns_slices, dns_pods = self._once("dns", self._dns)
            add_pods(dns_pods)
        except _Unread as exc:
            unreadable[a.DNS] = str(exc)

        policies = attempt(
            a.POLICIES,
            lambda: self._once(
                "policies", lambda: self._list_watched(NETWORK_POLICIES, a.DNS_NAMESPACE)
            ),
            [],
        )
        others = []
        for kind in attempt(a.POLICY_KINDS, lambda: self._once(a.POLICY_KINDS, self._kinds), ()):
            others += attempt(kind.part, lambda kind=kind: self._policy_objects(kind), [])
        namespaces = attempt(
            a.NAMESPACES,
            lambda: self._once("namespaces", lambda: self.api.list(NAMESPACES, None)),
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
            node = attempt(a.NODES, lambda name=name: self._node(name), None)
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

    def _kinds(self) -> tuple[PolicyKind, ...]:
        return self.kinds.served() if self.kinds is not None else ()

    def _policy_objects(self, kind: PolicyKind) -> list[Object]:
        """Every object of one discovered policy kind, read once per tick (the one place that
        lists them: what an informer per kind would replace)."""

        def read() -> list[Object]:
            try:
                if kind.namespaced:
                    return self._list_watched(kind.resource, a.DNS_NAMESPACE)
                return self.api.list(kind.resource, None)
            except NotFound:  # its CRD was removed: no objects, and discover again
                if self.kinds is not None:
                    self.kinds.gone()
                return []

        return self._once(kind.part, read)

    def _node(self, name: str) -> Object | None:
        return self._once(f"node/{name}", lambda: self._get(NODES, None, name))

    def _selected(self, service: Object) -> list[Object]:
        selector = (service.get("spec") or {}).get("selector") or {}
        if not selector:
            return []
        return self.api.list(PODS, service["metadata"]["namespace"], dict(selector))

    def _dns(self) -> tuple[Object | None, list[Object], list[Object]]:
        service = self._get(SERVICES, a.DNS_NAMESPACE, a.DNS_SERVICE)
        if service is None:
            return None, [], []
        slices = self.api.list(
            ENDPOINT_SLICES, a.DNS_NAMESPACE, {SERVICE_NAME_LABEL: a.DNS_SERVICE}
        )
        return service, slices, self._selected(service)


def _pod_ips(pod: Object) -> list[str]:
    status = pod.get("status") or {}
    ips = [entry.get("ip") for entry in status.get("podIPs") or [] if entry.get("ip")]
    return ips or ([status["podIP"]] if status.get("podIP") else [])
