"""`hopscope policy diff`: the flows whose verdict a proposed change of manifests would flip.

    hopscope policy diff --manifests CURRENT... --proposed PROPOSED... --matrix --port PORT
                         [--protocol TCP|UDP|SCTP] [--json]
    hopscope policy diff --manifests CURRENT... --proposed PROPOSED... --from NS/POD|IP
                         --to NS/POD|IP --port PORT [--protocol …] [--json]

Exit codes: 0 no verdict changes, 1 at least one flow changes (as diff(1) does, so CI can gate a
change on it), 2 bad input (the message names the flag, or the file, document and field).
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Sequence

from hopscope_policy import cli
from hopscope_policy.diff import (
    Change,
    Diff,
    change_json,
    compare_flow,
    compare_matrix,
    decided_by,
    outcome,
)
from hopscope_policy.evaluate import Flow
from hopscope_policy.manifests import ManifestError, Manifests, load
from hopscope_policy.model import L4Protocol

EPILOG = """\
--manifests and --proposed are each a complete state (e.g. the main branch's folder and the
change's): a policy missing from --proposed is deleted. Flows are compared between pods both
sets hold; only flows whose verdict could change are evaluated.

exit codes: 0 no verdict changes, 1 at least one verdict changes, 2 bad input"""


def parser() -> argparse.ArgumentParser:
    p = cli.parser(
        prog="hopscope policy diff",
        description="List every flow whose NetworkPolicy verdict a proposed change would flip, "
        "with the policy and rule that decided before and after.",
    )
    p.epilog = EPILOG
    p.formatter_class = argparse.RawDescriptionHelpFormatter
    p.add_argument(
        "--proposed",
        nargs="+",
        action="extend",
        required=True,
        metavar="PATH",
        help="the proposed state: YAML or JSON files or folders, read as --manifests is",
    )
    return p


def main(argv: Sequence[str] | None = None) -> int:
    cmd = parser()
    args = cmd.parse_args(argv)
    cli.check_mode(cmd, args)
    protocol = L4Protocol(args.protocol)
    try:
        before = _load(args.manifests, "--manifests")
        after = _load(args.proposed, "--proposed")
        old, new = before.index(), after.index()
        if args.matrix:
            if not old.pods or not new.pods:
                raise cli.InputError("--matrix: the manifests hold no pods or workloads")
            diff = compare_matrix(old, new, args.port, protocol)
        else:
            flow = cli.build_flow(old, args, protocol, "--manifests")
            cli.build_flow(new, args, protocol, "--proposed")
            diff = compare_flow(old, new, flow)
    except (ManifestError, cli.InputError) as exc:
        print(f"hopscope policy diff: error: {exc}", file=sys.stderr)
        return 2
    for flag, refs in diff.only_in.items():
        for ref in refs:
            print(
                f"hopscope policy diff: note: pod {ref} is only in the {flag} set: "
                "its flows are not compared",
                file=sys.stderr,
            )
    service = f"{protocol}/{args.port}"
    if args.json:
        document = {
            "ports": [{"port": args.port, "protocol": protocol.value}],
            "pairs": diff.pairs,
            "evaluated": diff.evaluated,
            "changes": [change_json(change) for change in diff.changes],
        }
        print(json.dumps(document, indent=2))
    else:
        print(render(diff, service, None if args.matrix else flow))
    return 1 if diff.changes else 0


def _load(paths: list[str], flag: str) -> Manifests:
    try:
        found = load(paths)
    except ManifestError as exc:
        raise ManifestError(f"{flag}: {exc}") from None
    for note in found.notes:
        print(f"hopscope policy diff: note: {flag}: {note}", file=sys.stderr)
    return found


def render(diff: Diff, service: str, flow: Flow | None) -> str:
    """The changed flows, then a summary: of the given flow, or of the matrix on the service."""
    lines: list[str] = []
    for change in diff.changes:
        lines += render_change(change)
    counts = flip_counts(diff.changes)
    if flow is not None:
        lines.append(
            f"the verdict changes ({counts})" if diff.changes else f"no verdict change: {flow}"
        )
        return "\n".join(lines)
    scope = f"{diff.evaluated} of {diff.pairs} pod pairs evaluated, the rest provably unchanged"
    if diff.changes:
        lines.append(f"{len(diff.changes)} verdicts change on {service} ({counts}); {scope}")
    else:
        lines.append(f"no verdict changes on {service}; {scope}")
    return "\n".join(lines)


def flip_counts(changes: Sequence[Change]) -> str:
    """How many flows flip which way: "2 allowed -> denied, 1 allowed -> unknown"."""
    flips = [(outcome(c.before), outcome(c.after)) for c in changes]
    return ", ".join(f"{flips.count(pair)} {pair[0]} -> {pair[1]}" for pair in sorted(set(flips)))


def render_change(change: Change) -> list[str]:
    old, new = outcome(change.before), outcome(change.after)
    lines = [f"{change.flow}: {old} -> {new.upper() if new == 'denied' else new}"]
    for before, after in change.directions():
        word = before.direction.field
        lines.append(f"  {word:<7}  before  {_mark(before.allowed)}  {decided_by(before)}")
        lines.append(f"  {'':<7}  after   {_mark(after.allowed)}  {decided_by(after)}")
    return lines


def _mark(allowed: bool) -> str:
    return "allowed" if allowed else "denied "


if __name__ == "__main__":
    sys.exit(main())
