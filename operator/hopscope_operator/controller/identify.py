"""Which Service or pod a destination names, however the check spells it.

A check may name a Service as `service:`, by its ClusterIP, by any of its DNS names (name.ns,
name.ns.svc, name.ns.svc.<domain>, with a trailing dot, a bare name through the source's search
list) or in a URI; a pod as `pod:`, by its IP, by its `a-b-c-d.ns.pod.<domain>` name or, behind a
headless Service, as `hostname.subdomain.ns.svc.<domain>`. `identify` fills the destination's
`service` / `pod` from whichever spelling it has, so the analysis judges the same Service,
endpoints and pods, and gives the same verdict, for each.

Pure over `NameView` (resolution's reads plus the listings of pods and Services). The names are
tried in the order a pod's resolver tries them (ClusterFirst's resolv.conf: search
`<ns>.svc.<domain> svc.<domain> <domain>`, ndots:5; a trailing dot is absolute); the first
that names an object here wins. A name naming nothing here stays a plain name.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, replace
from typing import Any, Protocol
from urllib.parse import urlsplit

from hopscope_operator.api import ConnectivityCheck
from hopscope_operator.controller.resolve import ClusterView, NamespaceNotWatched, service_backends
from hopscope_operator.names import CLUSTER_DOMAIN
from hopscope_operator.resolved import ObjectKey, ResolvedDestination, ResolvedSource
from hopscope_probe.target import is_ip

Manifest = dict[str, Any]
NDOTS = 5  # Kubernetes' resolv.conf option: fewer dots than this tries the search list first


class NameView(Protocol):
    def service(self, namespace: str, name: str) -> Manifest | None: ...

    def all_pods(self) -> list[Manifest]: ...

    def all_services(self) -> list[Manifest]: ...


@dataclass(frozen=True)
class ServiceName:
    namespace: str
    name: str


@dataclass(frozen=True)
class PodAddressName:
    """`a-b-c-d.ns.pod.<domain>`: the pod of that address in that namespace."""

    namespace: str
    address: str


@dataclass(frozen=True)
class PodHostName:
    """`hostname.subdomain.ns.svc.<domain>`: a pod behind the headless Service `subdomain`."""

    namespace: str
    service: str
    hostname: str


ClusterName = ServiceName | PodAddressName | PodHostName


def candidates(host: str, search_namespace: str | None, domain: str = CLUSTER_DOMAIN) -> list[str]:
    """The absolute names a ClusterFirst resolver tries for `host`, in its order."""
    host = host.lower()
    if host.endswith("."):
        return [host.rstrip(".")]
    search = [f"svc.{domain}", domain]
    if search_namespace:
        search.insert(0, f"{search_namespace}.svc.{domain}")
    listed = [f"{host}.{suffix}" for suffix in search]
    return [*listed, host] if host.count(".") < NDOTS else [host, *listed]


def cluster_name(name: str, domain: str = CLUSTER_DOMAIN) -> ClusterName | None:
    """What an absolute name under the cluster domain names, else None."""
    suffix = f".{domain}"
    if not name.endswith(suffix):
        return None
    labels = name[: -len(suffix)].split(".")
    match labels:
        case [service, namespace, "svc"]:
            return ServiceName(namespace, service)
        case [hostname, service, namespace, "svc"]:
            return PodHostName(namespace, service, hostname)
        case [dashed, namespace, "pod"]:
            address = _dashed_address(dashed)
            return PodAddressName(namespace, address) if address else None
    return None


def _dashed_address(dashed: str) -> str | None:
    """`10-244-2-7` (or IPv6's `fd00--7`) as the address it spells."""
    for spelled in (dashed.replace("-", "."), dashed.replace("-", ":")):
        try:
            return str(ipaddress.ip_address(spelled))
        except ValueError:
            continue
    return None


def identify(
    check: ConnectivityCheck,
    source: ResolvedSource,
    destination: ResolvedDestination,
    view: NameView,
    domain: str = CLUSTER_DOMAIN,
) -> ResolvedDestination:
    """The destination with the Service or pod it names filled in (unchanged when it already
    names one, or names nothing in the cluster)."""
    if destination.service or destination.pod:
        return destination
    dest = check.spec.destination
    host = urlsplit(dest.uri).hostname if dest.uri else dest.fqdn
    if host and not is_ip(host):
        for name in candidates(host, source.pod_namespace, domain):
            found = cluster_name(name, domain)
            named = _named(found, view) if found else None
            if named is not None:
                return replace(destination, **named)
    addresses = destination.addresses or ([destination.host] if is_ip(destination.host) else [])
    for address in addresses:
        named = _at_address(_normal(address), view)
        if named is not None:
            return replace(destination, **named)
    return destination


def judged(
    check: ConnectivityCheck,
    source: ResolvedSource,
    destination: ResolvedDestination,
    probed: Sequence[str],
    view: NameView,
) -> ResolvedDestination:
    """The destination static analysis judges: a name only the probe resolved takes the
    addresses the run reached (`probed`), so policies' ipBlocks can be judged, then what it
    names is identified."""
    if not destination.addresses and probed:
        destination = replace(destination, addresses=list(probed))
    return identify(check, source, destination, view)


class BackendView(NameView, ClusterView, Protocol):
    """Identifying a destination, and reading its Service's EndpointSlices."""


def behind_service(
    check: ConnectivityCheck,
    source: ResolvedSource,
    destination: ResolvedDestination,
    view: BackendView,
) -> ResolvedDestination:
    """A destination that spells a Service otherwise than `service:` (its ClusterIP, a DNS
    name, a URI), with the ready backends a `service:` destination probes beside it: a broken
    backend is named however the check names its Service."""
    if check.spec.destination.service or destination.endpoints:
        return destination
    service = identify(check, source, destination, _ServicesOnly(view)).service
    if service is None:
        return destination
    return replace(destination, endpoints=service_backends(service, destination, check.spec, view))


@dataclass(frozen=True)
class _ServicesOnly:
    """A view without pods: planning looks for a Service only, and identify finds a pod only
    where no Service matched, so a cluster-wide pod listing would buy it nothing."""

    view: NameView

    def service(self, namespace: str, name: str) -> Manifest | None:
        return self.view.service(namespace, name)

    def all_services(self) -> list[Manifest]:
        return self.view.all_services()

    def all_pods(self) -> list[Manifest]:
        return []


def _named(name: ClusterName, view: NameView) -> dict[str, ObjectKey] | None:
    match name:
        case ServiceName(namespace, service):
            return {"service": (namespace, service)} if _service(view, namespace, service) else None
        case PodAddressName(namespace, address):
            pods = [p for p in _pods_at(view, address) if _key(p)[0] == namespace]
            return {"pod": _key(pods[0])} if pods else None
        case PodHostName(namespace, service, hostname):
            if _service(view, namespace, service) is None:
                return None
            for pod in view.all_pods():
                spec = pod.get("spec") or {}
                if (
                    _key(pod)[0] == namespace
                    and spec.get("hostname") == hostname
                    and spec.get("subdomain") == service
                ):
                    return {"pod": _key(pod)}
    return None


def _at_address(address: str, view: NameView) -> dict[str, ObjectKey] | None:
    """A Service whose ClusterIP this is, else the pod-network pod at this address."""
    services = _SERVICES.at(view.all_services(), address)
    if services:
        return {"service": _key(services[0])}
    pods = [p for p in _pods_at(view, address) if not (p.get("spec") or {}).get("hostNetwork")]
    return {"pod": _key(pods[0])} if pods else None


def _service(view: NameView, namespace: str, name: str) -> Manifest | None:
    try:
        return view.service(namespace, name)
    except NamespaceNotWatched:
        return None  # not ours to read: judged as a plain name


def _pods_at(view: NameView, address: str) -> list[Manifest]:
    return sorted(_PODS.at(view.all_pods(), address), key=_key)


def _pod_ips(pod: Mapping[str, Any]) -> set[str]:
    status = pod.get("status") or {}
    ips: Iterable[str] = [e.get("ip", "") for e in status.get("podIPs") or []] or [
        status.get("podIP") or ""
    ]
    return {_normal(ip) for ip in ips if ip}


def _cluster_ips(service: Mapping[str, Any]) -> set[str]:
    spec = service.get("spec") or {}
    ips = spec.get("clusterIPs") or [spec.get("clusterIP")]
    return {_normal(ip) for ip in ips if ip and ip != "None"}


class _ByAddress:
    """The objects of one listing by address, indexed again only for a new listing: a tick
    identifies every destination against the same listings (a view's lists live for the tick
    and are never changed), where a scan of the listing per destination cost checks x pods."""

    def __init__(self, addresses: Callable[[Mapping[str, Any]], set[str]]) -> None:
        self._addresses = addresses
        self._listing: list[Manifest] | None = None  # the last listing, kept until the next
        self._at: dict[str, list[Manifest]] = {}

    def at(self, listing: list[Manifest], address: str) -> list[Manifest]:
        """The objects at `address`, in listing order."""
        if listing is not self._listing:
            at: dict[str, list[Manifest]] = {}
            for obj in listing:
                for found in self._addresses(obj):
                    at.setdefault(found, []).append(obj)
            self._listing, self._at = listing, at
        return self._at.get(address, [])


_PODS = _ByAddress(_pod_ips)
_SERVICES = _ByAddress(_cluster_ips)


def _normal(address: str) -> str:
    try:
        return str(ipaddress.ip_address(address))
    except ValueError:
        return address


def _key(obj: Mapping[str, Any]) -> ObjectKey:
    meta = obj.get("metadata") or {}
    return str(meta.get("namespace", "default")), str(meta.get("name", ""))
