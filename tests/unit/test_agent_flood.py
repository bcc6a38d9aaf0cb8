"""`hopscope agent --auth kubernetes` under a flood of invented tokens, against a fake API server
that reviews them slowly: the operator's reviewed token is answered all the same, and the
tokens the agent sends the API server for review are bounded, in all and per client address."""

from __future__ import annotations

import contextlib
import secrets
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from hopscope_operator.controller.sidecar import call_agent
from hopscope_probe.agent import AgentServer, KubernetesAuth, Limits
from hopscope_probe.models import ConnectionStatus, ProbeRequest
from hopscope_probe.tokenreview import TokenReviewer
from tests.unit.test_agent_server import exchange, status_of
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
