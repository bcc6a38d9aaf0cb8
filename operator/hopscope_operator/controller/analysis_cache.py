"""The watch-fed caches of what the static analysis reads: pods, Services, EndpointSlices,
policies, namespaces and nodes.

Each kind is read by informers (`informer`): one cluster-wide, or with watch.namespaces one per
watched namespace and the cluster DNS namespace (its Service, endpoints, pods and the policies
that may block DNS), as the chart's RBAC grants. They store objects trimmed (`trim`) and
indexed for the lookups a snapshot makes: pods by label and by address, EndpointSlices by
their Service, Services by ClusterIP. They are synced at the start of each tick (`sync`, which
never waits); a kind that cannot be listed or watched (RBAC, a timeout) is reported, not
raised, and tried again on the next tick: the analysis says Unknown for what it leaves out.

Policies are read per kind (`AnalysisCache.policy`): the core NetworkPolicies, and any other
kind the cluster is found to serve, each into informers of its own, synced the same way.
"""

from __future__ import annotations

from collections.abc import Callable, Hashable, Iterable, Mapping
from dataclasses import dataclass, field

from hopscope_operator.cluster import (
    ENDPOINT_SLICES,
    NAMESPACES,
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
from hopscope_operator.controller import trim
from hopscope_operator.controller.identify import cluster_addresses, pod_addresses
from hopscope_operator.controller.informer import Indexer, Informer
from hopscope_operator.names import DNS_NAMESPACE

SERVICE_NAME_LABEL = "kubernetes.io/service-name"
# Index names.
LABEL = "label"  # (namespace, key, value) of each label
ADDRESS = "address"  # each address (normalized): a pod's IPs, a Service's ClusterIPs
HOST = "host"  # a pod's (namespace, subdomain, hostname)
NAMESPACE = "namespace"  # an object's namespace
SERVICE = "service"  # an EndpointSlice's (namespace, Service name)


def _namespace(obj: Object) -> str:
    return str(obj["metadata"].get("namespace", "default"))


def _labels(obj: Object) -> Iterable[Hashable]:
    ns = _namespace(obj)
    return [(ns, k, v) for k, v in (obj["metadata"].get("labels") or {}).items()]


def _host(obj: Object) -> Iterable[Hashable]:
    spec = obj.get("spec") or {}
    if spec.get("hostname") and spec.get("subdomain"):
        return [(_namespace(obj), spec["subdomain"], spec["hostname"])]
    return []


def _owning_service(obj: Object) -> Iterable[Hashable]:
    name = (obj["metadata"].get("labels") or {}).get(SERVICE_NAME_LABEL)
    return [(_namespace(obj), name)] if name else []


@dataclass(frozen=True)
class Kind:
    """A kind the analysis reads: how its objects are trimmed and indexed, and whether they
    live in namespaces (else one informer reads them all)."""

    resource: Resource
    trim: Callable[[Object], Object]
    indexes: Mapping[str, Indexer] = field(default_factory=dict)
    namespaced: bool = True


POD_KIND = Kind(
    PODS,
    trim.pod,
    {LABEL: _labels, ADDRESS: pod_addresses, HOST: _host, NAMESPACE: lambda p: [_namespace(p)]},
)
SERVICE_KIND = Kind(SERVICES, trim.service, {ADDRESS: cluster_addresses})
SLICE_KIND = Kind(ENDPOINT_SLICES, trim.endpoint_slice, {SERVICE: _owning_service})
NAMESPACE_KIND = Kind(NAMESPACES, trim.namespace, namespaced=False)
NODE_KIND = Kind(NODES, trim.node, namespaced=False)
NETWORK_POLICY_KIND = Kind(NETWORK_POLICIES, trim.policy)


class Spread:
    """One kind's informers over the namespaces read (None: one cluster-wide informer)."""

    def __init__(self, api: ClusterApi, kind: Kind, namespaces: tuple[str, ...] | None) -> None:
        self.kind = kind
        scopes = namespaces if namespaces and kind.namespaced else (None,)
        self.informers = {
            ns: Informer(api, kind.resource, ns, transform=self._kept, indexes=kind.indexes)
            for ns in scopes
        }

    def _kept(self, obj: Object) -> Object:
        """What the cache holds of an object: trimmed, its strings shared."""
        return trim.interned(self.kind.trim(obj))  # type: ignore[no-any-return]

    def sync(self) -> None:
        for informer in self.informers.values():
            informer.sync()

    @property
    def listed(self) -> bool:
        """Whether every informer has listed (a first list refused leaves it empty)."""
        return all(informer.listed for informer in self.informers.values())

    def covers(self, namespace: str | None) -> bool:
        return None in self.informers or namespace in self.informers

    def objects(self) -> list[Object]:
        return [obj for informer in self.informers.values() for obj in informer.objects()]

    def get(self, namespace: str | None, name: str) -> Object | None:
        informer = self.informers.get(None) or self.informers.get(namespace)
        return informer.get(namespace, name) if informer else None

    def by(self, index: str, value: Hashable) -> list[Object]:
        return [obj for informer in self.informers.values() for obj in informer.by(index, value)]


class AnalysisCache:
    def __init__(self, api: ClusterApi, watched: tuple[str, ...]) -> None:
        read = tuple(sorted({*watched, DNS_NAMESPACE})) if watched else None
        self.pods = Spread(api, POD_KIND, read)
        self.services = Spread(api, SERVICE_KIND, read)
        self.slices = Spread(api, SLICE_KIND, read)
        self.namespaces = Spread(api, NAMESPACE_KIND, read)
        self.nodes = Spread(api, NODE_KIND, read)
        self._api, self._read = api, read
        self.policies: dict[Resource, Spread] = {}  # by resource: each policy kind read
        self._removed: list[Resource] = []
        self.policy(NETWORK_POLICY_KIND)

    def policy(self, kind: Kind) -> Spread:
        """The informers of one policy kind, made on first use: the core NetworkPolicies from
        the start, another kind (a cluster-scoped one `namespaced=False`) once it is known to
        be served. A new one is listed on the next `sync`."""
        if kind.resource not in self.policies:
            self.policies[kind.resource] = Spread(self._api, kind, self._read)
        return self.policies[kind.resource]

    def spreads(self) -> list[Spread]:
        kinds = [self.pods, self.services, self.slices, self.namespaces, self.nodes]
        return kinds + list(self.policies.values())

    def informers(self) -> list[Informer]:
        return [i for spread in self.spreads() for i in spread.informers.values()]

    def sync(self) -> dict[Resource, str]:
        """Apply what the watches delivered (listing first where there is nothing to watch
        from); the kinds that could not be read now, with why. A discovered policy kind that
        is no longer served (404: its CRD was removed) has no objects: its caches go."""
        failed: dict[Resource, str] = {}
        for spread in self.spreads():
            try:
                spread.sync()
            except NotFound:
                if spread.kind.resource == NETWORK_POLICIES:
                    failed[NETWORK_POLICIES] = "networkpolicies are not served"
                    continue
                self._removed.append(spread.kind.resource)
                for informer in self.policies.pop(spread.kind.resource).informers.values():
                    informer.close()
            except ApiError as exc:
                failed[spread.kind.resource] = str(exc) or type(exc).__name__
        return failed

    def removed(self) -> list[Resource]:
        """The policy kinds whose caches the last syncs dropped (not served any more), once."""
        found, self._removed = self._removed, []
        return found
