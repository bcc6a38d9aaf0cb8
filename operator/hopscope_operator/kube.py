"""ClusterApi against a real API server, over the kubernetes client's REST layer.

Plain JSON in and out (no generated models), so the reconciler sees the same dicts it sees in
the tests. Credentials come from the in-cluster service account, else the local kubeconfig
(what `hopscope-operator` uses on a laptop).
"""

from __future__ import annotations

import json
import logging
import queue
import threading
from collections.abc import Mapping
from typing import Any, NoReturn
from urllib.parse import quote, urlencode

from kubernetes import client, config

from hopscope_operator.api import check_label_key, check_label_value
from hopscope_operator.cluster import (
    SERVICE_ACCOUNTS,
    ApiError,
    Conflict,
    Invalid,
    Listing,
    NotFound,
    Object,
    Resource,
)

log = logging.getLogger("hopscope.operator")

ERRORS: dict[int, type[ApiError]] = {404: NotFound, 409: Conflict, 422: Invalid}
TIMEOUT_SECONDS = 30
# How long the server keeps a watch open before ending it (it is then opened again from the
# last resourceVersion): client-go's 5 minutes. Reading waits that long plus some slack.
WATCH_SECONDS = 300
# Connections the client keeps for reuse. Each informer's watch holds one (a namespaced install
# watches five kinds in each namespace), beside the requests: the client's default (5 per CPU)
# would drop a connection each time a watch ends, warning, and open a new one.
POOL_CONNECTIONS = 128


def _load_configuration() -> client.Configuration:
    try:
        config.load_incluster_config()
    except config.ConfigException:
        config.load_kube_config()
    return client.Configuration.get_default_copy()


class KubeApi:
    def __init__(self, configuration: client.Configuration | None = None) -> None:
        self._config = configuration or _load_configuration()
        pool = self._config.connection_pool_maxsize
        self._config.connection_pool_maxsize = max(pool, POOL_CONNECTIONS)
        self._rest = client.ApiClient(self._config).rest_client

    def discovery(self, path: str) -> Object | None:
        response = self._send("GET", path)
        data = response.read()
        if response.status == 404:  # a group or version the server does not serve
            return None
        if response.status >= 400:
            _raise("GET", path, response.status, data)
        found: Object = json.loads(data)
        return found

    def get(self, resource: Resource, namespace: str | None, name: str) -> Object:
        return self._json("GET", _path(resource, namespace, name))

    def list(
        self, resource: Resource, namespace: str | None, labels: dict[str, str] | None = None
    ) -> list[Object]:
        return self.list_versioned(resource, namespace, labels).items

    def list_versioned(
        self, resource: Resource, namespace: str | None, labels: dict[str, str] | None = None
    ) -> Listing:
        query = {"labelSelector": label_selector(labels)} if labels else {}
        found = self._json("GET", _path(resource, namespace), query=query)
        # A list's items carry no apiVersion/kind; the reconciler expects whole objects.
        for item in found["items"]:
            item.setdefault("apiVersion", resource.api_version)
            item.setdefault("kind", resource.kind)
        return Listing(list(found["items"]), str(found["metadata"].get("resourceVersion", "")))

    def watch(
        self,
        resource: Resource,
        namespace: str | None,
        labels: dict[str, str] | None,
        resource_version: str,
    ) -> StreamWatch:
        query = {
            "watch": "1",
            "resourceVersion": resource_version,
            "allowWatchBookmarks": "true",
            "timeoutSeconds": str(WATCH_SECONDS),
        }
        if labels:
            query["labelSelector"] = label_selector(labels)
        path = _path(resource, namespace) + "?" + urlencode(query)
        response = self._send("GET", path, timeout=(TIMEOUT_SECONDS, WATCH_SECONDS + 30))
        if response.status >= 400:
            _raise("GET", path, response.status, response.read())
        return StreamWatch(response.response, path)

    def create(self, resource: Resource, namespace: str | None, body: Object) -> Object:
        return self._json("POST", _path(resource, namespace), body=body)

    def replace(self, resource: Resource, namespace: str, name: str, body: Object) -> Object:
        return self._json("PUT", _path(resource, namespace, name), body=body)

    def delete(self, resource: Resource, namespace: str | None, name: str) -> None:
        # Background propagation: dependents (a check's probe pods) go with their owner.
        body = {"propagationPolicy": "Background"}
        self._json("DELETE", _path(resource, namespace, name), body=body)

    def patch_status(
        self,
        resource: Resource,
        namespace: str | None,
        name: str,
        status: Object,
        resource_version: str,
    ) -> Object:
        # A resourceVersion in a merge patch is a precondition: a stale one is a 409.
        patch = {"metadata": {"resourceVersion": resource_version}, "status": status}
        return self._json(
            "PATCH",
            _path(resource, namespace, name) + "/status",
            body=patch,
            content_type="application/merge-patch+json",
        )

    def pod_log(self, namespace: str, name: str) -> str:
        path = f"/api/v1/namespaces/{quote(namespace)}/pods/{quote(name)}/log"
        # The API server refuses `Accept: text/plain` on pods/log (406) although the log it
        # serves is text/plain: only `*/*` (or a serializer's type) is accepted.
        return self._request("GET", path, accept="*/*").decode()

    def request_token(
        self, namespace: str, service_account: str, audience: str, seconds: int
    ) -> str:
        body = {
            "apiVersion": "authentication.k8s.io/v1",
            "kind": "TokenRequest",
            "spec": {"audiences": [audience], "expirationSeconds": seconds},
        }
        path = _path(SERVICE_ACCOUNTS, namespace, service_account) + "/token"
        return str(self._json("POST", path, body=body)["status"]["token"])

    def _json(
        self,
        method: str,
        path: str,
        *,
        body: Object | None = None,
        query: dict[str, str] | None = None,
        content_type: str = "application/json",
    ) -> Any:
        if query:
            path += "?" + urlencode(query)
        return json.loads(self._request(method, path, body=body, content_type=content_type))

    def _request(
        self,
        method: str,
        path: str,
        *,
        body: Object | None = None,
        content_type: str = "application/json",
        accept: str = "application/json",
    ) -> bytes:
        response = self._send(method, path, body=body, content_type=content_type, accept=accept)
        data = response.read()
        if response.status >= 400:
            _raise(method, path, response.status, data)
        return bytes(data)

    def _send(
        self,
        method: str,
        path: str,
        *,
        body: Object | None = None,
        content_type: str = "application/json",
        accept: str = "application/json",
        timeout: float | tuple[float, float] = TIMEOUT_SECONDS,
    ) -> Any:
        """The response, its body not read yet (a watch's is a stream)."""
        headers = {"Accept": accept, "Content-Type": content_type}
        for auth in self._config.auth_settings().values():
            if auth["in"] == "header" and auth["value"]:
                headers[auth["key"]] = auth["value"]
        return self._rest.request(
            method, self._config.host + path, headers=headers, body=body, _request_timeout=timeout
        )


