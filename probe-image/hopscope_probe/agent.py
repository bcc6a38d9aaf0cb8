"""`hopscope agent`: the probe engine as a small HTTP server in a workload's own pod.

Gateways and bastions should not be restarted or made privileged to answer a connectivity
question, so their pods carry this agent as a sidecar (same image, `agent` mode). It shares the
pod's network namespace and probes from there; it needs only CAP_NET_RAW (path tracing, ICMP).

HTTP contract (JSON bodies, camelCase as in `ProbeRequest` / `ProbeResult`):

    POST /v1/probe   Authorization: Bearer <token>, body: a ProbeRequest
        200  a ProbeResult (an Unknown verdict when the probe could not run is still a 200)
        400  {"error": "<field>: <why>"}   malformed JSON, invalid field (a `uri` without a
                                           host or with a bad port) or above this agent's
                                           limits (count, timeoutSeconds, maxHops; caFile
                                           refused); a Content-Length given twice with two
                                           values or of more than 18 digits
        401  {"error": "unauthorized"}     missing, wrong or unverifiable token (any path but
                                           /healthz)
        404 / 405                          unknown path / method, after authentication
        411  no Content-Length             413  body above --max-body-bytes
        429  this address's tokens were refused too often: no review for now; `Retry-After`
        431  request line and headers above 16 KiB (before authentication)
        503  busy: --max-concurrent probes, 4 authentications already running or 20 token
                                           checks in the last second; `Retry-After` in seconds
    GET|HEAD /healthz  200 "ok", unauthenticated, says nothing else (liveness)

Every error is `{"error": ...}` as JSON, those the HTTP library answers itself (a garbled
request line: 400, a method it does not know: 501, an HTTP version: 505) included.

Callers are authenticated in one of two ways:

- `--token-file PATH`: a shared static token, read from a Secret volume and read again whenever
  the file changes (kubelet swaps a symlink, which changes the inode), so a rotated Secret takes
  effect without a restart. Tokens are compared in constant time.
- `--auth kubernetes --allowed-caller system:serviceaccount:NS:NAME [--audience AUD]`: the caller
  sends its projected ServiceAccount token (audience `hopscope-agent` by default) and the agent
  checks it with a TokenReview (`hopscope_probe.tokenreview`), as its own service account, which
  needs `create` on `tokenreviews`. No Secret is shared; answers are cached briefly; an API
  error refuses the caller. A cached answer is given at once, without a slot; a token that
  needs a review takes one of the 4 slots and one of 20 reviews a second (`ratelimit`), and
  only refused tokens spend their address's budget of 5 (then one every 2 s). An address whose
  token was accepted in the last hour has 4 slots of its own and no share in the 20 a second,
  so the operator's renewed token (or its cached review run out) is reviewed at once while
  invented tokens from many addresses spend the shared rate: invented tokens, however many,
  neither hold the operator's calls nor become a TokenReview flood.

Tokens are never logged; request paths are logged with control and non-ASCII characters
escaped. With `--tls-cert` and `--tls-key` the server speaks HTTPS only; the
pair is reloaded when either file changes. One line per request goes to stderr: client, method,
path, status, duration.

Unauthenticated clients cannot hold the agent: each connection has one deadline (10 s) for its
TLS handshake and whole request, however slowly it trickles in; the request line and headers
may take 16 KiB together (above: 431); a body is read only once its caller is authenticated
(a refused one is answered first, then drained). At most 32 connections are open, each in its
own thread. When all are taken, a new connection evicts the oldest one whose caller has not
been authenticated (its socket is shut down, which ends its thread's reads at once), so slow
or idle connections, however many, never keep /healthz from being answered: a health check
is lost only if 32 newer connections arrive while its own request does. Only callers with a
valid token can fill every slot; past that, new connections are closed unanswered.

An evicted connection's thread runs until it notices, so threads are bounded apart from
connections: at most 4 authentications run at once (a TokenReview may take seconds; past that:
503), 4 more for trusted addresses, and at most 64 handler threads are alive, evicted ones
counted until they end (past that, new connections are closed unanswered). Outside an
authentication an evicted thread ends at once (every read and write on its socket fails;
authenticated connections are never evicted, and one evicted while its caller was being
authenticated is dropped, never served), so at most 8 of the 32 threads above the connections
are held: slow clients and bad tokens, however many, cannot reach 64. Evicted connections'
failures are logged at debug level only.

About 900 lines: the server, its limits and its command line are one security boundary, read
together in one place; the token check itself is `tokenreview`.
"""

