"""One check cannot hold its node's probe pod, and the checks beside it, for long.

Results are taken as they finish: a probe pod's log is read while it still runs, each check's
result is written as soon as its line is there (not when the slowest check of the batch ends),
each run is written once however often the log is read, and the pod goes once all are in. A
node's pods take its namespaces in turn, and each check runs within the operator's budget."""

from __future__ import annotations

from collections import Counter

from hopscope_operator.api import API_VERSION, KIND
from hopscope_operator.cluster import CHECKS, PODS, Object
from hopscope_operator.controller.metrics import Metrics
from hopscope_operator.controller.plan import STARTUP_SECONDS, Caps
from hopscope_operator.controller.reconcile import Reconciler, Settings
from hopscope_probe.batch import BatchOutput
from hopscope_probe.models import ProbeResult

from .conftest import Clock
from .fakeapi import FakeApi, container_status
from .httpapi import HttpApi
from .test_kube import TOKEN, kube_api
from .test_reconcile import (
    NODE_SOURCES,
    PROBES,
    apply_check,
    batch_of,
    check,
    finish,
    make_reconciler,
    probe_pods,
    reachable_result,
    source_pod,
)


def running(api: FakeApi, clock: Clock, pod: Object, results: dict[str, ProbeResult]) -> None:
    """The kubelet runs the pod; its log so far holds these results, the last line cut short."""
    name = pod["metadata"]["name"]
    lines = ["hopscope: probing 10.96.0.20 over TCP"]
    lines += [BatchOutput(id=i, result=r).to_json() for i, r in results.items()]
    lines.append('{"id":"shop/slow/1","result":{"probesSe')  # still being written
    api.logs[(PROBES, name)] = "\n".join(lines)
    started = clock.now.strftime("%Y-%m-%dT%H:%M:%SZ")
    api.set_pod_status(
        PROBES,
        name,
        {
            "phase": "Running",
            "startTime": started,
            "containerStatuses": [container_status({"running": {"startedAt": started}})],
        },
    )


def two_checks_one_pod(api: FakeApi, reconciler: Reconciler) -> Object:
    source_pod(api)
    apply_check(api, "fast")
    apply_check(api, "slow")
    reconciler.tick()
    [pod] = probe_pods(api)
    assert {item.id for item in batch_of(pod).checks} == {"shop/fast/1", "shop/slow/1"}
    return pod


def test_a_result_is_taken_while_its_pod_still_runs_the_slow_check(api, clock):
    reconciler = make_reconciler(api, clock)
    pod = two_checks_one_pod(api, reconciler)
    running(api, clock, pod, {"shop/fast/1": reachable_result()})
    clock.advance(5)
    assert reconciler.tick().collected == 1
    fast = check(api, "fast")["status"]
    assert (fast["phase"], fast["connectionStatus"], fast["runs"]) == ("Completed", "Reachable", 1)
    assert check(api, "slow")["status"]["phase"] == "Running"  # its line is not whole yet
    assert len(probe_pods(api)) == 1  # still running for slow

    events = Counter(e["reason"] for e in api.events_for("fast"))
    clock.advance(5)
    assert reconciler.tick().collected == 0  # the same log again: nothing written twice
    assert check(api, "fast")["status"]["runs"] == 1
    assert Counter(e["reason"] for e in api.events_for("fast")) == events

    both = {"shop/fast/1": reachable_result(), "shop/slow/1": reachable_result(avg_ms=9)}
    running(api, clock, pod, both)
    clock.advance(5)
    assert reconciler.tick().collected == 1
    assert check(api, "slow")["status"]["latency"]["avgMs"] == 9
    assert check(api, "fast")["status"]["runs"] == 1
    assert probe_pods(api) == []  # all in: deleted without waiting for it to exit


def test_a_restarted_operator_writes_each_run_once_when_the_pod_ends(api, clock):
    pod = two_checks_one_pod(api, make_reconciler(api, clock))
    running(api, clock, pod, {"shop/fast/1": reachable_result()})
    clock.advance(5)
    assert make_reconciler(api, clock).tick().collected == 1  # then killed
    clock.advance(5)
    after = make_reconciler(api, clock)  # knows nothing of what the first one took
    assert after.tick().collected == 0  # still running: slow is not in
    both = {"shop/fast/1": reachable_result(), "shop/slow/1": reachable_result()}
    finish(api, pod, both)
    clock.advance(5)
    assert after.tick().collected == 1  # slow only
    assert check(api, "fast")["status"]["runs"] == 1
    assert check(api, "slow")["status"]["runs"] == 1
    assert probe_pods(api) == []


def test_a_running_pods_log_is_read_as_the_api_server_serves_it(api, clock):
    # Over HTTP against the fake, which holds every call to the recorded shapes
    # (shared/kube-api: 03-pods-log-not-started#3 reads a running container's log: 200, the
    # log so far; the call is op-pod-log-accept-any, the same as for an ended pod).
    pod = two_checks_one_pod(api, make_reconciler(api, clock))
    running(api, clock, pod, {"shop/fast/1": reachable_result()})
    clock.advance(5)
    with HttpApi(api, TOKEN).running() as server:
        settings = Settings(namespace=PROBES, image="hopscope-probe:test")
        reconciler = Reconciler(kube_api(server), Metrics(), settings, clock)
        assert reconciler.tick().collected == 1
    assert check(api, "fast")["status"]["connectionStatus"] == "Reachable"
    assert api.objects(PODS, PROBES)


def node_check(api: FakeApi, namespace: str, name: str) -> None:
    body = {
        "apiVersion": API_VERSION,
        "kind": KIND,
        "metadata": {"name": name},
        "spec": {
            "source": {"node": {"name": "worker-1"}},
            "destination": {"ip": "10.96.0.20", "port": 5432},
        },
    }
    api.create(CHECKS, namespace, body)


def test_a_namespace_with_two_checks_is_not_queued_behind_anothers_two_hundred(api, clock):
    # One pod per node, 50 checks per pod: the 200 checks of "alpha" (listed first) once
    # filled four pods in a row, one at a time, before "beta"'s two ran.
    for index in range(200):
        node_check(api, "alpha", f"c{index:03}")
    node_check(api, "beta", "b0")
    node_check(api, "beta", "b1")
    # Namespaced checks with node sources: the chart's tenancy.allowNodeSources is on.
    report = make_reconciler(api, clock, tenancy=NODE_SOURCES).tick()
    assert (report.created, report.deferred) == (1, 152)
    [pod] = probe_pods(api)
    ids = [item.id for item in batch_of(pod).checks]
    assert {"beta/b0/1", "beta/b1/1"} <= set(ids)
    assert ids[:2] == ["alpha/c000/1", "beta/b0/1"]


def test_the_operators_per_check_budget_bounds_each_check_and_the_pods_deadline(api, clock):
    source_pod(api)
    # The check: 100 probes of 60 s after a 64-hop sweep (a fixed source port runs
    # them one after another): its pod's deadline was 10,020 s.
    apply_check(
        api,
        probes={"count": 100, "timeoutSeconds": 60},
        path={"maxHops": 64},
        sourcePort=40000,
    )
    settings = Settings(
        namespace=PROBES, image="hopscope-probe:test", caps=Caps(check_budget_seconds=300)
    )
    Reconciler(api, Metrics(), settings, clock).tick()
    [pod] = probe_pods(api)
    [item] = batch_of(pod).checks
    assert item.budget_seconds == 300
    assert pod["spec"]["activeDeadlineSeconds"] == STARTUP_SECONDS + 302  # 302/4 + 3/4 * 302
