"""The ConnectivityCheck API (`hopscope.dev/v1alpha1`): spec and status as pydantic models.

These models are the single source of the CRD (`install/crd.py` generates it) and what the operator
parses every body into. Each cross-field invariant is a `Rule`: its CEL goes into the CRD so the
API server rejects a bad spec, and the model's validator raises the same message, so the operator
reports an old or unvalidated object the same way.

About 580 lines, most of them field descriptions (every CRD field has one, for `kubectl
explain`): spec and status are one schema, and splitting them would split the CRD's source.
"""

from __future__ import annotations

import ipaddress
import re
from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum
from typing import Annotated, Any, ClassVar, Literal, Self, get_args
from urllib.parse import urlsplit

from pydantic import AfterValidator, ConfigDict, Field, WithJsonSchema, model_validator
from pydantic.json_schema import JsonDict, JsonValue

from hopscope_probe.models import (
    ConnectionStatus,
    DestinationInfo,
    HttpOptions,
    IPVersion,
    Issue,
    PathMode,
    ProbeResult,
    Protocol,
    RunFindings,
    Schema,
    SourceInfo,
    Thresholds,
)

ApiVersion = Literal["hopscope.dev/v1alpha1"]
API_VERSION: str = get_args(ApiVersion)[0]
GROUP, VERSION = API_VERSION.split("/")
Kind = Literal["ConnectivityCheck"]
KIND: str = get_args(Kind)[0]
ClusterKind = Literal["ClusterConnectivityCheck"]
CLUSTER_KIND: str = get_args(ClusterKind)[0]

# Kubernetes name syntax (RFC 1123), so a typo fails at apply time, not at resolve time.
DNS_LABEL = r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$"
DNS_SUBDOMAIN = r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$"
# Any DNS name, trailing dot allowed; underscores for names like _sip._tcp.example.com.
_HOST_LABEL = r"[A-Za-z0-9_]([-A-Za-z0-9_]*[A-Za-z0-9_])?"
HOSTNAME = rf"^({_HOST_LABEL}\.)*{_HOST_LABEL}\.?$"
# A namespace's name: an RFC 1123 label.
NamespaceName = Annotated[str, Field(max_length=63, pattern=DNS_LABEL)]
HTTP_URI = r"^https?://[^\s/?#]+[^\s]*$"


@dataclass(frozen=True)
class Rule:
    """One invariant: CEL for the API server, `message` for both it and the model."""

    cel: str
    message: str
    field_path: str | None = None  # where the API server reports it, relative to the node
    reason: str | None = None  # FieldValueRequired / FieldValueForbidden / …

    def as_schema(self) -> JsonDict:
        rule: JsonDict = {"rule": self.cel, "message": self.message}
        if self.field_path:
            rule["fieldPath"] = self.field_path
        if self.reason:
            rule["reason"] = self.reason
        return rule


def validations(*rules: Rule) -> JsonDict:
    """`json_schema_extra` that puts rules on the model's node of the CRD schema."""
    schemas: list[JsonValue] = [rule.as_schema() for rule in rules]
    return {"x-kubernetes-validations": schemas}


def exactly_one(owner: str, fields: tuple[str, ...]) -> Rule:
    present = ", ".join(f"has(self.{name})" for name in fields)
    named = ", ".join(f"{owner}.{name}" for name in fields)
    return Rule(f"[{present}].filter(x, x).size() == 1", f"set exactly one of {named}")


def cel_list(values: tuple[str, ...]) -> str:
    return "[" + ", ".join(f"'{value}'" for value in values) + "]"


def count_set(model: Schema, fields: tuple[str, ...]) -> int:
    present = model.model_dump(by_alias=True, exclude_none=True)
    return sum(name in present for name in fields)


class ApiSchema(Schema):
    """Attribute docstrings become the CRD's descriptions (what `kubectl explain` shows)."""

    model_config = ConfigDict(use_attribute_docstrings=True)


# ---- spec: source -------------------------------------------------------------------------


class ObjectRef(ApiSchema):
    """A namespaced object by name."""

    name: str = Field(max_length=253, pattern=DNS_SUBDOMAIN)
    """The object's name."""
    namespace: str | None = Field(default=None, max_length=63, pattern=DNS_LABEL)
    """Defaults to the check's namespace."""


class NodeRef(ApiSchema):
    """A node by name."""

    name: str = Field(max_length=253, pattern=DNS_SUBDOMAIN)
    """The node's name."""


