"""The chart's ValidatingAdmissionPolicy: the tenancy rule (`controller/tenancy.py`) refused at
`kubectl apply`, not only by the operator once the check is stored.

Each validation's CEL starts with its `tenancy.*` value, which Helm writes in as `true` or
`false`, so a widened install lets the spec through here as the operator does. Only creates and
spec changes are judged: a check stored before the policy keeps taking label and annotation
edits (the operator says it cannot run), and its status is the status subresource's, not
matched at all.
"""

from __future__ import annotations

from hopscope_operator.api import GROUP, ConnectivityCheck
from hopscope_operator.controller.tenancy import METHOD_OVERRIDE_HEADERS, SAFE_HTTP_METHODS
from hopscope_operator.install.values import Manifest, meta, values_ref
from hopscope_operator.names import NAME

POLICY = f"{NAME}-tenancy"
API_VERSION = "admissionregistration.k8s.io/v1"
OLDEST_KUBERNETES = "1.30.0"  # admissionregistration.k8s.io/v1 ValidatingAdmissionPolicy
# The template is rendered only where the API server has the kind, and where the value is on.
CONDITION = (
    f"and {values_ref('tenancy.admissionPolicy')}"
    f' (semverCompare ">={OLDEST_KUBERNETES}-0" .Capabilities.KubeVersion.Version)'
)


def _widened(value: str) -> str:
    return f"{{{{ {values_ref(f'tenancy.{value}')} }}}}"


def _same_namespace(field: str) -> str:
    ref = f"object.spec.source.{field}"
    return f"!has({ref}) || !has({ref}.namespace) || {ref}.namespace == request.namespace"


def validations() -> list[Manifest]:
    """The policy's validations, each as the operator's refusal says it."""
    methods = ", ".join(f"'{method}'" for method in SAFE_HTTP_METHODS)
    safe = "|".join(SAFE_HTTP_METHODS)
    overrides = "|".join(METHOD_OVERRIDE_HEADERS)
    other = _widened("allowOtherNamespaceSources")
    return [
        {
            "expression": f"{_widened('allowNodeSources')} || !has(object.spec.source.node)",
            "message": "a ConnectivityCheck may not probe from a node (source.node): a"
            " ClusterConnectivityCheck may, or the chart's tenancy.allowNodeSources allows it",
            "reason": "Forbidden",
        },
        *(
            {
                "expression": f"{other} || {_same_namespace(field)}",
                "message": f"a ConnectivityCheck may probe only from its own namespace"
                f" (source.{field}.namespace): a ClusterConnectivityCheck may probe from any,"
                " or the chart's tenancy.allowOtherNamespaceSources allows others",
                "reason": "Forbidden",
            }
            for field in ("pod", "workload")
        ),
        {
            "expression": f"{_widened('allowUnsafeHttpMethods')} || !has(object.spec.http)"
            f" || !has(object.spec.http.method) || object.spec.http.method in [{methods}]",
            "message": "a ConnectivityCheck may use only the HTTP methods"
            f" {', '.join(SAFE_HTTP_METHODS)} (http.method): the chart's"
            " tenancy.allowUnsafeHttpMethods allows others",
            "reason": "Forbidden",
        },
        {
            "expression": f"{_widened('allowUnsafeHttpMethods')} || !has(object.spec.http)"
            " || !has(object.spec.http.headers) || object.spec.http.headers.all(h,"
            f" !h.name.matches('(?i)^({overrides})$')"
            f" || h.value.matches('^[ \\t]*(?i:{safe})[ \\t]*$'))",
            "message": "a ConnectivityCheck may not override the HTTP method with a header"
            f" ({', '.join(METHOD_OVERRIDE_HEADERS)}) to one other than"
            f" {', '.join(SAFE_HTTP_METHODS)} (http.headers): the chart's"
            " tenancy.allowUnsafeHttpMethods allows it",
            "reason": "Forbidden",
        },
    ]


def policy() -> Manifest:
    return {
        "apiVersion": API_VERSION,
        "kind": "ValidatingAdmissionPolicy",
        "metadata": meta(POLICY, namespace=None),
        "spec": {
            "failurePolicy": "Fail",
            "matchConstraints": {
                "resourceRules": [
                    {
                        "apiGroups": [GROUP],
                        "apiVersions": ["*"],
                        "operations": ["CREATE", "UPDATE"],
                        "resources": [ConnectivityCheck.plural],
                    }
                ]
            },
            "matchConditions": [
                {
                    "name": "creates-or-changes-the-spec",
                    "expression": "request.operation != 'UPDATE' || object.spec != oldObject.spec",
                }
            ],
            "validations": validations(),
        },
    }


def binding() -> Manifest:
    return {
        "apiVersion": API_VERSION,
        "kind": "ValidatingAdmissionPolicyBinding",
        "metadata": meta(POLICY, namespace=None),
        "spec": {"policyName": POLICY, "validationActions": ["Deny"]},
    }
