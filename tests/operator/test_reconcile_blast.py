"""One check never stops the others: a failure in one check's own work, in any phase of the
tick, is that check's Ready=False (ApiRefused / InternalError) and the other checks go on.
Failures that concern the whole tick (listing the checks, listing probe pods) still fail it."""

from __future__ import annotations

import copy
import json
import time
from typing import Any

import pytest

from hopscope_operator.cluster import CHECKS, PODS, ApiError
from hopscope_operator.controller import reconcile
from hopscope_operator.controller.metrics import Metrics
from hopscope_operator.controller.reconcile import Reconciler, Settings
from hopscope_operator.controller.runs import RunId
from hopscope_operator.names import ANNOTATION_CHECKS
from hopscope_probe import batch as wire

from .httpapi import HttpApi
from .test_kube import TOKEN, kube_api
from .test_reconcile import (
    PROBES,
    apply_check,
    batch_of,
    check,
    condition,
    finish,
    make_reconciler,
    probe_pods,
    reachable_result,
    source_pod,
)
from .test_reconcile_agents import FakeAgent, gateway, reconciler_with

NAMES = ("a", "b", "c")


@pytest.fixture
def reconciler(api, clock) -> Reconciler:
    return make_reconciler(api, clock)


def three_checks(api) -> None:
    source_pod(api)
    for name in NAMES:
        apply_check(api, name, schedule={"intervalSeconds": 60})


def ready(api, name: str) -> tuple[str, str, str]:
    cond = condition(check(api, name), "Ready")
    return cond["status"], cond["reason"], cond["message"]


def planned_checks(api) -> set[str]:
    ids = [item.id for pod in probe_pods(api) for item in batch_of(pod).checks]
    return {RunId.parse(run_id).check.partition("/")[2] for run_id in ids}


def next_run_overflows_for(monkeypatch: pytest.MonkeyPatch, name: str) -> None:
    """Computing the check's next run raises, as `intervalSeconds: 1000000000000` did."""
    real = reconcile.next_run

    def next_run(model: Any, started: Any, was_due: Any) -> Any:
        if model.metadata["name"] == name:
            raise OverflowError("date value out of range")
        return real(model, started, was_due)

    monkeypatch.setattr(reconcile, "next_run", next_run)


def test_a_bug_resolving_one_check_is_its_internal_error_and_the_others_run(
    api, reconciler, monkeypatch, caplog
):
    three_checks(api)
    real = reconcile.resolve_source

    def resolve(model: Any, view: Any) -> Any:
        if model.metadata["name"] == "b":
            raise RuntimeError("boom in b")
        return real(model, view)

    monkeypatch.setattr(reconcile, "resolve_source", resolve)
    report = reconciler.tick()
    assert report.created == 1 and report.not_ready == 1
    assert len(probe_pods(api)) == 1
    assert planned_checks(api) == {"a", "c"}
    status, reason, message = ready(api, "b")
    assert (status, reason) == ("False", "InternalError")
    assert "planning the run failed" in message and "RuntimeError: boom in b" in message
    assert [r for r in caplog.records if "boom in b" in r.getMessage()]  # logged, once
    assert len([r for r in caplog.records if "boom in b" in r.getMessage()]) == 1


def test_a_bug_collecting_one_result_is_that_checks_and_the_pods_others_land(
    api, reconciler, clock, monkeypatch
):
    three_checks(api)
    reconciler.tick()
    [pod] = probe_pods(api)
    next_run_overflows_for(monkeypatch, "b")
    finish(api, pod, {item.id: reachable_result() for item in batch_of(pod).checks})
    clock.advance(5)
    reconciler.tick()
    assert check(api, "a")["status"]["runs"] == 1 and check(api, "c")["status"]["runs"] == 1
    status, reason, message = ready(api, "b")
    assert (status, reason) == ("False", "InternalError")
    assert "writing its result failed: OverflowError" in message
    # Collected and deleted: the node's slot is free again.
    assert pod["metadata"]["name"] not in {p["metadata"]["name"] for p in probe_pods(api)}


