"""`kubectl hopscope policy-check`: which of the cluster's checks a proposed policy change flips.

    kubectl hopscope policy-check -f FILE|DIR [-f …] [--delete FILE|DIR …] [--json] [-n NS | -A]

Each ConnectivityCheck (of -n NS, the context's namespace, or every namespace with -A) and each
ClusterConnectivityCheck the user may list is replayed as the operator's analysis judges it:
its source (the pod the last run started from, else the spec resolved) and destination (the
spec resolved against the cluster's pods and Services, with the addresses the last run's probe
reached for a name only it resolves), and its flows (the connection to each target, the
cluster DNS lookups). Each flow is evaluated against the cluster's policies (core
NetworkPolicies and every registered family's kinds the cluster serves, as the operator
discovers them: `policykinds`), then
against them with the proposed objects overlaid: the same kind, namespace and name replaces,
a new one adds, an object of a `--delete` file is removed. Nothing is applied: the command
makes no write request. The checks with a flow whose verdict flips are listed, with the rule
that decides before and after, as `hopscope policy diff` prints them. One check's replay is
`replay`; this module reads the change and the cluster, and renders.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, TextIO

from hopscope_operator.api import API_VERSION, ConnectivityCheck
from hopscope_operator.cluster import (
    CHECKS,
    CLUSTER_CHECKS,
    NAMESPACES,
    NODES,
    ApiError,
    ClusterApi,
    NotFound,
)
from hopscope_operator.kubectl import policykinds
from hopscope_operator.kubectl.flags import PROG, UsageError
from hopscope_operator.kubectl.replay import Replay, check_name, replay_checks
from hopscope_operator.kubectl.views import Unreadable, parse
from hopscope_policy import FieldError, PolicyRules, families, parse_policy
from hopscope_policy.diff import change_json
from hopscope_policy.diffcli import flip_counts, render_change
from hopscope_policy.manifests import ManifestError, Manifests, load
from hopscope_policy.model import Namespace, Policy, parse_namespace
from hopscope_policy.nodes import parse_node
from hopscope_policy.tiers import Node

COMMAND = f"{PROG} policy-check"
NOTHING_FLIPS, FLIPS, INCOMPLETE = 0, 1, 3  # 2 (bad input) is the plugin's USAGE

Key = tuple[str, str, str]  # kind, namespace ("" when cluster-scoped), name


def key_of(policy: Any) -> Key:
    """What `kubectl apply` replaces by: the kind, namespace and name."""
    if isinstance(policy, Policy):
        return ("NetworkPolicy", policy.namespace, policy.name)
    return (str(policy.kind), str(getattr(policy, "namespace", None) or ""), str(policy.name))


def shown(key: Key) -> str:
    kind, namespace, name = key
    return f"{kind} {namespace}/{name}" if namespace else f"{kind} {name}"


@dataclass
class Cluster:
    """What the replay reads once: the policies by key, namespaces, nodes, and what could not
    be read (each makes the answer incomplete)."""

    policies: dict[Key, object]
    namespaces: list[Namespace]
    nodes: list[Node]
    incomplete: list[str] = field(default_factory=list)

    def rules(self, policies: Mapping[Key, object]) -> PolicyRules:
        core = [p for p in policies.values() if isinstance(p, Policy)]
        others = [p for p in policies.values() if not isinstance(p, Policy)]
        return families.rules(self.namespaces, core, others, self.nodes)


# ---- the proposed change ----------------------------------------------------------------


def proposed(paths: Sequence[str], flag: str, notes: list[str]) -> list[object]:
    """The policies of the files, parsed as `hopscope policy` parses them (errors name the
    file, document and field); other kinds are not overlaid and are noted."""
    try:
        found = load(paths)
    except ManifestError as exc:
        raise UsageError(f"{flag}: {exc}") from None
    notes += [f"{flag}: {note}" for note in found.notes]
    notes += [f"{flag}: {what}" for what in _not_overlaid(found)]
    return [*found.policies, *found.others]


def _not_overlaid(found: Manifests) -> Iterable[str]:
    for kind, objects in (("pod", found.pods), ("namespace", found.namespaces)):
        if objects:
            yield (
                f"{len(objects)} {kind}(s) not overlaid: policy-check changes policies only,"
                " the cluster's own pods and namespaces are judged"
            )


def overlay(
    current: Mapping[Key, object], applied: Iterable[object], deleted: Iterable[object]
) -> tuple[dict[Key, object], list[str]]:
    """The cluster's policies after `kubectl apply` of `applied` and `kubectl delete` of
    `deleted`, and notes of deletions that find nothing."""
    after = dict(current)
    notes = []
    for policy in deleted:
        key = key_of(policy)
        if after.pop(key, None) is None:
            notes.append(f"--delete: {shown(key)} is not in the cluster: nothing to delete")
    for policy in applied:
        after[key_of(policy)] = policy
    return after, notes


# ---- the cluster --------------------------------------------------------------------------


def read_cluster(api: ClusterApi) -> Cluster:
    found = policykinds.read(api)
    incomplete = [
        f"could not read {kind} ({why}): the verdicts may be incomplete"
        for kind, why in found.unreadable.items()
    ]
    incomplete += [
        f"{count} {kind} object(s) in the cluster are not evaluated (hopscope reads Calico's"
        " projectcalico.org/v3 API, which the cluster does not serve): the verdicts may be wrong"
        for kind, count in found.not_evaluated.items()
    ]
    if found.undiscovered:
        incomplete.append(
            f"could not discover the policy kinds the cluster serves ({found.undiscovered}):"
            " only NetworkPolicies were read, the verdicts may be incomplete"
        )
    policies: dict[Key, object] = {}
    for obj in found.objects:
        parser = families.parser(obj["apiVersion"], obj["kind"]) or parse_policy
        try:
            policy = parser(obj)
        except FieldError as exc:
            meta = obj.get("metadata") or {}
            name = "/".join(filter(None, (meta.get("namespace"), meta.get("name"))))
            incomplete.append(f"{obj['kind']} {name}: {exc}: left out, the verdicts may be wrong")
            continue
        policies[key_of(policy)] = policy
    namespaces = _parsed(api, NAMESPACES, parse_namespace, incomplete)
    nodes = _parsed(api, NODES, parse_node, incomplete)
    return Cluster(policies, namespaces, nodes, incomplete)


def _parsed(api: ClusterApi, resource: Any, parser: Any, incomplete: list[str]) -> list[Any]:
    try:
        listed = api.list(resource, None)
    except ApiError as exc:
        incomplete.append(f"could not list {resource.plural} ({exc}): verdicts may be wrong")
        return []
    parsed = []
    for obj in listed:
        try:
            parsed.append(parser(obj))
        except FieldError as exc:
            name = (obj.get("metadata") or {}).get("name")
            incomplete.append(f"{resource.kind} {name}: {exc}: left out")
    return parsed


def read_checks(
    api: ClusterApi, namespace: str | None, notes: list[str], replay: Replay
) -> list[ConnectivityCheck]:
    """The checks to replay; a check these models cannot read is noted as not replayed."""
    listed = [(CHECKS, obj) for obj in api.list(CHECKS, namespace)]
    try:
        listed += [(CLUSTER_CHECKS, obj) for obj in api.list(CLUSTER_CHECKS, None)]
    except NotFound:
        pass  # an install without the cluster-scoped CRD
    except ApiError as exc:
        notes.append(
            f"could not list ClusterConnectivityChecks ({exc}): replaying ConnectivityChecks only"
        )
    checks = []
    for resource, obj in listed:
        typed = {**obj, "apiVersion": API_VERSION, "kind": resource.kind}  # list items lack them
        try:
            checks.append(parse(typed))
        except Unreadable as exc:
            replay.not_replayed.append((check_name(resource.kind, obj["metadata"]), str(exc)))
    return checks


# ---- the command ----------------------------------------------------------------------------


def run(args: argparse.Namespace, api: ClusterApi, namespace: str | None) -> int:
    if not args.filename and not args.delete:
        raise UsageError("give -f FILE|DIR (the proposed policies), --delete FILE|DIR, or both")
    notes: list[str] = []
    applied = proposed(args.filename, "-f", notes)
    deleted = proposed(args.delete, "--delete", notes) if args.delete else []
    cluster = read_cluster(api)
    after, missing = overlay(cluster.policies, applied, deleted)
    notes += missing
    replay = Replay()
    checks = read_checks(api, namespace, notes, replay)
    replay_checks(checks, api, cluster.rules(cluster.policies), cluster.rules(after), replay)
    for note in [*notes, *cluster.incomplete]:
        print(f"{COMMAND}: note: {note}", file=sys.stderr)
    for check, why in replay.not_replayed:
        print(f"{COMMAND}: note: {check} not replayed: {why}", file=sys.stderr)
    if args.json:
        sys.stdout.write(json.dumps(as_json(replay, cluster), indent=2) + "\n")
    else:
        write_text(replay, sys.stdout)
    if replay.flipped:
        return FLIPS
    return INCOMPLETE if replay.not_replayed or cluster.incomplete else NOTHING_FLIPS


def write_text(replay: Replay, out: TextIO) -> None:
    changes = []
    for flipped in replay.flipped:
        name = check_name(flipped.check.kind, flipped.check.metadata)
        out.write(f"{name}: {flipped.source} -> {flipped.destination}\n")
        for flip in flipped.flips:
            first, *rest = render_change(flip.change)
            out.write(f"  {first}{'  (a DNS lookup)' if flip.dns else ''}\n")
            out.writelines(f"  {line}\n" for line in rest)
            changes.append(flip.change)
    replayed = f"{replay.replayed} replayed check{'s' if replay.replayed != 1 else ''}"
    if replay.flipped:
        flips = f"{len(replay.flipped)} of {replayed} would flip ({flip_counts(changes)})"
        out.write(f"{flips}; nothing was applied\n")
    else:
        out.write(f"no check flips: {replayed}; nothing was applied\n")


def as_json(replay: Replay, cluster: Cluster) -> dict[str, Any]:
    return {
        "replayed": replay.replayed,
        "flipped": [
            {
                "check": check_name(flipped.check.kind, flipped.check.metadata),
                "kind": flipped.check.kind,
                "source": flipped.source,
                "destination": flipped.destination,
                "changes": [
                    {**change_json(flip.change), "dns": flip.dns} for flip in flipped.flips
                ],
            }
            for flipped in replay.flipped
        ],
        "notReplayed": [{"check": check, "reason": why} for check, why in replay.not_replayed],
        "incomplete": cluster.incomplete,
    }