class SelectorOperator(StrEnum):
    IN = "In"
    NOT_IN = "NotIn"
    EXISTS = "Exists"
    DOES_NOT_EXIST = "DoesNotExist"


VALUES_FIT_OPERATOR = Rule(
    "self.operator in ['In', 'NotIn'] ? (has(self.values) && size(self.values) > 0)"
    " : (!has(self.values) || size(self.values) == 0)",
    "matchExpressions[].values must be set for In and NotIn, and empty for Exists and DoesNotExist",
    field_path=".values",
)


# Kubernetes' label syntax (IsQualifiedName for keys, IsValidLabelValue for values), so a
# selector the API server would answer with 400 is refused at apply time, and the operator never
# sends one. `[.]`, not `\.`: the key pattern also goes into a CEL string literal.
_LABEL_NAME = r"[A-Za-z0-9]([-A-Za-z0-9_.]{0,61}[A-Za-z0-9])?"
_LABEL_PREFIX = r"[a-z0-9]([-a-z0-9]*[a-z0-9])?([.][a-z0-9]([-a-z0-9]*[a-z0-9])?)*"
LABEL_KEY = rf"^({_LABEL_PREFIX}/)?{_LABEL_NAME}$"
LABEL_VALUE = r"^(([A-Za-z0-9][-A-Za-z0-9_.]{0,61})?[A-Za-z0-9])?$"
MAX_LABEL_PREFIX, MAX_LABEL_NAME = 253, 63
MAX_LABEL_KEY = MAX_LABEL_PREFIX + 1 + MAX_LABEL_NAME
# The prefix's 253 is a length no regex of the key can bound: a rule of its own.
_LONG_PREFIX = rf"^[^/]{{{MAX_LABEL_PREFIX + 1}}}"
# Few enough that a selector stays a short query and its CEL stays cheap to estimate.
MAX_MATCH_LABELS, MAX_MATCH_EXPRESSIONS, MAX_SELECTOR_VALUES = 32, 16, 32

PREFIX_FITS = Rule(
    f"!self.matches('{_LONG_PREFIX}')", "a label key's prefix must be at most 253 characters"
)
LABEL_KEYS = Rule(
    f"self.all(k, k.matches('{LABEL_KEY}') && !k.matches('{_LONG_PREFIX}'))",
    "matchLabels keys must be label keys: an optional DNS-subdomain prefix (at most 253) and"
    " '/', then a name of at most 63 of A-Z a-z 0-9 - _ . beginning and ending alphanumeric",
)


def check_label_key(value: str) -> str:
    """`value` if it is a label key the API server accepts, else ValueError naming it."""
    # Length first: the regex backtracks, and an unvalidated stored key may be megabytes.
    too_long = len(value) > MAX_LABEL_KEY
    if too_long or not re.fullmatch(LABEL_KEY, value) or re.match(_LONG_PREFIX, value):
        raise ValueError(f"{value[:80]!r}: {LABEL_KEYS.message}")
    return value


def check_label_value(value: str) -> str:
    """`value` if it is a label value the API server accepts, else ValueError naming it."""
    if len(value) > MAX_LABEL_NAME or not re.fullmatch(LABEL_VALUE, value):
        raise ValueError(
            f"{value[:80]!r}: a label value is at most 63 of A-Z a-z 0-9 - _ . beginning and"
            " ending alphanumeric"
        )
    return value


def _label_keys(labels: dict[str, str]) -> dict[str, str]:
    for key in labels:
        check_label_key(key)
    return labels


LabelKey = Annotated[
    str,
    AfterValidator(check_label_key),
    WithJsonSchema(
        {
            "type": "string",
            "minLength": 1,
            "maxLength": MAX_LABEL_KEY,
            "pattern": LABEL_KEY,
            **validations(PREFIX_FITS),
        }
    ),
]
LabelValue = Annotated[str, Field(max_length=MAX_LABEL_NAME, pattern=LABEL_VALUE)]


