"""Folds static analysis' findings into the probe's: one issue list for the status.

Contract: `merge(probe_issues, analysis, hops)` is pure and keeps the probe's findings first,
then static analysis' not yet there (each once by type and message). A probe silent drop —
recognised by its machine-readable cause `IssueCause.SILENT_DROP`, never by its words — that a
blocking NetworkPolicy finding (an Error naming a policy under POLICY_KEY) explains becomes
that one NetworkPolicy issue, the probe's evidence kept in its context.
"""

from __future__ import annotations

from collections.abc import Sequence

from hopscope_operator.analysis.policies import POLICY_KEY
from hopscope_operator.api import Analysis
from hopscope_probe.models import (
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


def merge(
    probe_issues: Sequence[Issue], analysis: Analysis | None, hops: Sequence[Hop] = ()
) -> list[Issue]:
    """The probe's findings, then static analysis' (each once by type and message).

    A probe silent drop that a NetworkPolicy denial explains becomes that one NetworkPolicy
    issue, with the probe's evidence kept in its context (keys prefixed `probe.`): an ingress
    denial explains a drop at the destination hop or the last hop of the path, and is located
    at the destination hop; an egress denial explains a silent drop anywhere on the path and
    stays at the source.
    """
    issues = list(probe_issues)
    if analysis is None:
        return issues
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
