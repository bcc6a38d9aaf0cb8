"""`hopscope probe`: the command-line contract of the probe engine.

stdout carries the result only (one JSON document with --json); progress and logs go to stderr.
Exit codes: 0 Reachable, 1 Unreachable or Degraded, 2 the probe could not run or bad arguments.
"""

from __future__ import annotations

import argparse
import logging
import sys
from collections.abc import Sequence
from typing import TextIO

from pydantic import ValidationError

from hopscope_probe import files
from hopscope_probe.models import (
    ConnectionStatus,
    HttpOptions,
    IPVersion,
    PathMode,
    ProbeRequest,
    Protocol,
    Thresholds,
)
from hopscope_probe.runner import Where, run_in
from hopscope_probe.target import check_host, parse_uri, split_host_port

EXIT_CODES = {
    ConnectionStatus.REACHABLE: 0,
    ConnectionStatus.UNREACHABLE: 1,
    ConnectionStatus.DEGRADED: 1,
    ConnectionStatus.UNKNOWN: 2,
}
PORTLESS = {Protocol.ICMP, Protocol.DNS}


class UsageError(Exception):
    """Bad arguments; the message names the flag."""


def parser(*, agent_flags: bool = True) -> argparse.ArgumentParser:
    """Without `agent_flags`, `hopscope agent`'s flags are left out: the agent's module (an HTTP
    server, TLS, TokenReview) is only loaded for that command, not at every probe's start."""
    top = argparse.ArgumentParser(
        prog="hopscope", description="Connection troubleshooting: hop-by-hop, with diagnosis."
    )
    sub = top.add_subparsers(dest="command", required=True)
    p = sub.add_parser("probe", help="troubleshoot one connection from here (or a namespace)")
    dest = p.add_mutually_exclusive_group(required=True)
    dest.add_argument("--to", metavar="HOST[:PORT]", help="destination: IP, name, [v6]:port")
    dest.add_argument("--uri", metavar="URL", help="HTTP(S) destination; implies the protocol")
    p.add_argument("--protocol", type=str.lower, choices=[x.lower() for x in Protocol])
    p.add_argument("--count", type=whole_number, default=4, help="connection probes (default 4)")
    p.add_argument("--timeout", type=float, default=2.0, help="seconds per probe (default 2)")
    p.add_argument("--max-hops", type=whole_number, default=30)
    p.add_argument("--multipath", action="store_true", help="trace every ECMP path")
    p.add_argument(
        "--mtu",
        action="store_true",
        help="probe the path MTU with DF packets of 1500..1280 bytes (runs by itself when a "
        "transfer stalls after the connection opened)",
    )
    p.add_argument("--no-path", action="store_true", help="skip path discovery")
    p.add_argument("--path-on-failure", action="store_true", help="trace only if probes fail")
    p.add_argument("--source-port", type=whole_number, default=0)
    p.add_argument("--ipv6", action="store_true", help="prefer IPv6 when a name has both")
    ns = p.add_mutually_exclusive_group()
    ns.add_argument("--netns", metavar="PATH", help="run inside this network namespace")
    ns.add_argument("--pid", type=whole_number, help="run inside this process's network namespace")
    ns.add_argument("--pod-uid", metavar="UID", help="run inside this pod's network namespace")
    p.add_argument("--resolv-conf", metavar="PATH", help="resolver config (default: the source's)")
    p.add_argument("--ca-file", metavar="PATH", help="extra CA bundle for HTTPS")
    p.add_argument("--method", default="GET", help="HTTP method")
    p.add_argument("--header", action="append", default=[], metavar="NAME:VALUE")
    p.add_argument("--valid-status", action="append", metavar="CODE", help="e.g. 200 or 2xx")
    p.add_argument("--latency-threshold-ms", type=float, default=200.0)
    p.add_argument("--loss-threshold-percent", type=float, default=5.0)
    p.add_argument("--json", action="store_true", help="print one ProbeResult JSON document")
    p.add_argument(
        "--endpoint",
        action="append",
        default=[],
        metavar="ADDR:PORT[,POD[,NODE]]",
        help="a backend behind the destination Service, probed directly too (repeatable)",
    )
    b = sub.add_parser("batch", help="run the operator's batch of checks, one JSON line each")
    b.add_argument(
        "--input", metavar="FILE", help="batch JSON file, '-' for stdin (default: $HOPSCOPE_BATCH)"
    )
    # Parsed by hopscope_policy.cli (the probe image has it): '+' as the only prefix
    # makes argparse hand every flag through untouched.
    pol = sub.add_parser(
        "policy", help="NetworkPolicy verdicts from manifests", add_help=False, prefix_chars="+"
    )
    pol.add_argument("args", nargs=argparse.REMAINDER)
    serve = sub.add_parser("agent", help="serve probes over HTTP (workload sidecar)")
    if agent_flags:
        from hopscope_probe import agent

        agent.add_arguments(serve)
    return top


