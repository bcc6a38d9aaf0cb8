"""The tick's watch-fed caches: a steady tick lists nothing, changes flow in by watch, an
expired watch relists once, a dropped one resumes, bookmarks move the version on."""

from __future__ import annotations

import pytest

from hopscope_operator.controller.metrics import Metrics
from hopscope_operator.controller.reconcile import Reconciler, Settings

from .caught_up import caught_up
from .test_kube import kube_api, server  # noqa: F401  (the fixture)
from .test_reconcile import (
    PROBES,
    apply_check,
    batch_of,
    check,
    finish,
    probe_pods,
    reachable_result,
    source_pod,
)

SETTINGS = Settings(namespace=PROBES, image="hopscope-probe:test")


@pytest.fixture
def ticking(api, clock) -> Reconciler:
    return Reconciler(api, Metrics(), SETTINGS, clock)


def test_a_steady_tick_over_http_lists_nothing_and_a_run_still_lands(api, server, clock):  # noqa: F811
    source_pod(api)
    apply_check(api, schedule={"intervalSeconds": 600})
    reconciler = Reconciler(kube_api(server), Metrics(), SETTINGS, clock)
    assert reconciler.tick().created == 1
    [pod] = probe_pods(api)
    finish(api, pod, {item.id: reachable_result() for item in batch_of(pod).checks})
    caught_up(reconciler, api)
    before = reconciler.api.requests["list"]
    assert reconciler.tick().collected == 1  # its analysis reads the caches: no LIST either
    analysis = check(api)["status"]["analysis"]  # db has no endpoints in this cluster
    assert analysis["result"] == "Blocked" and analysis["issues"][0]["type"] == "ServiceEndpoints"
    caught_up(reconciler, api)
    for _ in range(3):
        clock.advance(5)
        report = reconciler.tick()
        assert report.created == 0 and report.collected == 0
    assert reconciler.api.requests["list"] == before  # no LIST after the first
    assert check(api)["status"]["runs"] == 1
    asked = [path for method, path, _ in server.requests if method == "GET"]
    cached = ("connectivitychecks", f"{PROBES}/pods")
    bare_lists = [p for p in asked if p.split("?")[0].endswith(cached) and "watch=" not in p]
    assert len(bare_lists) == 3  # checks, cluster checks, probe pods: once each


def test_an_expired_watch_relists_once_and_loses_or_doubles_no_run(api, ticking, clock):
    source_pod(api)
    apply_check(api)
    ticking.tick()
    [pod] = probe_pods(api)
    api.compact()
    api.end_watches()  # reopened from a version etcd no longer has: ERROR 410
    finish(api, pod, {item.id: reachable_result() for item in batch_of(pod).checks})
    informers = (ticking.cache.probe_pods, *ticking.cache.checks.values())
    lists = [i.lists for i in informers]
    assert ticking.tick().collected == 1
    assert [i.lists for i in informers] == [n + 1 for n in lists]  # one relist each
    clock.advance(5)
    assert ticking.tick().collected == 0
    assert check(api)["status"]["runs"] == 1 and len(probe_pods(api)) <= 1


def test_a_dropped_watch_resumes_from_its_version_without_a_list(api, ticking):
    source_pod(api)
    apply_check(api)
    ticking.tick()
    [pod] = probe_pods(api)
    api.end_watches()
    finish(api, pod, {item.id: reachable_result() for item in batch_of(pod).checks})
    lists = sum(i.lists for i in ticking.cache.informers())
    assert ticking.tick().collected == 1  # the change made while it was down came
    assert sum(i.lists for i in ticking.cache.informers()) == lists


def test_a_bookmark_moves_the_caches_version_on(api, ticking):
    ticking.tick()
    before = ticking.cache.probe_pods.version
    source_pod(api)  # a write the probe pods' watch does not carry (another namespace)
    api.bookmark()
    sent = api.resource_version()
    ticking.tick()
    assert before < sent == ticking.cache.probe_pods.version


def test_the_pod_a_tick_created_is_seen_by_the_next_before_its_watch_event(api, ticking, clock):
    source_pod(api)
    apply_check(api, schedule={"intervalSeconds": 10})
    watch = api.watch
    api.watch = lambda *args: _Silent()  # no event ever arrives
    ticking.cache.close()
    ticking.tick()
    clock.advance(10)
    ticking.tick()
    api.watch = watch
    assert len(probe_pods(api)) == 1  # read-your-writes: no second pod


class _Silent:
    ended = False

    def poll(self) -> list:
        return []

    def close(self) -> None:
        pass
