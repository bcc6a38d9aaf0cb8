"""`kubectl hopscope`: run a ConnectivityCheck from the terminal, or show one.

    kubectl hopscope check --from pod/web-0 --to svc/db:5432 [-n NS] [--wait 120] [--keep]
    kubectl hopscope show NAME [-n NS] [-o text|json|yaml] [--graph out.svg]

`check` builds the check from the flags (validated by the API model, so a bad flag is named
before anything is created), creates it, polls it until the operator has written a finished
status for its generation, prints the result the way `hopscope probe` does and deletes the check
unless `--keep` (also on timeout and Ctrl-C). stdout carries the result only; progress goes to
stderr. Exit codes as `hopscope probe`: 0 Reachable, 1 Unreachable or Degraded, 2 Unknown, a
bad argument, an API error, a timeout or a status this plugin cannot read as text; 130 on Ctrl-C.
`-o json` and `-o yaml` print the check as stored, so a newer operator's status prints too.
"""

from __future__ import annotations

import argparse
import contextlib
import ipaddress
import json
import re
import secrets
import signal
import sys
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from typing import TextIO

import urllib3
from pydantic import ValidationError

from hopscope_operator.api import (
    API_VERSION,
    DNS_LABEL,
    DNS_SUBDOMAIN,
    KIND,
    ConnectivityCheck,
    Destination,
    Phase,
)
from hopscope_operator.cluster import CHECKS, ApiError, ClusterApi, NotFound, Object
from hopscope_operator.kubectl.svg import render_svg
from hopscope_probe.models import (
    ConnectionStatus,
    DestinationInfo,
    ProbeResult,
    Protocol,
    SourceInfo,
)
from hopscope_probe.render import render
from hopscope_probe.target import split_host_port

PROG = "kubectl hopscope"
# As `hopscope probe` (hopscope_probe.cli.EXIT_CODES), without importing the probe's CLI.
EXIT_CODES = {
    ConnectionStatus.REACHABLE: 0,
    ConnectionStatus.UNREACHABLE: 1,
    ConnectionStatus.DEGRADED: 1,
    ConnectionStatus.UNKNOWN: 2,
}
USAGE, INTERRUPTED = 2, 130
FINISHED = (Phase.COMPLETED, Phase.FAILED)
POLL_SECONDS = 1.0
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


class Unreadable(Exception):
    """A stored check these models cannot read, most likely written by a newer operator."""


# ---- arguments ------------------------------------------------------------------------------


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> None:  # type: ignore[override]
        raise UsageError(message)


def parser() -> argparse.ArgumentParser:
    top = _Parser(prog=PROG, description="Run and show hopscope ConnectivityChecks.")
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
    c.add_argument(
        "--wait", type=float, default=120.0, metavar="SECONDS", help="give up after (default 120)"
    )
    c.add_argument("--keep", action="store_true", help="keep the check afterwards")
    c.add_argument("--name", help="the check's name (default: hopscope-<random>)")
    _output_flags(c)
    s = sub.add_parser("show", help="render an existing check")
    s.add_argument("name")
    _output_flags(s)
    return top


def _output_flags(p: argparse.ArgumentParser) -> None:
    p.add_argument("-n", "--namespace", help="default: the kubeconfig context's namespace")
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
    if args.multipath:
        spec["path"] = {"multipath": True}
    name = args.name or f"hopscope-{secrets.token_hex(3)}"
    if not re.match(DNS_SUBDOMAIN, name) or len(name) > 253:
        raise UsageError(f"--name {name!r}: not a valid object name (lower case, digits, '-', '.')")
    if not re.match(DNS_LABEL, namespace) or len(namespace) > 63:
        raise UsageError(f"--namespace {namespace!r}: not a valid namespace name")
    body = {
        "apiVersion": API_VERSION,
        "kind": KIND,
        "metadata": {"name": name, "namespace": namespace, "labels": dict(MANAGED_BY)},
        "spec": spec,
    }
    try:
        return ConnectivityCheck.model_validate(body)
    except ValidationError as exc:
        raise UsageError(flag_errors(exc)) from exc


def check_body(check: ConnectivityCheck) -> Object:
    """What is sent: the fields the flags set, the API server fills in the defaults."""
    return check.model_dump(mode="json", by_alias=True, exclude_unset=True, exclude_none=True)


# ---- rendering ------------------------------------------------------------------------------


def destination_text(destination: Destination, namespace: str) -> str:
    for kind, prefix in (("service", "svc"), ("pod", "pod")):
        ref = getattr(destination, kind)
        if ref is not None:
            other = f".{ref.namespace}" if ref.namespace and ref.namespace != namespace else ""
            return f"{prefix}/{ref.name}{other}"
    if destination.node is not None:
        return f"node/{destination.node.name}"
    if destination.ip is not None and ":" in destination.ip and destination.port:
        return f"[{destination.ip}]"
    return destination.uri or destination.ip or destination.fqdn or "?"


