"""Cilium's policies as a tier: deny rules of any CNP/CCNP first, then the union of their allows
and the cluster's core NetworkPolicies (Cilium enforces both), then the isolation's default deny.

Modelled from the Cilium reference: a namespaced policy selects and (in `fromEndpoints`/
`toEndpoints` without a namespace label) peers only in its namespace; CIDR rules match only
addresses outside the cluster (no pod, no node); `host` is the subject's node, `remote-node` any
other node; an address with no pod and no node is `world`. Ingress from the subject's own node is
allowed (Cilium's default `allow-localhost=always`). A ping matches `icmps` when a field is the
echo request of its family (type 8 or `EchoRequest` for IPv4, the default; 128 for IPv6) and that
family is the flow's. A `nodeSelector` (host policy) selects a node's address or a hostNetwork pod
on a node it describes; on a node without a Node object it is Unknown. Anything else decides
`Unknown`, named.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping

from hopscope_policy.cilium_model import (
    CCNP,
    CNP,
    CiliumPolicy,
    CiliumPort,
    CiliumRule,
    CiliumSpec,
    IcmpField,
    parse_cilium_clusterwide_network_policy,
    parse_cilium_network_policy,
    world_family,
)
from hopscope_policy.model import ICMP, Direction, Flow, L4Protocol, Pod
from hopscope_policy.selectors import Buckets, Selector
from hopscope_policy.tiers import Action, Decision, Endpoint, Node, RuleName, Tier

KINDS: dict[tuple[str, str], Callable[[Mapping], object]] = {
    ("cilium.io", CNP): parse_cilium_network_policy,
    ("cilium.io", CCNP): parse_cilium_clusterwide_network_policy,
}
NAMESPACE_KEY = "io.kubernetes.pod.namespace"
# A match is True, False, or the name of the construct it depends on (Unknown).
Match = bool | str


def _any(matches: Iterable[Match]) -> Match:
    unknown: Match = False
    for match in matches:
        if match is True:
            return True
        if isinstance(match, str) and unknown is False:
            unknown = match
    return unknown


def _both(first: Match, second: Match) -> Match:
    if first is False or second is False:
        return False
    return first if isinstance(first, str) else second


def _key(key: str) -> str:
    return key.removeprefix("k8s:").removeprefix("any:")


def _odd_keys(selector: Selector) -> list[str]:
    """Keys of label sources or Cilium's own labels, which hopscope does not model."""
    keys = [key for key, _ in selector.match_labels] + [r.key for r in selector.match_expressions]
    return [key for key in keys if ":" in _key(key) or _key(key).startswith("io.cilium.")]


def _selector_matches(selector: Selector, labels: Mapping[str, str]) -> Match:
    odd = _odd_keys(selector)
    if odd:
        return f"selector label {odd[0]}"
    plain = Selector(
        tuple((_key(k), v) for k, v in selector.match_labels),
        tuple(type(r)(_key(r.key), r.operator, r.values) for r in selector.match_expressions),
    )
    return plain.matches(labels)


def _names_namespace(selector: Selector) -> bool:
    keys = [key for key, _ in selector.match_labels] + [r.key for r in selector.match_expressions]
    return any(_key(key) == NAMESPACE_KEY for key in keys)


def _identity(pod: Pod) -> dict[str, str]:
    return {**pod.labels, NAMESPACE_KEY: pod.ref.namespace}


def _node_name(end: Endpoint) -> str | None:
    if end.node is not None:
        return end.node.name
    return end.pod.node if end.pod is not None and end.pod.host_network else None


def _bucket(policy: CiliumPolicy, spec: CiliumSpec) -> tuple[str | None, ...] | None:
    """Where a spec is filed: a label pair of its endpointSelector (in its namespace for a CNP),
    its namespace alone, or None (looked at for every subject: node selectors, and selectors with
    a key hopscope does not model, which are Unknown for every endpoint)."""
    selector = spec.endpoint_selector
    if selector is None:
        return None
    if selector.match_labels and not _odd_keys(selector):
        key, value = selector.match_labels[0]
        return (policy.namespace, _key(key), value)
    return None if policy.namespace is None else ("namespace", policy.namespace)


