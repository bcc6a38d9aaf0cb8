"""UDP: one datagram per attempt on a connected socket; a reply or an ICMP error answers it.

Silence proves nothing for UDP: the port may be open with a service that ignores our payload, or
filtered. Only an ICMP port unreachable from the destination shows that nothing listens.
"""

from __future__ import annotations

import select
import socket
import time

from hopscope_probe.checks import icmperr, sockets
from hopscope_probe.evidence import Attempt, ConnectionEvidence, Outcome
from hopscope_probe.models import ProbeRequest

PAYLOAD = b"hopscope probe\n"


def check(request: ProbeRequest, address: str) -> ConnectionEvidence:
    attempts = tuple(_attempt(request, address) for _ in range(request.count))
    return ConnectionEvidence(protocol="UDP", address=address, port=request.port, attempts=attempts)


def _attempt(request: ProbeRequest, address: str) -> Attempt:
    with socket.socket(sockets.family_of(address), socket.SOCK_DGRAM) as sock:
        icmperr.enable(sock)
        failed = sockets.bind_source_port(sock, request.source_port)
        if failed is not None:
            return failed
        sock.setblocking(False)
        start = time.perf_counter()
        try:
            sock.connect((address, request.port or 0))  # routes now: no route fails here
            sock.send(PAYLOAD)
        except OSError as exc:
            return sockets.send_error(exc, "send")
        return _answer(sock, address, start, start + request.timeout_seconds)


def _answer(sock: socket.socket, address: str, start: float, deadline: float) -> Attempt:
    while sockets.wait(sock, select.POLLIN, deadline):
        queued = icmperr.drain(sock)
        if queued:
            return icmperr.as_attempt(queued[0], address, sockets.ms_since(start))
        try:
            sock.recv(65535)
        except OSError:  # nothing yet, or an ICMP error that arrived since: the next drain has it
            continue
        return Attempt(outcome=Outcome.SUCCESS, rtt_ms=sockets.ms_since(start))
    return Attempt(outcome=Outcome.TIMEOUT, detail="no reply: open|filtered")
