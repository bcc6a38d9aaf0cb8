"""Reading a probe pod: how it ended, and one ProbeResult per check of its batch.

A probe pod that cannot deliver is data, not an exception: every check it carried still gets a
result (`Unknown`, one `Probe` issue saying why) and a condition reason, so the check's status
says "the image cannot be pulled" instead of staying silent. Results the pod did print before
it died (OOM, deadline) are kept. A pod still running is read too (`finished_so_far`): each
result is taken as it comes, so one slow check does not hold back the others'.
"""

from __future__ import annotations

import json
import math
import re
from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum
from typing import Any

from pydantic import ValidationError

from hopscope_operator.controller.plan import CONTAINER
from hopscope_operator.controller.runs import RunId, planned_uids, read_batch
from hopscope_probe import batch as wire
from hopscope_probe.models import ContextItem, Issue, IssueType, Origin, ProbeResult, Severity
from hopscope_probe.target import unknown_result

Manifest = dict[str, Any]

# A pod that has not started this long after creation never will (node down, kubelet gone:
# nothing else ends a pod bound by nodeName that tolerates every taint).
START_TIMEOUT_SECONDS = 300
# A kubelet enforces activeDeadlineSeconds; past it by this much, no kubelet is watching.
DEADLINE_GRACE_SECONDS = 60
IMAGE_PULL = {"ErrImagePull", "ImagePullBackOff", "InvalidImageName", "ErrImageNeverPull"}
_ID_IN_LINE = re.compile(r'"id"\s*:\s*"([^"]*)"')


class FailureReason(StrEnum):
    """Condition reasons for a run whose probe could not deliver a result."""

    UNSCHEDULABLE = "ProbeUnschedulable"
    IMAGE_PULL = "ProbeImagePull"
    OOM_KILLED = "ProbeOOMKilled"
    DEADLINE_EXCEEDED = "ProbeDeadlineExceeded"
    FAILED = "ProbeFailed"
    OUTPUT_MALFORMED = "ProbeOutputMalformed"


HINTS = {
    FailureReason.UNSCHEDULABLE: "The node did not run the probe pod: check that it is Ready and"
    " has the CPU and memory the probe pod requests.",
    FailureReason.IMAGE_PULL: "Check the probe image name and tag in the operator's settings,"
    " and that the node can pull it (registry access, pull secrets).",
    FailureReason.OOM_KILLED: "Raise the probe pod's memory limit, or lower the checks per"
    " probe pod.",
    FailureReason.DEADLINE_EXCEEDED: "Lower probes.count, probes.timeoutSeconds or path.maxHops,"
    " or look for an overloaded node.",
    FailureReason.FAILED: "Read the probe pod's events and log (kubectl describe, kubectl logs).",
    FailureReason.OUTPUT_MALFORMED: "Run the same hopscope version in the operator and the probe"
    " image.",
}


@dataclass(frozen=True)
class ProbeFailure:
    reason: FailureReason
    message: str


# ---- how the pod is doing -------------------------------------------------------------------


@dataclass(frozen=True)
class Pending:
    pass


@dataclass(frozen=True)
class Running:
    pass


@dataclass(frozen=True)
class Finished:
    exit_code: int


@dataclass(frozen=True)
class Stuck(ProbeFailure):
    """Ended, or never will, without running every check: the reason covers those it missed."""


PodOutcome = Pending | Running | Finished | Stuck


def _container_state(status: Manifest) -> Manifest:
    for container in status.get("containerStatuses") or []:
        if container.get("name") == CONTAINER:
            return container.get("state") or {}
    return {}


def seconds_since_ended(pod: Manifest, now: datetime) -> float | None:
    """How long ago the probe container ended; None when it never ran, so has no log to read
    (the API server answers 400 for that, not 404)."""
    terminated = _container_state(pod.get("status") or {}).get("terminated")
    if terminated is None:
        return None
    finished = terminated.get("finishedAt")
    # No time: a state the kubelet made up for a container it lost; its log is gone too.
    return math.inf if finished is None else _age_seconds(finished, now)


def _age_seconds(since: str | None, now: datetime) -> float:
    if since is None:
        return 0.0
    return (now - datetime.fromisoformat(since.replace("Z", "+00:00"))).total_seconds()


