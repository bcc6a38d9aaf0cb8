"""`hopscope agent --auth kubernetes` under a flood of invented tokens, against a fake API server
that reviews them slowly: the operator's reviewed token is answered all the same, and the
tokens the agent sends the API server for review are bounded, in all and per client address."""

from __future__ import annotations

import contextlib
import secrets
import socket
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from hopscope_operator.controller.sidecar import call_agent
from hopscope_probe.agent import AgentServer, KubernetesAuth, Limits
from hopscope_probe.models import ConnectionStatus, ProbeRequest
from hopscope_probe.ratelimit import AuthRate
from hopscope_probe.tokenreview import TokenReviewer
from tests.unit.test_agent_server import answer, exchange, status_of
from tests.unit.test_tokenreview import (
    AUDIENCE,
    OPERATOR,
    Answer,
    FakeApi,
    authenticated,
    start_api,
)

OPERATOR_TOKEN = "the-operators-projected-token"


def call(server: AgentServer, token: str) -> bytes:
    """An authenticated-only path: 405 once the token is accepted (no probe is run)."""
    return exchange(
        server, f"GET /v1/probe HTTP/1.0\r\nAuthorization: Bearer {token}\r\n\r\n".encode()
    )


@pytest.fixture
def api(tmp_path: Path) -> Iterator[FakeApi]:
    started, server = start_api(tmp_path)
    started.answers[OPERATOR_TOKEN] = Answer(authenticated(OPERATOR, [AUDIENCE]))
    yield started
    started.release.set()  # frees the slow reviews
    server.shutdown()
    server.server_close()


@pytest.fixture
def agent(api: FakeApi, tmp_path: Path) -> Iterator[type[AgentServer]]:
    own = tmp_path / "own-token"
    own.write_text("the-agents-own-token")
    started: list[AgentServer] = []

    def start(**limits: float) -> AgentServer:
        reviewer = TokenReviewer(api.url, str(own), str(api.ca), AUDIENCE, OPERATOR, timeout=10)
        server = AgentServer(("127.0.0.1", 0), KubernetesAuth(reviewer), Limits(**limits))
        threading.Thread(target=server.serve_forever, daemon=True).start()
        started.append(server)
        return server

    yield start  # type: ignore[misc]
    api.release.set()
    for server in started:
        server.shutdown()
        server.server_close()


def test_the_operators_cached_token_is_answered_while_invented_ones_hold_every_slot(
    api: FakeApi, agent
):
    server = agent(peer_refusals=10_000, auth_checks_per_second=10_000)  # only the slots hold
    assert status_of(call(server, OPERATOR_TOKEN)) == 405  # reviewed once, now cached
    api.default = Answer(delay=30)  # every invented token's review hangs until the test ends
    stop = threading.Event()

    def flood() -> None:
        while not stop.is_set():
            with contextlib.suppress(OSError):  # closed unanswered: every connection was taken
                call(server, secrets.token_hex(16))

    attackers = [threading.Thread(target=flood, daemon=True) for _ in range(8)]
    for thread in attackers:
        thread.start()
    deadline = time.monotonic() + 5
    while len(api.requests) < 1 + server.limits.max_auth_checks and time.monotonic() < deadline:
        time.sleep(0.01)
    assert len(api.requests) == 1 + server.limits.max_auth_checks  # every slot is held
    answers = [status_of(call(server, OPERATOR_TOKEN)) for _ in range(20)]
    stop.set()
    api.release.set()
    assert answers == [405] * 20
    assert api.reviewed().count(OPERATOR_TOKEN) == 1


def test_an_address_sending_refused_tokens_is_told_to_wait_without_a_review(api: FakeApi, agent):
    server = agent()
    assert status_of(call(server, OPERATOR_TOKEN)) == 405
    replies = [call(server, secrets.token_hex(16)) for _ in range(8)]
    statuses = [status_of(reply) for reply in replies]
    assert statuses == [401] * 5 + [429] * 3  # Limits.peer_refusals
    assert b"Retry-After: " in replies[-1] and b"too many refused tokens" in replies[-1]
    assert len(api.requests) == 1 + 5
    # Its good tokens are not held back: cached, it needs no check at all.
    assert status_of(call(server, OPERATOR_TOKEN)) == 405


