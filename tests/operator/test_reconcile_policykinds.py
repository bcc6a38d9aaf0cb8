"""The analysis reads the other policy families' kinds where the cluster serves them.

On the in-memory API server (conftest's `healthy`: shop/web-0 checks Service db, backed by
shop/db-0 on 5432): the CRDs of the Network Policy API and of Cilium are installed as a cluster
has them, their objects created, and the check's status names the deciding object with its
kind and rule. A cluster without the CRDs gets no request for those kinds after discovery.
"""

from __future__ import annotations

from typing import Any

import pytest

from hopscope_operator.cluster import NETWORK_POLICIES, NODES, ApiError, NotFound, Resource
from hopscope_operator.controller.metrics import Metrics
from hopscope_operator.controller.policykinds import REDISCOVER
from hopscope_operator.controller.reconcile import Reconciler, Settings

from . import test_reconcile as story
from .caught_up import caught_up
from .conftest import Clock
from .fake_routes import CRDS
from .fake_status import Forbidden
from .fakeapi import FakeApi
from .httpapi import HttpApi
from .test_kube import TOKEN, kube_api
from .test_reconcile import PROBES, apply_check, check, finish, probe_pods, run_once, source_pod
from .test_reconcile_analysis import deny_web_egress, dropped_at_the_destination

POLICY_API = "policy.networking.k8s.io"
CNP = Resource(POLICY_API, "v1alpha2", "clusternetworkpolicies", "ClusterNetworkPolicy")
ANP = Resource(POLICY_API, "v1alpha1", "adminnetworkpolicies", "AdminNetworkPolicy")
BANP = Resource(
    POLICY_API, "v1alpha1", "baselineadminnetworkpolicies", "BaselineAdminNetworkPolicy"
)
CILIUM = Resource("cilium.io", "v2", "ciliumnetworkpolicies", "CiliumNetworkPolicy")
CILIUM_CLUSTER = Resource(
    "cilium.io", "v2", "ciliumclusterwidenetworkpolicies", "CiliumClusterwideNetworkPolicy"
)
EVERY_KIND = (CNP, ANP, BANP, CILIUM, CILIUM_CLUSTER)
CALICO = "projectcalico.org"
CALICO_GNP = Resource(CALICO, "v3", "globalnetworkpolicies", "GlobalNetworkPolicy")
CALICO_TIER = Resource(CALICO, "v3", "tiers", "Tier")
CALICO_NP = Resource(CALICO, "v3", "networkpolicies", "NetworkPolicy")
NAMESPACED = {CILIUM, CALICO_NP}
SHOP = {"matchLabels": {"kubernetes.io/metadata.name": "shop"}}
DB = {"matchLabels": {"app": "db"}}
WEB = {"matchLabels": {"app": "web"}}


class ServiceUnavailable(ApiError):
    status = 503
    reason = "ServiceUnavailable"


def crd(resource: Resource) -> dict[str, Any]:
    """The kind's CustomResourceDefinition as its project ships it (names, scope, version)."""
    return {
        "apiVersion": "apiextensions.k8s.io/v1",
        "kind": "CustomResourceDefinition",
        "metadata": {"name": f"{resource.plural}.{resource.group}"},
        "spec": {
            "group": resource.group,
            "names": {
                "plural": resource.plural,
                "singular": resource.kind.lower(),
                "kind": resource.kind,
                "listKind": f"{resource.kind}List",
            },
            "scope": "Namespaced" if resource in NAMESPACED else "Cluster",
            "versions": [
                {
                    "name": resource.version,
                    "served": True,
                    "storage": True,
                    "schema": {
                        "openAPIV3Schema": {
                            "type": "object",
                            "x-kubernetes-preserve-unknown-fields": True,
                        }
                    },
                }
            ],
        },
    }


def install(api: FakeApi, *kinds: Resource) -> None:
    for kind in kinds:
        api.put(CRDS, crd(kind))


def create(api: FakeApi, resource: Resource, name: str, spec: dict[str, Any]) -> None:
    namespace = "shop" if resource in NAMESPACED else None
    api.create(resource, namespace, {"metadata": {"name": name}, "spec": spec})


