"""Workload sources through the probe sidecar: pick the pod, say what to add, call the agent.

A check whose source is a Deployment, StatefulSet or DaemonSet (gateways, bastions) runs from
the `hopscope-agent` container inside one of that workload's pods (`hopscope agent`, see
`hopscope_probe.agent` for its HTTP contract). Pure except `call_agent`, which makes one HTTP
request and turns every way it can fail into an Unknown result with a `Probe` issue.
"""

from __future__ import annotations

import http.client
import json
import ssl
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any, Literal

import yaml
from pydantic import ValidationError

from hopscope_operator.names import AGENT_TOKEN_REVIEWER, NAMESPACE, PROBE_IMAGE
from hopscope_operator.names import NAME as OPERATOR_NAME
from hopscope_operator.plan import PullPolicy
from hopscope_operator.resolve import is_ready, pod_ips
from hopscope_probe.agent import DEFAULT_PORT, PROBE_PATH
from hopscope_probe.models import (
    ContextItem,
    IPVersion,
    Issue,
    IssueType,
    Origin,
    ProbeRequest,
    ProbeResult,
    Severity,
)
from hopscope_probe.target import unknown_result

Manifest = dict[str, Any]

CONTAINER = "hopscope-agent"  # also the name of its port
# Who may call the agent: the operator's ServiceAccount, proven by a TokenReview of the projected
# token it presents, so no Secret is shared between them.
OPERATOR_IDENTITY = f"system:serviceaccount:{NAMESPACE}:{OPERATOR_NAME}"
AGENT_PORT = DEFAULT_PORT
# Each agent pod accepts tokens for its own audience only, so a token the operator sent to one
# pod (or to a look-alike container a tenant runs) is refused by every other agent.
AUDIENCE_PREFIX = "hopscope-agent"
RESOURCES = {
    "requests": {"cpu": "10m", "memory": "64Mi"},
    "limits": {"cpu": "500m", "memory": "256Mi"},
}


# Where the patch that adds the sidecar is: the chart ships it (and examples/sidecar/), so a
# condition names it and the command instead of carrying 1.7 KB of YAML twice.
SIDECAR_PATCH_FILE = "files/sidecar-patch.yaml"


@dataclass(frozen=True)
class SidecarMissing:
    """No Ready pod of the workload can run the check: why, and what to do (one line each)."""

    reason: Literal["SidecarMissing", "SidecarNotReady"]
    message: str


# ---- which pod ------------------------------------------------------------------------------


def agent_container(pod: Manifest) -> Manifest | None:
    """The pod's `hopscope-agent` container: a regular one, or a native sidecar (an init
    container with `restartPolicy: Always`)."""
    spec = pod.get("spec", {})
    for container in spec.get("containers", []):
        if container.get("name") == CONTAINER:
            return container
    for container in spec.get("initContainers", []):
        if container.get("name") == CONTAINER and container.get("restartPolicy") == "Always":
            return container
    return None


def find_sidecar_pod(
    workload_pods: Iterable[Manifest],
    *,
    kind: str = "Deployment",
    namespace: str = "NAMESPACE",
    name: str = "NAME",
    image: str = PROBE_IMAGE,
) -> Manifest | SidecarMissing:
    """The first by name of the Ready pods that have the sidecar, else why none can be used."""
    with_agent = [pod for pod in workload_pods if agent_container(pod) is not None]
    ready = sorted((pod for pod in with_agent if is_ready(pod)), key=_name)
    if ready:
        return ready[0]
    workload = f"{kind} {namespace}/{name}"
    if with_agent:
        names = ", ".join(sorted(_name(pod) for pod in with_agent))
        return SidecarMissing(
            "SidecarNotReady",
            f"no pod of {workload} with the {CONTAINER} sidecar is Ready ({names}): see why"
            f" with `kubectl -n {namespace} describe pod` and `kubectl -n {namespace} logs POD"
            f" -c {CONTAINER}`",
        )
    return SidecarMissing(
        "SidecarMissing",
        f"no pod of {workload} has a {CONTAINER} container: add the probe sidecar ({image}) to"
        f" its pod template with `kubectl -n {namespace} patch {kind.lower()} {name}"
        f" --patch-file sidecar-patch.yaml`, the patch being the hopscope chart's"
        f" {SIDECAR_PATCH_FILE} (README: Gateways and bastions)",
    )


def agent_port(pod: Manifest) -> int:
    """The sidecar's port: its containerPort named `hopscope-agent`, else the default."""
    container = agent_container(pod) or {}
    for port in container.get("ports", []):
        if port.get("name") == CONTAINER and port.get("containerPort"):
            return int(port["containerPort"])
    return AGENT_PORT


