"""The hop graph built from recorded sweeps: what the result's hops and diagnosis rest on."""

from __future__ import annotations

from dataclasses import replace

from hopscope_probe.diagnose import HopIndex, path_issues
from hopscope_probe.evidence import HopReply, IcmpError, IcmpKind, PathEvidence, ReplyKind
from hopscope_probe.models import Hop, HopType, IssueType, ProbeRequest
from hopscope_probe.path.graph import build_hops, build_paths, find_loops, fingerprint

SRC, R1, R2, R2B, R3, DST = (
    "198.18.1.2",
    "198.18.1.1",
    "198.18.2.2",
    "198.18.6.2",
    "198.18.3.2",
    "198.18.4.2",
)
TE = ReplyKind.TIME_EXCEEDED


def replies(
    flow: int,
    ttl: int,
    *senders: str | None,
    kind: ReplyKind = TE,
    rtt: float = 1.0,
    icmp: IcmpError | None = None,
) -> list[HopReply]:
    """One reply per attempt at this TTL; a None sender is an unanswered probe."""
    return [
        HopReply(
            flow=flow,
            ttl=ttl,
            attempt=attempt,
            sender=sender,
            rtt_ms=rtt + attempt if sender else None,
            kind=(kind if sender != DST else ReplyKind.REACHED) if sender else None,
            icmp=icmp if sender else None,
        )
        for attempt, sender in enumerate(senders)
    ]


def path(*groups: list[HopReply], flows: int = 1) -> PathEvidence:
    return PathEvidence(
        destination=DST,
        protocol="TCP",
        port=80,
        flows=flows,
        probes_per_hop=3,
        max_hops=8,
        replies=tuple(r for group in groups for r in group),
    )


def straight(flow: int = 0, second: str = R2) -> list[list[HopReply]]:
    return [
        replies(flow, 1, R1, R1, R1),
        replies(flow, 2, second, second, second),
        replies(flow, 3, R3, R3, R3),
        replies(flow, 4, DST, DST, DST, rtt=4.0),
        replies(flow, 5, DST),  # probes beyond the destination add nothing
    ]


def hops_of(evidence: PathEvidence, names: dict[str, str] | None = None) -> dict[str, Hop]:
    built = build_hops(evidence, source_address=SRC, names=names or {})
    return {hop.id: hop for hop in built}


def test_single_path_is_a_chain_from_the_source_to_the_destination():
    hops = hops_of(path(*straight()), names={R2: "r2.lab.test"})
    assert list(hops) == ["source", f"h1-{R1}", f"h2-{R2}", f"h3-{R3}", f"h4-{DST}"]
    chain = [hops[h].next_hop_ids for h in hops]
    assert chain == [[f"h1-{R1}"], [f"h2-{R2}"], [f"h3-{R3}"], [f"h4-{DST}"], []]
    source, dest = hops["source"], hops[f"h4-{DST}"]
    assert (source.type, source.address, source.ttl) == (HopType.SOURCE, SRC, 0)
    assert (dest.type, dest.ttl) == (HopType.DESTINATION, 4)
    assert hops[f"h2-{R2}"].type == HopType.ROUTER
    assert hops[f"h2-{R2}"].name == "r2.lab.test"
    assert dest.latency is not None
    assert (dest.latency.min_ms, dest.latency.avg_ms, dest.latency.max_ms) == (4.0, 5.0, 6.0)
    assert (dest.probes_sent, dest.probes_failed) == (3, 0)


def test_silent_tail_keeps_one_silent_hop_where_traffic_vanishes():
    silent = [replies(0, ttl, None, None, None) for ttl in range(4, 9)]
    evidence = path(*straight()[:3], *silent)
    hops = hops_of(evidence)
    assert list(hops) == ["source", f"h1-{R1}", f"h2-{R2}", f"h3-{R3}", "h4-*"]
    gone = hops["h4-*"]
    assert (gone.type, gone.address, gone.ttl) == (HopType.UNKNOWN, None, 4)
    assert (gone.probes_sent, gone.probes_failed) == (3, 3)
    assert hops[f"h3-{R3}"].next_hop_ids == ["h4-*"]
    # What diagnosis reads from it: the drop is after r3.
    first_silent, last = HopIndex(list(hops.values()), DST).first_silent_after_answers()
    assert (first_silent.id, last.address) == ("h4-*", R3)


