"""Diagnosis rules on recorded evidence: each rule names the right issue at the right hop."""

from __future__ import annotations

import errno
from functools import partial

from hopscope_probe.diagnose import diagnose, status_allowed
from hopscope_probe.engine import dns_connection
from hopscope_probe.evidence import (
    Attempt,
    ConnectionEvidence,
    DnsEvidence,
    DnsOutcome,
    DnsQuery,
    Evidence,
    HealthEvidence,
    HopReply,
    HttpAttempt,
    IcmpError,
    IcmpKind,
    NeighbourState,
    Outcome,
    PathEvidence,
    ReplyKind,
    RouteEvidence,
    Stage,
    TlsProblem,
)
from hopscope_probe.models import (
    ConnectionStatus,
    Hop,
    HopType,
    HttpOptions,
    IssueCause,
    IssueType,
    Origin,
    ProbeRequest,
    Protocol,
    Severity,
    Thresholds,
)
from tests import builders

DST = "198.18.4.2"
REQUEST = ProbeRequest(host=DST, port=80)


hop = partial(builders.hop, destination=DST, sent=3)

SOURCE = Hop(id="source", type=HopType.SOURCE, address="198.18.1.2", ttl=0)
ROUTERS = [hop(1, "198.18.1.1", 1.0), hop(2, "198.18.2.2", 2.0), hop(3, "198.18.3.2", 3.0)]
HEALTHY_HOPS = [SOURCE, *ROUTERS, hop(4, DST, 4.0)]
ROUTE = RouteEvidence(destination=DST, route_found=True, gateway="198.18.1.1", device="eth0")


def conn(*attempts: Attempt, protocol: str = "TCP", http=()) -> ConnectionEvidence:
    return ConnectionEvidence(protocol=protocol, address=DST, port=80, attempts=attempts, http=http)


def ok(rtt: float = 4.0) -> Attempt:
    return Attempt(outcome=Outcome.SUCCESS, rtt_ms=rtt)


def run(evidence: Evidence, hops=HEALTHY_HOPS, request=REQUEST, loops=()):
    return diagnose(request, evidence, hops, loops)


def only(result, issue_type):
    found = [i for i in result.issues if i.type == issue_type]
    assert len(found) == 1, result.issues
    return found[0]


def test_healthy_connection_is_reachable_without_issues():
    result = run(Evidence(route=ROUTE, connection=conn(ok(3.0), ok(5.0))))
    assert result.status == ConnectionStatus.REACHABLE
    assert result.issues == []
    assert (result.latency.min_ms, result.latency.avg_ms, result.latency.max_ms) == (3, 4, 5)
    assert (result.probes_sent, result.probes_failed) == (2, 0)


def test_rst_from_destination_is_port_not_listening_at_destination():
    refused = Attempt(outcome=Outcome.REFUSED, errno=errno.ECONNREFUSED)
    result = run(Evidence(route=ROUTE, connection=conn(refused, refused)))
    issue = only(result, IssueType.PORT_NOT_LISTENING)
    assert issue.hop_id == f"h4-{DST}"
    assert issue.origin == Origin.INBOUND
    assert result.status == ConnectionStatus.UNREACHABLE


def test_timeouts_after_last_answering_router_locate_a_silent_drop():
    timeout = Attempt(outcome=Outcome.TIMEOUT)
    hops = [SOURCE, *ROUTERS, hop(4, None)]
    result = run(Evidence(route=ROUTE, connection=conn(timeout, timeout)), hops=hops)
    issue = only(result, IssueType.FIREWALL)
    assert issue.hop_id == "h4-*"
    assert "198.18.3.2" in issue.message
    assert result.status == ConnectionStatus.UNREACHABLE


def test_only_the_silent_drop_carries_the_silent_drop_cause():
    # The operator's merge reads the cause (never the message) to pair a drop with a policy.
    timeout = Attempt(outcome=Outcome.TIMEOUT)
    dropped = run(Evidence(route=ROUTE, connection=conn(timeout, timeout)))
    assert only(dropped, IssueType.FIREWALL).cause == IssueCause.SILENT_DROP
    denied = Attempt(outcome=Outcome.LOCAL_ERROR, stage=Stage.SEND, errno=errno.EPERM)
    local = run(Evidence(route=ROUTE, connection=conn(denied)), hops=[SOURCE])
    assert only(local, IssueType.FIREWALL).cause is None


