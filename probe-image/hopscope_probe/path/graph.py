"""From a sweep's replies to the hop graph of the result: a DAG from the source to the end.

Each flow is one walk through the network, TTL by TTL. Walks share hops where they pass the same
address at the same TTL, so ECMP shows as branches that split and rejoin. A flow's walk ends
where the destination answered or a router declared it unreachable; a flow that ends nowhere
keeps a single silent hop after its last answer, because that is where its traffic vanished.
"""

from __future__ import annotations

import hashlib
import ipaddress
from collections import defaultdict
from collections.abc import Iterable
from itertools import pairwise

from hopscope_probe.evidence import HopReply, PathEvidence, ReplyKind
from hopscope_probe.models import SOURCE_HOP, Hop, HopType, Latency, PathFigures

SILENT = "*"
ENDS = (ReplyKind.REACHED, ReplyKind.UNREACHABLE)
TIME_EXCEEDED = ReplyKind.TIME_EXCEEDED


def hop_id(ttl: int, address: str | None) -> str:
    return f"h{ttl}-{address or SILENT}"


def _by_flow(path: PathEvidence) -> dict[int, dict[int, list[HopReply]]]:
    flows: dict[int, dict[int, list[HopReply]]] = defaultdict(lambda: defaultdict(list))
    for reply in path.replies:
        flows[reply.flow][reply.ttl].append(reply)
    return flows


def _senders(replies: Iterable[HopReply], kinds: Iterable[ReplyKind] | None = None) -> set[str]:
    wanted = set(kinds) if kinds is not None else None
    return {r.sender for r in replies if r.sender and (wanted is None or r.kind in wanted)}


def _walk(by_ttl: dict[int, list[HopReply]]) -> list[tuple[int, list[str | None]]]:
    """One flow's hops, TTL by TTL: the addresses that answered, or [None] for a silent TTL."""
    ttls = sorted(by_ttl)
    end = next((t for t in ttls if any(r.kind in ENDS for r in by_ttl[t])), None)
    if end is not None and _rejected_by_previous(by_ttl, end):
        end -= 1
    if end is None:
        # Nothing ended the walk: keep one silent TTL after the last answer, where it vanished.
        answered = [t for t in ttls if _senders(by_ttl[t])]
        end = min(answered[-1] + 1 if answered else 1, ttls[-1])
    return [(t, sorted(_senders(by_ttl.get(t, []))) or [None]) for t in range(1, end + 1)]


def _rejected_by_previous(by_ttl: dict[int, list[HopReply]], end: int) -> bool:
    """A router that forwarded TTL t-1 and rejects TTL t (a FORWARD REJECT runs after the TTL
    check): its unreachable is the router already seen, not one more hop."""
    if any(r.kind == ReplyKind.REACHED for r in by_ttl[end]):
        return False
    rejecting = _senders(by_ttl[end], [ReplyKind.UNREACHABLE])
    before = _senders(by_ttl.get(end - 1, []), [ReplyKind.TIME_EXCEEDED])
    return bool(rejecting) and rejecting <= before


def build_hops(
    path: PathEvidence, *, source_address: str | None, names: dict[str, str]
) -> list[Hop]:
    """The source, then one hop per (TTL, address) some flow passed, linked as the flows went."""
    destination = ipaddress.ip_address(path.destination)
    edges: dict[str, set[str]] = defaultdict(set)
    rtts: dict[str, list[float]] = defaultdict(list)
    sent: dict[str, int] = defaultdict(int)
    failed: dict[str, int] = defaultdict(int)
    where: dict[str, tuple[int, str | None]] = {}
    kinds: dict[str, set[ReplyKind | None]] = defaultdict(set)
    for by_ttl in _by_flow(path).values():
        previous = [SOURCE_HOP]
        for ttl, addresses in _walk(by_ttl):
            replies = by_ttl.get(ttl, [])
            current = [hop_id(ttl, address) for address in addresses]
            for address, node in zip(addresses, current, strict=True):
                where[node] = (ttl, address)
                # Counted over this flow's probes at this TTL: the loss this walk saw here.
                sent[node] += len(replies)
                failed[node] += sum(r.sender is None for r in replies)
                rtts[node] += [
                    r.rtt_ms for r in replies if r.sender == address and r.rtt_ms is not None
                ]
                kinds[node] |= {r.kind for r in replies if r.sender == address}
            for before in previous:
                edges[before].update(current)
            previous = current
    source = Hop(
        id=SOURCE_HOP,
        type=HopType.SOURCE,
        address=source_address,
        ttl=0,
        next_hop_ids=sorted(edges[SOURCE_HOP]),
    )
    hops = [source]
    for node, (ttl, address) in sorted(where.items(), key=lambda item: (item[1][0], item[0])):
        # The destination's address expiring probes is a router behind a DNAT, whose errors
        # conntrack gave the address it translated: the destination forwards nothing to itself.
        if address is None:
            kind = HopType.UNKNOWN
        elif ipaddress.ip_address(address) == destination and kinds[node] != {TIME_EXCEEDED}:
            kind = HopType.DESTINATION
        else:
            kind = HopType.ROUTER
        hops.append(
            Hop(
                id=node,
                type=kind,
                address=address,
                name=names.get(address) if address else None,
                ttl=ttl,
                next_hop_ids=sorted(edges[node]),
                latency=Latency.of(rtts[node]),
                probes_sent=sent[node],
                probes_failed=failed[node],
            )
        )
    return hops


