"""Resolution: each source and destination kind against a snapshot of plain Kubernetes objects."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import pytest

from hopscope_operator.api import ConnectivityCheck
from hopscope_operator.controller.resolve import (
    ClusterView,
    DestinationNotFound,
    ResolveError,
    SourceNotFound,
    resolve_destination,
    resolve_source,
    to_probe_request,
)
from hopscope_policy.model import parse_selector
from hopscope_probe.models import HttpOptions, IPVersion, PathMode, Protocol, Thresholds

UID = "3f1c2b4a-9d8e-4f70-a1b2-c3d4e5f60718"


def pod(
    name: str,
    namespace: str = "default",
    *,
    phase: str = "Running",
    ready: bool = True,
    node: str | None = "worker-1",
    ips: tuple[str, ...] = ("10.244.1.5",),
    labels: dict[str, str] | None = None,
    uid: str = UID,
    host_network: bool = False,
    deleting: bool = False,
) -> dict[str, Any]:
    metadata: dict[str, Any] = {
        "name": name,
        "namespace": namespace,
        "uid": uid,
        "labels": labels or {},
    }
    if deleting:
        metadata["deletionTimestamp"] = "2025-06-01T12:00:00Z"
    spec: dict[str, Any] = {"containers": [{"name": "app", "image": "app"}]}
    if node:
        spec["nodeName"] = node
    if host_network:
        spec["hostNetwork"] = True
    status: dict[str, Any] = {
        "phase": phase,
        "conditions": [{"type": "Ready", "status": "True" if ready else "False"}],
    }
    if ips:
        status["podIP"] = ips[0]
        status["podIPs"] = [{"ip": ip} for ip in ips]
    return {"metadata": metadata, "spec": spec, "status": status}


def node(name: str, *addresses: tuple[str, str]) -> dict[str, Any]:
    listed = [{"type": kind, "address": address} for kind, address in addresses]
    return {"metadata": {"name": name}, "status": {"addresses": listed}}


def service(
    name: str,
    namespace: str = "default",
    *,
    cluster_ip: str = "10.96.0.10",
    cluster_ips: list[str] | None = None,
    ports: list[dict[str, Any]] | None = None,
    type_: str = "ClusterIP",
    external_name: str | None = None,
) -> dict[str, Any]:
    spec: dict[str, Any] = {"type": type_, "clusterIP": cluster_ip}
    if cluster_ips:
        spec["clusterIPs"] = cluster_ips
    if ports is not None:
        spec["ports"] = ports
    if external_name:
        spec = {"type": "ExternalName", "externalName": external_name}
    return {"metadata": {"name": name, "namespace": namespace}, "spec": spec}


def endpoint_slice(
    service_name: str,
    endpoints: list[tuple[str, bool | None]],
    *,
    address_type: str = "IPv4",
    ports: list[dict[str, Any]] | None = None,
) -> dict[str, Any]:
    listed = []
    for address, ready in endpoints:
        conditions = {} if ready is None else {"ready": ready}
        listed.append({"addresses": [address], "conditions": conditions})
    return {
        "metadata": {"labels": {"kubernetes.io/service-name": service_name}},
        "addressType": address_type,
        "endpoints": listed,
        "ports": ports or [],
    }


@dataclass
class FakeView:
    """A ClusterView over lists of objects: what kube.py's view does with the API."""

    pod_list: list[dict[str, Any]] = field(default_factory=list)
    nodes: list[dict[str, Any]] = field(default_factory=list)
    services: list[dict[str, Any]] = field(default_factory=list)
    slices: dict[tuple[str, str], list[dict[str, Any]]] = field(default_factory=dict)
    workloads: dict[tuple[str, str, str], dict[str, Any]] = field(default_factory=dict)

    def pod(self, namespace: str, name: str) -> dict[str, Any] | None:
        return _find(self.pod_list, namespace, name)

    def pods(self, namespace: str, selector: Mapping[str, Any]) -> list[dict[str, Any]]:
        return [
            p
            for p in self.pod_list
            if p["metadata"]["namespace"] == namespace
            and parse_selector(selector, "selector").matches(p["metadata"]["labels"])
        ]

    def node(self, name: str) -> dict[str, Any] | None:
        return next((n for n in self.nodes if n["metadata"]["name"] == name), None)

    def service(self, namespace: str, name: str) -> dict[str, Any] | None:
        return _find(self.services, namespace, name)

    def endpoint_slices(self, namespace: str, service: str) -> list[dict[str, Any]]:
        return self.slices.get((namespace, service), [])

    def workload(self, kind: str, namespace: str, name: str) -> dict[str, Any] | None:
        return self.workloads.get((kind, namespace, name))


