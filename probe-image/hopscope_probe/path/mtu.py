"""The MTU probe: the path sweep with DF packets of several sizes, one flow per size.

Overlays (VXLAN, Geneve, WireGuard, IPIP) narrow the path; when the ICMP frag-needed or
packet-too-big that would say so is filtered, small packets pass and full-size ones vanish.
Sweeping every TTL with each size at once finds the hop after which the large ones stop being
answered, at the cost of one sweep. `finding` reads the result; diagnose turns it into issues.
"""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass

from hopscope_probe import netlink
from hopscope_probe.evidence import HopReply, IcmpError, IcmpKind, MtuEvidence, ReplyKind
from hopscope_probe.path import sweep
from hopscope_probe.path.transport import PathUnavailable

# Common overlay MTUs below Ethernet's, down to IPv6's minimum (which every IPv6 link carries).
SIZES = (1500, 1450, 1400, 1280)
MIN_SIZE = 1280
PROBES_PER_SIZE = 3  # per TTL: one lost probe must not read as a size that vanishes


def sizes_for(interface_mtu: int) -> tuple[int, ...]:
    """The interface's MTU, then the common sizes below it, down to 1280."""
    wanted = {interface_mtu, *(s for s in SIZES if s < interface_mtu)}
    return tuple(sorted((s for s in wanted if s >= MIN_SIZE), reverse=True))


def interface_mtu(address: str) -> int:
    """The MTU of the interface the route to `address` leaves by (the device's, not a cached
    path MTU: a frag-needed seen earlier must not hide what is being looked for)."""
    try:
        index = netlink.route_get(address).number(netlink.RTA_OIF)
        mtu = netlink.link(index).number(netlink.IFLA_MTU) if index is not None else None
    except netlink.NetlinkError as exc:  # no route: the route check names why
        raise PathUnavailable(f"no route to {address} to take the MTU of") from exc
    if mtu is None:
        raise PathUnavailable(f"the route to {address} names no interface to take the MTU of")
    return mtu


def probe(
    address: str, *, protocol: str, port: int | None, max_hops: int, timeout: float
) -> MtuEvidence:
    """Raises PathUnavailable without raw sockets or without a route."""
    mtu = interface_mtu(address)
    sizes = sizes_for(mtu) or (mtu,)  # an interface below 1280 (IPv4 only): probe just that
    path = sweep.discover(
        address,
        protocol=protocol,
        port=port,
        max_hops=max_hops,
        probes_per_hop=PROBES_PER_SIZE,
        flows=len(sizes),
        timeout=timeout,
        sizes=sizes,
    )
    return MtuEvidence(interface_mtu=mtu, sizes=sizes, path=path)


@dataclass(frozen=True)
class MtuFinding:
    passed: int | None  # the largest size that got as far as any size did
    failed: int | None  # the smallest larger size that did not: None, no black hole
    last_router: str | None  # the last hop that answered the failed size (None: the source)
    last_ttl: int  # its TTL (0: not even the first hop answered)
    too_big: tuple[IcmpError, ...]  # frag-needed / packet-too-big, one per sender


def finding(evidence: MtuEvidence) -> MtuFinding | None:
    """None when the sweep learnt nothing (no size was answered at all)."""
    replies = evidence.path.replies
    depth = {flow: _depth(replies, flow) for flow in range(len(evidence.sizes))}
    best = max(depth.values(), default=0)
    too_big = _too_big(replies)
    if best == 0 and not too_big:
        return None
    passed = max((evidence.sizes[f] for f, d in depth.items() if d == best), default=None)
    larger = [f for f, d in depth.items() if d < best and evidence.sizes[f] > (passed or 0)]
    failed_flow = min(larger, key=lambda f: evidence.sizes[f], default=None)
    # A size a router answered with frag-needed did not vanish: PMTUD works for it.
    if failed_flow is not None and any(r.flow == failed_flow for r in _too_big_replies(replies)):
        failed_flow = None
    if failed_flow is None:
        return MtuFinding(passed, None, None, 0, too_big)
    last_ttl = depth[failed_flow]
    last = next(
        (r.sender for r in replies if r.flow == failed_flow and r.ttl == last_ttl and r.sender),
        None,
    )
    return MtuFinding(passed, evidence.sizes[failed_flow], last, last_ttl, too_big)


def _depth(replies: tuple[HopReply, ...], flow: int) -> int:
    """How far this flow's probes were answered: the destination counts as beyond every TTL."""
    answered = [r for r in replies if r.flow == flow and r.sender is not None]
    if any(r.kind == ReplyKind.REACHED for r in answered):
        return 1 << 16
    return max((r.ttl for r in answered if r.kind == ReplyKind.TIME_EXCEEDED), default=0)


def _too_big_replies(replies: tuple[HopReply, ...]) -> list[HopReply]:
    return [r for r in replies if r.icmp is not None and r.icmp.kind == IcmpKind.FRAG_NEEDED]


def _too_big(replies: tuple[HopReply, ...]) -> tuple[IcmpError, ...]:
    seen: dict[str, IcmpError] = {}
    for icmp in (r.icmp for r in _too_big_replies(replies)):
        if icmp is not None:
            seen.setdefault(icmp.sender, icmp)
    return tuple(sorted(seen.values(), key=lambda e: ipaddress.ip_address(e.sender)))
