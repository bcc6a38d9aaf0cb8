"""Prometheus metrics of every check, blackbox-exporter style, on the operator's own registry.

Labels stay bounded: per check only what its spec names (never resolved addresses), plus per-hop
series on one gauge, at most maxHops of them, and a Service check's per-endpoint series, at most
MAX_ENDPOINTS of them (the backends its last run probed, by pod). /metrics stays bounded too:
what the alerts and the dashboard's check panels read is always there; the costlier per-check
series are opt-in (`MetricsOptions`, the chart's `metrics.*` values; the README gives their cost
per check; the per-endpoint series come with the per-hop ones). Each check's series are tracked
so that a run replaces the last run's snapshot (a hop no longer on the path disappears, so does
a replaced pod) and `forget` removes every series of a deleted check.
"""

from __future__ import annotations

import hashlib
from collections import Counter as Tally
from dataclasses import astuple, dataclass
from typing import Any

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest
from prometheus_client.metrics import MetricWrapperBase

from hopscope_operator.api import ConnectivityCheck
from hopscope_operator.redact import without_userinfo
from hopscope_policy.model import parse_selector
from hopscope_probe.models import MAX_ENDPOINTS, ConnectionStatus, ProbeResult, Thresholds

COMMON = ("namespace", "check", "source", "destination", "protocol")
ENDPOINT = ("endpoint_pod", "endpoint_node")
MAX_HOP_SERIES = 64  # the CRD's largest maxHops
RUN_BUCKETS = (0.25, 0.5, 1, 2.5, 5, 10, 20, 30, 60, 120, 300)
REACHABLE = (ConnectionStatus.REACHABLE, ConnectionStatus.DEGRADED)
CANNOT_RUN = ("Probe", "Error")  # the issue series a check that cannot run exports

Series = tuple[MetricWrapperBase, tuple[str, ...]]
GaugeSeries = tuple[Gauge, tuple[str, ...]]


@dataclass(frozen=True)
class CheckLabels:
    namespace: str
    check: str
    source: str  # e.g. "pod/shop/web-0", "node/worker-1"
    destination: str  # e.g. "service/shop/postgres:5432", "uri/https://api.example.com/"
    protocol: str

    @classmethod
    def of(cls, check: ConnectivityCheck) -> CheckLabels:
        namespace, spec = check.namespace, check.spec
        source, target = spec.source, spec.destination
        if source.pod is not None:
            source_text = f"pod/{source.pod.namespace or namespace}/{source.pod.name}"
        elif source.pod_selector is not None:
            selector = source.pod_selector.model_dump(
                mode="json", by_alias=True, exclude_defaults=True
            )
            source_text = f"podSelector/{namespace}/{parse_selector(selector, 'podSelector')}"
        elif source.node is not None:
            source_text = f"node/{source.node.name}"
        else:
            assert source.workload is not None
            workload = source.workload
            source_text = f"{workload.kind}/{workload.namespace or namespace}/{workload.name}"
        if target.pod is not None or target.service is not None:
            kind, ref = ("pod", target.pod) if target.pod else ("service", target.service)
            assert ref is not None
            destination = f"{kind}/{ref.namespace or namespace}/{ref.name}"
        elif target.node is not None:
            destination = f"node/{target.node.name}"
        elif target.uri is not None:
            destination = f"uri/{without_userinfo(target.uri)}"
        else:
            destination = f"fqdn/{target.fqdn}" if target.fqdn else f"ip/{target.ip}"
        if target.port is not None and target.uri is None:
            destination += f":{target.port}"
        return cls(
            namespace,
            check.metadata["name"],
            _bounded(source_text),
            _bounded(destination),
            spec.protocol,
        )


# A selector at the CRD's bounds reads as tens of KB, a URI as 2 KB: every sample of every
# series would carry it. Cut, with a digest of the whole so two long ones stay two series.
MAX_LABEL_TEXT = 256


def _bounded(text: str) -> str:
    if len(text) <= MAX_LABEL_TEXT:
        return text
    digest = hashlib.sha256(text.encode()).hexdigest()[:16]
    return f"{text[: MAX_LABEL_TEXT - len(digest) - 1]}…{digest}"


