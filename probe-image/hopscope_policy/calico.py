"""Calico's policies as one tier of the chain: its own tiers by order, each tier's policies by
order, the first matching rule decides; the cluster's core NetworkPolicies sit in the default tier
at order 1000, as Calico enforces them.

Modelled from the Calico reference (docs.tigera.io: Tier, NetworkPolicy, GlobalNetworkPolicy,
Rule, EntityRule, selectors) and its selector code (libcalico-go):
- a tier is consulted when one of its policies selects the endpoint in that direction; within
  it, policies by `order` (absent: last), then name; the first rule that matches decides: Allow
  and Deny are final, Log goes on to the next rule, Pass skips to the next tier. A tier whose
  policies select the endpoint but whose rules all miss ends in its `defaultAction` (Deny by
  default, or Pass). Tiers by `order` (absent: last); the default tier's order is 1,000,000.
- Kubernetes NetworkPolicies are in the default tier at order 1000 (Calico names them
  `knp.default.<name>`; here they are one block at that place): one that admits the flow allows
  it, an isolation without a matching rule goes on to the default tier's later policies.
- a NetworkPolicy selects the workload endpoints (pod-network pods) of its namespace; a
  GlobalNetworkPolicy those of every namespace its `namespaceSelector` matches, and host
  endpoints, which hopscope does not read (Unknown for a node or hostNetwork subject).
- an endpoint's labels are its pod's, with `projectcalico.org/namespace`,
  `projectcalico.org/orchestrator: k8s` and its namespace's labels prefixed `pcns.`; a
  `namespaceSelector` reads the namespace's labels with `projectcalico.org/name`. Labels of the
  pod's service account (`projectcalico.org/serviceaccount`, `pcsa.…`) are not known: Unknown.
- a rule's `selector`/`notSelector`/`namespaceSelector` match endpoints (in the policy's
  namespace unless a `namespaceSelector` widens it; `global()` means non-namespaced resources
  only); on an address that is no pod they may match a NetworkSet or HostEndpoint, which hopscope
  does not read: Unknown. `nets`/`notNets` match any address, pod addresses included. Named
  ports resolve on the destination pod on the rule's protocol.
"""

from __future__ import annotations

import dataclasses
from collections import defaultdict
from collections.abc import Callable, Hashable, Iterable, Mapping
from dataclasses import dataclass, replace
from functools import cache

from hopscope_policy.calico_model import (
    DEFAULT_TIER,
    GNP,
    GROUP,
    NP,
    TIER,
    CalicoPolicy,
    CalicoPort,
    CalicoRule,
    CalicoSelector,
    CalicoTier,
    EntityRule,
    parse_calico_global_network_policy,
    parse_calico_network_policy,
    parse_calico_tier,
)
from hopscope_policy.model import ICMP, Direction, Flow, L4Protocol, Pod, PodRef
from hopscope_policy.tiers import Action, Decision, Endpoint, RuleName, Tier

KINDS: dict[tuple[str, str], Callable[[Mapping], object]] = {
    (GROUP, NP): parse_calico_network_policy,
    (GROUP, GNP): parse_calico_global_network_policy,
    (GROUP, TIER): parse_calico_tier,
}
DEFAULT_TIER_ORDER = 1_000_000.0
KUBERNETES_ORDER = 1000.0
NAMESPACE_LABEL = "projectcalico.org/namespace"
NAME_LABEL = "projectcalico.org/name"
ORCHESTRATOR_LABEL = "projectcalico.org/orchestrator"
SERVICE_ACCOUNT_LABEL = "projectcalico.org/serviceaccount"
NAMESPACE_PREFIX = "pcns."
SERVICE_ACCOUNT_PREFIX = "pcsa."
PROTOCOL_NUMBERS = {L4Protocol.TCP: 6, L4Protocol.UDP: 17, L4Protocol.SCTP: 132}
PORT_PROTOCOL = {number: protocol for protocol, number in PROTOCOL_NUMBERS.items()}
# A match is True, False, or the name of the construct it depends on (Unknown).
Match = bool | str
Selected = list[tuple[CalicoPolicy | None, Match]]  # None: the core NetworkPolicies' place


def _both(first: Match, second: Match) -> Match:
    if first is False or second is False:
        return False
    return first if isinstance(first, str) else second