def _find(objects: list[dict[str, Any]], namespace: str, name: str) -> dict[str, Any] | None:
    for obj in objects:
        if obj["metadata"]["name"] == name and obj["metadata"].get("namespace") == namespace:
            return obj
    return None


def check(spec: dict[str, Any], namespace: str = "default") -> ConnectivityCheck:
    spec = {"destination": {"ip": "10.0.3.7", "port": 22}, **spec}
    spec.setdefault("source", {"node": {"name": "worker-1"}})
    return ConnectivityCheck.model_validate(
        {
            "apiVersion": "hopscope.dev/v1alpha1",
            "kind": "ConnectivityCheck",
            "metadata": {"name": "c", "namespace": namespace, "generation": 1, "uid": UID},
            "spec": spec,
        }
    )


def source_of(spec: dict[str, Any], view: ClusterView) -> Any:
    return resolve_source(check({"source": spec}), view)


def destination_of(spec: dict[str, Any], view: ClusterView, **extra: Any) -> Any:
    return resolve_destination(check({"destination": spec, **extra}), view)


WORKERS = [
    node("worker-1", ("Hostname", "worker-1"), ("InternalIP", "172.18.0.3")),
    node("worker-2", ("InternalIP", "fd00::4"), ("InternalIP", "172.18.0.4")),
    node("bare"),
]


# ---- errors ---------------------------------------------------------------------------------


def test_errors_carry_their_class_name_as_reason() -> None:
    assert SourceNotFound("x").reason == "SourceNotFound"
    assert DestinationNotFound("x").reason == "DestinationNotFound"
    assert issubclass(SourceNotFound, ResolveError)
    assert issubclass(DestinationNotFound, ResolveError)


# ---- source: pod ----------------------------------------------------------------------------


def test_pod_source_gives_node_uid_and_address() -> None:
    view = FakeView(pod_list=[pod("api-0", ips=("10.244.1.5", "fd00:10:244::5"))])
    source = source_of({"pod": {"name": "api-0"}}, view)
    assert (source.kind, source.node_name, source.pod_namespace) == ("pod", "worker-1", "default")
    assert (source.pod_name, source.pod_uid, source.address) == ("api-0", UID, "10.244.1.5")
    assert source.netns == UID
    assert source.description == "pod default/api-0"
    info = source.info()
    assert (info.pod, info.node, info.address) == ("api-0", "worker-1", "10.244.1.5")


def test_a_static_pods_source_is_entered_by_the_kubelets_uid_not_its_mirrors() -> None:
    mirror = pod("etcd-worker-1")
    mirror["metadata"]["annotations"] = {
        "kubernetes.io/config.mirror": "6e2b1c0f9d8a7b6c5d4e3f2a1b0c9d8e"
    }
    source = source_of({"pod": {"name": "etcd-worker-1"}}, FakeView(pod_list=[mirror]))
    assert source.netns == "6e2b1c0f9d8a7b6c5d4e3f2a1b0c9d8e"


def test_pod_source_in_another_namespace() -> None:
    view = FakeView(pod_list=[pod("api-0", "shop")])
    assert source_of({"pod": {"name": "api-0", "namespace": "shop"}}, view).pod_namespace == "shop"


def test_pod_source_address_follows_the_preferred_ip_version() -> None:
    view = FakeView(pod_list=[pod("api-0", ips=("10.244.1.5", "fd00:10:244::5"))])
    source = resolve_source(
        check({"source": {"pod": {"name": "api-0"}}, "preferredIPVersion": "IPv6"}), view
    )
    assert source.address == "fd00:10:244::5"


