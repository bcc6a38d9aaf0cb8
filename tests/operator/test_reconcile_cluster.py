"""ClusterConnectivityCheck: the cluster-scoped kind for what a namespaced check may not reach
(a node's network, another namespace's pods). It runs under the default tenancy values, its
status is written at its cluster path, its Events go to `default` as a Node's do, and its probe
pod is owned by it. Every namespace in it is named: a reference the namespaced kind would
default to its own namespace is refused, by the API server and by the model alike."""

from __future__ import annotations

import asyncio
from types import SimpleNamespace
from typing import Any

import pytest

from hopscope_operator.api import API_VERSION, CLUSTER_KIND
from hopscope_operator.cluster import CHECKS, CLUSTER_CHECKS, EVENTS, PODS, Invalid, Object
from hopscope_operator.controller import handlers
from hopscope_operator.controller.metrics import Metrics
from hopscope_operator.controller.reconcile import Reconciler, Settings

from .conftest import Clock
from .fake_status import NotFoundError
from .fakeapi import FakeApi
from .test_reconcile import (
    PROBES,
    apply_check,
    batch_of,
    condition,
    finish,
    make_reconciler,
    metric_lines,
    probe_pods,
    reachable_result,
    source_pod,
)
from .test_reconcile_tenancy import foreign_pod, node

LEDGER_UID = "7c1f0e2d-5b4a-4c39-8e21-a0b1c2d3e4f5"


def apply_cluster_check(api: FakeApi, name: str, **spec: Any) -> Object:
    body = {
        "apiVersion": API_VERSION,
        "kind": CLUSTER_KIND,
        "metadata": {"name": name},
        "spec": {"destination": {"service": {"name": "db", "namespace": "shop"}, "port": 5432}}
        | spec,
    }
    return api.create(CLUSTER_CHECKS, None, body)


def cluster_check(api: FakeApi, name: str) -> Object:
    return api.get(CLUSTER_CHECKS, None, name)


def ledger_pod(api: FakeApi) -> None:
    foreign_pod(api)
    api.stored(PODS, "payments", "ledger-0")["metadata"]["uid"] = LEDGER_UID


SOURCES: dict[str, tuple[Any, dict[str, Any], str, str]] = {
    "node": (node, {"node": {"name": "control-plane"}}, "control-plane", "host"),
    "pod of another namespace": (
        ledger_pod,
        {"pod": {"name": "ledger-0", "namespace": "payments"}},
        "worker-1",
        LEDGER_UID,
    ),
}


@pytest.mark.parametrize("make, source, on_node, netns", SOURCES.values(), ids=SOURCES.keys())
def test_a_cluster_check_probes_beyond_a_namespace_under_the_default_tenancy(
    api, clock, make, source, on_node, netns
):
    make(api)
    created = apply_cluster_check(api, "far", source=source)
    reconciler = make_reconciler(api, clock)  # tenancy.allow*: all false
    assert reconciler.tick().created == 1
    [pod] = probe_pods(api)
    assert pod["spec"]["nodeName"] == on_node
    [item] = batch_of(pod).checks
    assert item.id == "/far/1"  # no namespace: its own segment is empty
    assert (item.netns if netns == "host" else item.netns.pod_uid) == netns
    # A namespaced pod may have a cluster-scoped owner: deleting the check deletes the pod.
    [owner] = pod["metadata"]["ownerReferences"]
    assert (owner["kind"], owner["name"], owner["uid"]) == (
        CLUSTER_KIND,
        "far",
        created["metadata"]["uid"],
    )

    finish(api, pod, {item.id: reachable_result()})
    assert reconciler.tick().collected == 1
    status = cluster_check(api, "far")["status"]
    assert (status["phase"], status["connectionStatus"]) == ("Completed", "Reachable")
    assert condition(cluster_check(api, "far"), "Ready")["status"] == "True"
    [series] = metric_lines(reconciler, "hopscope_check_reachable")
    assert 'check="far"' in series and 'namespace=""' in series


def test_a_cluster_checks_events_go_to_default_naming_no_namespace(api, clock):
    node(api)
    apply_cluster_check(api, "far", source={"node": {"name": "control-plane"}})
    reconciler = make_reconciler(api, clock)
    reconciler.tick()
    [pod] = probe_pods(api)
    finish(api, pod, {item.id: reachable_result() for item in batch_of(pod).checks})
    reconciler.tick()
    events = api.events_for("far")
    assert events and {e["metadata"]["namespace"] for e in events} == {"default"}
    assert all("namespace" not in e["involvedObject"] for e in events)
    assert {e["involvedObject"]["kind"] for e in events} == {CLUSTER_KIND}
    assert "Reachable" in [e["reason"] for e in events]
    assert api.objects(EVENTS, "default") == events


def test_a_missing_node_is_ready_false_on_the_cluster_check(api, clock):
    apply_cluster_check(api, "far", source={"node": {"name": "gone"}})
    make_reconciler(api, clock).tick()
    ready = condition(cluster_check(api, "far"), "Ready")
    assert (ready["status"], ready["reason"]) == ("False", "SourceNotFound")
    assert "node gone" in ready["message"]


