"""What a real cluster does that the happy path never shows, on the in-memory API server: a
check deleted and created again under its name, a pod stuck terminating on a dead node, a log
the API cannot give for a while. Each one once made the tick lose or repeat a run.
"""

from __future__ import annotations

from typing import Any

import pytest

from hopscope_operator.cluster import CHECKS, PODS, ApiError, Conflict, Object
from hopscope_operator.controller.reconcile import LOG_PATIENCE, Reconciler

from .conftest import Clock
from .fakeapi import FakeApi
from .test_reconcile import (
    PROBES,
    apply_check,
    batch_of,
    check,
    condition,
    finish,
    make_reconciler,
    metric_lines,
    probe_pods,
    reachable_result,
    source_pod,
)


@pytest.fixture
def reconciler(api: FakeApi, clock: Clock) -> Reconciler:
    return make_reconciler(api, clock)


def finish_all(api: FakeApi, pod: Object) -> None:
    finish(api, pod, {item.id: reachable_result() for item in batch_of(pod).checks})


def test_a_check_created_again_under_its_name_is_run_not_given_its_predecessors_result(
    api, clock, reconciler
):
    source_pod(api)
    apply_check(api, "a")
    apply_check(api, "b")  # the node's pod runs for b too, so deleting a leaves it running
    reconciler.tick()
    [old_pod] = probe_pods(api)
    api.delete(CHECKS, "shop", "a")
    reconciler.forget("shop", "a")
    apply_check(api, "a", destination={"ip": "192.0.2.99", "port": 443})  # generation 1 again
    clock.advance(5)
    reconciler.tick()  # a is due, but this node's pod is busy (one pod per node at a time)

    finish_all(api, old_pod)  # answers for the old a (the db Service) and for b
    clock.advance(5)
    reconciler.tick()
    assert check(api, "a").get("status", {}).get("runs", 0) == 0
    assert check(api, "b")["status"]["runs"] == 1
    [new_pod] = probe_pods(api)
    assert [item.request.host for item in batch_of(new_pod).checks] == ["192.0.2.99"]

    finish_all(api, new_pod)
    clock.advance(5)
    reconciler.tick()
    assert check(api, "a")["status"]["runs"] == 1


def test_a_pod_left_terminating_on_a_dead_node_is_collected_once(api, clock, reconciler):
    source_pod(api)
    apply_check(api, schedule={"intervalSeconds": 600})
    reconciler.tick()
    [pod] = probe_pods(api)
    name = pod["metadata"]["name"]
    api.edit(PODS, PROBES, name, lambda p: p["metadata"].update(creationTimestamp=T0_STAMP))
    # The node died before the pod started. Deleting a pod bound to a node only marks it: the
    # kubelet ends the delete, and this one never will.
    api.delete = lambda resource, namespace, name: api.edit(
        resource,
        namespace,
        name,
        lambda p: p["metadata"].setdefault("deletionTimestamp", "2026-11-25T12:10:00Z"),
    )
    clock.advance(600)
    reconciler.tick()
    assert condition(check(api), "Reachable")["reason"] == "ProbeUnschedulable"
    assert api.stored(PODS, PROBES, name)["metadata"]["deletionTimestamp"]
    for _ in range(3):
        clock.advance(5)
        reconciler.tick()
    assert check(api)["status"]["runs"] == 1
    # Runs go on while the node stays dead; its Terminating pods hold its one slot, so the
    # next pods wait instead of piling up on it.
    for _ in range(3):
        clock.advance(600)
        reconciler.tick()
    assert len(probe_pods(api)) == 1


T0_STAMP = "2026-11-25T12:00:00Z"


class Unavailable(ApiError):
    status = 503
    reason = "ServiceUnavailable"


def test_a_log_the_api_cannot_give_now_is_read_next_tick_not_written_as_unknown(
    api, clock, reconciler
):
    source_pod(api)
    apply_check(api)
    reconciler.tick()
    [pod] = probe_pods(api)
    finish_all(api, pod)
    read = api.pod_log
    api.pod_log = lambda namespace, name: (_ for _ in ()).throw(Unavailable("node unreachable"))
    reconciler.tick()
    assert "status" not in check(api) or "connectionStatus" not in check(api)["status"]
    assert len(probe_pods(api)) == 1  # kept, and no second pod planned for the check
    api.pod_log = read
    clock.advance(5)
    reconciler.tick()
    assert check(api)["status"]["connectionStatus"] == "Reachable"


def test_a_log_that_stays_unreadable_is_given_up_on_and_the_run_says_so(api, clock, reconciler):
    source_pod(api)
    apply_check(api)
    reconciler.tick()
    [pod] = probe_pods(api)
    finish_all(api, pod)

    def ended_at_t0(stored: dict[str, Any]) -> None:
        stored["status"]["containerStatuses"][0]["state"]["terminated"]["finishedAt"] = T0_STAMP

    api.edit(PODS, PROBES, pod["metadata"]["name"], ended_at_t0)
    api.pod_log = lambda namespace, name: (_ for _ in ()).throw(Unavailable("node unreachable"))
    clock.advance(LOG_PATIENCE.total_seconds() - 5)
    reconciler.tick()
    assert len(probe_pods(api)) == 1
    clock.advance(10)
    reconciler.tick()
    assert check(api)["status"]["connectionStatus"] == "Unknown"
    assert probe_pods(api) == []


class Forbidden(ApiError):
    status = 403
    reason = "Forbidden"