def test_admin_prohibited_from_router_is_firewall_at_that_router():
    icmp = IcmpError(sender="198.18.2.2", kind=IcmpKind.ADMIN_PROHIBITED, type=3, code=13)
    path = PathEvidence(
        destination=DST,
        protocol="TCP",
        port=80,
        flows=1,
        probes_per_hop=1,
        max_hops=30,
        replies=(
            HopReply(
                flow=0,
                ttl=2,
                attempt=0,
                sender="198.18.2.2",
                rtt_ms=1.0,
                icmp=icmp,
                kind=ReplyKind.UNREACHABLE,
            ),
        ),
    )
    failed = Attempt(outcome=Outcome.ICMP_ERROR, errno=errno.EHOSTUNREACH)
    hops = [SOURCE, ROUTERS[0], ROUTERS[1]]
    result = run(Evidence(route=ROUTE, connection=conn(failed), path=path), hops=hops)
    issue = only(result, IssueType.FIREWALL)
    assert issue.hop_id == "h2-198.18.2.2"
    assert issue.origin == Origin.OUTBOUND


def test_port_unreachable_from_a_router_is_a_reject_rule_not_a_closed_port():
    icmp = IcmpError(sender="198.18.2.2", kind=IcmpKind.PORT_UNREACHABLE, type=3, code=3)
    refused = Attempt(outcome=Outcome.REFUSED, icmp=icmp)
    result = run(Evidence(route=ROUTE, connection=conn(refused, protocol="UDP")))
    assert only(result, IssueType.FIREWALL).hop_id == "h2-198.18.2.2"
    assert not [i for i in result.issues if i.type == IssueType.PORT_NOT_LISTENING]


def test_slow_host_unreachable_is_neighbour_resolution_fast_one_is_routing():
    slow = IcmpError(sender="198.18.3.2", kind=IcmpKind.HOST_UNREACHABLE, type=3, code=1)
    attempt = Attempt(outcome=Outcome.ICMP_ERROR, icmp=slow, rtt_ms=3050.0)
    result = run(Evidence(route=ROUTE, connection=conn(attempt, protocol="ICMP")))
    assert only(result, IssueType.NEIGHBOR_RESOLUTION).hop_id == "h3-198.18.3.2"

    net = IcmpError(sender="198.18.2.2", kind=IcmpKind.NET_UNREACHABLE, type=3, code=0)
    attempt = Attempt(outcome=Outcome.ICMP_ERROR, icmp=net, rtt_ms=1.2)
    result = run(Evidence(route=ROUTE, connection=conn(attempt, protocol="ICMP")))
    assert only(result, IssueType.ROUTING).hop_id == "h2-198.18.2.2"


def test_eperm_on_send_is_the_sources_own_firewall():
    denied = Attempt(outcome=Outcome.LOCAL_ERROR, stage=Stage.SEND, errno=errno.EPERM)
    result = run(Evidence(route=ROUTE, connection=conn(denied)), hops=[SOURCE])
    issue = only(result, IssueType.FIREWALL)
    assert (issue.origin, issue.hop_id) == (Origin.LOCAL, "source")
    assert any(c.value.startswith("EPERM") for c in issue.context)


def test_no_local_route_is_routing_at_source():
    unreachable = Attempt(outcome=Outcome.LOCAL_ERROR, stage=Stage.SEND, errno=errno.ENETUNREACH)
    route = RouteEvidence(destination=DST, route_found=False, detail="Network is unreachable")
    result = run(Evidence(route=route, connection=conn(unreachable)), hops=[SOURCE])
    issue = only(result, IssueType.ROUTING)
    assert (issue.origin, issue.hop_id) == (Origin.LOCAL, "source")
    assert result.status == ConnectionStatus.UNREACHABLE


def test_failed_neighbour_on_the_source():
    route = RouteEvidence(
        destination=DST,
        route_found=True,
        device="eth0",
        neighbour=DST,
        neighbour_state=NeighbourState.FAILED,
    )
    timeout = Attempt(outcome=Outcome.TIMEOUT)
    result = run(Evidence(route=route, connection=conn(timeout)), hops=[SOURCE])
    issue = only(result, IssueType.NEIGHBOR_RESOLUTION)
    assert issue.hop_id == "source"
    assert not [i for i in result.issues if i.type == IssueType.FIREWALL]


def test_bind_failure_is_socket_bind():
    busy = Attempt(outcome=Outcome.LOCAL_ERROR, stage=Stage.BIND, errno=errno.EADDRINUSE)
    request = REQUEST.model_copy(update={"source_port": 40000})
    result = run(Evidence(route=ROUTE, connection=conn(busy)), request=request)
    issue = only(result, IssueType.SOCKET_BIND)
    assert "40000" in issue.message and issue.origin == Origin.LOCAL