class SelectorRequirement(ApiSchema):
    model_config = ConfigDict(json_schema_extra=validations(VALUES_FIT_OPERATOR))

    key: LabelKey
    """The label's key."""
    operator: SelectorOperator
    """In, NotIn, Exists or DoesNotExist."""
    values: list[LabelValue] = Field(default_factory=list, max_length=MAX_SELECTOR_VALUES)
    """The label values for In and NotIn; empty for Exists and DoesNotExist."""

    @model_validator(mode="after")
    def _values_fit_operator(self) -> Self:
        needs_values = self.operator in (SelectorOperator.IN, SelectorOperator.NOT_IN)
        if needs_values != bool(self.values):
            raise ValueError(VALUES_FIT_OPERATOR.message)
        return self


NON_EMPTY_SELECTOR = Rule(
    "(has(self.matchLabels) && size(self.matchLabels) > 0)"
    " || (has(self.matchExpressions) && size(self.matchExpressions) > 0)",
    "source.podSelector must set matchLabels or matchExpressions (empty would match any pod)",
)


class LabelSelector(ApiSchema):
    model_config = ConfigDict(json_schema_extra=validations(NON_EMPTY_SELECTOR))

    match_labels: Annotated[dict[str, LabelValue], AfterValidator(_label_keys)] = Field(
        default_factory=dict,
        max_length=MAX_MATCH_LABELS,
        json_schema_extra=validations(LABEL_KEYS),
    )
    """Labels a pod must carry, each with this value."""
    match_expressions: list[SelectorRequirement] = Field(
        default_factory=list, max_length=MAX_MATCH_EXPRESSIONS
    )
    """Label requirements a pod must meet, all of them."""

    @model_validator(mode="after")
    def _not_empty(self) -> Self:
        if not self.match_labels and not self.match_expressions:
            raise ValueError(NON_EMPTY_SELECTOR.message)
        return self


class WorkloadKind(StrEnum):
    DEPLOYMENT = "Deployment"
    STATEFUL_SET = "StatefulSet"
    DAEMON_SET = "DaemonSet"


class WorkloadRef(ApiSchema):
    """A Deployment, StatefulSet or DaemonSet by name."""

    kind: WorkloadKind
    """Deployment, StatefulSet or DaemonSet."""
    name: str = Field(max_length=253, pattern=DNS_SUBDOMAIN)
    """The workload's name."""
    namespace: str | None = Field(default=None, max_length=63, pattern=DNS_LABEL)
    """Defaults to the check's namespace."""


SOURCE_KINDS = ("pod", "podSelector", "node", "workload")
ONE_SOURCE = exactly_one("source", SOURCE_KINDS)


class Source(ApiSchema):
    """Where the connection starts: exactly one of pod, podSelector, node, workload."""

    model_config = ConfigDict(json_schema_extra=validations(ONE_SOURCE))

    pod: ObjectRef | None = None
    """The pod's network namespace (another namespace: ClusterConnectivityCheck or tenancy.*)."""
    pod_selector: LabelSelector | None = None
    """One Ready pod is picked (the status says which)."""
    node: NodeRef | None = None
    """The host's network: a ClusterConnectivityCheck, or tenancy.allowNodeSources."""
    workload: WorkloadRef | None = None
    """A gateway or bastion, probed through its hopscope sidecar (another namespace: see pod)."""

    @model_validator(mode="after")
    def _one_kind(self) -> Self:
        if count_set(self, SOURCE_KINDS) != 1:
            raise ValueError(ONE_SOURCE.message)
        return self


# ---- spec: destination --------------------------------------------------------------------


# An IPv4 or IPv6 address as Kubernetes' isIP() reads one: no leading zeros in IPv4, no IPv6
# zone. One CEL rule rather than an anyOf of the ipv4 and ipv6 formats, whose failure the API
# server reports a second time at path <nil>; and a regex rather than isIP(), which CRD rules
# may use only from Kubernetes 1.31 (the chart's floor is older). RE2 and Python agree on it.
_OCTET = "(25[0-5]|2[0-4][0-9]|1[0-9][0-9]|[1-9]?[0-9])"
_IPV4 = rf"{_OCTET}([.]{_OCTET}){{3}}"
_H16 = "[0-9A-Fa-f]{1,4}"
_LS32 = f"({_H16}:{_H16}|{_IPV4})"
_IPV6 = "|".join(
    [
        f"({_H16}:){{6}}{_LS32}",
        f"::({_H16}:){{5}}{_LS32}",
        f"({_H16})?::({_H16}:){{4}}{_LS32}",
        f"(({_H16}:){{0,1}}{_H16})?::({_H16}:){{3}}{_LS32}",
        f"(({_H16}:){{0,2}}{_H16})?::({_H16}:){{2}}{_LS32}",
        f"(({_H16}:){{0,3}}{_H16})?::{_H16}:{_LS32}",
        f"(({_H16}:){{0,4}}{_H16})?::{_LS32}",
        f"(({_H16}:){{0,5}}{_H16})?::{_H16}",
        f"(({_H16}:){{0,6}}{_H16})?::",
    ]
)
IP_PATTERN = f"^({_IPV4}|{_IPV6})$"
IP_ADDRESS = Rule(f"self.matches('{IP_PATTERN}')", "must be an IPv4 or IPv6 address")
MAX_IP_LENGTH = 45  # the longest text form: an IPv4-mapped IPv6 address written out in full


