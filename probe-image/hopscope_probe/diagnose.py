"""Diagnosis: rules that turn the probe's evidence into located issues and a verdict.

Each rule reads the evidence and returns issues located at a hop of the graph. Rules are pure,
so they are tested on recorded evidence; the netlab tests prove the evidence is what real
networks produce.

About 940 lines: one pure function per rule, and the composition at the end; the rules share
the hop-locating helpers and the issue vocabulary, which one module keeps consistent.
"""

from __future__ import annotations

import errno as errnos
import os
from collections.abc import Callable, Iterable
from dataclasses import dataclass

from hopscope_probe.evidence import (
    Attempt,
    ConnectionEvidence,
    DnsEvidence,
    DnsOutcome,
    Evidence,
    HealthEvidence,
    IcmpError,
    IcmpKind,
    MtuEvidence,
    NeighbourState,
    Outcome,
    ReplyKind,
    RouteEvidence,
    Stage,
)
from hopscope_probe.models import (
    SOURCE_HOP,
    ConnectionStatus,
    ContextItem,
    Hop,
    HopType,
    Issue,
    IssueCause,
    IssueType,
    Latency,
    Origin,
    PathFigures,
    ProbeRequest,
    Severity,
)
from hopscope_probe.models import context_of as ctx
from hopscope_probe.path import mtu

# Local health thresholds: above them the source itself is a suspect.
CPU_PRESSURE_PERCENT = 40.0  # PSI cpu "some" avg10
CPU_THROTTLED_RATIO = 0.25  # share of CFS periods throttled while sampling (or in its life)
LOAD_PER_CORE = 2.0
MEMORY_USAGE_RATIO = 0.9  # of the cgroup limit
MEMORY_PRESSURE_PERCENT = 20.0  # PSI memory "some" avg10

# A host-unreachable that arrives this late is an ARP/NDP timeout at the router (the kernel
# gives up after mcast_solicit x retrans_time, ~3 s); a routing verdict arrives at once.
NEIGHBOUR_TIMEOUT_MS = 900.0


@dataclass(frozen=True)
class Diagnosis:
    status: ConnectionStatus
    issues: list[Issue]
    latency: Latency | None
    probes_sent: int
    probes_failed: int


def source_issue(
    issue_type: IssueType,
    severity: Severity,
    *,
    message: str,
    hint: str,
    context: list[ContextItem] | None = None,
) -> Issue:
    """An issue of the source itself: origin Local, located at the source hop."""
    return Issue(
        type=issue_type,
        severity=severity,
        origin=Origin.LOCAL,
        hop_id=SOURCE_HOP,
        message=message,
        hint=hint,
        context=context or [],
    )


def errno_name(code: int | None) -> str | None:
    if code is None:
        return None
    return f"{errnos.errorcode.get(code, str(code))} ({os.strerror(code)})"


class HopIndex:
    """Finds the hop an issue belongs to."""

    def __init__(self, hops: list[Hop], destination: str | None) -> None:
        self.hops = hops
        self.destination = destination

    def by_address(self, address: str | None) -> str | None:
        if address is None:
            return None
        if address == self.destination and (typed := self._destination_hop()) is not None:
            return typed  # not a router behind a DNAT that sent from the destination's address
        for hop in self.hops:
            if hop.address == address:
                return hop.id
        return None

    def destination_id(self) -> str | None:
        return self._destination_hop() or self.by_address(self.destination)

    def _destination_hop(self) -> str | None:
        return next((hop.id for hop in self.hops if hop.type == HopType.DESTINATION), None)

    def first_silent_after_answers(self) -> tuple[Hop | None, Hop | None]:
        """The first hop that never answered, and the last one that did before it."""
        last_answering: Hop | None = None
        for hop in sorted(self.hops, key=lambda h: h.ttl or 0):
            if hop.type == HopType.SOURCE:
                continue
            if hop.address is None:
                return hop, last_answering
            last_answering = hop
        return None, last_answering

    def path_order(self) -> list[Hop]:
        """Hops after the source in TTL order (one per TTL for a single path)."""
        return sorted(
            (h for h in self.hops if h.type != HopType.SOURCE and h.address is not None),
            key=lambda h: h.ttl or 0,
        )


# ---- rules ---------------------------------------------------------------------------------


def dns_issues(dns: DnsEvidence | None) -> list[Issue]:
    if dns is None or not dns.queries:
        return []
    failed = [q for q in dns.queries if q.outcome not in (DnsOutcome.NOERROR, DnsOutcome.NODATA)]
    answered_by = {q.nameserver for q in dns.queries if q.addresses}
    tried = ", ".join(dict.fromkeys(q.qname for q in dns.queries))
    if not dns.addresses:
        outcomes = ", ".join(
            f"{q.nameserver}: {q.qname} {q.rdtype} {q.answer}" for q in dns.queries
        )
        per_server: dict[str, list[str]] = {}
        for q in failed:
            per_server.setdefault(q.nameserver, [])
            if q.answer not in per_server[q.nameserver]:
                per_server[q.nameserver].append(q.answer)
        return [
            source_issue(
                IssueType.DNS_RESOLUTION,
                Severity.ERROR,
                message=f"{dns.name} did not resolve ({outcomes})",
                hint=_dns_hint(dns),
                context=ctx(name=dns.name, tried=tried, resolvConf=dns.resolv_conf)
                + [
                    ContextItem(key=f"nameserver {ns}", value=", ".join(outcomes_of))
                    for ns, outcomes_of in per_server.items()
                ],
            )
        ]
    # Resolved, but some nameservers failed: lookups will be slow or flaky when they are asked.
    broken = sorted({q.nameserver for q in failed if q.nameserver not in answered_by})
    return search_list_issues(dns) + [
        source_issue(
            IssueType.DNS_RESOLUTION,
            Severity.WARNING,
            message=f"nameserver {ns} failed to resolve {dns.name} "
            f"({', '.join(sorted({str(q.outcome) for q in failed if q.nameserver == ns}))}); "
            "other nameservers answered",
            hint="Fix or remove this nameserver from resolv.conf: every lookup that tries it "
            "first waits for it to fail.",
            context=ctx(nameserver=ns, name=dns.name, resolvConf=dns.resolv_conf),
        )
        for ns in broken
    ]


