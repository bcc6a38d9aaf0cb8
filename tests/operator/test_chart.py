"""The Helm chart, rendered by Helm itself (its Go SDK, through helm-python-sdk).

What a user installs: every rendered manifest is valid Kubernetes, values reach the objects,
the schema refuses bad values naming the field, and the rendered RBAC is the rule list the
operator's stories are checked against.
"""

from __future__ import annotations

import json
from ipaddress import IPv4Address
from typing import Any

import kubernetes_validate
import pytest
import yaml

from hopscope_operator.install import admission, monitoring, rbac
from hopscope_operator.install import chart as install
from hopscope_operator.names import HEALTH_PORT, SERVICE_ACCOUNT
from hopscope_policy import (
    Flow,
    PodRef,
    PolicyIndex,
    PolicyRules,
    parse_namespace,
    parse_pod,
    parse_policy,
)

from .rbac import Authorizer

helm = pytest.importorskip("helm_python", reason="helm-python-sdk (Helm's Go SDK) not installed")
VERSION = kubernetes_validate.latest_version()
FLOOR = install.OLDEST_KUBERNETES


def rendered_files(values: dict[str, Any] | None = None, namespace: str = install.NAMESPACE):
    chart = helm.Chart.load(str(install.CHART))
    try:
        return chart.render(values or {}, name="hopscope", namespace=namespace, is_install=True)
    finally:
        chart.close()


def render(values: dict[str, Any] | None = None, namespace: str = install.NAMESPACE):
    return [
        doc
        for path, text in sorted(rendered_files(values, namespace).items())
        if path.endswith(".yaml")
        for doc in yaml.safe_load_all(text)
        if doc
    ]


def notes(values: dict[str, Any] | None = None) -> str:
    return next(text for path, text in rendered_files(values).items() if path.endswith("NOTES.txt"))


def by_kind(docs: list[dict[str, Any]], kind: str) -> list[dict[str, Any]]:
    return [doc for doc in docs if doc["kind"] == kind]


def env_of(docs: list[dict[str, Any]]) -> dict[str, str]:
    [deployment] = by_kind(docs, "Deployment")
    [container] = deployment["spec"]["template"]["spec"]["containers"]
    return {e["name"]: e["value"] for e in container["env"]}


def oldest_for(doc: dict[str, Any]) -> str:
    """The oldest Kubernetes a rendered object is for: the chart's floor, or where the
    admission policy appears (the template renders it there only)."""
    if doc["apiVersion"] == admission.API_VERSION:
        return admission.OLDEST_KUBERNETES
    return FLOOR


def test_the_default_install_renders_valid_kubernetes_objects():
    docs = render()
    kinds = sorted(doc["kind"] for doc in docs)
    assert kinds == sorted(
        [
            *("ClusterRole", "ClusterRole", "ClusterRole", "ClusterRoleBinding"),
            # for people: edit and view checks, and the (unaggregated) cluster checks' admin
            *("ClusterRole", "ClusterRole", "ClusterRole"),
            "ClusterRoleBinding",
            *("ConfigMap", "Deployment", "NetworkPolicy", "Role", "RoleBinding", "Service"),
            "PodDisruptionBudget",
            *("ServiceAccount", "ServiceAccount"),
            *("ValidatingAdmissionPolicy", "ValidatingAdmissionPolicyBinding"),
        ]
    )
    for doc in docs:
        kubernetes_validate.validate(doc, VERSION, strict=True)
        kubernetes_validate.validate(doc, oldest_for(doc), strict=True)  # the oldest it is for


def test_a_namespaced_install_binds_its_rights_in_each_watched_namespace_only():
    docs = render({"watch": {"namespaces": ["shop", "payments"]}})
    for doc in docs:
        kubernetes_validate.validate(doc, VERSION, strict=True)
        kubernetes_validate.validate(doc, oldest_for(doc), strict=True)
    [cluster_binding] = by_kind(docs, "ClusterRoleBinding")  # nodes, namespaces, CRDs only
    assert cluster_binding["roleRef"]["name"] == install.NAME
    bindings = by_kind(docs, "RoleBinding")
    bound = {(b["metadata"]["namespace"], b["roleRef"]["name"]) for b in bindings}
    watch = f"{install.NAME}-watch"
    assert bound == {
        ("shop", watch),
        ("payments", watch),
        (install.NAMESPACE, watch),  # its own: the probe pods it lists and watches
        (install.NAMESPACE, install.NAME),
        ("kube-system", f"{install.NAME}-cluster-dns"),
    }
    assert env_of(docs)["HOPSCOPE_WATCH_NAMESPACES"] == "shop,payments"
    assert env_of(render())["HOPSCOPE_WATCH_NAMESPACES"] == ""
    confined = notes({"watch": {"namespaces": ["shop", "payments"]}})
    assert "shop, payments, hopscope-system" in confined
    assert "every namespace" in notes()


