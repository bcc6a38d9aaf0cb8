"""Collecting a probe pod: one result per check, whatever happened to the pod."""

from __future__ import annotations

import copy
import math
from datetime import UTC, datetime, timedelta
from functools import partial
from typing import Any

import pytest

from hopscope_operator.controller.collect import (
    DEADLINE_GRACE_SECONDS,
    START_TIMEOUT_SECONDS,
    Collected,
    FailureReason,
    Finished,
    Pending,
    Running,
    Stuck,
    collect,
    parse_log,
    pod_outcome,
    seconds_since_ended,
)
from hopscope_operator.controller.plan import BatchItem, probe_pod
from hopscope_operator.controller.runs import RunId
from hopscope_operator.controller.runs import read_batch as batch_of
from hopscope_probe.batch import BatchOutput
from hopscope_probe.models import (
    ConnectionStatus,
    IssueType,
    Latency,
    ProbeRequest,
    ProbeResult,
    Protocol,
    Severity,
)
from tests import builders

CREATED = datetime(2025, 6, 1, 12, 0, tzinfo=UTC)
IDS = ["shop/a/1", "shop/b/2", "team/c/3"]


def make_pod(**status: Any) -> dict[str, Any]:
    items = [
        BatchItem("shop/a", 1, "host", ProbeRequest(host="10.0.0.1", port=80)),
        BatchItem("shop/b", 2, "host", ProbeRequest(host="db.example.com", port=5432)),
        BatchItem("team/c", 3, "host", ProbeRequest(host="10.0.0.3", protocol=Protocol.ICMP)),
    ]
    pod = probe_pod("worker-1", items, image="probe:1", namespace="hopscope", tick=60)
    pod["metadata"]["creationTimestamp"] = "2025-06-01T12:00:00Z"
    pod["status"] = status
    return pod


def terminated(exit_code: int = 0, reason: str = "Completed", message: str = "") -> dict:
    state = {"terminated": {"exitCode": exit_code, "reason": reason, "message": message}}
    return {"name": "probe", "state": state}


def finished_pod(exit_code: int = 0, **extra: Any) -> dict[str, Any]:
    phase = "Succeeded" if exit_code == 0 else "Failed"
    return make_pod(phase=phase, containerStatuses=[terminated(exit_code, **extra)], **{})


result = partial(
    builders.result, host="10.0.0.1", port=80, latency=Latency(min_ms=0.5, avg_ms=1.0, max_ms=2.0)
)


def line(batch_id: str, probe_result: ProbeResult | None = None) -> str:
    return BatchOutput(id=batch_id, result=probe_result or result()).to_json()


def by_check(collected: list[Collected]) -> dict[str, Collected]:
    return {c.check: c for c in collected}


# ---- results from a finished pod ------------------------------------------------------------


def test_every_check_gets_its_line_and_progress_is_ignored() -> None:
    log = "\n".join(
        [
            "hopscope: resolving db.example.com",
            line("shop/b/2", result(ConnectionStatus.UNREACHABLE, host="10.1.1.1")),
            "hopscope: tracing the path to 10.0.0.1",
            "{not a result, but a progress line in braces}",
            line("team/c/3"),
            line("shop/a/1"),
            line("other/x/9"),  # not ours: ignored
            "",
        ]
    )
    collected = collect(finished_pod(), log)
    assert [(c.check, c.generation) for c in collected] == [
        ("shop/a", 1),
        ("shop/b", 2),
        ("team/c", 3),
    ]
    assert all(c.failure is None for c in collected)
    assert by_check(collected)["shop/b"].result.connection_status == ConnectionStatus.UNREACHABLE


def test_a_check_without_a_line_is_reported_as_malformed_output() -> None:
    collected = by_check(collect(finished_pod(), line("shop/a/1") + "\n" + line("team/c/3")))
    missing = collected["shop/b"]
    assert missing.failure is not None
    assert missing.failure.reason == FailureReason.OUTPUT_MALFORMED
    assert missing.failure.message == "probe ended without a result line"
    assert missing.result.connection_status == ConnectionStatus.UNKNOWN
    assert collected["shop/a"].failure is None


