"""The Network Policy API's cluster-wide kinds (policy.networking.k8s.io) as two tiers.

`ClusterNetworkPolicy` (v1alpha2; tier Admin or Baseline, actions Accept/Deny/Pass, `protocols`)
and its predecessors `AdminNetworkPolicy` (v1alpha1; Admin, actions Allow/Deny/Pass, `ports`) and
`BaselineAdminNetworkPolicy` (v1alpha1; Baseline, the singleton `default`, actions Allow/Deny)
parse into one `ClusterPolicy`; `ClusterTier` evaluates the Admin or the Baseline tier.

Semantics, as the API reference states them:
- policies of a tier are taken by priority (lower first), the rules of one policy in the order
  written; the first rule whose peer and port match decides. Accept/Allow and Deny are final;
  Pass skips the rest of the tier (the next tier decides). A policy without rules in a direction
  does not affect that direction.
- subjects and `namespaces`/`pods` peers are pod-network pods only (hostNetwork pods never);
  `nodes` peers match node addresses (a hostNetwork pod is its node's address); `networks` peers
  match any address in the CIDRs, pod addresses included.
- a rule without ports matches every port and protocol (ICMP included); with ports, only them
  (ICMP has none). A named port resolves on the destination pod's container ports (any protocol).
Choices where the API leaves room (said in the verdict's reason where they decide):
- equal priorities in one tier: the API says the order is undefined; hopscope takes policies of
  equal priority by kind, then name, and the reason names the others sharing that priority.
  AdminNetworkPolicies and Admin-tier ClusterNetworkPolicies share one order by priority.
- `domainNames` peers need DNS answers the evaluator does not have: a rule whose other parts
  match an address outside the cluster (no pod, no node) decides Unknown, naming the rule; pods
  and nodes are not taken for domain names' targets.
"""

from __future__ import annotations

from collections.abc import Callable, Hashable, Iterable, Mapping
from dataclasses import dataclass
from enum import StrEnum
from typing import Any

from hopscope_policy.model import (
    JSON,
    NAMESPACE_NAME_LABEL,
    Direction,
    FieldError,
    Flow,
    IPNetwork,
    L4Protocol,
    Pod,
    _describe,
    _list,
    _mapping,
    _network,
    _only,
    _path,
    _port_number,
    _protocol,
    _string,
    parse_selector,
)
from hopscope_policy.selectors import Buckets, Selector
from hopscope_policy.tiers import Action, Decision, Endpoint, RuleName

GROUP = "policy.networking.k8s.io"
CNP, ANP, BANP = "ClusterNetworkPolicy", "AdminNetworkPolicy", "BaselineAdminNetworkPolicy"
BANP_NAME = "default"  # the API admits one BaselineAdminNetworkPolicy, named default
MAX_PRIORITY = 1000


class PolicyTier(StrEnum):
    ADMIN = "Admin"
    BASELINE = "Baseline"


@dataclass(frozen=True, slots=True)
class PodsSelector:
    """`namespaces` (pods=None) or `pods` (namespaceSelector AND podSelector)."""

    namespaces: Selector
    pods: Selector | None = None

    def matches(self, end: Endpoint) -> bool:
        pod = end.selectable
        if pod is None:
            return False
        return self.namespaces.matches(_namespace_labels(end, pod)) and (
            self.pods is None or self.pods.matches(pod.labels)
        )

    @property
    def bucket(self) -> tuple[str, str, str] | None:
        """A label pair every subject it matches carries ("namespace" or "pod", key, value)."""
        if self.namespaces.match_labels:
            return ("namespace", *self.namespaces.match_labels[0])
        if self.pods is not None and self.pods.match_labels:
            return ("pod", *self.pods.match_labels[0])
        return None


def _namespace_labels(end: Endpoint, pod: Pod) -> Mapping[str, str]:
    return end.namespace_labels or {NAMESPACE_NAME_LABEL: pod.ref.namespace}


@dataclass(frozen=True, slots=True)
class ClusterPeer:
    pods: PodsSelector | None = None
    nodes: Selector | None = None
    networks: tuple[IPNetwork, ...] = ()
    domain_names: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class PortMatch:
    protocol: L4Protocol | None = None  # None with a named port: the container port's protocol
    start: int | None = None  # None: every port of the protocol
    end: int | None = None
    named: str | None = None

    def matches(self, flow: Flow, target: Pod | None) -> bool:
        if self.named is not None:
            return target is not None and any(
                port.name == self.named
                and port.protocol == flow.protocol
                and port.number == flow.port
                for port in target.ports
            )
        if self.protocol != flow.protocol:  # ICMP never equals a protocol a rule names
            return False
        return self.start is None or self.start <= flow.port <= (self.end or self.start)


