"""Probe packets of the path sweep: built from one template per flow, matched back from replies.

Every probe carries its index (which TTL and attempt it is) in a field that comes back both in
the header an ICMP error quotes (even a router that quotes only 8 bytes past the IP header) and
in the destination's own answer:

    TCP   the sequence number (the SYN-ACK or RST acknowledges seq + 1)
    UDP   the UDP checksum, steered by the payload's first two bytes (Paris traceroute); a DNS
          or echo server sends those bytes back, and IPv4 repeats the index in the IP ID
    ICMP  the echo sequence number

What ECMP routers hash never changes within a flow, across TTLs and attempts: addresses,
protocol, ports or echo id, the IPv6 flow label, and for ICMP even the checksum (two payload
bytes cancel the sequence number out). Flows differ by source port or echo id and flow label.
"""

from __future__ import annotations

import ipaddress
import random
import socket
import struct
from collections.abc import Sequence
from dataclasses import dataclass

from hopscope_probe.evidence import IcmpError, IcmpKind, ReplyKind

DEFAULT_PORTS = {"TCP": 80, "UDP": 33434}
MAX_PROBES_PER_FLOW = 0xFFFE  # the UDP checksum and IPv4 ID carry index + 1, never 0

TCP_SYN, TCP_RST, TCP_ACK = 0x02, 0x04, 0x10
# Root NS query: a DNS server answers it (echoing its ID, our index carrier); others ignore it.
DNS_QUERY_TAIL = struct.pack("!HHHHH", 0x0100, 1, 0, 0, 0) + b"\x00" + struct.pack("!HH", 2, 1)
ECHO_PAYLOAD = b"hopscope"
IP_DF = 0x4000  # IPv4 don't-fragment flag, in the flags/fragment-offset word
TCP_OPTIONS = struct.pack("!BBH", 2, 4, 1460)  # MSS, as a real SYN carries it

ICMP4_KINDS = {
    0: IcmpKind.NET_UNREACHABLE,
    1: IcmpKind.HOST_UNREACHABLE,
    3: IcmpKind.PORT_UNREACHABLE,
    4: IcmpKind.FRAG_NEEDED,
    6: IcmpKind.NET_UNREACHABLE,
    7: IcmpKind.HOST_UNREACHABLE,
    9: IcmpKind.ADMIN_PROHIBITED,
    10: IcmpKind.ADMIN_PROHIBITED,
    11: IcmpKind.NET_UNREACHABLE,
    12: IcmpKind.HOST_UNREACHABLE,
    13: IcmpKind.ADMIN_PROHIBITED,
}
ICMP6_KINDS = {
    0: IcmpKind.NET_UNREACHABLE,
    1: IcmpKind.ADMIN_PROHIBITED,
    3: IcmpKind.HOST_UNREACHABLE,
    4: IcmpKind.PORT_UNREACHABLE,
    5: IcmpKind.ADMIN_PROHIBITED,  # source address failed ingress/egress policy
    6: IcmpKind.NET_UNREACHABLE,  # reject route
}


@dataclass(frozen=True)
class _Family:
    icmp_proto: int
    echo_request: int
    echo_reply: int
    time_exceeded: int
    unreachable: int
    too_big: int | None
    codes: dict[int, IcmpKind]


V4 = _Family(socket.IPPROTO_ICMP, 8, 0, 11, 3, None, ICMP4_KINDS)
V6 = _Family(socket.IPPROTO_ICMPV6, 128, 129, 3, 1, 2, ICMP6_KINDS)
PROTOCOLS = {"TCP": socket.IPPROTO_TCP, "UDP": socket.IPPROTO_UDP}


@dataclass(frozen=True)
class Match:
    """A reply that answers one of our probes."""

    flow: int
    index: int
    sender: str
    kind: ReplyKind
    icmp: IcmpError | None = None  # None for a direct TCP/UDP/echo answer
    quoted_ttl: int | None = None


def _sum16(data: bytes | bytearray) -> int:
    if len(data) % 2:
        data = bytes(data) + b"\x00"
    return sum(struct.unpack(f"!{len(data) // 2}H", data))


def _fold(total: int) -> int:
    while total >> 16:
        total = (total & 0xFFFF) + (total >> 16)
    return total


def default_port(protocol: str, port: int | None) -> int | None:
    return None if protocol == "ICMP" else port or DEFAULT_PORTS[protocol]


