"""Reading the MTU probe's sweep: which size vanished after which hop, and what said so."""

from __future__ import annotations

from hopscope_probe.diagnose import diagnose
from hopscope_probe.evidence import (
    Attempt,
    ConnectionEvidence,
    Evidence,
    HopReply,
    HttpAttempt,
    IcmpError,
    IcmpKind,
    MtuEvidence,
    Outcome,
    PathEvidence,
    ReplyKind,
    Stage,
)
from hopscope_probe.models import (
    ConnectionStatus,
    Hop,
    HopType,
    IssueType,
    ProbeRequest,
    Protocol,
    Severity,
)
from hopscope_probe.path.mtu import finding, sizes_for

ROUTERS = ["198.18.1.1", "198.18.2.2", "198.18.3.2"]
DST = "198.18.4.2"
SIZES = (1500, 1450, 1400, 1280)


def replies_of(flow: int, answered_to: int, *, reached: bool, too_big: bool = False):
    """Flow `flow` answered by the routers up to TTL `answered_to`, then by the destination,
    by a frag-needed from the last router, or by nothing."""
    out = [
        HopReply(
            flow=flow, ttl=ttl, attempt=0, sender=ROUTERS[ttl - 1], kind=ReplyKind.TIME_EXCEEDED
        )
        for ttl in range(1, answered_to + 1)
    ]
    nxt = answered_to + 1
    if reached:
        out.append(HopReply(flow=flow, ttl=nxt, attempt=0, sender=DST, kind=ReplyKind.REACHED))
    elif too_big:
        icmp = IcmpError(ROUTERS[answered_to - 1], IcmpKind.FRAG_NEEDED, 3, 4, mtu=1280)
        out.append(
            HopReply(
                flow=flow,
                ttl=nxt,
                attempt=0,
                sender=icmp.sender,
                kind=ReplyKind.UNREACHABLE,
                icmp=icmp,
            )
        )
    else:
        out.append(HopReply(flow=flow, ttl=nxt, attempt=0, sender=None))
    return out


def evidence(*flows: list[HopReply]) -> MtuEvidence:
    replies = tuple(r for flow in flows for r in flow)
    path = PathEvidence(DST, "TCP", 80, len(flows), 1, 30, replies)
    return MtuEvidence(interface_mtu=1500, sizes=SIZES[: len(flows)], path=path)


def test_sizes_run_from_the_interface_mtu_down_to_1280():
    assert sizes_for(1500) == (1500, 1450, 1400, 1280)
    assert sizes_for(9000) == (9000, 1500, 1450, 1400, 1280)
    assert sizes_for(1420) == (1420, 1400, 1280)
    assert sizes_for(1280) == (1280,)


def test_large_sizes_vanishing_after_a_hop_is_a_black_hole_there():
    found = finding(
        evidence(
            replies_of(0, 2, reached=False),
            replies_of(1, 2, reached=False),
            replies_of(2, 2, reached=False),
            replies_of(3, 3, reached=True),
        )
    )
    assert found is not None
    assert (found.passed, found.failed) == (1280, 1400)
    assert (found.last_router, found.last_ttl) == ("198.18.2.2", 2)
    assert found.too_big == ()


def test_a_frag_needed_is_no_black_hole_and_is_kept_with_its_mtu():
    found = finding(
        evidence(
            replies_of(0, 2, reached=False, too_big=True),
            replies_of(1, 2, reached=False, too_big=True),
            replies_of(2, 2, reached=False, too_big=True),
            replies_of(3, 3, reached=True),
        )
    )
    assert found is not None
    assert (found.passed, found.failed) == (1280, None)
    assert [(e.sender, e.mtu) for e in found.too_big] == [("198.18.2.2", 1280)]


def test_every_size_reaching_is_no_finding_of_trouble():
    found = finding(evidence(*(replies_of(f, 3, reached=True) for f in range(4))))
    assert found is not None
    assert (found.passed, found.failed, found.too_big) == (1500, None, ())


def test_a_path_silent_for_every_size_tells_nothing():
    assert finding(evidence(*(replies_of(f, 0, reached=False) for f in range(4)))) is None


# ---- what diagnosis makes of it -------------------------------------------------------------

STALLED = Attempt(
    outcome=Outcome.HTTP_ERROR,
    stage=Stage.HTTP,
    rtt_ms=1.0,
    detail="reading the response: no complete answer within the timeout",
    stalled=True,
)
HOPS = [
    Hop(id="source", type=HopType.SOURCE, address="198.18.1.2", ttl=0),
    *(Hop(id=f"hop-{a}", type=HopType.ROUTER, address=a, ttl=i + 1) for i, a in enumerate(ROUTERS)),
    Hop(id="dest", type=HopType.DESTINATION, address=DST, ttl=4),
]
HTTP = ProbeRequest(host=DST, port=80, protocol=Protocol.HTTP)


def stalled_download(mtu: MtuEvidence | None) -> Evidence:
    conn = ConnectionEvidence("HTTP", DST, 80, (STALLED,), (HttpAttempt(status_code=200),))
    return Evidence(connection=conn, mtu=mtu)


def black_hole() -> MtuEvidence:
    return evidence(
        replies_of(0, 2, reached=False),
        replies_of(1, 2, reached=False),
        replies_of(2, 2, reached=False),
        replies_of(3, 3, reached=True),
    )


def test_a_stalled_download_over_a_black_hole_is_mtu_at_the_hop_not_bad_http():
    result = diagnose(HTTP, stalled_download(black_hole()), HOPS)
    assert [(i.type, i.severity, i.hop_id) for i in result.issues] == [
        (IssueType.MTU, Severity.ERROR, "hop-198.18.2.2")
    ]
    assert result.status == ConnectionStatus.UNREACHABLE


def test_a_stall_the_mtu_probe_cannot_explain_says_it_stalled():
    every_size_passes = evidence(*(replies_of(f, 3, reached=True) for f in range(4)))
    result = diagnose(HTTP, stalled_download(every_size_passes), HOPS)
    (issue,) = result.issues
    assert issue.type == IssueType.HTTP_STATUS
    assert "stalled" in issue.message and "does not speak HTTP" not in issue.hint


def test_a_black_hole_under_passing_probes_is_degraded():
    ok = Attempt(outcome=Outcome.SUCCESS, rtt_ms=1.0)
    conn = ConnectionEvidence("TCP", DST, 80, (ok,))
    result = diagnose(
        ProbeRequest(host=DST, port=80), Evidence(connection=conn, mtu=black_hole()), HOPS
    )
    assert result.status == ConnectionStatus.DEGRADED