def dns_evidence(*queries: DnsQuery, addresses=()) -> DnsEvidence:
    return DnsEvidence(
        name="web",
        nameservers=tuple(dict.fromkeys(q.nameserver for q in queries)),
        search=("lab.test",),
        ndots=1,
        queries=queries,
        addresses=addresses,
    )


def test_nxdomain_everywhere_is_dns_error_and_unreachable():
    q = DnsQuery(
        nameserver="198.18.5.2", qname="web.lab.test.", rdtype="A", outcome=DnsOutcome.NXDOMAIN
    )
    result = run(Evidence(dns=dns_evidence(q)), hops=[SOURCE])
    issue = only(result, IssueType.DNS_RESOLUTION)
    assert issue.severity == Severity.ERROR and "web.lab.test." in issue.message
    assert result.status == ConnectionStatus.UNREACHABLE


def test_a_nameserver_answering_an_error_code_is_an_answer_not_a_probe_that_could_not_run():
    notimp = DnsQuery(
        nameserver="198.18.5.2",
        qname="web.lab.test.",
        rdtype="A",
        outcome=DnsOutcome.OTHER_RCODE,
        detail="NOTIMP",
    )
    dns = dns_evidence(notimp)
    request = ProbeRequest(host="web", protocol=Protocol.DNS)
    evidence = Evidence(dns=dns, connection=dns_connection(dns, "198.18.5.2"))
    result = run(evidence, hops=[SOURCE], request=request)
    assert "NOTIMP" in only(result, IssueType.DNS_RESOLUTION).message
    assert result.status == ConnectionStatus.UNREACHABLE  # not Unknown: the server answered


def test_one_dead_nameserver_of_two_is_a_warning():
    dead = DnsQuery(
        nameserver="198.18.5.3", qname="web.lab.test.", rdtype="A", outcome=DnsOutcome.TIMEOUT
    )
    good = DnsQuery(
        nameserver="198.18.5.2",
        qname="web.lab.test.",
        rdtype="A",
        outcome=DnsOutcome.NOERROR,
        addresses=(DST,),
    )
    evidence = Evidence(
        dns=dns_evidence(dead, good, addresses=(DST,)), route=ROUTE, connection=conn(ok())
    )
    result = run(evidence)
    issue = only(result, IssueType.DNS_RESOLUTION)
    assert issue.severity == Severity.WARNING and "198.18.5.3" in issue.message
    assert result.status == ConnectionStatus.REACHABLE


def test_loss_is_located_where_it_starts_and_persists():
    hops = [
        SOURCE,
        hop(1, "198.18.1.1", 1.0, sent=10, failed=3),  # rate limiting: next hop is clean
        hop(2, "198.18.2.2", 2.0, sent=10, failed=0),
        hop(3, "198.18.3.2", 3.0, sent=10, failed=4),
        hop(4, DST, 4.0, sent=10, failed=5),
    ]
    attempts = [ok()] * 6 + [Attempt(outcome=Outcome.TIMEOUT)] * 4
    result = run(Evidence(route=ROUTE, connection=conn(*attempts)), hops=hops)
    issue = only(result, IssueType.PACKET_LOSS)
    assert issue.hop_id == "h3-198.18.3.2"
    assert result.status == ConnectionStatus.DEGRADED


def test_refusals_beside_successes_are_degraded_not_reachable():
    # One of a Service's two endpoints has nothing listening: half the connections are reset.
    refused = Attempt(outcome=Outcome.REFUSED, rtt_ms=1.0, errno=111, detail="connection refused")
    result = run(Evidence(route=ROUTE, connection=conn(ok(), refused, ok(), refused)))
    assert only(result, IssueType.PORT_NOT_LISTENING).severity == Severity.ERROR
    assert (result.status, result.probes_failed) == (ConnectionStatus.DEGRADED, 2)
    # A lost probe is judged by the loss threshold instead: 1 of 30 (3%) stays Reachable.
    lost = Attempt(outcome=Outcome.TIMEOUT)
    result = run(Evidence(route=ROUTE, connection=conn(*[ok()] * 29, lost)))
    assert result.status == ConnectionStatus.REACHABLE


def test_high_latency_is_located_at_the_biggest_jump():
    hops = [SOURCE, hop(1, "198.18.1.1", 1.0), hop(2, "198.18.2.2", 150.0), hop(3, DST, 152.0)]
    request = REQUEST.model_copy(update={"thresholds": Thresholds(latency_ms=100)})
    result = run(Evidence(route=ROUTE, connection=conn(ok(152.0))), hops=hops, request=request)
    assert only(result, IssueType.HIGH_LATENCY).hop_id == "h2-198.18.2.2"
    assert result.status == ConnectionStatus.DEGRADED


