"""Writing to a check: its status (a merge patch, retried once on a conflict) and its Events.

Every write here tolerates the check changing under it: deleted since listed, its spec moved
on, a status the schema refuses. Those are logged or dropped, never raised, so one check cannot
stop the tick for the others; the next tick looks again. The bodies themselves are built by
`status.status_patch` and `status.event_body`; what a status says, by `status`.
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta

from pydantic import ValidationError

from hopscope_operator.api import ConnectivityCheck, ConnectivityCheckStatus
from hopscope_operator.cluster import (
    EVENTS,
    ApiError,
    ClusterApi,
    Conflict,
    Invalid,
    NotFound,
    Object,
    Resource,
    check_location,
)
from hopscope_operator.controller.metrics import CheckLabels, Metrics
from hopscope_operator.controller.resolve import ResolveError
from hopscope_operator.controller.schedule import check_key
from hopscope_operator.controller.status import (
    Event,
    event_body,
    not_ready_status,
    status_patch,
)
from hopscope_operator.names import NAME

log = logging.getLogger("hopscope.operator")

INVALID_SPEC = "InvalidSpec"
API_REFUSED = "ApiRefused"  # the API server refused a request of this check's own work
INTERNAL_ERROR = "InternalError"  # a bug, met in this check's own work
COMPONENT = NAME
# A check that cannot resolve is retried after as long as it has been failing, within bounds:
# quick when a pod is just starting, gentle on the API when a name is simply wrong.
MIN_RETRY = timedelta(seconds=10)
MAX_RETRY = timedelta(minutes=5)
# Where Kubernetes itself puts the Events of a cluster-scoped object (a Node's, say).
CLUSTER_EVENTS_NAMESPACE = "default"


# The status fields a tick reads of every check (when it is due, whether a run is news or its
# result written already): all a listed check keeps parsed of its status.
PLANNING_FIELDS = (
    "phase",
    "connection_status",
    "observed_generation",
    "runs",
    "last_run_time",
    "next_run_time",
    "path_fingerprint",
    "conditions",
)


@dataclass(frozen=True)
class Check:
    """A check as listed: its parsed model and the resourceVersion a status write needs.

    `model.status` holds only the PLANNING_FIELDS; the whole status (hops, issues, analysis:
    the last run's figures a new status carries over, or metrics export again) is `full()`,
    parsed again from `stored`, the body as the cache holds it. A whole status model per check
    cost ~19 KB (10,000 checks: ~180 MiB) beside the stored body the cache keeps anyway."""

    model: ConnectivityCheck
    stored: Object

    @classmethod
    def of(cls, model: ConnectivityCheck, stored: Object) -> Check:
        """`model` (parsed from or written as `stored`) with only its status' planning fields."""
        status = model.status
        if status is not None:
            # The parsed values themselves (models pass validation as they are): ~6 us a check,
            # where model_construct inspects every default factory (~3 ms).
            planning = {name: getattr(status, name) for name in PLANNING_FIELDS}
            status = ConnectivityCheckStatus.model_validate(planning)
        return cls(model.model_copy(update={"status": status}), stored)

    def full(self) -> ConnectivityCheck:
        """The model with its whole status, parsed now from the stored body (validated as a
        whole when the body was listed, or written by this process from a model)."""
        stored = self.stored.get("status")
        status = None if stored is None else ConnectivityCheckStatus.model_validate(stored)
        return self.model.model_copy(update={"status": status})

    @property
    def key(self) -> str:
        return check_key(self.model)

    @property
    def resource_version(self) -> str:
        return str(self.model.metadata["resourceVersion"])

    @property
    def where(self) -> tuple[Resource, str | None]:
        return check_location(self.model.kind, self.model.namespace)


class CheckFailed(ResolveError):
    """One check's own work failed in a phase of the tick: said as that check's Ready=False,
    retried with backoff like a missing source, while the other checks go on."""

    def __init__(self, phase: str, error: Exception) -> None:
        refused = isinstance(error, ApiError)
        what = "the API server refused a request" if refused else f"{type(error).__name__}"
        super().__init__(f"{phase} failed: {what}: {error}")
        self._reason = API_REFUSED if refused else INTERNAL_ERROR

    @property
    def reason(self) -> str:
        return self._reason


class StatusWriter:
    def __init__(self, api: ClusterApi, metrics: Metrics, clock: Callable[[], datetime]) -> None:
        self.api = api
        self.metrics = metrics
        self.clock = clock

    def patch_status(self, check: Check, status: ConnectivityCheckStatus) -> Object | None:
        """Write the status; on a conflict, once more against the current resourceVersion
        (the status is ours alone, so a concurrent spec edit does not invalidate it). The
        object as stored, or None when it was not written."""
        meta = check.model.metadata
        resource, namespace = check.where
        body = status_patch(status)
        version = check.resource_version
        for _ in range(2):
            try:
                return self.api.patch_status(resource, namespace, meta["name"], body, version)
            except NotFound:
                return None  # deleted since the tick listed it
            except Invalid:
                # A status the schema refuses is a bug here; the other checks must still run.
                log.exception("status of %s refused", check.key)
                return None
            except Conflict:
                try:
                    current = self.api.get(resource, namespace, meta["name"])
                except NotFound:
                    return None
                if current["metadata"]["generation"] != meta["generation"]:
                    return None  # the spec moved on: this run no longer describes it
                version = current["metadata"]["resourceVersion"]
        return None

    def post(self, model: ConnectivityCheck, events: list[Event], now: datetime) -> None:
        meta = model.metadata
        namespace = model.namespace or CLUSTER_EVENTS_NAMESPACE
        for event in events:
            try:
                self.api.create(EVENTS, namespace, event_body(model, event, now, COMPONENT))
            except Conflict:
                pass  # the same event from a retried tick
            except ApiError as exc:
                # An Event is a notice: losing one must not stop the tick after the status
                # was written, or the next tick writes the same run again.
                log.warning("event %s on %s not posted: %s", event.reason, meta["name"], exc)

    def not_ready(self, check: Check, error: ResolveError, now: datetime) -> None:
        """Say the check cannot run, and when it is tried again (backing off)."""
        model = check.full()
        previous = model.status
        failing_since = ready_false_since(previous, error.reason) or now
        retry_in = min(max(now - failing_since, MIN_RETRY), MAX_RETRY)
        status, events = not_ready_status(
            previous,
            error.reason,
            str(error),
            now,
            int(model.metadata["generation"]),
            retry_at=now + retry_in,
        )
        if self.patch_status(check, status) is not None:
            self.post(model, events, now)
        # Not the last run's figures as if current: the Probe issue series says it cannot run.
        self.metrics.cannot_run(check.key, CheckLabels.of(model), model.spec.thresholds)

    def failed(self, check: Check, phase: str, error: Exception, now: datetime) -> None:
        """The error boundary of one check: its failure in `phase` is logged once (a bug with
        its traceback) and said on it as Ready=False; never raises, so the tick goes on."""
        failure = CheckFailed(phase, error)
        if failure.reason == INTERNAL_ERROR:
            log.error("check %s: %s", check.key, failure, exc_info=error)
        else:
            log.warning("check %s: %s", check.key, failure)
        try:
            self.not_ready(check, failure, now)
        except Exception as exc:  # the API refuses this check's writes too: said next tick
            log.warning("check %s: its Ready=False not written either: %s", check.key, exc)

    def invalid(self, body: Object, error: ValidationError) -> None:
        """Say a stored check fails the model, once per spec."""
        meta = body["metadata"]
        resource, namespace = check_location(body.get("kind", ""), meta.get("namespace"))
        try:
            previous = ConnectivityCheckStatus.model_validate(body.get("status") or {})
        except ValidationError:
            previous = None
        said = ready_false_since(previous, INVALID_SPEC) is not None
        if said and previous and previous.observed_generation == meta["generation"]:
            return  # already said of this spec; looked at again when the spec changes
        message = f"spec rejected: {_first_error(error)}"
        log.warning("%s/%s: %s", namespace or "", meta["name"], message)
        status, _ = not_ready_status(
            previous, INVALID_SPEC, message, self.clock(), meta["generation"]
        )
        patch = status_patch(status.model_copy(update={"next_run_time": None}))
        # Changed or gone since listed: the next tick looks again.
        with contextlib.suppress(NotFound, Conflict, Invalid):
            self.api.patch_status(resource, namespace, meta["name"], patch, meta["resourceVersion"])


def ready_false_since(status: ConnectivityCheckStatus | None, reason: str) -> datetime | None:
    for condition in status.conditions if status else []:
        if condition.type == "Ready" and condition.status == "False" and condition.reason == reason:
            return condition.last_transition_time
    return None


def _first_error(error: ValidationError) -> str:
    first = error.errors()[0]
    return f"{'.'.join(str(part) for part in first['loc'])}: {first['msg']}"
