"""Calico's NetworkPolicy, GlobalNetworkPolicy and Tier (projectcalico.org/v3), parsed from JSON.

What is parsed is what decides an L3/L4 verdict; every construct the evaluator does not model is
kept by its field path, so the verdict says `Unknown` and names it rather than guess: `http`,
`icmp`/`notICMP`, `serviceAccounts`, `services`, source ports, a `serviceAccountSelector`, and
`doNotTrack`/`preDNAT`/`applyOnForward` (host-endpoint policy). Unknown fields are errors, as in
`model`: a typo must not widen a selector.

Semantics fixed here, from the Calico reference (docs.tigera.io: NetworkPolicy,
GlobalNetworkPolicy, Tier, Rule, EntityRule, Ports):
- `tier` defaults to "default"; `order` is a float, absent meaning after every ordered policy.
- `types` defaults from the rule lists present: egress rules alone give [Egress], otherwise
  [Ingress] (also with no rules at all), both lists give both.
- `action` is Allow, Deny, Log or Pass; `protocol`/`notProtocol` a name (TCP, UDP, ICMP,
  ICMPv6, SCTP, UDPLite) or a number 1-255; ports (a number, "start:end" or a named port) need a
  `protocol` of TCP, UDP, SCTP or UDPLite, as Calico's validation requires.
- a Tier's `defaultAction` is Deny (the default) or Pass; its `order` absent means last.
- a policy is named by `metadata.name` as written, which is what kubectl takes: Calico 3.29
  required `<tier>.<name>` outside the default tier, 3.30 keeps a default-tier name as created,
  and later releases drop the prefix rule (projectcalico/calico#11232), so it is not enforced.
"""

from __future__ import annotations

from dataclasses import dataclass
from ipaddress import ip_network

from hopscope_policy.calico_selectors import CalicoSelector, parse_selector
from hopscope_policy.model import (
    JSON,
    PORT_NAME,
    Direction,
    FieldError,
    IPNetwork,
    _describe,
    _list,
    _mapping,
    _metadata,
    _only,
    _path,
    _string,
)

GROUP = "projectcalico.org"
NP, GNP, TIER = "NetworkPolicy", "GlobalNetworkPolicy", "Tier"
DEFAULT_TIER = "default"
# kubectl takes `NetworkPolicy.projectcalico.org`; the bare kind would name the core one.
KIND_NAMES = {NP: f"{NP}.{GROUP}", GNP: GNP}

TOP_FIELDS = frozenset({"apiVersion", "kind", "metadata", "spec"})
NP_FIELDS = frozenset(
    {
        "order",
        "tier",
        "selector",
        "types",
        "ingress",
        "egress",
        "serviceAccountSelector",
        "performanceHints",
    }
)
GNP_FIELDS = NP_FIELDS | {"namespaceSelector", "doNotTrack", "preDNAT", "applyOnForward"}
RULE_FIELDS = frozenset(
    {
        "action",
        "metadata",
        "protocol",
        "notProtocol",
        "icmp",
        "notICMP",
        "ipVersion",
        "source",
        "destination",
        "http",
    }
)
ENTITY_FIELDS = frozenset(
    {
        "nets",
        "notNets",
        "selector",
        "notSelector",
        "namespaceSelector",
        "ports",
        "notPorts",
        "serviceAccounts",
        "services",
    }
)
TIER_FIELDS = frozenset({"order", "defaultAction"})
ACTIONS = ("Allow", "Deny", "Log", "Pass")
PROTOCOLS = {"TCP": 6, "UDP": 17, "ICMP": 1, "ICMPv6": 58, "SCTP": 132, "UDPLite": 136}
PORT_PROTOCOLS = frozenset({6, 17, 132, 136})  # the protocols ports are valid with
HOST_ENDPOINT_SWITCHES = ("doNotTrack", "preDNAT", "applyOnForward")


@dataclass(frozen=True, slots=True)
class CalicoPort:
    first: int | None = None  # a number or range: first..last
    last: int | None = None
    name: str | None = None  # a named port of the endpoint

    def __str__(self) -> str:
        if self.name is not None:
            return self.name
        return str(self.first) if self.first == self.last else f"{self.first}:{self.last}"


@dataclass(frozen=True, slots=True)
class EntityRule:
    """A rule's `source` or `destination`; every field given must match."""

    nets: tuple[IPNetwork, ...] | None = None
    not_nets: tuple[IPNetwork, ...] | None = None
    selector: CalicoSelector | None = None
    not_selector: CalicoSelector | None = None
    namespace_selector: CalicoSelector | None = None
    ports: tuple[CalicoPort, ...] | None = None
    not_ports: tuple[CalicoPort, ...] | None = None


