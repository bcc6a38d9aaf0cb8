"""An offline stand-in for the API server's validation of ConnectivityCheck objects.

It does what the API server does with a CRD's structural schema, in its order: apply defaults,
validate the OpenAPI schema with strict field validation (kubectl's default: unknown fields are
errors), then evaluate every `x-kubernetes-validations` rule with cel-python on the value at its
node, unless a type error came first (the API server skips CEL then too).
"""

from __future__ import annotations

import copy
from collections.abc import Iterable
from datetime import UTC, datetime, timedelta
from typing import Any

import celpy
import pytest
from celpy import celtypes
from jsonschema import Draft202012Validator

from hopscope_operator.cluster import (
    ENDPOINT_SLICES,
    NAMESPACES,
    NODES,
    PODS,
    SERVICE_ACCOUNTS,
    SERVICES,
    Object,
)
from hopscope_operator.controller.cache import ReadYourWrites
from hopscope_operator.controller.leader import LeaseElector
from hopscope_operator.controller.reconcile import Reconciler
from hopscope_operator.install.crd import custom_resource_definition
from hopscope_operator.install.rbac import allows
from hopscope_operator.names import NAMESPACE
from hopscope_operator.names import SERVICE_ACCOUNT as PROBE_ACCOUNT

from .fakeapi import FakeApi


def to_json_schema(node: dict[str, Any]) -> dict[str, Any]:
    """OpenAPI v3 (Kubernetes dialect) to JSON Schema 2020-12."""
    out: dict[str, Any] = {}
    for key, value in node.items():
        if key == "properties":
            out[key] = {name: to_json_schema(prop) for name, prop in value.items()}
        elif key in ("items", "additionalProperties") and isinstance(value, dict):
            out[key] = to_json_schema(value)
        elif key in ("anyOf", "allOf", "oneOf"):
            out[key] = [to_json_schema(branch) for branch in value]
        elif key not in ("exclusiveMinimum", "exclusiveMaximum") and not key.startswith("x-"):
            out[key] = value
    # OpenAPI v3's boolean exclusive bounds are numeric in JSON Schema.
    if node.get("exclusiveMinimum"):
        out["exclusiveMinimum"] = out.pop("minimum")
    if node.get("exclusiveMaximum"):
        out["exclusiveMaximum"] = out.pop("maximum")
    if "properties" in node:
        out["additionalProperties"] = False  # strict field validation
    return out


def apply_defaults(schema: dict[str, Any], value: Any) -> Any:
    """Fill absent properties from `default`, outside in, as the API server's defaulting does."""
    if isinstance(value, dict):
        for name, prop in schema.get("properties", {}).items():
            if name not in value and "default" in prop:
                value[name] = copy.deepcopy(prop["default"])
            if name in value:
                apply_defaults(prop, value[name])
        if isinstance(schema.get("additionalProperties"), dict):
            for item in value.values():
                apply_defaults(schema["additionalProperties"], item)
    elif isinstance(value, list) and "items" in schema:
        for item in value:
            apply_defaults(schema["items"], item)
    return value


def _path(parts: Iterable[str | int], field_path: str = "") -> str:
    text = "".join(f"[{part}]" if isinstance(part, int) else f".{part}" for part in parts)
    return (text + field_path).lstrip(".") or "<root>"


