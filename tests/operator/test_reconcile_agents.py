"""Workload sources: the check runs on the workload's probe sidecar, not in a probe pod."""

from __future__ import annotations

import threading
import time
from typing import Any

from hopscope_operator.cluster import CHECKS, DEPLOYMENTS, PODS
from hopscope_operator.controller.agents import TOKEN_SECONDS, AgentRunner, AgentTokens, Caller
from hopscope_operator.controller.metrics import Metrics
from hopscope_operator.controller.reconcile import Reconciler, Settings
from hopscope_probe.models import ProbeRequest, ProbeResult

from .fakeapi import FakeApi
from .test_reconcile import PROBES, apply_check, check, condition, probe_pods, reachable_result
from .test_reconcile_analysis import Forbidden

GATEWAY_UID = "5f1c2b4a-9d8e-4f70-a1b2-c3d4e5f60718"


class FakeAgent:
    """Stands in for the HTTP call to the sidecar; records what the operator sent."""

    def __init__(self, result: ProbeResult) -> None:
        self.result = result
        self.calls: list[tuple[str, int, str, ProbeRequest]] = []

    def __call__(self, address: str, port: int, token: str, request: ProbeRequest) -> ProbeResult:
        self.calls.append((address, port, token, request))
        return self.result


def gateway(api: FakeApi, *, with_agent: bool, ready: bool = True) -> None:
    api.create(
        DEPLOYMENTS,
        "shop",
        {
            "apiVersion": "apps/v1",
            "kind": "Deployment",
            "metadata": {"name": "gateway"},
            "spec": {"selector": {"matchLabels": {"app": "gateway"}}},
        },
    )
    containers: list[dict[str, Any]] = [{"name": "envoy", "image": "envoy"}]
    if with_agent:
        containers.append(
            {
                "name": "hopscope-agent",
                "image": "hopscope-probe",
                "ports": [{"name": "hopscope-agent", "containerPort": 9800}],
            }
        )
    api.create(
        PODS,
        "shop",
        {
            "metadata": {"name": "gateway-7d9f", "labels": {"app": "gateway"}},
            "spec": {"nodeName": "worker-2", "containers": containers},
        },
    )
    api.stored(PODS, "shop", "gateway-7d9f")["metadata"]["uid"] = GATEWAY_UID
    api.set_pod_status(
        "shop",
        "gateway-7d9f",
        {
            "phase": "Running",
            "podIP": "10.244.2.9",
            "podIPs": [{"ip": "10.244.2.9"}],
            "conditions": [{"type": "Ready", "status": "True" if ready else "False"}],
        },
    )


def reconciler_with(api: FakeApi, clock: Any, agent: Caller) -> Reconciler:
    runner = AgentRunner(AgentTokens(api), call=agent)
    return Reconciler(api, Metrics(), Settings(namespace=PROBES), clock, agents=runner)


def tick_until_collected(reconciler: Reconciler) -> None:
    for _ in range(100):
        if reconciler.tick().collected:
            return
        time.sleep(0.01)
    raise AssertionError("the agent's result never came back")


def workload_check(api: FakeApi) -> None:
    apply_check(api, source={"workload": {"kind": "Deployment", "name": "gateway"}})


def test_a_workload_check_runs_on_its_sidecar_and_lands_in_status(api, clock):
    gateway(api, with_agent=True)
    workload_check(api)
    agent = FakeAgent(reachable_result(avg_ms=2.5))
    reconciler = reconciler_with(api, clock, agent)
    tick_until_collected(reconciler)
    assert probe_pods(api) == []  # no privileged pod for a gateway
    [(address, port, sent_token, request)] = agent.calls
    assert (address, port) == ("10.244.2.9", 9800)
    # The operator's own token, for this agent pod's audience alone.
    audience = "hopscope-agent/shop/gateway-7d9f"
    assert api.tokens_issued == [(PROBES, "hopscope-operator", audience)]
    assert sent_token == f"token/{PROBES}/hopscope-operator/{audience}"
    assert (request.host, request.port) == ("10.96.0.20", 5432)
    status = check(api)["status"]
    assert status["connectionStatus"] == "Reachable"
    assert status["source"]["pod"] == "gateway-7d9f" and status["source"]["node"] == "worker-2"
    assert "hopscope agent" in condition(check(api), "Ready")["message"]


def test_a_workload_without_the_sidecar_says_so_briefly_and_names_the_patch(api, clock):
    gateway(api, with_agent=False)
    workload_check(api)
    agent = FakeAgent(reachable_result())
    reconciler_with(api, clock, agent).tick()
    ready, reachable = condition(check(api), "Ready"), condition(check(api), "Reachable")
    assert (ready["status"], ready["reason"]) == ("False", "SidecarMissing")
    assert reachable["reason"] == "SidecarMissing"
    # What is missing and how to add it, on one line; the patch itself is the chart's file.
    for said in (ready["message"], reachable["message"]):
        assert "Deployment shop/gateway" in said and "hopscope-agent" in said
        assert "kubectl -n shop patch deployment gateway" in said
        assert "files/sidecar-patch.yaml" in said
        assert "\n" not in said and "containers" not in said and len(said) < 400
    events = api.events_for("web-to-db")
    assert events and all("containers" not in e["message"] for e in events)
    assert agent.calls == [] and probe_pods(api) == []


