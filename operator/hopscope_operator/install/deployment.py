"""The operator's own objects in the chart: its ServiceAccounts, the Deployment (the values it
reads arrive as environment variables; its replicas elect a leader on a Lease), their
PodDisruptionBudget, the metrics Service and the NetworkPolicy in front of /metrics.
"""

from __future__ import annotations

from hopscope_operator.install.values import Manifest, integer, meta, value
from hopscope_operator.names import (
    ENV_ALLOW_NODE_SOURCES,
    ENV_ALLOW_OTHER_NAMESPACE_SOURCES,
    ENV_ALLOW_UNSAFE_HTTP_METHODS,
    ENV_CHECK_BUDGET_SECONDS,
    ENV_HEALTH_PORT,
    ENV_MAX_CHECKS_PER_POD,
    ENV_MAX_PROBE_PODS,
    ENV_MAX_PROBE_PODS_PER_NODE,
    ENV_METRICS_PER_CHECK_COUNTERS,
    ENV_METRICS_PER_CHECK_HISTOGRAMS,
    ENV_METRICS_PER_HOP_SERIES,
    ENV_METRICS_PORT,
    ENV_PROBE_IMAGE,
    ENV_PROBE_IMAGE_PULL_POLICY,
    ENV_PROBE_NAMESPACE,
    ENV_PROBE_POD,
    ENV_TICK_SECONDS,
    ENV_WATCH_NAMESPACES,
    HEALTH_PORT,
    LABEL_APP,
    METRICS_PORT,
    NAME,
    NAMESPACE,
    SERVICE_ACCOUNT,
)

# The operator's pods: the Deployment's selector, the Service's and the ServiceMonitor's.
SELECTOR = {LABEL_APP: "hopscope", "app.kubernetes.io/component": NAME}


def service_accounts() -> list[Manifest]:
    """The operator's account, and the probe pods' (which has no role)."""
    return [
        {"apiVersion": "v1", "kind": "ServiceAccount", "metadata": meta(NAME)},
        # The probe never calls the API: its account has no role and mounts no token.
        {
            "apiVersion": "v1",
            "kind": "ServiceAccount",
            "metadata": meta(SERVICE_ACCOUNT),
            "automountServiceAccountToken": False,
        },
    ]


