"""`kubectl hopscope policy-check`: the cluster's checks replayed against its policies plus
proposed ones, on the in-memory API server (conftest's `healthy` cluster: web-0 in shop, db
with its pod db-0 behind a ClusterIP, kube-dns served by coredns-1)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
import yaml

from hopscope_operator.api import API_VERSION, CLUSTER_KIND
from hopscope_operator.cluster import (
    CHECKS,
    CLUSTER_CHECKS,
    DEPLOYMENTS,
    NETWORK_POLICIES,
    NotFound,
    Object,
    Resource,
)
from hopscope_operator.kubectl import plugin as kubectl

from .conftest import running_pod
from .fake_routes import CRDS
from .fake_status import Forbidden
from .fakeapi import FakeApi
from .test_reconcile import apply_check, source_pod
from .test_reconcile_policykinds import ServiceUnavailable

NS = "shop"
WHEN = "2026-12-07T12:00:00Z"
WRITES = {"create", "update", "patch", "delete"}
CILIUM = Resource("cilium.io", "v2", "ciliumnetworkpolicies", "CiliumNetworkPolicy")


def finished(**fields: Any) -> Object:
    """A completed run's status, as the operator writes it, from web-0."""
    return {
        "phase": "Completed",
        "connectionStatus": "Reachable",
        "observedGeneration": 1,
        "runs": 1,
        "lastRunTime": WHEN,
        "source": {"address": "10.244.1.5", "node": "worker-1", "pod": "web-0"},
        **fields,
    }


def checked(api: FakeApi, name: str, **spec: Any) -> None:
    """A check that has run once."""
    created = apply_check(api, name, **spec)
    status = finished(destination={"addresses": ["10.96.0.20"]})
    api.patch_status(CHECKS, NS, name, status, created["metadata"]["resourceVersion"])


@pytest.fixture
def cluster(healthy: FakeApi) -> FakeApi:
    """Two checks from web-0: to the db Service, and to the kube-dns Service on TCP 53."""
    source_pod(healthy)
    checked(healthy, "web-to-db")
    checked(
        healthy,
        "web-to-dns",
        destination={"service": {"name": "kube-dns", "namespace": "kube-system"}, "port": 53},
    )
    return healthy


def policy(name: str, spec: Object, namespace: str = NS) -> Object:
    return {
        "apiVersion": "networking.k8s.io/v1",
        "kind": "NetworkPolicy",
        "metadata": {"name": name, "namespace": namespace},
        "spec": spec,
    }


def db_ingress_from(app: str) -> Object:
    """Isolates db for ingress, admitting pods labelled app=`app` on 5432."""
    return policy(
        "db-ingress",
        {
            "podSelector": {"matchLabels": {"app": "db"}},
            "policyTypes": ["Ingress"],
            "ingress": [
                {
                    "from": [{"podSelector": {"matchLabels": {"app": app}}}],
                    "ports": [{"port": 5432}],
                }
            ],
        },
    )


def write(tmp_path: Path, name: str, *docs: Object) -> str:
    path = tmp_path / name
    path.write_text(yaml.safe_dump_all(docs))
    return str(path)


def run(api: Any, *argv: str) -> int:
    """The command, in shop unless the test names its scope (with no kubeconfig here, the
    context's namespace would be "default")."""
    scope = [] if {"-n", "-A"} & set(argv) else ["-n", NS]
    return kubectl.main(["policy-check", *argv, *scope], api=api)


def writes(api: FakeApi, since: int) -> list[tuple[str | None, ...]]:
    return [call for call in api.calls[since:] if call[0] in WRITES]


def install_crd(api: FakeApi, resource: Resource, scope: str = "Namespaced") -> None:
    names = {"plural": resource.plural, "kind": resource.kind, "singular": resource.kind.lower()}
    api.put(
        CRDS,
        {
            "apiVersion": "apiextensions.k8s.io/v1",
            "kind": "CustomResourceDefinition",
            "metadata": {"name": f"{resource.plural}.{resource.group}"},
            "spec": {
                "group": resource.group,
                "names": names,
                "scope": scope,
                "versions": [{"name": resource.version, "served": True, "storage": True}],
            },
        },
    )


