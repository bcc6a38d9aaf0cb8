"""From a ConnectivityCheck's spec to what the probe needs: where to start and what to aim at.

Pure: it reads the cluster through `ClusterView`, a read-only snapshot of plain Kubernetes JSON
objects, so the same code runs against the API, an informer cache or a test's dicts.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import replace
from typing import Any, Protocol
from urllib.parse import urlsplit

from hopscope_operator.api import ConnectivityCheck, ConnectivityCheckSpec, ObjectRef
from hopscope_operator.redact import without_userinfo
from hopscope_operator.resolved import (
    L4,
    ObjectKey,
    ResolvedDestination,
    ResolvedSource,
    SourceKind,
    is_ready,
)
from hopscope_policy.model import parse_selector
from hopscope_probe.models import (
    MAX_ENDPOINTS,
    EndpointTarget,
    HttpOptions,
    IPVersion,
    ProbeRequest,
)
from hopscope_probe.models import Protocol as WireProtocol
from hopscope_probe.target import DEFAULT_PORTS

Manifest = dict[str, Any]

URI_PORTS = {"http": DEFAULT_PORTS[WireProtocol.HTTP], "https": DEFAULT_PORTS[WireProtocol.HTTPS]}
MIRROR_ANNOTATION = "kubernetes.io/config.mirror"


class ClusterView(Protocol):
    """Read-only access to the objects resolution needs; None / [] when absent."""

    def pod(self, namespace: str, name: str) -> Manifest | None: ...

    def pods(self, namespace: str, selector: Mapping[str, Any]) -> list[Manifest]:
        """Pods matching a metav1.LabelSelector (`{"matchLabels": …, "matchExpressions": …}`)."""
        ...

    def node(self, name: str) -> Manifest | None: ...

    def service(self, namespace: str, name: str) -> Manifest | None: ...

    def endpoint_slices(self, namespace: str, service: str) -> list[Manifest]:
        """EndpointSlices labelled `kubernetes.io/service-name: <service>`."""
        ...

    def workload(self, kind: str, namespace: str, name: str) -> Manifest | None:
        """A Deployment, StatefulSet or DaemonSet."""
        ...


class ResolveError(Exception):
    """The spec names something the cluster does not have (yet); retried with backoff."""

    @property
    def reason(self) -> str:
        return type(self).__name__  # the condition reason: SourceNotFound / DestinationNotFound


class SourceNotFound(ResolveError):
    pass


class DestinationNotFound(ResolveError):
    pass


class NamespaceNotWatched(ResolveError):
    """A namespaced install was asked to read a namespace it neither watches nor may read."""

    def __init__(self, namespace: str, watched: Iterable[str]) -> None:
        super().__init__(
            f"namespace {namespace} is not watched by hopscope (it watches {', '.join(watched)}):"
            f" add {namespace} to the chart's watch.namespaces, or leave that list empty to"
            " watch every namespace"
        )


# ---- pods and addresses ---------------------------------------------------------------------


def _name(obj: Manifest) -> str:
    return str(obj["metadata"]["name"])


def _family(address: str) -> IPVersion:
    return IPVersion.IPV6 if ipaddress.ip_address(address).version == 6 else IPVersion.IPV4


def by_preference(addresses: Iterable[str], preferred: IPVersion) -> list[str]:
    """Unique addresses, the preferred family first (the other is a fallback, not an error)."""
    unique = list(dict.fromkeys(addresses))
    return sorted(unique, key=lambda address: _family(address) != preferred)


def pod_ips(pod: Manifest, preferred: IPVersion) -> list[str]:
    status = pod.get("status", {})
    ips = [entry["ip"] for entry in status.get("podIPs", []) if entry.get("ip")]
    if not ips and status.get("podIP"):
        ips = [status["podIP"]]
    return by_preference(ips, preferred)


def node_internal_ips(node: Manifest, preferred: IPVersion) -> list[str]:
    addresses = node.get("status", {}).get("addresses", [])
    return by_preference(
        [entry["address"] for entry in addresses if entry.get("type") == "InternalIP"], preferred
    )


def _first(addresses: list[str]) -> str | None:
    return addresses[0] if addresses else None


# ---- source ---------------------------------------------------------------------------------


def resolve_source(check: ConnectivityCheck, view: ClusterView) -> ResolvedSource:
    source, namespace = check.spec.source, check.namespace
    preferred = check.spec.preferred_ip_version
    if source.pod is not None:
        ns = source.pod.namespace or namespace
        pod = view.pod(ns, source.pod.name)
        if pod is None:
            raise SourceNotFound(f"pod {ns}/{source.pod.name} not found")
        phase = pod.get("status", {}).get("phase", "Pending")
        if phase != "Running":
            raise SourceNotFound(f"pod {ns}/{source.pod.name} is {phase}, not Running")
        if not pod.get("spec", {}).get("nodeName"):
            raise SourceNotFound(f"pod {ns}/{source.pod.name} has no node")
        return pod_source("pod", pod, preferred, f"pod {ns}/{source.pod.name}")
    if source.pod_selector is not None:
        selector = source.pod_selector.model_dump(mode="json", by_alias=True, exclude_defaults=True)
        shown = parse_selector(selector, "spec.source.podSelector")
        ready = sorted((p for p in view.pods(namespace, selector) if is_ready(p)), key=_name)
        if not ready:
            raise SourceNotFound(f"no Ready pod matches {shown} in {namespace}")
        described = (
            f"pod {namespace}/{_name(ready[0])} (first by name of {len(ready)} Ready pods"
            f" matching {shown})"
        )
        return pod_source("pod", ready[0], preferred, described)
    if source.node is not None:
        node = view.node(source.node.name)
        if node is None:
            raise SourceNotFound(f"node {source.node.name} not found")
        return ResolvedSource(
            kind="node",
            node_name=source.node.name,
            description=f"node {source.node.name}",
            address=_first(node_internal_ips(node, preferred)),
        )
    assert source.workload is not None  # the model guarantees exactly one source kind
    return _workload_source(
        source.workload.kind,
        source.workload.namespace or namespace,
        source.workload.name,
        preferred,
        view,
    )


def _workload_source(
    kind: str, ns: str, name: str, preferred: IPVersion, view: ClusterView
) -> ResolvedSource:
    workload = view.workload(kind, ns, name)
    if workload is None:
        raise SourceNotFound(f"{kind} {ns}/{name} not found")
    selector = workload.get("spec", {}).get("selector") or {}
    shown = parse_selector(selector, f"{kind} {ns}/{name} spec.selector")
    if shown.empty:
        # An empty selector would match every pod in the namespace: never guess.
        raise SourceNotFound(f"{kind} {ns}/{name} has no pod selector")
    ready = sorted((p for p in view.pods(ns, selector) if is_ready(p)), key=_name)
    if not ready:
        raise SourceNotFound(f"no Ready pod of {kind} {ns}/{name} ({shown})")
    described = f"pod {ns}/{_name(ready[0])} of {kind} {ns}/{name}"
    return pod_source("workload", ready[0], preferred, described)


def pod_source(
    kind: SourceKind, pod: Manifest, preferred: IPVersion, description: str
) -> ResolvedSource:
    spec = pod.get("spec", {})
    return ResolvedSource(
        kind=kind,
        node_name=spec["nodeName"],
        description=description,
        pod_namespace=pod["metadata"]["namespace"],
        pod_name=_name(pod),
        pod_uid=_node_uid(pod),
        address=_first(pod_ips(pod, preferred)),
        host_network=bool(spec.get("hostNetwork")),
    )


def _node_uid(pod: Manifest) -> str:
    """The UID the kubelet runs the pod under: a static pod's API object (its mirror) has a
    UID of its own, and names the kubelet's in an annotation."""
    annotations = pod["metadata"].get("annotations") or {}
    return str(annotations.get(MIRROR_ANNOTATION) or pod["metadata"]["uid"])