def _ip_address(value: str) -> str:
    if "%" in value:  # ipaddress accepts an IPv6 zone ("fe80::1%eth0"); Kubernetes does not
        raise ValueError(IP_ADDRESS.message)
    try:
        ipaddress.ip_address(value)
    except ValueError:
        raise ValueError(IP_ADDRESS.message) from None
    return value


IPAddress = Annotated[
    str,
    AfterValidator(_ip_address),
    WithJsonSchema({"type": "string", "maxLength": MAX_IP_LENGTH, **validations(IP_ADDRESS)}),
]


def _usable_uri(value: str) -> str:
    """What the CRD's pattern lets through but a URL parser refuses ("http://[::1/", a port
    of 0 or 99999, no host) is refused here, naming the field, rather than in every tick."""
    try:
        parts = urlsplit(value)
        port = parts.port
    except ValueError as exc:
        raise ValueError(f"not a usable URL: {exc}") from None
    if not parts.hostname:
        raise ValueError("not a usable URL: no host")
    if port == 0:
        raise ValueError("not a usable URL: port 0")
    return value


HttpUri = Annotated[str, Field(max_length=2048, pattern=HTTP_URI), AfterValidator(_usable_uri)]

DESTINATION_KINDS = ("pod", "service", "node", "fqdn", "uri", "ip")
ONE_DESTINATION = exactly_one("destination", DESTINATION_KINDS)


class Destination(ApiSchema):
    """Where the connection goes: exactly one of pod, service, node, fqdn, uri, ip; plus port."""

    model_config = ConfigDict(json_schema_extra=validations(ONE_DESTINATION))

    pod: ObjectRef | None = None
    """Probed at its pod IP."""
    service: ObjectRef | None = None
    """Probed at its ClusterIP (headless: at its pods); port by number."""
    node: NodeRef | None = None
    """Probed at its InternalIP."""
    fqdn: str | None = Field(default=None, max_length=253, pattern=HOSTNAME)
    """A DNS name, resolved by the probe from the source (its resolv.conf)."""
    uri: HttpUri | None = None
    """HTTP or HTTPS URL; host and port come from it."""
    ip: IPAddress | None = None
    """An IPv4 or IPv6 address."""
    port: int | None = Field(default=None, ge=1, le=65535)
    """Required for TCP, UDP, HTTP and HTTPS unless a uri implies it."""

    @model_validator(mode="after")
    def _one_kind(self) -> Self:
        if count_set(self, DESTINATION_KINDS) != 1:
            raise ValueError(ONE_DESTINATION.message)
        return self


# ---- spec ---------------------------------------------------------------------------------


class Probes(ApiSchema):
    """The connection probes of one run."""

    count: int = Field(default=10, ge=1, le=100)
    """Connection probes per run."""
    timeout_seconds: float = Field(default=2.0, gt=0, le=60)
    """How long one probe waits for an answer."""


class PathOptions(ApiSchema):
    """Hop-by-hop path discovery."""

    mode: PathMode = PathMode.ALWAYS
    """Always, OnFailure (trace only when the connection probes fail) or Never."""
    max_hops: int = Field(default=30, ge=1, le=64)
    """The highest TTL the path discovery tries."""
    multipath: bool = False
    """Vary the flow to find every path through ECMP load balancers."""
    # No schema default: checks stored before the field existed read the same from the API
    # server (a default would add it to every object served, and to what GitOps diffs see).
    mtu: bool | None = None
    """Probe the path MTU every run (it runs by itself when a transfer stalls). Unset: false."""


# A ConfigMap key's syntax (Kubernetes' IsConfigMapKey).
CONFIG_MAP_KEY = r"^[-._a-zA-Z0-9]+$"