def test_nothing_answered_is_one_silent_hop_right_after_the_source():
    hops = hops_of(path(*[replies(0, ttl, None, None, None) for ttl in range(1, 9)]))
    assert list(hops) == ["source", "h1-*"]
    assert hops["source"].next_hop_ids == ["h1-*"]


def test_a_silent_router_inside_the_path_stays_in_it():
    groups = straight()
    groups[1] = replies(0, 2, None, None, None)
    hops = hops_of(path(*groups))
    assert list(hops) == ["source", f"h1-{R1}", "h2-*", f"h3-{R3}", f"h4-{DST}"]
    assert hops["h2-*"].next_hop_ids == [f"h3-{R3}"]


def test_loss_counts_the_probes_a_hop_did_not_answer():
    groups = straight()
    groups[2] = replies(0, 3, R3, None, R3)
    hop = hops_of(path(*groups))[f"h3-{R3}"]
    assert (hop.probes_sent, hop.probes_failed) == (3, 1)
    assert hop.latency is not None and hop.latency.avg_ms == 2.0  # (1 + 3) / 2


def test_ecmp_branches_split_and_rejoin():
    evidence = path(*straight(0, R2), *straight(1, R2B), *straight(2, R2B), flows=3)
    hops = hops_of(evidence)
    assert hops[f"h1-{R1}"].next_hop_ids == [f"h2-{R2}", f"h2-{R2B}"]
    assert hops[f"h2-{R2}"].next_hop_ids == [f"h3-{R3}"]
    assert hops[f"h2-{R2B}"].next_hop_ids == [f"h3-{R3}"]
    assert [h for h in hops.values() if h.ttl == 3] == [hops[f"h3-{R3}"]]
    # Each branch counts the probes of the flows that took it.
    assert hops[f"h2-{R2}"].probes_sent == 3
    assert hops[f"h2-{R2B}"].probes_sent == 6
    assert hops[f"h3-{R3}"].probes_sent == 9


def test_unreachable_from_a_router_ends_the_path_there():
    no_route = IcmpError(sender=R2, kind=IcmpKind.NET_UNREACHABLE, type=3, code=0)
    evidence = path(
        replies(0, 1, R1, R1, R1),
        *[
            replies(0, ttl, R2, R2, R2, kind=ReplyKind.UNREACHABLE, icmp=no_route)
            for ttl in (2, 3, 4)
        ],
    )
    hops = hops_of(evidence)
    assert list(hops) == ["source", f"h1-{R1}", f"h2-{R2}"]
    assert hops[f"h2-{R2}"].next_hop_ids == []


def test_reject_after_the_ttl_check_is_the_router_already_seen():
    """A FORWARD REJECT: r2 expires TTL 2 and rejects TTL 3; r2 is one hop, not two, and
    that is no loop."""
    reject = IcmpError(sender=R2, kind=IcmpKind.ADMIN_PROHIBITED, type=3, code=13)
    evidence = path(
        replies(0, 1, R1, R1, R1),
        replies(0, 2, R2, R2, R2),
        *[replies(0, ttl, R2, R2, R2, kind=ReplyKind.UNREACHABLE, icmp=reject) for ttl in (3, 4)],
    )
    hops = hops_of(evidence)
    assert list(hops) == ["source", f"h1-{R1}", f"h2-{R2}"]
    assert find_loops(evidence) == []


def test_routing_loop_is_found_with_its_ttls():
    evidence = path(*[replies(0, ttl, R1 if ttl % 2 else R2) for ttl in range(1, 7)])
    assert find_loops(evidence) == [(R1, [1, 3, 5]), (R2, [2, 4, 6])]
    assert find_loops(path(*straight())) == []


def test_the_same_router_in_two_flows_at_different_ttls_is_no_loop():
    shorter = [replies(1, 1, R2), replies(1, 2, DST)]
    assert find_loops(path(*straight(0), *shorter, flows=2)) == []