def pod_outcome(pod: Manifest, now: datetime | None = None) -> PodOutcome:
    """Where a probe pod is; with `now`, a pod no kubelet is running counts as stuck."""
    status = pod.get("status") or {}
    phase = status.get("phase", "Pending")
    node = pod.get("spec", {}).get("nodeName", "?")
    state = _container_state(status)
    terminated, waiting = state.get("terminated"), state.get("waiting") or {}
    if status.get("reason") == "DeadlineExceeded":
        deadline = pod.get("spec", {}).get("activeDeadlineSeconds")
        return Stuck(
            FailureReason.DEADLINE_EXCEEDED,
            f"probe pod ran past its activeDeadlineSeconds ({deadline} s) on node {node}",
        )
    if terminated and terminated.get("reason") == "OOMKilled":
        limit = _memory_limit(pod)
        return Stuck(
            FailureReason.OOM_KILLED,
            f"probe container was OOM-killed on node {node} (memory limit {limit})",
        )
    if terminated and phase in ("Succeeded", "Failed"):
        return Finished(int(terminated.get("exitCode", 0)))
    if phase == "Succeeded":
        return Finished(0)
    if phase in ("Failed", "Unknown"):
        return _failed_without_container(status, phase, node)
    for condition in status.get("conditions") or []:
        if condition.get("type") == "PodScheduled" and condition.get("reason") == "Unschedulable":
            return Stuck(
                FailureReason.UNSCHEDULABLE,
                f"probe pod is unschedulable: {condition.get('message', '')}".rstrip(": "),
            )
    if waiting.get("reason") in IMAGE_PULL:
        return Stuck(FailureReason.IMAGE_PULL, _said("probe image", waiting))
    if waiting.get("reason", "").endswith("Error"):  # CreateContainer(Config)Error, RunContainer…
        return Stuck(FailureReason.FAILED, _said("probe container cannot start", waiting))
    if now is not None:
        overdue = _overdue(pod, status, phase, node, now)
        if overdue is not None:
            return overdue
    return Running() if phase == "Running" else Pending()


def _failed_without_container(status: Manifest, phase: str, node: str) -> Stuck:
    reason, message = status.get("reason", ""), status.get("message", "")
    if phase == "Failed" and reason and reason not in ("Evicted", "NodeLost", "Terminated"):
        # nodeName bypasses the scheduler; the kubelet's admission refuses instead (OutOfcpu…).
        return Stuck(
            FailureReason.UNSCHEDULABLE, f"node {node} refused the probe pod: {reason}: {message}"
        )
    what = f"{reason}: {message}" if reason else f"phase {phase}"
    return Stuck(FailureReason.FAILED, f"probe pod failed on node {node} ({what})")


def _said(what: str, waiting: Manifest) -> str:
    return f"{what}: {waiting['reason']}: {waiting.get('message', '')}".rstrip(": ")


def _memory_limit(pod: Manifest) -> str:
    for container in pod.get("spec", {}).get("containers", []):
        if container.get("name") == CONTAINER:
            return str(container.get("resources", {}).get("limits", {}).get("memory", "none"))
    return "none"


def _overdue(pod: Manifest, status: Manifest, phase: str, node: str, now: datetime) -> Stuck | None:
    created = pod.get("metadata", {}).get("creationTimestamp")
    if phase == "Pending" and _age_seconds(created, now) > START_TIMEOUT_SECONDS:
        return Stuck(
            FailureReason.UNSCHEDULABLE,
            f"probe pod did not start on node {node} within {START_TIMEOUT_SECONDS} s"
            " (is the node Ready?)",
        )
    deadline = pod.get("spec", {}).get("activeDeadlineSeconds")
    if phase == "Pending" and not status.get("startTime"):
        # No kubelet took it, so its deadline's clock has not started (a deadline shorter than
        # START_TIMEOUT_SECONDS would otherwise call a pod waiting for its node overdue).
        return None
    started = status.get("startTime") or created
    if deadline is not None and _age_seconds(started, now) > deadline + DEADLINE_GRACE_SECONDS:
        return Stuck(
            FailureReason.DEADLINE_EXCEEDED,
            f"probe pod on node {node} is still {phase} past its activeDeadlineSeconds"
            f" ({deadline} s) and no kubelet ended it",
        )
    return None


# ---- results --------------------------------------------------------------------------------


@dataclass(frozen=True)
class Collected:
    check: str  # "<namespace>/<name>"
    generation: int
    result: ProbeResult
    failure: ProbeFailure | None = None  # set when the result is the operator's Unknown
    uid: str | None = None  # the check's uid when the pod was planned (None: pods made before)

    @property
    def run(self) -> RunId:
        return RunId(self.check, self.generation)


