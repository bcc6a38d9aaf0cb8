"""One destination, every spelling, one verdict (issue 12 §3), on the in-memory API server.

The cluster (conftest's `healthy`): web-0 in shop, db (ClusterIP 10.96.0.20) selecting db-0
(10.244.2.7), and a headless Service db-peers whose pod db-0 is `db-0.db-peers`. A deny-all
ingress policy isolates db-0. Whichever way a check names db or db-0 — the Service, its
ClusterIP, any of its DNS names, a URI, the pod, its IP, its pod DNS name, the headless
Service's names — the analysis says Blocked and names the policy.
"""

from __future__ import annotations

from typing import Any

import pytest

from hopscope_operator.cluster import NETWORK_POLICIES, PODS, SERVICES
from hopscope_operator.controller.reconcile import Reconciler
from hopscope_probe.models import ConnectionStatus, Hop, HopType, ProbeResult
from tests import builders

from . import test_reconcile as story
from .conftest import Clock, endpoint_slice
from .fakeapi import FakeApi
from .test_reconcile import apply_check, run_once, source_pod
from .test_reconcile_analysis import Forbidden

POLICY = "shop/db-deny-ingress"
DB_IP, CLUSTER_IP = "10.244.2.7", "10.96.0.20"


@pytest.fixture
def reconciler(healthy: FakeApi) -> Reconciler:
    return story.make_reconciler(healthy, Clock())


def deny_db_ingress(api: FakeApi) -> None:
    api.create(
        NETWORK_POLICIES,
        "shop",
        {
            "metadata": {"name": "db-deny-ingress"},
            "spec": {"podSelector": {"matchLabels": {"app": "db"}}, "policyTypes": ["Ingress"]},
        },
    )


def headless_peers(api: FakeApi) -> None:
    """db-peers: headless, selecting db-0, which names itself db-0.db-peers (a StatefulSet's)."""
    api.create(
        SERVICES,
        "shop",
        {
            "metadata": {"name": "db-peers"},
            "spec": {"clusterIP": "None", "selector": {"app": "db"}, "ports": [{"port": 5432}]},
        },
    )
    endpoint_slice(api, "shop", "db-peers", "db-0", DB_IP)
    pod = api.stored(PODS, "shop", "db-0")
    pod["spec"].update(hostname="db-0", subdomain="db-peers")


@pytest.fixture
def denied(healthy: FakeApi) -> FakeApi:
    source_pod(healthy)
    headless_peers(healthy)
    deny_db_ingress(healthy)
    return healthy


def unreachable(resolved: str) -> ProbeResult:
    """The probe's run: no answer, the name (if any) resolved to `resolved`."""
    hops = [Hop(id="source", type=HopType.SOURCE, address="10.244.1.5", ttl=0)]
    return builders.result(ConnectionStatus.UNREACHABLE, host=resolved, hops=hops)


PORT = 5432


def at(**destination: Any) -> dict[str, Any]:
    return {"destination": {**destination, "port": PORT}}


def uri(host: str) -> dict[str, Any]:
    return {"protocol": "HTTP", "destination": {"uri": f"http://{host}:{PORT}/"}}


SPELLINGS: dict[str, tuple[dict[str, Any], str]] = {
    # id: (spec fields, the address the probe's lookup returns)
    "service": (at(service={"name": "db"}), CLUSTER_IP),
    "service-in-ns": (at(service={"name": "db", "namespace": "shop"}), CLUSTER_IP),
    "cluster-ip": (at(ip=CLUSTER_IP), CLUSTER_IP),
    "search-list": (at(fqdn="db"), CLUSTER_IP),
    "name.ns": (at(fqdn="db.shop"), CLUSTER_IP),
    "name.ns.svc": (at(fqdn="db.shop.svc"), CLUSTER_IP),
    "full-name": (at(fqdn="db.shop.svc.cluster.local"), CLUSTER_IP),
    "trailing-dot": (at(fqdn="db.shop.svc.cluster.local."), CLUSTER_IP),
    "upper-case": (at(fqdn="DB.Shop.svc.cluster.local"), CLUSTER_IP),
    "uri": (uri("db.shop.svc.cluster.local"), CLUSTER_IP),
    "uri-cluster-ip": (uri(CLUSTER_IP), CLUSTER_IP),
    "pod": (at(pod={"name": "db-0"}), DB_IP),
    "pod-ip": (at(ip=DB_IP), DB_IP),
    "pod-dns-name": (at(fqdn="10-244-2-7.shop.pod.cluster.local"), DB_IP),
    "pod-dns-search-list": (at(fqdn="10-244-2-7.shop.pod"), DB_IP),
    "uri-pod-ip": (uri(DB_IP), DB_IP),
    "headless-service": (at(service={"name": "db-peers"}), DB_IP),
    "headless-name": (at(fqdn="db-peers.shop.svc.cluster.local"), DB_IP),
    "headless-pod-name": (at(fqdn="db-0.db-peers.shop.svc"), DB_IP),
}