# ---- destination ----------------------------------------------------------------------------


def resolve_destination(check: ConnectivityCheck, view: ClusterView) -> ResolvedDestination:
    spec, namespace = check.spec, check.namespace
    target, preferred = spec.destination, spec.preferred_ip_version
    if target.pod is not None:
        return _pod_destination(target.pod, namespace, target.port, preferred, view)
    if target.service is not None:
        named = (target.service.namespace or namespace, target.service.name)
        return replace(_service_destination(target.service, namespace, spec, view), service=named)
    if target.node is not None:
        node = view.node(target.node.name)
        if node is None:
            raise DestinationNotFound(f"node {target.node.name} not found")
        addresses = node_internal_ips(node, preferred)
        if not addresses:
            raise DestinationNotFound(f"node {target.node.name} has no InternalIP")
        return ResolvedDestination(addresses[0], target.port, f"node {target.node.name}", addresses)
    if target.uri is not None:
        return _uri_destination(target.uri)
    host = target.fqdn or target.ip
    assert host is not None  # the model guarantees exactly one destination kind
    kind = "fqdn" if target.fqdn else "ip"
    return ResolvedDestination(host, target.port, f"{kind} {host}", [host] if target.ip else [])


def _pod_destination(
    ref: ObjectRef, namespace: str, port: int | None, preferred: IPVersion, view: ClusterView
) -> ResolvedDestination:
    ns = ref.namespace or namespace
    pod = view.pod(ns, ref.name)
    if pod is None:
        raise DestinationNotFound(f"pod {ns}/{ref.name} not found")
    addresses = pod_ips(pod, preferred)
    if not addresses:
        phase = pod.get("status", {}).get("phase", "Pending")
        raise DestinationNotFound(f"pod {ns}/{ref.name} has no IP ({phase})")
    return ResolvedDestination(
        addresses[0], port, f"pod {ns}/{ref.name}", addresses, pod=(ns, ref.name)
    )


