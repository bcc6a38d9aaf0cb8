"""Runs one check end to end: resolve, probe, trace, sample health, diagnose.

The connection probes, the path sweep and the health sample run at the same time, so a full
diagnosis takes about one probe timeout even when every packet is dropped (up to
sweep.NEIGHBOUR_GIVE_UP_S when the path goes silent after a router). The MTU probe, when
asked for or set off by a stalled transfer, follows them: at most one timeout more.
"""

from __future__ import annotations

import collections
import ipaddress
import sys
import time
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from datetime import UTC, datetime
from pathlib import Path

from hopscope_probe import backends, checks
from hopscope_probe.checks import dns, health, route
from hopscope_probe.diagnose import diagnose
from hopscope_probe.evidence import (
    Attempt,
    ConnectionEvidence,
    DnsEvidence,
    DnsOutcome,
    Evidence,
    HealthEvidence,
    MtuEvidence,
    Outcome,
    PathEvidence,
    ReplyKind,
)
from hopscope_probe.models import (
    SOURCE_HOP,
    DestinationInfo,
    Hop,
    HopType,
    HttpSummary,
    HttpTimings,
    IPVersion,
    Issue,
    Latency,
    PathMode,
    ProbeRequest,
    ProbeResult,
    Protocol,
    SourceInfo,
)
from hopscope_probe.path import graph, mtu, sweep
from hopscope_probe.path.transport import PathUnavailable
from hopscope_probe.target import is_ip, target_of

Progress = Callable[[str], None]

# Enough flows that two equal-cost paths are both seen with near certainty (miss: 2 x 2^-16).
MULTIPATH_FLOWS = 16
# Between a check's parallel attempts: apart, not one burst, without a wait a healthy
# diagnosis pays (it was 20 ms, 60 ms of every 4-probe check).
ATTEMPT_SPACING_S = 0.002
SWITCH_INTERVAL_S = 0.0002
SWEEP_PROTOCOL = {
    Protocol.TCP: "TCP",
    Protocol.HTTP: "TCP",
    Protocol.HTTPS: "TCP",
    Protocol.UDP: "UDP",
    Protocol.DNS: "UDP",
    Protocol.ICMP: "ICMP",
}


def pick_address(addresses: tuple[str, ...], preferred: IPVersion) -> str | None:
    version = 6 if preferred == IPVersion.IPV6 else 4
    ordered = sorted(addresses, key=lambda a: ipaddress.ip_address(a).version != version)
    return ordered[0] if ordered else None


def run(
    request: ProbeRequest,
    *,
    resolv_conf: str = "/etc/resolv.conf",
    pid: int | None = None,
    own_cgroup: bool = True,
    progress: Progress = lambda _msg: None,
) -> ProbeResult:
    if request.endpoints:
        return backends.run_with_endpoints(
            request,
            lambda one: run(
                one, resolv_conf=resolv_conf, pid=pid, own_cgroup=own_cgroup, progress=progress
            ),
        )
    # Probe threads read clocks after waking; a short GIL switch interval bounds how long one
    # waits behind another (the default 5 ms would be timing error).
    sys.setswitchinterval(SWITCH_INTERVAL_S)
    started = time.monotonic()
    started_at = datetime.now(UTC).isoformat(timespec="seconds")
    host, port = target_of(request)
    with ThreadPoolExecutor(max_workers=4, thread_name_prefix="hopscope") as pool:
        # Opened now, read at the end: its CPU figures cover the probe's own window.
        health_future = pool.submit(health.begin, pid=pid, own_cgroup=own_cgroup)
        dns_evidence = _resolve(request, host, resolv_conf, progress)
        address = _destination_address(request, host, dns_evidence)
        conn = route_ev = path = mtu_ev = None
        errors: list[str] = []
        if address is not None:
            path_future = None
            # A fixed source port gives the sweep and the probes one 4-tuple: run them apart.
            if request.path_mode == PathMode.ALWAYS and not request.source_port:
                path_future = pool.submit(_trace, request, address, port, progress)
            progress(f"probing {address} over {request.protocol}")
            conn = _connect(request, address, port, dns_evidence)
            route_ev = route.inspect(address)  # after the probes: neighbour state is now fresh
            if path_future is None and _should_trace_after(request, conn):
                path_future = pool.submit(_trace, request, address, port, progress)
            path = _path_or_error(path_future, errors) if path_future else None
            if request.mtu or any(a.stalled for a in conn.attempts):
                mtu_ev = _probe_mtu(request, address, port, _path_length(path), errors, progress)
        health_ev = _health_or_none(health_future)

    evidence = Evidence(
        dns=dns_evidence,
        route=route_ev,
        connection=conn,
        path=path,
        health=health_ev,
        mtu=mtu_ev,
        source_address=route_ev.preferred_source if route_ev else None,
        errors=tuple(errors),
    )
    hops, loops = _hops(request, evidence, resolv_conf)
    paths = graph.build_paths(evidence.path) if evidence.path else []
    progress("diagnosing")
    found = diagnose(request, evidence, hops, loops, paths)
    hops = attach_issues(hops, found.issues)
    return ProbeResult(
        connection_status=found.status,
        protocol=request.protocol,
        source=SourceInfo(address=evidence.source_address),
        destination=DestinationInfo(
            host=host,
            port=port,
            addresses=list(dns_evidence.addresses) if dns_evidence else [],
        ),
        latency=found.latency,
        probes_sent=found.probes_sent,
        probes_failed=found.probes_failed,
        hops=hops,
        paths=paths,
        issues=found.issues,
        path_fingerprint=graph.fingerprint(hops) if path else None,
        http=_http_summary(conn),
        dns_answers=dns_answers(dns_evidence) if request.protocol == Protocol.DNS else None,
        started_at=started_at,
        duration_ms=round((time.monotonic() - started) * 1000, 1),
    )