def test_unknown_result_has_one_probe_issue_and_the_requests_target() -> None:
    missing = by_check(collect(finished_pod(), ""))["shop/b"]
    assert missing.result.protocol == Protocol.TCP
    assert (missing.result.destination.host, missing.result.destination.port) == (
        "db.example.com",
        5432,
    )
    [issue] = missing.result.issues
    assert (issue.type, issue.severity) == (IssueType.PROBE, Severity.ERROR)
    assert issue.message == "probe ended without a result line"
    assert "same hopscope version" in issue.hint
    context = {item.key: item.value for item in issue.context}
    assert context["reason"] == "ProbeOutputMalformed"
    assert context["pod"].startswith("hopscope-probe-")


def test_a_cut_json_line_is_malformed_for_its_check() -> None:
    cut = line("shop/a/1")[:60]
    collected = by_check(collect(finished_pod(), cut + "\n" + line("shop/b/2")))
    failure = collected["shop/a"].failure
    assert failure is not None and failure.reason == FailureReason.OUTPUT_MALFORMED
    assert failure.message.startswith("probe's result line is malformed: not JSON")
    assert collected["shop/b"].failure is None


def test_a_line_with_an_invalid_result_names_the_field() -> None:
    bad = '{"id": "shop/a/1", "result": {"connectionStatus": "Maybe"}}'
    failure = by_check(collect(finished_pod(), bad))["shop/a"].failure
    assert failure is not None and failure.reason == FailureReason.OUTPUT_MALFORMED
    assert "result.connectionStatus" in failure.message


def test_the_first_good_line_wins_over_malformed_ones() -> None:
    bad = '{"id": "shop/a/1", "result": {}}'
    good = result(host="10.9.9.9")
    for log in (f"{bad}\n{line('shop/a/1', good)}", f"{line('shop/a/1', good)}\n{bad}"):
        parsed = parse_log(log, {"shop/a/1"})
        assert parsed["shop/a/1"] == good
    twice = parse_log(f"{line('shop/a/1', good)}\n{line('shop/a/1')}", {"shop/a/1"})
    assert twice["shop/a/1"] == good


def test_non_object_json_lines_are_skipped() -> None:
    assert parse_log('["shop/a/1"]\n{"id": 3}\n{"no": "id"}', {"shop/a/1"}) == {}


def test_non_zero_exit_without_output_is_probe_failed_with_its_last_words() -> None:
    pod = finished_pod(1, reason="Error", message="Traceback ...\nKeyError: 'x'\n")
    collected = collect(pod, "hopscope: resolving\n")
    assert all(c.failure is not None for c in collected)
    failure = collected[0].failure
    assert failure is not None and failure.reason == FailureReason.FAILED
    assert (
        failure.message == "probe exited with code 1 without a result: Traceback ... KeyError: 'x'"
    )


def test_non_zero_exit_with_every_line_keeps_the_results() -> None:
    log = "\n".join(line(batch_id) for batch_id in IDS)
    assert all(c.failure is None for c in collect(finished_pod(3), log))


# ---- pods that cannot deliver ---------------------------------------------------------------

