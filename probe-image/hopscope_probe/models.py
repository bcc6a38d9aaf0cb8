"""The probe's request and result schema.

`ProbeResult` is exactly the shape the operator writes into `ConnectivityCheck.status`, so the
CRD's status schema is generated from these models: camelCase aliases, enums as string
literals, no free-form dicts (evidence is a list of key/value pairs).
"""

from __future__ import annotations

from enum import StrEnum
from typing import Annotated
from urllib.parse import urlsplit

from pydantic import BaseModel, ConfigDict, Field, field_validator
from pydantic.alias_generators import to_camel


class Schema(BaseModel):
    """Base for every model: camelCase on the wire, snake_case in Python; attribute docstrings
    are the fields' descriptions (the CRD's status and spec.http carry them)."""

    model_config = ConfigDict(
        alias_generator=to_camel,
        populate_by_name=True,
        extra="forbid",
        use_attribute_docstrings=True,
    )

    def to_json(self) -> str:
        return self.model_dump_json(by_alias=True, exclude_none=True)


class Protocol(StrEnum):
    TCP = "TCP"
    UDP = "UDP"
    ICMP = "ICMP"
    HTTP = "HTTP"
    HTTPS = "HTTPS"
    DNS = "DNS"


class IPVersion(StrEnum):
    IPV4 = "IPv4"
    IPV6 = "IPv6"


class ConnectionStatus(StrEnum):
    REACHABLE = "Reachable"
    UNREACHABLE = "Unreachable"
    DEGRADED = "Degraded"
    UNKNOWN = "Unknown"


class IssueType(StrEnum):
    CPU = "CPU"
    MEMORY = "Memory"
    FIREWALL = "Firewall"
    NETWORK_POLICY = "NetworkPolicy"
    DNS_RESOLUTION = "DNSResolution"
    ROUTING = "Routing"
    NEIGHBOR_RESOLUTION = "NeighborResolution"
    SOCKET_BIND = "SocketBind"
    PORT_NOT_LISTENING = "PortNotListening"
    SERVICE_ENDPOINTS = "ServiceEndpoints"
    PACKET_LOSS = "PacketLoss"
    HIGH_LATENCY = "HighLatency"
    MTU = "MTU"
    TLS = "TLS"
    HTTP_STATUS = "HTTPStatus"
    PROBE = "Probe"  # the probe itself could not run (bad privileges, netns not found)


class IssueCause(StrEnum):
    """What a finding's evidence proves, for programs that act on it (the operator's merge of
    the probe's findings with static analysis' reads this, never the message's words). One
    value per cause a reader needs; a finding without one carries none."""

    SILENT_DROP = "SilentDrop"
    """No answer at all to any probe: packets vanish after the last answering hop (a DROP rule,
    a security group, a NetworkPolicy). Set by the probe's diagnosis (`diagnose._silent_drop`)."""


class Severity(StrEnum):
    ERROR = "Error"
    WARNING = "Warning"


class Origin(StrEnum):
    LOCAL = "Local"
    OUTBOUND = "Outbound"
    INBOUND = "Inbound"


class HopType(StrEnum):
    SOURCE = "Source"
    ROUTER = "Router"
    NODE = "Node"
    POD = "Pod"
    SERVICE = "Service"
    DESTINATION = "Destination"
    UNKNOWN = "Unknown"


class PathMode(StrEnum):
    ALWAYS = "Always"
    ON_FAILURE = "OnFailure"
    NEVER = "Never"


# ---- result -------------------------------------------------------------------------------


class Latency(Schema):
    """Milliseconds, over the answered probes."""

    min_ms: float = Field(ge=0)
    """The fastest answer, ms."""
    avg_ms: float = Field(ge=0)
    """The mean, ms."""
    max_ms: float = Field(ge=0)
    """The slowest answer, ms."""

    @classmethod
    def of(cls, samples_ms: list[float]) -> Latency | None:
        if not samples_ms:
            return None
        return cls(
            min_ms=round(min(samples_ms), 3),
            avg_ms=round(sum(samples_ms) / len(samples_ms), 3),
            max_ms=round(max(samples_ms), 3),
        )