def install_cilium_crd(api: FakeApi) -> None:
    install_crd(api, CILIUM)


class Refusing:
    """The API as a user whose RBAC does not grant `list` of some resources: a 403."""

    def __init__(self, api: FakeApi, *plurals: str) -> None:
        self.api = api
        self.plurals = plurals

    def list(self, resource: Resource, namespace: str | None, labels: Any = None) -> list[Object]:
        if resource.plural in self.plurals:
            raise Forbidden(f'{resource.plural} is forbidden: User "dev" cannot list resource')
        return self.api.list(resource, namespace, labels)

    def __getattr__(self, name: str) -> Any:
        return getattr(self.api, name)


# ---- what a proposed change flips -------------------------------------------------------------


def test_a_proposed_network_policy_blocking_a_check_lists_it_with_the_policy_and_writes_nothing(
    cluster: FakeApi, tmp_path: Path, capsys
):
    proposed = write(tmp_path, "db.yaml", db_ingress_from("api"))
    since = len(cluster.calls)

    code = run(cluster, "-f", proposed)

    out, err = capsys.readouterr()
    assert code == 1, err
    assert (
        "shop/web-to-db: pod shop/web-0 (the last run's source) -> service shop/db:5432 TCP" in out
    )
    assert "shop/web-0 -> shop/db-0 TCP/5432: allowed -> DENIED" in out
    assert "no NetworkPolicy selects it: default allow" in out  # before
    assert "NetworkPolicy shop/db-ingress: default deny of the isolation" in out  # after
    assert "web-to-dns" not in out  # its flows do not change
    assert out.splitlines()[-1] == (
        "1 of 2 replayed checks would flip (1 allowed -> denied); nothing was applied"
    )
    assert writes(cluster, since) == []
    assert cluster.objects(NETWORK_POLICIES) == []  # nothing applied


def test_a_change_that_flips_no_check_exits_0(cluster: FakeApi, tmp_path: Path, capsys):
    proposed = write(tmp_path, "db.yaml", db_ingress_from("web"))

    code = run(cluster, "-f", proposed)

    out, err = capsys.readouterr()
    assert code == 0, err
    assert out == "no check flips: 2 replayed checks; nothing was applied\n"


def test_a_proposed_policy_of_the_same_name_replaces_the_clusters_rather_than_adding_to_it(
    cluster: FakeApi, tmp_path: Path, capsys
):
    # The cluster admits web into db; the proposed version of that policy admits api instead.
    # Added beside it, web would still be admitted: only replacing it flips the check.
    cluster.create(NETWORK_POLICIES, NS, db_ingress_from("web"))
    proposed = write(tmp_path, "db.yaml", db_ingress_from("api"))

    code = run(cluster, "-f", proposed)

    out, _ = capsys.readouterr()
    assert code == 1
    assert "NetworkPolicy shop/db-ingress ingress[0]" in out  # before: the rule admitting web
    assert "NetworkPolicy shop/db-ingress: default deny of the isolation" in out


def test_delete_removes_a_clusters_policy_and_flips_the_checks_it_admitted(
    cluster: FakeApi, tmp_path: Path, capsys
):
    deny_all = policy(
        "db-default-deny",
        {"podSelector": {"matchLabels": {"app": "db"}}, "policyTypes": ["Ingress"]},
    )
    cluster.create(NETWORK_POLICIES, NS, deny_all)
    cluster.create(NETWORK_POLICIES, NS, db_ingress_from("web"))
    deleted = write(tmp_path, "old.yaml", db_ingress_from("web"))
    since = len(cluster.calls)

    code = run(cluster, "--delete", deleted)

    out, _ = capsys.readouterr()
    assert code == 1
    assert "shop/web-0 -> shop/db-0 TCP/5432: allowed -> DENIED" in out
    assert "NetworkPolicies shop/db-default-deny" not in out  # one policy isolates it after
    assert "NetworkPolicy shop/db-default-deny: default deny of the isolation" in out
    assert writes(cluster, since) == []
    assert len(cluster.objects(NETWORK_POLICIES)) == 2