def build_paths(path: PathEvidence) -> list[PathFigures]:
    """Each distinct walk of the flows (the hops of `build_hops` in TTL order), with the flows
    that took it and its end's figures, in the order of the first flow that took it. Its end is
    the destination, a rejecting router, or the silent hop where its traffic vanished."""
    flows: dict[tuple[str, ...], list[int]] = defaultdict(list)
    end_replies: dict[tuple[str, ...], list[HopReply]] = defaultdict(list)
    end_addresses: dict[tuple[str, ...], set[str | None]] = {}
    for flow, by_ttl in sorted(_by_flow(path).items()):
        walk = _walk(by_ttl)
        ids = tuple(hop_id(ttl, address) for ttl, addresses in walk for address in addresses)
        end_ttl, addresses = walk[-1]
        flows[ids].append(flow)
        end_replies[ids] += by_ttl.get(end_ttl, [])
        end_addresses[ids] = set(addresses)
    return [
        PathFigures(
            hop_ids=list(ids),
            flows=taken,
            latency=Latency.of(
                [
                    r.rtt_ms
                    for r in end_replies[ids]
                    if r.sender in end_addresses[ids] and r.rtt_ms is not None
                ]
            ),
            probes_sent=len(end_replies[ids]),
            probes_failed=sum(r.sender is None for r in end_replies[ids]),
        )
        for ids, taken in flows.items()
    ]


def find_loops(path: PathEvidence) -> list[tuple[str, list[int]]]:
    """Routers that expire the same flow's probes at two TTLs with another router answering
    between: the probes came back to them, so the route loops. Ordered by the first TTL of each.

    Not loops: a flow that reached the destination (a looping packet never arrives, while a
    path through a DNAT can pass one router twice, once toward the Service's address and once
    toward its backend), a router answering at consecutive TTLs, and time-exceeded sent from the
    destination's own address (the DNAT router's conntrack rewrites the source of the errors it
    relays to the address it translated, so every router behind it seems to be the destination).
    """
    destination = ipaddress.ip_address(path.destination)
    ttls: dict[str, set[int]] = defaultdict(set)
    for by_ttl in _by_flow(path).values():
        if any(r.kind == ReplyKind.REACHED for replies in by_ttl.values() for r in replies):
            continue
        walk = [
            (ttl, address)
            for ttl in sorted(by_ttl)
            for address in _senders(by_ttl[ttl], [TIME_EXCEEDED])
            if ipaddress.ip_address(address) != destination
        ]
        for address in {a for _, a in walk}:
            at = [ttl for ttl, a in walk if a == address]
            others = {ttl for ttl, a in walk if a != address}
            if any(first < other < last for other in others for first, last in pairwise(at)):
                ttls[address] |= set(at)
    return sorted(((a, sorted(t)) for a, t in ttls.items()), key=lambda loop: (loop[1], loop[0]))


def fingerprint(hops: list[Hop]) -> str:
    """A short hash of who links to whom (by address): changes with the path, not with its
    latency or loss, nor with the source's own address."""
    label = {
        hop.id: SOURCE_HOP if hop.type == HopType.SOURCE else (hop.address or SILENT)
        for hop in hops
    }
    edges = sorted({f"{label[h.id]}>{label.get(n, n)}" for h in hops for n in h.next_hop_ids})
    return hashlib.sha256("\n".join(edges).encode()).hexdigest()[:12]
