"""The NetworkPolicy verdict of one flow, with the reason, from an index built once.

A flow is allowed when the source's egress and the destination's ingress both allow it. In each
direction a pod that no policy selects (for that policy type) is not isolated: everything passes.
An isolated pod admits a flow when any rule of any policy selecting it matches both the peer and
the port (the union of all policies; order never matters).

Choices where the API leaves room to implementations (documented so a verdict can be read):
- `ipBlock` matches any address in the block, pod IPs included (as the upstream conformance tests
  assume); a pod named by reference is seen at its primary IP (`status.podIPs[0]`).
- hostNetwork pods are never selected by a policy, and as peers they are node traffic: only an
  `ipBlock` (or a rule with no peers) matches them, never a pod or namespace selector.
- traffic into a pod from its own node (the pod's `status.hostIP`, or a hostNetwork pod on the
  same `spec.nodeName`) is always allowed, as the API reference states.
- a pod's traffic to itself stays on its loopback: always allowed.
- named ports resolve against the destination pod's container ports, on the rule's protocol; an
  address that is not a pod-network pod has no named ports.
- ICMP (a ping) has no port: a rule that lists ports never admits it, a rule without ports
  (every port and protocol) does, as CNIs that enforce policies treat it.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass, replace
from ipaddress import ip_address
from itertools import chain

from hopscope_policy.model import (
    NAMESPACE_NAME_LABEL,
    Direction,
    Flow,
    IPAddress,
    L4Protocol,
    Namespace,
    Peer,
    Pod,
    PodRef,
    Policy,
    PortSpec,
    Rule,
)
from hopscope_policy.selectors import show_labels
from hopscope_policy.tiers import Action, Decision, Endpoint, Node, RuleName, Tier

PORT = "port"
POD_SELECTOR = "podSelector"
NAMESPACE_SELECTOR = "namespaceSelector"
IP_BLOCK = "ipBlock"


class UnknownPod(LookupError):
    """A flow names a pod the index does not hold."""


@dataclass(frozen=True, slots=True)
class RuleRef:
    policy: str  # namespace/name
    direction: Direction
    rule: int  # index in the policy's ingress or egress list

    def __str__(self) -> str:
        return f"{self.policy} {self.direction.field}[{self.rule}]"


@dataclass(frozen=True, slots=True)
class NearMiss:
    """The rule that came closest: its peer matched but not its port, or the reverse."""

    rule: RuleRef
    missed: tuple[str, ...]  # "port", or the peer fields that did not match
    detail: str

    def __str__(self) -> str:
        return f"{self.rule}: {self.detail}"


@dataclass(frozen=True, slots=True)
class DirectionVerdict:
    direction: Direction
    allowed: bool
    reason: str
    policies: tuple[str, ...] = ()  # namespace/name of every policy isolating the pod this way
    admitted_by: RuleRef | None = None
    nearest_miss: NearMiss | None = None
    # What decided, with its kind, object and rule; None when no tier decided (default allow).
    decision: Decision | None = None

    @property
    def isolated(self) -> bool:
        return bool(self.policies)

    @property
    def unknown(self) -> bool:
        """A construct the evaluator does not model decides: neither allowed nor denied."""
        return self.decision is not None and self.decision.action is Action.UNKNOWN

    @property
    def rule(self) -> RuleName | None:
        return self.decision.rule if self.decision is not None else None


@dataclass(frozen=True, slots=True)
class Verdict:
    flow: Flow
    source: str  # namespace/pod, or the address when it is no pod
    destination: str
    egress: DirectionVerdict
    ingress: DirectionVerdict

    @property
    def allowed(self) -> bool:
        return self.egress.allowed and self.ingress.allowed

    @property
    def unknown(self) -> bool:
        """Not denied by either direction, and Unknown in one: the verdict cannot be given."""
        sides = (self.egress, self.ingress)
        denied = any(not side.allowed and not side.unknown for side in sides)
        return not denied and any(side.unknown for side in sides)

    @property
    def decided_by(self) -> RuleName | None:
        """The rule a user looks up: the one that denied (or is Unknown), else the ingress one."""
        for side in (self.egress, self.ingress):
            if not side.allowed and side.rule is not None:
                return side.rule
        return self.ingress.rule or self.egress.rule


class _Selecting:
    """One namespace's policies, bucketed by one matchLabels pair of their podSelector, so the
    policies that select a pod are found among a few candidates, not all of them."""

    def __init__(self, policies: Iterable[Policy]) -> None:
        self._unbucketed: list[Policy] = []
        self._by_label: dict[tuple[str, str], list[Policy]] = defaultdict(list)
        for policy in policies:
            if policy.pod_selector.match_labels:
                self._by_label[policy.pod_selector.match_labels[0]].append(policy)
            else:
                self._unbucketed.append(policy)

    def select(self, pod: Pod, direction: Direction) -> list[Policy]:
        buckets = (self._by_label.get(item, ()) for item in pod.labels.items())
        found = [
            policy
            for policy in chain(self._unbucketed, *buckets)
            if direction in policy.types and policy.pod_selector.matches(pod.labels)
        ]
        return sorted(found, key=lambda policy: policy.name)


class NodeIndex:
    """Nodes by address and by name: the node at a flow's end (a node IP, a hostNetwork pod)."""

    def __init__(self, nodes: Iterable[Node]) -> None:
        self.by_ip: dict[IPAddress, Node] = {}
        self.by_name: dict[str, Node] = {}
        for node in nodes:
            if node.name in self.by_name:
                raise ValueError(f"node {node.name} is given twice")
            self.by_name[node.name] = node
            for ip in node.ips:
                self.by_ip.setdefault(ip, node)