class ApiServer:
    """Validates whole objects against one CRD version's openAPIV3Schema."""

    def __init__(self, schema: dict[str, Any]) -> None:
        self.schema = schema
        self._validator = Draft202012Validator(
            to_json_schema(schema), format_checker=Draft202012Validator.FORMAT_CHECKER
        )
        self._cel = celpy.Environment()
        self._programs: dict[str, celpy.Runner] = {}

    @property
    def validator(self) -> Draft202012Validator:
        """The schema's JSON Schema validator (strict: unknown fields are errors)."""
        return self._validator

    def defaulted(self, obj: Any) -> Any:
        return apply_defaults(self.schema, copy.deepcopy(obj))

    def errors(self, obj: Any) -> list[str]:
        """`path: message` for every reason the API server would refuse `obj`."""
        obj = self.defaulted(obj)
        found = sorted(self._validator.iter_errors(obj), key=lambda e: list(map(str, e.path)))
        errors = [f"{_path(e.absolute_path)}: {e.message}" for e in found]
        if not any(e.validator == "type" for e in found):
            errors += self._cel_errors(self.schema, obj, [])
        return errors

    def _cel_errors(self, schema: dict[str, Any], value: Any, at: list[str | int]) -> list[str]:
        return [
            f"{_path(where, rule.get('fieldPath', ''))}: {rule['message']}"
            for where, rule in self.failed_rules(value, schema, at)
        ]

    def failed_rules(
        self, value: Any, schema: dict[str, Any] | None = None, at: list[str | int] | None = None
    ) -> list[tuple[list[str | int], dict[str, Any]]]:
        """(where, rule) for every x-kubernetes-validations rule `value` breaks."""
        schema = self.schema if schema is None else schema
        at = [] if at is None else at
        failed = [
            (at, rule)
            for rule in schema.get("x-kubernetes-validations", [])
            if not self._holds(rule["rule"], value)
        ]
        if isinstance(value, dict):
            for name, prop in schema.get("properties", {}).items():
                if name in value:
                    failed += self.failed_rules(value[name], prop, [*at, name])
            if isinstance(schema.get("additionalProperties"), dict):
                for name, item in value.items():
                    failed += self.failed_rules(item, schema["additionalProperties"], [*at, name])
        elif isinstance(value, list) and "items" in schema:
            for index, item in enumerate(value):
                failed += self.failed_rules(item, schema["items"], [*at, index])
        return failed

    def _holds(self, rule: str, value: Any) -> bool:
        if rule not in self._programs:
            self._programs[rule] = self._cel.program(self._cel.compile(rule))
        result = self._programs[rule].evaluate({"self": celpy.json_to_cel(value)})
        # A rule that cannot be evaluated is a broken rule, not a rejected object.
        assert isinstance(result, celtypes.BoolType), f"CEL rule {rule!r} gave {result!r}"
        return bool(result)


@pytest.fixture(scope="session")
def crd() -> dict[str, Any]:
    return custom_resource_definition()


@pytest.fixture(scope="session")
def openapi(crd: dict[str, Any]) -> dict[str, Any]:
    return crd["spec"]["versions"][0]["schema"]["openAPIV3Schema"]


@pytest.fixture(scope="session")
def apiserver(openapi: dict[str, Any]) -> ApiServer:
    return ApiServer(openapi)


@pytest.fixture(scope="session")
def apiserver_for() -> type[ApiServer]:
    """Makes an ApiServer for any schema node, e.g. to try a default against its own node."""
    return ApiServer


# ---- the operator's stories: a cluster, a clock, and the RBAC every story is held to ----------

T0 = datetime(2026, 11, 25, 12, 0, 0, tzinfo=UTC)


class Clock:
    def __init__(self) -> None:
        self.now = T0

    def __call__(self) -> datetime:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += timedelta(seconds=seconds)


@pytest.fixture(autouse=True)
def every_call_is_granted_by_the_generated_rbac(monkeypatch: pytest.MonkeyPatch):
    """Each story doubles as an RBAC test: the chart's RBAC, for the namespaces the story's
    operator watches, must grant every request the operator made in it."""
    made: list[tuple[tuple[str, str, str | None], tuple[str, ...]]] = []
    for cls, method in (
        (Reconciler, "tick"),
        (Reconciler, "forget"),
        (LeaseElector, "step"),
        (LeaseElector, "release"),
    ):
        original = getattr(cls, method)

        def recorded(self: Any, *args: Any, _original: Any = original, **kw: Any) -> Any:
            fake = self.api.inner if isinstance(self.api, ReadYourWrites) else self.api
            start = len(fake.calls)
            try:
                return _original(self, *args, **kw)
            finally:
                # The elector works in the probe namespace alone, whatever is watched.
                watched = self.settings.watched if isinstance(self, Reconciler) else ()
                made.extend((call, watched) for call in fake.calls[start:])

        monkeypatch.setattr(cls, method, recorded)
    yield
    refused = sorted({call for call in made if not allows(*call[0], watched=call[1])}, key=str)
    assert not refused, f"the generated RBAC does not grant {refused}"


