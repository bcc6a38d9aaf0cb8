"""CiliumNetworkPolicy and CiliumClusterwideNetworkPolicy (cilium.io/v2), parsed from JSON.

What is parsed is what decides an L3/L4 verdict; every construct the evaluator does not model is
kept by name (its field path), so the verdict can say `Unknown` and name it rather than guess:
L7 `rules`, TLS and listener settings of `toPorts`, `toFQDNs`, `toServices`, `toGroups`,
`fromNodes`/`toNodes`, CIDR groups, `fromRequires`/`toRequires` and `authentication`.
Unknown fields are errors, as in `model`: a typo must not widen a selector.

Semantics fixed here, from the Cilium reference (docs.cilium.io, policy language and the CRD):
- A direction's rule list that is absent, null or empty does not apply (it does not isolate);
  `ingress: [{}]` isolates and allows nothing (the documented default-deny idiom).
- `enableDefaultDeny.<direction>` defaults to true for a direction that has allow or deny rules.
- A `toPorts` port is a number (`"80"`, `0` or absent: every port), a named port, or a range with
  `endPort`; `protocol` is TCP, UDP, SCTP or ANY (the default).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from hopscope_policy.model import (
    JSON,
    PORT_NAME,
    Direction,
    FieldError,
    IPBlock,
    L4Protocol,
    _ip_block,
    _list,
    _mapping,
    _metadata,
    _network,
    _only,
    _path,
    _port_number,
    _string,
    parse_selector,
)
from hopscope_policy.selectors import Selector

CNP = "CiliumNetworkPolicy"
CCNP = "CiliumClusterwideNetworkPolicy"

TOP_FIELDS = frozenset({"apiVersion", "kind", "metadata", "spec", "specs", "status"})
SPEC_FIELDS = frozenset(
    {
        "endpointSelector",
        "nodeSelector",
        "ingress",
        "ingressDeny",
        "egress",
        "egressDeny",
        "enableDefaultDeny",
        "description",
        "labels",
        "log",
    }
)
DEFAULT_DENY_FIELDS = frozenset({"ingress", "egress"})
# Peer fields of each direction that are modelled; the second set names those kept as Unknown.
MODELLED = {
    Direction.INGRESS: ("fromEndpoints", "fromEntities", "fromCIDR", "fromCIDRSet"),
    Direction.EGRESS: ("toEndpoints", "toEntities", "toCIDR", "toCIDRSet"),
}
UNMODELLED = {
    Direction.INGRESS: ("fromRequires", "fromGroups", "fromNodes"),
    Direction.EGRESS: ("toRequires", "toServices", "toFQDNs", "toGroups", "toNodes"),
}
PORT_RULE_FIELDS = frozenset(
    {"ports", "rules", "terminatingTLS", "originatingTLS", "serverNames", "listener"}
)
PORT_FIELDS = frozenset({"port", "endPort", "protocol"})
CIDR_RULE_FIELDS = frozenset({"cidr", "except", "cidrGroupRef", "cidrGroupSelector"})
ICMP_RULE_FIELDS = frozenset({"fields"})
ICMP_FIELD_FIELDS = frozenset({"type", "family"})
ENTITIES = frozenset(
    {
        "all",
        "world",
        "world-ipv4",
        "world-ipv6",
        "cluster",
        "host",
        "remote-node",
        "kube-apiserver",
        "ingress",
        "init",
        "health",
        "unmanaged",
    }
)
PROTOCOLS = ("TCP", "UDP", "SCTP", "ANY")


@dataclass(frozen=True, slots=True)
class CiliumPort:
    protocol: L4Protocol | None  # None: ANY (every protocol with ports)
    port: int | str | None = None  # None: every port; str: a named port of the destination
    end_port: int | None = None

    def __str__(self) -> str:
        protocol = self.protocol or "ANY"
        if self.port is None:
            return f"{protocol}/any port"
        if self.end_port is not None:
            return f"{protocol}/{self.port}-{self.end_port}"
        return f"{protocol}/{self.port}"


@dataclass(frozen=True, slots=True)
class IcmpField:
    family: int  # 4 or 6
    type: int | str  # a number, or a name such as EchoRequest


@dataclass(frozen=True, slots=True)
class CiliumRule:
    """One entry of ingress, ingressDeny, egress or egressDeny."""

    field: str  # e.g. "ingressDeny[0]" (with "specs[1]." in front for a `specs` entry)
    endpoints: tuple[Selector, ...] | None = None  # None: the field is absent
    entities: tuple[str, ...] | None = None
    cidrs: tuple[IPBlock, ...] | None = None  # fromCIDR and fromCIDRSet together
    ports: tuple[CiliumPort, ...] | None = None  # None: no toPorts (every port)
    icmps: tuple[IcmpField, ...] | None = None
    unknown_peers: tuple[str, ...] = ()  # unmodelled peer constructs, by field path
    unknown_l4: tuple[str, ...] = ()  # unmodelled toPorts constructs (L7 rules, TLS …)
    requires: tuple[str, ...] = ()  # fromRequires/toRequires: restrict other rules too

    @property
    def has_peers(self) -> bool:
        return any(
            value is not None for value in (self.endpoints, self.entities, self.cidrs)
        ) or bool(self.unknown_peers)


@dataclass(frozen=True, slots=True)
class CiliumSpec:
    where: str  # "spec" or "specs[N]"
    endpoint_selector: Selector | None  # exactly one of the two selectors is set
    node_selector: Selector | None
    allow: Mapping[Direction, tuple[CiliumRule, ...]]
    deny: Mapping[Direction, tuple[CiliumRule, ...]]
    default_deny: Mapping[Direction, bool]

    @property
    def label(self) -> str | None:
        """The spec's part of a rule name: None for `spec`, "specs[N]" for a list entry."""
        return None if self.where == "spec" else self.where