def parse_log(log: str, ids: set[str]) -> dict[str, ProbeResult | str]:
    """Per id, its result, or why its line is malformed. Progress and other lines are skipped."""
    found: dict[str, ProbeResult | str] = {}
    for line in log.splitlines():
        line = line.strip()
        if not line.startswith("{"):
            continue
        try:  # a good line parsed and validated in one pass (half the CPU of loads + validate)
            good = wire.BatchOutput.model_validate_json(line)
        except ValidationError:
            pass  # not JSON, or not a result: said below as before
        else:
            if good.id in ids and not isinstance(found.get(good.id), ProbeResult):
                found[good.id] = good.result  # the first good line wins
            continue
        try:
            document = json.loads(line)
        except ValueError as exc:
            mentioned = _ID_IN_LINE.search(line)  # e.g. a line cut short by an OOM kill
            if mentioned and mentioned.group(1) in ids and mentioned.group(1) not in found:
                found[mentioned.group(1)] = f"not JSON ({exc})"
            continue
        if not isinstance(document, dict) or document.get("id") not in ids:
            continue
        batch_id = document["id"]
        try:
            output = wire.BatchOutput.model_validate(document)
        except ValidationError as exc:
            if not isinstance(found.get(batch_id), ProbeResult):
                found[batch_id] = f"{exc.error_count()} invalid field(s), first: {_first(exc)}"
            continue
        if not isinstance(found.get(batch_id), ProbeResult):  # the first good line wins
            found[batch_id] = output.result
    return found


def _first(exc: ValidationError) -> str:
    error = exc.errors()[0]
    return f"{'.'.join(str(part) for part in error['loc'])}: {error['msg']}"


def collect(pod: Manifest, log: str, now: datetime | None = None) -> list[Collected]:
    """One Collected per check of an ended (or stuck) probe pod, in batch order."""
    outcome = pod_outcome(pod, now)
    if isinstance(outcome, Pending | Running):
        raise ValueError(f"probe pod {pod['metadata']['name']} has not ended")
    checks = read_batch(pod).checks
    parsed = parse_log(log, {item.id for item in checks})
    uids = planned_uids(pod)
    collected = []
    for item in checks:
        check, generation = RunId.parse(item.id)
        got, uid = parsed.get(item.id), uids.get(item.id)
        if isinstance(got, ProbeResult):
            collected.append(Collected(check, generation, got, uid=uid))
            continue
        failure = _missing(outcome, got, pod)
        result = unknown_result(item.request, _issue(failure, pod))
        collected.append(Collected(check, generation, result, failure, uid))
    return collected


def finished_so_far(pod: Manifest, log: str) -> list[Collected]:
    """The results a probe pod that is still running has printed, in batch order. A line
    still being written is not one yet: only a whole, valid result line counts."""
    uids = planned_uids(pod)
    checks = read_batch(pod).checks
    parsed = parse_log(log, {item.id for item in checks})
    collected = []
    for item in checks:
        got = parsed.get(item.id)
        if isinstance(got, ProbeResult):
            check, generation = RunId.parse(item.id)
            collected.append(Collected(check, generation, got, uid=uids.get(item.id)))
    return collected


def _missing(outcome: Finished | Stuck, malformed: str | None, pod: Manifest) -> ProbeFailure:
    if malformed is not None:
        return ProbeFailure(
            FailureReason.OUTPUT_MALFORMED, f"probe's result line is malformed: {malformed}"
        )
    if isinstance(outcome, Stuck):
        return outcome
    if outcome.exit_code != 0:
        said = _termination_message(pod)
        return ProbeFailure(
            FailureReason.FAILED,
            f"probe exited with code {outcome.exit_code} without a result" + said,
        )
    return ProbeFailure(FailureReason.OUTPUT_MALFORMED, "probe ended without a result line")


def _termination_message(pod: Manifest) -> str:
    """The container's last words (the log tail, with FallbackToLogsOnError), on one line."""
    terminated = _container_state(pod.get("status") or {}).get("terminated") or {}
    message = " ".join(str(terminated.get("message", "")).split())
    return f": {message[-300:]}" if message else ""


def _issue(failure: ProbeFailure, pod: Manifest) -> Issue:
    return Issue(
        type=IssueType.PROBE,
        severity=Severity.ERROR,
        origin=Origin.LOCAL,
        message=failure.message,
        hint=HINTS[failure.reason],
        context=[
            ContextItem(key="reason", value=failure.reason.value),
            ContextItem(key="pod", value=pod["metadata"]["name"]),
        ],
    )
