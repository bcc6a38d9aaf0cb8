"""The topology SVG of recorded statuses: parsed back, every hop and edge is in it, the failing
hop is marked, text is escaped, and the built-in layout puts ECMP branches in one column."""

from __future__ import annotations

import xml.etree.ElementTree as ET

import pytest

from hopscope_operator.api import ConnectivityCheckStatus
from hopscope_operator.kubectl import svg
from hopscope_probe.models import Hop, HopType, Issue, IssueType, Latency, Origin, Severity

from .test_kubectl import RECORDED

SVG = "{http://www.w3.org/2000/svg}"


def recorded(name: str) -> ConnectivityCheckStatus:
    make, _ = RECORDED[name]
    return ConnectivityCheckStatus.model_validate(make())


def parse(text: str) -> ET.Element:
    return ET.fromstring(text.encode())


def hop_groups(root: ET.Element) -> dict[str, ET.Element]:
    groups = [g for g in root.iter(f"{SVG}g") if "hop" in g.get("class", "").split()]
    return {g.get("data-hop-id", ""): g for g in groups}


def drawn_edges(root: ET.Element) -> set[tuple[str, str]]:
    return {
        (p.get("data-from", ""), p.get("data-to", ""))
        for p in root.iter(f"{SVG}path")
        if p.get("class") == "edge"
    }


def texts(group: ET.Element) -> list[str]:
    return [t.text or "" for t in group.iter(f"{SVG}text")]


@pytest.mark.parametrize("name", sorted(RECORDED))
def test_every_hop_and_every_edge_is_drawn(name):
    status = recorded(name)

    root = parse(svg.builtin_svg(status.hops, status.issues, title=f"check {name}"))

    groups = hop_groups(root)
    assert set(groups) == {h.id for h in status.hops}
    for hop in status.hops:
        group = groups[hop.id]
        assert group.get("data-address") == (hop.address or "*")
        labels = texts(group)
        if hop.type != HopType.SOURCE:
            assert labels[0] == (hop.address or "*")
        if hop.latency is not None:
            assert any(t.startswith(f"avg {hop.latency.avg_ms:.2f} ms") for t in labels)
        if hop.probes_failed:
            assert any(
                f"loss {100 * hop.probes_failed / hop.probes_sent:.0f}%" in t for t in labels
            )
    wanted = {(h.id, n) for h in status.hops for n in h.next_hop_ids}
    assert drawn_edges(root) == wanted
    assert len([p for p in root.iter(f"{SVG}path") if p.get("class") == "edge"]) == len(wanted)


def test_the_failing_hop_is_red_with_its_issue_type():
    status = recorded("blocked")

    root = parse(svg.builtin_svg(status.hops, status.issues))

    groups = hop_groups(root)
    failing = groups["h2-*"]
    assert failing.get("class") == "hop error"
    assert failing.get("data-issues") == "Firewall"
    rect = failing.find(f"{SVG}rect")
    assert rect is not None and rect.get("stroke") == svg.COLOURS["error"][1]
    issue_text = [t.text for t in failing.iter(f"{SVG}text") if t.get("class") == "issue"]
    assert issue_text == ["✗ Error Firewall"]
    assert "silently dropped" in (failing.findtext(f"{SVG}title") or "")
    others = [g for hop_id, g in groups.items() if hop_id != "h2-*"]
    assert all("error" not in g.get("class", "") for g in others)


def test_an_issue_known_only_to_the_check_marks_its_hop():
    """status.issues locates it; the hop's own list may not carry it."""
    status = recorded("blocked")
    hops = [h.model_copy(update={"issues": []}) for h in status.hops]

    groups = hop_groups(parse(svg.builtin_svg(hops, status.issues)))

    assert groups["h2-*"].get("data-issues") == "Firewall"


def test_a_warning_is_amber_not_red():
    status = recorded("multipath")

    groups = hop_groups(parse(svg.builtin_svg(status.hops, status.issues)))

    assert groups["h3-192.0.2.33"].get("class") == "hop warning"
    assert groups["h3-192.0.2.33"].get("data-issues") == "PacketLoss"
    assert not [g for g in groups.values() if "error" in g.get("class", "")]