class ContextItem(Schema):
    """One piece of evidence."""

    key: str
    """What it is, e.g. lastAnsweringHop."""
    value: str
    """Its value."""


def context_of(*, skip_empty: bool = False, **pairs: object) -> list[ContextItem]:
    """Evidence from keyword pairs, in their order, each value as text: None values are left
    out, and empty strings too with `skip_empty` (the operator's analysis names no empty
    evidence). The one builder of context lists, for the probe's and the operator's rules."""
    return [
        ContextItem(key=k, value=str(v))
        for k, v in pairs.items()
        if v is not None and not (skip_empty and v == "")
    ]


class Issue(Schema):
    """A problem found, where it is, and what to do about it."""

    type: IssueType
    """Its kind, e.g. Firewall, NetworkPolicy, DNSResolution, PortNotListening, TLS."""
    severity: Severity
    """Error (it breaks the connection) or Warning (it degrades it)."""
    origin: Origin
    """Local (at the source), Outbound (on the way) or Inbound (at the destination)."""
    hop_id: str | None = None
    """The hop it was located at, when it was."""
    message: str
    """What is wrong."""
    hint: str
    """What to check or change."""
    context: list[ContextItem] = Field(default_factory=list)
    """The evidence behind it."""
    cause: IssueCause | None = None
    """What the evidence proves, for programs to read (SilentDrop: no answer to any probe)."""


# The id of the source's own hop, the root of every hop graph (the probe writes it, the
# operator's analysis places issues on it).
SOURCE_HOP = "source"


class Hop(Schema):
    """One node of the hop graph."""

    id: str
    """Unique within the result; nextHopIds point at it."""
    type: HopType
    """Source, Router, Node, Pod, Service, Destination or Unknown."""
    address: str | None = None
    """The address that answered; absent for a hop that never did ("*")."""
    name: str | None = None
    """Its reverse-DNS name, or the cluster object it is."""
    ttl: int | None = Field(default=None, ge=0)
    """Its distance from the source (0: the source itself)."""
    next_hop_ids: list[str] = Field(default_factory=list)
    """The hops after it (more than one: an ECMP branch)."""
    latency: Latency | None = None
    """Round-trip time to it."""
    probes_sent: int = Field(default=0, ge=0)
    """Path probes sent to it."""
    probes_failed: int = Field(default=0, ge=0)
    """Path probes it did not answer."""
    issues: list[Issue] = Field(default_factory=list)
    """The issues located at it."""


class PathFigures(Schema):
    """One distinct path of a multipath trace: the hops its flows passed, and how its end fared
    (mtr's per-hop figures merge every path; these keep each apart)."""

    hop_ids: list[str]
    """Its hops after the source, in TTL order (ids of `hops`)."""
    flows: list[int] = Field(default_factory=list)
    """The flows (0-based, each its own source port or ICMP id) that took it."""
    latency: Latency | None = None
    """Round-trip time to its last hop."""
    probes_sent: int = Field(default=0, ge=0)
    """Path probes its flows sent to its last hop."""
    probes_failed: int = Field(default=0, ge=0)
    """Of those, the ones its last hop did not answer (all of them: the path ends silent)."""


# A Service check probes at most this many of its ready endpoints (bounds its time, its status
# and its metric series).
MAX_ENDPOINTS = 10


class EndpointTarget(Schema):
    """One backend behind a Service, probed directly beside the ClusterIP."""

    address: str = Field(min_length=1)
    """The endpoint's address (the pod's IP)."""
    port: int | None = Field(default=None, ge=1, le=65535)
    """The port the pod listens on (the Service's targetPort)."""
    pod: str | None = None
    """The pod behind the endpoint (its EndpointSlice targetRef)."""
    node: str | None = None
    """The node the endpoint runs on."""