class PolicyRules:
    """Namespaces and policies, indexed once. Indexes over different pods can share them: the
    operator's checks in one tick read the same policies, each with its own few pods."""

    def __init__(
        self,
        namespaces: Iterable[Namespace],
        policies: Iterable[Policy],
        *,
        nodes: Iterable[Node] = (),
        chain: Callable[[Tier], list[Tier]] | None = None,
    ) -> None:
        """`nodes`: the cluster's nodes, which node peers and node selectors match; `chain`:
        the ordered tiers around the core one (`families.rules` builds it from the other
        families' objects); None: core NetworkPolicies alone."""
        self._ns_labels = {ns.name: ns.labels for ns in namespaces}
        self._chain = chain
        self.nodes = NodeIndex(nodes)
        by_namespace: dict[str, list[Policy]] = defaultdict(list)
        keys: set[str] = set()
        for policy in policies:
            if policy.key in keys:
                raise ValueError(f"NetworkPolicy {policy.key} is given twice")
            keys.add(policy.key)
            by_namespace[policy.namespace].append(policy)
        self._selecting = {ns: _Selecting(found) for ns, found in by_namespace.items()}

    def selecting(self, pod: Pod, direction: Direction) -> list[Policy]:
        """The policies that isolate this pod in this direction (none for hostNetwork pods)."""
        if pod.host_network or pod.ref.namespace not in self._selecting:
            return []
        return self._selecting[pod.ref.namespace].select(pod, direction)

    def chain(self, kubernetes: Tier) -> list[Tier]:
        return self._chain(kubernetes) if self._chain is not None else [kubernetes]

    def labels_of(self, namespace: str) -> Mapping[str, str]:
        labels = self._ns_labels.get(namespace)
        # A namespace with no manifest still carries the label the API server sets on all.
        return labels if labels is not None else {NAMESPACE_NAME_LABEL: namespace}


