"""Raw evidence the checks and the path sweep collect, before diagnosis.

These are plain frozen dataclasses: the checks fill them, `diagnose` turns them into issues.
A failure is data here (an outcome, an errno, an ICMP error), never an exception.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import StrEnum


class Stage(StrEnum):
    """Where in a connection attempt the outcome was decided."""

    RESOLVE = "resolve"
    BIND = "bind"
    SEND = "send"  # sendto()/connect() itself failed locally
    CONNECT = "connect"
    TLS = "tls"
    HTTP = "http"


class Outcome(StrEnum):
    SUCCESS = "Success"  # connected / echo reply / answered / HTTP response received
    REFUSED = "Refused"  # TCP RST, or ICMP port unreachable from the destination
    TIMEOUT = "Timeout"  # nothing came back within the probe timeout
    ICMP_ERROR = "IcmpError"  # an ICMP error other than port unreachable came back
    LOCAL_ERROR = "LocalError"  # the source's own kernel refused (errno)
    TLS_ERROR = "TlsError"
    HTTP_ERROR = "HttpError"  # connected, but the HTTP exchange failed (bad response, reset)


class IcmpKind(StrEnum):
    TTL_EXCEEDED = "TtlExceeded"
    NET_UNREACHABLE = "NetUnreachable"
    HOST_UNREACHABLE = "HostUnreachable"
    PORT_UNREACHABLE = "PortUnreachable"
    ADMIN_PROHIBITED = "AdminProhibited"
    FRAG_NEEDED = "FragmentationNeeded"
    OTHER = "Other"


@dataclass(frozen=True)
class IcmpError:
    sender: str  # address of the router or host that sent the error
    kind: IcmpKind
    type: int
    code: int
    mtu: int | None = None  # frag-needed / packet-too-big: the next hop's MTU, when given


@dataclass(frozen=True)
class Attempt:
    """One probe of a connection check (one TCP connect, one echo, one datagram, one request)."""

    outcome: Outcome
    stage: Stage = Stage.CONNECT
    rtt_ms: float | None = None
    errno: int | None = None  # local errno, or the errno the kernel mapped an ICMP error to
    icmp: IcmpError | None = None
    detail: str = ""
    # Connected, then the TLS handshake or the response stopped arriving before the timeout:
    # what a path-MTU black hole does once full-size segments flow.
    stalled: bool = False


class TlsProblem(StrEnum):
    EXPIRED = "Expired"
    NOT_YET_VALID = "NotYetValid"
    HOSTNAME_MISMATCH = "HostnameMismatch"
    UNTRUSTED = "Untrusted"  # self-signed or unknown issuer
    HANDSHAKE = "Handshake"  # protocol-level failure (no shared cipher, wrong version, reset)


@dataclass(frozen=True)
class HttpAttempt:
    """Details of one HTTP(S) request beyond the connection outcome."""

    status_code: int | None = None
    resolve_ms: float = 0.0
    connect_ms: float = 0.0
    tls_ms: float = 0.0
    processing_ms: float = 0.0
    transfer_ms: float = 0.0
    tls_version: str | None = None
    tls_problem: TlsProblem | None = None


@dataclass(frozen=True)
class ConnectionEvidence:
    """All attempts of one connection check against one address."""

    protocol: str  # "TCP" | "UDP" | "ICMP" | "HTTP" | "HTTPS" | "DNS"
    address: str
    port: int | None
    attempts: tuple[Attempt, ...]
    http: tuple[HttpAttempt, ...] = ()  # one per attempt, for HTTP(S) only


class DnsOutcome(StrEnum):
    NOERROR = "NOERROR"
    NODATA = "NODATA"  # the name exists but has no record of that type
    NXDOMAIN = "NXDOMAIN"
    SERVFAIL = "SERVFAIL"
    REFUSED = "REFUSED"
    OTHER_RCODE = "OtherRcode"  # an answer with another error code (NOTIMP, FORMERR, ...)
    TIMEOUT = "Timeout"
    ERROR = "Error"  # anything else (network unreachable, malformed answer)


@dataclass(frozen=True)
class DnsQuery:
    nameserver: str
    qname: str  # the fully qualified name actually asked (after search-list expansion)
    rdtype: str  # "A" | "AAAA"
    outcome: DnsOutcome
    rtt_ms: float | None = None
    addresses: tuple[str, ...] = ()
    detail: str = ""

    @property
    def answer(self) -> str:
        """The outcome as DNS names it (NOTIMP, not "OtherRcode")."""
        if self.outcome == DnsOutcome.OTHER_RCODE and self.detail:
            return self.detail
        return self.outcome

    @property
    def answered(self) -> bool:
        """A server sent a response (any rcode), as opposed to silence or a local error."""
        return self.outcome not in (DnsOutcome.TIMEOUT, DnsOutcome.ERROR)


@dataclass(frozen=True)
class DnsEvidence:
    name: str  # as the user wrote it
    nameservers: tuple[str, ...]
    search: tuple[str, ...]
    ndots: int
    queries: tuple[DnsQuery, ...]
    addresses: tuple[str, ...]  # what the name resolved to (first nameserver that answered)
    resolv_conf: str = "/etc/resolv.conf"


class NeighbourState(StrEnum):
    REACHABLE = "REACHABLE"
    STALE = "STALE"
    DELAY = "DELAY"
    PROBE = "PROBE"
    FAILED = "FAILED"
    INCOMPLETE = "INCOMPLETE"
    PERMANENT = "PERMANENT"
    NOARP = "NOARP"
    NONE = "NONE"  # no entry yet (normal before the first packet)


@dataclass(frozen=True)
class RouteEvidence:
    """The source's own routing decision for the destination, read from the kernel."""

    destination: str
    route_found: bool
    route_type: str = "unicast"  # unicast | unreachable | blackhole | prohibit | local | ...
    prefix: str | None = None  # the matching blackhole/unreachable/prohibit route's prefix
    gateway: str | None = None  # None: the destination is on-link
    device: str | None = None
    preferred_source: str | None = None
    neighbour: str | None = None  # the address whose link-layer entry is needed
    neighbour_state: NeighbourState = NeighbourState.NONE
    detail: str = ""