def search_list_issues(dns: DnsEvidence) -> list[Issue]:
    """What the search list and ndots did to a name that resolved: answered under a search
    domain (maybe not the host meant), or only after lookups of expansions failed (slow)."""
    answered = next((q for q in dns.queries if q.addresses), None)
    if answered is None or dns.name.endswith("."):
        return []
    asked = answered.nameserver
    wasted = [
        q.qname
        for q in dns.queries[: dns.queries.index(answered)]
        if q.nameserver == asked and q.qname != answered.qname
    ]
    written = dns.name.rstrip(".").lower()
    expanded = answered.qname.rstrip(".").lower() != written
    dots = dns.name.count(".")
    context = ctx(name=dns.name, resolvedAs=answered.qname, ndots=dns.ndots)
    context += ctx(search=" ".join(dns.search) or None)
    if expanded and dots:
        return [
            source_issue(
                IssueType.DNS_RESOLUTION,
                Severity.WARNING,
                message=f"{dns.name} resolved as {answered.qname} through the search list "
                f"({dots} dot(s) < ndots {dns.ndots}), not as the name written",
                hint=f"If {dns.name} itself was meant, write it with a trailing dot "
                f"({written}.) or lower ndots in the pod's dnsConfig; a search domain that "
                "answers for it captures the traffic.",
                context=context,
            )
        ]
    if wasted and not expanded:
        return [
            source_issue(
                IssueType.DNS_RESOLUTION,
                Severity.WARNING,
                message=f"{dns.name} resolved only after {len(set(wasted))} search-list "
                f"expansion(s) failed ({', '.join(dict.fromkeys(wasted))}): ndots {dns.ndots} "
                "makes every lookup of it slower",
                hint=f"Write {written}. with a trailing dot, or set ndots lower in the pod's "
                "dnsConfig (Kubernetes defaults to 5), so the name is asked first.",
                context=context,
            )
        ]
    return []


def _dns_hint(dns: DnsEvidence) -> str:
    outcomes = {q.outcome for q in dns.queries}
    if outcomes <= {DnsOutcome.TIMEOUT, DnsOutcome.ERROR}:
        return (
            "No nameserver answered: check that the DNS servers in resolv.conf are up and that "
            "egress to them on UDP and TCP port 53 is allowed."
        )
    if DnsOutcome.SERVFAIL in outcomes:
        return (
            "The nameserver failed to resolve the name (SERVFAIL): check its upstream "
            "forwarders and the zone's authoritative servers."
        )
    if DnsOutcome.REFUSED in outcomes:
        return "The nameserver refused the query: it does not serve this zone or this client."
    return (
        f"The name does not exist (tried {', '.join(dict.fromkeys(q.qname for q in dns.queries))}):"
        " check its spelling, the search list and ndots, or create the record."
    )


def bind_issues(conn: ConnectionEvidence | None, request: ProbeRequest) -> list[Issue]:
    failed = _first(conn, lambda a: a.stage == Stage.BIND)
    if failed is None:
        return []
    in_use = failed.errno == errnos.EADDRINUSE
    return [
        source_issue(
            IssueType.SOCKET_BIND,
            Severity.ERROR,
            message=f"cannot bind source port {request.source_port}: {errno_name(failed.errno)}",
            hint="Another socket on the source already uses this port: pick a free port or stop "
            "the process holding it (ss -ltnup)."
            if in_use
            else "Binding this port needs privileges (CAP_NET_BIND_SERVICE below 1024) or is "
            "forbidden by policy: use an unprivileged port.",
            context=ctx(sourcePort=request.source_port, errno=errno_name(failed.errno)),
        )
    ]


def local_send_issues(
    conn: ConnectionEvidence | None, path_errno: int | None, route: RouteEvidence | None
) -> list[Issue]:
    """The source's own kernel refused to send: its firewall or its routing table."""
    failed = _first(conn, lambda a: a.stage == Stage.SEND and a.outcome == Outcome.LOCAL_ERROR)
    code = failed.errno if failed is not None else path_errno
    if code is None or _no_usable_route(route):
        return []  # a prohibit route fails with EACCES too: route_issues names the route
    if code in (errnos.EPERM, errnos.EACCES):
        return [
            source_issue(
                IssueType.FIREWALL,
                Severity.ERROR,
                message=f"the source's own firewall rejects the packets ({errno_name(code)})",
                hint="A rule in the source's OUTPUT chain (iptables/nftables) drops or rejects "
                "this flow: list them with `iptables -S OUTPUT` / `nft list ruleset` "
                "inside the source's network namespace.",
                context=ctx(errno=errno_name(code), chain="OUTPUT"),
            )
        ]
    if code in (errnos.ENETUNREACH, errnos.EHOSTUNREACH):
        return []  # route_issues reports these with the routing table's evidence
    return [
        source_issue(
            IssueType.PROBE,
            Severity.ERROR,
            message=f"sending failed on the source: {errno_name(code)}",
            hint="The source's kernel refused the probe; check its socket and network settings.",
            context=ctx(errno=errno_name(code)),
        )
    ]


