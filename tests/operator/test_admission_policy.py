"""The chart's ValidatingAdmissionPolicy, as Helm renders it and the API server would run it:
its CEL evaluated with cel-python on checks as the API server admits them (defaulted by the
CRD's schema), so a check beyond its namespace is refused at `kubectl apply`, and one the
operator is configured to allow is not."""

from __future__ import annotations

import copy
import re
from pathlib import Path
from typing import Any

import celpy
import kubernetes_validate
import pytest

from hopscope_operator.api import API_VERSION, KIND, ConnectivityCheck
from hopscope_operator.controller.resolve import ResolveError
from hopscope_operator.controller.tenancy import Tenancy
from hopscope_operator.install import admission

from .conftest import ApiServer
from .test_chart import VERSION, by_kind, render
from .test_crd import EXAMPLES, load

pytest.importorskip("helm_python", reason="helm-python-sdk (Helm's Go SDK) not installed")

CEL = celpy.Environment()


class Admission:
    """One rendered policy, run as the API server runs it: the match conditions, then every
    validation; the messages of those that fail."""

    def __init__(self, policy: dict[str, Any]) -> None:
        spec = policy["spec"]
        self.conditions = [c["expression"] for c in spec.get("matchConditions", [])]
        self.validations = [(v["expression"], v["message"]) for v in spec["validations"]]

    def refusals(
        self,
        obj: dict[str, Any],
        namespace: str = "shop",
        operation: str = "CREATE",
        old: dict[str, Any] | None = None,
    ) -> list[str]:
        activation = {
            "object": celpy.json_to_cel(obj),
            "oldObject": celpy.json_to_cel(old),
            "request": celpy.json_to_cel({"namespace": namespace, "operation": operation}),
        }
        if not all(self._holds(expression, activation) for expression in self.conditions):
            return []
        return [message for expr, message in self.validations if not self._holds(expr, activation)]

    @staticmethod
    def _holds(expression: str, activation: dict[str, Any]) -> bool:
        result = CEL.program(CEL.compile(expression)).evaluate(activation)
        assert isinstance(result, celpy.celtypes.BoolType), f"{expression}: {result!r}"
        return bool(result)


def policy_of(values: dict[str, Any] | None = None) -> Admission:
    docs = render(values)
    [policy] = by_kind(docs, "ValidatingAdmissionPolicy")
    [binding] = by_kind(docs, "ValidatingAdmissionPolicyBinding")
    name = policy["metadata"]["name"]
    assert binding["spec"] == {"policyName": name, "validationActions": ["Deny"]}
    for doc in (policy, binding):
        kubernetes_validate.validate(doc, VERSION, strict=True)
        kubernetes_validate.validate(doc, admission.OLDEST_KUBERNETES, strict=True)
    return Admission(policy)


@pytest.fixture(scope="module")
def default_policy() -> Admission:
    return policy_of()


def a_check(apiserver: ApiServer, **spec: Any) -> dict[str, Any]:
    """A check as admission sees it: in namespace shop, defaulted, valid for the CRD."""
    body = {
        "apiVersion": API_VERSION,
        "kind": KIND,
        "metadata": {"name": "probe", "namespace": "shop"},
        "spec": {
            "source": {"pod": {"name": "web-0"}},
            "destination": {"service": {"name": "db"}, "port": 5432},
            **spec,
        },
    }
    defaulted = apiserver.defaulted(body)
    assert apiserver.errors(defaulted) == []
    return defaulted