UNNAMED = {
    "source.pod.namespace": {"source": {"pod": {"name": "ledger-0"}}},
    "source.workload.namespace": {
        "source": {"workload": {"kind": "Deployment", "name": "gw"}},
    },
    "destination.service.namespace": {
        "source": {"node": {"name": "control-plane"}},
        "destination": {"service": {"name": "db"}, "port": 5432},
    },
    "destination.pod.namespace": {
        "source": {"node": {"name": "control-plane"}},
        "destination": {"pod": {"name": "db-0"}, "port": 5432},
    },
    "source.podSelector": {"source": {"podSelector": {"matchLabels": {"app": "web"}}}},
    "http.caBundle": {
        "source": {"node": {"name": "control-plane"}},
        "protocol": "HTTPS",
        "destination": {"uri": "https://api.example.com/"},
        "http": {"caBundle": {"configMapKeyRef": {"name": "ca", "key": "ca.crt"}}},
    },
}


@pytest.mark.parametrize("spec, field", [(s, f) for f, s in UNNAMED.items()], ids=UNNAMED.keys())
def test_a_reference_needing_the_checks_own_namespace_is_refused_naming_the_field(api, spec, field):
    with pytest.raises(Invalid, match=field.replace(".", r"\.")):
        apply_cluster_check(api, "unnamed", **spec)


def test_a_stored_cluster_check_without_a_namespace_is_ready_false_not_a_crash(api, clock):
    # Written around validation (before the CRD had the rule): the operator's model says it.
    body = {
        "apiVersion": API_VERSION,
        "kind": CLUSTER_KIND,
        "metadata": {"name": "old", "generation": 1},
        "spec": {
            "source": {"pod": {"name": "ledger-0"}},
            "destination": {"ip": "10.0.0.1", "port": 80},
        },
    }
    api.put(CLUSTER_CHECKS, body)
    assert make_reconciler(api, clock).tick().created == 0
    ready = condition(cluster_check(api, "old"), "Ready")
    assert ready["reason"] == "InvalidSpec"
    assert "source.pod.namespace is required" in ready["message"]


def test_deleting_a_cluster_check_forgets_it(api, clock):
    node(api)
    apply_cluster_check(api, "far", source={"node": {"name": "control-plane"}})
    reconciler = make_reconciler(api, clock)
    reconciler.tick()
    assert len(probe_pods(api)) == 1
    api.delete(CLUSTER_CHECKS, None, "far")  # its pod goes with it: the owner reference
    reconciler.forget("", "far")
    assert probe_pods(api) == []
    assert 'check="far"' not in reconciler.metrics.exposition().decode()


def test_a_namespaced_install_leaves_cluster_checks_alone(api, clock: Clock):
    node(api)
    apply_cluster_check(api, "far", source={"node": {"name": "control-plane"}})
    settings = Settings(namespace=PROBES, image="hopscope-probe:test", watch_namespaces=("shop",))
    before = len(api.calls)
    assert Reconciler(api, Metrics(), settings, clock).tick().created == 0
    assert not any(call[1].startswith(CLUSTER_CHECKS.plural) for call in api.calls[before:])
    assert "status" not in cluster_check(api, "far")


def test_a_namespaced_check_and_a_cluster_check_of_one_name_are_two_checks(api, clock):
    node(api)
    apply_cluster_check(api, "shop", source={"node": {"name": "control-plane"}})
    shop_check = {
        "apiVersion": API_VERSION,
        "kind": "ConnectivityCheck",
        "metadata": {"name": "shop"},
        "spec": {
            "source": {"pod": {"name": "gone"}},
            "destination": {"service": {"name": "db"}, "port": 5432},
        },
    }
    api.create(CHECKS, "shop", shop_check)
    make_reconciler(api, clock).tick()
    assert len(probe_pods(api)) == 1  # the cluster check's
    assert condition(api.get(CHECKS, "shop", "shop"), "Ready")["reason"] == ("SourceNotFound")


# ---- the kopf handlers ----------------------------------------------------------------------


def test_a_deleted_cluster_check_is_forgotten_by_its_key():
    forgotten: list[tuple[str, str]] = []
    state = SimpleNamespace(
        reconciler=SimpleNamespace(forget=lambda ns, name: forgotten.append((ns, name))),
        wake=asyncio.Event(),
    )
    event = {"type": "DELETED", "object": {"metadata": {"name": "far", "generation": 1}}}
    asyncio.run(handlers.check_changed(event, state))
    assert forgotten == [("", "far")]


def test_only_a_cluster_wide_operator_watches_cluster_checks(monkeypatch):
    watched: list[tuple[str, ...]] = []
    monkeypatch.setattr(handlers.kopf, "run", lambda **_: None)
    monkeypatch.setattr(handlers, "watch_cluster_checks", lambda: watched.append(("all",)))
    monkeypatch.setenv("HOPSCOPE_WATCH_NAMESPACES", "shop")
    handlers.main()
    assert watched == []
    monkeypatch.delenv("HOPSCOPE_WATCH_NAMESPACES")
    handlers.main()
    assert watched == [("all",)]


def test_without_the_cluster_crd_namespaced_checks_still_run(api, clock, caplog, monkeypatch):
    # An upgraded release: Helm installs crds/ on first install only, so the new CRD may lack.
    source_pod(api)
    apply_check(api)
    listed = api.list

    def without_cluster_crd(resource, namespace, labels=None):
        if resource == CLUSTER_CHECKS:
            # The API server's answer for a resource of a served group without its CRD.
            raise NotFoundError("the server could not find the requested resource", {})
        return listed(resource, namespace, labels)

    monkeypatch.setattr(api, "list", without_cluster_crd)
    reconciler = make_reconciler(api, clock)
    assert reconciler.tick().created == 1
    clock.advance(10)
    reconciler.tick()
    said = [r for r in caplog.records if "no ClusterConnectivityCheck CRD" in r.getMessage()]
    assert len(said) == 1  # once, not every tick