def local_probe_issues(conn: ConnectionEvidence | None) -> list[Issue]:
    """The probe's own tooling failed on the source (no ICMP socket, an unreadable CA file):
    the verdict cannot rest on these attempts, and the user must see why."""
    failed = _first(conn, _probe_could_not_run)
    if failed is None:
        return []
    return [
        source_issue(
            IssueType.PROBE,
            Severity.ERROR,
            message=f"the probe could not run its {failed.stage} step: {failed.detail}",
            hint="Check the probe's privileges (CAP_NET_RAW for ICMP) and its inputs (the CA "
            "file for HTTPS); the connection itself was not tested.",
            context=ctx(stage=str(failed.stage), errno=errno_name(failed.errno)),
        )
    ]


REJECT_ROUTES = {"blackhole": "drops", "unreachable": "refuses", "prohibit": "refuses"}


def _no_usable_route(route: RouteEvidence | None) -> bool:
    if route is None:
        return False
    return not route.route_found or route.route_type in REJECT_ROUTES


def route_issues(
    route: RouteEvidence | None, conn: ConnectionEvidence | None, path_errno: int | None
) -> list[Issue]:
    if route is None:
        return []
    send_errno = _first(conn, lambda a: a.stage == Stage.SEND)
    no_route_errno = (send_errno.errno if send_errno else None) or path_errno
    if _no_usable_route(route):
        context = ctx(
            destination=route.destination,
            routeType=route.route_type if route.route_found else None,
            prefix=route.prefix,
            errno=errno_name(no_route_errno),
            detail=route.detail or None,
        )
        return [
            source_issue(IssueType.ROUTING, Severity.ERROR, **_route_words(route), context=context)
        ]
    if route.neighbour_state in (NeighbourState.FAILED, NeighbourState.INCOMPLETE):
        return [
            source_issue(
                IssueType.NEIGHBOR_RESOLUTION,
                Severity.ERROR,
                message=f"the source cannot resolve the link-layer address of {route.neighbour} "
                f"on {route.device} (neighbour {route.neighbour_state})",
                hint="The next hop does not answer ARP/NDP: check that it is up and on this "
                "segment, and that nothing filters ARP/NDP between them.",
                context=ctx(
                    neighbour=route.neighbour,
                    device=route.device,
                    state=str(route.neighbour_state),
                    gateway=route.gateway,
                ),
            )
        ]
    return []


def _route_words(route: RouteEvidence) -> dict[str, str]:
    """Message and hint: a route that exists and rejects is not a missing route."""
    if not route.route_found or route.route_type not in REJECT_ROUTES:
        return {
            "message": f"the source has no route to {route.destination}",
            "hint": "Add a route (or a default route) for this destination in the source's "
            "network namespace, or fix the CNI/route that should provide it.",
        }
    kind, where = route.route_type, route.prefix or route.destination
    return {
        "message": f"the source has a {kind} route {where} that {REJECT_ROUTES[kind]} the "
        f"traffic to {route.destination}",
        "hint": f"Remove the {kind} route in the source's network namespace (`ip route del "
        f"{kind} {where}`) or replace it with a route via the right gateway, and fix "
        "whatever installs it (CNI, a policy agent, a hand-made route).",
    }


def icmp_issue(icmp: IcmpError, hops: HopIndex, rtt_ms: float | None) -> Issue | None:
    """An ICMP error from a router or the destination host, located at its sender."""
    hop_id = hops.by_address(icmp.sender)
    where = f"{icmp.sender}"
    evidence = ctx(router=icmp.sender, icmp=f"type {icmp.type} code {icmp.code} ({icmp.kind})")
    if icmp.kind == IcmpKind.ADMIN_PROHIBITED or (
        icmp.kind == IcmpKind.PORT_UNREACHABLE and icmp.sender != hops.destination
    ):
        return Issue(
            type=IssueType.FIREWALL,
            severity=Severity.ERROR,
            origin=Origin.OUTBOUND,
            hop_id=hop_id,
            message=f"{where} rejects the traffic ({icmp.kind})",
            hint=f"A firewall rule on {icmp.sender} rejects this flow: find the REJECT rule "
            "in its FORWARD/INPUT chain or security group and allow the flow.",
            context=evidence,
        )
    if icmp.kind == IcmpKind.HOST_UNREACHABLE and (rtt_ms or 0) >= NEIGHBOUR_TIMEOUT_MS:
        return Issue(
            type=IssueType.NEIGHBOR_RESOLUTION,
            severity=Severity.ERROR,
            origin=Origin.OUTBOUND,
            hop_id=hop_id,
            message=f"{where} could not resolve the link-layer address of the destination "
            f"(host unreachable after {rtt_ms:.0f} ms: an ARP/NDP timeout)",
            hint="The destination does not answer ARP/NDP on the last router's segment: it is "
            "down, has another address, or is on another segment.",
            context=evidence + ctx(afterMs=round(rtt_ms or 0)),
        )
    if icmp.kind in (IcmpKind.NET_UNREACHABLE, IcmpKind.HOST_UNREACHABLE):
        return Issue(
            type=IssueType.ROUTING,
            severity=Severity.ERROR,
            origin=Origin.OUTBOUND,
            hop_id=hop_id,
            message=f"{where} has no route to the destination ({icmp.kind})",
            hint=f"Add or fix the route for the destination on {icmp.sender} (or the route "
            "that should send traffic around it).",
            context=evidence,
        )
    if icmp.kind == IcmpKind.FRAG_NEEDED:
        return Issue(
            type=IssueType.MTU,
            severity=Severity.WARNING,
            origin=Origin.OUTBOUND,
            hop_id=hop_id,
            message=f"{where} needs fragmentation: the path MTU is smaller than the packets",
            hint="Lower the MTU on the source or enable MSS clamping on the tunnel/router.",
            context=evidence,
        )
    return None


