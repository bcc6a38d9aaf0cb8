"""Replays a recorded scenario against the fake over real HTTP: the fake seeded from `given`,
each request sent with exactly the recorded headers, query and body, and each answer read back
the way the recordings describe it (json, text, empty, or a watch stream)."""

from __future__ import annotations

import copy
import http.client
import json
import re
import threading
import time
from typing import Any
from urllib.parse import urlencode, urlsplit

from hopscope_operator.cluster import (
    CHECKS,
    DEPLOYMENTS,
    NAMESPACES,
    NODES,
    PODS,
    SERVICE_ACCOUNTS,
    SERVICES,
    Object,
    Resource,
)

from .conftest import ApiServer
from .fake_auth import ADMIN, OPERATOR, Identity
from .fake_controllers import make_endpoint_slices
from .fake_defaults import defaulted
from .fake_routes import CONFIG_MAPS
from .fake_tokens import API_AUDIENCE
from .fakeapi import FakeApi, now
from .httpapi import HttpApi
from .kube_recordings import Answer, expand

SEEDED: dict[tuple[str, str], Resource] = {
    (r.api_version, r.kind): r for r in (PODS, SERVICES, SERVICE_ACCOUNTS, DEPLOYMENTS, CHECKS)
}
ADMIN_TOKEN = "conformance-admin"
NODE = "k8s-real-node"  # the recording cluster's one node
NAMESPACE_CONFIG_MAPS = ("kube-root-ca.crt", "openshift-service-ca.crt")  # the fork's too
TOKENS = {"admin": ADMIN_TOKEN, "operator-sa": "conformance-operator", "invalid-token": "x"}


