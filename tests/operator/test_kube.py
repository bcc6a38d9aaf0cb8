"""The operator's real client (`kube.KubeApi`) over HTTP, against the in-memory API server
behind Kubernetes' REST paths: the reconcile story end to end through it, the URLs it asks
for, and every refusal mapped to the exception the reconciler handles."""

from __future__ import annotations

import time
from collections.abc import Iterator

import pytest
from kubernetes import client

from hopscope_operator.api import API_VERSION, CLUSTER_KIND
from hopscope_operator.cluster import (
    CHECKS,
    CLUSTER_CHECKS,
    CONFIG_MAPS,
    EVENTS,
    NAMESPACES,
    NETWORK_POLICIES,
    NODES,
    PODS,
    ApiError,
    Conflict,
    Invalid,
    NotFound,
    Resource,
)
from hopscope_operator.controller.metrics import Metrics
from hopscope_operator.controller.reconcile import Reconciler, Settings
from hopscope_operator.kube import KubeApi
from hopscope_operator.names import LABEL_APP, NAME_PREFIX

from .caught_up import caught_up
from .fakeapi import FakeApi
from .httpapi import HttpApi
from .test_reconcile import (
    PROBES,
    apply_check,
    batch_of,
    check,
    condition,
    finish,
    probe_pods,
    reachable_result,
    source_pod,
)
from .test_reconcile_tenancy import node

TOKEN = "operator-token"


def kube_api(server: HttpApi, token: str = TOKEN) -> KubeApi:
    configuration = client.Configuration()
    configuration.host = server.url
    configuration.api_key = {"authorization": token}
    configuration.api_key_prefix = {"authorization": "Bearer"}
    kube = KubeApi(configuration)
    kube.calls = server.fake.calls  # type: ignore[attr-defined]  # for the RBAC check
    return kube


@pytest.fixture
def server(api: FakeApi) -> Iterator[HttpApi]:
    with HttpApi(api, TOKEN).running() as running:
        yield running


def paths(server: HttpApi) -> list[str]:
    return [f"{method} {path}" for method, path, _ in server.requests]


def test_a_check_runs_and_its_status_lands_through_the_real_client(api, server, clock):
    source_pod(api)
    apply_check(api)
    settings = Settings(namespace=PROBES, image="hopscope-probe:test")
    reconciler = Reconciler(kube_api(server), Metrics(), settings, clock)
    assert reconciler.tick().created == 1
    [pod] = probe_pods(api)
    finish(api, pod, {item.id: reachable_result() for item in batch_of(pod).checks})
    caught_up(reconciler, api)
    assert reconciler.tick().collected == 1

    status = check(api)["status"]
    assert status["connectionStatus"] == "Reachable" and status["runs"] == 1
    assert probe_pods(api) == []  # deleted through the API once read
    asked = paths(server)
    assert "GET /apis/hopscope.dev/v1alpha1/connectivitychecks" in asked
    assert "POST /api/v1/namespaces/hopscope-system/pods" in asked
    assert f"GET /api/v1/namespaces/hopscope-system/pods/{pod['metadata']['name']}/log" in asked
    checks = "/apis/hopscope.dev/v1alpha1/namespaces/shop/connectivitychecks"
    assert f"PATCH {checks}/web-to-db/status" in asked
    assert all(headers["authorization"] == f"Bearer {TOKEN}" for *_, headers in server.requests)


