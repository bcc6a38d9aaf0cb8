"""The operator's tick against the in-memory API server: what a user sees on the check.

Each test plays a story end to end: a check is applied, the tick plans a probe pod, the
"kubelet" finishes it with the probe's output, the next tick writes status, events and metrics.
"""

from __future__ import annotations

import logging
from collections import Counter
from datetime import datetime, timedelta
from typing import Any

import pytest

from hopscope_operator.api import API_VERSION, KIND, ConnectivityCheck
from hopscope_operator.cluster import CHECKS, PODS, Object
from hopscope_operator.controller.metrics import Metrics, MetricsOptions
from hopscope_operator.controller.plan import Caps
from hopscope_operator.controller.reconcile import Reconciler, Settings
from hopscope_operator.controller.tenancy import Tenancy
from hopscope_probe.batch import Batch, BatchOutput
from hopscope_probe.models import (
    ConnectionStatus,
    HopType,
    Issue,
    IssueType,
    Latency,
    Origin,
    ProbeResult,
    Severity,
)
from tests import builders

from .conftest import Clock
from .fakeapi import FakeApi, container_status

PROBES = "hopscope-system"
POD_UID = "3f1c2b4a-9d8e-4f70-a1b2-c3d4e5f60718"


# What the stories of node sources run with: namespaced checks may not use them by default.
NODE_SOURCES = Tenancy(allow_node_sources=True)


def make_reconciler(
    api: FakeApi,
    clock: Clock,
    caps: Caps | None = None,
    tenancy: Tenancy | None = None,
    metrics: MetricsOptions | None = None,
) -> Reconciler:
    settings = Settings(
        namespace=PROBES,
        image="hopscope-probe:test",
        caps=caps or Caps(),
        tenancy=tenancy or Tenancy(),
    )
    return Reconciler(api, Metrics(metrics or MetricsOptions()), settings, clock)


@pytest.fixture
def reconciler(api: FakeApi, clock: Clock) -> Reconciler:
    return make_reconciler(api, clock)


def source_pod(api: FakeApi, name: str = "web-0", node: str = "worker-1", uid: str = POD_UID):
    api.create(
        PODS,
        "shop",
        {
            "metadata": {"name": name, "labels": {"app": "web"}},
            "spec": {"nodeName": node, "containers": [{"name": "web", "image": "web"}]},
        },
    )
    stored = api.stored(PODS, "shop", name)
    stored["metadata"]["uid"] = uid
    api.set_pod_status(
        "shop",
        name,
        {
            "phase": "Running",
            "podIP": "10.244.1.5",
            "podIPs": [{"ip": "10.244.1.5"}],
            "conditions": [{"type": "Ready", "status": "True"}],
        },
    )


def apply_check(api: FakeApi, name: str = "web-to-db", **spec: Any) -> Object:
    body = {
        "apiVersion": API_VERSION,
        "kind": KIND,
        "metadata": {"name": name},
        "spec": {
            "source": {"pod": {"name": "web-0"}},
            "destination": {"service": {"name": "db"}, "port": 5432},
            **spec,
        },
    }
    return api.create(CHECKS, "shop", body)


def check(api: FakeApi, name: str = "web-to-db") -> Object:
    return api.get(CHECKS, "shop", name)


def probe_pods(api: FakeApi) -> list[Object]:
    return api.objects(PODS, PROBES)


def batch_of(pod: Object) -> Batch:
    env = pod["spec"]["containers"][0]["env"]
    return Batch.model_validate_json(next(e["value"] for e in env if e["name"] == "HOPSCOPE_BATCH"))


def reachable_result(avg_ms: float = 1.5, path: tuple[str, ...] = ("10.244.0.1",)) -> ProbeResult:
    source = builders.hop(0, "10.244.1.5", hop_id="source", kind=HopType.SOURCE)
    routers = [builders.hop(ttl, address, avg_ms / 2) for ttl, address in enumerate(path, 1)]
    return builders.result(
        host="10.96.0.20",
        latency=Latency(min_ms=avg_ms, avg_ms=avg_ms, max_ms=avg_ms),
        hops=[source, *routers],
        fingerprint="-".join(path),
        duration_ms=120.0,
    )


