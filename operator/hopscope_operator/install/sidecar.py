"""What to add to a gateway or bastion workload for checks from it: the probe sidecar container,
the strategic-merge patch that adds it, and that patch as the YAML snippet the chart ships
(`files/sidecar-patch.yaml`) and `examples/sidecar/` carries. The controller's half (which pod,
calling the agent) is `hopscope_operator.controller.sidecar`.
"""

from __future__ import annotations

from typing import Any

import yaml

from hopscope_operator.controller.plan import PullPolicy
from hopscope_operator.controller.sidecar import (
    AGENT_PORT,
    CONTAINER,
    OPERATOR_IDENTITY,
    agent_audience,
)
from hopscope_operator.names import AGENT_TOKEN_REVIEWER, PROBE_IMAGE

Manifest = dict[str, Any]

RESOURCES = {
    "requests": {"cpu": "10m", "memory": "64Mi"},
    "limits": {"cpu": "500m", "memory": "256Mi"},
}


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
