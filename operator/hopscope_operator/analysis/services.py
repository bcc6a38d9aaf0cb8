"""Rules on the destination Service: its type, ports, selector, readiness and EndpointSlices.

Contract: `rules(input) -> Findings`, pure, for a Service destination only. Findings are at the
destination; `service_failed` says a Service finding already explains why it has no ready
endpoint (that error is then not repeated); a Service that does not exist (resolve would have
refused it: read between resolve and analysis) leaves the verdict unknown. Also here: which
Service port the probe goes through and which pod port that reaches, and the pods behind a
Service — what the policy and node rules read of a Service destination.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from hopscope_operator.analysis.inputs import (
    ENDPOINT_SLICES,
    NOTHING,
    PODS,
    SERVICE,
    AnalysisInput,
    Findings,
    Manifest,
    evidence,
    key,
    parsed,
    published,
    ready_endpoints,
    selected_pods,
    why_not_ready,
)
from hopscope_policy import L4Protocol
from hopscope_probe.models import ContextItem, IssueType, Severity

# ---- which ports and pods a Service sends to --------------------------------------------------


def requested_port(inp: AnalysisInput, svc: Mapping[str, Any]) -> int | None:
    """The Service port the probe asks for: on a ClusterIP its own port (the protocol's
    default when the check names none); on a headless Service only a port the check names,
    else the probe goes to the pods on its own port (resolve's rule). A Service spelled
    otherwise (a DNS name, a URI) is asked on the port the probe connects to."""
    if svc.get("clusterIP") == "None" and inp.spelling == "service":
        return inp.spec.destination.port
    return inp.port


def service_port(inp: AnalysisInput, svc: Mapping[str, Any]) -> Mapping[str, Any] | None:
    """The Service port the probe's connection goes through, else None."""
    headless = svc.get("clusterIP") == "None"
    requested = requested_port(inp, svc)
    for port in svc.get("ports") or []:
        if port.get("protocol", "TCP") != inp.l4:
            continue
        if requested == port.get("port") or (headless and requested == port.get("targetPort")):
            return port
    return None


def pod_port(port: Mapping[str, Any], pod: Manifest) -> int | None:
    """The port a Service port sends to on this pod (a named targetPort looked up)."""
    target = port.get("targetPort", port.get("port"))
    if isinstance(target, int):
        return target
    found = parsed(pod)
    protocol = L4Protocol(port.get("protocol", "TCP"))
    return found.named_port(str(target), protocol) if found else None


def endpoint_pods(inp: AnalysisInput, svc: Manifest, slices: Sequence[Manifest]) -> list[Manifest]:
    """The pods behind a Service: its ready endpoints, else the selected pods it publishes."""
    keys = sorted({pod for _, pod in ready_endpoints(slices) if pod is not None})
    pods = [inp.pods[k] for k in keys if k in inp.pods]
    return pods or [p for p in selected_pods(svc, inp.pods.values()) if published(svc, p)]


def service_ref(inp: AnalysisInput) -> str:
    named = inp.service_key
    assert named is not None
    return "/".join(named)


# ---- the rules ----------------------------------------------------------------------------------


def rules(inp: AnalysisInput) -> Findings:
    """The Service destination's findings, in order: ExternalName (and nothing else), the port
    and protocol, the selector and readiness, missing ready endpoints, the targetPort."""
    if inp.target_kind != "service" or inp.unreadable(SERVICE):
        return NOTHING
    svc = inp.snapshot.service
    described = f"service {service_ref(inp)}"
    if svc is None:
        return Findings(unknown=True)
    spec = svc.get("spec") or {}
    if spec.get("type") == "ExternalName":
        return external_name(inp, spec, described)
    headless = spec.get("clusterIP") == "None"
    extra = evidence(headless="clusterIP None: clients reach the pods directly")
    if not headless:
        extra = []
    found = port_protocol(inp, spec, described)
    # Pods that could not be read are not missing: the warning for them stands instead.
    selected: list[Manifest] = []
    if not inp.unreadable(PODS):
        selection_found, selected = selection(inp, svc, described, extra)
        found += selection_found
    found += no_ready_endpoint(inp, svc, described, extra, found.service_failed)
    return found + target_port(inp, spec, described, selected)


def external_name(inp: AnalysisInput, spec: Mapping[str, Any], described: str) -> Findings:
    external = spec.get("externalName", "")
    return inp.issue(
        IssueType.SERVICE_ENDPOINTS,
        Severity.WARNING,
        "destination",
        f"{described} is an ExternalName for {external}: it has no ClusterIP and no"
        f" endpoints, so the probe connects to {external} itself",
        f"Nothing in the Service to fix: DNS for {external} and the host it names decide"
        " whether this connects.",
        evidence(externalName=external),
    )


def no_ready_endpoint(
    inp: AnalysisInput, svc: Manifest, described: str, extra: list[ContextItem], explained: bool
) -> Findings:
    """No ready endpoint in the slices, unless an earlier Service finding explains it."""
    if inp.unreadable(ENDPOINT_SLICES) or explained or ready_endpoints(inp.snapshot.service_slices):
        return NOTHING
    found = inp.issue(
        IssueType.SERVICE_ENDPOINTS,
        Severity.ERROR,
        "destination",
        f"{described} has no ready endpoint in its EndpointSlices",
        "Check kubectl get endpointslices -l kubernetes.io/service-name="
        f"{key(svc)[1]} -n {key(svc)[0]}: without a selector the slices are yours"
        " to write; with one, the endpoint controller fills them with Ready pods.",
        extra,
    )
    return Findings(found.issues, service_failed=True)


def selection(
    inp: AnalysisInput, svc: Manifest, described: str, extra: list[ContextItem]
) -> tuple[Findings, list[Manifest]]:
    """The pods the Service selects, and the selector or readiness problem they show."""
    spec = svc.get("spec") or {}
    selector = spec.get("selector") or {}
    selected = selected_pods(svc, inp.pods.values())
    shown = ",".join(f"{k}={v}" for k, v in sorted(selector.items()))
    context = evidence(selector=shown)
    if selector and not selected:
        found = inp.issue(
            IssueType.SERVICE_ENDPOINTS,
            Severity.ERROR,
            "destination",
            f"{described} selects no pod: no pod in {key(svc)[0]} has labels {shown}",
            "Fix the Service's selector or the pods' labels so they match"
            f" (kubectl get pods -n {key(svc)[0]} -l {shown}).",
            [*context, *extra],
        )
        return Findings(found.issues, service_failed=True), selected
    if selected:
        return readiness(inp, svc, selected, described, context, extra), selected
    return NOTHING, selected


def readiness(
    inp: AnalysisInput,
    svc: Manifest,
    selected: list[Manifest],
    described: str,
    selector: list[ContextItem],
    extra: list[ContextItem],
) -> Findings:
    not_ready = [p for p in selected if not published(svc, p)]
    names = ", ".join(key(p)[1] + f" ({why_not_ready(p)})" for p in not_ready[:5])
    if len(not_ready) == len(selected):
        found = inp.issue(
            IssueType.SERVICE_ENDPOINTS,
            Severity.ERROR,
            "destination",
            f"none of the {len(selected)} pods {described} selects is Ready: {names}",
            "Find why the pods are not Ready (kubectl describe pod: readiness probe,"
            " crash loop, pending scheduling); a Service sends traffic to Ready pods only.",
            [*selector, *extra],
        )
        return Findings(found.issues, service_failed=True)
    if not_ready:
        return inp.issue(
            IssueType.SERVICE_ENDPOINTS,
            Severity.WARNING,
            "destination",
            f"{len(not_ready)} of the {len(selected)} pods {described} selects are not"
            f" Ready: {names}",
            "The Service still has Ready pods; find why these are not (kubectl describe"
            " pod) before they are needed.",
            selector,
        )
    return NOTHING


def port_protocol(inp: AnalysisInput, spec: Mapping[str, Any], described: str) -> Findings:
    requested = requested_port(inp, spec)
    if inp.l4 is None or requested is None or service_port(inp, spec) is not None:
        return NOTHING
    others = [
        p
        for p in spec.get("ports") or []
        if p.get("port") == requested and p.get("protocol", "TCP") != inp.l4
    ]
    if others:
        theirs = others[0].get("protocol", "TCP")
        found = inp.issue(
            IssueType.SERVICE_ENDPOINTS,
            Severity.ERROR,
            "destination",
            f"{described} exposes port {requested} as {theirs}, but the check uses"
            f" {inp.spec.protocol} ({inp.l4})",
            f"Use protocol {theirs} in the check, or add a {inp.l4} port {requested} to"
            " the Service (a port and protocol pair is its own Service port).",
            evidence(port=requested, serviceProtocol=theirs, checkProtocol=inp.l4),
        )
        return Findings(found.issues, service_failed=True)
    if inp.spec.destination.port is None or inp.spelling != "service":
        # Resolve refuses a port a `service:` check names and the Service lacks, not a
        # default one, nor one asked of the Service by another spelling.
        why = (
            "the port the probe connects to"
            if inp.destination.port is not None
            else f"the {inp.spec.protocol} default the probe uses as the check names no port"
        )
        found = inp.issue(
            IssueType.SERVICE_ENDPOINTS,
            Severity.ERROR,
            "destination",
            f"{described} has no {inp.l4} port {requested}, {why}",
            "Name one of the Service's ports in the check's destination, or add a"
            f" {inp.l4} port {requested} to the Service.",
            evidence(port=requested, checkProtocol=inp.l4),
        )
        return Findings(found.issues, service_failed=True)
    return NOTHING


def target_port(
    inp: AnalysisInput, spec: Mapping[str, Any], described: str, selected: list[Manifest]
) -> Findings:
    port = service_port(inp, spec)
    if port is None or not selected:
        return NOTHING
    target = port.get("targetPort", port.get("port"))
    protocol = L4Protocol(port.get("protocol", "TCP"))
    pods = [(p, parsed(p)) for p in selected]
    if isinstance(target, str):
        missing = [key(p)[1] for p, pod in pods if not pod or not pod.named_port(target, protocol)]
        if not missing:
            return NOTHING
        severity = Severity.ERROR if len(missing) == len(selected) else Severity.WARNING
        found = inp.issue(
            IssueType.SERVICE_ENDPOINTS,
            severity,
            "destination",
            f"{described} port {port.get('port')} targets the named port {target!r}, which"
            f" no {protocol} container port of {len(missing)} of {len(selected)} selected"
            f" pods has ({', '.join(missing[:5])})",
            f"Name the container port {target!r} ({protocol}) in the pod template, or set"
            " the Service's targetPort to the number the container listens on.",
            evidence(targetPort=target, protocol=protocol),
        )
        return Findings(found.issues, service_failed=severity == Severity.ERROR)
    declared = [pod for _, pod in pods if pod and pod.ports]
    if not declared:
        return NOTHING  # undeclared ports still work: nothing to compare with
    if any(cp.number == target and cp.protocol == protocol for pod in declared for cp in pod.ports):
        return NOTHING
    other = [cp.protocol for pod in declared for cp in pod.ports if cp.number == target]
    detail = (
        f"is declared as {other[0]}, not {protocol}"
        if other
        else "is not among the selected pods' declared container ports ("
        + ", ".join(sorted({f"{cp.number}/{cp.protocol}" for p in declared for cp in p.ports}))
        + ")"
    )
    return inp.issue(
        IssueType.SERVICE_ENDPOINTS,
        Severity.WARNING,
        "destination",
        f"{described} port {port.get('port')} targets {target}/{protocol}, which {detail}",
        "Check the Service's targetPort against the port the container listens on;"
        " a wrong targetPort makes connections to the Service fail although the pods run.",
        evidence(targetPort=target, protocol=protocol),
    )