def _resolve(
    request: ProbeRequest, host: str, resolv_conf: str, progress: Progress
) -> DnsEvidence | None:
    if is_ip(host):
        return DnsEvidence(
            name=host, nameservers=(), search=(), ndots=1, queries=(), addresses=(host,)
        )
    progress(f"resolving {host}")
    order = ("AAAA", "A") if request.preferred_ip_version == IPVersion.IPV6 else ("A", "AAAA")
    return dns.resolve(
        host, rdtypes=order, timeout=request.timeout_seconds, resolv_conf=resolv_conf
    )


def _destination_address(
    request: ProbeRequest, host: str, dns_evidence: DnsEvidence | None
) -> str | None:
    if request.protocol == Protocol.DNS:
        # A DNS check probes the nameservers that answered (or were asked) for the name.
        if dns_evidence is None or not dns_evidence.nameservers:
            return host if is_ip(host) else None
        return dns_evidence.nameservers[0]
    if dns_evidence is None:
        return None
    return pick_address(dns_evidence.addresses, request.preferred_ip_version)


def _connect(
    request: ProbeRequest, address: str, port: int | None, dns_evidence: DnsEvidence | None
) -> ConnectionEvidence:
    if request.protocol == Protocol.DNS:
        return dns_connection(dns_evidence, address)
    check = checks.CONNECTION_CHECKS[str(request.protocol)]
    sized = request.model_copy(update={"port": port})
    if request.source_port or request.count == 1:
        return check(sized, address)  # one fixed port cannot be bound twice at once
    return _parallel_attempts(check, sized, address)


def _parallel_attempts(
    check: checks.ConnectionCheck, request: ProbeRequest, address: str
) -> ConnectionEvidence:
    """`count` single-probe checks started a few ms apart: a dropped flow costs one timeout,
    not `count` of them, and the probes still do not leave as one burst."""
    single = request.model_copy(update={"count": 1})
    stagger = min(ATTEMPT_SPACING_S, request.timeout_seconds / (4 * request.count))
    with ThreadPoolExecutor(max_workers=request.count) as pool:
        futures = []
        for i in range(request.count):
            futures.append(pool.submit(_delayed, i * stagger, check, single, address))
        parts = [f.result() for f in futures]
    first = parts[0]
    return ConnectionEvidence(
        protocol=first.protocol,
        address=first.address,
        port=first.port,
        attempts=tuple(a for p in parts for a in p.attempts),
        http=tuple(h for p in parts for h in p.http),
    )


def _delayed(
    delay: float, check: checks.ConnectionCheck, request: ProbeRequest, address: str
) -> ConnectionEvidence:
    time.sleep(delay)
    return check(request, address)


def dns_connection(dns_evidence: DnsEvidence | None, address: str) -> ConnectionEvidence:
    """A DNS check's probes are its queries: each nameserver asked is one attempt."""
    queries = dns_evidence.queries if dns_evidence else ()
    outcome_of = {
        DnsOutcome.NOERROR: Outcome.SUCCESS,
        DnsOutcome.NODATA: Outcome.SUCCESS,
        DnsOutcome.TIMEOUT: Outcome.TIMEOUT,
        DnsOutcome.REFUSED: Outcome.SUCCESS,  # the server answered; dns_issues names it
        DnsOutcome.NXDOMAIN: Outcome.SUCCESS,
        DnsOutcome.SERVFAIL: Outcome.SUCCESS,
        DnsOutcome.OTHER_RCODE: Outcome.SUCCESS,  # answered, with its code in the detail
        DnsOutcome.ERROR: Outcome.LOCAL_ERROR,
    }
    return ConnectionEvidence(
        protocol="DNS",
        address=address,
        port=53,
        attempts=tuple(
            Attempt(outcome=outcome_of[q.outcome], rtt_ms=q.rtt_ms, detail=q.detail)
            for q in queries
        ),
    )


def _should_trace_after(request: ProbeRequest, conn: ConnectionEvidence) -> bool:
    if request.path_mode == PathMode.ALWAYS:
        return bool(request.source_port)  # deferred until the probes released the port
    failed = any(a.outcome != Outcome.SUCCESS for a in conn.attempts)
    return request.path_mode == PathMode.ON_FAILURE and failed


