"""The kopf layer: environment parsing and which watch events wake or clean up."""

from __future__ import annotations

import asyncio
import contextlib
import inspect
import logging
import socket
from typing import Any

import aiohttp
import kopf
import pytest
from kopf._core.engines import probing

from hopscope_operator.cluster import LEASES
from hopscope_operator.controller import handlers
from hopscope_operator.controller.leader import LeaseElector
from hopscope_operator.controller.leading import LeaderOnly
from hopscope_operator.controller.metrics import Metrics
from hopscope_operator.controller.plan import Caps
from hopscope_operator.controller.reconcile import Reconciler, Settings, TickReport
from hopscope_operator.names import LEASE, NAMESPACE


class Recorder:
    def __init__(self) -> None:
        self.ticks = 0
        self.forgotten: list[tuple[str, str]] = []

    def tick(self) -> TickReport:
        self.ticks += 1
        if self.ticks == 1:
            raise ConnectionError("API server restarting")  # the loop must survive this
        return TickReport()

    def forget(self, namespace: str, name: str) -> None:
        self.forgotten.append((namespace, name))


def memo() -> kopf.Memo:
    state = kopf.Memo()
    state.reconciler = Recorder()
    state.wake = asyncio.Event()
    return state


def check_event(kind: str, generation: int, observed: int | None) -> dict[str, Any]:
    obj: dict[str, Any] = {"metadata": {"namespace": "shop", "name": "c", "generation": generation}}
    if observed is not None:
        obj["status"] = {"observedGeneration": observed}
    return {"type": kind, "object": obj}


def test_defaults_and_overrides_come_from_the_environment():
    config = handlers.Config.from_env({})
    assert config.settings.caps == Caps()
    assert config.settings.namespace == "hopscope-system"
    config = handlers.Config.from_env(
        {
            "HOPSCOPE_MAX_PROBE_PODS": "7",
            "HOPSCOPE_PROBE_IMAGE": "registry/probe:1",
            "HOPSCOPE_CHECK_BUDGET_SECONDS": "300",
        }
    )
    assert config.settings.caps.max_pods == 7
    assert config.settings.caps.check_budget_seconds == 300
    assert config.settings.image == "registry/probe:1"


def test_a_bad_pull_policy_stops_the_operator_naming_the_variable():
    assert handlers.Config.from_env({}).settings.pull_policy == "IfNotPresent"
    with pytest.raises(kopf.PermanentError, match="HOPSCOPE_PROBE_IMAGE_PULL_POLICY='always'"):
        handlers.Config.from_env({"HOPSCOPE_PROBE_IMAGE_PULL_POLICY": "always"})


@pytest.mark.parametrize("value", ["0", "-3", "ten", ""])
def test_a_bad_setting_stops_the_operator_naming_the_variable(value: str):
    with pytest.raises(kopf.PermanentError, match="HOPSCOPE_TICK_SECONDS"):
        handlers.Config.from_env({"HOPSCOPE_TICK_SECONDS": value})


def test_a_new_or_changed_spec_wakes_the_loop_and_a_status_write_does_not():
    state = memo()
    asyncio.run(handlers.check_changed(check_event("MODIFIED", 2, 2), state))
    assert not state.wake.is_set()  # our own status write echoing back
    asyncio.run(handlers.check_changed(check_event("MODIFIED", 3, 2), state))
    assert state.wake.is_set()
    state.wake.clear()
    asyncio.run(handlers.check_changed(check_event("ADDED", 1, None), state))
    assert state.wake.is_set()


def test_a_deleted_check_is_forgotten():
    state = memo()
    asyncio.run(handlers.check_changed(check_event("DELETED", 1, 1), state))
    assert state.reconciler.forgotten == [("shop", "c")]


@pytest.mark.parametrize(("phase", "wakes"), [("Running", False), ("Succeeded", True)])
def test_an_ended_probe_pod_wakes_the_loop(phase: str, wakes: bool):
    state = memo()
    event = {"type": "MODIFIED", "object": {"status": {"phase": phase}}}
    asyncio.run(handlers.probe_pod_changed(event, state))
    assert state.wake.is_set() is wakes


def test_the_handlers_run_on_kopfs_event_loop_where_waking_it_is_safe():
    # kopf runs plain functions in worker threads; the wake event belongs to the loop.
    assert inspect.iscoroutinefunction(handlers.check_changed)
    assert inspect.iscoroutinefunction(handlers.probe_pod_changed)


def test_the_loop_ticks_when_woken_and_survives_a_failing_tick():
    async def scenario() -> int:
        state = memo()
        task = asyncio.create_task(handlers.run_ticks(state.reconciler, state.wake, every=60))
        for _ in range(2):
            state.wake.set()
            for _ in range(100):
                await asyncio.sleep(0.005)
                if not state.wake.is_set():
                    break
        await asyncio.sleep(0.05)
        task.cancel()
        return state.reconciler.ticks

    assert asyncio.run(scenario()) == 2


