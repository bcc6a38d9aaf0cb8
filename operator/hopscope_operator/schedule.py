"""Which checks are due, and when a scheduled check runs next.

A one-shot check runs once per spec generation; a scheduled one every `intervalSeconds` plus a
fixed per-check jitter (from its UID), so checks created together drift apart instead of
firing in lockstep. A spec change (a new generation) is due at once.
"""

from __future__ import annotations

import hashlib
from collections.abc import Container, Iterable
from datetime import UTC, datetime, timedelta

from hopscope_operator.api import ConnectivityCheck, Phase

JITTER_FRACTION = 0.1  # of the interval
MAX_JITTER = timedelta(seconds=30)  # long intervals need no more spread than this
AT_ONCE = datetime.min.replace(tzinfo=UTC)  # sorts before any real due time
RAN = (Phase.COMPLETED, Phase.FAILED)  # a run for the observed generation delivered a result


def check_key(check: ConnectivityCheck) -> str:
    return f"{check.metadata['namespace']}/{check.metadata['name']}"


def jitter(uid: str, interval_seconds: int) -> timedelta:
    """Deterministic in [0, min(10% of the interval, 30 s)): the same check, the same offset."""
    fraction = int.from_bytes(hashlib.sha256(uid.encode()).digest()[:8], "big") / 2**64
    return fraction * min(timedelta(seconds=interval_seconds * JITTER_FRACTION), MAX_JITTER)


def next_run(check: ConnectivityCheck, after: datetime) -> datetime | None:
    """When a run that ended at `after` should be followed by the next (None: one-shot)."""
    if check.spec.schedule is None:
        return None
    interval = check.spec.schedule.interval_seconds
    return after + timedelta(seconds=interval) + jitter(check.metadata["uid"], interval)


def due_at(check: ConnectivityCheck) -> datetime | None:
    """When the check is next due: AT_ONCE, a time, or None (a one-shot check that has run)."""
    status = check.status
    if status is None or status.observed_generation != check.metadata["generation"]:
        return AT_ONCE
    if status.phase not in RAN:
        # Not run for this generation yet (e.g. its source is missing): retry when it said.
        return status.next_run_time or AT_ONCE
    if check.spec.schedule is None:
        return None
    if status.next_run_time is not None:
        return status.next_run_time
    if status.last_run_time is not None:
        return next_run(check, status.last_run_time)
    return AT_ONCE


def due(
    checks: Iterable[ConnectivityCheck],
    now: datetime,
    in_flight: Container[str] = frozenset(),
) -> list[ConnectivityCheck]:
    """The checks to run now, most overdue first; those with a probe pod in flight wait."""
    ready: list[tuple[datetime, str, ConnectivityCheck]] = []
    for check in checks:
        key = check_key(check)
        at = due_at(check)
        if key not in in_flight and at is not None and at <= now:
            ready.append((at, key, check))
    ready.sort(key=lambda entry: entry[:2])
    return [check for _, _, check in ready]
