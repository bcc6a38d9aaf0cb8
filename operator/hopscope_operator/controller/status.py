"""The next `.status` of a check, and the Events that go with it, from one run's result; and
the bodies sent for them (`status_patch`, `event_body`), as pure functions of what they say.

Conditions follow metav1.Condition: keyed by type, `lastTransitionTime` moves only when the
status (True/False/Unknown) changes, reason and message always say what the last run saw.
Ready and Reachable are always there once written; Reconciling and Stalled, kstatus' pair, only
while True (README, "GitOps health", says what each means to Argo CD, Flux and kubectl wait).
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Literal

from hopscope_operator.analysis import merge, reconciled
from hopscope_operator.api import (
    Analysis,
    Condition,
    ConditionStatus,
    ConditionType,
    ConnectivityCheck,
    ConnectivityCheckStatus,
    Phase,
)
from hopscope_operator.controller.collect import ProbeFailure
from hopscope_operator.controller.resolve import ResolvedDestination, ResolvedSource
from hopscope_probe.models import ConnectionStatus, Issue, ProbeResult, Severity

PATH_CHANGED = "PathChanged"
RAN = "RunCompleted"  # Ready's reason once a run has delivered a result
RUN_STARTED = "RunStarted"  # Reconciling's reason while a spec's first run is under way
# Abnormal-true (kstatus): present only while True, dropped once what they say is over.
ABNORMAL = (ConditionType.RECONCILING, ConditionType.STALLED)
EVENT_MESSAGE_LIMIT = 1024  # what an Event's message should stay under
CONDITION_MESSAGE_LIMIT = 32768  # metav1.Condition's maxLength

# Per run: (event type, reason) for each connection status.
RUN_EVENT: dict[ConnectionStatus, tuple[Literal["Normal", "Warning"], str]] = {
    ConnectionStatus.REACHABLE: ("Normal", "Reachable"),
    ConnectionStatus.UNREACHABLE: ("Warning", "Unreachable"),
    ConnectionStatus.DEGRADED: ("Warning", "Degraded"),
    ConnectionStatus.UNKNOWN: ("Warning", "ProbeFailed"),
}
REACHABLE_CONDITION = {
    ConnectionStatus.REACHABLE: ConditionStatus.TRUE,
    ConnectionStatus.DEGRADED: ConditionStatus.TRUE,  # it connects; the reason says how well
    ConnectionStatus.UNREACHABLE: ConditionStatus.FALSE,
    ConnectionStatus.UNKNOWN: ConditionStatus.UNKNOWN,
}


@dataclass(frozen=True)
class Event:
    """A Kubernetes Event to post on the check."""

    type: Literal["Normal", "Warning"]
    reason: str
    message: str


def _clip(text: str, limit: int) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "…"


def summary(result: ProbeResult, failure: ProbeFailure | None = None) -> str:
    """One line: what the run saw, e.g. "Reachable: 10/10 probes answered, avg 1.2 ms, 4 hops"."""
    if failure is not None:
        return f"{failure.reason}: {failure.message}"
    status = result.connection_status
    if status == ConnectionStatus.UNKNOWN:
        first = result.issues[0].message if result.issues else "no reason given"
        return f"probe could not run: {first}"
    answered = f"{result.probes_sent - result.probes_failed}/{result.probes_sent}"
    if result.dns_answers:  # what the nameservers said, not only that they said something
        parts = [f"{answered} queries answered {_answers(result.dns_answers)}"]
    else:
        parts = [f"{answered} probes answered"]
    if result.latency is not None:
        parts.append(f"avg {result.latency.avg_ms:g} ms")
    if result.hops:
        parts.append(f"{len(result.hops)} hops")
    text = f"{status}: {', '.join(parts)}"
    worst = sorted(result.issues, key=lambda issue: issue.severity != Severity.ERROR)
    if worst:
        where = f" at hop {worst[0].hop_id}" if worst[0].hop_id else ""
        text += f"; {worst[0].type}{where}: {worst[0].message}"
    return text


def _answers(counts: dict[str, int]) -> str:
    """ "NXDOMAIN" when every answer was one, else "(6 NXDOMAIN, 2 NOERROR)"."""
    if len(counts) == 1:
        return next(iter(counts))
    return "(" + ", ".join(f"{n} {answer}" for answer, n in counts.items()) + ")"


def set_condition(
    conditions: list[Condition],
    kind: ConditionType,
    status: ConditionStatus,
    reason: str,
    message: str,
    *,
    now: datetime,
    generation: int,
) -> tuple[list[Condition], Event | None]:
    """`conditions` with `kind` set, and the Event for a transition (None: same status)."""
    before = next((c for c in conditions if c.type == kind), None)
    changed = before is None or before.status != status
    condition = Condition(
        type=kind,
        status=status,
        reason=reason,
        message=_clip(message, CONDITION_MESSAGE_LIMIT),
        last_transition_time=before.last_transition_time if before and not changed else now,
        observed_generation=generation,
    )
    updated = [c for c in conditions if c.type != kind] + [condition]
    updated.sort(key=lambda c: list(ConditionType).index(c.type))  # stable order: Ready first
    if not changed:
        return updated, None
    was = before.status.value if before else "absent"
    event = Event(
        "Normal" if status == ConditionStatus.TRUE else "Warning",
        f"{kind.value}Changed",
        _clip(f"{kind.value} {was} → {status.value} ({reason}): {message}", EVENT_MESSAGE_LIMIT),
    )
    return updated, event


def _without(conditions: list[Condition], *kinds: ConditionType) -> list[Condition]:
    return [c for c in conditions if c.type not in kinds]


def run_event(connection: ConnectionStatus, line: str, issues: list[Issue]) -> Event:
    """The run's Event: a Warning whenever an issue is an Error (a Reachable run with a
    broken endpoint or DNS is no Normal news), naming that issue."""
    kind, reason = RUN_EVENT[connection]
    error = next((issue for issue in issues if issue.severity == Severity.ERROR), None)
    if error is not None:
        kind = "Warning"
        if error.message not in line:
            line += f"; {error.type}: {error.message}"
    return Event(kind, reason, _clip(line, EVENT_MESSAGE_LIMIT))


def _fields(previous: ConnectivityCheckStatus | None) -> dict[str, Any]:
    # Rebuilt through the model rather than model_copy, so derived counts are recomputed.
    return previous.model_dump(exclude={"hop_count", "issue_count"}) if previous else {}


def _is_news(
    previous: ConnectivityCheckStatus | None, connection: ConnectionStatus, generation: int
) -> bool:
    """Whether a run deserves its own Event: the first of its spec, or a new outcome."""
    if previous is None or not previous.runs or previous.observed_generation != generation:
        return True
    return previous.connection_status != connection


def next_status(
    previous: ConnectivityCheckStatus | None,
    result: ProbeResult,
    *,
    generation: int,
    now: datetime,
    started: datetime | None = None,
    next_run: datetime | None,
    source: ResolvedSource,
    destination: ResolvedDestination | None = None,
    analysis: Analysis | None = None,
    failure: ProbeFailure | None = None,
) -> tuple[ConnectivityCheckStatus, list[Event]]:
    """The status after a run, and its Events: one for the run when it is a spec's first or
    its outcome changed, one per condition transition, and PathChanged when the path's
    fingerprint differs from the last one known. A scheduled check's repeats that change
    nothing post none: a thousand checks every minute would otherwise keep sixty thousand
    Events in etcd (an Event lives an hour); every run is in the status and metrics anyway."""
    connection = result.connection_status
    line = summary(result, failure)
    conditions = _without(previous.conditions if previous else [], *ABNORMAL)  # a run is done
    events: list[Event] = []
    # Where the probe and the analysis disagree, the issues say what that means (see merge).
    analysis = reconciled(analysis, connection)
    issues = merge(result.issues, analysis, result.hops, connection)
    if _is_news(previous, connection, generation):
        events.append(run_event(connection, line, issues))

    conditions, ready = set_condition(
        conditions,
        ConditionType.READY,
        ConditionStatus.TRUE,
        RAN,
        f"probed from {source.description}",
        now=now,
        generation=generation,
    )
    reachable_reason = failure.reason.value if failure else connection.value
    conditions, reachable = set_condition(
        conditions,
        ConditionType.REACHABLE,
        REACHABLE_CONDITION[connection],
        reachable_reason,
        line,
        now=now,
        generation=generation,
    )
    events += [event for event in (ready, reachable) if event is not None]

    known = previous.path_fingerprint if previous else None
    fingerprint = result.path_fingerprint or known  # a run without a trace keeps the last path
    if result.path_fingerprint and known and result.path_fingerprint != known:
        events.append(
            Event(
                "Normal",
                PATH_CHANGED,
                f"path changed: {len(result.hops)} hops now (fingerprint {known} →"
                f" {result.path_fingerprint})",
            )
        )

    addresses = (destination.addresses if destination else []) or result.destination.addresses
    status = ConnectivityCheckStatus.model_validate(
        {
            **_fields(previous),
            "phase": Phase.FAILED if connection == ConnectionStatus.UNKNOWN else Phase.COMPLETED,
            "connection_status": connection,
            "observed_generation": generation,
            "runs": (previous.runs if previous else 0) + 1,
            "last_run_time": started or now,  # when the run began: periods count from it
            "next_run_time": next_run,
            "source": source.info().model_copy(
                update={"address": result.source.address or source.address}
            ),
            "destination": {"addresses": addresses},
            **result.findings(),
            "issues": issues,
            "path_fingerprint": fingerprint,
            "analysis": analysis,
            "conditions": conditions,
        }
    )
    return status, events


def not_ready_status(
    previous: ConnectivityCheckStatus | None,
    reason: str,
    message: str,
    now: datetime,
    generation: int,
    *,
    retry_at: datetime | None = None,
) -> tuple[ConnectivityCheckStatus, list[Event]]:
    """The status when the check cannot run (reason: SourceNotFound, DestinationNotFound, …).

    The last run's findings stay for reference; phase Pending and `nextRunTime = retry_at` say
    it will be tried again. Events only on transitions, so retries do not flood the check.
    Stalled=True says the same to kstatus (Flux), which reads Ready=False as still in progress:
    no run can start until something outside the operator changes (a pod, the spec, a quota).
    """
    conditions = _without(previous.conditions if previous else [], ConditionType.RECONCILING)
    conditions, ready = set_condition(
        conditions,
        ConditionType.READY,
        ConditionStatus.FALSE,
        reason,
        message,
        now=now,
        generation=generation,
    )
    conditions, reachable = set_condition(
        conditions,
        ConditionType.REACHABLE,
        ConditionStatus.UNKNOWN,
        reason,
        message,
        now=now,
        generation=generation,
    )
    # Its Event would repeat Ready's.
    conditions, _ = set_condition(
        conditions,
        ConditionType.STALLED,
        ConditionStatus.TRUE,
        reason,
        message,
        now=now,
        generation=generation,
    )
    status = ConnectivityCheckStatus.model_validate(
        {
            **_fields(previous),
            "phase": Phase.PENDING,
            "connection_status": ConnectionStatus.UNKNOWN,
            "observed_generation": generation,
            "next_run_time": retry_at,
            "conditions": conditions,
        }
    )
    return status, [event for event in (ready, reachable) if event is not None]


def starts_a_run(previous: ConnectivityCheckStatus | None, generation: int) -> bool:
    """Whether a due run is news to a reader of the status: a new check, a spec not yet
    probed, or one that could not run. A scheduled repeat is not (its last result stands),
    nor is a run already said to be under way."""
    if previous is None:
        return True
    if any(c.type == ConditionType.RECONCILING for c in previous.conditions):
        return False
    return previous.observed_generation != generation or previous.phase == Phase.PENDING


def running_status(
    previous: ConnectivityCheckStatus | None, message: str, now: datetime, generation: int
) -> ConnectivityCheckStatus:
    """The status while a run that `starts_a_run` is under way: phase Running, Reconciling=True.

    Without it a new check has no status until its first result, and kstatus reads a custom
    resource with no conditions as Current. `observedGeneration` stays the one the results
    describe; the last run's findings stay for reference."""
    conditions = _without(previous.conditions if previous else [], ConditionType.STALLED)
    conditions, _ = set_condition(
        conditions,
        ConditionType.RECONCILING,
        ConditionStatus.TRUE,
        RUN_STARTED,
        message,
        now=now,
        generation=generation,
    )
    return ConnectivityCheckStatus.model_validate(
        {**_fields(previous), "phase": Phase.RUNNING, "conditions": conditions}
    )


