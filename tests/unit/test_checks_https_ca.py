"""HTTPS to a server whose certificate a private CA signed, on loopback: verified with the CA
the check's request carries (spec.http.caBundle, through the batch), untrusted without it."""

from __future__ import annotations

import ssl
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from hopscope_probe import batch as wire
from hopscope_probe.checks import http
from hopscope_probe.evidence import Outcome, Stage, TlsProblem
from hopscope_probe.models import ProbeRequest
from tests.netlab.servers import make_ca, make_server_cert


class _Ok(BaseHTTPRequestHandler):
    def do_GET(self) -> None:
        self.send_response(200)
        self.send_header("Content-Length", "0")
        self.end_headers()

    def log_message(self, format: str, *args: object) -> None:
        pass


@pytest.fixture
def private_ca_server(tmp_path: Path) -> Iterator[tuple[int, str]]:
    """(port, the CA's PEM) of an HTTPS server on 127.0.0.1 whose certificate the CA signed."""
    ca = make_ca(tmp_path)
    cert, key = make_server_cert("valid", tmp_path, ca, ["localhost"], ["127.0.0.1"])
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(cert, key)
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Ok)
    server.socket = context.wrap_socket(server.socket, server_side=True)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield server.server_address[1], ca[0].read_text()
    server.shutdown()
    server.server_close()


def request(port: int, ca_pem: str | None) -> ProbeRequest:
    """The request as the probe pod reads it: through the batch's JSON, as the operator sent it."""
    sent = ProbeRequest(
        host="localhost",
        port=port,
        protocol="HTTPS",
        uri=f"https://localhost:{port}/",
        count=1,
        timeout_seconds=2,
        ca_pem=ca_pem,
    )
    item = wire.BatchItem(id="shop/api/1", netns="host", request=sent)
    [received] = wire.Batch.model_validate_json(wire.Batch(checks=[item]).to_json()).checks
    return received.request


def test_the_checks_ca_verifies_the_server(private_ca_server: tuple[int, str]):
    port, ca_pem = private_ca_server
    evidence = http.check_https(request(port, ca_pem), "127.0.0.1")
    [attempt] = evidence.attempts
    assert (attempt.outcome, attempt.detail) == (Outcome.SUCCESS, "HTTP 200")


def test_without_the_ca_the_server_is_untrusted(private_ca_server: tuple[int, str]):
    port, _ = private_ca_server
    evidence = http.check_https(request(port, None), "127.0.0.1")
    [attempt] = evidence.attempts
    assert (attempt.outcome, attempt.stage) == (Outcome.TLS_ERROR, Stage.TLS)
    assert evidence.http[0].tls_problem == TlsProblem.UNTRUSTED


@pytest.mark.parametrize("pem", ["not a certificate", "caf\u00e9"], ids=["not-pem", "not-ascii"])
def test_a_ca_that_cannot_be_loaded_is_a_local_error_not_a_crash(pem: str):
    evidence = http.check_https(request(443, pem), "127.0.0.1")
    [attempt] = evidence.attempts
    assert (attempt.outcome, attempt.stage) == (Outcome.LOCAL_ERROR, Stage.TLS)
    assert attempt.detail.startswith("cannot load the check's CA bundle: ")
