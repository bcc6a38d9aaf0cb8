"""What users alert on and look at: Prometheus alert rules and the Grafana dashboard.

Both are built from the metric names `controller/metrics.py` exports, and tests hold them to
it: the rules pass `promtool check rules` and `promtool test rules` on synthetic series, and
every query of the dashboard names only exported series.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from hopscope_operator.controller.metrics import COMMON
from hopscope_operator.names import NAME, NAMESPACE

Manifest = dict[str, Any]
CHECK = "{{ $labels.namespace }}/{{ $labels.check }}"
FROM_TO = "from {{ $labels.source }} to {{ $labels.destination }} over {{ $labels.protocol }}"
OPERATOR = "hopscope-operator"
# Unlabeled and exported from the operator's start: absent only when Prometheus scrapes no
# operator, whatever its scrape job is called (a failed scrape marks it stale at once).
OPERATOR_ALIVE = "hopscope_probe_pods_in_flight"


def per_check(selector: str, *extra: str) -> str:
    """The series by the check's own labels only, dropping the scrape target's (pod, instance,
    job, whatever a scrape config adds): a new operator pod's series would otherwise be another
    alert, resolving every firing one and re-firing it only after its `for`."""
    return f"max by ({', '.join((*COMMON, *extra))}) ({selector})"


@dataclass(frozen=True)
class Alert:
    name: str
    expr: str
    duration: str
    severity: str
    summary: str
    description: str

    def as_rule(self) -> Manifest:
        return {
            "alert": self.name,
            "expr": self.expr,
            "for": self.duration,
            "labels": {"severity": self.severity},
            "annotations": {"summary": self.summary, "description": self.description},
        }


ALERTS = (
    Alert(
        "HopscopeCheckUnreachable",
        per_check("hopscope_check_reachable") + " == 0",
        "5m",
        "critical",
        f"{CHECK} is unreachable",
        f"Connection {FROM_TO} has failed for 5 minutes: "
        f"kubectl describe ccheck -n {{{{ $labels.namespace }}}} {{{{ $labels.check }}}}",
    ),
    Alert(
        "HopscopeCheckLatencyHigh",
        per_check('hopscope_check_latency_seconds{stat="avg"}')
        + " > "
        + per_check("hopscope_check_latency_threshold_seconds"),
        "10m",
        "warning",
        f"{CHECK} is slower than its threshold",
        f"Average latency {FROM_TO} is {{{{ $value | humanizeDuration }}}}, over the check's "
        "threshold for 10 minutes; the status names the hop where it starts.",
    ),
    Alert(
        "HopscopeCheckProbeLoss",
        per_check("hopscope_check_probe_loss_ratio")
        + " > "
        + per_check("hopscope_check_loss_threshold_ratio")
        + " unless on(namespace, check) hopscope_check_reachable == 0",
        "10m",
        "warning",
        f"{CHECK} loses probes",
        f"{{{{ $value | humanizePercentage }}}} of the last run's probes {FROM_TO} failed, over "
        "the check's loss threshold; the status locates the hop where the loss starts.",
    ),
    Alert(
        "HopscopeProbeCannotRun",
        per_check('hopscope_check_issues{type="Probe", severity="Error"}', "type") + " > 0",
        "10m",
        "warning",
        f"The probe for {CHECK} cannot run",
        "The probe pod could not run or deliver (unschedulable, image pull, OOM, deadline, "
        "privileges): the Reachable condition's reason says which.",
    ),
    Alert(
        "HopscopeOperatorDown",
        f"absent({OPERATOR_ALIVE})",
        "5m",
        "critical",
        "The hopscope operator is down",
        "Prometheus has no metrics from the operator (down, or not scraped); no check runs and "
        "no result is written while it is down: "
        f"kubectl -n {NAMESPACE} logs deploy/{NAME}",
    ),
    Alert(
        "HopscopeOperatorNoLeader",
        # Every replica exports it (1 on the Lease's holder): up, yet none runs the checks.
        "max(hopscope_operator_leader) == 0",
        "5m",
        "critical",
        "No hopscope operator replica leads",
        "The operator runs but no replica holds its Lease, so no check runs and no result is "
        "written; its log says why (the Lease refused, the API server unreachable): "
        f"kubectl -n {NAMESPACE} logs deploy/{NAME}",
    ),
)


def rule_groups() -> Manifest:
    """The rules as a Prometheus rule file (what promtool reads)."""
    return {"groups": [{"name": "hopscope", "rules": [alert.as_rule() for alert in ALERTS]}]}


def prometheus_rule(namespace: str) -> Manifest:
    return {
        "apiVersion": "monitoring.coreos.com/v1",
        "kind": "PrometheusRule",
        "metadata": {"name": "hopscope", "namespace": namespace},
        "spec": rule_groups(),
    }


def service_monitor(namespace: str, selector: dict[str, str]) -> Manifest:
    return {
        "apiVersion": "monitoring.coreos.com/v1",
        "kind": "ServiceMonitor",
        "metadata": {"name": OPERATOR, "namespace": namespace},
        "spec": {
            "selector": {"matchLabels": selector},
            # The series' own `namespace` is the check's: without honorLabels Prometheus
            # would overwrite it with the target's (hopscope-system) and move it aside.
            "endpoints": [{"port": "metrics", "interval": "30s", "honorLabels": True}],
        },
    }


# ---- the dashboard ---------------------------------------------------------------------------

SELECTED = 'namespace="$namespace", check=~"$check"'


def _panel(panel_id: int, title: str, kind: str, grid: tuple[int, int, int, int], **extra: Any):
    x, y, w, h = grid
    return {
        "id": panel_id,
        "title": title,
        "type": kind,
        "datasource": {"type": "prometheus", "uid": "${datasource}"},
        "gridPos": {"x": x, "y": y, "w": w, "h": h},
        **extra,
    }


def _target(expr: str, legend: str = "", ref: str = "A", **extra: Any) -> Manifest:
    return {"refId": ref, "expr": expr, "legendFormat": legend, **extra}


def dashboard() -> Manifest:
    variables = [
        {"name": "datasource", "type": "datasource", "query": "prometheus"},
        {
            "name": "namespace",
            "type": "query",
            "datasource": {"type": "prometheus", "uid": "${datasource}"},
            "query": "label_values(hopscope_check_reachable, namespace)",
        },
        {
            "name": "check",
            "type": "query",
            "datasource": {"type": "prometheus", "uid": "${datasource}"},
            "query": 'label_values(hopscope_check_reachable{namespace="$namespace"}, check)',
            "includeAll": True,
            "multi": True,
        },
        {
            # The node graph's own, single-valued: Grafana renders a multi-value or All pick as
            # a regex alternation, which the graph's exact matcher never matches.
            "name": "topology_check",
            "label": "topology of",
            "type": "query",
            "datasource": {"type": "prometheus", "uid": "${datasource}"},
            "query": 'label_values(hopscope_path_hop_info{namespace="$namespace"}, check)',
            "includeAll": False,
            "multi": False,
        },
    ]
    seconds = {"defaults": {"unit": "s"}, "overrides": []}
    panels = [
        _panel(
            1,
            "Reachable",
            "state-timeline",
            (0, 0, 24, 6),
            targets=[_target(f"hopscope_check_reachable{{{SELECTED}}}", "{{check}}")],
        ),
        _panel(
            2,
            "Latency min / avg / max",
            "timeseries",
            (0, 6, 12, 8),
            fieldConfig=seconds,
            targets=[
                _target(f"hopscope_check_latency_seconds{{{SELECTED}}}", "{{check}} {{stat}}")
            ],
        ),
        _panel(
            3,
            "Probe loss (last run)",
            "timeseries",
            (12, 6, 12, 8),
            fieldConfig={"defaults": {"unit": "percentunit"}, "overrides": []},
            targets=[_target(f"hopscope_check_probe_loss_ratio{{{SELECTED}}}", "{{check}}")],
        ),
        _panel(
            4,
            "Issues by type",
            "bargauge",
            (0, 14, 12, 8),
            targets=[
                _target(
                    f"sum by (type, severity) (hopscope_check_issues{{{SELECTED}}})",
                    "{{type}} ({{severity}})",
                )
            ],
        ),
        _panel(
            5,
            "Latency per hop (last path)",
            "bargauge",
            (12, 14, 12, 8),
            fieldConfig=seconds,
            targets=[
                _target(
                    f"hopscope_hop_latency_seconds{{{SELECTED}}}",
                    "{{check}} ttl {{hop_ttl}} {{hop_address}}",
                )
            ],
        ),
        _topology_panel(),
        _panel(
            7,
            "Path changes",
            "timeseries",
            (0, 36, 24, 6),
            targets=[
                _target(
                    f"increase(hopscope_check_path_changes_total{{{SELECTED}}}[1h])", "{{check}}"
                )
            ],
        ),
    ]
    return {
        "title": "hopscope: connectivity checks",
        "uid": "hopscope-checks",
        "tags": ["hopscope", "network"],
        "schemaVersion": 39,
        "time": {"from": "now-6h", "to": "now"},
        "templating": {"list": variables},
        "panels": panels,
    }


def _topology_panel() -> Manifest:
    """Grafana's node graph from two instant tables: hops (nodes) and path edges (edges).

    Each query keeps only the labels the graph reads: Grafana takes any frame with a field
    named `source` (as the check's own label is) for the edges. The transformation renames
    them to the node graph's fields: id/title for nodes, id/source/target for edges (hop ids
    are the status's, so edges meet their nodes).
    """
    one_check = 'namespace="$namespace", check="$topology_check"'
    nodes = _target(
        f"sum by ({', '.join(NODE_FIELDS)}) (hopscope_path_hop_info{{{one_check}}})",
        ref="nodes",
        format="table",
        instant=True,
    )
    edges = _target(
        f"sum by ({', '.join(EDGE_FIELDS)}) (hopscope_path_edge_info{{{one_check}}})",
        ref="edges",
        format="table",
        instant=True,
    )
    return _panel(
        6,
        "Hop topology of $topology_check",
        "nodeGraph",
        (0, 22, 24, 14),
        targets=[nodes, edges],
        transformations=[
            {"id": "organize", "options": {"renameByName": {**NODE_FIELDS, **EDGE_FIELDS}}}
        ],
    )


# The labels each topology query keeps, and the node graph's field each becomes.
NODE_FIELDS = {"hop_id": "id", "hop_address": "title"}
EDGE_FIELDS = {"edge": "id", "from_hop": "source", "to_hop": "target"}


def dashboard_config_map(namespace: str) -> Manifest:
    """The dashboard as Grafana's sidecar picks it up (label grafana_dashboard=1)."""
    return {
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": {
            "name": "hopscope-dashboard",
            "namespace": namespace,
            "labels": {"grafana_dashboard": "1"},
        },
        "data": {"hopscope.json": json.dumps(dashboard(), indent=2)},
    }
