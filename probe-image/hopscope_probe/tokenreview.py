"""Kubernetes-native authentication for `hopscope agent`: a caller's bearer token is a projected
ServiceAccount token, checked with a TokenReview against the API server.

The agent authenticates itself to the API with its own in-cluster service-account token (read
again before every review, since kubelet rotates it) and trusts the cluster CA. A caller is
accepted only when the API says the token is authenticated, the user is one of the allowed
callers (`system:serviceaccount:<namespace>:<name>`) and the API lists the agent's audience
among those the token is valid for. An answer without `audiences` is a refusal: Kubernetes
documents that it means the API server's own audience, as from an authenticator that ignores
the requested ones.

Positive answers are cached per SHA-256 of the token for `ttl` seconds (never past the token's
own `exp`), refusals for a few seconds only, API errors not at all: an unreachable API, an HTTP
error or a malformed answer refuses the caller (fail closed). Tokens are never logged. The
agent's service account needs `create` on `tokenreviews` (the `system:auth-delegator` role).

stdlib only: the probe image carries no Kubernetes client.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import http.client
import json
import logging
import math
import os
import ssl
import threading
import time
import urllib.error
import urllib.request
from collections import OrderedDict
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Any

log = logging.getLogger("hopscope.agent.tokenreview")

SERVICEACCOUNT_DIR = "/var/run/secrets/kubernetes.io/serviceaccount"
DEFAULT_TOKEN_PATH = f"{SERVICEACCOUNT_DIR}/token"
DEFAULT_CA_PATH = f"{SERVICEACCOUNT_DIR}/ca.crt"
DEFAULT_AUDIENCE = "hopscope-agent"
REVIEW_PATH = "/apis/authentication.k8s.io/v1/tokenreviews"
DEFAULT_TTL = 60.0  # seconds a positive review is reused
FAILURE_TTL = 3.0  # seconds a refusal is reused (a burst with a bad token costs one call)
MAX_ENTRIES = 1024  # cached reviews; the least recently used goes first
MAX_RESPONSE_BYTES = 1024 * 1024


class TokenReviewError(Exception):
    """The review could not be made or understood (the caller is refused either way)."""


def in_cluster_api_url(environ: Mapping[str, str] | None = None) -> str | None:
    """`https://HOST:PORT` from KUBERNETES_SERVICE_HOST/_PORT, None outside a cluster."""
    env = os.environ if environ is None else environ
    host, port = env.get("KUBERNETES_SERVICE_HOST"), env.get("KUBERNETES_SERVICE_PORT")
    if not host or not port:
        return None
    shown = f"[{host}]" if ":" in host else host
    return f"https://{shown}:{port}"


def token_expiry(token: str) -> float | None:
    """The `exp` claim (Unix time) of a JWT, unverified, or None: used only to cap the cache."""
    parts = token.split(".")
    if len(parts) != 3:
        return None
    try:
        payload = parts[1] + "=" * (-len(parts[1]) % 4)
        exp = json.loads(base64.urlsafe_b64decode(payload)).get("exp")
        return float(exp) if isinstance(exp, int | float) and math.isfinite(exp) else None
    # OverflowError: an `exp` of 400 digits; RecursionError: a payload nested 10,000 deep.
    except (ValueError, binascii.Error, AttributeError, OverflowError, RecursionError):
        return None


@dataclass
class _Entry:
    allowed: bool
    until: float  # monotonic


def _key(bearer: str) -> bytes:
    """What the cache knows a token by: never the token itself."""
    return hashlib.sha256(bearer.encode(errors="surrogateescape")).digest()


class _Flight:
    """One review in progress; concurrent requests with the same token wait for it."""

    def __init__(self) -> None:
        self.done = threading.Event()
        self.allowed = False


class TokenReviewer:
    """Whether a bearer token belongs to an allowed caller, by TokenReview, with a small cache."""

    def __init__(
        self,
        api_url: str,
        token_path: str = DEFAULT_TOKEN_PATH,
        ca_path: str | None = DEFAULT_CA_PATH,
        audience: str = DEFAULT_AUDIENCE,
        allowed: str | Iterable[str] = (),
        ttl: float = DEFAULT_TTL,
        *,
        failure_ttl: float = FAILURE_TTL,
        timeout: float = 5.0,
        max_entries: int = MAX_ENTRIES,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.url = api_url.rstrip("/") + REVIEW_PATH
        self.https = api_url.lower().startswith("https://")
        if not self.https and not api_url.lower().startswith("http://"):
            raise TokenReviewError(f"API URL {api_url!r}: expected https://HOST:PORT")
        self.token_path = token_path
        self.ca_path = ca_path
        self.audience = audience
        self.allowed = frozenset([allowed] if isinstance(allowed, str) else allowed)
        if not self.allowed:
            raise TokenReviewError("no allowed caller")
        self.ttl = ttl
        self.failure_ttl = min(failure_ttl, ttl)
        self.timeout = timeout
        self.max_entries = max_entries
        self.clock = clock
        self._lock = threading.Lock()
        self._cache: OrderedDict[bytes, _Entry] = OrderedDict()
        self._flights: dict[bytes, _Flight] = {}
        self._tls_lock = threading.Lock()
        self._tls_seen: tuple[int, ...] | None = None
        self._tls: ssl.SSLContext | None = None

    # ---- the agent's own credentials ------------------------------------------------------

    def own_token(self) -> str:
        try:
            with open(self.token_path, encoding="utf-8") as handle:
                token = handle.read().strip()
        except (OSError, UnicodeDecodeError) as exc:
            raise TokenReviewError(
                f"the agent's service-account token {self.token_path}: {exc}"
            ) from exc
        if not token:
            raise TokenReviewError(f"the agent's service-account token {self.token_path} is empty")
        return token

    def tls_context(self) -> ssl.SSLContext | None:
        """Trusting the cluster CA file, rebuilt when the file changes; None for plain http."""
        if not self.https:
            return None
        with self._tls_lock:
            try:
                if self.ca_path is None:
                    seen: tuple[int, ...] = ()
                else:
                    st = os.stat(self.ca_path)
                    seen = (st.st_dev, st.st_ino, st.st_size, st.st_mtime_ns)
                if self._tls is None or seen != self._tls_seen:
                    context = ssl.create_default_context(cafile=self.ca_path)
                    context.minimum_version = ssl.TLSVersion.TLSv1_2
                    self._tls, self._tls_seen = context, seen
            except (OSError, ssl.SSLError) as exc:
                if self._tls is None:
                    raise TokenReviewError(f"the cluster CA {self.ca_path}: {exc}") from exc
                log.warning("keeping the previous cluster CA: %s", exc)  # mid-rotation
            return self._tls

    def check_ready(self) -> None:
        """Raise TokenReviewError when no review could ever be made (checked at startup)."""
        self.own_token()
        self.tls_context()

    # ---- reviews ---------------------------------------------------------------------------

    def cached(self, bearer: str) -> bool | None:
        """The remembered verdict on `bearer`, None when only a review can tell."""
        if not bearer:
            return False
        with self._lock:
            return self._cached(_key(bearer))

    def _cached(self, key: bytes) -> bool | None:
        entry = self._cache.get(key)
        if entry is None:
            return None
        if self.clock() >= entry.until:
            del self._cache[key]
            return None
        self._cache.move_to_end(key)
        return entry.allowed

    def allows(self, bearer: str) -> bool:
        """True when `bearer` (the token, without "Bearer ") is an allowed caller's."""
        if not bearer:
            return False
        key = _key(bearer)
        with self._lock:
            verdict = self._cached(key)
            if verdict is not None:
                return verdict
            flight = self._flights.get(key)
            leader = flight is None
            if flight is None:
                flight = self._flights[key] = _Flight()
        if not leader:
            flight.done.wait(self.timeout + 1)
            return flight.allowed
        allowed, keep = False, 0.0
        try:
            allowed, keep = self._decide(bearer)
        finally:
            with self._lock:
                if keep > 0:
                    self._remember(key, _Entry(allowed, self.clock() + keep))
                self._flights.pop(key, None)
            flight.allowed = allowed
            flight.done.set()
        return allowed

    def _remember(self, key: bytes, entry: _Entry) -> None:
        self._cache[key] = entry
        self._cache.move_to_end(key)
        now = self.clock()
        for stale in [k for k, e in self._cache.items() if e.until <= now]:
            del self._cache[stale]
        while len(self._cache) > self.max_entries:
            self._cache.popitem(last=False)

    def _decide(self, bearer: str) -> tuple[bool, float]:
        """(allowed, seconds to remember it); an API error is remembered for no time at all."""
        try:
            status = self.review(bearer)
        except TokenReviewError as exc:
            log.warning("token review failed, caller refused: %s", exc)
            return False, 0.0
        except Exception as exc:  # fail closed on anything; the message might hold the token
            log.warning("token review failed, caller refused: %s", type(exc).__name__)
            return False, 0.0
        refusal = self.refusal(status)
        if refusal:
            log.info("caller refused: %s", refusal)
            return False, self.failure_ttl
        keep = self.ttl
        expiry = token_expiry(bearer)
        if expiry is not None:
            keep = min(keep, expiry - time.time())
        return True, max(keep, 0.0)

    def refusal(self, status: dict[str, Any]) -> str | None:
        """Why a TokenReview status does not admit the caller, or None."""
        if status.get("authenticated") is not True:
            error = status.get("error")
            detail = f": {str(error)[:200]}" if isinstance(error, str) and error else ""
            return f"not authenticated{detail}"
        user = status.get("user")
        username = user.get("username") if isinstance(user, dict) else None
        if not isinstance(username, str):  # an answer of the wrong shape: refused, not a crash
            return "the answer names no user"
        if username not in self.allowed:
            return f"authenticated as {username[:200]!r}, not an allowed caller"
        audiences = status.get("audiences")
        if not isinstance(audiences, list) or self.audience not in audiences:
            return f"the token is not for audience {self.audience!r}"
        return None

    def review(self, bearer: str) -> dict[str, Any]:
        """POST a TokenReview and return its `status`; TokenReviewError when that fails."""
        body = json.dumps(
            {
                "apiVersion": "authentication.k8s.io/v1",
                "kind": "TokenReview",
                "spec": {"token": bearer, "audiences": [self.audience]},
            }
        ).encode()
        request = urllib.request.Request(
            self.url,
            data=body,
            method="POST",
            headers={
                "Authorization": f"Bearer {self.own_token()}",
                "Content-Type": "application/json",
                "Accept": "application/json",
                "User-Agent": "hopscope-agent",
            },
        )
        try:
            with urllib.request.urlopen(
                request, timeout=self.timeout, context=self.tls_context()
            ) as response:
                raw = response.read(MAX_RESPONSE_BYTES + 1)
        except urllib.error.HTTPError as exc:
            exc.close()
            hint = ""
            if exc.code in (401, 403):
                hint = " (the agent's service account needs create on tokenreviews)"
            # Never the body: a TokenReview answer echoes the token it reviewed.
            raise TokenReviewError(f"{self.url}: HTTP {exc.code}{hint}") from None
        except (urllib.error.URLError, OSError, http.client.HTTPException) as exc:
            reason = getattr(exc, "reason", exc)
            raise TokenReviewError(f"{self.url}: {type(reason).__name__}: {reason}") from None
        if len(raw) > MAX_RESPONSE_BYTES:
            raise TokenReviewError(f"{self.url}: answer above {MAX_RESPONSE_BYTES} bytes")
        try:
            answer = json.loads(raw)
        except ValueError:
            raise TokenReviewError(f"{self.url}: the answer is not JSON") from None
        status = answer.get("status") if isinstance(answer, dict) else None
        if not isinstance(status, dict):
            raise TokenReviewError(f"{self.url}: the answer has no TokenReview status")
        return status