def test_a_host_network_pod_is_entered_by_its_uid_for_its_own_resolver_and_cgroup() -> None:
    # Its namespace is the node's, but with dnsPolicy ClusterFirst it resolves with the node's
    # resolv.conf, not the probe pod's (ClusterFirstWithHostNet): only its processes tell.
    view = FakeView(pod_list=[pod("agent", host_network=True, ips=("172.18.0.3",))])
    source = source_of({"pod": {"name": "agent"}}, view)
    assert (source.kind, source.netns, source.host_network) == ("pod", UID, True)


@pytest.mark.parametrize(
    ("pods", "message"),
    [
        ([], "pod default/api-0 not found"),
        (
            [pod("api-0", phase="Pending", node=None, ips=())],
            "pod default/api-0 is Pending, not Running",
        ),
        ([pod("api-0", phase="Succeeded")], "pod default/api-0 is Succeeded, not Running"),
        ([pod("api-0", node=None)], "pod default/api-0 has no node"),
    ],
    ids=["missing", "pending", "succeeded", "no-node"],
)
def test_pod_source_that_cannot_be_used(pods: list[dict[str, Any]], message: str) -> None:
    with pytest.raises(SourceNotFound) as caught:
        source_of({"pod": {"name": "api-0"}}, FakeView(pod_list=pods))
    assert str(caught.value) == message


# ---- source: podSelector --------------------------------------------------------------------


def test_pod_selector_picks_the_first_ready_pod_by_name_and_says_which() -> None:
    app = {"app": "api"}
    view = FakeView(
        pod_list=[
            pod("api-c", labels=app, uid="c"),
            pod("api-a", labels=app, ready=False, uid="a"),  # not Ready
            pod("api-b", labels=app, node="worker-2", uid="b"),
            pod("api-0", labels=app, deleting=True, uid="0"),  # terminating
            pod("api-1", labels=app, phase="Pending", uid="1"),
            pod("web-0", labels={"app": "web"}, uid="w"),
            pod("api-x", "other", labels=app, uid="x"),  # another namespace
        ]
    )
    source = source_of({"podSelector": {"matchLabels": app}}, view)
    assert (source.pod_name, source.pod_uid, source.node_name) == ("api-b", "b", "worker-2")
    assert source.kind == "pod"
    assert source.description == (
        "pod default/api-b (first by name of 2 Ready pods matching app=api)"
    )


def test_pod_selector_with_no_ready_pod() -> None:
    view = FakeView(pod_list=[pod("api-a", labels={"app": "api"}, ready=False)])
    with pytest.raises(SourceNotFound, match=r"^no Ready pod matches app=api in default$"):
        source_of({"podSelector": {"matchLabels": {"app": "api"}}}, view)


def test_pod_selector_with_expressions() -> None:
    view = FakeView(
        pod_list=[
            pod("a", labels={"tier": "db"}, uid="a"),
            pod("b", labels={"tier": "web", "canary": "1"}, uid="b"),
            pod("c", labels={"tier": "web"}, uid="c"),
        ]
    )
    selector = {
        "matchExpressions": [
            {"key": "tier", "operator": "In", "values": ["web", "api"]},
            {"key": "canary", "operator": "DoesNotExist"},
        ]
    }
    assert source_of({"podSelector": selector}, view).pod_name == "c"


# ---- source: node and workload --------------------------------------------------------------


def test_node_source_uses_node_name_and_internal_ip() -> None:
    source = source_of({"node": {"name": "worker-2"}}, FakeView(nodes=WORKERS))
    assert (source.kind, source.node_name, source.address, source.netns) == (
        "node",
        "worker-2",
        "172.18.0.4",
        "host",
    )
    assert source.pod_uid is None


def test_missing_node_source() -> None:
    with pytest.raises(SourceNotFound, match=r"^node worker-9 not found$"):
        source_of({"node": {"name": "worker-9"}}, FakeView(nodes=WORKERS))


def deployment(selector: dict[str, Any]) -> dict[str, Any]:
    return {"metadata": {"name": "edge", "namespace": "default"}, "spec": {"selector": selector}}