def test_a_proposed_cilium_policy_is_evaluated_where_its_crd_is_installed(
    cluster: FakeApi, tmp_path: Path, capsys
):
    install_cilium_crd(cluster)
    # Isolates web's egress (Cilium's default deny of a selected endpoint): only DNS is
    # allowed, to kube-system.
    cnp = {
        "apiVersion": "cilium.io/v2",
        "kind": "CiliumNetworkPolicy",
        "metadata": {"name": "web-egress", "namespace": NS},
        "spec": {
            "endpointSelector": {"matchLabels": {"app": "web"}},
            "egress": [
                {
                    "toEndpoints": [
                        {"matchLabels": {"k8s:io.kubernetes.pod.namespace": "kube-system"}}
                    ],
                    "toPorts": [{"ports": [{"port": "53", "protocol": "ANY"}]}],
                }
            ],
        },
    }
    proposed = write(tmp_path, "cnp.yaml", cnp)
    since = len(cluster.calls)

    code = run(cluster, "-f", proposed, "--json")

    out, err = capsys.readouterr()
    assert code == 1, err
    document = json.loads(out)
    [flipped] = document["flipped"]
    assert flipped["check"] == "shop/web-to-db"
    [change] = flipped["changes"]
    assert (change["from"], change["to"], change["port"]) == ("shop/web-0", "shop/db-0", 5432)
    assert change["before"]["verdict"] == "allowed" and change["after"]["verdict"] == "denied"
    assert change["after"]["egress"]["decided_by"].startswith("CiliumNetworkPolicy shop/web-egress")
    assert document["replayed"] == 2 and document["incomplete"] == []
    assert ("list", CILIUM.plural, None) in cluster.calls[since:]
    assert writes(cluster, since) == []


def test_the_clusters_cilium_policies_are_read_and_a_crd_not_installed_is_skipped_silently(
    cluster: FakeApi, tmp_path: Path, capsys
):
    proposed = write(tmp_path, "db.yaml", db_ingress_from("web"))

    assert run(cluster, "-f", proposed) == 0
    _, err = capsys.readouterr()
    assert err == ""  # no CRD of any other family: nothing to say

    install_cilium_crd(cluster)
    cluster.put(
        CILIUM,
        {
            "apiVersion": "cilium.io/v2",
            "kind": "CiliumNetworkPolicy",
            "metadata": {"name": "web-egress", "namespace": NS},
            "spec": {"endpointSelector": {"matchLabels": {"app": "web"}}, "egress": [{}]},
        },
    )
    # The cluster's Cilium policy isolates web's egress (an empty rule admits nothing): the
    # proposed change that deletes it lets web reach db and DNS again.
    deleted = write(tmp_path, "old-cnp.yaml", cluster.objects(CILIUM)[0])

    code = run(cluster, "--delete", deleted)

    out, err = capsys.readouterr()
    assert code == 1, err
    assert "shop/web-0 -> shop/db-0 TCP/5432: denied -> allowed" in out
    assert "CiliumNetworkPolicy shop/web-egress" in out  # what denied it before


def test_a_policy_kind_the_user_may_not_list_is_named_and_the_answer_is_incomplete(
    cluster: FakeApi, tmp_path: Path, capsys
):
    install_cilium_crd(cluster)
    proposed = write(tmp_path, "db.yaml", db_ingress_from("web"))

    code = run(Refusing(cluster, CILIUM.plural), "-f", proposed)

    out, err = capsys.readouterr()
    assert code == 3
    assert "could not read CiliumNetworkPolicy" in err and "may be incomplete" in err
    assert "no check flips: 2 replayed checks" in out