class Probes:
    """The probes of one sweep: `packet()` builds them, `match()` recognises their replies.

    `idents` are the flows' source ports (TCP, UDP) or echo ids (ICMP); a probe's index must be
    below `count`. With `sizes` (one per flow, whole IP packets) each flow's probes are padded
    to that size and may not be fragmented (IPv4 DF; IPv6 routers never fragment): the MTU probe.
    """

    def __init__(
        self,
        *,
        protocol: str,
        source: str,
        destination: str,
        port: int | None,
        idents: Sequence[int],
        count: int,
        sizes: Sequence[int] = (),
        rng: random.Random | None = None,
    ) -> None:
        if not 0 < count <= MAX_PROBES_PER_FLOW:
            raise ValueError(f"{count} probes per flow: at most {MAX_PROBES_PER_FLOW}")
        if protocol not in ("TCP", "UDP", "ICMP"):
            raise ValueError(f"cannot probe a path over {protocol!r}")
        if sizes and len(sizes) != len(idents):
            raise ValueError(f"{len(sizes)} sizes for {len(idents)} flows")
        rng = rng or random.Random()
        self.protocol = protocol
        self.destination = str(ipaddress.ip_address(destination))
        self.port = default_port(protocol, port)
        self.count = count
        self.idents = list(idents)
        self._flow_of = {ident: flow for flow, ident in enumerate(self.idents)}
        self._fam = V6 if ipaddress.ip_address(destination).version == 6 else V4
        self._proto = PROTOCOLS.get(protocol, self._fam.icmp_proto)
        self._src = ipaddress.ip_address(source).packed
        self._dst = ipaddress.ip_address(destination).packed
        self._ip_len = 20 if self._fam is V4 else 40
        self._seq_base = rng.getrandbits(32)  # TCP: a stranger cannot guess our sequence numbers
        self._templates: list[bytes] = []
        self._sums: list[int] = []  # per flow: the folded sum the per-probe checksum starts from
        for flow, ident in enumerate(self.idents):
            l4 = bytearray(self._l4_template(ident))
            if sizes:
                l4 += bytes(max(0, sizes[flow] - self._ip_len - len(l4)))
                if protocol == "UDP":
                    struct.pack_into("!H", l4, 4, len(l4))
            total = _fold(self._pseudo_sum(len(l4)) + _sum16(l4))
            if protocol == "ICMP":
                struct.pack_into("!H", l4, 2, ~total & 0xFFFF)  # constant for the whole flow
            label = rng.randrange(1, 1 << 20)
            self._templates.append(self._ip_header(len(l4), label, df=bool(sizes)) + l4)
            self._sums.append(total)

    # ---- building ----------------------------------------------------------------------------

    def _ip_header(self, l4_len: int, flow_label: int, *, df: bool) -> bytes:
        if self._fam is V4:
            # The kernel (IP_HDRINCL) fills in the header checksum; TTL and ID are patched.
            flags = IP_DF if df else 0
            header = struct.pack("!BBHHHBBH", 0x45, 0, 20 + l4_len, 0, flags, 0, self._proto, 0)
            return header + self._src + self._dst
        first = (6 << 28) | flow_label
        return struct.pack("!IHBB", first, l4_len, self._proto, 0) + self._src + self._dst

    def _pseudo_sum(self, l4_len: int) -> int:
        if self._proto == socket.IPPROTO_ICMP:
            return 0  # ICMPv4 has no pseudo-header
        if self._fam is V4:
            return _sum16(self._src + self._dst + struct.pack("!BBH", 0, self._proto, l4_len))
        return _sum16(self._src + self._dst + struct.pack("!IxxxB", l4_len, self._proto))

    def _l4_template(self, ident: int) -> bytes:
        """The transport header and payload with the index fields and checksum zero."""
        if self.protocol == "TCP":
            offset_flags = (6 << 12) | TCP_SYN  # 24-byte header: 20 + MSS option
            header = struct.pack("!HHIIHHHH", ident, self.port, 0, 0, offset_flags, 64240, 0, 0)
            return header + TCP_OPTIONS
        if self.protocol == "UDP":
            payload = b"\x00\x00" + DNS_QUERY_TAIL
            return struct.pack("!HHHH", ident, self.port, 8 + len(payload), 0) + payload
        echo = struct.pack("!BBHHH", self._fam.echo_request, 0, 0, ident, 0)
        return echo + b"\x00\x00" + ECHO_PAYLOAD

    def packet(self, flow: int, index: int, ttl: int) -> bytes:
        """The full IP packet of probe `index` of `flow`, leaving with this TTL / hop limit."""
        if not 0 <= index < self.count:
            raise ValueError(f"probe index {index} out of range 0..{self.count - 1}")
        pkt = bytearray(self._templates[flow])
        if self._fam is V4:
            struct.pack_into("!H", pkt, 4, index + 1)  # IP ID: 0 would let the kernel pick one
            pkt[8] = ttl
        else:
            pkt[7] = ttl
        at = self._ip_len
        base = self._sums[flow]
        if self.protocol == "TCP":
            seq = (self._seq_base + index) & 0xFFFFFFFF
            struct.pack_into("!I", pkt, at + 4, seq)
            total = base + (seq >> 16) + (seq & 0xFFFF)
            struct.pack_into("!H", pkt, at + 16, ~_fold(total) & 0xFFFF)
        elif self.protocol == "UDP":
            # Steer the checksum to index + 1: the payload's first two bytes make up the rest.
            tweak = _fold((~(index + 1) & 0xFFFF) + (~base & 0xFFFF))
            struct.pack_into("!HH", pkt, at + 6, index + 1, tweak)
        else:
            # The flow's checksum holds: the two bytes after seq cancel it out (seq + ~seq = -0).
            struct.pack_into("!HH", pkt, at + 6, index, ~index & 0xFFFF)
        return bytes(pkt)

    # ---- matching ----------------------------------------------------------------------------

    def match(self, message: bytes, sender: str, protocol: int) -> Match | None:
        """Which probe `message` (from the transport header on) answers, or None.

        Only an exact match counts: our destination, protocol, ports or echo id, and an index
        we can have sent. Anything else is another program's traffic or spoofed.
        """
        try:
            if protocol == self._fam.icmp_proto:
                return self._match_icmp(message, sender)
            if protocol == self._proto and sender == self.destination:
                return self._match_direct(message, sender)
        except (struct.error, IndexError):
            return None  # truncated
        return None

    def _match_icmp(self, message: bytes, sender: str) -> Match | None:
        fam = self._fam
        icmp_type, code = message[0], message[1]
        if icmp_type == fam.echo_reply:
            if self.protocol != "ICMP" or sender != self.destination:
                return None
            ident, seq = struct.unpack_from("!HH", message, 4)
            return self._found(self._flow_of.get(ident), seq, sender, ReplyKind.REACHED)
        if icmp_type == fam.time_exceeded and code == 0:
            kind, icmp_kind = ReplyKind.TIME_EXCEEDED, IcmpKind.TTL_EXCEEDED
        elif icmp_type == fam.unreachable:
            icmp_kind = fam.codes.get(code, IcmpKind.OTHER)
            port_closed = icmp_kind == IcmpKind.PORT_UNREACHABLE and sender == self.destination
            kind = ReplyKind.REACHED if port_closed else ReplyKind.UNREACHABLE
        elif icmp_type == fam.too_big:
            kind, icmp_kind = ReplyKind.UNREACHABLE, IcmpKind.FRAG_NEEDED
        else:
            return None
        quoted = self._quoted(message[8:])
        if quoted is None:
            return None
        flow, index, ttl = quoted
        icmp = IcmpError(
            sender=sender,
            kind=icmp_kind,
            type=icmp_type,
            code=code,
            mtu=self._next_hop_mtu(message),
        )
        return self._found(flow, index, sender, kind, icmp, ttl)

    def _next_hop_mtu(self, message: bytes) -> int | None:
        """The MTU a frag-needed (ICMPv4 3/4, RFC 1191) or packet-too-big (ICMPv6 2) names."""
        if self._fam is V4 and message[0] == self._fam.unreachable and message[1] == 4:
            return struct.unpack_from("!H", message, 6)[0] or None  # 0: a pre-RFC 1191 router
        if self._fam is V6 and message[0] == self._fam.too_big:
            return int(struct.unpack_from("!I", message, 4)[0])
        return None

    def _quoted(self, inner: bytes) -> tuple[int | None, int, int] | None:
        """(flow, index, TTL left) of the probe an ICMP error quotes, if it is one of ours."""
        if self._fam is V4:
            if inner[0] >> 4 != 4:
                return None
            header_len = (inner[0] & 0x0F) * 4
            ip_id, ttl, proto = struct.unpack_from("!HxxBB", inner, 4)
            dst = inner[16:20]
        else:
            if inner[0] >> 4 != 6:
                return None
            ip_id, header_len = None, 40
            proto, ttl = inner[6], inner[7]
            dst = inner[24:40]
        if proto != self._proto or dst != self._dst:
            return None
        l4 = inner[header_len : header_len + 8]
        if self.protocol == "ICMP":
            icmp_type, ident, index = struct.unpack("!BxxxHH", l4)
            if icmp_type != self._fam.echo_request:
                return None
        else:
            sport, dport, field = struct.unpack("!HHI", l4)
            if dport != self.port:
                return None
            ident = sport
            if self.protocol == "TCP":
                index = (field - self._seq_base) & 0xFFFFFFFF
            else:
                index = (field & 0xFFFF) - 1  # the UDP checksum
                if ip_id is not None and ip_id != index + 1:
                    return None
        return self._flow_of.get(ident), index, ttl

    def _match_direct(self, message: bytes, sender: str) -> Match | None:
        sport, dport = struct.unpack_from("!HH", message)
        flow = self._flow_of.get(dport)
        if sport != self.port or flow is None:
            return None
        if self.protocol == "TCP":
            (ack,) = struct.unpack_from("!I", message, 8)
            flags = message[13]
            if not flags & TCP_ACK or not flags & (TCP_SYN | TCP_RST):
                return None
            index = (ack - 1 - self._seq_base) & 0xFFFFFFFF
        else:
            # A DNS or echo server sends our payload's first two bytes back: invert the steering.
            (tweak,) = struct.unpack_from("!H", message, 8)
            index = (~_fold(self._sums[flow] + tweak) & 0xFFFF) - 1
        return self._found(flow, index, sender, ReplyKind.REACHED)

    def _found(
        self,
        flow: int | None,
        index: int,
        sender: str,
        kind: ReplyKind,
        icmp: IcmpError | None = None,
        quoted_ttl: int | None = None,
    ) -> Match | None:
        if flow is None or not 0 <= index < self.count:
            return None
        return Match(flow, index, sender, kind, icmp, quoted_ttl)