@pytest.fixture
def clock() -> Clock:
    return Clock()


def install_chart(cluster: FakeApi) -> None:
    """What the chart puts in the cluster that the stories' API calls need: its namespace and
    the probe pods' ServiceAccount (the API server's admission refuses a pod whose namespace
    or account is missing)."""
    cluster.put(
        NAMESPACES, {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": NAMESPACE}}
    )
    account = {"apiVersion": "v1", "kind": "ServiceAccount"}
    cluster.put(
        SERVICE_ACCOUNTS, {**account, "metadata": {"name": PROBE_ACCOUNT, "namespace": NAMESPACE}}
    )


@pytest.fixture
def api(apiserver: ApiServer) -> FakeApi:
    cluster = FakeApi(apiserver)
    install_chart(cluster)
    for node in ("worker-1", "worker-2"):
        cluster.put(
            NODES,
            {
                "apiVersion": "v1",
                "kind": "Node",
                "metadata": {"name": node},
                "status": {"addresses": [{"type": "InternalIP", "address": "192.0.2.10"}]},
            },
        )
    cluster.put(NAMESPACES, {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "shop"}})
    cluster.create(SERVICES, "shop", {"metadata": {"name": "db"}, "spec": db_service()})
    return cluster


def db_service() -> Object:
    return {"type": "ClusterIP", "clusterIP": "10.96.0.20", "ports": [{"port": 5432}]}


def running_pod(api: FakeApi, ns: str, name: str, labels: dict[str, str], ip: str, **spec: Any):
    api.create(
        PODS,
        ns,
        {
            "metadata": {"name": name, "labels": labels},
            "spec": {
                "nodeName": "worker-2",
                "containers": [{"name": "main", "image": "x", **spec}],
            },
        },
    )
    api.set_pod_status(
        ns,
        name,
        {
            "phase": "Running",
            "podIP": ip,
            "podIPs": [{"ip": ip}],
            "conditions": [{"type": "Ready", "status": "True"}],
        },
    )


def endpoint_slice(api: FakeApi, ns: str, service: str, pod: str, ip: str) -> None:
    api.create(
        ENDPOINT_SLICES,
        ns,
        {
            "metadata": {
                "name": f"{service}-1",
                "labels": {"kubernetes.io/service-name": service},
            },
            "addressType": "IPv4",
            "endpoints": [
                {
                    "addresses": [ip],
                    "conditions": {"ready": True},
                    "targetRef": {"kind": "Pod", "namespace": ns, "name": pod},
                }
            ],
        },
    )


@pytest.fixture
def healthy(apiserver: ApiServer) -> FakeApi:
    """test_reconcile's cluster, where db selects db-0 (ready, in its slice) and kube-dns is
    served by coredns-1."""
    api = FakeApi(apiserver)
    install_chart(api)
    for name in ("worker-1", "worker-2"):
        api.put(NODES, {"apiVersion": "v1", "kind": "Node", "metadata": {"name": name}})
    api.create(SERVICES, "shop", {"metadata": {"name": "db"}, "spec": db_service()})
    db = api.stored(SERVICES, "shop", "db")
    db["spec"]["selector"] = {"app": "db"}
    running_pod(api, "shop", "db-0", {"app": "db"}, "10.244.2.7", ports=[{"containerPort": 5432}])
    endpoint_slice(api, "shop", "db", "db-0", "10.244.2.7")
    api.create(
        SERVICES,
        "kube-system",
        {
            "metadata": {"name": "kube-dns"},
            "spec": {
                "clusterIP": "10.96.0.10",
                "selector": {"k8s-app": "kube-dns"},
                "ports": [
                    {"name": "dns", "port": 53, "protocol": "UDP"},
                    {"name": "dns-tcp", "port": 53, "protocol": "TCP"},
                ],
            },
        },
    )
    running_pod(api, "kube-system", "coredns-1", {"k8s-app": "kube-dns"}, "10.244.0.3")
    endpoint_slice(api, "kube-system", "kube-dns", "coredns-1", "10.244.0.3")
    for ns in ("shop", "kube-system"):
        api.put(NAMESPACES, {"metadata": {"name": ns}})
    return api
