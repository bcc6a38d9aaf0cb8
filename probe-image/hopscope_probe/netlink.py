"""The few rtnetlink queries the probe makes (route get, route and neighbour dumps, one link),
over a plain AF_NETLINK socket.

pyroute2 did this at ~0.25 s of CPU to import (asyncio, sqlite3 and every netlink family) in a
healthy diagnosis of ~0.1 s of network time. The socket belongs to the calling thread's network
namespace, as pyroute2's did.
"""

from __future__ import annotations

import errno as errnos
import ipaddress
import os
import socket
import struct
import sys
from dataclasses import dataclass, field
from itertools import count

# <linux/netlink.h>, <linux/rtnetlink.h>, <linux/if_link.h>, <linux/neighbour.h>
NLMSG_ERROR, NLMSG_DONE = 2, 3
NLM_F_REQUEST, NLM_F_DUMP = 0x1, 0x300
RTM_GETLINK, RTM_GETROUTE, RTM_GETNEIGH = 18, 26, 30
RTA_DST, RTA_OIF, RTA_GATEWAY, RTA_PREFSRC = 1, 4, 5, 7
IFLA_IFNAME, IFLA_MTU = 3, 4
NDA_DST = 1

HEADER = struct.Struct("=IHHII")  # nlmsghdr: length, type, flags, sequence, port id
RTMSG = struct.Struct("=BBBBBBBBI")  # family, dst_len, src_len, tos, table, protocol, scope,
# type, flags
IFINFOMSG = struct.Struct("=BxHiII")  # family, type, index, flags, change
NDMSG = struct.Struct("=BxxxiHBB")  # family, ifindex, state, flags, type
ATTR = struct.Struct("=HH")  # rtattr: length, type
RECEIVE_BYTES = 65536
_sequence = count(1)


class NetlinkError(OSError):
    """The kernel refused a request: `errno` is its error (ENETUNREACH for a route get...)."""


@dataclass(frozen=True)
class Message:
    header: tuple[int, ...]  # the family header's fields (rtmsg, ifinfomsg, ndmsg)
    attrs: dict[int, bytes] = field(default_factory=dict)

    def address(self, attr: int) -> str | None:
        raw = self.attrs.get(attr)
        return str(ipaddress.ip_address(raw)) if raw is not None else None

    def number(self, attr: int) -> int | None:
        raw = self.attrs.get(attr)
        return int.from_bytes(raw[:4], sys.byteorder) if raw is not None else None

    def text(self, attr: int) -> str | None:
        raw = self.attrs.get(attr)
        return raw.split(b"\0", 1)[0].decode() if raw is not None else None


def route_get(address: str) -> Message:
    """The route the kernel picks for `address` (`ip route get`); NetlinkError when a reject
    route or no route matches. Its header is rtmsg (RTMSG's fields)."""
    ip = ipaddress.ip_address(address)
    family = _family(ip)
    body = RTMSG.pack(family, ip.max_prefixlen, 0, 0, 0, 0, 0, 0, 0) + _attr(RTA_DST, ip.packed)
    return _one(_request(RTM_GETROUTE, NLM_F_REQUEST, body, RTMSG))


def routes(family: int) -> list[Message]:
    """Every route of `family` in every table (`ip route show table all`)."""
    body = RTMSG.pack(family, 0, 0, 0, 0, 0, 0, 0, 0)
    return _request(RTM_GETROUTE, NLM_F_REQUEST | NLM_F_DUMP, body, RTMSG)


def link(index: int) -> Message:
    """One interface (`ip link show`), its header ifinfomsg (IFINFOMSG's fields)."""
    body = IFINFOMSG.pack(socket.AF_UNSPEC, 0, index, 0, 0)
    return _one(_request(RTM_GETLINK, NLM_F_REQUEST, body, IFINFOMSG))


def neighbours(index: int) -> list[Message]:
    """The neighbour entries of one interface (`ip neigh show dev`), headers ndmsg."""
    body = NDMSG.pack(socket.AF_UNSPEC, index, 0, 0, 0)
    found = _request(RTM_GETNEIGH, NLM_F_REQUEST | NLM_F_DUMP, body, NDMSG)
    return [m for m in found if m.header[1] == index]  # older kernels ignore the filter


def _family(ip: ipaddress.IPv4Address | ipaddress.IPv6Address) -> int:
    return socket.AF_INET6 if ip.version == 6 else socket.AF_INET


def _attr(kind: int, value: bytes) -> bytes:
    length = ATTR.size + len(value)
    return ATTR.pack(length, kind) + value + b"\0" * (-length % 4)


def _one(messages: list[Message]) -> Message:
    if not messages:
        raise NetlinkError(errnos.ENODATA, "the kernel answered nothing")
    return messages[0]


def _request(kind: int, flags: int, body: bytes, family_header: struct.Struct) -> list[Message]:
    sequence = next(_sequence)
    with socket.socket(socket.AF_NETLINK, socket.SOCK_RAW, socket.NETLINK_ROUTE) as sock:
        sock.bind((0, 0))
        sock.sendall(HEADER.pack(HEADER.size + len(body), kind, flags, sequence, 0) + body)
        found: list[Message] = []
        while True:
            data = sock.recv(RECEIVE_BYTES)
            offset = 0
            while offset + HEADER.size <= len(data):
                length, kind_of, _flags, seq, _port = HEADER.unpack_from(data, offset)
                payload = data[offset + HEADER.size : offset + length]
                offset += (length + 3) & ~3
                if seq != sequence:
                    continue
                if kind_of == NLMSG_ERROR:
                    code = -struct.unpack_from("=i", payload)[0]
                    if code:
                        raise NetlinkError(code, os.strerror(code))
                    return found
                if kind_of == NLMSG_DONE:
                    return found
                found.append(_message(payload, family_header))
            if not flags & NLM_F_DUMP and found:
                return found  # a single answer has no NLMSG_DONE after it


def _message(payload: bytes, family_header: struct.Struct) -> Message:
    header = family_header.unpack_from(payload)
    attrs: dict[int, bytes] = {}
    offset = family_header.size
    while offset + ATTR.size <= len(payload):
        length, attr = ATTR.unpack_from(payload, offset)
        if length < ATTR.size:
            break  # malformed: stop rather than loop
        attrs.setdefault(attr & 0x3FFF, payload[offset + ATTR.size : offset + length])
        offset += (length + 3) & ~3
    return Message(header=header, attrs=attrs)