def as_result(check: ConnectivityCheck) -> ProbeResult | None:
    """The status in the shape `hopscope probe` renders; None before the first run."""
    status = check.status
    if status is None or (status.runs == 0 and not status.hops and not status.issues):
        return None
    target = check.spec.destination
    namespace = check.metadata.get("namespace", "")
    return ProbeResult(
        connection_status=status.connection_status or ConnectionStatus.UNKNOWN,
        protocol=check.spec.protocol,
        source=status.source or SourceInfo(),
        destination=DestinationInfo(
            host=destination_text(target, namespace),
            port=None if target.uri else target.port,
            addresses=status.destination.addresses if status.destination else [],
        ),
        latency=status.latency,
        probes_sent=status.probes_sent,
        probes_failed=status.probes_failed,
        hops=status.hops,
        issues=status.issues,
        path_fingerprint=status.path_fingerprint,
    )


def source_text(check: ConnectivityCheck) -> str:
    spec = check.spec.source
    if spec.pod is not None:
        said = f"pod/{spec.pod.name}"
    elif spec.node is not None:
        said = f"node/{spec.node.name}"
    elif spec.workload is not None:
        said = f"{spec.workload.kind.lower()}/{spec.workload.name}"
    else:
        said = "pods matching a selector"
    seen = check.status.source if check.status else None
    if seen is None:
        return said
    if seen.pod and spec.pod is None:  # the pod picked from a selector or a workload
        said += f": pod {seen.pod}"
    if seen.node and spec.node is None:
        said += f" on {seen.node}"
    return said + (f" ({seen.address})" if seen.address else "")


def header(check: ConnectivityCheck) -> str:
    meta = check.metadata
    status = check.status
    phase = status.phase if status and status.phase else "Pending"
    runs = status.runs if status else 0
    when = (
        f", last {status.last_run_time:%Y-%m-%d %H:%M:%S}Z"
        if status and status.last_run_time
        else ""
    )
    lines = [
        f"check {meta.get('namespace', '')}/{meta.get('name', '')}: {phase}, runs {runs}{when}",
        f"from {source_text(check)}",
    ]
    if status:
        for condition in status.conditions:
            # Reachable is what the summary below says; Ready says why a check cannot run.
            if condition.type == "Ready" and condition.status != "True":
                lines.append(
                    f"{condition.type} {condition.status} ({condition.reason}): {condition.message}"
                )
        if status.analysis is not None:
            lines.append(f"configuration analysis: {status.analysis.result}")
    return "\n".join(lines)


def parse(obj: Object) -> ConnectivityCheck:
    """The stored check as the models read it; a null status field is an unset one."""
    status = obj.get("status")
    if status:
        obj = {**obj, "status": {k: v for k, v in status.items() if v is not None}}
    try:
        return ConnectivityCheck.model_validate(obj)
    except ValidationError as exc:
        error = exc.errors()[0]
        field = ".".join(str(part) for part in error["loc"])
        if error["type"] == "extra_forbidden":
            problem = "an unknown field"
        elif error["type"] == "enum":
            problem = f"an unknown value {error['input']!r}"
        else:
            problem = error["msg"]
        meta = obj["metadata"]
        raise Unreadable(
            f"cannot read connectivitycheck {meta.get('namespace')}/{meta.get('name')}:"
            f" {field}: {problem} (the plugin may be older than the operator;"
            " -o yaml shows the raw status)"
        ) from exc


def render_check(obj: Object, *, colour: bool = False) -> str:
    check = parse(obj)
    result = as_result(check)
    body = render(result, colour=colour) if result else "no result yet\n"
    return header(check) + "\n\n" + body


def output(obj: Object, args: argparse.Namespace, stdout: TextIO) -> None:
    if args.output == "json":
        stdout.write(json.dumps(obj, indent=2) + "\n")
    elif args.output == "yaml":
        import yaml

        stdout.write(yaml.safe_dump(obj, sort_keys=False))
    else:
        stdout.write(render_check(obj, colour=stdout.isatty()))
    if args.graph:
        check = parse(obj)
        status = check.status
        title = f"{check.metadata.get('namespace')}/{check.metadata.get('name')}: "
        target = check.spec.destination
        where = destination_text(target, str(check.metadata.get("namespace", "")))
        if target.port and not target.uri:
            where += f":{target.port}"
        title += f"{source_text(check)} → {where}"
        svg = render_svg(
            status.hops if status else [],
            status.issues if status else [],
            title,
            engine=args.graph_engine,
        )
        with open(args.graph, "w", encoding="utf-8") as out:
            out.write(svg)


# ---- commands -------------------------------------------------------------------------------


def state_line(obj: Object) -> str:
    """Phase and runs, and why the check cannot run yet if the operator said so."""
    status = obj.get("status") or {}
    text = f"{status.get('phase') or 'Pending'}, runs {status.get('runs', 0)}"
    not_ready = [
        c
        for c in status.get("conditions") or []
        if c.get("type") == "Ready" and c["status"] != "True"
    ]
    if not_ready:
        text += f" ({not_ready[0].get('reason')}: {not_ready[0].get('message', '')})"
    return text