def test_a_sidecar_pod_that_is_not_ready_is_sidecar_not_ready(api, clock):
    gateway(api, with_agent=True, ready=False)
    workload_check(api)
    reconciler_with(api, clock, FakeAgent(reachable_result())).tick()
    # The Deployment has no Ready pod at all: resolution itself says so first.
    assert condition(check(api), "Ready")["reason"] == "SourceNotFound"


def test_without_a_token_the_operator_reports_why_it_cannot_call(api, clock):
    gateway(api, with_agent=True)
    workload_check(api)
    agent = FakeAgent(reachable_result())

    def refused(*_: Any) -> str:
        raise Forbidden('serviceaccounts "hopscope-operator" is forbidden: cannot create token')

    api.request_token = refused
    reconciler = reconciler_with(api, clock, agent)
    tick_until_collected(reconciler)
    status = check(api)["status"]
    assert status["connectionStatus"] == "Unknown" and agent.calls == []
    assert "forbidden" in status["issues"][0]["message"]
    assert "serviceaccounts/token" in status["issues"][0]["hint"]


def test_a_token_serves_its_pod_for_half_its_life_then_a_new_one_is_asked():
    issued: list[str] = []

    class Api:
        def request_token(self, namespace: str, account: str, audience: str, seconds: int):
            issued.append(audience)
            return f"{audience}#{len(issued)}"

    now = [0.0]
    tokens = AgentTokens(Api(), clock=lambda: now[0])  # type: ignore[arg-type]
    assert tokens("hopscope-agent/shop/a") == "hopscope-agent/shop/a#1"
    assert tokens("hopscope-agent/shop/a") == "hopscope-agent/shop/a#1"
    assert tokens("hopscope-agent/shop/b") == "hopscope-agent/shop/b#2"  # another pod, another
    now[0] = TOKEN_SECONDS / 2 + 1
    assert tokens("hopscope-agent/shop/a") == "hopscope-agent/shop/a#3"


def test_a_running_agent_call_is_not_started_twice(api, clock):
    gateway(api, with_agent=True)
    workload_check(api)
    release = threading.Event()
    agent = FakeAgent(reachable_result())

    def slow(*args: Any) -> ProbeResult:
        release.wait(5)  # still running while the next ticks look at the check
        return agent(*args)

    reconciler = reconciler_with(api, clock, slow)
    reconciler.tick()
    reconciler.tick()
    reconciler.tick()
    release.set()
    tick_until_collected(reconciler)
    assert len(agent.calls) == 1


def test_a_check_created_again_under_its_name_is_not_given_the_old_agent_run(api, clock):
    gateway(api, with_agent=True)
    workload_check(api)
    release = threading.Event()
    agent = FakeAgent(reachable_result())
    old_target = reachable_result().model_copy(update={"connection_status": "Unreachable"})

    def slow(address: str, port: int, token: str, request: ProbeRequest) -> ProbeResult:
        release.wait(5)
        agent(address, port, token, request)
        return old_target if request.host == "10.96.0.20" else agent.result

    reconciler = reconciler_with(api, clock, slow)
    reconciler.tick()
    api.delete(CHECKS, "shop", "web-to-db")
    reconciler.forget("shop", "web-to-db")
    apply_check(api, source={"workload": {"kind": "Deployment", "name": "gateway"}},
                destination={"ip": "192.0.2.99", "port": 443})  # fmt: skip
    release.set()
    tick_until_collected(reconciler)  # the new check's own run, not its predecessor's
    assert sorted(request.host for *_, request in agent.calls) == ["10.96.0.20", "192.0.2.99"]
    time.sleep(0.05)
    reconciler.tick()  # the old run, if it ended after the new one, is dropped too
    status = check(api)["status"]
    assert (status["connectionStatus"], status["runs"]) == ("Reachable", 1)


def test_a_network_error_asking_for_a_token_is_said_on_the_check_not_raised(api, clock):
    gateway(api, with_agent=True)
    workload_check(api)

    def unreachable(*_: Any) -> str:
        raise OSError("connection reset by peer")

    api.request_token = unreachable
    reconciler = reconciler_with(api, clock, FakeAgent(reachable_result()))
    tick_until_collected(reconciler)
    status = check(api)["status"]
    assert status["connectionStatus"] == "Unknown"
    assert "connection reset" in status["issues"][0]["message"]
