"""Static diagnosis: what the cluster's configuration says about one check's connection.

Pure: `analyse` reads a `Snapshot` of plain Kubernetes JSON (what the API server returns) and
names the NetworkPolicy, Service, cluster-DNS, node or pod state that stands in the way, as
`Issue`s shaped like the probe's. `merge` folds these findings into the probe's issue list.

Where each finding is located: source-side ones at hop "source"; destination-side ones at the
probe's destination hop when the caller knows it (`destination_hop`), else at no hop.

Choices (the issue vocabulary has no disk or process type, and pod state has no type of its own):
- node DiskPressure is reported as `Memory` and PIDPressure as `CPU` (the closest resource; the
  condition is in the context); NetworkUnavailable and a NotReady node as `Routing`;
- a destination pod that is not Ready or crash-loops is `PortNotListening` (nothing answers on the
  port), a terminating one `Routing` (its address goes away), an OOM-killed container `Memory`;
- a terminating or crash-looping source pod is `Probe`: the probe runs in its network namespace;
- readiness does not gate a pod's own outbound traffic, so a source that is not Ready is no
  finding; a restart count is a finding from 3 restarts on (one snapshot cannot see growth).
"""

from __future__ import annotations

import ipaddress
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal
from urllib.parse import urlsplit

from hopscope_operator.api import Analysis, AnalysisResult, ConnectivityCheck
from hopscope_operator.names import DNS_NAMESPACE
from hopscope_operator.resolved import L4, ResolvedDestination, ResolvedSource, is_ready
from hopscope_policy import (
    DirectionVerdict,
    FieldError,
    Flow,
    L4Protocol,
    Pod,
    PodRef,
    PolicyIndex,
    PolicyRules,
    Verdict,
    parse_namespace,
    parse_pod,
    parse_policy,
)
from hopscope_probe.models import (
    SOURCE_HOP,
    ContextItem,
    Hop,
    HopType,
    Issue,
    IssueCause,
    IssueType,
    Origin,
    Severity,
)
from hopscope_probe.target import DEFAULT_PORTS

Manifest = dict[str, Any]

DNS_SERVICE = "kube-dns"
DNS_PORT = 53
CRASH_LOOP = "CrashLoopBackOff"
OOM_KILLED = "OOMKilled"
RESTARTS_WORTH_NOTING = 3
POLICY_KEY = "NetworkPolicy"  # the context key naming a policy, as the architecture shows it

# What could not be read -> the part of the analysis it leaves unknown.
POLICIES, NAMESPACES, PODS = "networkpolicies", "namespaces", "pods"
SERVICE, ENDPOINT_SLICES, NODES, DNS = "service", "endpointslices", "nodes", "dns"
UNREADABLE_TYPE = {
    POLICIES: IssueType.NETWORK_POLICY,
    NAMESPACES: IssueType.NETWORK_POLICY,
    PODS: IssueType.NETWORK_POLICY,
    SERVICE: IssueType.SERVICE_ENDPOINTS,
    ENDPOINT_SLICES: IssueType.SERVICE_ENDPOINTS,
    NODES: IssueType.ROUTING,
    DNS: IssueType.DNS_RESOLUTION,
}

# Node condition -> (issue type, severity) when the condition has the bad status.
NODE_PRESSURE = {
    "MemoryPressure": (IssueType.MEMORY, "memory"),
    "DiskPressure": (IssueType.MEMORY, "disk space"),
    "PIDPressure": (IssueType.CPU, "process IDs"),
}


@dataclass(frozen=True)
class Snapshot:
    """The objects one check's analysis reads, as plain Kubernetes JSON.

    `pods` holds every pod the analysis may name: the source, the destination pod, the pods the
    destination Service selects or its EndpointSlices name, the cluster DNS pods and any pod at
    the destination's address. `unreadable` maps a part (POLICIES, PODS, SERVICE, …) to why it
    could not be read; the parts that depend on it are then left out and the result is Unknown.
    """

    pods: Sequence[Manifest] = ()
    namespaces: Sequence[Manifest] = ()
    policies: Sequence[Manifest] = ()
    service: Manifest | None = None  # the destination Service, if the destination is one
    service_slices: Sequence[Manifest] = ()
    nodes: Mapping[str, Manifest] = field(default_factory=dict)
    dns_service: Manifest | None = None  # kube-system/kube-dns; None: it does not exist
    dns_slices: Sequence[Manifest] = ()
    unreadable: Mapping[str, str] = field(default_factory=dict)
    rules: ParsedRules = field(default_factory=lambda: ParsedRules(), compare=False, repr=False)


class ParsedRules:
    """The `PolicyRules` of a snapshot's namespaces and policies, parsed on first use and then
    remembered. A SnapshotReader gives every snapshot of one tick the same instance: a tick
    of 1,000 checks over 1,000 NetworkPolicies parses them once, not once per check (~60 ms
    each, which made a collecting tick take 100 s of CPU)."""

    def __init__(self) -> None:
        self._parsed: PolicyRules | FieldError | ValueError | None = None

    def of(self, snapshot: Snapshot) -> PolicyRules | FieldError | ValueError:
        """The rules, or the error that names the object that could not be read."""
        if self._parsed is None:
            try:
                self._parsed = PolicyRules(
                    [parse_namespace(ns) for ns in snapshot.namespaces],
                    [parse_policy(policy) for policy in snapshot.policies],
                )
            except (FieldError, ValueError) as exc:
                self._parsed = exc
        return self._parsed


