"""Metrics: names and labels in the exposition, series that follow the last run, and a clean
slate for a deleted check."""

from __future__ import annotations

import shutil
import subprocess
import threading
from collections.abc import Iterator
from functools import partial
from typing import Any

import pytest
from prometheus_client import REGISTRY, disable_created_metrics, enable_created_metrics
from prometheus_client.parser import text_string_to_metric_families

from hopscope_operator.api import MAX_MATCH_EXPRESSIONS, MAX_SELECTOR_VALUES, ConnectivityCheck
from hopscope_operator.controller.metrics import (
    MAX_LABEL_TEXT,
    CheckLabels,
    Metrics,
    MetricsOptions,
)
from hopscope_probe.models import (
    ConnectionStatus,
    EndpointResult,
    Hop,
    HopType,
    Issue,
    IssueType,
    Origin,
    Severity,
    Thresholds,
)
from tests import builders
from tests.builders import hop

WEB = CheckLabels("shop", "web-to-db", "pod/shop/web-0", "service/shop/db:5432", "TCP")
API = CheckLabels("shop", "web-to-api", "node/worker-1", "fqdn/api.example.com:443", "HTTPS")
EVERY = MetricsOptions(per_check_histograms=True, per_hop_series=True, per_check_counters=True)
COMMON = {
    "namespace": "shop",
    "check": "web-to-db",
    "source": "pod/shop/web-0",
    "destination": "service/shop/db:5432",
    "protocol": "TCP",
}


def issue(kind: IssueType, severity: Severity = Severity.WARNING) -> Issue:
    return Issue(type=kind, severity=severity, origin=Origin.OUTBOUND, message="m", hint="h")


result = partial(builders.result, addresses=[], duration_ms=1500.0)


def samples(metrics: Metrics) -> dict[tuple[str, frozenset[tuple[str, str]]], float]:
    """Every sample of the exposition, keyed by (name, labels)."""
    return samples_of(metrics.exposition())


def samples_of(exposition: bytes) -> dict[tuple[str, frozenset[tuple[str, str]]], float]:
    text = exposition.decode()
    return {
        (sample.name, frozenset(sample.labels.items())): sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
    }


def value(metrics: Metrics, name: str, **extra: str) -> float | None:
    key = (name, frozenset({**COMMON, **extra}.items()))
    return samples(metrics).get(key)


def series_of(metrics: Metrics, check: str) -> set[tuple[str, frozenset[tuple[str, str]]]]:
    return {key for key in samples(metrics) if ("check", check) in key[1]}


# ---- one run --------------------------------------------------------------------------------


def test_a_reachable_run_exports_every_series() -> None:
    metrics = Metrics(EVERY)
    metrics.record("shop/web-to-db", WEB, result(sent=10, failed=1))
    assert value(metrics, "hopscope_check_reachable") == 1
    assert value(metrics, "hopscope_check_latency_seconds", stat="min") == 0.001
    assert value(metrics, "hopscope_check_latency_seconds", stat="avg") == 0.0025
    assert value(metrics, "hopscope_check_latency_seconds", stat="max") == 0.004
    assert value(metrics, "hopscope_check_probes_sent_total") == 10
    assert value(metrics, "hopscope_check_probes_failed_total") == 1
    assert value(metrics, "hopscope_check_runs_total", outcome="Reachable") == 1
    assert value(metrics, "hopscope_check_path_changes_total") == 0
    assert value(metrics, "hopscope_check_run_duration_seconds_count") == 1
    assert value(metrics, "hopscope_check_run_duration_seconds_sum") == 1.5
    assert value(metrics, "hopscope_check_run_duration_seconds_bucket", le="2.5") == 1
    assert value(metrics, "hopscope_check_run_duration_seconds_bucket", le="1.0") == 0


def test_degraded_is_reachable() -> None:
    metrics = Metrics(EVERY)
    metrics.record("shop/web-to-db", WEB, result(ConnectionStatus.DEGRADED, failed=3))
    assert value(metrics, "hopscope_check_reachable") == 1
    assert value(metrics, "hopscope_check_runs_total", outcome="Degraded") == 1