class PolicyIndex:
    """Pods over indexed policies; `evaluate` is then cheap per flow."""

    def __init__(
        self, pods: Iterable[Pod], rules: PolicyRules, *, nodes: Iterable[Node] | None = None
    ) -> None:
        """`nodes`: the nodes this index's flows may touch, where they are its own as its pods
        are (the operator's checks, each with its few nodes, share one tick's rules); None:
        the rules' nodes."""
        self.rules = rules
        self.nodes = rules.nodes if nodes is None else NodeIndex(nodes)
        self._pods: dict[PodRef, Pod] = {}
        self._by_ip: dict[IPAddress, Pod] = {}
        for pod in pods:
            if pod.ref in self._pods:
                raise ValueError(f"pod {pod.ref} is given twice")
            self._pods[pod.ref] = pod
            for ip in pod.ips:
                # hostNetwork pods share their node's address; a pod-network pod owns its own.
                if ip not in self._by_ip or self._by_ip[ip].host_network:
                    self._by_ip[ip] = pod
        self._kubernetes = NetworkPolicyTier(self)
        self._tiers = rules.chain(self._kubernetes)
        self._alone = self._tiers == [self._kubernetes]  # core NetworkPolicies only
        # A matrix asks for each pod often: its endpoint, and the policies selecting it.
        self._endpoints: dict[PodRef, Endpoint] = {}
        self._selecting: dict[tuple[Pod, Direction], list[Policy]] = {}
        self._last_core: tuple[tuple[object, ...], DirectionVerdict] | None = None
        self._terse_tiers: list[Tier] | None = None  # built by `outcome` when first asked

    @property
    def kubernetes(self) -> NetworkPolicyTier:
        """The core NetworkPolicy tier (in the chain, or held by a CNI family's tier)."""
        return self._kubernetes

    @property
    def tiers(self) -> list[Tier]:
        """The chain of tiers in evaluation order."""
        return list(self._tiers)

    @property
    def pods(self) -> list[Pod]:
        return sorted(self._pods.values(), key=lambda pod: (pod.ref.namespace, pod.ref.name))

    def pod(self, ref: PodRef) -> Pod:
        try:
            return self._pods[ref]
        except KeyError:
            raise UnknownPod(f"no pod {ref.name} in namespace {ref.namespace}") from None

    def selecting(self, pod: Pod, direction: Direction) -> list[Policy]:
        """`PolicyRules.selecting`, remembered per pod of this index."""
        found = self._selecting.get((pod, direction))
        if found is None:
            found = self._selecting[(pod, direction)] = self.rules.selecting(pod, direction)
        return found

    def endpoints(self, flow: Flow) -> tuple[Endpoint, Endpoint]:
        """The flow's source and destination as policies see them."""
        return self._end(flow.source), self._end(flow.destination)

    def endpoint(self, ref: PodRef) -> Endpoint:
        """A pod as policies see it, named by reference."""
        return self._end(ref)

    def evaluate(self, flow: Flow) -> Verdict:
        src, dst = self.endpoints(flow)
        if src.pod is not None and src.pod is dst.pod:
            reason = "a pod's traffic to itself stays on its loopback: NetworkPolicy does not apply"
            egress = DirectionVerdict(Direction.EGRESS, True, reason)
            ingress = DirectionVerdict(Direction.INGRESS, True, reason)
        else:
            egress = self.chain_verdict(Direction.EGRESS, src, dst, flow, dst.selectable)
            ingress = self.chain_verdict(Direction.INGRESS, dst, src, flow, dst.selectable)
        return Verdict(flow, str(src), str(dst), egress, ingress)

    def matrix(
        self, port: int, protocol: L4Protocol = L4Protocol.TCP
    ) -> dict[str, dict[str, bool | None]]:
        """Every pod to every pod, the source as the outer key: the conformance tests' table.
        None marks an Unknown verdict (a construct the evaluator does not model decides)."""
        refs = [pod.ref for pod in self.pods]
        return {
            str(src): {
                str(dst): _outcome(self.evaluate(Flow(src, dst, port, protocol))) for dst in refs
            }
            for src in refs
        }

    def _end(self, endpoint: PodRef | IPAddress) -> Endpoint:
        if not isinstance(endpoint, PodRef):
            return self._new_end(endpoint)
        known = self._endpoints.get(endpoint)
        if known is None:
            known = self._endpoints[endpoint] = self._new_end(endpoint)
        return known

    def _new_end(self, endpoint: PodRef | IPAddress) -> Endpoint:
        if isinstance(endpoint, PodRef):
            pod: Pod | None = self.pod(endpoint)
            ip = pod.ips[0] if pod.ips else None
        else:
            ip = ip_address(endpoint)
            pod = self._by_ip.get(ip)
        node = self.nodes.by_ip.get(ip) if ip is not None else None
        if pod is None:
            return Endpoint(ip, None, None, node)
        if pod.host_network and node is None and pod.node is not None:
            node = self.nodes.by_name.get(pod.node)
        return Endpoint(ip, pod, self.rules.labels_of(pod.ref.namespace), node)

    def chain_verdict(
        self,
        direction: Direction,
        subject: Endpoint,
        peer: Endpoint,
        flow: Flow,
        target: Pod | None,
    ) -> DirectionVerdict:
        """The first decision of the ordered tiers that is not a Pass (tiers.py), with the
        core NetworkPolicy explanation (isolating policies, nearest miss) alongside."""
        core = self.direction_verdict(direction, subject, peer, flow, target)
        if self._alone:
            return replace(core, decision=self._kubernetes.decision_of(core, direction))
        passed: list[str] = []
        for tier in self._tiers:
            if tier is self._kubernetes:
                decision = self._kubernetes.decision_of(core, direction)
            else:
                decision = tier.decide(direction, subject, peer, flow, target)
            if decision is None:
                continue
            if decision.action is Action.PASS:
                passed.append(decision.reason)
                continue
            if tier is self._kubernetes:
                reason = "; ".join([*passed, core.reason])
                return replace(core, reason=reason, decision=decision)
            return DirectionVerdict(
                direction,
                decision.action is Action.ALLOW,
                "; ".join([*passed, decision.reason]),
                core.policies,
                decision=decision,
            )
        reason = "; ".join([*passed, core.reason]) + "; no rule matched: default allow"
        return replace(core, allowed=True, reason=reason, admitted_by=None, decision=None)

    def direction_verdict(
        self,
        direction: Direction,
        subject: Endpoint,
        peer: Endpoint,
        flow: Flow,
        target: Pod | None,
    ) -> DirectionVerdict:
        """Whether `subject` may send (egress) or receive (ingress) this flow from/to `peer`.

        `target` is the destination pod whose container ports name the flow's port.
        """
        # `chain_verdict` asks first, then a CNI's tier holding the core one asks again.
        asked = (direction, subject, peer, flow, target)
        last = self._last_core
        if last is not None and all(a is b for a, b in zip(asked, last[0], strict=True)):
            return last[1]
        verdict = self._direction_verdict(direction, subject, peer, flow, target)
        self._last_core = (asked, verdict)
        return verdict

    def _direction_verdict(
        self,
        direction: Direction,
        subject: Endpoint,
        peer: Endpoint,
        flow: Flow,
        target: Pod | None,
    ) -> DirectionVerdict:
        word = direction.field
        if subject.pod is None:
            return DirectionVerdict(
                direction, True, f"{subject} is not a pod: no NetworkPolicy governs its {word}"
            )
        pod = subject.pod
        if pod.host_network:
            return DirectionVerdict(
                direction, True, f"{pod.ref} uses hostNetwork: policies never select it"
            )
        policies = self.selecting(pod, direction)
        names = tuple(policy.key for policy in policies)
        if not policies:
            reason = f"{pod.ref} is not isolated for {word}: no NetworkPolicy selects it for {word}"
            return DirectionVerdict(direction, True, reason)
        isolated = f"{pod.ref} is isolated for {word} by {_policy_list(names)}"
        if direction is Direction.INGRESS and _from_own_node(peer, pod):
            reason = f"{isolated}, but {peer} is on the pod's own node, which is always let in"
            return DirectionVerdict(direction, True, reason, names)
        ref = self._admitting(policies, direction, peer, flow, target)
        if ref is not None:
            return DirectionVerdict(direction, True, f"{isolated}; {ref} admits it", names, ref)
        if not any(policy.rules(direction) for policy in policies):
            they = "it has" if len(names) == 1 else "they have"
            reason = f"{isolated} and no rule matches ({they} no {word} rules)"
            return DirectionVerdict(direction, False, reason, names)
        miss = self._nearest_miss(policies, direction, peer, flow, target)
        reason = f"{isolated} and no rule matches" + (f"; nearest miss: {miss}" if miss else "")
        return DirectionVerdict(direction, False, reason, names, nearest_miss=miss)

    def outcome(
        self,
        direction: Direction,
        subject: Endpoint,
        peer: Endpoint,
        flow: Flow,
        target: Pod | None,
    ) -> Action:
        """The action `chain_verdict` decides (Allow, Deny or Unknown), without building its
        explanation: what `diff` compares over a whole matrix."""
        if self._alone:
            return self._core_action(direction, subject, peer, flow, target) or Action.ALLOW
        if self._terse_tiers is None:  # the same chain around a core tier that gives no reasons
            self._terse_tiers = self.rules.chain(_TerseNetworkPolicyTier(self))
        for tier in self._terse_tiers:
            decision = tier.decide(direction, subject, peer, flow, target)
            if decision is not None and decision.action is not Action.PASS:
                return decision.action
        return Action.ALLOW  # no tier decided: default allow

    def _core_action(
        self,
        direction: Direction,
        subject: Endpoint,
        peer: Endpoint,
        flow: Flow,
        target: Pod | None,
    ) -> Action | None:
        """The core tier's action as `direction_verdict` decides it; None: not isolated."""
        pod = subject.pod
        if pod is None or pod.host_network:
            return None
        policies = self.selecting(pod, direction)
        if not policies:
            return None
        if direction is Direction.INGRESS and _from_own_node(peer, pod):
            return Action.ALLOW
        admitted = self._admitting(policies, direction, peer, flow, target)
        return Action.DENY if admitted is None else Action.ALLOW

    def _admitting(
        self,
        policies: list[Policy],
        direction: Direction,
        peer: Endpoint,
        flow: Flow,
        target: Pod | None,
    ) -> RuleRef | None:
        """The first rule of the isolating policies that matches both the peer and the port."""
        for policy in policies:
            for i, rule in enumerate(policy.rules(direction)):
                if not (
                    self._ports_miss(rule, flow, target) or self._peers_miss(rule, policy, peer)
                ):
                    return RuleRef(policy.key, direction, i)
        return None

    # --- matching: each returns what missed, empty when it matches ---

    def _ports_miss(self, rule: Rule, flow: Flow, target: Pod | None) -> bool:
        return bool(rule.ports) and not any(
            _port_matches(spec, flow, target) for spec in rule.ports
        )

    def _peers_miss(self, rule: Rule, policy: Policy, end: Endpoint) -> tuple[str, ...]:
        """The fields missed by the closest peer of the rule; () when a peer matches."""
        closest: tuple[str, ...] | None = None
        for peer in rule.peers:
            missed = self._peer_misses(peer, policy.namespace, end)
            if not missed:
                return ()
            if closest is None or len(missed) < len(closest):
                closest = missed
        return closest or ()

    def _peer_misses(self, peer: Peer, namespace: str, end: Endpoint) -> tuple[str, ...]:
        if peer.ip_block is not None:
            return () if end.ip is not None and peer.ip_block.contains(end.ip) else (IP_BLOCK,)
        pod = end.selectable
        if pod is None:  # an outside address or node traffic: no selector can match it
            return (POD_SELECTOR,) if peer.pod_selector is not None else (NAMESPACE_SELECTOR,)
        missed = []
        if peer.namespace_selector is None:  # a podSelector alone looks in the policy's namespace
            if pod.ref.namespace != namespace:
                missed.append(NAMESPACE_SELECTOR)
        elif not peer.namespace_selector.matches(self.rules.labels_of(pod.ref.namespace)):
            missed.append(NAMESPACE_SELECTOR)
        if peer.pod_selector is not None and not peer.pod_selector.matches(pod.labels):
            missed.append(POD_SELECTOR)
        return tuple(missed)

    # --- explanation of a denial ---

    def _nearest_miss(
        self,
        policies: list[Policy],
        direction: Direction,
        peer: Endpoint,
        flow: Flow,
        target: Pod | None,
    ) -> NearMiss | None:
        """The rule that missed on one side only (peer or port), fewest missed fields first."""
        best: tuple[tuple[str, ...], Policy, int] | None = None
        for policy in policies:
            for i, rule in enumerate(policy.rules(direction)):
                port_missed = self._ports_miss(rule, flow, target)
                peer_missed = self._peers_miss(rule, policy, peer)
                if port_missed and peer_missed:
                    continue
                missed = (PORT,) if port_missed else peer_missed
                if best is None or len(missed) < len(best[0]):
                    best = (missed, policy, i)
        if best is None:
            return None
        missed, policy, i = best
        rule = policy.rules(direction)[i]
        if missed == (PORT,):
            allows = ", ".join(_show_port(spec, target) for spec in rule.ports)
            detail = (
                f"{peer} matches the rule's peers but not its ports: it allows {allows}; "
                f"the flow is {flow.service}"
            )
        else:
            detail = "the port matches but " + self._peer_detail(rule, policy, direction, peer)
        return NearMiss(RuleRef(policy.key, direction, i), missed, detail)

    def _peer_detail(self, rule: Rule, policy: Policy, direction: Direction, end: Endpoint) -> str:
        j, peer = min(
            enumerate(rule.peers),
            key=lambda item: len(self._peer_misses(item[1], policy.namespace, end)),
        )
        at = f"{direction.peers_field}[{j}]"
        return f"{at} does not: " + "; ".join(self._explain_peer(peer, policy.namespace, end))

    def _explain_peer(self, peer: Peer, namespace: str, end: Endpoint) -> Iterator[str]:
        if peer.ip_block is not None:
            block = peer.ip_block
            if end.ip is None:
                yield f"{end} has no known address to compare with ipBlock {block}"
            elif end.ip in block.cidr:
                yield f"{end.ip} is excluded by ipBlock {block}"
            else:
                yield f"{end.ip} is outside ipBlock {block}"
            return
        pod = end.selectable
        if pod is None:
            what = "a hostNetwork pod (node traffic)" if end.pod is not None else "not a pod"
            yield f"{end} is {what}, which only an ipBlock peer matches"
            return
        ns = pod.ref.namespace
        for missed in self._peer_misses(peer, namespace, end):
            if missed == NAMESPACE_SELECTOR and peer.namespace_selector is None:
                yield (
                    f"with no namespaceSelector it selects pods in {namespace} only, "
                    f"and {pod.ref} is in {ns}"
                )
            elif missed == NAMESPACE_SELECTOR:
                labels = show_labels(self.rules.labels_of(ns))
                yield (
                    f"namespace {ns} ({labels}) does not match "
                    f"namespaceSelector {peer.namespace_selector}"
                )
            else:
                yield (
                    f"{pod.ref} ({show_labels(pod.labels)}) does not match "
                    f"podSelector {peer.pod_selector}"
                )


