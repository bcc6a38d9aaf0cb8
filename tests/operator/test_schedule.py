"""Which checks are due: once per generation, every interval with jitter, changes at once."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from hopscope_operator.api import ConnectivityCheck
from hopscope_operator.controller.schedule import (
    AT_ONCE,
    MAX_JITTER,
    check_key,
    due,
    due_at,
    jitter,
    next_run,
)

NOW = datetime(2025, 6, 1, 12, 0, tzinfo=UTC)
SECOND = timedelta(seconds=1)


def check(
    name: str = "c",
    *,
    generation: int = 1,
    interval: int | None = None,
    status: dict[str, Any] | None = None,
    uid: str = "3f1c2b4a-9d8e-4f70-a1b2-c3d4e5f60718",
) -> ConnectivityCheck:
    spec: dict[str, Any] = {
        "source": {"node": {"name": "worker-1"}},
        "destination": {"ip": "10.0.3.7", "port": 22},
    }
    if interval is not None:
        spec["schedule"] = {"intervalSeconds": interval}
    body: dict[str, Any] = {
        "apiVersion": "hopscope.dev/v1alpha1",
        "kind": "ConnectivityCheck",
        "metadata": {"name": name, "namespace": "shop", "generation": generation, "uid": uid},
        "spec": spec,
    }
    if status is not None:
        body["status"] = status
    return ConnectivityCheck.model_validate(body)


def ran(generation: int = 1, *, last: datetime | None = NOW, nxt: datetime | None = None) -> dict:
    status: dict[str, Any] = {"phase": "Completed", "observedGeneration": generation, "runs": 1}
    if last:
        status["lastRunTime"] = last.isoformat()
    if nxt:
        status["nextRunTime"] = nxt.isoformat()
    return status


def names(checks: list[ConnectivityCheck]) -> list[str]:
    return [c.metadata["name"] for c in checks]


# ---- one-shot -------------------------------------------------------------------------------


def test_a_new_check_is_due_at_once() -> None:
    assert due_at(check()) == AT_ONCE
    assert names(due([check()], NOW)) == ["c"]


def test_a_one_shot_check_runs_once_per_generation() -> None:
    done = check(generation=1, status=ran(1))
    assert due_at(done) is None
    assert due([done], NOW + timedelta(days=30)) == []
    failed = check(generation=1, status={**ran(1), "phase": "Failed"})  # Unknown counts as run
    assert due_at(failed) is None


def test_a_spec_change_is_due_at_once_even_before_the_next_interval() -> None:
    changed = check(generation=2, status=ran(1))
    assert due_at(changed) == AT_ONCE
    scheduled = check(generation=2, interval=600, status=ran(1, nxt=NOW + timedelta(minutes=9)))
    assert names(due([changed, scheduled], NOW)) == ["c", "c"]


def test_a_check_that_could_not_resolve_retries_when_it_said() -> None:
    waiting = {"phase": "Pending", "observedGeneration": 1, "nextRunTime": NOW.isoformat()}
    pending = check(status=waiting)
    assert due([pending], NOW - SECOND) == []
    assert names(due([pending], NOW)) == ["c"]
    assert due_at(check(status={"phase": "Pending", "observedGeneration": 1})) == AT_ONCE


def test_a_run_interrupted_without_a_pod_is_run_again() -> None:
    interrupted = check(status={"phase": "Running", "observedGeneration": 1})
    assert names(due([interrupted], NOW)) == ["c"]


def test_a_check_with_a_pod_in_flight_waits_for_it() -> None:
    assert due([check()], NOW, in_flight={"shop/c"}) == []
    assert check_key(check()) == "shop/c"


# ---- interval -------------------------------------------------------------------------------


def test_an_interval_check_is_due_when_its_next_run_time_passes() -> None:
    scheduled = check(interval=60, status=ran(1, nxt=NOW))
    assert due([scheduled], NOW - SECOND) == []
    assert names(due([scheduled], NOW)) == ["c"]
    assert names(due([scheduled], NOW + timedelta(hours=1))) == ["c"]


def test_without_a_next_run_time_the_last_run_plus_interval_counts() -> None:
    scheduled = check(interval=60, status=ran(1, last=NOW))
    assert due_at(scheduled) == NOW + timedelta(seconds=60)
    assert due_at(check(interval=60, status=ran(1, last=None))) == AT_ONCE


def test_the_next_run_is_due_one_interval_after_this_one_was_due() -> None:
    scheduled = check(interval=300)
    interval = timedelta(seconds=300)
    # Started late (its node's pod slot was taken): the late start does not push the next.
    assert next_run(scheduled, NOW + 4 * SECOND, NOW) == NOW + interval
    # Pulled in a little early beside another check's pod: the next is not early too.
    assert next_run(scheduled, NOW - 4 * SECOND, NOW) == NOW + interval
    # More than an interval late: one interval from the start, not a burst to catch up.
    assert next_run(scheduled, NOW + 2 * interval, NOW) == NOW + 3 * interval
    assert next_run(check(), NOW, NOW) is None


def test_a_specs_first_run_sets_its_phase_a_fixed_offset_early() -> None:
    scheduled = check(interval=300)
    offset = jitter(scheduled.metadata["uid"], 300)
    assert timedelta(0) < offset
    assert next_run(scheduled, NOW, AT_ONCE) == NOW + timedelta(seconds=300) - offset


def test_most_overdue_first_then_by_key() -> None:
    checks = [
        check("late", interval=60, status=ran(1, nxt=NOW - 10 * SECOND)),
        check("new"),
        check("later", interval=60, status=ran(1, nxt=NOW - 30 * SECOND)),
        check("b-changed", generation=2, status=ran(1)),
        check("future", interval=60, status=ran(1, nxt=NOW + SECOND)),
    ]
    assert names(due(checks, NOW)) == ["b-changed", "new", "later", "late"]


# ---- jitter ---------------------------------------------------------------------------------


@pytest.mark.parametrize("interval", [10, 60, 300, 3600, 86400])
def test_jitter_is_deterministic_and_bounded(interval: int) -> None:
    bound = min(timedelta(seconds=interval / 10), MAX_JITTER)
    for n in range(200):
        uid = str(uuid.UUID(int=n * 7919))
        offset = jitter(uid, interval)
        assert timedelta(0) <= offset < bound
        assert jitter(uid, interval) == offset


def test_checks_created_together_do_not_fire_in_lockstep() -> None:
    uids = [str(uuid.uuid5(uuid.NAMESPACE_URL, f"check-{n}")) for n in range(1000)]
    offsets = sorted(jitter(uid, 60).total_seconds() for uid in uids)
    assert offsets[-1] - offsets[0] > 5.5  # spread over nearly all of the 6 s allowed
    per_second = [sum(int(o) == s for o in offsets) for s in range(6)]
    assert max(per_second) < 250  # about 1000 / 6 each: no second takes them all