def network_error_issues(evidence: Evidence, hops: HopIndex, request: ProbeRequest) -> list[Issue]:
    """Where the connection failed in the network or at the destination."""
    conn = evidence.connection
    if conn is None or not conn.attempts:
        return []
    # ICMP errors: from the connection's own probes first (their sockets' error queues name the
    # sender), then from the path sweep (which also sees errors for TTL-limited probes).
    icmp_errors: list[tuple[IcmpError, float | None]] = [
        (a.icmp, a.rtt_ms) for a in conn.attempts if a.icmp is not None
    ]
    if evidence.path is not None:
        icmp_errors += [
            (r.icmp, r.rtt_ms)
            for r in evidence.path.replies
            if r.kind == ReplyKind.UNREACHABLE and r.icmp is not None
        ]
    issues: dict[tuple[IssueType, str | None], Issue] = {}
    for icmp, rtt in icmp_errors:
        if icmp.kind == IcmpKind.PORT_UNREACHABLE and icmp.sender == hops.destination:
            continue  # the destination itself: nothing listening, reported below
        issue = icmp_issue(icmp, hops, rtt)
        if issue is not None:
            issues.setdefault((issue.type, issue.hop_id), issue)
    if issues:
        return list(issues.values())

    outcomes = {a.outcome for a in conn.attempts}
    swept = _swept_port_unreachables(evidence)
    if Outcome.REFUSED in outcomes or (outcomes == {Outcome.TIMEOUT} and swept):
        return [_port_not_listening(conn, hops, swept)]
    if Outcome.ICMP_ERROR in outcomes:
        failed = _first(conn, lambda a: a.outcome == Outcome.ICMP_ERROR)
        return [_unlocated_icmp_errno(failed.errno if failed else None, conn)]
    if outcomes == {Outcome.TIMEOUT}:
        return [_silent_drop(conn, hops, request)]
    return []


def _swept_port_unreachables(evidence: Evidence) -> int:
    """How many of a UDP sweep's probes the destination itself answered "port unreachable":
    the same port, so the same proof that nothing listens as the check's own probes give."""
    conn, path = evidence.connection, evidence.path
    if conn is None or path is None or conn.protocol != "UDP" or path.port != conn.port:
        return 0
    return sum(
        r.kind == ReplyKind.REACHED
        and r.icmp is not None
        and r.icmp.kind == IcmpKind.PORT_UNREACHABLE
        and r.sender == conn.address
        for r in path.replies
    )


def _port_not_listening(conn: ConnectionEvidence, hops: HopIndex, swept: int = 0) -> Issue:
    how = "ICMP port unreachable" if conn.protocol in ("UDP", "DNS") else "TCP reset"
    silent = sum(a.outcome == Outcome.TIMEOUT for a in conn.attempts)
    # Linux answers one peer's closed UDP ports about 6 times in a burst, then about once a
    # second (icmp_ratelimit): the rest of the probes then go unanswered, not filtered.
    rate_limited = silent if conn.protocol == "UDP" else 0
    note = (
        f"; {silent} of {len(conn.attempts)} probes got no answer: the destination "
        "rate-limits its ICMP errors"
        + (f" (the path sweep's probes got {swept} port unreachable from it)" if swept else "")
        if rate_limited
        else ""
    )
    # The sweep may not have heard the destination (its answers rate-limited, or spent on the
    # check's probes): it is then the silent hop where the path went quiet.
    silent, _last = hops.first_silent_after_answers()
    return Issue(
        type=IssueType.PORT_NOT_LISTENING,
        severity=Severity.ERROR,
        origin=Origin.INBOUND,
        hop_id=hops.destination_id() or (silent.id if silent else None),
        message=f"nothing listens on {conn.protocol} port {conn.port} at {conn.address} "
        f"({how}){note}",
        hint="Start the server or fix the port: check the process binds this port on this "
        "address (ss -ltnup), and that a Service's targetPort matches the container port.",
        context=ctx(
            address=conn.address,
            port=conn.port,
            reply=how,
            rateLimitedProbes=rate_limited or None,
            sweepPortUnreachables=swept or None,
        ),
    )


