"""The agent's TokenReview client against a fake Kubernetes API: a real HTTPS server in a thread
that records every request and answers per reviewed token."""

from __future__ import annotations

import base64
import json
import logging
import threading
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest

from hopscope_probe.agent import KubernetesAuth, bearer_of
from hopscope_probe.tokenreview import (
    FAILURE_TTL,
    REVIEW_PATH,
    TokenReviewer,
    TokenReviewError,
    in_cluster_api_url,
    token_expiry,
)
from tests.netlab.servers import self_signed

OPERATOR = "system:serviceaccount:hopscope-system:hopscope-operator"
OTHER = "system:serviceaccount:edge:gateway"
AUDIENCE = "hopscope-agent"
OWN_TOKEN = "the-agents-own-service-account-token"


def certificate(directory: Path, name: str) -> tuple[Path, Path]:
    """A self-signed CA certificate for 127.0.0.1 and its key, as PEM files."""
    return self_signed(directory, name, ca=True)


def authenticated(username: str, audiences: Sequence[str] | None = (AUDIENCE,)) -> dict[str, Any]:
    """A TokenReview status for `username`; audiences None leaves the field out."""
    status: dict[str, Any] = {"authenticated": True, "user": {"username": username, "uid": "u1"}}
    if audiences is not None:
        status["audiences"] = list(audiences)
    return status


@dataclass
class Answer:
    """What the fake API says about one token."""

    status: dict[str, Any] | None = None  # the TokenReview status; None: unauthenticated
    code: int = 201
    delay: float = 0.0
    raw: bytes | None = None  # sent as is instead of a TokenReview


@dataclass
class FakeApi:
    url: str
    ca: Path
    answers: dict[str, Answer] = field(default_factory=dict)
    default: Answer = field(default_factory=Answer)  # for every token not in `answers`
    requests: list[dict[str, Any]] = field(default_factory=list)
    release: threading.Event = field(default_factory=threading.Event)

    def reviewed(self) -> list[str]:
        return [r["body"]["spec"]["token"] for r in self.requests]


def serve_api(api: FakeApi, server: ThreadingHTTPServer) -> None:
    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
            api.requests.append(
                {
                    "method": self.command,
                    "path": self.path,
                    "authorization": self.headers.get("Authorization"),
                    "contentType": self.headers.get("Content-Type"),
                    "body": body,
                }
            )
            token = body.get("spec", {}).get("token")
            answer = api.answers.get(token, api.default)
            if answer.delay:
                api.release.wait(answer.delay)
            if answer.raw is not None:
                payload = answer.raw
            elif answer.code >= 400:
                # A real Status; the token in it proves the client never logs the body.
                payload = json.dumps({"kind": "Status", "message": f"boom {token}"}).encode()
            else:
                status = answer.status or {"authenticated": False, "error": "invalid token"}
                payload = json.dumps({**body, "status": status}).encode()  # echoes the spec
            try:
                self.send_response(answer.code)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(payload)))
                self.end_headers()
                self.wfile.write(payload)
            except OSError:
                pass  # the client gave up (the slow case)

        def log_message(self, format: str, *args: Any) -> None:
            pass

    server.RequestHandlerClass = Handler


def start_api(tmp_path: Path, tls: bool = True) -> tuple[FakeApi, ThreadingHTTPServer]:
    import ssl

    cert, key = certificate(tmp_path, "apiserver")
    server = ThreadingHTTPServer(("127.0.0.1", 0), BaseHTTPRequestHandler)
    if tls:
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        context.load_cert_chain(cert, key)
        server.socket = context.wrap_socket(server.socket, server_side=True)
    port = server.server_address[1]
    api = FakeApi(f"{'https' if tls else 'http'}://127.0.0.1:{port}", cert)
    serve_api(api, server)
    threading.Thread(target=server.serve_forever, args=(0.05,), daemon=True).start()
    return api, server


@pytest.fixture
def api(tmp_path: Path) -> Iterator[FakeApi]:
    started, server = start_api(tmp_path)
    yield started
    started.release.set()
    server.shutdown()
    server.server_close()


@pytest.fixture
def own_token(tmp_path: Path) -> Path:
    path = tmp_path / "sa-token"
    path.write_text(OWN_TOKEN + "\n")
    return path


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def reviewer(api: FakeApi, own_token: Path, clock: Clock) -> TokenReviewer:
    return TokenReviewer(
        api.url, str(own_token), str(api.ca), AUDIENCE, OPERATOR, 60, timeout=2, clock=clock
    )


@pytest.fixture(autouse=True)
def _logs(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO, logger="hopscope.agent")


def assert_no_token_logged(caplog: pytest.LogCaptureFixture, *tokens: str) -> None:
    for token in tokens:
        assert token not in caplog.text


