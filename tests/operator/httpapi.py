"""The in-memory API server behind Kubernetes' REST paths, over real HTTP on loopback.

So `kube.KubeApi` (the operator's real client) can be tested as it runs in a cluster, with the
answers a real kube-apiserver gives (tests/operator/test_kube_api_conformance.py holds it to
recordings of one): authentication then RBAC then lookup; content negotiation; label and
field selectors; the status subresource; patch types; fieldValidation and dryRun; what DELETE
returns; pod logs as text; watches and discovery (what kopf needs); TokenRequest and
TokenReview; and every refusal as a `Status` body shaped as the real one.

It serves only the call shapes hopscope was recorded making (fake_shapes): a test that makes
another fails, naming it, as it does when the fake sends a Warning (a field a real server
would drop).
"""

from __future__ import annotations

import json
import threading
import traceback
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlsplit

import yaml

from hopscope_operator.api import ClusterConnectivityCheck
from hopscope_operator.cluster import CHECKS, EVENTS, PODS, ApiError, Object
from hopscope_operator.install.crd import custom_resource_definition

from . import fake_discovery as discovery
from . import fake_events_v1 as events_v1
from . import fake_negotiation as negotiation
from . import fake_reviews as reviews
from . import fake_tables as tables
from . import fake_tokens as tokens
from . import fake_watch as watch
from .fake_auth import (
    ADMIN,
    ANONYMOUS,
    OPERATOR,
    OPERATOR_ACCOUNT,
    PUBLIC_PATHS,
    Identity,
    authorize,
    refusing,
    service_account,
)
from .fake_logs import pod_log
from .fake_routes import (
    ACCESS_REVIEWS,
    ANYONE_MAY_CREATE,
    CRDS,
    EVENTS_V1,
    SELF_REVIEWS,
    TOKEN_REVIEWS,
    PageNotFound,
    Route,
    route,
)
from .fake_shapes import ShapeBook, describe
from .fake_status import BadRequest, MethodNotAllowed, Unauthorized, status_body
from .fake_tokens import API_AUDIENCE
from .fake_writes import Writes
from .fakeapi import FakeApi

NOT_ALLOWED = "the server does not allow this method on the requested resource"
VERBS = {"POST": "create", "PUT": "update", "PATCH": "patch", "DELETE": "delete"}


@dataclass
class Reply:
    code: int
    body: Any = None  # a dict is JSON; a str is text/plain; None is no body at all
    content_type: str = "application/json"
    stream: Iterator[dict[str, Any]] | None = None  # a watch's events, one JSON line each
    warnings: list[str] = field(default_factory=list)  # Warning headers