def _sort_key(order: float | None, name: str) -> tuple[bool, float, str]:
    return (order is None, order or 0.0, name)


@dataclass
class _Tier:
    spec: CalicoTier
    given: bool  # a Tier object states its order (the default tier needs none)
    members: list[CalicoPolicy | None]  # in order; None: the core NetworkPolicies' place
    _by_namespace: dict[str | None, list[CalicoPolicy | None]] = dataclasses.field(
        default_factory=dict
    )
    # Per direction and subject (all that `_selects` reads), the members that select it.
    selected: dict[Hashable, Selected] = dataclasses.field(default_factory=dict)

    def members_for(self, namespace: str | None) -> list[CalicoPolicy | None]:
        """The members that may select an endpoint of `namespace` (None: no pod-network pod),
        in order: a namespaced policy selects only its own namespace's pods."""
        found = self._by_namespace.get(namespace)
        if found is None:
            found = [m for m in self.members if m is None or m.namespace in (None, namespace)]
            self._by_namespace[namespace] = found
        return found


class CalicoTiers:
    def __init__(
        self,
        policies: Iterable[CalicoPolicy],
        kubernetes: Tier | None,
        tiers: Iterable[CalicoTier] = (),
    ) -> None:
        specs = {tier.name: tier for tier in tiers}
        members: dict[str, list[CalicoPolicy | None]] = defaultdict(list)
        for policy in policies:
            members[policy.tier].append(policy)
        self._kubernetes = kubernetes
        if kubernetes is not None:
            members[DEFAULT_TIER].append(None)
        built = []
        for name, found in members.items():
            spec = specs.get(name)
            if spec is None and name == DEFAULT_TIER:
                spec = CalicoTier(DEFAULT_TIER, DEFAULT_TIER_ORDER)
            found.sort(key=_member_key)
            built.append(_Tier(spec or CalicoTier(name), spec is not None, found))
        self._tiers = sorted(built, key=lambda tier: _sort_key(tier.spec.order, tier.spec.name))
        self._endpoint_labels: dict[PodRef, dict[str, str]] = {}

    def selection(self, direction: Direction, subject: Endpoint) -> tuple[object, ...]:
        """What these tiers' decision for the subject rests on besides the peer, the flow and the
        core NetworkPolicies (compared on their own), comparable between two loads: per tier
        consulted, in order, its spec and its members that select the subject (with how), the
        core policies' place among them. `diff` skips the flows where it is equal."""
        found: list[object] = []
        for tier in self._tiers:
            members = tuple(
                "kubernetes"
                if member is None
                else (member.kind, member.key, member.order, member.rules(direction), selected)
                for member, selected in self._selecting(tier, direction, subject)
            )
            if members:
                found.append((tier.spec, tier.given, members))
        return tuple(found)

    def _selecting(self, tier: _Tier, direction: Direction, subject: Endpoint) -> Selected:
        """The tier's members that select the subject in this direction, in order, with how
        (True, or the construct an Unknown selection rests on); the core policies' place kept.
        A matrix asks for each pod often: found once per pod."""
        pod = subject.selectable
        host = subject.node is not None or subject.pod is not None
        labels = frozenset((subject.namespace_labels or {}).items())
        key = (direction, pod, host, labels)
        found = tier.selected.get(key)
        if found is None:
            found = []
            for member in tier.members_for(pod.ref.namespace if pod is not None else None):
                if member is None:
                    found.append((None, True))
                elif (selected := self._selects(member, direction, subject)) is not False:
                    found.append((member, selected))
            tier.selected[key] = found
        return found

    def decide(
        self,
        direction: Direction,
        subject: Endpoint,
        peer: Endpoint,
        flow: Flow,
        target: Pod | None,
    ) -> Decision | None:
        reasons: list[str] = []  # of the tiers that passed
        passed: Decision | None = None
        for tier in self._tiers:
            decision = self._tier(tier, direction, subject, peer, flow, target)
            if decision is None:
                continue
            reasons.append(decision.reason)
            decision = replace(decision, reason="; ".join(reasons))
            if decision.action is not Action.PASS:
                return decision
            passed = decision
        return passed  # the last tier passed (or none selected): the chain's next stage decides

    def _tier(
        self,
        tier: _Tier,
        direction: Direction,
        subject: Endpoint,
        peer: Endpoint,
        flow: Flow,
        target: Pod | None,
    ) -> Decision | None:
        first: CalicoPolicy | Decision | None = None  # what selected the subject first
        for member, selected in self._selecting(tier, direction, subject):
            if member is None:
                assert self._kubernetes is not None
                core = self._kubernetes.decide(direction, subject, peer, flow, target)
                if core is not None and core.action is Action.DENY:
                    first = first or core  # isolated, no rule admits: later policies may
                    continue
                if core is not None:
                    return core
                continue
            if isinstance(selected, str):
                return _unknown(member, selected)
            if not tier.given:
                return _unknown(
                    member, f"tier {tier.spec.name} (no Tier object given: its order is unknown)"
                )
            first = first or member
            for rule in member.rules(direction):
                match = self._rule(member, rule, direction, subject, peer, flow, target)
                if match is False or rule.action == "Log":
                    continue
                if isinstance(match, str):
                    return _unknown(member, match, rule.field)
                name = RuleName(member.kind, member.key, rule.field)
                if rule.action == "Pass":
                    return Decision(Action.PASS, f"{name} passes {flow} to the next tier", name)
                if rule.action == "Allow":
                    return Decision(Action.ALLOW, f"{name} allows {flow}", name)
                return Decision(Action.DENY, f"{name} denies {flow}", name)
        if first is None:
            return None
        where = f"tier {tier.spec.name}"
        if tier.spec.default_action == "Pass":
            return Decision(
                Action.PASS, f"no rule of {where} matched {flow}: its defaultAction is Pass"
            )
        if isinstance(first, Decision):
            return replace(first, reason=f"{first.reason}; no later policy of {where} matched")
        name = RuleName(first.kind, first.key)
        return Decision(
            Action.DENY,
            f"{subject} is selected for {direction.field} by {name} in {where}, and no rule "
            f"matched {flow}: the tier's default deny",
            name,
        )

    def _selects(self, policy: CalicoPolicy, direction: Direction, subject: Endpoint) -> Match:
        if direction not in policy.types:
            return False
        pod = subject.selectable
        if pod is None:
            host = subject.node is not None or subject.pod is not None
            if policy.kind == GNP and host and policy.namespace_selector is None:
                return "spec.selector on a host endpoint (HostEndpoints are not read)"
            return False
        if policy.namespace is not None and pod.ref.namespace != policy.namespace:
            return False
        match: Match = True
        if policy.namespace_selector is not None:
            match = _namespace_match(
                policy.namespace_selector, subject, pod, "spec.namespaceSelector"
            )
        labels = self._labels(pod, subject)
        match = _both(match, _labels_match(policy.selector, labels, "spec.selector"))
        return _both(match, policy.unknown[0]) if policy.unknown else match

    def _rule(
        self,
        policy: CalicoPolicy,
        rule: CalicoRule,
        direction: Direction,
        subject: Endpoint,
        peer: Endpoint,
        flow: Flow,
        target: Pod | None,
    ) -> Match:
        source, destination = (peer, subject) if direction is Direction.INGRESS else (subject, peer)
        ip = source.ip or destination.ip
        number = PROTOCOL_NUMBERS.get(flow.protocol) if flow.protocol != ICMP else None
        if number is None:  # ICMP: its number depends on the IP version
            number = 58 if ip is not None and ip.version == 6 else 1
        if rule.protocol is not None and rule.protocol != number:
            return False
        if rule.not_protocol is not None and rule.not_protocol == number:
            return False
        if rule.ip_version is not None and (ip is None or ip.version != rule.ip_version):
            return False
        field = rule.field
        match = _both(
            self._entity(policy, rule.source, source, f"{field}.source"),
            self._entity(policy, rule.destination, destination, f"{field}.destination"),
        )
        if match is False:
            return False
        if rule.destination.ports is not None or rule.destination.not_ports is not None:
            protocol = PORT_PROTOCOL.get(rule.protocol or 0)
            listed = rule.destination.ports or ()
            unlisted = rule.destination.not_ports or ()
            if rule.destination.ports is not None and not any(
                _port_matches(port, flow, target, protocol) for port in listed
            ):
                return False
            if any(_port_matches(port, flow, target, protocol) for port in unlisted):
                return False
        return _both(match, rule.unknown[0]) if rule.unknown else match

    def _entity(self, policy: CalicoPolicy, entity: EntityRule, end: Endpoint, field: str) -> Match:
        if entity.nets is not None and (
            end.ip is None or not any(end.ip in n for n in entity.nets)
        ):
            return False
        if (
            entity.not_nets is not None
            and end.ip is not None
            and any(end.ip in n for n in entity.not_nets)
        ):
            return False
        return self._identity(policy, entity, end, field)

    def _identity(
        self, policy: CalicoPolicy, entity: EntityRule, end: Endpoint, field: str
    ) -> Match:
        given = [
            (key, selector)
            for key, selector in (
                ("selector", entity.selector),
                ("notSelector", entity.not_selector),
                ("namespaceSelector", entity.namespace_selector),
            )
            if selector is not None
        ]
        if not given:
            return True
        pod = end.selectable
        if pod is None:
            return (
                f"{field}.{given[0][0]} on {end}, which is no pod-network pod "
                "(NetworkSets and HostEndpoints are not read)"
            )
        if entity.namespace_selector is not None:
            scope = _namespace_match(
                entity.namespace_selector, end, pod, f"{field}.namespaceSelector"
            )
        else:
            scope = policy.namespace is None or pod.ref.namespace == policy.namespace
        labels = self._labels(pod, end)
        positive: Match = True
        if entity.selector is not None or entity.namespace_selector is not None:
            positive = scope
            if entity.selector is not None:
                positive = _both(
                    positive, _labels_match(entity.selector, labels, f"{field}.selector")
                )
        negative: Match = False
        if entity.not_selector is not None:
            negative = _both(
                scope, _labels_match(entity.not_selector, labels, f"{field}.notSelector")
            )
        if positive is False or negative is True:
            return False
        return positive if isinstance(positive, str) else (negative or True)

    def _labels(self, pod: Pod, end: Endpoint) -> Mapping[str, str]:
        """The pod's endpoint labels, built once per pod (every policy's selector reads them)."""
        found = self._endpoint_labels.get(pod.ref)
        if found is None:
            found = _endpoint_labels(pod, end.namespace_labels or {})
            self._endpoint_labels[pod.ref] = found
        return found