from __future__ import annotations

import argparse
import contextlib
import hmac
import io
import json
import logging
import math
import os
import signal
import socket
import ssl
import sys
import threading
import time
from dataclasses import dataclass
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, Protocol

from pydantic import ValidationError

from hopscope_probe.models import ProbeRequest
from hopscope_probe.ratelimit import AuthRate
from hopscope_probe.runner import Where, run_in
from hopscope_probe.tokenreview import (
    DEFAULT_AUDIENCE,
    DEFAULT_CA_PATH,
    DEFAULT_TOKEN_PATH,
    DEFAULT_TTL,
    TokenReviewer,
    TokenReviewError,
    in_cluster_api_url,
)

log = logging.getLogger("hopscope.agent")

DEFAULT_PORT = 9723
DEFAULT_LISTEN = f"0.0.0.0:{DEFAULT_PORT}"
PROBE_PATH = "/v1/probe"
HEALTH_PATH = "/healthz"
SHORT_TOKEN = 16  # characters; shorter tokens are accepted with a warning
# A refused request's body is read and dropped up to this size after the answer: closing a
# socket with unread data resets it, and the client may lose the answer.
DRAIN_BYTES = 1024 * 1024
MAX_LENGTH_DIGITS = 18  # a Content-Length longer than this is no body the agent could read


class AgentError(Exception):
    """The agent cannot start (no token, bad listen address, unreadable certificate)."""


class HeadTooLarge(Exception):
    """The request line and headers are above `Limits.max_head_bytes`."""


class DeadlineSocket(io.RawIOBase):
    """A connection's reads, each allowed only the time left until the request's deadline: with
    a timeout per read, a client sending a byte every few seconds would be read forever."""

    def __init__(self, sock: socket.socket, deadline: float) -> None:
        super().__init__()
        self.sock = sock
        self.deadline = deadline

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: Any) -> int:
        left = self.deadline - time.monotonic()
        if left <= 0:
            raise TimeoutError("the request did not arrive in time")
        self.sock.settimeout(left)
        return self.sock.recv_into(buffer)


class RequestReader(io.BufferedReader):
    """A request's input. The stdlib reads the request line and headers with readline() and
    the agent its body with read(), so lines are what the head budget counts."""

    def __init__(self, raw: DeadlineSocket, head_bytes: int) -> None:
        super().__init__(raw)
        self.head_left = head_bytes

    def readline(self, size: int | None = -1) -> bytes:
        most = self.head_left + 1
        line = super().readline(most if size is None or size < 0 else min(size, most))
        self.head_left -= len(line)
        if self.head_left < 0:
            raise HeadTooLarge
        return line


class Authenticator(Protocol):
    """Whether a request's Authorization header admits its caller."""

    def known(self, authorization: str | None) -> bool | None:
        """The verdict when it costs nothing (a static token, a cached review), else None."""
        ...

    def accepts(self, authorization: str | None) -> bool:
        """The verdict, however long it takes (a TokenReview)."""
        ...


def bearer_of(authorization: str | None) -> str | None:
    """The token of `Bearer <token>`, else None."""
    if not authorization:
        return None
    scheme, _, offered = authorization.partition(" ")
    if scheme.lower() != "bearer":
        return None
    return offered.strip() or None


@dataclass(frozen=True)
class Limits:
    """What one agent accepts; a request above a limit is refused (400), never trimmed."""

    max_body_bytes: int = 64 * 1024
    max_concurrent: int = 2
    max_count: int = 20
    max_timeout_seconds: float = 10.0
    max_hops: int = 32
    max_connections: int = 32  # open connections (each holds a thread); see AgentServer
    max_auth_checks: int = 4  # authentications at once (a TokenReview may take seconds); 503
    auth_checks_per_second: float = 20.0  # token checks the agent makes in all; above: 503
    peer_refusals: float = 5.0  # refused tokens one address may send at once; above: 429
    peer_refusals_per_second: float = 0.5  # and then at this rate
    read_timeout_seconds: float = 10.0  # for the TLS handshake and the whole request
    max_head_bytes: int = 16 * 1024  # request line and headers; above: 431
    retry_after_seconds: int = 2

    def refusal(self, request: ProbeRequest) -> str | None:
        """Why a valid request is still too big for this agent (the field named as on the wire)."""
        if request.count > self.max_count:
            return f"count: at most {self.max_count} on this agent, got {request.count}"
        if request.timeout_seconds > self.max_timeout_seconds:
            return (
                f"timeoutSeconds: at most {self.max_timeout_seconds:g} on this agent,"
                f" got {request.timeout_seconds:g}"
            )
        if request.max_hops > self.max_hops:
            return f"maxHops: at most {self.max_hops} on this agent, got {request.max_hops}"
        if request.ca_file is not None:
            return "caFile: the agent does not read files named by a request"
        return None