def unreachable_result() -> ProbeResult:
    issue = Issue(
        type=IssueType.FIREWALL,
        severity=Severity.ERROR,
        origin=Origin.OUTBOUND,
        hop_id="source",
        message="silently dropped",
        hint="find the rule",
    )
    return builders.result(
        ConnectionStatus.UNREACHABLE,
        host="10.96.0.20",
        addresses=[],
        hops=[builders.hop(0, hop_id="source", kind=HopType.SOURCE)],
        issues=[issue],
    )


def finish(api: FakeApi, pod: Object, results: dict[str, ProbeResult]) -> None:
    lines = ["hopscope: resolving db.shop.svc"]  # progress lines are interleaved in the log
    lines += [BatchOutput(id=i, result=r).to_json() for i, r in results.items()]
    api.finish_pod(PROBES, pod["metadata"]["name"], "\n".join(lines) + "\n")


def run_once(api: FakeApi, reconciler: Reconciler, result: ProbeResult) -> Object:
    reconciler.tick()
    [pod] = probe_pods(api)
    finish(api, pod, {item.id: result for item in batch_of(pod).checks})
    reconciler.tick()
    return check(api)


def condition(obj: Object, kind: str) -> Object:
    return next(c for c in obj["status"]["conditions"] if c["type"] == kind)


def metric_lines(reconciler: Reconciler, name: str) -> list[str]:
    text = reconciler.metrics.exposition().decode()
    return [line for line in text.splitlines() if line.startswith(name + "{")]


# ---- the main story -------------------------------------------------------------------------


def test_a_check_is_probed_from_its_pods_node_and_the_result_lands_in_status(api, reconciler):
    source_pod(api)
    apply_check(api)
    report = reconciler.tick()
    assert report.created == 1
    [pod] = probe_pods(api)
    assert pod["spec"]["nodeName"] == "worker-1"
    [item] = batch_of(pod).checks
    assert item.id == "shop/web-to-db/1"
    assert item.netns.pod_uid == POD_UID  # enters the source pod's network namespace
    assert (item.request.host, item.request.port) == ("10.96.0.20", 5432)

    finish(api, pod, {item.id: reachable_result(avg_ms=1.5)})
    assert reconciler.tick().collected == 1

    status = check(api)["status"]
    assert status["phase"] == "Completed"
    assert status["connectionStatus"] == "Reachable"
    assert status["latency"]["avgMs"] == 1.5
    assert status["observedGeneration"] == 1 and status["runs"] == 1
    assert status["hopCount"] == 2
    assert status["source"]["pod"] == "web-0" and status["source"]["node"] == "worker-1"
    assert condition(check(api), "Ready")["status"] == "True"
    assert condition(check(api), "Reachable")["status"] == "True"
    assert probe_pods(api) == []  # deleted once read
    reasons = [e["reason"] for e in api.events_for("web-to-db")]
    assert "Reachable" in reasons
    assert metric_lines(reconciler, "hopscope_check_reachable") == [
        'hopscope_check_reachable{check="web-to-db",destination="service/shop/db:5432",'
        'namespace="shop",protocol="TCP",source="pod/shop/web-0"} 1.0'
    ]


def test_a_finished_run_logs_one_info_line_naming_the_check_and_its_outcome(
    api, reconciler, caplog
):
    source_pod(api)
    apply_check(api)
    caplog.set_level(logging.INFO)
    run_once(api, reconciler, reachable_result())
    reconciler.tick()  # nothing finished: nothing said
    [line] = [r.getMessage() for r in caplog.records if r.levelno >= logging.INFO]
    assert line.startswith("check shop/web-to-db: Reachable (run 1, 120 ms): Reachable: 10/10")


def test_a_one_shot_check_runs_once_per_generation(api, reconciler, clock):
    source_pod(api)
    apply_check(api)
    run_once(api, reconciler, reachable_result())
    clock.advance(3600)
    assert reconciler.tick().created == 0  # nothing new to say until the spec changes
    api.apply_spec("shop", "web-to-db", lambda spec: spec["probes"].update(count=3))
    assert reconciler.tick().created == 1
    [item] = batch_of(probe_pods(api)[0]).checks
    assert item.id == "shop/web-to-db/2" and item.request.count == 3