class ConfigMapKeyRef(ApiSchema):
    """A key of a ConfigMap in the check's own namespace."""

    name: str = Field(max_length=253, pattern=DNS_SUBDOMAIN)
    """The ConfigMap's name."""
    key: str = Field(max_length=253, pattern=CONFIG_MAP_KEY)
    """The key whose value is used, e.g. ca.crt."""


class CABundle(ApiSchema):
    """Where the CA certificates come from."""

    config_map_key_ref: ConfigMapKeyRef
    """A ConfigMap key (in data, not binaryData) holding PEM certificates."""


class HttpSpec(HttpOptions):
    """Request options for HTTP and HTTPS, and the CAs HTTPS trusts."""

    ca_bundle: CABundle | None = None
    """HTTPS only: CAs (PEM, at most 32 KiB) trusted besides the system's, e.g. a private CA."""


# A week: rarer than that is a one-off check re-applied; and a next run stays a date.
MAX_INTERVAL_SECONDS = 7 * 24 * 3600


class ScheduleOptions(ApiSchema):
    """When the check runs again."""

    interval_seconds: int = Field(ge=10, le=MAX_INTERVAL_SECONDS)
    """Seconds between runs, at most a week."""


PORT_PROTOCOLS = (Protocol.TCP, Protocol.UDP, Protocol.HTTP, Protocol.HTTPS)
URI_PROTOCOLS = (Protocol.HTTP, Protocol.HTTPS)

PORT_REQUIRED = Rule(
    "!has(self.destination) || has(self.destination.port) || has(self.destination.uri)"
    f" || !(self.protocol in {cel_list(PORT_PROTOCOLS)})",
    "destination.port is required when protocol is TCP, UDP, HTTP or HTTPS without a"
    " destination.uri",
    field_path=".destination.port",
    reason="FieldValueRequired",
)
CA_NEEDS_HTTPS = Rule(
    "!has(self.http) || !has(self.http.caBundle) || self.protocol == 'HTTPS'",
    "http.caBundle needs protocol HTTPS",
    field_path=".http.caBundle",
    reason="FieldValueForbidden",
)
URI_NEEDS_HTTP = Rule(
    "!has(self.destination) || !has(self.destination.uri)"
    f" || self.protocol in {cel_list(URI_PROTOCOLS)}",
    "destination.uri needs protocol HTTP or HTTPS",
    field_path=".destination.uri",
    reason="FieldValueForbidden",
)


class ConnectivityCheckSpec(ApiSchema):
    """What to check: a source, a destination and how to probe between them."""

    model_config = ConfigDict(
        json_schema_extra=validations(PORT_REQUIRED, URI_NEEDS_HTTP, CA_NEEDS_HTTPS)
    )

    source: Source
    destination: Destination
    protocol: Protocol = Protocol.TCP
    """TCP, UDP, ICMP, HTTP, HTTPS or DNS."""
    preferred_ip_version: IPVersion = Field(default=IPVersion.IPV4, alias="preferredIPVersion")
    """Which address family to use where the destination has both."""
    probes: Probes = Field(default_factory=Probes)
    """How many connection probes, and how long each waits."""
    path: PathOptions = Field(default_factory=PathOptions)
    """Hop-by-hop path discovery."""
    http: HttpSpec | None = None
    """Request options for HTTP and HTTPS."""
    source_port: int = Field(default=0, ge=0, le=65535)
    """0: any."""
    thresholds: Thresholds = Field(default_factory=Thresholds)
    """Above them a reachable destination is Degraded."""
    schedule: ScheduleOptions | None = None
    """Absent: the check runs once per spec change."""

    @model_validator(mode="after")
    def _protocol_fits_destination(self) -> Self:
        target = self.destination
        if target.uri is not None and self.protocol not in URI_PROTOCOLS:
            raise ValueError(URI_NEEDS_HTTP.message)
        if target.port is None and target.uri is None and self.protocol in PORT_PROTOCOLS:
            raise ValueError(PORT_REQUIRED.message)
        if self.http and self.http.ca_bundle and self.protocol != Protocol.HTTPS:
            raise ValueError(CA_NEEDS_HTTPS.message)
        return self


# A namespaced check's references default to its own namespace, and its podSelector and
# caBundle look there; a cluster-scoped check has none: it names each namespace, or cannot ask.
EXPLICIT_NAMESPACES = ("source.pod", "source.workload", "destination.pod", "destination.service")
NAMESPACED_ONLY = ("source.podSelector", "http.caBundle")


