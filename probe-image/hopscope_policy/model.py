"""The pieces of Pods, Namespaces and NetworkPolicies that decide a verdict, parsed from JSON.

Input is plain Kubernetes JSON (what the API server returns, or a manifest loaded from YAML).
Every parse error is a `FieldError` naming the field path, e.g.
`spec.ingress[0].from[1].ipBlock.cidr`, so callers can add the file and document. Inside a
NetworkPolicy's spec unknown fields are errors: a typo such as `matchLabel` would otherwise turn a
selector into the empty one, which selects everything.

About 530 lines: one parser per piece of the NetworkPolicy grammar, kept together so that every
field path is spelled by one module; the evaluation that reads them is `evaluate`.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from enum import StrEnum
from ipaddress import IPv4Address, IPv4Network, IPv6Address, IPv6Network, ip_address, ip_network
from typing import Any, Literal

from hopscope_policy.selectors import Operator, Requirement, Selector

IPAddress = IPv4Address | IPv6Address
IPNetwork = IPv4Network | IPv6Network
JSON = Mapping[str, Any]

# Set by the API server on every namespace (1.21+), so policies may select namespaces by name.
NAMESPACE_NAME_LABEL = "kubernetes.io/metadata.name"
DEFAULT_NAMESPACE = "default"
# IANA service name: what a named container port must look like.
PORT_NAME = re.compile(r"^(?=.*[a-z])(?!.*--)[a-z0-9]([a-z0-9-]{0,13}[a-z0-9])?$")
# Where each workload kind keeps its pod template (manifests reviewed before anything runs).
POD_TEMPLATES: dict[str, tuple[str, ...]] = {
    "Deployment": ("spec", "template"),
    "StatefulSet": ("spec", "template"),
    "DaemonSet": ("spec", "template"),
    "ReplicaSet": ("spec", "template"),
    "ReplicationController": ("spec", "template"),
    "Job": ("spec", "template"),
    "CronJob": ("spec", "jobTemplate", "spec", "template"),
}


class FieldError(ValueError):
    """A field of an object is missing or malformed; `field` is its path in the object."""

    def __init__(self, field: str, problem: str) -> None:
        super().__init__(f"{field}: {problem}")
        self.field = field
        self.problem = problem


class L4Protocol(StrEnum):
    TCP = "TCP"
    UDP = "UDP"
    SCTP = "SCTP"


class Direction(StrEnum):
    INGRESS = "Ingress"
    EGRESS = "Egress"

    @property
    def field(self) -> str:
        return self.value.lower()

    @property
    def peers_field(self) -> str:
        return "from" if self is Direction.INGRESS else "to"


@dataclass(frozen=True, slots=True)
class PodRef:
    namespace: str
    name: str

    def __str__(self) -> str:
        return f"{self.namespace}/{self.name}"

    @classmethod
    def parse(cls, text: str) -> PodRef:
        namespace, sep, name = text.partition("/")
        if not sep or not namespace or not name or "/" in name:
            raise ValueError(f"{text!r}: expected NAMESPACE/POD")
        return cls(namespace, name)


ICMP: Literal["ICMP"] = "ICMP"  # no L4Protocol (a policy cannot name it): a flow's only
FlowProtocol = L4Protocol | Literal["ICMP"]


@dataclass(frozen=True, slots=True)
class Flow:
    source: PodRef | IPAddress
    destination: PodRef | IPAddress
    port: int  # 0 for ICMP
    protocol: FlowProtocol = L4Protocol.TCP

    @property
    def service(self) -> str:
        """What the flow asks for: "TCP/5432", or "ICMP"."""
        return ICMP if self.protocol == ICMP else f"{self.protocol}/{self.port}"

    def __str__(self) -> str:
        return f"{self.source} -> {self.destination} {self.service}"


@dataclass(frozen=True, slots=True)
class ContainerPort:
    number: int
    protocol: L4Protocol = L4Protocol.TCP
    name: str | None = None


@dataclass(frozen=True, slots=True, eq=False)
class Pod:
    ref: PodRef
    labels: Mapping[str, str] = field(default_factory=dict)
    ips: tuple[IPAddress, ...] = ()  # status.podIPs, primary first; empty before scheduling
    ports: tuple[ContainerPort, ...] = ()
    host_network: bool = False
    node: str | None = None
    host_ip: IPAddress | None = None

    def named_port(self, name: str, protocol: L4Protocol) -> int | None:
        for port in self.ports:
            if port.name == name and port.protocol == protocol:
                return port.number
        return None


@dataclass(frozen=True, slots=True, eq=False)
class Namespace:
    name: str
    labels: Mapping[str, str]


@dataclass(frozen=True, slots=True)
class IPBlock:
    cidr: IPNetwork
    excepts: tuple[IPNetwork, ...] = ()

    def contains(self, ip: IPAddress) -> bool:
        return ip in self.cidr and not any(ip in hole for hole in self.excepts)

    def __str__(self) -> str:
        holes = ", ".join(str(hole) for hole in self.excepts)
        return f"{self.cidr} except {holes}" if holes else str(self.cidr)


@dataclass(frozen=True, slots=True)
class Peer:
    """One `from`/`to` entry: selectors ANDed with each other, or an ipBlock alone."""

    pod_selector: Selector | None = None
    namespace_selector: Selector | None = None
    ip_block: IPBlock | None = None


@dataclass(frozen=True, slots=True)
class PortSpec:
    protocol: L4Protocol = L4Protocol.TCP
    port: int | str | None = None  # None: every port of the protocol; str: a named port
    end_port: int | None = None

    def __str__(self) -> str:
        if self.port is None:
            return f"{self.protocol}/any port"
        if self.end_port is not None:
            return f"{self.protocol}/{self.port}-{self.end_port}"
        return f"{self.protocol}/{self.port}"


@dataclass(frozen=True, slots=True)
class Rule:
    peers: tuple[Peer, ...] = ()  # empty (or absent) `from`/`to`: every peer
    ports: tuple[PortSpec, ...] = ()  # empty (or absent) `ports`: every port and protocol


@dataclass(frozen=True, slots=True, eq=False)
class Policy:
    namespace: str
    name: str
    pod_selector: Selector
    types: frozenset[Direction]
    ingress: tuple[Rule, ...] = ()
    egress: tuple[Rule, ...] = ()

    @property
    def key(self) -> str:
        return f"{self.namespace}/{self.name}"

    def rules(self, direction: Direction) -> tuple[Rule, ...]:
        return self.ingress if direction is Direction.INGRESS else self.egress


# --- plain-JSON readers: each names the field it rejects ---


def _describe(value: object) -> str:
    if isinstance(value, bool):
        return f"a boolean ({value})"
    if isinstance(value, int | float):
        return f"a number ({value})"
    if isinstance(value, str):
        return f"a string ({value!r})"
    if isinstance(value, list):
        return "a list"
    if isinstance(value, Mapping):
        return "a mapping"
    return "null" if value is None else type(value).__name__


def _path(parent: str, key: str | int) -> str:
    if isinstance(key, int):
        return f"{parent}[{key}]"
    return f"{parent}.{key}" if parent else key


def _mapping(value: object, where: str) -> JSON:
    if value is None:
        return {}
    if not isinstance(value, Mapping):
        raise FieldError(where, f"expected a mapping, got {_describe(value)}")
    return value


def _list(value: object, where: str) -> list[Any]:
    if value is None:
        return []
    if not isinstance(value, list):
        raise FieldError(where, f"expected a list, got {_describe(value)}")
    return value


def _string(value: object, where: str) -> str | None:
    if value is None:
        return None
    if not isinstance(value, str):
        raise FieldError(where, f"expected a string, got {_describe(value)}")
    return value


def _required_string(obj: JSON, key: str, parent: str) -> str:
    value = _string(obj.get(key), _path(parent, key))
    if not value:
        raise FieldError(_path(parent, key), "required")
    return value


def _port_number(value: object, where: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise FieldError(where, f"expected a port number, got {_describe(value)}")
    if not 1 <= value <= 65535:
        raise FieldError(where, f"{value} is not a port number (1-65535)")
    return value


def _protocol(value: object, where: str) -> L4Protocol:
    text = _string(value, where)
    if text is None:
        return L4Protocol.TCP  # the API's default
    try:
        return L4Protocol(text)
    except ValueError:
        raise FieldError(where, f"{text!r} is not one of TCP, UDP, SCTP") from None


def _ip(value: object, where: str) -> IPAddress | None:
    text = _string(value, where)
    if not text:
        return None
    try:
        return ip_address(text)
    except ValueError:
        raise FieldError(where, f"{text!r} is not an IP address") from None


def _only(obj: JSON, where: str, allowed: frozenset[str]) -> None:
    for key in obj:
        if key not in allowed:
            expected = ", ".join(sorted(allowed))
            raise FieldError(_path(where, str(key)), f"unknown field (expected {expected})")


def _labels(value: object, where: str) -> dict[str, str]:
    labels = {}
    for key, item in _mapping(value, where).items():
        if not isinstance(item, str):  # YAML reads `version: 1` as a number; the API refuses it
            raise FieldError(_path(where, str(key)), f"expected a string, got {_describe(item)}")
        labels[str(key)] = item
    return labels


def _metadata(obj: JSON) -> tuple[str, str, dict[str, str]]:
    meta = _mapping(obj.get("metadata"), "metadata")
    name = _required_string(meta, "name", "metadata")
    namespace = _string(meta.get("namespace"), "metadata.namespace") or DEFAULT_NAMESPACE
    return namespace, name, _labels(meta.get("labels"), "metadata.labels")


# --- selectors ---

SELECTOR_FIELDS = frozenset({"matchLabels", "matchExpressions"})
REQUIREMENT_FIELDS = frozenset({"key", "operator", "values"})


def parse_selector(value: object, where: str) -> Selector:
    obj = _mapping(value, where)
    _only(obj, where, SELECTOR_FIELDS)
    labels = _labels(obj.get("matchLabels"), _path(where, "matchLabels"))
    expressions = []
    for i, item in enumerate(_list(obj.get("matchExpressions"), _path(where, "matchExpressions"))):
        expressions.append(_requirement(item, f"{where}.matchExpressions[{i}]"))
    return Selector(tuple(sorted(labels.items())), tuple(expressions))


def _requirement(value: object, where: str) -> Requirement:
    obj = _mapping(value, where)
    _only(obj, where, REQUIREMENT_FIELDS)
    key = _required_string(obj, "key", where)
    text = _required_string(obj, "operator", where)
    try:
        operator = Operator(text)
    except ValueError:
        raise FieldError(
            _path(where, "operator"), f"{text!r} is not one of In, NotIn, Exists, DoesNotExist"
        ) from None
    values = _list(obj.get("values"), _path(where, "values"))
    for i, item in enumerate(values):
        _string(item, f"{where}.values[{i}]")
    if operator in (Operator.IN, Operator.NOT_IN) and not values:
        raise FieldError(_path(where, "values"), f"{operator} needs at least one value")
    if operator in (Operator.EXISTS, Operator.DOES_NOT_EXIST) and values:
        raise FieldError(_path(where, "values"), f"{operator} takes no values")
    return Requirement(key, operator, frozenset(values))


# --- pods and namespaces ---


def parse_namespace(obj: JSON) -> Namespace:
    _, name, labels = _metadata(obj)
    return Namespace(name, {**labels, NAMESPACE_NAME_LABEL: name})


def parse_pod(obj: JSON) -> Pod:
    namespace, name, labels = _metadata(obj)
    status = _mapping(obj.get("status"), "status")
    spec = _mapping(obj.get("spec"), "spec")
    listed = _list(status.get("podIPs"), "status.podIPs")
    if listed:  # podIP first, then the other family's address on dual-stack clusters
        ips = [
            _ip(_mapping(entry, f"status.podIPs[{i}]").get("ip"), f"status.podIPs[{i}].ip")
            for i, entry in enumerate(listed)
        ]
    else:
        ips = [_ip(status.get("podIP"), "status.podIP")]
    host_ip = _ip(status.get("hostIP"), "status.hostIP")
    return _pod(PodRef(namespace, name), labels, spec, "spec", [ip for ip in ips if ip], host_ip)


def parse_workload(obj: JSON, kind: str) -> Pod:
    """A workload's pod template as one representative pod, named after the workload."""
    namespace, name, _ = _metadata(obj)
    template: JSON = obj
    where = ""
    for key in POD_TEMPLATES[kind]:
        where = _path(where, key)
        template = _mapping(template.get(key), where)
    if not template:
        raise FieldError(where, "required")
    meta = _mapping(template.get("metadata"), f"{where}.metadata")
    labels = _labels(meta.get("labels"), f"{where}.metadata.labels")
    spec = _mapping(template.get("spec"), f"{where}.spec")
    return _pod(PodRef(namespace, name), labels, spec, f"{where}.spec", [], None)