def test_a_check_whose_every_probe_fails_still_exports_its_series() -> None:
    metrics = Metrics(EVERY)
    metrics.record("shop/web-to-db", WEB, result(ConnectionStatus.UNREACHABLE, failed=10))
    assert value(metrics, "hopscope_check_reachable") == 0
    assert value(metrics, "hopscope_check_probes_sent_total") == 10
    assert value(metrics, "hopscope_check_probes_failed_total") == 10
    assert value(metrics, "hopscope_check_runs_total", outcome="Unreachable") == 1
    assert value(metrics, "hopscope_check_latency_seconds", stat="avg") is None  # no answer


def test_a_probe_that_could_not_run_has_no_reachable_verdict_and_counts_the_run() -> None:
    # Exported as 0, Unknown would page as Unreachable; its Probe issue has its own alert.
    metrics = Metrics(EVERY)
    reached = result(ConnectionStatus.REACHABLE)
    metrics.record("shop/web-to-db", WEB, reached)
    unknown = result(ConnectionStatus.UNKNOWN, sent=0, failed=0, duration_ms=None)
    metrics.record("shop/web-to-db", WEB, unknown.model_copy(update={"latency": None}))
    assert value(metrics, "hopscope_check_reachable") is None  # not the last run's 1 either
    assert value(metrics, "hopscope_check_probes_sent_total") == reached.probes_sent
    assert value(metrics, "hopscope_check_runs_total", outcome="Unknown") == 1
    assert value(metrics, "hopscope_check_run_duration_seconds_count") == 1  # the first run's


def test_a_check_that_cannot_run_drops_its_last_figures_and_raises_its_probe_issue() -> None:
    metrics = Metrics(EVERY)
    metrics.record("shop/web-to-db", WEB, result(ConnectionStatus.REACHABLE))
    metrics.cannot_run("shop/web-to-db", WEB, Thresholds(latency_ms=300))
    assert value(metrics, "hopscope_check_reachable") is None
    assert value(metrics, "hopscope_check_latency_seconds", stat="avg") is None
    assert value(metrics, "hopscope_check_issues", type="Probe", severity="Error") == 1
    assert value(metrics, "hopscope_check_latency_threshold_seconds") == 0.3
    assert value(metrics, "hopscope_check_runs_total", outcome="Reachable") == 1  # kept


def test_the_loss_ratio_is_the_last_runs_even_when_re_exported() -> None:
    metrics = Metrics(EVERY)
    metrics.record("shop/web-to-db", WEB, result(ConnectionStatus.DEGRADED, failed=3))
    assert value(metrics, "hopscope_check_probe_loss_ratio") == 0.3
    metrics.record("shop/web-to-db", WEB, result(failed=1))
    assert value(metrics, "hopscope_check_probe_loss_ratio") == 0.1  # not the counters' 4/20
    # After a restart the counters restart at 0; the last run's loss is still there to alert on.
    restarted = Metrics(EVERY)
    restarted.record("shop/web-to-db", WEB, result(failed=1), new_run=False)
    assert value(restarted, "hopscope_check_probe_loss_ratio") == 0.1
    assert value(restarted, "hopscope_check_probes_sent_total") == 0
    not_run = result(ConnectionStatus.UNKNOWN, sent=0, failed=0)
    metrics.record("shop/web-to-db", WEB, not_run.model_copy(update={"latency": None}))
    assert value(metrics, "hopscope_check_probe_loss_ratio") is None  # no probe, no ratio


def test_an_explicit_duration_wins() -> None:
    metrics = Metrics(EVERY)
    metrics.record("shop/web-to-db", WEB, result(duration_ms=100), duration_seconds=42.0)
    assert value(metrics, "hopscope_check_run_duration_seconds_sum") == 42.0


# ---- across runs ----------------------------------------------------------------------------


def test_counters_add_up_and_path_changes_are_counted() -> None:
    metrics = Metrics(EVERY)
    metrics.record("shop/web-to-db", WEB, result(failed=2))
    metrics.record("shop/web-to-db", WEB, result(ConnectionStatus.UNREACHABLE, failed=10))
    metrics.record("shop/web-to-db", WEB, result(), path_changed=True)
    assert value(metrics, "hopscope_check_probes_sent_total") == 30
    assert value(metrics, "hopscope_check_probes_failed_total") == 12
    assert value(metrics, "hopscope_check_runs_total", outcome="Reachable") == 2
    assert value(metrics, "hopscope_check_runs_total", outcome="Unreachable") == 1
    assert value(metrics, "hopscope_check_path_changes_total") == 1
    assert value(metrics, "hopscope_check_reachable") == 1


