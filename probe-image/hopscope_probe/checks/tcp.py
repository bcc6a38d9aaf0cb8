"""TCP: one handshake per attempt, timed; a failure is named by what came back."""

from __future__ import annotations

import errno
import os
import select
import socket
import struct
import time

from hopscope_probe.checks import firewall, icmperr, sockets
from hopscope_probe.evidence import Attempt, ConnectionEvidence, Outcome, Stage
from hopscope_probe.models import ProbeRequest

# close() then sends a RST: no TIME_WAIT, so a fixed source port is free for the next attempt.
LINGER_ABORT = struct.pack("ii", 1, 0)
# struct tcp_info: 8 one-byte fields, then u32s; tcpi_rtt is the 16th u32 (linux/tcp.h).
TCP_INFO_RTT_OFFSET = 8 + 15 * 4


def check(request: ProbeRequest, address: str) -> ConnectionEvidence:
    attempts = []
    for _ in range(request.count):
        sock, attempt = connect(request, address, time.perf_counter() + request.timeout_seconds)
        if sock is not None:
            sock.close()
        attempts.append(attempt)
    return ConnectionEvidence(
        protocol="TCP", address=address, port=request.port, attempts=tuple(attempts)
    )


def connect(
    request: ProbeRequest, address: str, deadline: float
) -> tuple[socket.socket | None, Attempt]:
    """One handshake with `address` on `request.port`, given up at `deadline` (perf_counter).

    Returns the connected, non-blocking socket (the caller closes it) and the attempt, or None
    and the failed attempt.
    """
    remote = (address, request.port or 0)
    sock = socket.socket(sockets.family_of(address), socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, LINGER_ABORT)
    icmperr.enable(sock)
    attempt = sockets.bind_source_port(sock, request.source_port) or _handshake(
        sock, remote, deadline
    )
    if attempt.outcome == Outcome.SUCCESS:
        return sock, attempt
    local = sock.getsockname()
    sock.close()
    if attempt.outcome == Outcome.TIMEOUT:
        attempt = _dropped_by_own_firewall(local[:2], remote) or attempt
    return None, attempt


def _handshake(sock: socket.socket, remote: tuple[str, int], deadline: float) -> Attempt:
    sock.setblocking(False)
    start = time.perf_counter()
    code = sock.connect_ex(remote)
    if code == errno.EINPROGRESS:
        if not sockets.wait(sock, select.POLLOUT, deadline):
            return Attempt(outcome=Outcome.TIMEOUT, detail="no answer to the SYN")
        code = sock.getsockopt(socket.SOL_SOCKET, socket.SO_ERROR)
    elif code not in (0, errno.ECONNREFUSED):  # refused at once: a RST over loopback
        return Attempt(
            outcome=Outcome.LOCAL_ERROR,
            stage=Stage.SEND,
            errno=code,
            detail=f"connect: {os.strerror(code)}",
        )
    rtt = sockets.ms_since(start)
    if code == 0:
        return Attempt(outcome=Outcome.SUCCESS, rtt_ms=handshake_rtt_ms(sock) or rtt)
    queued = icmperr.drain(sock)
    if queued:
        return icmperr.as_attempt(queued[0], remote[0], rtt)
    if code == errno.ECONNREFUSED:
        return Attempt(
            outcome=Outcome.REFUSED, rtt_ms=rtt, errno=code, detail="connection refused (RST)"
        )
    # Every ICMP error is queued (IP_RECVERR), so this errno came from the source's own stack.
    return Attempt(
        outcome=Outcome.LOCAL_ERROR,
        rtt_ms=rtt,
        errno=code,
        detail=f"connect: {os.strerror(code)}",
    )


def handshake_rtt_ms(sock: socket.socket) -> float | None:
    """The kernel's own SYN to SYN-ACK round trip (TCP_INFO tcpi_rtt, µs; its first sample).

    A clock read in Python after the wake-up also counts the wait for the GIL, which other
    probe threads may hold for milliseconds; the kernel stamps both packets itself.
    """
    try:
        info = sock.getsockopt(socket.IPPROTO_TCP, socket.TCP_INFO, TCP_INFO_RTT_OFFSET + 4)
    except OSError:
        return None
    if len(info) < TCP_INFO_RTT_OFFSET + 4:
        return None
    (micros,) = struct.unpack_from("I", info, TCP_INFO_RTT_OFFSET)
    return round(micros / 1000, 3) if micros else None


def _dropped_by_own_firewall(local: tuple[str, int], remote: tuple[str, int]) -> Attempt | None:
    code = firewall.output_errno(local, remote)
    if code is None:
        return None
    return Attempt(
        outcome=Outcome.LOCAL_ERROR,
        stage=Stage.SEND,
        errno=code,
        detail=f"the source's own firewall drops the SYN: {os.strerror(code)}",
    )