def _unlocated_icmp_errno(code: int | None, conn: ConnectionEvidence) -> Issue:
    """An ICMP-induced errno with no router to pin it on (no path was traced)."""
    prohibited = code == errnos.EACCES
    return Issue(
        type=IssueType.FIREWALL if prohibited else IssueType.ROUTING,
        severity=Severity.ERROR,
        origin=Origin.OUTBOUND,
        hop_id=None,
        message=f"a router reported {errno_name(code)} for {conn.address}",
        hint="Run the check with path discovery to find which router: it either filters "
        "this flow or has no route to the destination.",
        context=ctx(errno=errno_name(code)),
    )


def _silent_drop(conn: ConnectionEvidence, hops: HopIndex, request: ProbeRequest) -> Issue:
    silent, last = hops.first_silent_after_answers()
    dest_id = hops.destination_id()
    if silent is None and dest_id is None and last is None:
        where = "somewhere on the path (no path was traced)"
        hop_id = None
    elif silent is not None:
        where = f"after {last.address}" if last and last.address else "right after the source"
        hop_id = silent.id
    else:
        where = "at the destination"
        hop_id = dest_id
    return Issue(
        type=IssueType.FIREWALL,
        severity=Severity.ERROR,
        origin=Origin.INBOUND if hop_id == dest_id else Origin.OUTBOUND,
        hop_id=hop_id,
        message=f"{conn.protocol} packets to {conn.address}"
        f"{f':{conn.port}' if conn.port else ''} are silently dropped {where}: "
        f"no answer to {len(conn.attempts)} probes within {request.timeout_seconds:g} s",
        hint="A firewall drops this flow without answering (iptables DROP, a security group, "
        "or a NetworkPolicy); check the rules of the first hop that never answers. "
        "If that is the destination's own segment, the destination may be down.",
        context=ctx(lastAnsweringHop=last.address if last else None, probes=len(conn.attempts)),
        cause=IssueCause.SILENT_DROP,
    )


def loss_issues(
    conn: ConnectionEvidence | None, hops: HopIndex, request: ProbeRequest
) -> list[Issue]:
    if conn is None or not conn.attempts:
        return []
    ok = sum(a.outcome == Outcome.SUCCESS for a in conn.attempts)
    lost = sum(a.outcome == Outcome.TIMEOUT for a in conn.attempts)
    loss = 100.0 * lost / len(conn.attempts)
    if ok == 0 or loss <= request.thresholds.loss_percent:
        return []
    start = _loss_start(hops)
    return [
        Issue(
            type=IssueType.PACKET_LOSS,
            severity=Severity.WARNING,
            origin=Origin.OUTBOUND,
            hop_id=start.id if start else hops.destination_id(),
            message=f"{loss:.0f}% of probes to {conn.address} were lost"
            + (f"; loss starts at {start.address}" if start else ""),
            hint="Packets are lost from this hop on: check the link and interface counters "
            "(errors, drops, congestion) between it and the previous hop.",
            context=ctx(
                lossPercent=round(loss, 1),
                thresholdPercent=request.thresholds.loss_percent,
                hop=start.address if start else None,
            ),
        )
    ]


def _hop_loss(hop: Hop) -> float:
    return hop.probes_failed / hop.probes_sent if hop.probes_sent else 0.0


def _loss_start(hops: HopIndex) -> Hop | None:
    """The first hop whose loss persists at every later hop (mtr's reading: loss that later
    hops do not show is a router rate-limiting its ICMP replies, not lost traffic)."""
    order = hops.path_order()
    for i, hop in enumerate(order):
        if _hop_loss(hop) > 0 and all(_hop_loss(later) > 0 for later in order[i:]):
            return hop
    return None


def latency_issues(
    latency: Latency | None,
    hops: HopIndex,
    request: ProbeRequest,
    conn: ConnectionEvidence | None = None,
) -> list[Issue]:
    threshold = request.thresholds.latency_ms
    if latency is None or latency.avg_ms <= threshold:
        return []
    answered = [h.processing_ms for h in (conn.http if conn else ()) if h.status_code]
    server_ms = sum(answered) / len(answered) if answered else 0.0
    if server_ms > latency.avg_ms / 2:
        # An HTTP check's latency runs to the answer's first byte: mostly the server's time.
        return [
            Issue(
                type=IssueType.HIGH_LATENCY,
                severity=Severity.WARNING,
                origin=Origin.INBOUND,
                hop_id=hops.destination_id(),
                message=f"average latency {latency.avg_ms:.1f} ms is over the {threshold:g} ms "
                f"threshold; the server takes {server_ms:.1f} ms of it to answer",
                hint="The network is not what is slow: check the application behind this URL "
                "(its load, its own backends, slow queries).",
                context=ctx(avgMs=latency.avg_ms, thresholdMs=threshold, serverMs=server_ms),
            )
        ]
    hop, jump = _latency_jump(hops)
    return [
        Issue(
            type=IssueType.HIGH_LATENCY,
            severity=Severity.WARNING,
            origin=Origin.OUTBOUND,
            hop_id=hop.id if hop else hops.destination_id(),
            message=f"average latency {latency.avg_ms:.1f} ms is over the {threshold:g} ms "
            "threshold" + (f"; {jump:.1f} ms of it is added at {hop.address}" if hop else ""),
            hint="Latency grows most on the link into this hop: check its load, queueing and "
            "whether the route takes a detour.",
            context=ctx(
                avgMs=latency.avg_ms,
                thresholdMs=threshold,
                addedMs=round(jump, 3) if hop else None,
            ),
        )
    ]


