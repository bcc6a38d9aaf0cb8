"""The in-memory API knows a kind by its API group and plural, as Kubernetes does: Calico's
`networkpolicies.projectcalico.org` is not the core `networkpolicies.networking.k8s.io`, in the
store, its watches and garbage collection, and RBAC (a Role names its apiGroups)."""

from __future__ import annotations

import re
from typing import Any

import pytest

from hopscope_operator.cluster import NETWORK_POLICIES, ApiError

from .fake_auth import service_account
from .fakeapi import FakeApi
from .httpapi import HttpApi
from .test_kube import TOKEN, kube_api
from .test_reconcile_policykinds import CALICO_NP, install

READER_TOKEN = "reader-token"


def policy(name: str, spec: dict[str, Any]) -> dict[str, Any]:
    return {"metadata": {"name": name}, "spec": spec}


def both_named_deny_web(api: FakeApi) -> None:
    install(api, CALICO_NP)
    api.create(NETWORK_POLICIES, "shop", policy("deny-web", {"podSelector": {}}))
    api.create(CALICO_NP, "shop", policy("deny-web", {"selector": "app == 'db'"}))


def test_a_core_and_a_calico_network_policy_of_the_same_name_coexist(api: FakeApi) -> None:
    watch = api.watch(NETWORK_POLICIES, "shop", None, api.resource_version())
    both_named_deny_web(api)  # no 409: they are two kinds

    [core] = api.list(NETWORK_POLICIES, "shop")
    [calico] = api.list(CALICO_NP, "shop")
    assert (core["apiVersion"], core["kind"]) == ("networking.k8s.io/v1", "NetworkPolicy")
    assert (calico["apiVersion"], calico["spec"]) == (
        "projectcalico.org/v3",
        {"selector": "app == 'db'"},
    )
    api.delete(CALICO_NP, "shop", "deny-web")
    assert (
        api.get(NETWORK_POLICIES, "shop", "deny-web")["metadata"]["uid"] == core["metadata"]["uid"]
    )
    # The core kind's watch saw its own object come, not the Calico one come and go.
    seen = [(event["type"], event["object"]["apiVersion"]) for event in watch.poll()]
    assert seen == [("ADDED", "networking.k8s.io/v1")]


def test_a_dependent_of_another_group_is_collected_under_its_own_kind(api: FakeApi) -> None:
    both_named_deny_web(api)
    owner = api.get(NETWORK_POLICIES, "shop", "deny-web")
    ref = {"apiVersion": "networking.k8s.io/v1", "kind": "NetworkPolicy", "name": "deny-web"}
    ref["uid"] = owner["metadata"]["uid"]
    dependent = policy("child", {"selector": "all()"})
    dependent["metadata"]["ownerReferences"] = [ref]
    api.create(CALICO_NP, "shop", dependent)

    api.delete(NETWORK_POLICIES, "shop", "deny-web")
    assert [p["metadata"]["name"] for p in api.list(CALICO_NP, "shop")] == ["deny-web"]
    [gone] = [e for e in api.watch_events if e.type == "DELETED" and e.name == "child"]
    assert (gone.resource.group, gone.resource.plural) == (CALICO_NP.group, CALICO_NP.plural)


def reader_rbac(group: str) -> list[dict[str, Any]]:
    """A Role in shop granting list on `networkpolicies` of `group`, bound to shop/reader."""
    rbac_group = "rbac.authorization.k8s.io"
    role = {
        "kind": "Role",
        "metadata": {"name": "policy-reader", "namespace": "shop"},
        "rules": [{"apiGroups": [group], "resources": ["networkpolicies"], "verbs": ["list"]}],
    }
    binding = {
        "kind": "RoleBinding",
        "metadata": {"name": "policy-reader", "namespace": "shop"},
        "roleRef": {"apiGroup": rbac_group, "kind": "Role", "name": "policy-reader"},
        "subjects": [{"kind": "ServiceAccount", "namespace": "shop", "name": "reader"}],
    }
    return [role, binding]


def test_a_role_granting_one_groups_network_policies_is_refused_the_others(
    api: FakeApi,
) -> None:
    both_named_deny_web(api)
    reader = service_account("shop", "reader", reader_rbac("networking.k8s.io"))
    with HttpApi(api, TOKEN, {READER_TOKEN: reader}).running() as server:
        kube = kube_api(server, READER_TOKEN)
        assert [p["kind"] for p in kube.list(NETWORK_POLICIES, "shop")] == ["NetworkPolicy"]
        said = (
            'networkpolicies.projectcalico.org is forbidden: User "system:serviceaccount:shop:'
            'reader" cannot list resource "networkpolicies" in API group "projectcalico.org" '
            'in the namespace "shop"'
        )
        with pytest.raises(ApiError, match=re.escape(said)) as refused:
            kube.list(CALICO_NP, "shop")
        assert refused.value.status == 403


def test_a_role_of_both_groups_grants_both(api: FakeApi) -> None:
    both_named_deny_web(api)
    docs = reader_rbac("networking.k8s.io")
    docs[0]["rules"][0]["apiGroups"].append(CALICO_NP.group)
    reader = service_account("shop", "reader", docs)
    with HttpApi(api, TOKEN, {READER_TOKEN: reader}).running() as server:
        kube = kube_api(server, READER_TOKEN)
        assert [p["apiVersion"] for p in kube.list(CALICO_NP, "shop")] == ["projectcalico.org/v3"]