def calico_tiers(api: FakeApi) -> None:
    """Calico's cluster-scoped kinds served (its v3 CRDs): a security tier before the default
    one, whose GlobalNetworkPolicy denies web into db, while the default tier allows it."""
    install(api, CALICO_GNP, CALICO_TIER)
    create(api, CALICO_TIER, "security", {"order": 100})
    deny = {"action": "Deny", "source": {"selector": "app == 'web'"}}
    create(
        api,
        CALICO_GNP,
        "security.deny-web",
        {"tier": "security", "selector": "app == 'db'", "ingress": [deny]},
    )
    create(
        api, CALICO_GNP, "allow-db", {"selector": "app == 'db'", "ingress": [{"action": "Allow"}]}
    )


def deny_db_from_web(api: FakeApi) -> None:
    create(
        api, CILIUM, "deny-db", {"endpointSelector": DB, "ingressDeny": [{"fromEndpoints": [WEB]}]}
    )


def isolate_tenants(api: FakeApi) -> None:
    create(
        api,
        CNP,
        "isolate-tenants",
        {
            "tier": "Admin",
            "priority": 10,
            "subject": {"pods": {"namespaceSelector": SHOP, "podSelector": DB}},
            "ingress": [
                {
                    "name": "no-web",
                    "action": "Deny",
                    "from": [{"pods": {"namespaceSelector": SHOP, "podSelector": WEB}}],
                }
            ],
        },
    )


@pytest.fixture
def reconciler(healthy: FakeApi, clock: Clock) -> Reconciler:
    return story.make_reconciler(healthy, clock)


def analysed(api: FakeApi, reconciler: Reconciler) -> dict[str, Any]:
    source_pod(api)
    apply_check(api, schedule={"intervalSeconds": 60})
    return run_once(api, reconciler, dropped_at_the_destination())["status"]


def again(api: FakeApi, reconciler: Reconciler, clock: Clock, seconds: float = 120) -> str:
    """The check's next run, `seconds` later: its analysis result."""
    clock.advance(seconds)
    reconciler.tick()
    [pod] = probe_pods(api)
    finish(api, pod, {item.id: dropped_at_the_destination() for item in story.batch_of(pod).checks})
    reconciler.tick()
    return str(check(api)["status"]["analysis"]["result"])


def context(issue: dict[str, Any], key: str) -> list[str]:
    return [item["value"] for item in issue["context"] if item["key"] == key]


def test_a_cilium_deny_rule_is_named_in_the_status_and_explains_the_drop(healthy, reconciler):
    install(healthy, *EVERY_KIND)
    deny_db_from_web(healthy)
    status = analysed(healthy, reconciler)

    analysis = status["analysis"]
    assert analysis["result"] == "Blocked"
    [denial] = analysis["issues"]
    assert denial["type"] == "NetworkPolicy" and denial["origin"] == "Inbound"
    assert denial["message"].startswith(
        "CiliumNetworkPolicy shop/deny-db ingressDeny[0] denies ingress of traffic from"
        " shop/web-0 into"
    )
    assert context(denial, "NetworkPolicy") == ["CiliumNetworkPolicy shop/deny-db"]
    assert context(denial, "decidedBy") == ["CiliumNetworkPolicy shop/deny-db ingressDeny[0]"]
    assert "change or remove that rule" in denial["hint"]
    # The probe's silent drop is this denial (merge pairs them by the policy named).
    [issue] = status["issues"]
    assert issue["message"] == denial["message"]


def test_a_calico_rule_is_named_with_its_tier_and_decides_before_the_default_tier(
    healthy, reconciler
):
    calico_tiers(healthy)
    status = analysed(healthy, reconciler)

    analysis = status["analysis"]
    assert analysis["result"] == "Blocked"
    [denial] = analysis["issues"]
    assert denial["message"].startswith(
        "GlobalNetworkPolicy security.deny-web ingress[0] (security tier) denies ingress of"
        " traffic from shop/web-0 into"
    )
    assert context(denial, "NetworkPolicy") == ["GlobalNetworkPolicy security.deny-web"]


