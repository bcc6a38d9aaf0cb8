"""The ConnectivityCheck CRD: generated from the models, structural, a valid CRD, and exactly as
strict as the models (every example accepted by both, every bad manifest refused by both)."""

from __future__ import annotations

import copy
import ipaddress
import random
import re
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

import kubernetes_validate
import pytest
import yaml
from packaging.version import Version
from pydantic import TypeAdapter, ValidationError

from hopscope_operator.api import (
    DESTINATION_KINDS,
    SOURCE_KINDS,
    Analysis,
    AnalysisResult,
    ClusterConnectivityCheck,
    Condition,
    ConditionStatus,
    ConditionType,
    ConnectivityCheck,
    ConnectivityCheckSpec,
    ConnectivityCheckStatus,
    DestinationStatus,
    IPAddress,
    Phase,
)
from hopscope_operator.install.chart import OLDEST_KUBERNETES
from hopscope_operator.install.crd import main, render
from hopscope_probe.models import (
    ConnectionStatus,
    ContextItem,
    Hop,
    HopType,
    Issue,
    IssueType,
    Latency,
    Origin,
    Severity,
    SourceInfo,
)

from .fakeapi import cluster_check_schema

if TYPE_CHECKING:
    from tests.operator.conftest import ApiServer

ROOT = Path(__file__).resolve().parents[2]
COMMITTED = ROOT / "crds" / "connectivitycheck.yaml"
KUSTOMIZATION = ROOT / "examples" / "kustomization.yaml"
EXAMPLES = sorted(p for p in (ROOT / "examples").glob("*.yaml") if p != KUSTOMIZATION)
# ClusterConnectivityChecks: node sources and other namespaces' pods, applied on their own.
CLUSTER_KUSTOMIZATION = ROOT / "examples" / "cluster" / "kustomization.yaml"
CLUSTER_EXAMPLES = sorted(
    p for p in CLUSTER_KUSTOMIZATION.parent.glob("*.yaml") if p != CLUSTER_KUSTOMIZATION
)


def load(path: Path) -> dict[str, Any]:
    return yaml.safe_load(path.read_text())


def model_errors(manifest: dict[str, Any]) -> list[str]:
    try:
        ConnectivityCheck.model_validate(manifest)
    except ValidationError as error:
        return [f"{'.'.join(map(str, e['loc']))}: {e['msg']}" for e in error.errors()]
    return []


# ---- generation -----------------------------------------------------------------------------


def test_committed_crd_is_generated_from_the_models() -> None:
    assert COMMITTED.read_text() == render(), (
        "stale: python -m hopscope_operator.install.crd > crds/connectivitycheck.yaml"
    )


