"""Operator scale: 1,000 scheduled checks over 50 nodes, one tick at a time.

Runs the real reconciler against the in-memory API server (validation off: this measures the
operator, not the fake) and prints, per tick: probe pods created (target <= nodes), operator
CPU seconds, and the time from a probe pod's completion to its checks' status written (target
<= 1 s: the pod's watch event wakes a tick at once, so the tick's own duration is that delay).
Peak RSS of the process, and how much of it the fake API server held before the operator
started (target for the operator <= 150 MiB), and the API requests each tick makes (what a
real API server would serve), and the size of /metrics (target <= 1.5 MiB with the chart's
defaults), in all and per check. Figures are printed, not asserted.

    python bench/operator.py                  # cluster-wide: every check in one namespace
    python bench/operator.py --namespaced 10  # checks over 10 namespaces, the operator confined
    python bench/operator.py --policies 1000  # and 1,000 NetworkPolicies the analysis reads
    python bench/operator.py --metrics per_hop_series  # /metrics with an opt-in series on
"""

from __future__ import annotations

import argparse
import dataclasses
import random
import resource
import sys
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from prometheus_client import disable_created_metrics  # noqa: E402

from bench.policy import policy_spec  # noqa: E402
from hopscope_operator.api import API_VERSION, KIND  # noqa: E402
from hopscope_operator.cluster import CHECKS, NETWORK_POLICIES, NODES, PODS  # noqa: E402
from hopscope_operator.controller.metrics import Metrics, MetricsOptions  # noqa: E402
from hopscope_operator.controller.reconcile import Reconciler, Settings  # noqa: E402
from hopscope_operator.controller.tenancy import Tenancy  # noqa: E402
from hopscope_operator.install.crd import custom_resource_definition  # noqa: E402
from hopscope_operator.names import NAMESPACE  # noqa: E402
from hopscope_probe.batch import Batch, BatchOutput  # noqa: E402
from hopscope_probe.models import (  # noqa: E402
    ConnectionStatus,
    DestinationInfo,
    Hop,
    HopType,
    Latency,
    ProbeResult,
    Protocol,
)
from tests.operator.conftest import ApiServer, install_chart  # noqa: E402
from tests.operator.fakeapi import FakeApi  # noqa: E402

NODE_COUNT = 50
CHECKS_TOTAL = 1000
INTERVAL = 60
TICKS = 3


class Clock:
    def __init__(self) -> None:
        self.now = datetime(2026, 11, 25, 12, 0, tzinfo=UTC)

    def __call__(self) -> datetime:
        return self.now


def build(namespaces: list[str], policies: int) -> tuple[FakeApi, Clock]:
    schema = custom_resource_definition()["spec"]["versions"][0]["schema"]["openAPIV3Schema"]
    api = FakeApi(ApiServer(schema), validate=False)
    install_chart(api)  # the probe pods' namespace and ServiceAccount, as the chart makes them
    for node in range(NODE_COUNT):
        name = f"node-{node:02d}"
        api.put(
            NODES,
            {
                "apiVersion": "v1",
                "kind": "Node",
                "metadata": {"name": name},
                "status": {"addresses": [{"type": "InternalIP", "address": f"192.0.2.{node + 1}"}]},
            },
        )
    for index in range(CHECKS_TOTAL):
        api.create(
            CHECKS,
            namespaces[index % len(namespaces)],
            {
                "apiVersion": API_VERSION,
                "kind": KIND,
                "metadata": {"name": f"check-{index:04d}"},
                "spec": {
                    "source": {"node": {"name": f"node-{index % NODE_COUNT:02d}"}},
                    "destination": {"ip": f"198.18.{index // 250}.{index % 250 + 1}", "port": 443},
                    "schedule": {"intervalSeconds": INTERVAL},
                },
            },
        )
    rng = random.Random(4)
    for index in range(policies):  # the shapes of the policy benchmark, over the namespaces
        api.create(
            NETWORK_POLICIES,
            namespaces[index % len(namespaces)],
            {
                "apiVersion": "networking.k8s.io/v1",
                "kind": "NetworkPolicy",
                "metadata": {"name": f"policy-{index:04d}"},
                "spec": policy_spec(index % 20, rng),
            },
        )
    return api, Clock()


def result(host: str) -> ProbeResult:
    hops = [Hop(id="source", type=HopType.SOURCE, ttl=0)]
    hops += [
        Hop(
            id=f"h{ttl}-10.0.{ttl}.1",
            type=HopType.ROUTER,
            address=f"10.0.{ttl}.1",
            ttl=ttl,
            latency=Latency(min_ms=ttl * 0.4, avg_ms=ttl * 0.5, max_ms=ttl * 0.6),
        )
        for ttl in range(1, 7)
    ]
    return ProbeResult(
        connection_status=ConnectionStatus.REACHABLE,
        protocol=Protocol.TCP,
        destination=DestinationInfo(host=host, port=443, addresses=[host]),
        latency=Latency(min_ms=2.0, avg_ms=3.0, max_ms=4.0),
        probes_sent=10,
        hops=hops,
        path_fingerprint="bench",
        duration_ms=150.0,
    )