def agent_address(pod: Manifest, preferred: IPVersion = IPVersion.IPV4) -> str | None:
    """The pod IP to call the sidecar on (the preferred family first)."""
    addresses = pod_ips(pod, preferred)
    return addresses[0] if addresses else None


def agent_audience(namespace: str, pod_name: str) -> str:
    """The audience the agent of this pod accepts (its args build it from the downward API)."""
    return f"{AUDIENCE_PREFIX}/{namespace}/{pod_name}"


def _name(pod: Manifest) -> str:
    return pod["metadata"]["name"]


# ---- what to add ----------------------------------------------------------------------------


def sidecar_container(
    image: str = PROBE_IMAGE,
    *,
    port: int = AGENT_PORT,
    restricted: bool = False,
) -> Manifest:
    """The sidecar container.

    Default: root with every capability dropped but NET_RAW (path tracing and ICMP need raw
    sockets; Kubernetes gives added capabilities to root only, and no_new_privs disables file
    capabilities). `restricted`: non-root with no capability, admitted under the Pod Security
    "restricted" level, for TCP, UDP, HTTP(S) and DNS checks without hop-by-hop paths.
    """
    security: Manifest = {
        "allowPrivilegeEscalation": False,
        "privileged": False,
        "readOnlyRootFilesystem": True,
        "seccompProfile": {"type": "RuntimeDefault"},
    }
    if restricted:
        security |= {
            "runAsNonRoot": True,
            "runAsUser": 65532,
            "runAsGroup": 65532,
            "capabilities": {"drop": ["ALL"]},
        }
    else:
        security |= {
            "runAsNonRoot": False,
            "runAsUser": 0,
            "capabilities": {"drop": ["ALL"], "add": ["NET_RAW"]},
        }
    return {
        "name": CONTAINER,
        "image": image,
        "imagePullPolicy": str(PullPolicy.IF_NOT_PRESENT),
        "args": [
            "agent",
            *("--auth", "kubernetes", "--allowed-caller", OPERATOR_IDENTITY),
            # Kubernetes expands $(VAR) in args from the container's env.
            *("--audience", agent_audience("$(POD_NAMESPACE)", "$(POD_NAME)")),
            *("--listen", f"0.0.0.0:{port}"),
        ],
        "env": [
            {"name": name, "valueFrom": {"fieldRef": {"fieldPath": f"metadata.{field}"}}}
            for name, field in (("POD_NAMESPACE", "namespace"), ("POD_NAME", "name"))
        ],
        "ports": [{"name": CONTAINER, "containerPort": port, "protocol": "TCP"}],
        "livenessProbe": {
            "httpGet": {"path": "/healthz", "port": CONTAINER},
            "periodSeconds": 20,
        },
        "resources": RESOURCES,
        "securityContext": security,
    }


def sidecar_patch(
    image: str = PROBE_IMAGE,
    *,
    port: int = AGENT_PORT,
    restricted: bool = False,
) -> Manifest:
    """A strategic-merge patch of a Deployment/StatefulSet/DaemonSet that adds the sidecar
    (containers merge by name, so the workload's own are kept)."""
    container = sidecar_container(image, port=port, restricted=restricted)
    return {"spec": {"template": {"spec": {"containers": [container]}}}}


def sidecar_snippet(
    image: str = PROBE_IMAGE,
    *,
    port: int = AGENT_PORT,
    restricted: bool = False,
) -> str:
    """The patch as YAML, with how to apply it and the one permission the agent needs."""
    header = (
        "# The workload's ServiceAccount checks the operator's token with a TokenReview:\n"
        "# kubectl create clusterrolebinding NAME-hopscope-agent"
        f" --clusterrole={AGENT_TOKEN_REVIEWER} --serviceaccount=NAMESPACE:SERVICEACCOUNT\n"
        "# kubectl patch deployment|statefulset|daemonset NAME --patch-file this.yaml\n"
    )
    patch = sidecar_patch(image, port=port, restricted=restricted)
    return header + yaml.safe_dump(patch, sort_keys=False)


# ---- calling the agent ----------------------------------------------------------------------


def default_timeout(request: ProbeRequest) -> float:
    """Long enough for the agent to run the request: its probes, then a margin for the path."""
    return 5.0 + request.timeout_seconds * (request.count + 3)


