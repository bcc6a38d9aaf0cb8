"""The sweep's sockets: raw IP out, raw ICMP (and TCP or UDP) in, with kernel receive times.

Probes leave through the kernel as complete IP packets (IP_HDRINCL / IPV6_HDRINCL), so the
source's own OUTPUT firewall, routing and neighbour resolution apply to them as to any traffic,
and a refusal comes back as an errno. `Transport` is what the sweep needs; tests can replace
`RawTransport` with one that feeds synthetic packets.
"""

from __future__ import annotations

import select
import socket
import struct
import time
from dataclasses import dataclass
from typing import Protocol

SO_TIMESTAMPNS = 35  # Linux; also the SCM_TIMESTAMPNS control message type
IPV6_HDRINCL = 36  # Linux >= 4.5
SOL_RAW = 255
# Send DF packets up to the device's MTU whatever path MTU the kernel has cached: a frag-needed
# the sweep itself provoked would otherwise make every later large probe fail with EMSGSIZE.
IP_MTU_DISCOVER, IP_PMTUDISC_PROBE = 10, 3
IPV6_MTU_DISCOVER, IPV6_PMTUDISC_PROBE = 23, 3
ICMP_FILTER = 1  # SOL_RAW, IPv4: a set bit drops that type
ICMP6_FILTER = 1  # IPPROTO_ICMPV6: a set bit drops that type
TIMESPEC = struct.Struct("@ll")
RECEIVE_BUFFER = 4 << 20  # a multipath sweep's replies arrive in bursts
ICMP4_WANTED = (0, 3, 11)  # echo reply, destination unreachable, time exceeded
ICMP6_WANTED = (1, 2, 3, 129)  # unreachable, packet too big, time exceeded, echo reply
DIRECT = {"TCP": socket.IPPROTO_TCP, "UDP": socket.IPPROTO_UDP}
RESERVE_TYPES = {"TCP": socket.SOCK_STREAM, "UDP": socket.SOCK_DGRAM}


class PathUnavailable(Exception):
    """The sweep cannot run here (no CAP_NET_RAW, no IPv6): a probe limitation, not a finding."""


@dataclass(frozen=True)
class Received:
    message: bytes  # from the transport header on (ICMP, TCP or UDP)
    sender: str
    protocol: int  # IPPROTO_* of `message`
    time_ns: int  # kernel receive time, CLOCK_REALTIME


class Transport(Protocol):
    def source_address(self, destination: str) -> str:
        """The address the kernel sends from toward `destination` (OSError: no route)."""
        ...

    def reserve_ports(self, source: str, count: int) -> list[int]:
        """`count` free local ports, held until `close()` so that no other socket takes them."""
        ...

    def send(self, packet: bytes, destination: str) -> int:
        """Send one IP packet; returns the time it was handed to the kernel (ns, CLOCK_REALTIME).
        Raises OSError when the source's own kernel refuses it."""
        ...

    def receive(self, timeout: float) -> list[Received]:
        """The replies that arrived, waiting up to `timeout` s for the first of them."""
        ...

    def close(self) -> None: ...