class NetworkPolicyTier:
    """Core NetworkPolicies as a tier: they decide for a pod they isolate in that direction (a
    rule admits the flow, or nothing does: the isolation's default deny); otherwise None."""

    KIND = "NetworkPolicy"

    def __init__(self, index: PolicyIndex) -> None:
        self._index = index

    def decide(
        self,
        direction: Direction,
        subject: Endpoint,
        peer: Endpoint,
        flow: Flow,
        target: Pod | None,
    ) -> Decision | None:
        return self.decision_of(
            self._index.direction_verdict(direction, subject, peer, flow, target), direction
        )

    def decision_of(self, verdict: DirectionVerdict, direction: Direction) -> Decision | None:
        """The tier's answer from the core verdict of this direction."""
        if not verdict.isolated:
            return None
        if verdict.admitted_by is not None:
            admitted = verdict.admitted_by
            rule = RuleName(self.KIND, admitted.policy, f"{direction.field}[{admitted.rule}]")
            return Decision(Action.ALLOW, verdict.reason, rule)
        if verdict.allowed:  # from the pod's own node: no object states it
            return Decision(Action.ALLOW, verdict.reason)
        return Decision(
            Action.DENY,
            f"{verdict.reason}: default deny of the isolation",
            RuleName(self.KIND, verdict.policies[0]),
        )