def test_an_unreachable_destination_exports_its_series_so_alerts_fire(api, reconciler):
    source_pod(api)
    apply_check(api)
    obj = run_once(api, reconciler, unreachable_result())
    assert obj["status"]["connectionStatus"] == "Unreachable"
    assert condition(obj, "Reachable")["status"] == "False"
    assert [line.split()[-1] for line in metric_lines(reconciler, "hopscope_check_reachable")] == [
        "0.0"
    ]
    [loss] = metric_lines(reconciler, "hopscope_check_probe_loss_ratio")
    assert loss.endswith(" 1.0")
    assert any(e["type"] == "Warning" for e in api.events_for("web-to-db"))


# ---- what cannot run ------------------------------------------------------------------------


def test_a_missing_source_is_ready_false_and_retried_with_backoff(api, reconciler, clock):
    apply_check(api)
    assert reconciler.tick().not_ready == 1
    obj = check(api)
    ready = condition(obj, "Ready")
    assert (ready["status"], ready["reason"]) == ("False", "SourceNotFound")
    assert "web-0" in ready["message"]
    assert probe_pods(api) == []
    events_after_first = len(api.events_for("web-to-db"))

    clock.advance(5)  # before the retry time: not even tried
    assert reconciler.tick().not_ready == 0
    clock.advance(10)
    assert reconciler.tick().not_ready == 1  # retried, still missing: no new events
    assert len(api.events_for("web-to-db")) == events_after_first
    first_retry = datetime.fromisoformat(check(api)["status"]["nextRunTime"])
    clock.now = first_retry + timedelta(seconds=1)
    reconciler.tick()
    later_retry = datetime.fromisoformat(check(api)["status"]["nextRunTime"])
    assert later_retry - clock.now > first_retry - (clock.now - timedelta(seconds=16))

    source_pod(api)  # the pod shows up
    clock.now = later_retry + timedelta(seconds=1)
    assert reconciler.tick().created == 1


def test_a_service_port_that_does_not_exist_is_destination_not_found(api, reconciler):
    source_pod(api)
    apply_check(api, destination={"service": {"name": "db"}, "port": 5433})
    reconciler.tick()
    ready = condition(check(api), "Ready")
    assert (ready["status"], ready["reason"]) == ("False", "DestinationNotFound")
    assert "5433" in ready["message"]


@pytest.mark.parametrize(
    ("status", "reason"),
    [
        (
            {
                "phase": "Pending",
                "containerStatuses": [
                    container_status(
                        {"waiting": {"reason": "ImagePullBackOff", "message": "not found"}}
                    )
                ],
            },
            "ProbeImagePull",
        ),
        (
            {
                "phase": "Failed",
                "containerStatuses": [
                    container_status({"terminated": {"exitCode": 137, "reason": "OOMKilled"}})
                ],
            },
            "ProbeOOMKilled",
        ),
        (
            {"phase": "Failed", "reason": "DeadlineExceeded", "message": "too long"},
            "ProbeDeadlineExceeded",
        ),
    ],
)
def test_a_probe_pod_that_cannot_deliver_is_unknown_with_the_reason(
    api, reconciler, status, reason
):
    source_pod(api)
    apply_check(api)
    reconciler.tick()
    [pod] = probe_pods(api)
    api.set_pod_status(PROBES, pod["metadata"]["name"], status)
    reconciler.tick()
    obj = check(api)
    assert obj["status"]["connectionStatus"] == "Unknown"
    assert obj["status"]["phase"] == "Failed"
    assert condition(obj, "Reachable")["reason"] == reason
    # The probe's own issue first; static analysis' findings (this sparse cluster has no
    # kube-dns and db has no endpoints) follow it and are kept apart in status.analysis.
    static = obj["status"]["analysis"]["issues"]
    probe_issues = [i for i in obj["status"]["issues"] if i not in static]
    assert [i["type"] for i in probe_issues] == ["Probe"]
    assert obj["status"]["issues"][0]["type"] == "Probe"
    assert probe_pods(api) == []