class TokenFile:
    """The shared secret, read again whenever the file changes; None when unusable."""

    def __init__(self, path: str) -> None:
        self.path = path
        self._lock = threading.Lock()
        self._seen: tuple[int, ...] | None = None
        self._token: bytes | None = None

    def current(self) -> bytes | None:
        try:
            st = os.stat(self.path)  # follows kubelet's ..data symlink to the live file
        except OSError:
            return None  # fail closed: a vanished Secret refuses everyone
        seen = (st.st_dev, st.st_ino, st.st_size, st.st_mtime_ns, st.st_ctime_ns)
        with self._lock:
            if seen != self._seen:
                try:
                    with open(self.path, "rb") as handle:
                        self._token = handle.read().strip() or None
                except OSError:
                    self._token = None
                self._seen = seen
                if self._token is None:
                    log.warning("token file %s is empty or unreadable: refusing all", self.path)
            return self._token

    def accepts(self, authorization: str | None) -> bool:
        token = self.current()
        offered = bearer_of(authorization)
        if token is None or offered is None:
            return False
        return hmac.compare_digest(offered.encode(errors="replace"), token)

    def known(self, authorization: str | None) -> bool:
        return self.accepts(authorization)  # a compare: never worth a slot


class KubernetesAuth:
    """A caller's projected ServiceAccount token, checked by TokenReview."""

    def __init__(self, reviewer: TokenReviewer) -> None:
        self.reviewer = reviewer

    def known(self, authorization: str | None) -> bool | None:
        offered = bearer_of(authorization)
        return False if offered is None else self.reviewer.cached(offered)

    def accepts(self, authorization: str | None) -> bool:
        offered = bearer_of(authorization)
        return offered is not None and self.reviewer.allows(offered)


class TlsFiles:
    """A server TLS context, rebuilt when the certificate or key file changes."""

    def __init__(self, cert: str, key: str) -> None:
        self.cert, self.key = cert, key
        self._lock = threading.Lock()
        self._seen: tuple[int, ...] | None = None
        self._context = self._load()  # fails at startup, not on the first client

    def _stamp(self) -> tuple[int, ...]:
        return tuple(
            part
            for path in (self.cert, self.key)
            for st in [os.stat(path)]
            for part in (st.st_ino, st.st_mtime_ns, st.st_size)
        )

    def _load(self) -> ssl.SSLContext:
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        context.minimum_version = ssl.TLSVersion.TLSv1_2
        context.load_cert_chain(self.cert, self.key)
        self._seen = self._stamp()
        return context

    def context(self) -> ssl.SSLContext:
        with self._lock:
            try:
                if self._stamp() != self._seen:
                    self._context = self._load()
            except (OSError, ssl.SSLError) as exc:  # mid-rotation: keep serving the old pair
                log.warning("keeping the previous TLS certificate: %s", exc)
            return self._context


@dataclass
class Connection:
    sock: socket.socket  # what to shut down on eviction: the TLS socket once wrapped
    trusted: bool = False  # its caller is authenticated: never evicted