@dataclass(frozen=True, slots=True)
class ClusterRule:
    field: str  # "ingress[1]"
    name: str | None
    action: Action
    peers: tuple[ClusterPeer, ...]
    ports: tuple[PortMatch, ...] = ()  # empty: every port and protocol


@dataclass(frozen=True, slots=True, eq=False)
class ClusterPolicy:
    kind: str
    name: str
    tier: PolicyTier
    priority: int  # BaselineAdminNetworkPolicy: 0 (there is one)
    subject: PodsSelector
    ingress: tuple[ClusterRule, ...] = ()
    egress: tuple[ClusterRule, ...] = ()

    def rules(self, direction: Direction) -> tuple[ClusterRule, ...]:
        return self.ingress if direction is Direction.INGRESS else self.egress

    @property
    def ref(self) -> str:
        return f"{self.kind} {self.name}"


# --- parsing: one grammar per API version, errors naming the field path ---


@dataclass(frozen=True)
class _Grammar:
    kind: str
    actions: Mapping[str, Action]
    ports_field: str  # "protocols" (v1alpha2) or "ports" (v1alpha1)
    has_tier: bool
    has_priority: bool


_CNP = _Grammar(
    CNP, {"Accept": Action.ALLOW, "Deny": Action.DENY, "Pass": Action.PASS}, "protocols", True, True
)
_ANP = _Grammar(
    ANP, {"Allow": Action.ALLOW, "Deny": Action.DENY, "Pass": Action.PASS}, "ports", False, True
)
_BANP = _Grammar(BANP, {"Allow": Action.ALLOW, "Deny": Action.DENY}, "ports", False, False)
INGRESS_PEERS = frozenset({"namespaces", "pods"})
EGRESS_PEERS = frozenset({"namespaces", "pods", "nodes", "networks", "domainNames"})
NAMESPACED_POD_FIELDS = frozenset({"namespaceSelector", "podSelector"})
CNP_PROTOCOLS = {"tcp": L4Protocol.TCP, "udp": L4Protocol.UDP, "sctp": L4Protocol.SCTP}


def parse_cluster_network_policy(obj: JSON) -> ClusterPolicy:
    return _parse(obj, _CNP)


def parse_admin_network_policy(obj: JSON) -> ClusterPolicy:
    return _parse(obj, _ANP)


def parse_baseline_admin_network_policy(obj: JSON) -> ClusterPolicy:
    return _parse(obj, _BANP)


def _parse(obj: JSON, grammar: _Grammar) -> ClusterPolicy:
    versions = [f"{GROUP}/{version}" for version in VERSIONS[grammar.kind]]
    given = _string(obj.get("apiVersion"), "apiVersion") or versions[0]
    if given not in versions:  # another version of the group has another grammar
        readable = " or ".join(versions)
        raise FieldError("apiVersion", f"{given!r}: hopscope reads {grammar.kind} as {readable}")
    meta = _mapping(obj.get("metadata"), "metadata")
    name = _string(meta.get("name"), "metadata.name")
    if not name:
        raise FieldError("metadata.name", "required")
    if grammar.kind == BANP and name != BANP_NAME:
        raise FieldError("metadata.name", f"{name!r}: a {BANP} must be named {BANP_NAME}")
    spec = _mapping(obj.get("spec"), "spec")
    allowed = {"subject", "ingress", "egress"}
    allowed |= {"tier"} if grammar.has_tier else set()
    allowed |= {"priority"} if grammar.has_priority else set()
    _only(spec, "spec", frozenset(allowed))
    tier = PolicyTier.BASELINE if grammar.kind == BANP else PolicyTier.ADMIN
    if grammar.has_tier:
        text = _string(spec.get("tier"), "spec.tier")
        if text not in set(PolicyTier):
            raise FieldError(
                "spec.tier", f"{text!r} is not Admin or Baseline" if text else "required"
            )
        tier = PolicyTier(text)
    return ClusterPolicy(
        kind=grammar.kind,
        name=name,
        tier=tier,
        priority=_priority(spec.get("priority")) if grammar.has_priority else 0,
        subject=_subject(spec.get("subject")),
        ingress=_rules(spec, Direction.INGRESS, grammar),
        egress=_rules(spec, Direction.EGRESS, grammar),
    )