def test_fingerprint_follows_the_path_not_its_latency():
    base = build_hops(path(*straight()), source_address=SRC, names={})
    slower = [[replace(r, rtt_ms=50.0) for r in group] for group in straight()]
    slow = build_hops(path(*slower), source_address=SRC, names={})
    moved = build_hops(path(*straight(second=R2B)), source_address=SRC, names={})
    silent = straight()
    silent[1] = replies(0, 2, None, None, None)
    hidden = build_hops(path(*silent), source_address=SRC, names={})
    other_source = build_hops(path(*straight()), source_address="198.18.1.99", names={})
    assert fingerprint(base) == fingerprint(slow) == fingerprint(other_source)
    assert len({fingerprint(base), fingerprint(moved), fingerprint(hidden)}) == 3


def test_nothing_sent_is_the_source_alone():
    hops = build_hops(path(), source_address=SRC, names={})
    assert [(h.id, h.next_hop_ids) for h in hops] == [("source", [])]


def test_each_ecmp_path_keeps_its_own_flows_latency_and_loss():
    dead = [replies(1, 1, R1, R1, R1), replies(1, 2, R2B, R2B, R2B)]
    dead += [replies(1, ttl, None, None, None) for ttl in (3, 4, 5)]
    evidence = path(*straight(0, R2), *dead, *straight(2, R2), flows=3)
    first, second = build_paths(evidence)
    assert first.hop_ids == [f"h1-{R1}", f"h2-{R2}", f"h3-{R3}", f"h4-{DST}"]
    assert first.flows == [0, 2]
    assert (first.probes_sent, first.probes_failed) == (6, 0)
    assert first.latency is not None and first.latency.max_ms == 6.0  # rtt 4 + attempt 2
    assert second.hop_ids == [f"h1-{R1}", f"h2-{R2B}", "h3-*"]
    assert second.flows == [1]
    assert (second.probes_sent, second.probes_failed, second.latency) == (3, 3, None)


def test_the_diagnosis_names_the_one_path_that_fails():
    dead = [replies(1, 1, R1, R1, R1), replies(1, 2, R2B, R2B, R2B)]
    dead += [replies(1, ttl, None, None, None) for ttl in (3, 4, 5)]
    evidence = path(*straight(0, R2), *dead, flows=2)
    hops = build_hops(evidence, source_address=SRC, names={})
    request = ProbeRequest(host=DST, port=80)
    (issue,) = path_issues(build_paths(evidence), HopIndex(hops, DST), request)
    assert issue.type == IssueType.PACKET_LOSS and issue.hop_id == "h3-*"
    assert f"path 2 of 2 ({R1} > {R2B} > *) fails" in issue.message
    assert f"after {R2B}" in issue.message
    healthy = path(*straight(0, R2), *straight(1, R2B), flows=2)
    hops = build_hops(healthy, source_address=SRC, names={})
    assert path_issues(build_paths(healthy), HopIndex(hops, DST), request) == []


def expired_by(flow: int, ttl: int, sender: str) -> HopReply:
    """A time-exceeded from any sender, the destination's address included (a DNAT rewrote it)."""
    return HopReply(flow=flow, ttl=ttl, attempt=0, sender=sender, rtt_ms=1.0, kind=TE)


def test_time_exceeded_from_the_destinations_address_is_a_router_behind_a_dnat_not_a_loop():
    """conntrack on the DNAT router gives every router's error the Service's address."""
    dnat = path(*[[expired_by(0, ttl, DST)] for ttl in (1, 2, 3)], replies(0, 4, DST))
    assert find_loops(dnat) == []
    hops = hops_of(dnat)
    assert [hops[f"h{ttl}-{DST}"].type for ttl in (1, 2, 3, 4)] == [HopType.ROUTER] * 3 + [
        HopType.DESTINATION
    ]
    assert HopIndex(list(hops.values()), DST).by_address(DST) == f"h4-{DST}"


def test_a_flow_that_reached_the_destination_did_not_loop():
    """A backend behind an earlier router: r1 forwards toward the Service, then toward it."""
    hairpin = path(replies(0, 1, R1), replies(0, 2, R2), replies(0, 3, R1), replies(0, 4, DST))
    assert find_loops(hairpin) == []


def test_a_router_answering_at_consecutive_ttls_only_is_no_loop():
    repeated = path(replies(0, 1, R1), replies(0, 2, R2), replies(0, 3, R2), replies(0, 4, None))
    assert find_loops(repeated) == []
    looping = path(replies(0, 1, R1), replies(0, 2, R2), replies(0, 3, R1), replies(0, 4, None))
    assert find_loops(looping) == [(R1, [1, 3])]