def call_agent(
    address: str,
    port: int,
    token: str,
    request: ProbeRequest,
    timeout: float | None = None,
    *,
    tls: ssl.SSLContext | None = None,
) -> ProbeResult:
    """Run `request` on the agent at address:port; every failure is an Unknown result whose
    `Probe` issue names the cause (context `cause`: refused, timeout, unauthorized, busy,
    badRequest, tls, unreachable, badResponse)."""
    where = f"[{address}]:{port}" if ":" in address else f"{address}:{port}"
    agent = f"the hopscope agent at {where}"
    timeout = default_timeout(request) if timeout is None else timeout
    connection_type = http.client.HTTPSConnection if tls else http.client.HTTPConnection
    kwargs: dict[str, Any] = {"context": tls} if tls else {}
    connection = connection_type(address, port, timeout=timeout, **kwargs)
    body = request.to_json().encode()
    try:
        connection.request(
            "POST",
            PROBE_PATH,
            body=body,
            headers={
                "Authorization": f"Bearer {token}",
                "Content-Type": "application/json",
                "Accept": "application/json",
            },
        )
        response = connection.getresponse()
        status, retry_after = response.status, response.getheader("Retry-After")
        payload = response.read()
    except ConnectionRefusedError:
        return _failed(
            request,
            "refused",
            where,
            f"{agent} refused the connection",
            f"Check that the {CONTAINER} sidecar is running and listens on port {port}.",
        )
    except TimeoutError:
        return _failed(
            request,
            "timeout",
            where,
            f"no answer from {agent} within {timeout:g}s",
            "A NetworkPolicy may drop the operator's traffic to the sidecar's port, or the"
            " agent is overloaded.",
        )
    except ssl.SSLError as exc:
        return _failed(
            request,
            "tls",
            where,
            f"TLS with {agent} failed: {exc}",
            "Check the sidecar's --tls-cert against the CA the operator trusts, and that"
            " both sides speak HTTPS.",
        )
    except OSError as exc:
        return _failed(
            request,
            "unreachable",
            where,
            f"cannot reach {agent}: {exc.strerror or exc}",
            "Check the pod IP and the network between the operator and the pod.",
        )
    except http.client.HTTPException as exc:
        return _failed(
            request,
            "badResponse",
            where,
            f"{agent} broke off the exchange: {type(exc).__name__}",
            "Check that the port is the sidecar's, and the sidecar's logs.",
        )
    finally:
        connection.close()
    if status == 200:
        try:
            return ProbeResult.model_validate_json(payload)
        except ValidationError as exc:
            return _failed(
                request,
                "badResponse",
                where,
                f"{agent} answered something that is not a ProbeResult: {exc.error_count()} errors",
                "The sidecar's image may be of another hopscope version than the operator.",
            )
    said = _error_text(payload)
    if status == 401:
        return _failed(
            request,
            "unauthorized",
            where,
            f"{agent} rejected the operator's token (401)",
            "The agent could not confirm the operator's token: check that its --allowed-caller"
            f" is {OPERATOR_IDENTITY} and its --audience is this pod's (re-apply the sidecar"
            " snippet of this version), and that the workload's ServiceAccount may create"
            f" TokenReviews ({AGENT_TOKEN_REVIEWER}); the agent's log says which.",
        )
    if status == 503:
        wait = f", retry after {retry_after}s" if retry_after else ""
        return _failed(
            request,
            "busy",
            where,
            f"{agent} is busy (503{wait}): {said}",
            "Too many checks run from this workload at once: space them out, or raise the"
            " agent's --max-concurrent.",
        )
    if status in (400, 413):
        return _failed(
            request,
            "badRequest",
            where,
            f"{agent} refused the request ({status}): {said}",
            "Keep the check within the agent's limits (its --max-count, --max-timeout,"
            " --max-hops flags), or raise them.",
        )
    return _failed(
        request,
        "badResponse",
        where,
        f"{agent} answered HTTP {status}: {said}",
        "Check that the port is the sidecar's, and the sidecar's logs.",
    )


def _error_text(payload: bytes) -> str:
    try:
        message = json.loads(payload).get("error")
    except (ValueError, AttributeError):
        message = None
    if isinstance(message, str):
        return message[:300]
    return payload[:120].decode(errors="replace").strip() or "no detail"


def _failed(request: ProbeRequest, cause: str, where: str, message: str, hint: str) -> ProbeResult:
    return unknown_result(
        request,
        Issue(
            type=IssueType.PROBE,
            severity=Severity.ERROR,
            origin=Origin.LOCAL,
            message=message,
            hint=hint,
            context=[ContextItem(key="cause", value=cause), ContextItem(key="agent", value=where)],
        ),
    )
