"""Rules on network policies: does a policy deny the check's flow, or its DNS lookups?

Contract: `rules(input) -> Findings`, pure. The check's flow (source pod or address to the
destination pod, each endpoint pod behind a Service, or the destination address) and, when the
source asks the cluster DNS, its DNS flows to the kube-dns pods on UDP and TCP 53, are
evaluated by `hopscope_policy`: core NetworkPolicies and the other families' kinds the cluster
serves (ClusterNetworkPolicy, CiliumNetworkPolicy, …), in the order their tiers decide, with
the snapshot's nodes (the source's, the destination's, its pods'), which node peers, entities
and host endpoints match. Each
direction that denies is one `NetworkPolicy` finding: an egress denial Outbound at the source,
an ingress denial Inbound at the destination, naming the deciding object with its kind and rule
(`CiliumNetworkPolicy shop/deny-db ingressDeny[0]`, with its tier where it has one); the
deciding objects are in the context under POLICY_KEY (what `merge` pairs with the probe's
silent drop: core NetworkPolicies as `namespace/name`, other kinds as `Kind name`).
Error when it denies every target (and for DNS, on UDP), else Warning; a Warning too while
another policy kind could not be read, as it may decide first. A construct the evaluator does
not model deciding the flow leaves it unknown, naming the construct. Policies, namespaces or
pods that cannot be read or parsed, or a source pod the snapshot lacks, leave it unknown.
"""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass
from typing import Any, Literal

from hopscope_operator.analysis.dns import DNS_PORT, queries_cluster_dns
from hopscope_operator.analysis.inputs import (
    NAMESPACES,
    NOTHING,
    PODS,
    POLICIES,
    AnalysisInput,
    Findings,
    evidence,
    is_policy_kind,
    key,
    parsed,
)
from hopscope_operator.analysis.services import endpoint_pods, pod_port, service_port
from hopscope_policy import (
    ICMP,
    DirectionVerdict,
    FieldError,
    Flow,
    FlowProtocol,
    L4Protocol,
    Pod,
    PodRef,
    PolicyIndex,
    Verdict,
)
from hopscope_policy.evaluate import NetworkPolicyTier
from hopscope_policy.nodes import parse_node
from hopscope_policy.tiers import Node, RuleName
from hopscope_probe.models import ContextItem, IssueType, Origin, Severity
from hopscope_probe.models import Protocol as WireProtocol
from hopscope_probe.target import is_ip

POLICY_KEY = "NetworkPolicy"  # the context key naming a policy, as the architecture shows it

Target = tuple[PodRef | Any, int]
Address = ipaddress.IPv4Address | ipaddress.IPv6Address


def rules(inp: AnalysisInput) -> Findings:
    if inp.unreadable(POLICIES, NAMESPACES, PODS):
        return NOTHING
    snap = inp.snapshot
    policy_rules = snap.rules.of(snap)
    if isinstance(policy_rules, Exception):
        found = inp.issue(
            IssueType.NETWORK_POLICY,
            Severity.WARNING,
            "source",
            f"static analysis could not read the policies: {policy_rules}",
            "Fix the object named; the policy verdict stays unknown until then.",
        )
        return Findings(found.issues, unknown=True)
    index = PolicyIndex(snapshot_pods(inp), policy_rules, nodes=snapshot_nodes(inp))
    flows = check_flows(inp)
    if flows is None:
        return Findings(unknown=inp.source.kind != "node")
    found = NOTHING
    for flow_set in flows:
        found += report(inp, index, flow_set)
    return found


@dataclass(frozen=True)
class FlowSet:
    """The flows of one thing the check does: its connection (one flow per target: the pod,
    each endpoint pod behind a Service, or the address), or its DNS lookups over one protocol."""

    origin: PodRef | Address
    targets: list[Target]
    protocol: FlowProtocol
    dns: bool

    def flows(self) -> list[Flow]:
        return [Flow(self.origin, target, port, self.protocol) for target, port in self.targets]


def snapshot_pods(inp: AnalysisInput) -> list[Pod]:
    """The snapshot's pods as the evaluator reads them; a pod it cannot parse is left out."""
    return [pod for pod in map(parsed, inp.pods.values()) if pod is not None]


def snapshot_nodes(inp: AnalysisInput) -> list[Node]:
    """The snapshot's nodes (the source's, the destination's, its pods'), which node peers
    and node selectors match; a node it cannot parse is left out, as a pod is."""
    found = []
    for node in inp.snapshot.nodes.values():
        try:
            found.append(parse_node(node))
        except FieldError:
            continue
    return found