def test_malformed_output_is_unknown_and_the_operator_carries_on(api, reconciler):
    source_pod(api)
    apply_check(api)
    reconciler.tick()
    [pod] = probe_pods(api)
    api.finish_pod(PROBES, pod["metadata"]["name"], '{"id": "shop/web-to-db/1", "result": {')
    reconciler.tick()
    obj = check(api)
    assert condition(obj, "Reachable")["reason"] == "ProbeOutputMalformed"


def test_a_stored_check_that_fails_the_model_is_ready_false_not_a_crash(api, reconciler):
    source_pod(api)
    apply_check(api, name="good")
    apply_check(api, name="bad")
    api.stored(CHECKS, "shop", "bad")["spec"]["protocol"] = "QUIC"
    report = reconciler.tick()
    assert report.created == 1  # the good one still runs
    ready = condition(check(api, "bad"), "Ready")
    assert (ready["status"], ready["reason"]) == ("False", "InvalidSpec")
    assert "protocol" in ready["message"]


# ---- spec changes, deletes, restarts --------------------------------------------------------


def test_a_result_for_an_old_generation_is_dropped_and_the_new_spec_runs(api, reconciler):
    source_pod(api)
    apply_check(api)
    reconciler.tick()
    [old_pod] = probe_pods(api)
    api.apply_spec("shop", "web-to-db", lambda spec: spec.update(protocol="HTTP"))
    finish(api, old_pod, {"shop/web-to-db/1": reachable_result()})
    report = reconciler.tick()
    assert report.collected == 0 and report.created == 1
    status = check(api)["status"]  # only that a run is under way: no result of spec 1 in it
    assert (status["phase"], status["runs"]) == ("Running", 0) and "connectionStatus" not in status
    [new_pod] = probe_pods(api)
    assert [i.id for i in batch_of(new_pod).checks] == ["shop/web-to-db/2"]


def test_deleting_a_check_deletes_its_pods_and_its_series(api, reconciler):
    source_pod(api)
    apply_check(api)
    run_once(api, reconciler, reachable_result())
    api.apply_spec("shop", "web-to-db", lambda spec: spec["probes"].update(count=2))
    reconciler.tick()
    assert len(probe_pods(api)) == 1
    api.delete(CHECKS, "shop", "web-to-db")
    reconciler.forget("shop", "web-to-db")
    assert probe_pods(api) == []
    assert "web-to-db" not in reconciler.metrics.exposition().decode()


def test_a_pod_left_behind_by_a_deleted_check_is_swept_on_the_next_tick(api, reconciler):
    source_pod(api)
    apply_check(api)
    reconciler.tick()
    api.delete(CHECKS, "shop", "web-to-db")  # the delete handler never ran (operator down)
    assert reconciler.tick().orphans_deleted == 1
    assert probe_pods(api) == []


def test_the_series_of_a_check_deleted_unseen_go_on_the_next_tick(api, reconciler):
    source_pod(api)
    apply_check(api)
    apply_check(api, "kept")
    reconciler.tick()
    [pod] = probe_pods(api)
    finish(api, pod, {item.id: reachable_result() for item in batch_of(pod).checks})
    reconciler.tick()
    assert metric_lines(reconciler, "hopscope_check_reachable")
    # Its DELETED event never reached forget(), or forget() ran while a tick wrote its run.
    api.delete(CHECKS, "shop", "web-to-db")
    reconciler.tick()
    [kept] = metric_lines(reconciler, "hopscope_check_reachable")
    assert 'check="kept"' in kept


def test_a_restarted_operator_adopts_the_running_pod_and_collects_it(api, clock):
    source_pod(api)
    apply_check(api)
    first = make_reconciler(api, clock)
    first.tick()
    [pod] = probe_pods(api)
    del first  # killed mid-run

    second = make_reconciler(api, clock)
    clock.advance(5)
    assert second.tick().created == 0  # the check is in flight: no second pod
    assert len(probe_pods(api)) == 1
    finish(api, pod, {"shop/web-to-db/1": reachable_result()})
    assert second.tick().collected == 1
    assert check(api)["status"]["runs"] == 1