def test_token_checks_are_bounded_in_all_whatever_the_addresses(api: FakeApi, agent):
    server = agent(auth_checks_per_second=2, peer_refusals=100)
    statuses = [status_of(call(server, secrets.token_hex(16))) for _ in range(4)]
    assert statuses[:2] == [401, 401] and 503 in statuses[2:]
    assert len(api.requests) < 4


def test_the_operator_is_told_when_its_address_is_rate_limited(api: FakeApi, agent):
    server = agent()
    for _ in range(5):  # another client at the operator's address, with invented tokens
        call(server, secrets.token_hex(16))
    request = ProbeRequest(host="127.0.0.1", port=9, count=1, timeout_seconds=0.2)
    result = call_agent("127.0.0.1", server.server_address[1], OPERATOR_TOKEN, request, 5)
    assert result.connection_status == ConnectionStatus.UNKNOWN
    [issue] = result.issues
    assert {c.key: c.value for c in issue.context}["cause"] == "rateLimited"
    assert "429, retry after " in issue.message


def call_from(server: AgentServer, token: str, address: str) -> bytes:
    """`call` from another loopback address (127.0.0.0/8 is all loopback on Linux)."""
    with socket.create_connection(
        server.server_address[:2], timeout=5, source_address=(address, 0)
    ) as sock:
        sock.sendall(f"GET /v1/probe HTTP/1.0\r\nAuthorization: Bearer {token}\r\n\r\n".encode())
        return answer(sock)


def test_the_operators_renewed_token_is_checked_ahead_of_a_flood_from_many_addresses(
    api: FakeApi, agent
):
    """The operator renews its token (TokenRequest, at half its life) and the agent's cache
    keeps a review a minute: either way a token of the operator's needs a review again, and
    an invented-token flood from many addresses (each within its own refusal budget) took
    every one of the agent's reviews a second, so the operator got 503 until the flood
    stopped. An address whose token was accepted has its reviews ahead of the shared rate."""
    renewed = [f"the-operators-renewed-token-{n}" for n in range(10)]
    for token in renewed:
        api.answers[token] = Answer(authenticated(OPERATOR, [AUDIENCE]))
    server = agent(auth_checks_per_second=2)  # 20 addresses' budgets make 10/s: saturated
    assert status_of(call(server, OPERATOR_TOKEN)) == 405
    stop, shed = threading.Event(), threading.Event()

    def flood(address: str) -> None:
        while not stop.is_set():
            with contextlib.suppress(OSError):
                if status_of(call_from(server, secrets.token_hex(16), address)) == 503:
                    shed.set()  # the shared rate is spent

    attackers = [
        threading.Thread(target=flood, args=(f"127.0.0.{n}",), daemon=True) for n in range(2, 22)
    ]
    for thread in attackers:
        thread.start()
    try:
        assert shed.wait(10)
        answers = [status_of(call(server, token)) for token in renewed]
    finally:
        stop.set()
        for thread in attackers:
            thread.join(5)
    assert answers == [405] * len(renewed)
    assert all(api.reviewed().count(token) == 1 for token in renewed)


def test_an_accepted_address_sending_invented_tokens_is_still_told_to_wait(api: FakeApi, agent):
    server = agent(auth_checks_per_second=2)
    assert status_of(call(server, OPERATOR_TOKEN)) == 405  # this address is now ahead
    statuses = [status_of(call(server, secrets.token_hex(16))) for _ in range(8)]
    assert statuses == [401] * 5 + [429] * 3  # its own refusal budget, as any address's
    assert len(api.requests) == 1 + 5


def test_an_address_is_trusted_for_a_while_after_its_last_accepted_token():
    now = [0.0]
    rate = AuthRate(rate=0.001, burst=1, clock=lambda: now[0], trust_seconds=60)
    assert rate.refusal("10.0.0.1") is None  # the one shared check there is
    assert not rate.trusted("10.0.0.1") and rate.refusal("10.0.0.1") is not None
    rate.accepted("10.0.0.1")
    assert [rate.refusal("10.0.0.1") for _ in range(3)] == [None] * 3
    assert rate.refusal("10.0.0.2") is not None  # another address shares the spent rate
    now[0] = 61
    limited = rate.refusal("10.0.0.1")
    assert limited is not None and not limited.peer  # back in the shared rate