@pytest.mark.parametrize("spelling", SPELLINGS)
def test_every_spelling_of_the_destination_gets_the_same_verdict_and_names_the_policy(
    denied, reconciler, spelling
):
    spec, resolved = SPELLINGS[spelling]
    apply_check(denied, **spec)
    analysis = run_once(denied, reconciler, unreachable(resolved))["status"]["analysis"]

    assert analysis["result"] == "Blocked", analysis
    [denial] = [i for i in analysis["issues"] if i["type"] == "NetworkPolicy"]
    assert denial["severity"] == "Error" and denial["origin"] == "Inbound"
    assert {"key": "NetworkPolicy", "value": POLICY} in denial["context"]
    assert "into shop/db-0" in denial["message"]


def test_a_name_outside_the_cluster_stays_a_plain_name(denied, reconciler):
    apply_check(denied, destination={"fqdn": "db.shop.example.com", "port": PORT})
    analysis = run_once(denied, reconciler, unreachable("10.250.0.1"))["status"]["analysis"]
    assert analysis == {"result": "Allowed", "issues": []}


def allow_web_into_db(api: FakeApi, rule: dict[str, Any]) -> None:
    api.create(
        NETWORK_POLICIES,
        "shop",
        {
            "metadata": {"name": "db-from-web"},
            "spec": {
                "podSelector": {"matchLabels": {"app": "db"}},
                "policyTypes": ["Ingress"],
                "ingress": [{"from": [{"podSelector": {"matchLabels": {"app": "web"}}}], **rule}],
            },
        },
    )


PING = {"protocol": "ICMP", "destination": {"pod": {"name": "db-0"}}}


def test_a_ping_into_an_ingress_isolated_pod_is_blocked(denied, reconciler):
    apply_check(denied, **PING)
    analysis = run_once(denied, reconciler, unreachable(DB_IP))["status"]["analysis"]
    assert analysis["result"] == "Blocked"
    [denial] = analysis["issues"]
    assert {"key": "NetworkPolicy", "value": POLICY} in denial["context"]
    assert "ICMP" in denial["message"] and "rule without ports" in denial["hint"]


def test_a_rule_with_ports_never_admits_a_ping(denied, reconciler):
    allow_web_into_db(denied, {"ports": [{"port": PORT, "protocol": "TCP"}]})
    apply_check(denied, **PING)
    analysis = run_once(denied, reconciler, unreachable(DB_IP))["status"]["analysis"]
    assert analysis["result"] == "Blocked"
    [denial] = analysis["issues"]
    policies = {c["value"] for c in denial["context"] if c["key"] == "NetworkPolicy"}
    assert policies == {POLICY, "shop/db-from-web"}


def test_a_rule_without_ports_admits_a_ping_from_its_peer(denied, reconciler):
    allow_web_into_db(denied, {})
    apply_check(denied, **PING)
    analysis = run_once(denied, reconciler, unreachable(DB_IP))["status"]["analysis"]
    assert analysis == {"result": "Allowed", "issues": []}


def test_services_the_operator_may_not_list_leave_a_cluster_ip_unknown_not_allowed(
    denied, reconciler
):
    original = denied.list

    def forbidden(resource, namespace, labels=None):
        if resource == SERVICES:
            raise Forbidden("services is forbidden: cannot list at the cluster scope")
        return original(resource, namespace, labels)

    apply_check(denied, **at(ip=CLUSTER_IP))
    denied.list = forbidden
    status = run_once(denied, reconciler, unreachable(CLUSTER_IP))["status"]
    denied.list = original
    assert status["connectionStatus"] == "Unreachable"  # the run's result is still written
    assert status["analysis"]["result"] == "Unknown"
    assert "services is forbidden" in status["analysis"]["issues"][0]["message"]
