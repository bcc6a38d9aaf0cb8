"""`hopscope agent`'s HTTP server in a thread on 127.0.0.1, spoken to over raw sockets: what a
misbehaving or hostile client can make it do before and after authentication."""

from __future__ import annotations

import socket
import threading
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
