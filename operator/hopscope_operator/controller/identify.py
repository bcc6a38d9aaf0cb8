"""Which Service or pod a destination names, however the check spells it.

A check may name a Service as `service:`, by its ClusterIP, by any of its DNS names (name.ns,
name.ns.svc, name.ns.svc.<domain>, with a trailing dot, a bare name through the source's search
list) or in a URI; a pod as `pod:`, by its IP, by its `a-b-c-d.ns.pod.<domain>` name or, behind a
headless Service, as `hostname.subdomain.ns.svc.<domain>`. `identify` fills the destination's
`service` / `pod` from whichever spelling it has, so the analysis judges the same Service,
endpoints and pods, and gives the same verdict, for each.

Pure over `NameView` (a Service by name; pods and Services by address, pods by hostname: the
analysis caches' indexes, so no destination scans every pod). The names are
tried in the order a pod's resolver tries them (ClusterFirst's resolv.conf: search
`<ns>.svc.<domain> svc.<domain> <domain>`, ndots:5; a trailing dot is absolute); the first
that names an object here wins. A name naming nothing here stays a plain name.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Iterable, Mapping, Sequence
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

    def services_at(self, address: str) -> list[Manifest]:
        """The Services with this ClusterIP (`cluster_addresses`), in (namespace, name) order."""
        ...

    def pods_at(self, address: str) -> list[Manifest]:
        """The pods with this IP (`pod_addresses`), in (namespace, name) order."""
        ...

    def pods_by_hostname(self, namespace: str, subdomain: str, hostname: str) -> list[Manifest]:
        """The pods of `namespace` whose spec names this subdomain and hostname."""
        ...


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


def behind_service(
    check: ConnectivityCheck,
    source: ResolvedSource,
    destination: ResolvedDestination,
    names: NameView,
    view: ClusterView,
) -> ResolvedDestination:
    """A destination that spells a Service otherwise than `service:` (its ClusterIP, a DNS
    name, a URI), with the ready backends a `service:` destination probes beside it: a broken
    backend is named however the check names its Service."""
    if check.spec.destination.service or destination.endpoints:
        return destination
    service = identify(check, source, destination, names).service
    if service is None:
        return destination
    return replace(destination, endpoints=service_backends(service, destination, check.spec, view))


def _named(name: ClusterName, view: NameView) -> dict[str, ObjectKey] | None:
    match name:
        case ServiceName(namespace, service):
            return {"service": (namespace, service)} if _service(view, namespace, service) else None
        case PodAddressName(namespace, address):
            pods = [p for p in view.pods_at(address) if _key(p)[0] == namespace]
            return {"pod": _key(pods[0])} if pods else None
        case PodHostName(namespace, service, hostname):
            if _service(view, namespace, service) is None:
                return None
            pods = view.pods_by_hostname(namespace, service, hostname)
            return {"pod": _key(pods[0])} if pods else None
    return None


def _at_address(address: str, view: NameView) -> dict[str, ObjectKey] | None:
    """A Service whose ClusterIP this is, else the pod-network pod at this address."""
    services = view.services_at(address)
    if services:
        return {"service": _key(services[0])}
    pods = [p for p in view.pods_at(address) if not (p.get("spec") or {}).get("hostNetwork")]
    return {"pod": _key(pods[0])} if pods else None


def _service(view: NameView, namespace: str, name: str) -> Manifest | None:
    try:
        return view.service(namespace, name)
    except NamespaceNotWatched:
        return None  # not ours to read: judged as a plain name


def pod_addresses(pod: Mapping[str, Any]) -> set[str]:
    """A pod's IPs, normalized (the address index of the analysis caches)."""
    status = pod.get("status") or {}
    ips: Iterable[str] = [e.get("ip", "") for e in status.get("podIPs") or []] or [
        status.get("podIP") or ""
    ]
    return {_normal(ip) for ip in ips if ip}


def cluster_addresses(service: Mapping[str, Any]) -> set[str]:
    """A Service's ClusterIPs, normalized."""
    spec = service.get("spec") or {}
    ips = spec.get("clusterIPs") or [spec.get("clusterIP")]
    return {_normal(ip) for ip in ips if ip and ip != "None"}


def _normal(address: str) -> str:
    try:
        return str(ipaddress.ip_address(address))
    except ValueError:
        return address


def _key(obj: Mapping[str, Any]) -> ObjectKey:
    meta = obj.get("metadata") or {}
    return str(meta.get("namespace", "default")), str(meta.get("name", ""))
