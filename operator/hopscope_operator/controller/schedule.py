"""Which checks are due, and when a scheduled check runs next.

A one-shot check runs once per spec generation; a spec change (a new generation) is due at
once. A scheduled one's period is its interval, counted from when each run was due (not from
when its result came back, which would add the run's length every time): a run starts at
most one tick after `lastRunTime + intervalSeconds` (`lastRunTime` is when the last run
started). A spec's second run comes a fixed per-check offset early (from its UID), so checks
created together drift apart instead of firing in lockstep.
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
    return f"{check.namespace}/{check.metadata['name']}"


def jitter(uid: str, interval_seconds: int) -> timedelta:
    """Deterministic in [0, min(10% of the interval, 30 s)): the same check, the same offset."""
    fraction = int.from_bytes(hashlib.sha256(uid.encode()).digest()[:8], "big") / 2**64
    return fraction * min(timedelta(seconds=interval_seconds * JITTER_FRACTION), MAX_JITTER)


def next_run(check: ConnectivityCheck, started: datetime, was_due: datetime) -> datetime | None:
    """When the run after one that started at `started` is due (None: one-shot). `was_due`
    is when that run was due (AT_ONCE: a spec's first run): the next is one interval later,
    so a run started late (its node's pod slot was taken) does not push the rest back."""
    if check.spec.schedule is None:
        return None
    seconds = check.spec.schedule.interval_seconds
    interval = timedelta(seconds=seconds)
    if was_due == AT_ONCE:
        return started + interval - jitter(check.metadata["uid"], seconds)
    following = was_due + interval
    # More than an interval late: one interval from now, rather than a burst to catch up.
    return following if following > started else started + interval


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
        return next_run(check, status.last_run_time, status.last_run_time)
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
