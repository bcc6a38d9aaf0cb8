"""One check replayed: its flows as the operator's analysis judges them, each evaluated under two
sets of policy rules; what flips is kept.

The source is the pod the last run (of the current spec) started from while it exists, else the
spec resolved as the next run would (`controller/resolve.py`); the destination is the spec
resolved, with the addresses the last run's probe reached for a name only it resolves, and what
it names identified (`identify.judged`, as the reconciler does). The flows are the analysis'
(`analysis.policies.check_flows`): the connection to each target and the cluster DNS lookups.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from hopscope_operator.analysis.inputs import DNS, ENDPOINT_SLICES, PODS, SERVICE, AnalysisInput
from hopscope_operator.analysis.policies import FlowSet, check_flows, snapshot_pods
from hopscope_operator.api import ConnectivityCheck
from hopscope_operator.cluster import CLUSTER_CHECKS, ApiError, ClusterApi
from hopscope_operator.controller.analysis_cache import AnalysisCache
from hopscope_operator.controller.identify import judged
from hopscope_operator.controller.resolve import (
    ResolveError,
    pod_source,
    resolve_destination,
    resolve_source,
)
from hopscope_operator.controller.snapshot import SnapshotReader
from hopscope_operator.controller.view import ApiView
from hopscope_operator.resolved import ResolvedSource
from hopscope_policy import PolicyIndex, PolicyRules
from hopscope_policy.diff import Change, compare_flow

# The snapshot parts a replay needs (policies and namespaces are read by the command, once).
NEEDED = (PODS, SERVICE, ENDPOINT_SLICES, DNS)


@dataclass(frozen=True)
class Flip:
    change: Change
    dns: bool  # one of the check's cluster DNS lookups, not its connection


@dataclass(frozen=True)
class Flipped:
    check: ConnectivityCheck
    source: str
    destination: str
    flips: list[Flip]


@dataclass
class Replay:
    replayed: int = 0
    flipped: list[Flipped] = field(default_factory=list)
    not_replayed: list[tuple[str, str]] = field(default_factory=list)  # (check, why)


def check_name(kind: object, metadata: Mapping[str, Any]) -> str:
    """`namespace/name`, or `clusterconnectivitycheck/name` (cluster-scoped)."""
    if kind == CLUSTER_CHECKS.kind:
        return f"{CLUSTER_CHECKS.kind.lower()}/{metadata.get('name')}"
    return f"{metadata.get('namespace')}/{metadata.get('name')}"


def last_source(check: ConnectivityCheck, view: ApiView) -> ResolvedSource:
    """The pod the last run of the current spec started from while it exists (a workload or
    selector source may resolve to another pod by now), else the spec resolved as the next run
    would."""
    status = check.status
    current = status is not None and status.observed_generation == check.metadata.get("generation")
    ran = status.source if status is not None and current else None
    spec = check.spec.source
    ref = spec.pod or spec.workload
    if ran is not None and ran.pod and (ref is not None or spec.pod_selector is not None):
        namespace = (ref.namespace if ref is not None else None) or check.namespace
        pod = view.pod(namespace, ran.pod)
        if pod is not None and pod.get("spec", {}).get("nodeName"):
            kind = "workload" if spec.workload is not None else "pod"
            described = f"pod {namespace}/{ran.pod} (the last run's source)"
            return pod_source(kind, pod, check.spec.preferred_ip_version, described)
    return resolve_source(check, view)


def flows_of(
    check: ConnectivityCheck, view: ApiView, reader: SnapshotReader
) -> tuple[AnalysisInput, list[FlowSet]] | str:
    """The check's analysis input and flows, or why it cannot be replayed."""
    try:
        source = last_source(check, view)
        destination = resolve_destination(check, view)
        status = check.status
        probed = status.destination.addresses if status and status.destination else []
        destination = judged(check, source, destination, probed, reader)
    except (ResolveError, ApiError) as exc:
        return str(exc)
    snapshot = reader.snapshot(check, source, destination)
    missing = [f"{part} ({why})" for part, why in snapshot.unreadable.items() if part in NEEDED]
    if missing:
        return f"could not read {', '.join(missing)}"
    inp = AnalysisInput(check, source, destination, snapshot)
    flows = check_flows(inp)
    if flows is None:
        return f"its source, {source.description}, is not among the cluster's pods"
    return inp, flows


def replay_checks(
    checks: Sequence[ConnectivityCheck],
    api: ClusterApi,
    before: PolicyRules,
    after: PolicyRules,
    replay: Replay,
) -> None:
    # The operator's own caches, listed once (never watched: the command ends), cluster-wide
    # as a check's destination may be in any namespace; a kind the user may not list leaves
    # the checks that need it not replayed, saying why.
    cache = AnalysisCache(api, ())
    reader = SnapshotReader(cache, (), cache.sync())
    view = ApiView(api, reader)
    for check in checks:
        found = flows_of(check, view, reader)
        if isinstance(found, str):
            replay.not_replayed.append((check_name(check.kind, check.metadata), found))
            continue
        inp, flow_sets = found
        pods = snapshot_pods(inp)
        old, new = PolicyIndex(pods, before), PolicyIndex(pods, after)
        flips, seen = [], set()
        for flow_set in flow_sets:
            for flow in flow_set.flows():
                if flow in seen:  # a check of the DNS Service: its lookup is its connection
                    continue
                seen.add(flow)
                changes = compare_flow(old, new, flow).changes
                flips += [Flip(change, flow_set.dns) for change in changes]
        replay.replayed += 1
        if flips:
            where = inp.destination.description
            if inp.port:
                where += f":{inp.port}"
            replay.flipped.append(
                Flipped(check, inp.source.description, f"{where} {check.spec.protocol}", flips)
            )
