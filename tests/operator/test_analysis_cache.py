"""What the analysis reads comes from watch-fed caches (controller/analysis_cache.py): once they
have listed, a steady round (plan, collect) lists nothing, whatever the destinations are;
changes arrive by watch and count from the next tick; a kind the operator may not list is
Unknown, not a crash and not Allowed, and is listed again on the next tick."""

from __future__ import annotations

from collections import Counter
from dataclasses import replace
from typing import Any

import pytest

from hopscope_operator.analysis import NODES as NODES_PART
from hopscope_operator.analysis import POLICIES, analyse
from hopscope_operator.api import AnalysisResult, ConnectivityCheck
from hopscope_operator.cluster import NETWORK_POLICIES, NODES, PODS, Resource
from hopscope_operator.controller import trim
from hopscope_operator.controller.analysis_cache import AnalysisCache, Kind
from hopscope_operator.controller.reconcile import Reconciler
from hopscope_operator.controller.snapshot import SnapshotReader
from hopscope_operator.resolved import ResolvedDestination, ResolvedSource

from . import test_reconcile as story
from .conftest import Clock
from .fake_routes import CRDS
from .fakeapi import FakeApi
from .test_reconcile import apply_check, batch_of, check, finish, probe_pods, source_pod
from .test_reconcile_analysis import Forbidden
from .test_reconcile_policykinds import crd
from .test_reconcile_spelling import deny_db_ingress

INTERVAL = 60
DESTINATIONS = {
    "to-service": {"service": {"name": "db"}, "port": 5432},
    "to-pod": {"pod": {"name": "db-0"}, "port": 5432},
    "to-address": {"ip": "10.244.2.7", "port": 5432},  # db-0's: found by the pods' IP index
    "to-node": {"node": {"name": "worker-2"}, "port": 10250},
}
POLICY = "shop/db-deny-ingress"


@pytest.fixture
def reconciler(healthy: FakeApi, clock: Clock) -> Reconciler:
    return story.make_reconciler(healthy, clock)


def every_destination(api: FakeApi) -> None:
    source_pod(api)
    worker = api.stored(NODES, None, "worker-2")
    api.put(NODES, {**worker, "status": {"addresses": [address("192.168.0.12")]}})
    for name, destination in DESTINATIONS.items():
        apply_check(api, name, destination=destination, schedule={"intervalSeconds": INTERVAL})


def address(ip: str) -> dict[str, str]:
    return {"type": "InternalIP", "address": ip}


def a_round(api: FakeApi, reconciler: Reconciler, clock: Clock) -> Counter[tuple[str, str]]:
    """Plan, the probe ends, collect; the requests the round made, by (verb, resource)."""
    clock.advance(INTERVAL + 31)  # past every check's interval and jitter
    made = len(api.calls)
    assert reconciler.tick().created == 1
    calls = api.calls[made:]
    [pod] = probe_pods(api)  # the test's own list, not counted
    finish(api, pod, {item.id: story.unreachable_result() for item in batch_of(pod).checks})
    made = len(api.calls)
    assert reconciler.tick().collected == len(batch_of(pod).checks)
    calls += api.calls[made:]
    return Counter((call[0] or "", call[1] or "") for call in calls)


def verdicts(api: FakeApi, names: Any) -> dict[str, str]:
    return {name: check(api, name)["status"]["analysis"]["result"] for name in names}


def lists(made: Counter[tuple[str, str]]) -> list[tuple[str, str]]:
    return [call for call in made if call[0] == "list"]


def test_a_steady_round_lists_nothing_for_service_pod_address_and_node_destinations(
    healthy, reconciler, clock
):
    every_destination(healthy)
    deny_db_ingress(healthy)
    first = a_round(healthy, reconciler, clock)
    assert lists(first)  # the caches' one list each
    steady = a_round(healthy, reconciler, clock)
    assert lists(steady) == []
    assert steady[("watch", "pods")] == 0  # the watches stay open
    # What a round asks the API: the probe pod, its log, the statuses and Events; nothing
    # that resolution or the analysis reads.
    assert {resource for _, resource in steady} <= {
        "pods",
        "pods/log",
        "connectivitychecks/status",
        "events",
    }
    assert steady[("get", "pods")] == 0
    assert verdicts(healthy, DESTINATIONS) == {
        "to-service": "Blocked",
        "to-pod": "Blocked",
        "to-address": "Blocked",  # the address is db-0's, as the index says
        "to-node": "Allowed",
    }
    issues = check(healthy, "to-address")["status"]["analysis"]["issues"]
    assert any({"key": "NetworkPolicy", "value": POLICY} in i["context"] for i in issues)