def check_flows(inp: AnalysisInput) -> list[FlowSet] | None:
    """What policies judge of the check; None when its source is not known (a pod the
    snapshot lacks)."""
    origin = flow_source(inp)
    if origin is None:
        return None
    found = []
    if inp.l4 is not None and inp.port is not None:
        proto = L4Protocol(inp.l4)
        found.append(FlowSet(origin, flow_targets(inp, inp.port), proto, dns=False))
    elif inp.spec.protocol == WireProtocol.ICMP:
        # No port: only a rule without ports admits it into an isolated pod.
        found.append(FlowSet(origin, flow_targets(inp, 0), ICMP, dns=False))
    if queries_cluster_dns(inp) and inp.snapshot.dns_service is not None:
        for proto in (L4Protocol.UDP, L4Protocol.TCP):
            found.append(FlowSet(origin, dns_targets(inp, proto), proto, dns=True))
    return found


def flow_source(
    inp: AnalysisInput,
) -> PodRef | ipaddress.IPv4Address | ipaddress.IPv6Address | None:
    src = inp.source
    if src.pod_namespace and src.pod_name:
        if (src.pod_namespace, src.pod_name) in inp.pods:
            return PodRef(src.pod_namespace, src.pod_name)
        return None
    return ipaddress.ip_address(src.address) if src.address else None


def flow_targets(inp: AnalysisInput, port: int) -> list[Target]:
    kind = inp.target_kind
    if kind == "pod":
        pod = inp.pod_key
        assert pod is not None
        return [(PodRef(*pod), port)] if pod in inp.pods else []
    if kind == "service":
        return service_targets(inp, port)
    dest = inp.destination
    addresses = dest.addresses or ([dest.host] if is_ip(dest.host) else [])
    return [(ipaddress.ip_address(addresses[0]), port)] if addresses else []


def service_targets(inp: AnalysisInput, port: int) -> list[Target]:
    svc = inp.snapshot.service
    spec = (svc or {}).get("spec") or {}
    if svc is None or spec.get("type") == "ExternalName":
        return []
    pods = endpoint_pods(inp, svc, inp.snapshot.service_slices)
    through = service_port(inp, spec)
    if through is None:
        if spec.get("clusterIP") != "None":
            return []  # nothing behind the ClusterIP on this port: port_protocol says so
        # Nothing proxies a headless Service: the probe connects to the pods on its port.
        return [(PodRef(*key(pod)), port) for pod in pods]
    numbers = [(pod, pod_port(through, pod)) for pod in pods]
    return [(PodRef(*key(pod)), number) for pod, number in numbers if number is not None]


def dns_targets(inp: AnalysisInput, proto: L4Protocol) -> list[Target]:
    svc = inp.snapshot.dns_service
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
    for pod in endpoint_pods(inp, svc, inp.snapshot.dns_slices):
        number = pod_port(port, pod)
        if number is not None:
            targets.append((PodRef(*key(pod)), number))
    return targets


def report(inp: AnalysisInput, index: PolicyIndex, flow_set: FlowSet) -> Findings:
    verdicts = [index.evaluate(flow) for flow in flow_set.flows()]
    proto, dns = flow_set.protocol, flow_set.dns
    found = NOTHING
    for direction in ("egress", "ingress"):
        sides = [(v, getattr(v, direction)) for v in verdicts]
        denied = [v for v, side in sides if not side.allowed and not side.unknown]
        if denied:
            found += denial(inp, direction, denied, len(verdicts), proto, dns=dns)
        # Unknown only where nothing denies the flow: a denial decides it either way.
        undecided = [v for v, side in sides if side.unknown and v.unknown]
        if undecided:
            found += unknown(inp, direction, undecided, proto, dns=dns)
    return found


def flow_words(first: Verdict, proto: FlowProtocol, *, dns: bool) -> str:
    if proto == ICMP:
        return "ICMP (ping) from"
    return f"DNS queries ({first.flow.service}) from" if dns else "traffic from"