class AgentServer(ThreadingHTTPServer):
    """Each connection in its own thread, at most `max_connections` at once; past that, the
    oldest untrusted connection is evicted for the new one, and without any the new one is
    closed. Evicted threads count until they end: past `max_threads` alive, new connections are
    closed. On close, waits for the requests in progress (their probes are bounded by the
    limits)."""

    daemon_threads = False
    block_on_close = True
    allow_reuse_address = True
    # The listen backlog (socketserver's default is 5): under a flood a full backlog drops the
    # operator's SYN too, and its retry comes a second later. Admission is decided after accept.
    request_queue_size = 256

    def __init__(
        self,
        address: tuple[str, int],
        auth: Authenticator,
        limits: Limits,
        tls: TlsFiles | None = None,
        where: Where | None = None,
    ) -> None:
        self.address_family = socket.AF_INET6 if ":" in address[0] else socket.AF_INET
        self.auth = auth
        self.limits = limits
        self.tls = tls
        self.where = where or Where()
        self.probes = threading.BoundedSemaphore(limits.max_concurrent)
        self.auth_checks = threading.BoundedSemaphore(limits.max_auth_checks)
        # As many again for trusted addresses (`ratelimit`): invented tokens' slow reviews
        # holding every slot above cannot keep the operator's renewed token from its review.
        self.trusted_auth_checks = threading.BoundedSemaphore(limits.max_auth_checks)
        self.auth_rate = AuthRate(
            rate=limits.auth_checks_per_second,
            burst=limits.auth_checks_per_second,
            peer_rate=limits.peer_refusals_per_second,
            peer_burst=limits.peer_refusals,
        )
        # Room for evicted threads still ending (see the module's docstring).
        self.max_threads = 2 * limits.max_connections
        # Open connections by accepted socket, oldest first.
        self.connections: dict[socket.socket, Connection] = {}
        self.threads = 0  # handler threads alive, evicted ones included
        self._lock = threading.Lock()
        super().__init__(address, AgentHandler)

    def process_request(self, request: Any, client_address: Any) -> None:
        with self._lock:
            refusal = self._refusal()
            if refusal is None:
                self.connections[request] = Connection(request)
                self.threads += 1
        if refusal is not None:
            log.warning("%s: %s, closed", client_address[0], refusal)
            self.shutdown_request(request)
            return
        try:
            super().process_request(request, client_address)
        except BaseException:
            self._ended(request)
            raise

    def process_request_thread(self, request: Any, client_address: Any) -> None:
        try:
            super().process_request_thread(request, client_address)
        finally:
            self._ended(request)

    def _refusal(self) -> str | None:
        """Why a new connection cannot be taken, else None (having evicted one if needed)."""
        # Checked first: an eviction ends a thread only later.
        if self.threads >= self.max_threads:
            return f"{self.threads} handler threads alive"
        full = len(self.connections) >= self.limits.max_connections
        if full and not self._evict_oldest_untrusted():
            return "every connection is an authenticated caller's"
        return None

    def _evict_oldest_untrusted(self) -> bool:
        for accepted, connection in self.connections.items():
            if not connection.trusted:
                del self.connections[accepted]
                # The plain socket's shutdown: SSLSocket's would drop its TLS state mid-read.
                # OSError: its thread has closed it already.
                with contextlib.suppress(OSError):
                    socket.socket.shutdown(connection.sock, socket.SHUT_RDWR)
                return True
        return False

    def _ended(self, accepted: socket.socket) -> None:
        with self._lock:
            self.connections.pop(accepted, None)
            self.threads -= 1

    def trust(self, accepted: socket.socket) -> bool:
        """Marks an authenticated caller's connection as never to evict; False when it has been
        evicted already."""
        with self._lock:
            connection = self.connections.get(accepted)
            if connection is not None:
                connection.trusted = True
            return connection is not None

    def wrap_tls(self, accepted: socket.socket, context: ssl.SSLContext) -> ssl.SSLSocket:
        """The connection as a TLS socket, handshake not yet done. Under the lock: wrapping
        detaches `accepted`, and an eviction must find the socket that now owns the file."""
        with self._lock:
            wrapped = context.wrap_socket(accepted, server_side=True, do_handshake_on_connect=False)
            if accepted in self.connections:
                self.connections[accepted].sock = wrapped
            return wrapped

    def handle_error(self, request: Any, client_address: Any) -> None:
        exc = sys.exc_info()[1]
        with self._lock:
            evicted = request not in self.connections  # still tracked until its thread ends
        # Evicted: the server shut its socket, and an attack would flood the log with them.
        level = logging.DEBUG if evicted else logging.WARNING
        log.log(level, "%s: connection failed: %s: %s", client_address[0], type(exc).__name__, exc)

    @property
    def url(self) -> str:
        host, port = self.server_address[:2]
        shown = f"[{host}]" if ":" in host else host
        return f"{'https' if self.tls else 'http'}://{shown}:{port}"


