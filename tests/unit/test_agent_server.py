"""`hopscope agent`'s HTTP server in a thread on 127.0.0.1, spoken to over raw sockets: what a
misbehaving or hostile client can make it do before and after authentication."""

from __future__ import annotations

import json
import logging
import socket
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from hopscope_probe import agent
from hopscope_probe.agent import AgentServer, Authenticator, Limits, TokenFile

TOKEN = "t0ken-of-the-gateway-0123456789abcdef"

Serve = Callable[..., AgentServer]


@pytest.fixture
def serve(tmp_path: Path) -> Iterator[Serve]:
    """Starts an agent with the given limits; all are stopped after the test."""
    token_file = tmp_path / "token"
    token_file.write_text(TOKEN + "\n")
    started: list[AgentServer] = []

    def start(auth: Authenticator | None = None, **limits: int | float) -> AgentServer:
        auth = auth or TokenFile(str(token_file))
        server = AgentServer(("127.0.0.1", 0), auth, Limits(**limits))
        threading.Thread(target=server.serve_forever, daemon=True).start()
        started.append(server)
        return server

    yield start
    for server in started:
        server.shutdown()
        server.server_close()


class Gate:
    """An authenticator that holds every caller until opened (as a slow TokenReview would),
    then gives them all `verdict`."""

    def __init__(self) -> None:
        self.verdict = False
        self.opened = threading.Event()
        self.callers: list[threading.Thread] = []  # the handler threads that came to it

    def known(self, authorization: str | None) -> None:
        return None  # every caller goes through the slow check

    def accepts(self, authorization: str | None) -> bool:
        self.callers.append(threading.current_thread())
        self.opened.wait(10)
        return self.verdict

    def held(self, count: int) -> None:
        """Returns once `count` callers have come."""
        started = time.monotonic()
        while len(self.callers) < count and time.monotonic() - started < 5:
            time.sleep(0.01)
        assert len(self.callers) >= count

    def open(self) -> None:
        """Lets every caller through and waits for their handler threads to end."""
        self.opened.set()
        for thread in self.callers:
            thread.join(5)


@pytest.fixture
def gate(serve: Serve) -> Iterator[Gate]:
    """Opened after the test, before its servers are stopped (they wait for their threads)."""
    held = Gate()
    yield held
    held.open()


def connect(server: AgentServer) -> socket.socket:
    return socket.create_connection(server.server_address[:2], timeout=5)


def answer(sock: socket.socket) -> bytes:
    """Everything the server sends until it closes; b"" when it closed without answering."""
    chunks = []
    while chunk := sock.recv(65536):
        chunks.append(chunk)
    sock.close()
    return b"".join(chunks)


def exchange(server: AgentServer, request: bytes) -> bytes:
    with connect(server) as sock:
        sock.sendall(request)
        return answer(sock)


def status_of(reply: bytes) -> int | None:
    return int(reply.split(b" ", 2)[1]) if reply else None


def test_a_content_length_of_non_ascii_digits_is_400_once_authenticated(serve: Serve):
    server = serve()
    head = b"POST /v1/probe HTTP/1.0\r\nContent-Length: \xb2\r\n"  # '²': isdigit(), not int()
    assert status_of(exchange(server, head + b"\r\n")) == 401
    reply = exchange(server, head + f"Authorization: Bearer {TOKEN}\r\n\r\n".encode())
    assert status_of(reply) == 400
    assert b"Content-Length: not one number" in reply


# ---- slow and oversized clients -------------------------------------------------------------


def test_a_request_trickled_byte_by_byte_is_cut_at_its_deadline(serve: Serve):
    server = serve(read_timeout_seconds=1)
    with connect(server) as sock:
        sock.sendall(b"GET /healthz HTTP/1.0\r\n")
        sock.settimeout(0.3)
        started = time.monotonic()
        while time.monotonic() - started < 4:  # every read within its own timeout
            try:
                sock.sendall(b"X")
                if sock.recv(1) == b"":
                    break
            except TimeoutError:
                continue
            except ConnectionError:
                break
        assert time.monotonic() - started < 2


@pytest.mark.parametrize(
    "head",
    [
        b"GET /" + b"a" * 17000 + b" HTTP/1.0\r\n\r\n",
        b"GET /v1/probe HTTP/1.0\r\nX-A: " + b"a" * 17000 + b"\r\n\r\n",
        b"GET /v1/probe HTTP/1.0\r\n" + (b"X-A: " + b"a" * 200 + b"\r\n") * 90 + b"\r\n",
    ],
    ids=["request-line", "one-header", "many-headers"],
)
def test_a_head_above_16_kib_is_431_before_authentication(serve: Serve, head: bytes):
    reply = exchange(serve(), head)
    assert status_of(reply) == 431, reply[:200]
    assert b"at most 16384 bytes" in reply