def seeded(schema: ApiServer, given: dict[str, Any]) -> FakeApi:
    fake = FakeApi(schema)
    namespace = given["namespace"]
    for ns in (namespace, "hopscope-system"):
        fake.put(NAMESPACES, {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": ns}})
        for name in NAMESPACE_CONFIG_MAPS:  # the controllers put these in every namespace
            meta = {"name": name, "namespace": ns}
            fake.put(CONFIG_MAPS, {"apiVersion": "v1", "kind": "ConfigMap", "metadata": meta})
    addresses = [{"type": "InternalIP", "address": "192.0.2.1"}]
    node = {"apiVersion": "v1", "kind": "Node", "metadata": {"name": NODE}}
    fake.put(NODES, {**node, "status": {"addresses": addresses}})
    account = {"apiVersion": "v1", "kind": "ServiceAccount"}
    for ns, name in (("hopscope-system", "hopscope-operator"), ("hopscope-system", "default")):
        fake.put(SERVICE_ACCOUNTS, {**account, "metadata": {"name": name, "namespace": ns}})
    for entry in given.get("objects", []):
        obj = copy.deepcopy(entry.get("object", entry))
        meta = obj["metadata"]
        meta.setdefault("namespace", namespace)
        meta.setdefault("creationTimestamp", now())
        meta.setdefault("generation", 1)
        if obj["kind"] == "Pod":
            _schedule(obj)
        resource = SEEDED[(obj["apiVersion"], obj["kind"])]
        fake.put(resource, defaulted(resource, obj))  # as the API server stored it
    make_endpoint_slices(fake, namespace)
    for pod, containers in given.get("podLogs", {}).items():
        for container, text in containers.items():
            fake.container_logs[(namespace, pod, container)] = text
    return fake


def _schedule(pod: Object) -> None:
    """The scheduler's part: a pod the recording shows scheduled runs on the recorded node;
    and the kubelet's: a running pod has an IP (the recordings keep only what they compare)."""
    status = pod.get("status", {})
    scheduled = any(
        c.get("type") == "PodScheduled" and c.get("status") == "True"
        for c in status.get("conditions", [])
    )
    if scheduled or status.get("containerStatuses"):
        pod["spec"].setdefault("nodeName", NODE)
    if status.get("phase") == "Running" and "podIP" not in status:  # the kubelet's part
        status["podIP"] = "10.42.0.9"
        status["podIPs"] = [{"ip": "10.42.0.9"}]


def identities() -> dict[str, Identity]:
    return {TOKENS["admin"]: ADMIN, TOKENS["operator-sa"]: OPERATOR}


_DESCRIBED = re.compile(
    r"a TokenRequest token of (?P<ns>[^/\s]+)/(?P<account>\S+) "
    r"(?:for audience (?P<audience>\S+?),|with no audiences)"
)
_BOUND = re.compile(r"as (?P<like>\S+), bound to pod (?P<ns>[^/\s]+)/(?P<pod>\S+)")


def minted(fake: FakeApi, given: dict[str, Any]) -> dict[str, str]:
    """given.tokens (each described in words) minted by the fake: name -> token."""
    tokens: dict[str, str] = {}
    specs: dict[str, tuple[str, str, tuple[str, ...]]] = {}
    for name, described in given.get("tokens", {}).items():
        if found := _DESCRIBED.match(described):
            audience = found["audience"]
            specs[name] = (found["ns"], found["account"], (audience or API_AUDIENCE,))
            tokens[name] = fake.mint(*specs[name])
        elif bound := _BOUND.match(described):
            pod = fake.stored(PODS, bound["ns"], bound["pod"])
            tokens[name] = fake.mint(*specs[bound["like"]], (bound["pod"], pod["metadata"]["uid"]))
        else:
            raise ValueError(f"a token described as {described!r}: teach minted() to make it")
    return tokens


class Replayer:
    """Sends one scenario's requests to a running HttpApi, in order."""

    def __init__(self, server: HttpApi, tokens: dict[str, str]) -> None:
        self.server = server
        self.tokens = tokens
        self.bodies: list[Any] = []  # our answers' bodies, for {{i:path}}

    def exchange(self, exchange: dict[str, Any]) -> Answer:
        for setup in exchange.get("setupBefore", []):
            self.send(setup["request"])
        during = exchange.get("during", [])
        stream = exchange["response"].get("stream")
        threads = [threading.Thread(target=self._later, args=(d,), daemon=True) for d in during]
        for thread in threads:
            thread.start()
        try:
            answer = self.send(exchange["request"], stream=stream)
        except (OSError, http.client.HTTPException) as exc:
            answer = Answer(-1, {}, "error", f"{type(exc).__name__}: {exc}")
        for thread in threads:
            thread.join()
        self.bodies.append(answer.body)
        return answer

    def _later(self, during: dict[str, Any]) -> None:
        time.sleep(during["afterSeconds"])
        self.send(during["request"])

    def send(self, request: dict[str, Any], stream: dict[str, Any] | None = None) -> Answer:
        request = expand(request, self.bodies, self.tokens)
        path = request["path"]
        query = request.get("rawQuery")
        if query is None and request.get("query"):
            query = urlencode(request["query"])
        if query is not None:
            path += f"?{query}"
        headers = dict(request.get("headers", {}))
        auth = request.get("auth", "admin")
        token = TOKENS.get(auth) or self.tokens.get(auth)
        if auth != "none":
            headers["Authorization"] = f"Bearer {token}"
        body: bytes | None = None
        if "rawBody" in request:
            body = request["rawBody"].encode()
        elif request.get("body") is not None:
            body = json.dumps(request["body"]).encode()
        read_for = (stream or {}).get("readForSeconds", 10.0)
        host = urlsplit(self.server.url)
        connection = http.client.HTTPConnection(host.hostname or "", host.port, timeout=read_for)
        try:
            connection.putrequest(request["method"], path, skip_accept_encoding=True)
            for name, value in headers.items():
                connection.putheader(name, value)
            if body is not None:
                connection.putheader("Content-Length", str(len(body)))
            connection.endheaders(body)
            response = connection.getresponse()
            return _answer(response, watching="watch=" in (query or ""), read_for=read_for)
        finally:
            connection.close()


def _answer(response: http.client.HTTPResponse, *, watching: bool, read_for: float) -> Answer:
    headers = {name.lower(): value for name, value in response.getheaders()}
    kind = headers.get("content-type", "")
    if watching and response.status == 200 and kind.startswith("application/json"):
        return _watch(response, headers, read_for)
    data = response.read()
    if not data:
        return Answer(response.status, headers, "empty", None)
    if kind.startswith("application/json"):
        try:
            return Answer(response.status, headers, "json", json.loads(data))
        except ValueError:
            pass
    return Answer(response.status, headers, "text", data.decode(errors="replace"))


def _watch(response: http.client.HTTPResponse, headers: dict[str, str], read_for: float) -> Answer:
    events: list[Any] = []
    closed = False
    deadline = time.monotonic() + read_for
    while time.monotonic() < deadline:
        try:
            line = response.readline()
        except TimeoutError:
            break
        if not line:
            closed = True
            break
        if line.strip():
            events.append(json.loads(line))
    return Answer(200, headers, "watch", events, {"closedByServer": closed})
