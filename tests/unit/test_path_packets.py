"""Probe packets: what leaves is a valid packet of its flow, and only true replies match it.

Replies are forged with scapy the way routers and destinations build them, and handed to
`Probes.match` as the transport delivers them: from the ICMP/TCP/UDP header on.
"""

from __future__ import annotations

import random
import socket

import pytest
from scapy.layers.dns import DNS, DNSQR
from scapy.layers.inet import ICMP, IP, TCP, UDP
from scapy.layers.inet6 import (
    ICMPv6DestUnreach,
    ICMPv6EchoReply,
    ICMPv6PacketTooBig,
    ICMPv6TimeExceeded,
    IPv6,
)
from scapy.packet import Packet, Raw

from hopscope_probe.evidence import IcmpKind, ReplyKind
from hopscope_probe.path.packets import Probes

SRC = {4: "198.18.1.2", 6: "2001:db8:1::2"}
DST = {4: "198.18.4.2", 6: "2001:db8:4::2"}
ROUTER = {4: "198.18.2.2", 6: "2001:db8:2::2"}
OTHER = {4: "198.18.9.9", 6: "2001:db8:9::9"}
PORTS = {"TCP": 8080, "UDP": None, "ICMP": None}
IDENTS = [40001, 40002]
COUNT = 90  # 30 TTLs x 3 attempts
TCP_ = socket.IPPROTO_TCP
UDP_ = socket.IPPROTO_UDP
ICMP_ = {4: socket.IPPROTO_ICMP, 6: socket.IPPROTO_ICMPV6}
CASES = [(v, p) for v in (4, 6) for p in ("TCP", "UDP", "ICMP")]


def probes(version: int, protocol: str, seed: int = 7) -> Probes:
    return Probes(
        protocol=protocol,
        source=SRC[version],
        destination=DST[version],
        port=PORTS[protocol],
        idents=IDENTS,
        count=COUNT,
        rng=random.Random(seed),
    )


def parsed(version: int, packet: bytes) -> Packet:
    return IP(packet) if version == 4 else IPv6(packet)


def time_exceeded(version: int, quoted: bytes) -> bytes:
    if version == 4:
        return bytes(ICMP(type=11, code=0) / Raw(quoted))
    return bytes(ICMPv6TimeExceeded(code=0) / Raw(quoted))


def unreachable(version: int, code: int, quoted: bytes) -> bytes:
    if version == 4:
        return bytes(ICMP(type=3, code=code) / Raw(quoted))
    return bytes(ICMPv6DestUnreach(code=code) / Raw(quoted))


def echo_reply(version: int, ident: int, seq: int) -> bytes:
    if version == 4:
        return bytes(ICMP(type=0, id=ident, seq=seq))
    return bytes(ICMPv6EchoReply(id=ident, seq=seq))


# ---- what leaves --------------------------------------------------------------------------


@pytest.mark.parametrize(("version", "protocol"), CASES)
def test_probes_carry_valid_checksums(version: int, protocol: str):
    """A destination drops a probe with a bad checksum silently: a false silent drop."""
    p = probes(version, protocol)
    for index in (0, 1, 44, COUNT - 1):
        pkt = parsed(version, p.packet(1, index, ttl=5))
        l4 = pkt.payload
        field = "cksum" if version == 6 and protocol == "ICMP" else "chksum"
        sent = getattr(l4, field)
        delattr(l4, field)  # let scapy compute it afresh
        assert getattr(parsed(version, bytes(pkt)).payload, field) == sent, index


@pytest.mark.parametrize(("version", "protocol"), CASES)
def test_a_flow_keeps_what_routers_hash_across_ttls_and_attempts(version: int, protocol: str):
    p = probes(version, protocol)

    def flow_key(flow: int, index: int, ttl: int) -> tuple:
        pkt = parsed(version, p.packet(flow, index, ttl))
        l4 = pkt.payload
        head = (pkt.src, pkt.dst, pkt.fl if version == 6 else None)
        if protocol == "ICMP":
            checksum = l4.cksum if version == 6 else l4.chksum
            return (*head, l4.id, checksum)  # Paris: the checksum is constant too
        return (*head, l4.sport, l4.dport)

    first = {flow_key(0, index, ttl) for index, ttl in [(0, 1), (5, 6), (40, 11), (89, 30)]}
    second = {flow_key(1, index, ttl) for index, ttl in [(0, 1), (89, 30)]}
    assert len(first) == 1 and len(second) == 1
    assert first != second


