"""A tick's status writes overlap (controller/writes.py): one at a time, the last result of a
tick in which every probe pod ended waited for every PATCH round trip before it. What the
overlap must not cost: a result lost or written twice, a write refused for one check stopping
the others, or a probe pod deleted before its results are in."""

from __future__ import annotations

import functools
import threading
from concurrent.futures import ThreadPoolExecutor

from hopscope_operator.cluster import ApiError
from hopscope_operator.controller.writes import Writes

from .test_reconcile import batch_of, check, finish, probe_pods, reachable_result
from .test_reconcile_blast import NAMES, ready, three_checks
from .test_reconcile_blast import reconciler as reconciler  # the fixture

# How long a write waits for the others to be in flight with it before it gives up (the old,
# one-at-a-time tick would wait forever). A deadlock guard, not a measurement.
GUARD_SECONDS = 10


def results_of(api, pod) -> None:
    finish(api, pod, {item.id: reachable_result() for item in batch_of(pod).checks})


def test_a_ticks_result_writes_are_in_flight_together(api, reconciler, clock, monkeypatch):
    three_checks(api)
    reconciler.tick()
    [pod] = probe_pods(api)
    real = api.patch_status
    # Each result write waits until all three are in flight at once: written one after
    # another, the first would wait alone and break the barrier.
    together = threading.Barrier(len(NAMES), timeout=GUARD_SECONDS)
    threads: set[str] = set()

    def patch_status(resource, namespace, name, status, version):
        if status.get("connectionStatus") == "Reachable":
            threads.add(threading.current_thread().name)
            together.wait()
        return real(resource, namespace, name, status, version)

    monkeypatch.setattr(api, "patch_status", patch_status)
    results_of(api, pod)
    clock.advance(5)
    report = reconciler.tick()
    assert report.collected == len(NAMES)
    assert [check(api, name)["status"]["runs"] for name in NAMES] == [1, 1, 1]
    assert len(threads) == len(NAMES)  # each from a thread of its own
    assert threading.current_thread().name not in threads  # never the tick's own
    # All in: the pod went, after its results (the node's slot is free).
    assert probe_pods(api) == []


def test_writes_in_flight_are_bounded_and_followed_up_on_the_callers_thread():
    limit = 2
    in_flight, most = 0, 0
    counted = threading.Lock()
    pairs = threading.Barrier(limit, timeout=GUARD_SECONDS)  # `limit` are in flight together

    def request(number: int) -> int:
        nonlocal in_flight, most
        with counted:
            in_flight += 1
            most = max(most, in_flight)
        pairs.wait()
        with counted:
            in_flight -= 1
        return number

    answers: list[tuple[int, str]] = []
    with ThreadPoolExecutor(8) as pool, Writes(pool, limit) as writes:
        for number in range(6):
            writes.submit(
                f"check-{number}",
                functools.partial(request, number),
                lambda answer: answers.append((answer, threading.current_thread().name)),
                lambda exc: answers.append((-1, repr(exc))),
            )
    assert most == limit  # never more in flight than allowed, and as many as allowed
    assert sorted(answer for answer, _ in answers) == list(range(6))  # each answer, once
    assert {thread for _, thread in answers} == {threading.current_thread().name}


def test_a_refused_result_write_keeps_the_pod_and_is_written_next_tick(
    api, reconciler, clock, monkeypatch
):
    three_checks(api)
    reconciler.tick()
    [pod] = probe_pods(api)
    real = api.patch_status
    refused: list[str] = []

    def patch_status(resource, namespace, name, status, version):
        if name == "b" and status.get("connectionStatus") == "Reachable" and not refused:
            refused.append(name)  # once: the API server is back for the next tick
            raise ApiError("Internal error occurred: etcdserver: request timed out")
        return real(resource, namespace, name, status, version)

    monkeypatch.setattr(api, "patch_status", patch_status)
    results_of(api, pod)
    clock.advance(5)
    reconciler.tick()
    assert check(api, "a")["status"]["runs"] == 1 and check(api, "c")["status"]["runs"] == 1
    assert ready(api, "b")[:2] == ("False", "ApiRefused")  # said at once
    assert [p["metadata"]["name"] for p in probe_pods(api)] == [pod["metadata"]["name"]]

    clock.advance(5)
    report = reconciler.tick()
    assert report.collected == 1  # b's result, and only b's: a and c are not written twice
    assert [check(api, name)["status"]["runs"] for name in NAMES] == [1, 1, 1]
    assert check(api, "b")["status"]["connectionStatus"] == "Reachable"
    assert ready(api, "b")[0] == "True"
    assert probe_pods(api) == []  # all written now: the pod went
