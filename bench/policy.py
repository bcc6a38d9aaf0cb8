"""Benchmark of the NetworkPolicy evaluator: one flow against 1,000 policies and 5,000 pods.

Target (issue 4): a flow evaluates in at most 5 ms once the index is built. Figures are printed
against the target, never asserted. No cluster and no privileges needed:

    .venv/bin/python bench/policy.py [--flows 2000] [--seed 4]

Two synthetic clusters, both 5,000 pods and 1,000 policies built from JSON as the API returns it:
  spread        50 namespaces x 100 pods, 20 policies each (a default deny of ingress, egress to
                DNS and in-cluster pods, and a mix of pod/namespace selectors, matchExpressions,
                ipBlocks, named ports, port ranges)
  concentrated  the same pods, but all 1,000 policies in one namespace (the worst case for
                finding the policies that select a pod), flows to and from that namespace
"""

from __future__ import annotations

import argparse
import copy
import random
import statistics
import time
import tracemalloc
from collections.abc import Callable
from ipaddress import IPv4Address
from typing import Any

from hopscope_policy import (
    Flow,
    L4Protocol,
    PodRef,
    PolicyIndex,
    PolicyRules,
    parse_namespace,
    parse_pod,
    parse_policy,
)
from hopscope_policy.diff import compare_matrix

TARGET_MS = 5.0
NAMESPACES, PODS_PER_NAMESPACE, POLICIES = 50, 100, 1000
TIERS = ("web", "api", "db", "cache")
PORTS = ((8080, "TCP"), (9090, "TCP"), (5432, "TCP"), (443, "TCP"), (53, "UDP"), (53, "TCP"))
Json = dict[str, Any]


def namespace_json(i: int) -> Json:
    return {"metadata": {"name": f"ns-{i}", "labels": {"team": f"team-{i % 10}"}}}


def pod_json(i: int, j: int) -> Json:
    labels = {"app": f"app-{j % 25}", "tier": TIERS[j % 4], "version": f"v{j % 3}"}
    ports = [
        {"name": "http", "containerPort": 8080},
        {"name": "metrics", "containerPort": 9090},
        {"name": "grpc", "containerPort": 50051},
    ]
    return {
        "metadata": {"name": f"pod-{j}", "namespace": f"ns-{i}", "labels": labels},
        "spec": {"nodeName": f"node-{j % 40}", "containers": [{"name": "app", "ports": ports}]},
        "status": {"podIP": str(IPv4Address(0x0A000000 + i * 256 + j + 1))},
    }


def policy_spec(k: int, rng: random.Random) -> Json:
    """One of a few shapes real clusters hold, with random labels."""
    app = {"matchLabels": {"app": f"app-{rng.randrange(25)}"}}
    team = {"matchLabels": {"team": f"team-{rng.randrange(10)}"}}
    shapes: list[Callable[[], Json]] = [
        lambda: {"podSelector": app, "ingress": [{"from": [{"podSelector": app}],
                                                   "ports": [{"port": "http"}]}]},
        lambda: {"podSelector": {"matchLabels": {"tier": "db"}},
                 "ingress": [{"from": [{"namespaceSelector": team,
                                        "podSelector": {"matchLabels": {"tier": "api"}}}],
                              "ports": [{"port": 5432}]}]},
        lambda: {"podSelector": app, "policyTypes": ["Egress"],
                 "egress": [{"to": [{"ipBlock": {"cidr": "0.0.0.0/0", "except": ["10.0.0.0/8"]}}],
                             "ports": [{"port": 443}]}]},
        lambda: {"podSelector": {"matchExpressions": [
                     {"key": "tier", "operator": "In", "values": ["web", "api"]},
                     {"key": "version", "operator": "NotIn", "values": [f"v{rng.randrange(3)}"]}]},
                 "ingress": [{"from": [{"namespaceSelector": {"matchExpressions": [
                     {"key": "team", "operator": "Exists"}]}}],
                              "ports": [{"port": 8000, "endPort": 8100}]}]},
        lambda: {"podSelector": app, "ingress": [{"from": [{"namespaceSelector": {},
                                                            "podSelector": app}],
                                                   "ports": [{"port": "metrics"}]}]},
    ]  # fmt: skip
    if k == 0:  # default deny ingress for the namespace
        return {"podSelector": {}, "policyTypes": ["Ingress"]}
    if k == 1:  # egress: DNS in team-0's namespaces, and any pod in the cluster
        dns = {"namespaceSelector": {"matchLabels": {"team": "team-0"}}}
        ports = [{"protocol": "UDP", "port": 53}, {"protocol": "TCP", "port": 53}]
        in_cluster = {"to": [{"namespaceSelector": {}}]}
        return {"podSelector": {}, "egress": [{"to": [dns], "ports": ports}, in_cluster]}
    return rng.choice(shapes)()


