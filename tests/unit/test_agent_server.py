"""`hopscope agent`'s HTTP server in a thread on 127.0.0.1, spoken to over raw sockets: what a
misbehaving or hostile client can make it do before and after authentication."""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from hopscope_probe.agent import AgentServer, Limits, TokenFile

TOKEN = "t0ken-of-the-gateway-0123456789abcdef"

Serve = Callable[..., AgentServer]


@pytest.fixture
def serve(tmp_path: Path) -> Iterator[Serve]:
    """Starts an agent with the given limits; all are stopped after the test."""
    token_file = tmp_path / "token"
    token_file.write_text(TOKEN + "\n")
    started: list[AgentServer] = []

    def start(**limits: int | float) -> AgentServer:
        server = AgentServer(("127.0.0.1", 0), TokenFile(str(token_file)), Limits(**limits))
        threading.Thread(target=server.serve_forever, daemon=True).start()
        started.append(server)
        return server

    yield start
    for server in started:
        server.shutdown()
        server.server_close()


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
    assert b"Content-Length: not a number" in reply


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
