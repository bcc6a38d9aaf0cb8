"""The chart's values and the pieces its templates are built from.

`ChartValues` is the one definition of values.yaml and values.schema.json; `value()` and
`values_ref()` write the Helm expressions for a value, checked against that model so a template
cannot name a value that does not exist; `meta()` is every object's metadata.
"""

from __future__ import annotations

from typing import Any

from pydantic import Field

from hopscope_operator.api import NamespaceName
from hopscope_operator.controller.plan import ProbePodSettings, PullPolicy
from hopscope_operator.names import (
    DEFAULT_CHECK_BUDGET_SECONDS,
    DEFAULT_MAX_CHECKS_PER_POD,
    DEFAULT_MAX_PROBE_PODS,
    DEFAULT_MAX_PROBE_PODS_PER_NODE,
    DEFAULT_TICK_SECONDS,
    LABEL_APP,
    NAMESPACE,
    OPERATOR_IMAGE,
    PROBE_IMAGE,
)
from hopscope_probe.models import Schema

Manifest = dict[str, Any]


class ImageValues(Schema):
    operator: str = Field(default=OPERATOR_IMAGE, min_length=1, description="The operator's image.")
    probe: str = Field(
        default=PROBE_IMAGE, min_length=1, description="The probe image, run by probe pods."
    )
    pull_policy: PullPolicy = Field(
        default=PullPolicy.IF_NOT_PRESENT, description="The operator image's imagePullPolicy."
    )
    probe_pull_policy: PullPolicy = Field(
        default=PullPolicy.IF_NOT_PRESENT,
        description="The probe image's imagePullPolicy, in the probe pods the operator creates.",
    )


class ProbeValues(Schema):
    pod: ProbePodSettings = Field(
        default_factory=ProbePodSettings,
        description="Probe pods' tolerations, priority class and resources.",
    )
    max_pods: int = Field(
        default=DEFAULT_MAX_PROBE_PODS, ge=1, description="Probe pods in flight, cluster-wide."
    )
    max_pods_per_node: int = Field(
        default=DEFAULT_MAX_PROBE_PODS_PER_NODE, ge=1, description="Probe pods in flight per node."
    )
    max_checks_per_pod: int = Field(
        default=DEFAULT_MAX_CHECKS_PER_POD,
        ge=1,
        le=200,
        description="Checks one probe pod runs (one node, one tick).",
    )
    check_budget_seconds: int = Field(
        default=DEFAULT_CHECK_BUDGET_SECONDS,
        ge=1,
        description="The longest one check may run in a probe pod: past it, it is stopped and"
        " its result says so (its node's other checks wait no longer).",
    )


class MonitoringValues(Schema):
    service_monitor: bool = Field(
        default=False, description="A ServiceMonitor (needs the Prometheus Operator's CRDs)."
    )
    prometheus_rule: bool = Field(
        default=False, description="The alert rules as a PrometheusRule (Prometheus Operator)."
    )
    dashboard: bool = Field(
        default=True, description="The Grafana dashboard as a ConfigMap for Grafana's sidecar."
    )
    allow_from_namespace: str = Field(
        default="monitoring",
        min_length=1,
        description="The only namespace whose pods may scrape /metrics (NetworkPolicy).",
    )


class MetricsValues(Schema):
    """Opt-in per-check series of /metrics. Off, /metrics holds what the alerts and the
    dashboard's check panels read (about 1.2 KiB per check); the README gives each one's cost."""

    per_check_histograms: bool = Field(
        default=False,
        description="hopscope_check_run_duration_seconds, a histogram of each check's run"
        " time (14 series per check).",
    )
    per_hop_series: bool = Field(
        default=False,
        description="hopscope_hop_latency_seconds, hopscope_path_hop_info and"
        " hopscope_path_edge_info: a series per hop and edge of each check's last path (the"
        " dashboard's per-hop latency and hop topology panels).",
    )
    per_check_counters: bool = Field(
        default=False,
        description="hopscope_check_probes_sent_total, hopscope_check_probes_failed_total and"
        " hopscope_check_runs_total (by outcome) per check.",
    )