def whole_number(text: str) -> int:
    """An integer in ASCII digits: int() would also read '١٢', '1_0' and ' 7 '."""
    body = text.removeprefix("-")
    if not (body.isascii() and body.isdigit()):
        raise argparse.ArgumentTypeError(f"{text!r}: expected a whole number")
    return int(text)


def host_and_port(value: str) -> tuple[str, int | None]:
    try:
        host, port = split_host_port(value)
        return check_host(host), port
    except ValueError as exc:
        raise UsageError(f"--to {value!r}: {exc}") from exc


def endpoint_target(value: str) -> dict[str, object]:
    where, *names = value.split(",")
    if len(names) > 2:
        raise UsageError(f"--endpoint {value!r}: expected ADDR:PORT[,POD[,NODE]]")
    try:
        address, port = split_host_port(where)
    except ValueError as exc:
        raise UsageError(f"--endpoint {value!r}: {exc}") from exc
    pod, node = [*names, None, None][:2]
    return {"address": address, "port": port, "pod": pod or None, "node": node or None}


def build_request(args: argparse.Namespace) -> ProbeRequest:
    if args.uri is not None:
        try:
            protocol, host, _ = parse_uri(args.uri)
        except ValueError as exc:
            raise UsageError(f"--uri {args.uri!r}: {exc}") from exc
        if args.protocol and args.protocol.upper() != protocol:
            raise UsageError(f"--protocol {args.protocol} contradicts --uri {args.uri}")
        port = None  # the probe takes it from the URI
    else:
        host, port = host_and_port(args.to)
        protocol = Protocol((args.protocol or "tcp").upper())
        if port is None and protocol not in PORTLESS | {Protocol.HTTP, Protocol.HTTPS}:
            raise UsageError(f"--to {args.to!r}: {protocol} needs a port (HOST:PORT)")
    headers = []
    for raw in args.header:
        name, sep, value = raw.partition(":")
        if not sep or not name.strip():
            raise UsageError(f"--header {raw!r}: expected NAME:VALUE")
        headers.append({"name": name.strip(), "value": value.strip()})  # checked below
    if args.no_path and args.path_on_failure:
        raise UsageError("--no-path and --path-on-failure exclude each other")
    path_mode = PathMode.ALWAYS
    if args.no_path:
        path_mode = PathMode.NEVER
    elif args.path_on_failure:
        path_mode = PathMode.ON_FAILURE
    fields = {
        "host": host,
        "port": port,
        "protocol": protocol,
        "uri": args.uri,
        "preferred_ip_version": IPVersion.IPV6 if args.ipv6 else IPVersion.IPV4,
        "count": args.count,
        "timeout_seconds": args.timeout,
        "max_hops": args.max_hops,
        "multipath": args.multipath,
        "mtu": args.mtu,
        "path_mode": path_mode,
        "source_port": args.source_port,
        "ca_file": args.ca_file,
        "endpoints": [endpoint_target(raw) for raw in args.endpoint],
    }
    try:
        return ProbeRequest(
            **fields,
            thresholds=Thresholds(
                latency_ms=args.latency_threshold_ms, loss_percent=args.loss_threshold_percent
            ),
            http=HttpOptions(
                method=args.method.upper(),
                headers=headers,
                valid_status_codes=args.valid_status or ["2xx"],
            ),
        )
    except ValidationError as exc:
        raise UsageError(flag_errors(exc)) from exc


FLAG_OF = {
    "count": "--count",
    "timeout_seconds": "--timeout",
    "max_hops": "--max-hops",
    "source_port": "--source-port",
    "port": "--to (port)",
    "latency_ms": "--latency-threshold-ms",
    "loss_percent": "--loss-threshold-percent",
    "method": "--method",
    "valid_status_codes": "--valid-status",
    "headers": "--header",
    "name": "--header",
    "value": "--header",
    "host": "--to",
    "endpoints": "--endpoint",
    "address": "--endpoint",
}