def exit_code(obj: Object) -> int:
    """From the stored connectionStatus alone, so -o json and -o yaml read nothing else."""
    connection = (obj.get("status") or {}).get("connectionStatus")
    return EXIT_CODES.get(connection, EXIT_CODES[ConnectionStatus.UNKNOWN])


def finished(obj: Object) -> bool:
    status = obj.get("status") or {}
    return (
        status.get("observedGeneration") == obj["metadata"].get("generation")
        and status.get("phase") in FINISHED
    )


class Progress:
    """One line on stderr, rewritten in place on a terminal."""

    def __init__(self, stream: TextIO) -> None:
        self.stream = stream
        self.tty = stream.isatty()
        self.last = ""

    def __call__(self, message: str) -> None:
        if message == self.last:
            return
        self.last = message
        if self.tty:
            self.stream.write(f"\r\033[K… {message}")
        else:
            self.stream.write(f"hopscope: {message}\n")
        self.stream.flush()

    def done(self) -> None:
        if self.tty:
            self.stream.write("\r\033[K")
            self.stream.flush()


def run_check(
    args: argparse.Namespace,
    api: ClusterApi,
    namespace: str,
    *,
    sleep: Callable[[float], None],
    clock: Callable[[], float],
) -> int:
    check = build_check(args, namespace)
    name = check.metadata["name"]
    with _terminations_interrupt():
        api.create(CHECKS, namespace, check_body(check))
        return _wait_and_delete(args, api, namespace, name, sleep=sleep, clock=clock)


@contextlib.contextmanager
def _terminations_interrupt() -> Iterator[None]:
    """SIGTERM and SIGHUP (a closed terminal, `timeout`, a cancelled CI job) end the wait like
    Ctrl-C does, so the check made for it is deleted rather than left behind."""

    def interrupt(_signum: int, _frame: object) -> None:
        raise KeyboardInterrupt

    if threading.current_thread() is not threading.main_thread():
        yield  # signal handlers belong to the main thread
        return
    previous = {sig: signal.signal(sig, interrupt) for sig in (signal.SIGTERM, signal.SIGHUP)}
    try:
        yield
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)


def _wait_and_delete(
    args: argparse.Namespace,
    api: ClusterApi,
    namespace: str,
    name: str,
    *,
    sleep: Callable[[float], None],
    clock: Callable[[], float],
) -> int:
    progress = Progress(sys.stderr)
    deadline = clock() + args.wait
    try:
        while True:
            obj = api.get(CHECKS, namespace, name)
            progress(f"{name}: {state_line(obj)}")
            if finished(obj):
                break
            if clock() >= deadline:
                progress.done()
                print(
                    f"{PROG}: timed out after {args.wait:g}s waiting for {namespace}/{name}"
                    f" ({state_line(obj)})",
                    file=sys.stderr,
                )
                return USAGE
            sleep(POLL_SECONDS)
        progress.done()
        output(obj, args, sys.stdout)
        return exit_code(obj)
    except KeyboardInterrupt:
        progress.done()
        print(f"{PROG}: interrupted", file=sys.stderr)
        return INTERRUPTED
    finally:
        if args.keep:
            print(f"{PROG}: kept connectivitycheck {namespace}/{name}", file=sys.stderr)
        else:
            try:
                api.delete(CHECKS, namespace, name)
            except NotFound:
                pass
            except (ApiError, OSError, urllib3.exceptions.HTTPError) as exc:
                print(f"{PROG}: could not delete {namespace}/{name}: {exc}", file=sys.stderr)


def run_show(args: argparse.Namespace, api: ClusterApi, namespace: str) -> int:
    obj = api.get(CHECKS, namespace, args.name)
    output(obj, args, sys.stdout)
    return exit_code(obj)


def kube_api() -> ClusterApi:
    """The API server of the current kubeconfig context (or the in-cluster one)."""
    from kubernetes.config import ConfigException

    from hopscope_operator.kube import KubeApi

    try:
        return KubeApi()
    except (ConfigException, OSError) as exc:
        raise UsageError(f"no usable kubeconfig: {exc}") from exc


def main(
    argv: Sequence[str] | None = None,
    *,
    api: ClusterApi | None = None,
    sleep: Callable[[float], None] = time.sleep,
    clock: Callable[[], float] = time.monotonic,
) -> int:
    command = "hopscope"
    try:
        args = parser().parse_args(argv)
        command = args.command
        namespace = args.namespace or current_namespace()
        if api is None:
            api = kube_api()
        if args.command == "check":
            return run_check(args, api, namespace, sleep=sleep, clock=clock)
        return run_show(args, api, namespace)
    except UsageError as exc:
        print(f"{PROG} {command}: error: {exc}", file=sys.stderr)
    except NotFound as exc:
        print(f"{PROG} {command}: not found: {exc}", file=sys.stderr)
    except (Unreadable, ApiError, OSError, urllib3.exceptions.HTTPError) as exc:
        print(f"{PROG} {command}: {exc}", file=sys.stderr)
    except KeyboardInterrupt:
        return INTERRUPTED
    return USAGE


if __name__ == "__main__":
    sys.exit(main())