@pytest.mark.parametrize(
    "corrupt",
    [
        {"env": "{not json"},
        {"env": '{"checks": [{"id": "shop/b/x"}]}'},
        {"node": None},
    ],
    ids=["batch-not-json", "batch-bad-id", "no-node"],
)
def test_one_probe_pod_that_cannot_be_read_fails_its_checks_only(api, reconciler, clock, corrupt):
    source_pod(api)
    apply_check(api, "a")
    apply_check(api, "c")
    apply_check(api, "b", source={"pod": {"name": "web-9"}})  # not found: not planned
    reconciler.tick()
    [good] = probe_pods(api)
    b = check(api, "b")["metadata"]
    bad = copy.deepcopy(good)
    bad["metadata"] = {
        "name": "hopscope-probe-bad",
        "namespace": PROBES,
        "labels": good["metadata"]["labels"],
        "annotations": {ANNOTATION_CHECKS: json.dumps({f"shop/b/{b['generation']}": b["uid"]})},
    }
    [variable] = [e for e in bad["spec"]["containers"][0]["env"] if e["name"] == wire.ENV]
    variable["value"] = corrupt.get("env", variable["value"])
    api.create(PODS, PROBES, bad)
    if "node" in corrupt:  # written around admission, as a hand edit would be
        bad = api.get(PODS, PROBES, "hopscope-probe-bad")
        del bad["spec"]["nodeName"]
        api.put(PODS, bad)
    finish(api, good, {item.id: reachable_result() for item in batch_of(good).checks})
    clock.advance(5)
    reconciler.tick()  # does not raise
    assert check(api, "a")["status"]["runs"] == 1 and check(api, "c")["status"]["runs"] == 1
    status, reason, message = ready(api, "b")
    assert (status, reason) == ("False", "InternalError")
    assert "collecting probe pod hopscope-probe-bad failed" in message
    assert "hopscope-probe-bad" not in {p["metadata"]["name"] for p in probe_pods(api)}


def test_a_status_write_refused_for_one_check_is_its_api_refused(
    api, reconciler, clock, monkeypatch
):
    three_checks(api)
    reconciler.tick()
    [pod] = probe_pods(api)
    real = api.patch_status

    def patch_status(resource, namespace, name, status, version):
        if name == "b" and status.get("connectionStatus") == "Reachable":
            raise ApiError("Internal error occurred: etcdserver: request timed out")
        return real(resource, namespace, name, status, version)

    monkeypatch.setattr(api, "patch_status", patch_status)
    finish(api, pod, {item.id: reachable_result() for item in batch_of(pod).checks})
    clock.advance(5)
    reconciler.tick()
    assert check(api, "a")["status"]["runs"] == 1 and check(api, "c")["status"]["runs"] == 1
    status, reason, message = ready(api, "b")
    assert (status, reason) == ("False", "ApiRefused")
    assert "the API server refused a request" in message and "etcdserver" in message


def test_a_bug_making_one_nodes_probe_pod_fails_its_checks_only(api, reconciler, monkeypatch):
    source_pod(api)
    source_pod(api, name="web-1", node="worker-2", uid="7c0d2f3e-1111-4222-8333-944455566677")
    apply_check(api, "a")
    apply_check(api, "b", source={"pod": {"name": "web-1"}})
    real = reconcile.probe_pod

    def probe_pod(node: str, *args: Any, **kw: Any) -> Any:
        if node == "worker-2":
            raise ValueError("cannot build")
        return real(node, *args, **kw)

    monkeypatch.setattr(reconcile, "probe_pod", probe_pod)
    assert reconciler.tick().created == 1
    assert planned_checks(api) == {"a"}
    status, reason, message = ready(api, "b")
    assert (status, reason) == ("False", "InternalError")
    assert "making its probe pod failed: ValueError: cannot build" in message


def test_an_agent_call_that_raises_is_its_checks_result_and_others_run(api, clock):
    gateway(api, with_agent=True)
    apply_check(api, "g", source={"workload": {"kind": "Deployment", "name": "gateway"}})
    source_pod(api)
    apply_check(api, "a")

    def broken(*args: Any) -> Any:
        raise KeyError("hops")

    reconciler = reconciler_with(api, clock, broken)
    reconciler.tick()
    assert planned_checks(api) == {"a"}
    for _ in range(100):
        if check(api, "g").get("status", {}).get("runs"):
            break
        time.sleep(0.01)
        reconciler.tick()
    status = check(api, "g")["status"]
    assert status["connectionStatus"] == "Unknown"
    assert any("KeyError" in issue["message"] for issue in status["issues"])


