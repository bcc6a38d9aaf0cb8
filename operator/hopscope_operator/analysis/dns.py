"""Rules on the cluster DNS: whether the source asks it, and whether it can answer.

Contract: `rules(input) -> Findings`, pure. Only when the source looks the destination up in
the cluster DNS (`queries_cluster_dns`, also read by the policy rules for the DNS flows):
a missing kube-dns Service is a warning that leaves the verdict unknown (a distribution may
name it otherwise); a kube-dns Service without a ready endpoint is an error at the source.
"""

from __future__ import annotations

from urllib.parse import urlsplit

from hopscope_operator.analysis.inputs import (
    DNS,
    NOTHING,
    AnalysisInput,
    Findings,
    evidence,
    ready_endpoints,
)
from hopscope_operator.names import DNS_NAMESPACE
from hopscope_probe.models import IssueType, Severity
from hopscope_probe.target import is_ip

DNS_SERVICE = "kube-dns"
DNS_PORT = 53


def needs_dns(inp: AnalysisInput) -> bool:
    kind = inp.spelling  # a Service's ClusterIP or a pod's IP needs no lookup
    if kind in ("fqdn", "service"):
        return True
    if kind == "uri":
        host = urlsplit(inp.spec.destination.uri or "").hostname or ""
        return not is_ip(host)
    return False


def queries_cluster_dns(inp: AnalysisInput) -> bool:
    """Whether the source looks the destination up in the cluster DNS. A pod does with
    dnsPolicy ClusterFirst (the default) off the host network (on it, that falls back to
    the node's resolver) or ClusterFirstWithHostNet; Default and None use other resolvers.
    A node source does: its probe pod is ClusterFirstWithHostNet (see controller/plan.py)."""
    if not needs_dns(inp):
        return False
    src = inp.source
    if src.kind == "node":
        return True
    pod = inp.pods.get((src.pod_namespace or "", src.pod_name or "")) or {}
    spec = pod.get("spec") or {}
    policy = spec.get("dnsPolicy") or "ClusterFirst"
    on_host = bool(spec.get("hostNetwork", src.host_network))
    return policy == "ClusterFirstWithHostNet" or (policy == "ClusterFirst" and not on_host)


def rules(inp: AnalysisInput) -> Findings:
    if not queries_cluster_dns(inp) or inp.unreadable(DNS):
        return NOTHING
    name = f"{DNS_NAMESPACE}/{DNS_SERVICE}"
    if inp.snapshot.dns_service is None:
        # Some distributions name the cluster DNS Service otherwise: not proof of a fault.
        found = inp.issue(
            IssueType.DNS_RESOLUTION,
            Severity.WARNING,
            "source",
            f"the cluster DNS Service {name} does not exist: the cluster DNS is not checked",
            "If the cluster DNS has a Service of another name, nothing to fix; else restore"
            " the cluster DNS add-on (CoreDNS) and its kube-dns Service.",
            evidence(service=name),
        )
        return Findings(found.issues, unknown=True)
    if ready_endpoints(inp.snapshot.dns_slices):
        return NOTHING
    return inp.issue(
        IssueType.DNS_RESOLUTION,
        Severity.ERROR,
        "source",
        f"the cluster DNS Service {name} has no ready endpoint: names cannot be resolved",
        f"Check the DNS pods: kubectl get pods -n {DNS_NAMESPACE} -l k8s-app=kube-dns"
        " (crash loop, pending, readiness probe).",
        evidence(service=name),
    )