@dataclass(frozen=True, slots=True)
class CalicoRule:
    field: str  # e.g. "ingress[0]"
    action: str  # one of ACTIONS
    protocol: int | None = None
    not_protocol: int | None = None
    ip_version: int | None = None
    source: EntityRule = EntityRule()
    destination: EntityRule = EntityRule()
    unknown: tuple[str, ...] = ()  # unmodelled constructs, by field path


@dataclass(frozen=True, slots=True, eq=False)
class CalicoPolicy:
    kind: str  # as a verdict names it: KIND_NAMES[NP] or GNP (what RuleName.kind holds)
    namespace: str | None  # None for GlobalNetworkPolicy
    name: str
    tier: str
    order: float | None
    selector: CalicoSelector
    namespace_selector: CalicoSelector | None  # GlobalNetworkPolicy only
    types: frozenset[Direction]
    ingress: tuple[CalicoRule, ...]
    egress: tuple[CalicoRule, ...]
    unknown: tuple[str, ...] = ()  # policy-wide unmodelled constructs, by field path

    @property
    def key(self) -> str:
        return f"{self.namespace}/{self.name}" if self.namespace is not None else self.name

    def rules(self, direction: Direction) -> tuple[CalicoRule, ...]:
        return self.ingress if direction is Direction.INGRESS else self.egress


@dataclass(frozen=True, slots=True)
class CalicoTier:
    name: str
    order: float | None = None  # None: after every ordered tier
    default_action: str = "Deny"  # or "Pass"

    @property
    def kind(self) -> str:
        """As policy objects have one: what `kubectl apply` replaces a proposed object by."""
        return TIER


def parse_calico_network_policy(obj: JSON) -> CalicoPolicy:
    namespace, name, _ = _metadata(obj)
    return _policy(obj, KIND_NAMES[NP], namespace, name)


def parse_calico_global_network_policy(obj: JSON) -> CalicoPolicy:
    _, name, _ = _metadata(obj)
    return _policy(obj, KIND_NAMES[GNP], None, name)


def parse_calico_tier(obj: JSON) -> CalicoTier:
    _only(obj, "", TOP_FIELDS)
    _, name, _ = _metadata(obj)
    spec = _mapping(obj.get("spec"), "spec")
    _only(spec, "spec", TIER_FIELDS)
    action = _string(spec.get("defaultAction"), "spec.defaultAction") or "Deny"
    if action not in ("Deny", "Pass"):
        raise FieldError("spec.defaultAction", f"{action!r} is not Deny or Pass")
    return CalicoTier(name, _order(spec.get("order"), "spec.order"), action)


def _policy(obj: JSON, kind: str, namespace: str | None, name: str) -> CalicoPolicy:
    _only(obj, "", TOP_FIELDS)
    spec = _mapping(obj.get("spec"), "spec")
    _only(spec, "spec", GNP_FIELDS if kind == GNP else NP_FIELDS)
    rules = {
        direction: tuple(
            _rule(item, f"{direction.field}[{i}]")
            for i, item in enumerate(_list(spec.get(direction.field), f"spec.{direction.field}"))
        )
        for direction in Direction
    }
    unknown: list[str] = []
    accounts = _selector(spec, "serviceAccountSelector", "spec")
    if accounts is not None and accounts.text.strip() not in ("", "all()"):
        unknown.append("spec.serviceAccountSelector")
    for switch in HOST_ENDPOINT_SWITCHES:
        value = spec.get(switch)
        if value is not None and not isinstance(value, bool):
            raise FieldError(f"spec.{switch}", f"expected true or false, got {_describe(value)}")
        if value:
            unknown.append(f"spec.{switch} (host endpoint policy)")
    tier = _string(spec.get("tier"), "spec.tier") or DEFAULT_TIER
    return CalicoPolicy(
        kind,
        namespace,
        name,
        tier,
        _order(spec.get("order"), "spec.order"),
        _selector(spec, "selector", "spec") or parse_selector("", "spec.selector"),
        _selector(spec, "namespaceSelector", "spec"),
        _types(spec.get("types"), bool(rules[Direction.INGRESS]), bool(rules[Direction.EGRESS])),
        rules[Direction.INGRESS],
        rules[Direction.EGRESS],
        tuple(unknown),
    )


def _order(value: object, where: str) -> float | None:
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise FieldError(where, f"expected a number, got {_describe(value)}")
    return float(value)


def _selector(obj: JSON, key: str, where: str) -> CalicoSelector | None:
    value = obj.get(key)
    return None if value is None else parse_selector(value, _path(where, key))


def _types(value: object, ingress: bool, egress: bool) -> frozenset[Direction]:
    if value is None:
        if egress and not ingress:
            return frozenset({Direction.EGRESS})
        return frozenset({Direction.INGRESS, Direction.EGRESS} if egress else {Direction.INGRESS})
    found = set()
    for i, item in enumerate(_list(value, "spec.types")):
        try:
            found.add(Direction(item))
        except ValueError:
            raise FieldError(f"spec.types[{i}]", f"{item!r} is not Ingress or Egress") from None
    return frozenset(found)