def test_workload_source_picks_its_first_ready_pod() -> None:
    labels = {"app": "edge"}
    view = FakeView(
        pod_list=[pod("edge-b", labels=labels, uid="b"), pod("edge-a", labels=labels, uid="a")],
        workloads={("Deployment", "default", "edge"): deployment({"matchLabels": labels})},
    )
    source = source_of({"workload": {"kind": "Deployment", "name": "edge"}}, view)
    assert (source.kind, source.pod_name, source.pod_uid, source.netns) == (
        "workload",
        "edge-a",
        "a",
        "a",
    )
    assert source.description == "pod default/edge-a of Deployment default/edge"


@pytest.mark.parametrize(
    ("workloads", "pods", "message"),
    [
        ({}, [], r"^Deployment default/edge not found$"),
        (
            {("Deployment", "default", "edge"): deployment({})},
            [pod("edge-a", labels={"app": "edge"})],
            r"^Deployment default/edge has no pod selector$",
        ),
        (
            {("Deployment", "default", "edge"): deployment({"matchLabels": {"app": "edge"}})},
            [pod("edge-a", labels={"app": "edge"}, ready=False)],
            r"^no Ready pod of Deployment default/edge \(app=edge\)$",
        ),
    ],
    ids=["missing", "no-selector", "none-ready"],
)
def test_workload_source_that_cannot_be_used(
    workloads: dict[tuple[str, str, str], dict[str, Any]],
    pods: list[dict[str, Any]],
    message: str,
) -> None:
    view = FakeView(pod_list=pods, workloads=workloads)
    with pytest.raises(SourceNotFound, match=message):
        source_of({"workload": {"kind": "Deployment", "name": "edge"}}, view)


# ---- destination: pod and node --------------------------------------------------------------


def test_pod_destination_is_its_pod_ip_of_the_preferred_version() -> None:
    view = FakeView(pod_list=[pod("db-0", ips=("10.244.2.9", "fd00:10:244::9"))])
    v4 = destination_of({"pod": {"name": "db-0"}, "port": 5432}, view)
    assert (v4.host, v4.port, v4.addresses) == (
        "10.244.2.9",
        5432,
        ["10.244.2.9", "fd00:10:244::9"],
    )
    assert v4.description == "pod default/db-0"
    v6 = destination_of({"pod": {"name": "db-0"}, "port": 5432}, view, preferredIPVersion="IPv6")
    assert v6.host == "fd00:10:244::9"


def test_pod_destination_falls_back_to_the_other_family_and_to_pod_ip() -> None:
    only_v4 = pod("db-0", ips=("10.244.2.9",))
    del only_v4["status"]["podIPs"]
    view = FakeView(pod_list=[only_v4])
    found = destination_of({"pod": {"name": "db-0"}, "port": 1}, view, preferredIPVersion="IPv6")
    assert found.host == "10.244.2.9"


@pytest.mark.parametrize(
    ("pods", "message"),
    [
        ([], r"^pod default/db-0 not found$"),
        ([pod("db-0", phase="Pending", ips=())], r"^pod default/db-0 has no IP \(Pending\)$"),
    ],
)
def test_pod_destination_that_cannot_be_used(pods: list[dict[str, Any]], message: str) -> None:
    with pytest.raises(DestinationNotFound, match=message):
        destination_of({"pod": {"name": "db-0"}, "port": 1}, FakeView(pod_list=pods))


def test_node_destination_is_its_internal_ip() -> None:
    view = FakeView(nodes=WORKERS)
    found = destination_of({"node": {"name": "worker-2"}, "port": 10250}, view)
    assert (found.host, found.port, found.addresses) == (
        "172.18.0.4",
        10250,
        ["172.18.0.4", "fd00::4"],
    )
    v6 = destination_of(
        {"node": {"name": "worker-2"}}, view, protocol="ICMP", preferredIPVersion="IPv6"
    )
    assert (v6.host, v6.port, v6.description) == ("fd00::4", None, "node worker-2")


@pytest.mark.parametrize(
    ("name", "message"),
    [("worker-9", r"^node worker-9 not found$"), ("bare", r"^node bare has no InternalIP$")],
)
def test_node_destination_that_cannot_be_used(name: str, message: str) -> None:
    with pytest.raises(DestinationNotFound, match=message):
        destination_of({"node": {"name": name}, "port": 1}, FakeView(nodes=WORKERS))


# ---- destination: service -------------------------------------------------------------------