def _uri_destination(uri: str) -> ResolvedDestination:
    parts = urlsplit(uri)  # the model has checked it parses, with a host and a valid port
    assert parts.hostname is not None
    port = parts.port or URI_PORTS[parts.scheme]
    shown = without_userinfo(uri)  # never in the probe pod's spec: the probe does not use it
    return ResolvedDestination(parts.hostname, port, f"uri {shown}", uri=shown)


def _service_destination(
    ref: ObjectRef, namespace: str, spec: ConnectivityCheckSpec, view: ClusterView
) -> ResolvedDestination:
    ns = ref.namespace or namespace
    described = f"service {ns}/{ref.name}"
    service = view.service(ns, ref.name)
    if service is None:
        raise DestinationNotFound(f"{described} not found")
    svc = service.get("spec", {})
    requested = spec.destination.port
    if svc.get("type") == "ExternalName":
        # No endpoints and no ClusterIP: the name is the destination, the probe resolves it.
        external = svc["externalName"]
        return ResolvedDestination(external, requested, f"{described} (ExternalName {external})")
    service_port = _service_port(svc, requested, spec.protocol, described)
    slices = view.endpoint_slices(ns, ref.name)
    preferred = spec.preferred_ip_version
    if svc.get("clusterIP") == "None":
        return _headless(ref.name, ns, slices, service_port, requested, preferred, described)
    allocated = svc.get("clusterIPs") or [ip for ip in [svc.get("clusterIP")] if ip]
    if not allocated:
        raise DestinationNotFound(f"{described} has no ClusterIP yet")
    cluster_ips = by_preference(allocated, preferred)
    family = _family(cluster_ips[0])
    ready = ready_addresses(slices, family)
    pod_port = _pod_port(slices, service_port) if service_port else None
    return ResolvedDestination(
        cluster_ips[0],
        requested,
        described,
        cluster_ips,
        ready_endpoints=len(ready),
        endpoints=backend_targets(slices, family, pod_port),
    )


def _service_port(
    svc: Manifest, requested: int | None, protocol: WireProtocol, described: str
) -> Manifest | None:
    """The Service port the check targets; None where the protocol has no port (ICMP)."""
    l4 = L4.get(protocol)
    if requested is None or l4 is None:
        return None
    ports = [port for port in svc.get("ports", []) if port.get("protocol", "TCP") == l4]
    headless = svc.get("clusterIP") == "None"
    for port in ports:
        # Headless: nothing proxies, so the pods' own port (a numeric targetPort) is right too.
        if requested == port["port"] or (headless and requested == port.get("targetPort")):
            return dict(port)
    if headless and not svc.get("ports"):
        return None  # a headless Service may list no ports: the pods' port is the one asked
    every = svc.get("ports", [])
    listed = ", ".join(f"{p['port']}/{p.get('protocol', 'TCP')}" for p in every) or "none"
    message = f"{described} has no {l4} port {requested} (ports: {listed})"
    target_of = [p["port"] for p in ports if p.get("targetPort") == requested]
    if target_of:
        message += (
            f"; {requested} is the targetPort of port {target_of[0]}: the probe targets the"
            " Service port"
        )
    raise DestinationNotFound(message)


def _ready(slices: Iterable[Manifest], family: IPVersion) -> Iterator[tuple[str, Manifest]]:
    """(address, endpoint) of every ready endpoint of one family; ready unset counts as ready
    (API rule)."""
    for endpoint_slice in slices:
        if endpoint_slice.get("addressType") != family.value:
            continue
        for endpoint in endpoint_slice.get("endpoints") or []:
            if endpoint.get("conditions", {}).get("ready") is not False:
                yield from ((address, endpoint) for address in endpoint.get("addresses", []))


def ready_addresses(slices: Iterable[Manifest], family: IPVersion) -> list[str]:
    """Ready endpoint addresses of one family, sorted."""
    return sorted({address for address, _ in _ready(slices, family)}, key=ipaddress.ip_address)