@dataclass(frozen=True, slots=True, eq=False)
class CiliumPolicy:
    kind: str  # CNP or CCNP
    namespace: str | None  # None for the cluster-wide kind
    name: str
    specs: tuple[CiliumSpec, ...]

    @property
    def key(self) -> str:
        return f"{self.namespace}/{self.name}" if self.namespace is not None else self.name


def parse_cilium_network_policy(obj: JSON) -> CiliumPolicy:
    namespace, name, _ = _metadata(obj)
    return _policy(obj, CNP, namespace, name)


def parse_cilium_clusterwide_network_policy(obj: JSON) -> CiliumPolicy:
    _, name, _ = _metadata(obj)
    return _policy(obj, CCNP, None, name)


def _policy(obj: JSON, kind: str, namespace: str | None, name: str) -> CiliumPolicy:
    _only(obj, "", TOP_FIELDS)
    specs = []
    if obj.get("spec") is not None:
        specs.append(_spec(obj["spec"], "spec", kind))
    for i, item in enumerate(_list(obj.get("specs"), "specs")):
        specs.append(_spec(item, f"specs[{i}]", kind))
    if not specs:
        raise FieldError("spec", "required (or specs)")
    return CiliumPolicy(kind, namespace, name, tuple(specs))


def _spec(value: object, where: str, kind: str) -> CiliumSpec:
    obj = _mapping(value, where)
    _only(obj, where, SPEC_FIELDS)
    given = [key for key in ("endpointSelector", "nodeSelector") if obj.get(key) is not None]
    if len(given) != 1:
        raise FieldError(where, "needs exactly one of endpointSelector and nodeSelector")
    if given == ["nodeSelector"] and kind == CNP:
        raise FieldError(
            _path(where, "nodeSelector"), f"only a {CCNP} may select nodes (host policies)"
        )
    selector = parse_selector(obj[given[0]], _path(where, given[0]))
    prefix = "" if where == "spec" else f"{where}."
    allow, deny, default_deny = {}, {}, {}
    for direction in Direction:
        allow[direction] = _rules(obj, where, prefix, direction, deny=False)
        deny[direction] = _rules(obj, where, prefix, direction, deny=True)
    switches = _mapping(obj.get("enableDefaultDeny"), _path(where, "enableDefaultDeny"))
    _only(switches, _path(where, "enableDefaultDeny"), DEFAULT_DENY_FIELDS)
    for direction in Direction:
        at = f"{where}.enableDefaultDeny.{direction.field}"
        switch = switches.get(direction.field)
        if switch is not None and not isinstance(switch, bool):
            raise FieldError(at, "expected true or false")
        has_rules = bool(allow[direction] or deny[direction])
        default_deny[direction] = has_rules if switch is None else switch and has_rules
    return CiliumSpec(
        where,
        selector if given == ["endpointSelector"] else None,
        selector if given == ["nodeSelector"] else None,
        allow,
        deny,
        default_deny,
    )