def test_a_slow_http_server_is_named_as_the_latency_not_a_link():
    # The path is quick (4 ms); the answer's first byte comes 900 ms after the request.
    request = REQUEST.model_copy(update={"thresholds": Thresholds(latency_ms=100)})
    slow = HttpAttempt(status_code=200, connect_ms=4.0, processing_ms=900.0)
    evidence = Evidence(route=ROUTE, connection=conn(ok(904.0), http=(slow,)))
    issue = only(run(evidence, request=request), IssueType.HIGH_LATENCY)
    assert issue.hop_id == HEALTHY_HOPS[-1].id  # the destination, not the biggest jump
    assert "server takes 900.0 ms" in issue.message and issue.origin == Origin.INBOUND


def test_routing_loop_is_reported_at_the_looping_router():
    result = run(
        Evidence(route=ROUTE, connection=conn(Attempt(outcome=Outcome.TIMEOUT))),
        loops=[("198.18.2.2", [2, 4, 6])],
    )
    issue = only(result, IssueType.ROUTING)
    assert issue.hop_id == "h2-198.18.2.2" and "2, 4, 6" in issue.message


def test_tls_and_http_status():
    tls = Attempt(outcome=Outcome.TLS_ERROR, stage=Stage.TLS, detail="certificate has expired")
    result = run(
        Evidence(
            route=ROUTE,
            connection=conn(tls, http=(HttpAttempt(tls_problem=TlsProblem.EXPIRED),)),
        )
    )
    assert "Expired" in only(result, IssueType.TLS).message
    assert result.status == ConnectionStatus.UNREACHABLE

    request = REQUEST.model_copy(update={"http": HttpOptions(valid_status_codes=["2xx", "301"])})
    result = run(
        Evidence(route=ROUTE, connection=conn(ok(), http=(HttpAttempt(status_code=503),))),
        request=request,
    )
    assert "503" in only(result, IssueType.HTTP_STATUS).message
    assert result.status == ConnectionStatus.UNREACHABLE


def test_status_code_patterns():
    assert status_allowed(204, ["2xx"])
    assert status_allowed(301, ["2xx", "301"])
    assert not status_allowed(302, ["2xx", "301"])
    assert not status_allowed(500, ["2XX"])


def test_pressure_on_the_source_is_cpu_and_memory_warnings():
    health = HealthEvidence(
        cgroup="/pod",
        cpu_throttled_ratio=0.6,
        memory_usage_bytes=95,
        memory_limit_bytes=100,
        cpu_pressure_some_avg10=1.0,
    )
    result = run(Evidence(route=ROUTE, connection=conn(ok()), health=health))
    assert only(result, IssueType.CPU).hop_id == "source"
    assert "memoryUsageRatio=0.95" in only(result, IssueType.MEMORY).message
    assert result.status == ConnectionStatus.REACHABLE  # pressure alone is a warning


def test_no_evidence_at_all_is_unknown():
    assert run(Evidence(), hops=[]).status == ConnectionStatus.UNKNOWN


def test_multipath_with_one_dead_flow_is_degraded():
    replies = (
        HopReply(flow=0, ttl=2, attempt=0, sender=DST, rtt_ms=1.0, kind=ReplyKind.REACHED),
        HopReply(flow=1, ttl=2, attempt=0, sender=None),
    )
    path = PathEvidence(
        destination=DST,
        protocol="TCP",
        port=80,
        flows=2,
        probes_per_hop=1,
        max_hops=2,
        replies=replies,
    )
    result = run(Evidence(route=ROUTE, connection=conn(ok()), path=path))
    assert result.status == ConnectionStatus.DEGRADED


def udp_path(*replies: HopReply, port: int = 80) -> PathEvidence:
    return PathEvidence(
        destination=DST,
        protocol="UDP",
        port=port,
        flows=1,
        probes_per_hop=1,
        max_hops=30,
        replies=replies,
    )