def test_a_bug_writing_an_agents_result_is_that_checks_alone(api, clock, monkeypatch):
    gateway(api, with_agent=True)
    apply_check(
        api,
        "g",
        schedule={"intervalSeconds": 60},
        source={"workload": {"kind": "Deployment", "name": "gateway"}},
    )
    source_pod(api)
    apply_check(api, "a")
    next_run_overflows_for(monkeypatch, "g")
    reconciler = reconciler_with(api, clock, FakeAgent(reachable_result()))
    for _ in range(100):
        reconciler.tick()
        conditions = check(api, "g").get("status", {}).get("conditions", [])
        if any(c["reason"] == "InternalError" for c in conditions):
            break
        time.sleep(0.01)
    status, reason, message = ready(api, "g")
    assert (status, reason) == ("False", "InternalError")
    assert "writing its agent's result failed: OverflowError" in message
    assert planned_checks(api) == {"a"}


@pytest.mark.parametrize("plural", ["connectivitychecks", "pods"])
def test_a_failure_listing_the_checks_or_the_probe_pods_still_fails_the_tick(
    api, reconciler, monkeypatch, plural
):
    three_checks(api)
    real = api.list

    def listing(resource, namespace, labels=None):
        if resource.plural == plural and (plural != "pods" or namespace == PROBES):
            raise ApiError("the server is currently unable to handle the request")
        return real(resource, namespace, labels)

    monkeypatch.setattr(api, "list", listing)
    with pytest.raises(ApiError):
        reconciler.tick()


def put_around_validation(api, name: str, spec: dict[str, Any]) -> None:
    """Stored as an older CRD (without the bounds) let it be, or written around validation."""
    api.put(
        CHECKS,
        {
            "apiVersion": "hopscope.dev/v1alpha1",
            "kind": "ConnectivityCheck",
            "metadata": {"name": name, "namespace": "shop", "generation": 1},
            "spec": {"destination": {"ip": "192.0.2.1", "port": 443}, **spec},
        },
    )


LONG_VALUES = [f"{i:03}" * 333 + "v" for i in range(299)]  # web-0's "web" and 299 of 1,000
POD_SOURCE = {"source": {"pod": {"name": "web-0"}}}
OUT_OF_BOUNDS = {
    "interval-1e12": (
        {**POD_SOURCE, "schedule": {"intervalSeconds": 1_000_000_000_000}},
        "spec.schedule.intervalSeconds",
    ),
    "label-value-a-b": (
        {"source": {"podSelector": {"matchLabels": {"app": "a b"}}}},
        "spec.source.podSelector.matchLabels.app",
    ),
    "300-values-of-1000": (
        {
            "source": {
                "podSelector": {
                    "matchExpressions": [
                        {"key": "app", "operator": "In", "values": ["web", *LONG_VALUES]}
                    ]
                }
            }
        },
        "spec.source.podSelector.matchExpressions.0.values",
    ),
}


@pytest.mark.parametrize(("spec", "field"), OUT_OF_BOUNDS.values(), ids=OUT_OF_BOUNDS.keys())
def test_a_stored_check_out_of_the_crds_bounds_is_its_invalid_spec_and_the_others_run(
    api, clock, spec, field
):
    """The real story, through the client and the recorded API server: `app: "a b"` was a
    400 for the pods' list, 1e12 s an OverflowError, 300 values of 1,000 a 422 for the probe
    pod of every check on the node. Now the model refuses each, naming the field."""
    source_pod(api)
    apply_check(api, "a")
    apply_check(api, "c")
    put_around_validation(api, "b", spec)
    with HttpApi(api, TOKEN).running() as server:
        settings = Settings(namespace=PROBES, image="hopscope-probe:test")
        reconciler = Reconciler(kube_api(server), Metrics(), settings, clock)
        report = reconciler.tick()
    assert report.created == 1
    assert planned_checks(api) == {"a", "c"}
    status, reason, message = ready(api, "b")
    assert (status, reason) == ("False", "InvalidSpec")
    assert field in message
    assert api.objects(PODS, PROBES)