def test_calico_policies_in_the_cluster_are_counted_as_not_evaluated(
    cluster: FakeApi, tmp_path: Path, capsys
):
    global_policies = Resource(
        "crd.projectcalico.org", "v1", "globalnetworkpolicies", "GlobalNetworkPolicy"
    )
    install_crd(cluster, global_policies, scope="Cluster")
    proposed = write(tmp_path, "db.yaml", db_ingress_from("web"))
    assert run(cluster, "-f", proposed) == 0  # installed, but holding none: nothing missed
    capsys.readouterr()
    cluster.put(
        global_policies,
        {"metadata": {"name": "deny-all"}, "spec": {"selector": "all()", "types": ["Ingress"]}},
    )

    code = run(cluster, "-f", proposed)

    out, err = capsys.readouterr()
    assert code == 3
    assert "1 crd.projectcalico.org GlobalNetworkPolicy object(s) in the cluster are not" in err
    assert "no check flips" in out


def test_calico_policies_served_at_v3_are_evaluated_and_their_storage_form_not_counted(
    cluster: FakeApi, tmp_path: Path, capsys
):
    served = Resource("projectcalico.org", "v3", "globalnetworkpolicies", "GlobalNetworkPolicy")
    stored = Resource("crd.projectcalico.org", "v1", "globalnetworkpolicies", "GlobalNetworkPolicy")
    for resource in (served, stored):
        install_crd(cluster, resource, scope="Cluster")
    # In the cluster: a policy that passes db's ingress on (it decides nothing). Its storage
    # form lists the same policy: evaluated at v3, it must not be counted as not evaluated.
    pass_db = {"selector": "app == 'db'", "ingress": [{"action": "Pass"}]}
    cluster.put(served, {"metadata": {"name": "pass-db"}, "spec": pass_db})
    deny_db = {"order": 1, "selector": "app == 'db'", "ingress": [{"action": "Deny"}]}
    proposed = write(
        tmp_path,
        "deny.yaml",
        {
            "apiVersion": "projectcalico.org/v3",
            "kind": "GlobalNetworkPolicy",
            "metadata": {"name": "deny-db"},
            "spec": deny_db,
        },
    )

    code = run(cluster, "-f", proposed)

    out, err = capsys.readouterr()
    assert code == 1, err
    assert "after   denied   GlobalNetworkPolicy deny-db ingress[0]" in out
    assert "not evaluated" not in err


def test_cluster_checks_are_replayed_and_a_403_on_them_is_said_and_gone_past(
    cluster: FakeApi, tmp_path: Path, capsys
):
    created = cluster.create(
        CLUSTER_CHECKS,
        None,
        {
            "apiVersion": API_VERSION,
            "kind": CLUSTER_KIND,
            "metadata": {"name": "shop-web-db"},
            "spec": {
                "source": {"pod": {"name": "web-0", "namespace": NS}},
                "destination": {"pod": {"name": "db-0", "namespace": NS}, "port": 5432},
            },
        },
    )
    status = finished(destination={"addresses": ["10.244.2.7"]})
    version = created["metadata"]["resourceVersion"]
    cluster.patch_status(CLUSTER_CHECKS, None, "shop-web-db", status, version)
    proposed = write(tmp_path, "db.yaml", db_ingress_from("api"))

    assert run(cluster, "-f", proposed) == 1
    out, _ = capsys.readouterr()
    assert "clusterconnectivitycheck/shop-web-db: pod shop/web-0" in out
    assert "2 of 3 replayed checks would flip" in out

    assert run(Refusing(cluster, CLUSTER_CHECKS.plural), "-f", proposed) == 1
    out, err = capsys.readouterr()
    assert "could not list ClusterConnectivityChecks" in err
    assert "1 of 2 replayed checks would flip" in out