def test_a_refused_caller_is_answered_before_its_body_is_read(serve: Serve):
    server = serve(read_timeout_seconds=5)
    with connect(server) as sock:
        sock.sendall(b"POST /v1/probe HTTP/1.0\r\nContent-Length: 100\r\n\r\n")  # no body
        sock.settimeout(2)
        assert status_of(sock.recv(65536)) == 401


def test_healthz_is_answered_while_slow_clients_hold_every_connection(serve: Serve):
    server = serve(max_connections=4)
    slow = [connect(server) for _ in range(4)]
    for sock in slow:
        sock.sendall(b"GET /healthz HTTP/1.0\r\n")  # and never the end of the headers
    time.sleep(0.3)  # all four accepted
    reply = exchange(server, b"GET /healthz HTTP/1.0\r\n\r\n")
    assert status_of(reply) == 200 and reply.endswith(b"\r\n\r\nok\n")
    assert answer(slow[0]) == b""  # the oldest was evicted for it
    for sock in slow[1:]:
        sock.close()


def test_an_authenticated_connection_is_never_evicted(serve: Serve):
    server = serve(max_connections=1)
    with connect(server) as trusted:
        trusted.sendall(
            f"POST /v1/probe HTTP/1.0\r\nAuthorization: Bearer {TOKEN}\r\n"
            "Content-Length: 2\r\n\r\n".encode()
        )
        time.sleep(0.3)  # authenticated, now waiting for its body
        assert exchange(server, b"GET /healthz HTTP/1.0\r\n\r\n") == b""
        trusted.sendall(b"{}")
        reply = answer(trusted)
    assert status_of(reply) == 400 and b"host: Field required" in reply


# ---- threads of evicted connections ----------------------------------------------------------

AUTHENTICATED_GET = f"GET /v1/probe HTTP/1.0\r\nAuthorization: Bearer {TOKEN}\r\n\r\n".encode()


def evict_in_authentication(server: AgentServer, gate: Gate, request: bytes) -> None:
    """Sends `request` on the server's only connection, has it evicted while the gate holds
    its caller, then opens the gate and waits for its thread to end."""
    with connect(server) as evicted:
        evicted.sendall(request)
        gate.held(1)
        with connect(server):  # evicts the held one
            assert answer(evicted) == b""
            gate.open()


def test_evicted_threads_count_until_they_end_and_past_twice_the_connections_none_start(
    serve: Serve, gate: Gate
):
    server = serve(gate, max_connections=2, max_auth_checks=100)
    clients = []
    for _ in range(8):  # each one in authentication before the next evicts it
        clients.append(connect(server))
        clients[-1].sendall(AUTHENTICATED_GET)
        time.sleep(0.05)
    time.sleep(0.3)
    assert len(gate.callers) == 4  # 2 connections and the 2 evicted ones still authenticating
    for sock in clients:
        sock.close()


def test_authentications_above_max_auth_checks_are_503_at_once(serve: Serve, gate: Gate):
    server = serve(gate, max_auth_checks=1)
    with connect(server) as held:
        held.sendall(AUTHENTICATED_GET)
        gate.held(1)
        with connect(server) as sock:
            sock.settimeout(2)
            sock.sendall(AUTHENTICATED_GET)
            reply = answer(sock)
        assert status_of(reply) == 503 and b"Retry-After: " in reply
        assert b"1 authentications already in progress" in reply
        assert status_of(exchange(server, b"GET /healthz HTTP/1.0\r\n\r\n")) == 200


def test_a_connection_evicted_while_authenticated_is_not_served(
    serve: Serve, gate: Gate, monkeypatch: pytest.MonkeyPatch
):
    probes: list[object] = []
    monkeypatch.setattr(agent, "run_in", lambda request, where: probes.append(request))
    gate.verdict = True  # the caller's token is good, but its connection is gone by then
    body = b'{"host": "127.0.0.1", "port": 9}'
    head = f"POST /v1/probe HTTP/1.0\r\nAuthorization: Bearer {TOKEN}\r\n"
    request = f"{head}Content-Length: {len(body)}\r\n\r\n".encode() + body
    evict_in_authentication(serve(gate, max_connections=1), gate, request)
    assert probes == []


