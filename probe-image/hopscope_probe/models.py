"""The probe's request and result schema.

`ProbeResult` is exactly the shape the operator writes into `ConnectivityCheck.status`, so the
CRD's status schema is generated from these models: camelCase aliases, enums as string
literals, no free-form dicts (evidence is a list of key/value pairs).
"""

from __future__ import annotations

from enum import StrEnum
from typing import Annotated

from pydantic import BaseModel, ConfigDict, Field
from pydantic.alias_generators import to_camel


class Schema(BaseModel):
    """Base for every model: camelCase on the wire, snake_case in Python."""

    model_config = ConfigDict(alias_generator=to_camel, populate_by_name=True, extra="forbid")

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
    min_ms: float = Field(ge=0)
    avg_ms: float = Field(ge=0)
    max_ms: float = Field(ge=0)

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
    key: str
    value: str


class Issue(Schema):
    type: IssueType
    severity: Severity
    origin: Origin
    hop_id: str | None = None
    message: str
    hint: str
    context: list[ContextItem] = Field(default_factory=list)


class Hop(Schema):
    id: str
    type: HopType
    address: str | None = None  # None: a hop that never answered ("*")
    name: str | None = None
    ttl: int | None = Field(default=None, ge=0)
    next_hop_ids: list[str] = Field(default_factory=list)
    latency: Latency | None = None
    probes_sent: int = Field(default=0, ge=0)
    probes_failed: int = Field(default=0, ge=0)
    issues: list[Issue] = Field(default_factory=list)


class SourceInfo(Schema):
    address: str | None = None
    node: str | None = None
    pod: str | None = None


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


class ProbeResult(Schema):
    connection_status: ConnectionStatus
    protocol: Protocol
    source: SourceInfo = Field(default_factory=SourceInfo)
    destination: DestinationInfo
    latency: Latency | None = None
    probes_sent: int = Field(default=0, ge=0)
    probes_failed: int = Field(default=0, ge=0)
    hops: list[Hop] = Field(default_factory=list)
    issues: list[Issue] = Field(default_factory=list)
    path_fingerprint: str | None = None
    http: HttpSummary | None = None
    dns_answers: dict[str, int] | None = None  # a DNS check: queries per answer (NXDOMAIN: 8)
    started_at: str | None = None  # RFC 3339
    duration_ms: float | None = None


# ---- request -------------------------------------------------------------------------------


class Thresholds(Schema):
    latency_ms: float = Field(default=200.0, gt=0)
    loss_percent: float = Field(default=5.0, ge=0, le=100)


# Bounded so that one check, whatever its headers, fits a probe pod's batch (plan.py): visible
# ASCII only, so a character is at most two bytes of JSON, and no CR/LF can add a header.
MAX_HEADERS, MAX_HEADER_NAME, MAX_HEADER_VALUE = 16, 256, 2048
HEADER_NAME = r"^[!#$%&'*+.^_`|~0-9A-Za-z-]+$"  # an HTTP token
HEADER_VALUE = r"^[\t\x20-\x7e]*$"


class HttpHeader(Schema):
    name: str = Field(min_length=1, max_length=MAX_HEADER_NAME, pattern=HEADER_NAME)
    value: str = Field(max_length=MAX_HEADER_VALUE, pattern=HEADER_VALUE)


# An HTTP status code (200) or class (2xx), as the status check reads them.
StatusCode = Annotated[str, Field(pattern=r"^[1-5]([0-9]{2}|[xX]{2})$")]


class HttpOptions(Schema):
    method: str = Field(default="GET", pattern=r"^(GET|HEAD|POST|PUT|DELETE|OPTIONS|PATCH)$")
    headers: list[HttpHeader] = Field(default_factory=list, max_length=MAX_HEADERS)
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
    source_port: int = Field(default=0, ge=0, le=65535)
    thresholds: Thresholds = Field(default_factory=Thresholds)
    http: HttpOptions = Field(default_factory=HttpOptions)
    ca_file: str | None = None  # extra CA bundle for HTTPS verification