def test_check_mode_fails_on_a_stale_file(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    crd_file = tmp_path / "connectivitycheck.yaml"
    crd_file.write_text(render())
    assert main(["--check", str(crd_file)]) == 0
    crd_file.write_text(render().replace("- ccheck", "- cc"))
    assert main(["--check", str(crd_file)]) == 1
    assert "+    - ccheck" in capsys.readouterr().err


def test_default_mode_prints_the_crd(capsys: pytest.CaptureFixture[str]) -> None:
    assert main([]) == 0
    assert capsys.readouterr().out == render()


CLUSTER_COMMITTED = ROOT / "crds" / "clusterconnectivitycheck.yaml"


def test_the_cluster_crd_is_generated_checked_and_valid(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    generated = render(ClusterConnectivityCheck)
    assert CLUSTER_COMMITTED.read_text() == generated, (
        "stale: python -m hopscope_operator.install.crd --cluster"
        " > crds/clusterconnectivitycheck.yaml"
    )
    assert main(["--cluster", "--check"]) == 0
    assert main(["--cluster"]) == 0 and capsys.readouterr().out == generated
    stale = tmp_path / "clusterconnectivitycheck.yaml"
    stale.write_text(render())  # the namespaced CRD where the cluster one belongs
    assert main(["--cluster", "--check", str(stale)]) == 1
    assert "--cluster > " in capsys.readouterr().err
    crd = load(CLUSTER_COMMITTED)
    assert crd["spec"]["scope"] == "Cluster"
    assert crd["spec"]["names"]["kind"] == "ClusterConnectivityCheck"
    # The same status and printer columns; the spec only adds rules.
    namespaced = load(COMMITTED)["spec"]["versions"][0]
    version = crd["spec"]["versions"][0]
    assert version["additionalPrinterColumns"] == namespaced["additionalPrinterColumns"]
    schema, ours = version["schema"]["openAPIV3Schema"], namespaced["schema"]["openAPIV3Schema"]
    assert schema["properties"]["status"] == ours["properties"]["status"]
    spec, its = schema["properties"]["spec"], ours["properties"]["spec"]
    assert spec["properties"] == its["properties"]
    for release in (kubernetes_validate.latest_version(), OLDEST_KUBERNETES):
        kubernetes_validate.validate(crd, release, strict=True)


def test_is_a_valid_apiextensions_v1_crd() -> None:
    version = kubernetes_validate.latest_version()
    assert Version(version) >= Version("1.31"), f"kubernetes-validate ships only {version}"
    kubernetes_validate.validate(load(COMMITTED), version, strict=True)


def test_the_charts_kubernetes_floor_is_the_oldest_release_that_accepts_the_crd() -> None:
    floor = Version(OLDEST_KUBERNETES)
    kubernetes_validate.validate(load(COMMITTED), str(floor), strict=True)
    older = f"{floor.major}.{floor.minor - 1}.0"
    with pytest.raises(kubernetes_validate.ValidationError, match="fieldPath"):
        kubernetes_validate.validate(load(COMMITTED), older, strict=True)


def _nodes(node: dict[str, Any], at: str = "", junction: bool = False) -> Iterator[tuple]:
    """(path, schema node, inside anyOf/allOf/oneOf?) for every node of a schema."""
    yield at or "<root>", node, junction
    for name, prop in node.get("properties", {}).items():
        yield from _nodes(prop, f"{at}.{name}", junction)
    for key in ("items", "additionalProperties"):
        if isinstance(node.get(key), dict):
            yield from _nodes(node[key], f"{at}.{key}", junction)
    for key in ("anyOf", "allOf", "oneOf"):
        for index, branch in enumerate(node.get(key, [])):
            yield from _nodes(branch, f"{at}.{key}[{index}]", True)


def test_schema_is_structural(openapi: dict[str, Any]) -> None:
    never = {"$ref", "$defs", "title", "nullable", "x-kubernetes-preserve-unknown-fields"}
    not_in_junctions = {"type", "default", "description", "additionalProperties", "nullable"}
    problems = []
    for at, node, junction in _nodes(openapi):
        problems += [f"{at}: has {key}" for key in never & node.keys()]
        if junction:
            problems += [f"{at}: {key} inside a junction" for key in not_in_junctions & node.keys()]
        elif "type" not in node:
            problems.append(f"{at}: no type")
        if "properties" in node and "additionalProperties" in node:
            problems.append(f"{at}: properties and additionalProperties")
        if ("properties" in node or "additionalProperties" in node) and node["type"] != "object":
            problems.append(f"{at}: properties on a {node['type']}")
        if (node.get("type") == "array") != ("items" in node):
            problems.append(f"{at}: array without items, or items without array")
    assert problems == []


def _undescribed(node: dict[str, Any], at: str = "") -> Iterator[str]:
    """The path of every property, at any depth, without a one-line description."""
    for name, prop in node.get("properties", {}).items():
        path = f"{at}.{name}".lstrip(".")
        description = str(prop.get("description", ""))
        if not description.strip() or "\n" in description:
            yield path
        yield from _undescribed(prop, path)
    for key, suffix in (("items", "[]"), ("additionalProperties", "{}")):
        if isinstance(node.get(key), dict):
            yield from _undescribed(node[key], at + suffix)


def test_every_field_has_a_description(openapi: dict[str, Any]) -> None:
    # What `kubectl explain` shows; without one it prints <no description>.
    assert list(_undescribed(openapi)) == []


def test_defaults_are_valid_values(openapi: dict[str, Any], apiserver_for: type[ApiServer]) -> None:
    # The API server refuses a CRD whose defaults its own schema would reject.
    with_defaults = [(at, node) for at, node, _ in _nodes(openapi) if "default" in node]
    assert len(with_defaults) > 10
    for at, node in with_defaults:
        assert apiserver_for(node).errors(node["default"]) == [], at


def test_printer_columns_read_typed_status_fields(crd: dict[str, Any], openapi: dict) -> None:
    column_types = {"integer": "integer", "number": "number", "string": "string", "date": "string"}
    columns = crd["spec"]["versions"][0]["additionalPrinterColumns"]
    names = [column["name"] for column in columns]
    assert names == ["Status", "Latency", "Hops", "Issues", "Last Run", "Age"]
    for column in columns:
        if column["jsonPath"] == ".metadata.creationTimestamp":
            continue
        node = openapi
        for name in column["jsonPath"].lstrip(".").split("."):
            node = node["properties"][name]
        assert node["type"] == column_types[column["type"]], column["name"]
        assert column["type"] != "date" or node["format"] == "date-time", column["name"]


# ---- examples ------------------------------------------------------------------------------


@pytest.mark.parametrize("path", EXAMPLES, ids=lambda path: path.stem)
def test_example_is_accepted(path: Path, apiserver: ApiServer) -> None:
    manifest = load(path)
    assert apiserver.errors(manifest) == []
    assert model_errors(manifest) == []


@pytest.mark.parametrize("path", CLUSTER_EXAMPLES, ids=lambda path: path.stem)
def test_cluster_example_is_accepted(path: Path, apiserver_for: type[ApiServer]) -> None:
    manifest = load(path)
    assert manifest["kind"] == "ClusterConnectivityCheck"
    assert "namespace" not in manifest["metadata"]
    assert cluster_check_schema(apiserver_for).errors(manifest) == []
    ClusterConnectivityCheck.model_validate(manifest)


def test_the_kustomizations_apply_every_example() -> None:
    assert load(KUSTOMIZATION)["resources"] == [path.name for path in EXAMPLES]
    assert load(CLUSTER_KUSTOMIZATION)["resources"] == [path.name for path in CLUSTER_EXAMPLES]


def test_examples_cover_every_source_and_destination_kind() -> None:
    specs = [load(path)["spec"] for path in EXAMPLES + CLUSTER_EXAMPLES]
    assert {kind for spec in specs for kind in spec["source"]} == set(SOURCE_KINDS)
    destinations = {kind for spec in specs for kind in spec["destination"]} - {"port"}
    assert destinations == set(DESTINATION_KINDS)
    assert {"DNS", "HTTPS"} <= {spec.get("protocol") for spec in specs}
    assert any("schedule" in spec for spec in specs)


def _without_empty(value: Any) -> Any:
    """Absent and empty lists or maps mean the same to the API and the models."""
    if isinstance(value, dict):
        kept = {key: _without_empty(item) for key, item in value.items()}
        return {key: item for key, item in kept.items() if item not in ({}, [])}
    return value


@pytest.mark.parametrize("path", EXAMPLES, ids=lambda path: path.stem)
def test_api_server_and_model_apply_the_same_defaults(path: Path, apiserver: ApiServer) -> None:
    manifest = load(path)
    served = apiserver.defaulted(manifest)["spec"]
    parsed = ConnectivityCheckSpec.model_validate(manifest["spec"])
    assert _without_empty(served) == _without_empty(
        parsed.model_dump(mode="json", by_alias=True, exclude_none=True)
    )


def test_status_the_operator_writes_is_accepted(apiserver: ApiServer) -> None:
    now = datetime(2025, 6, 1, 12, 0, tzinfo=UTC)
    loss = Issue(
        type=IssueType.PACKET_LOSS,
        severity=Severity.WARNING,
        origin=Origin.OUTBOUND,
        hop_id="1",
        message="10% of probes lost from worker-1 on",
        hint="check worker-1's uplink",
        context=[ContextItem(key="lossPercent", value="10")],
    )
    status = ConnectivityCheckStatus(
        phase=Phase.COMPLETED,
        connection_status=ConnectionStatus.DEGRADED,
        observed_generation=3,
        runs=4,
        last_run_time=now,
        next_run_time=now,
        source=SourceInfo(pod="web-0", node="worker-1", address="10.244.1.12"),
        destination=DestinationStatus(addresses=["10.96.12.7"]),
        latency=Latency(min_ms=0.4, avg_ms=1.2, max_ms=3.9),
        probes_sent=10,
        probes_failed=1,
        hops=[
            Hop(id="0", type=HopType.SOURCE, address="10.244.1.12", next_hop_ids=["1"]),
            Hop(id="1", type=HopType.NODE, address="172.18.0.3", name="worker-1", issues=[loss]),
            Hop(id="2", type=HopType.DESTINATION, address="10.244.2.9", ttl=2),
        ],
        issues=[loss],
        path_fingerprint="3f9a0c1e",
        analysis=Analysis(result=AnalysisResult.ALLOWED),
        conditions=[
            Condition(
                type=ConditionType.REACHABLE,
                status=ConditionStatus.TRUE,
                reason="PacketLoss",
                last_transition_time=now,
                observed_generation=3,
            )
        ],
    )
    assert (status.hop_count, status.issue_count) == (3, 1)
    written = status.model_dump(mode="json", by_alias=True, exclude_none=True)
    manifest = {**load(EXAMPLES[0]), "status": written}
    assert apiserver.errors(manifest) == []
    assert ConnectivityCheck.model_validate(manifest).status == status


# ---- what both refuse ----------------------------------------------------------------------

DELETE = object()
BASE: dict[str, Any] = {
    "apiVersion": "hopscope.dev/v1alpha1",
    "kind": "ConnectivityCheck",
    "metadata": {"name": "web-to-postgres", "namespace": "shop"},
    "spec": {
        "source": {"pod": {"name": "web-0"}},
        "destination": {"service": {"name": "postgres"}, "port": 5432},
    },
}


def changed(changes: dict[str, Any]) -> dict[str, Any]:
    """BASE with each dotted path set to its value (or removed, for DELETE)."""
    manifest = copy.deepcopy(BASE)
    for dotted, value in changes.items():
        *parents, leaf = dotted.split(".")
        node = manifest
        for name in parents:
            node = node.setdefault(name, {})
        if value is DELETE:
            del node[leaf]
        else:
            node[leaf] = value
    return manifest


def selector(
    labels: dict[str, str] | None = None, expressions: list[dict[str, Any]] | None = None
) -> dict[str, Any]:
    """Changes to BASE that make its source a podSelector."""
    chosen: dict[str, Any] = {"matchLabels": labels} if labels else {}
    if expressions:
        chosen["matchExpressions"] = expressions
    return {"spec.source": {"podSelector": chosen}}


EXISTS_APP = {"key": "app", "operator": "Exists"}
CA_REF = {"name": "payments-ca", "key": "ca.crt"}
CA_BUNDLE = {"configMapKeyRef": CA_REF}


def ref(**changes: str) -> dict[str, Any]:
    return {"configMapKeyRef": {**CA_REF, **changes}}


# (id, changes to BASE, text that must appear in an error: the field at fault)
INVALID: list[tuple[str, dict[str, Any], str]] = [
    ("two-sources", {"spec.source.node": {"name": "worker-1"}}, "spec.source"),
    ("no-source", {"spec.source": DELETE}, "source"),
    ("source-not-an-object", {"spec.source": "web-0"}, "spec.source"),
    ("empty-pod-selector", {"spec.source": {"podSelector": {}}}, "spec.source.podSelector"),
    (
        "in-without-values",
        {"spec.source": {"podSelector": {"matchExpressions": [{"key": "a", "operator": "In"}]}}},
        "values",
    ),
    ("bad-pod-name", {"spec.source.pod.name": "Web_0"}, "spec.source.pod.name"),
    ("node-namespace", {"spec.source": {"node": {"name": "w1", "namespace": "x"}}}, "namespace"),
    (
        "bad-workload-kind",
        {"spec.source": {"workload": {"kind": "ReplicaSet", "name": "edge"}}},
        "spec.source.workload.kind",
    ),
    ("no-destination", {"spec.destination": DELETE}, "destination"),
    ("port-but-no-destination", {"spec.destination": {"port": 5432}}, "spec.destination"),
    ("two-destinations", {"spec.destination.fqdn": "db.example.com"}, "spec.destination"),
    ("tcp-without-port", {"spec.destination.port": DELETE}, "destination.port"),
    (
        "http-service-without-port",
        {"spec.protocol": "HTTP", "spec.destination.port": DELETE},
        "destination.port",
    ),
    ("port-70000", {"spec.destination.port": 70000}, "spec.destination.port"),
    ("uri-with-tcp", {"spec.destination": {"uri": "https://api.example.com/"}}, "destination.uri"),
    ("uri-not-http", {"spec.destination": {"uri": "ftp://example.com/x"}}, "spec.destination.uri"),
    ("bad-ip", {"spec.destination": {"ip": "10.0.3.300", "port": 22}}, "spec.destination.ip"),
    ("bad-fqdn", {"spec.destination": {"fqdn": "db..example.com", "port": 1}}, "destination.fqdn"),
    ("bad-protocol", {"spec.protocol": "SCTP"}, "spec.protocol"),
    ("bad-ip-version", {"spec.preferredIPVersion": "IPv5"}, "spec.preferredIPVersion"),
    ("count-0", {"spec.probes": {"count": 0}}, "spec.probes.count"),
    ("count-101", {"spec.probes": {"count": 101}}, "spec.probes.count"),
    ("negative-timeout", {"spec.probes": {"timeoutSeconds": -1}}, "spec.probes.timeoutSeconds"),
    ("zero-timeout", {"spec.probes": {"timeoutSeconds": 0}}, "spec.probes.timeoutSeconds"),
    ("bad-path-mode", {"spec.path": {"mode": "Sometimes"}}, "spec.path.mode"),
    ("max-hops-65", {"spec.path": {"maxHops": 65}}, "spec.path.maxHops"),
    ("bad-http-method", {"spec.http": {"method": "FETCH"}}, "spec.http.method"),
    (
        "header-value-2049",  # a check must fit a probe pod's batch
        {"spec.http": {"headers": [{"name": "x-a", "value": "v" * 2049}]}},
        "spec.http.headers",
    ),
    ("17-headers", {"spec.http": {"headers": [{"name": "x", "value": ""}] * 17}}, "headers"),
    (
        "header-injection",  # CR LF would add a header of the user's own to the request
        {"spec.http": {"headers": [{"name": "x-a", "value": "1\r\nX-Injected: 1"}]}},
        "spec.http.headers",
    ),
    ("header-name-space", {"spec.http": {"headers": [{"name": "x a", "value": ""}]}}, "headers"),
    ("ca-bundle-without-https", {"spec.http": {"caBundle": CA_BUNDLE}}, "http.caBundle"),
    (
        "ca-bundle-from-a-secret",  # certificates are public: a ConfigMap, never a Secret
        {"spec.protocol": "HTTPS", "spec.http": {"caBundle": {"secretKeyRef": CA_REF}}},
        "caBundle",
    ),
    (
        "ca-bundle-elsewhere",  # the check's own namespace only
        {"spec.protocol": "HTTPS", "spec.http": {"caBundle": ref(namespace="kube-system")}},
        "namespace",
    ),
    (
        "ca-bundle-bad-key",
        {"spec.protocol": "HTTPS", "spec.http": {"caBundle": ref(key="ca crt")}},
        "spec.http.caBundle.configMapKeyRef.key",
    ),
    ("negative-source-port", {"spec.sourcePort": -1}, "spec.sourcePort"),
    ("loss-over-100", {"spec.thresholds": {"lossPercent": 101}}, "spec.thresholds.lossPercent"),
    ("interval-5", {"spec.schedule": {"intervalSeconds": 5}}, "spec.schedule.intervalSeconds"),
    (
        "interval-1e12",  # its next run is past year 9999: an OverflowError each tick
        {"spec.schedule": {"intervalSeconds": 10**12}},
        "spec.schedule.intervalSeconds",
    ),
    ("interval-over-a-week", {"spec.schedule": {"intervalSeconds": 604801}}, "intervalSeconds"),
    ("latency-threshold-61s", {"spec.thresholds": {"latencyMs": 60001}}, "thresholds.latencyMs"),
    ("label-value-space", selector(labels={"app": "a b"}), "spec.source.podSelector.matchLabels"),
    ("label-value-64", selector(labels={"app": "a" * 64}), "spec.source.podSelector.matchLabels"),
    ("label-value-edge-dash", selector(labels={"app": "web-"}), "podSelector.matchLabels"),
    ("label-key-space", selector(labels={"my app": "web"}), "spec.source.podSelector.matchLabels"),
    ("label-key-name-64", selector(labels={"a" * 64: "web"}), "podSelector.matchLabels"),
    ("label-key-upper-prefix", selector(labels={"Shop.io/app": "web"}), "matchLabels"),
    ("label-key-prefix-254", selector(labels={"a" * 254 + "/app": "web"}), "matchLabels"),
    ("33-match-labels", selector(labels={f"l{i}": "v" for i in range(33)}), "matchLabels"),
    (
        "selector-300-values-of-1000",  # a 302 KB probe pod annotation: over the 256 KiB limit
        selector(expressions=[{"key": "app", "operator": "In", "values": ["v" * 1000] * 300}]),
        "spec.source.podSelector.matchExpressions",
    ),
    (
        "selector-value-space",
        selector(expressions=[{"key": "app", "operator": "In", "values": ["a b"]}]),
        "spec.source.podSelector.matchExpressions",
    ),
    (
        "expression-key-space",
        selector(expressions=[{"key": "my app", "operator": "Exists"}]),
        "spec.source.podSelector.matchExpressions",
    ),
    (
        "expression-key-prefix-254",
        selector(expressions=[{"key": "a" * 254 + "/app", "operator": "Exists"}]),
        "spec.source.podSelector.matchExpressions",
    ),
    ("17-expressions", selector(expressions=[EXISTS_APP] * 17), "matchExpressions"),
    ("unknown-field", {"spec.colour": "blue"}, "colour"),
    ("bad-connection-status", {"status.connectionStatus": "Maybe"}, "status.connectionStatus"),
]
CASE_IDS = [case[0] for case in INVALID]


@pytest.mark.parametrize(("changes", "field"), [c[1:] for c in INVALID], ids=CASE_IDS)
def test_api_server_refuses_naming_the_field(
    changes: dict[str, Any], field: str, apiserver: ApiServer
) -> None:
    errors = apiserver.errors(changed(changes))
    assert errors, "accepted"
    assert any(field in error for error in errors), errors


@pytest.mark.parametrize(("changes", "field"), [c[1:] for c in INVALID], ids=CASE_IDS)
def test_model_refuses_naming_the_field(changes: dict[str, Any], field: str) -> None:
    errors = model_errors(changed(changes))
    assert errors, "accepted"
    assert any(field in error for error in errors), errors


@pytest.mark.parametrize(
    "uri",
    ["http://[::1/", "https://api.example.com:99999/", "http://api.example.com:0/", "http://:80/"],
)
def test_a_uri_the_crds_pattern_admits_but_no_parser_can_use_is_refused_by_the_model(
    uri: str, apiserver: ApiServer
) -> None:
    manifest = changed({"spec.protocol": "HTTPS", "spec.destination": {"uri": uri}})
    assert apiserver.errors(manifest) == []  # stored: the operator must say it, not crash
    assert any("spec.destination.uri" in error for error in model_errors(manifest))


def test_every_cel_rule_refuses_some_case(openapi: dict[str, Any], apiserver: ApiServer) -> None:
    messages = {
        rule["message"]
        for _, node, _ in _nodes(openapi)
        for rule in node.get("x-kubernetes-validations", [])
    }
    refused = "\n".join(error for _, c, _ in INVALID for error in apiserver.errors(changed(c)))
    assert len(messages) == 10
    assert [message for message in messages if message not in refused] == []


def test_a_bad_ip_is_one_error_naming_the_field(apiserver: ApiServer) -> None:
    manifest = changed({"spec.destination": {"ip": "10.0.3.300", "port": 22}})
    assert apiserver.errors(manifest) == ["spec.destination.ip: must be an IPv4 or IPv6 address"]
    assert model_errors(manifest) == [
        "spec.destination.ip: Value error, must be an IPv4 or IPv6 address"
    ]


def test_the_schema_has_no_junctions(openapi: dict[str, Any]) -> None:
    # An anyOf/oneOf/allOf that fails is reported once more by the API server, at path <nil>.
    assert [at for at, _, junction in _nodes(openapi) if junction] == []


def _ip_texts() -> Iterator[str]:
    """Addresses in every text form the API server's rule must admit."""
    rng = random.Random(7)
    for _ in range(300):
        v4 = ipaddress.IPv4Address(rng.getrandbits(32))
        v6 = ipaddress.IPv6Address(rng.getrandbits(128) >> rng.choice([0, 16, 64, 112]))
        yield from (str(v4), str(v6), v6.exploded, str(v6).upper(), f"::ffff:{v4}")
    yield from ("::", "::1", "1::", "1:2:3:4:5:6:7::", "::2:3:4:5:6:7:8", "1:2:3:4:5:6:1.2.3.4")


NOT_IPS = [
    *("10.0.3.300", "010.0.0.1", "1.2.3", "1.2.3.4.5", "1.2.3.4 ", " 1.2.3.4", "", "a.b.c.d"),
    *("1:2:3:4:5:6:7:8:9", "1::2::3", "12345::", ":1", "1:", ":::", "fe80::1%eth0"),
    *("::ffff:1.2.3.256", "1:2:3:4:5:6:7:1.2.3.4", "::1.2.3", "g::1"),
]


def test_the_ip_rule_agrees_with_the_model(
    openapi: dict[str, Any], apiserver_for: type[ApiServer]
) -> None:
    destination = openapi["properties"]["spec"]["properties"]["destination"]
    ip = apiserver_for(destination["properties"]["ip"])
    for text in _ip_texts():
        assert ip.errors(text) == [], text
        TypeAdapter(IPAddress).validate_python(text)
    for text in NOT_IPS:
        assert ip.errors(text), text
        with pytest.raises(ValidationError):
            TypeAdapter(IPAddress).validate_python(text)


@pytest.mark.parametrize(
    "changes",
    [
        {"spec.source.pod": DELETE, "spec.source.podSelector.matchExpressions": [EXISTS_APP]},
        {"spec.protocol": "ICMP", "spec.destination.port": DELETE},
        {"spec.protocol": "HTTPS", "spec.destination": {"uri": "https://[2001:db8::1]:8443/x"}},
        {"spec.destination": {"ip": "fd00::7", "port": 53}, "spec.protocol": "UDP"},
        {"spec.protocol": "HTTPS", "spec.http": {"caBundle": CA_BUNDLE}},
    ],
    ids=["exists-selector", "icmp-without-port", "https-uri-without-port", "udp-ipv6", "https-ca"],
)
def test_both_accept_edge_cases(changes: dict[str, Any], apiserver: ApiServer) -> None:
    manifest = changed(changes)
    assert apiserver.errors(manifest) == []
    assert model_errors(manifest) == []


@pytest.mark.parametrize(
    "changes",
    [
        selector(labels={"app.kubernetes.io/name": "web", "tier": "", "v": "a" * 63}),
        selector(labels={"a" * 253 + "/" + "b" * 63: "Web_1.2-x"}),
        selector(expressions=[{"key": "shop.io/tier", "operator": "In", "values": ["a", ""]}]),
        {"spec.schedule": {"intervalSeconds": 604800}},
    ],
    ids=["labels", "longest-key", "expression-values", "weekly"],
)
def test_both_accept_the_longest_valid_labels(
    changes: dict[str, Any], apiserver: ApiServer
) -> None:
    manifest = changed(changes)
    assert apiserver.errors(manifest) == []
    assert model_errors(manifest) == []


# ---- bounds --------------------------------------------------------------------------------


def test_every_number_string_list_and_map_of_the_spec_is_bounded(openapi: dict[str, Any]) -> None:
    # What a user writes is bounded, so no spec can overflow a date, a query or a probe pod.
    spec = openapi["properties"]["spec"]
    unbounded = []
    for at, node, _ in _nodes(spec, ".spec"):
        kind = node.get("type")
        if kind in ("integer", "number") and "maximum" not in node:
            unbounded.append(f"{at}: no maximum")
        if kind == "string" and "maxLength" not in node and "enum" not in node:
            unbounded.append(f"{at}: no maxLength")
        if kind == "array" and "maxItems" not in node:
            unbounded.append(f"{at}: no maxItems")
        if kind == "object" and "additionalProperties" in node and "maxProperties" not in node:
            unbounded.append(f"{at}: no maxProperties")
    assert unbounded == []


# The API server's limits on the estimated cost of a CRD's rules (apiextensions validation).
RULE_COST_LIMIT, CRD_COST_LIMIT = 10_000_000, 100_000_000


def _rule_cost(rule: str, node: dict[str, Any]) -> int:
    """An upper estimate of one rule's cost in the manner of cel-go's estimator: a
    `matches` costs ceil(0.1 * string bytes) * ceil(0.25 * regex length), a string's bytes
    being 4 per character of its maxLength; a macro over a collection runs once per element.
    Map keys are taken as long as the longest label key (the API server itself assumes 0)."""
    over_elements = ".all(" in rule or ".exists(" in rule
    if over_elements:
        elements = node.get("maxProperties", node.get("maxItems"))
        assert elements is not None, f"{rule}: iterates an unbounded collection"
        string_bytes = 4 * 317
    else:
        elements = 1
        string_bytes = 4 * node.get("maxLength", 0)
    regexes = [len(m) for m in re.findall(r"matches\('([^']*)'\)", rule)]
    per_element = sum(-(-string_bytes // 10) * -(-length // 4) for length in regexes) + 100
    return elements * per_element


def test_the_rules_estimated_cost_is_within_the_api_servers_limits(openapi: dict) -> None:
    nodes = list(_nodes(openapi))
    total = 0
    for at, node, _ in nodes:
        rules = node.get("x-kubernetes-validations", [])
        if not rules:
            continue
        cardinality = 1
        for above, part, _ in nodes:
            # Every collection above the node multiplies how often its rules run.
            if at.startswith((f"{above}.items", f"{above}.additionalProperties")):
                bound = part.get("maxItems", part.get("maxProperties"))
                assert bound is not None, f"{at}: a rule under unbounded {above}"
                cardinality *= bound
        for rule in rules:
            cost = cardinality * _rule_cost(rule["rule"], node)
            assert cost < RULE_COST_LIMIT, (at, rule["rule"], cost)
            total += cost
    assert total < CRD_COST_LIMIT