# ---- the bodies sent ------------------------------------------------------------------------


def status_patch(status: ConnectivityCheckStatus) -> dict[str, Any]:
    """The status as a merge patch: a field this status lacks is null, so the patch deletes
    what the last status had; inside lists (replaced whole) absent fields are simply left out,
    as a null there would be stored and fail the schema."""
    # Both dumps are the serializer's (C): only the dicts above the lists are walked here.
    full = status.model_dump(by_alias=True, mode="json")
    lean = status.model_dump(by_alias=True, mode="json", exclude_none=True)
    return _nulls_for_absent(full, lean)


def _nulls_for_absent(full: dict[str, Any], lean: dict[str, Any]) -> dict[str, Any]:
    """`full`'s keys, null where absent; below them `lean`'s values (lists without nulls)."""
    return {
        key: None
        if item is None
        else _nulls_for_absent(item, lean[key])
        if isinstance(item, dict)
        else lean[key]
        for key, item in full.items()
    }


def event_body(
    model: ConnectivityCheck, event: Event, now: datetime, component: str
) -> dict[str, Any]:
    """The Event object for `event` on the check, posted by `component`. Its name is the same
    for the same check, second and reason, so a retried tick's Event is a 409, not a second."""
    meta = model.metadata
    stamp = now.strftime("%Y-%m-%dT%H:%M:%SZ")
    digest = hashlib.sha256(f"{meta['uid']}{stamp}{event.reason}".encode()).hexdigest()
    # An object name is at most 253 characters, and no label of it ends in '-' or '.'.
    prefix = meta["name"][: 253 - 17].rstrip("-.")
    return {
        "metadata": {"name": f"{prefix}.{digest[:16]}"},
        "involvedObject": {
            "apiVersion": model.api_version,
            "kind": model.kind,
            "name": meta["name"],
            # A cluster-scoped object's Events name no namespace (as a Node's do).
            **({"namespace": model.namespace} if model.namespace else {}),
            "uid": meta["uid"],
        },
        "type": event.type,
        "reason": event.reason,
        "message": event.message,
        "source": {"component": component},
        "reportingComponent": component,
        "firstTimestamp": stamp,
        "lastTimestamp": stamp,
        "count": 1,
    }
