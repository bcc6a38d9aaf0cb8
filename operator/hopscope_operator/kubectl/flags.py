"""`kubectl hopscope`'s command line: the parser, and the flags turned into a ConnectivityCheck.

`build_check` validates what the flags say with the API model, so a bad flag is named (by
`flag_errors`, in flag terms) before anything is created; `check_body` is what is sent.
"""

from __future__ import annotations

import argparse
import ipaddress
import re
import secrets

from pydantic import ValidationError

from hopscope_operator.api import (
    API_VERSION,
    CLUSTER_KIND,
    DNS_LABEL,
    DNS_SUBDOMAIN,
    EXPLICIT_NAMESPACES,
    KIND,
    ClusterConnectivityCheck,
    ConnectivityCheck,
)
from hopscope_operator.cluster import Object
from hopscope_probe.models import Protocol
from hopscope_probe.target import split_host_port

PROG = "kubectl hopscope"
MANAGED_BY = {"app.kubernetes.io/managed-by": "kubectl-hopscope"}
SOURCE_KINDS = {
    "pod": ("pod", None),
    "po": ("pod", None),
    "node": ("node", None),
    "no": ("node", None),
    "deploy": ("workload", "Deployment"),
    "deployment": ("workload", "Deployment"),
    "sts": ("workload", "StatefulSet"),
    "statefulset": ("workload", "StatefulSet"),
    "ds": ("workload", "DaemonSet"),
    "daemonset": ("workload", "DaemonSet"),
}
DESTINATION_KINDS = {
    "svc": "service",
    "service": "service",
    "pod": "pod",
    "po": "pod",
    "node": "node",
    "no": "node",
}


class UsageError(Exception):
    """Bad arguments; the message names the flag."""


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> None:  # type: ignore[override]
        raise UsageError(message)


def parser() -> argparse.ArgumentParser:
    top = _Parser(
        prog=PROG,
        description="Run and show hopscope ConnectivityChecks; check a policy change against them.",
    )
    sub = top.add_subparsers(dest="command", required=True, parser_class=_Parser)
    c = sub.add_parser("check", help="create a check, wait for its result, print it")
    c.add_argument(
        "--from",
        dest="source",
        required=True,
        metavar="KIND/NAME",
        help="pod/NAME, node/NAME, deploy/NAME, sts/NAME or ds/NAME",
    )
    c.add_argument(
        "--to",
        required=True,
        metavar="TARGET",
        help="svc/NAME:PORT, pod/NAME:PORT, node/NAME[:PORT], IP:PORT, FQDN:PORT or an http(s) URL",
    )
    c.add_argument("--protocol", type=str.lower, choices=[p.lower() for p in Protocol])
    c.add_argument("--count", type=int, help="connection probes per run (default 10)")
    c.add_argument("--timeout", type=float, help="seconds one probe waits (default 2)")
    c.add_argument("--multipath", action="store_true", help="trace every ECMP path")
    c.add_argument("--mtu", action="store_true", help="probe the path MTU (spec.path.mtu)")
    c.add_argument(
        "--wait", type=float, default=120.0, metavar="SECONDS", help="give up after (default 120)"
    )
    c.add_argument("--keep", action="store_true", help="keep the check afterwards")
    c.add_argument("--name", help="the check's name (default: hopscope-<random>)")
    _output_flags(c)
    s = sub.add_parser("show", help="render an existing check")
    s.add_argument("name")
    _output_flags(s)
    _policy_check_flags(sub)
    return top


POLICY_CHECK_EPILOG = """\
Each check's flows (its connection to each target, its cluster DNS lookups) are evaluated
against the cluster's NetworkPolicies and the other policy kinds it serves (cluster-wide,
Cilium, Calico), then with the proposed objects overlaid: the same kind, namespace and name
replaces, a new object adds, an object of a --delete file is removed. A proposed object without
metadata.namespace is read in namespace default. Nothing is applied: only reads are made.

exit codes: 0 no check flips, 1 at least one flips, 2 bad input or an API error,
3 none flips but the answer is incomplete (a policy kind could not be read, a check could not
be replayed, or the cluster holds Calico policies only in their crd.projectcalico.org storage
form, which is not evaluated)"""


