"""ClusterApi against a real API server, over the kubernetes client's REST layer.

Plain JSON in and out (no generated models), so the reconciler sees the same dicts it sees in
the tests. Credentials come from the in-cluster service account, else the local kubeconfig
(what `hopscope-operator` uses on a laptop).
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any
from urllib.parse import quote, urlencode

from kubernetes import client, config

from hopscope_operator.api import check_label_key, check_label_value
from hopscope_operator.cluster import (
    SERVICE_ACCOUNTS,
    ApiError,
    Conflict,
    Invalid,
    NotFound,
    Object,
    Resource,
)

ERRORS: dict[int, type[ApiError]] = {404: NotFound, 409: Conflict, 422: Invalid}
TIMEOUT_SECONDS = 30


def _load_configuration() -> client.Configuration:
    try:
        config.load_incluster_config()
    except config.ConfigException:
        config.load_kube_config()
    return client.Configuration.get_default_copy()


class KubeApi:
    def __init__(self, configuration: client.Configuration | None = None) -> None:
        self._config = configuration or _load_configuration()
        self._rest = client.ApiClient(self._config).rest_client

    def get(self, resource: Resource, namespace: str | None, name: str) -> Object:
        return self._json("GET", _path(resource, namespace, name))

    def list(
        self, resource: Resource, namespace: str | None, labels: dict[str, str] | None = None
    ) -> list[Object]:
        query = {"labelSelector": label_selector(labels)} if labels else {}
        found = self._json("GET", _path(resource, namespace), query=query)
        # A list's items carry no apiVersion/kind; the reconciler expects whole objects.
        for item in found["items"]:
            item.setdefault("apiVersion", resource.api_version)
            item.setdefault("kind", resource.kind)
        return list(found["items"])

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
        headers = {"Accept": accept, "Content-Type": content_type}
        for auth in self._config.auth_settings().values():
            if auth["in"] == "header" and auth["value"]:
                headers[auth["key"]] = auth["value"]
        response = self._rest.request(
            method,
            self._config.host + path,
            headers=headers,
            body=body,
            _request_timeout=TIMEOUT_SECONDS,
        )
        data = response.read()
        if response.status >= 400:
            error = ERRORS.get(response.status, ApiError)
            raise error(f"{method} {path}: {response.status} {_message(data)}")
        return data


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


def _message(data: bytes) -> str:
    try:
        return str(json.loads(data).get("message", ""))
    except ValueError:
        return data[:200].decode(errors="replace")
