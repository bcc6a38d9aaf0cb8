"""Two replicas on one cluster: only the Lease's holder runs checks, and when it is killed in
the middle of a tick the other takes over within 15 s, losing no run and repeating none."""

from __future__ import annotations

from collections import Counter
from typing import Any

import pytest

from hopscope_operator.cluster import CHECKS, PODS
from hopscope_operator.controller.leader import RENEW_DEADLINE, RETRY, LeaseElector
from hopscope_operator.controller.leading import LeaderOnly
from hopscope_operator.controller.metrics import Metrics, MetricsOptions
from hopscope_operator.controller.reconcile import Reconciler, Settings

from .conftest import Clock
from .fakeapi import FakeApi
from .test_reconcile import (
    PROBES,
    apply_check,
    batch_of,
    check,
    finish,
    probe_pods,
    reachable_result,
    source_pod,
)

CHECK_NAMES = ("web-to-db", "web1-to-db")


class Killed(BaseException):
    """The process is gone: nothing of it runs on (no handler, no finally that calls out)."""


class Process:
    """One replica's connection to the API server, which dies at a chosen call."""

    def __init__(self, api: FakeApi) -> None:
        self._api = api
        self.calls = api.calls
        self.dies_after_a_pod_create = False
        self.dead = False

    def __getattr__(self, name: str) -> Any:
        method = getattr(self._api, name)

        def call(*args: Any, **kwargs: Any) -> Any:
            if self.dead:
                raise Killed
            result = method(*args, **kwargs)
            if name == "create" and args[0] == PODS and self.dies_after_a_pod_create:
                self.dead = True  # killed right after its first probe pod was created
            return result

        return call


def replica(api: FakeApi | Process, clock: Clock, name: str) -> LeaderOnly:
    metrics = Metrics(MetricsOptions(per_check_counters=True))  # runs_total counts the runs
    settings = Settings(namespace=PROBES, image="hopscope-probe:test")
    elector = LeaseElector(api, PROBES, name, clock=clock)  # type: ignore[arg-type]
    return LeaderOnly(elector, metrics, lambda: Reconciler(api, metrics, settings, clock))  # type: ignore[arg-type]


def two_checks(api: FakeApi) -> None:
    """Two checks whose sources run on different nodes: one probe pod each."""
    source_pod(api, "web-0", "worker-1")
    source_pod(api, "web-1", "worker-2", uid="7d2e0c1b-5a4f-4e3d-9c8b-a1b2c3d4e5f6")
    apply_check(api, CHECK_NAMES[0])
    apply_check(api, CHECK_NAMES[1], source={"pod": {"name": "web-1"}})


def finish_running_pods(api: FakeApi) -> None:
    """The kubelet: every probe pod not yet ended ends, reporting its batch reachable."""
    for pod in probe_pods(api):
        if pod.get("status", {}).get("phase") not in ("Succeeded", "Failed"):
            finish(api, pod, {item.id: reachable_result() for item in batch_of(pod).checks})


def runs_created(api: FakeApi) -> Counter[str]:
    """Each run id, by how many probe pods were ever created for it."""
    return Counter(
        item.id
        for event in api.watch_events
        if event.type == "ADDED" and event.resource == PODS and event.namespace == PROBES
        for item in batch_of(event.object or {}).checks
    )


def metric_lines(leader: LeaderOnly, name: str) -> list[str]:
    text = leader.metrics.exposition().decode()
    return [line for line in text.splitlines() if line.startswith(name)]


# When the leader last renewed, after the follower's last step: just after it is the worst case
# (the follower sees that renewal one retry period late, and trusts it a whole duration more).
@pytest.mark.parametrize("renewed_after", [0.0, 0.1, 1.0])
def test_a_leader_killed_mid_tick_is_replaced_within_15_s_and_no_run_is_lost_or_repeated(
    api, clock, renewed_after: float
):
    two_checks(api)
    process = Process(api)
    a, b = replica(process, clock, "a"), replica(api, clock, "b")
    assert a.elect() and not b.elect()
    follower_steps = clock.now
    clock.advance(renewed_after)
    assert a.elect() is False and a.leading  # a renewal, not a new term
    last_renewed = clock.now

    process.dies_after_a_pod_create = True
    with pytest.raises(Killed):
        a.tick()
    [created] = probe_pods(api)  # one of the two runs had its pod, the other none yet
    finish_running_pods(api)  # which ends while no replica leads

    took_over = None
    for _ in range(60):  # two simulated minutes, in retry periods
        follower_steps += RETRY
        clock.now = follower_steps
        if b.elect() and took_over is None:
            took_over = clock.now
        b.tick()
        finish_running_pods(api)
        if all(check(api, name).get("status", {}).get("runs") for name in CHECK_NAMES):
            break
    assert took_over is not None
    handover = (took_over - last_renewed).total_seconds()
    assert handover <= 15

    for name in CHECK_NAMES:
        status = check(api, name)["status"]
        assert (status["runs"], status["connectionStatus"]) == (1, "Reachable")
        assert [e["reason"] for e in api.events_for(name)].count("Reachable") == 1
    # The killed leader's pod was collected by the new one, not run again.
    assert runs_created(api) == {f"shop/{name}/1": 1 for name in CHECK_NAMES}
    assert created["metadata"]["name"] not in {p["metadata"]["name"] for p in probe_pods(api)}
    assert len(metric_lines(b, "hopscope_check_runs_total{")) == 2
    assert all(line.endswith(" 1.0") for line in metric_lines(b, "hopscope_check_runs_total{"))
    assert metric_lines(b, "hopscope_operator_leader ") == ["hopscope_operator_leader 1.0"]


