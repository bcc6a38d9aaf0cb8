"""Operator scale: 1,000 checks over 50 nodes beside 10,000 checks over 500 nodes, cluster-wide.

Runs the real reconciler against the in-memory API server (validation off: this measures the
operator, not the fake), each scenario in its own process (so that peak RSS is its own), and
prints the figures side by side with how each grows from 1k to 10k. Printed, not asserted:
- probe pods per tick (target <= nodes);
- operator RSS: one replica's peak (read before the handover, which runs two more Reconcilers
  in this process; its own peak is printed apart) less what the fake API server holds (its
  store when the operator starts and what it gains during the run, measured by copying it
  then), target 300 MiB;
- API requests per steady round (the planning tick, the ticks that collect), by verb, and those
  of an idle tick (nothing due, nothing ended): counted where every request reaches the fake
  (`FakeApi.calls`, as RBAC sees them), so a watch-fed cache shows as LISTs gone (target none);
- completion-to-status: from a probe pod's completion to each of its checks' status written,
  when one pod ends alone (its watch event wakes a tick at once) and when every pod of a tick
  ends at once (the last status waits for the whole collecting tick); target p99 <= 1 s. Each
  request the operator makes waits a network round trip (--rtt, default 2 ms, the low end of
  an in-cluster PATCH: etcd commits it before the answer) beside the fake's own serving, so
  requests made one after another cost what they cost against a real API server; the fake
  serves one request at a time (one core: harsher than a real server's many);
- CPU seconds per tick, the operator's: what the process spends inside the fake (serving
  requests and filtering watch events, a real API server's work) is subtracted and printed
  apart; /metrics (chart's defaults unless --metrics), total and per check;
- leader handover with the chart's Lease settings (controller/leader.py): the leader is killed
  mid-tick after its first probe pod create, the follower steps every RETRY on a fake clock
  (the wait is simulated seconds; its ticks while it follows keep its caches warm), and its
  first tick as leader runs for real until its first status write (wall seconds); the
  handover is their sum, from the kill.

    python bench/operator.py                  # both scenarios, the table (a few minutes)
    python bench/operator.py --only 1k        # one scenario: its per-tick lines and figures
    python bench/operator.py --namespaced 10  # checks over 10 namespaces, the operator confined
    python bench/operator.py --policies 0     # no NetworkPolicies (default: 1 per 10 checks)
    python bench/operator.py --metrics per_hop_series  # /metrics with an opt-in series on
    python bench/operator.py --rtt 0          # requests answered at once (CPU alone)
"""

from __future__ import annotations

import argparse
import contextlib
import copy
import dataclasses
import functools
import json
import random
import resource
import statistics
import subprocess
import sys
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from prometheus_client import disable_created_metrics  # noqa: E402

from bench.policy import policy_spec  # noqa: E402
from hopscope_operator.api import API_VERSION, KIND  # noqa: E402
from hopscope_operator.cluster import CHECKS, NETWORK_POLICIES, NODES, PODS, Object  # noqa: E402
from hopscope_operator.controller.leader import RETRY, LeaseElector  # noqa: E402
from hopscope_operator.controller.leading import LeaderOnly  # noqa: E402
from hopscope_operator.controller.metrics import Metrics, MetricsOptions  # noqa: E402
from hopscope_operator.controller.plan import Caps  # noqa: E402
from hopscope_operator.controller.reconcile import Reconciler, Settings, TickReport  # noqa: E402
from hopscope_operator.controller.tenancy import Tenancy  # noqa: E402
from hopscope_operator.install.crd import custom_resource_definition  # noqa: E402
from hopscope_operator.names import DEFAULT_MAX_PROBE_PODS, NAMESPACE  # noqa: E402
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
from tests.operator.conftest import ApiServer, Clock, install_chart  # noqa: E402
from tests.operator.fakeapi import FakeApi  # noqa: E402
from tests.operator.test_handover import Killed, Process  # noqa: E402