def _rule(value: object, field: str) -> CalicoRule:
    where = f"spec.{field}"
    obj = _mapping(value, where)
    _only(obj, where, RULE_FIELDS)
    action = _string(obj.get("action"), f"{where}.action")
    if action not in ACTIONS:
        problem = f"{action!r} is not one of" if action else "required: one of"
        raise FieldError(f"{where}.action", f"{problem} {', '.join(ACTIONS)}")
    protocol = _protocol(obj.get("protocol"), f"{where}.protocol")
    not_protocol = _protocol(obj.get("notProtocol"), f"{where}.notProtocol")
    ip_version = obj.get("ipVersion")
    if ip_version is not None and (isinstance(ip_version, bool) or ip_version not in (4, 6)):
        raise FieldError(f"{where}.ipVersion", f"expected 4 or 6, got {_describe(ip_version)}")
    unknown = [f"{field}.{key}" for key in ("http", "icmp", "notICMP") if obj.get(key)]
    ends = {}
    for end in ("source", "destination"):
        ends[end], missing = _entity(obj.get(end), f"{where}.{end}", f"{field}.{end}", protocol)
        unknown += missing
    if ends["source"].ports is not None or ends["source"].not_ports is not None:
        unknown.append(f"{field}.source.ports (a flow's source port is not known)")
    return CalicoRule(
        field,
        action,
        protocol,
        not_protocol,
        ip_version,
        ends["source"],
        ends["destination"],
        tuple(unknown),
    )


def _protocol(value: object, where: str) -> int | None:
    if value is None:
        return None
    if isinstance(value, str) and value in PROTOCOLS:
        return PROTOCOLS[value]
    number = int(value) if isinstance(value, str) and value.isdigit() else value
    if isinstance(number, bool) or not isinstance(number, int) or not 1 <= number <= 255:
        names = ", ".join(PROTOCOLS)
        raise FieldError(where, f"{_describe(value)} is not a protocol ({names} or 1-255)")
    return number


def _entity(
    value: object, where: str, field: str, protocol: int | None
) -> tuple[EntityRule, list[str]]:
    obj = _mapping(value, where)
    _only(obj, where, ENTITY_FIELDS)
    unknown = [f"{field}.{key}" for key in ("serviceAccounts", "services") if obj.get(key)]
    ports = {key: _ports(obj.get(key), f"{where}.{key}") for key in ("ports", "notPorts")}
    if any(found is not None for found in ports.values()) and protocol not in PORT_PROTOCOLS:
        raise FieldError(
            f"{where}.{'ports' if ports['ports'] is not None else 'notPorts'}",
            "ports need a protocol of TCP, UDP, SCTP or UDPLite",
        )
    rule = EntityRule(
        _nets(obj.get("nets"), f"{where}.nets"),
        _nets(obj.get("notNets"), f"{where}.notNets"),
        _selector(obj, "selector", where),
        _selector(obj, "notSelector", where),
        _selector(obj, "namespaceSelector", where),
        ports["ports"],
        ports["notPorts"],
    )
    return rule, unknown


def _nets(value: object, where: str) -> tuple[IPNetwork, ...] | None:
    if value is None:
        return None
    nets = []
    for i, item in enumerate(_list(value, where)):
        text = _string(item, f"{where}[{i}]")
        try:
            # Calico takes an address alone as its /32 (/128) and masks host bits.
            nets.append(ip_network(text or "", strict=False))
        except ValueError:
            raise FieldError(f"{where}[{i}]", f"{text!r} is not a CIDR") from None
    return tuple(nets)


def _ports(value: object, where: str) -> tuple[CalicoPort, ...] | None:
    if value is None:
        return None
    return tuple(_port(item, f"{where}[{i}]") for i, item in enumerate(_list(value, where)))


def _port(value: object, where: str) -> CalicoPort:
    if isinstance(value, int) and not isinstance(value, bool):
        return CalicoPort(_number(value, where), value)
    text = _string(value, where)
    if not text:
        raise FieldError(where, f"expected a port, a range or a port name, got {_describe(value)}")
    first, colon, last = text.partition(":")
    if first.isdigit() and (not colon or last.isdigit()):
        low, high = _number(int(first), where), _number(int(last or first), where)
        if high < low:
            raise FieldError(where, f"{text!r}: the range ends below its start")
        return CalicoPort(low, high)
    if colon or not PORT_NAME.match(text):
        raise FieldError(where, f"{text!r} is neither a port, a range start:end nor a port name")
    return CalicoPort(name=text)


def _number(value: int, where: str) -> int:
    if not 0 <= value <= 65535:
        raise FieldError(where, f"{value} is not a port number (0-65535)")
    return value