API_PORTS = [
    {"name": "http", "port": 80, "targetPort": 8080, "protocol": "TCP"},
    {"name": "dns", "port": 53, "targetPort": 5353, "protocol": "UDP"},
]


def test_service_destination_is_its_cluster_ip_on_the_service_port() -> None:
    view = FakeView(
        services=[service("api", ports=API_PORTS)],
        slices={
            ("default", "api"): [
                endpoint_slice("api", [("10.244.1.5", True), ("10.244.2.6", None)]),
                endpoint_slice("api", [("10.244.3.7", False), ("10.244.1.5", True)]),
            ]
        },
    )
    found = destination_of({"service": {"name": "api"}, "port": 80}, view)
    assert (found.host, found.port, found.addresses) == ("10.96.0.10", 80, ["10.96.0.10"])
    assert found.ready_endpoints == 2  # unset "ready" counts as ready; duplicates once
    assert found.description == "service default/api"


def test_a_service_check_probes_the_first_ten_ready_endpoints_by_address_on_their_port() -> None:
    ready = [(f"10.244.{n}.5", True) for n in range(12, 0, -1)]  # listed in no order
    view = FakeView(
        services=[service("api", ports=API_PORTS)],
        slices={("default", "api"): [endpoint_slice("api", [*ready, ("10.244.0.9", False)])]},
    )
    found = destination_of({"service": {"name": "api"}, "port": 80}, view)
    assert [e.address for e in found.endpoints] == [f"10.244.{n}.5" for n in range(1, 11)]
    assert {e.port for e in found.endpoints} == {8080}  # the targetPort, where the pods listen
    assert found.ready_endpoints == 12  # all counted; the probing is bounded


def test_service_with_no_ready_endpoints_resolves_and_says_so() -> None:
    view = FakeView(
        services=[service("api", ports=API_PORTS)],
        slices={("default", "api"): [endpoint_slice("api", [("10.244.1.5", False)])]},
    )
    assert destination_of({"service": {"name": "api"}, "port": 80}, view).ready_endpoints == 0
    assert FakeView().endpoint_slices("default", "api") == []
    view.slices.clear()
    assert destination_of({"service": {"name": "api"}, "port": 80}, view).ready_endpoints == 0


def test_dual_stack_service_follows_the_preferred_version() -> None:
    view = FakeView(
        services=[service("api", cluster_ips=["10.96.0.10", "fd00:96::a"], ports=API_PORTS)],
        slices={
            ("default", "api"): [
                endpoint_slice("api", [("10.244.1.5", True)]),
                endpoint_slice("api", [("fd00::5", True), ("fd00::6", True)], address_type="IPv6"),
            ]
        },
    )
    found = destination_of(
        {"service": {"name": "api"}, "port": 80}, view, preferredIPVersion="IPv6"
    )
    assert (found.host, found.addresses, found.ready_endpoints) == (
        "fd00:96::a",
        ["fd00:96::a", "10.96.0.10"],
        2,
    )


def test_service_port_protocol_must_match_the_check() -> None:
    view = FakeView(services=[service("api", ports=API_PORTS)])
    assert destination_of({"service": {"name": "api"}, "port": 53}, view, protocol="UDP").port == 53
    assert destination_of({"service": {"name": "api"}, "port": 53}, view, protocol="DNS").port == 53
    with pytest.raises(DestinationNotFound, match=r"has no TCP port 53 \(ports: 80/TCP, 53/UDP\)$"):
        destination_of({"service": {"name": "api"}, "port": 53}, view)


def test_target_port_instead_of_service_port_is_explained() -> None:
    view = FakeView(services=[service("api", ports=API_PORTS)])
    with pytest.raises(DestinationNotFound) as caught:
        destination_of({"service": {"name": "api"}, "port": 8080}, view)
    assert str(caught.value) == (
        "service default/api has no TCP port 8080 (ports: 80/TCP, 53/UDP); 8080 is the"
        " targetPort of port 80: the probe targets the Service port"
    )


def test_icmp_to_a_service_needs_no_port() -> None:
    view = FakeView(services=[service("api", ports=API_PORTS)])
    found = destination_of({"service": {"name": "api"}}, view, protocol="ICMP")
    assert (found.host, found.port) == ("10.96.0.10", None)


