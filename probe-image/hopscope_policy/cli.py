"""`hopscope policy`: NetworkPolicy verdicts from manifests, before anything is applied.

    hopscope policy --manifests PATH [PATH...] --from NS/POD --to NS/POD|IP --port PORT
                    [--protocol TCP|UDP|SCTP] [--json]
    hopscope policy --manifests PATH [PATH...] --matrix --port PORT [--protocol …] [--json]
    hopscope policy diff --manifests PATH... --proposed PATH... (--matrix | --from … --to …) …

Exit codes: 0 allowed (or the matrix was printed), 1 denied, 3 unknown (a construct hopscope does
not model decides, named in the reason), 2 bad input (the message names the
file, document and field, or the flag). stdout carries the verdict only; notes go to stderr.
`hopscope policy diff` (hopscope_policy.diffcli; hopscope_probe.cli hands it over) exits 0
when no verdict changes, 1 when one does, 2 as here.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Sequence
from ipaddress import ip_address
from typing import Any

from hopscope_policy.evaluate import (
    DirectionVerdict,
    Flow,
    PolicyIndex,
    UnknownPod,
    Verdict,
)
from hopscope_policy.manifests import ManifestError, load
from hopscope_policy.model import IPAddress, L4Protocol, PodRef
from hopscope_policy.tiers import RuleName

ALLOWED, DENIED = ".", "X"  # the marks Kubernetes' network-policy conformance tests print
UNKNOWN = "?"  # neither: the verdict's reason names the construct (`--from … --to …` shows it)
MARKS = {True: ALLOWED, False: DENIED, None: UNKNOWN}


class InputError(Exception):
    """Input that parses but names nothing usable; the message names the flag."""


def parser(
    prog: str = "hopscope policy",
    description: str = "Decide from manifests whether NetworkPolicies allow a connection, and why.",
) -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog=prog, description=description)
    p.add_argument(
        "--manifests",
        nargs="+",
        action="extend",
        required=True,
        metavar="PATH",
        help="YAML or JSON files or folders (read recursively; multi-document; List kinds); "
        "may be repeated",
    )
    p.add_argument("--from", dest="source", type=endpoint, metavar="NS/POD|IP")
    p.add_argument("--to", dest="destination", type=endpoint, metavar="NS/POD|IP")
    p.add_argument("--matrix", action="store_true", help="every pod to every pod, as a table")
    p.add_argument("--port", type=port_number, required=True)
    p.add_argument(
        "--protocol", type=str.upper, choices=list(L4Protocol), default=L4Protocol.TCP.value
    )
    p.add_argument("--json", action="store_true", help="print one JSON document")
    return p


def endpoint(text: str) -> PodRef | IPAddress:
    try:
        return ip_address(text)
    except ValueError:
        pass
    try:
        return PodRef.parse(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r}: expected NAMESPACE/POD or an IP") from None


def port_number(text: str) -> int:
    if not text.isdigit() or not 1 <= int(text) <= 65535:
        raise argparse.ArgumentTypeError(f"{text!r}: expected a port number (1-65535)")
    return int(text)


def main(argv: Sequence[str] | None = None) -> int:
    cmd = parser()
    args = cmd.parse_args(argv)
    check_mode(cmd, args)
    protocol = L4Protocol(args.protocol)
    try:
        manifests = load(args.manifests)
        for note in manifests.notes:
            print(f"hopscope policy: note: {note}", file=sys.stderr)
        index = manifests.index()
        if args.matrix:
            write_matrix(index, args.port, protocol, args.json)
            return 0
        verdict = index.evaluate(build_flow(index, args, protocol))
    except (ManifestError, InputError) as exc:
        print(f"hopscope policy: error: {exc}", file=sys.stderr)
        return 2
    if args.json:
        print(json.dumps(verdict_json(verdict), indent=2))
    else:
        print(render_verdict(verdict))
    return 0 if verdict.allowed else 3 if verdict.unknown else 1


def check_mode(cmd: argparse.ArgumentParser, args: argparse.Namespace) -> None:
    """One flow (--from and --to) or the matrix; argparse's error exits 2."""
    if args.matrix and (args.source or args.destination):
        cmd.error("--matrix takes no --from or --to")
    if not args.matrix and not (args.source and args.destination):
        cmd.error("give --from and --to, or --matrix")