@pytest.mark.parametrize("listed", [[], ["shop", "payments"], ["kube-system"]])
def test_the_rendered_rbac_grants_exactly_what_the_stories_are_checked_against(listed):
    """The stories hold the operator to `rbac.allows`; the API server holds it to the
    rendered RBAC. The two agree on every request, for both kinds of install."""
    from hopscope_operator.controller.handlers import Config

    docs = render({"watch": {"namespaces": listed}})
    authorizer = Authorizer(docs)
    watched = Config.from_env(env_of(docs)).settings.watched
    resources = {r for rule in rbac.RULES for r in rule.resources} | {"secrets", "configmaps"}
    # Every group with every plural: networkpolicies are granted in two groups, each its own.
    groups = sorted({rule.group for rule in rbac.RULES})
    verbs = {v for rule in rbac.RULES for v in rule.verbs} | {"update", "deletecollection"}
    namespaces = (None, install.NAMESPACE, "shop", "payments", "kube-system", "default")
    account = (install.NAMESPACE, install.NAME)
    names = (None, install.NAME, "default")  # the token rule names the operator's account
    disagree = [
        (verb, group, resource, namespace, name)
        for verb in sorted(verbs)
        for group in groups
        for resource in sorted(resources)
        for namespace in namespaces
        for name in names
        if authorizer.allows(account, verb, resource, namespace, name, group=group)
        != rbac.allows(verb, resource, namespace, name, group=group, watched=watched)
    ]
    assert disagree == []
    assert rbac.allows("create", "serviceaccounts/token", install.NAMESPACE, install.NAME)
    assert not rbac.allows("create", "serviceaccounts/token", install.NAMESPACE, "default")
    assert not authorizer.allows(account, "get", "secrets", "shop")
    assert rbac.allows("list", "networkpolicies", "shop", group="networking.k8s.io")
    assert not rbac.allows("list", "networkpolicies", "shop", group="apps")
    probe_account = (install.NAMESPACE, SERVICE_ACCOUNT)
    assert not any(authorizer.allows(probe_account, "get", r, None) for r in resources)


@pytest.mark.parametrize(("replicas", "budgets"), [(None, 1), (3, 1), (1, 0)])
def test_replicas_roll_one_at_a_time_on_different_nodes_and_a_budget_keeps_one(replicas, budgets):
    docs = render({} if replicas is None else {"replicas": replicas})
    [deployment] = by_kind(docs, "Deployment")
    spec = deployment["spec"]
    assert spec["replicas"] == (replicas or 2)  # a number, not a string
    assert spec["strategy"] == {
        "type": "RollingUpdate",
        "rollingUpdate": {"maxUnavailable": 0, "maxSurge": 1},
    }
    [term] = spec["template"]["spec"]["affinity"]["podAntiAffinity"][
        "preferredDuringSchedulingIgnoredDuringExecution"
    ]
    assert term["podAffinityTerm"]["topologyKey"] == "kubernetes.io/hostname"
    assert (
        term["podAffinityTerm"]["labelSelector"]["matchLabels"] == spec["selector"]["matchLabels"]
    )
    # One replica under a budget of one available would block every node drain: none then.
    found = by_kind(docs, "PodDisruptionBudget")
    assert len(found) == budgets
    for budget in found:
        kubernetes_validate.validate(budget, VERSION, strict=True)
        kubernetes_validate.validate(budget, FLOOR, strict=True)
        assert budget["spec"]["minAvailable"] == 1
        assert budget["spec"]["selector"] == spec["selector"]