STUCK_PODS = [
    (
        "unschedulable",
        {
            "phase": "Pending",
            "conditions": [
                {
                    "type": "PodScheduled",
                    "status": "False",
                    "reason": "Unschedulable",
                    "message": "0/3 nodes are available: 1 Insufficient memory.",
                }
            ],
        },
        FailureReason.UNSCHEDULABLE,
        "probe pod is unschedulable: 0/3 nodes are available: 1 Insufficient memory.",
    ),
    (
        "kubelet-refused",
        {"phase": "Failed", "reason": "OutOfcpu", "message": "Node didn't have enough cpu"},
        FailureReason.UNSCHEDULABLE,
        "node worker-1 refused the probe pod: OutOfcpu: Node didn't have enough cpu",
    ),
    (
        "image-pull-backoff",
        {
            "phase": "Pending",
            "containerStatuses": [
                {
                    "name": "probe",
                    "state": {
                        "waiting": {
                            "reason": "ImagePullBackOff",
                            "message": 'Back-off pulling image "probe:1"',
                        }
                    },
                }
            ],
        },
        FailureReason.IMAGE_PULL,
        'probe image: ImagePullBackOff: Back-off pulling image "probe:1"',
    ),
    (
        "err-image-pull",
        {
            "phase": "Pending",
            "containerStatuses": [
                {"name": "probe", "state": {"waiting": {"reason": "ErrImagePull"}}}
            ],
        },
        FailureReason.IMAGE_PULL,
        "probe image: ErrImagePull",
    ),
    (
        "create-container-config-error",
        {
            "phase": "Pending",
            "containerStatuses": [
                {
                    "name": "probe",
                    "state": {
                        "waiting": {
                            "reason": "CreateContainerConfigError",
                            "message": "secret not found",
                        }
                    },
                }
            ],
        },
        FailureReason.FAILED,
        "probe container cannot start: CreateContainerConfigError: secret not found",
    ),
    (
        "oom-killed",
        {"phase": "Failed", "containerStatuses": [terminated(137, "OOMKilled")]},
        FailureReason.OOM_KILLED,
        "probe container was OOM-killed on node worker-1 (memory limit 192Mi)",
    ),
    (
        "deadline-exceeded",
        {
            "phase": "Failed",
            "reason": "DeadlineExceeded",
            "message": "Pod was active on the node longer than the specified deadline",
            "containerStatuses": [terminated(137, "Error")],
        },
        FailureReason.DEADLINE_EXCEEDED,
        "probe pod ran past its activeDeadlineSeconds (171 s) on node worker-1",  # 3 x 72 s
    ),
    (
        "evicted",
        {"phase": "Failed", "reason": "Evicted", "message": "The node was low on resource"},
        FailureReason.FAILED,
        "probe pod failed on node worker-1 (Evicted: The node was low on resource)",
    ),
    (
        "phase-unknown",
        {"phase": "Unknown"},
        FailureReason.FAILED,
        "probe pod failed on node worker-1 (phase Unknown)",
    ),
]


@pytest.mark.parametrize(
    ("status", "reason", "message"),
    [case[1:] for case in STUCK_PODS],
    ids=[c[0] for c in STUCK_PODS],
)
def test_a_pod_that_cannot_deliver_gives_every_check_unknown_with_the_reason(
    status: dict[str, Any], reason: FailureReason, message: str
) -> None:
    pod = make_pod(**status)
    assert pod_outcome(pod) == Stuck(reason, message)
    collected = collect(pod, "")
    assert len(collected) == 3
    for one in collected:
        assert one.failure == Stuck(reason, message)
        assert one.result.connection_status == ConnectionStatus.UNKNOWN
        [issue] = one.result.issues
        assert issue.type == IssueType.PROBE and issue.message == message
        assert {item.key: item.value for item in issue.context}["reason"] == reason.value


def test_results_printed_before_an_oom_kill_are_kept() -> None:
    pod = make_pod(phase="Failed", containerStatuses=[terminated(137, "OOMKilled")])
    collected = by_check(collect(pod, line("team/c/3") + "\n" + line("shop/a/1")[:40]))
    assert collected["team/c"].failure is None
    assert collected["shop/b"].failure == pod_outcome(pod)
    failure = collected["shop/a"].failure  # a cut line says malformed, not OOM
    assert failure is not None and failure.reason == FailureReason.OUTPUT_MALFORMED


