"""Static diagnosis: what the cluster's configuration says about one check's connection.

Pure: `analyse` reads a `Snapshot` of plain Kubernetes JSON (what the API server returns) and
names the NetworkPolicy, Service, cluster-DNS, node or pod state that stands in the way, as
`Issue`s shaped like the probe's. `merge` folds these findings into the probe's issue list.

Built like the probe's `diagnose`: one frozen `AnalysisInput` (inputs.py), pure rule functions
one module per subject — services.py, dns.py, policies.py, nodes.py, pods.py, each opening with
its contract and choices — composed here in a fixed order; each finding is kept once by type
and message, the first one standing. merge.py holds the merge with the probe's findings.

Where each finding is located: source-side ones at hop "source"; destination-side ones at the
probe's destination hop when the caller knows it (`destination_hop`), else at no hop.
"""

from __future__ import annotations

from hopscope_operator.analysis import dns, nodes, pods, policies, services
from hopscope_operator.analysis.dns import DNS_PORT, DNS_SERVICE
from hopscope_operator.analysis.inputs import (
    DNS,
    ENDPOINT_SLICES,
    NAMESPACES,
    NODES,
    NOTHING,
    PODS,
    POLICIES,
    POLICY_KINDS,
    SERVICE,
    AnalysisInput,
    Findings,
    ParsedRules,
    Snapshot,
    evidence,
    is_policy_kind,
    ready_endpoints,
    selected_pods,
)
from hopscope_operator.analysis.merge import (
    destination_hop_id,
    is_silent_drop,
    merge,
    once,
    reconciled,
)
from hopscope_operator.analysis.policies import POLICY_KEY
from hopscope_operator.api import Analysis, AnalysisResult, ConnectivityCheck
from hopscope_operator.names import DNS_NAMESPACE
from hopscope_operator.resolved import ResolvedDestination, ResolvedSource
from hopscope_probe.models import Issue, IssueType, Origin, Severity

__all__ = [
    "DNS",
    "DNS_NAMESPACE",
    "DNS_PORT",
    "DNS_SERVICE",
    "ENDPOINT_SLICES",
    "NAMESPACES",
    "NODES",
    "PODS",
    "POLICIES",
    "POLICY_KEY",
    "POLICY_KINDS",
    "SERVICE",
    "AnalysisInput",
    "Findings",
    "ParsedRules",
    "Snapshot",
    "analyse",
    "destination_hop_id",
    "is_silent_drop",
    "merge",
    "ready_endpoints",
    "reconciled",
    "selected_pods",
    "unknown",
]

# What could not be read -> the issue type of the part it leaves unknown.
UNREADABLE_TYPE = {
    POLICIES: IssueType.NETWORK_POLICY,
    NAMESPACES: IssueType.NETWORK_POLICY,
    PODS: IssueType.NETWORK_POLICY,
    SERVICE: IssueType.SERVICE_ENDPOINTS,
    ENDPOINT_SLICES: IssueType.SERVICE_ENDPOINTS,
    NODES: IssueType.ROUTING,
    DNS: IssueType.DNS_RESOLUTION,
}


def unreadable_parts(inp: AnalysisInput) -> Findings:
    """A warning per part of the configuration that could not be read: that part is unknown."""
    found = Findings(unknown=bool(inp.snapshot.unreadable))
    for part, why in sorted(inp.snapshot.unreadable.items()):
        policy_kind = IssueType.NETWORK_POLICY if is_policy_kind(part) else IssueType.PROBE
        hint = (
            f"Grant the operator get/list on {part} (its ClusterRole), so the"
            " configuration can be checked; until then that part of the verdict is unknown."
        )
        if part == POLICY_KINDS:  # discovery needs no grant: every account may read it
            hint = (
                "The API server's discovery (/apis) failed; the operator asks again at the"
                " next run, until then the policy verdict is unknown."
            )
        found += inp.issue(
            UNREADABLE_TYPE.get(part, policy_kind),
            Severity.WARNING,
            "destination" if part in (SERVICE, ENDPOINT_SLICES) else "source",
            f"static analysis could not read {part}: {why}",
            hint,
            evidence(unreadable=part),
        )
    return found


# The rules, in the order their findings are listed.
RULES = (unreadable_parts, services.rules, dns.rules, policies.rules, nodes.rules, pods.rules)


def analyse(
    check: ConnectivityCheck,
    source: ResolvedSource,
    destination: ResolvedDestination,
    snapshot: Snapshot,
    *,
    destination_hop: str | None = None,
) -> Analysis:
    """The static verdict for one check: Blocked (an Error finding), Allowed, or Unknown (a part
    of the configuration could not be read, and nothing read blocks)."""
    inp = AnalysisInput(check, source, destination, snapshot, destination_hop)
    found = sum((rule(inp) for rule in RULES), NOTHING)
    issues = once(found.issues)
    if any(issue.severity == Severity.ERROR for issue in issues):
        result = AnalysisResult.BLOCKED
    elif found.unknown:
        result = AnalysisResult.UNKNOWN
    else:
        result = AnalysisResult.ALLOWED
    return Analysis(result=result, issues=issues)


def unknown(message: str) -> Analysis:
    """The verdict when the analysis could not run at all."""
    return Analysis(
        result=AnalysisResult.UNKNOWN,
        issues=[
            Issue(
                type=IssueType.PROBE,
                severity=Severity.WARNING,
                origin=Origin.LOCAL,
                message=f"static analysis could not run: {message}",
                hint="See the operator's log; the probe's findings stand on their own.",
            )
        ],
    )
