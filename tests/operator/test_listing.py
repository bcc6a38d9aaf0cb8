"""What a tick keeps of each listed check (`CheckLister`): its spec, and of its status only the
fields planning reads every tick; the whole status (the last run's hops, issues, analysis) is
read again from the cached body when a write carries it over or metrics export it again."""

from __future__ import annotations

from hopscope_operator.api import ConnectivityCheckStatus
from hopscope_operator.cluster import CHECKS, PODS
from hopscope_operator.controller.cache import ClusterCache, ReadYourWrites
from hopscope_operator.controller.listing import CheckLister
from hopscope_operator.controller.metrics import Metrics
from hopscope_operator.controller.status import status_patch
from hopscope_operator.controller.writer import Check, StatusWriter

from .conftest import Clock
from .fakeapi import FakeApi
from .test_reconcile import (
    PROBES,
    apply_check,
    check,
    condition,
    make_reconciler,
    reachable_result,
    run_once,
    source_pod,
)


def test_a_listed_check_keeps_only_the_status_fields_planning_reads(api: FakeApi, clock: Clock):
    source_pod(api)
    apply_check(api)
    stored = run_once(api, make_reconciler(api, clock), reachable_result())["status"]
    lister = CheckLister(ClusterCache(api, (), PROBES), StatusWriter(api, Metrics(), clock))
    [listed] = lister.list()[0].values()
    kept = listed.model.status
    assert kept is not None and (kept.runs, kept.observed_generation) == (1, 1)
    assert [c.type for c in kept.conditions] == ["Ready", "Reachable"]
    assert kept.path_fingerprint == stored["pathFingerprint"]
    assert (kept.hops, kept.latency, kept.analysis, kept.source) == ([], None, None, None)
    whole = listed.full().status
    assert whole is not None and len(whole.hops) == len(stored["hops"]) == 2
    assert whole.analysis is not None and whole.analysis.result == stored["analysis"]["result"]


def test_a_ready_false_after_a_run_this_process_wrote_keeps_that_runs_figures(
    api: FakeApi, clock: Clock
):
    reconciler = make_reconciler(api, clock)
    source_pod(api)
    apply_check(api, schedule={"intervalSeconds": 60})
    ran = run_once(api, reconciler, reachable_result())["status"]
    api.delete(PODS, "shop", "web-0")
    clock.advance(120)
    reconciler.tick()  # the check as this process wrote it: its source is gone
    after = check(api)
    assert condition(after, "Ready")["reason"] == "SourceNotFound"
    for figures in ("hops", "latency", "analysis", "source", "pathFingerprint"):
        assert after["status"][figures] == ran[figures], figures


def test_checks_with_equal_spec_parts_share_them_and_an_edit_stays_its_own(
    api: FakeApi, clock: Clock
):
    apply_check(api, "a")
    apply_check(api, "b")
    lister = CheckLister(ClusterCache(api, (), PROBES), StatusWriter(api, Metrics(), clock))
    a, b = (lister.list()[0][f"shop/{name}"].model.spec for name in "ab")
    assert a.probes is b.probes and a.thresholds is b.thresholds  # the defaults, held once
    edited = api.stored(CHECKS, "shop", "b")
    edited["spec"]["probes"] = {"count": 3, "timeoutSeconds": 1.0}
    api.replace(CHECKS, "shop", "b", edited)
    a, b = (lister.list()[0][f"shop/{name}"].model.spec for name in "ab")
    assert (a.probes.count, b.probes.count) == (10, 3)
    assert b.model_dump(by_alias=True, exclude_none=True) == check(api, "b")["spec"]


def test_a_status_this_process_wrote_is_held_once_when_its_watch_event_comes(
    api: FakeApi, clock: Clock
):
    apply_check(api)
    cache = ClusterCache(api, (), PROBES)
    via = ReadYourWrites(api, cache)
    lister = CheckLister(cache, StatusWriter(via, Metrics(), clock))
    [was] = lister.list()[0].values()
    status = ConnectivityCheckStatus(runs=1)
    patch = status_patch(status)
    stored = via.patch_status(CHECKS, "shop", "web-to-db", patch, was.resource_version)
    lister.wrote(was, stored, Check.of(was.model.model_copy(update={"status": status}), stored))
    [listed] = lister.list()[0].values()  # its watch event is in: the same version, decoded again
    [cached] = cache.checks[None].objects()
    assert listed.stored is cached  # the one body the cache holds, not the write's answer too
    assert listed.model.status is not None and listed.model.status.runs == 1