class RawTransport:
    """Raises PathUnavailable when the raw sockets cannot be opened. `mtu_probe`: probes may
    be as large as the interface allows, however small the path MTU the kernel has learnt."""

    def __init__(
        self, family: socket.AddressFamily, protocol: str, *, mtu_probe: bool = False
    ) -> None:
        self.family = family
        self._protocol = protocol
        self._reserved: list[socket.socket] = []
        self._receivers: list[tuple[socket.socket, int]] = []
        self._sender = self._open(socket.IPPROTO_RAW)
        try:
            if family == socket.AF_INET:
                self._sender.setsockopt(socket.IPPROTO_IP, socket.IP_HDRINCL, 1)
                if mtu_probe:
                    self._sender.setsockopt(socket.IPPROTO_IP, IP_MTU_DISCOVER, IP_PMTUDISC_PROBE)
            else:
                self._sender.setsockopt(socket.IPPROTO_IPV6, IPV6_HDRINCL, 1)
                if mtu_probe:
                    self._sender.setsockopt(
                        socket.IPPROTO_IPV6, IPV6_MTU_DISCOVER, IPV6_PMTUDISC_PROBE
                    )
            icmp = socket.IPPROTO_ICMP if family == socket.AF_INET else socket.IPPROTO_ICMPV6
            for proto in [icmp] + ([DIRECT[protocol]] if protocol in DIRECT else []):
                sock = self._open(proto)
                self._receivers.append((sock, proto))
                _configure(sock, proto)
        except OSError as exc:  # a kernel without IPV6_HDRINCL (< 4.5) or the ICMP filters
            self.close()
            raise PathUnavailable(f"cannot set up the raw sockets: {exc.strerror}") from exc
        except BaseException:
            self.close()
            raise

    def _open(self, proto: int) -> socket.socket:
        try:
            return socket.socket(self.family, socket.SOCK_RAW, proto)
        except PermissionError as exc:
            raise PathUnavailable(
                f"path discovery needs raw sockets (CAP_NET_RAW): {exc.strerror}"
            ) from exc
        except OSError as exc:
            raise PathUnavailable(f"cannot open a raw socket: {exc.strerror}") from exc

    def source_address(self, destination: str) -> str:
        # connect() on a UDP socket makes the kernel choose route and source, sending nothing.
        with socket.socket(self.family, socket.SOCK_DGRAM) as probe:
            probe.connect((destination, 9))
            return str(probe.getsockname()[0])

    def reserve_ports(self, source: str, count: int) -> list[int]:
        ports = []
        for _ in range(count):
            sock = socket.socket(self.family, RESERVE_TYPES[self._protocol])
            self._reserved.append(sock)
            sock.bind((source, 0))
            ports.append(sock.getsockname()[1])
        return ports

    def send(self, packet: bytes, destination: str) -> int:
        # Stamped before the syscall: the packet leaves inside it, but once it returns this
        # thread may wait milliseconds for the GIL before it could read a clock.
        sent = time.time_ns()
        self._sender.sendto(packet, (destination, 0))
        return sent

    def receive(self, timeout: float) -> list[Received]:
        socks = [sock for sock, _ in self._receivers]
        readable, _, _ = select.select(socks, [], [], max(0.0, timeout))
        got: list[Received] = []
        for sock, proto in self._receivers:
            if sock in readable:
                got += self._drain(sock, proto)
        return got

    def _drain(self, sock: socket.socket, proto: int) -> list[Received]:
        got = []
        while True:
            try:
                data, ancillary, _, address = sock.recvmsg(
                    65535, socket.CMSG_SPACE(TIMESPEC.size), socket.MSG_DONTWAIT
                )
            except BlockingIOError:
                return got
            except OSError:
                # An ICMP error quoting TCP/UDP also leaves a one-shot error on raw IPv4
                # sockets of that protocol; reading it clears it and the queue stays intact.
                continue
            if self.family == socket.AF_INET:
                data = data[(data[0] & 0x0F) * 4 :]  # IPv4 raw sockets include the IP header
            got.append(Received(data, str(address[0]), proto, _timestamp(ancillary)))

    def close(self) -> None:
        for sock in [self._sender, *(s for s, _ in self._receivers), *self._reserved]:
            sock.close()


def _configure(sock: socket.socket, proto: int) -> None:
    sock.setsockopt(socket.SOL_SOCKET, SO_TIMESTAMPNS, 1)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, RECEIVE_BUFFER)
    # Let the kernel drop the ICMP we never look at (neighbour discovery, redirects, ...).
    if proto == socket.IPPROTO_ICMP:
        blocked = 0xFFFFFFFF & ~sum(1 << t for t in ICMP4_WANTED)
        sock.setsockopt(SOL_RAW, ICMP_FILTER, struct.pack("I", blocked))
    elif proto == socket.IPPROTO_ICMPV6:
        words = [0xFFFFFFFF] * 8
        for t in ICMP6_WANTED:
            words[t >> 5] &= ~(1 << (t & 31))
        sock.setsockopt(socket.IPPROTO_ICMPV6, ICMP6_FILTER, struct.pack("8I", *words))


def _timestamp(ancillary: list[tuple[int, int, bytes]]) -> int:
    for level, kind, data in ancillary:
        if (level, kind) == (socket.SOL_SOCKET, SO_TIMESTAMPNS) and len(data) >= TIMESPEC.size:
            seconds, nanos = TIMESPEC.unpack_from(data)
            return seconds * 1_000_000_000 + nanos
    return time.time_ns()  # the kernel always attaches one once asked; this is a fallback
