"""A Service check looks behind the Service: each backend probed directly, beside the ClusterIP.

kube-proxy's DNAT hides which backend a connection reached, so one broken backend of three shows
only as intermittent failures of the ClusterIP. Probing each ready endpoint's own address at the
same time as the ClusterIP names the broken ones: their pods, their nodes, what is wrong.
"""

from __future__ import annotations

from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor

from hopscope_probe.models import (
    ConnectionStatus,
    EndpointResult,
    EndpointTarget,
    HopType,
    Issue,
    IssueType,
    Origin,
    PathMode,
    ProbeRequest,
    ProbeResult,
    Severity,
    context_of,
)

RunOne = Callable[[ProbeRequest], ProbeResult]
FAILING = (ConnectionStatus.UNREACHABLE, ConnectionStatus.DEGRADED)  # Unknown blames nobody
SOURCE_HEALTH = (IssueType.CPU, IssueType.MEMORY)  # the source's, said once for the check


def run_with_endpoints(request: ProbeRequest, run_one: RunOne) -> ProbeResult:
    """The check of `request.host`, with each of `request.endpoints` probed beside it."""
    targets = request.endpoints
    with ThreadPoolExecutor(max_workers=1 + len(targets), thread_name_prefix="endpoint") as pool:
        service = pool.submit(run_one, request.model_copy(update={"endpoints": []}))
        backends = [pool.submit(run_one, endpoint_request(request, t)) for t in targets]
        result = service.result()
        found = [endpoint_result(t, f.result()) for t, f in zip(targets, backends, strict=True)]
    return judge(result, found)


def endpoint_request(request: ProbeRequest, target: EndpointTarget) -> ProbeRequest:
    """The same check aimed at one backend: its own address and port, one flow, and a path
    traced only when it fails (ten healthy backends need no ten traces)."""
    return request.model_copy(
        update={
            "host": target.address,
            "port": target.port or request.port,
            "uri": None,
            "endpoints": [],
            "multipath": False,
            "source_port": 0,  # one fixed port cannot be bound by every probe at once
            "path_mode": PathMode.NEVER
            if request.path_mode == PathMode.NEVER
            else PathMode.ON_FAILURE,
        }
    )


def endpoint_result(target: EndpointTarget, result: ProbeResult) -> EndpointResult:
    return EndpointResult(
        **target.model_dump(),
        connection_status=result.connection_status,
        latency=result.latency,
        probes_sent=result.probes_sent,
        probes_failed=result.probes_failed,
        issues=[
            issue.model_copy(update={"hop_id": None})
            for issue in result.issues
            if issue.type not in SOURCE_HEALTH
        ],
    )


def describe(endpoint: EndpointResult) -> str:
    where = f"{endpoint.address}:{endpoint.port}" if endpoint.port else endpoint.address
    pod = f"pod {endpoint.pod}" if endpoint.pod else f"endpoint {where}"
    node = f" on node {endpoint.node}" if endpoint.node else ""
    shown = f" ({where})" if endpoint.pod else ""
    return f"{pod}{node}{shown}"


def judge(result: ProbeResult, endpoints: list[EndpointResult]) -> ProbeResult:
    """The check's result with its endpoints: Degraded, with one issue naming each failing
    backend, when the ClusterIP answered but some backend does not."""
    failing = [e for e in endpoints if e.connection_status in FAILING]
    if not failing:
        return result.model_copy(update={"endpoints": endpoints})
    reasons = "; ".join(
        f"{describe(e)} is {e.connection_status}" + (f": {e.issues[0].message}" if e.issues else "")
        for e in failing
    )
    some_work = len(failing) < len(endpoints)
    issue = Issue(
        type=IssueType.SERVICE_ENDPOINTS,
        severity=Severity.WARNING if some_work else Severity.ERROR,
        origin=Origin.INBOUND,
        hop_id=next((h.id for h in result.hops if h.type == HopType.DESTINATION), None),
        message=f"{len(failing)} of {len(endpoints)} endpoints probed fail: {reasons}",
        hint="The Service sends a share of its connections to these backends: check these pods "
        "(kubectl describe pod, their logs, a readiness probe that misses this failure) and "
        "their nodes' network.",
        context=context_of(
            failingPods=",".join(e.pod or e.address for e in failing),
            failingNodes=",".join(sorted({e.node for e in failing if e.node})),
            endpointsProbed=len(endpoints),
        ),
    )
    status = result.connection_status
    if status == ConnectionStatus.REACHABLE:
        status = ConnectionStatus.DEGRADED
    return result.model_copy(
        update={
            "endpoints": endpoints,
            "issues": [*result.issues, issue],
            "connection_status": status,
        }
    )
