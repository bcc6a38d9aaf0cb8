"""The source's own routing decision for a destination and the state of the next hop's
link-layer address, read from the kernel over netlink (what `ip route get` and `ip neigh` show)."""

from __future__ import annotations

import errno
import ipaddress
import os
import socket
from typing import TYPE_CHECKING

from hopscope_probe.evidence import NeighbourState, RouteEvidence

if TYPE_CHECKING:
    from pyroute2 import IPRoute

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


def preload() -> None:
    """Import pyroute2 (~0.2 s of a diagnosis) ahead of `inspect`, in another thread."""
    import pyroute2  # noqa: F401


def inspect(address: str) -> RouteEvidence:
    """Run in the source's network namespace: the netlink socket belongs to the caller's."""
    # Imported here: pyroute2 is heavy, and only the probe (not the CLI's argument checks) needs it.
    from pyroute2 import IPRoute
    from pyroute2.netlink.exceptions import NetlinkError

    with IPRoute() as ipr:
        try:
            found = ipr.route("get", dst=address)[0]
        except NetlinkError as exc:
            route_type, why = ERROR_ROUTES.get(exc.code, ("unknown", "route lookup failed"))
            name = errno.errorcode.get(exc.code, str(exc.code))
            # The lookup's error does not say which route matched: the table does.
            prefix = _reject_prefix(ipr, address, route_type)
            if prefix is not None:  # IPv6 fails an unreachable route with ENETUNREACH too
                why = f"the {route_type} route {prefix} matches"
            return RouteEvidence(
                destination=address,
                route_found=prefix is not None,
                route_type=route_type,
                prefix=prefix,
                detail=f"{why} ({name}: {os.strerror(exc.code)})",
            )
        route_type = ROUTE_TYPES.get(found["type"], str(found["type"]))
        gateway = found.get_attr("RTA_GATEWAY")
        index = found.get_attr("RTA_OIF")
        # The link-layer entry needed is the gateway's, or the destination's own when on-link
        # (written as the kernel writes it, which the lookup compares as text).
        on_link = str(ipaddress.ip_address(address))
        neighbour = (gateway or on_link) if route_type == "unicast" else None
        return RouteEvidence(
            destination=address,
            route_found=True,
            route_type=route_type,
            prefix=_reject_prefix(ipr, address, route_type),
            gateway=gateway,
            device=_device(ipr, index),
            preferred_source=found.get_attr("RTA_PREFSRC"),
            neighbour=neighbour,
            neighbour_state=_neighbour_state(ipr, neighbour, index),
        )


def _reject_prefix(ipr: IPRoute, address: str, route_type: str) -> str | None:
    """The most specific `route_type` route (any table) whose prefix holds `address`."""
    if route_type not in REJECT_TYPES:
        return None
    ip = ipaddress.ip_address(address)
    family = socket.AF_INET6 if ip.version == 6 else socket.AF_INET
    best: ipaddress.IPv4Network | ipaddress.IPv6Network | None = None
    for entry in ipr.get_routes(family=family):
        if ROUTE_TYPES.get(entry["type"]) != route_type:
            continue
        zero = "::" if ip.version == 6 else "0.0.0.0"  # a default route has no RTA_DST
        net = ipaddress.ip_network(f"{entry.get_attr('RTA_DST') or zero}/{entry['dst_len']}")
        if ip in net and (best is None or net.prefixlen > best.prefixlen):
            best = net
    return str(best) if best is not None else None


def _device(ipr: IPRoute, index: int | None) -> str | None:
    if index is None:
        return None
    links = ipr.get_links(index)
    return links[0].get_attr("IFLA_IFNAME") if links else None


def _neighbour_state(ipr: IPRoute, neighbour: str | None, index: int | None) -> NeighbourState:
    if neighbour is None or index is None:
        return NeighbourState.NONE
    entry = next(iter(ipr.get_neighbours(ifindex=index, dst=neighbour)), None)
    if entry is None:
        return NeighbourState.NONE  # no entry yet: nothing was sent to it lately
    return next((name for bit, name in NUD_STATES if entry["state"] & bit), NeighbourState.NONE)