# ---- helpers on plain JSON --------------------------------------------------------------------


def _meta(obj: Manifest) -> Mapping[str, Any]:
    return obj.get("metadata") or {}


def _key(obj: Manifest) -> tuple[str, str]:
    meta = _meta(obj)
    return str(meta.get("namespace", "default")), str(meta.get("name", ""))


def _ref(obj: Manifest) -> str:
    return "/".join(_key(obj))


def _selects(selector: Mapping[str, str], pod: Manifest) -> bool:
    labels = _meta(pod).get("labels") or {}
    return all(labels.get(k) == v for k, v in selector.items())


def selected_pods(service: Manifest, pods: Iterable[Manifest]) -> list[Manifest]:
    """The pods a Service's (map) selector picks in its namespace; [] without a selector."""
    selector = (service.get("spec") or {}).get("selector") or {}
    namespace = _key(service)[0]
    if not selector:
        return []
    return sorted((p for p in pods if _key(p)[0] == namespace and _selects(selector, p)), key=_key)


def ready_endpoints(slices: Iterable[Manifest]) -> list[tuple[str, tuple[str, str] | None]]:
    """(address, pod key or None) of every ready endpoint; ready unset counts as ready."""
    found = []
    for endpoint_slice in slices:
        namespace = _key(endpoint_slice)[0]
        for endpoint in endpoint_slice.get("endpoints") or []:
            if (endpoint.get("conditions") or {}).get("ready") is False:
                continue
            target = endpoint.get("targetRef") or {}
            pod = None
            if target.get("kind") == "Pod" and target.get("name"):
                pod = (str(target.get("namespace") or namespace), str(target["name"]))
            found += [(address, pod) for address in endpoint.get("addresses") or []]
    return found


def _condition(obj: Manifest, kind: str) -> Mapping[str, Any] | None:
    for condition in (obj.get("status") or {}).get("conditions") or []:
        if condition.get("type") == kind:
            return condition
    return None


def _ctx(*pairs: tuple[str, object]) -> list[ContextItem]:
    return [ContextItem(key=k, value=str(v)) for k, v in pairs if v is not None and v != ""]


def _is_ip(host: str) -> bool:
    try:
        ipaddress.ip_address(host)
    except ValueError:
        return False
    return True


# ---- the analysis -------------------------------------------------------------------------------


Side = Literal["source", "destination"]


