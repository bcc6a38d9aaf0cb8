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


MAX_NAME, MAX_LABEL = 253, 63  # a DNS name's octets without the root's dot; one label's


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
        return parts.hostname, DEFAULT_PORTS.get(request.protocol) if port is None else port
    return request.host, request.port or DEFAULT_PORTS.get(request.protocol)


def split_host_port(value: str) -> tuple[str, int | None]:
    """HOST, HOST:PORT, [V6] or [V6]:PORT; a bare IPv6 literal has no port. ValueError says
    what is wrong; the CLIs name their flag in front of it."""
    if value.startswith("["):
        host, closed, rest = value[1:].partition("]")
        if not closed or not _is_ipv6(host):
            raise ValueError("brackets hold an IPv6 address: [V6] or [V6]:PORT")
        if rest and not rest.startswith(":"):
            raise ValueError(f"unexpected {rest!r} after ]")
        port = rest.removeprefix(":") or None
    elif value.count(":") == 1:
        host, port = value.split(":")
    else:
        host, port = value, None
    if not host:
        raise ValueError("empty host")
    return host, None if port is None else port_number(port)


def port_number(text: str) -> int:
    """A port in ASCII digits (str.isdigit() and int() would take '٨٠' for 80)."""
    if not (text.isascii() and text.isdigit()) or not 0 < int(text) < 65536:
        raise ValueError(f"port {text!r}: must be 1-65535")
    return int(text)


def check_host(host: str) -> str:
    """`host` if it is an IP address or a DNS name a resolver can ask for; else ValueError."""
    if "%" in host:
        raise ValueError("IPv6 zone IDs (%…) are not supported")
    if is_ip(host):
        return host
    if ":" in host:
        raise ValueError(f"{host} is not an IPv6 address")
    if not host.isascii() or not host.isprintable() or " " in host:
        raise ValueError(
            "a name is ASCII without spaces or control characters (an international name "
            "in its xn-- form)"
        )
    name = host.removesuffix(".")
    if len(name) > MAX_NAME:
        raise ValueError(f"name of {len(name)} characters: a DNS name has at most {MAX_NAME}")
    for label in name.split("."):
        if not label:
            raise ValueError("empty label in the name (two dots, or a leading dot)")
        if len(label) > MAX_LABEL:
            raise ValueError(f"a label of the name is longer than {MAX_LABEL} characters")
    return host


def parse_uri(uri: str) -> tuple[Protocol, str, int | None]:
    """An http(s) URL's protocol, host and port (None: the scheme's); ValueError says what is
    wrong with it."""
    try:
        parts = urlsplit(uri)
        port = parts.port
    except ValueError as exc:  # a bad port or a bad [IPv6] literal
        raise ValueError(str(exc)) from None
    if parts.scheme.lower() not in ("http", "https"):
        raise ValueError("scheme must be http or https")
    if not parts.hostname:
        raise ValueError("no host")
    if port == 0:
        raise ValueError("port 0: must be 1-65535")
    return Protocol(parts.scheme.upper()), check_host(parts.hostname), port


def _is_ipv6(text: str) -> bool:
    return is_ip(text) and ":" in text


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