def build_flow(
    index: PolicyIndex,
    args: argparse.Namespace,
    protocol: L4Protocol,
    where: str = "the manifests",
) -> Flow:
    for flag, value in (("--from", args.source), ("--to", args.destination)):
        if isinstance(value, PodRef):
            try:
                index.pod(value)
            except UnknownPod as exc:
                raise InputError(f"{flag} {value}: {exc} in {where}") from None
    return Flow(args.source, args.destination, args.port, protocol)


def verdict_json(verdict: Verdict) -> dict[str, Any]:
    decided = verdict.decided_by
    return {
        "allowed": verdict.allowed,
        "unknown": verdict.unknown,
        "decidedBy": _rule_json(decided),
        "egress": direction_json(verdict.egress),
        "ingress": direction_json(verdict.ingress),
    }


def direction_json(side: DirectionVerdict) -> dict[str, Any]:
    return {
        "allowed": side.allowed,
        "policies": list(side.policies),
        "reason": side.reason,
        "decidedBy": _rule_json(side.rule),
    }


def _rule_json(rule: RuleName | None) -> dict[str, Any] | None:
    """The deciding object with its kind, as `kubectl get KIND NAME` finds it."""
    if rule is None:
        return None
    return {"kind": rule.kind, "name": rule.name, "rule": rule.rule, "text": str(rule)}


def render_verdict(verdict: Verdict) -> str:
    flow = verdict.flow
    head = f"{verdict.source} -> {verdict.destination} {flow.protocol}/{flow.port}: "
    outcome = "allowed" if verdict.allowed else "UNKNOWN" if verdict.unknown else "DENIED"
    decided = verdict.decided_by
    # Core NetworkPolicy reasons already name their policy; other kinds are named here.
    named = decided is not None and decided.kind != "NetworkPolicy"
    lines = [head + outcome + (f" (decided by {decided})" if named else "")]
    for side in (verdict.egress, verdict.ingress):
        mark = "allowed" if side.allowed else "unknown" if side.unknown else "denied "
        lines.append(f"  {side.direction.field:<7}  {mark}  {side.reason}")
    return "\n".join(lines)


def write_matrix(index: PolicyIndex, port: int, protocol: L4Protocol, as_json: bool) -> None:
    if not index.pods:
        raise InputError("--matrix: the manifests hold no pods or workloads")
    matrix = index.matrix(port, protocol)
    if as_json:
        ports = [{"port": port, "protocol": protocol.value}]
        print(json.dumps({"ports": ports, "matrix": matrix}, indent=2))
    else:
        print(render_matrix(matrix, f"{protocol}/{port}"))


def render_matrix(matrix: dict[str, dict[str, bool | None]], what: str) -> str:
    names = list(matrix)
    width = max(len(name) for name in names) + 2
    legend = f"{ALLOWED} allowed, {DENIED} denied, {UNKNOWN} unknown (a construct not modelled)"
    lines = [
        f"Reachability on {what} (rows: from, columns: to; {legend})",
        "-".ljust(width) + "".join(name.ljust(width) for name in names).rstrip(),
    ]
    for src, row in matrix.items():
        marks = "".join(MARKS[row[dst]].ljust(width) for dst in names)
        lines.append((src.ljust(width) + marks).rstrip())
    values = [value for row in matrix.values() for value in row.values()]
    allowed, unknown = values.count(True), values.count(None)
    summary = f"{len(names)} pods: {allowed} of {len(values)} pairs allowed"
    lines.append(summary + (f", {unknown} unknown" if unknown else ""))
    return "\n".join(lines)


if __name__ == "__main__":
    sys.exit(main())
