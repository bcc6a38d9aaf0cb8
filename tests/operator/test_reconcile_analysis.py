"""The tick writes static analysis beside the probe's result, on the in-memory API server.

The cluster (conftest's `healthy`) has what a real one has: kube-dns with a ready CoreDNS pod,
db with a pod and an EndpointSlice. A NetworkPolicy in shop isolates web for egress; the probe
sees a silent drop.
"""

from __future__ import annotations

from collections import Counter
from typing import Any

import pytest

from hopscope_operator.analysis import inputs as analysis
from hopscope_operator.cluster import NETWORK_POLICIES, ApiError
from hopscope_operator.controller.reconcile import Reconciler
from hopscope_probe.models import (
    ConnectionStatus,
    ContextItem,
    Hop,
    HopType,
    Issue,
    IssueCause,
    IssueType,
    Origin,
    ProbeResult,
    Severity,
)
from tests import builders

from . import test_reconcile as story
from .conftest import Clock
from .fakeapi import FakeApi
from .test_reconcile import apply_check, check, finish, probe_pods, run_once, source_pod

# Each story here is an RBAC test too (conftest's autouse fixture).
DEST_HOP = "dest-10.244.2.7"


@pytest.fixture
def reconciler(healthy: FakeApi) -> Reconciler:
    return story.make_reconciler(healthy, Clock())


def deny_web_egress(api: FakeApi) -> None:
    api.create(
        NETWORK_POLICIES,
        "shop",
        {
            "metadata": {"name": "web-egress"},
            "spec": {
                "podSelector": {"matchLabels": {"app": "web"}},
                "policyTypes": ["Egress"],
                # DNS is allowed: only the flow to db is denied.
                "egress": [{"ports": [{"port": 53, "protocol": "UDP"}, {"port": 53}]}],
            },
        },
    )


def dropped_at_the_destination() -> ProbeResult:
    hops = [
        Hop(id="source", type=HopType.SOURCE, address="10.244.1.5", ttl=0),
        Hop(id=DEST_HOP, type=HopType.DESTINATION, address="10.244.2.7", ttl=1),
    ]
    drop = Issue(
        type=IssueType.FIREWALL,
        severity=Severity.ERROR,
        origin=Origin.INBOUND,
        hop_id=DEST_HOP,
        message="TCP packets to 10.96.0.20:5432 are silently dropped at the destination",
        hint="A firewall drops this flow",
        context=[ContextItem(key="probes", value="10")],
        cause=IssueCause.SILENT_DROP,
    )
    return builders.result(
        ConnectionStatus.UNREACHABLE, host="10.96.0.20", hops=hops, issues=[drop]
    )


def test_a_policy_blocking_the_source_is_named_in_status_and_explains_the_drop(healthy, reconciler):
    source_pod(healthy)
    deny_web_egress(healthy)
    apply_check(healthy)
    status = run_once(healthy, reconciler, dropped_at_the_destination())["status"]

    analysis = status["analysis"]
    assert analysis["result"] == "Blocked"
    [denial] = analysis["issues"]
    assert denial["type"] == "NetworkPolicy" and denial["origin"] == "Outbound"
    assert {"key": "NetworkPolicy", "value": "shop/web-egress"} in denial["context"]
    assert "shop/web-0" in denial["message"] and "shop/db-0" in denial["message"]

    # One issue, not two: the probe's drop is the policy's denial, with its evidence kept.
    [issue] = status["issues"]
    assert issue["type"] == "NetworkPolicy" and issue["message"] == denial["message"]
    assert {"key": "probe.probes", "value": "10"} in issue["context"]
    assert status["connectionStatus"] == "Unreachable"


def test_a_healthy_cluster_is_allowed(healthy, reconciler):
    source_pod(healthy)
    apply_check(healthy)
    status = run_once(healthy, reconciler, dropped_at_the_destination())["status"]
    assert status["analysis"] == {"result": "Allowed", "issues": []}
    assert [i["type"] for i in status["issues"]] == ["Firewall"]


class Forbidden(ApiError):
    status = 403
    reason = "Forbidden"


def test_policies_the_operator_may_not_list_make_the_analysis_unknown_not_a_crash(
    healthy, reconciler
):
    source_pod(healthy)
    deny_web_egress(healthy)
    apply_check(healthy)
    original = healthy.list

    def forbidden(resource, namespace, labels=None):
        if resource == NETWORK_POLICIES:
            raise Forbidden("networkpolicies is forbidden: cannot list at the cluster scope")
        return original(resource, namespace, labels)

    healthy.list = forbidden
    status = run_once(healthy, reconciler, dropped_at_the_destination())["status"]
    healthy.list = original
    assert status["connectionStatus"] == "Unreachable"  # the run's result is still written
    assert status["analysis"]["result"] == "Unknown"
    [issue] = status["analysis"]["issues"]
    assert issue["type"] == "NetworkPolicy" and "forbidden" in issue["message"]


def test_a_bug_in_the_analysis_is_unknown_and_the_tick_goes_on(healthy, reconciler, monkeypatch):
    import hopscope_operator.controller.reconcile as reconcile

    def broken(*args: Any, **kw: Any) -> Any:
        raise RuntimeError("boom")

    monkeypatch.setattr(reconcile, "analyse", broken)
    source_pod(healthy)
    apply_check(healthy)
    status = run_once(healthy, reconciler, dropped_at_the_destination())["status"]
    assert status["analysis"]["result"] == "Unknown"
    assert "boom" in status["analysis"]["issues"][0]["message"]
    assert check(healthy)["status"]["runs"] == 1


def test_a_tick_parses_the_policies_once_for_all_its_checks_and_the_next_tick_anew(
    healthy, monkeypatch
):
    # Parsed per check, 1,000 checks over 1,000 NetworkPolicies cost 100 s of CPU per tick.
    parsed: Counter[str] = Counter()
    parse_policy = analysis.parse_policy

    def counting(policy: dict[str, Any]) -> Any:
        parsed[policy["metadata"]["name"]] += 1
        return parse_policy(policy)

    monkeypatch.setattr(analysis, "parse_policy", counting)
    clock = Clock()
    reconciler = story.make_reconciler(healthy, clock)
    source_pod(healthy)
    deny_web_egress(healthy)
    names = ("web-to-db", "web-to-db-2", "web-to-db-3")
    for name in names:
        apply_check(healthy, name, schedule={"intervalSeconds": 60})

    def run_all() -> list[str]:
        reconciler.tick()
        [pod] = probe_pods(healthy)
        result = dropped_at_the_destination()
        finish(healthy, pod, {item.id: result for item in story.batch_of(pod).checks})
        reconciler.tick()
        return [check(healthy, name)["status"]["analysis"]["result"] for name in names]

    assert run_all() == ["Blocked"] * 3
    assert parsed == {"web-egress": 1}
    # What one tick parsed is not kept: the next tick sees the policy gone.
    healthy.delete(NETWORK_POLICIES, "shop", "web-egress")
    clock.advance(120)
    assert run_all() == ["Allowed"] * 3
