"""A check's own CA certificates (spec.http.caBundle): read from a ConfigMap key in the check's
namespace, checked here, and passed to the probe in the check's request.

Checked before any pod is planned, so a missing or unusable CA is that check's Ready=False
with the reason and what to fix, never a probe run that could only say "untrusted".
"""

from __future__ import annotations

import re
import ssl
from typing import Any, Protocol

from hopscope_operator.api import ConnectivityCheck
from hopscope_operator.cluster import ApiError
from hopscope_operator.controller.resolve import ResolveError
from hopscope_probe.models import MAX_CA_PEM

FIELD = "spec.http.caBundle.configMapKeyRef"


class ConfigMapView(Protocol):
    def config_map(self, namespace: str, name: str) -> dict[str, Any] | None:
        """The ConfigMap, None when absent."""
        ...


class CABundleNotFound(ResolveError):
    """The ConfigMap, or its key, is not there (yet): retried with backoff like a source."""


class CABundleUnreadable(ResolveError):
    """The API refused the read (RBAC, an outage): this check waits, the others run."""


class CABundleInvalid(ResolveError):
    """The key holds something that cannot be a CA bundle: binary, too big, or not PEM."""


def ca_pem(check: ConnectivityCheck, view: ConfigMapView) -> str | None:
    """The PEM the check's HTTPS trusts besides the system's CAs; None when it names none."""
    bundle = check.spec.http.ca_bundle if check.spec.http else None
    if bundle is None:
        return None
    ref = bundle.config_map_key_ref
    where = f"ConfigMap {check.namespace}/{ref.name}"
    try:
        config_map = view.config_map(check.namespace, ref.name)
    except ApiError as exc:
        raise CABundleUnreadable(
            f"cannot read {where} ({FIELD}): {exc}; the operator needs get on configmaps there"
        ) from exc
    if config_map is None:
        raise CABundleNotFound(f"{where} ({FIELD}) not found: create it in the check's namespace")
    text = (config_map.get("data") or {}).get(ref.key)
    if text is None:
        if ref.key in (config_map.get("binaryData") or {}):
            raise CABundleInvalid(f"key {ref.key} of {where} is binaryData: put the PEM in data")
        keys = ", ".join(sorted(config_map.get("data") or {})) or "none"
        raise CABundleNotFound(f"{where} has no key {ref.key} ({FIELD}.key); its keys: {keys}")
    size = len(text.encode())
    if size > MAX_CA_PEM:
        raise CABundleInvalid(
            f"key {ref.key} of {where} is {size} bytes; a check's CA bundle may be at most"
            f" {MAX_CA_PEM} (probe pods carry it in their environment): keep only the CAs"
            " this check needs"
        )
    problem = _pem_problem(text)
    if problem:
        raise CABundleInvalid(f"key {ref.key} of {where} is not PEM certificates: {problem}")
    return text


def _pem_problem(text: str) -> str | None:
    """Why OpenSSL would not load `text` as CA certificates (as the probe will), or None."""
    if not text.isascii():
        return "it is not ASCII"
    try:
        # No default CAs loaded: only the bundle is parsed, cheaply.
        ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT).load_verify_locations(cadata=text)
    except ssl.SSLError as exc:
        return re.sub(r" \(_ssl\.c:\d+\)$", "", str(exc.args[-1]))  # OpenSSL's words alone
    return None