def _latency_jump(hops: HopIndex) -> tuple[Hop | None, float]:
    previous = 0.0
    best: tuple[Hop | None, float] = (None, 0.0)
    for hop in hops.path_order():
        if hop.latency is None:
            continue
        jump = hop.latency.avg_ms - previous
        if jump > best[1]:
            best = (hop, jump)
        previous = hop.latency.avg_ms
    return best


def loop_issues(loops: Iterable[tuple[str, list[int]]], hops: HopIndex) -> list[Issue]:
    return [
        Issue(
            type=IssueType.ROUTING,
            severity=Severity.ERROR,
            origin=Origin.OUTBOUND,
            hop_id=hops.by_address(address),
            message=f"routing loop: {address} appears again at TTLs {', '.join(map(str, ttls))}",
            hint=f"Routers around {address} point at each other for this destination: fix the "
            "route on one of them.",
            context=ctx(router=address, ttls=",".join(map(str, ttls))),
        )
        for address, ttls in loops
    ]


def path_issues(paths: list[PathFigures], hops: HopIndex, request: ProbeRequest) -> list[Issue]:
    """Multipath: name each path that fails while another works (traffic vanishes on it, or
    its end loses more than the threshold), so the broken branch is not averaged away."""
    by_id = {hop.id: hop for hop in hops.hops}

    def loss(figures: PathFigures) -> float:
        return 100.0 * figures.probes_failed / figures.probes_sent if figures.probes_sent else 0.0

    def fails(figures: PathFigures) -> bool:
        end = by_id.get(figures.hop_ids[-1]) if figures.hop_ids else None
        reached = end is not None and end.type == HopType.DESTINATION
        return not reached or loss(figures) > request.thresholds.loss_percent

    failing = [i for i, figures in enumerate(paths) if fails(figures)]
    if not failing or len(failing) == len(paths):
        return []
    issues = []
    for index in failing:
        figures = paths[index]
        via = [by_id[h].address or "*" for h in figures.hop_ids if h in by_id]
        last = next((a for a in reversed(via) if a != "*"), None)
        flows = ", ".join(map(str, figures.flows))
        issues.append(
            Issue(
                type=IssueType.PACKET_LOSS,
                severity=Severity.WARNING,
                origin=Origin.OUTBOUND,
                hop_id=figures.hop_ids[-1],
                message=f"path {index + 1} of {len(paths)} ({' > '.join(via)}) fails: "
                f"{figures.probes_failed} of {figures.probes_sent} probes of flows {flows} "
                f"got no answer {f'after {last}' if last else 'at its end'}; "
                "the other paths work",
                hint="One ECMP branch loses the traffic hashed onto it: check the link and the "
                f"rules after {last or 'the source'} on this branch only.",
                context=ctx(
                    path=index + 1,
                    flows=flows,
                    lossPercent=round(loss(figures), 1),
                    lastAnsweringHop=last,
                ),
            )
        )
    return issues


def tls_http_issues(
    conn: ConnectionEvidence | None,
    hops: HopIndex,
    request: ProbeRequest,
    *,
    stalls_explained: bool = False,
) -> list[Issue]:
    """`stalls_explained`: another issue (an MTU black hole) says why transfers stalled."""
    if conn is None or not conn.http:
        return []
    dest = hops.destination_id()
    issues: list[Issue] = []
    tls = next((h for h in conn.http if h.tls_problem is not None), None)
    tls_stalled = _first(conn, lambda a: a.outcome == Outcome.TLS_ERROR and a.stalled)
    if tls is not None and not (stalls_explained and tls_stalled):
        detail = _first(conn, lambda a: a.outcome == Outcome.TLS_ERROR)
        issues.append(
            Issue(
                type=IssueType.TLS,
                severity=Severity.ERROR,
                origin=Origin.INBOUND,
                hop_id=dest,
                message=f"TLS handshake with {conn.address} failed: {tls.tls_problem}"
                + (f" ({detail.detail})" if detail and detail.detail else ""),
                hint=TLS_HINTS.get(str(tls.tls_problem), TLS_HINTS["Handshake"]),
                context=ctx(problem=str(tls.tls_problem)),
            )
        )
    bad = sorted(
        {
            h.status_code
            for h in conn.http
            if h.status_code is not None
            and not status_allowed(h.status_code, request.http.valid_status_codes)
        }
    )
    if bad:
        issues.append(
            Issue(
                type=IssueType.HTTP_STATUS,
                severity=Severity.ERROR,
                origin=Origin.INBOUND,
                hop_id=dest,
                message=f"HTTP status {', '.join(map(str, bad))} is not one of "
                f"{', '.join(request.http.valid_status_codes)}",
                hint="The server answers but not as expected: check the application's logs, "
                "the URL path and the Host header, or widen validStatusCodes.",
                context=ctx(status=",".join(map(str, bad))),
            )
        )
    failed = _first(conn, lambda a: a.outcome == Outcome.HTTP_ERROR)
    if failed is not None and failed.stalled and not bad and not stalls_explained:
        issues.append(
            Issue(
                type=IssueType.HTTP_STATUS,
                severity=Severity.ERROR,
                origin=Origin.INBOUND,
                hop_id=dest,
                message=f"the response from {conn.address} stalled: {failed.detail}",
                hint="The connection opened but the response stopped arriving, and the MTU "
                "probe found no black hole on the way there (or could not run: see Probe): "
                "check the server (slow or stuck) and the MTU of the way back.",
                context=[],
            )
        )
    elif failed is not None and not failed.stalled and not bad:
        issues.append(
            Issue(
                type=IssueType.HTTP_STATUS,
                severity=Severity.ERROR,
                origin=Origin.INBOUND,
                hop_id=dest,
                message=f"no valid HTTP response from {conn.address}: {failed.detail}"
                if failed
                else "",
                hint="The port accepts connections but does not speak HTTP as expected: check "
                "the scheme (http vs https) and the server.",
                context=[],
            )
        )
    return issues