def objects() -> list[Manifest]:
    """The operator's Deployment, its metrics Service and the NetworkPolicy in front of them."""
    deployment = {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": meta(NAME),
        "spec": {
            # Only the Lease's holder ticks (controller/leader.py): a rollout starts the new
            # pod first, and the old one hands the Lease over as it stops.
            "replicas": integer("replicas"),
            "strategy": {
                "type": "RollingUpdate",
                "rollingUpdate": {"maxUnavailable": 0, "maxSurge": 1},
            },
            "selector": {"matchLabels": SELECTOR},
            "template": {
                "metadata": {"labels": SELECTOR},
                "spec": {
                    "serviceAccountName": NAME,
                    # Replicas on different nodes where there are: one node's loss is a
                    # handover, not an outage.
                    "affinity": {
                        "podAntiAffinity": {
                            "preferredDuringSchedulingIgnoredDuringExecution": [
                                {
                                    "weight": 100,
                                    "podAffinityTerm": {
                                        "labelSelector": {"matchLabels": SELECTOR},
                                        "topologyKey": "kubernetes.io/hostname",
                                    },
                                }
                            ]
                        }
                    },
                    "securityContext": {
                        "runAsNonRoot": True,
                        "runAsUser": 65532,
                        "seccompProfile": {"type": "RuntimeDefault"},
                    },
                    "containers": [
                        {
                            "name": "operator",
                            "image": value("image.operator"),
                            "imagePullPolicy": value("image.pullPolicy"),
                            "env": [
                                {
                                    "name": ENV_WATCH_NAMESPACES,
                                    "value": value("watch.namespaces", joined=True),
                                },
                                {"name": ENV_PROBE_IMAGE, "value": value("image.probe")},
                                {
                                    "name": ENV_PROBE_IMAGE_PULL_POLICY,
                                    "value": value("image.probePullPolicy"),
                                },
                                {
                                    "name": ENV_MAX_PROBE_PODS,
                                    "value": value("probes.maxPods"),
                                },
                                {
                                    "name": ENV_MAX_PROBE_PODS_PER_NODE,
                                    "value": value("probes.maxPodsPerNode"),
                                },
                                {
                                    "name": ENV_MAX_CHECKS_PER_POD,
                                    "value": value("probes.maxChecksPerPod"),
                                },
                                {
                                    "name": ENV_CHECK_BUDGET_SECONDS,
                                    "value": value("probes.checkBudgetSeconds"),
                                },
                                {"name": ENV_TICK_SECONDS, "value": value("tickSeconds")},
                                {
                                    "name": ENV_ALLOW_NODE_SOURCES,
                                    "value": value("tenancy.allowNodeSources"),
                                },
                                {
                                    "name": ENV_ALLOW_OTHER_NAMESPACE_SOURCES,
                                    "value": value("tenancy.allowOtherNamespaceSources"),
                                },
                                {
                                    "name": ENV_ALLOW_UNSAFE_HTTP_METHODS,
                                    "value": value("tenancy.allowUnsafeHttpMethods"),
                                },
                                {
                                    "name": ENV_METRICS_PER_CHECK_HISTOGRAMS,
                                    "value": value("metrics.perCheckHistograms"),
                                },
                                {
                                    "name": ENV_METRICS_PER_HOP_SERIES,
                                    "value": value("metrics.perHopSeries"),
                                },
                                {
                                    "name": ENV_METRICS_PER_CHECK_COUNTERS,
                                    "value": value("metrics.perCheckCounters"),
                                },
                                {
                                    "name": ENV_PROBE_POD,
                                    "value": value("probes.pod", as_base64_json=True),
                                },
                                {"name": ENV_PROBE_NAMESPACE, "value": NAMESPACE},
                                {"name": ENV_METRICS_PORT, "value": str(METRICS_PORT)},
                                {"name": ENV_HEALTH_PORT, "value": str(HEALTH_PORT)},
                            ],
                            "ports": [
                                {"name": "metrics", "containerPort": METRICS_PORT},
                                {"name": "health", "containerPort": HEALTH_PORT},
                            ],
                            # kopf's own health endpoint: up once its watches run.
                            "livenessProbe": {
                                "httpGet": {"path": "/healthz", "port": "health"},
                                "periodSeconds": 20,
                                "failureThreshold": 3,
                            },
                            "readinessProbe": {
                                "httpGet": {"path": "/healthz", "port": "health"},
                                "periodSeconds": 10,
                            },
                            "resources": {
                                "requests": {"cpu": "100m", "memory": "128Mi"},
                                "limits": {"cpu": "1", "memory": "256Mi"},
                            },
                            "securityContext": {
                                "allowPrivilegeEscalation": False,
                                "readOnlyRootFilesystem": True,
                                "capabilities": {"drop": ["ALL"]},
                            },
                        }
                    ],
                },
            },
        },
    }
    service = {
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": meta(NAME),
        "spec": {
            "selector": SELECTOR,
            "ports": [{"name": "metrics", "port": METRICS_PORT, "targetPort": "metrics"}],
        },
    }
    # /metrics has no authentication of its own: only the monitoring namespace may reach it,
    # and the probe pods (hostNetwork aside) nothing at all. The kubelet's liveness and
    # readiness probes come from the node, which some CNIs' policy enforcers (kind's, 2024)
    # do not exempt: the health port (a yes or no, nothing more) is open to any source.
    metrics_policy = {
        "apiVersion": "networking.k8s.io/v1",
        "kind": "NetworkPolicy",
        "metadata": meta(f"{NAME}-metrics"),
        "spec": {
            "podSelector": {"matchLabels": SELECTOR},
            "policyTypes": ["Ingress"],
            "ingress": [
                {
                    "from": [
                        {
                            "namespaceSelector": {
                                "matchLabels": {
                                    "kubernetes.io/metadata.name": value(
                                        "monitoring.allowFromNamespace"
                                    )
                                }
                            }
                        }
                    ],
                    "ports": [{"port": METRICS_PORT, "protocol": "TCP"}],
                },
                {"ports": [{"port": HEALTH_PORT, "protocol": "TCP"}]},
            ],
        },
    }
    return [deployment, service, metrics_policy]


def disruption_budget() -> Manifest:
    """A drain or an upgrade of nodes evicts one replica at a time: a leader stays, or is
    taken over by the replica left standing."""
    return {
        "apiVersion": "policy/v1",
        "kind": "PodDisruptionBudget",
        "metadata": meta(NAME),
        "spec": {"minAvailable": 1, "selector": {"matchLabels": SELECTOR}},
    }
