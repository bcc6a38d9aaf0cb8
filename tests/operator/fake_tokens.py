"""ServiceAccount tokens the fake issued (TokenRequest), and TokenReview of them, shaped as the
real API server's: a refusal is `status: {user: {}, error}` with no `authenticated` key;
`audiences` appears only on success; a pod-bound token names its pod in `user.extra`; the
review echoes `spec.token`; a missing token is a 400."""

from __future__ import annotations

import json
import uuid
from dataclasses import dataclass, field

from hopscope_operator.cluster import Object

from .fake_status import BadRequest

API_AUDIENCE = "https://kubernetes.default.svc.cluster.local"


@dataclass(frozen=True)
class Issued:
    namespace: str
    account: str
    account_uid: str
    audiences: tuple[str, ...]
    pod: tuple[str, str] | None = None  # (name, uid) of the pod it is bound to
    jti: str = field(default_factory=lambda: str(uuid.uuid4()))

    @property
    def user(self) -> str:
        return f"system:serviceaccount:{self.namespace}:{self.account}"

    @property
    def groups(self) -> list[str]:
        return ["system:serviceaccounts", f"system:serviceaccounts:{self.namespace}"]


def _go_list(values: list[str] | tuple[str, ...]) -> str:
    """Go's %q of a []string: ["a" "b"]."""
    return "[" + " ".join(json.dumps(v) for v in values) + "]"


def review(body: Object, issued: dict[str, Issued]) -> Object:
    spec = body.get("spec") or {}
    token = spec.get("token")
    if not token:
        raise BadRequest("token is required for TokenReview in authentication")
    wanted = list(spec.get("audiences") or [API_AUDIENCE])
    found = issued.get(token)
    status: Object
    if found is None:
        status = {"user": {}, "error": "invalid bearer token"}
    elif not set(wanted) & set(found.audiences):
        status = {
            "user": {},
            "error": f"[invalid bearer token, token audiences {_go_list(found.audiences)} is "
            f"invalid for the target audiences {_go_list(wanted)}]",
        }
    else:
        extra = {"authentication.kubernetes.io/credential-id": [f"JTI={found.jti}"]}
        if found.pod:
            extra["authentication.kubernetes.io/pod-name"] = [found.pod[0]]
            extra["authentication.kubernetes.io/pod-uid"] = [found.pod[1]]
        user = {
            "username": found.user,
            "uid": found.account_uid,
            "groups": [*found.groups, "system:authenticated"],
            "extra": extra,
        }
        audiences = [a for a in wanted if a in found.audiences]
        status = {"authenticated": True, "user": user, "audiences": audiences}
    echoed = {"token": token} | ({"audiences": spec["audiences"]} if "audiences" in spec else {})
    return {
        "kind": "TokenReview",
        "apiVersion": "authentication.k8s.io/v1",
        "metadata": {"creationTimestamp": None},
        "spec": echoed,
        "status": status,
    }
