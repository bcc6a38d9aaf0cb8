"""A Service check looks behind the Service: a ClusterIP of three backends, one of them broken.

The "Service" is what kube-proxy makes of one: a DNAT on r1 that spreads the connections to
198.18.9.1:80 over three backend addresses on dst (iptables statistic nth, as kube-proxy's
iptables mode does). Probing only the ClusterIP shows the broken backend as an intermittent
failure; probing each endpoint beside it names the one that fails.

Traced through the DNAT, the path is no routing loop: conntrack gives the time-exceeded of every
router from the DNAT on (the DNAT router's own included) the ClusterIP as its source address.
"""

from __future__ import annotations

from hopscope_probe.models import ConnectionStatus, HopType, IssueType

from .lab import Lab
from .test_scenarios import issues_of, probe

CLUSTER_IP = "198.18.9.1"
BACKENDS = {"web-0": "198.18.4.10", "web-1": "198.18.4.11", "web-2": "198.18.4.12"}
NODES = {"web-0": "node-a", "web-1": "node-b", "web-2": "node-c"}


def dnat(lab: Lab, router: str, backend: str) -> None:
    """kube-proxy's rule for a one-backend Service: CLUSTER_IP:80 to backend:8080 on `router`."""
    lab.iptables(
        router, "-t", "nat", "-A", "PREROUTING", "-d", CLUSTER_IP, "-p", "tcp", "--dport", "80",
        "-j", "DNAT", "--to-destination", f"{backend}:8080",
    )  # fmt: skip


def make_service(lab: Lab) -> None:
    lab.start_tcp_server("dst", 8080)
    for address in BACKENDS.values():
        lab["dst"].run(["ip", "address", "add", f"{address}/24", "dev", "to-r3"])
    # kube-proxy spreads at random; the lab's nth rules are exact, but they would count the
    # path sweep's SYNs too, and a sweep that interleaves two new flows between two probes puts
    # all six probes on one backend (CI saw it). The sweep's SYNs leave with TTLs below the
    # probes' 64 and go to web-0, so the spread counts the six probes alone: two per backend.
    lab.iptables(
        "r1", "-t", "nat", "-A", "PREROUTING", "-d", CLUSTER_IP, "-p", "tcp", "--dport", "80",
        "-m", "ttl", "--ttl-lt", "64",
        "-j", "DNAT", "--to-destination", f"{BACKENDS['web-0']}:8080",
    )  # fmt: skip
    rules = list(BACKENDS.values())
    for index, address in enumerate(rules):
        left = len(rules) - index
        spread = ["-m", "statistic", "--mode", "nth", "--every", str(left), "--packet", "0"]
        lab.iptables(
            "r1", "-t", "nat", "-A", "PREROUTING", "-d", CLUSTER_IP, "-p", "tcp", "--dport", "80",
            *(spread if left > 1 else []), "-j", "DNAT", "--to-destination", f"{address}:8080",
        )  # fmt: skip
    # web-2's pod is broken: nothing listens on its address (the kernel resets).
    lab.iptables(
        "dst", "-A", "INPUT", "-d", BACKENDS["web-2"], "-p", "tcp", "--dport", "8080",
        "-j", "REJECT", "--reject-with", "tcp-reset",
    )  # fmt: skip


def test_a_service_check_names_the_broken_backend_its_pod_and_node(lab: Lab) -> None:
    make_service(lab)
    endpoints = [f"{address}:8080,{pod},{NODES[pod]}" for pod, address in BACKENDS.items()]
    code, result = probe(
        lab, "--to", f"{CLUSTER_IP}:80", "--count", "6", "--timeout", "1",
        *[arg for endpoint in endpoints for arg in ("--endpoint", endpoint)],
    )  # fmt: skip
    assert code == 1
    assert result.connection_status == ConnectionStatus.DEGRADED
    by_pod = {e.pod: e for e in result.endpoints}
    assert list(by_pod) == ["web-0", "web-1", "web-2"]
    for healthy in ("web-0", "web-1"):
        assert by_pod[healthy].connection_status == ConnectionStatus.REACHABLE
        assert by_pod[healthy].probes_failed == 0 and by_pod[healthy].latency is not None
    broken = by_pod["web-2"]
    assert (broken.connection_status, broken.node) == (ConnectionStatus.UNREACHABLE, "node-c")
    assert broken.probes_failed == broken.probes_sent == 6
    assert [i.type for i in broken.issues] == [IssueType.PORT_NOT_LISTENING]
    [named] = issues_of(result, IssueType.SERVICE_ENDPOINTS)
    assert named.message.startswith(
        f"1 of 3 endpoints probed fail: pod web-2 on node node-c ({BACKENDS['web-2']}:8080) is "
        "Unreachable: "
    )
    assert {c.key: c.value for c in named.context}["failingNodes"] == "node-c"


