"""The in-memory API server behind Kubernetes' REST paths, over real HTTP on loopback.

So `kube.KubeApi` (the operator's real client) can be tested as it runs in a cluster: the URL
of each kind, namespaced and cluster-scoped; label selectors in the query; the status
subresource as a merge patch whose resourceVersion is a precondition; pod logs as text; errors
as `Status` objects with their HTTP code; and the bearer token on every request.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, unquote, urlsplit

from hopscope_operator import cluster
from hopscope_operator.cluster import ApiError, Resource
from hopscope_operator.controller.snapshot import NAMESPACES

from .fakeapi import FakeApi

KINDS: dict[tuple[str, str], Resource] = {
    (r.api_version, r.plural): r for r in vars(cluster).values() if isinstance(r, Resource)
} | {(NAMESPACES.api_version, NAMESPACES.plural): NAMESPACES}


class Forbidden(ApiError):
    status = 403
    reason = "Forbidden"


class HttpApi:
    """Serves `fake` at `url`; requests without `Authorization: Bearer <token>` get a 401, and
    `refuse(verb, plural, namespace)` can answer any request with a 403."""

    def __init__(self, fake: FakeApi, token: str) -> None:
        self.fake = fake
        self.token = token
        self.refused: set[tuple[str, str, str | None]] = set()
        # method, path, headers (names in lower case)
        self.requests: list[tuple[str, str, dict[str, str]]] = []
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
            self._server.shutdown()
            self._server.server_close()

    def _handler(self) -> type[BaseHTTPRequestHandler]:
        api = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *_: Any) -> None:  # quiet
                pass

            def _serve(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                body = json.loads(self.rfile.read(length)) if length else None
                headers = {key.lower(): value for key, value in self.headers.items()}
                api.requests.append((self.command, self.path, headers))
                try:
                    if self.headers.get("Authorization") != f"Bearer {api.token}":
                        self._reply(401, _status(401, "Unauthorized", "no valid bearer token"))
                        return
                    code, payload = api._route(self.command, self.path, body, self.headers)
                except ApiError as exc:
                    self._reply(exc.status, _status(exc.status, exc.reason, str(exc)))
                    return
                self._reply(code, payload)

            def _reply(self, code: int, payload: Any) -> None:
                data = payload if isinstance(payload, bytes) else json.dumps(payload).encode()
                self.send_response(code)
                kind = "text/plain" if isinstance(payload, bytes) else "application/json"
                self.send_header("Content-Type", kind)
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            do_GET = do_POST = do_PATCH = do_DELETE = _serve

        return Handler

    def _route(self, method: str, path: str, body: Any, headers: Any) -> tuple[int, Any]:
        parts = urlsplit(path)
        resource, namespace, name, sub = _parse(parts.path)
        verb = {"POST": "create", "PATCH": "patch", "DELETE": "delete"}.get(method)
        verb = verb or ("get" if name else "list")
        plural = f"{resource.plural}/{sub}" if sub else resource.plural
        if (verb, plural, namespace) in self.refused:
            raise Forbidden(f'{plural} is forbidden: cannot {verb} in namespace "{namespace}"')
        if sub == "log":
            return 200, self.fake.pod_log(namespace or "", name or "").encode()
        if sub == "token":
            assert body["kind"] == "TokenRequest", body
            [audience] = body["spec"]["audiences"]
            seconds = body["spec"]["expirationSeconds"]
            token = self.fake.request_token(namespace or "", name or "", audience, seconds)
            return 201, {**body, "status": {"token": token}}
        if sub == "status":
            assert headers.get("Content-Type") == "application/merge-patch+json", headers
            version = body["metadata"]["resourceVersion"]
            stored = self.fake.patch_status(
                resource, namespace or "", name or "", body["status"], version
            )
            return 200, stored
        if method == "POST":
            return 201, self.fake.create(resource, namespace, body)
        if method == "DELETE":
            assert body == {"propagationPolicy": "Background"}, body
            self.fake.delete(resource, namespace, name or "")
            return 200, _status(200, "", "deleted")
        if name:
            return 200, self.fake.get(resource, namespace, name)
        selector = parse_qs(parts.query).get("labelSelector", [""])[0]
        labels = dict(pair.split("=", 1) for pair in selector.split(",") if pair)
        items = self.fake.list(resource, namespace, labels or None)
        for item in items:  # a real list's items carry no apiVersion or kind
            item.pop("apiVersion", None)
            item.pop("kind", None)
        return 200, {"kind": f"{resource.kind}List", "apiVersion": resource.api_version,
                     "items": items}  # fmt: skip


def _parse(path: str) -> tuple[Resource, str | None, str | None, str | None]:
    """(kind, namespace, name, subresource) of a REST path."""
    segments = [unquote(s) for s in path.strip("/").split("/")]
    if segments[0] == "api":
        api_version, rest = segments[1], segments[2:]
    else:
        api_version, rest = f"{segments[1]}/{segments[2]}", segments[3:]
    namespace = None
    if rest[0] == "namespaces" and len(rest) >= 3:
        namespace, rest = rest[1], rest[2:]
    resource = KINDS[(api_version, rest[0])]
    name = rest[1] if len(rest) > 1 else None
    sub = rest[2] if len(rest) > 2 else None
    return resource, namespace, name, sub


def _status(code: int, reason: str, message: str) -> dict[str, Any]:
    return {"kind": "Status", "apiVersion": "v1", "status": "Failure", "code": code,
            "reason": reason, "message": message}  # fmt: skip
