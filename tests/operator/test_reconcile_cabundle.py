"""HTTPS to a server with a private CA: the check names a ConfigMap key (spec.http.caBundle),
the operator reads it and the probe request carries the PEM; a CA it cannot use is that check's
Ready=False with the reason, and the other checks run as ever."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from hopscope_operator.cluster import CONFIG_MAPS, Object, Resource
from hopscope_operator.controller.plan import Caps
from hopscope_operator.controller.reconcile import Reconciler
from hopscope_probe.models import MAX_CA_PEM
from tests.netlab.servers import make_ca

from .conftest import Clock
from .fakeapi import FakeApi
from .test_reconcile import (
    apply_check,
    batch_of,
    check,
    condition,
    make_reconciler,
    probe_pods,
    reachable_result,
    source_pod,
)
from .test_reconcile_agents import FakeAgent, gateway, reconciler_with, tick_until_collected
from .test_reconcile_analysis import Forbidden

CA_BUNDLE = {"configMapKeyRef": {"name": "payments-ca", "key": "ca.crt"}}


@pytest.fixture
def reconciler(api: FakeApi, clock: Clock) -> Reconciler:
    return make_reconciler(api, clock)


@pytest.fixture(scope="module")
def pem(tmp_path_factory: pytest.TempPathFactory) -> str:
    cert, _ = make_ca(Path(tmp_path_factory.mktemp("ca")))
    return cert.read_text()


def config_map(api: FakeApi, data: dict[str, str] | None = None, **fields: Any) -> None:
    meta = {"name": "payments-ca", "namespace": "shop"}
    api.put(CONFIG_MAPS, {"apiVersion": "v1", "kind": "ConfigMap", "metadata": meta,
                          "data": data or {}, **fields})  # fmt: skip


def apply_https_check(api: FakeApi, name: str = "web-to-payments") -> None:
    apply_check(api, name, protocol="HTTPS", http={"caBundle": CA_BUNDLE})


def ready(api: FakeApi, name: str = "web-to-payments") -> tuple[str, str, str]:
    found = condition(check(api, name), "Ready")
    return found["status"], found["reason"], found["message"]


def test_the_probe_request_carries_the_checks_ca(api: FakeApi, reconciler: Reconciler, pem: str):
    source_pod(api)
    config_map(api, {"ca.crt": pem, "other": "x"})
    apply_https_check(api)
    assert reconciler.tick().created == 1
    [pod] = probe_pods(api)
    [item] = batch_of(pod).checks
    assert item.request.ca_pem == pem
    assert ("get", "configmaps", "shop") in api.calls  # in the check's own namespace


def test_a_missing_config_map_is_that_checks_reason_and_the_others_run(
    api: FakeApi, clock: Clock, pem: str
):
    reconciler = make_reconciler(api, clock, Caps(max_pods_per_node=2))
    source_pod(api)
    apply_https_check(api)
    apply_check(api)  # web-to-db: no CA, runs
    report = reconciler.tick()
    assert (report.not_ready, report.created) == (1, 1)
    status, reason, message = ready(api)
    assert (status, reason) == ("False", "CABundleNotFound")
    assert "ConfigMap shop/payments-ca (spec.http.caBundle.configMapKeyRef) not found" in message
    [pod] = probe_pods(api)
    assert [item.id for item in batch_of(pod).checks] == ["shop/web-to-db/1"]

    config_map(api, {"ca.crt": pem})  # created: the retry runs the check
    clock.advance(10)
    assert reconciler.tick().created == 1
    assert any(
        item.request.ca_pem == pem for pod in probe_pods(api) for item in batch_of(pod).checks
    )


@pytest.mark.parametrize(
    ("stored", "reason", "said"),
    [
        (
            {"data": {"tls.crt": "x"}},
            "CABundleNotFound",
            "ConfigMap shop/payments-ca has no key ca.crt (spec.http.caBundle.configMapKeyRef.key);"
            " its keys: tls.crt",
        ),
        (
            {"data": {"ca.crt": "-----BEGIN CERTIFICATE-----\nnot base64\n"}},
            "CABundleInvalid",
            "key ca.crt of ConfigMap shop/payments-ca is not PEM certificates: ",
        ),
        (
            {"binaryData": {"ca.crt": "MIIB"}},
            "CABundleInvalid",
            "key ca.crt of ConfigMap shop/payments-ca is binaryData: put the PEM in data",
        ),
        (
            {"data": {"ca.crt": "#" * (MAX_CA_PEM + 1)}},
            "CABundleInvalid",
            f"is {MAX_CA_PEM + 1} bytes; a check's CA bundle may be at most {MAX_CA_PEM}",
        ),
    ],
    ids=["no-such-key", "not-pem", "binary", "too-big"],
)
def test_a_ca_the_probe_could_not_use_is_said_on_the_check(
    api: FakeApi, reconciler: Reconciler, stored: dict[str, Any], reason: str, said: str
):
    source_pod(api)
    config_map(api, **stored)
    apply_https_check(api)
    assert reconciler.tick().not_ready == 1
    status, found, message = ready(api)
    assert (status, found) == ("False", reason)
    assert said in message
    assert probe_pods(api) == []


def test_a_workload_check_sends_the_ca_to_its_sidecar(api: FakeApi, clock: Clock, pem: str):
    gateway(api, with_agent=True)
    config_map(api, {"ca.crt": pem})
    source = {"workload": {"kind": "Deployment", "name": "gateway"}}
    apply_check(api, source=source, protocol="HTTPS", http={"caBundle": CA_BUNDLE})
    agent = FakeAgent(reachable_result())
    tick_until_collected(reconciler_with(api, clock, agent))
    [(_, _, _, request)] = agent.calls
    assert request.ca_pem == pem


def test_a_refused_read_is_that_checks_reason_not_a_failed_tick(
    api: FakeApi, reconciler: Reconciler, monkeypatch: pytest.MonkeyPatch
):
    original = api.get

    def refusing(resource: Resource, namespace: str | None, name: str) -> Object:
        if resource == CONFIG_MAPS:
            raise Forbidden('configmaps "payments-ca" is forbidden')
        return original(resource, namespace, name)

    monkeypatch.setattr(api, "get", refusing)
    source_pod(api)
    apply_https_check(api)
    assert reconciler.tick().not_ready == 1
    status, reason, message = ready(api)
    assert (status, reason) == ("False", "CABundleUnreadable")
    assert 'configmaps "payments-ca" is forbidden' in message