def test_a_replica_that_becomes_leader_ticks_at_once_and_hands_the_lease_over_on_stop(api, clock):
    async def scenario() -> kopf.Memo:
        state = kopf.Memo()
        metrics = Metrics()
        elector = LeaseElector(api, NAMESPACE, "a", clock=clock)
        settings = Settings(namespace=NAMESPACE)
        state.reconciler = LeaderOnly(
            elector, metrics, lambda: Reconciler(api, metrics, settings, clock)
        )
        state.wake = asyncio.Event()
        state.election = asyncio.create_task(
            handlers.run_election(state.reconciler, state.wake, every=60)
        )
        state.loop = asyncio.create_task(asyncio.sleep(60))
        await asyncio.wait_for(state.wake.wait(), timeout=5)
        await handlers.stop(state)
        return state

    state = asyncio.run(scenario())
    assert state.election.cancelled() and not state.reconciler.leading
    assert api.get(LEASES, NAMESPACE, LEASE)["spec"]["holderIdentity"] == ""  # released


@pytest.mark.parametrize("raw", ["{not json", '{"tolerations": "all"}', "bm90IGpzb24="])
def test_bad_probe_pod_settings_stop_the_operator_naming_the_variable(raw: str):
    with pytest.raises(kopf.PermanentError, match="HOPSCOPE_PROBE_POD"):
        handlers.Config.from_env({"HOPSCOPE_PROBE_POD": raw})


def test_the_operator_watches_every_namespace_unless_told_which():
    everywhere = handlers.Config.from_env({}).kopf_options()
    assert everywhere["clusterwide"] is True and everywhere["namespaces"] == ()
    assert everywhere["liveness_endpoint"] == "http://0.0.0.0:8080/healthz"
    confined = handlers.Config.from_env({"HOPSCOPE_WATCH_NAMESPACES": "shop, payments,"})
    assert confined.settings.watch_namespaces == ("shop", "payments")
    options = confined.kopf_options()
    # Its own namespace too: the probe pods it waits for live there.
    assert options["namespaces"] == ("hopscope-system", "payments", "shop")
    assert options["clusterwide"] is False


@pytest.mark.parametrize("listed", ["shop,Payments", "shop,pay_ments", "-shop", "a" * 64])
def test_a_bad_namespace_stops_the_operator_naming_the_variable(listed: str):
    with pytest.raises(kopf.PermanentError, match="HOPSCOPE_WATCH_NAMESPACES"):
        handlers.Config.from_env({"HOPSCOPE_WATCH_NAMESPACES": listed})


def test_the_command_refuses_a_bad_environment_before_starting_kopf(monkeypatch):
    monkeypatch.setenv("HOPSCOPE_WATCH_NAMESPACES", "Shop")
    monkeypatch.setattr(kopf, "run", lambda **_: pytest.fail("kopf started"))
    with pytest.raises(SystemExit, match="hopscope-operator: HOPSCOPE_WATCH_NAMESPACES: 'Shop'"):
        handlers.main()


# ---- logging --------------------------------------------------------------------------------


@pytest.fixture
def kopf_logging(caplog: pytest.LogCaptureFixture):
    """handlers.configure_logging() as main() calls it, undone afterwards."""
    root = logging.getLogger()
    kept = (root.level, root.handlers[:], logging.getLogger("aiohttp.access").level)
    handlers.configure_logging()
    caplog.set_level(logging.INFO)  # the root logger's, as kopf sets it
    yield caplog
    root.setLevel(kept[0])
    root.handlers[:] = kept[1]
    logging.getLogger("aiohttp.access").setLevel(kept[2])


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def test_a_liveness_probe_logs_nothing_at_info(kopf_logging: pytest.LogCaptureFixture):
    """kopf's own /healthz server (aiohttp), asked as the kubelet asks it, on loopback."""
    port = free_port()

    async def probe_once() -> int:
        ready = asyncio.Event()
        server = asyncio.create_task(
            probing.health_reporter(
                f"http://127.0.0.1:{port}/healthz",
                memo=kopf.Memo(),
                indices={},  # no activity handlers in an empty registry to index for
                registry=kopf.OperatorRegistry(),
                settings=kopf.OperatorSettings(),
                ready_flag=ready,
            )
        )
        await ready.wait()
        url = f"http://127.0.0.1:{port}/healthz"
        async with aiohttp.ClientSession() as session, session.get(url) as response:
            status = response.status
        server.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await server
        return status

    assert asyncio.run(probe_once()) == 200
    said = [r for r in kopf_logging.records if r.levelno >= logging.INFO]
    assert said == [], [r.getMessage() for r in said]