def _priority(value: object) -> int:
    if value is None:
        raise FieldError("spec.priority", "required")
    if isinstance(value, bool) or not isinstance(value, int):
        raise FieldError("spec.priority", f"expected a number, got {_describe(value)}")
    if not 0 <= value <= MAX_PRIORITY:
        raise FieldError("spec.priority", f"{value} is not in 0-{MAX_PRIORITY}")
    return value


def _one_of(obj: JSON, where: str, fields: frozenset[str]) -> str:
    """The one field set of a union the API requires exactly one of."""
    _only(obj, where, fields)
    given = sorted(key for key in obj if obj[key] is not None)
    if not given:
        raise FieldError(where, f"set one of {', '.join(sorted(fields))}")
    if len(given) > 1:
        raise FieldError(where, f"set only one of {', '.join(given)}")
    return given[0]


def _pods_selector(obj: JSON, key: str, where: str) -> PodsSelector:
    at = _path(where, key)
    if key == "namespaces":
        return PodsSelector(parse_selector(obj[key], at))
    pods = _mapping(obj[key], at)
    _only(pods, at, NAMESPACED_POD_FIELDS)
    for field in sorted(NAMESPACED_POD_FIELDS):
        if pods.get(field) is None:
            raise FieldError(_path(at, field), "required (use {} for all)")
    return PodsSelector(
        parse_selector(pods["namespaceSelector"], _path(at, "namespaceSelector")),
        parse_selector(pods["podSelector"], _path(at, "podSelector")),
    )


def _subject(value: object) -> PodsSelector:
    if value is None:
        raise FieldError("spec.subject", "required")
    obj = _mapping(value, "spec.subject")
    return _pods_selector(obj, _one_of(obj, "spec.subject", INGRESS_PEERS), "spec.subject")


def _rules(spec: JSON, direction: Direction, grammar: _Grammar) -> tuple[ClusterRule, ...]:
    key = direction.field
    items = _list(spec.get(key), f"spec.{key}")
    return tuple(
        _rule(item, f"spec.{key}[{i}]", direction, grammar) for i, item in enumerate(items)
    )


def _rule(value: object, where: str, direction: Direction, grammar: _Grammar) -> ClusterRule:
    obj = _mapping(value, where)
    peers_key = direction.peers_field
    _only(obj, where, frozenset({"name", "action", peers_key, grammar.ports_field}))
    text = _string(obj.get("action"), _path(where, "action"))
    if text not in grammar.actions:
        expected = ", ".join(grammar.actions)
        problem = f"{text!r} is not one of {expected}" if text else f"required ({expected})"
        raise FieldError(_path(where, "action"), problem)
    action = grammar.actions[text]
    items = _list(obj.get(peers_key), _path(where, peers_key))
    if not items:
        raise FieldError(_path(where, peers_key), "required: at least one peer")
    kinds = INGRESS_PEERS if direction is Direction.INGRESS else EGRESS_PEERS
    if grammar.kind == BANP:
        kinds = kinds - {"domainNames"}
    peers = tuple(
        _peer(item, f"{where}.{peers_key}[{i}]", kinds, action) for i, item in enumerate(items)
    )
    port_items = _list(obj.get(grammar.ports_field), _path(where, grammar.ports_field))
    parse_port = _cnp_protocol if grammar.ports_field == "protocols" else _anp_port
    ports = tuple(
        parse_port(item, f"{where}.{grammar.ports_field}[{i}]") for i, item in enumerate(port_items)
    )
    if any(port.named for port in ports) and any(
        peer.nodes is not None or peer.networks or peer.domain_names for peer in peers
    ):
        raise FieldError(
            _path(where, grammar.ports_field),
            "a named port cannot be used with nodes, networks or domainNames peers",
        )
    return ClusterRule(
        field=where.removeprefix("spec."),
        name=_string(obj.get("name"), _path(where, "name")) or None,
        action=action,
        peers=peers,
        ports=ports,
    )