def test_issues_follow_the_last_run() -> None:
    metrics = Metrics(EVERY)
    found = [
        issue(IssueType.PACKET_LOSS),
        issue(IssueType.PACKET_LOSS),
        issue(IssueType.FIREWALL, Severity.ERROR),
    ]
    metrics.record("shop/web-to-db", WEB, result(issues=found))
    loss = {"type": "PacketLoss", "severity": "Warning"}
    firewall = {"type": "Firewall", "severity": "Error"}
    assert value(metrics, "hopscope_check_issues", **loss) == 2
    assert value(metrics, "hopscope_check_issues", **firewall) == 1
    metrics.record("shop/web-to-db", WEB, result(issues=[issue(IssueType.PACKET_LOSS)]))
    assert value(metrics, "hopscope_check_issues", **loss) == 1
    assert value(metrics, "hopscope_check_issues", **firewall) is None  # resolved: gone
    metrics.record(
        "shop/web-to-db", WEB, result(issues=[issue(IssueType.FIREWALL, Severity.ERROR)])
    )
    assert value(metrics, "hopscope_check_issues", **firewall) == 1  # back: exported again


def test_hop_series_follow_the_path_and_stale_hops_disappear() -> None:
    metrics = Metrics(EVERY)
    first = [
        Hop(id="0", type=HopType.SOURCE, address="10.244.1.12", ttl=0),  # no latency: skipped
        hop(1, "172.18.0.1", 0.3),
        hop(2, None, None),  # never answered
        hop(3, "10.96.0.10", 1.2),
    ]
    metrics.record("shop/web-to-db", WEB, result(hops=first))
    assert value(metrics, "hopscope_hop_latency_seconds", hop_ttl="1", hop_address="172.18.0.1")
    hop_series = {
        dict(labels)["hop_ttl"]: dict(labels)["hop_address"]
        for name, labels in samples(metrics)
        if name == "hopscope_hop_latency_seconds"
    }
    assert hop_series == {"1": "172.18.0.1", "3": "10.96.0.10"}
    rerouted = [hop(1, "172.18.0.9", 0.4), hop(2, "10.96.0.10", 1.0)]
    metrics.record("shop/web-to-db", WEB, result(hops=rerouted), path_changed=True)
    hop_series = {
        (dict(labels)["hop_ttl"], dict(labels)["hop_address"])
        for name, labels in samples(metrics)
        if name == "hopscope_hop_latency_seconds"
    }
    assert hop_series == {("1", "172.18.0.9"), ("2", "10.96.0.10")}
    assert (
        value(metrics, "hopscope_hop_latency_seconds", hop_ttl="2", hop_address="10.96.0.10")
        == 0.001
    )


def test_hop_series_are_bounded_by_max_hops() -> None:
    metrics = Metrics(EVERY)
    ecmp = [hop(ttl, f"10.0.{ttl}.{flow}", 1.0) for ttl in range(1, 31) for flow in range(4)]
    metrics.record("shop/web-to-db", WEB, result(hops=ecmp), max_hops=30)
    hop_series = [key for key in samples(metrics) if key[0] == "hopscope_hop_latency_seconds"]
    assert len(hop_series) == 30
    ttls = {dict(labels)["hop_ttl"] for _, labels in hop_series}
    assert ttls == {str(ttl) for ttl in range(1, 9)}  # the nearest hops first


# ---- forgetting -----------------------------------------------------------------------------


def test_forget_removes_every_series_of_one_check_only() -> None:
    metrics = Metrics(EVERY)
    hops = [hop(1, "172.18.0.1", 0.3)]
    metrics.record("shop/web-to-db", WEB, result(hops=hops, issues=[issue(IssueType.MTU)]))
    metrics.record("shop/web-to-db", WEB, result(ConnectionStatus.UNREACHABLE, failed=10))
    metrics.record("shop/web-to-api", API, result(hops=hops))
    before_api = series_of(metrics, "web-to-api")
    metrics.forget("shop/web-to-db")
    assert series_of(metrics, "web-to-db") == set()
    assert series_of(metrics, "web-to-api") == before_api
    metrics.forget("shop/web-to-db")  # twice: harmless
    metrics.forget("shop/never-seen")