def _pod(
    ref: PodRef,
    labels: dict[str, str],
    spec: JSON,
    where: str,
    ips: list[IPAddress],
    host_ip: IPAddress | None,
) -> Pod:
    host_network = spec.get("hostNetwork", False)
    if not isinstance(host_network, bool):
        raise FieldError(
            f"{where}.hostNetwork", f"expected a boolean, got {_describe(host_network)}"
        )
    if host_network and not ips and host_ip:
        ips = [host_ip]  # a hostNetwork pod's address is its node's
    ports = []
    for i, container in enumerate(_list(spec.get("containers"), f"{where}.containers")):
        at = f"{where}.containers[{i}]"
        for j, port in enumerate(_list(_mapping(container, at).get("ports"), f"{at}.ports")):
            ports.append(_container_port(_mapping(port, f"{at}.ports[{j}]"), f"{at}.ports[{j}]"))
    return Pod(
        ref=ref,
        labels=labels,
        ips=tuple(ips),
        ports=tuple(ports),
        host_network=host_network,
        node=_string(spec.get("nodeName"), f"{where}.nodeName"),
        host_ip=host_ip,
    )


def _container_port(obj: JSON, where: str) -> ContainerPort:
    return ContainerPort(
        number=_port_number(obj.get("containerPort"), f"{where}.containerPort"),
        protocol=_protocol(obj.get("protocol"), f"{where}.protocol"),
        name=_string(obj.get("name"), f"{where}.name"),
    )