Selected = list[tuple[CiliumPolicy, CiliumSpec, Match]]


class CiliumTier:
    def __init__(self, policies: Iterable[CiliumPolicy], kubernetes: Tier | None) -> None:
        self._specs: Buckets[tuple[CiliumPolicy, CiliumSpec]] = Buckets()
        for policy in policies:
            for spec in policy.specs:
                self._specs.add((policy, spec), _bucket(policy, spec))
        self._kubernetes = kubernetes
        self._selected: dict[tuple[Pod | None, Node | None, str | None], Selected] = {}

    def selecting(self, subject: Endpoint) -> Selected:
        """The specs that select the subject (in either direction), with how: True, or the
        construct an Unknown selection rests on; in the order the policies were given."""
        pod = subject.selectable
        key = (pod, subject.node, _node_name(subject))  # all that `_selects` reads
        found = self._selected.get(key)
        if found is None:
            keys: list[tuple[str | None, ...]] = []
            if pod is not None:
                namespace = pod.ref.namespace
                keys.append(("namespace", namespace))
                for label, value in _identity(pod).items():
                    keys += [(namespace, label, value), (None, label, value)]
            found = [
                (policy, spec, match)
                for policy, spec in self._specs.candidates(keys)
                if (match := self._selects(policy, spec, subject)) is not False
            ]
            self._selected[key] = found
        return found

    def selection(self, direction: Direction, subject: Endpoint) -> tuple[object, ...]:
        """What this tier's decision for the subject rests on besides the peer, the flow and the
        core NetworkPolicies (compared on their own), comparable between two loads: `diff`
        skips the flows where it is equal."""
        return tuple(
            (policy.kind, policy.key, spec, match)
            for policy, spec, match in self.selecting(subject)
            if spec.allow[direction] or spec.deny[direction] or spec.default_deny[direction]
        )

    def decide(
        self,
        direction: Direction,
        subject: Endpoint,
        peer: Endpoint,
        flow: Flow,
        target: Pod | None,
    ) -> Decision | None:
        selected = self.selecting(subject)
        for policy, spec, chosen in selected:
            for rule in spec.deny[direction]:
                match = _both(chosen, self._rule(policy, rule, subject, peer, flow, target))
                if match is True:
                    name = RuleName(policy.kind, policy.key, rule.field)
                    return Decision(Action.DENY, f"{name} denies {flow}", name)
                if isinstance(match, str):
                    return self._unknown(policy, match)
        unknown: Decision | None = None
        for policy, spec, chosen in selected:
            for rule in spec.allow[direction]:
                match = _both(chosen, self._rule(policy, rule, subject, peer, flow, target))
                if match is True and not rule.requires:
                    name = RuleName(policy.kind, policy.key, rule.field)
                    return Decision(Action.ALLOW, f"{name} allows {flow}", name)
                if match is not False and unknown is None:
                    unknown = self._unknown(
                        policy, match if isinstance(match, str) else rule.requires[0]
                    )
        core = (
            self._kubernetes.decide(direction, subject, peer, flow, target)
            if self._kubernetes
            else None
        )
        if core is not None and core.action is Action.ALLOW:
            return core
        if unknown is not None:
            return unknown
        isolating = [(p, s, c) for p, s, c in selected if s.default_deny[direction]]
        for policy, _spec, chosen in isolating:
            if isinstance(chosen, str):
                return self._unknown(policy, chosen)
        if isolating:
            policy, spec, _ = isolating[0]
            name = RuleName(policy.kind, policy.key, spec.label)
            if (
                direction is Direction.INGRESS
                and _node_name(peer) is not None
                and _node_name(peer) == self._subject_node(subject)
            ):
                return Decision(Action.ALLOW, f"{peer} is {subject}'s own node: allow-localhost")
            return Decision(
                Action.DENY,
                f"{subject} is isolated for {direction.field} by {name}: default deny",
                name,
            )
        return core

    def _subject_node(self, subject: Endpoint) -> str | None:
        if subject.pod is not None and not subject.pod.host_network:
            return subject.pod.node
        return _node_name(subject)

    def _unknown(self, policy: CiliumPolicy, construct: str) -> Decision:
        name = RuleName(policy.kind, policy.key)
        return Decision(Action.UNKNOWN, f"{construct} of {name} is not modelled", name)

    def _selects(self, policy: CiliumPolicy, spec: CiliumSpec, subject: Endpoint) -> Match:
        pod = subject.selectable
        if spec.endpoint_selector is not None:
            if pod is None or (
                policy.namespace is not None and pod.ref.namespace != policy.namespace
            ):
                return False
            return _selector_matches(spec.endpoint_selector, _identity(pod))
        assert spec.node_selector is not None
        if pod is not None or _node_name(subject) is None:
            return False
        if subject.node is None:
            return "the node labels of a hostNetwork pod's node"
        return _selector_matches(spec.node_selector, subject.node.labels)

    def _rule(
        self,
        policy: CiliumPolicy,
        rule: CiliumRule,
        subject: Endpoint,
        peer: Endpoint,
        flow: Flow,
        target: Pod | None,
    ) -> Match:
        family = next((end.ip.version for end in (peer, subject) if end.ip is not None), None)
        l4 = self._l4(rule, flow, target, family)
        if l4 is False:
            return False
        if not rule.has_peers:
            return _both(l4, rule.ports is not None or rule.icmps is not None)
        return _both(l4, _any(self._peer_matches(policy, rule, subject, peer)))

    def _peer_matches(
        self, policy: CiliumPolicy, rule: CiliumRule, subject: Endpoint, peer: Endpoint
    ) -> Iterable[Match]:
        pod = peer.selectable
        node = _node_name(peer)
        world = pod is None and node is None
        for selector in rule.endpoints or ():
            if pod is None:
                yield (
                    False
                    if policy.namespace is not None or selector.match_labels
                    else f"{rule.field} endpoint selector {selector} on a non-pod peer"
                )
                continue
            if (
                policy.namespace is not None
                and not _names_namespace(selector)
                and pod.ref.namespace != policy.namespace
            ):
                yield False
                continue
            yield _selector_matches(selector, _identity(pod))
        for entity in rule.entities or ():
            if entity == "all":
                yield True
            elif entity in ("world", "world-ipv4", "world-ipv6"):
                family = world_family(entity)
                yield world and (
                    family is None or (peer.ip is not None and peer.ip.version == family)
                )
            elif entity == "cluster":
                yield not world
            elif entity == "host":
                yield node is not None and node == self._subject_node(subject)
            elif entity == "remote-node":
                yield node is not None and node != self._subject_node(subject)
            else:
                yield f"{rule.field} entity {entity}"
        for block in rule.cidrs or ():
            yield world and peer.ip is not None and block.contains(peer.ip)
        yield from rule.unknown_peers

    def _l4(self, rule: CiliumRule, flow: Flow, target: Pod | None, family: int | None) -> Match:
        """`family`: the flow's IP version (None: no address known, either family matches)."""
        if rule.ports is None and rule.icmps is None:
            matched: Match = True
        else:
            matched = any(_port_matches(port, flow, target) for port in rule.ports or ()) or any(
                _pings(field, flow, family) for field in rule.icmps or ()
            )
        return _both(matched, rule.unknown_l4[0] if rule.unknown_l4 else True) if matched else False


ECHO_REQUEST = {4: 8, 6: 128}  # the type of a ping in ICMP and in ICMPv6


def _pings(field: IcmpField, flow: Flow, family: int | None) -> bool:
    """Whether an `icmps` field admits the flow, a ping (an echo request): the field's type is
    an echo request of its family (IPv4 by default), and that is the flow's IP version."""
    if flow.protocol != ICMP or (family is not None and field.family != family):
        return False
    return field.type in (ECHO_REQUEST[field.family], "EchoRequest")


def _port_matches(spec: CiliumPort, flow: Flow, target: Pod | None) -> bool:
    if flow.protocol == ICMP or (spec.protocol is not None and spec.protocol != flow.protocol):
        return False
    if spec.port is None:
        return True
    if isinstance(spec.port, str):
        protocols = [spec.protocol] if spec.protocol else list(L4Protocol)
        return target is not None and any(
            target.named_port(spec.port, p) == flow.port for p in protocols
        )
    return spec.port <= flow.port <= (spec.end_port or spec.port)