def backend_targets(
    slices: Iterable[Manifest], family: IPVersion, port: int | None
) -> list[EndpointTarget]:
    """The ready endpoints a Service check probes beside its ClusterIP: the first
    MAX_ENDPOINTS by address (the same ones every run, whatever order the slices list), each
    with its pod (targetRef) and node."""
    found: dict[str, EndpointTarget] = {}
    for address, endpoint in _ready(slices, family):
        ref = endpoint.get("targetRef") or {}
        found.setdefault(
            address,
            EndpointTarget(
                address=address,
                port=port,
                pod=ref.get("name") if ref.get("kind") == "Pod" else None,
                node=endpoint.get("nodeName"),
            ),
        )
    ordered = sorted(found, key=ipaddress.ip_address)[:MAX_ENDPOINTS]
    return [found[address] for address in ordered]


def service_backends(
    service: ObjectKey,
    destination: ResolvedDestination,
    spec: ConnectivityCheckSpec,
    view: ClusterView,
) -> list[EndpointTarget]:
    """The backends a check of `service` spelled otherwise (its ClusterIP, a DNS name, a URI)
    probes beside it, as a `service:` destination's; [] where nothing proxies (headless,
    ExternalName) or the port is none of the Service's (the analysis names that)."""
    ns, name = service
    svc = (view.service(ns, name) or {}).get("spec", {})
    allocated = svc.get("clusterIPs") or [ip for ip in [svc.get("clusterIP")] if ip]
    if svc.get("type") == "ExternalName" or allocated in ([], ["None"]):
        return []
    try:
        service_port = _service_port(svc, destination.port, spec.protocol, "")
    except DestinationNotFound:
        return []
    slices = view.endpoint_slices(ns, name)
    spelled = destination.host  # a ClusterIP of the other family, when the check names one
    ip = spelled if spelled in allocated else by_preference(allocated, spec.preferred_ip_version)[0]
    pod_port = _pod_port(slices, service_port) if service_port else None
    return backend_targets(slices, _family(ip), pod_port)


def _headless(
    name: str,
    ns: str,
    slices: list[Manifest],
    service_port: Manifest | None,
    requested: int | None,
    preferred: IPVersion,
    described: str,
) -> ResolvedDestination:
    """No ClusterIP and no proxy: the probe goes to a pod, on the port the pods listen on."""
    other = IPVersion.IPV6 if preferred == IPVersion.IPV4 else IPVersion.IPV4
    ready = ready_addresses(slices, preferred) or ready_addresses(slices, other)
    port = _pod_port(slices, service_port) if service_port else requested
    if not ready:
        # Nothing to aim at, yet not a resolve error: the probe's DNS lookup of the Service
        # name shows what clients see, and static diagnosis reports the empty Service.
        return ResolvedDestination(f"{name}.{ns}.svc", port, described, ready_endpoints=0)
    return ResolvedDestination(ready[0], port, described, ready, ready_endpoints=len(ready))


def _pod_port(slices: list[Manifest], service_port: Manifest) -> int:
    target = service_port.get("targetPort", service_port["port"])
    if isinstance(target, int):
        return target
    # A named targetPort: the EndpointSlices carry the number under the Service port's name.
    wanted = service_port.get("name", "")
    for endpoint_slice in slices:
        for port in endpoint_slice.get("ports") or []:
            if port.get("name", "") == wanted and port.get("port"):
                return int(port["port"])
    return int(service_port["port"])


# ---- the probe's request --------------------------------------------------------------------


def to_probe_request(
    spec: ConnectivityCheckSpec, destination: ResolvedDestination, ca_pem: str | None = None
) -> ProbeRequest:
    """`ca_pem`: the certificates spec.http.caBundle names, read by the operator (the probe
    never calls the API), so the request carries them instead of the reference."""
    http = spec.http.model_dump(exclude={"ca_bundle"}) if spec.http else {}
    return ProbeRequest(
        host=destination.host,
        port=destination.port,
        protocol=spec.protocol,
        uri=destination.uri,
        preferred_ip_version=spec.preferred_ip_version,
        count=spec.probes.count,
        timeout_seconds=spec.probes.timeout_seconds,
        max_hops=spec.path.max_hops,
        multipath=spec.path.multipath,
        mtu=bool(spec.path.mtu),
        path_mode=spec.path.mode,
        source_port=spec.source_port,
        thresholds=spec.thresholds,
        http=HttpOptions.model_validate(http),
        ca_pem=ca_pem,
        endpoints=destination.endpoints,
    )