class AgentHandler(BaseHTTPRequestHandler):
    server: AgentServer
    server_version = "hopscope-agent"
    protocol_version = "HTTP/1.0"  # one request per connection: no idle keep-alive threads

    def version_string(self) -> str:
        return self.server_version  # no Python version in the Server header

    # ---- connection ----------------------------------------------------------------------

    def setup(self) -> None:
        limits = self.server.limits
        self.timeout = limits.read_timeout_seconds
        deadline = time.monotonic() + self.timeout
        self.accepted = self.request
        if self.server.tls is not None:
            # The handshake happens here, in the connection's thread, not in the accept loop;
            # ssl bounds the whole handshake by the socket's timeout, not each read.
            self.request = self.server.wrap_tls(self.accepted, self.server.tls.context())
            self.request.settimeout(self.timeout)
            try:
                self.request.do_handshake()
            except BaseException:
                self.request.close()  # finish() does not run when setup() fails
                raise
        super().setup()
        self.rfile.close()  # reads with a timeout each; replaced by one with the deadline
        self.rfile = RequestReader(DeadlineSocket(self.connection, deadline), limits.max_head_bytes)

    def finish(self) -> None:
        try:
            super().finish()
        finally:
            if self.server.tls is not None:
                self.request.close()  # the server closes the plain socket, now detached

    def handle_one_request(self) -> None:
        self._status: int | None = None
        self._body_read = False
        started = time.monotonic()
        try:
            super().handle_one_request()
        except HeadTooLarge:
            self.command = self.request_version = ""  # as the stdlib does for a 414
            limit = self.server.limits.max_head_bytes
            self.send_error(
                HTTPStatus.REQUEST_HEADER_FIELDS_TOO_LARGE,
                f"request line and headers: at most {limit} bytes",
            )
        if self._status is not None:
            path = route_of(getattr(self, "path", "") or "-")[:200]
            log.info(
                "%s %s %s %d %.1fms",
                self.client_address[0],
                printable(getattr(self, "command", None) or "-")[:20],
                printable(path),
                self._status,
                (time.monotonic() - started) * 1000,
            )

    def send_error(self, code: int, message: str | None = None, explain: str | None = None) -> None:
        """What the stdlib answers itself (a malformed request line, an unsupported method or
        version, 431), as JSON like every other error, and the connection closed."""
        self.close_connection = True
        if self.request_version == "HTTP/0.9":  # the stdlib's guess for a garbled request
            self.request_version = "HTTP/1.0"  # line, which would send the body without a head
        status = HTTPStatus(code)
        self._reply(status, error_body(message or status.phrase), "application/json")

    def log_request(self, code: int | str = "-", size: int | str = "-") -> None:
        self._status = int(code) if isinstance(code, int) else None

    def log_message(self, format: str, *args: Any) -> None:
        pass  # one line per request from handle_one_request instead; no headers ever logged

    # ---- routes --------------------------------------------------------------------------

    def do_GET(self) -> None:
        if route_of(self.path) == HEALTH_PATH:
            self._reply(HTTPStatus.OK, b"ok\n", "text/plain; charset=utf-8")
        elif self._authenticated():
            self._route_other()

    do_HEAD = do_GET  # as GET, without the body (`_reply`): probes that send HEAD get "ok"

    def do_POST(self) -> None:
        if not self._authenticated():
            return
        if route_of(self.path) != PROBE_PATH:
            self._route_other()
            return
        body = self._body()
        if body is None:
            return
        try:
            request = ProbeRequest.model_validate_json(body)
        except ValidationError as exc:
            self._error(HTTPStatus.BAD_REQUEST, field_errors(exc))
            return
        refusal = self.server.limits.refusal(request)
        if refusal:
            self._error(HTTPStatus.BAD_REQUEST, refusal)
            return
        if not self.server.probes.acquire(blocking=False):
            self._busy(f"{self.server.limits.max_concurrent} probes already running")
            return
        try:
            result = run_in(request, self.server.where)
        except Exception as exc:  # run_in answers every probe failure; this is a bug of ours
            log.warning("probe failed", exc_info=True)
            self._error(HTTPStatus.INTERNAL_SERVER_ERROR, f"internal error: {type(exc).__name__}")
            return
        finally:
            self.server.probes.release()
        self._reply(HTTPStatus.OK, result.to_json().encode(), "application/json")

    def do_PUT(self) -> None:
        if self._authenticated():
            self._route_other()

    do_DELETE = do_PATCH = do_OPTIONS = do_PUT

    def _route_other(self) -> None:
        path = route_of(self.path)
        if path == PROBE_PATH:
            self._error(HTTPStatus.METHOD_NOT_ALLOWED, "use POST", {"Allow": "POST"})
        elif path == HEALTH_PATH:
            self._error(HTTPStatus.METHOD_NOT_ALLOWED, "use GET", {"Allow": "GET, HEAD"})
        else:
            self._error(HTTPStatus.NOT_FOUND, "not found")

    # ---- helpers -------------------------------------------------------------------------

    def _authenticated(self) -> bool:
        """Whether to go on: the caller is authenticated and its connection still open; if
        not, answered (or, evicted, dropped). A verdict known already (a cached review) never
        waits for anything, so invented tokens, however many, cannot hold a good caller."""
        authorization = self.headers.get("Authorization")
        accepted = self.server.auth.known(authorization)
        if accepted is None:
            accepted = self._checked(authorization)
            if accepted is None:
                return False
        if not accepted:
            self._error(HTTPStatus.UNAUTHORIZED, "unauthorized", {"WWW-Authenticate": "Bearer"})
            return False
        self.server.auth_rate.accepted(self.client_address[0])
        # Evicted while authenticating: its socket is shut, so any answer would go nowhere.
        return self.server.trust(self.accepted)

    def _checked(self, authorization: str | None) -> bool | None:
        """The verdict of a token check, None once a refusal to check has been answered."""
        peer = self.client_address[0]
        trusted = self.server.auth_rate.trusted(peer)
        limited = self.server.auth_rate.refusal(peer)
        if limited is not None:
            status = (
                HTTPStatus.TOO_MANY_REQUESTS if limited.peer else HTTPStatus.SERVICE_UNAVAILABLE
            )
            self._busy(limited.why, math.ceil(limited.wait), status)
            return None
        checks = self.server.trusted_auth_checks if trusted else self.server.auth_checks
        if not checks.acquire(blocking=False):
            self._busy(f"{self.server.limits.max_auth_checks} authentications already in progress")
            return None
        try:
            accepted = self.server.auth.accepts(authorization)
        finally:
            checks.release()
        if not accepted:
            self.server.auth_rate.refused(peer)
        return accepted

    def _busy(
        self,
        why: str,
        retry_after: int | None = None,
        status: HTTPStatus = HTTPStatus.SERVICE_UNAVAILABLE,
    ) -> None:
        retry = max(
            1, self.server.limits.retry_after_seconds if retry_after is None else retry_after
        )
        self._error(status, f"busy: {why}", {"Retry-After": str(retry)})

    def _content_length(self) -> int | None:
        """The Content-Length, None when absent, not plain ASCII digits (str.isdigit() alone
        admits '²', which int() refuses), longer than any body could be (int() refuses 4,300
        digits and more) or given twice with different values (which one a proxy used is
        unknown: RFC 9112 6.3)."""
        lengths = set(self.headers.get_all("Content-Length") or [""])
        length = lengths.pop().strip() if len(lengths) == 1 else ""
        plain = length.isascii() and length.isdigit() and len(length) <= MAX_LENGTH_DIGITS
        return int(length) if plain else None

    def _body(self) -> bytes | None:
        """The request body, or None once an error has been answered."""
        if self.headers.get("Transfer-Encoding") or "Content-Length" not in self.headers:
            self._error(HTTPStatus.LENGTH_REQUIRED, "Content-Length required")
            return None
        length = self._content_length()
        if length is None:
            self._error(
                HTTPStatus.BAD_REQUEST,
                f"Content-Length: not one number of at most {MAX_LENGTH_DIGITS} digits",
            )
            return None
        if length > self.server.limits.max_body_bytes:
            limit = self.server.limits.max_body_bytes
            self._error(HTTPStatus.REQUEST_ENTITY_TOO_LARGE, f"body: at most {limit} bytes")
            return None
        try:
            body = self.rfile.read(length)
        except OSError:  # the read timed out or the client went away
            self.close_connection = True
            return None
        self._body_read = True
        if len(body) < length:
            self._error(HTTPStatus.BAD_REQUEST, "body: shorter than its Content-Length")
            return None
        return body

    def _error(self, status: HTTPStatus, message: str, headers: dict[str, str] | None = None):
        self._reply(status, error_body(message), "application/json", headers)
        self._drain()  # after the answer: an unauthenticated body is never waited for

    def _drain(self) -> None:
        left = self._content_length()
        if self._body_read or left is None or left > DRAIN_BYTES:
            return
        self._body_read = True
        try:
            while left > 0:
                chunk = self.rfile.read(min(left, 65536))
                if not chunk:
                    break
                left -= len(chunk)
        except OSError:
            self.close_connection = True

    def _reply(
        self,
        status: HTTPStatus,
        body: bytes,
        content_type: str,
        headers: dict[str, str] | None = None,
    ) -> None:
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        self.send_header("Cache-Control", "no-store")
        for name, value in (headers or {}).items():
            self.send_header(name, value)
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(body)


