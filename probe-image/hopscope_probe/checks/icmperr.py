"""ICMP errors as the kernel hands them to the socket that sent the offending packet.

With IP_RECVERR / IPV6_RECVERR set, Linux queues each ICMP error on the socket's error queue with
the address of the router or host that sent it (verified in the lab on Linux 6.x for UDP, raw and
ping ICMP sockets, and TCP in SYN_SENT: tcp_v4_err/tcp_v6_err queue it and then fail connect()).
Without the option a socket only sees an errno, which cannot tell a router's verdict from the
destination's.
"""

from __future__ import annotations

import socket
import struct
from dataclasses import dataclass

from hopscope_probe.checks.sockets import same_address
from hopscope_probe.evidence import Attempt, IcmpError, IcmpKind, Outcome

IP_RECVERR = 11  # <linux/in.h>; the socket module lacks it before Python 3.12
IPV6_RECVERR = 25  # <linux/in6.h>
MSG_ERRQUEUE = 0x2000
SO_EE_ORIGIN_ICMP = 2
SO_EE_ORIGIN_ICMP6 = 3
# struct sock_extended_err: ee_errno, ee_origin, ee_type, ee_code, ee_pad, ee_info, ee_data;
# the offender's sockaddr (SO_EE_OFFENDER) follows it.
EXTENDED_ERR = struct.Struct("=IBBBBII")
RECVERR_MESSAGES = {(socket.IPPROTO_IP, IP_RECVERR), (socket.IPPROTO_IPV6, IPV6_RECVERR)}

ICMP4_KINDS = {
    (3, 0): IcmpKind.NET_UNREACHABLE,
    (3, 6): IcmpKind.NET_UNREACHABLE,  # network unknown
    (3, 11): IcmpKind.NET_UNREACHABLE,  # for this TOS
    (3, 1): IcmpKind.HOST_UNREACHABLE,
    (3, 7): IcmpKind.HOST_UNREACHABLE,  # host unknown
    (3, 12): IcmpKind.HOST_UNREACHABLE,  # for this TOS
    (3, 3): IcmpKind.PORT_UNREACHABLE,
    (3, 4): IcmpKind.FRAG_NEEDED,
    (3, 9): IcmpKind.ADMIN_PROHIBITED,  # network prohibited
    (3, 10): IcmpKind.ADMIN_PROHIBITED,  # host prohibited
    (3, 13): IcmpKind.ADMIN_PROHIBITED,  # communication prohibited (iptables' default choice)
    (11, 0): IcmpKind.TTL_EXCEEDED,
}
ICMP6_KINDS = {
    (1, 0): IcmpKind.NET_UNREACHABLE,  # no route to destination
    (1, 1): IcmpKind.ADMIN_PROHIBITED,
    (1, 3): IcmpKind.HOST_UNREACHABLE,  # address unreachable (neighbour discovery failed)
    (1, 4): IcmpKind.PORT_UNREACHABLE,
    # RFC 4443: codes 5 and 6 are more specific forms of code 1 (policy, reject route).
    (1, 5): IcmpKind.ADMIN_PROHIBITED,
    (1, 6): IcmpKind.ADMIN_PROHIBITED,
    (2, 0): IcmpKind.FRAG_NEEDED,  # packet too big
    (3, 0): IcmpKind.TTL_EXCEEDED,  # hop limit exceeded
}


@dataclass(frozen=True)
class QueuedError:
    """One ICMP error from the error queue."""

    icmp: IcmpError
    errno: int  # what the kernel mapped it to (what connect/recv would have raised)
    quoted: bytes  # the start of our packet's payload that the error quotes (after its IP header)


def kind_of(icmp_type: int, code: int, *, v6: bool) -> IcmpKind:
    return (ICMP6_KINDS if v6 else ICMP4_KINDS).get((icmp_type, code), IcmpKind.OTHER)


def outcome_of(icmp: IcmpError, destination: str) -> Outcome:
    """Port unreachable from the destination itself means nothing listens: refused. The same
    message from a router is a firewall's REJECT, an ICMP error like the others."""
    if icmp.kind == IcmpKind.PORT_UNREACHABLE and same_address(icmp.sender, destination):
        return Outcome.REFUSED
    return Outcome.ICMP_ERROR


def as_attempt(error: QueuedError, destination: str, rtt_ms: float) -> Attempt:
    icmp = error.icmp
    return Attempt(
        outcome=outcome_of(icmp, destination),
        rtt_ms=rtt_ms,
        errno=error.errno,
        icmp=icmp,
        detail=f"ICMP {icmp.kind} (type {icmp.type} code {icmp.code}) from {icmp.sender}",
    )


def enable(sock: socket.socket) -> None:
    if sock.family == socket.AF_INET6:
        sock.setsockopt(socket.IPPROTO_IPV6, IPV6_RECVERR, 1)
    else:
        sock.setsockopt(socket.IPPROTO_IP, IP_RECVERR, 1)


def drain(sock: socket.socket) -> list[QueuedError]:
    """Every ICMP error queued on the socket, oldest first; never blocks.

    Reading the queue also clears the socket's pending error once the queue is empty.
    """
    found: list[QueuedError] = []
    while True:
        try:
            quoted, ancillary, _flags, _addr = sock.recvmsg(
                512, 512, MSG_ERRQUEUE | socket.MSG_DONTWAIT
            )
        except BlockingIOError:  # the queue is empty
            return found
        for level, kind, data in ancillary:
            if (level, kind) in RECVERR_MESSAGES:
                error = parse(data, quoted)
                if error is not None:
                    found.append(error)


def parse(data: bytes, quoted: bytes) -> QueuedError | None:
    """A `sock_extended_err` and its offender; None for local errors (no ICMP involved)."""
    mapped_errno, origin, icmp_type, code, _pad, _info, _data = EXTENDED_ERR.unpack_from(data)
    if origin not in (SO_EE_ORIGIN_ICMP, SO_EE_ORIGIN_ICMP6):
        return None
    sender = offender(data[EXTENDED_ERR.size :])
    if sender is None:
        return None
    v6 = origin == SO_EE_ORIGIN_ICMP6
    icmp = IcmpError(sender=sender, kind=kind_of(icmp_type, code, v6=v6), type=icmp_type, code=code)
    return QueuedError(icmp=icmp, errno=mapped_errno, quoted=quoted)


def offender(sockaddr: bytes) -> str | None:
    if len(sockaddr) < 2:
        return None
    (family,) = struct.unpack_from("=H", sockaddr)
    if family == socket.AF_INET and len(sockaddr) >= 8:
        return socket.inet_ntop(socket.AF_INET, sockaddr[4:8])  # family, port, address
    if family == socket.AF_INET6 and len(sockaddr) >= 24:
        return socket.inet_ntop(socket.AF_INET6, sockaddr[8:24])  # family, port, flowinfo, addr
    return None