def _has(path: str) -> str:
    """CEL: every step of `path` is set (has() tests one field, not a chain)."""
    parts = path.split(".")
    return " && ".join(f"has(self.{'.'.join(parts[: i + 1])})" for i in range(len(parts)))


CLUSTER_RULES = tuple(
    Rule(
        f"!({_has(path)}) || has(self.{path}.namespace)",
        f"{path}.namespace is required in a {CLUSTER_KIND}, which has no namespace of its own",
        field_path=f".{path}.namespace",
        reason="FieldValueRequired",
    )
    for path in EXPLICIT_NAMESPACES
) + tuple(
    Rule(
        f"!({_has(path)})",
        f"{path} looks in the check's own namespace: use a namespaced ConnectivityCheck",
        field_path=f".{path}",
        reason="FieldValueForbidden",
    )
    for path in NAMESPACED_ONLY
)


def _lookup(tree: dict[str, Any], path: str) -> Any:
    for part in path.split("."):
        tree = tree.get(part) if isinstance(tree, dict) else None  # type: ignore[assignment]
    return tree


class ClusterConnectivityCheckSpec(ConnectivityCheckSpec):
    """What to check, every namespace named: a ClusterConnectivityCheck has none to default to."""

    model_config = ConfigDict(
        json_schema_extra=validations(PORT_REQUIRED, URI_NEEDS_HTTP, CA_NEEDS_HTTPS, *CLUSTER_RULES)
    )

    @model_validator(mode="after")
    def _namespaces_named(self) -> Self:
        spec = self.model_dump(by_alias=True, exclude_none=True)
        for path, rule in zip(EXPLICIT_NAMESPACES + NAMESPACED_ONLY, CLUSTER_RULES, strict=True):
            ref = _lookup(spec, path)
            if ref is not None and (path in NAMESPACED_ONLY or "namespace" not in ref):
                raise ValueError(rule.message)
        return self


# ---- status -------------------------------------------------------------------------------


class Phase(StrEnum):
    PENDING = "Pending"
    RUNNING = "Running"
    COMPLETED = "Completed"
    FAILED = "Failed"


class AnalysisResult(StrEnum):
    ALLOWED = "Allowed"  # nothing in the cluster's configuration stands in the way
    BLOCKED = "Blocked"  # something does; the issues say what
    UNKNOWN = "Unknown"  # the configuration could not be read


class Analysis(ApiSchema):
    """What static analysis of the cluster's configuration concluded."""

    result: AnalysisResult
    """Allowed, Blocked (the issues say by what) or Unknown (configuration unreadable)."""
    issues: list[Issue] = Field(default_factory=list)
    """What in the configuration stands in the way (a NetworkPolicy, no endpoints …)."""


class DestinationStatus(ApiSchema):
    """The destination as the last run resolved it."""

    addresses: list[str] = Field(default_factory=list)
    """What the destination resolved to."""


class ConditionType(StrEnum):
    READY = "Ready"
    REACHABLE = "Reachable"
    # kstatus' abnormal-true pair: present only while True, so Flux and kstatus read a check
    # with a run under way as InProgress and one that cannot run as Failed.
    RECONCILING = "Reconciling"
    STALLED = "Stalled"


class ConditionStatus(StrEnum):
    TRUE = "True"
    FALSE = "False"
    UNKNOWN = "Unknown"


class Condition(ApiSchema):
    """A metav1.Condition."""

    type: ConditionType
    """Ready (the check can run) or Reachable (the last run's verdict)."""
    status: ConditionStatus
    """True, False or Unknown."""
    reason: str = Field(max_length=1024, pattern=r"^[A-Za-z]([A-Za-z0-9_,:]*[A-Za-z0-9_])?$")
    """Why, in CamelCase (e.g. SourceNotFound)."""
    message: str = Field(default="", max_length=32768)
    """Why, for a person: what is wrong and what to do."""
    last_transition_time: datetime
    """When the status last changed."""
    observed_generation: int | None = Field(default=None, ge=0)
    """The spec's metadata.generation the condition describes."""