INTERVAL = 60
LONE_PODS = 3  # pods per round that end one at a time, each followed by the tick it wakes
# The request verbs, from the RBAC verbs the fake records (a PUT is an "update").
VERBS = {
    "list": "LIST",
    "watch": "WATCH",
    "get": "GET",
    "create": "POST",
    "update": "PUT",
    "patch": "PATCH",
    "delete": "DELETE",
}


@dataclasses.dataclass(frozen=True)
class Scenario:
    checks: int
    nodes: int
    rounds: int  # scheduling rounds (one interval each); the last is the steady one measured


SCENARIOS = {
    "1k": Scenario(checks=1000, nodes=50, rounds=3),
    "10k": Scenario(checks=10_000, nodes=500, rounds=2),  # fewer rounds: minutes, not an hour
}


class TimedApi(FakeApi):
    """The fake, noting when each check's status was last written (completion-to-status) and
    the CPU seconds spent inside it (`fake_cpu`: serving requests and watches, which a real API
    server does in its own process), each request of the operator a round trip `rtt` long."""

    def __init__(self, schema: ApiServer) -> None:
        super().__init__(schema, validate=False)
        self.rtt = 0.0  # seconds; set once the cluster is built (building it is instant)
        self.written: dict[str, float] = {}  # "namespace/name" -> perf_counter
        self.fake_cpu = 0.0
        self._counted = threading.Lock()
        # Per thread (the operator's writes come from a pool): nested calls (a delete's
        # garbage collection...) count once.
        self._inside = threading.local()

    def patch_status(self, resource, namespace, name, status, version, **options):  # type: ignore[no-untyped-def]
        written = super().patch_status(resource, namespace, name, status, version, **options)
        self.written[f"{namespace}/{name}"] = time.perf_counter()
        return written

    def watch(self, *args, **kwargs):  # type: ignore[no-untyped-def]
        stream = super().watch(*args, **kwargs)
        polled = stream.poll

        def poll() -> list[Object]:  # filtering the events for a watch is the server's work
            with self.serving():
                # Each its own copy, as a client decodes its own: the cache holding the fake's
                # history objects would count the operator's memory as the fake's.
                return copy.deepcopy(polled())

        stream.poll = poll  # type: ignore[method-assign]
        return stream

    @contextlib.contextmanager
    def serving(self) -> Iterator[None]:
        """The CPU seconds of the block count as the fake's (once, however nested): this
        thread's, as other threads run the operator meanwhile."""
        if getattr(self._inside, "now", False):
            yield
            return
        self._inside.now, started = True, time.thread_time()
        try:
            yield
        finally:
            with self._counted:
                self.fake_cpu += time.thread_time() - started
            self._inside.now = False

    def travel(self) -> None:
        """Half a round trip on the network (no CPU: other requests travel meanwhile)."""
        if self.rtt:
            time.sleep(self.rtt / 2)


def served(method: Callable[..., Any], *, remote: bool = True) -> Callable[..., Any]:
    @functools.wraps(method)
    def timed(api: TimedApi, *args: Any, **kwargs: Any) -> Any:
        if remote:
            api.travel()  # the request to the server
        with api.serving():
            answer = method(api, *args, **kwargs)
        if remote:
            api.travel()  # the answer back
        return answer

    return timed


# The ClusterApi contract, and the kubelet's side that the bench plays: the fake's work.
for _name in ("get", "list", "list_versioned", "watch", "create", "delete", "patch_status",
              "replace", "pod_log", "request_token"):  # fmt: skip
    setattr(TimedApi, _name, served(getattr(TimedApi, _name)))
TimedApi.finish_pod = served(TimedApi.finish_pod, remote=False)  # type: ignore[method-assign]