class _Analysis:
    def __init__(
        self,
        check: ConnectivityCheck,
        source: ResolvedSource,
        destination: ResolvedDestination,
        snapshot: Snapshot,
        destination_hop: str | None,
    ) -> None:
        self.check = check
        self.spec = check.spec
        self.namespace = str(check.metadata.get("namespace", "default"))
        self.source = source
        self.destination = destination
        self.snap = snapshot
        self.destination_hop = destination_hop
        self.issues: list[Issue] = []
        self.unknown = bool(snapshot.unreadable)
        self.pods = {_key(p): p for p in snapshot.pods}
        self.l4 = L4.get(self.spec.protocol)
        self.port = destination.port or DEFAULT_PORTS.get(self.spec.protocol)
        self.service_failed = False  # a Service finding already explains missing endpoints

    # -- output --

    def add(
        self,
        type: IssueType,
        severity: Severity,
        side: Side,
        message: str,
        hint: str,
        context: list[ContextItem] | None = None,
        origin: Origin | None = None,
    ) -> None:
        if origin is None:
            origin = Origin.LOCAL if side == "source" else Origin.INBOUND
        hop = SOURCE_HOP if side == "source" else self.destination_hop
        issue = Issue(
            type=type,
            severity=severity,
            origin=origin,
            hop_id=hop,
            message=message,
            hint=hint,
            context=context or [],
        )
        if all((i.type, i.message) != (issue.type, issue.message) for i in self.issues):
            self.issues.append(issue)

    def run(self) -> Analysis:
        for part, why in sorted(self.snap.unreadable.items()):
            self.add(
                UNREADABLE_TYPE.get(part, IssueType.PROBE),
                Severity.WARNING,
                "destination" if part in (SERVICE, ENDPOINT_SLICES) else "source",
                f"static analysis could not read {part}: {why}",
                f"Grant the operator get/list on {part} (its ClusterRole), so the"
                " configuration can be checked; until then that part of the verdict is unknown.",
                _ctx(("unreadable", part)),
            )
        self.service_checks()
        self.dns_checks()
        self.policy_checks()
        self.node_checks()
        self.pod_checks()
        if any(issue.severity == Severity.ERROR for issue in self.issues):
            result = AnalysisResult.BLOCKED
        elif self.unknown:
            result = AnalysisResult.UNKNOWN
        else:
            result = AnalysisResult.ALLOWED
        return Analysis(result=result, issues=self.issues)

    # -- the destination -------------------------------------------------------------------

    @property
    def target_kind(self) -> str:
        dest = self.spec.destination
        for kind in ("pod", "service", "node", "fqdn", "uri", "ip"):
            if getattr(dest, kind) is not None:
                return kind
        return "ip"

    def needs_dns(self) -> bool:
        kind = self.target_kind
        if kind in ("fqdn", "service"):
            return True
        if kind == "uri":
            host = urlsplit(self.spec.destination.uri or "").hostname or ""
            return not _is_ip(host)
        return False

    def queries_cluster_dns(self) -> bool:
        """Whether the source looks the destination up in the cluster DNS. A pod does with
        dnsPolicy ClusterFirst (the default) off the host network (on it, that falls back to
        the node's resolver) or ClusterFirstWithHostNet; Default and None use other resolvers.
        A node source does: its probe pod is ClusterFirstWithHostNet (see controller/plan.py)."""
        if not self.needs_dns():
            return False
        src = self.source
        if src.kind == "node":
            return True
        pod = self.pods.get((src.pod_namespace or "", src.pod_name or "")) or {}
        spec = pod.get("spec") or {}
        policy = spec.get("dnsPolicy") or "ClusterFirst"
        on_host = bool(spec.get("hostNetwork", src.host_network))
        return policy == "ClusterFirstWithHostNet" or (policy == "ClusterFirst" and not on_host)

    def service_ref(self) -> str:
        ref = self.spec.destination.service
        assert ref is not None
        return f"{ref.namespace or self.namespace}/{ref.name}"

    def requested_port(self, svc: Mapping[str, Any]) -> int | None:
        """The Service port the probe asks for: on a ClusterIP its own port (the protocol's
        default when the check names none); on a headless Service only a port the check names,
        else the probe goes to the pods on its own port (resolve's rule)."""
        if svc.get("clusterIP") == "None":
            return self.spec.destination.port
        return self.port

    def service_port(self, svc: Mapping[str, Any]) -> Mapping[str, Any] | None:
        """The Service port the probe's connection goes through, else None."""
        headless = svc.get("clusterIP") == "None"
        requested = self.requested_port(svc)
        for port in svc.get("ports") or []:
            if port.get("protocol", "TCP") != self.l4:
                continue
            if requested == port.get("port") or (headless and requested == port.get("targetPort")):
                return port
        return None

    def pod_port(self, service_port: Mapping[str, Any], pod: Manifest) -> int | None:
        """The port a Service port sends to on this pod (a named targetPort looked up)."""
        target = service_port.get("targetPort", service_port.get("port"))
        if isinstance(target, int):
            return target
        parsed = _parsed(pod)
        protocol = L4Protocol(service_port.get("protocol", "TCP"))
        return parsed.named_port(str(target), protocol) if parsed else None

    def service_checks(self) -> None:
        if self.target_kind != "service" or SERVICE in self.snap.unreadable:
            return
        svc = self.snap.service
        described = f"service {self.service_ref()}"
        if svc is None:
            self.unknown = True
            return
        spec = svc.get("spec") or {}
        if spec.get("type") == "ExternalName":
            external = spec.get("externalName", "")
            self.add(
                IssueType.SERVICE_ENDPOINTS,
                Severity.WARNING,
                "destination",
                f"{described} is an ExternalName for {external}: it has no ClusterIP and no"
                f" endpoints, so the probe connects to {external} itself",
                f"Nothing in the Service to fix: DNS for {external} and the host it names decide"
                " whether this connects.",
                _ctx(("externalName", external)),
            )
            return
        headless = spec.get("clusterIP") == "None"
        extra = _ctx(("headless", "clusterIP None: clients reach the pods directly"))
        if not headless:
            extra = []
        self.port_protocol(spec, described, extra)
        # Pods that could not be read are not missing: the warning for them stands instead.
        selected = [] if PODS in self.snap.unreadable else self.selection(svc, described, extra)
        if (
            ENDPOINT_SLICES not in self.snap.unreadable
            and not self.service_failed
            and not ready_endpoints(self.snap.service_slices)
        ):
            self.service_failed = True
            self.add(
                IssueType.SERVICE_ENDPOINTS,
                Severity.ERROR,
                "destination",
                f"{described} has no ready endpoint in its EndpointSlices",
                "Check kubectl get endpointslices -l kubernetes.io/service-name="
                f"{_key(svc)[1]} -n {_key(svc)[0]}: without a selector the slices are yours"
                " to write; with one, the endpoint controller fills them with Ready pods.",
                extra,
            )
        self.target_port(spec, described, selected)

    def selection(self, svc: Manifest, described: str, extra: list[ContextItem]) -> list[Manifest]:
        """The pods the Service selects, after reporting a selector or readiness problem."""
        spec = svc.get("spec") or {}
        selector = spec.get("selector") or {}
        selected = selected_pods(svc, self.pods.values())
        shown = ",".join(f"{k}={v}" for k, v in sorted(selector.items()))
        context = _ctx(("selector", shown))
        if selector and not selected:
            self.service_failed = True
            self.add(
                IssueType.SERVICE_ENDPOINTS,
                Severity.ERROR,
                "destination",
                f"{described} selects no pod: no pod in {_key(svc)[0]} has labels {shown}",
                "Fix the Service's selector or the pods' labels so they match"
                f" (kubectl get pods -n {_key(svc)[0]} -l {shown}).",
                [*context, *extra],
            )
        elif selected:
            self.readiness(svc, selected, described, context, extra)
        return selected

    def readiness(
        self,
        svc: Manifest,
        selected: list[Manifest],
        described: str,
        selector: list[ContextItem],
        extra: list[ContextItem],
    ) -> None:
        not_ready = [p for p in selected if not _published(svc, p)]
        names = ", ".join(_key(p)[1] + f" ({_why_not_ready(p)})" for p in not_ready[:5])
        if len(not_ready) == len(selected):
            self.service_failed = True
            self.add(
                IssueType.SERVICE_ENDPOINTS,
                Severity.ERROR,
                "destination",
                f"none of the {len(selected)} pods {described} selects is Ready: {names}",
                "Find why the pods are not Ready (kubectl describe pod: readiness probe,"
                " crash loop, pending scheduling); a Service sends traffic to Ready pods only.",
                [*selector, *extra],
            )
        elif not_ready:
            self.add(
                IssueType.SERVICE_ENDPOINTS,
                Severity.WARNING,
                "destination",
                f"{len(not_ready)} of the {len(selected)} pods {described} selects are not"
                f" Ready: {names}",
                "The Service still has Ready pods; find why these are not (kubectl describe"
                " pod) before they are needed.",
                selector,
            )

    def port_protocol(self, spec: Mapping[str, Any], described: str, extra: list) -> None:
        requested = self.requested_port(spec)
        if self.l4 is None or requested is None or self.service_port(spec) is not None:
            return
        others = [
            p
            for p in spec.get("ports") or []
            if p.get("port") == requested and p.get("protocol", "TCP") != self.l4
        ]
        if others:
            theirs = others[0].get("protocol", "TCP")
            self.service_failed = True
            self.add(
                IssueType.SERVICE_ENDPOINTS,
                Severity.ERROR,
                "destination",
                f"{described} exposes port {requested} as {theirs}, but the check uses"
                f" {self.spec.protocol} ({self.l4})",
                f"Use protocol {theirs} in the check, or add a {self.l4} port {requested} to"
                " the Service (a port and protocol pair is its own Service port).",
                _ctx(("port", requested), ("serviceProtocol", theirs), ("checkProtocol", self.l4)),
            )
        elif self.spec.destination.port is None:
            # Resolve refuses a port the check names and the Service lacks, not a default one.
            self.service_failed = True
            self.add(
                IssueType.SERVICE_ENDPOINTS,
                Severity.ERROR,
                "destination",
                f"{described} has no {self.l4} port {requested}, the {self.spec.protocol}"
                " default the probe uses as the check names no port",
                "Name one of the Service's ports in the check's destination.port, or add a"
                f" {self.l4} port {requested} to the Service.",
                _ctx(("port", requested), ("checkProtocol", self.l4)),
            )

    def target_port(
        self, spec: Mapping[str, Any], described: str, selected: list[Manifest]
    ) -> None:
        port = self.service_port(spec)
        if port is None or not selected:
            return
        target = port.get("targetPort", port.get("port"))
        protocol = L4Protocol(port.get("protocol", "TCP"))
        parsed = [(p, _parsed(p)) for p in selected]
        if isinstance(target, str):
            missing = [
                _key(p)[1] for p, pod in parsed if not pod or not pod.named_port(target, protocol)
            ]
            if not missing:
                return
            severity = Severity.ERROR if len(missing) == len(selected) else Severity.WARNING
            if severity == Severity.ERROR:
                self.service_failed = True
            self.add(
                IssueType.SERVICE_ENDPOINTS,
                severity,
                "destination",
                f"{described} port {port.get('port')} targets the named port {target!r}, which"
                f" no {protocol} container port of {len(missing)} of {len(selected)} selected"
                f" pods has ({', '.join(missing[:5])})",
                f"Name the container port {target!r} ({protocol}) in the pod template, or set"
                " the Service's targetPort to the number the container listens on.",
                _ctx(("targetPort", target), ("protocol", protocol)),
            )
            return
        declared = [pod for _, pod in parsed if pod and pod.ports]
        if not declared:
            return  # undeclared ports still work: nothing to compare with
        if any(
            cp.number == target and cp.protocol == protocol for pod in declared for cp in pod.ports
        ):
            return
        other = [cp.protocol for pod in declared for cp in pod.ports if cp.number == target]
        detail = (
            f"is declared as {other[0]}, not {protocol}"
            if other
            else "is not among the selected pods' declared container ports ("
            + ", ".join(sorted({f"{cp.number}/{cp.protocol}" for p in declared for cp in p.ports}))
            + ")"
        )
        self.add(
            IssueType.SERVICE_ENDPOINTS,
            Severity.WARNING,
            "destination",
            f"{described} port {port.get('port')} targets {target}/{protocol}, which {detail}",
            "Check the Service's targetPort against the port the container listens on;"
            " a wrong targetPort makes connections to the Service fail although the pods run.",
            _ctx(("targetPort", target), ("protocol", protocol)),
        )

    # -- cluster DNS -------------------------------------------------------------------------

    def dns_checks(self) -> None:
        if not self.queries_cluster_dns() or DNS in self.snap.unreadable:
            return
        svc = self.snap.dns_service
        name = f"{DNS_NAMESPACE}/{DNS_SERVICE}"
        if svc is None:
            # Some distributions name the cluster DNS Service otherwise: not proof of a fault.
            self.unknown = True
            self.add(
                IssueType.DNS_RESOLUTION,
                Severity.WARNING,
                "source",
                f"the cluster DNS Service {name} does not exist: the cluster DNS is not checked",
                "If the cluster DNS has a Service of another name, nothing to fix; else restore"
                " the cluster DNS add-on (CoreDNS) and its kube-dns Service.",
                _ctx(("service", name)),
            )
            return
        if not ready_endpoints(self.snap.dns_slices):
            self.add(
                IssueType.DNS_RESOLUTION,
                Severity.ERROR,
                "source",
                f"the cluster DNS Service {name} has no ready endpoint: names cannot be resolved",
                f"Check the DNS pods: kubectl get pods -n {DNS_NAMESPACE} -l k8s-app=kube-dns"
                " (crash loop, pending, readiness probe).",
                _ctx(("service", name)),
            )

    # -- NetworkPolicy ----------------------------------------------------------------------

    def policy_checks(self) -> None:
        if any(part in self.snap.unreadable for part in (POLICIES, NAMESPACES, PODS)):
            return
        rules = self.snap.rules.of(self.snap)
        if isinstance(rules, Exception):
            self.unknown = True
            self.add(
                IssueType.NETWORK_POLICY,
                Severity.WARNING,
                "source",
                f"static analysis could not read the NetworkPolicies: {rules}",
                "Fix the object named; the policy verdict stays unknown until then.",
            )
            return
        # self.pods is keyed by namespace and name: no pod is given twice.
        pods = [pod for pod in map(_parsed, self.pods.values()) if pod is not None]
        index = PolicyIndex(pods, rules)
        origin = self.flow_source()
        if origin is None:
            self.unknown = self.unknown or self.source.kind != "node"
            return
        if self.l4 is not None and self.port is not None:
            proto = L4Protocol(self.l4)
            self.report(index, origin, self.flow_targets(proto), proto, dns=False)
        if self.queries_cluster_dns() and self.snap.dns_service is not None:
            for proto in (L4Protocol.UDP, L4Protocol.TCP):
                self.report(index, origin, self.dns_targets(proto), proto, dns=True)

    def flow_source(self) -> PodRef | ipaddress.IPv4Address | ipaddress.IPv6Address | None:
        src = self.source
        if src.pod_namespace and src.pod_name:
            if (src.pod_namespace, src.pod_name) in self.pods:
                return PodRef(src.pod_namespace, src.pod_name)
            return None
        return ipaddress.ip_address(src.address) if src.address else None

    def flow_targets(self, proto: L4Protocol) -> list[tuple[PodRef | Any, int]]:
        kind = self.target_kind
        port = self.port
        assert port is not None
        if kind == "pod":
            ref = self.spec.destination.pod
            assert ref is not None
            key = (ref.namespace or self.namespace, ref.name)
            return [(PodRef(*key), port)] if key in self.pods else []
        if kind == "service":
            return self.service_targets(port)
        addresses = self.destination.addresses or (
            [self.destination.host] if _is_ip(self.destination.host) else []
        )
        return [(ipaddress.ip_address(addresses[0]), port)] if addresses else []

    def service_targets(self, port: int) -> list[tuple[PodRef | Any, int]]:
        svc = self.snap.service
        spec = (svc or {}).get("spec") or {}
        if svc is None or spec.get("type") == "ExternalName":
            return []
        pods = self.endpoint_pods(svc, self.snap.service_slices)
        service_port = self.service_port(spec)
        if service_port is None:
            if spec.get("clusterIP") != "None":
                return []  # nothing behind the ClusterIP on this port: port_protocol says so
            # Nothing proxies a headless Service: the probe connects to the pods on its port.
            return [(PodRef(*_key(pod)), port) for pod in pods]
        numbers = [(pod, self.pod_port(service_port, pod)) for pod in pods]
        return [(PodRef(*_key(pod)), number) for pod, number in numbers if number is not None]

    def endpoint_pods(self, svc: Manifest, slices: Sequence[Manifest]) -> list[Manifest]:
        """The pods behind a Service: its ready endpoints, else the selected pods it publishes."""
        keys = sorted({pod for _, pod in ready_endpoints(slices) if pod is not None})
        pods = [self.pods[key] for key in keys if key in self.pods]
        return pods or [p for p in selected_pods(svc, self.pods.values()) if _published(svc, p)]

    def dns_targets(self, proto: L4Protocol) -> list[tuple[PodRef | Any, int]]:
        svc = self.snap.dns_service
        assert svc is not None
        port = next(
            (
                p
                for p in (svc.get("spec") or {}).get("ports") or []
                if p.get("port") == DNS_PORT and p.get("protocol", "TCP") == proto
            ),
            None,
        )
        if port is None:
            return []
        targets = []
        for pod in self.endpoint_pods(svc, self.snap.dns_slices):
            number = self.pod_port(port, pod)
            if number is not None:
                targets.append((PodRef(*_key(pod)), number))
        return targets

    def report(
        self,
        index: PolicyIndex,
        origin: Any,
        targets: list[tuple[Any, int]],
        proto: L4Protocol,
        *,
        dns: bool,
    ) -> None:
        verdicts = [index.evaluate(Flow(origin, target, port, proto)) for target, port in targets]
        for direction in ("egress", "ingress"):
            denied = [v for v in verdicts if not getattr(v, direction).allowed]
            if denied:
                self.denial(direction, denied, len(verdicts), proto, dns=dns)

    def denial(
        self,
        direction: Literal["egress", "ingress"],
        denied: list[Verdict],
        total: int,
        proto: L4Protocol,
        *,
        dns: bool,
    ) -> None:
        first = denied[0]
        side: DirectionVerdict = getattr(first, direction)
        policies = sorted({name for v in denied for name in getattr(v, direction).policies})
        flow = first.flow
        what = f"DNS queries ({proto}/{flow.port}) from" if dns else "traffic from"
        dest = first.destination
        if total > 1:
            share = "all" if len(denied) == total else f"{len(denied)} of"
            dest = f"{share} {total} {'DNS pods' if dns else 'endpoints'}, e.g. {dest}"
        if direction == "egress":
            message = f"NetworkPolicy denies egress of {what} {first.source} to {dest}"
            peer_hint = f"{flow.destination} on {proto}/{flow.port}"
            hint = (
                f"Add an egress rule to {policies[0]} (or another policy selecting"
                f" {first.source}) that allows {peer_hint}"
            )
            origin, where = Origin.OUTBOUND, "source"
        else:
            message = f"NetworkPolicy denies ingress of {what} {first.source} into {dest}"
            hint = (
                f"Add an ingress rule to {policies[0]} (or another policy selecting"
                f" {first.destination}) that allows {first.source} on {proto}/{flow.port}"
            )
            origin, where = Origin.INBOUND, "destination"
        if dns:
            hint += "; pods need DNS egress to kube-dns on UDP and TCP 53"
        message += f": {side.reason}"
        if side.nearest_miss is not None:
            missed = ", ".join(side.nearest_miss.missed)
            hint += f" (closest rule: {side.nearest_miss.rule}, missing its {missed})"
        # UDP DNS blocked breaks every lookup; TCP only the large answers. Some endpoints only:
        # the load balancer's share of connections fails.
        partial = len(denied) < total or (dns and proto == L4Protocol.TCP)
        context = [ContextItem(key=POLICY_KEY, value=name) for name in policies]
        context += _ctx(
            ("direction", side.direction.value),
            ("flow", str(flow)),
            ("nearestMiss", side.nearest_miss),
        )
        self.add(
            IssueType.NETWORK_POLICY,
            Severity.WARNING if partial else Severity.ERROR,
            "source" if where == "source" else "destination",
            message,
            hint + ".",
            context,
            origin=origin,
        )

    # -- nodes and pods ------------------------------------------------------------------------

    def destination_nodes(self) -> list[str]:
        kind = self.target_kind
        if kind == "node":
            assert self.spec.destination.node is not None
            return [self.spec.destination.node.name]
        if kind == "pod":
            ref = self.spec.destination.pod
            assert ref is not None
            pod = self.pods.get((ref.namespace or self.namespace, ref.name))
            node = (pod or {}).get("spec", {}).get("nodeName")
            return [node] if node else []
        if kind == "service" and self.snap.service is not None:
            pods = self.endpoint_pods(self.snap.service, self.snap.service_slices)
            return sorted(
                {p["spec"]["nodeName"] for p in pods if p.get("spec", {}).get("nodeName")}
            )
        return []

    def node_checks(self) -> None:
        if NODES in self.snap.unreadable:
            return
        seen = set()
        ends: list[tuple[str, Side]] = [(self.source.node_name, "source")]
        ends += [(name, "destination") for name in self.destination_nodes()]
        for name, side in ends:
            if (name, side) in seen or not name:
                continue
            seen.add((name, side))
            node = self.snap.nodes.get(name)
            if node is None:
                continue  # a deleted node: the pods on it are reported instead
            self.node_state(name, node, side)

    def node_state(self, name: str, node: Manifest, side: Side) -> None:
        role = "source" if side == "source" else "destination"
        # Behind a Service a sick node is one of several endpoints: a warning, not a block.
        bad = (
            Severity.WARNING
            if self.target_kind == "service" and side != "source"
            else Severity.ERROR
        )
        for kind, (issue_type, what) in NODE_PRESSURE.items():
            condition = _condition(node, kind)
            if condition and condition.get("status") == "True":
                self.add(
                    issue_type,
                    Severity.WARNING,
                    side,
                    f"{role} node {name} reports {kind}: it is short of {what}",
                    f"Free {what} on node {name} (kubectl describe node {name}); under pressure"
                    " the kubelet evicts pods and processing slows.",
                    _ctx(
                        ("node", name), ("condition", kind), ("message", condition.get("message"))
                    ),
                )
        unavailable = _condition(node, "NetworkUnavailable")
        if unavailable and unavailable.get("status") == "True":
            self.add(
                IssueType.ROUTING,
                bad,
                side,
                f"{role} node {name} reports NetworkUnavailable: its pod network is not set up",
                f"Check the CNI plugin's pod on node {name} and its routes"
                f" (kubectl describe node {name}).",
                _ctx(
                    ("node", name),
                    ("condition", "NetworkUnavailable"),
                    ("reason", unavailable.get("reason")),
                ),
            )
        ready = _condition(node, "Ready")
        if ready and ready.get("status") in ("False", "Unknown"):
            state = "NotReady" if ready["status"] == "False" else "not reporting (Ready Unknown)"
            said = ready.get("message") or ready.get("reason")
            self.add(
                IssueType.ROUTING,
                bad,
                side,
                f"{role} node {name} is {state}" + (f": {said}" if said else ""),
                f"Check the kubelet and the network of node {name} (kubectl describe node"
                f" {name}); pods on a NotReady node leave their Services' endpoints.",
                _ctx(
                    ("node", name),
                    ("condition", "Ready"),
                    ("status", ready["status"]),
                    ("reason", ready.get("reason")),
                ),
            )

    def pod_checks(self) -> None:
        if PODS in self.snap.unreadable:
            return
        src = self.source
        if src.pod_namespace and src.pod_name:
            pod = self.pods.get((src.pod_namespace, src.pod_name))
            if pod is not None:
                self.pod_state(pod, "source")
        if self.target_kind == "pod":
            ref = self.spec.destination.pod
            assert ref is not None
            pod = self.pods.get((ref.namespace or self.namespace, ref.name))
            if pod is not None:
                self.pod_state(pod, "destination")

    def pod_state(self, pod: Manifest, side: Side) -> None:
        ref = _ref(pod)
        role = f"{side} pod {ref}"
        statuses = (pod.get("status") or {}).get("containerStatuses") or []
        looping = [
            c
            for c in statuses
            if ((c.get("state") or {}).get("waiting") or {}).get("reason") == CRASH_LOOP
        ]
        oom = [
            c
            for c in statuses
            if ((c.get("lastState") or {}).get("terminated") or {}).get("reason") == OOM_KILLED
        ]
        restarts = sum(int(c.get("restartCount") or 0) for c in statuses)
        deleting = _meta(pod).get("deletionTimestamp")
        if deleting:
            self.add(
                IssueType.PROBE if side == "source" else IssueType.ROUTING,
                Severity.WARNING,
                side,
                f"{role} is terminating (deletion requested {deleting}): its address goes away",
                "Expected during a rollout; if it stays, look for a stuck finalizer or a long"
                " terminationGracePeriodSeconds.",
                _ctx(("pod", ref), ("deletionTimestamp", deleting)),
            )
        for container in oom:
            self.add(
                IssueType.MEMORY,
                Severity.WARNING,
                side,
                f"container {container.get('name')} of {role} was OOM-killed"
                f" ({container.get('restartCount', 0)} restarts)",
                "Raise the container's memory limit or find what uses the memory.",
                _ctx(("pod", ref), ("container", container.get("name")), ("reason", OOM_KILLED)),
            )
        if looping:
            names = ", ".join(str(c.get("name")) for c in looping)
            self.add(
                IssueType.PROBE if side == "source" else IssueType.PORT_NOT_LISTENING,
                Severity.WARNING if side == "source" else Severity.ERROR,
                side,
                f"{role} is in {CRASH_LOOP} ({names}, {restarts} restarts): "
                + (
                    "its network namespace comes and goes"
                    if side == "source"
                    else "nothing listens while it restarts"
                ),
                f"Read the last crash: kubectl logs --previous -n {_key(pod)[0]} {_key(pod)[1]}.",
                _ctx(("pod", ref), ("containers", names), ("restarts", restarts)),
            )
        elif restarts >= RESTARTS_WORTH_NOTING and not oom:
            last = next(
                (
                    (c.get("lastState") or {}).get("terminated") or {}
                    for c in statuses
                    if (c.get("lastState") or {}).get("terminated")
                ),
                {},
            )
            self.add(
                IssueType.PROBE if side == "source" else IssueType.PORT_NOT_LISTENING,
                Severity.WARNING,
                side,
                f"{role} has restarted {restarts} times"
                + (
                    f" (last: {last.get('reason')}, exit code {last.get('exitCode')})"
                    if last
                    else ""
                ),
                f"Read the last crash: kubectl logs --previous -n {_key(pod)[0]} {_key(pod)[1]}.",
                _ctx(
                    ("pod", ref), ("restarts", restarts), ("lastFinishedAt", last.get("finishedAt"))
                ),
            )
        if side == "destination" and not deleting and not looping and not is_ready(pod):
            self.add(
                IssueType.PORT_NOT_LISTENING,
                Severity.WARNING,
                side,
                f"{role} is not Ready ({_why_not_ready(pod)}): the server may not be listening yet",
                f"kubectl describe pod -n {_key(pod)[0]} {_key(pod)[1]}: see its readiness probe"
                " and container states.",
                _ctx(("pod", ref), ("phase", (pod.get("status") or {}).get("phase"))),
            )


