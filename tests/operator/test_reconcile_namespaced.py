"""A namespaced install (the chart's watch.namespaces): the tick runs the checks of its
namespaces only, reads nothing elsewhere but the cluster DNS, and says so on a check that
points outside them.

Every story is also held to the namespaced RBAC the chart renders for these namespaces
(conftest's autouse fixture): a cluster-wide list, or a read in an unwatched namespace, fails it.
"""

from __future__ import annotations

import pytest

from hopscope_operator.api import API_VERSION, KIND
from hopscope_operator.cluster import CHECKS, ENDPOINT_SLICES, NETWORK_POLICIES, PODS, SERVICES
from hopscope_operator.controller.metrics import Metrics
from hopscope_operator.controller.reconcile import Reconciler, Settings

from .conftest import Clock, db_service, running_pod
from .fakeapi import FakeApi
from .test_reconcile import (
    NODE_SOURCES,
    PROBES,
    apply_check,
    batch_of,
    check,
    condition,
    finish,
    probe_pods,
    reachable_result,
    run_once,
    source_pod,
)
from .test_reconcile_analysis import Forbidden, deny_web_egress, dropped_at_the_destination


@pytest.fixture
def confined(healthy: FakeApi) -> Reconciler:
    settings = Settings(namespace=PROBES, image="hopscope-probe:test", watch_namespaces=("shop",))
    return Reconciler(healthy, Metrics(), settings, Clock())


def test_only_the_checks_of_watched_namespaces_run(healthy, confined):
    source_pod(healthy)
    apply_check(healthy)
    healthy.create(SERVICES, "payments", {"metadata": {"name": "db"}, "spec": db_service()})
    destination = {"service": {"name": "db"}, "port": 5432}
    spec = {"source": {"node": {"name": "worker-1"}}, "destination": destination}
    body = {"apiVersion": API_VERSION, "kind": KIND, "metadata": {"name": "not-mine"}}
    healthy.create(CHECKS, "payments", {**body, "spec": spec})

    assert confined.tick().created == 1
    [pod] = probe_pods(healthy)
    assert [item.id for item in batch_of(pod).checks] == ["shop/web-to-db/1"]
    assert "status" not in healthy.get(CHECKS, "payments", "not-mine")  # not touched at all


def test_a_check_naming_an_unwatched_namespace_is_ready_false_with_the_fix(healthy, confined):
    source_pod(healthy)
    apply_check(
        healthy, destination={"service": {"name": "db", "namespace": "payments"}, "port": 5432}
    )
    report = confined.tick()
    assert (report.created, report.not_ready) == (0, 1)
    ready = condition(check(healthy), "Ready")
    assert (ready["status"], ready["reason"]) == ("False", "NamespaceNotWatched")
    assert "namespace payments is not watched" in ready["message"]
    assert "watch.namespaces" in ready["message"]
    assert not [call for call in healthy.calls if call[2] == "payments"]  # no 403 asked for


def test_the_blocking_policy_is_still_named_from_the_watched_namespaces_policies(healthy, confined):
    source_pod(healthy)
    deny_web_egress(healthy)
    apply_check(healthy)
    analysis = run_once(healthy, confined, dropped_at_the_destination())["status"]["analysis"]
    assert analysis["result"] == "Blocked"
    [denial] = analysis["issues"]
    assert {"key": "NetworkPolicy", "value": "shop/web-egress"} in denial["context"]
    # Listed per namespace, never across the cluster.
    policy_lists = {call[2] for call in healthy.calls if call[:2] == ("list", "networkpolicies")}
    assert policy_lists == {PROBES, "shop", "kube-system"}


def test_a_kube_system_policy_that_blocks_dns_is_still_seen(healthy, confined):
    source_pod(healthy)
    healthy.create(
        NETWORK_POLICIES,
        "kube-system",
        {
            "metadata": {"name": "coredns-lockdown"},
            "spec": {"podSelector": {"matchLabels": {"k8s-app": "kube-dns"}}, "ingress": []},
        },
    )
    apply_check(healthy)
    analysis = run_once(healthy, confined, dropped_at_the_destination())["status"]["analysis"]
    assert analysis["result"] == "Blocked"
    contexts = [item for issue in analysis["issues"] for item in issue["context"]]
    assert {"key": "NetworkPolicy", "value": "kube-system/coredns-lockdown"} in contexts