def build(
    scenario: Scenario, namespaces: list[str], policies: int, rtt: float = 0.0
) -> tuple[TimedApi, Clock]:
    schema = custom_resource_definition()["spec"]["versions"][0]["schema"]["openAPIV3Schema"]
    api = TimedApi(ApiServer(schema))
    install_chart(api)  # the probe pods' namespace and ServiceAccount, as the chart makes them
    for node in range(scenario.nodes):
        address = f"10.{node // 250}.{node % 250 + 1}.1"  # data only: nothing is sent to it
        api.put(
            NODES,
            {
                "apiVersion": "v1",
                "kind": "Node",
                "metadata": {"name": node_name(node)},
                "status": {"addresses": [{"type": "InternalIP", "address": address}]},
            },
        )
    for index in range(scenario.checks):
        api.create(
            CHECKS,
            namespaces[index % len(namespaces)],
            {
                "apiVersion": API_VERSION,
                "kind": KIND,
                "metadata": {"name": f"check-{index:05d}"},
                "spec": {
                    "source": {"node": {"name": node_name(index % scenario.nodes)}},
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
    api.rtt = rtt  # from now on, the operator's requests travel
    return api, Clock()


def node_name(node: int) -> str:
    return f"node-{node:03d}"


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


def finish(api: FakeApi, pod: Object) -> list[str]:
    """The kubelet's side: the probe printed one result line per check and exited. The checks
    ("namespace/name") the pod ran."""
    env = pod["spec"]["containers"][0]["env"][0]["value"]
    checks = Batch.model_validate_json(env).checks
    lines = [BatchOutput(id=item.id, result=result(item.request.host)).to_json() for item in checks]
    api.finish_pod(NAMESPACE, pod["metadata"]["name"], "\n".join(lines))
    return [item.id.rsplit("/", 1)[0] for item in checks]  # a run id is namespace/name/run


def running_pods(api: FakeApi) -> list[Object]:
    ended = ("Succeeded", "Failed")
    return api.select(PODS, NAMESPACE, lambda pod: pod.get("status", {}).get("phase") not in ended)


def cpu_seconds() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def rss_mib() -> float:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return 0.0


def peak_rss_mib() -> float:
    """The peak RSS since the process started or since the last `reset_peak_rss`."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def reset_peak_rss() -> None:
    """Start the peak over from the RSS now (Linux: clear_refs 5 resets VmHWM)."""
    Path("/proc/self/clear_refs").write_text("5")


@dataclasses.dataclass
class Tick:
    """One tick's cost: what it did, its CPU seconds (the operator's: the fake's share
    subtracted) and wall seconds, its requests by verb."""

    created: int
    collected: int
    cpu: float
    fake_cpu: float  # serving its requests and watches, in the fake (a real server's work)
    wall: float
    requests: Counter[str]


def measured_tick(api: TimedApi, tick: Callable[[], TickReport]) -> Tick:
    cpu, fake, wall, calls = cpu_seconds(), api.fake_cpu, time.perf_counter(), len(api.calls)
    report = tick()
    requests = Counter(VERBS.get(call[0] or "", str(call[0]).upper()) for call in api.calls[calls:])
    served = api.fake_cpu - fake
    return Tick(
        report.created,
        report.collected,
        cpu_seconds() - cpu - served,
        served,
        time.perf_counter() - wall,
        requests,
    )


def delays_ms(api: TimedApi, checks: list[str], ended: float) -> list[float]:
    return [(api.written[check] - ended) * 1000 for check in checks if check in api.written]


def percentile(samples: list[float], fraction: float) -> float:
    if not samples:
        return float("nan")
    ordered = sorted(samples)
    return ordered[min(len(ordered) - 1, round(fraction * (len(ordered) - 1)))]


def run(scenario: Scenario, args: argparse.Namespace) -> dict[str, object]:
    started = time.perf_counter()
    disable_created_metrics()  # as the operator serves /metrics
    options = MetricsOptions(**dict.fromkeys(args.metrics, True))
    namespaces = [f"bench-{i}" for i in range(args.namespaced or 1)]
    policies = scenario.checks // 10 if args.policies is None else args.policies
    api, clock = build(scenario, namespaces, policies, args.rtt / 1000)
    before = rss_mib()
    watched = tuple(namespaces) if args.namespaced else ()
    # Node sources, as an install with tenancy.allowNodeSources runs them: one pod per node,
    # and probes.maxPods raised to the node count (its default, 100, would spread a 500-node
    # round over five waves of pods).
    settings = Settings(
        namespace=NAMESPACE,
        watch_namespaces=watched,
        tenancy=Tenancy(allow_node_sources=True),
        caps=Caps(max_pods=max(scenario.nodes, DEFAULT_MAX_PROBE_PODS)),
    )
    reconciler = Reconciler(api, Metrics(options), settings, clock)
    scope = f"confined to {len(namespaces)} namespaces" if watched else "cluster-wide"
    say(
        f"{scenario.checks} scheduled checks (every {INTERVAL} s) over {scenario.nodes} nodes,"
        f" {scope}, {policies} NetworkPolicies; {scenario.rounds} rounds"
    )
    say(
        f"{'tick':>14} {'pods made':>9} {'collected':>9} {'cpu s':>7} {'fake s':>7} {'wall s':>7}"
        " requests"
    )
    pods_made = 0
    lone: list[float] = []
    bulk: list[float] = []
    for number in range(scenario.rounds):
        steady = number == scenario.rounds - 1
        plan = measured_tick(api, reconciler.tick)
        show(f"{number} plan", plan)
        pods_made = max(pods_made, plan.created)
        pods = running_pods(api)
        collects = []
        for pod in pods[:LONE_PODS]:  # one ends: the tick its watch event wakes writes it
            checks = finish(api, pod)
            ended = time.perf_counter()
            collects.append(measured_tick(api, reconciler.tick))
            lone += delays_ms(api, checks, ended) if steady else []
            show(f"{number} one ended", collects[-1])
        ran = [check for pod in pods[LONE_PODS:] for check in finish(api, pod)]
        ended = time.perf_counter()  # the rest end at once
        collects.append(measured_tick(api, reconciler.tick))
        bulk += delays_ms(api, ran, ended) if steady else []
        show(f"{number} rest ended", collects[-1])
        idle = measured_tick(api, reconciler.tick)
        show(f"{number} idle", idle)
        clock.advance(INTERVAL + 31)  # past every check's interval + jitter
    exposition = reconciler.metrics.exposition()
    # One replica's peak: read before the handover, which builds two more Reconcilers (each
    # with its own caches of every check) in this process.
    peak = peak_rss_mib()
    grown = fake_growth_mib(api)
    reset_peak_rss()
    handover = measure_handover(api, clock, settings, options)
    handover_peak = peak_rss_mib()
    collect_requests = sum((tick.requests for tick in collects), Counter())
    return {
        "checks": scenario.checks,
        "nodes": scenario.nodes,
        "policies": policies,
        "rounds": scenario.rounds,
        "pods_per_tick": pods_made,
        "peak_rss_mib": peak,
        "fake_at_start_mib": before,
        "fake_growth_mib": grown,
        "operator_rss_mib": peak - before - grown,
        "handover_rss_mib": handover_peak - before - grown,
        "round_requests": dict(plan.requests + collect_requests),
        "idle_requests": dict(idle.requests),
        "lone_p50_ms": percentile(lone, 0.5),
        "lone_p99_ms": percentile(lone, 0.99),
        "lone_samples": len(lone),
        "bulk_p50_ms": percentile(bulk, 0.5),
        "bulk_p99_ms": percentile(bulk, 0.99),
        "bulk_samples": len(bulk),
        "plan_cpu_s": plan.cpu,
        "lone_cpu_s": statistics.mean(tick.cpu for tick in collects[:-1]),
        "bulk_cpu_s": collects[-1].cpu,
        "bulk_fake_cpu_s": collects[-1].fake_cpu,
        "idle_cpu_s": idle.cpu,
        "metrics_bytes": len(exposition),
        **handover,
        "run_s": time.perf_counter() - started,
    }


def measure_handover(
    api: TimedApi, clock: Clock, settings: Settings, options: MetricsOptions
) -> dict[str, float]:
    """Two replicas with the chart's Lease settings; the leader dies mid-tick (after its first
    probe pod create) just after renewing, the worst case: the follower last stepped before that
    renewal, so it sees it one RETRY late and trusts it a whole lease duration more."""
    process = Process(api)

    def replica(via: FakeApi | Process, name: str) -> LeaderOnly:
        metrics = Metrics(options)
        elector = LeaseElector(via, settings.namespace, name, clock=clock)  # type: ignore[arg-type]
        return LeaderOnly(elector, metrics, lambda: Reconciler(via, metrics, settings, clock))  # type: ignore[arg-type]

    leader, follower = replica(process, "a"), replica(api, "b")
    if not leader.elect() or follower.elect():
        raise RuntimeError("the first replica should lead, the second follow")
    follower.tick()  # following: its caches list, watch and parse (LeaderOnly._warm)
    stepped = clock.now
    clock.advance(0.001)
    leader.elect()  # its last renewal
    killed = clock.now
    process.dies_after_a_pod_create = True
    with contextlib.suppress(Killed):
        leader.tick()
    for pod in running_pods(api):  # the dead leader's pod ends while nobody leads
        finish(api, pod)
    while True:
        stepped += RETRY
        clock.now = stepped
        follower.tick()  # its ticks while it waits keep its caches warm (not timed)
        if follower.elect():
            break
    waited = (clock.now - killed).total_seconds()
    api.written.clear()
    wall = time.perf_counter()
    follower.tick()
    first_write = min(api.written.values(), default=float("nan"))
    return {
        "handover_lease_s": waited,
        "handover_first_status_s": first_write - wall,
        "handover_s": waited + first_write - wall,
    }


def fake_growth_mib(api: FakeApi) -> float:
    """What the fake's store and watch history hold now, by how much RSS a copy of them adds
    (freed memory the copy reuses makes it a low estimate, so the operator's share a high one)."""
    held = rss_mib()
    kept = copy.deepcopy((api._store, [event.object for event in api.watch_events], api.logs))
    grown = rss_mib() - held
    del kept
    return grown


def say(line: str) -> None:
    print(line, file=sys.stderr, flush=True)


def show(name: str, tick: Tick) -> None:
    verbs = " ".join(f"{verb} {count}" for verb, count in sorted(tick.requests.items()))
    say(
        f"{name:>14} {tick.created:>9} {tick.collected:>9} {tick.cpu:>7.2f} {tick.fake_cpu:>7.2f}"
        f" {tick.wall:>7.2f}"
        f" {verbs or '-'}"
    )


# ---- the table ----------------------------------------------------------------------------


Row = tuple[str, Callable[[dict], str], str]  # figure, its value from a run's figures, target


def rows() -> list[Row]:
    def of(key: str, form: str = "{:.0f}") -> Callable[[dict], str]:
        return lambda figures: form.format(figures[key])

    def verb(key: str, name: str) -> Callable[[dict], str]:
        return lambda figures: str(figures[key].get(name, 0))

    table: list[Row] = [
        (
            "checks / nodes / NetworkPolicies",
            lambda f: f"{f['checks']}/{f['nodes']}/{f['policies']}",
            "",
        ),
        ("probe pods per tick (max)", of("pods_per_tick"), "<= nodes"),
        ("operator RSS MiB (peak - fake's)", of("operator_rss_mib"), "<= 300"),
        ("  peak RSS MiB", of("peak_rss_mib"), ""),
        ("  the fake's at start MiB", of("fake_at_start_mib"), ""),
        ("  the fake's growth during the run MiB", of("fake_growth_mib"), ""),
        ("  during the handover (3 Reconcilers) MiB", of("handover_rss_mib"), ""),
    ]
    table += [(f"requests per steady round: {name}", verb("round_requests", name), "")
              for name in VERBS.values()]  # fmt: skip
    table += [
        ("requests per idle tick: all", lambda f: str(sum(f["idle_requests"].values())), ""),
        ("requests per idle tick: LIST", verb("idle_requests", "LIST"), "0"),
        ("completion-to-status, 1 pod ends: p50 ms", of("lone_p50_ms"), ""),
        ("completion-to-status, 1 pod ends: p99 ms", of("lone_p99_ms"), "<= 1000"),
        ("completion-to-status, all end: p50 ms", of("bulk_p50_ms"), ""),
        ("completion-to-status, all end: p99 ms", of("bulk_p99_ms"), "<= 1000"),
        ("CPU s: planning tick", of("plan_cpu_s", "{:.2f}"), ""),
        ("CPU s: tick collecting 1 pod", of("lone_cpu_s", "{:.2f}"), ""),
        ("CPU s: tick collecting the rest", of("bulk_cpu_s", "{:.2f}"), ""),
        ("  the fake API's CPU s serving it (not counted)", of("bulk_fake_cpu_s", "{:.2f}"), ""),
        ("CPU s: idle tick", of("idle_cpu_s", "{:.2f}"), ""),
        ("/metrics MiB", lambda f: f"{f['metrics_bytes'] / 2**20:.2f}", ""),
        (
            "/metrics bytes per check",
            lambda f: f"{f['metrics_bytes'] / f['checks']:.0f}",
            "<= 1573",
        ),
        ("handover s: Lease expiry (simulated)", of("handover_lease_s", "{:.1f}"), ""),
        ("handover s: first tick to status (wall)", of("handover_first_status_s", "{:.2f}"), ""),
        ("handover s: kill to first status", of("handover_s", "{:.1f}"), "<= 15"),
        ("bench wall s", of("run_s"), ""),
    ]
    return table


def growth(values: list[str]) -> str:
    try:
        first, last = float(values[0]), float(values[-1])
    except ValueError:
        return ""
    return f"{last / first:.1f}x" if first else ("=" if last == first else "")


def print_table(names: list[str], figures: list[dict]) -> None:
    width = 44
    header = f"{'figure':<{width}}" + "".join(f"{name:>10}" for name in names)
    print(header + (f"{'growth':>9}" if len(names) > 1 else "") + "  target")
    for figure, value, target in rows():
        values = [value(run) for run in figures]
        line = f"{figure:<{width}}" + "".join(f"{value:>10}" for value in values)
        line += f"{growth(values):>9}" if len(names) > 1 else ""
        print(f"{line}  {target}".rstrip())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--only", choices=SCENARIOS, action="append", help="run this scenario (repeatable; "
        "default: all of them, side by side)"
    )  # fmt: skip
    parser.add_argument(
        "--namespaced", type=int, metavar="N", help="spread the checks over N namespaces and "
        "confine the operator to them (watch.namespaces)"
    )  # fmt: skip
    parser.add_argument(
        "--policies", type=int, metavar="N", help="NetworkPolicies in the checks' namespaces, "
        "which every check's analysis evaluates (default: one per 10 checks)"
    )  # fmt: skip
    options = [field.name for field in dataclasses.fields(MetricsOptions)]
    parser.add_argument(
        "--metrics", action="append", default=[], choices=options, help="turn an opt-in "
        "series of /metrics on (the chart's metrics.* values); repeatable"
    )  # fmt: skip
    parser.add_argument(
        "--rtt", type=float, default=2.0, metavar="MS", help="each request's network round "
        "trip, milliseconds (default 2; 0: answered at once)"
    )  # fmt: skip
    parser.add_argument("--json", action="store_true", help=argparse.SUPPRESS)  # a child's
    args = parser.parse_args()
    names = args.only or list(SCENARIOS)
    if args.json:  # one scenario in this process: its figures for the parent
        print(json.dumps(run(SCENARIOS[names[0]], args)))
        return
    figures = []
    passed = [f"--metrics={option}" for option in args.metrics]
    passed += [f"--namespaced={args.namespaced}"] if args.namespaced else []
    passed += [f"--policies={args.policies}"] if args.policies is not None else []
    passed += [f"--rtt={args.rtt}"]
    for name in names:  # each in its own process, so that its peak RSS is its own
        child = [sys.executable, __file__, "--json", f"--only={name}", *passed]
        done = subprocess.run(child, stdout=subprocess.PIPE, text=True, check=True)
        figures.append(json.loads(done.stdout))
    print_table(names, figures)


if __name__ == "__main__":
    main()
