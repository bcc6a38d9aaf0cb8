"""Alert rules on synthetic series (promtool), and a dashboard that queries what is exported."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml
from prometheus_client import generate_latest
from prometheus_client.parser import text_string_to_metric_families

from hopscope_operator.controller.metrics import CheckLabels, Metrics, MetricsOptions
from hopscope_operator.install import monitoring
from hopscope_probe.models import Issue, IssueType, Origin, Severity
from tests.builders import hop, result

PROMTOOL = shutil.which("promtool")
needs_promtool = pytest.mark.skipif(
    PROMTOOL is None, reason="promtool not on PATH (Debian: apt-get install prometheus)"
)
LABELS = {
    "namespace": "shop",
    "check": "web-to-db",
    "source": "pod/shop/web-0",
    "destination": "service/shop/db:5432",
    "protocol": "TCP",
}
FROM_TO = "from pod/shop/web-0 to service/shop/db:5432 over TCP"


def series(name: str, values: str, **extra: str) -> dict[str, str]:
    labels = ",".join(f'{k}="{v}"' for k, v in {**LABELS, **extra}.items())
    return {"series": f"{name}{{{labels}}}", "values": values}


# The labels the chart's ServiceMonitor adds: the operator pod's change on each rollout.
OLD_POD = {
    "job": "hopscope-operator",
    "service": "hopscope-operator",
    "endpoint": "metrics",
    "container": "operator",
    "pod": "hopscope-operator-6d5f8-aaaaa",
    "instance": "10.0.0.5:9090",
}
NEW_POD = {**OLD_POD, "pod": "hopscope-operator-6d5f8-bbbbb", "instance": "10.0.0.9:9090"}


def pod(labels: dict[str, str]) -> str:
    """A series selector's labels: the scrape target's only (an unlabeled metric)."""
    return ",".join(f'{k}="{v}"' for k, v in labels.items())


def rolled_out(name: str, value: str, **extra: str) -> list[dict[str, str]]:
    """A series whose operator pod is replaced at 21m: the old pod's series goes stale, the new
    pod's (re-exported from the checks' status) is scraped from then on."""
    return [
        series(name, f"{value}x20 stale", **OLD_POD, **extra),
        series(name, f"_x21 {value}x20", **NEW_POD, **extra),
    ]


def firing(alert: str, at: str, annotations: dict[str, str], **extra: str) -> dict[str, Any]:
    severity = next(a.severity for a in monitoring.ALERTS if a.name == alert)
    return {
        "eval_time": at,
        "alertname": alert,
        "exp_alerts": [
            {
                "exp_labels": {**LABELS, **extra, "severity": severity},
                "exp_annotations": annotations,
            }
        ],
    }


def silent(alert: str, at: str) -> dict[str, Any]:
    return {"eval_time": at, "alertname": alert, "exp_alerts": []}


# What the alerts say of the cases' check (its latency 300ms).
ANNOTATIONS = {
    "HopscopeCheckUnreachable": {
        "summary": "shop/web-to-db is unreachable",
        "description": f"Connection {FROM_TO} has failed for 5 minutes: "
        "kubectl describe ccheck -n shop web-to-db",
    },
    "HopscopeCheckLatencyHigh": {
        "summary": "shop/web-to-db is slower than its threshold",
        "description": f"Average latency {FROM_TO} is 300ms, over the check's "
        "threshold for 10 minutes; the status names the hop where it starts.",
    },
    "HopscopeProbeCannotRun": {
        "summary": "The probe for shop/web-to-db cannot run",
        "description": monitoring.ALERTS[3].description,
    },
}


def loss_alert(at: str, percent: str) -> dict[str, Any]:
    return firing(
        "HopscopeCheckProbeLoss",
        at,
        {
            "summary": "shop/web-to-db loses probes",
            "description": f"{percent} of the last run's probes {FROM_TO} failed, over the "
            "check's loss threshold; the status locates the hop where the loss starts.",
        },
    )


ALIVE = monitoring.OPERATOR_ALIVE


def operator_down(at: str) -> dict[str, Any]:
    return {
        "eval_time": at,
        "alertname": "HopscopeOperatorDown",
        "exp_alerts": [
            {
                "exp_labels": {"severity": "critical"},
                "exp_annotations": {
                    "summary": "The hopscope operator is down",
                    "description": monitoring.ALERTS[4].description,
                },
            }
        ],
    }


CASES = [
    {
        "name": "a check unreachable for 5 minutes pages",
        "interval": "1m",
        "input_series": [series("hopscope_check_reachable", "0x15")],
        "alert_rule_test": [
            silent("HopscopeCheckUnreachable", "4m"),
            firing("HopscopeCheckUnreachable", "6m", ANNOTATIONS["HopscopeCheckUnreachable"]),
        ],
    },
    {
        "name": "latency over the check's own threshold, and not under it",
        "interval": "1m",
        "input_series": [
            series("hopscope_check_latency_seconds", "0.3x20", stat="avg"),
            series("hopscope_check_latency_seconds", "0.9x20", stat="max"),
            series("hopscope_check_latency_threshold_seconds", "0.2x20"),
        ],
        "alert_rule_test": [
            silent("HopscopeCheckLatencyHigh", "8m"),
            firing("HopscopeCheckLatencyHigh", "12m", ANNOTATIONS["HopscopeCheckLatencyHigh"]),
        ],
    },
    {
        # What a one-shot check's run exports: counters created at their values, never to rise.
        "name": "probe loss of a single run over the threshold while reachable",
        "interval": "1m",
        "input_series": [
            series("hopscope_check_probes_sent_total", "10x60"),
            series("hopscope_check_probes_failed_total", "2x60"),
            series("hopscope_check_probe_loss_ratio", "0.2x60"),
            series("hopscope_check_loss_threshold_ratio", "0.05x60"),
            series("hopscope_check_reachable", "1x60"),
        ],
        "alert_rule_test": [
            silent("HopscopeCheckProbeLoss", "8m"),
            loss_alert("12m", "20%"),
            loss_alert("60m", "20%"),
        ],
    },
    {
        "name": "a check run every 30 minutes keeps its loss alert between runs",
        "interval": "1m",
        "input_series": [
            series("hopscope_check_probe_loss_ratio", "0.2x29 0.3x29 0.2x29 0.3x29"),
            series("hopscope_check_loss_threshold_ratio", "0.05x120"),
            series("hopscope_check_reachable", "1x120"),
        ],
        "alert_rule_test": [
            loss_alert(at, percent)
            for at, percent in (("30m", "30%"), ("42m", "30%"), ("65m", "20%"), ("100m", "30%"))
        ],
    },
    {
        "name": "probe loss under the threshold",
        "interval": "1m",
        "input_series": [
            series("hopscope_check_probe_loss_ratio", "0.01x40"),
            series("hopscope_check_loss_threshold_ratio", "0.05x40"),
            series("hopscope_check_reachable", "1x40"),
        ],
        "alert_rule_test": [silent("HopscopeCheckProbeLoss", "30m")],
    },
    {
        "name": "an unreachable check is not also a loss alert",
        "interval": "1m",
        "input_series": [
            series("hopscope_check_probe_loss_ratio", "1x40"),
            series("hopscope_check_loss_threshold_ratio", "0.05x40"),
            series("hopscope_check_reachable", "0x40"),
        ],
        "alert_rule_test": [silent("HopscopeCheckProbeLoss", "30m")],
    },
    {
        "name": "an operator whose scrape fails",
        "interval": "1m",
        "input_series": [{"series": ALIVE, "values": "0x3 stale"}],
        "alert_rule_test": [silent("HopscopeOperatorDown", "3m"), operator_down("10m")],
    },
    {
        # Scraped by the user's own config, not the chart's ServiceMonitor: still up.
        "name": "an operator scraped under any job name",
        "interval": "1m",
        "input_series": [{"series": f'{ALIVE}{{job="kubernetes-pods"}}', "values": "0x20"}],
        "alert_rule_test": [silent("HopscopeOperatorDown", "10m")],
    },
    {
        # The leader killed at 10m: the follower takes the Lease over a scrape later.
        "name": "a handover of the lease",
        "interval": "1m",
        "input_series": [
            {"series": f"hopscope_operator_leader{{{pod(OLD_POD)}}}", "values": "1x10 stale"},
            {"series": f"hopscope_operator_leader{{{pod(NEW_POD)}}}", "values": "0x10 0 1x20"},
        ],
        "alert_rule_test": [silent("HopscopeOperatorNoLeader", at) for at in ("11m", "20m")],
    },
    {
        "name": "replicas up that cannot take the lease",
        "interval": "1m",
        "input_series": [
            {"series": f"hopscope_operator_leader{{{pod(OLD_POD)}}}", "values": "0x20"},
            {"series": f"hopscope_operator_leader{{{pod(NEW_POD)}}}", "values": "0x20"},
        ],
        "alert_rule_test": [
            silent("HopscopeOperatorNoLeader", "4m"),
            {
                "eval_time": "6m",
                "alertname": "HopscopeOperatorNoLeader",
                "exp_alerts": [
                    {
                        "exp_labels": {"severity": "critical"},
                        "exp_annotations": {
                            "summary": "No hopscope operator replica leads",
                            "description": monitoring.ALERTS[5].description,
                        },
                    }
                ],
            },
        ],
    },
    {
        "name": "a probe that cannot run, and the operator gone",
        "interval": "1m",
        "input_series": [
            series("hopscope_check_issues", "1x20", type="Probe", severity="Error"),
        ],
        "alert_rule_test": [
            # the rule's severity label (warning) replaces the series' own
            firing(
                "HopscopeProbeCannotRun", "12m", ANNOTATIONS["HopscopeProbeCannotRun"], type="Probe"
            ),
            operator_down("6m"),
        ],
    },
    {
        "name": "an operator rollout keeps a broken check's alerts firing",
        "interval": "1m",
        "input_series": [
            *rolled_out("hopscope_check_reachable", "0"),
            *rolled_out("hopscope_check_issues", "1", type="Probe", severity="Error"),
        ],
        "alert_rule_test": [
            firing(alert, at, ANNOTATIONS[alert], **extra)
            for alert, extra in (
                ("HopscopeCheckUnreachable", {}),
                ("HopscopeProbeCannotRun", {"type": "Probe"}),
            )
            for at in ("19m", "25m")
        ],
    },
    {
        "name": "an operator rollout keeps a slow, lossy check's alerts firing",
        "interval": "1m",
        "input_series": [
            *rolled_out("hopscope_check_reachable", "1"),
            *rolled_out("hopscope_check_latency_seconds", "0.3", stat="avg"),
            *rolled_out("hopscope_check_latency_threshold_seconds", "0.2"),
            *rolled_out("hopscope_check_probe_loss_ratio", "0.2"),
            *rolled_out("hopscope_check_loss_threshold_ratio", "0.05"),
        ],
        "alert_rule_test": [
            check
            for at in ("19m", "25m")
            for check in (
                firing("HopscopeCheckLatencyHigh", at, ANNOTATIONS["HopscopeCheckLatencyHigh"]),
                loss_alert(at, "20%"),
            )
        ],
    },
]


def write_rules(tmp_path: Path) -> Path:
    rules = tmp_path / "hopscope-rules.yaml"
    rules.write_text(yaml.safe_dump(monitoring.rule_groups(), sort_keys=False))
    return rules


@needs_promtool
def test_the_rules_are_valid_prometheus_rules(tmp_path: Path):
    done = subprocess.run(
        [PROMTOOL, "check", "rules", str(write_rules(tmp_path))], capture_output=True, text=True
    )
    assert done.returncode == 0, done.stdout + done.stderr


def promtool_test(tmp_path: Path, cases: list[dict[str, Any]]) -> None:
    rules = write_rules(tmp_path)
    spec = {"rule_files": [rules.name], "evaluation_interval": "1m", "tests": cases}
    tests = tmp_path / "hopscope-tests.yaml"
    tests.write_text(yaml.safe_dump(spec, sort_keys=False))
    done = subprocess.run(
        [PROMTOOL, "test", "rules", str(tests)], capture_output=True, text=True, cwd=tmp_path
    )
    assert done.returncode == 0, done.stdout + done.stderr


@needs_promtool
def test_each_alert_fires_on_its_synthetic_series_and_only_then(tmp_path: Path):
    promtool_test(tmp_path, CASES)


def test_every_alert_is_tested():
    tested = {t["alertname"] for case in CASES for t in case["alert_rule_test"]}
    assert tested == {alert.name for alert in monitoring.ALERTS}


def exported_names() -> set[str]:
    metrics = Metrics()
    names = set()
    for collector in metrics.registry._names_to_collectors.values():
        for family in collector.describe():
            names.add(family.name)
            names |= {family.name + suffix for suffix in ("_total", "_bucket", "_sum", "_count")}
    return names


def queries() -> list[str]:
    board = monitoring.dashboard()
    found = [t["expr"] for panel in board["panels"] for t in panel.get("targets", [])]
    found += [v["query"] for v in board["templating"]["list"] if v["type"] == "query"]
    found += [alert.expr for alert in monitoring.ALERTS]
    return found


def test_every_query_names_only_series_the_operator_exports():
    exported = exported_names() | {"up"}
    used = {name for query in queries() for name in re.findall(r"\b(hopscope_\w+|up)\b", query)}
    assert used, "no metric names found in the queries"
    assert used <= exported, f"not exported: {sorted(used - exported)}"


def panel(title: str) -> dict[str, Any]:
    [found] = [p for p in monitoring.dashboard()["panels"] if p["title"] == title]
    return found


PICKED = {
    "namespace": "shop",
    "check": "web-to-db",
    "topology_check": "web-to-db",
    "__rate_interval": "4m",
}


def picked(expr: str) -> str:
    """A dashboard query as Grafana sends it, one check picked."""
    return re.sub(r"\$(\w+)", lambda variable: PICKED[variable[1]], expr)


@needs_promtool
def test_the_loss_panel_shows_a_one_shot_checks_loss(tmp_path: Path):
    # Its counters are created at the run's counts and never rise: a rate() of them is 0/0.
    [query] = panel("Probe loss (last run)")["targets"]
    ratio = series("hopscope_check_probe_loss_ratio", "0.2x40")
    case = {
        "interval": "1m",
        "input_series": [
            series("hopscope_check_probes_sent_total", "10x40"),
            series("hopscope_check_probes_failed_total", "2x40"),
            ratio,
        ],
        "promql_expr_test": [
            {
                "expr": picked(query["expr"]),
                "eval_time": "30m",
                "exp_samples": [{"labels": ratio["series"], "value": 0.2}],
            }
        ],
    }
    promtool_test(tmp_path, [case])


HOP = {"hop_id": "h1", "hop_address": "10.0.0.1"}
EDGE = {"edge": "h1-h2", "from_hop": "h1", "to_hop": "h2"}


def node_graph() -> dict[str, Any]:
    [graph] = [p for p in monitoring.dashboard()["panels"] if p["type"] == "nodeGraph"]
    return graph


@needs_promtool
def test_the_node_graph_tables_carry_only_the_hop_labels(tmp_path: Path):
    # Grafana takes any frame with a field named `source` for the edges: the check's own
    # source (and destination) label must not reach the nodes' table.
    queries = {t["refId"]: picked(t["expr"]) for t in node_graph()["targets"]}

    def sample(labels: dict[str, str]) -> dict[str, Any]:
        return {"labels": "{" + ",".join(f'{k}="{v}"' for k, v in labels.items()) + "}", "value": 1}

    case = {
        "interval": "1m",
        "input_series": [
            series("hopscope_path_hop_info", "1", **HOP),
            series("hopscope_path_edge_info", "1", **EDGE),
        ],
        "promql_expr_test": [
            {"expr": queries["nodes"], "eval_time": "0m", "exp_samples": [sample(HOP)]},
            {"expr": queries["edges"], "eval_time": "0m", "exp_samples": [sample(EDGE)]},
        ],
    }
    promtool_test(tmp_path, [case])


def test_the_series_the_operator_down_alert_watches_is_there_from_the_start():
    exposition = generate_latest(Metrics().registry).decode()
    assert f"\n{ALIVE} 0.0\n" in exposition


def test_the_dashboard_has_the_node_graph_of_one_checks_hops_and_its_variables():
    graph = node_graph()
    assert {t["refId"] for t in graph["targets"]} == {"nodes", "edges"}
    # The tables' labels become the fields Grafana's node graph reads.
    renamed = graph["transformations"][0]["options"]["renameByName"]
    assert [renamed[label] for label in HOP] == ["id", "title"]
    assert [renamed[label] for label in EDGE] == ["id", "source", "target"]
    board = monitoring.dashboard()
    names = [v["name"] for v in board["templating"]["list"]]
    assert names == ["datasource", "namespace", "check", "topology_check"]
    config = monitoring.dashboard_config_map("hopscope-system")
    assert json.loads(config["data"]["hopscope.json"])["uid"] == "hopscope-checks"


def test_an_exact_matcher_names_only_a_single_valued_variable():
    # Grafana renders a multi-value or All pick as a regex alternation (a|b, .*): `="$var"`
    # never matches it, and the node graph stayed empty until one check was picked.
    variables = {v["name"]: v for v in monitoring.dashboard()["templating"]["list"]}
    exact = {name for query in queries() for name in re.findall(r'="\$(\w+)"', query)}
    assert [name for name in exact if variables[name].get("multi")] == []
    assert [name for name in exact if variables[name].get("includeAll")] == []
    assert {"namespace", "topology_check"} <= exact


def names_with_samples(options: MetricsOptions) -> set[str]:
    """What one check's run exports: the names that have samples, not just HELP lines."""
    metrics = Metrics(options)
    hops = [hop(1, "172.18.0.1", 0.3, next_hops=["h2"]), hop(2, "10.96.0.10", 0.9, hop_id="h2")]
    found = [Issue(type=IssueType.FIREWALL, severity=Severity.ERROR, origin=Origin.OUTBOUND,
                   message="m", hint="h")]  # fmt: skip
    labels = CheckLabels(*LABELS.values())
    metrics.record("shop/web-to-db", labels, result(hops=hops, issues=found))
    text = metrics.exposition().decode()
    return {s.name for family in text_string_to_metric_families(text) for s in family.samples}


def used_names(expressions: list[str]) -> set[str]:
    return {name for expr in expressions for name in re.findall(r"\b(hopscope_\w+)\b", expr)}


# The dashboard panels that read a series per hop: they need the chart's metrics.perHopSeries.
PER_HOP = {"hopscope_hop_latency_seconds", "hopscope_path_hop_info", "hopscope_path_edge_info"}


def test_the_default_metrics_carry_every_series_the_alerts_and_check_panels_query():
    exported = names_with_samples(MetricsOptions())
    assert used_names([alert.expr for alert in monitoring.ALERTS]) <= exported
    dashboard = used_names(queries())
    assert dashboard - PER_HOP <= exported
    assert not PER_HOP & exported  # off by default: a series per hop is the costly part
    assert PER_HOP <= dashboard <= names_with_samples(MetricsOptions(per_hop_series=True))
