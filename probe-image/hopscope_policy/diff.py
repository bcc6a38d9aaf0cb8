"""What a policy change breaks: the flows whose verdict differs between two sets of manifests.

Both sets are complete states (today's folder and the proposed one), so a deleted policy is a
file that is gone. Flows are compared between pods both sets hold.

Only flows whose verdict could change are evaluated. With the same pods, namespaces and nodes on
both sides, a direction's verdict depends only on the peer (unchanged) and on what selects its
subject pod in that direction in each tier of the chain (core NetworkPolicies, the cluster-wide
tiers, Cilium's or Calico's: each tier's `selection`): when that is the same content on both
sides, the verdict is the same. So a flow is evaluated only when its source's egress selection
or its destination's ingress selection differs; any change to a pod, a namespace or a node
(labels, addresses, ports) is compared on every pair, as it can change what any peer selector
matches, and so is every pair when a tier cannot state its selection.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from typing import Any

from hopscope_policy.evaluate import DirectionVerdict, NetworkPolicyTier, PolicyIndex, Verdict
from hopscope_policy.model import Direction, Flow, L4Protocol, Pod, PodRef, Policy
from hopscope_policy.tiers import Action, Endpoint, Selective


@dataclass(frozen=True, slots=True)
class Change:
    flow: Flow
    before: Verdict
    after: Verdict

    def directions(self) -> Iterator[tuple[DirectionVerdict, DirectionVerdict]]:
        """The directions (egress, ingress) whose outcome or deciding rule changed."""
        for old, new in (
            (self.before.egress, self.after.egress),
            (self.before.ingress, self.after.ingress),
        ):
            if old.allowed != new.allowed or decided_by(old) != decided_by(new):
                yield old, new


@dataclass(frozen=True, slots=True)
class Diff:
    changes: list[Change]
    pairs: int  # pod pairs both sets hold (or 1 for a given flow)
    evaluated: int  # of those, how many were evaluated; the rest are provably unchanged
    only_in: dict[str, list[PodRef]]  # "current"/"proposed": pods whose flows are not compared


def outcome(verdict: Verdict) -> str:
    if verdict.unknown:
        return "unknown"
    return "allowed" if verdict.allowed else "denied"


def decided_by(side: DirectionVerdict) -> str:
    """What decided this direction, as a user looks it up."""
    if side.rule is not None and side.rule.kind != NetworkPolicyTier.KIND:
        return str(side.rule)  # a cluster-wide or CNI policy's rule
    if side.admitted_by is not None:
        ref = side.admitted_by
        return f"NetworkPolicy {ref.policy} {ref.direction.field}[{ref.rule}]"
    if not side.isolated:
        return "no NetworkPolicy selects it: default allow"
    kind = "NetworkPolicy" if len(side.policies) == 1 else "NetworkPolicies"
    policies = ", ".join(side.policies)
    if side.allowed:  # from the pod's own node: no rule admits it, the API always lets it in
        return f"isolated by {kind} {policies}, but from its own node: always allowed"
    return f"{kind} {policies}: default deny of the isolation (no rule admits it)"


def compare_flow(before: PolicyIndex, after: PolicyIndex, flow: Flow) -> Diff:
    old, new = before.evaluate(flow), after.evaluate(flow)
    changes = [Change(flow, old, new)] if outcome(old) != outcome(new) else []
    return Diff(changes, 1, 1, {})


def compare_matrix(
    before: PolicyIndex, after: PolicyIndex, port: int, protocol: L4Protocol
) -> Diff:
    """Every pod to every pod both sets hold, on one port; unchanged flows are skipped."""
    old_pods = {pod.ref: pod for pod in before.pods}
    new_pods = {pod.ref: pod for pod in after.pods}
    refs = [ref for ref in old_pods if ref in new_pods]  # sorted, as PolicyIndex.pods is
    only_in = {
        "current": [ref for ref in old_pods if ref not in new_pods],
        "proposed": [ref for ref in new_pods if ref not in old_pods],
    }
    old_tiers, new_tiers = _selective(before), _selective(after)
    everything = old_tiers is None or new_tiers is None
    everything |= any(not _same_pod(old_pods[ref], new_pods[ref]) for ref in refs) or any(
        before.rules.labels_of(ns) != after.rules.labels_of(ns)
        for ns in {ref.namespace for ref in refs}
    )
    everything |= _nodes(before) != _nodes(after)
    changed = {
        direction: {
            ref
            for ref in refs
            if everything
            or _selection(before, old_tiers or [], ref, direction)
            != _selection(after, new_tiers or [], ref, direction)
        }
        for direction in Direction
    }
    egress, ingress = changed[Direction.EGRESS], changed[Direction.INGRESS]
    into_changed = [ref for ref in refs if ref in ingress]
    changes, evaluated = [], 0
    for src in refs:
        out_changed = src in egress
        for dst in refs if out_changed else into_changed:
            if src == dst:  # a pod's traffic to itself never meets a policy
                continue
            evaluated += 1
            flow = Flow(src, dst, port, protocol)
            if _flips(before, after, flow, out_changed, dst in ingress):
                changes.append(Change(flow, before.evaluate(flow), after.evaluate(flow)))
    return Diff(changes, len(refs) ** 2, evaluated, only_in)


def _combined(egress: Action, ingress: Action) -> Action:
    """The flow's outcome from its directions' (as `Verdict.unknown` and `outcome` read them)."""
    if Action.DENY in (egress, ingress):
        return Action.DENY
    return Action.UNKNOWN if Action.UNKNOWN in (egress, ingress) else Action.ALLOW


def _flips(
    before: PolicyIndex, after: PolicyIndex, flow: Flow, egress_changed: bool, ingress_changed: bool
) -> bool:
    """Whether the flow's outcome differs, evaluating an unchanged direction once, and only when
    the changed one differs (the matrix's cost is this function)."""
    old_src, old_dst = before.endpoints(flow)
    new_src, new_dst = after.endpoints(flow)

    def egress(index: PolicyIndex, src: Endpoint, dst: Endpoint) -> Action:
        return index.outcome(Direction.EGRESS, src, dst, flow, dst.selectable)

    def ingress(index: PolicyIndex, src: Endpoint, dst: Endpoint) -> Action:
        return index.outcome(Direction.INGRESS, dst, src, flow, dst.selectable)

    if not egress_changed:
        old_in, new_in = ingress(before, old_src, old_dst), ingress(after, new_src, new_dst)
        if old_in == new_in:
            return False
        out = egress(before, old_src, old_dst)
        return _combined(out, old_in) != _combined(out, new_in)
    old_out, new_out = egress(before, old_src, old_dst), egress(after, new_src, new_dst)
    if not ingress_changed:
        if old_out == new_out:
            return False
        into = ingress(before, old_src, old_dst)
        return _combined(old_out, into) != _combined(new_out, into)
    old_in, new_in = ingress(before, old_src, old_dst), ingress(after, new_src, new_dst)
    return _combined(old_out, old_in) != _combined(new_out, new_in)


def _selective(index: PolicyIndex) -> list[Selective] | None:
    """The tiers beside the core one, if every one can say what selects a subject (a tier
    that cannot is compared on every pair: None)."""
    others = [tier for tier in index.tiers if tier is not index.kubernetes]
    selective = [tier for tier in others if isinstance(tier, Selective)]
    return selective if len(selective) == len(others) else None


def _selection(
    index: PolicyIndex, tiers: list[Selective], ref: PodRef, direction: Direction
) -> list[object]:
    """What a direction's verdict for this pod rests on, besides its peer: the content of what
    selects it in each tier (tiers selecting nothing left out: they hand the flow on)."""
    # The core policies count even where a CNI's tier holds them in place of their own tier.
    core = index.selecting(index.pod(ref), direction)
    found: list[object] = [tuple(_policy_content(policy) for policy in core)]
    subject = index.endpoint(ref)
    for tier in tiers:
        if selected := tier.selection(direction, subject):
            found.append((type(tier).__name__, getattr(tier, "tier", None), selected))
    return found


def _nodes(index: PolicyIndex) -> dict[str, tuple[object, ...]]:
    return {name: (dict(node.labels), node.ips) for name, node in index.nodes.by_name.items()}


def _policy_content(policy: Policy) -> tuple[Any, ...]:
    # Policy compares by identity; the same policy read by two loads compares by content.
    return (
        policy.namespace,
        policy.name,
        policy.pod_selector,
        policy.types,
        policy.ingress,
        policy.egress,
    )


def _same_pod(old: Pod, new: Pod) -> bool:
    def content(pod: Pod) -> tuple[Any, ...]:
        return (
            dict(pod.labels),
            pod.ips,
            pod.ports,
            pod.host_network,
            pod.node,
            pod.host_ip,
        )

    return content(old) == content(new)


def change_json(change: Change) -> dict[str, Any]:
    flow = change.flow
    return {
        "from": change.before.source,
        "to": change.before.destination,
        "port": flow.port,
        "protocol": str(flow.protocol),
        "before": _verdict_json(change.before),
        "after": _verdict_json(change.after),
    }


def _verdict_json(verdict: Verdict) -> dict[str, Any]:
    def side(part: DirectionVerdict) -> Mapping[str, Any]:
        return {"allowed": part.allowed, "decided_by": decided_by(part), "reason": part.reason}

    return {
        "verdict": outcome(verdict),
        "egress": side(verdict.egress),
        "ingress": side(verdict.ingress),
    }
