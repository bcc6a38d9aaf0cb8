"""The probe results and hops the tests feed the operator, built in one place.

`result()` and `hop()` build valid models with keyword arguments for what a test varies; a test
file binds its own fixture data once (`functools.partial`) and calls them as before. A plain
module rather than conftest fixtures: the builders are called with arguments, at import time
(module-level constants) and from every test directory, including `tests/unit`, which has no
package of its own.
"""

from __future__ import annotations

from collections.abc import Iterable

from hopscope_probe.models import (
    ConnectionStatus,
    DestinationInfo,
    Hop,
    HopType,
    Issue,
    Latency,
    ProbeResult,
    Protocol,
    SourceInfo,
)

LATENCY = Latency(min_ms=1.0, avg_ms=2.5, max_ms=4.0)
REACHED = (ConnectionStatus.REACHABLE, ConnectionStatus.DEGRADED)


def hop(
    ttl: int,
    address: str | None = None,
    avg_ms: float | None = None,
    *,
    hop_id: str | None = None,
    kind: HopType | None = None,
    destination: str | None = None,
    name: str | None = None,
    next_hops: Iterable[str] = (),
    latency: Latency | None = None,
    sent: int = 0,
    failed: int | None = None,
    issues: Iterable[Issue] = (),
) -> Hop:
    """One hop of the graph, `ttl` away from the source.

    Defaults: id `h<ttl>-<address or *>` (as the probe names them); kind Unknown for a hop that
    never answered, Destination when `address == destination`, else Router; latency `avg_ms` as
    min, avg and max (or `latency` as given); a silent hop failed every probe sent to it.
    """
    if kind is None:
        if address is None:
            kind = HopType.UNKNOWN
        elif address == destination:
            kind = HopType.DESTINATION
        else:
            kind = HopType.ROUTER
    if latency is None and avg_ms is not None:
        latency = Latency(min_ms=avg_ms, avg_ms=avg_ms, max_ms=avg_ms)
    if failed is None:
        failed = 0 if address else sent
    return Hop(
        id=hop_id if hop_id is not None else f"h{ttl}-{address or '*'}",
        type=kind,
        address=address,
        name=name,
        ttl=ttl,
        next_hop_ids=list(next_hops),
        latency=latency,
        probes_sent=sent,
        probes_failed=failed,
        issues=list(issues),
    )


def result(
    status: ConnectionStatus = ConnectionStatus.REACHABLE,
    *,
    host: str = "10.96.0.10",
    port: int | None = 5432,
    addresses: Iterable[str] | None = None,
    protocol: Protocol = Protocol.TCP,
    source: SourceInfo | None = None,
    latency: Latency = LATENCY,
    sent: int = 10,
    failed: int = 0,
    hops: Iterable[Hop] = (),
    issues: Iterable[Issue] = (),
    fingerprint: str | None = None,
    duration_ms: float | None = None,
) -> ProbeResult:
    """One run's result towards `host:port`.

    A run that reached the destination (Reachable, Degraded) has `latency` and `failed` failed
    probes; one that did not (Unreachable, Unknown) has no latency and failed every probe sent.
    `addresses` defaults to `[host]`; pass `[]` for a result that resolved none.
    """
    reached = status in REACHED
    return ProbeResult(
        connection_status=status,
        protocol=protocol,
        source=source or SourceInfo(),
        destination=DestinationInfo(
            host=host, port=port, addresses=list(addresses) if addresses is not None else [host]
        ),
        latency=latency if reached else None,
        probes_sent=sent,
        probes_failed=failed if reached else sent,
        hops=list(hops),
        issues=list(issues),
        path_fingerprint=fingerprint,
        duration_ms=duration_ms,
    )