class HttpApi:
    """Serves `fake` at `url`. `token` is a cluster-admin's; `identities` maps more bearer
    tokens to who they are; `refuse(verb, plural, namespace)` answers such requests with a
    403 whoever sends them."""

    def __init__(
        self,
        fake: FakeApi,
        token: str,
        identities: dict[str, Identity] | None = None,
        *,
        any_shape: bool = False,
    ) -> None:
        """It serves the call shapes hopscope was recorded making and the reviewed extras; a
        request of another shape is recorded in `unmatched` and fails the test when the server
        stops. `any_shape` serves anything (the conformance replays: they are the recordings)."""
        self.fake = fake
        self.token = token
        self.identities = {token: ADMIN, **(identities or {})}
        self.refused: set[tuple[str, str, str | None]] = set()
        # method, path, headers (names in lower case)
        self.requests: list[tuple[str, str, dict[str, str]]] = []
        self.shapes = None if any_shape else ShapeBook.recorded()
        self.unmatched: list[str] = []
        self.warned: list[str] = []  # Warning headers answered: fields a real server drops
        self._stopping = threading.Event()
        self._writes = Writes(fake)
        if not fake.select(CRDS, None, lambda _: True):  # the chart is installed
            fake.put(CRDS, custom_resource_definition())
            fake.put(CRDS, custom_resource_definition(ClusterConnectivityCheck))
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), self._handler())
        self.url = f"http://127.0.0.1:{self._server.server_address[1]}"

    def refuse(self, verb: str, plural: str, namespace: str | None) -> None:
        self.refused.add((verb, plural, namespace))

    @contextmanager
    def running(self) -> Iterator[HttpApi]:
        thread = threading.Thread(target=self._server.serve_forever, daemon=True)
        thread.start()
        try:
            yield self
        finally:
            self._stopping.set()  # ends open watches
            self._server.shutdown()
            self._server.server_close()
        # Only on a clean exit: a failing test's own error is the one to see.
        assert not self.unmatched, (
            "HttpApi served call shapes with no recording (add one to kube_api_shapes.yaml only "
            "with why its answer is known):\n" + "\n".join(self.unmatched)
        )
        assert not self.warned, (
            "HttpApi answered with Warnings: a real API server silently drops these fields "
            "of hopscope's requests:\n" + "\n".join(self.warned)
        )

    def _handler(self) -> type[BaseHTTPRequestHandler]:
        api = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *_: Any) -> None:  # quiet
                pass

            def _serve(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                data = self.rfile.read(length) if length else b""
                headers = {key.lower(): value for key, value in self.headers.items()}
                api.requests.append((self.command, self.path, headers))
                api._check_shape(self.command, self.path, headers)
                try:
                    reply = api.answer(self.command, self.path, headers, data)
                except PageNotFound as exc:
                    reply = Reply(404, f"{exc}\n", "text/plain; charset=utf-8")
                except ApiError as exc:
                    reply = Reply(exc.status, status_body(exc))
                except Exception:  # a bug in the fake: say so, as a 500, not a dropped line
                    reply = Reply(500, traceback.format_exc(), "text/plain; charset=utf-8")
                self._reply(reply)

            def _reply(self, reply: Reply) -> None:
                self.send_response(reply.code)
                if reply.stream is not None:
                    self._stream(reply.stream)
                    return
                if reply.body is None:
                    self.send_header("Content-Length", "0")
                    self.end_headers()
                    return
                if isinstance(reply.body, str):
                    data = reply.body.encode()
                elif reply.content_type == "application/yaml":
                    data = yaml.safe_dump(reply.body).encode()
                else:
                    data = json.dumps(as_go_json(reply.body)).encode()
                self.send_header("Content-Type", reply.content_type)
                self.send_header("Content-Length", str(len(data)))
                for warning in reply.warnings:
                    self.send_header("Warning", warning)
                self.end_headers()
                self.wfile.write(data)

            def _stream(self, events: Iterator[dict[str, Any]]) -> None:
                self.send_header("Content-Type", "application/json")
                self.send_header("Transfer-Encoding", "chunked")
                self.end_headers()
                try:
                    for event in events:
                        line = json.dumps(as_go_json(event)).encode() + b"\n"
                        self.wfile.write(b"%x\r\n%s\r\n" % (len(line), line))
                        self.wfile.flush()
                    self.wfile.write(b"0\r\n\r\n")
                except (BrokenPipeError, ConnectionResetError):  # the watcher went away
                    self.close_connection = True

            do_GET = do_POST = do_PUT = do_PATCH = do_DELETE = _serve

        return Handler

    # ---- one request ------------------------------------------------------------------------

    def _check_shape(self, method: str, path: str, headers: dict[str, str]) -> None:
        if self.shapes is not None and self.shapes.name(method, path, headers) is None:
            self.unmatched.append(describe(method, path, headers))

    def answer(self, method: str, path: str, headers: dict[str, str], data: bytes) -> Reply:
        who = self._authenticate(headers.get("authorization"))
        parts = urlsplit(path)
        query = {k: v[-1] for k, v in parse_qs(parts.query, keep_blank_values=True).items()}
        if parts.path in PUBLIC_PATHS and method == "GET":
            return _public(parts.path)
        crds = self.fake.select(CRDS, None, lambda _: True)  # what else the server serves
        if method == "GET":
            aggregated = discovery.wants_aggregated(headers.get("accept"))
            if aggregated and (document := discovery.aggregated(parts.path, crds)) is not None:
                return Reply(200, document, discovery.AGGREGATED)
            if (document := discovery.answer(parts.path, self.url, crds)) is not None:
                return Reply(200, document)
        where = route(parts.path, discovery.crd_kinds(crds))
        verb = VERBS.get(method) or ("get" if where.name else "list")
        if verb == "list" and query.get("watch") in ("true", "1"):
            verb = "watch"
        if (verb, where.plural, where.namespace) in self.refused:
            who = refusing(who)
        if where.resource not in ANYONE_MAY_CREATE or who == ANONYMOUS:
            authorize(who, verb, where.resource.group, where.plural, where.namespace, where.name)
        if where.sub == "log":
            return self._log(where, query, headers)
        if method == "GET" and where.name and tables.wants_table(headers.get("accept")):
            obj = self.fake.get(where.resource, where.namespace, where.name)
            return Reply(200, tables.table(where.resource, [obj]))
        accept = negotiation.for_object(headers.get("accept"))
        if verb == "watch":
            return self._watch(where, query)
        reply = self._dispatch(method, where, query, headers, data, who)
        if isinstance(reply.body, dict):
            reply.content_type = accept
        if self.shapes is not None:
            self.warned += [f"{method} {path}: {w}" for w in reply.warnings]
        return reply

    def _authenticate(self, authorization: str | None) -> Identity:
        if authorization is None:
            return ANONYMOUS
        token = authorization.removeprefix("Bearer ")
        if authorization.startswith("Bearer ") and token in self.identities:
            return self.identities[token]
        issued = self.fake.issued.get(token)
        if authorization.startswith("Bearer ") and issued and API_AUDIENCE in issued.audiences:
            if (issued.namespace, issued.account) == OPERATOR_ACCOUNT:
                return OPERATOR
            return service_account(issued.namespace, issued.account)
        raise Unauthorized("Unauthorized")

    def _events_v1(self, method: str, where: Route, query: dict[str, str], data: bytes) -> Reply:
        """events.k8s.io/v1: stored as core Events, converted both ways."""
        core = Route(EVENTS, where.namespace, where.name, where.sub)
        if method == "POST":
            body = _json(data)
            events_v1.check(body)
            created = self.fake.create(EVENTS, where.namespace, events_v1.to_core(body))
            return Reply(201, events_v1.to_v1(created))
        if where.name:
            return Reply(200, events_v1.to_v1(self.fake.get(EVENTS, where.namespace, where.name)))
        listed = self._writes.list(core, query)
        items = [events_v1.to_v1(item) for item in listed["items"]]
        for item in items:  # a typed list's items carry no apiVersion or kind
            del item["kind"], item["apiVersion"]
        return Reply(200, {**listed, "apiVersion": EVENTS_V1.api_version, "items": items})

    def _watch(self, where: Route, query: dict[str, str]) -> Reply:
        watch.check_options(query)
        match = self._writes.matcher(where, query)  # a bad selector: a plain 400, no stream
        events = watch.events(
            self.fake, where.resource, where.namespace, match, query, self._stopping.is_set
        )
        return Reply(200, stream=events)

    def _log(self, where: Route, query: dict[str, str], headers: dict[str, str]) -> Reply:
        negotiation.for_log(headers.get("accept"))  # before the pod is looked up
        namespace, name = where.namespace or "", where.name or ""
        pod = self.fake.stored(PODS, namespace, name)
        text = pod_log(pod, query, lambda container: self.fake.log_of(namespace, name, container))
        self.fake.calls.append(("get", "pods/log", namespace))
        if text is None:
            return Reply(204)
        return Reply(200, text, "text/plain")

    def _dispatch(
        self,
        method: str,
        where: Route,
        query: dict[str, str],
        headers: dict[str, str],
        data: bytes,
        who: Identity,
    ) -> Reply:
        writes = self._writes
        if where.sub == "token":
            if method != "POST":
                raise MethodNotAllowed(NOT_ALLOWED, {})
            return Reply(201, writes.token_request(where, _json(data)))
        if where.resource == TOKEN_REVIEWS and method == "POST":
            return Reply(201, tokens.review(_json(data), self.fake.issued))
        if where.resource == EVENTS_V1 and method in ("GET", "POST"):
            return self._events_v1(method, where, query, data)
        if where.resource == ACCESS_REVIEWS and method == "POST":
            return Reply(201, reviews.access_review(who, _json(data)))
        if where.resource == SELF_REVIEWS and method == "POST":
            return Reply(201, reviews.self_review(who))
        if method == "GET":
            if where.name is None:
                return Reply(200, writes.list(where, query))
            return Reply(200, self.fake.get(where.resource, where.namespace, where.name))
        warned: list[str] = []
        if method == "POST":
            return Reply(201, writes.create(where, query, data, warned), warnings=warned)
        if method == "PUT":
            return Reply(200, writes.replace(where, query, data, warned), warnings=warned)
        if method == "PATCH":
            built_in = where.resource.group != CHECKS.group  # strategic merge needs Go types
            kind = negotiation.patch_type(headers.get("content-type"), built_in=built_in)
            return Reply(200, writes.patch(where, query, kind, data, warned), warnings=warned)
        if method == "DELETE":
            return Reply(200, writes.delete(where, query, _json(data) if data else None))
        raise MethodNotAllowed(NOT_ALLOWED, {})


def as_go_json(value: Any) -> Any:
    """What Go's encoder writes: a whole float64 has no fraction (a schema default of 2.0 is
    served as 2)."""
    if isinstance(value, dict):
        return {k: as_go_json(v) for k, v in value.items()}
    if isinstance(value, list):
        return [as_go_json(v) for v in value]
    if isinstance(value, float) and value.is_integer():
        return int(value)
    return value


def _json(data: bytes) -> Object:
    """A JSON request body (a POST without Content-Type is JSON too)."""
    try:
        body = json.loads(data)
    except ValueError as exc:
        raise BadRequest(f"the object provided is unrecognized: {exc}") from None
    if not isinstance(body, dict):
        raise BadRequest("the object provided is unrecognized: not an object")
    return body


def _public(path: str) -> Reply:
    if path == "/version":
        return Reply(200, {"major": "1", "minor": "36", "gitVersion": "v1.36.2"})
    return Reply(200, "ok", "text/plain; charset=utf-8")