def test_a_pod_address_is_found_among_the_watched_namespaces_pods(healthy, confined):
    source_pod(healthy)
    running_pod(healthy, "payments", "ledger-0", {"app": "ledger"}, "10.244.3.9")
    deny_web_egress(healthy)
    apply_check(healthy, destination={"ip": "10.244.2.7", "port": 5432})
    analysis = run_once(healthy, confined, dropped_at_the_destination())["status"]["analysis"]
    [denial] = analysis["issues"]
    assert "shop/db-0" in denial["message"]  # the address is db-0's
    pod_lists = {call[2] for call in healthy.calls if call[:2] == ("list", "pods")}
    assert None not in pod_lists and "payments" not in pod_lists
    assert healthy.objects(PODS, "payments")  # there, but neither listed nor read


def test_a_namespace_it_cannot_list_stops_neither_the_others_nor_loses_its_results(healthy):
    settings = Settings(
        namespace=PROBES,
        image="hopscope-probe:test",
        watch_namespaces=("shop", "payments"),
        tenancy=NODE_SOURCES,
    )
    reconciler = Reconciler(healthy, Metrics(), settings, Clock())
    healthy.create(
        CHECKS,
        "payments",
        {
            "apiVersion": API_VERSION,
            "kind": KIND,
            "metadata": {"name": "ledger"},
            "spec": {
                "source": {"node": {"name": "worker-2"}},
                "destination": {"ip": "192.0.2.80", "port": 443},
            },
        },
    )
    assert reconciler.tick().created == 1
    [pod] = probe_pods(healthy)
    finish(healthy, pod, {item.id: reachable_result() for item in batch_of(pod).checks})

    original, watch = healthy.list, healthy.watch

    def refused_in_payments(resource, namespace, labels=None):
        if resource == CHECKS and namespace == "payments":
            raise Forbidden("connectivitychecks is forbidden in namespace payments")
        return original(resource, namespace, labels)

    def watch_refused_in_payments(resource, namespace, labels, version):
        refused_in_payments(resource, namespace)
        return watch(resource, namespace, labels, version)

    # Its RoleBinding deleted: an open watch goes on until it ends, then it is refused.
    healthy.list, healthy.watch = refused_in_payments, watch_refused_in_payments
    healthy.end_watches()
    source_pod(healthy)
    apply_check(healthy)
    report = reconciler.tick()
    assert report.created == 1  # shop's check still runs
    assert report.orphans_deleted == 0 and report.collected == 0
    assert pod["metadata"]["name"] in [p["metadata"]["name"] for p in probe_pods(healthy)]

    healthy.list, healthy.watch = original, watch
    assert reconciler.tick().collected == 1  # watched again: the ended pod's result lands
    assert healthy.get(CHECKS, "payments", "ledger")["status"]["connectionStatus"] == "Reachable"
    healthy.list, healthy.watch = refused_in_payments, watch_refused_in_payments
    healthy.end_watches()
    reconciler.tick()
    assert 'check="ledger"' in reconciler.metrics.exposition().decode()  # unseen, not gone


def test_an_endpoint_in_an_unwatched_namespace_is_not_read(healthy, confined):
    source_pod(healthy)
    [slice_] = healthy.objects(ENDPOINT_SLICES, "shop")
    stored = healthy.stored(ENDPOINT_SLICES, "shop", slice_["metadata"]["name"])
    stored["endpoints"][0]["targetRef"]["namespace"] = "payments"  # a hand-made slice
    apply_check(healthy)
    status = run_once(healthy, confined, dropped_at_the_destination())["status"]
    assert status["analysis"]["result"] != "Unknown", status["analysis"]
    assert not [call for call in healthy.calls if call[2] == "payments"]