def _peer(value: object, where: str, kinds: frozenset[str], action: Action) -> ClusterPeer:
    obj = _mapping(value, where)
    key = _one_of(obj, where, kinds)
    at = _path(where, key)
    if key in INGRESS_PEERS:
        return ClusterPeer(pods=_pods_selector(obj, key, where))
    if key == "nodes":
        return ClusterPeer(nodes=parse_selector(obj[key], at))
    items = _list(obj[key], at)
    if not items:
        raise FieldError(at, "needs at least one entry")
    if key == "networks":
        return ClusterPeer(networks=tuple(_network(v, f"{at}[{i}]") for i, v in enumerate(items)))
    if action is not Action.ALLOW:
        raise FieldError(at, "domainNames are only allowed in Accept/Allow rules")
    names = tuple(_string(v, f"{at}[{i}]") or "" for i, v in enumerate(items))
    return ClusterPeer(domain_names=names)


def _cnp_protocol(value: object, where: str) -> PortMatch:
    obj = _mapping(value, where)
    key = _one_of(obj, where, frozenset({*CNP_PROTOCOLS, "destinationNamedPort"}))
    at = _path(where, key)
    if key == "destinationNamedPort":
        return PortMatch(named=_string(obj[key], at))
    body = _mapping(obj[key], at)
    _only(body, at, frozenset({"destinationPort"}))
    if body.get("destinationPort") is None:
        return PortMatch(CNP_PROTOCOLS[key])
    port_at = _path(at, "destinationPort")
    port = _mapping(body["destinationPort"], port_at)
    if _one_of(port, port_at, frozenset({"number", "range"})) == "number":
        number = _port_number(port["number"], _path(port_at, "number"))
        return PortMatch(CNP_PROTOCOLS[key], number, number)
    range_at = _path(port_at, "range")
    _only(_mapping(port["range"], range_at), range_at, frozenset({"start", "end"}))
    start, end = _range(port["range"], range_at)
    return PortMatch(CNP_PROTOCOLS[key], start, end)


def _anp_port(value: object, where: str) -> PortMatch:
    obj = _mapping(value, where)
    key = _one_of(obj, where, frozenset({"portNumber", "namedPort", "portRange"}))
    at = _path(where, key)
    if key == "namedPort":
        return PortMatch(named=_string(obj[key], at))
    body = _mapping(obj[key], at)
    if key == "portNumber":
        _only(body, at, frozenset({"protocol", "port"}))
        number = _port_number(body.get("port"), _path(at, "port"))
        return PortMatch(_protocol(body.get("protocol"), _path(at, "protocol")), number, number)
    _only(body, at, frozenset({"protocol", "start", "end"}))
    start, end = _range(body, at)
    return PortMatch(_protocol(body.get("protocol"), _path(at, "protocol")), start, end)


def _range(value: object, where: str) -> tuple[int, int]:
    obj = _mapping(value, where)
    start = _port_number(obj.get("start"), _path(where, "start"))
    end = _port_number(obj.get("end"), _path(where, "end"))
    if end < start:
        raise FieldError(_path(where, "end"), f"{end} is below start {start}")
    return start, end


KINDS: dict[tuple[str, str], Callable[[Mapping[str, Any]], object]] = {
    (GROUP, CNP): parse_cluster_network_policy,
    (GROUP, ANP): parse_admin_network_policy,
    (GROUP, BANP): parse_baseline_admin_network_policy,
}
# The API versions each kind is parsed as (v1beta1 ClusterNetworkPolicy kept v1alpha2's fields,
# as the upstream conformance manifests of both show); other versions have other grammars.
VERSIONS = {CNP: ("v1alpha2", "v1beta1"), ANP: ("v1alpha1",), BANP: ("v1alpha1",)}


# --- evaluation ---


