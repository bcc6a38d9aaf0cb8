"""The generated install: valid manifests, least privilege, and committed files up to date."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import kubernetes_validate
import pytest
import yaml

from hopscope_operator.install import chart as install
from hopscope_operator.install import rbac
from hopscope_operator.install.values import UNQUOTED, default_of
from hopscope_operator.names import SERVICE_ACCOUNT

VERSION = kubernetes_validate.latest_version()
DOCUMENTS = [doc for docs in install.manifests().values() for doc in docs]
INTEGER = re.compile(re.escape(UNQUOTED) + r"\{\{ int \.Values\.([\w.]+) \}\}")


def with_defaults(node: Any) -> Any:
    """An integer field's Helm expression as Helm renders it with the default values (the
    chart tests render all of it with Helm itself)."""
    if isinstance(node, dict):
        return {key: with_defaults(value) for key, value in node.items()}
    if isinstance(node, list):
        return [with_defaults(item) for item in node]
    found = INTEGER.fullmatch(node) if isinstance(node, str) else None
    return default_of(found.group(1)) if found else node


def test_the_committed_chart_is_what_the_generator_writes():
    assert install.main(["--check"]) == 0, "run: python -m hopscope_operator.install.chart"


def test_the_chart_carries_the_generated_crd():
    crd = install.CHART / "crds" / "connectivitycheck.yaml"
    repo_crd = Path(install.CHART).parents[1] / "crds" / "connectivitycheck.yaml"
    assert crd.read_text() == repo_crd.read_text()


@pytest.mark.parametrize("doc", DOCUMENTS, ids=lambda d: f"{d['kind']}/{d['metadata']['name']}")
def test_every_manifest_validates_against_the_kubernetes_schema(doc):
    kubernetes_validate.validate(with_defaults(doc), VERSION, strict=True)


def test_the_probe_account_can_do_nothing_and_mounts_no_token():
    [probe] = [d for d in DOCUMENTS if d["metadata"]["name"] == SERVICE_ACCOUNT]
    assert probe["automountServiceAccountToken"] is False
    bound = [s["name"] for d in DOCUMENTS if "subjects" in d for s in d["subjects"]]
    assert SERVICE_ACCOUNT not in bound


def test_the_operator_may_write_pods_only_in_the_probe_namespace_and_never_read_secrets():
    assert rbac.allows("create", "pods", install.NAMESPACE)
    assert not rbac.allows("create", "pods", "default")
    assert not rbac.allows("delete", "pods", "kube-system")
    assert not any("secrets" in rule.resources for rule in rbac.RULES)
    assert not any("*" in rule.verbs or "*" in rule.resources for rule in rbac.RULES)
    assert not rbac.allows("update", "connectivitychecks", "default")  # status only


def test_the_operator_runs_unprivileged():
    [deployment] = [d for d in DOCUMENTS if d["kind"] == "Deployment"]
    pod = deployment["spec"]["template"]["spec"]
    assert pod["securityContext"]["runAsNonRoot"] is True
    [container] = pod["containers"]
    assert container["securityContext"]["capabilities"] == {"drop": ["ALL"]}
    assert container["securityContext"]["allowPrivilegeEscalation"] is False


def test_chart_yaml_is_a_helm_v2_chart():
    chart = yaml.safe_load((install.CHART / "Chart.yaml").read_text())
    assert (chart["apiVersion"], chart["name"]) == ("v2", "hopscope")


def test_the_sidecar_example_patched_into_its_gateway_is_a_valid_deployment():
    examples = install.CHART.parents[1] / "examples" / "sidecar"
    gateway = yaml.safe_load((examples / "gateway.yaml").read_text())
    patch = yaml.safe_load((examples / "hopscope-sidecar.yaml").read_text())
    kustomization = yaml.safe_load((examples / "kustomization.yaml").read_text())
    assert kustomization["resources"] == ["gateway.yaml"]
    assert kustomization["patches"][0]["path"] == "hopscope-sidecar.yaml"
    # A strategic merge adds the container by name beside the workload's own.
    pod = gateway["spec"]["template"]["spec"]
    pod["containers"] += patch["spec"]["template"]["spec"]["containers"]
    kubernetes_validate.validate(gateway, VERSION, strict=True)
    assert [c["name"] for c in pod["containers"]] == ["envoy", "hopscope-agent"]


def test_a_namespaced_install_reads_only_its_namespaces_and_the_cluster_dns():
    watched = ("hopscope-system", "shop")
    assert rbac.allows("list", "connectivitychecks", "shop", watched=watched)
    assert not rbac.allows("list", "connectivitychecks", None, watched=watched)  # all namespaces
    assert not rbac.allows("get", "services", "payments", watched=watched)
    # The cluster DNS Service, its slices and pods, cached: listed and watched, never a get.
    for plural in ("services", "endpointslices", "pods", "networkpolicies"):
        assert rbac.allows("list", plural, "kube-system", watched=watched)
        assert rbac.allows("watch", plural, "kube-system", watched=watched)
    assert not rbac.allows("get", "services", "kube-system", watched=watched)
    assert not rbac.allows("list", "connectivitychecks", "kube-system", watched=watched)
    assert rbac.allows("watch", "nodes", None, watched=watched)  # cluster-scoped: always
    assert not rbac.allows("get", "nodes", None)  # cached: listed and watched, never a get
    assert rbac.allows("list", "pods", None)  # cluster-wide install