# ---- the request ----------------------------------------------------------------------------


def test_the_operators_token_is_accepted_after_one_well_formed_review(
    api: FakeApi, reviewer: TokenReviewer
):
    api.answers["op-token"] = Answer(authenticated(OPERATOR, [AUDIENCE]))
    assert reviewer.allows("op-token") is True
    [request] = api.requests
    assert request["method"] == "POST"
    assert request["path"] == REVIEW_PATH == "/apis/authentication.k8s.io/v1/tokenreviews"
    assert request["authorization"] == f"Bearer {OWN_TOKEN}"
    assert request["contentType"] == "application/json"
    assert request["body"] == {
        "apiVersion": "authentication.k8s.io/v1",
        "kind": "TokenReview",
        "spec": {"token": "op-token", "audiences": [AUDIENCE]},
    }


def test_without_audiences_in_the_answer_the_token_is_refused(
    api: FakeApi, reviewer: TokenReviewer, caplog: pytest.LogCaptureFixture
):
    # Kubernetes: a status without audiences means the API server's own audience (an
    # authenticator that ignored spec.audiences); the agent's must be listed to be trusted.
    api.answers["op-token"] = Answer(authenticated(OPERATOR, None))
    assert reviewer.allows("op-token") is False
    assert f"not for audience '{AUDIENCE}'" in caplog.text


def test_several_allowed_callers(api: FakeApi, own_token: Path):
    api.answers["gw-token"] = Answer(authenticated(OTHER, [AUDIENCE]))
    both = TokenReviewer(api.url, str(own_token), str(api.ca), AUDIENCE, [OPERATOR, OTHER])
    assert both.allows("gw-token") is True


def test_the_agents_own_token_is_read_again_for_every_review(
    api: FakeApi, reviewer: TokenReviewer, own_token: Path
):
    api.answers["a"] = api.answers["b"] = Answer(authenticated(OPERATOR))
    assert reviewer.allows("a")
    own_token.write_text("rotated-by-kubelet\n")
    assert reviewer.allows("b")
    assert [r["authorization"] for r in api.requests] == [
        f"Bearer {OWN_TOKEN}",
        "Bearer rotated-by-kubelet",
    ]


def test_plain_http_when_the_url_says_so(tmp_path: Path, own_token: Path):
    api, server = start_api(tmp_path, tls=False)
    try:
        api.answers["op-token"] = Answer(authenticated(OPERATOR))
        plain = TokenReviewer(api.url, str(own_token), None, AUDIENCE, OPERATOR)
        assert plain.allows("op-token") is True
        assert len(api.requests) == 1
    finally:
        server.shutdown()
        server.server_close()


# ---- refusals -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("answer", "logged"),
    [
        (Answer({"authenticated": False, "error": "token has expired"}), "token has expired"),
        (Answer(authenticated(OTHER, [AUDIENCE])), f"authenticated as '{OTHER}'"),
        (Answer(authenticated(OPERATOR, ["https://kubernetes.default.svc"])), "audience"),
        (Answer(authenticated(OPERATOR, [])), "audience"),
        (Answer({"authenticated": True}), "the answer names no user"),
        (Answer({"authenticated": "true", "user": {"username": OPERATOR}}), "not authenticated"),
    ],
    ids=["unauthenticated", "wrong-user", "wrong-audience", "no-audience", "no-user", "string"],
)
def test_a_token_that_is_not_the_allowed_callers_for_this_audience_is_refused(
    api: FakeApi,
    reviewer: TokenReviewer,
    caplog: pytest.LogCaptureFixture,
    answer: Answer,
    logged: str,
):
    api.answers["bad-token"] = answer
    assert reviewer.allows("bad-token") is False
    assert "caller refused" in caplog.text and logged in caplog.text
    assert_no_token_logged(caplog, "bad-token", OWN_TOKEN)


def test_an_empty_token_is_refused_without_a_review(api: FakeApi, reviewer: TokenReviewer):
    assert reviewer.allows("") is False
    assert api.requests == []


@pytest.mark.parametrize(
    ("answer", "logged"),
    [
        (Answer(code=500), "HTTP 500"),
        (Answer(code=403), "HTTP 403 (the agent's service account needs create on tokenreviews)"),
        (Answer(raw=b"<html>gateway</html>"), "not JSON"),
        (Answer(raw=b'{"kind": "TokenReview"}'), "no TokenReview status"),
    ],
    ids=["500", "403", "not-json", "no-status"],
)
def test_an_api_error_fails_closed_is_logged_without_tokens_and_is_not_cached(
    api: FakeApi,
    reviewer: TokenReviewer,
    caplog: pytest.LogCaptureFixture,
    answer: Answer,
    logged: str,
):
    api.answers["op-token"] = answer
    assert reviewer.allows("op-token") is False
    assert "token review failed, caller refused" in caplog.text and logged in caplog.text
    assert_no_token_logged(caplog, "op-token", OWN_TOKEN)
    api.answers["op-token"] = Answer(authenticated(OPERATOR))  # the API is back
    assert reviewer.allows("op-token") is True
    assert api.reviewed() == ["op-token", "op-token"]