class ClusterTier:
    """The Admin or the Baseline tier: the first matching rule of the first policies by
    priority decides; a Pass (or no matching rule) hands the flow to the next tier."""

    def __init__(self, policies: Iterable[ClusterPolicy], tier: PolicyTier) -> None:
        ordered = [policy for policy in policies if policy.tier is tier]
        ordered.sort(key=lambda policy: (policy.priority, policy.kind, policy.name))
        self.tier = tier
        self._policies = ordered
        # Per direction, the policies with rules in it, filed by a label pair their subject
        # needs; and per subject the ones that select it (a matrix asks for each pod often).
        self._buckets: dict[Direction, Buckets[ClusterPolicy]] = {}
        for direction in Direction:
            self._buckets[direction] = buckets = Buckets()
            for policy in ordered:
                if policy.rules(direction):
                    buckets.add(policy, policy.subject.bucket)
        self._selected: dict[Hashable, list[ClusterPolicy]] = {}

    def __bool__(self) -> bool:
        return bool(self._policies)

    def selecting(self, direction: Direction, subject: Endpoint) -> list[ClusterPolicy]:
        """The policies of this tier with rules in this direction that select the subject, in
        the tier's order (an address or a hostNetwork pod is never a subject)."""
        pod = subject.selectable
        if pod is None:
            return []
        namespace_labels = _namespace_labels(subject, pod)
        key = (direction, pod, frozenset(namespace_labels.items()))
        found = self._selected.get(key)
        if found is None:
            keys = [("namespace", *item) for item in namespace_labels.items()]
            keys += [("pod", *item) for item in pod.labels.items()]
            candidates = self._buckets[direction].candidates(keys)
            found = [policy for policy in candidates if policy.subject.matches(subject)]
            self._selected[key] = found
        return found

    def selection(self, direction: Direction, subject: Endpoint) -> tuple[object, ...]:
        """What this tier's decision for the subject rests on besides the peer and the flow,
        comparable between two loads of the manifests (`diff` skips flows where it is equal)."""
        return tuple(_content(policy, direction) for policy in self.selecting(direction, subject))

    def decide(
        self,
        direction: Direction,
        subject: Endpoint,
        peer: Endpoint,
        flow: Flow,
        target: Pod | None,
    ) -> Decision | None:
        selecting = self.selecting(direction, subject)
        if not selecting:
            return None
        for policy in selecting:
            for rule in policy.rules(direction):
                decision = self._rule_decision(policy, rule, peer, flow, target, selecting)
                if decision is not None:
                    return decision
        names = ", ".join(policy.ref for policy in selecting)
        return Decision(
            Action.PASS,
            f"{subject} is selected for {direction.field} by {self.tier} tier {names}, "
            "but no rule matches",
        )

    def _rule_decision(
        self,
        policy: ClusterPolicy,
        rule: ClusterRule,
        peer: Endpoint,
        flow: Flow,
        target: Pod | None,
        selecting: list[ClusterPolicy],
    ) -> Decision | None:
        if rule.ports and not any(port.matches(flow, target) for port in rule.ports):
            return None
        matched = any(_peer_matches(candidate, peer) for candidate in rule.peers)
        outside = peer.selectable is None and peer.node is None and peer.pod is None
        if not matched and not (outside and any(c.domain_names for c in rule.peers)):
            return None  # the common case, so the names below are built only for a decision
        name = RuleName(policy.kind, policy.name, rule.field)
        titled = f"{name}" + (f" ({rule.name})" if rule.name else "")
        if matched:
            verb = {Action.ALLOW: "admits", Action.DENY: "denies", Action.PASS: "passes"}
            said = f"{titled} {verb[rule.action]} {peer}"
            if rule.action is Action.PASS:
                said += " on to the next tier"
            return Decision(rule.action, said + _tie(policy, selecting), name)
        names = ", ".join(n for c in rule.peers for n in c.domain_names)
        return Decision(
            Action.UNKNOWN,
            f"{titled} admits domainNames ({names}); whether {peer} is one of them needs "
            "DNS answers hopscope does not model",
            name,
        )


def _content(policy: ClusterPolicy, direction: Direction) -> tuple[object, ...]:
    # ClusterPolicy compares by identity; the same policy read by two loads compares by this.
    return (policy.kind, policy.name, policy.tier, policy.priority, policy.rules(direction))


def _peer_matches(peer: ClusterPeer, end: Endpoint) -> bool:
    if peer.pods is not None:
        return peer.pods.matches(end)
    if peer.nodes is not None:
        return end.node is not None and peer.nodes.matches(end.node.labels)
    return end.ip is not None and any(end.ip in network for network in peer.networks)


def _tie(policy: ClusterPolicy, selecting: list[ClusterPolicy]) -> str:
    """The note a verdict carries when the API leaves the order to the implementation."""
    if policy.kind == BANP:
        return ""
    others = [
        other.ref
        for other in selecting
        if other is not policy and other.priority == policy.priority
    ]
    if not others:
        return ""
    return (
        f" (priority {policy.priority} is shared with {', '.join(others)}: the API leaves "
        "their order undefined; hopscope takes them by kind, then name)"
    )