NODE = {
    "source": {"node": {"name": "control-plane"}},
    "destination": {"ip": "127.0.0.1", "port": 2379},  # etcd, on the control plane's localhost
}
OTHER_POD = {"source": {"pod": {"name": "ledger-0", "namespace": "payments"}}}
OTHER_WORKLOAD = {"source": {"workload": {"kind": "Deployment", "name": "gw", "namespace": "edge"}}}
POST = {"protocol": "HTTP", "http": {"method": "POST"}}
OVERRIDE = {
    "protocol": "HTTP",
    "http": {
        "headers": [
            {"name": "Accept", "value": "*/*"},
            {"name": "x-HTTP-Method-Override", "value": "delete"},
        ]
    },
}
REFUSED = {
    "node source": (NODE, "source.node", "allowNodeSources"),
    "pod of another namespace": (OTHER_POD, "source.pod.namespace", "allowOtherNamespaceSources"),
    "workload of another namespace": (
        OTHER_WORKLOAD,
        "source.workload.namespace",
        "allowOtherNamespaceSources",
    ),
    "unsafe HTTP method": (POST, "http.method", "allowUnsafeHttpMethods"),
    "unsafe method by override header": (OVERRIDE, "http.headers", "allowUnsafeHttpMethods"),
}


@pytest.mark.parametrize("spec, field, value", REFUSED.values(), ids=REFUSED.keys())
def test_a_check_beyond_its_namespace_is_refused_naming_the_field_and_the_value(
    apiserver, default_policy, spec, field, value
):
    [message] = default_policy.refusals(a_check(apiserver, **spec))
    assert f"({field})" in message and f"tenancy.{value}" in message


@pytest.mark.parametrize("spec, field, value", REFUSED.values(), ids=REFUSED.keys())
def test_the_widening_value_lets_the_same_check_through(apiserver, spec, field, value):
    assert policy_of({"tenancy": {value: True}}).refusals(a_check(apiserver, **spec)) == []


ADMITTED = {
    "pod of its namespace": {},
    "pod named with its own namespace": {"source": {"pod": {"name": "web-0", "namespace": "shop"}}},
    "pod selector": {"source": {"podSelector": {"matchLabels": {"app": "web"}}}},
    "gateway of its namespace": {"source": {"workload": {"kind": "Deployment", "name": "gw"}}},
    "HTTP GET by default": {"protocol": "HTTP", "http": {}},
    "HTTP HEAD": {"protocol": "HTTP", "http": {"method": "HEAD"}},
    "HTTP OPTIONS": {"protocol": "HTTP", "http": {"method": "OPTIONS"}},
    "method override to a safe one": {
        "protocol": "HTTP",
        "http": {"headers": [{"name": "X-HTTP-Method", "value": " head "}]},
    },
    "destination in another namespace": {
        "destination": {"service": {"name": "ledger", "namespace": "payments"}, "port": 443}
    },
}


@pytest.mark.parametrize("spec", ADMITTED.values(), ids=ADMITTED.keys())
def test_a_check_within_its_namespace_is_admitted(apiserver, default_policy, spec):
    assert default_policy.refusals(a_check(apiserver, **spec)) == []


def test_a_check_stored_before_the_policy_still_takes_metadata_edits(apiserver, default_policy):
    old = a_check(apiserver, **NODE)
    relabelled = copy.deepcopy(old)
    relabelled["metadata"]["labels"] = {"team": "net"}
    assert default_policy.refusals(relabelled, operation="UPDATE", old=old) == []
    moved = copy.deepcopy(old)
    moved["spec"]["destination"]["port"] = 10250
    assert default_policy.refusals(moved, operation="UPDATE", old=old) != []


def test_the_policy_can_be_left_out():
    docs = render({"tenancy": {"admissionPolicy": False}})
    assert not by_kind(docs, "ValidatingAdmissionPolicy")
    assert not by_kind(docs, "ValidatingAdmissionPolicyBinding")


def test_the_values_reach_the_operator_too():
    from .test_chart import env_of

    assert env_of(render())["HOPSCOPE_ALLOW_NODE_SOURCES"] == "false"
    env = env_of(render({"tenancy": {"allowNodeSources": True, "allowUnsafeHttpMethods": True}}))
    assert env["HOPSCOPE_ALLOW_NODE_SOURCES"] == "true"
    assert env["HOPSCOPE_ALLOW_UNSAFE_HTTP_METHODS"] == "true"
    assert env["HOPSCOPE_ALLOW_OTHER_NAMESPACE_SOURCES"] == "false"


