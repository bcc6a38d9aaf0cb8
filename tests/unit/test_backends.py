"""The verdict of a Service check from its backends' own results (the probing is on netlab)."""

from __future__ import annotations

from hopscope_probe.backends import judge
from hopscope_probe.models import (
    ConnectionStatus,
    DestinationInfo,
    EndpointResult,
    IssueType,
    ProbeResult,
    Protocol,
    Severity,
)

REACHABLE, UNREACHABLE = ConnectionStatus.REACHABLE, ConnectionStatus.UNREACHABLE


def service(status: ConnectionStatus = REACHABLE) -> ProbeResult:
    return ProbeResult(
        connection_status=status,
        protocol=Protocol.TCP,
        destination=DestinationInfo(host="10.96.0.10", port=80),
    )


def endpoint(pod: str, status: ConnectionStatus) -> EndpointResult:
    return EndpointResult(
        address=f"10.0.0.{len(pod)}", port=8080, pod=pod, node=f"node-{pod}",
        connection_status=status,
    )  # fmt: skip


def test_healthy_backends_change_nothing_but_are_listed():
    backends = [endpoint("a", REACHABLE), endpoint("bb", REACHABLE)]
    judged = judge(service(), backends)
    assert judged.connection_status == REACHABLE and not judged.issues
    assert judged.endpoints == backends


def test_a_probe_that_could_not_judge_a_backend_blames_nobody():
    judged = judge(service(), [endpoint("a", REACHABLE), endpoint("bb", ConnectionStatus.UNKNOWN)])
    assert judged.connection_status == REACHABLE and not judged.issues


def test_every_backend_failing_is_an_error_and_keeps_an_unreachable_verdict():
    judged = judge(service(UNREACHABLE), [endpoint("a", UNREACHABLE), endpoint("bb", UNREACHABLE)])
    assert judged.connection_status == UNREACHABLE
    [issue] = judged.issues
    assert (issue.type, issue.severity) == (IssueType.SERVICE_ENDPOINTS, Severity.ERROR)
    assert issue.message.startswith("2 of 2 endpoints probed fail: pod a on node node-a")