class _TerseNetworkPolicyTier(NetworkPolicyTier):
    """The core tier deciding with its action alone (no reason, no rule): `outcome` reads only
    the action, and a denial's explanation (the nearest miss) costs more than the verdict."""

    def decide(
        self,
        direction: Direction,
        subject: Endpoint,
        peer: Endpoint,
        flow: Flow,
        target: Pod | None,
    ) -> Decision | None:
        action = self._index._core_action(direction, subject, peer, flow, target)
        return None if action is None else Decision(action, "")


def _outcome(verdict: Verdict) -> bool | None:
    return None if verdict.unknown else verdict.allowed


def _port_matches(spec: PortSpec, flow: Flow, target: Pod | None) -> bool:
    if spec.protocol != flow.protocol:  # ICMP never equals a port's protocol
        return False
    if spec.port is None:
        return True
    if isinstance(spec.port, str):
        return target is not None and target.named_port(spec.port, spec.protocol) == flow.port
    return spec.port <= flow.port <= (spec.end_port or spec.port)


def _show_port(spec: PortSpec, target: Pod | None) -> str:
    """A rule's port as written, with a named port's meaning on this destination."""
    if not isinstance(spec.port, str):
        return str(spec)
    if target is None:
        return f"{spec} (named ports exist only on pod-network pods)"
    number = target.named_port(spec.port, spec.protocol)
    if number is None:
        return f"{spec} (no {spec.protocol} container port of {target.ref} is named {spec.port})"
    return f"{spec} (= {number} on {target.ref})"


def _from_own_node(peer: Endpoint, pod: Pod) -> bool:
    if peer.ip is not None and peer.ip == pod.host_ip:
        return True
    other = peer.pod
    return (
        other is not None
        and other.host_network
        and other.node is not None
        and (other.node == pod.node)
    )


def _policy_list(names: tuple[str, ...]) -> str:
    return f"policy {names[0]}" if len(names) == 1 else f"policies {', '.join(names)}"