def test_a_cluster_check_runs_at_its_cluster_paths_through_the_real_client(api, server, clock):
    node(api)
    api.put(NAMESPACES, {"metadata": {"name": "default"}})  # every cluster has it
    kube = kube_api(server)
    body = {
        "apiVersion": API_VERSION,
        "kind": CLUSTER_KIND,
        "metadata": {"name": "far"},
        "spec": {
            "source": {"node": {"name": "control-plane"}},
            "destination": {"ip": "10.0.0.9", "port": 443},
        },
    }
    kube.create(CLUSTER_CHECKS, None, body)  # as `kubectl hopscope check --cluster` does
    settings = Settings(namespace=PROBES, image="hopscope-probe:test")
    reconciler = Reconciler(kube, Metrics(), settings, clock)
    assert reconciler.tick().created == 1
    [pod] = probe_pods(api)
    finish(api, pod, {item.id: reachable_result() for item in batch_of(pod).checks})
    caught_up(reconciler, api)
    assert reconciler.tick().collected == 1
    stored = kube.get(CLUSTER_CHECKS, None, "far")
    assert stored["status"]["connectionStatus"] == "Reachable"
    assert "namespace" not in stored["metadata"]
    kube.delete(CLUSTER_CHECKS, None, "far")
    cluster = "/apis/hopscope.dev/v1alpha1/clusterconnectivitychecks"
    asked = paths(server)
    for call in (f"POST {cluster}", f"GET {cluster}", f"PATCH {cluster}/far/status"):
        assert call in asked
    assert f"DELETE {cluster}/far" in asked
    assert "POST /api/v1/namespaces/default/events" in asked
    assert "Reachable" in [e["reason"] for e in api.objects(EVENTS, "default")]


def test_lists_send_the_label_selector_and_return_whole_objects(api, server):
    source_pod(api)
    kube = kube_api(server)
    [pod] = kube.list(PODS, "shop", {"app": "web"})
    assert (pod["apiVersion"], pod["kind"]) == ("v1", "Pod")  # restored: list items lack them
    assert kube.list(PODS, "shop", {"app": "db"}) == []
    assert kube.list(PODS, PROBES, {LABEL_APP: NAME_PREFIX}) == []
    assert paths(server)[-1] == (
        "GET /api/v1/namespaces/hopscope-system/pods"
        "?labelSelector=app.kubernetes.io%2Fname%3Dhopscope-probe"
    )
    listed = [ns["metadata"]["name"] for ns in kube.list(NAMESPACES, None)]
    assert listed == [PROBES, "shop"]  # the chart's and the story's
    assert kube.get(NODES, None, "worker-1")["metadata"]["name"] == "worker-1"
    assert paths(server)[-2:] == ["GET /api/v1/namespaces", "GET /api/v1/nodes/worker-1"]


@pytest.mark.parametrize(
    "labels",
    [{"app": "a b"}, {"app": "web,tier=db"}, {"app": "web", "tier!": "db"}, {"app": "a" * 64}],
    ids=["space", "a-second-requirement", "bad-key", "value-64"],
)
def test_a_selector_outside_the_label_syntax_is_refused_naming_it_and_never_sent(
    api, server, labels
):
    # The selector syntax has no escaping: pasted, "web,tier=db" would select other pods.
    source_pod(api)
    kube = kube_api(server)
    with pytest.raises(ValueError, match="label"):
        kube.list(PODS, "shop", labels)
    assert not any("labelSelector" in path for path in paths(server))


def test_refusals_come_back_as_the_exceptions_the_reconciler_handles(api, server):
    kube = kube_api(server)
    with pytest.raises(NotFound):
        kube.get(PODS, "shop", "nope")
    with pytest.raises(NotFound):
        kube.pod_log(PROBES, "gone")
    created = apply_check(api)
    meta = created["metadata"]
    with pytest.raises(Conflict):
        kube.create(CHECKS, "shop", {**created, "metadata": {"name": meta["name"]}})
    api.apply_spec("shop", meta["name"], lambda spec: spec["probes"].update(count=3))
    with pytest.raises(Conflict):  # the resourceVersion in the merge patch is a precondition
        kube.patch_status(CHECKS, "shop", meta["name"], {"runs": 1}, meta["resourceVersion"])
    with pytest.raises(Invalid):
        kube.create(CHECKS, "shop", {**created, "metadata": {"name": "bad"}, "spec": {}})
    server.refuse("list", "networkpolicies", None)
    forbidden = r"403 networkpolicies\.networking\.k8s\.io is forbidden"
    with pytest.raises(ApiError, match=forbidden) as refused:
        kube.list(NETWORK_POLICIES, None)
    assert type(refused.value) is ApiError
    assert refused.value.status == 403  # told apart from a server error, as the fake's are
    with pytest.raises(ApiError, match="401") as unauthorized:
        kube_api(server, token="stolen").get(NODES, None, "worker-1")
    assert unauthorized.value.status == 401


