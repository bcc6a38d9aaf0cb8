"""Connection checks: one function per protocol, each probing one address `request.count` times.

A check never raises for a network failure: what happened is its evidence (see evidence.py).
"""

from __future__ import annotations

from collections.abc import Callable

from hopscope_probe.checks import http, icmp, tcp, udp
from hopscope_probe.evidence import ConnectionEvidence
from hopscope_probe.models import ProbeRequest

# (request with its port already resolved, None for ICMP; destination address) -> evidence
ConnectionCheck = Callable[[ProbeRequest, str], ConnectionEvidence]

CONNECTION_CHECKS: dict[str, ConnectionCheck] = {
    "TCP": tcp.check,
    "UDP": udp.check,
    "ICMP": icmp.check,
    "HTTP": http.check_http,
    "HTTPS": http.check_https,
}