def test_a_slow_api_fails_closed_within_the_timeout(
    api: FakeApi, own_token: Path, caplog: pytest.LogCaptureFixture
):
    api.answers["op-token"] = Answer(authenticated(OPERATOR), delay=10)
    impatient = TokenReviewer(api.url, str(own_token), str(api.ca), AUDIENCE, OPERATOR, timeout=0.3)
    started = time.monotonic()
    assert impatient.allows("op-token") is False
    assert time.monotonic() - started < 2
    assert "timed out" in caplog.text
    assert_no_token_logged(caplog, "op-token")


def test_an_untrusted_api_certificate_fails_closed(
    api: FakeApi, own_token: Path, tmp_path: Path, caplog: pytest.LogCaptureFixture
):
    other_ca, _ = certificate(tmp_path, "someone-else")
    api.answers["op-token"] = Answer(authenticated(OPERATOR))
    wary = TokenReviewer(api.url, str(own_token), str(other_ca), AUDIENCE, OPERATOR)
    assert wary.allows("op-token") is False
    assert "CERTIFICATE_VERIFY_FAILED" in caplog.text
    assert api.requests == []  # the token never left the agent


def test_an_unreachable_api_fails_closed(own_token: Path, api: FakeApi):
    import socket

    with socket.create_server(("127.0.0.1", 0)) as taken:
        port = taken.getsockname()[1]
    gone = TokenReviewer(f"https://127.0.0.1:{port}", str(own_token), str(api.ca), "a", OPERATOR)
    assert gone.allows("op-token") is False


def test_without_its_own_token_or_ca_the_reviewer_is_not_ready_and_refuses(
    api: FakeApi, tmp_path: Path
):
    missing = TokenReviewer(api.url, str(tmp_path / "absent"), str(api.ca), AUDIENCE, OPERATOR)
    with pytest.raises(TokenReviewError, match="service-account token"):
        missing.check_ready()
    assert missing.allows("op-token") is False
    (tmp_path / "empty").write_text("\n")
    empty = TokenReviewer(api.url, str(tmp_path / "empty"), str(api.ca), AUDIENCE, OPERATOR)
    with pytest.raises(TokenReviewError, match="is empty"):
        empty.check_ready()
    no_ca = TokenReviewer(api.url, str(tmp_path / "empty"), str(tmp_path / "no.crt"), "a", "u")
    with pytest.raises(TokenReviewError, match="cluster CA"):
        no_ca.tls_context()
    assert api.requests == []


def test_a_reviewer_needs_an_allowed_caller_and_an_http_url(own_token: Path):
    with pytest.raises(TokenReviewError, match="no allowed caller"):
        TokenReviewer("https://10.0.0.1:443", str(own_token), None, AUDIENCE, [])
    with pytest.raises(TokenReviewError, match="expected https"):
        TokenReviewer("10.0.0.1:443", str(own_token), None, AUDIENCE, OPERATOR)


# ---- caching --------------------------------------------------------------------------------


def test_an_accepted_token_is_not_reviewed_again_until_the_ttl_has_passed(
    api: FakeApi, reviewer: TokenReviewer, clock: Clock
):
    api.answers["op-token"] = Answer(authenticated(OPERATOR, [AUDIENCE]))
    assert reviewer.allows("op-token")
    clock.now += 59
    assert reviewer.allows("op-token")
    assert api.reviewed() == ["op-token"]  # the second call made no request
    clock.now += 2
    api.answers["op-token"] = Answer({"authenticated": False})  # revoked meanwhile
    assert reviewer.allows("op-token") is False
    assert api.reviewed() == ["op-token", "op-token"]


def test_a_refusal_is_remembered_for_a_few_seconds_only(
    api: FakeApi, reviewer: TokenReviewer, clock: Clock
):
    assert FAILURE_TTL <= 5
    api.answers["gw-token"] = Answer(authenticated(OTHER))
    assert reviewer.allows("gw-token") is False
    assert reviewer.allows("gw-token") is False
    assert api.reviewed() == ["gw-token"]
    clock.now += FAILURE_TTL + 0.1
    assert reviewer.allows("gw-token") is False
    assert api.reviewed() == ["gw-token", "gw-token"]