# --- network policies ---

SPEC_FIELDS = frozenset({"podSelector", "policyTypes", "ingress", "egress"})
PEER_FIELDS = frozenset({"podSelector", "namespaceSelector", "ipBlock"})
IPBLOCK_FIELDS = frozenset({"cidr", "except"})
PORT_FIELDS = frozenset({"protocol", "port", "endPort"})


def parse_policy(obj: JSON) -> Policy:
    namespace, name, _ = _metadata(obj)
    # Without a spec or a podSelector, the API server stores `podSelector: {}` (every pod of
    # the namespace), as recorded in ../shared/kube-api/ (19-endpointslices-networkpolicies).
    spec = _mapping(obj.get("spec") or {}, "spec")
    _only(spec, "spec", SPEC_FIELDS)
    rules = {
        direction: tuple(
            _rule(item, f"spec.{direction.field}[{i}]", direction)
            for i, item in enumerate(_list(spec.get(direction.field), f"spec.{direction.field}"))
        )
        for direction in Direction
    }
    return Policy(
        namespace=namespace,
        name=name,
        pod_selector=parse_selector(spec.get("podSelector") or {}, "spec.podSelector"),
        types=_policy_types(spec.get("policyTypes"), rules[Direction.EGRESS]),
        ingress=rules[Direction.INGRESS],
        egress=rules[Direction.EGRESS],
    )