def test_a_policy_created_after_a_run_changes_the_next_analysis_without_a_list(
    healthy, reconciler, clock
):
    every_destination(healthy)
    a_round(healthy, reconciler, clock)
    assert verdicts(healthy, ["to-service", "to-address"]) == {
        "to-service": "Allowed",
        "to-address": "Allowed",
    }
    deny_db_ingress(healthy)  # seen by watch
    made = a_round(healthy, reconciler, clock)
    assert lists(made) == []
    assert verdicts(healthy, ["to-service", "to-address"]) == {
        "to-service": "Blocked",
        "to-address": "Blocked",
    }


def test_a_kind_the_operator_may_not_list_is_unknown_then_listed_again_next_tick(
    healthy, reconciler, clock
):
    every_destination(healthy)
    deny_db_ingress(healthy)
    original = healthy.list

    def forbidden(resource, namespace, labels=None):  # type: ignore[no-untyped-def]
        if resource == NETWORK_POLICIES:
            raise Forbidden("networkpolicies is forbidden: cannot list at the cluster scope")
        return original(resource, namespace, labels)

    healthy.list = forbidden
    a_round(healthy, reconciler, clock)
    analysis = check(healthy, "to-service")["status"]["analysis"]
    assert analysis["result"] == "Unknown"  # not Allowed: the policies were not read
    assert any("forbidden" in issue["message"] for issue in analysis["issues"])
    healthy.list = original  # the operator was granted the list
    made = a_round(healthy, reconciler, clock)
    assert made[("list", "networkpolicies")] == 1  # retried once, then watched
    assert verdicts(healthy, ["to-service"]) == {"to-service": "Blocked"}
    assert lists(a_round(healthy, reconciler, clock)) == []


def snapshot_of(reader: SnapshotReader, api: FakeApi) -> Any:
    model = ConnectivityCheck.model_validate(apply_check(api))
    source = ResolvedSource("pod", "worker-1", "pod shop/web-0", "shop", "web-0", "uid")
    to_db = ResolvedDestination("10.96.0.20", 5432, "service shop/db", service=("shop", "db"))
    return model, source, to_db, reader.snapshot(model, source, to_db)


def test_caches_that_have_not_listed_are_unreadable_not_empty(healthy):
    source_pod(healthy)
    deny_db_ingress(healthy)
    reader = SnapshotReader(AnalysisCache(healthy, ()))  # before any tick's sync
    model, source, to_db, snapshot = snapshot_of(reader, healthy)
    assert {POLICIES, NODES_PART} <= set(snapshot.unreadable)
    assert analyse(model, source, to_db, snapshot).result == AnalysisResult.UNKNOWN


def test_the_pod_indexes_follow_the_watch(healthy):
    cache = AnalysisCache(healthy, ())
    assert cache.sync() == {}
    assert names(SnapshotReader(cache).pods_at("10.244.2.7")) == ["db-0"]
    # db-0 moves to another address and names itself db-0.db-peers (a StatefulSet's).
    pod = healthy.stored(PODS, "shop", "db-0")
    healthy.edit(
        PODS, "shop", "db-0", lambda p: p["spec"].update(hostname="db-0", subdomain="db-peers")
    )
    healthy.set_pod_status(
        "shop", "db-0", {**pod["status"], "podIP": "10.244.9.9", "podIPs": [{"ip": "10.244.9.9"}]}
    )
    assert cache.sync() == {}
    reader = SnapshotReader(cache)
    assert reader.pods_at("10.244.2.7") == []
    assert names(reader.pods_at("10.244.9.9")) == ["db-0"]
    assert names(reader.pods_by_hostname("shop", "db-peers", "db-0")) == ["db-0"]
    healthy.delete(PODS, "shop", "db-0")
    cache.sync()
    assert SnapshotReader(cache).pods_at("10.244.9.9") == []


def names(pods: list[dict[str, Any]]) -> list[str]:
    return [p["metadata"]["name"] for p in pods]


def test_another_policy_kind_joins_the_caches_listed_once_then_watched(healthy):
    cache = AnalysisCache(healthy, ("shop",))
    assert cache.sync() == {}
    tiered = Kind(Resource("policy.example.dev", "v1", "tierpolicies", "TierPolicy"), trim.policy)
    healthy.put(CRDS, crd(tiered.resource))  # served: a kind without its CRD is a 404
    cluster_wide = replace(tiered, namespaced=False)  # one informer whatever is watched
    spread = cache.policy(cluster_wide)
    assert cache.policy(cluster_wide) is spread and list(spread.informers) == [None]
    healthy.put(tiered.resource, {"metadata": {"name": "first"}, "spec": {"tier": 1}})
    assert cache.sync() == {}
    healthy.put(tiered.resource, {"metadata": {"name": "second"}, "spec": {"tier": 2}})
    assert cache.sync() == {}
    assert names(spread.objects()) == ["first", "second"]
    assert [informer.lists for informer in spread.informers.values()] == [1]