def route_of(target: str) -> str:
    """A request target's path. Not urlsplit: it reads `//[x` as a host and refuses it."""
    return target.partition("?")[0]


def error_body(message: str) -> bytes:
    return json.dumps({"error": message}).encode()


def printable(text: str) -> str:
    """Text from a client as one safe log line: control and non-ASCII characters escaped, so a
    request cannot forge log lines or send a terminal escape sequences."""
    return text.encode("unicode_escape").decode("ascii")


def field_errors(exc: ValidationError) -> str:
    """`maxHops: Input should be ...; http.method: ...`; malformed JSON is named `body`."""
    parts = []
    for err in exc.errors(include_url=False):
        where = ".".join(str(part) for part in err["loc"]) or "body"
        parts.append(f"{where}: {err['msg']}")
    return "; ".join(parts)


# ---- command line -------------------------------------------------------------------------


def add_arguments(p: argparse.ArgumentParser) -> None:
    d = Limits()
    p.add_argument(
        "--listen",
        default=DEFAULT_LISTEN,
        metavar="HOST:PORT",
        help=f"[::]:PORT for IPv6, port 0 picks one (default {DEFAULT_LISTEN})",
    )
    who = p.add_mutually_exclusive_group(required=True)
    who.add_argument("--token-file", metavar="PATH", help="a static bearer token (a Secret)")
    who.add_argument(
        "--auth",
        choices=["kubernetes"],
        help="kubernetes: callers send a ServiceAccount token, checked by TokenReview",
    )
    k8s = p.add_argument_group("--auth kubernetes")
    k8s.add_argument(
        "--allowed-caller",
        action="append",
        metavar="USER",
        help="e.g. system:serviceaccount:hopscope-system:hopscope-operator (repeatable)",
    )
    k8s.add_argument(
        "--audience", metavar="AUD", help=f"the callers' token audience ({DEFAULT_AUDIENCE})"
    )
    k8s.add_argument(
        "--kube-api-url",
        metavar="URL",
        help="the API server (default https://$KUBERNETES_SERVICE_HOST:$KUBERNETES_SERVICE_PORT)",
    )
    k8s.add_argument(
        "--kube-token-file", metavar="PATH", help=f"the agent's own token ({DEFAULT_TOKEN_PATH})"
    )
    k8s.add_argument("--kube-ca-file", metavar="PATH", help=f"the cluster CA ({DEFAULT_CA_PATH})")
    k8s.add_argument(
        "--auth-cache-seconds",
        type=float,
        metavar="N",
        help=f"how long an accepted token is not reviewed again ({DEFAULT_TTL:g})",
    )
    p.add_argument("--tls-cert", metavar="PATH", help="serve HTTPS with this certificate chain")
    p.add_argument("--tls-key", metavar="PATH", help="the private key of --tls-cert")
    p.add_argument("--resolv-conf", metavar="PATH", help="resolver config (default /etc's)")
    for flag, kind, default, what in (
        ("--max-body-bytes", int, d.max_body_bytes, "request body size; above: 413"),
        ("--max-concurrent", int, d.max_concurrent, "probes at once; above: 503"),
        ("--max-count", int, d.max_count, "a request's count; above: 400"),
        ("--max-timeout", float, d.max_timeout_seconds, "a request's timeoutSeconds; above: 400"),
        ("--max-hops", int, d.max_hops, "a request's maxHops; above: 400"),
    ):
        p.add_argument(flag, type=kind, default=default, metavar="N", help=f"{what} ({default})")


