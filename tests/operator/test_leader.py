"""Leader election on the in-memory API server's Lease: who holds it, when another may take it
over, and the writes that make two replicas racing for it safe."""

from __future__ import annotations

import pytest

from hopscope_operator.cluster import LEASES, Conflict
from hopscope_operator.controller.leader import LEASE_DURATION, RETRY, LeaseElector
from hopscope_operator.names import LEASE, NAMESPACE

from .conftest import Clock
from .fakeapi import FakeApi
from .httpapi import HttpApi
from .test_kube import TOKEN, kube_api

STEP = RETRY.total_seconds()


def elector(api: FakeApi, clock: Clock, holder: str) -> LeaseElector:
    return LeaseElector(api, NAMESPACE, holder, clock=clock)


def lease(api: FakeApi) -> dict:
    return api.get(LEASES, NAMESPACE, LEASE)["spec"]


def test_the_first_replica_creates_the_lease_and_the_second_follows(api, clock):
    a, b = elector(api, clock, "a"), elector(api, clock, "b")
    assert a.step() and not b.step()
    spec = lease(api)
    assert spec["holderIdentity"] == "a" and spec["leaseTransitions"] == 0
    assert spec["leaseDurationSeconds"] == LEASE_DURATION.total_seconds()
    assert spec["renewTime"] == "2026-11-25T12:00:00.000000Z"  # MicroTime, as the API writes


def test_the_leader_renews_and_the_follower_never_takes_a_renewed_lease(api, clock):
    a, b = elector(api, clock, "a"), elector(api, clock, "b")
    a.step()
    for _ in range(30):  # a minute: many lease durations, each renewed in time
        clock.advance(STEP)
        assert a.step() and not b.step()
    assert lease(api)["renewTime"] == "2026-11-25T12:01:00.000000Z"
    assert lease(api)["holderIdentity"] == "a"


def test_a_silent_leader_is_replaced_once_its_lease_expires(api, clock):
    a, b = elector(api, clock, "a"), elector(api, clock, "b")
    a.step()
    b.step()
    waited = 0.0
    while not b.step():  # "a" was killed: it never renews again
        clock.advance(STEP)
        waited += STEP
    assert LEASE_DURATION.total_seconds() <= waited <= 15
    spec = lease(api)
    assert spec["holderIdentity"] == "b" and spec["leaseTransitions"] == 1
    assert not a.step()  # back from a pause: it sees "b" hold the lease and follows


def test_expiry_is_judged_by_the_followers_clock_not_the_holders_renew_time(api, clock):
    a = elector(api, clock, "a")
    a.step()
    stored = api.stored(LEASES, NAMESPACE, LEASE)
    stored["spec"]["renewTime"] = "2020-01-01T00:00:00.000000Z"  # "a"'s clock is years behind
    b = elector(api, clock, "b")
    assert not b.step()  # the lease is new to "b": trusted for a whole duration from now
    clock.advance(LEASE_DURATION.total_seconds() - STEP)
    assert not b.step()


def test_a_released_lease_is_taken_over_at_the_next_step(api, clock):
    a, b = elector(api, clock, "a"), elector(api, clock, "b")
    a.step()
    b.step()
    a.release()
    assert not a.leading and lease(api)["holderIdentity"] == ""
    clock.advance(STEP)
    assert b.step() and lease(api)["holderIdentity"] == "b"


def test_of_two_replicas_racing_for_an_expired_lease_only_one_wins(api, clock):
    a, b, c = (elector(api, clock, name) for name in "abc")
    a.step()
    b.step()
    c.step()
    clock.advance(LEASE_DURATION.total_seconds() + STEP)
    read = api.get(LEASES, NAMESPACE, LEASE)  # what "c" read just before "b" wrote
    assert b.step()
    read["spec"]["holderIdentity"] = "c"
    with pytest.raises(Conflict):  # a PUT of a stale read is refused
        api.replace(LEASES, NAMESPACE, LEASE, read)
    assert not c.step() and lease(api)["holderIdentity"] == "b"


def test_a_leader_that_lost_a_race_to_renew_steps_down_at_once(api, clock):
    a = elector(api, clock, "a")
    a.step()
    stored = api.get(LEASES, NAMESPACE, LEASE)
    stored["spec"]["holderIdentity"] = "b"  # "b" took it over while "a" was paused
    api.replace(LEASES, NAMESPACE, LEASE, stored)
    assert not a.step() and lease(api)["holderIdentity"] == "b"


def test_a_leader_that_cannot_reach_the_api_steps_down_before_anyone_may_take_over(api, clock):
    a = elector(api, clock, "a")
    a.step()
    outage = Outage(api)
    a.api = outage
    clock.advance(STEP)
    assert a.step()  # one failed renewal: still within its term
    clock.advance(6 * STEP)
    assert not a.step()  # 8 s without renewing: another may take over from 10 s on


class Outage:
    """The API server unreachable: every call fails as a refused connection does."""

    def __init__(self, api: FakeApi) -> None:
        self.calls = api.calls

    def __getattr__(self, name: str):
        def refuse(*args, **kwargs):
            raise ConnectionRefusedError(111, "Connection refused")

        return refuse


def test_the_election_runs_through_the_real_client_under_the_charts_rbac(api, clock):
    with HttpApi(api, TOKEN).running() as server:
        a = LeaseElector(kube_api(server), NAMESPACE, "a", clock=clock)
        b = LeaseElector(kube_api(server), NAMESPACE, "b", clock=clock)
        assert a.step() and not b.step()  # POST, then GET
        clock.advance(STEP)
        assert a.step()  # a PUT with the resourceVersion read
        a.release()
        assert b.step() and lease(api)["holderIdentity"] == "b"
        stale = a.api.get(LEASES, NAMESPACE, LEASE)
        b.step()
        with pytest.raises(Conflict):  # the real server's 409, mapped by kube.KubeApi
            a.api.replace(LEASES, NAMESPACE, LEASE, stale)
    assert [(m, p.rsplit("/", 1)[-1]) for m, p, _ in server.requests][:3] == [
        ("GET", LEASE),
        ("POST", "leases"),
        ("GET", LEASE),
    ]
