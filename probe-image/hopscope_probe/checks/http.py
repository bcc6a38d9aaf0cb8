"""HTTP and HTTPS with the standard library, timed in the phases Prometheus' blackbox exporter
reports: connect, TLS handshake, processing (request sent to first byte) and transfer.
An attempt's rtt_ms is the time to the response's first byte (connect, TLS and processing):
the latency a client of the server sees, which the check's latency threshold judges.

The connection itself is tcp.connect, so a failed connect reads exactly as in a TCP check.
Any parsed response counts as an answer; diagnose judges its status against the valid codes.
"""

from __future__ import annotations

import contextlib
import http.client
import io
import socket
import ssl
import time
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING, cast
from urllib.parse import urlsplit

from hopscope_probe.checks import sockets, tcp
from hopscope_probe.evidence import (
    Attempt,
    ConnectionEvidence,
    HttpAttempt,
    Outcome,
    Stage,
    TlsProblem,
)
from hopscope_probe.models import ProbeRequest

if TYPE_CHECKING:
    from _typeshed import WriteableBuffer

BODY_LIMIT = 1 << 20  # the check needs the status and the timing, not a whole download
READ_SIZE = 64 * 1024
NO_ANSWER = "no complete answer within the timeout"
BODY_METHODS = {"POST", "PUT", "PATCH"}
# OpenSSL X509_V_ERR_* codes of ssl.SSLCertVerificationError.verify_code.
VERIFY_PROBLEMS = {
    9: TlsProblem.NOT_YET_VALID,
    10: TlsProblem.EXPIRED,
    2: TlsProblem.UNTRUSTED,  # issuer certificate not found
    18: TlsProblem.UNTRUSTED,  # self-signed leaf
    19: TlsProblem.UNTRUSTED,  # self-signed certificate in the chain
    20: TlsProblem.UNTRUSTED,  # issuer unknown locally
    21: TlsProblem.UNTRUSTED,  # leaf signature cannot be verified
    62: TlsProblem.HOSTNAME_MISMATCH,
    64: TlsProblem.HOSTNAME_MISMATCH,  # the IP address in the URI is not in the certificate
}


@dataclass(frozen=True)
class Target:
    host: str  # the name TLS sends (SNI) and verifies
    host_header: str
    path: str

    @classmethod
    def of(cls, request: ProbeRequest, default_port: int) -> Target:
        if request.uri:
            parts = urlsplit(request.uri)
            path = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
            netloc = parts.netloc.rpartition("@")[2]  # never send userinfo in the Host header
            return cls(parts.hostname or request.host, netloc, path)
        host = f"[{request.host}]" if ":" in request.host else request.host
        port = request.port or default_port
        return cls(request.host, host if port == default_port else f"{host}:{port}", "/")


def check_http(request: ProbeRequest, address: str) -> ConnectionEvidence:
    return _check(request, address, Target.of(request, 80), None)


def check_https(request: ProbeRequest, address: str) -> ConnectionEvidence:
    loading = f"CA file {request.ca_file}"
    try:
        context = ssl.create_default_context()
        if request.ca_file:
            context.load_verify_locations(cafile=request.ca_file)
        if request.ca_pem:
            loading = "the check's CA bundle"
            context.load_verify_locations(cadata=request.ca_pem)
    except (OSError, TypeError) as exc:  # not PEM (ssl.SSLError), or not ASCII (TypeError)
        failed = Attempt(
            outcome=Outcome.LOCAL_ERROR,
            stage=Stage.TLS,
            detail=f"cannot load {loading}: {exc}",
        )
        return ConnectionEvidence(
            protocol="HTTPS",
            address=address,
            port=request.port,
            attempts=(failed,) * request.count,
            http=(HttpAttempt(),) * request.count,
        )
    return _check(request, address, Target.of(request, 443), context)


def _check(
    request: ProbeRequest, address: str, target: Target, context: ssl.SSLContext | None
) -> ConnectionEvidence:
    results = [_attempt(request, address, target, context) for _ in range(request.count)]
    return ConnectionEvidence(
        protocol="HTTP" if context is None else "HTTPS",
        address=address,
        port=request.port,
        attempts=tuple(attempt for attempt, _ in results),
        http=tuple(timing for _, timing in results),
    )


def _attempt(
    request: ProbeRequest, address: str, target: Target, context: ssl.SSLContext | None
) -> tuple[Attempt, HttpAttempt]:
    began = time.perf_counter()
    deadline = began + request.timeout_seconds
    sock, connected = tcp.connect(request, address, deadline)
    timing = HttpAttempt(connect_ms=connected.rtt_ms or 0.0)
    if sock is None:
        return connected, timing
    with contextlib.ExitStack() as cleanup:
        stream: socket.socket = cleanup.enter_context(sock)
        if context is not None:
            start = time.perf_counter()
            tls = context.wrap_socket(
                sock, server_hostname=target.host, do_handshake_on_connect=False
            )
            cleanup.enter_context(tls)
            try:
                tls.settimeout(_left(deadline))
                tls.do_handshake()
            except OSError as exc:  # ssl.SSLError, a reset or the timeout
                timing = replace(timing, tls_ms=sockets.ms_since(start), tls_problem=_problem(exc))
                return _tls_failure(exc), timing
            timing = replace(timing, tls_ms=sockets.ms_since(start), tls_version=tls.version())
            stream = tls
        return _exchange(stream, request, target, began, deadline, timing)