@pytest.mark.parametrize(("version", "protocol"), CASES)
def test_ttl_and_addresses_are_as_asked(version: int, protocol: str):
    pkt = parsed(version, probes(version, protocol).packet(0, 3, ttl=17))
    assert (pkt.ttl if version == 4 else pkt.hlim) == 17
    assert (pkt.src, pkt.dst) == (SRC[version], DST[version])
    if protocol != "ICMP":
        assert pkt.payload.dport == (8080 if protocol == "TCP" else 33434)
        assert pkt.payload.sport == IDENTS[0]


def test_tcp_probe_is_a_syn():
    pkt = parsed(4, probes(4, "TCP").packet(0, 0, ttl=1))
    assert pkt[TCP].flags == "S"


def test_udp_payload_is_a_dns_query_so_dns_servers_answer():
    pkt = parsed(4, probes(4, "UDP").packet(0, 0, ttl=1))
    query = DNS(bytes(pkt[UDP].payload))
    assert query.qr == 0 and query.qdcount == 1 and query[DNSQR].qname == b"."


def test_out_of_range_index_is_refused():
    with pytest.raises(ValueError):
        probes(4, "TCP").packet(0, COUNT, ttl=1)


# ---- ICMP errors quoting a probe ----------------------------------------------------------


@pytest.mark.parametrize(("version", "protocol"), CASES)
def test_time_exceeded_quoting_a_probe_names_it(version: int, protocol: str):
    p = probes(version, protocol)
    quoted = p.packet(1, 44, ttl=1)  # as the router received it
    found = p.match(time_exceeded(version, quoted), ROUTER[version], ICMP_[version])
    assert found is not None
    assert (found.flow, found.index, found.sender) == (1, 44, ROUTER[version])
    assert found.kind == ReplyKind.TIME_EXCEEDED
    assert found.icmp is not None and found.icmp.kind == IcmpKind.TTL_EXCEEDED
    assert found.quoted_ttl == 1


@pytest.mark.parametrize("protocol", ["TCP", "UDP", "ICMP"])
def test_an_ipv4_router_quoting_only_eight_bytes_is_enough(protocol: str):
    p = probes(4, protocol)
    quoted = p.packet(0, 61, ttl=1)[: 20 + 8]
    found = p.match(time_exceeded(4, quoted), ROUTER[4], ICMP_[4])
    assert found is not None and (found.flow, found.index) == (0, 61)


@pytest.mark.parametrize("version", [4, 6])
def test_port_unreachable_from_the_destination_is_reached(version: int):
    p = probes(version, "UDP")
    reply = unreachable(version, 3 if version == 4 else 4, p.packet(0, 9, ttl=1))
    found = p.match(reply, DST[version], ICMP_[version])
    assert found is not None and found.index == 9
    assert found.kind == ReplyKind.REACHED
    assert found.icmp is not None and found.icmp.kind == IcmpKind.PORT_UNREACHABLE


@pytest.mark.parametrize("version", [4, 6])
def test_port_unreachable_from_a_router_is_a_reject_not_the_destination(version: int):
    p = probes(version, "UDP")
    reply = unreachable(version, 3 if version == 4 else 4, p.packet(0, 9, ttl=2))
    found = p.match(reply, ROUTER[version], ICMP_[version])
    assert found is not None and found.kind == ReplyKind.UNREACHABLE


@pytest.mark.parametrize(
    ("version", "code", "kind"),
    [
        (4, 13, IcmpKind.ADMIN_PROHIBITED),
        (4, 0, IcmpKind.NET_UNREACHABLE),
        (4, 1, IcmpKind.HOST_UNREACHABLE),
        (6, 1, IcmpKind.ADMIN_PROHIBITED),
        (6, 0, IcmpKind.NET_UNREACHABLE),
        (6, 3, IcmpKind.HOST_UNREACHABLE),
    ],
)
def test_router_unreachables_are_named(version: int, code: int, kind: IcmpKind):
    p = probes(version, "TCP")
    found = p.match(
        unreachable(version, code, p.packet(0, 4, ttl=2)), ROUTER[version], ICMP_[version]
    )
    assert found is not None
    assert found.kind == ReplyKind.UNREACHABLE
    assert found.icmp is not None and (found.icmp.kind, found.icmp.code) == (kind, code)