def cluster(concentrated: bool, rng: random.Random) -> tuple[list[Json], list[Json], list[Json]]:
    namespaces = [namespace_json(i) for i in range(NAMESPACES)]
    pods = [pod_json(i, j) for i in range(NAMESPACES) for j in range(PODS_PER_NAMESPACE)]
    policies = []
    for n in range(POLICIES):
        i, k = (0, n) if concentrated else divmod(n, POLICIES // NAMESPACES)
        meta = {"name": f"policy-{n}", "namespace": f"ns-{i}"}
        policies.append({"metadata": meta, "spec": policy_spec(k, rng)})
    return namespaces, pods, policies


def build(namespaces: list[Json], pods: list[Json], policies: list[Json]) -> PolicyIndex:
    rules = PolicyRules(
        [parse_namespace(n) for n in namespaces], [parse_policy(p) for p in policies]
    )
    return PolicyIndex([parse_pod(p) for p in pods], rules)


def flows(index: PolicyIndex, count: int, concentrated: bool, rng: random.Random) -> list[Flow]:
    refs = [pod.ref for pod in index.pods]
    hot = [ref for ref in refs if ref.namespace == "ns-0"]
    made = []
    for _ in range(count):
        src: PodRef | IPv4Address = rng.choice(refs)
        dst: PodRef | IPv4Address = rng.choice(refs)
        if concentrated:  # one end in the namespace that holds every policy
            src, dst = (rng.choice(hot), dst) if rng.random() < 0.5 else (src, rng.choice(hot))
        if rng.random() < 0.1:  # some traffic leaves the cluster
            dst = IPv4Address(rng.randrange(0x01000000, 0x09000000))
        port, protocol = rng.choice(PORTS)
        made.append(Flow(src, dst, port, L4Protocol(protocol)))
    return made


def scenario(name: str, concentrated: bool, count: int, seed: int) -> None:
    rng = random.Random(seed)
    objects = cluster(concentrated, rng)
    started = time.perf_counter()
    index = build(*objects)
    built = time.perf_counter() - started
    tracemalloc.start()
    kept = build(*objects)  # built again under tracemalloc, which slows it down
    memory, _ = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    del kept

    sample = flows(index, count, concentrated, rng)
    times, allowed = [], 0
    for flow in sample:
        t0 = time.perf_counter_ns()
        verdict = index.evaluate(flow)
        times.append((time.perf_counter_ns() - t0) / 1e6)
        allowed += verdict.allowed
    times.sort()
    median, p99 = statistics.median(times), times[int(len(times) * 0.99) - 1]
    print(f"\n{name}: {len(index.pods)} pods, {POLICIES} policies, {NAMESPACES} namespaces")
    print(f"  index build (parse JSON + index): {built * 1000:8.1f} ms")
    print(f"  index memory (traced, retained):  {memory / 2**20:8.1f} MiB")
    print(f"  {count} random flows, {allowed} allowed / {count - allowed} denied (per flow):")
    print(f"    median {median:6.3f} ms   p99 {p99:6.3f} ms   max {times[-1]:6.3f} ms")
    print(
        f"    target <= {TARGET_MS} ms: p99 is {TARGET_MS / p99:,.0f}x under it"
        if p99 <= TARGET_MS
        else f"    target <= {TARGET_MS} ms: p99 is {p99 / TARGET_MS:.1f}x OVER it"
    )


def diff_scenario(seed: int) -> None:
    """`hopscope policy diff --matrix` over the spread cluster, three policies of one namespace
    edited: the evaluated flows and the time, against 25M pairs of the full matrix."""
    rng = random.Random(seed)
    namespaces, pods, policies = cluster(False, rng)
    before = build(namespaces, pods, policies)
    proposed = copy.deepcopy(policies)
    for n in (45, 46, 47):
        proposed[n]["spec"] = policy_spec(5, rng)
    started = time.perf_counter()
    found = compare_matrix(before, build(namespaces, pods, proposed), 8080, L4Protocol.TCP)
    took = time.perf_counter() - started
    print("\ndiff: spread cluster, 3 policies edited, --matrix --port 8080 (incl. the new index)")
    print(f"  {found.evaluated:,} of {found.pairs:,} pairs evaluated, {len(found.changes)} flip:")
    print(f"    {took:6.1f} s")


def main() -> None:
    args = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    args.add_argument("--flows", type=int, default=2000)
    args.add_argument("--seed", type=int, default=4)
    opts = args.parse_args()
    scenario("spread", concentrated=False, count=opts.flows, seed=opts.seed)
    scenario("concentrated", concentrated=True, count=opts.flows, seed=opts.seed)
    diff_scenario(opts.seed)


if __name__ == "__main__":
    main()
