"""Prometheus metrics of every check, blackbox-exporter style, on the operator's own registry.

Labels stay bounded: per check only what its spec names (never resolved addresses), plus per-hop
series on one gauge, at most maxHops of them, and a Service check's per-endpoint series, at most
MAX_ENDPOINTS of them (the backends its last run probed, by pod). /metrics stays bounded too:
what the alerts and the dashboard's check panels read is always there; the costlier per-check
series are opt-in (`MetricsOptions`, the chart's `metrics.*` values; the README gives their cost
per check; the per-endpoint series come with the per-hop ones). Each check's series are one
record that a run replaces (a hop no longer on the path disappears, so does a replaced pod),
counters carried over, and `forget` removes every series of a deleted check. The registry renders
the records on each scrape, without prometheus-client's `_created` companions (as the operator
has always served /metrics: it turns them off).
"""

from __future__ import annotations

import hashlib
import threading
from collections import Counter as Tally
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from itertools import accumulate
from typing import Any, NamedTuple

from prometheus_client import CollectorRegistry, Gauge, generate_latest
from prometheus_client.metrics_core import (
    CounterMetricFamily,
    GaugeMetricFamily,
    HistogramMetricFamily,
    Metric,
)
from prometheus_client.registry import Collector
from prometheus_client.utils import INF, floatToGoString

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

    def values(self) -> tuple[str, ...]:
        """In COMMON's order: the labels every series of the check starts with."""
        return (self.namespace, self.check, self.source, self.destination, self.protocol)


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


class Family(NamedTuple):
    """A metric's name, help and type, and the labels its series add after COMMON."""

    name: str
    help: str
    kind: Callable[..., Metric]  # GaugeMetricFamily, CounterMetricFamily, HistogramMetricFamily
    extra: tuple[str, ...] = ()

    def empty(self) -> Any:  # the kind's add_metric differs: callers know which one they hold
        return self.kind(self.name, self.help, labels=(*COMMON, *self.extra))


CHECK_REACHABLE = Family(
    "hopscope_check_reachable",
    "1 when the last run reached the destination (Reachable or Degraded), else 0.",
    GaugeMetricFamily,
)
CHECK_LATENCY = Family(
    "hopscope_check_latency_seconds",
    "Connection latency of the last run.",
    GaugeMetricFamily,
    ("stat",),
)
PROBE_LOSS = Family(
    "hopscope_check_probe_loss_ratio",
    "Share of the last run's probes that failed (0-1); absent when it sent none.",
    GaugeMetricFamily,
)
PROBES_SENT = Family(
    "hopscope_check_probes_sent_total", "Connection probes sent.", CounterMetricFamily
)
PROBES_FAILED = Family(
    "hopscope_check_probes_failed_total",
    "Connection probes that got no answer or a failure.",
    CounterMetricFamily,
)
CHECK_ISSUES = Family(
    "hopscope_check_issues",
    "Issues the last run found, by type and severity.",
    GaugeMetricFamily,
    ("type", "severity"),
)
HOP_LATENCY = Family(
    "hopscope_hop_latency_seconds",
    "Average latency to each hop of the last traced path.",
    GaugeMetricFamily,
    ("hop_ttl", "hop_address"),
)
RUN_DURATION = Family(
    "hopscope_check_run_duration_seconds",
    "How long the probe took for one run.",
    HistogramMetricFamily,
)
RUNS = Family(
    "hopscope_check_runs_total",
    "Runs by outcome (the connection status).",
    CounterMetricFamily,
    ("outcome",),
)
PATH_CHANGES = Family(
    "hopscope_check_path_changes_total",
    "Runs whose path fingerprint differed from the previous path.",
    CounterMetricFamily,
)
LATENCY_THRESHOLD = Family(
    "hopscope_check_latency_threshold_seconds",
    "The check's latency threshold: above it a reachable check is Degraded.",
    GaugeMetricFamily,
)
LOSS_THRESHOLD = Family(
    "hopscope_check_loss_threshold_ratio",
    "The check's probe-loss threshold (0-1): above it a reachable check is Degraded.",
    GaugeMetricFamily,
)
PATH_HOP = Family(
    "hopscope_path_hop_info",
    "1 for each hop of the last traced hop graph (silent hops too), by hop id.",
    GaugeMetricFamily,
    ("hop_id", "hop_address"),
)
PATH_EDGE = Family(
    "hopscope_path_edge_info",
    "1 for each edge of the last traced hop graph (hop ids, as in the status).",
    GaugeMetricFamily,
    ("edge", "from_hop", "to_hop"),
)
ENDPOINT_REACHABLE = Family(
    "hopscope_endpoint_reachable",
    "A Service check: 1 when the last run reached this backend directly, else 0.",
    GaugeMetricFamily,
    ENDPOINT,
)
ENDPOINT_LATENCY = Family(
    "hopscope_endpoint_latency_seconds",
    "A Service check: average connection latency to this backend in the last run.",
    GaugeMetricFamily,
    ENDPOINT,
)
FAMILIES = (  # in the order /metrics lists them
    CHECK_REACHABLE,
    CHECK_LATENCY,
    PROBE_LOSS,
    PROBES_SENT,
    PROBES_FAILED,
    CHECK_ISSUES,
    HOP_LATENCY,
    RUN_DURATION,
    RUNS,
    PATH_CHANGES,
    LATENCY_THRESHOLD,
    LOSS_THRESHOLD,
    PATH_HOP,
    PATH_EDGE,
    ENDPOINT_REACHABLE,
    ENDPOINT_LATENCY,
)
BOUNDS = (*RUN_BUCKETS, INF)
BUCKET_LABELS = tuple(floatToGoString(bound) for bound in BOUNDS)  # the `le` values
STATS = (("min",), ("avg",), ("max",))  # shared by every check's latency series