@pytest.mark.parametrize(
    ("services", "message"),
    [
        ([], r"^service default/api not found$"),
        (
            [service("api", cluster_ip="", ports=API_PORTS)],
            r"^service default/api has no ClusterIP yet$",
        ),
    ],
)
def test_service_that_cannot_be_used(services: list[dict[str, Any]], message: str) -> None:
    with pytest.raises(DestinationNotFound, match=message):
        destination_of({"service": {"name": "api"}, "port": 80}, FakeView(services=services))


def test_service_in_another_namespace() -> None:
    view = FakeView(
        services=[service("db", "data", cluster_ip="10.96.5.5", ports=[{"port": 5432}])]
    )
    found = destination_of({"service": {"name": "db", "namespace": "data"}, "port": 5432}, view)
    assert (found.host, found.description) == ("10.96.5.5", "service data/db")


def test_external_name_service_targets_the_name() -> None:
    view = FakeView(services=[service("ext", external_name="db.example.com")])
    found = destination_of({"service": {"name": "ext"}, "port": 5432}, view)
    assert (found.host, found.port, found.addresses) == ("db.example.com", 5432, [])
    assert found.ready_endpoints is None
    assert found.description == "service default/ext (ExternalName db.example.com)"


HEADLESS_PORTS = [{"name": "pg", "port": 5432, "targetPort": "postgres", "protocol": "TCP"}]


def test_headless_service_targets_ready_pods_on_the_port_they_listen_on() -> None:
    view = FakeView(
        services=[service("db", cluster_ip="None", ports=HEADLESS_PORTS)],
        slices={
            ("default", "db"): [
                endpoint_slice(
                    "db",
                    [("10.244.2.10", True), ("10.244.1.9", True), ("10.244.3.1", False)],
                    ports=[{"name": "pg", "port": 6432, "protocol": "TCP"}],
                )
            ]
        },
    )
    found = destination_of({"service": {"name": "db"}, "port": 5432}, view)
    assert (found.host, found.port) == ("10.244.1.9", 6432)  # named targetPort, resolved
    assert found.addresses == ["10.244.1.9", "10.244.2.10"]
    assert found.ready_endpoints == 2


def test_headless_service_accepts_the_pods_own_port() -> None:
    ports = [{"name": "pg", "port": 5432, "targetPort": 6432}]
    view = FakeView(
        services=[service("db", cluster_ip="None", ports=ports)],
        slices={("default", "db"): [endpoint_slice("db", [("10.244.1.9", True)])]},
    )
    assert destination_of({"service": {"name": "db"}, "port": 5432}, view).port == 6432
    assert destination_of({"service": {"name": "db"}, "port": 6432}, view).port == 6432


def test_headless_service_without_ports_uses_the_requested_port() -> None:
    view = FakeView(
        services=[service("db", cluster_ip="None")],
        slices={("default", "db"): [endpoint_slice("db", [("10.244.1.9", True)])]},
    )
    found = destination_of({"service": {"name": "db"}, "port": 7000}, view)
    assert (found.host, found.port) == ("10.244.1.9", 7000)


def test_headless_service_falls_back_to_the_other_family() -> None:
    view = FakeView(
        services=[service("db", cluster_ip="None", ports=[{"name": "", "port": 5432}])],
        slices={
            ("default", "db"): [endpoint_slice("db", [("fd00::9", True)], address_type="IPv6")]
        },
    )
    assert destination_of({"service": {"name": "db"}, "port": 5432}, view).host == "fd00::9"


def test_headless_named_target_port_missing_from_slices_keeps_the_service_port() -> None:
    view = FakeView(
        services=[service("db", cluster_ip="None", ports=HEADLESS_PORTS)],
        slices={("default", "db"): [endpoint_slice("db", [("10.244.1.9", True)])]},
    )
    assert destination_of({"service": {"name": "db"}, "port": 5432}, view).port == 5432


def test_headless_service_with_no_ready_pods_targets_its_dns_name() -> None:
    view = FakeView(services=[service("db", "data", cluster_ip="None", ports=HEADLESS_PORTS)])
    found = destination_of({"service": {"name": "db", "namespace": "data"}, "port": 5432}, view)
    assert (found.host, found.addresses, found.ready_endpoints) == ("db.data.svc", [], 0)