def _rules(
    obj: JSON, where: str, prefix: str, direction: Direction, *, deny: bool
) -> tuple[CiliumRule, ...]:
    key = direction.field + ("Deny" if deny else "")
    items = _list(obj.get(key), _path(where, key))
    return tuple(
        _rule(item, f"{where}.{key}[{i}]", f"{prefix}{key}[{i}]", direction, deny)
        for i, item in enumerate(items)
    )


def _rule(value: object, where: str, field: str, direction: Direction, deny: bool) -> CiliumRule:
    obj = _mapping(value, where)
    endpoints_key, entities_key, cidr_key, cidr_set_key = MODELLED[direction]
    unmodelled = UNMODELLED[direction]
    allowed = {*MODELLED[direction], *unmodelled, "toPorts", "icmps"}
    if not deny:
        allowed.add("authentication")
    _only(obj, where, frozenset(allowed))
    endpoints = None
    if obj.get(endpoints_key) is not None:
        items = _list(obj[endpoints_key], _path(where, endpoints_key))
        endpoints = tuple(
            parse_selector(item, f"{where}.{endpoints_key}[{i}]") for i, item in enumerate(items)
        )
    entities = None
    if obj.get(entities_key) is not None:
        entities = tuple(
            _entity(item, f"{where}.{entities_key}[{i}]")
            for i, item in enumerate(_list(obj[entities_key], _path(where, entities_key)))
        )
    cidrs, unknown_peers = _cidrs(obj, where, cidr_key, cidr_set_key)
    requires_key = unmodelled[0]
    requires = (f"{field}.{requires_key}",) if obj.get(requires_key) else ()
    unknown_peers += tuple(f"{field}.{key}" for key in unmodelled[1:] if obj.get(key) is not None)
    ports, unknown_l4 = _to_ports(obj.get("toPorts"), f"{where}.toPorts", field, deny)
    if obj.get("authentication") is not None:
        unknown_l4 += (f"{field}.authentication (mutual authentication)",)
    icmps = None
    if obj.get("icmps") is not None:
        icmps = tuple(
            field_
            for i, item in enumerate(_list(obj["icmps"], f"{where}.icmps"))
            for field_ in _icmp_rule(item, f"{where}.icmps[{i}]")
        )
    return CiliumRule(
        field, endpoints, entities, cidrs, ports, icmps, unknown_peers, unknown_l4, requires
    )


def _entity(value: object, where: str) -> str:
    text = _string(value, where)
    if text not in ENTITIES:
        raise FieldError(where, f"{text!r} is not an entity ({', '.join(sorted(ENTITIES))})")
    return text


def _cidrs(
    obj: JSON, where: str, cidr_key: str, cidr_set_key: str
) -> tuple[tuple[IPBlock, ...] | None, tuple[str, ...]]:
    if obj.get(cidr_key) is None and obj.get(cidr_set_key) is None:
        return None, ()
    blocks = [
        IPBlock(_network(item, f"{where}.{cidr_key}[{i}]"))
        for i, item in enumerate(_list(obj.get(cidr_key), _path(where, cidr_key)))
    ]
    unknown: list[str] = []
    for i, item in enumerate(_list(obj.get(cidr_set_key), _path(where, cidr_set_key))):
        at = f"{where}.{cidr_set_key}[{i}]"
        rule = _mapping(item, at)
        _only(rule, at, CIDR_RULE_FIELDS)
        groups = [key for key in ("cidrGroupRef", "cidrGroupSelector") if rule.get(key)]
        if groups:  # the CiliumCIDRGroup objects are not read
            unknown.append(f"{at.removeprefix('spec.')}.{groups[0]} (CiliumCIDRGroup)")
            continue
        blocks.append(_ip_block({"cidr": rule.get("cidr"), "except": rule.get("except")}, at))
    return tuple(blocks), tuple(unknown)