def test_a_namespaced_calico_rule_is_named_beside_a_core_policy_of_the_same_name(
    healthy, reconciler
):
    # A core NetworkPolicy admits web into db; Calico's of the same name, ordered before the
    # core ones (order 1000 in the default tier), denies it.
    install(healthy, CALICO_NP)
    healthy.create(
        NETWORK_POLICIES,
        "shop",
        {
            "metadata": {"name": "db-ingress"},
            "spec": {"podSelector": DB, "ingress": [{"from": [{"podSelector": WEB}]}]},
        },
    )
    deny = {"action": "Deny", "source": {"selector": "app == 'web'"}}
    create(
        healthy,
        CALICO_NP,
        "db-ingress",
        {"order": 10, "selector": "app == 'db'", "ingress": [deny, {"action": "Allow"}]},
    )
    analysis = analysed(healthy, reconciler)["analysis"]

    assert analysis["result"] == "Blocked"
    [denial] = analysis["issues"]
    assert denial["message"].startswith(
        "NetworkPolicy.projectcalico.org shop/db-ingress ingress[0]"
    )
    assert context(denial, "decidedBy") == [
        "NetworkPolicy.projectcalico.org shop/db-ingress ingress[0]"
    ]


def test_a_cluster_network_policy_admin_rule_is_named_with_its_tier(healthy, reconciler):
    install(healthy, *EVERY_KIND)
    isolate_tenants(healthy)
    analysis = analysed(healthy, reconciler)["analysis"]

    assert analysis["result"] == "Blocked"
    [denial] = analysis["issues"]
    assert denial["message"].startswith(
        "ClusterNetworkPolicy isolate-tenants ingress[0] (Admin tier) denies ingress"
    )
    assert context(denial, "NetworkPolicy") == ["ClusterNetworkPolicy isolate-tenants"]


def test_a_cluster_network_policy_denying_egress_to_labelled_nodes_is_named_for_a_node_check(
    healthy, reconciler
):
    # The nodes the snapshot holds reach the evaluator: a `nodes` peer matches the node the
    # check's destination names, by its labels, at its address.
    install(healthy, *EVERY_KIND)
    healthy.create(
        NODES,
        None,
        {
            "metadata": {"name": "db-host", "labels": {"role": "database"}},
            "status": {"addresses": [{"type": "InternalIP", "address": "172.18.0.9"}]},
        },
    )
    create(
        healthy,
        CNP,
        "no-database-nodes",
        {
            "tier": "Admin",
            "priority": 10,
            "subject": {"pods": {"namespaceSelector": SHOP, "podSelector": WEB}},
            "egress": [
                {
                    "name": "deny-db-hosts",
                    "action": "Deny",
                    "to": [{"nodes": {"matchLabels": {"role": "database"}}}],
                }
            ],
        },
    )
    source_pod(healthy)
    apply_check(healthy, destination={"node": {"name": "db-host"}, "port": 5432})
    analysis = run_once(healthy, reconciler, dropped_at_the_destination())["status"]["analysis"]

    assert analysis["result"] == "Blocked"
    [denial] = analysis["issues"]
    assert denial["origin"] == "Outbound"
    assert denial["message"].startswith(
        "ClusterNetworkPolicy no-database-nodes egress[0] (Admin tier) denies egress of traffic"
        " from shop/web-0 to 172.18.0.9"
    )
    assert context(denial, "NetworkPolicy") == ["ClusterNetworkPolicy no-database-nodes"]


def test_an_admin_network_policy_decides_before_a_namespace_policy_allows(healthy, reconciler):
    install(healthy, *EVERY_KIND)
    # A NetworkPolicy admits web into db; the AdminNetworkPolicy decides first.
    healthy.create(
        NETWORK_POLICIES,
        "shop",
        {
            "metadata": {"name": "db-from-web"},
            "spec": {"podSelector": DB, "ingress": [{"from": [{"podSelector": WEB}]}]},
        },
    )
    create(
        healthy,
        ANP,
        "lockdown",
        {
            "priority": 5,
            "subject": {"namespaces": SHOP},
            "ingress": [{"name": "deny-all", "action": "Deny", "from": [{"namespaces": {}}]}],
        },
    )
    analysis = analysed(healthy, reconciler)["analysis"]

    assert analysis["result"] == "Blocked"
    [denial] = analysis["issues"]
    assert denial["message"].startswith(
        "AdminNetworkPolicy lockdown ingress[0] (Admin tier) denies ingress"
    )


def test_a_baseline_deny_is_named_as_such_and_a_network_policy_overrides_it(
    healthy, reconciler, clock
):
    install(healthy, *EVERY_KIND)
    create(
        healthy,
        BANP,
        "default",
        {
            "subject": {"namespaces": SHOP},
            "ingress": [{"name": "deny-all", "action": "Deny", "from": [{"namespaces": {}}]}],
        },
    )
    analysis = analysed(healthy, reconciler)["analysis"]
    [denial] = analysis["issues"]
    assert denial["message"].startswith(
        "BaselineAdminNetworkPolicy default ingress[0] (Baseline tier) denies ingress"
    )
    assert "allow the flow with a NetworkPolicy" in denial["hint"]


