"""A scheduled check's period, on a simulated clock: a run starts at most one tick after
`lastRunTime + intervalSeconds`, even when another check on its node is slow to run.

The loop is the operator's (`handlers.run_ticks`): a tick every 5 s, and one at once when a
probe pod ends or a check is created. Probe pods take as long as their slowest check.
"""

from __future__ import annotations

import itertools
from datetime import datetime, timedelta

import pytest

from hopscope_operator.controller.runs import RunId
from hopscope_operator.names import LABEL_TICK

from .conftest import Clock
from .fakeapi import FakeApi
from .test_reconcile import (
    PROBES,
    apply_check,
    batch_of,
    check,
    finish,
    make_reconciler,
    probe_pods,
    reachable_result,
    source_pod,
)

TICK = 5.0
INTERVAL = 10
RUN_SECONDS = {"fast": 1.0, "slow": 8.0}  # the slow one holds the node's one pod slot long


def simulate(api: FakeApi, clock: Clock, created: dict[str, float], until: float):
    """Run ticks as the operator does until `until` s; each check's run starts (s from T0)."""
    reconciler = make_reconciler(api, clock)
    start = clock.now
    starts: dict[str, list[float]] = {name: [] for name in created}
    ends: dict[str, float] = {}  # probe pod -> when it ends
    pending = dict(created)  # checks not applied yet -> when they are
    last_tick = -TICK
    while True:
        wakes = [*ends.values(), *pending.values()]
        at = min([last_tick + TICK, *(w for w in wakes if w > last_tick)])
        if at > until:
            return starts
        clock.now = start + timedelta(seconds=at)
        for name, when in list(pending.items()):
            if when <= at:
                apply_check(api, name, schedule={"intervalSeconds": INTERVAL})
                del pending[name]
        for pod in probe_pods(api):
            name = pod["metadata"]["name"]
            if name in ends and ends[name] <= at:
                finish(api, pod, {item.id: reachable_result() for item in batch_of(pod).checks})
                del ends[name]
        reconciler.tick()
        last_tick = at
        for pod in probe_pods(api):
            name = pod["metadata"]["name"]
            if name in ends or pod.get("status", {}).get("phase") == "Succeeded":
                continue
            began = int(pod["metadata"]["labels"][LABEL_TICK]) - start.timestamp()
            checks = [RunId.parse(item.id)[0].partition("/")[2] for item in batch_of(pod).checks]
            ends[name] = began + max(RUN_SECONDS[c] for c in checks)
            for c in checks:
                starts[c].append(began)


# Created this far apart, the two are out of step: at first each waits for the other's pod.
# (At 7 s, only riding along in the other's pod keeps the fast one within the bound.)
@pytest.mark.parametrize("offset", [2.0, 7.0])
def test_two_checks_on_one_node_one_slow_each_start_within_interval_plus_a_tick(
    api: FakeApi, clock: Clock, offset: float
):
    source_pod(api)
    t0 = clock.now
    starts = simulate(api, clock, {"fast": 0.0, "slow": offset}, until=120.0)
    for name, times in starts.items():
        gaps = [b - a for a, b in itertools.pairwise(times)]
        assert len(times) >= 10, (name, times)
        assert max(gaps) <= INTERVAL + TICK, (name, gaps)
        # A spec's second run comes up to 10% early, and a run joins a pod a tick early.
        assert min(gaps) >= INTERVAL - TICK - INTERVAL * 0.1, (name, gaps)
    # lastRunTime is when the last run started: the definition the README gives.
    last = datetime.fromisoformat(check(api, "fast")["status"]["lastRunTime"])
    assert (last - t0).total_seconds() in starts["fast"]
    assert all(p["metadata"]["namespace"] == PROBES for p in probe_pods(api))
