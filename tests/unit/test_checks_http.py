"""The HTTP check against servers on loopback that answer slowly or trickle their answer."""

from __future__ import annotations

import contextlib
import socket
import threading
import time
from collections.abc import Callable, Iterator

import pytest

from hopscope_probe.checks import http
from hopscope_probe.evidence import ConnectionEvidence, Outcome, Stage
from hopscope_probe.models import ProbeRequest

# What the server does with an accepted connection once it has read the request.
Behaviour = Callable[[socket.socket], None]
TIMEOUT = 0.5


def trickle(head: bytes, drip: bytes) -> Behaviour:
    """Send `head`, then `drip` every 0.1 s for 3 s: each read succeeds, the answer never ends."""

    def behave(conn: socket.socket) -> None:
        conn.sendall(head)
        for _ in range(30):
            conn.sendall(drip)
            time.sleep(0.1)

    return behave


@pytest.fixture
def serve() -> Iterator[Callable[[Behaviour], int]]:
    servers: list[socket.socket] = []

    def start(behave: Behaviour) -> int:
        server = socket.create_server(("127.0.0.1", 0))
        servers.append(server)

        def run() -> None:
            conn, _ = server.accept()
            with conn, contextlib.suppress(OSError):  # the client hung up
                conn.recv(4096)
                behave(conn)

        threading.Thread(target=run, daemon=True).start()
        return server.getsockname()[1]

    yield start
    for server in servers:
        server.close()


def check(port: int) -> tuple[ConnectionEvidence, float]:
    request = ProbeRequest(
        host="127.0.0.1", port=port, protocol="HTTP", count=1, timeout_seconds=TIMEOUT
    )
    start = time.monotonic()
    evidence = http.check_http(request, "127.0.0.1")
    return evidence, time.monotonic() - start


@pytest.mark.parametrize(
    ("head", "drip"),
    [
        (b"HTTP/1.1 200 OK\r\n", b"X-A: b\r\n"),  # header lines that never end
        (b"HTTP/1.1 200 OK\r\nContent-Length: 100000\r\n\r\n", b"x"),  # a body that never ends
    ],
    ids=["headers", "body"],
)
def test_a_trickling_answer_fails_the_attempt_at_its_timeout(
    serve: Callable[[Behaviour], int], head: bytes, drip: bytes
):
    evidence, took = check(serve(trickle(head, drip)))
    attempt = evidence.attempts[0]
    assert took < TIMEOUT + 1.0  # the trickle lasts 3 s: the margin is for a busy machine
    assert (attempt.outcome, attempt.stage) == (Outcome.HTTP_ERROR, Stage.HTTP)
    assert "no complete answer within the timeout" in attempt.detail
    assert evidence.http[0].processing_ms > 0  # the first byte came, and was timed


def test_latency_is_the_time_to_the_first_byte_of_the_response(serve: Callable[[Behaviour], int]):
    def slow(conn: socket.socket) -> None:
        time.sleep(0.2)  # a slow application behind a fast connect
        conn.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok")

    evidence, _ = check(serve(slow))
    attempt, timing = evidence.attempts[0], evidence.http[0]
    assert attempt.outcome == Outcome.SUCCESS
    assert attempt.rtt_ms is not None and 200 <= attempt.rtt_ms < TIMEOUT * 1000
    assert timing.connect_ms < 50 and timing.processing_ms >= 200  # the phases stay apart
    assert attempt.rtt_ms >= timing.connect_ms + timing.processing_ms