def parse_listen(value: str) -> tuple[str, int]:
    if value.startswith("["):
        host, _, rest = value[1:].partition("]")
        port = rest.removeprefix(":")
    else:
        host, _, port = value.rpartition(":")
    if not host or not port.isdigit() or not 0 <= int(port) < 65536:
        raise AgentError(f"--listen {value!r}: expected HOST:PORT or [V6]:PORT")
    return host, int(port)


KUBERNETES_FLAGS = {
    "--allowed-caller": "allowed_caller",
    "--audience": "audience",
    "--kube-api-url": "kube_api_url",
    "--kube-token-file": "kube_token_file",
    "--kube-ca-file": "kube_ca_file",
    "--auth-cache-seconds": "auth_cache_seconds",
}


def build_auth(args: argparse.Namespace) -> Authenticator:
    given = [flag for flag, dest in KUBERNETES_FLAGS.items() if getattr(args, dest) is not None]
    if args.auth != "kubernetes":
        if given:
            raise AgentError(f"{', '.join(given)}: only with --auth kubernetes")
        tokens = TokenFile(args.token_file)
        token = tokens.current()
        if token is None:
            raise AgentError(f"--token-file {args.token_file}: missing, unreadable or empty")
        if len(token) < SHORT_TOKEN:
            log.warning("the token is shorter than %d characters: use a longer one", SHORT_TOKEN)
        return tokens
    allowed = [caller.strip() for caller in args.allowed_caller or ()]
    if not allowed or not all(allowed):
        raise AgentError("--auth kubernetes: needs --allowed-caller system:serviceaccount:NS:NAME")
    audience = DEFAULT_AUDIENCE if args.audience is None else args.audience.strip()
    if not audience:
        raise AgentError("--audience: empty")
    ttl = DEFAULT_TTL if args.auth_cache_seconds is None else args.auth_cache_seconds
    if not 0 <= ttl <= 3600:
        raise AgentError("--auth-cache-seconds: from 0 to 3600")
    api_url = args.kube_api_url or in_cluster_api_url()
    if not api_url:
        raise AgentError(
            "--auth kubernetes: KUBERNETES_SERVICE_HOST/_PORT are not set; give --kube-api-url"
        )
    try:
        reviewer = TokenReviewer(
            api_url,
            args.kube_token_file or DEFAULT_TOKEN_PATH,
            args.kube_ca_file or DEFAULT_CA_PATH,
            audience,
            allowed,
            ttl,
        )
        reviewer.check_ready()
    except TokenReviewError as exc:
        raise AgentError(f"--auth kubernetes: {exc}") from exc
    log.info(
        "callers by TokenReview at %s: %s, audience %s",
        api_url,
        ", ".join(sorted(reviewer.allowed)),
        audience,
    )
    return KubernetesAuth(reviewer)