def _policy_types(value: object, egress: tuple[Rule, ...]) -> frozenset[Direction]:
    types = set()
    for i, item in enumerate(_list(value, "spec.policyTypes")):
        try:
            types.add(Direction(_string(item, f"spec.policyTypes[{i}]")))
        except ValueError:
            raise FieldError(
                f"spec.policyTypes[{i}]", f"{item!r} is not Ingress or Egress"
            ) from None
    if types:
        return frozenset(types)
    # The API's default: every policy affects ingress; egress only if it has egress rules.
    return frozenset({Direction.INGRESS, Direction.EGRESS} if egress else {Direction.INGRESS})


def _rule(value: object, where: str, direction: Direction) -> Rule:
    obj = _mapping(value, where)
    peers_key = direction.peers_field
    _only(obj, where, frozenset({peers_key, "ports"}))
    peers = _list(obj.get(peers_key), f"{where}.{peers_key}")
    ports = _list(obj.get("ports"), f"{where}.ports")
    return Rule(
        peers=tuple(_peer(item, f"{where}.{peers_key}[{i}]") for i, item in enumerate(peers)),
        ports=tuple(_port_spec(item, f"{where}.ports[{i}]") for i, item in enumerate(ports)),
    )


def _peer(value: object, where: str) -> Peer:
    obj = _mapping(value, where)
    _only(obj, where, PEER_FIELDS)
    given = [
        key for key in ("podSelector", "namespaceSelector", "ipBlock") if obj.get(key) is not None
    ]
    if not given:
        raise FieldError(where, "a peer needs podSelector, namespaceSelector or ipBlock")
    if "ipBlock" in given and len(given) > 1:
        raise FieldError(where, "ipBlock cannot be combined with podSelector or namespaceSelector")
    if "ipBlock" in given:
        return Peer(ip_block=_ip_block(obj["ipBlock"], f"{where}.ipBlock"))
    return Peer(
        pod_selector=_optional_selector(obj, "podSelector", where),
        namespace_selector=_optional_selector(obj, "namespaceSelector", where),
    )