def _member_key(member: CalicoPolicy | None) -> tuple[bool, float, str]:
    if member is None:
        return _sort_key(KUBERNETES_ORDER, "knp.default.")
    return _sort_key(member.order, member.name)


def _unknown(policy: CalicoPolicy, construct: str, rule: str | None = None) -> Decision:
    name = RuleName(policy.kind, policy.key, rule)
    return Decision(Action.UNKNOWN, f"{construct} of {name} is not modelled", name)


def _endpoint_labels(pod: Pod, namespace_labels: Mapping[str, str]) -> dict[str, str]:
    return {
        **{NAMESPACE_PREFIX + key: value for key, value in namespace_labels.items()},
        NAMESPACE_PREFIX + NAME_LABEL: pod.ref.namespace,
        **pod.labels,
        NAMESPACE_LABEL: pod.ref.namespace,
        ORCHESTRATOR_LABEL: "k8s",
    }


def _labels_match(selector: CalicoSelector, labels: Mapping[str, str], field: str) -> Match:
    unknowable = _unknowable(selector.keys)
    if unknowable is not None:
        return f"{field} on service account label {unknowable} (service accounts are not read)"
    return selector.matches(labels)


@cache
def _unknowable(keys: frozenset[str]) -> str | None:
    """The first label key hopscope cannot know the value of: a service account's labels."""
    found = sorted(
        k for k in keys if k == SERVICE_ACCOUNT_LABEL or k.startswith(SERVICE_ACCOUNT_PREFIX)
    )
    return found[0] if found else None


def _namespace_match(selector: CalicoSelector, end: Endpoint, pod: Pod, field: str) -> Match:
    if selector.is_global:  # the scope is non-namespaced resources: never a pod
        return False
    labels = {**(end.namespace_labels or {}), NAME_LABEL: pod.ref.namespace}
    return _labels_match(selector, labels, field)


def _port_matches(
    port: CalicoPort, flow: Flow, target: Pod | None, protocol: L4Protocol | None
) -> bool:
    if port.name is not None:
        return (
            target is not None
            and protocol is not None
            and target.named_port(port.name, protocol) == flow.port
        )
    assert port.first is not None and port.last is not None
    return port.first <= flow.port <= port.last