TLS_HINTS = {
    "Expired": "The server's certificate has expired: renew it (check cert-manager or the "
    "secret the server mounts).",
    "NotYetValid": "The certificate is not valid yet: check the issuer's and the source's clocks.",
    "HostnameMismatch": "The certificate does not cover the name you connect to: reissue it "
    "with this name in its SAN, or connect with the name it was issued for.",
    "Untrusted": "The certificate's issuer is not trusted by the source: add the CA to its "
    "trust store, or have a trusted CA sign it.",
    "Handshake": "The TLS handshake failed: check TLS versions, ciphers and that the port "
    "serves TLS.",
}


def status_allowed(code: int, valid: list[str]) -> bool:
    for pattern in valid:
        p = pattern.strip().lower()
        if len(p) == 3 and p.endswith("xx") and p[0].isdigit():
            if code // 100 == int(p[0]):
                return True
        elif p.isdigit() and int(p) == code:
            return True
    return False


def health_issues(health: HealthEvidence | None) -> list[Issue]:
    if health is None:
        return []
    issues: list[Issue] = []
    where = f"cgroup {health.cgroup}" if health.cgroup else "the source"
    cpu_signs = ctx(
        cpuPressureSomeAvg10=_over(health.cpu_pressure_some_avg10, CPU_PRESSURE_PERCENT),
        cpuThrottledRatio=_over(health.cpu_throttled_ratio, CPU_THROTTLED_RATIO),
        loadPerCore=_over(health.load_per_core, LOAD_PER_CORE),
    )
    if cpu_signs:
        issues.append(
            source_issue(
                IssueType.CPU,
                Severity.WARNING,
                message=f"high CPU pressure on {where}: "
                + ", ".join(f"{c.key}={c.value}" for c in cpu_signs),
                hint="The source is short of CPU, which delays its packets and replies: raise "
                "its CPU limit or move load off the node.",
                context=cpu_signs + ctx(cgroup=health.cgroup, quotaCores=health.cpu_quota_cores),
            )
        )
    ratio = (
        health.memory_usage_bytes / health.memory_limit_bytes
        if health.memory_usage_bytes is not None and health.memory_limit_bytes
        else None
    )
    mem_signs = ctx(
        memoryUsageRatio=_over(ratio, MEMORY_USAGE_RATIO),
        memoryPressureSomeAvg10=_over(health.memory_pressure_some_avg10, MEMORY_PRESSURE_PERCENT),
    )
    if mem_signs:
        issues.append(
            source_issue(
                IssueType.MEMORY,
                Severity.WARNING,
                message=f"high memory use on {where}: "
                + ", ".join(f"{c.key}={c.value}" for c in mem_signs),
                hint="The source is near its memory limit (reclaim stalls, OOM kills ahead): "
                "raise the limit or find what grows.",
                context=mem_signs
                + ctx(usageBytes=health.memory_usage_bytes, limitBytes=health.memory_limit_bytes),
            )
        )
    return issues


def _over(value: float | None, threshold: float) -> float | None:
    return round(value, 3) if value is not None and value >= threshold else None


def _first(conn: ConnectionEvidence | None, pred: Callable[[Attempt], bool]) -> Attempt | None:
    if conn is None:
        return None
    return next((a for a in conn.attempts if pred(a)), None)


def mtu_issues(evidence: MtuEvidence | None, hops: HopIndex) -> list[Issue]:
    """A black hole (large DF packets vanish where small ones pass), and each frag-needed or
    packet-too-big the MTU probe saw, with the next-hop MTU it names."""
    found = mtu.finding(evidence) if evidence is not None else None
    if found is None:
        return []
    issues: list[Issue] = []
    if found.failed is not None:
        after = found.last_router or "the source"
        passed = f"{found.passed}-byte ones pass" if found.passed else "no size passes"
        issues.append(
            Issue(
                type=IssueType.MTU,
                severity=Severity.ERROR,
                origin=Origin.OUTBOUND,
                hop_id=hops.by_address(found.last_router)
                or (None if found.last_router else SOURCE_HOP),
                message=f"path-MTU black hole after {after} (TTL {found.last_ttl}): "
                f"DF packets of {found.failed} bytes and more vanish beyond it while {passed}, "
                "and no frag-needed / packet-too-big comes back",
                hint=f"A link after {after} has a smaller MTU (a tunnel or overlay) and the "
                "ICMP that would tell senders is filtered: let ICMP frag-needed (IPv4 type 3 "
                "code 4) and packet-too-big (ICMPv6 type 2) through, clamp the TCP MSS on the "
                "router (iptables -j TCPMSS --clamp-mss-to-pmtu), or lower the source's MTU"
                + (f" to {found.passed}." if found.passed else "."),
                context=ctx(
                    router=found.last_router,
                    largestPassed=found.passed,
                    smallestFailed=found.failed,
                    interfaceMtu=evidence.interface_mtu if evidence else None,
                ),
            )
        )
    for icmp in found.too_big:
        limit = f"more than {icmp.mtu} bytes" if icmp.mtu else "these packets"
        passing = f"; {found.passed}-byte packets pass" if found.passed else ""
        issues.append(
            Issue(
                type=IssueType.MTU,
                severity=Severity.WARNING,
                origin=Origin.OUTBOUND,
                hop_id=hops.by_address(icmp.sender),
                message=f"{icmp.sender} cannot forward {limit} unfragmented and says so "
                f"(ICMP type {icmp.type} code {icmp.code}): path-MTU discovery works{passing}",
                hint="Senders adapt through this router's frag-needed / packet-too-big: lower "
                "the source's MTU or clamp the MSS to spare the first round trip of each flow.",
                context=ctx(router=icmp.sender, nextHopMtu=icmp.mtu, largestPassed=found.passed),
            )
        )
    return issues