def test_values_reach_the_operator_and_the_metrics_policy():
    docs = render(
        {
            "image": {"operator": "registry.local/op:1", "probe": "registry.local/probe:1"},
            "probes": {"maxPods": 7, "maxPodsPerNode": 2},
            "tickSeconds": 3,
            "monitoring": {"allowFromNamespace": "observability"},
        }
    )
    [deployment] = by_kind(docs, "Deployment")
    assert deployment["spec"]["template"]["spec"]["containers"][0]["image"] == "registry.local/op:1"
    env = env_of(docs)
    assert env["HOPSCOPE_PROBE_IMAGE"] == "registry.local/probe:1"
    assert (env["HOPSCOPE_MAX_PROBE_PODS"], env["HOPSCOPE_MAX_PROBE_PODS_PER_NODE"]) == ("7", "2")
    assert env["HOPSCOPE_TICK_SECONDS"] == "3"
    [policy] = by_kind(docs, "NetworkPolicy")
    source = policy["spec"]["ingress"][0]["from"][0]["namespaceSelector"]["matchLabels"]
    assert source == {"kubernetes.io/metadata.name": "observability"}


def test_the_operator_pod_admits_metrics_from_monitoring_and_health_probes_from_its_node():
    docs = render()
    [deployment] = by_kind(docs, "Deployment")
    operator = {
        "metadata": {
            "name": "hopscope-operator-0",
            "namespace": install.NAMESPACE,
            "labels": deployment["spec"]["template"]["metadata"]["labels"],
        },
        "spec": deployment["spec"]["template"]["spec"],
        "status": {"podIP": "10.244.1.9"},
    }
    scraper = {
        "metadata": {"name": "prometheus-0", "namespace": "monitoring"},
        "spec": {"containers": [{"name": "p"}]},
        "status": {"podIP": "10.244.2.3"},
    }
    namespaces = [
        {"metadata": {"name": name, "labels": {"kubernetes.io/metadata.name": name}}}
        for name in (install.NAMESPACE, "monitoring")
    ]
    rules = PolicyRules(
        [parse_namespace(n) for n in namespaces],
        [parse_policy(p) for p in by_kind(docs, "NetworkPolicy")],
    )
    index = PolicyIndex([parse_pod(operator), parse_pod(scraper)], rules)
    target = PodRef(install.NAMESPACE, "hopscope-operator-0")
    scrape = PodRef("monitoring", "prometheus-0")
    node = IPv4Address("172.18.0.2")  # the kubelet, probing from the node's address
    assert index.evaluate(Flow(scrape, target, install.METRICS_PORT)).allowed
    assert not index.evaluate(Flow(node, target, install.METRICS_PORT)).allowed
    assert index.evaluate(Flow(node, target, HEALTH_PORT)).allowed


def test_large_numbers_reach_the_operator_as_integers_it_reads():
    # Helm holds numbers as floats: printed plainly, 1000000 would be "1e+06".
    from hopscope_operator.controller.handlers import Config

    env = env_of(render({"probes": {"maxPods": 1_000_000, "maxPodsPerNode": 2_000_000}}))
    caps = Config.from_env(env).settings.caps
    assert (caps.max_pods, caps.max_pods_per_node) == (1_000_000, 2_000_000)


def test_prometheus_operator_objects_and_the_dashboard_follow_their_switches():
    docs = render({"monitoring": {"serviceMonitor": True, "prometheusRule": True}})
    [rule] = by_kind(docs, "PrometheusRule")
    assert rule["spec"] == monitoring.rule_groups()  # Prometheus' {{ $labels }} left intact
    [monitor] = by_kind(docs, "ServiceMonitor")
    assert monitor["spec"]["endpoints"][0]["port"] == "metrics"
    [dashboard] = by_kind(docs, "ConfigMap")
    assert json.loads(dashboard["data"]["hopscope.json"]) == monitoring.dashboard()
    assert by_kind(render({"monitoring": {"dashboard": False}}), "ConfigMap") == []


def test_the_service_monitor_keeps_the_checks_own_namespace_label():
    # Every check series has a `namespace` label (the check's); the target's must not win.
    [monitor] = by_kind(render({"monitoring": {"serviceMonitor": True}}), "ServiceMonitor")
    assert [e.get("honorLabels") for e in monitor["spec"]["endpoints"]] == [True]


