"""What a namespaced ConnectivityCheck may ask of the privileged probe, checked before it runs.

Whoever may create a check in a namespace may probe from that namespace's own pods and
gateways: no more than `pods/exec` there would give. A node source (the host's network, the
control plane's localhost) and a pod or workload of another namespace reach further, and so do
HTTP methods that change things (a POST to a pod's localhost admin port); they need the
operator to be configured for it (the chart's `tenancy.*` values). The chart's
ValidatingAdmissionPolicy refuses the same specs at `kubectl apply`; this is the check for
clusters without it (older than 1.30, or the policy switched off) and for checks stored before
it.
"""

from __future__ import annotations

from dataclasses import dataclass

from hopscope_operator.api import ClusterConnectivityCheck, ConnectivityCheck
from hopscope_operator.controller.resolve import ResolveError

# RFC 9110's safe methods: a probe with one of them reads, it does not change the target.
SAFE_HTTP_METHODS = ("GET", "HEAD", "OPTIONS")
# Headers that many frameworks (Rails, Express, Spring, ASP.NET …) honour in place of the
# method: a GET carrying `X-HTTP-Method-Override: DELETE` is a DELETE to them.
METHOD_OVERRIDE_HEADERS = ("x-http-method-override", "x-http-method", "x-method-override")


class SourceNotPermitted(ResolveError):
    """A source beyond the check's own namespace, which the operator is not configured for."""


class MethodNotPermitted(ResolveError):
    """An HTTP method that is not safe, which the operator is not configured for."""


@dataclass(frozen=True)
class Tenancy:
    """How far a namespaced check reaches beyond its own namespace's pods and safe methods."""

    allow_node_sources: bool = False
    allow_other_namespace_sources: bool = False
    allow_unsafe_http_methods: bool = False

    def permit(self, check: ConnectivityCheck) -> None:
        """Raise SourceNotPermitted / MethodNotPermitted when the check asks for more."""
        if isinstance(check, ClusterConnectivityCheck):
            # The cluster-wide power itself: whoever may create one (the chart's
            # hopscope-operator-cluster-checks-admin ClusterRole) may probe from anywhere.
            return
        namespace = check.namespace
        source = check.spec.source
        if source.node is not None and not self.allow_node_sources:
            raise SourceNotPermitted(
                f"source.node {source.node.name}: a ConnectivityCheck may not probe from a node"
                " (the host's network): a ClusterConnectivityCheck may, or the operator allows"
                " it with the chart's tenancy.allowNodeSources"
            )
        # A gateway's sidecar runs in its workload's namespace: a workload of the check's own
        # namespace is that namespace's own, like its pods. A podSelector has no namespace.
        for field, ref in (("pod", source.pod), ("workload", source.workload)):
            other = ref.namespace if ref is not None else None
            if other and other != namespace and not self.allow_other_namespace_sources:
                raise SourceNotPermitted(
                    f"source.{field}.namespace {other}: a ConnectivityCheck in {namespace} may"
                    f" probe only from its own namespace's pods and workloads: a"
                    " ClusterConnectivityCheck may probe from any, or the operator allows other"
                    " namespaces with the chart's tenancy.allowOtherNamespaceSources"
                )
        method = check.spec.http.method if check.spec.http else "GET"
        if method not in SAFE_HTTP_METHODS and not self.allow_unsafe_http_methods:
            raise MethodNotPermitted(
                f"http.method {method}: a ConnectivityCheck may use only"
                f" {', '.join(SAFE_HTTP_METHODS)}; the operator allows other methods only with"
                " the chart's tenancy.allowUnsafeHttpMethods"
            )
        for index, header in enumerate(check.spec.http.headers if check.spec.http else []):
            overridden = header.value.strip().upper()
            if header.name.lower() not in METHOD_OVERRIDE_HEADERS or self.allow_unsafe_http_methods:
                continue
            if overridden not in SAFE_HTTP_METHODS:
                raise MethodNotPermitted(
                    f"http.headers[{index}] {header.name}: {header.value!r} overrides the method"
                    f" on many servers; a ConnectivityCheck may use only"
                    f" {', '.join(SAFE_HTTP_METHODS)}; the operator allows other methods only"
                    " with the chart's tenancy.allowUnsafeHttpMethods"
                )