def _optional_selector(obj: JSON, key: str, where: str) -> Selector | None:
    return parse_selector(obj[key], _path(where, key)) if obj.get(key) is not None else None


def _network(value: object, where: str) -> IPNetwork:
    """A CIDR as the API server (1.36, strict IP/CIDR validation) takes it: a prefix length is
    required, and no zone, leading 0s, IPv4-mapped IPv6 or bits set past the prefix length."""
    text = _string(value, where)
    if not text:
        raise FieldError(where, "required")
    address, slash, length = text.partition("/")
    if not slash:
        raise FieldError(where, f"{text!r} has no prefix length (e.g. {text}/32)")
    if not (length.isascii() and length.isdigit()) or length != str(int(length)):
        raise FieldError(where, f"{text!r}: the prefix length must be a number without leading 0s")
    try:
        network = ip_network(text, strict=False)
    except ValueError:
        raise FieldError(where, f"{text!r} is not a CIDR") from None
    if "%" in address:
        raise FieldError(where, f"{text!r}: a CIDR has no zone (%…)")
    if isinstance(network, IPv6Network) and network.network_address.ipv4_mapped:
        raise FieldError(where, f"{text!r}: an IPv4-mapped IPv6 CIDR (write it as IPv4)")
    if network.network_address != ip_address(address):
        raise FieldError(where, f"{text!r} has bits set past the prefix length (use {network})")
    return network


def _ip_block(value: object, where: str) -> IPBlock:
    obj = _mapping(value, where)
    _only(obj, where, IPBLOCK_FIELDS)
    cidr = _network(obj.get("cidr"), f"{where}.cidr")
    holes = []
    for i, item in enumerate(_list(obj.get("except"), f"{where}.except")):
        hole = _network(item, f"{where}.except[{i}]")
        # The API server's rule: each except must be a strict subset of the cidr.
        if hole.version != cidr.version or not (
            hole.subnet_of(cidr) and hole.prefixlen > cidr.prefixlen
        ):
            raise FieldError(f"{where}.except[{i}]", f"{hole} is not a strict subset of {cidr}")
        holes.append(hole)
    return IPBlock(cidr, tuple(holes))


def _port_spec(value: object, where: str) -> PortSpec:
    obj = _mapping(value, where)
    _only(obj, where, PORT_FIELDS)
    protocol = _protocol(obj.get("protocol"), f"{where}.protocol")
    raw = obj.get("port")
    port: int | str | None = None
    if isinstance(raw, str):
        if not PORT_NAME.match(raw):
            raise FieldError(
                f"{where}.port",
                f"{raw!r} is not a port name (lowercase letters, digits and '-', at most 15, "
                "with a letter; a quoted number is a name, not a number)",
            )
        port = raw
    elif raw is not None:
        port = _port_number(raw, f"{where}.port")
    end_port = None
    if obj.get("endPort") is not None:
        end_port = _port_number(obj["endPort"], f"{where}.endPort")
        if not isinstance(port, int):
            raise FieldError(f"{where}.endPort", "needs a numeric port to start the range")
        if end_port < port:
            raise FieldError(f"{where}.endPort", f"{end_port} is below port {port}")
    return PortSpec(protocol, port, end_port)