# ---- verdict -------------------------------------------------------------------------------


def diagnose(
    request: ProbeRequest,
    evidence: Evidence,
    hops: list[Hop],
    loops: Iterable[tuple[str, list[int]]] = (),
    paths: list[PathFigures] | None = None,
) -> Diagnosis:
    conn = evidence.connection
    destination = conn.address if conn else None
    index = HopIndex(hops, destination)
    attempts = conn.attempts if conn else ()
    rtts = [a.rtt_ms for a in attempts if a.outcome == Outcome.SUCCESS and a.rtt_ms is not None]
    latency = Latency.of(rtts)
    path_errno = evidence.path.local_errno if evidence.path else None
    mtu_found = mtu_issues(evidence.mtu, index)
    black_hole = any(i.severity == Severity.ERROR for i in mtu_found)

    issues = [
        *dns_issues(evidence.dns),
        *bind_issues(conn, request),
        *local_send_issues(conn, path_errno, evidence.route),
        *local_probe_issues(conn),
        *route_issues(evidence.route, conn, path_errno),
        *loop_issues(loops, index),
        *mtu_found,
        *tls_http_issues(conn, index, request, stalls_explained=black_hole),
        *health_issues(evidence.health),
        *_probe_errors(evidence.errors),
    ]
    local_failure = any(i.origin == Origin.LOCAL and i.severity == Severity.ERROR for i in issues)
    if not local_failure and not any(i.type == IssueType.ROUTING for i in issues):
        issues += network_error_issues(evidence, index, request)
    issues += loss_issues(conn, index, request)
    issues += latency_issues(latency, index, request, conn)
    issues += path_issues(paths or [], index, request)

    failed = sum(a.outcome != Outcome.SUCCESS for a in attempts)
    return Diagnosis(
        status=verdict(evidence, issues, bool(rtts)),
        issues=issues,
        latency=latency,
        probes_sent=len(attempts),
        probes_failed=failed,
    )


def _probe_errors(errors: Iterable[str]) -> list[Issue]:
    return [
        source_issue(
            IssueType.PROBE,
            Severity.WARNING,
            message=error,
            hint="Part of the probe could not run; the verdict rests on the rest of the "
            "evidence. Check the probe's privileges (CAP_NET_RAW) and namespace.",
            context=[],
        )
        for error in errors
    ]


def verdict(evidence: Evidence, issues: list[Issue], any_success: bool) -> ConnectionStatus:
    conn = evidence.connection
    if conn is None or not conn.attempts:
        # Nothing was probed: a failed lookup is an answer, anything else means the probe
        # could not do its job.
        if any(i.type == IssueType.DNS_RESOLUTION and i.severity == Severity.ERROR for i in issues):
            return ConnectionStatus.UNREACHABLE
        return ConnectionStatus.UNKNOWN
    if all(_probe_could_not_run(a) for a in conn.attempts):
        return ConnectionStatus.UNKNOWN  # no packet left: nothing is known about the network
    hard = {IssueType.TLS, IssueType.HTTP_STATUS, IssueType.DNS_RESOLUTION}
    if not any_success or any(i.type in hard and i.severity == Severity.ERROR for i in issues):
        return ConnectionStatus.UNREACHABLE
    soft = {IssueType.PACKET_LOSS, IssueType.HIGH_LATENCY}
    black_hole = any(i.type == IssueType.MTU and i.severity == Severity.ERROR for i in issues)
    if any(i.type in soft for i in issues) or black_hole or _some_paths_fail(evidence):
        return ConnectionStatus.DEGRADED
    # Lost probes are judged against the loss threshold; a refused or rejected one is an
    # answer, and some of them beside successes mean part of the way is broken (one of a
    # Service's endpoints, say).
    failed = (a for a in conn.attempts if not _probe_could_not_run(a))
    if any(a.outcome not in (Outcome.SUCCESS, Outcome.TIMEOUT) for a in failed):
        return ConnectionStatus.DEGRADED
    return ConnectionStatus.REACHABLE


def _probe_could_not_run(attempt: Attempt) -> bool:
    return attempt.outcome == Outcome.LOCAL_ERROR and attempt.stage not in (Stage.BIND, Stage.SEND)


def _some_paths_fail(evidence: Evidence) -> bool:
    """Multipath: some flows reach the destination and some never do."""
    path = evidence.path
    if path is None or path.flows < 2:
        return False
    reached = {r.flow for r in path.replies if r.kind == ReplyKind.REACHED}
    return 0 < len(reached) < path.flows