def _path_or_error(future: Future[PathEvidence], errors: list[str]) -> PathEvidence | None:
    try:
        return future.result()
    except PathUnavailable as exc:
        # No raw sockets here (no CAP_NET_RAW): the hops are unknown, not blocked.
        errors.append(f"path discovery unavailable: {exc}")
        return None


def _trace(
    request: ProbeRequest, address: str, port: int | None, progress: Progress
) -> PathEvidence:
    progress(f"tracing the path to {address}")
    return sweep.discover(
        address,
        protocol=SWEEP_PROTOCOL[request.protocol],
        port=port,
        max_hops=request.max_hops,
        probes_per_hop=max(3, min(request.count, 10)),
        flows=MULTIPATH_FLOWS if request.multipath else 1,
        timeout=request.timeout_seconds,
        source_port=0 if request.multipath else request.source_port,
        # Past the probe timeout: the last router's ARP/NDP failure answers only after ~3 s.
        late_errors_until=sweep.NEIGHBOUR_GIVE_UP_S,
    )


def _path_length(path: PathEvidence | None) -> int | None:
    """The TTL at which the traced path reached the destination: the MTU probe need not send
    its large packets further (None: not traced, or it never got there)."""
    reached = [r.ttl for r in path.replies if r.kind == ReplyKind.REACHED] if path else []
    return min(reached, default=None)


def _probe_mtu(
    request: ProbeRequest,
    address: str,
    port: int | None,
    path_length: int | None,
    errors: list[str],
    progress: Progress,
) -> MtuEvidence | None:
    progress(f"probing the path MTU to {address}")
    try:
        return mtu.probe(
            address,
            protocol=SWEEP_PROTOCOL[request.protocol],
            port=port,
            max_hops=path_length or request.max_hops,
            timeout=request.timeout_seconds,
        )
    except PathUnavailable as exc:
        errors.append(f"the MTU probe could not run: {exc}")
        return None


def _health_or_none(future: Future[health.Window]) -> HealthEvidence | None:
    try:
        return health.finish(future.result())
    except OSError:
        return None  # health is context: a sandbox without /proc/pressure must not fail a check


def _hops(
    request: ProbeRequest, evidence: Evidence, resolv_conf: str
) -> tuple[list[Hop], list[tuple[str, list[int]]]]:
    conn = evidence.connection
    if evidence.path is not None:
        addresses = sorted({r.sender for r in evidence.path.replies if r.sender})
        names = _names(addresses, request, resolv_conf)
        hops = graph.build_hops(evidence.path, source_address=evidence.source_address, names=names)
        return hops, graph.find_loops(evidence.path)
    return _direct_hops(evidence, conn), []


def _names(addresses: list[str], request: ProbeRequest, resolv_conf: str) -> dict[str, str]:
    if not addresses or not Path(resolv_conf).exists():
        return {}
    return dns.reverse(
        addresses, timeout=min(1.0, request.timeout_seconds), resolv_conf=resolv_conf
    )


def _direct_hops(evidence: Evidence, conn: ConnectionEvidence | None) -> list[Hop]:
    """Without a traced path: the source and the destination, one edge."""
    source = Hop(id=SOURCE_HOP, type=HopType.SOURCE, address=evidence.source_address, ttl=0)
    if conn is None:
        return [source]
    rtts = [
        a.rtt_ms for a in conn.attempts if a.rtt_ms is not None and a.outcome == Outcome.SUCCESS
    ]
    dest = Hop(
        id=f"dest-{conn.address}",
        type=HopType.DESTINATION,
        address=conn.address,
        latency=Latency.of(rtts),
        probes_sent=len(conn.attempts),
        probes_failed=sum(a.outcome != Outcome.SUCCESS for a in conn.attempts),
    )
    source.next_hop_ids.append(dest.id)
    return [source, dest]


def attach_issues(hops: list[Hop], issues: list[Issue]) -> list[Hop]:
    """Each hop carries the issues located at it, as the status schema shows them."""
    by_hop: dict[str, list[Issue]] = {}
    for issue in issues:
        if issue.hop_id is not None:
            by_hop.setdefault(issue.hop_id, []).append(issue)
    return [hop.model_copy(update={"issues": by_hop.get(hop.id, [])}) for hop in hops]


def dns_answers(dns_evidence: DnsEvidence | None) -> dict[str, int]:
    """How many of a DNS check's queries got each answer: "8/8 answered" alone hides that
    every answer was NXDOMAIN."""
    answers = [q.answer for q in dns_evidence.queries if q.answered] if dns_evidence else []
    return dict(collections.Counter(answers).most_common())


def _http_summary(conn: ConnectionEvidence | None) -> HttpSummary | None:
    if conn is None or not conn.http:
        return None
    answered = next((h for h in conn.http if h.status_code is not None), conn.http[0])
    return HttpSummary(
        status_code=answered.status_code,
        tls_version=answered.tls_version,
        timings=HttpTimings(
            resolve_ms=answered.resolve_ms,
            connect_ms=answered.connect_ms,
            tls_ms=answered.tls_ms,
            processing_ms=answered.processing_ms,
            transfer_ms=answered.transfer_ms,
        ),
    )