def test_a_construct_hopscope_does_not_model_leaves_the_analysis_unknown_naming_it(
    healthy, reconciler
):
    install(healthy, *EVERY_KIND)
    l7 = {"ports": [{"port": "5432", "protocol": "TCP"}], "rules": {"http": [{"method": "GET"}]}}
    create(
        healthy,
        CILIUM,
        "db-l7",
        {"endpointSelector": DB, "ingress": [{"fromEndpoints": [WEB], "toPorts": [l7]}]},
    )
    analysis = analysed(healthy, reconciler)["analysis"]

    assert analysis["result"] == "Unknown"
    [unknown] = analysis["issues"]
    assert unknown["type"] == "NetworkPolicy" and unknown["severity"] == "Warning"
    assert (
        "is unknown" in unknown["message"]
        and "CiliumNetworkPolicy shop/db-l7" in (unknown["message"])
    )
    assert "not modelled" in unknown["message"]


def test_a_cluster_without_the_crds_gets_no_request_for_their_kinds(healthy, reconciler, clock):
    before = len(healthy.calls)
    status = analysed(healthy, reconciler)
    assert status["analysis"]["result"] == "Allowed"
    plurals = {kind.plural for kind in EVERY_KIND}
    assert not [call for call in healthy.calls[before:] if call[1] in plurals]
    # One look at the groups the cluster serves, none at a group it lacks.
    assert healthy.discovered == ["/apis"]

    # Not again each run; again after REDISCOVER, which finds a CRD installed since.
    assert again(healthy, reconciler, clock) == "Allowed"
    assert healthy.discovered == ["/apis"]
    install(healthy, CILIUM)
    deny_db_from_web(healthy)
    assert again(healthy, reconciler, clock, REDISCOVER.total_seconds()) == "Blocked"
    assert healthy.discovered == ["/apis", "/apis", "/apis/cilium.io/v2"]


def test_a_refused_kind_is_unknown_naming_it_and_the_others_are_still_evaluated(
    healthy, reconciler
):
    install(healthy, *EVERY_KIND)
    isolate_tenants(healthy)
    original = healthy.list

    def refusing(resource: Resource, namespace: str | None, labels: Any = None) -> Any:
        if resource.plural == CILIUM.plural:
            raise Forbidden("ciliumnetworkpolicies.cilium.io is forbidden")
        return original(resource, namespace, labels)

    healthy.list = refusing  # type: ignore[method-assign]
    analysis = analysed(healthy, reconciler)["analysis"]
    healthy.list = original  # type: ignore[method-assign]

    assert analysis["result"] == "Unknown"
    unread, denial = analysis["issues"]
    assert unread["type"] == "NetworkPolicy"
    assert "could not read ciliumnetworkpolicies.cilium.io" in unread["message"]
    # The ClusterNetworkPolicy was read and decides, but the unread kind may decide first.
    assert denial["message"].startswith("ClusterNetworkPolicy isolate-tenants ingress[0]")
    assert denial["severity"] == "Warning"
    assert "ciliumnetworkpolicies.cilium.io could not be read" in denial["message"]


def test_an_object_that_cannot_be_parsed_is_unknown_naming_its_kind_and_name(healthy, reconciler):
    install(healthy, *EVERY_KIND)
    create(healthy, CNP, "broken", {"tier": "Middle", "priority": 1, "subject": {"namespaces": {}}})
    analysis = analysed(healthy, reconciler)["analysis"]

    assert analysis["result"] == "Unknown"
    [issue] = analysis["issues"]
    assert "ClusterNetworkPolicy broken: spec.tier" in issue["message"]