def test_every_reason_has_a_hint_and_a_condition_friendly_name() -> None:
    from hopscope_operator.controller.collect import HINTS

    assert set(HINTS) == set(FailureReason)
    assert {reason.value for reason in FailureReason} == {
        "ProbeUnschedulable",
        "ProbeImagePull",
        "ProbeOOMKilled",
        "ProbeDeadlineExceeded",
        "ProbeFailed",
        "ProbeOutputMalformed",
    }


# ---- outcome while it runs ------------------------------------------------------------------


def test_outcomes_of_a_healthy_pod() -> None:
    assert pod_outcome(make_pod()) == Pending()
    assert pod_outcome(make_pod(phase="Pending")) == Pending()
    running = make_pod(
        phase="Running",
        startTime="2025-06-01T12:00:05Z",
        containerStatuses=[{"name": "probe", "state": {"running": {}}}],
    )
    assert pod_outcome(running) == Running()
    assert pod_outcome(running, CREATED + timedelta(seconds=30)) == Running()
    assert pod_outcome(finished_pod()) == Finished(0)
    assert pod_outcome(finished_pod(2)) == Finished(2)
    assert pod_outcome(make_pod(phase="Succeeded")) == Finished(0)


def test_collect_refuses_a_pod_that_has_not_ended() -> None:
    with pytest.raises(ValueError, match="has not ended"):
        collect(make_pod(phase="Running"), "")


def test_a_pod_no_kubelet_starts_is_stuck_after_the_start_timeout() -> None:
    pod = make_pod(phase="Pending")
    assert pod_outcome(pod, CREATED + timedelta(seconds=START_TIMEOUT_SECONDS - 1)) == Pending()
    late = pod_outcome(pod, CREATED + timedelta(seconds=START_TIMEOUT_SECONDS + 1))
    assert late == Stuck(
        FailureReason.UNSCHEDULABLE,
        f"probe pod did not start on node worker-1 within {START_TIMEOUT_SECONDS} s"
        " (is the node Ready?)",
    )


def test_a_running_pod_past_its_deadline_that_no_kubelet_ended_is_stuck() -> None:
    pod = make_pod(phase="Running", startTime="2025-06-01T12:00:10Z")
    deadline = pod["spec"]["activeDeadlineSeconds"]
    limit = deadline + DEADLINE_GRACE_SECONDS + 10  # counted from startTime
    assert pod_outcome(pod, CREATED + timedelta(seconds=limit - 1)) == Running()
    outcome = pod_outcome(pod, CREATED + timedelta(seconds=limit + 1))
    assert isinstance(outcome, Stuck)
    assert outcome.reason == FailureReason.DEADLINE_EXCEEDED
    assert "still Running past its activeDeadlineSeconds" in outcome.message


# ---- helpers --------------------------------------------------------------------------------


def test_parse_id_splits_at_the_last_slash() -> None:
    assert RunId.parse("shop/web-to-db/12") == ("shop/web-to-db", 12)


def test_batch_of_reads_the_pods_own_batch() -> None:
    assert [check.id for check in batch_of(make_pod()).checks] == IDS
    bare = copy.deepcopy(make_pod())
    bare["spec"]["containers"][0]["env"] = []
    with pytest.raises(ValueError, match="carries no HOPSCOPE_BATCH"):
        batch_of(bare)


def test_a_container_state_without_an_end_time_counts_as_long_ended():
    # The kubelet makes such a state up for a container it lost; its log will not come back.
    pod = {"status": {"containerStatuses": [{"name": "probe", "state": {"terminated": {}}}]}}
    assert seconds_since_ended(pod, datetime(2026, 11, 25, tzinfo=UTC)) == math.inf
    waiting = {"status": {"containerStatuses": [{"name": "probe", "state": {"waiting": {}}}]}}
    assert seconds_since_ended(waiting, datetime(2026, 11, 25, tzinfo=UTC)) is None