def test_without_endpoints_the_clusterip_alone_hides_which_backend_fails(lab: Lab) -> None:
    make_service(lab)
    _, result = probe(lab, "--to", f"{CLUSTER_IP}:80", "--count", "6", "--timeout", "1")
    assert (result.probes_failed, result.probes_sent) == (2, 6)  # web-2's share: one in three
    assert result.connection_status == ConnectionStatus.DEGRADED
    assert result.endpoints == []
    assert not issues_of(result, IssueType.SERVICE_ENDPOINTS)
    assert BACKENDS["web-2"] not in {h.address for h in result.hops}  # DNAT is invisible


def test_a_clusterip_traced_through_the_sources_dnat_router_is_no_routing_loop(lab: Lab) -> None:
    """kube-proxy on the source's own node (r1) translates: every time-exceeded comes back from
    the ClusterIP, at TTLs 1, 2 and 3, before the backend answers at TTL 4."""
    lab.start_tcp_server("dst", 8080)
    dnat(lab, "r1", lab["dst"].addr())
    code, result = probe(lab, "--to", f"{CLUSTER_IP}:80")
    assert not issues_of(result, IssueType.ROUTING), [i.message for i in result.issues]
    assert (code, result.connection_status) == (0, ConnectionStatus.REACHABLE)
    by_ttl = [(h.ttl, h.address, h.type) for h in sorted(result.hops, key=lambda h: h.ttl or 0)]
    assert by_ttl[1:] == [
        *[(ttl, CLUSTER_IP, HopType.ROUTER) for ttl in (1, 2, 3)],
        (4, CLUSTER_IP, HopType.DESTINATION),
    ]
    *routers, destination = result.hops[1:]
    assert all(h.latency is not None and h.probes_failed == 0 for h in routers)
    # On a fresh lab's first probe, the sweep's four SYNs at the destination's TTL lost one
    # about once in 40-120 runs (never in 100 probes of one lab, never under tcpdump): the
    # sweep's same-4-tuple SYNs racing r1's conntrack and dst's half-open connection, it seems.
    assert destination.latency is not None and destination.probes_failed <= 1


def test_a_backend_that_drops_behind_a_dnat_router_is_a_silent_drop_not_a_loop(lab: Lab) -> None:
    """r2 translates for a backend on dst that drops everything: the ClusterIP expires the
    probes at TTLs 2 and 3 (r2, r3 as conntrack rewrote them), then silence."""
    lab.start_tcp_server("dst", 8080)
    lab["r1"].run(["ip", "route", "add", f"{CLUSTER_IP}/32", "via", lab["r2"].addr()])
    dnat(lab, "r2", lab["dst"].addr())
    lab.iptables("dst", "-A", "INPUT", "-p", "tcp", "--dport", "8080", "-j", "DROP")
    code, result = probe(lab, "--to", f"{CLUSTER_IP}:80", "--timeout", "1")
    assert not issues_of(result, IssueType.ROUTING), [i.message for i in result.issues]
    assert (code, result.connection_status) == (1, ConnectionStatus.UNREACHABLE)
    hops = sorted(result.hops, key=lambda h: h.ttl or 0)
    assert [(h.address, h.type) for h in hops[1:]] == [
        (lab["r1"].addr(), HopType.ROUTER),
        (CLUSTER_IP, HopType.ROUTER),
        (CLUSTER_IP, HopType.ROUTER),
        (None, HopType.UNKNOWN),
    ]
    [dropped] = issues_of(result, IssueType.FIREWALL)
    assert dropped.hop_id == hops[-1].id