def test_a_forgotten_check_starts_from_zero() -> None:
    metrics = Metrics(EVERY)
    metrics.record("shop/web-to-db", WEB, result())
    metrics.forget("shop/web-to-db")
    metrics.record("shop/web-to-db", WEB, result())
    assert value(metrics, "hopscope_check_probes_sent_total") == 10


def test_changed_labels_replace_the_old_series() -> None:
    metrics = Metrics(EVERY)
    metrics.record("shop/web-to-db", WEB, result())
    moved = CheckLabels("shop", "web-to-db", "pod/shop/web-1", "service/shop/db:5432", "TCP")
    metrics.record("shop/web-to-db", moved, result())
    sources = {dict(labels)["source"] for labels in (k[1] for k in series_of(metrics, "web-to-db"))}
    assert sources == {"pod/shop/web-1"}


def test_counters_and_the_histogram_outlive_a_check_that_cannot_run_not_new_labels() -> None:
    metrics = Metrics(EVERY)
    metrics.record("shop/web-to-db", WEB, result(), duration_seconds=2.5, path_changed=True)
    metrics.cannot_run("shop/web-to-db", WEB, Thresholds())
    metrics.record("shop/web-to-db", WEB, result(failed=4), duration_seconds=0.25)
    assert value(metrics, "hopscope_check_probes_sent_total") == 20
    assert value(metrics, "hopscope_check_probes_failed_total") == 4
    assert value(metrics, "hopscope_check_path_changes_total") == 1
    assert value(metrics, "hopscope_check_run_duration_seconds_count") == 2
    assert value(metrics, "hopscope_check_run_duration_seconds_sum") == 2.75
    # A run on a bucket's bound counts in that bucket, as prometheus-client's observe() does.
    assert value(metrics, "hopscope_check_run_duration_seconds_bucket", le="0.25") == 1
    assert value(metrics, "hopscope_check_run_duration_seconds_bucket", le="1.0") == 1
    assert value(metrics, "hopscope_check_run_duration_seconds_bucket", le="2.5") == 2
    assert value(metrics, "hopscope_check_run_duration_seconds_bucket", le="+Inf") == 2
    moved = CheckLabels("shop", "web-to-db", "pod/shop/web-1", "service/shop/db:5432", "TCP")
    metrics.record("shop/web-to-db", moved, result())
    labels = {**COMMON, "source": "pod/shop/web-1"}
    again = {
        name: v
        for (name, series), v in samples(metrics).items()
        if series == frozenset(labels.items())
    }
    assert again["hopscope_check_probes_sent_total"] == 10  # new series: from this run only
    assert again["hopscope_check_run_duration_seconds_count"] == 1


def test_a_scrape_beside_the_tick_sees_each_check_as_one_run_left_it() -> None:
    # The HTTP server's thread scrapes while the tick records and kopf's threads forget.
    metrics = Metrics()
    reached, lost = result(), result(ConnectionStatus.UNREACHABLE, failed=10)
    runs = {True: (reached, Thresholds(latency_ms=100)), False: (lost, Thresholds(latency_ms=200))}
    scrapes: list[bytes] = []
    done = threading.Event()

    def scrape() -> None:
        while not done.is_set():
            scrapes.append(metrics.exposition())

    scraper = threading.Thread(target=scrape)
    scraper.start()
    try:
        for number in range(600):
            run, limits = runs[number % 2 == 0]
            for check in ("a", "b", "c"):
                labels = CheckLabels("shop", check, "pod/shop/web-0", "ip/10.0.0.1:80", "TCP")
                metrics.record(f"shop/{check}", labels, run, thresholds=limits)
            if number % 50 == 49:
                metrics.forget("shop/b")
    finally:
        done.set()
        scraper.join()
    assert scrapes
    for exposition in scrapes:
        by_check: dict[str, dict[str, float]] = {}
        for (name, labels), found in samples_of(exposition).items():
            by_check.setdefault(dict(labels).get("check", ""), {})[name] = found
        by_check.pop("", None)  # the operator's own gauges
        for figures in by_check.values():
            reachable = figures["hopscope_check_reachable"]
            threshold = figures["hopscope_check_latency_threshold_seconds"]
            assert ("hopscope_check_latency_seconds" in figures) == (reachable == 1)
            assert threshold == (0.1 if reachable == 1 else 0.2)