def unknown(
    inp: AnalysisInput,
    direction: Literal["egress", "ingress"],
    undecided: list[Verdict],
    proto: FlowProtocol,
    *,
    dns: bool,
) -> Findings:
    """A construct hopscope does not model decides: the verdict names it, never guesses."""
    first = undecided[0]
    side: DirectionVerdict = getattr(first, direction)
    into = "to" if direction == "egress" else "into"
    what = flow_words(first, proto, dns=dns)
    message = (
        f"the {direction} policy verdict of {what} {first.source} {into} {first.destination}"
        f" is unknown: {side.reason}"
    )
    found = inp.issue(
        IssueType.NETWORK_POLICY,
        Severity.WARNING,
        "source" if direction == "egress" else "destination",
        message,
        f"hopscope does not evaluate this construct; read {side.rule or 'the policy'} to judge"
        " the flow (the probe's result shows what the network does).",
        evidence(direction=side.direction.value, flow=str(first.flow), decidedBy=side.rule),
        origin=Origin.OUTBOUND if direction == "egress" else Origin.INBOUND,
    )
    return Findings(found.issues, unknown=True)


def other_kind(rule: RuleName | None) -> RuleName | None:
    """The deciding rule when another family's kind decides (not a core NetworkPolicy)."""
    return rule if rule is not None and rule.kind != NetworkPolicyTier.KIND else None


def deciding_objects(direction: str, denied: list[Verdict]) -> list[str]:
    """What POLICY_KEY names: the isolating NetworkPolicies, or the other kinds' objects."""
    names: set[str] = set()
    for verdict in denied:
        side: DirectionVerdict = getattr(verdict, direction)
        rule = other_kind(side.rule)
        names |= {f"{rule.kind} {rule.name}"} if rule is not None else set(side.policies)
    return sorted(names)


def denial(
    inp: AnalysisInput,
    direction: Literal["egress", "ingress"],
    denied: list[Verdict],
    total: int,
    proto: FlowProtocol,
    *,
    dns: bool,
) -> Findings:
    first = denied[0]
    side: DirectionVerdict = getattr(first, direction)
    policies = deciding_objects(direction, denied)
    flow = first.flow
    what = flow_words(first, proto, dns=dns)
    decider = other_kind(side.rule)
    tier = inp.snapshot.rules.tier_of(decider) if decider is not None else None
    denier = "NetworkPolicy"
    if decider is not None:
        denier = str(decider) + (f" ({tier} tier)" if tier else "")
    # A policy cannot name ICMP: only a rule without ports (every protocol) admits a ping.
    asks = flow.service if proto != ICMP else "every protocol (a rule without ports: ICMP)"
    dest = first.destination
    if total > 1:
        share = "all" if len(denied) == total else f"{len(denied)} of"
        dest = f"{share} {total} {'DNS pods' if dns else 'endpoints'}, e.g. {dest}"
    if direction == "egress":
        message = f"{denier} denies egress of {what} {first.source} to {dest}"
        peer_hint = f"{flow.destination} on {asks}"
        hint = (
            f"Add an egress rule to {policies[0]} (or another policy selecting"
            f" {first.source}) that allows {peer_hint}"
        )
        origin, where = Origin.OUTBOUND, "source"
    else:
        message = f"{denier} denies ingress of {what} {first.source} into {dest}"
        hint = (
            f"Add an ingress rule to {policies[0]} (or another policy selecting"
            f" {first.destination}) that allows {first.source} on {asks}"
        )
        origin, where = Origin.INBOUND, "destination"
    if decider is not None and decider.rule is not None:  # a Deny rule, not an isolation
        hint = f"{decider} denies it: change or remove that rule"
        if tier == "Baseline":
            hint += " (or allow the flow with a NetworkPolicy: they decide before this tier)"
        else:
            hint += " (no allow rule of a tier that decides after it can admit the flow)"
    if dns:
        hint += "; pods need DNS egress to kube-dns on UDP and TCP 53"
    message += f": {side.reason}"
    if side.nearest_miss is not None:
        missed = ", ".join(side.nearest_miss.missed)
        hint += f" (closest rule: {side.nearest_miss.rule}, missing its {missed})"
    # UDP DNS blocked breaks every lookup; TCP only the large answers. Some endpoints only:
    # the load balancer's share of connections fails.
    partial = len(denied) < total or (dns and proto == L4Protocol.TCP)
    unread = sorted(part for part in inp.snapshot.unreadable if is_policy_kind(part))
    if unread:  # an unread kind's tier may decide before the one that denies
        message += f" ({', '.join(unread)} could not be read and may decide otherwise)"
    context = [ContextItem(key=POLICY_KEY, value=name) for name in policies]
    context += evidence(
        direction=side.direction.value,
        flow=str(flow),
        decidedBy=decider,
        nearestMiss=side.nearest_miss,
    )
    return inp.issue(
        IssueType.NETWORK_POLICY,
        Severity.WARNING if partial or unread else Severity.ERROR,
        "source" if where == "source" else "destination",
        message,
        hint + ".",
        context,
        origin=origin,
    )