# Latency, probes, hops, issues and path fingerprint are the result's own fields (`RunFindings`,
# declared once in the probe's models; the CRD lists them first); `as_result` is the way back.
class ConnectivityCheckStatus(RunFindings, ApiSchema):
    """The last run's diagnosis, written by the operator."""

    phase: Phase | None = None
    """Pending, Running, Completed or Failed."""
    connection_status: ConnectionStatus | None = None
    """Reachable, Unreachable, Degraded (over a threshold) or Unknown (could not run)."""
    observed_generation: int | None = Field(default=None, ge=0)
    """The spec's metadata.generation the last run checked."""
    runs: int = Field(default=0, ge=0)
    """Runs so far."""
    last_run_time: datetime | None = None
    """When the last run's result came in."""
    next_run_time: datetime | None = None
    """When the next run is due (scheduled checks, and retries of one that cannot run)."""
    source: SourceInfo | None = None
    """The pod, node and address the last run started from."""
    destination: DestinationStatus | None = None
    """The destination as the last run resolved it."""
    hop_count: int = Field(default=0, ge=0)
    """len(hops), for the HOPS column: a printer column's JSONPath cannot count."""
    issue_count: int = Field(default=0, ge=0)
    """len(issues), for the ISSUES column."""
    analysis: Analysis | None = None
    """What the cluster's configuration (NetworkPolicies, Services, DNS) says of the flow."""
    conditions: list[Condition] = Field(
        default_factory=list,
        json_schema_extra={"x-kubernetes-list-type": "map", "x-kubernetes-list-map-keys": ["type"]},
    )
    """Ready and Reachable, each with its reason."""

    @model_validator(mode="after")
    def _count(self) -> Self:
        # Derived, so no writer can let the printer columns drift from the lists.
        self.hop_count = len(self.hops)
        self.issue_count = len(self.issues)
        return self

    def as_result(self, protocol: Protocol, host: str, port: int | None = None) -> ProbeResult:
        """The last run in the probe's result model (`hopscope probe` renders it, metrics
        record it); `host` and `port` name the destination, which the status does not."""
        addresses = self.destination.addresses if self.destination else []
        return ProbeResult(
            connection_status=self.connection_status or ConnectionStatus.UNKNOWN,
            protocol=protocol,
            source=self.source or SourceInfo(),
            destination=DestinationInfo(host=host, port=port, addresses=addresses),
            **self.findings(),
        )


# ---- the resource -------------------------------------------------------------------------


@dataclass(frozen=True)
class PrinterColumn:
    name: str
    type: str
    json_path: str
    description: str


class ConnectivityCheck(ApiSchema):
    """A whole ConnectivityCheck as the API server serves it (kopf's `body`)."""

    plural: ClassVar[str] = "connectivitychecks"
    short_names: ClassVar[tuple[str, ...]] = ("ccheck",)
    scope: ClassVar[str] = "Namespaced"
    categories: ClassVar[tuple[str, ...]] = ("hopscope",)
    printer_columns: ClassVar[tuple[PrinterColumn, ...]] = (
        PrinterColumn("Status", "string", ".status.connectionStatus", "Connection status"),
        PrinterColumn("Latency", "number", ".status.latency.avgMs", "Average latency in ms"),
        PrinterColumn("Hops", "integer", ".status.hopCount", "Hops on the discovered paths"),
        PrinterColumn("Issues", "integer", ".status.issueCount", "Issues found"),
        PrinterColumn("Last Run", "date", ".status.lastRunTime", "When the check last ran"),
        PrinterColumn("Age", "date", ".metadata.creationTimestamp", "Age of the check"),
    )

    api_version: ApiVersion
    kind: Kind
    metadata: dict[str, Any] = Field(default_factory=dict)
    spec: ConnectivityCheckSpec
    status: ConnectivityCheckStatus | None = None

    @property
    def namespace(self) -> str:
        """The check's namespace; "" for a ClusterConnectivityCheck."""
        return str(self.metadata.get("namespace") or "")


class ClusterConnectivityCheck(ConnectivityCheck):
    """A cluster-scoped check: any source, node or namespace, for whom the cluster grants it
    (the chart's hopscope-operator-cluster-checks-admin ClusterRole, aggregated nowhere)."""

    plural: ClassVar[str] = "clusterconnectivitychecks"
    short_names: ClassVar[tuple[str, ...]] = ("ccc",)
    scope: ClassVar[str] = "Cluster"

    kind: ClusterKind  # type: ignore[assignment]
    spec: ClusterConnectivityCheckSpec