@dataclass(frozen=True)
class MetricsOptions:
    """The opt-in series. Off, each family is still described (HELP/TYPE): a query of it
    finds an empty result, not an unknown name."""

    per_check_histograms: bool = False  # the run-duration histogram: 12 buckets per check
    per_hop_series: bool = False  # hop latency and the hop graph: a series per hop and edge
    per_check_counters: bool = False  # probes sent/failed, runs by outcome


class Metrics:
    def __init__(self, options: MetricsOptions = MetricsOptions()) -> None:
        self.options = options
        self.registry = CollectorRegistry()
        r = self.registry
        self.reachable = Gauge(
            "hopscope_check_reachable",
            "1 when the last run reached the destination (Reachable or Degraded), else 0.",
            COMMON,
            registry=r,
        )
        self.latency = Gauge(
            "hopscope_check_latency_seconds",
            "Connection latency of the last run.",
            [*COMMON, "stat"],
            registry=r,
        )
        self.loss = Gauge(
            "hopscope_check_probe_loss_ratio",
            "Share of the last run's probes that failed (0-1); absent when it sent none.",
            COMMON,
            registry=r,
        )
        self.probes_sent = Counter(
            "hopscope_check_probes_sent_total", "Connection probes sent.", COMMON, registry=r
        )
        self.probes_failed = Counter(
            "hopscope_check_probes_failed_total",
            "Connection probes that got no answer or a failure.",
            COMMON,
            registry=r,
        )
        self.issues = Gauge(
            "hopscope_check_issues",
            "Issues the last run found, by type and severity.",
            [*COMMON, "type", "severity"],
            registry=r,
        )
        self.hop_latency = Gauge(
            "hopscope_hop_latency_seconds",
            "Average latency to each hop of the last traced path.",
            [*COMMON, "hop_ttl", "hop_address"],
            registry=r,
        )
        self.run_duration = Histogram(
            "hopscope_check_run_duration_seconds",
            "How long the probe took for one run.",
            COMMON,
            buckets=RUN_BUCKETS,
            registry=r,
        )
        self.runs = Counter(
            "hopscope_check_runs_total",
            "Runs by outcome (the connection status).",
            [*COMMON, "outcome"],
            registry=r,
        )
        self.path_changes = Counter(
            "hopscope_check_path_changes_total",
            "Runs whose path fingerprint differed from the previous path.",
            COMMON,
            registry=r,
        )
        self.latency_threshold = Gauge(
            "hopscope_check_latency_threshold_seconds",
            "The check's latency threshold: above it a reachable check is Degraded.",
            COMMON,
            registry=r,
        )
        self.loss_threshold = Gauge(
            "hopscope_check_loss_threshold_ratio",
            "The check's probe-loss threshold (0-1): above it a reachable check is Degraded.",
            COMMON,
            registry=r,
        )
        self.path_hop = Gauge(
            "hopscope_path_hop_info",
            "1 for each hop of the last traced hop graph (silent hops too), by hop id.",
            [*COMMON, "hop_id", "hop_address"],
            registry=r,
        )
        self.path_edge = Gauge(
            "hopscope_path_edge_info",
            "1 for each edge of the last traced hop graph (hop ids, as in the status).",
            [*COMMON, "edge", "from_hop", "to_hop"],
            registry=r,
        )
        self.endpoint_reachable = Gauge(
            "hopscope_endpoint_reachable",
            "A Service check: 1 when the last run reached this backend directly, else 0.",
            [*COMMON, *ENDPOINT],
            registry=r,
        )
        self.endpoint_latency = Gauge(
            "hopscope_endpoint_latency_seconds",
            "A Service check: average connection latency to this backend in the last run.",
            [*COMMON, *ENDPOINT],
            registry=r,
        )
        self.pods_in_flight = Gauge(
            "hopscope_probe_pods_in_flight", "Probe pods created and not yet collected.", registry=r
        )
        self.leader = Gauge(
            "hopscope_operator_leader",
            "1 on the replica holding the Lease, which alone exports check series; 0 elsewhere.",
            registry=r,
        )
        self._labels: dict[str, CheckLabels] = {}
        self._snapshot: dict[str, set[GaugeSeries]] = {}  # the last run's gauges, replaced per run
        self._cumulative: dict[str, set[Series]] = {}  # counters and histograms, kept
        # Each series' child as labels() made it: labels() checks and locks on every call, a
        # tenth of a check's metrics CPU per series. A series removed leaves it (`_remove`).
        self._children: dict[Series, Any] = {}

    def record(
        self,
        check_key: str,
        labels: CheckLabels,
        result: ProbeResult,
        *,
        max_hops: int = MAX_HOP_SERIES,
        path_changed: bool = False,
        duration_seconds: float | None = None,
        new_run: bool = True,
        thresholds: Thresholds | None = None,
    ) -> None:
        """One run of a check. Every series exists even when every probe failed.

        `new_run=False` re-exports a run already counted (the last status, after a restart):
        gauges are set and series created, counters are not incremented again.
        """
        common = self._adopt(check_key, labels)
        cumulative = self._cumulative.setdefault(check_key, set())
        cumulative.add((self.path_changes, common))
        self._child(self.path_changes, common).inc(1 if path_changed and new_run else 0)
        if self.options.per_check_counters:
            counted = 1 if new_run else 0
            outcome = result.connection_status.value
            cumulative |= {
                (self.probes_sent, common),
                (self.probes_failed, common),
                (self.runs, (*common, outcome)),
            }
            self._child(self.probes_sent, common).inc(result.probes_sent * counted)
            self._child(self.probes_failed, common).inc(result.probes_failed * counted)
            self._child(self.runs, (*common, outcome)).inc(counted)
        if self.options.per_check_histograms:
            cumulative.add((self.run_duration, common))
            if duration_seconds is None and result.duration_ms is not None:
                duration_seconds = result.duration_ms / 1000
            run_duration = self._child(self.run_duration, common)  # exported even before a duration
            if duration_seconds is not None and new_run:
                run_duration.observe(duration_seconds)

        snapshot: dict[GaugeSeries, float] = {}
        # Unknown is no verdict: exported as 0 it would page as Unreachable; the run's Probe
        # issue (its own alert) says instead that the probe could not run.
        if result.connection_status != ConnectionStatus.UNKNOWN:
            snapshot[(self.reachable, common)] = float(result.connection_status in REACHABLE)
        if result.latency is not None:
            for stat, ms in (
                ("min", result.latency.min_ms),
                ("avg", result.latency.avg_ms),
                ("max", result.latency.max_ms),
            ):
                snapshot[(self.latency, (*common, stat))] = ms / 1000
        # What the loss alert reads, not rate() of the counters: they are created holding the
        # first run's counts (no increase to see) and step once a run (long intervals flap).
        if result.probes_sent:
            snapshot[(self.loss, common)] = result.probes_failed / result.probes_sent
        tally = Tally((issue.type.value, issue.severity.value) for issue in result.issues)
        for (kind, severity), number in tally.items():
            snapshot[(self.issues, (*common, kind, severity))] = number
        snapshot |= self._thresholds(common, thresholds or Thresholds())
        if self.options.per_hop_series:  # and per endpoint: detail below the check's figures
            snapshot |= self._hop_series(common, result, max_hops)
            snapshot |= self._endpoints(common, result)
        self._replace_snapshot(check_key, snapshot)

    def _hop_series(
        self, common: tuple[str, ...], result: ProbeResult, max_hops: int
    ) -> dict[GaugeSeries, float]:
        snapshot: dict[GaugeSeries, float] = {}
        # The hop graph for the dashboard's node graph: bounded like the per-hop latencies.
        for graph_hop in result.hops[: 2 * max_hops]:
            where = graph_hop.address or "*"
            snapshot[(self.path_hop, (*common, graph_hop.id, where))] = 1
        edges = [(h.id, nxt) for h in result.hops for nxt in h.next_hop_ids][: 2 * max_hops]
        for origin, target in edges:
            snapshot[(self.path_edge, (*common, f"{origin}>{target}", origin, target))] = 1
        timed = [h for h in result.hops if h.ttl and h.address and h.latency is not None]
        timed.sort(key=lambda hop: (hop.ttl or 0, hop.address or ""))
        for hop in timed[:max_hops]:
            assert hop.latency is not None and hop.address is not None
            key = (self.hop_latency, (*common, str(hop.ttl), hop.address))
            snapshot[key] = hop.latency.avg_ms / 1000
        return snapshot

    def _endpoints(self, common: tuple[str, ...], result: ProbeResult) -> dict[GaugeSeries, float]:
        """A series pair per backend the run probed, at most MAX_ENDPOINTS (a status edited to
        hold more exports no more); one the probe could not judge (Unknown) exports no verdict."""
        series: dict[GaugeSeries, float] = {}
        for endpoint in result.endpoints[:MAX_ENDPOINTS]:
            labels = (*common, endpoint.pod or endpoint.address, endpoint.node or "")
            if endpoint.connection_status != ConnectionStatus.UNKNOWN:
                reached = endpoint.connection_status in REACHABLE
                series[(self.endpoint_reachable, labels)] = float(reached)
            if endpoint.latency is not None:
                series[(self.endpoint_latency, labels)] = endpoint.latency.avg_ms / 1000
        return series

    def restore(self, check_key: str, check: ConnectivityCheck) -> None:
        """After a restart, export a check's last result again from its status, so a one-shot
        check that failed keeps its alert firing instead of its series vanishing."""
        status = check.status
        if self.knows(check_key) or status is None or not status.connection_status:
            return
        labels, thresholds = CheckLabels.of(check), check.spec.thresholds
        ready = next((c for c in status.conditions if c.type == "Ready"), None)
        if ready is not None and ready.status == "False":
            # The status still holds its last run's figures: they are not current.
            self.cannot_run(check_key, labels, thresholds)
            return
        last = status.as_result(check.spec.protocol, check_key)
        max_hops = check.spec.path.max_hops
        self.record(
            check_key, labels, last, max_hops=max_hops, new_run=False, thresholds=thresholds
        )

    def cannot_run(self, check_key: str, labels: CheckLabels, thresholds: Thresholds) -> None:
        """The check cannot run now (its source is gone, its probe pod refused, ...): the last
        run's figures are no longer current, and the Probe issue series fires its alert."""
        common = self._adopt(check_key, labels)
        snapshot = {(self.issues, (*common, *CANNOT_RUN)): 1.0}
        self._replace_snapshot(check_key, snapshot | self._thresholds(common, thresholds))

    def _adopt(self, check_key: str, labels: CheckLabels) -> tuple[str, ...]:
        """The check's label values; a spec that renamed them forgets the old series."""
        if self._labels.get(check_key, labels) != labels:
            self.forget(check_key)
        self._labels[check_key] = labels
        return astuple(labels)

    def _thresholds(self, common: tuple[str, ...], limits: Thresholds) -> dict[GaugeSeries, float]:
        return {
            (self.latency_threshold, common): limits.latency_ms / 1000,
            (self.loss_threshold, common): limits.loss_percent / 100,
        }

    def _replace_snapshot(self, check_key: str, snapshot: dict[GaugeSeries, float]) -> None:
        for metric, values in self._snapshot.get(check_key, set()) - snapshot.keys():
            self._remove(metric, values)
        for (metric, values), value in snapshot.items():
            self._child(metric, values).set(value)
        self._snapshot[check_key] = set(snapshot)

    def _child(self, metric: MetricWrapperBase, values: tuple[str, ...]) -> Any:
        child = self._children.get((metric, values))
        if child is None:
            child = self._children[(metric, values)] = metric.labels(*values)
        return child

    def _remove(self, metric: MetricWrapperBase, values: tuple[str, ...]) -> None:
        self._children.pop((metric, values), None)
        metric.remove(*values)

    def knows(self, check_key: str) -> bool:
        return check_key in self._labels

    def checks(self) -> set[str]:
        """The checks that have series."""
        return set(self._labels)

    def forget(self, check_key: str) -> None:
        """Remove every series of a check (deleted, or its labels changed)."""
        self._labels.pop(check_key, None)
        series: set[Series] = set(self._snapshot.pop(check_key, set()))
        for metric, values in series | self._cumulative.pop(check_key, set()):
            self._remove(metric, values)

    def clear_checks(self) -> None:
        """Every check's series go: this replica no longer leads (the new leader exports them)."""
        for check_key in self.checks():
            self.forget(check_key)
        self.pods_in_flight.set(0)

    def set_leader(self, leading: bool) -> None:
        self.leader.set(1 if leading else 0)

    def set_pods_in_flight(self, count: int) -> None:
        self.pods_in_flight.set(count)

    def exposition(self) -> bytes:
        """The text format, as /metrics serves it."""
        return generate_latest(self.registry)
