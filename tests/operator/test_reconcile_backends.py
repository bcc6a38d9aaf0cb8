"""A Service check looks behind the Service: its ready endpoints travel to the probe with their
pods and nodes, and what the probe found of each lands in the status and the metrics.

The cluster is test_reconcile's, where Service db (ClusterIP 10.96.0.20) has three ready
backends on two nodes and one that is not ready; db-2's pod is broken (nothing listens). The
probing itself is on netlab (tests/netlab/test_service.py).
"""

from __future__ import annotations

import pytest

from hopscope_operator.cluster import CHECKS, ENDPOINT_SLICES, PODS
from hopscope_operator.controller.metrics import MetricsOptions
from hopscope_probe.backends import judge
from hopscope_probe.models import (
    ConnectionStatus,
    EndpointResult,
    EndpointTarget,
    Issue,
    IssueType,
    Latency,
    Origin,
    Severity,
)

from .conftest import Clock, running_pod
from .fakeapi import FakeApi
from .test_reconcile import (
    apply_check,
    batch_of,
    finish,
    make_reconciler,
    metric_lines,
    probe_pods,
    reachable_result,
    source_pod,
)

BACKENDS = {"db-0": "10.244.2.7", "db-1": "10.244.3.4", "db-2": "10.244.2.9"}
NODE = {"db-0": "worker-2", "db-1": "worker-1", "db-2": "worker-2"}


def three_backends(api: FakeApi) -> None:
    """db-1 and db-2 beside db-0, in a second slice listed in no order, and db-3 not ready."""
    for name in ("db-1", "db-2", "db-3"):
        address = BACKENDS.get(name, "10.244.1.99")
        running_pod(api, "shop", name, {"app": "db"}, address, ports=[{"containerPort": 5432}])
        api.stored(PODS, "shop", name)["spec"]["nodeName"] = NODE.get(name, "worker-1")
    api.stored(ENDPOINT_SLICES, "shop", "db-1")["endpoints"][0]["nodeName"] = "worker-2"
    endpoints = [
        {
            "addresses": [address],
            "conditions": {"ready": name != "db-3"},
            "nodeName": NODE.get(name, "worker-1"),
            "targetRef": {"kind": "Pod", "namespace": "shop", "name": name},
        }
        for name, address in (("db-2", BACKENDS["db-2"]), ("db-3", "10.244.1.99"),
                              ("db-1", BACKENDS["db-1"]))
    ]  # fmt: skip
    api.create(
        ENDPOINT_SLICES,
        "shop",
        {
            "metadata": {"name": "db-2", "labels": {"kubernetes.io/service-name": "db"}},
            "addressType": "IPv4",
            "endpoints": endpoints,
        },
    )


def probed(target: EndpointTarget) -> EndpointResult:
    """What the probe finds of a backend: db-2 refuses, the others answer."""
    if target.pod != "db-2":
        latency = Latency(min_ms=0.4, avg_ms=0.5, max_ms=0.6)
        return EndpointResult(
            **target.model_dump(), connection_status=ConnectionStatus.REACHABLE,
            latency=latency, probes_sent=4,
        )  # fmt: skip
    refused = Issue(
        type=IssueType.PORT_NOT_LISTENING, severity=Severity.ERROR, origin=Origin.INBOUND,
        message=f"nothing listens on TCP port 5432 at {target.address} (TCP reset)", hint="h",
    )  # fmt: skip
    return EndpointResult(
        **target.model_dump(), connection_status=ConnectionStatus.UNREACHABLE,
        probes_sent=4, probes_failed=4, issues=[refused],
    )  # fmt: skip


def test_a_service_check_probes_each_ready_backend_and_names_the_broken_pod_and_node(
    healthy: FakeApi,
) -> None:
    source_pod(healthy)
    three_backends(healthy)
    apply_check(healthy)
    reconciler = make_reconciler(healthy, Clock(), metrics=MetricsOptions(per_hop_series=True))
    reconciler.tick()
    [pod] = probe_pods(healthy)
    [item] = batch_of(pod).checks
    request = item.request
    assert request.host == "10.96.0.20"  # the ClusterIP, and beside it each ready backend:
    assert [(e.address, e.port, e.pod, e.node) for e in request.endpoints] == [
        ("10.244.2.7", 5432, "db-0", "worker-2"),
        ("10.244.2.9", 5432, "db-2", "worker-2"),
        ("10.244.3.4", 5432, "db-1", "worker-1"),
    ]  # ordered by address, the not-ready db-3 left out

    result = judge(reachable_result(), [probed(target) for target in request.endpoints])
    finish(healthy, pod, {item.id: result})
    reconciler.tick()

    status = healthy.get(CHECKS, "shop", "web-to-db")["status"]
    assert status["connectionStatus"] == "Degraded"
    by_pod = {e["pod"]: e for e in status["endpoints"]}
    assert {p: e["connectionStatus"] for p, e in by_pod.items()} == {
        "db-0": "Reachable",
        "db-2": "Unreachable",
        "db-1": "Reachable",
    }
    assert by_pod["db-2"]["node"] == "worker-2"
    assert by_pod["db-2"]["issues"][0]["type"] == "PortNotListening"
    [named] = [i for i in status["issues"] if i["type"] == "ServiceEndpoints"]
    assert named["message"].startswith(
        "1 of 3 endpoints probed fail: pod db-2 on node worker-2 (10.244.2.9:5432) is Unreachable"
    )
    reachable = metric_lines(reconciler, "hopscope_endpoint_reachable")
    assert len(reachable) == 3
    [broken] = [line for line in reachable if 'endpoint_pod="db-2"' in line]
    assert 'endpoint_node="worker-2"' in broken and broken.endswith(" 0.0")
    assert len(metric_lines(reconciler, "hopscope_endpoint_latency_seconds")) == 2


SERVICE_SPELLINGS = {
    "cluster-ip": {"destination": {"ip": "10.96.0.20", "port": 5432}},
    "full-name": {"destination": {"fqdn": "db.shop.svc.cluster.local", "port": 5432}},
    "search-list": {"destination": {"fqdn": "db", "port": 5432}},
    "uri": {"protocol": "HTTP", "destination": {"uri": "http://db.shop:5432/"}},
}


@pytest.mark.parametrize("spelling", SERVICE_SPELLINGS)
def test_a_service_spelled_by_its_cluster_ip_or_a_name_is_looked_behind_too(
    healthy: FakeApi, spelling: str
) -> None:
    """Issue 12 §3 and §5: however the check names db, its ready backends are probed."""
    source_pod(healthy)
    three_backends(healthy)
    apply_check(healthy, **SERVICE_SPELLINGS[spelling])
    make_reconciler(healthy, Clock()).tick()
    [pod] = probe_pods(healthy)
    [item] = batch_of(pod).checks
    assert [(e.address, e.port, e.pod, e.node) for e in item.request.endpoints] == [
        ("10.244.2.7", 5432, "db-0", "worker-2"),
        ("10.244.2.9", 5432, "db-2", "worker-2"),
        ("10.244.3.4", 5432, "db-1", "worker-1"),
    ]


def test_a_pod_address_is_no_service_and_has_no_backends(healthy: FakeApi) -> None:
    """Planning looks behind a Service only: a pod IP's check probes that pod alone."""
    source_pod(healthy)
    apply_check(healthy, destination={"ip": "10.244.2.7", "port": 5432})
    make_reconciler(healthy, Clock()).tick()
    [pod] = probe_pods(healthy)
    assert batch_of(pod).checks[0].request.endpoints == []
