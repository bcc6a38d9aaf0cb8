"""`kubectl hopscope`: run a (Cluster)ConnectivityCheck from the terminal, or show one.

    kubectl hopscope check --from pod/web-0 --to svc/db:5432 [-n NS] [--cluster] [--wait S] [--keep]
    kubectl hopscope show NAME [-n NS | --cluster] [-o text|json|yaml] [--graph out.svg]
    kubectl hopscope policy-check -f FILE|DIR [-f …] [--delete FILE|DIR] [--json] [-n NS | -A]

`check` builds the check from the flags (validated by the API model, so a bad flag is named
before anything is created), creates it, polls it until the operator has written a finished
status for its generation, prints the result the way `hopscope probe` does and deletes the check
unless `--keep` (also on timeout and Ctrl-C). stdout carries the result only; progress goes to
stderr. Exit codes as `hopscope probe`: 0 Reachable, 1 Unreachable or Degraded, 2 Unknown, a
bad argument, an API error, a timeout or a status this plugin cannot read as text; 130 on Ctrl-C.
`-o json` and `-o yaml` print the check as stored, so a newer operator's status prints too.

`policy-check` (module `policycheck`) replays the cluster's checks against its policies plus
proposed ones and lists those whose verdict would flip; it only reads (exit codes as `hopscope
policy diff`, and 3 when the answer is incomplete).

The command line (flags to a check) is `flags`, reading a stored check back `views`, the SVG
`svg`; this module runs the commands against the API and renders the result.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import signal
import sys
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from typing import TextIO

import urllib3

from hopscope_operator.api import ConnectivityCheck, Destination, Phase
from hopscope_operator.cluster import (
    CHECKS,
    CLUSTER_CHECKS,
    ApiError,
    ClusterApi,
    NotFound,
    Object,
    Resource,
    check_location,
)
from hopscope_operator.kubectl import policycheck
from hopscope_operator.kubectl.flags import (
    PROG,
    UsageError,
    build_check,
    check_body,
    current_namespace,
    parser,
)
from hopscope_operator.kubectl.svg import render_svg
from hopscope_operator.kubectl.views import Unreadable, header, parse, source_text
from hopscope_operator.names import NOT_PERMITTED_REASONS
from hopscope_operator.redact import without_userinfo
from hopscope_probe.models import (
    ConnectionStatus,
    ProbeResult,
)
from hopscope_probe.render import render

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
    uri = destination.uri and without_userinfo(destination.uri)
    return uri or destination.ip or destination.fqdn or "?"


def as_result(check: ConnectivityCheck) -> ProbeResult | None:
    """The status in the shape `hopscope probe` renders; None before the first run."""
    status = check.status
    if status is None or (status.runs == 0 and not status.hops and not status.issues):
        return None
    target = check.spec.destination
    host = destination_text(target, check.metadata.get("namespace", ""))
    return status.as_result(check.spec.protocol, host, None if target.uri else target.port)


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


def not_permitted(obj: Object) -> Object | None:
    """The Ready=False condition of a spec the operator will not run (the tenancy rule), if
    it says so of the current generation: waiting longer cannot change it."""
    generation = obj["metadata"].get("generation")
    for condition in (obj.get("status") or {}).get("conditions") or []:
        if (
            condition.get("type") == "Ready"
            and condition.get("reason") in NOT_PERMITTED_REASONS
            and condition.get("observedGeneration") in (None, generation)
        ):
            return condition
    return None


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
    where = check_location(check.kind, check.namespace)
    with _terminations_interrupt():
        api.create(where[0], where[1], check_body(check))
        return _wait_and_delete(args, api, where, name, sleep=sleep, clock=clock)


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
    where: tuple[Resource, str | None],
    name: str,
    *,
    sleep: Callable[[float], None],
    clock: Callable[[], float],
) -> int:
    resource, namespace = where
    # A ClusterConnectivityCheck has no namespace: it is named by its kind.
    shown = f"{namespace}/{name}" if namespace else f"{resource.kind.lower()} {name}"
    progress = Progress(sys.stderr)
    deadline = clock() + args.wait
    try:
        while True:
            obj = api.get(resource, namespace, name)
            progress(f"{name}: {state_line(obj)}")
            if finished(obj):
                break
            refused = not_permitted(obj)
            if refused is not None:
                progress.done()
                print(
                    f"{PROG}: {shown} cannot run: {refused['reason']}:"
                    f" {refused.get('message', '')}",
                    file=sys.stderr,
                )
                return USAGE
            if clock() >= deadline:
                progress.done()
                print(
                    f"{PROG}: timed out after {args.wait:g}s waiting for {shown}"
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
            kept = shown if not namespace else f"{resource.kind.lower()} {shown}"
            print(f"{PROG}: kept {kept}", file=sys.stderr)
        else:
            try:
                api.delete(resource, namespace, name)
            except NotFound:
                pass
            except (ApiError, OSError, urllib3.exceptions.HTTPError) as exc:
                print(f"{PROG}: could not delete {shown}: {exc}", file=sys.stderr)


def run_show(args: argparse.Namespace, api: ClusterApi, namespace: str) -> int:
    resource, where = check_location(
        CLUSTER_CHECKS.kind if args.cluster else CHECKS.kind, namespace
    )
    obj = api.get(resource, where, args.name)
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
        everywhere = getattr(args, "all_namespaces", False)
        namespace = None if everywhere else args.namespace or current_namespace()
        if api is None:
            api = kube_api()
        if args.command == "policy-check":
            return policycheck.run(args, api, namespace)
        assert namespace is not None
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