def test_ecmp_branches_share_a_column_and_columns_follow_ttl():
    status = recorded("multipath")

    boxes = svg.layout(status.hops)

    a, b = boxes["h3-192.0.2.17"], boxes["h3-192.0.2.33"]
    assert a.x == b.x and a.y != b.y
    xs = [boxes[h.id].x for h in sorted(status.hops, key=lambda h: h.ttl or 0)]
    assert xs == sorted(xs) and len(set(xs)) == 6
    # the single-hop columns sit between the two branches
    assert min(a.y, b.y) < boxes["h4-198.51.100.1"].y < max(a.y, b.y)


def test_a_hop_without_ttl_goes_after_its_predecessor():
    hops = [
        Hop(id="source", type=HopType.SOURCE, address="10.0.0.1", ttl=0, next_hop_ids=["x"]),
        Hop(id="x", type=HopType.DESTINATION, address="10.0.0.9"),
    ]
    boxes = svg.layout(hops)
    assert boxes["x"].x > boxes["source"].x


def test_text_is_escaped():
    nasty = "r1 <script>alert(\"x\")</script> & 'q' \x07bell"
    issue = Issue(
        type=IssueType.ROUTING,
        severity=Severity.ERROR,
        origin=Origin.OUTBOUND,
        hop_id="h1-<a&b>",
        message="no route to <10.0.0.0/8> & beyond",
        hint="-",
    )
    hops = [
        Hop(id="source", type=HopType.SOURCE, address="10.0.0.1", ttl=0, next_hop_ids=["h1-<a&b>"]),
        Hop(
            id="h1-<a&b>",
            type=HopType.ROUTER,
            address="10.0.0.2",
            name=nasty,
            ttl=1,
            latency=Latency(min_ms=1, avg_ms=1, max_ms=1),
            issues=[issue],
        ),
    ]

    text = svg.builtin_svg(hops, [issue], title='check "a" <&> b')

    assert "<script>" not in text and "\x07" not in text
    root = parse(text)
    assert root.findtext(f"{SVG}title") == 'check "a" <&> b'
    group = hop_groups(root)["h1-<a&b>"]
    assert texts(group)[1] == svg.cut("r1 <script>alert(\"x\")</script> & 'q' bell")
    assert "no route to <10.0.0.0/8> & beyond" in (group.findtext(f"{SVG}title") or "")
    assert drawn_edges(root) == {("source", "h1-<a&b>")}


def test_an_empty_topology_is_still_a_picture():
    root = parse(svg.builtin_svg([], [], title="no path traced"))
    assert root.tag == f"{SVG}svg"
    assert hop_groups(root) == {}


LONG_TITLE = "shop/gateway-to-payments-db: deployment/gateway-canary → svc/payments-db:5432"


@pytest.mark.parametrize("title", [LONG_TITLE, LONG_TITLE * 4])
def test_the_canvas_is_wide_enough_for_the_title(title: str):
    status = recorded("healthy")
    root = parse(svg.builtin_svg(status.hops[:2], [], title=title))
    text = next(t for t in root.iter(f"{SVG}text") if t.get("class") == "title")
    drawn = text.text or ""
    assert drawn == svg.cut(title, svg.TITLE_CHARS)  # a very long one ends in an ellipsis
    width = float(root.get("width", "0"))
    assert float(text.get("x", "0")) + svg.title_width(drawn) + svg.MARGIN <= width
    assert width <= 2 * svg.MARGIN + svg.TITLE_CHARS * svg.TITLE_CHAR_EM * svg.TITLE_SIZE + 1


def test_dot_source_quotes_names_and_carries_every_edge():
    status = recorded("multipath")
    dot = svg.to_dot(status.hops, status.issues, title='a "quoted" title')
    assert '"a \\"quoted\\" title"' in dot
    for hop in status.hops:
        for nxt in hop.next_hop_ids:
            assert f'"{hop.id}" -> "{nxt}";' in dot


def test_engines_without_graphviz(monkeypatch):
    status = recorded("healthy")
    monkeypatch.setattr(svg.shutil, "which", lambda name: None)

    assert svg.render_svg(status.hops, engine="auto") == svg.builtin_svg(status.hops)
    with pytest.raises(FileNotFoundError, match="dot"):
        svg.render_svg(status.hops, engine="dot")