Key = tuple[Family, tuple[str, ...]]  # a check's series: its family, its labels after COMMON
Figures = tuple[tuple[Family, tuple[str, ...], float], ...]


class Exported(NamedTuple):
    """One check's series: the label values all of them share, then their values. Replaced
    whole, never changed in place: a scrape reads one run's record or the next."""

    common: tuple[str, ...]
    gauges: Figures  # the last run's
    counters: Figures  # kept across runs
    run_duration: tuple[tuple[int, ...], float] | None  # runs per bucket, their seconds' sum


class Metrics(Collector):
    """The registry's collector of every check's series, rendered from one `Exported` record
    per check on each scrape rather than held as one prometheus-client child per series (each
    with its lock and value object: 8 KB a check with the chart's defaults, 1 KB as records)."""

    def __init__(self, options: MetricsOptions = MetricsOptions()) -> None:
        self.options = options
        self._checks: dict[str, Exported] = {}
        # The tick records, kopf's handler threads forget, the HTTP server's thread scrapes.
        self._lock = threading.Lock()
        self.registry = CollectorRegistry()
        self.registry.register(self)
        self.pods_in_flight = Gauge(
            "hopscope_probe_pods_in_flight",
            "Probe pods created and not yet collected.",
            registry=self.registry,
        )
        self.leader = Gauge(
            "hopscope_operator_leader",
            "1 on the replica holding the Lease, which alone exports check series; 0 elsewhere.",
            registry=self.registry,
        )

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
        counted = 1 if new_run else 0
        counts: dict[Key, float] = {(PATH_CHANGES, ()): 1 if path_changed and new_run else 0}
        if self.options.per_check_counters:
            outcome = result.connection_status.value
            counts[(PROBES_SENT, ())] = result.probes_sent * counted
            counts[(PROBES_FAILED, ())] = result.probes_failed * counted
            counts[(RUNS, (outcome,))] = counted
        if duration_seconds is None and result.duration_ms is not None:
            duration_seconds = result.duration_ms / 1000

        snapshot: dict[Key, float] = {}
        # Unknown is no verdict: exported as 0 it would page as Unreachable; the run's Probe
        # issue (its own alert) says instead that the probe could not run.
        if result.connection_status != ConnectionStatus.UNKNOWN:
            snapshot[(CHECK_REACHABLE, ())] = float(result.connection_status in REACHABLE)
        if result.latency is not None:
            latency = result.latency
            for stat, ms in zip(
                STATS, (latency.min_ms, latency.avg_ms, latency.max_ms), strict=True
            ):
                snapshot[(CHECK_LATENCY, stat)] = ms / 1000
        # What the loss alert reads, not rate() of the counters: they are created holding the
        # first run's counts (no increase to see) and step once a run (long intervals flap).
        if result.probes_sent:
            snapshot[(PROBE_LOSS, ())] = result.probes_failed / result.probes_sent
        tally = Tally((issue.type.value, issue.severity.value) for issue in result.issues)
        for kind_and_severity, number in tally.items():
            snapshot[(CHECK_ISSUES, kind_and_severity)] = number
        snapshot |= _thresholds(thresholds or Thresholds())
        if self.options.per_hop_series:  # and per endpoint: detail below the check's figures
            snapshot |= _hop_series(result, max_hops)
            snapshot |= _endpoints(result)

        common = labels.values()
        with self._lock:
            last = self._last(check_key, common)
            run_duration = None
            if self.options.per_check_histograms:  # exported even before a duration
                observed = duration_seconds if new_run else None
                run_duration = _observed(last.run_duration, observed)
            self._checks[check_key] = Exported(
                common, _figures(snapshot), _added(last.counters, counts), run_duration
            )

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
        snapshot = {(CHECK_ISSUES, CANNOT_RUN): 1.0} | _thresholds(thresholds)
        common = labels.values()
        with self._lock:
            last = self._last(check_key, common)
            self._checks[check_key] = last._replace(gauges=_figures(snapshot))

    def _last(self, check_key: str, common: tuple[str, ...]) -> Exported:
        """The check's record, or an empty one: a new check, or a spec that renamed its labels
        (its old series go, counters start over)."""
        last = self._checks.get(check_key)
        if last is None or last.common != common:
            return Exported(common, (), (), None)
        return last

    def knows(self, check_key: str) -> bool:
        return check_key in self._checks

    def checks(self) -> set[str]:
        """The checks that have series."""
        with self._lock:
            return set(self._checks)

    def forget(self, check_key: str) -> None:
        """Remove every series of a check (deleted, or its labels changed)."""
        with self._lock:
            self._checks.pop(check_key, None)

    def clear_checks(self) -> None:
        """Every check's series go: this replica no longer leads (the new leader exports them)."""
        with self._lock:
            self._checks.clear()
        self.pods_in_flight.set(0)

    def set_leader(self, leading: bool) -> None:
        self.leader.set(1 if leading else 0)

    def set_pods_in_flight(self, count: int) -> None:
        self.pods_in_flight.set(count)

    def describe(self) -> Iterator[Metric]:
        """Every family, also those with no series (a query of one finds nothing, not an
        unknown name); the registry reads the names from it."""
        return (family.empty() for family in FAMILIES)

    def collect(self) -> Iterator[Metric]:
        with self._lock:
            checks = list(self._checks.values())
        families = {family: family.empty() for family in FAMILIES}
        for common, gauges, counters, run_duration in checks:
            for figures in (gauges, counters):
                for family, extra, value in figures:
                    families[family].add_metric((*common, *extra), value)
            if run_duration is not None:
                runs, seconds = run_duration
                buckets = list(zip(BUCKET_LABELS, accumulate(runs), strict=True))
                families[RUN_DURATION].add_metric(common, buckets, seconds)
        return iter(families.values())

    def exposition(self) -> bytes:
        """The text format, as /metrics serves it."""
        return generate_latest(self.registry)