@dataclass(frozen=True)
class HealthEvidence:
    """CPU and memory pressure where the source runs (its cgroup, or the host)."""

    cgroup: str | None = None  # the cgroup path the figures were read from
    cgroup_version: int | None = None
    cpu_pressure_some_avg10: float | None = None  # PSI, percent
    memory_pressure_some_avg10: float | None = None
    memory_pressure_full_avg10: float | None = None
    memory_usage_bytes: int | None = None
    memory_limit_bytes: int | None = None  # None: unlimited
    cpu_throttled_ratio: float | None = None  # throttled periods / periods while sampling
    cpu_quota_cores: float | None = None
    load_per_core: float | None = None  # 1-minute load average / cores (host view)


class ReplyKind(StrEnum):
    TIME_EXCEEDED = "TimeExceeded"  # a router on the way
    REACHED = "Reached"  # the destination answered (SYN-ACK, RST, echo reply, port unreachable)
    UNREACHABLE = "Unreachable"  # an ICMP destination-unreachable from a router or the host


@dataclass(frozen=True)
class HopReply:
    """The answer to one TTL-limited probe."""

    flow: int  # flow index (varied source port per flow for multipath)
    ttl: int
    attempt: int  # probe index within this flow and TTL
    sender: str | None  # None: no answer within the timeout
    rtt_ms: float | None = None
    kind: ReplyKind | None = None
    icmp: IcmpError | None = None
    quoted_ttl: int | None = None  # TTL left in the quoted header (detects loops / rewrites)


@dataclass(frozen=True)
class PathEvidence:
    destination: str
    protocol: str
    port: int | None
    flows: int
    probes_per_hop: int
    max_hops: int
    replies: tuple[HopReply, ...]  # one per probe sent, answered or not
    local_errno: int | None = None  # sending failed locally (EPERM, ENETUNREACH)
    detail: str = ""


@dataclass(frozen=True)
class MtuEvidence:
    """The MTU probe: a path sweep whose flow i sends DF packets of sizes[i] bytes."""

    interface_mtu: int  # of the interface the route to the destination leaves by
    sizes: tuple[int, ...]  # largest first
    path: PathEvidence


@dataclass(frozen=True)
class Evidence:
    """Everything one probe run collected, the input of diagnosis."""

    dns: DnsEvidence | None = None
    route: RouteEvidence | None = None
    connection: ConnectionEvidence | None = None
    path: PathEvidence | None = None
    health: HealthEvidence | None = None
    mtu: MtuEvidence | None = None
    source_address: str | None = None
    errors: tuple[str, ...] = field(default_factory=tuple)  # the probe could not run a part