def test_a_kind_whose_crd_was_removed_is_read_as_empty_and_discovered_again(
    healthy, reconciler, clock
):
    install(healthy, *EVERY_KIND)
    isolate_tenants(healthy)
    assert analysed(healthy, reconciler)["analysis"]["result"] == "Blocked"
    healthy.delete(CNP, None, "isolate-tenants")  # the API server deletes a CRD's objects
    healthy.delete(CRDS, None, f"{CNP.plural}.{CNP.group}")
    with pytest.raises(NotFound):  # and forgets the group's version with its last CRD
        healthy.list(CNP, None)
    discovered = len(healthy.discovered)
    # Its watch ends and cannot be opened again (404): its cache goes, not an unreadable part.
    assert again(healthy, reconciler, clock) == "Allowed"
    # The 404 made the next tick discover again, before REDISCOVER is up.
    assert healthy.discovered[discovered] == "/apis"
    assert f"/apis/{POLICY_API}/v1alpha1" in healthy.discovered[discovered:]


VERBS = ("list", "watch")


def test_a_namespaced_install_reads_namespaced_kinds_where_it_watches_and_cluster_ones_too(
    healthy, clock
):
    # The chart's ClusterRoleBinding (nodes, namespaces) is in every install: cluster-wide
    # policies select the watched pods too, so they are read; namespaced kinds only where
    # NetworkPolicies are: the watched namespaces (the release's is one) and kube-system (the
    # autouse fixture holds every call to the generated RBAC).
    settings = Settings(namespace=PROBES, image="hopscope-probe:test", watch_namespaces=("shop",))
    confined = Reconciler(healthy, Metrics(), settings, clock)
    install(healthy, *EVERY_KIND)
    isolate_tenants(healthy)
    deny_db_from_web(healthy)
    before = len(healthy.calls)
    analysis = analysed(healthy, confined)["analysis"]

    assert analysis["result"] == "Blocked"
    messages = [issue["message"] for issue in analysis["issues"]]
    assert messages[0].startswith("ClusterNetworkPolicy isolate-tenants ingress[0]")
    reads = {call for call in healthy.calls[before:] if call[1] in {k.plural for k in EVERY_KIND}}
    assert reads == {  # each listed once into its cache, then watched
        *((verb, CILIUM.plural, ns) for ns in ("shop", PROBES, "kube-system") for verb in VERBS),
        *(
            (verb, kind.plural, None)
            for kind in EVERY_KIND
            if kind not in NAMESPACED
            for verb in VERBS
        ),
    }


def test_through_the_real_client_a_crd_group_is_discovered_and_its_kind_listed(healthy, clock):
    with HttpApi(healthy, TOKEN).running() as server:
        kube = kube_api(server)
        # The API server serves another group only once its CRD exists: a plain 404 before.
        assert kube.discovery("/apis/cilium.io/v2") is None
        install(healthy, CILIUM)
        served = kube.discovery("/apis/cilium.io/v2")
        assert served is not None
        [entry] = served["resources"]
        assert (entry["name"], entry["kind"], entry["namespaced"]) == (
            CILIUM.plural,
            CILIUM.kind,
            True,
        )
        deny_db_from_web(healthy)
        settings = Settings(namespace=PROBES, image="hopscope-probe:test")
        reconciler = Reconciler(kube, Metrics(), settings, clock)
        source_pod(healthy)
        apply_check(healthy)
        reconciler.tick()
        [pod] = probe_pods(healthy)
        finish(
            healthy,
            pod,
            {item.id: dropped_at_the_destination() for item in story.batch_of(pod).checks},
        )
        caught_up(reconciler, healthy)
        reconciler.tick()
        denial = check(healthy)["status"]["analysis"]["issues"][0]
        assert denial["message"].startswith("CiliumNetworkPolicy shop/deny-db ingressDeny[0]")
        asked = [f"{method} {path}" for method, path, _ in server.requests]
        assert "GET /apis/cilium.io/v2/ciliumnetworkpolicies" in asked
        assert not [path for path in asked if POLICY_API in path]  # a group it lacks


def test_a_failed_discovery_is_unknown_and_the_network_policies_still_decide(healthy, reconciler):
    install(healthy, *EVERY_KIND)
    deny_web_egress(healthy)

    def failing(path: str) -> Any:
        raise ServiceUnavailable("GET /apis: 503 the server is currently unable to handle it")

    healthy.discovery = failing  # type: ignore[method-assign]
    analysis = analysed(healthy, reconciler)["analysis"]

    assert analysis["result"] == "Unknown"
    unread, denial = analysis["issues"]
    assert unread["message"].startswith("static analysis could not read policy kinds: GET /apis")
    assert "discovery (/apis) failed" in unread["hint"]
    assert denial["message"].startswith("NetworkPolicy denies egress")
    assert "policy kinds could not be read" in denial["message"]