def _policy_check_flags(sub: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    p = sub.add_parser(
        "policy-check",
        help="list the checks a proposed policy change would flip, without applying it",
        description="Replay the cluster's ConnectivityChecks against its policies plus the\n"
        "proposed ones, and list the checks whose verdict would flip.",
        epilog=POLICY_CHECK_EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument(
        "-f",
        "--filename",
        action="append",
        default=[],
        metavar="FILE|DIR",
        help="proposed policies: YAML or JSON files or folders (as kubectl apply -f); repeatable",
    )
    p.add_argument(
        "--delete",
        action="append",
        default=[],
        metavar="FILE|DIR",
        help="policies the change deletes (as kubectl delete -f); repeatable",
    )
    p.add_argument("--json", action="store_true", help="print one JSON document")
    scope = p.add_mutually_exclusive_group()
    scope.add_argument(
        "-n",
        "--namespace",
        help="replay this namespace's checks (default: the kubeconfig context's namespace)",
    )
    scope.add_argument(
        "-A",
        "--all-namespaces",
        action="store_true",
        help="replay the checks of every namespace",
    )


def _output_flags(p: argparse.ArgumentParser) -> None:
    p.add_argument("-n", "--namespace", help="default: the kubeconfig context's namespace")
    p.add_argument(
        "--cluster",
        action="store_true",
        help="a ClusterConnectivityCheck (node sources, other namespaces); -n then names the"
        " namespace of the pods, workloads and Services named",
    )
    p.add_argument("-o", "--output", choices=["text", "json", "yaml"], default="text")
    p.add_argument("--graph", metavar="FILE.svg", help="also write the topology as SVG")
    p.add_argument(
        "--graph-engine",
        choices=["auto", "builtin", "dot"],
        default="auto",
        help="dot where installed (auto), or the built-in layout",
    )


def current_namespace() -> str:
    """The kubeconfig's current context's namespace, else "default"."""
    try:
        from kubernetes import config

        _, active = config.list_kube_config_contexts()
        return str((active or {}).get("context", {}).get("namespace") or "default")
    except Exception:  # no kubeconfig, or one without contexts
        return "default"


def split_port(value: str) -> tuple[str, int | None]:
    try:
        return split_host_port(value)
    except ValueError as exc:
        raise UsageError(f"--to {value!r}: {exc}") from exc


def source_of(value: str) -> Object:
    kind, sep, name = value.partition("/")
    if not sep or kind.lower() not in SOURCE_KINDS or not name:
        raise UsageError(
            f"--from {value!r}: expected pod/NAME, node/NAME, deploy/NAME, sts/NAME or ds/NAME"
        )
    field, workload = SOURCE_KINDS[kind.lower()]
    if workload:
        return {"workload": {"kind": workload, "name": name}}
    return {field: {"name": name}}


def destination_of(value: str) -> tuple[Object, Protocol | None]:
    """The destination, and the protocol a URL implies."""
    scheme, sep, _ = value.partition("://")
    if sep:
        if scheme.lower() not in ("http", "https"):
            raise UsageError(f"--to {value!r}: a URL must be http or https")
        return {"uri": value}, Protocol(scheme.upper())
    kind, sep, rest = value.partition("/")
    if sep:
        if kind.lower() not in DESTINATION_KINDS:
            raise UsageError(f"--to {value!r}: expected svc/, pod/ or node/ before the name")
        name, port = split_port(rest)
        return _with_port({DESTINATION_KINDS[kind.lower()]: {"name": name}}, port), None
    host, port = split_port(value)
    try:
        ipaddress.ip_address(host)
    except ValueError:
        return _with_port({"fqdn": host}, port), None
    return _with_port({"ip": host}, port), None


def _with_port(destination: Object, port: int | None) -> Object:
    return {**destination, "port": port} if port is not None else destination


# Where a validation error's location points back to a flag.
FLAG_OF = {
    "source": "--from",
    "destination": "--to",
    "protocol": "--protocol",
    "count": "--count",
    "timeoutSeconds": "--timeout",
}


def flag_errors(exc: ValidationError) -> str:
    parts = []
    for err in exc.errors():
        loc = [str(part) for part in err["loc"]]
        flag = next((FLAG_OF[part] for part in loc if part in FLAG_OF), None)
        message = str(err["msg"]).removeprefix("Value error, ")
        if flag is None:  # a rule across fields: name the flags its message names
            flag = "--protocol" if message.startswith("destination.uri") else "--to"
        parts.append(f"{flag}: {message}")
    return "; ".join(dict.fromkeys(parts))


def build_check(args: argparse.Namespace, namespace: str) -> ConnectivityCheck:
    destination, implied = destination_of(args.to)
    protocol = Protocol(args.protocol.upper()) if args.protocol else implied or Protocol.TCP
    probes: Object = {}
    if args.count is not None:
        probes["count"] = args.count
    if args.timeout is not None:
        probes["timeoutSeconds"] = args.timeout
    spec: Object = {
        "source": source_of(args.source),
        "destination": destination,
        "protocol": protocol,
    }
    if probes:
        spec["probes"] = probes
    path = {"multipath": True} if args.multipath else {}
    if args.mtu:
        path["mtu"] = True
    if path:
        spec["path"] = path
    name = args.name or f"hopscope-{secrets.token_hex(3)}"
    if not re.match(DNS_SUBDOMAIN, name) or len(name) > 253:
        raise UsageError(f"--name {name!r}: not a valid object name (lower case, digits, '-', '.')")
    if not re.match(DNS_LABEL, namespace) or len(namespace) > 63:
        raise UsageError(f"--namespace {namespace!r}: not a valid namespace name")
    metadata = {"name": name, "namespace": namespace, "labels": dict(MANAGED_BY)}
    model: type[ConnectivityCheck] = ConnectivityCheck
    if args.cluster:
        # A cluster-scoped check has no namespace for its references to default to.
        metadata.pop("namespace")
        for path in EXPLICIT_NAMESPACES:  # "source.pod", "destination.service", ...
            part, kind = path.split(".")
            ref = spec[part].get(kind)
            if ref is not None:
                ref.setdefault("namespace", namespace)
        model = ClusterConnectivityCheck
    body = {
        "apiVersion": API_VERSION,
        "kind": CLUSTER_KIND if args.cluster else KIND,
        "metadata": metadata,
        "spec": spec,
    }
    try:
        return model.model_validate(body)
    except ValidationError as exc:
        raise UsageError(flag_errors(exc)) from exc


def check_body(check: ConnectivityCheck) -> Object:
    """What is sent: the fields the flags set, the API server fills in the defaults."""
    return check.model_dump(mode="json", by_alias=True, exclude_unset=True, exclude_none=True)