def test_pods_in_flight_and_its_own_registry() -> None:
    metrics = Metrics(EVERY)
    metrics.set_pods_in_flight(7)
    assert samples(metrics)[("hopscope_probe_pods_in_flight", frozenset())] == 7
    assert REGISTRY.get_sample_value("hopscope_probe_pods_in_flight") is None
    Metrics()  # a second instance registers without "Duplicated timeseries"


def test_every_name_is_prefixed_and_counters_end_in_total() -> None:
    metrics = Metrics(EVERY)
    metrics.record("shop/web-to-db", WEB, result(hops=[hop(1, "172.18.0.1", 0.3)]))
    text = metrics.exposition().decode()
    families = {family.name: family.type for family in text_string_to_metric_families(text)}
    assert all(name.startswith("hopscope_") for name in families)
    # prometheus-client's `_created` companions: a process-wide switch, left to the operator.
    families = {name: kind for name, kind in families.items() if not name.endswith("_created")}
    assert families == {
        "hopscope_check_reachable": "gauge",
        "hopscope_check_latency_seconds": "gauge",
        "hopscope_check_probe_loss_ratio": "gauge",
        "hopscope_check_probes_sent": "counter",
        "hopscope_check_probes_failed": "counter",
        "hopscope_check_issues": "gauge",
        "hopscope_hop_latency_seconds": "gauge",
        "hopscope_check_run_duration_seconds": "histogram",
        "hopscope_check_runs": "counter",
        "hopscope_check_path_changes": "counter",
        "hopscope_probe_pods_in_flight": "gauge",
        "hopscope_operator_leader": "gauge",
        "hopscope_check_latency_threshold_seconds": "gauge",
        "hopscope_check_loss_threshold_ratio": "gauge",
        "hopscope_path_edge_info": "gauge",
        "hopscope_path_hop_info": "gauge",
        "hopscope_endpoint_reachable": "gauge",
        "hopscope_endpoint_latency_seconds": "gauge",
    }
    counted = {name for name, _ in samples(metrics) if name.endswith("_total")}
    assert counted == {
        "hopscope_check_probes_sent_total",
        "hopscope_check_probes_failed_total",
        "hopscope_check_runs_total",
        "hopscope_check_path_changes_total",
    }


def backends(*pods: str) -> list[EndpointResult]:
    return [
        EndpointResult(
            address=f"10.244.0.{n}",
            pod=pod,
            node="worker-2",
            connection_status=ConnectionStatus.REACHABLE,
        )
        for n, pod in enumerate(pods)
    ]


def test_endpoint_series_are_bounded_and_follow_the_last_runs_backends() -> None:
    metrics = Metrics(MetricsOptions(per_hop_series=True))  # they come with the per-hop ones
    many = result().model_copy(update={"endpoints": backends(*(f"db-{n}" for n in range(12)))})
    metrics.record("shop/web-to-db", WEB, many)
    exported = {dict(labels)["endpoint_pod"] for name, labels in samples(metrics)
                if name == "hopscope_endpoint_reachable"}  # fmt: skip
    assert exported == {f"db-{n}" for n in range(10)}
    metrics.record("shop/web-to-db", WEB, result().model_copy(update={"endpoints": backends("x")}))
    assert value(metrics, "hopscope_endpoint_reachable", endpoint_pod="db-0",
                 endpoint_node="worker-2") is None  # fmt: skip
    assert value(metrics, "hopscope_endpoint_reachable", endpoint_pod="x",
                 endpoint_node="worker-2") == 1.0  # fmt: skip


