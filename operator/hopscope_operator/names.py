"""The names every room of the operator shares, each defined once: version and images, the
operator's and the probe pods' names and namespace, ports, labels, annotations, and the
environment variables the chart sets and the operator reads, with their defaults.

The bottom of the package: it imports nothing of the project (tests/unit/test_layers.py holds
it to that), so the controller, the install generators and the kubectl plugin all import their
plain names from here and never from one another.
"""

from __future__ import annotations

VERSION = "0.1.0"
OPERATOR_IMAGE = f"ghcr.io/hopscope/operator:{VERSION}"
PROBE_IMAGE = f"ghcr.io/hopscope/probe:{VERSION}"

# The operator: its Deployment, ServiceAccount and roles are named NAME, in NAMESPACE, where
# its probe pods run too (PodSecurity: privileged).
NAME = "hopscope-operator"
NAMESPACE = "hopscope-system"
METRICS_PORT = 9090
# The coordination.k8s.io Lease in NAMESPACE that elects which replica ticks.
LEASE = NAME
HEALTH_PORT = 8080
# What a workload's ServiceAccount needs to check the operator's token (bound by the user, per
# the sidecar snippet): TokenReviews, and not system:auth-delegator's SubjectAccessReviews too.
AGENT_TOKEN_REVIEWER = "hopscope-agent-tokenreview"
# Where the cluster DNS runs (kube-dns / CoreDNS), and the domain its names end in.
DNS_NAMESPACE = "kube-system"
CLUSTER_DOMAIN = "cluster.local"

# Probe pods: their name prefix (also their app label) and ServiceAccount.
NAME_PREFIX = "hopscope-probe"
SERVICE_ACCOUNT = "hopscope-probe"
LABEL_APP = "app.kubernetes.io/name"
LABEL_NODE = "hopscope.dev/node"
LABEL_TICK = "hopscope.dev/tick"
# JSON: batch id -> the check's uid. A pod has one controller only; the uid tells a check from
# one deleted and created again under its name, which this pod's result does not describe.
ANNOTATION_CHECKS = "hopscope.dev/checks"
ANNOTATION_NODE = "hopscope.dev/node"
ANNOTATION_SOURCES = "hopscope.dev/sources"  # per batch id, the source it was resolved to

# The operator's environment (the chart's Deployment sets it, handlers.Config reads it), and
# the defaults both the chart values and the operator use.
ENV_WATCH_NAMESPACES = "HOPSCOPE_WATCH_NAMESPACES"
ENV_PROBE_NAMESPACE = "HOPSCOPE_PROBE_NAMESPACE"
ENV_PROBE_IMAGE = "HOPSCOPE_PROBE_IMAGE"
ENV_PROBE_IMAGE_PULL_POLICY = "HOPSCOPE_PROBE_IMAGE_PULL_POLICY"
ENV_PROBE_POD = "HOPSCOPE_PROBE_POD"
ENV_MAX_PROBE_PODS = "HOPSCOPE_MAX_PROBE_PODS"
ENV_MAX_PROBE_PODS_PER_NODE = "HOPSCOPE_MAX_PROBE_PODS_PER_NODE"
ENV_MAX_CHECKS_PER_POD = "HOPSCOPE_MAX_CHECKS_PER_POD"
ENV_CHECK_BUDGET_SECONDS = "HOPSCOPE_CHECK_BUDGET_SECONDS"
ENV_TICK_SECONDS = "HOPSCOPE_TICK_SECONDS"
ENV_METRICS_PORT = "HOPSCOPE_METRICS_PORT"
ENV_HEALTH_PORT = "HOPSCOPE_HEALTH_PORT"
# The opt-in per-check series of /metrics (controller/metrics.py MetricsOptions): "true" adds them.
ENV_METRICS_PER_CHECK_HISTOGRAMS = "HOPSCOPE_METRICS_PER_CHECK_HISTOGRAMS"
ENV_METRICS_PER_HOP_SERIES = "HOPSCOPE_METRICS_PER_HOP_SERIES"
ENV_METRICS_PER_CHECK_COUNTERS = "HOPSCOPE_METRICS_PER_CHECK_COUNTERS"
# What a namespaced check may reach beyond its own namespace (controller/tenancy.py): "true"
# widens, anything else (the default "false") keeps a check to its namespace's own pods.
ENV_ALLOW_NODE_SOURCES = "HOPSCOPE_ALLOW_NODE_SOURCES"
ENV_ALLOW_OTHER_NAMESPACE_SOURCES = "HOPSCOPE_ALLOW_OTHER_NAMESPACE_SOURCES"
ENV_ALLOW_UNSAFE_HTTP_METHODS = "HOPSCOPE_ALLOW_UNSAFE_HTTP_METHODS"
# The Ready=False reasons of a check the tenancy rule refuses: no retry will run it (the
# kubectl plugin stops waiting on them).
NOT_PERMITTED_REASONS = ("SourceNotPermitted", "MethodNotPermitted")
DEFAULT_MAX_PROBE_PODS = 100  # probe pods in flight across the cluster
DEFAULT_MAX_PROBE_PODS_PER_NODE = 1  # probe pods in flight on one node
DEFAULT_MAX_CHECKS_PER_POD = 50  # keeps HOPSCOPE_BATCH and one pod's run time bounded
# How long one check may run in a probe pod: it is killed past it (its result says so), so one
# check of 100 probes x 60 s cannot hold its node's probe slot, and its neighbours, for hours.
DEFAULT_CHECK_BUDGET_SECONDS = 120
DEFAULT_TICK_SECONDS = 5  # how often the tick runs