class StreamWatch:
    """A watch's response, one JSON event a line, read by a thread of its own so that `poll`
    never waits; `ended` once the server closed it or the connection dropped."""

    def __init__(self, response: Any, path: str) -> None:
        self._response = response
        self._path = path
        self._events: queue.SimpleQueue[Object] = queue.SimpleQueue()
        self._done = threading.Event()
        threading.Thread(target=self._read, name=f"watch {path}", daemon=True).start()

    @property
    def ended(self) -> bool:
        return self._done.is_set()

    def poll(self) -> list[Object]:
        found = []
        while not self._events.empty():
            found.append(self._events.get_nowait())
        return found

    def close(self) -> None:
        self._response.shutdown()  # ends a read in progress: its thread then ends

    def _read(self) -> None:
        pending = b""
        try:
            for chunk in self._response.stream(65536):
                *lines, pending = (pending + chunk).split(b"\n")
                for line in lines:
                    if line.strip():
                        self._events.put(json.loads(line))
        except Exception as exc:  # dropped: the informer opens it again from its last version
            log.debug("watch %s dropped: %s", self._path, exc)
        finally:
            self._response.release_conn()
            self._done.set()  # after the last event is queued: poll sees them all first


def label_selector(labels: Mapping[str, str]) -> str:
    """`k=v,…` for a labelSelector query. The selector syntax has no escaping: a key or value
    outside the label syntax would change what is selected (`a,b=c`) or be a 400, so it is
    refused here, naming it, and never sent."""
    return ",".join(f"{check_label_key(k)}={check_label_value(v)}" for k, v in labels.items())


def _path(resource: Resource, namespace: str | None, name: str | None = None) -> str:
    base = f"/apis/{resource.group}/{resource.version}" if resource.group else "/api/v1"
    if namespace is not None:
        base += f"/namespaces/{quote(namespace)}"
    base += f"/{resource.plural}"
    return base + (f"/{quote(name)}" if name else "")


def _raise(method: str, path: str, status: int, data: bytes) -> NoReturn:
    error = ERRORS.get(status, ApiError)(f"{method} {path}: {status} {_message(data)}")
    error.status = status  # a 403 or 429 stays one for callers, as the fake's refusals do
    raise error


def _message(data: bytes) -> str:
    try:
        return str(json.loads(data).get("message", ""))
    except ValueError:
        return data[:200].decode(errors="replace")