def test_a_probe_pod_the_api_refuses_is_said_on_its_checks_and_other_nodes_still_run(
    api, reconciler
):
    source_pod(api)
    source_pod(api, name="web-1", node="worker-2", uid="9a8b7c6d-5e4f-4a3b-8c2d-1e0f9a8b7c6d")
    apply_check(api, "from-1")
    apply_check(api, "from-2", source={"pod": {"name": "web-1"}})
    create = api.create

    def admission(resource, namespace, body):
        if resource == PODS and body["spec"]["nodeName"] == "worker-1":
            raise Forbidden('pods "p" is forbidden: violates PodSecurity "baseline:latest"')
        return create(resource, namespace, body)

    api.create = admission
    report = reconciler.tick()
    assert (report.created, report.refused) == (1, 1)
    ready = condition(check(api, "from-1"), "Ready")
    assert (ready["status"], ready["reason"]) == ("False", "ProbePodRefused")
    assert "worker-1" in ready["message"] and "PodSecurity" in ready["message"]
    [pod] = probe_pods(api)
    assert pod["spec"]["nodeName"] == "worker-2"


def test_an_event_the_api_refuses_loses_the_event_not_the_run(api, clock, reconciler):
    source_pod(api)
    apply_check(api, "c" * 253)  # a valid name; its Event's name is cut to fit 253
    reconciler.tick()
    create = api.create
    names: list[str] = []

    def refusing_events(resource, namespace, body):
        if resource.plural == "events":
            names.append(body["metadata"]["name"])
            raise Forbidden("events is forbidden")
        return create(resource, namespace, body)

    api.create = refusing_events
    [pod] = probe_pods(api)
    finish_all(api, pod)
    reconciler.tick()
    assert check(api, "c" * 253)["status"]["runs"] == 1
    assert probe_pods(api) == []  # collected: the next tick does not write the run again
    assert names and all(len(name) <= 253 for name in names)
    api.create = create
    clock.advance(5)
    reconciler.tick()
    assert check(api, "c" * 253)["status"]["runs"] == 1


def test_a_second_invalid_spec_is_said_with_its_own_field(api, reconciler):
    apply_check(api, "bad")
    api.edit(CHECKS, "shop", "bad", lambda c: c["spec"].update(protocol="QUIC"))
    reconciler.tick()
    assert "protocol" in condition(check(api, "bad"), "Ready")["message"]

    def second_mistake(stored: dict[str, Any]) -> None:
        stored["spec"].update(protocol="TCP", count="many")
        stored["metadata"]["generation"] += 1

    api.edit(CHECKS, "shop", "bad", second_mistake)
    reconciler.tick()
    obj = check(api, "bad")
    assert "count" in condition(obj, "Ready")["message"]
    assert obj["status"]["observedGeneration"] == obj["metadata"]["generation"]


def test_a_check_deleted_between_a_conflict_and_its_reread_ends_only_its_own_write(api, reconciler):
    source_pod(api)
    apply_check(api, "a")
    apply_check(api, "b")
    reconciler.tick()
    [pod] = probe_pods(api)
    finish_all(api, pod)
    patch_status = api.patch_status

    def deleted_meanwhile(resource, namespace, name, body, version):
        if name == "a":
            api.delete(CHECKS, namespace, name)
            api.calls.pop()  # a user's delete, made during the tick: not the operator's request
            raise Conflict("the object has been modified")
        return patch_status(resource, namespace, name, body, version)

    api.patch_status = deleted_meanwhile
    reconciler.tick()
    assert check(api, "b")["status"]["runs"] == 1


def test_a_stored_uri_no_parser_can_use_is_invalid_spec_and_the_other_checks_run(api, reconciler):
    source_pod(api)
    apply_check(api, "good")
    apply_check(api, "bad", protocol="HTTPS", destination={"uri": "https://api.example.com/"})
    api.stored(CHECKS, "shop", "bad")["spec"]["destination"]["uri"] = "http://[::1/"  # CRD-valid
    assert reconciler.tick().created == 1
    ready = condition(check(api, "bad"), "Ready")
    assert (ready["status"], ready["reason"]) == ("False", "InvalidSpec")
    assert "destination.uri" in ready["message"]


def run_once_then_lose_the_source(api: FakeApi, clock: Clock, reconciler: Reconciler) -> None:
    """A scheduled check runs, then its source pod is deleted and it is due again."""
    source_pod(api)
    apply_check(api, schedule={"intervalSeconds": 60})
    reconciler.tick()
    [pod] = probe_pods(api)
    finish_all(api, pod)
    reconciler.tick()
    assert 'check="web-to-db"' in "".join(metric_lines(reconciler, "hopscope_check_reachable"))
    api.delete(PODS, "shop", "web-0")
    clock.advance(120)
    reconciler.tick()  # SourceNotFound: the status keeps its last run's figures
    assert condition(check(api), "Ready")["reason"] == "SourceNotFound"


def test_a_check_whose_source_is_gone_stops_reporting_its_last_verdict(api, clock, reconciler):
    run_once_then_lose_the_source(api, clock, reconciler)
    assert metric_lines(reconciler, "hopscope_check_reachable") == []  # no stale green
    [cannot_run] = metric_lines(reconciler, "hopscope_check_issues")
    assert 'type="Probe"' in cannot_run and cannot_run.endswith(" 1.0")


def test_after_a_restart_a_check_that_cannot_run_is_exported_as_such(api, clock, reconciler):
    run_once_then_lose_the_source(api, clock, reconciler)
    restarted = make_reconciler(api, clock)
    restarted.tick()
    assert metric_lines(restarted, "hopscope_check_latency_seconds") == []
    [cannot_run] = metric_lines(restarted, "hopscope_check_issues")
    assert 'type="Probe"' in cannot_run