def flag_errors(exc: ValidationError) -> str:
    parts = []
    for err in exc.errors():
        # The field, not a list item's index ("valid_status_codes", 0).
        field = next((str(part) for part in reversed(err["loc"]) if isinstance(part, str)), "?")
        parts.append(f"{FLAG_OF.get(field, field)}: {err['msg']}")
    return "; ".join(parts)


def check_where(args: argparse.Namespace) -> Where:
    """The source flags, checked before anything runs: a wrong one must not quietly probe from
    somewhere else, or read a file that never ends."""
    if args.netns is not None and not args.netns.strip():
        raise UsageError("--netns: empty path (leave the flag out to probe from here)")
    if args.pid is not None and args.pid < 1:
        raise UsageError(f"--pid {args.pid}: expected a process ID (1 or more)")
    for flag, path, cap in (
        ("--resolv-conf", args.resolv_conf, files.MAX_RESOLV_CONF),
        ("--ca-file", args.ca_file, files.MAX_CA_FILE),
    ):
        if path is not None:
            try:
                files.read_bounded(path, cap)
            except OSError as exc:
                raise UsageError(f"{flag} {path}: cannot read: {exc.strerror or exc}") from exc
    return Where(
        netns_path=args.netns, pid=args.pid, pod_uid=args.pod_uid, resolv_conf=args.resolv_conf
    )


def run_probe(args: argparse.Namespace) -> int:
    request = build_request(args)
    where = check_where(args)
    progress = Progress(sys.stderr)
    try:
        result = run_in(request, where, progress)
    finally:
        progress.done()
    if args.json:
        sys.stdout.write(result.to_json() + "\n")
    else:
        from hopscope_probe.render import render

        sys.stdout.write(render(result, colour=sys.stdout.isatty()))
    return EXIT_CODES[result.connection_status]


def run_batch(args: argparse.Namespace) -> int:
    from hopscope_probe import batch

    try:
        loaded = batch.load(args.input)
    except ValidationError as exc:
        raise UsageError(f"batch: {batch_errors(exc)}") from exc
    except (OSError, ValueError) as exc:
        raise UsageError(f"batch: {exc}") from exc
    for refused in loaded.refused:
        print(refused.to_json(), flush=True)
    if loaded.batch is not None:
        batch.run_batch(loaded.batch, sys.stdout)
    return 0


def batch_errors(exc: ValidationError) -> str:
    return "; ".join(
        f"{'.'.join(str(part) for part in err['loc'])}: {err['msg']}" for err in exc.errors()
    )


class Progress:
    """One line on stderr that says what the probe is doing (rewritten in place on a tty)."""

    def __init__(self, stream: TextIO) -> None:
        self.stream = stream
        self.tty = stream.isatty()

    def __call__(self, message: str) -> None:
        if self.tty:
            self.stream.write(f"\r\033[K… {message}")
        else:
            self.stream.write(f"hopscope: {message}\n")
        self.stream.flush()

    def done(self) -> None:
        if self.tty:
            self.stream.write("\r\033[K")
            self.stream.flush()


def main(argv: Sequence[str] | None = None) -> int:
    logging.basicConfig(level=logging.WARNING, stream=sys.stderr, format="hopscope: %(message)s")
    argv = list(sys.argv[1:] if argv is None else argv)
    args = parser(agent_flags=argv[:1] == ["agent"]).parse_args(argv)
    try:
        if args.command == "probe":
            return run_probe(args)
        if args.command == "batch":
            return run_batch(args)
        if args.command == "agent":
            from hopscope_probe import agent

            return agent.main(args)
        if args.command == "policy" and args.args[:1] == ["diff"]:
            from hopscope_policy.diffcli import main as diff_main

            return diff_main(args.args[1:])
        if args.command == "policy":
            from hopscope_policy.cli import main as policy_main

            return policy_main(args.args)
    except UsageError as exc:
        print(f"hopscope {args.command}: error: {exc}", file=sys.stderr)
        return 2
    return 2


if __name__ == "__main__":
    sys.exit(main())