def test_an_evicted_connections_failure_is_not_a_warning(
    serve: Serve, gate: Gate, caplog: pytest.LogCaptureFixture
):
    caplog.set_level(logging.DEBUG, logger="hopscope.agent")
    # Refused: its 401 goes to the socket the server has shut.
    evict_in_authentication(serve(gate, max_connections=1), gate, AUTHENTICATED_GET)
    [failed] = [r for r in caplog.records if "connection failed" in r.getMessage()]
    assert failed.levelno == logging.DEBUG


# ---- malformed requests: a JSON answer naming what is wrong, never a dropped connection ------

AUTH = f"Authorization: Bearer {TOKEN}\r\n"


def probe_request(body: bytes, extra: str = "") -> bytes:
    head = f"POST /v1/probe HTTP/1.0\r\n{AUTH}Content-Length: {len(body)}\r\n{extra}\r\n"
    return head.encode() + body


def error_of(reply: bytes) -> str:
    head, _, body = reply.partition(b"\r\n\r\n")
    assert b"Content-Type: application/json" in head, reply[:300]
    return json.loads(body)["error"]


@pytest.mark.parametrize(
    ("uri", "expected"),
    [
        ("http:///x", "uri: Value error, no host"),
        ("http://127.0.0.1:99999/", "uri: Value error, not a URL: Port out of range 0-65535"),
        ("http://127.0.0.1:0/", "uri: Value error, port must be 1-65535"),
        ("http://[::1", "uri: Value error, not a URL: Invalid IPv6 URL"),
        ("http://127.0.0.1:\u0661\u0662/", "uri: Value error, not a URL: Port could not be cast"),
    ],
    ids=["no-host", "port-above-65535", "port-0", "unclosed-ipv6", "arabic-digits"],
)
def test_a_uri_without_a_host_or_with_a_bad_port_is_400_naming_uri(
    serve: Serve, uri: str, expected: str
):
    body = json.dumps({"host": "127.0.0.1", "protocol": "HTTP", "uri": uri}).encode()
    reply = exchange(serve(), probe_request(body))
    assert status_of(reply) == 400
    assert error_of(reply).startswith(expected)


@pytest.mark.parametrize(
    "lengths",
    [["2", "7"], ["9" * 5000], ["1" * 19]],
    ids=["two-different", "5000-digits", "19-digits"],
)
def test_a_content_length_given_twice_or_of_too_many_digits_is_400(
    serve: Serve, lengths: list[str]
):
    head = "POST /v1/probe HTTP/1.0\r\n" + AUTH
    head += "".join(f"Content-Length: {length}\r\n" for length in lengths)
    reply = exchange(serve(), head.encode() + b"\r\n{}")
    assert status_of(reply) == 400
    assert error_of(reply) == "Content-Length: not one number of at most 18 digits"


def test_the_same_content_length_twice_is_one_length(serve: Serve):
    reply = exchange(serve(), probe_request(b"{}", "Content-Length: 2\r\n"))
    assert status_of(reply) == 400 and error_of(reply).startswith("host: Field required")


def test_head_healthz_answers_like_get_without_a_body(serve: Serve):
    reply = exchange(serve(), b"HEAD /healthz HTTP/1.0\r\n\r\n")
    assert status_of(reply) == 200
    assert b"Content-Length: 3\r\n" in reply and reply.endswith(b"\r\n\r\n")


@pytest.mark.parametrize(
    ("request_line", "status", "error"),
    [
        (b"GARBAGE", 400, "Bad request syntax ('GARBAGE')"),
        (b"GET /healthz HTTP/9.9", 505, "Invalid HTTP version (9.9)"),
        (b"BREW /healthz HTTP/1.0", 501, "Unsupported method ('BREW')"),
    ],
    ids=["garbled", "version", "method"],
)
def test_what_the_http_library_refuses_is_answered_as_json_too(
    serve: Serve, request_line: bytes, status: int, error: str
):
    reply = exchange(serve(), request_line + b"\r\n\r\n")
    assert status_of(reply) == status
    assert error_of(reply) == error


def test_a_path_read_as_a_bad_host_by_urlsplit_is_still_routed(serve: Serve):
    assert status_of(exchange(serve(), b"GET //[x HTTP/1.0\r\n\r\n")) == 401


def test_request_paths_are_escaped_in_the_log(serve: Serve, caplog: pytest.LogCaptureFixture):
    caplog.set_level(logging.INFO, logger="hopscope.agent")
    exchange(serve(), b"GET /\x1b[31mred\x07\xc3\xa9 HTTP/1.0\r\n\r\n")
    [line] = [r.getMessage() for r in caplog.records if "red" in r.getMessage()]
    assert line.isascii() and line.isprintable()
    assert "/\\x1b[31mred\\x07\\xc3\\xa9 401" in line