class EndpointResult(EndpointTarget):
    """How one backend fared when probed directly."""

    connection_status: ConnectionStatus
    """Reachable, Unreachable, Degraded or Unknown, as for the check itself."""
    latency: Latency | None = None
    """Latency of its answered connection probes."""
    probes_sent: int = Field(default=0, ge=0)
    """Connection probes sent to it."""
    probes_failed: int = Field(default=0, ge=0)
    """Of those, the ones without a (good) answer."""
    issues: list[Issue] = Field(default_factory=list)
    """What is wrong with it (its own hops are not kept: hopId is left out)."""


class SourceInfo(Schema):
    """Where a run started."""

    address: str | None = None
    """The source's address."""
    node: str | None = None
    """The node it ran on."""
    pod: str | None = None
    """The source pod, for pod and workload sources."""


class DestinationInfo(Schema):
    host: str
    port: int | None = None
    addresses: list[str] = Field(default_factory=list)


class HttpTimings(Schema):
    """Phases of one HTTP(S) request, as Prometheus' blackbox exporter splits them."""

    resolve_ms: float = 0.0
    connect_ms: float = 0.0
    tls_ms: float = 0.0
    processing_ms: float = 0.0  # request sent to first byte of the response
    transfer_ms: float = 0.0


class HttpSummary(Schema):
    status_code: int | None = None
    timings: HttpTimings | None = None
    tls_version: str | None = None


class RunFindings(Schema):
    """What one run measured and found: the part of a result that a ConnectivityCheck's status
    carries as it is. Declared once, here: `ProbeResult` and the status both extend it."""

    latency: Latency | None = None
    """End-to-end latency of the run's answered probes."""
    probes_sent: int = Field(default=0, ge=0)
    """Connection probes the run sent."""
    probes_failed: int = Field(default=0, ge=0)
    """Connection probes the run got no (good) answer to."""
    hops: list[Hop] = Field(default_factory=list)
    """Every hop of every path found, linked by nextHopIds."""
    paths: list[PathFigures] = Field(default_factory=list)
    """Each distinct path of a traced run, with its own latency and loss."""
    endpoints: list[EndpointResult] = Field(default_factory=list)
    """A Service check: each ready endpoint probed directly (at most 10, by address)."""
    issues: list[Issue] = Field(default_factory=list)
    """What the run found wrong, each located and with a hint."""
    path_fingerprint: str | None = None
    """Hash of every path's ordered hop addresses; a change raises a PathChanged event."""

    def findings(self) -> dict[str, object]:
        """These fields by name, as attributes (not dumped), for building the other model."""
        return {name: getattr(self, name) for name in RunFindings.model_fields}


class ProbeResult(RunFindings):
    connection_status: ConnectionStatus
    protocol: Protocol
    source: SourceInfo = Field(default_factory=SourceInfo)
    destination: DestinationInfo
    http: HttpSummary | None = None
    dns_answers: dict[str, int] | None = None  # a DNS check: queries per answer (NXDOMAIN: 8)
    started_at: str | None = None  # RFC 3339
    duration_ms: float | None = None


# ---- request -------------------------------------------------------------------------------


class Thresholds(Schema):
    """Over either, a reachable destination is Degraded."""

    latency_ms: float = Field(default=200.0, gt=0, le=60_000)  # no probe waits over 60 s
    """Average latency, ms (HTTP(S): to the first byte of the response)."""
    loss_percent: float = Field(default=5.0, ge=0, le=100)
    """Connection probes lost, percent."""


# Bounded so that one check, whatever its headers, fits a probe pod's batch (plan.py): visible
# ASCII only, so a character is at most two bytes of JSON, and no CR/LF can add a header.
MAX_HEADERS, MAX_HEADER_NAME, MAX_HEADER_VALUE = 16, 256, 2048
HEADER_NAME = r"^[!#$%&'*+.^_`|~0-9A-Za-z-]+$"  # an HTTP token
HEADER_VALUE = r"^[\t\x20-\x7e]*$"


