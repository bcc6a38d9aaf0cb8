"""What a request aims at, and the result when the probe cannot run at all.

Kept apart from the engine so the CLI can answer bad input without loading the checks.
"""

from __future__ import annotations

import ipaddress
from urllib.parse import urlsplit

from hopscope_probe.models import (
    ConnectionStatus,
    DestinationInfo,
    Issue,
    ProbeRequest,
    ProbeResult,
    Protocol,
)

DEFAULT_PORTS = {Protocol.HTTP: 80, Protocol.HTTPS: 443, Protocol.DNS: 53}


class BadTarget(ValueError):
    """A request the model admits but that names no target (a URI that does not parse)."""


def target_of(request: ProbeRequest) -> tuple[str, int | None]:
    """The host and port a request aims at (a URI wins over host/port); BadTarget says why
    there is none."""
    if request.uri:
        try:
            parts = urlsplit(request.uri)
            port = parts.port  # parsed lazily: "http://h:99999" fails only here
        except ValueError as exc:
            raise BadTarget(f"uri {request.uri!r} is malformed: {exc}") from None
        if not parts.hostname:
            raise BadTarget(f"uri {request.uri!r} has no host")
        return parts.hostname, port or DEFAULT_PORTS.get(request.protocol)
    return request.host, request.port or DEFAULT_PORTS.get(request.protocol)


def split_host_port(value: str) -> tuple[str, int | None]:
    """HOST, HOST:PORT, [V6] or [V6]:PORT; a bare IPv6 literal has no port. ValueError says
    what is wrong; the CLIs name their flag in front of it."""
    if value.startswith("["):
        host, _, rest = value[1:].partition("]")
        port = rest.removeprefix(":") or None
    elif value.count(":") == 1:
        host, port = value.split(":")
    else:
        host, port = value, None
    if not host:
        raise ValueError("empty host")
    if port is None:
        return host, None
    if not port.isdigit() or not 0 < int(port) < 65536:
        raise ValueError("port must be 1-65535")
    return host, int(port)


def is_ip(host: str) -> bool:
    try:
        ipaddress.ip_address(host)
    except ValueError:
        return False
    return True


def unknown_result(request: ProbeRequest, reason: Issue) -> ProbeResult:
    """The result when the probe could not run at all (bad namespace, no privileges, a URI
    that does not parse: then the request's host and port name the destination)."""
    try:
        host, port = target_of(request)
    except BadTarget:
        host, port = request.host, request.port
    return ProbeResult(
        connection_status=ConnectionStatus.UNKNOWN,
        protocol=request.protocol,
        destination=DestinationInfo(host=host, port=port),
        issues=[reason],
    )
