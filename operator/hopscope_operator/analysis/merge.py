"""Folds static analysis' findings into the probe's: one issue list for the status.

Contract: `merge(probe_issues, analysis, hops)` is pure and keeps the probe's findings first,
then static analysis' not yet there (each once by type and message). A probe silent drop —
recognised by its machine-readable cause `IssueCause.SILENT_DROP`, never by its words — that a
blocking NetworkPolicy finding (an Error naming a policy under POLICY_KEY) explains becomes
that one NetworkPolicy issue, the probe's evidence kept in its context.

Where the two disagree the merge says what that means, not both (`reconciled`): a probe that
reached the destination through a path a policy should block means the policy is not enforced
there (a Warning, not "add a rule"); an unreachable destination the configuration allows means
the fault is in the data plane, at the hop the probe found.
"""

from __future__ import annotations

from collections.abc import Sequence

from hopscope_operator.analysis.policies import POLICY_KEY
from hopscope_operator.api import Analysis, AnalysisResult
from hopscope_probe.models import (
    ConnectionStatus,
    ContextItem,
    Hop,
    HopType,
    Issue,
    IssueCause,
    IssueType,
    Origin,
    Severity,
)


def destination_hop_id(hops: Sequence[Hop]) -> str | None:
    return next((hop.id for hop in hops if hop.type == HopType.DESTINATION), None)


def _last_hop_id(hops: Sequence[Hop]) -> str | None:
    ordered = sorted((h for h in hops if h.type != HopType.SOURCE), key=lambda h: h.ttl or 0)
    return ordered[-1].id if ordered else None


def is_silent_drop(issue: Issue) -> bool:
    """The probe's silent-drop finding (not the source's own rules): read from its cause, never
    from its message's words."""
    return issue.cause == IssueCause.SILENT_DROP and issue.origin != Origin.LOCAL


def _is_denial(issue: Issue) -> bool:
    return (
        issue.type == IssueType.NETWORK_POLICY
        and issue.severity == Severity.ERROR
        and any(c.key == POLICY_KEY for c in issue.context)
    )


REACHED = (ConnectionStatus.REACHABLE, ConnectionStatus.DEGRADED)


def reconciled(analysis: Analysis | None, connection: ConnectionStatus) -> Analysis | None:
    """The analysis as the run's outcome reads it: a blocking policy on a path the probe got
    through is not enforced there."""
    if analysis is None or connection not in REACHED:
        return analysis
    issues = [not_enforced(i) if _is_denial(i) else i for i in analysis.issues]
    return analysis.model_copy(update={"issues": issues})


def not_enforced(denial: Issue) -> Issue:
    names = [c.value for c in denial.context if c.key == POLICY_KEY]
    # Core NetworkPolicies are named `namespace/name`, other kinds `Kind name`.
    policies = ", ".join(name if " " in name else f"NetworkPolicy {name}" for name in names)
    if all(" " not in name for name in names):
        policies = "NetworkPolicy " + ", ".join(names)
    return denial.model_copy(
        update={
            "severity": Severity.WARNING,
            "message": f"{policies} should block this flow, yet the probe reached"
            " the destination: the policy is not enforced on this path (the network plugin"
            f" does not implement NetworkPolicy, or has not programmed it yet). {denial.message}",
            "hint": "Check that the cluster's network plugin enforces NetworkPolicy (some, such"
            " as flannel alone, ignore it) and that its agent runs on both ends' nodes; a policy"
            " applied moments ago may not be programmed yet, so run the check again. Until"
            " then the policy does not protect this path.",
            "context": [*denial.context, ContextItem(key="probe", value="reached the destination")],
        }
    )


def in_the_data_plane(issues: list[Issue], hops: Sequence[Hop]) -> list[Issue]:
    """The probe's findings on a flow the configuration allows: its main one (the first
    Error, else the first) says the fault is in the data plane, at the hop it found."""
    main = next((i for i, issue in enumerate(issues) if issue.severity == Severity.ERROR), 0)
    hop = (issues[main].hop_id if issues else None) or _last_hop_id(hops)
    at = f" at hop {hop}" if hop else ""
    allowed = "the cluster's configuration (NetworkPolicies, Services, cluster DNS) allows"
    what = f"Static analysis finds {allowed} this flow, so the fault is in the data plane{at}"
    if not issues:
        return [
            Issue(
                type=IssueType.ROUTING,
                severity=Severity.ERROR,
                origin=Origin.OUTBOUND,
                hop_id=hop,
                message=f"the destination is unreachable although {allowed} this flow: the"
                f" fault is in the data plane{at}",
                hint="Look at the path from there on: node firewalls (iptables, nftables), the"
                " network plugin's routes and tunnels, cloud security groups.",
            )
        ]
    issue = issues[main]
    note = ContextItem(key="analysis", value=AnalysisResult.ALLOWED.value)
    issues[main] = issue.model_copy(
        update={"hint": f"{what}: {issue.hint}", "context": [*issue.context, note]}
    )
    return issues


def merge(
    probe_issues: Sequence[Issue],
    analysis: Analysis | None,
    hops: Sequence[Hop] = (),
    connection: ConnectionStatus | None = None,
) -> list[Issue]:
    """The probe's findings, then static analysis' (each once by type and message), as
    `connection` (the run's outcome) reads them: see the module's docstring.

    A probe silent drop that a NetworkPolicy denial explains becomes that one NetworkPolicy
    issue, with the probe's evidence kept in its context (keys prefixed `probe.`): an ingress
    denial explains a drop at the destination hop or the last hop of the path, and is located
    at the destination hop; an egress denial explains a silent drop anywhere on the path and
    stays at the source.
    """
    issues = list(probe_issues)
    if analysis is None:
        return issues
    if connection is not None:
        analysis = reconciled(analysis, connection)
        assert analysis is not None
    if connection == ConnectionStatus.UNREACHABLE and analysis.result == AnalysisResult.ALLOWED:
        issues = in_the_data_plane(issues, hops)
    dest_id, last_id = destination_hop_id(hops), _last_hop_id(hops)
    ends = {hop for hop in (dest_id, last_id) if hop is not None}
    used: set[int] = set()
    for i, issue in enumerate(issues):
        if not is_silent_drop(issue):
            continue
        for j, denial in enumerate(analysis.issues):
            if j in used or not _is_denial(denial):
                continue
            if denial.origin == Origin.INBOUND and issue.hop_id in ends:
                location = dest_id or issue.hop_id
            elif denial.origin == Origin.OUTBOUND:
                location = denial.hop_id
            else:
                continue
            evidence = [ContextItem(key="probe", value=issue.message)]
            evidence += [ContextItem(key=f"probe.{c.key}", value=c.value) for c in issue.context]
            if issue.hop_id:
                evidence.append(ContextItem(key="probe.hopId", value=issue.hop_id))
            issues[i] = denial.model_copy(
                update={"hop_id": location, "context": [*denial.context, *evidence]}
            )
            used.add(j)
            break
    return [*issues, *once(analysis.issues, seen=issues, skip=used)]


def once(
    issues: Sequence[Issue], *, seen: Sequence[Issue] = (), skip: set[int] | None = None
) -> list[Issue]:
    """`issues` without those whose (type, message) is in `seen` or came before, nor the
    indexes in `skip`, in order."""
    known = {(issue.type, issue.message) for issue in seen}
    kept = []
    for j, issue in enumerate(issues):
        if j not in (skip or ()) and (issue.type, issue.message) not in known:
            kept.append(issue)
            known.add((issue.type, issue.message))
    return kept