def _exchange(
    stream: socket.socket,
    request: ProbeRequest,
    target: Target,
    began: float,
    deadline: float,
    timing: HttpAttempt,
) -> tuple[Attempt, HttpAttempt]:
    """Send the request, then time the first byte and the rest of the response apart."""
    phase = "sending the request"
    first_byte_ms: float | None = None  # the attempt's rtt_ms: no response, no latency
    within = _Within(stream, deadline)
    try:
        within.send_all(_request_bytes(request, target))
        sent = time.perf_counter()
        phase = "waiting for the response"
        reader = io.BufferedReader(within)
        if not reader.peek(1):
            raise http.client.RemoteDisconnected("closed without a response")
        first_byte = time.perf_counter()
        first_byte_ms = round((first_byte - began) * 1000, 3)
        timing = replace(timing, processing_ms=round((first_byte - sent) * 1000, 3))
        phase = "reading the response"
        buffered = cast(socket.socket, _Buffered(reader))
        response = http.client.HTTPResponse(buffered, method=request.http.method)
        response.begin()
        timing = replace(timing, status_code=response.status)
        _read_body(response)
        timing = replace(timing, transfer_ms=sockets.ms_since(first_byte))
    except (http.client.HTTPException, OSError) as exc:
        # A recv that timed out and a deadline passed between reads are the same failure.
        problem = NO_ANSWER if isinstance(exc, TimeoutError) else _describe(exc)
        return Attempt(
            outcome=Outcome.HTTP_ERROR,
            stage=Stage.HTTP,
            rtt_ms=first_byte_ms,
            detail=f"{phase}: {problem}",
            stalled=isinstance(exc, TimeoutError),
        ), timing
    return Attempt(
        outcome=Outcome.SUCCESS,
        stage=Stage.HTTP,
        rtt_ms=first_byte_ms,
        detail=f"HTTP {response.status}",
    ), timing


def _read_body(response: http.client.HTTPResponse) -> None:
    received = 0
    while received < BODY_LIMIT:
        chunk = response.read(min(READ_SIZE, BODY_LIMIT - received))
        if not chunk:
            return
        received += len(chunk)


def _request_bytes(request: ProbeRequest, target: Target) -> bytes:
    method = request.http.method
    defaults = {
        "Host": target.host_header,
        "User-Agent": "hopscope",
        "Accept": "*/*",
        "Connection": "close",
    }
    if method in BODY_METHODS:
        defaults["Content-Length"] = "0"
    given = {header.name.lower() for header in request.http.headers}
    lines = [f"{method} {target.path} HTTP/1.1"]
    lines += [f"{name}: {value}" for name, value in defaults.items() if name.lower() not in given]
    lines += [f"{header.name}: {header.value}" for header in request.http.headers]
    return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1")


class _Within(io.RawIOBase):
    """The connection under the attempt's one deadline. A socket timeout bounds a single recv,
    and http.client reads a header line or a body with many: a server trickling its answer
    would hold the check far past its timeout and still count as an answer."""

    def __init__(self, stream: socket.socket, deadline: float) -> None:
        self._stream = stream
        self._deadline = deadline

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: WriteableBuffer) -> int:
        self._stream.settimeout(_left(self._deadline))
        return self._stream.recv_into(buffer)

    def send_all(self, data: bytes) -> None:
        view = memoryview(data)
        while view:
            self._stream.settimeout(_left(self._deadline))
            view = view[self._stream.send(view) :]


class _Buffered:
    """Stands in for the socket: http.client reads from the reader whose first byte was already
    awaited (and timed) instead of opening its own."""

    def __init__(self, reader: io.BufferedReader) -> None:
        self._reader = reader

    def makefile(self, mode: str) -> io.BufferedReader:
        return self._reader


def _problem(exc: OSError) -> TlsProblem:
    if isinstance(exc, ssl.SSLCertVerificationError):
        return VERIFY_PROBLEMS.get(exc.verify_code, TlsProblem.HANDSHAKE)
    return TlsProblem.HANDSHAKE


def _tls_failure(exc: OSError) -> Attempt:
    if isinstance(exc, ssl.SSLCertVerificationError):
        detail = f"certificate verification failed: {exc.verify_message}"
    else:
        detail = f"handshake failed: {_describe(exc)}"
    stalled = isinstance(exc, TimeoutError)  # connected, then the server's flight never came
    return Attempt(outcome=Outcome.TLS_ERROR, stage=Stage.TLS, detail=detail, stalled=stalled)


def _describe(exc: BaseException) -> str:
    return str(exc) or type(exc).__name__


def _left(deadline: float) -> float:
    # Raised rather than returned as 0: a zero timeout would make the socket non-blocking.
    left = deadline - time.perf_counter()
    if left <= 0:
        raise TimeoutError(NO_ANSWER)
    return left