def test_the_cache_is_per_token(api: FakeApi, reviewer: TokenReviewer):
    api.answers["op-token"] = Answer(authenticated(OPERATOR))
    api.answers["gw-token"] = Answer(authenticated(OTHER))
    assert [reviewer.allows(t) for t in ("op-token", "gw-token", "op-token", "gw-token")] == [
        True,
        False,
        True,
        False,
    ]
    assert api.reviewed() == ["op-token", "gw-token"]


def test_the_cache_is_bounded_least_recently_used_first(api: FakeApi, own_token: Path):
    for token in ("t1", "t2", "t3"):
        api.answers[token] = Answer(authenticated(OPERATOR))
    small = TokenReviewer(api.url, str(own_token), str(api.ca), AUDIENCE, OPERATOR, max_entries=2)
    for token in ("t1", "t2", "t1", "t3", "t1", "t2"):
        assert small.allows(token)
    assert api.reviewed() == ["t1", "t2", "t3", "t2"]  # t2 made room for t3, t1 stayed


def jwt(exp: float) -> str:
    def part(value: dict[str, Any]) -> str:
        return base64.urlsafe_b64encode(json.dumps(value).encode()).rstrip(b"=").decode()

    return f"{part({'alg': 'RS256'})}.{part({'exp': exp, 'aud': [AUDIENCE]})}.c2lnbmF0dXJl"


def test_an_accepted_token_is_never_cached_past_its_own_expiry(
    api: FakeApi, reviewer: TokenReviewer, clock: Clock
):
    token = jwt(time.time() + 2)
    assert token_expiry(token) == pytest.approx(time.time() + 2, abs=1)
    assert token_expiry("not-a-jwt") is None and token_expiry("a.!!.c") is None
    api.answers[token] = Answer(authenticated(OPERATOR))
    assert reviewer.allows(token)
    clock.now += 3
    assert reviewer.allows(token)
    assert api.reviewed() == [token, token]


def test_concurrent_calls_with_one_token_share_one_review(api: FakeApi, reviewer: TokenReviewer):
    api.answers["op-token"] = Answer(authenticated(OPERATOR), delay=0.3)
    results: list[bool] = []
    threads = [
        threading.Thread(target=lambda: results.append(reviewer.allows("op-token")))
        for _ in range(6)
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(5)
    assert results == [True] * 6
    assert api.reviewed() == ["op-token"]


# ---- the agent's side -----------------------------------------------------------------------


def test_the_agent_passes_only_bearer_tokens_to_the_reviewer(api: FakeApi, reviewer: TokenReviewer):
    api.answers["op-token"] = Answer(authenticated(OPERATOR))
    auth = KubernetesAuth(reviewer)
    assert auth.accepts("Bearer op-token") and auth.accepts("bearer  op-token ")
    for header in (None, "", "Bearer ", "Basic op-token", "op-token"):
        assert auth.accepts(header) is False
    assert api.reviewed() == ["op-token"]
    assert bearer_of("Bearer x") == "x" and bearer_of("Token x") is None


def test_the_in_cluster_api_url_comes_from_the_service_environment():
    env = {"KUBERNETES_SERVICE_HOST": "10.96.0.1", "KUBERNETES_SERVICE_PORT": "443"}
    assert in_cluster_api_url(env) == "https://10.96.0.1:443"
    v6 = {"KUBERNETES_SERVICE_HOST": "fd00::1", "KUBERNETES_SERVICE_PORT": "6443"}
    assert in_cluster_api_url(v6) == "https://[fd00::1]:6443"
    assert in_cluster_api_url({"KUBERNETES_SERVICE_HOST": "10.96.0.1"}) is None


@pytest.mark.parametrize(
    "status",
    [
        {"authenticated": True, "user": {"username": [OPERATOR]}, "audiences": [AUDIENCE]},
        {"authenticated": True, "user": {"username": {"name": OPERATOR}}, "audiences": [AUDIENCE]},
        {"authenticated": True, "user": OPERATOR, "audiences": [AUDIENCE]},
        {"authenticated": True, "user": {"username": OPERATOR}, "audiences": AUDIENCE},
        {"authenticated": True, "user": {"username": OPERATOR}, "audiences": [[AUDIENCE]]},
    ],
    ids=["username-list", "username-object", "user-string", "audiences-string", "audiences-nested"],
)
def test_a_token_review_answer_of_the_wrong_shape_refuses_the_caller(
    api: FakeApi, reviewer: TokenReviewer, status: dict[str, Any]
):
    api.answers["op-token"] = Answer(status)
    assert KubernetesAuth(reviewer).accepts("Bearer op-token") is False


def test_a_jwt_whose_expiry_has_hundreds_of_digits_has_no_expiry():
    claims = base64.urlsafe_b64encode(b'{"exp": 1' + b"0" * 400 + b"}").decode().rstrip("=")
    assert token_expiry(f"e30.{claims}.sig") is None