def test_a_follower_neither_ticks_nor_deletes_pods_and_exports_no_check_series(api, clock):
    two_checks(api)
    a, b = replica(api, clock, "a"), replica(api, clock, "b")
    a.elect()
    b.elect()
    assert b.tick() is None and probe_pods(api) == []
    a.tick()
    assert len(probe_pods(api)) == 2
    b.forget("shop", CHECK_NAMES[0])  # the DELETED event reaches both replicas
    assert len(probe_pods(api)) == 2
    assert metric_lines(b, "hopscope_check_") == []
    assert metric_lines(b, "hopscope_operator_leader ") == ["hopscope_operator_leader 0.0"]


def test_a_leader_whose_election_steps_stalled_starts_no_tick(api, clock):
    two_checks(api)
    a = replica(api, clock, "a")
    a.elect()
    clock.advance(RENEW_DEADLINE.total_seconds())  # unrenewed: another may soon take over
    assert a.tick() is None and probe_pods(api) == []
    a.elect()
    assert a.tick() is not None and len(probe_pods(api)) == 2


def test_a_leader_that_loses_the_lease_stops_and_drops_its_check_series(api, clock):
    two_checks(api)
    a, b = replica(api, clock, "a"), replica(api, clock, "b")
    a.elect()
    a.tick()
    finish_running_pods(api)
    a.tick()
    assert metric_lines(a, "hopscope_check_reachable{")
    assert a._reconciler is not None
    watching = a._reconciler.cache.informers()  # the term's open watches
    assert watching and all(informer.listed for informer in watching)
    a.release()  # a rollout: the old pod hands over
    # Its watches are closed, not left open until the API server ends them (300 s).
    assert not any(informer.listed for informer in watching)
    assert not a.elect()  # a stopping replica never takes the free Lease back
    assert b.elect()
    assert metric_lines(a, "hopscope_check_") == []
    assert metric_lines(a, "hopscope_operator_leader ") == ["hopscope_operator_leader 0.0"]
    assert a.tick() is None
    b.tick()  # the new leader exports each check's last result from its status
    assert len(metric_lines(b, "hopscope_check_reachable{")) == 2
    assert all(check(api, name)["status"]["runs"] == 1 for name in CHECK_NAMES)
    assert api.objects(CHECKS, "shop")  # nothing deleted on the way


def test_a_follower_keeps_the_caches_warm_so_its_first_tick_as_leader_lists_no_check(api, clock):
    two_checks(api)
    a, b = replica(api, clock, "a"), replica(api, clock, "b")
    assert a.elect() and not b.elect()
    before = len(api.calls)
    assert b.tick() is None  # following: the next term's caches list and watch
    following = {call[:2] for call in api.calls[before:]}
    assert ("list", CHECKS.plural) in following and ("list", PODS.plural) in following
    assert {verb for verb, _ in following} <= {"list", "watch"}  # a follower writes nothing
    assert metric_lines(b, "hopscope_check_") == []

    a.tick()
    finish_running_pods(api)  # then "a" is gone: no step, no tick
    taken = None
    while taken is None:
        clock.advance(RETRY.total_seconds())
        b.tick()  # its watches bring the pods and statuses "a" wrote
        taken = clock.now if b.elect() else None
    before = len(api.calls)
    report = b.tick()
    assert report is not None and report.collected == 2
    cached = {("list", CHECKS.plural, None), ("list", PODS.plural, PROBES)}
    assert [call for call in api.calls[before:] if call in cached] == []  # (the analysis lists)
    assert all(check(api, name)["status"]["runs"] == 1 for name in CHECK_NAMES)
    assert len(metric_lines(b, "hopscope_check_reachable{")) == 2


def test_a_new_leader_writes_its_first_status_before_restoring_every_checks_series(
    api, clock, monkeypatch
):
    source_pod(api, "web-0", "worker-1")
    source_pod(api, "web-1", "worker-2", uid="7d2e0c1b-5a4f-4e3d-9c8b-a1b2c3d4e5f6")
    every = {"schedule": {"intervalSeconds": 60}}
    apply_check(api, CHECK_NAMES[0], **every)
    apply_check(api, CHECK_NAMES[1], source={"pod": {"name": "web-1"}}, **every)
    a, b = replica(api, clock, "a"), replica(api, clock, "b")
    a.elect()
    b.elect()
    for _ in range(2):  # a first run collected, then a second one's pods (one per node) end
        a.tick()
        finish_running_pods(api)
        clock.advance(61)
        a.elect()
    while not b.elect():  # "a" is gone: "b" takes over, with no series yet and two pods
        clock.advance(RETRY.total_seconds())
    exported_at_writes: list[int] = []
    patch_status = api.patch_status

    def noted(*args, **kwargs):  # type: ignore[no-untyped-def]
        exported_at_writes.append(len(metric_lines(b, "hopscope_check_reachable{")))
        return patch_status(*args, **kwargs)

    monkeypatch.setattr(api, "patch_status", noted)
    report = b.tick()
    assert report is not None and report.collected == 2
    # The first write came after its own check's series, before the other check's.
    assert exported_at_writes[:2] == [1, 2]
    assert len(metric_lines(b, "hopscope_check_reachable{")) == 2
    assert all(check(api, name)["status"]["runs"] == 2 for name in CHECK_NAMES)