def _published(service: Manifest, pod: Manifest) -> bool:
    """Whether the endpoint controller makes the pod a ready endpoint of the Service: when it
    is Ready, or always with publishNotReadyAddresses (StatefulSet peers find each other so)."""
    return bool((service.get("spec") or {}).get("publishNotReadyAddresses")) or is_ready(pod)


def _why_not_ready(pod: Manifest) -> str:
    status = pod.get("status") or {}
    if _meta(pod).get("deletionTimestamp"):
        return "terminating"
    for container in status.get("containerStatuses") or []:
        waiting = (container.get("state") or {}).get("waiting")
        if waiting and waiting.get("reason"):
            return str(waiting["reason"])
    if status.get("phase") != "Running":
        return str(status.get("phase") or "Pending")
    ready = _condition(pod, "Ready")
    return str((ready or {}).get("reason") or "readiness probe failing")


def _parsed(pod: Manifest) -> Pod | None:
    try:
        return parse_pod(pod)
    except FieldError:
        return None


def analyse(
    check: ConnectivityCheck,
    source: ResolvedSource,
    destination: ResolvedDestination,
    snapshot: Snapshot,
    *,
    destination_hop: str | None = None,
) -> Analysis:
    """The static verdict for one check: Blocked (an Error finding), Allowed, or Unknown (a part
    of the configuration could not be read, and nothing read blocks)."""
    return _Analysis(check, source, destination, snapshot, destination_hop).run()


