"""Figures per path (issue 12 §6) reach the check's status as the probe gave them, through the
in-memory API server's CRD schema: a multipath run's two branches, one of them failing, stay
apart with their flows, latency and loss."""

from __future__ import annotations

from hopscope_probe.models import Latency, PathFigures

from .conftest import Clock
from .fakeapi import FakeApi
from .test_reconcile import apply_check, make_reconciler, reachable_result, run_once, source_pod


def test_each_paths_figures_land_in_the_status(healthy: FakeApi) -> None:
    source_pod(healthy)
    apply_check(healthy)
    working = PathFigures(
        hop_ids=["h1-10.244.0.1", "h2-10.96.0.20"],
        flows=[0, 2],
        latency=Latency(min_ms=1.0, avg_ms=1.5, max_ms=2.0),
        probes_sent=6,
        probes_failed=1,
    )
    broken = PathFigures(
        hop_ids=["h1-10.244.0.1", "h2-*"], flows=[1], probes_sent=3, probes_failed=3
    )
    result = reachable_result().model_copy(update={"paths": [working, broken]})

    status = run_once(healthy, make_reconciler(healthy, Clock()), result)["status"]

    assert status["paths"] == [
        {
            "hopIds": ["h1-10.244.0.1", "h2-10.96.0.20"],
            "flows": [0, 2],
            "latency": {"minMs": 1.0, "avgMs": 1.5, "maxMs": 2.0},
            "probesSent": 6,
            "probesFailed": 1,
        },
        {"hopIds": ["h1-10.244.0.1", "h2-*"], "flows": [1], "probesSent": 3, "probesFailed": 3},
    ]
