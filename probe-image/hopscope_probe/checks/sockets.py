"""Socket plumbing the connection checks share: address family, source port, waiting, timing."""

from __future__ import annotations

import ipaddress
import math
import select
import socket
import struct
import time

from hopscope_probe.evidence import Attempt, Outcome, Stage


def family_of(address: str) -> socket.AddressFamily:
    return socket.AF_INET6 if ipaddress.ip_address(address).version == 6 else socket.AF_INET


def same_address(a: str, b: str) -> bool:
    """Equal as addresses (IPv6 has many spellings of one address)."""
    return ipaddress.ip_address(a) == ipaddress.ip_address(b)


def bind_source_port(sock: socket.socket, port: int) -> Attempt | None:
    """Bind the requested source port; the failed attempt if the kernel refuses.

    SO_REUSEADDR stays off: a port another socket holds must fail here as it fails for the app.
    """
    if not port:
        return None
    wildcard = "::" if sock.family == socket.AF_INET6 else "0.0.0.0"
    try:
        sock.bind((wildcard, port))
    except OSError as exc:
        return Attempt(
            outcome=Outcome.LOCAL_ERROR,
            stage=Stage.BIND,
            errno=exc.errno,
            detail=f"bind to source port {port}: {exc.strerror}",
        )
    return None


def send_error(exc: OSError, what: str) -> Attempt:
    """The source's own kernel refused to send (its OUTPUT firewall, no route)."""
    return Attempt(
        outcome=Outcome.LOCAL_ERROR,
        stage=Stage.SEND,
        errno=exc.errno,
        detail=f"{what}: {exc.strerror}",
    )


def wait(sock: socket.socket, events: int, deadline: float) -> bool:
    """Wait for `events` on the socket (errors always wake it); False once `deadline` passed."""
    remaining = deadline - time.perf_counter()
    if remaining <= 0:
        return False
    poller = select.poll()
    poller.register(sock, events)
    return bool(poller.poll(math.ceil(remaining * 1000)))


def ms_since(start: float) -> float:
    return round((time.perf_counter() - start) * 1000, 3)


def internet_checksum(data: bytes) -> int:
    """RFC 1071: the ones' complement of the ones' complement sum of the 16-bit words."""
    if len(data) % 2:
        data += b"\0"
    total = sum(struct.unpack(f"!{len(data) // 2}H", data))
    while total >> 16:
        total = (total & 0xFFFF) + (total >> 16)
    return ~total & 0xFFFF