def unknown(message: str) -> Analysis:
    """The verdict when the analysis could not run at all."""
    return Analysis(
        result=AnalysisResult.UNKNOWN,
        issues=[
            Issue(
                type=IssueType.PROBE,
                severity=Severity.WARNING,
                origin=Origin.LOCAL,
                message=f"static analysis could not run: {message}",
                hint="See the operator's log; the probe's findings stand on their own.",
            )
        ],
    )


# ---- merging with the probe's findings ----------------------------------------------------------


def destination_hop_id(hops: Sequence[Hop]) -> str | None:
    return next((hop.id for hop in hops if hop.type == HopType.DESTINATION), None)


def _last_hop_id(hops: Sequence[Hop]) -> str | None:
    ordered = sorted((h for h in hops if h.type != HopType.SOURCE), key=lambda h: h.ttl or 0)
    return ordered[-1].id if ordered else None


def is_silent_drop(issue: Issue) -> bool:
    """The probe's silent-drop finding (not the source's own rules): read from its cause, never
    from its message's words."""
    return issue.cause == IssueCause.SILENT_DROP and issue.origin != Origin.LOCAL


def _is_denial(issue: Issue) -> bool:
    return (
        issue.type == IssueType.NETWORK_POLICY
        and issue.severity == Severity.ERROR
        and any(c.key == POLICY_KEY for c in issue.context)
    )