def test_promtool_accepts_the_exposition() -> None:
    promtool = shutil.which("promtool")
    if promtool is None:
        pytest.skip("promtool not on PATH (Debian: apt-get install prometheus)")
    metrics = Metrics(EVERY)
    metrics.record(
        "shop/web-to-db",
        WEB,
        result(hops=[hop(1, "172.18.0.1", 0.3)], issues=[issue(IssueType.PACKET_LOSS)]),
        path_changed=True,
    )
    metrics.record("shop/web-to-api", API, result(ConnectionStatus.UNREACHABLE, failed=10))
    metrics.set_pods_in_flight(2)
    checked = subprocess.run(
        [promtool, "check", "metrics"],
        input=metrics.exposition(),
        capture_output=True,
        timeout=30,
        check=False,
    )
    assert checked.returncode == 0, checked.stdout.decode() + checked.stderr.decode()


# ---- labels from the spec -------------------------------------------------------------------


def parsed(spec: dict[str, Any]) -> ConnectivityCheck:
    return ConnectivityCheck.model_validate(
        {
            "apiVersion": "hopscope.dev/v1alpha1",
            "kind": "ConnectivityCheck",
            "metadata": {"name": "c", "namespace": "shop"},
            "spec": spec,
        }
    )


@pytest.mark.parametrize(
    ("spec", "source", "destination", "protocol"),
    [
        (
            {
                "source": {"pod": {"name": "web-0"}},
                "destination": {"service": {"name": "db"}, "port": 5432},
            },
            "pod/shop/web-0",
            "service/shop/db:5432",
            "TCP",
        ),
        (
            {
                "source": {"podSelector": {"matchLabels": {"app": "web"}}},
                "destination": {"pod": {"name": "db-0", "namespace": "data"}, "port": 5432},
            },
            "podSelector/shop/app=web",
            "pod/data/db-0:5432",
            "TCP",
        ),
        (
            {
                "source": {"node": {"name": "worker-1"}},
                "destination": {"node": {"name": "worker-2"}},
                "protocol": "ICMP",
            },
            "node/worker-1",
            "node/worker-2",
            "ICMP",
        ),
        (
            {
                "source": {"workload": {"kind": "Deployment", "name": "edge", "namespace": "gw"}},
                "destination": {"uri": "https://api.example.com/healthz"},
                "protocol": "HTTPS",
            },
            "Deployment/gw/edge",
            "uri/https://api.example.com/healthz",
            "HTTPS",
        ),
        (
            {
                "source": {"node": {"name": "worker-1"}},
                "destination": {"fqdn": "db.example.com", "port": 5432},
            },
            "node/worker-1",
            "fqdn/db.example.com:5432",
            "TCP",
        ),
        (
            {
                "source": {"node": {"name": "worker-1"}},
                "destination": {"ip": "fd00::7", "port": 53},
                "protocol": "UDP",
            },
            "node/worker-1",
            "ip/fd00::7:53",
            "UDP",
        ),
    ],
    ids=["pod-service", "selector-pod", "node-node", "workload-uri", "fqdn", "ip"],
)
def test_labels_come_from_the_spec(
    spec: dict[str, Any], source: str, destination: str, protocol: str
) -> None:
    labels = CheckLabels.of(parsed(spec))
    assert labels == CheckLabels("shop", "c", source, destination, protocol)


def test_thresholds_and_the_hop_graphs_edges_are_exported_for_alerts_and_the_node_graph():
    metrics = Metrics(EVERY)
    hops = [hop(1, "172.18.0.1", 0.3), hop(2, "10.96.0.10", 0.9)]
    hops[0] = hops[0].model_copy(update={"next_hop_ids": [hops[1].id]})
    limits = Thresholds(latency_ms=50, loss_percent=2)
    metrics.record("shop/web-to-db", WEB, result(hops=hops), thresholds=limits)
    values = {name: value for (name, _), value in samples(metrics).items()}
    assert values["hopscope_check_latency_threshold_seconds"] == 0.05
    assert values["hopscope_check_loss_threshold_ratio"] == 0.02
    assert values["hopscope_path_edge_info"] == 1.0
    text = metrics.exposition().decode()
    assert f'from_hop="{hops[0].id}"' in text and f'to_hop="{hops[1].id}"' in text