def build_server(args: argparse.Namespace) -> AgentServer:
    auth = build_auth(args)
    if bool(args.tls_cert) != bool(args.tls_key):
        raise AgentError("--tls-cert and --tls-key go together")
    for flag, value in {
        "--max-body-bytes": args.max_body_bytes,
        "--max-concurrent": args.max_concurrent,
        "--max-count": args.max_count,
        "--max-timeout": args.max_timeout,
        "--max-hops": args.max_hops,
    }.items():
        if value <= 0:
            raise AgentError(f"{flag}: must be positive")
    limits = Limits(
        max_body_bytes=args.max_body_bytes,
        max_concurrent=args.max_concurrent,
        max_count=args.max_count,
        max_timeout_seconds=args.max_timeout,
        max_hops=args.max_hops,
        retry_after_seconds=max(1, math.ceil(args.max_timeout)),
    )
    try:
        tls = TlsFiles(args.tls_cert, args.tls_key) if args.tls_cert else None
    except (OSError, ssl.SSLError) as exc:
        raise AgentError(f"--tls-cert/--tls-key: {exc}") from exc
    try:
        return AgentServer(
            parse_listen(args.listen), auth, limits, tls, Where(resolv_conf=args.resolv_conf)
        )
    except OSError as exc:
        raise AgentError(f"--listen {args.listen}: {exc}") from exc


def serve(args: argparse.Namespace) -> int:
    """Run until SIGTERM or SIGINT, then let the probes in progress finish."""
    log.setLevel(logging.INFO)
    server = build_server(args)

    def stop(signum: int, _frame: object) -> None:
        log.info("%s: stopping after the requests in progress", signal.Signals(signum).name)
        # shutdown() waits for serve_forever(), which runs in this very thread: ask from another.
        threading.Thread(target=server.shutdown, daemon=True).start()

    previous = {sig: signal.signal(sig, stop) for sig in (signal.SIGTERM, signal.SIGINT)}
    log.info("listening on %s (max %d concurrent probes)", server.url, server.limits.max_concurrent)
    try:
        server.serve_forever()
    finally:
        server.server_close()  # joins the request threads
        for sig, handler in previous.items():
            signal.signal(sig, handler)
    log.info("stopped")
    return 0


def main(args: argparse.Namespace) -> int:
    try:
        return serve(args)
    except AgentError as exc:
        print(f"hopscope agent: error: {exc}", file=sys.stderr)
        return 2