def merge(
    probe_issues: Sequence[Issue], analysis: Analysis | None, hops: Sequence[Hop] = ()
) -> list[Issue]:
    """The probe's findings, then static analysis' (each once by type and message).

    A probe silent drop that a NetworkPolicy denial explains becomes that one NetworkPolicy
    issue, with the probe's evidence kept in its context (keys prefixed `probe.`): an ingress
    denial explains a drop at the destination hop or the last hop of the path, and is located
    at the destination hop; an egress denial explains a silent drop anywhere on the path and
    stays at the source.
    """
    issues = list(probe_issues)
    if analysis is None:
        return issues
    dest_id, last_id = destination_hop_id(hops), _last_hop_id(hops)
    ends = {hop for hop in (dest_id, last_id) if hop is not None}
    used: set[int] = set()
    for i, issue in enumerate(issues):
        if not is_silent_drop(issue):
            continue
        for j, denial in enumerate(analysis.issues):
            if j in used or not _is_denial(denial):
                continue
            if denial.origin == Origin.INBOUND and issue.hop_id in ends:
                location = dest_id or issue.hop_id
            elif denial.origin == Origin.OUTBOUND:
                location = denial.hop_id
            else:
                continue
            evidence = [ContextItem(key="probe", value=issue.message)]
            evidence += [ContextItem(key=f"probe.{c.key}", value=c.value) for c in issue.context]
            if issue.hop_id:
                evidence.append(ContextItem(key="probe.hopId", value=issue.hop_id))
            issues[i] = denial.model_copy(
                update={"hop_id": location, "context": [*denial.context, *evidence]}
            )
            used.add(j)
            break
    seen = {(issue.type, issue.message) for issue in issues}
    for j, issue in enumerate(analysis.issues):
        if j not in used and (issue.type, issue.message) not in seen:
            issues.append(issue)
            seen.add((issue.type, issue.message))
    return issues