def test_a_tick_repeated_after_a_crash_adopts_the_pod_it_already_made(api, clock):
    source_pod(api)
    apply_check(api)
    make_reconciler(api, clock).tick()
    # The same tick again, as if the first crashed before its pod could be listed (the probe
    # pods' list misses it; the source pod is still listed among all pods).
    rerun = make_reconciler(api, clock)
    original_list = api.list
    missed = lambda r, ns, labels=None: r == PODS and ns == PROBES  # noqa: E731
    api.list = lambda r, ns, labels=None: [] if missed(r, ns) else original_list(r, ns, labels)
    report = rerun.tick()
    api.list = original_list
    assert (report.created, report.adopted) == (0, 1)
    assert len(probe_pods(api)) == 1


def test_a_status_written_concurrently_is_retried_on_the_new_resource_version(api, reconciler):
    source_pod(api)
    apply_check(api)
    reconciler.tick()
    [pod] = probe_pods(api)
    finish(api, pod, {"shop/web-to-db/1": reachable_result()})
    original = api.list

    def list_then_race(resource, namespace, labels=None):
        listed = original(resource, namespace, labels)
        if resource == CHECKS:  # someone writes status between our list and our patch
            obj = api.get(CHECKS, "shop", "web-to-db")
            api.patch_status(
                CHECKS, "shop", "web-to-db", {"runs": 0}, obj["metadata"]["resourceVersion"]
            )
        return listed

    api.list = list_then_race
    assert reconciler.tick().collected == 1
    api.list = original
    assert check(api)["status"]["connectionStatus"] == "Reachable"


# ---- schedules, paths, batching ---------------------------------------------------------------


def test_a_scheduled_check_runs_again_after_its_interval_and_reports_path_changes(
    api, reconciler, clock
):
    source_pod(api)
    apply_check(api, schedule={"intervalSeconds": 60})
    run_once(api, reconciler, reachable_result(path=("10.244.0.1",)))
    next_run = datetime.fromisoformat(check(api)["status"]["nextRunTime"])
    # Counted from the run's start, this tick: a spec's second run comes up to 10% early.
    assert timedelta(seconds=54) < next_run - clock.now <= timedelta(seconds=60)
    assert check(api)["status"]["lastRunTime"].startswith(clock.now.strftime("%Y-%m-%dT%H:%M"))
    clock.now = next_run - timedelta(seconds=1)
    assert reconciler.tick().created == 0
    clock.now = next_run
    obj = run_once(api, reconciler, reachable_result(path=("10.244.0.9",)))
    assert obj["status"]["runs"] == 2
    assert "PathChanged" in [e["reason"] for e in api.events_for("web-to-db")]
    [changes] = metric_lines(reconciler, "hopscope_check_path_changes_total")
    assert changes.endswith(" 1.0")


def test_a_scheduled_check_that_keeps_passing_posts_events_only_for_what_changed(
    api, reconciler, clock
):
    source_pod(api)
    apply_check(api, schedule={"intervalSeconds": 60})
    for _ in range(3):
        run_once(api, reconciler, reachable_result())
        clock.advance(70)
    after_three = Counter(e["reason"] for e in api.events_for("web-to-db"))
    assert after_three["Reachable"] == 1  # the first run's; repeats are in status, metrics
    assert check(api)["status"]["runs"] == 3
    run_once(api, reconciler, unreachable_result())
    news = Counter(e["reason"] for e in api.events_for("web-to-db")) - after_three
    assert news == Counter(["ReachableChanged", "Unreachable"])


def test_checks_on_one_node_share_one_pod_and_caps_defer_the_rest(api, clock):
    source_pod(api, "web-0", "worker-1", POD_UID)
    source_pod(api, "web-1", "worker-2", "4f1c2b4a-9d8e-4f70-a1b2-c3d4e5f60718")
    for index in range(6):
        apply_check(api, name=f"a{index}", source={"pod": {"name": "web-0"}})
    for index in range(4):
        apply_check(api, name=f"b{index}", source={"node": {"name": "worker-2"}})
    reconciler = make_reconciler(api, clock, Caps(max_pods=1), NODE_SOURCES)
    report = reconciler.tick()
    assert (report.created, report.deferred) == (1, 4)
    [pod] = probe_pods(api)
    assert len(batch_of(pod).checks) == 6  # every check of worker-1 in one pod

    finish(api, pod, {item.id: reachable_result() for item in batch_of(pod).checks})
    report = reconciler.tick()
    assert (report.collected, report.created) == (6, 1)
    [second] = probe_pods(api)
    assert second["spec"]["nodeName"] == "worker-2" and second["spec"]["hostNetwork"] is True
    assert {i.netns for i in batch_of(second).checks} == {"host"}


