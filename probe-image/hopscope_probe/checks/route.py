"""The source's own routing decision for a destination and the state of the next hop's
link-layer address, read from the kernel over netlink (what `ip route get` and `ip neigh` show)."""

from __future__ import annotations

import errno
import ipaddress
import os
import socket

from hopscope_probe import netlink
from hopscope_probe.evidence import NeighbourState, RouteEvidence

# Fields of the headers netlink answers with: rtmsg's type and dst_len, ndmsg's state.
RTM_DST_LEN, RTM_TYPE, NDM_STATE = 1, 7, 2
# rtm_type values of <linux/rtnetlink.h>.
ROUTE_TYPES = {
    1: "unicast",
    2: "local",
    3: "broadcast",
    4: "anycast",
    5: "multicast",
    6: "blackhole",
    7: "unreachable",
    8: "prohibit",
    9: "throw",
}
# `route get` fails with these when the matching route rejects the packet.
ERROR_ROUTES = {
    errno.ENETUNREACH: ("unreachable", "no route matches"),
    errno.EHOSTUNREACH: ("unreachable", "an unreachable route matches"),
    errno.EINVAL: ("blackhole", "a blackhole route matches"),
    errno.EACCES: ("prohibit", "a prohibit route matches"),
}
# Route types that match a destination and then refuse or drop its packets.
REJECT_TYPES = frozenset({"blackhole", "unreachable", "prohibit"})
# ndm_state bits of <linux/neighbour.h>, most telling first.
NUD_STATES = (
    (0x20, NeighbourState.FAILED),
    (0x01, NeighbourState.INCOMPLETE),
    (0x02, NeighbourState.REACHABLE),
    (0x04, NeighbourState.STALE),
    (0x08, NeighbourState.DELAY),
    (0x10, NeighbourState.PROBE),
    (0x40, NeighbourState.NOARP),
    (0x80, NeighbourState.PERMANENT),
)


def inspect(address: str) -> RouteEvidence:
    """Run in the source's network namespace: the netlink socket belongs to the caller's."""
    try:
        found = netlink.route_get(address)
    except netlink.NetlinkError as exc:
        code = exc.errno or 0
        route_type, why = ERROR_ROUTES.get(code, ("unknown", "route lookup failed"))
        name = errno.errorcode.get(code, str(code))
        # The lookup's error does not say which route matched: the table does.
        prefix = _reject_prefix(address, route_type)
        if prefix is not None:  # IPv6 fails an unreachable route with ENETUNREACH too
            why = f"the {route_type} route {prefix} matches"
        return RouteEvidence(
            destination=address,
            route_found=prefix is not None,
            route_type=route_type,
            prefix=prefix,
            detail=f"{why} ({name}: {os.strerror(code)})",
        )
    route_type = ROUTE_TYPES.get(found.header[RTM_TYPE], str(found.header[RTM_TYPE]))
    gateway = found.address(netlink.RTA_GATEWAY)
    index = found.number(netlink.RTA_OIF)
    # The link-layer entry needed is the gateway's, or the destination's own when on-link
    # (written as the kernel writes it, which the lookup compares as text).
    on_link = str(ipaddress.ip_address(address))
    neighbour = (gateway or on_link) if route_type == "unicast" else None
    return RouteEvidence(
        destination=address,
        route_found=True,
        route_type=route_type,
        prefix=_reject_prefix(address, route_type),
        gateway=gateway,
        device=_device(index),
        preferred_source=found.address(netlink.RTA_PREFSRC),
        neighbour=neighbour,
        neighbour_state=_neighbour_state(neighbour, index),
    )


def _reject_prefix(address: str, route_type: str) -> str | None:
    """The most specific `route_type` route (any table) whose prefix holds `address`."""
    if route_type not in REJECT_TYPES:
        return None
    ip = ipaddress.ip_address(address)
    family = socket.AF_INET6 if ip.version == 6 else socket.AF_INET
    best: ipaddress.IPv4Network | ipaddress.IPv6Network | None = None
    for entry in netlink.routes(family):
        if ROUTE_TYPES.get(entry.header[RTM_TYPE]) != route_type:
            continue
        zero = "::" if ip.version == 6 else "0.0.0.0"  # a default route has no RTA_DST
        dst = entry.address(netlink.RTA_DST) or zero
        net = ipaddress.ip_network(f"{dst}/{entry.header[RTM_DST_LEN]}")
        if ip in net and (best is None or net.prefixlen > best.prefixlen):
            best = net
    return str(best) if best is not None else None


def _device(index: int | None) -> str | None:
    if index is None:
        return None
    try:
        return netlink.link(index).text(netlink.IFLA_IFNAME)
    except netlink.NetlinkError:
        return None  # gone since the lookup


def _neighbour_state(neighbour: str | None, index: int | None) -> NeighbourState:
    if neighbour is None or index is None:
        return NeighbourState.NONE
    entry = next(
        (n for n in netlink.neighbours(index) if n.address(netlink.NDA_DST) == neighbour), None
    )
    if entry is None:
        return NeighbourState.NONE  # no entry yet: nothing was sent to it lately
    state = entry.header[NDM_STATE]
    return next((name for bit, name in NUD_STATES if state & bit), NeighbourState.NONE)