def _to_ports(
    value: object, where: str, field: str, deny: bool
) -> tuple[tuple[CiliumPort, ...] | None, tuple[str, ...]]:
    if value is None:
        return None, ()
    ports: list[CiliumPort] = []
    unknown: list[str] = []
    for i, item in enumerate(_list(value, where)):
        at = f"{where}[{i}]"
        rule = _mapping(item, at)
        _only(rule, at, frozenset({"ports"}) if deny else PORT_RULE_FIELDS)
        for j, port in enumerate(_list(rule.get("ports"), f"{at}.ports")):
            ports.append(_port(port, f"{at}.ports[{j}]"))
        if not rule.get("ports"):  # a port rule without ports: every port
            ports.append(CiliumPort(None))
        l7 = _mapping(rule.get("rules"), f"{at}.rules")
        unknown += [f"{field}.toPorts[{i}].rules.{kind} (L7)" for kind in l7 if l7[kind]]
        unknown += [
            f"{field}.toPorts[{i}].{key}"
            for key in ("terminatingTLS", "originatingTLS", "serverNames", "listener")
            if rule.get(key)
        ]
    return tuple(ports), tuple(unknown)


def _port(value: object, where: str) -> CiliumPort:
    obj = _mapping(value, where)
    _only(obj, where, PORT_FIELDS)
    text = _string(obj.get("protocol"), f"{where}.protocol") or "ANY"
    if text not in PROTOCOLS:
        raise FieldError(f"{where}.protocol", f"{text!r} is not one of {', '.join(PROTOCOLS)}")
    protocol = None if text == "ANY" else L4Protocol(text)
    raw = obj.get("port")
    port: int | str | None = None
    if isinstance(raw, str) and not raw.isdigit():
        if not PORT_NAME.match(raw):
            raise FieldError(f"{where}.port", f"{raw!r} is neither a port number nor a port name")
        port = raw
    elif raw is not None:
        number = int(raw) if isinstance(raw, str) else raw
        port = None if number == 0 else _port_number(number, f"{where}.port")  # 0: every port
    end_port = None
    if obj.get("endPort") is not None:
        end_port = _port_number(obj["endPort"], f"{where}.endPort")
        if not isinstance(port, int):
            raise FieldError(f"{where}.endPort", "needs a numeric port to start the range")
        if end_port < port:
            raise FieldError(f"{where}.endPort", f"{end_port} is below port {port}")
    return CiliumPort(protocol, port, end_port)


def _icmp_rule(value: object, where: str) -> list[IcmpField]:
    obj = _mapping(value, where)
    _only(obj, where, ICMP_RULE_FIELDS)
    fields = []
    for i, item in enumerate(_list(obj.get("fields"), f"{where}.fields")):
        at = f"{where}.fields[{i}]"
        entry = _mapping(item, at)
        _only(entry, at, ICMP_FIELD_FIELDS)
        family = _string(entry.get("family"), f"{at}.family") or "IPv4"
        if family not in ("IPv4", "IPv6"):
            raise FieldError(f"{at}.family", f"{family!r} is not IPv4 or IPv6")
        kind = entry.get("type")
        if isinstance(kind, bool) or not isinstance(kind, int | str):
            raise FieldError(f"{at}.type", "required: an ICMP type number or name")
        if isinstance(kind, int) and not 0 <= kind <= 255:
            raise FieldError(f"{at}.type", f"{kind} is not an ICMP type (0-255)")
        fields.append(IcmpField(4 if family == "IPv4" else 6, kind))
    return fields


def world_family(entity: str) -> int | None:
    """The IP version a world entity is restricted to (None: both)."""
    return {"world-ipv4": 4, "world-ipv6": 6}.get(entity)