def test_a_udp_port_the_sweep_found_closed_is_not_a_firewall_when_its_answers_ran_out():
    # The destination's ICMP allowance went to the sweep's probes to the same port.
    closed = IcmpError(sender=DST, kind=IcmpKind.PORT_UNREACHABLE, type=3, code=3)
    swept = HopReply(flow=0, ttl=4, attempt=0, sender=DST, kind=ReplyKind.REACHED, icmp=closed)
    timeout = Attempt(outcome=Outcome.TIMEOUT)
    silent = conn(timeout, timeout, protocol="UDP")
    result = run(Evidence(route=ROUTE, connection=silent, path=udp_path(swept)))
    issue = only(result, IssueType.PORT_NOT_LISTENING)
    assert "2 of 2 probes got no answer: the destination rate-limits" in issue.message
    assert not [i for i in result.issues if i.type == IssueType.FIREWALL]
    assert result.status == ConnectionStatus.UNREACHABLE
    # Another port's answer proves nothing about this one: silence stays a silent drop.
    other = run(Evidence(route=ROUTE, connection=silent, path=udp_path(swept, port=53)))
    assert only(other, IssueType.FIREWALL).cause == IssueCause.SILENT_DROP


def test_a_probe_that_could_not_open_its_socket_is_unknown_and_says_why():
    failed = Attempt(
        outcome=Outcome.LOCAL_ERROR,
        stage=Stage.CONNECT,
        errno=errno.EPERM,
        detail="no ICMP socket: raw needs CAP_NET_RAW and ping sockets are not allowed",
    )
    result = run(Evidence(route=ROUTE, connection=conn(failed, failed)))
    assert result.status == ConnectionStatus.UNKNOWN
    issue = only(result, IssueType.PROBE)
    assert "CAP_NET_RAW" in issue.message and issue.hop_id == "source"


def test_a_prohibit_route_is_routing_not_the_sources_firewall():
    refused = Attempt(outcome=Outcome.LOCAL_ERROR, stage=Stage.SEND, errno=errno.EACCES)
    route = RouteEvidence(destination=DST, route_found=True, route_type="prohibit")
    result = run(Evidence(route=route, connection=conn(refused)), hops=[SOURCE])
    assert [i.type for i in result.issues] == [IssueType.ROUTING]


def test_a_blackhole_route_is_named_with_its_prefix_not_as_no_route():
    dropped = Attempt(outcome=Outcome.LOCAL_ERROR, stage=Stage.SEND, errno=errno.EINVAL)
    route = RouteEvidence(
        destination=DST, route_found=True, route_type="blackhole", prefix="198.18.4.0/24"
    )
    issue = only(
        run(Evidence(route=route, connection=conn(dropped)), hops=[SOURCE]), IssueType.ROUTING
    )
    assert issue.message.startswith("the source has a blackhole route 198.18.4.0/24 that drops")
    assert "ip route del blackhole 198.18.4.0/24" in issue.hint and issue.hop_id == "source"


def cluster_dns(name: str, *answers: tuple[str, tuple[str, ...]]) -> DnsEvidence:
    """A pod's resolver (ndots 5, the cluster's search list) and the queries it sent in order."""
    queries = tuple(
        DnsQuery(
            nameserver="10.96.0.10",
            qname=qname,
            rdtype="A",
            outcome=DnsOutcome.NOERROR if addresses else DnsOutcome.NXDOMAIN,
            addresses=addresses,
        )
        for qname, addresses in answers
    )
    return DnsEvidence(
        name=name,
        nameservers=("10.96.0.10",),
        search=("shop.svc.cluster.local", "svc.cluster.local", "cluster.local"),
        ndots=5,
        queries=queries,
        addresses=next((q.addresses for q in queries if q.addresses), ()),
    )


def test_a_dotted_name_captured_by_a_search_domain_is_named():
    dns = cluster_dns("api.example.com", ("api.example.com.shop.svc.cluster.local.", (DST,)))
    result = run(Evidence(dns=dns, route=ROUTE, connection=conn(ok())))
    issue = only(result, IssueType.DNS_RESOLUTION)
    assert "resolved as api.example.com.shop.svc.cluster.local." in issue.message
    assert "trailing dot" in issue.hint and issue.severity == Severity.WARNING
    assert result.status == ConnectionStatus.REACHABLE  # a warning, not a verdict


def test_lookups_wasted_on_search_expansions_are_named():
    dns = cluster_dns(
        "api.example.com",
        ("api.example.com.shop.svc.cluster.local.", ()),
        ("api.example.com.svc.cluster.local.", ()),
        ("api.example.com.", (DST,)),
    )
    issue = only(
        run(Evidence(dns=dns, route=ROUTE, connection=conn(ok()))), IssueType.DNS_RESOLUTION
    )
    assert "after 2 search-list expansion(s) failed" in issue.message and "ndots 5" in issue.message


def test_a_short_service_name_resolved_by_the_search_list_is_normal():
    dns = cluster_dns("db", ("db.shop.svc.cluster.local.", (DST,)))
    assert run(Evidence(dns=dns, route=ROUTE, connection=conn(ok()))).issues == []