def test_a_namespace_refused_by_the_real_api_does_not_stop_the_others(api, server, clock):
    source_pod(api)
    apply_check(api)
    server.refuse("list", "connectivitychecks", "payments")
    settings = Settings(namespace=PROBES, image="p:1", watch_namespaces=("shop", "payments"))
    reconciler = Reconciler(kube_api(server), Metrics(), settings, clock)
    assert reconciler.tick().created == 1  # shop's check runs; payments is logged and retried


def test_a_ca_bundle_is_one_get_of_its_configmap_through_the_real_client(api, server, clock):
    source_pod(api)
    pem = "-----BEGIN CERTIFICATE-----\nnot read here\n-----END CERTIFICATE-----\n"
    meta = {"name": "payments-ca", "namespace": "shop"}
    api.put(CONFIG_MAPS, {"apiVersion": "v1", "kind": "ConfigMap", "metadata": meta,
                          "data": {"ca.crt": pem}})  # fmt: skip
    ref = {"configMapKeyRef": {"name": "payments-ca", "key": "ca.crt"}}
    apply_check(api, protocol="HTTPS", http={"caBundle": ref})
    settings = Settings(namespace=PROBES, image="hopscope-probe:test")
    Reconciler(kube_api(server), Metrics(), settings, clock).tick()
    [(method, path, headers)] = [r for r in server.requests if "/configmaps" in r[1]]
    assert (method, path) == ("GET", "/api/v1/namespaces/shop/configmaps/payments-ca")
    assert (headers["accept"], headers["authorization"]) == ("application/json", f"Bearer {TOKEN}")
    # The PEM does not load: said on the check, after that single read.
    assert condition(check(api), "Ready")["reason"] == "CABundleInvalid"


def test_a_finished_pods_log_is_read_as_the_api_server_serves_it(api, server):
    """pods/log is text/plain, yet a real API server answers `Accept: text/plain` with a 406:
    the client must ask for `*/*` (what this test pins; it failed on the old Accept)."""
    api.create(
        PODS,
        PROBES,
        {
            "metadata": {"name": "probe-1"},
            "spec": {"nodeName": "worker-1", "containers": [{"name": "probe", "image": "p:1"}]},
        },
    )
    api.finish_pod(PROBES, "probe-1", "line 1\nline 2\n")

    assert kube_api(server).pod_log(PROBES, "probe-1") == "line 1\nline 2\n"
    *_, headers = server.requests[-1]
    assert headers["accept"] == "*/*"


def test_a_call_shape_with_no_recording_fails_the_test_naming_it(api):
    """The fake answers only call shapes a real server was recorded answering (or reviewed
    extras): a new path, or a known one with a new query key, fails when the server stops."""
    server = HttpApi(api, TOKEN)
    config_maps = Resource("", "v1", "configmaps", "ConfigMap")
    with pytest.raises(AssertionError, match="no recording") as refused, server.running():
        kube = kube_api(server)
        kube.list(PODS, "shop", {"app": "web"})  # recorded: op-list-pods-by-selector
        kube.list(config_maps, "shop")
        kube._json("GET", "/api/v1/namespaces/shop/pods", query={"limit": "5"})
    said = str(refused.value)
    assert "GET /api/v1/namespaces/shop/configmaps (Accept: application/json" in said
    assert "GET /api/v1/namespaces/shop/pods?limit=5 (Accept: application/json" in said
    assert "labelSelector" not in said


def test_the_informers_watches_fit_the_clients_pool_and_no_connection_is_dropped(
    api, server, caplog
):
    # A namespaced install watches several kinds in each namespace, each watch holding its
    # connection: the kubernetes client's pool (5 per CPU) would drop and reopen them,
    # warning each time one ends (every timeoutSeconds).
    kube = kube_api(server)
    watches = [kube.watch(PODS, f"ns-{i}", None, api.resource_version()) for i in range(40)]
    for watch in watches:
        watch.close()
    deadline = time.monotonic() + 20
    while not all(watch.ended for watch in watches):
        assert time.monotonic() < deadline, "a closed watch did not end"
        time.sleep(0.05)
    dropped = [r for r in caplog.records if "Connection pool is full" in r.getMessage()]
    assert dropped == []