def refused_by_the_operator(obj: dict[str, Any], tenancy: Tenancy) -> bool:
    try:
        tenancy.permit(ConnectivityCheck.model_validate(obj))
    except ResolveError:
        return True
    return False


WIDENINGS = [{}, *({value: True} for _, _, value in REFUSED.values())]


@pytest.mark.parametrize("spec", [*(s for s, _, _ in REFUSED.values()), *ADMITTED.values()])
@pytest.mark.parametrize("widened", WIDENINGS, ids=lambda w: ",".join(w) or "default")
def test_admission_and_the_operator_refuse_the_same_checks(apiserver, spec, widened):
    obj = a_check(apiserver, **spec)
    tenancy = Tenancy(
        allow_node_sources=widened.get("allowNodeSources", False),
        allow_other_namespace_sources=widened.get("allowOtherNamespaceSources", False),
        allow_unsafe_http_methods=widened.get("allowUnsafeHttpMethods", False),
    )
    refused = policy_of({"tenancy": widened}).refusals(obj) != []
    assert refused == refused_by_the_operator(obj, tenancy)


@pytest.mark.parametrize("path", EXAMPLES, ids=lambda path: path.stem)
def test_an_example_that_needs_a_wider_install_says_which_value(apiserver, default_policy, path):
    obj = apiserver.defaulted(load(path))
    refusals = default_policy.refusals(obj, namespace=obj["metadata"]["namespace"])
    assert (refusals != []) == refused_by_the_operator(obj, Tenancy())
    for message in refusals:
        value = re.search(r"tenancy\.(\w+)", message)
        assert value and f"tenancy.{value[1]}=true" in Path(path).read_text()


def aggregation(docs: list[dict[str, Any]]) -> dict[str, set[str]]:
    """Which default roles each ClusterRole for people is aggregated into."""
    prefix = "rbac.authorization.k8s.io/aggregate-to-"
    return {
        doc["metadata"]["name"]: {
            key.removeprefix(prefix) for key in doc["metadata"]["labels"] if key.startswith(prefix)
        }
        for doc in by_kind(docs, "ClusterRole")
        if doc["metadata"]["name"].startswith("hopscope-operator-checks-")
    }


def test_cluster_checks_are_granted_explicitly_never_through_edit_or_admin():
    [admin] = [
        d for d in render() if d["metadata"]["name"] == "hopscope-operator-cluster-checks-admin"
    ]
    kubernetes_validate.validate(admin, VERSION, strict=True)
    assert not any("aggregate-to" in label for label in admin["metadata"]["labels"])
    [rule] = admin["rules"]
    assert rule["resources"] == ["clusterconnectivitychecks"] and "create" in rule["verbs"]


def test_namespace_editors_may_create_checks_and_viewers_read_them():
    docs = render()
    assert aggregation(docs) == {
        "hopscope-operator-checks-edit": {"edit", "admin"},
        "hopscope-operator-checks-view": {"view"},
    }
    for doc in by_kind(docs, "ClusterRole"):
        if doc["metadata"]["name"] in aggregation(docs):
            kubernetes_validate.validate(doc, VERSION, strict=True)
            # Checks alone: not their status (the operator's), nothing else of the group;
            # viewers may read cluster checks too (bound cluster-wide, it lets them).
            view = doc["metadata"]["name"].endswith("-view")
            kinds = ["connectivitychecks", "clusterconnectivitychecks"] if view else None
            assert [r["resources"] for r in doc["rules"]] == [kinds or ["connectivitychecks"]]
    [edit] = [d for d in docs if d["metadata"]["name"] == "hopscope-operator-checks-edit"]
    assert "create" in edit["rules"][0]["verbs"]
    off = render({"tenancy": {"aggregateToDefaultRoles": False}})
    assert aggregation(off) == {
        "hopscope-operator-checks-edit": set(),
        "hopscope-operator-checks-view": set(),
    }