def test_packet_too_big_is_an_mtu_unreachable():
    p = probes(6, "TCP")
    reply = bytes(ICMPv6PacketTooBig(mtu=1280) / Raw(p.packet(0, 4, ttl=2)))
    found = p.match(reply, ROUTER[6], ICMP_[6])
    assert found is not None and found.icmp is not None
    assert (found.kind, found.icmp.kind) == (ReplyKind.UNREACHABLE, IcmpKind.FRAG_NEEDED)
    assert found.icmp.mtu == 1280


def test_frag_needed_names_its_next_hop_mtu():
    p = probes(4, "TCP")
    reply = bytes(ICMP(type=3, code=4, nexthopmtu=1400) / Raw(p.packet(0, 4, ttl=2)))
    found = p.match(reply, ROUTER[4], ICMP_[4])
    assert found is not None and found.icmp is not None
    assert (found.icmp.kind, found.icmp.mtu) == (IcmpKind.FRAG_NEEDED, 1400)


@pytest.mark.parametrize(("version", "protocol"), CASES)
def test_sized_probes_are_valid_unfragmentable_packets_of_their_size(version: int, protocol: str):
    p = Probes(
        protocol=protocol,
        source=SRC[version],
        destination=DST[version],
        port=PORTS[protocol],
        idents=IDENTS,
        count=COUNT,
        sizes=(1500, 1280),
    )
    for flow, size in enumerate((1500, 1280)):
        raw = p.packet(flow, 5, ttl=3)
        assert len(raw) == size
        pkt = parsed(version, raw)
        if version == 4:
            assert pkt.flags == "DF"
        l4 = pkt.payload
        field = "cksum" if version == 6 and protocol == "ICMP" else "chksum"
        sent = getattr(l4, field)
        delattr(l4, field)
        if protocol == "UDP":
            del l4.len  # the UDP length must cover the padding too
        assert getattr(parsed(version, bytes(pkt)).payload, field) == sent
        # A router's error quoting it still names the probe.
        reply = time_exceeded(version, raw)
        found = p.match(reply, ROUTER[version], ICMP_[version])
        assert found is not None and (found.flow, found.index) == (flow, 5)


# ---- direct answers of the destination ---------------------------------------------------


@pytest.mark.parametrize("version", [4, 6])
@pytest.mark.parametrize("flags", ["SA", "RA"])
def test_syn_ack_or_rst_acknowledging_a_probe_names_it(version: int, flags: str):
    p = probes(version, "TCP")
    seq = parsed(version, p.packet(1, 50, ttl=9))[TCP].seq
    reply = bytes(TCP(sport=8080, dport=IDENTS[1], flags=flags, ack=(seq + 1) % 2**32))
    found = p.match(reply, DST[version], TCP_)
    assert found is not None
    assert (found.flow, found.index, found.kind) == (1, 50, ReplyKind.REACHED)
    assert found.icmp is None


@pytest.mark.parametrize("version", [4, 6])
def test_echo_reply_names_the_probe(version: int):
    p = probes(version, "ICMP")
    found = p.match(echo_reply(version, IDENTS[0], 33), DST[version], ICMP_[version])
    assert found is not None
    assert (found.flow, found.index, found.kind) == (0, 33, ReplyKind.REACHED)


@pytest.mark.parametrize("version", [4, 6])
def test_udp_answer_echoing_the_payload_names_the_probe(version: int):
    """A DNS server copies the query ID, an echo server the whole payload."""
    p = probes(version, "UDP")
    payload = bytes(parsed(version, p.packet(1, 77, ttl=9))[UDP].payload)
    for answer in (payload, bytes(DNS(payload, qr=1, rcode=5))):
        reply = bytes(UDP(sport=33434, dport=IDENTS[1]) / Raw(answer))
        found = p.match(reply, DST[version], UDP_)
        assert found is not None and (found.flow, found.index) == (1, 77)


