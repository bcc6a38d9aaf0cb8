"""Status after a run: phase, counters, conditions that move only on change, and Events."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from functools import partial
from typing import TYPE_CHECKING, Any

from hopscope_operator.api import (
    Analysis,
    AnalysisResult,
    ConditionStatus,
    ConditionType,
    ConnectivityCheckStatus,
    Phase,
)
from hopscope_operator.controller.collect import FailureReason, ProbeFailure
from hopscope_operator.controller.resolve import ResolvedDestination, ResolvedSource
from hopscope_operator.controller.status import (
    EVENT_MESSAGE_LIMIT,
    PATH_CHANGED,
    Event,
    next_status,
    not_ready_status,
    running_status,
    starts_a_run,
    summary,
)
from hopscope_probe.models import (
    ConnectionStatus,
    Hop,
    HopType,
    Issue,
    IssueType,
    Latency,
    Origin,
    ProbeResult,
    Protocol,
    Severity,
    SourceInfo,
)
from tests import builders

if TYPE_CHECKING:
    from tests.operator.conftest import ApiServer

T0 = datetime(2025, 6, 1, 12, 0, tzinfo=UTC)
MINUTE = timedelta(minutes=1)
SOURCE = ResolvedSource(
    kind="pod",
    node_name="worker-1",
    description="pod shop/web-0",
    pod_namespace="shop",
    pod_name="web-0",
    pod_uid="3f1c2b4a-9d8e-4f70-a1b2-c3d4e5f60718",
    address="10.244.1.12",
)
HOPS = [
    Hop(id="0", type=HopType.SOURCE, address="10.244.1.12", ttl=0, next_hop_ids=["1"]),
    Hop(id="1", type=HopType.NODE, address="172.18.0.3", ttl=1, next_hop_ids=["2"]),
    Hop(id="2", type=HopType.DESTINATION, address="10.96.12.7", ttl=2),
]
FIREWALL = Issue(
    type=IssueType.FIREWALL,
    severity=Severity.ERROR,
    origin=Origin.OUTBOUND,
    hop_id="1",
    message="packets dropped after 172.18.0.3",
    hint="check the node's firewall",
)
LOSS = Issue(
    type=IssueType.PACKET_LOSS,
    severity=Severity.WARNING,
    origin=Origin.OUTBOUND,
    hop_id="1",
    message="20% lost",
    hint="check the uplink",
)


result = partial(
    builders.result,
    host="10.96.12.7",
    source=SourceInfo(address="10.244.1.12"),
    latency=Latency(min_ms=0.4, avg_ms=1.25, max_ms=3.9),
    hops=HOPS,
    fingerprint="fp-a",
    duration_ms=812.0,
)


def run(
    previous: ConnectivityCheckStatus | None,
    probe_result: ProbeResult,
    at: datetime,
    **extra: Any,
) -> tuple[ConnectivityCheckStatus, list[Event]]:
    return next_status(
        previous,
        probe_result,
        generation=extra.pop("generation", 2),
        now=at,
        next_run=at + 5 * MINUTE,
        source=SOURCE,
        **extra,
    )


def condition(status: ConnectivityCheckStatus, kind: ConditionType) -> Any:
    return next(c for c in status.conditions if c.type == kind)


def reasons(events: list[Event]) -> list[str]:
    return [event.reason for event in events]


# ---- the first run --------------------------------------------------------------------------


def test_first_run_fills_the_status() -> None:
    status, _ = run(None, result(issues=[LOSS], failed=2, status=ConnectionStatus.DEGRADED), T0)
    assert status.phase == Phase.COMPLETED
    assert status.connection_status == ConnectionStatus.DEGRADED
    assert (status.runs, status.observed_generation) == (1, 2)
    assert (status.last_run_time, status.next_run_time) == (T0, T0 + 5 * MINUTE)
    assert status.source == SourceInfo(pod="web-0", node="worker-1", address="10.244.1.12")
    assert status.destination is not None and status.destination.addresses == ["10.96.12.7"]
    assert status.latency == Latency(min_ms=0.4, avg_ms=1.25, max_ms=3.9)
    assert (status.probes_sent, status.probes_failed) == (10, 2)
    assert (status.hops, status.hop_count) == (HOPS, 3)
    assert (status.issues, status.issue_count) == ([LOSS], 1)
    assert status.path_fingerprint == "fp-a"


def test_first_run_sets_both_conditions_and_reports_their_transitions() -> None:
    status, events = run(None, result(), T0)
    ready = condition(status, ConditionType.READY)
    reachable = condition(status, ConditionType.REACHABLE)
    assert [c.type for c in status.conditions] == [ConditionType.READY, ConditionType.REACHABLE]
    assert (ready.status, ready.reason, ready.message) == (
        ConditionStatus.TRUE,
        "RunCompleted",
        "probed from pod shop/web-0",
    )
    assert (reachable.status, reachable.reason) == (ConditionStatus.TRUE, "Reachable")
    assert reachable.last_transition_time == ready.last_transition_time == T0
    assert reachable.observed_generation == 2
    assert events == [
        Event("Normal", "Reachable", "Reachable: 10/10 probes answered, avg 1.25 ms, 3 hops"),
        Event(
            "Normal",
            "ReadyChanged",
            "Ready absent → True (RunCompleted): probed from pod shop/web-0",
        ),
        Event(
            "Normal",
            "ReachableChanged",
            "Reachable absent → True (Reachable): Reachable: 10/10 probes answered, avg 1.25 ms,"
            " 3 hops",
        ),
    ]


def test_the_source_address_the_probe_saw_wins() -> None:
    node_source = ResolvedSource(
        kind="node", node_name="worker-1", description="node worker-1", address="172.18.0.3"
    )
    probed = result().model_copy(update={"source": SourceInfo(address="10.0.0.5")})
    status, _ = next_status(None, probed, generation=1, now=T0, next_run=None, source=node_source)
    assert status.source == SourceInfo(node="worker-1", address="10.0.0.5")
    unknown = result().model_copy(update={"source": SourceInfo()})
    status, _ = next_status(None, unknown, generation=1, now=T0, next_run=None, source=node_source)
    assert status.source is not None and status.source.address == "172.18.0.3"
    assert status.next_run_time is None


def test_resolved_destination_addresses_are_shown_when_given() -> None:
    headless = ResolvedDestination(
        "10.244.1.9", 5432, "service shop/db", ["10.244.1.9", "10.244.2.10"], ready_endpoints=2
    )
    status, _ = run(None, result(), T0, destination=headless)
    assert status.destination is not None
    assert status.destination.addresses == ["10.244.1.9", "10.244.2.10"]


# ---- later runs -----------------------------------------------------------------------------


def test_same_outcome_again_moves_no_transition_time_and_posts_no_event() -> None:
    first, _ = run(None, result(), T0)
    second, events = run(first, result(), T0 + MINUTE)
    assert second.runs == 2 and second.last_run_time == T0 + MINUTE
    assert condition(second, ConditionType.REACHABLE).last_transition_time == T0
    assert condition(second, ConditionType.READY).last_transition_time == T0
    assert events == []  # the status and the metrics have the run; an Event says what changed


def test_the_first_run_of_a_changed_spec_posts_its_run_event_again() -> None:
    first, _ = run(None, result(), T0)
    _, events = run(first, result(), T0 + MINUTE, generation=3)
    assert reasons(events) == ["Reachable"]


def test_becoming_unreachable_is_a_transition_with_warnings() -> None:
    first, _ = run(None, result(), T0)
    second, events = run(
        first, result(ConnectionStatus.UNREACHABLE, issues=[FIREWALL]), T0 + MINUTE
    )
    reachable = condition(second, ConditionType.REACHABLE)
    assert (reachable.status, reachable.reason) == (ConditionStatus.FALSE, "Unreachable")
    assert reachable.last_transition_time == T0 + MINUTE
    assert condition(second, ConditionType.READY).last_transition_time == T0
    assert second.phase == Phase.COMPLETED and second.latency is None
    line = (
        "Unreachable: 0/10 probes answered, 3 hops; Firewall at hop 1: packets dropped after"
        " 172.18.0.3"
    )
    assert events == [
        Event("Warning", "Unreachable", line),
        Event("Warning", "ReachableChanged", f"Reachable True → False (Unreachable): {line}"),
    ]


def test_degraded_is_still_reachable_so_no_transition() -> None:
    first, _ = run(None, result(), T0)
    degraded = result(ConnectionStatus.DEGRADED, issues=[LOSS], failed=2)
    second, events = run(first, degraded, T0 + MINUTE)
    reachable = condition(second, ConditionType.REACHABLE)
    assert (reachable.status, reachable.reason) == (ConditionStatus.TRUE, "Degraded")
    assert reachable.last_transition_time == T0
    assert events == [
        Event(
            "Warning",
            "Degraded",
            "Degraded: 8/10 probes answered, avg 1.25 ms, 3 hops; PacketLoss at hop 1: 20% lost",
        )
    ]


def test_a_probe_pod_that_could_not_run_makes_the_run_failed_with_its_reason() -> None:
    first, _ = run(None, result(), T0)
    failure = ProbeFailure(FailureReason.IMAGE_PULL, "probe image: ImagePullBackOff")
    unknown = result(ConnectionStatus.UNKNOWN, fingerprint=None)
    second, events = run(first, unknown, T0 + MINUTE, failure=failure)
    assert second.phase == Phase.FAILED
    assert second.connection_status == ConnectionStatus.UNKNOWN
    reachable = condition(second, ConditionType.REACHABLE)
    assert (reachable.status, reachable.reason, reachable.message) == (
        ConditionStatus.UNKNOWN,
        "ProbeImagePull",
        "ProbeImagePull: probe image: ImagePullBackOff",
    )
    assert condition(second, ConditionType.READY).status == ConditionStatus.TRUE
    assert events[0] == Event(
        "Warning", "ProbeFailed", "ProbeImagePull: probe image: ImagePullBackOff"
    )
    assert reasons(events) == ["ProbeFailed", "ReachableChanged"]


def test_an_unknown_result_from_the_probe_itself_gives_its_first_issue() -> None:
    probe_issue = Issue(
        type=IssueType.PROBE,
        severity=Severity.ERROR,
        origin=Origin.LOCAL,
        message="no process of pod 3f1c… on this node",
        hint="h",
    )
    unknown = result(ConnectionStatus.UNKNOWN, issues=[probe_issue])
    status, events = run(None, unknown, T0)
    assert condition(status, ConditionType.REACHABLE).reason == "Unknown"
    assert events[0] == Event(
        "Warning", "ProbeFailed", "probe could not run: no process of pod 3f1c… on this node"
    )
    assert summary(result(ConnectionStatus.UNKNOWN)) == "probe could not run: no reason given"


def test_a_dns_check_says_what_its_queries_were_answered() -> None:
    nxdomain = result(ConnectionStatus.UNREACHABLE).model_copy(
        update={"protocol": Protocol.DNS, "probes_failed": 0, "dns_answers": {"NXDOMAIN": 10}}
    )
    assert summary(nxdomain).startswith("Unreachable: 10/10 queries answered NXDOMAIN")
    mixed = nxdomain.model_copy(update={"dns_answers": {"NXDOMAIN": 6, "NOERROR": 4}})
    assert summary(mixed).startswith("Unreachable: 10/10 queries answered (6 NXDOMAIN, 4 NOERROR)")


def test_a_spec_change_updates_observed_generation_everywhere() -> None:
    first, _ = run(None, result(), T0, generation=2)
    second, _ = run(first, result(), T0 + MINUTE, generation=3)
    assert second.observed_generation == 3
    assert {c.observed_generation for c in second.conditions} == {3}


# ---- path changes ---------------------------------------------------------------------------


def test_a_new_fingerprint_raises_path_changed() -> None:
    first, _ = run(None, result(fingerprint="fp-a"), T0)
    second, events = run(first, result(fingerprint="fp-b"), T0 + MINUTE)
    assert second.path_fingerprint == "fp-b"
    assert (
        Event("Normal", PATH_CHANGED, "path changed: 3 hops now (fingerprint fp-a → fp-b)")
        in events
    )


def test_a_run_without_a_trace_keeps_the_last_path_to_compare_with() -> None:
    first, first_events = run(None, result(fingerprint="fp-a"), T0)
    untraced, events = run(first, result(fingerprint=None), T0 + MINUTE)
    assert untraced.path_fingerprint == "fp-a"
    assert PATH_CHANGED not in reasons(first_events) + reasons(events)
    same, events = run(untraced, result(fingerprint="fp-a"), T0 + 2 * MINUTE)
    assert PATH_CHANGED not in reasons(events)
    changed, events = run(same, result(fingerprint="fp-c"), T0 + 3 * MINUTE)
    assert reasons(events).count(PATH_CHANGED) == 1
    assert changed.path_fingerprint == "fp-c"


# ---- static analysis ------------------------------------------------------------------------


def test_static_findings_are_merged_once_and_kept_apart() -> None:
    policy = Issue(
        type=IssueType.NETWORK_POLICY,
        severity=Severity.ERROR,
        origin=Origin.INBOUND,
        message="shop/deny-all admits no ingress to db-0",
        hint="allow web → db on 5432",
    )
    analysis = Analysis(result=AnalysisResult.BLOCKED, issues=[policy, FIREWALL])
    status, _ = run(
        None, result(ConnectionStatus.UNREACHABLE, issues=[FIREWALL]), T0, analysis=analysis
    )
    assert status.issues == [FIREWALL, policy]
    assert status.issue_count == 2
    assert status.analysis == analysis


# ---- not ready ------------------------------------------------------------------------------


def test_not_ready_on_a_new_check() -> None:
    status, events = not_ready_status(
        None, "SourceNotFound", "pod shop/web-0 not found", T0, 1, retry_at=T0 + MINUTE
    )
    assert status.phase == Phase.PENDING
    assert status.connection_status == ConnectionStatus.UNKNOWN
    assert (status.runs, status.observed_generation) == (0, 1)
    assert status.next_run_time == T0 + MINUTE
    ready = condition(status, ConditionType.READY)
    assert (ready.status, ready.reason, ready.message) == (
        ConditionStatus.FALSE,
        "SourceNotFound",
        "pod shop/web-0 not found",
    )
    assert condition(status, ConditionType.REACHABLE).status == ConditionStatus.UNKNOWN
    assert events == [
        Event(
            "Warning",
            "ReadyChanged",
            "Ready absent → False (SourceNotFound): pod shop/web-0 not found",
        ),
        Event(
            "Warning",
            "ReachableChanged",
            "Reachable absent → Unknown (SourceNotFound): pod shop/web-0 not found",
        ),
    ]


def test_retrying_not_ready_posts_nothing_new_and_keeps_the_last_findings() -> None:
    ran, _ = run(None, result(issues=[LOSS]), T0)
    gone, events = not_ready_status(
        ran, "DestinationNotFound", "service shop/db not found", T0 + MINUTE, 2
    )
    assert reasons(events) == ["ReadyChanged", "ReachableChanged"]
    assert (gone.runs, gone.issues, gone.hop_count) == (1, [LOSS], 3)
    assert gone.next_run_time is None
    again, events = not_ready_status(
        gone, "DestinationNotFound", "still not found", T0 + 2 * MINUTE, 2
    )
    assert events == []
    ready = condition(again, ConditionType.READY)
    assert (ready.message, ready.last_transition_time) == ("still not found", T0 + MINUTE)
    back, events = run(again, result(), T0 + 3 * MINUTE)
    assert condition(back, ConditionType.READY).status == ConditionStatus.TRUE
    assert reasons(events) == ["Reachable", "ReadyChanged", "ReachableChanged"]


# ---- kstatus' abnormal-true conditions: Stalled while it cannot run, Reconciling while it runs --


def types(status: ConnectivityCheckStatus) -> list[ConditionType]:
    return [c.type for c in status.conditions]


def test_a_check_that_cannot_run_is_stalled_with_readys_reason_and_no_extra_event() -> None:
    status, events = not_ready_status(None, "SourceNotFound", "pod shop/web-0 not found", T0, 4)
    stalled = condition(status, ConditionType.STALLED)
    assert (stalled.status, stalled.reason, stalled.message, stalled.observed_generation) == (
        ConditionStatus.TRUE,
        "SourceNotFound",
        "pod shop/web-0 not found",
        4,
    )
    assert reasons(events) == ["ReadyChanged", "ReachableChanged"]  # Ready's says it already


def test_a_run_under_way_is_reconciling_and_keeps_what_the_results_describe() -> None:
    ran, _ = run(None, result(), T0, generation=1)
    running = running_status(ran, "probing from pod shop/web-0", T0 + MINUTE, 2)
    assert running.phase == Phase.RUNNING
    assert (running.observed_generation, running.runs) == (1, 1)  # spec 2 has no result yet
    reconciling = condition(running, ConditionType.RECONCILING)
    assert (reconciling.status, reconciling.reason, reconciling.observed_generation) == (
        ConditionStatus.TRUE,
        "RunStarted",
        2,
    )
    assert condition(running, ConditionType.READY) == condition(ran, ConditionType.READY)


def test_a_result_ends_both_and_cannot_run_ends_reconciling() -> None:
    both = [ConditionType.READY, ConditionType.REACHABLE]
    stuck, _ = not_ready_status(None, "SourceNotFound", "gone", T0, 1)
    running = running_status(stuck, "probing", T0 + MINUTE, 1)
    assert types(running) == [*both, ConditionType.RECONCILING]
    refused, _ = not_ready_status(running, "ProbePodRefused", "quota", T0 + MINUTE, 1)
    assert types(refused) == [*both, ConditionType.STALLED]
    done, _ = run(
        running_status(refused, "probing", T0 + 2 * MINUTE, 1), result(), T0, generation=1
    )
    assert types(done) == both


def test_only_a_run_that_is_news_is_said_to_start() -> None:
    ran, _ = run(None, result(), T0, generation=1)
    stuck, _ = not_ready_status(ran, "SourceNotFound", "gone", T0, 1)
    assert starts_a_run(None, 1)  # a new check
    assert starts_a_run(ran, 2)  # a spec not yet probed
    assert starts_a_run(stuck, 1)  # after it could not run
    assert not starts_a_run(ran, 1)  # a scheduled repeat: its last result stands
    assert not starts_a_run(running_status(None, "probing", T0, 1), 1)  # already said


# ---- limits and the schema ------------------------------------------------------------------


def test_event_messages_are_clipped() -> None:
    long_issue = FIREWALL.model_copy(update={"message": "x" * 5000})
    _, events = run(None, result(ConnectionStatus.UNREACHABLE, issues=[long_issue]), T0)
    assert all(len(event.message) <= EVENT_MESSAGE_LIMIT for event in events)
    assert events[0].message.endswith("…")


def test_written_statuses_are_accepted_by_the_crd(apiserver: ApiServer) -> None:
    first, _ = run(None, result(issues=[LOSS]), T0)
    failed, _ = run(
        first,
        result(ConnectionStatus.UNKNOWN),
        T0 + MINUTE,
        failure=ProbeFailure(FailureReason.OOM_KILLED, "probe container was OOM-killed"),
    )
    pending, _ = not_ready_status(failed, "SourceNotFound", "gone", T0 + 2 * MINUTE, 3)
    running = running_status(pending, "probing from pod shop/web-0", T0 + 3 * MINUTE, 3)
    for status in (first, failed, pending, running):
        manifest = {
            "apiVersion": "hopscope.dev/v1alpha1",
            "kind": "ConnectivityCheck",
            "metadata": {"name": "web-to-db", "namespace": "shop"},
            "spec": {
                "source": {"pod": {"name": "web-0"}},
                "destination": {"service": {"name": "db"}, "port": 5432},
            },
            "status": status.model_dump(mode="json", by_alias=True, exclude_none=True),
        }
        assert apiserver.errors(manifest) == []
