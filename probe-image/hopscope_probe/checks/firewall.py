"""Whether the source's own firewall drops a TCP flow.

connect() never says so: the kernel ignores the EPERM its OUTPUT chain returns for the SYN and
retransmits until the probe gives up, exactly as if the network dropped it (verified in the lab).
So after a timeout the same SYN is sent once more through a raw socket, whose sendto() does report
the OUTPUT verdict. Its TTL of 1 keeps this copy from reaching an off-link destination.
"""

from __future__ import annotations

import secrets
import socket
import struct

from hopscope_probe.checks.sockets import family_of, internet_checksum

TCP_SYN = 0x02
CHECKSUM_OFFSET = 16  # of the checksum field in the TCP header


def output_errno(local: tuple[str, int], remote: tuple[str, int]) -> int | None:
    """The errno the source's kernel gives a SYN from `local` to `remote`; None if it leaves.

    None also without CAP_NET_RAW: the timeout then stands as it was.
    """
    family = family_of(remote[0])
    try:
        sock = socket.socket(family, socket.SOCK_RAW, socket.IPPROTO_TCP)
    except PermissionError:
        return None
    with sock:
        segment = _syn(local[1], remote[1])
        if family == socket.AF_INET6:
            sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_CHECKSUM, CHECKSUM_OFFSET)
            sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_UNICAST_HOPS, 1)
        else:
            segment = _with_ipv4_checksum(segment, local[0], remote[0])
            sock.setsockopt(socket.IPPROTO_IP, socket.IP_TTL, 1)
        try:
            sock.bind((local[0], 0))  # the SYN's own source address, which rules may match
        except OSError:
            return None  # no faithful copy can be sent (a link-local address needs its scope)
        try:
            sock.sendto(segment, (remote[0], 0))
        except OSError as exc:
            return exc.errno
    return None


def _syn(source_port: int, destination_port: int) -> bytes:
    sequence = secrets.randbits(32)
    # ports, seq, ack, data offset (5 words), flags, window, checksum, urgent pointer
    return struct.pack(
        "!HHIIBBHHH", source_port, destination_port, sequence, 0, 5 << 4, TCP_SYN, 64240, 0, 0
    )


def _with_ipv4_checksum(segment: bytes, source: str, destination: str) -> bytes:
    pseudo = socket.inet_aton(source) + socket.inet_aton(destination)
    pseudo += struct.pack("!BBH", 0, socket.IPPROTO_TCP, len(segment))
    checksum = internet_checksum(pseudo + segment)
    return segment[:CHECKSUM_OFFSET] + struct.pack("!H", checksum) + segment[CHECKSUM_OFFSET + 2 :]