class HttpHeader(Schema):
    """One request header."""

    name: str = Field(min_length=1, max_length=MAX_HEADER_NAME, pattern=HEADER_NAME)
    """The header's name, e.g. Authorization."""
    value: str = Field(max_length=MAX_HEADER_VALUE, pattern=HEADER_VALUE)
    """Its value: visible ASCII and tabs."""


# A check's own CA certificates travel in its request, so in a probe pod's environment (plan.py):
# 32 KiB is a private root and intermediates many times over, and leaves a check at the CRD's
# other bounds under the 128 KiB the kernel allows one environment string.
MAX_CA_PEM = 32 * 1024

# An HTTP status code (200) or class (2xx), as the status check reads them.
StatusCode = Annotated[str, Field(max_length=3, pattern=r"^[1-5]([0-9]{2}|[xX]{2})$")]


class HttpOptions(Schema):
    """What an HTTP(S) check sends, and which answers are good."""

    method: str = Field(
        default="GET", max_length=7, pattern=r"^(GET|HEAD|POST|PUT|DELETE|OPTIONS|PATCH)$"
    )
    """The request method."""
    headers: list[HttpHeader] = Field(default_factory=list, max_length=MAX_HEADERS)
    """Extra request headers; one hopscope sends itself (Host, User-Agent, Accept) is replaced."""
    valid_status_codes: list[StatusCode] = Field(
        default_factory=lambda: ["2xx"],
        max_length=MAX_HEADERS,
        description="codes like 200 or classes like 2xx",
    )


class ProbeRequest(Schema):
    """One check for the probe to run: what the CLI flags and the operator's batch both build."""

    host: str = Field(min_length=1, description="IP address or DNS name to probe")
    port: int | None = Field(default=None, ge=1, le=65535)
    protocol: Protocol = Protocol.TCP
    uri: str | None = None  # HTTP(S): the full URL; host and port are derived from it
    preferred_ip_version: IPVersion = IPVersion.IPV4
    count: int = Field(default=4, ge=1, le=100)
    timeout_seconds: float = Field(default=2.0, gt=0, le=60)
    max_hops: int = Field(default=30, ge=1, le=64)
    multipath: bool = False
    path_mode: PathMode = PathMode.ALWAYS
    mtu: bool = False
    """Run the MTU probe even when no transfer stalled (it always runs when one does)."""
    source_port: int = Field(default=0, ge=0, le=65535)
    thresholds: Thresholds = Field(default_factory=Thresholds)
    http: HttpOptions = Field(default_factory=HttpOptions)
    ca_file: str | None = None  # extra CA bundle for HTTPS verification
    ca_pem: str | None = Field(default=None, max_length=MAX_CA_PEM)
    """Extra CA certificates (PEM) for HTTPS verification: the check's spec.http.caBundle."""
    endpoints: list[EndpointTarget] = Field(default_factory=list, max_length=MAX_ENDPOINTS)
    """A Service's backends to probe directly, each beside the host (its ClusterIP)."""

    @field_validator("uri")
    @classmethod
    def _uri_names_a_host_and_port(cls, uri: str | None) -> str | None:
        """A URI that names no host or a bad port is refused here, where the field can be
        named, rather than failing the probe that would read it (`target_of`)."""
        if uri is None:
            return None
        try:
            parts = urlsplit(uri)
            port = parts.port  # ValueError: out of range or not ASCII digits
        except ValueError as exc:
            raise ValueError(f"not a URL: {exc}") from None
        if parts.scheme.lower() not in ("http", "https"):
            raise ValueError("scheme must be http or https")
        if not parts.hostname:
            raise ValueError("no host")
        if port == 0:  # urlsplit reads :0 as a port, then `or` would turn it into 80
            raise ValueError("port must be 1-65535")
        return uri
