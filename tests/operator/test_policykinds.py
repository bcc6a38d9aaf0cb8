"""Discovery of the registered policy families' kinds, and the chart's RBAC for them.

On the in-memory API server, which serves another group only while a stored CRD serves it.
"""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest

from hopscope_operator.controller.policykinds import REDISCOVER, PolicyKinds
from hopscope_operator.install import rbac
from hopscope_operator.policykinds import discover
from hopscope_policy import families

from .conftest import Clock
from .fake_routes import CRDS
from .fakeapi import FakeApi
from .test_reconcile_policykinds import ANP, CILIUM, CNP, ServiceUnavailable, crd, install


def with_versions(resource: Any, *versions: str) -> dict[str, Any]:
    doc = crd(resource)
    [template] = doc["spec"]["versions"]
    doc["spec"]["versions"] = [
        {**template, "name": v, "storage": i == 0} for i, v in enumerate(versions)
    ]
    return doc


def test_each_kind_is_read_at_the_groups_preferred_version_and_by_its_served_plural(
    api: FakeApi,
):
    api.put(CRDS, with_versions(CNP, "v1alpha2", "v1beta1"))  # v1beta1 is preferred
    install(api, ANP, CILIUM)
    found = {kind.resource.kind: kind for kind in discover(api)}

    assert found["ClusterNetworkPolicy"].resource.version == "v1beta1"
    assert found["AdminNetworkPolicy"].resource.version == "v1alpha1"  # only there
    assert found["CiliumNetworkPolicy"].namespaced
    assert not found["ClusterNetworkPolicy"].namespaced
    assert found["CiliumNetworkPolicy"].part == "ciliumnetworkpolicies.cilium.io"
    assert set(found) == {"ClusterNetworkPolicy", "AdminNetworkPolicy", "CiliumNetworkPolicy"}


def test_a_kind_no_family_reads_is_not_discovered(api: FakeApi):
    other = crd(CILIUM)
    other["spec"]["names"] |= {"kind": "CiliumEndpoint", "plural": "ciliumendpoints"}
    other["metadata"]["name"] = "ciliumendpoints.cilium.io"
    api.put(CRDS, other)
    assert discover(api) == ()


def test_a_failed_discovery_keeps_what_the_last_one_found_and_raises_before_any(api: FakeApi):
    clock = Clock()
    kinds = PolicyKinds(api, clock)
    original = api.discovery
    api.discovery = lambda path: (_ for _ in ()).throw(ServiceUnavailable("503"))  # type: ignore[method-assign]
    with pytest.raises(ServiceUnavailable):
        kinds.served()
    api.discovery = original  # type: ignore[method-assign]
    install(api, CILIUM)
    assert [k.resource for k in kinds.served()] == [CILIUM]  # tried again, not remembered
    api.discovery = lambda path: (_ for _ in ()).throw(ServiceUnavailable("503"))  # type: ignore[method-assign]
    clock.advance(REDISCOVER.total_seconds())
    assert [k.resource for k in kinds.served()] == [CILIUM]
    clock.advance(timedelta(seconds=1).total_seconds())
    assert [k.resource for k in kinds.served()] == [CILIUM]  # not asked again before REDISCOVER


def test_the_chart_grants_list_and_watch_only_on_every_registered_kind():
    granted = {(rule.group, plural): rule for rule in rbac.RULES for plural in rule.resources}
    for family in families.FAMILIES:
        for group, kind in family.kinds:
            plural, namespaced = rbac.POLICY_KINDS[(group, kind)]
            rules = [r for (g, p), r in granted.items() if (g, p) == (group, plural)]
            assert rules, f"{kind} is not granted"
            for rule in rules:
                assert rule.verbs == ("list", "watch")
            scopes = {r.scope for r in rbac.RULES if r.group == group and plural in r.resources}
            if namespaced:
                assert scopes == {rbac.Scope.WATCHED, rbac.Scope.CLUSTER_DNS}
            else:
                assert scopes == {rbac.Scope.CLUSTER}


def test_a_registered_kind_without_its_rbac_entry_fails_the_charts_generation(monkeypatch):
    monkeypatch.delitem(rbac.POLICY_KINDS, ("cilium.io", "CiliumNetworkPolicy"))
    with pytest.raises(ValueError, match="no RBAC for CiliumNetworkPolicy"):
        rbac.policy_kind_rules()