def test_labels_of_the_longest_selector_and_uri_the_crd_admits_are_bounded_and_distinct() -> None:
    def labels(tier: str) -> CheckLabels:
        values = [f"{tier}{i:02}" + "v" * 58 for i in range(MAX_SELECTOR_VALUES)]
        expressions = [
            {"key": f"shop.example/k{i:02}", "operator": "In", "values": values}
            for i in range(MAX_MATCH_EXPRESSIONS)
        ]
        uri = "https://api.example.com/" + tier + "p" * 2000
        spec = {
            "source": {"podSelector": {"matchExpressions": expressions}},
            "destination": {"uri": uri},
            "protocol": "HTTPS",
        }
        return CheckLabels.of(parsed(spec))

    a, b = labels("a"), labels("b")
    for label in (a.source, a.destination, b.source, b.destination):
        assert len(label) <= MAX_LABEL_TEXT
    assert a.source.startswith("podSelector/shop/shop.example/k00 in (a00")
    assert a.source != b.source and a.destination != b.destination


# ---- the size of /metrics -------------------------------------------------------------------

MiB = 1024 * 1024
SIX_HOPS = [hop(ttl, f"10.0.{ttl}.1", ttl * 0.5) for ttl in range(1, 7)]


def thousand_checks(options: MetricsOptions) -> Metrics:
    metrics = Metrics(options)
    for index in range(1000):
        labels = CheckLabels(
            "shop",
            f"web-to-db-{index:04d}",
            f"pod/shop/web-{index:04d}",
            f"service/shop/db-{index:04d}:5432",
            "TCP",
        )
        found = [issue(IssueType.PACKET_LOSS)] if index % 10 == 0 else []
        metrics.record(
            labels.namespace + "/" + labels.check, labels, result(hops=SIX_HOPS, issues=found)
        )
    return metrics


@pytest.fixture
def no_created_series() -> Iterator[None]:
    """As the operator serves /metrics: without prometheus-client's `_created` companions."""
    disable_created_metrics()
    yield
    enable_created_metrics()


def test_metrics_at_1000_checks_stay_under_1_5_mib_with_the_defaults(no_created_series) -> None:
    exposition = thousand_checks(MetricsOptions()).exposition()
    assert len(exposition) <= 1.5 * MiB, f"{len(exposition) / MiB:.2f} MiB"
    names = {name for name, _ in samples_of(exposition)}
    # What the alerts and the dashboard's check panels read is all there.
    assert names >= {
        "hopscope_check_reachable",
        "hopscope_check_latency_seconds",
        "hopscope_check_latency_threshold_seconds",
        "hopscope_check_probe_loss_ratio",
        "hopscope_check_loss_threshold_ratio",
        "hopscope_check_issues",
        "hopscope_check_path_changes_total",
    }
    assert not names & {name for names in OPTIONAL.values() for name in names}


OPTIONAL = {
    "per_check_histograms": {
        "hopscope_check_run_duration_seconds_bucket",
        "hopscope_check_run_duration_seconds_sum",
        "hopscope_check_run_duration_seconds_count",
    },
    "per_hop_series": {"hopscope_hop_latency_seconds", "hopscope_path_hop_info"},
    "per_check_counters": {
        "hopscope_check_probes_sent_total",
        "hopscope_check_probes_failed_total",
        "hopscope_check_runs_total",
    },
}


@pytest.mark.parametrize("option", sorted(OPTIONAL))
def test_each_option_brings_its_series_back(option: str) -> None:
    metrics = Metrics(MetricsOptions(**{option: True}))
    metrics.record("shop/web-to-db", WEB, result(hops=SIX_HOPS))
    names = {name for name, _ in samples(metrics)}
    assert OPTIONAL[option] <= names
    others = {name for other, added in OPTIONAL.items() if other != option for name in added}
    assert not names & others
    metrics.forget("shop/web-to-db")
    assert series_of(metrics, "web-to-db") == set()  # forgotten like the others


def test_the_chart_values_turn_the_options_on_in_the_operator() -> None:
    from hopscope_operator.controller.handlers import Config

    from .test_chart import env_of, render

    assert Config.from_env(env_of(render())).metrics_options == MetricsOptions()
    values = {"metrics": {"perCheckHistograms": True, "perHopSeries": True}}
    options = Config.from_env(env_of(render(values))).metrics_options
    assert options == MetricsOptions(per_check_histograms=True, per_hop_series=True)
    values = {"metrics": {"perCheckCounters": True}}
    options = Config.from_env(env_of(render(values))).metrics_options
    assert options == MetricsOptions(per_check_counters=True)