def finish(api: FakeApi, pod: dict) -> None:
    """The kubelet's side: the probe printed one result line per check and exited."""
    env = pod["spec"]["containers"][0]["env"][0]["value"]
    lines = [
        BatchOutput(id=item.id, result=result(item.request.host)).to_json()
        for item in Batch.model_validate_json(env).checks
    ]
    api.finish_pod(NAMESPACE, pod["metadata"]["name"], "\n".join(lines))


def cpu_seconds() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def rss_mib() -> float:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return 0.0


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--namespaced", type=int, metavar="N", help="spread the checks over N namespaces and "
        "confine the operator to them (watch.namespaces)"
    )  # fmt: skip
    parser.add_argument(
        "--policies", type=int, default=0, metavar="N", help="NetworkPolicies in the checks' "
        "namespaces: every check's analysis evaluates them"
    )  # fmt: skip
    options = [field.name for field in dataclasses.fields(MetricsOptions)]
    parser.add_argument(
        "--metrics", action="append", default=[], choices=options, help="turn an opt-in "
        "series of /metrics on (the chart's metrics.* values); repeatable"
    )  # fmt: skip
    args = parser.parse_args()
    disable_created_metrics()  # as the operator serves /metrics
    metrics = Metrics(MetricsOptions(**dict.fromkeys(args.metrics, True)))
    namespaces = [f"bench-{i}" for i in range(args.namespaced or 1)]
    api, clock = build(namespaces, args.policies)
    before = rss_mib()
    watched = tuple(namespaces) if args.namespaced else ()
    # Node sources, as an install with tenancy.allowNodeSources runs them: one pod per node.
    tenancy = Tenancy(allow_node_sources=True)
    settings = Settings(namespace=NAMESPACE, watch_namespaces=watched, tenancy=tenancy)
    reconciler = Reconciler(api, metrics, settings, clock)
    scope = f"confined to {len(namespaces)} namespaces" if watched else "cluster-wide"
    print(
        f"{CHECKS_TOTAL} scheduled checks (every {INTERVAL} s) over {NODE_COUNT} nodes, {scope},"
        f" {args.policies} NetworkPolicies"
    )
    print(
        f"{'tick':>4} {'pods made':>9} {'deferred':>8} {'collected':>9} {'cpu s':>7} {'wall s':>7}"
        f" {'requests':>8}"
    )
    for tick in range(TICKS):
        cpu, wall, calls = cpu_seconds(), time.perf_counter(), len(api.calls)
        planned = reconciler.tick()
        plan_cpu, plan_wall = cpu_seconds() - cpu, time.perf_counter() - wall
        print(
            f"{tick:>4} {planned.created:>9} {planned.deferred:>8} {'':>9} "
            f"{plan_cpu:>7.2f} {plan_wall:>7.2f} {len(api.calls) - calls:>8}"
        )
        # One node's pod completes: the tick its watch event wakes is completion-to-status.
        first, *rest = api.list(PODS, NAMESPACE)
        finish(api, first)
        wall = time.perf_counter()
        one = reconciler.tick()
        delay_ms = (time.perf_counter() - wall) * 1000
        print(f"     one pod ended: {one.collected} statuses written {delay_ms:.0f} ms after its "
              "completion event (target <= 1000 ms)")  # fmt: skip
        for pod in rest:
            finish(api, pod)
        cpu, wall, calls = cpu_seconds(), time.perf_counter(), len(api.calls)
        collected = reconciler.tick()
        print(
            f"{'':>4} {collected.created:>9} {collected.deferred:>8} {collected.collected:>9} "
            f"{cpu_seconds() - cpu:>7.2f} {time.perf_counter() - wall:>7.2f}"
            f" {len(api.calls) - calls:>8}"
        )
        clock.now += timedelta(seconds=INTERVAL + 31)  # past every check's interval + jitter
    exposition = reconciler.metrics.exposition()
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(f"probe pods per tick: {NODE_COUNT} nodes -> target <= {NODE_COUNT}")
    options_on = ", ".join(args.metrics) or "the chart's defaults"
    print(
        f"/metrics ({options_on}): {len(exposition)} bytes = {len(exposition) / 2**20:.2f} MiB,"
        f" {len(exposition) / CHECKS_TOTAL:.0f} bytes per check (target <= 1.5 MiB by default)"
    )
    print(
        f"peak RSS {peak:.0f} MiB; the in-memory API server with its checks held {before:.0f} MiB"
    )
    print(f"operator's share ~{peak - before:.0f} MiB (target <= 150 MiB)")


if __name__ == "__main__":
    main()