class WatchValues(Schema):
    namespaces: list[NamespaceName] = Field(
        default_factory=list,
        description="Namespaces whose checks hopscope runs, and the only ones it reads and is"
        " granted (a RoleBinding in each, so each must exist; plus read access to the cluster"
        " DNS in kube-system); empty: every namespace (ClusterRoleBinding). The release"
        " namespace is always watched.",
    )


class TenancyValues(Schema):
    """What a namespaced ConnectivityCheck may reach beyond its own namespace's pods."""

    allow_node_sources: bool = Field(
        default=False,
        description="Let a ConnectivityCheck probe from a node (the host's network, control"
        " plane included): whoever may create one then reaches every node's localhost.",
    )
    allow_other_namespace_sources: bool = Field(
        default=False,
        description="Let a ConnectivityCheck probe from a pod or workload of another namespace"
        " (it enters that pod's network namespace).",
    )
    allow_unsafe_http_methods: bool = Field(
        default=False,
        description="Let a ConnectivityCheck send POST, PUT, PATCH or DELETE (else only GET,"
        " HEAD and OPTIONS).",
    )
    aggregate_to_default_roles: bool = Field(
        default=True,
        description="Let the namespaces' edit and admin roles create ConnectivityChecks (view:"
        " read them), through the hopscope-operator-checks-edit/-view ClusterRoles. With a"
        " widening value above, every namespace editor gets its reach: consider turning this"
        " off then and binding the ClusterRoles where you mean to.",
    )
    admission_policy: bool = Field(
        default=True,
        description="A ValidatingAdmissionPolicy refusing what these values do not allow at"
        " kubectl apply (Kubernetes 1.30 or later; skipped on older clusters, where the"
        " operator alone refuses it: Ready=False).",
    )


class ChartValues(Schema):
    """The chart's values: values.yaml and values.schema.json are generated from this."""

    watch: WatchValues = Field(default_factory=WatchValues)
    image: ImageValues = Field(default_factory=ImageValues)
    probes: ProbeValues = Field(default_factory=ProbeValues)
    replicas: int = Field(
        default=2,
        ge=1,
        description="Operator replicas: the one holding the Lease runs the checks, the others"
        " take over within 15 s when it goes; from 2 on, a PodDisruptionBudget keeps one up.",
    )
    tick_seconds: int = Field(
        default=DEFAULT_TICK_SECONDS,
        ge=1,
        le=60,
        description="How often the operator looks for due checks.",
    )
    monitoring: MonitoringValues = Field(default_factory=MonitoringValues)
    metrics: MetricsValues = Field(default_factory=MetricsValues)
    tenancy: TenancyValues = Field(default_factory=TenancyValues)


def default_of(path: str) -> Any:
    """The default of the value at `path` (e.g. "image.probe"), which must exist."""
    node: Any = ChartValues()
    for part in path.split("."):
        names = {info.alias or name: name for name, info in type(node).model_fields.items()}
        node = getattr(node, names[part])
    return node


def values_ref(path: str) -> str:
    """`.Values.<path>`, checked against the values model so a template cannot name a value
    that does not exist."""
    default_of(path)
    return f".Values.{path}"


def value(path: str, *, as_base64_json: bool = False, joined: bool = False) -> str:
    """A Helm expression for the value at `path`. A structured value travels as base64 JSON:
    nothing in it can break the YAML it is written into; a list of names comma-joined. Helm
    reads numbers as floats and prints 1000000 as 1e+06: an integer goes through `int`."""
    ref = values_ref(path)
    if as_base64_json:
        return f"{{{{ toJson {ref} | b64enc }}}}"
    if joined:
        return f'{{{{ join "," {ref} }}}}'
    if type(default_of(path)) is int:
        return f"{{{{ int {ref} }}}}"
    return f"{{{{ {ref} }}}}"


UNQUOTED = "<unquoted>"  # the chart writer drops the quotes YAML puts around a string


def integer(path: str) -> str:
    """`value()` of an integer field: unquoted, so the API server reads a number."""
    return UNQUOTED + value(path)


def meta(name: str, namespace: str | None = NAMESPACE) -> Manifest:
    meta: Manifest = {
        "name": name,
        "labels": {LABEL_APP: "hopscope", "app.kubernetes.io/component": name},
    }
    if namespace:
        meta["namespace"] = namespace
    return meta