def test_a_check_that_cannot_be_replayed_is_said_and_leaves_the_answer_incomplete(
    cluster: FakeApi, tmp_path: Path, capsys
):
    apply_check(cluster, "gone-to-db", source={"pod": {"name": "gone-0"}})
    proposed = write(tmp_path, "db.yaml", db_ingress_from("web"))

    code = run(cluster, "-f", proposed)

    out, err = capsys.readouterr()
    assert code == 3
    assert "shop/gone-to-db not replayed: pod shop/gone-0 not found" in err
    assert "no check flips: 2 replayed checks" in out


def test_checks_of_other_namespaces_are_replayed_with_all_namespaces_only(
    cluster: FakeApi, tmp_path: Path, capsys
):
    proposed = write(tmp_path, "db.yaml", db_ingress_from("api"))

    assert run(cluster, "-f", proposed, "-n", "payments") == 0
    assert "no check flips: 0 replayed checks" in capsys.readouterr().out
    assert run(cluster, "-f", proposed, "-A") == 1


def test_a_workload_check_is_replayed_from_the_pod_its_last_run_started_from(
    cluster: FakeApi, tmp_path: Path, capsys
):
    template = {"metadata": {"labels": {"app": "web"}}, "spec": {"containers": [{"name": "web"}]}}
    template["spec"]["containers"][0]["image"] = "web"
    cluster.create(
        DEPLOYMENTS,
        NS,
        {
            "metadata": {"name": "web"},
            "spec": {"selector": {"matchLabels": {"app": "web"}}, "template": template},
        },
    )
    running_pod(cluster, NS, "web-1", {"app": "web", "track": "canary"}, "10.244.1.6")
    created = apply_check(
        cluster, "web-app-to-db", source={"workload": {"kind": "Deployment", "name": "web"}}
    )
    # web-0 is the first Ready pod by name; the last run started from web-1, the canary.
    ran = {"address": "10.244.1.6", "node": "worker-2", "pod": "web-1"}
    status = finished(destination={"addresses": ["10.96.0.20"]}, source=ran)
    version = created["metadata"]["resourceVersion"]
    cluster.patch_status(CHECKS, NS, "web-app-to-db", status, version)
    canary = policy(
        "canary-egress",
        {"podSelector": {"matchLabels": {"track": "canary"}}, "policyTypes": ["Egress"]},
    )

    code = run(cluster, "-f", write(tmp_path, "canary.yaml", canary))

    out, _ = capsys.readouterr()
    assert code == 1
    assert "shop/web-app-to-db: pod shop/web-1 (the last run's source)" in out
    assert "shop/web-0" not in out  # web-to-db and web-to-dns start from web-0: unchanged


def test_a_name_only_the_probe_resolves_is_judged_at_the_addresses_the_last_run_reached(
    cluster: FakeApi, tmp_path: Path, capsys
):
    created = apply_check(
        cluster, "web-to-partner", destination={"fqdn": "api.partner.example", "port": 443}
    )
    status = finished(destination={"addresses": ["172.20.0.10"]})
    version = created["metadata"]["resourceVersion"]
    cluster.patch_status(CHECKS, NS, "web-to-partner", status, version)
    in_cluster_only = policy(
        "web-egress",
        {
            "podSelector": {"matchLabels": {"app": "web"}},
            "policyTypes": ["Egress"],
            "egress": [{"to": [{"ipBlock": {"cidr": "10.0.0.0/8"}}]}],
        },
    )

    code = run(cluster, "-f", write(tmp_path, "egress.yaml", in_cluster_only))

    out, _ = capsys.readouterr()
    assert code == 1
    assert "shop/web-0 -> 172.20.0.10 TCP/443: allowed -> DENIED" in out
    assert "shop/web-to-db" not in out  # db and DNS are in 10.0.0.0/8


# ---- bad input -------------------------------------------------------------------------------