@pytest.mark.parametrize(
    ("values", "where"),
    [
        ({"probes": {"maxPods": 0}}, "/probes/maxPods"),
        ({"tickSeconds": "fast"}, "/tickSeconds"),
        ({"image": {"probe": ""}}, "/image/probe"),
        ({"probes": {"maxPod": 3}}, "maxPod"),
        ({"watch": {"namespaces": ["Shop"]}}, "/watch/namespaces/0"),
        ({"watch": {"namespaces": "shop"}}, "/watch/namespaces"),
        ({"image": {"pullPolicy": "Sometimes"}}, "/image/pullPolicy"),
        ({"image": {"probePullPolicy": "always"}}, "/image/probePullPolicy"),
        ({"tenancy": {"allowNodeSources": "yes"}}, "/tenancy/allowNodeSources"),
    ],
)
def test_the_schema_refuses_bad_values_naming_the_field(values, where):
    with pytest.raises(helm.HelmValuesError, match=where):
        render(values)


def test_installing_elsewhere_fails_with_the_reason():
    with pytest.raises(helm.HelmRenderError, match="install hopscope into the hopscope-system"):
        render(namespace="default")


@pytest.mark.parametrize("values", [{}, {"watch": {"namespaces": ["shop", "payments"]}}])
def test_helm_lint_finds_no_errors(values):
    report = helm.lint(str(install.CHART), values, namespace=install.NAMESPACE)
    assert report["errors"] == []
    assert not [m for m in report["messages"] if m["severity"] > 1], report["messages"]


def test_probe_pod_values_reach_the_probe_pods_the_operator_makes():
    # values -> the chart's env -> the operator's settings -> a probe pod, end to end.
    from hopscope_operator.controller.handlers import Config
    from hopscope_operator.controller.plan import BatchItem, probe_pod
    from hopscope_probe.models import ProbeRequest

    pod_values = {
        "priorityClassName": "system-node-critical",
        "tolerations": [{"key": "dedicated", "operator": "Equal", "value": "gateway's"}],
        "resources": {"limits": {"memory": "768Mi"}},
    }
    env = env_of(render({"probes": {"pod": pod_values}}))
    settings = Config.from_env(env).settings
    item = BatchItem("shop/web", 1, "host", ProbeRequest(host="10.0.0.1", port=80))
    pod = probe_pod("worker-1", [item], image="p:1", namespace="hopscope-system", tick=1,
                    settings=settings.probe_pod)  # fmt: skip
    assert pod["spec"]["priorityClassName"] == "system-node-critical"
    assert pod["spec"]["tolerations"] == pod_values["tolerations"]
    # Helm merges maps with the defaults: only the memory limit changed.
    assert pod["spec"]["containers"][0]["resources"] == {
        "requests": {"cpu": "50m", "memory": "96Mi"},
        "limits": {"cpu": "1", "memory": "768Mi"},
    }
    kubernetes_validate.validate(pod, VERSION, strict=True)


def test_pull_policies_reach_the_operator_and_its_probe_pods():
    # A mutable tag (latest, a branch build) is only picked up again with Always.
    from hopscope_operator.controller.handlers import Config
    from hopscope_operator.controller.plan import BatchItem, probe_pod
    from hopscope_probe.models import ProbeRequest

    def policies(values: dict[str, Any]) -> tuple[str, str]:
        docs = render(values)
        [deployment] = by_kind(docs, "Deployment")
        [operator] = deployment["spec"]["template"]["spec"]["containers"]
        settings = Config.from_env(env_of(docs)).settings
        item = BatchItem("shop/web", 1, "host", ProbeRequest(host="10.0.0.1", port=80))
        pod = probe_pod("worker-1", [item], image="p:1", namespace=install.NAMESPACE, tick=1,
                        pull_policy=settings.pull_policy)  # fmt: skip
        kubernetes_validate.validate(pod, VERSION, strict=True)
        [probe] = pod["spec"]["containers"]
        return operator["imagePullPolicy"], probe["imagePullPolicy"]

    assert policies({}) == ("IfNotPresent", "IfNotPresent")
    chosen = {"image": {"pullPolicy": "Always", "probePullPolicy": "Never"}}
    assert policies(chosen) == ("Always", "Never")