# ---- destination: pass-through --------------------------------------------------------------


@pytest.mark.parametrize(
    ("uri", "host", "port"),
    [
        ("https://api.example.com/healthz", "api.example.com", 443),
        ("http://api.example.com/", "api.example.com", 80),
        ("https://api.example.com:8443/x?y=1", "api.example.com", 8443),
        ("https://[2001:db8::1]:9443/", "2001:db8::1", 9443),
    ],
)
def test_uri_destination_takes_host_and_port_from_the_url(uri: str, host: str, port: int) -> None:
    found = destination_of({"uri": uri}, FakeView(), protocol="HTTPS")
    assert (found.host, found.port, found.uri, found.description) == (host, port, uri, f"uri {uri}")


def test_fqdn_and_ip_pass_through() -> None:
    fqdn = destination_of({"fqdn": "db.example.com", "port": 5432}, FakeView())
    assert (fqdn.host, fqdn.port, fqdn.addresses, fqdn.description) == (
        "db.example.com",
        5432,
        [],
        "fqdn db.example.com",
    )
    ip = destination_of({"ip": "fd00::7", "port": 53}, FakeView(), protocol="UDP")
    assert (ip.host, ip.port, ip.addresses, ip.description) == (
        "fd00::7",
        53,
        ["fd00::7"],
        "ip fd00::7",
    )


# ---- the probe's request --------------------------------------------------------------------


def test_to_probe_request_maps_every_spec_field() -> None:
    parsed = check(
        {
            "destination": {"uri": "https://api.example.com:8443/healthz"},
            "protocol": "HTTPS",
            "preferredIPVersion": "IPv6",
            "probes": {"count": 3, "timeoutSeconds": 1.5},
            "path": {"mode": "OnFailure", "maxHops": 12, "multipath": True, "mtu": True},
            "http": {"method": "HEAD", "validStatusCodes": ["200", "3xx"]},
            "sourcePort": 40000,
            "thresholds": {"latencyMs": 50, "lossPercent": 1},
        }
    )
    request = to_probe_request(parsed.spec, resolve_destination(parsed, FakeView()))
    assert request.host == "api.example.com"
    assert (request.port, request.uri) == (8443, "https://api.example.com:8443/healthz")
    assert (request.protocol, request.preferred_ip_version) == (Protocol.HTTPS, IPVersion.IPV6)
    assert (request.count, request.timeout_seconds) == (3, 1.5)
    assert (request.path_mode, request.max_hops, request.multipath, request.mtu) == (
        PathMode.ON_FAILURE,
        12,
        True,
        True,
    )
    assert request.source_port == 40000
    assert request.thresholds == Thresholds(latency_ms=50, loss_percent=1)
    assert request.http.method == "HEAD"
    assert request.http.valid_status_codes == ["200", "3xx"]


def test_to_probe_request_defaults_follow_the_spec_defaults() -> None:
    parsed = check({"destination": {"ip": "10.0.3.7", "port": 22}})
    request = to_probe_request(parsed.spec, resolve_destination(parsed, FakeView()))
    assert (request.host, request.port, request.uri) == ("10.0.3.7", 22, None)
    assert (request.count, request.timeout_seconds, request.max_hops) == (10, 2.0, 30)
    assert (request.path_mode, request.multipath, request.mtu, request.source_port) == (
        PathMode.ALWAYS,
        False,
        False,
        0,
    )
    assert request.http == HttpOptions()


def test_the_request_carries_the_cas_pem_and_not_the_configmap_reference() -> None:
    ref = {"configMapKeyRef": {"name": "payments-ca", "key": "ca.crt"}}
    parsed = check(
        {
            "destination": {"uri": "https://payments.shop.svc:8443/healthz"},
            "protocol": "HTTPS",
            "http": {"method": "HEAD", "caBundle": ref},
        }
    )
    pem = "-----BEGIN CERTIFICATE-----\n…\n-----END CERTIFICATE-----\n"
    request = to_probe_request(parsed.spec, resolve_destination(parsed, FakeView()), pem)
    assert (request.ca_pem, request.http) == (pem, HttpOptions(method="HEAD"))
    assert "configMapKeyRef" not in request.to_json()  # the probe's models forbid the field
