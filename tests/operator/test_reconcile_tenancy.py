"""The tenancy rule in the operator: a namespaced check probes from its own namespace's pods and
workloads with safe HTTP methods, unless the operator is configured to let it reach further.
A check that asks for more says so (Ready=False) and gets no probe pod: the privileged pod
never enters another namespace's pod, nor a node's network."""

from __future__ import annotations

from typing import Any

import kopf
import pytest

from hopscope_operator.cluster import NODES, PODS
from hopscope_operator.controller import handlers
from hopscope_operator.controller.metrics import Metrics
from hopscope_operator.controller.reconcile import Reconciler, Settings
from hopscope_operator.controller.tenancy import Tenancy

from .conftest import Clock
from .fakeapi import FakeApi
from .test_reconcile import PROBES, apply_check, check, condition, probe_pods, source_pod


def reconciler_with(api: FakeApi, clock: Clock, tenancy: Tenancy | None = None) -> Reconciler:
    settings = Settings(namespace=PROBES, image="hopscope-probe:test", tenancy=tenancy or Tenancy())
    return Reconciler(api, Metrics(), settings, clock)


def foreign_pod(api: FakeApi) -> None:
    api.create(
        PODS,
        "payments",
        {
            "metadata": {"name": "ledger-0"},
            "spec": {"nodeName": "worker-1", "containers": [{"name": "ledger", "image": "l"}]},
        },
    )
    api.set_pod_status("payments", "ledger-0", {"phase": "Running", "podIP": "10.244.1.9"})


def node(api: FakeApi) -> None:
    api.create(
        NODES,
        None,
        {
            "metadata": {"name": "control-plane"},
            "status": {"addresses": [{"type": "InternalIP", "address": "172.18.0.2"}]},
        },
    )


FAR_SOURCES: dict[str, tuple[Any, dict[str, Any], str]] = {
    "node": (node, {"source": {"node": {"name": "control-plane"}}}, "source.node control-plane"),
    "pod of another namespace": (
        foreign_pod,
        {"source": {"pod": {"name": "ledger-0", "namespace": "payments"}}},
        "source.pod.namespace payments",
    ),
}


@pytest.mark.parametrize("make, spec, named", FAR_SOURCES.values(), ids=FAR_SOURCES.keys())
def test_a_source_beyond_the_checks_namespace_gets_no_probe_pod(api, clock, make, spec, named):
    make(api)
    apply_check(api, **spec)
    report = reconciler_with(api, clock).tick()
    assert probe_pods(api) == [] and report.created == 0
    ready = condition(check(api), "Ready")
    assert (ready["status"], ready["reason"]) == ("False", "SourceNotPermitted")
    assert named in ready["message"] and "tenancy." in ready["message"]


@pytest.mark.parametrize("make, spec, named", FAR_SOURCES.values(), ids=FAR_SOURCES.keys())
def test_the_operators_setting_widens_what_a_check_may_reach(api, clock, make, spec, named):
    make(api)
    apply_check(api, **spec)
    wide = Tenancy(allow_node_sources=True, allow_other_namespace_sources=True)
    assert reconciler_with(api, clock, wide).tick().created == 1
    assert "SourceNotPermitted" not in str(check(api)["status"])


def test_a_pod_of_the_checks_own_namespace_named_with_it_is_its_own(api, clock):
    source_pod(api)
    apply_check(api, source={"pod": {"name": "web-0", "namespace": "shop"}})
    assert reconciler_with(api, clock).tick().created == 1


def test_a_gateway_of_another_namespace_is_refused_before_its_sidecar_is_looked_for(api, clock):
    apply_check(api, source={"workload": {"kind": "Deployment", "name": "gw", "namespace": "edge"}})
    reconciler_with(api, clock).tick()
    ready = condition(check(api), "Ready")
    assert ready["reason"] == "SourceNotPermitted"
    assert "source.workload.namespace edge" in ready["message"]


@pytest.mark.parametrize("method", ["POST", "PUT", "PATCH", "DELETE"])
def test_an_unsafe_http_method_is_refused_unless_the_operator_allows_it(api, clock, method):
    source_pod(api)
    apply_check(api, protocol="HTTP", http={"method": method})
    assert reconciler_with(api, clock).tick().created == 0
    ready = condition(check(api), "Ready")
    assert (ready["reason"], probe_pods(api)) == ("MethodNotPermitted", [])
    assert f"http.method {method}" in ready["message"]
    clock.advance(10)  # its retry is due
    assert reconciler_with(api, clock, Tenancy(allow_unsafe_http_methods=True)).tick().created == 1


@pytest.mark.parametrize("method", ["GET", "HEAD", "OPTIONS"])
def test_safe_http_methods_run_by_default(api, clock, method):
    source_pod(api)
    apply_check(api, protocol="HTTP", http={"method": method})
    assert reconciler_with(api, clock).tick().created == 1


def test_the_switches_come_from_the_environment_and_a_typo_stops_the_operator():
    assert handlers.Config.from_env({}).settings.tenancy == Tenancy()
    wide = handlers.Config.from_env(
        {
            "HOPSCOPE_ALLOW_NODE_SOURCES": "true",
            "HOPSCOPE_ALLOW_OTHER_NAMESPACE_SOURCES": "True",
            "HOPSCOPE_ALLOW_UNSAFE_HTTP_METHODS": "false",
        }
    )
    assert wide.settings.tenancy == Tenancy(True, True, False)
    with pytest.raises(kopf.PermanentError, match="HOPSCOPE_ALLOW_NODE_SOURCES='yes'"):
        handlers.Config.from_env({"HOPSCOPE_ALLOW_NODE_SOURCES": "yes"})
