"""ICMP echo: one request per attempt, matched to its reply by identifier and sequence.

A raw socket (the probe has CAP_NET_RAW) receives every ICMP message the host gets, other probes'
replies included, hence the strict match. Without CAP_NET_RAW a ping socket does the same where
net.ipv4.ping_group_range allows it; the kernel then picks the identifier. Both kinds queue the
ICMP errors that quote our echo on the error queue, with the router that sent them.
"""

from __future__ import annotations

import itertools
import secrets
import select
import socket
import struct
import time
from dataclasses import dataclass

from hopscope_probe.checks import icmperr, sockets
from hopscope_probe.evidence import Attempt, ConnectionEvidence, Outcome, Stage
from hopscope_probe.models import ProbeRequest

ECHO = struct.Struct("!BBHHH")  # type, code, checksum, identifier, sequence
ECHO_REQUEST = {socket.AF_INET: 8, socket.AF_INET6: 128}
ECHO_REPLY = {socket.AF_INET: 0, socket.AF_INET6: 129}
PAYLOAD = b"hopscope"
_identifiers = itertools.count(secrets.randbits(16))  # distinct for checks running at once


@dataclass(frozen=True)
class Pinger:
    sock: socket.socket
    identifier: int
    raw_ipv4: bool  # we checksum, and what we receive starts with the IPv4 header

    @property
    def family(self) -> socket.AddressFamily:
        return self.sock.family

    def request(self, sequence: int) -> bytes:
        packet = ECHO.pack(ECHO_REQUEST[self.family], 0, 0, self.identifier, sequence) + PAYLOAD
        if not self.raw_ipv4:
            return packet  # the kernel checksums ICMPv6 and ping sockets' messages
        checksum = struct.pack("!H", sockets.internet_checksum(packet))
        return packet[:2] + checksum + packet[4:]

    def is_ours(self, message: bytes, icmp_type: int, sequence: int) -> bool:
        if len(message) < ECHO.size:
            return False
        got_type, _code, _checksum, identifier, got_sequence = ECHO.unpack_from(message)
        return (got_type, identifier, got_sequence) == (icmp_type, self.identifier, sequence)

    def is_reply(self, data: bytes, sequence: int) -> bool:
        if self.raw_ipv4:
            data = data[(data[0] & 0x0F) * 4 :]  # skip the IPv4 header (IHL words)
        return self.is_ours(data, ECHO_REPLY[self.family], sequence)


def check(request: ProbeRequest, address: str) -> ConnectionEvidence:
    try:
        pinger = open_pinger(sockets.family_of(address))
    except OSError as exc:
        failed = Attempt(  # the probe's own privileges, not a send the source's kernel refused
            outcome=Outcome.LOCAL_ERROR,
            stage=Stage.CONNECT,
            errno=exc.errno,
            detail=f"cannot open an ICMP socket ({exc.strerror}): the probe needs CAP_NET_RAW, "
            "or a group in net.ipv4.ping_group_range",
        )
        return ConnectionEvidence(
            protocol="ICMP", address=address, port=None, attempts=(failed,) * request.count
        )
    with pinger.sock:
        attempts = tuple(
            _attempt(pinger, address, sequence, request.timeout_seconds)
            for sequence in range(1, request.count + 1)
        )
    return ConnectionEvidence(protocol="ICMP", address=address, port=None, attempts=attempts)


def open_pinger(family: socket.AddressFamily) -> Pinger:
    protocol = socket.IPPROTO_ICMPV6 if family == socket.AF_INET6 else socket.IPPROTO_ICMP
    try:
        sock = socket.socket(family, socket.SOCK_RAW, protocol)
        pinger = Pinger(sock, next(_identifiers) & 0xFFFF, raw_ipv4=family == socket.AF_INET)
    except PermissionError:
        sock = socket.socket(family, socket.SOCK_DGRAM, protocol)
        sock.bind(("::" if family == socket.AF_INET6 else "0.0.0.0", 0))
        pinger = Pinger(sock, sock.getsockname()[1], raw_ipv4=False)  # the port is the identifier
    sock.setblocking(False)
    icmperr.enable(sock)
    return pinger


def _attempt(pinger: Pinger, address: str, sequence: int, timeout: float) -> Attempt:
    sock = pinger.sock
    start = time.perf_counter()
    try:
        sock.sendto(pinger.request(sequence), (address, 0))
    except OSError as exc:
        return sockets.send_error(exc, "send echo request")
    while sockets.wait(sock, select.POLLIN, start + timeout):
        for error in icmperr.drain(sock):
            if pinger.is_ours(error.quoted, ECHO_REQUEST[pinger.family], sequence):
                return icmperr.as_attempt(error, address, sockets.ms_since(start))
        try:
            data, sender = sock.recvfrom(65535)
        except OSError:  # nothing yet, or an ICMP error that arrived since: the next drain has it
            continue
        if sockets.same_address(sender[0], address) and pinger.is_reply(data, sequence):
            return Attempt(outcome=Outcome.SUCCESS, rtt_ms=sockets.ms_since(start))
    return Attempt(outcome=Outcome.TIMEOUT, detail="no echo reply")
