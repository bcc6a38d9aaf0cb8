"""The destination resolved when a run is planned travels with the run to its collection."""

from __future__ import annotations

from collections import Counter
from typing import Any

import pytest

from hopscope_operator.cluster import CHECKS
from hopscope_operator.controller import reconcile
from hopscope_operator.controller.resolve import ResolvedDestination

from . import test_reconcile as story
from .conftest import Clock
from .fakeapi import FakeApi
from .test_reconcile import apply_check, batch_of, finish, probe_pods, reachable_result, source_pod


@pytest.fixture
def resolved(monkeypatch: pytest.MonkeyPatch) -> Counter[str]:
    """How often the tick resolved each check's destination."""
    counts: Counter[str] = Counter()
    real = reconcile.resolve_destination

    def counting(model: Any, view: Any) -> ResolvedDestination:
        counts[model.metadata["name"]] += 1
        return real(model, view)

    monkeypatch.setattr(reconcile, "resolve_destination", counting)
    return counts


def test_collect_judges_the_run_against_the_destination_it_was_planned_for(
    healthy: FakeApi, resolved: Counter[str]
) -> None:
    source_pod(healthy)
    apply_check(healthy)
    reconciler = story.make_reconciler(healthy, Clock())
    reconciler.tick()
    assert resolved["web-to-db"] == 1  # at plan
    [pod] = probe_pods(healthy)
    finish(healthy, pod, {item.id: reachable_result() for item in batch_of(pod).checks})
    assert reconciler.tick().collected == 1
    assert resolved["web-to-db"] == 1  # not again at collect
    assert healthy.get(CHECKS, "shop", "web-to-db")["status"]["analysis"]


def test_a_run_planned_before_a_restart_resolves_its_destination_again(
    healthy: FakeApi, resolved: Counter[str]
) -> None:
    source_pod(healthy)
    apply_check(healthy)
    clock = Clock()
    story.make_reconciler(healthy, clock).tick()
    [pod] = probe_pods(healthy)
    finish(healthy, pod, {item.id: reachable_result() for item in batch_of(pod).checks})
    assert story.make_reconciler(healthy, clock).tick().collected == 1
    assert resolved["web-to-db"] == 2  # the new process did not plan it: resolved at collect