def _hop_series(result: ProbeResult, max_hops: int) -> dict[Key, float]:
    snapshot: dict[Key, float] = {}
    # The hop graph for the dashboard's node graph: bounded like the per-hop latencies.
    for graph_hop in result.hops[: 2 * max_hops]:
        snapshot[(PATH_HOP, (graph_hop.id, graph_hop.address or "*"))] = 1
    edges = [(h.id, nxt) for h in result.hops for nxt in h.next_hop_ids][: 2 * max_hops]
    for origin, target in edges:
        snapshot[(PATH_EDGE, (f"{origin}>{target}", origin, target))] = 1
    timed = [h for h in result.hops if h.ttl and h.address and h.latency is not None]
    timed.sort(key=lambda hop: (hop.ttl or 0, hop.address or ""))
    for hop in timed[:max_hops]:
        assert hop.latency is not None and hop.address is not None
        snapshot[(HOP_LATENCY, (str(hop.ttl), hop.address))] = hop.latency.avg_ms / 1000
    return snapshot


def _endpoints(result: ProbeResult) -> dict[Key, float]:
    """A series pair per backend the run probed, at most MAX_ENDPOINTS (a status edited to hold
    more exports no more); one the probe could not judge (Unknown) exports no verdict."""
    series: dict[Key, float] = {}
    for endpoint in result.endpoints[:MAX_ENDPOINTS]:
        labels = (endpoint.pod or endpoint.address, endpoint.node or "")
        if endpoint.connection_status != ConnectionStatus.UNKNOWN:
            series[(ENDPOINT_REACHABLE, labels)] = float(endpoint.connection_status in REACHABLE)
        if endpoint.latency is not None:
            series[(ENDPOINT_LATENCY, labels)] = endpoint.latency.avg_ms / 1000
    return series


def _thresholds(limits: Thresholds) -> dict[Key, float]:
    return {
        (LATENCY_THRESHOLD, ()): limits.latency_ms / 1000,
        (LOSS_THRESHOLD, ()): limits.loss_percent / 100,
    }


def _figures(series: dict[Key, float]) -> Figures:
    return tuple((family, extra, float(value)) for (family, extra), value in series.items())


def _added(counters: Figures, counts: dict[Key, float]) -> Figures:
    """The counters with this run's counts added (a series new to the check starts at them)."""
    totals = {(family, extra): value for family, extra, value in counters}
    for key, count in counts.items():
        totals[key] = totals.get(key, 0.0) + count
    return _figures(totals)


def _observed(
    last: tuple[tuple[int, ...], float] | None, seconds: float | None
) -> tuple[tuple[int, ...], float]:
    """The run-duration histogram with one more run, as prometheus-client's observe() counts
    it (in its bucket, kept per bucket; the `le` series add them up)."""
    runs, total = last or ((0,) * len(BOUNDS), 0.0)
    if seconds is None:
        return runs, total
    counted = list(runs)
    for index, bound in enumerate(BOUNDS):
        if seconds <= bound:
            counted[index] += 1
            break
    return tuple(counted), total + seconds
