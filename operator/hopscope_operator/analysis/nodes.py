"""Rules on the nodes at both ends: pressure, NetworkUnavailable, NotReady.

Contract: `rules(input) -> Findings`, pure. The source's node, then each destination node (the
destination node, the destination pod's node, or the nodes of the pods behind a Service), each
(node, side) once; a node missing from the snapshot (deleted) is skipped, its pods are
reported instead. Choices (the issue vocabulary has no disk or process type): MemoryPressure
and DiskPressure are `Memory`, PIDPressure is `CPU`, all warnings; NetworkUnavailable and a
NotReady node are `Routing`, an error, but a warning behind a Service (one sick endpoint of
several does not block).
"""

from __future__ import annotations

from hopscope_operator.analysis.inputs import (
    NODES,
    NOTHING,
    AnalysisInput,
    Findings,
    Manifest,
    Side,
    condition,
    evidence,
)
from hopscope_operator.analysis.services import endpoint_pods
from hopscope_probe.models import IssueType, Severity

# Node condition -> (issue type, what the node is short of) when the condition is True.
NODE_PRESSURE = {
    "MemoryPressure": (IssueType.MEMORY, "memory"),
    "DiskPressure": (IssueType.MEMORY, "disk space"),
    "PIDPressure": (IssueType.CPU, "process IDs"),
}


def destination_nodes(inp: AnalysisInput) -> list[str]:
    kind = inp.target_kind
    if kind == "node":
        assert inp.spec.destination.node is not None
        return [inp.spec.destination.node.name]
    if kind == "pod":
        node = (inp.destination_pod() or {}).get("spec", {}).get("nodeName")
        return [node] if node else []
    snap = inp.snapshot
    if kind == "service" and snap.service is not None:
        pods = endpoint_pods(inp, snap.service, snap.service_slices)
        return sorted({p["spec"]["nodeName"] for p in pods if p.get("spec", {}).get("nodeName")})
    return []


def rules(inp: AnalysisInput) -> Findings:
    if inp.unreadable(NODES):
        return NOTHING
    found = NOTHING
    ends: list[tuple[str, Side]] = [(inp.source.node_name, "source")]
    ends += [(name, "destination") for name in destination_nodes(inp)]
    for name, side in dict.fromkeys(ends):
        node = inp.snapshot.nodes.get(name) if name else None
        if node is not None:
            found += node_state(inp, name, node, side)
    return found


def node_state(inp: AnalysisInput, name: str, node: Manifest, side: Side) -> Findings:
    role = "source" if side == "source" else "destination"
    # Behind a Service a sick node is one of several endpoints: a warning, not a block.
    bad = Severity.WARNING if inp.target_kind == "service" and side != "source" else Severity.ERROR
    found = NOTHING
    for kind, (issue_type, what) in NODE_PRESSURE.items():
        pressure = condition(node, kind)
        if pressure and pressure.get("status") == "True":
            found += inp.issue(
                issue_type,
                Severity.WARNING,
                side,
                f"{role} node {name} reports {kind}: it is short of {what}",
                f"Free {what} on node {name} (kubectl describe node {name}); under pressure"
                " the kubelet evicts pods and processing slows.",
                evidence(node=name, condition=kind, message=pressure.get("message")),
            )
    unavailable = condition(node, "NetworkUnavailable")
    if unavailable and unavailable.get("status") == "True":
        found += inp.issue(
            IssueType.ROUTING,
            bad,
            side,
            f"{role} node {name} reports NetworkUnavailable: its pod network is not set up",
            f"Check the CNI plugin's pod on node {name} and its routes"
            f" (kubectl describe node {name}).",
            evidence(node=name, condition="NetworkUnavailable", reason=unavailable.get("reason")),
        )
    ready = condition(node, "Ready")
    if ready and ready.get("status") in ("False", "Unknown"):
        state = "NotReady" if ready["status"] == "False" else "not reporting (Ready Unknown)"
        said = ready.get("message") or ready.get("reason")
        found += inp.issue(
            IssueType.ROUTING,
            bad,
            side,
            f"{role} node {name} is {state}" + (f": {said}" if said else ""),
            f"Check the kubelet and the network of node {name} (kubectl describe node"
            f" {name}); pods on a NotReady node leave their Services' endpoints.",
            evidence(
                node=name, condition="Ready", status=ready["status"], reason=ready.get("reason")
            ),
        )
    return found