# ---- strays and spoofs --------------------------------------------------------------------


@pytest.mark.parametrize(("version", "protocol"), CASES)
def test_quote_of_a_packet_to_another_destination_is_not_ours(version: int, protocol: str):
    p = probes(version, protocol)
    pkt = parsed(version, p.packet(0, 3, ttl=1))
    pkt.dst = OTHER[version]
    assert p.match(time_exceeded(version, bytes(pkt)), ROUTER[version], ICMP_[version]) is None


@pytest.mark.parametrize("version", [4, 6])
@pytest.mark.parametrize("protocol", ["TCP", "UDP"])
def test_quote_with_another_port_is_not_ours(version: int, protocol: str):
    p = probes(version, protocol)
    for field, value in (("dport", 9999), ("sport", 50000)):
        pkt = parsed(version, p.packet(0, 3, ttl=1))
        setattr(pkt.payload, field, value)
        reply = time_exceeded(version, bytes(pkt))
        assert p.match(reply, ROUTER[version], ICMP_[version]) is None, field


@pytest.mark.parametrize("version", [4, 6])
def test_quote_with_another_echo_id_is_not_ours(version: int):
    p = probes(version, "ICMP")
    pkt = parsed(version, p.packet(0, 3, ttl=1))
    pkt.payload.id = 4242
    assert p.match(time_exceeded(version, bytes(pkt)), ROUTER[version], ICMP_[version]) is None


def test_indices_we_never_sent_are_not_ours():
    tcp = probes(4, "TCP")
    seq = parsed(4, tcp.packet(0, 0, ttl=9))[TCP].seq
    beyond = bytes(TCP(sport=8080, dport=IDENTS[0], flags="SA", ack=(seq + COUNT + 1) % 2**32))
    assert tcp.match(beyond, DST[4], TCP_) is None
    echo = probes(4, "ICMP")
    assert echo.match(echo_reply(4, IDENTS[0], COUNT), DST[4], ICMP_[4]) is None


def test_another_sweeps_tcp_sequence_numbers_are_not_ours():
    mine, theirs = probes(4, "TCP", seed=1), probes(4, "TCP", seed=2)
    quoted = theirs.packet(0, 3, ttl=1)  # same ports, other random sequence base
    assert mine.match(time_exceeded(4, quoted), ROUTER[4], ICMP_[4]) is None


def test_ipv4_udp_quote_whose_ip_id_disagrees_is_not_ours():
    p = probes(4, "UDP")
    pkt = parsed(4, p.packet(0, 3, ttl=1))
    pkt.id = 77
    assert p.match(time_exceeded(4, bytes(pkt)), ROUTER[4], ICMP_[4]) is None


@pytest.mark.parametrize("version", [4, 6])
def test_direct_answers_from_anyone_but_the_destination_are_not_ours(version: int):
    tcp = probes(version, "TCP")
    seq = parsed(version, tcp.packet(0, 5, ttl=9))[TCP].seq
    syn_ack = bytes(TCP(sport=8080, dport=IDENTS[0], flags="SA", ack=seq + 1))
    assert tcp.match(syn_ack, OTHER[version], TCP_) is None
    echo = probes(version, "ICMP")
    reply = echo_reply(version, IDENTS[0], 5)
    assert echo.match(reply, OTHER[version], ICMP_[version]) is None


def test_tcp_segments_that_answer_no_syn_are_not_ours():
    p = probes(4, "TCP")
    seq = parsed(4, p.packet(0, 5, ttl=9))[TCP].seq
    for flags in ("A", "S", "R"):  # a bare ACK, or no ACK number to read
        reply = bytes(TCP(sport=8080, dport=IDENTS[0], flags=flags, ack=seq + 1))
        assert p.match(reply, DST[4], TCP_) is None, flags


@pytest.mark.parametrize(("version", "protocol"), CASES)
def test_truncated_replies_are_ignored_not_raised(version: int, protocol: str):
    p = probes(version, protocol)
    quoted = p.packet(0, 3, ttl=1)
    for message in (b"", time_exceeded(version, quoted)[:10], b"\x00\x50"):
        for proto in (ICMP_[version], TCP_, UDP_):
            assert p.match(message, DST[version], proto) is None