def test_a_tick_reads_shared_sources_from_the_caches_and_so_does_the_next(api, clock):
    reconciler = make_reconciler(api, clock, tenancy=NODE_SOURCES)
    source_pod(api)
    for index in range(5):
        apply_check(api, name=f"web-{index}")
    for index in range(5):
        apply_check(api, name=f"node-{index}", source={"node": {"name": "worker-2"}})
    reads = len(api.calls)
    assert reconciler.tick().created == 2
    made = api.calls[reads:]
    # Ten checks, two sources and one Service: the pod, the node and the Service come from the
    # watch-fed caches, with no request of their own (not one per check, not one per tick).
    assert not [call for call in made if call[0] == "get"]  # the caches' one list of each

    for pod in probe_pods(api):
        finish(api, pod, {item.id: reachable_result() for item in batch_of(pod).checks})
    assert reconciler.tick().collected == 10
    api.apply_spec("shop", "node-0", lambda spec: spec["probes"].update(count=3))
    reads = len(api.calls)
    assert reconciler.tick().created == 1  # the node, as its watch has it now
    assert [call for call in api.calls[reads:] if call[0] in ("get", "list")] == []


def test_every_pod_event_and_status_written_passed_the_servers_validation(api, reconciler):
    # The fake validates pods and events with kubernetes-validate and checks with the CRD:
    # a story that gets this far wrote nothing the real API server would refuse.
    source_pod(api)
    apply_check(api)
    run_once(api, reconciler, unreachable_result())
    kinds = {(e.type, e.resource.plural) for e in api.watch_events}
    assert ("ADDED", "pods") in kinds and ("ADDED", "events") in kinds
    assert ("MODIFIED", "connectivitychecks") in kinds
    assert ("DELETED", "pods") in kinds


def test_a_restarted_operator_exports_the_last_result_again_without_recounting(api, clock):
    source_pod(api)
    apply_check(api)
    counted = MetricsOptions(per_check_counters=True)
    run_once(api, make_reconciler(api, clock, metrics=counted), unreachable_result())
    restarted = make_reconciler(api, clock, metrics=counted)
    assert restarted.tick().created == 0  # a one-shot check: nothing to run
    [reachable] = metric_lines(restarted, "hopscope_check_reachable")
    assert reachable.endswith(" 0.0")  # the alert keeps firing across the restart
    [failed] = metric_lines(restarted, "hopscope_check_probes_failed_total")
    assert failed.endswith(" 0.0")  # counted by the process that ran it, not again


def test_a_status_the_tick_wrote_is_not_parsed_again_and_a_spec_change_is(
    api, reconciler, monkeypatch
):
    source_pod(api)
    apply_check(api, schedule={"intervalSeconds": 60})
    reconciler.tick()
    [pod] = probe_pods(api)
    finish(api, pod, {item.id: reachable_result() for item in batch_of(pod).checks})
    reconciler.tick()  # writes the result: a new resourceVersion
    parsed: list[str] = []
    validate = ConnectivityCheck.model_validate.__func__  # type: ignore[attr-defined]

    def counted(cls, body, *args, **kwargs):  # type: ignore[no-untyped-def]
        parsed.append(body["metadata"]["resourceVersion"])
        return validate(cls, body, *args, **kwargs)

    monkeypatch.setattr(ConnectivityCheck, "model_validate", classmethod(counted))
    reconciler.tick()
    assert parsed == []  # the model it wrote stands for the version it wrote
    edited = api.apply_spec(
        "shop", "web-to-db", lambda spec: spec.setdefault("thresholds", {}).update(latencyMs=5)
    )
    reconciler.tick()
    assert parsed == [edited["metadata"]["resourceVersion"]]
    assert reconciler._lister.list()[0]["shop/web-to-db"].model.spec.thresholds.latency_ms == 5