def test_a_malformed_proposed_file_exits_2_naming_the_file_and_field(
    cluster: FakeApi, tmp_path: Path, capsys
):
    bad = db_ingress_from("api")
    bad["spec"]["ingress"][0]["ports"] = [{"port": 70000}]
    proposed = write(tmp_path, "bad.yaml", bad)
    since = len(cluster.calls)

    code = run(cluster, "-f", proposed)

    _, err = capsys.readouterr()
    assert code == 2
    assert err.startswith(f"kubectl hopscope policy-check: error: -f: {proposed}: document 1")
    assert "spec.ingress[0].ports[0].port" in err
    assert cluster.calls[since:] == []  # refused before the cluster is read


def test_no_proposed_files_is_a_usage_error(cluster: FakeApi, capsys):
    assert run(cluster) == 2
    assert "give -f FILE|DIR" in capsys.readouterr().err


def test_the_served_kinds_are_found_by_the_operators_discovery_and_no_other_is_listed(
    cluster: FakeApi, tmp_path: Path, capsys
):
    install_cilium_crd(cluster)
    proposed = write(tmp_path, "db.yaml", db_ingress_from("web"))
    since, looked = len(cluster.calls), len(cluster.discovered)

    assert run(cluster, "-f", proposed) == 0, capsys.readouterr().err

    assert cluster.discovered[looked:] == ["/apis", "/apis/cilium.io/v2"]
    policy_lists = {call[1] for call in cluster.calls[since:] if call[1].endswith("policies")}
    # Not a list of each registered kind to see which 404: only what discovery found.
    assert policy_lists == {NETWORK_POLICIES.plural, CILIUM.plural}


class Undiscoverable(Refusing):
    """The API with discovery failing (an aggregated API server down answers 503)."""

    def discovery(self, path: str) -> Object | None:
        raise ServiceUnavailable("the server is currently unable to handle the request")


def test_a_failed_discovery_reads_network_policies_only_and_says_the_answer_is_incomplete(
    cluster: FakeApi, tmp_path: Path, capsys
):
    install_cilium_crd(cluster)
    proposed = write(tmp_path, "db.yaml", db_ingress_from("api"))

    code = run(Undiscoverable(cluster), "-f", proposed)

    out, err = capsys.readouterr()
    assert code == 1  # what the NetworkPolicies flip is still said
    assert "shop/web-to-db" in out
    assert (
        "could not discover the policy kinds the cluster serves (the server is currently unable"
        " to handle the request): only NetworkPolicies were read, the verdicts may be incomplete"
    ) in err
    # A change that flips nothing is no "nothing flips" (0): the answer is incomplete.
    nothing = write(tmp_path, "ok.yaml", db_ingress_from("web"))
    assert run(Undiscoverable(cluster), "-f", nothing) == 3
    assert "could not discover" in capsys.readouterr().err


def test_the_fake_serves_a_custom_resource_only_once_its_crd_is_installed(healthy: FakeApi):
    # A real server answers 404 for a group it does not serve (the recordings 23 and 24): the
    # fake listed an uninstalled CiliumNetworkPolicy as an empty list instead.
    with pytest.raises(NotFound, match="404 page not found"):
        healthy.list(CILIUM, None)
    install_cilium_crd(healthy)
    assert healthy.list(CILIUM, None) == []
    clusterwide = Resource("cilium.io", "v2", "ciliumclusterwidenetworkpolicies", "X")
    with pytest.raises(NotFound, match="could not find the requested resource"):
        healthy.list(clusterwide, None)


# ---- the README -------------------------------------------------------------------------------

ROOT = Path(__file__).resolve().parents[2]
EXAMPLE = ROOT / "examples" / "policy-check" / "proposed.yaml"
README_COMMAND = "$ kubectl hopscope policy-check -f examples/policy-check/proposed.yaml -n shop\n"


def test_the_readme_shows_what_the_command_prints_for_the_example(cluster: FakeApi, capsys):
    readme = (ROOT / "README.md").read_text()
    shown = readme.split(README_COMMAND, 1)[1].split("```", 1)[0]
    install_cilium_crd(cluster)

    code = run(cluster, "-f", str(EXAMPLE), "-n", NS)

    out, err = capsys.readouterr()
    assert (code, err) == (1, "")
    assert out == shown
