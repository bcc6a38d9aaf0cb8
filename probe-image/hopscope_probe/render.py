"""Human-readable rendering of a ProbeResult: summary, hop table, topology tree, paths,
endpoints, issues."""

from __future__ import annotations

from dataclasses import dataclass

from hopscope_probe.models import (
    ConnectionStatus,
    EndpointResult,
    Hop,
    HopType,
    Issue,
    Latency,
    PathFigures,
    ProbeResult,
)

RESET = "\033[0m"
COLOURS = {
    "red": "\033[31m",
    "yellow": "\033[33m",
    "green": "\033[32m",
    "dim": "\033[2m",
    "bold": "\033[1m",
}
STATUS_COLOUR = {
    ConnectionStatus.REACHABLE: "green",
    ConnectionStatus.DEGRADED: "yellow",
    ConnectionStatus.UNREACHABLE: "red",
    ConnectionStatus.UNKNOWN: "yellow",
}


@dataclass(frozen=True)
class Painter:
    enabled: bool

    def __call__(self, text: str, colour: str) -> str:
        return f"{COLOURS[colour]}{text}{RESET}" if self.enabled else text


def ms(value: float | None) -> str:
    return "-" if value is None else f"{value:.2f}"


def latency_text(latency: Latency | None) -> str:
    if latency is None:
        return "-"
    return f"{latency.min_ms:.2f}/{latency.avg_ms:.2f}/{latency.max_ms:.2f} ms"


def render(result: ProbeResult, *, colour: bool = False) -> str:
    paint = Painter(colour)
    sections = [summary(result, paint), hop_table(result.hops), topology(result.hops, paint)]
    sections += [path_table(result.paths, result.hops), endpoint_table(result.endpoints, paint)]
    sections.append(issues_text(result.issues, result.hops, paint))
    return "\n\n".join(s for s in sections if s) + "\n"


def summary(result: ProbeResult, paint: Painter) -> str:
    dest = result.destination
    where = dest.host + (f":{dest.port}" if dest.port else "")
    resolved = [a for a in dest.addresses if a != dest.host]
    lines = [
        f"{result.protocol} {where}"
        + (f" ({', '.join(resolved)})" if resolved else "")
        + f"  {paint(str(result.connection_status), STATUS_COLOUR[result.connection_status])}",
        f"probes: {result.probes_sent} sent, {result.probes_failed} failed   "
        f"latency min/avg/max: {latency_text(result.latency)}",
    ]
    if result.http and result.http.status_code is not None:
        t = result.http.timings
        phases = (
            f"   connect {t.connect_ms:.1f} ms, tls {t.tls_ms:.1f} ms, "
            f"first byte {t.processing_ms:.1f} ms"
            if t
            else ""
        )
        lines.append(f"http: status {result.http.status_code}{phases}")
    return "\n".join(lines)


def path_table(paths: list[PathFigures], hops: list[Hop]) -> str:
    """Each path apart, when there is more than one: its hops, flows, loss at its end."""
    if len(paths) < 2:
        return ""
    address = {hop.id: hop.address or "*" for hop in hops}
    lines = ["paths:"]
    for number, path in enumerate(paths, 1):
        via = " > ".join(address.get(h, h) for h in path.hop_ids)
        lines.append(
            f"  {number}  {via}   flows {','.join(map(str, path.flows))}   "
            f"{path.probes_failed}/{path.probes_sent} lost   {latency_text(path.latency)}"
        )
    return "\n".join(lines)


def endpoint_table(endpoints: list[EndpointResult], paint: Painter) -> str:
    if not endpoints:
        return ""
    lines = [f"{'ENDPOINT':<22} {'POD':<16} {'NODE':<14} {'STATUS':<12} SENT  LOST  LATENCY"]
    for e in endpoints:
        where = f"{e.address}:{e.port}" if e.port else e.address
        status = f"{e.connection_status!s:<12}"
        lines.append(
            f"{where:<22} {e.pod or '-':<16} {e.node or '-':<14} "
            f"{paint(status, STATUS_COLOUR[e.connection_status])} {e.probes_sent:>4}  "
            f"{e.probes_failed:>4}  {latency_text(e.latency)}"
        )
    return "\n".join(lines)


def hop_table(hops: list[Hop]) -> str:
    if not hops:
        return ""
    rows = [("TTL", "ADDRESS", "NAME", "MIN", "AVG", "MAX", "LOSS", "ISSUES")]
    for hop in sorted(hops, key=lambda h: (h.ttl if h.ttl is not None else 99, h.id)):
        loss = f"{100 * hop.probes_failed / hop.probes_sent:.0f}%" if hop.probes_sent else "-"
        lat = hop.latency
        rows.append(
            (
                "-" if hop.ttl is None else str(hop.ttl),
                hop.address or "*",
                hop.name or ("(source)" if hop.type == HopType.SOURCE else ""),
                ms(lat.min_ms if lat else None),
                ms(lat.avg_ms if lat else None),
                ms(lat.max_ms if lat else None),
                loss,
                ",".join(dict.fromkeys(str(i.type) for i in hop.issues)),
            )
        )
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    right = {0, 3, 4, 5, 6}
    return "\n".join(
        "  ".join(
            c.rjust(w) if i in right else c.ljust(w)
            for i, (c, w) in enumerate(zip(r, widths, strict=True))
        ).rstrip()
        for r in rows
    )


def hop_label(hop: Hop, paint: Painter) -> str:
    name = f" {hop.name}" if hop.name else ""
    lat = f"  {hop.latency.avg_ms:.2f} ms" if hop.latency else ""
    label = f"{hop.address or '*'}{name}{lat}"
    if hop.type == HopType.SOURCE:
        label = f"source {hop.address or ''}".rstrip()
    if hop.issues:
        marks = ", ".join(dict.fromkeys(str(i.type) for i in hop.issues))
        return f"{label}  {paint('✗ ' + marks, 'red')}"
    return label


def topology(hops: list[Hop], paint: Painter) -> str:
    """The hop graph as a tree; a hop reached again by another branch (ECMP rejoining) is
    shown once and referenced afterwards."""
    if not hops:
        return ""
    by_id = {h.id: h for h in hops}
    targets = {n for h in hops for n in h.next_hop_ids}
    roots = [h for h in hops if h.id not in targets] or hops[:1]
    lines: list[str] = []
    shown: set[str] = set()

    def walk(hop: Hop, prefix: str, connector: str) -> None:
        if hop.id in shown:
            lines.append(f"{prefix}{connector}{paint('↪ ' + (hop.address or '*'), 'dim')}")
            return
        shown.add(hop.id)
        lines.append(f"{prefix}{connector}{hop_label(hop, paint)}")
        children = [by_id[n] for n in hop.next_hop_ids if n in by_id]
        child_prefix = prefix + ("   " if connector in ("└─ ", "") else "│  ")
        for i, child in enumerate(children):
            walk(child, child_prefix, "└─ " if i == len(children) - 1 else "├─ ")

    for root in roots:
        walk(root, "", "")
    return "topology:\n" + "\n".join(lines)


def issues_text(issues: list[Issue], hops: list[Hop], paint: Painter) -> str:
    if not issues:
        return paint("no issues found", "green")
    where = {h.id: _place(h) for h in hops}
    lines = ["issues:"]
    for issue in issues:
        colour = "red" if issue.severity == "Error" else "yellow"
        at = f" at {where.get(issue.hop_id, issue.hop_id)}" if issue.hop_id else ""
        lines.append(f"  {paint(f'{issue.severity} {issue.type}', colour)}{at}: {issue.message}")
        lines.append(f"    hint: {issue.hint}")
        if issue.context:
            lines.append("    evidence: " + "; ".join(f"{c.key}={c.value}" for c in issue.context))
    return "\n".join(lines)


def _place(hop: Hop) -> str:
    """How an issue's location reads: the source by its role, a silent hop by its TTL."""
    if hop.type == HopType.SOURCE:
        return f"the source ({hop.address})" if hop.address else "the source"
    return hop.address or f"hop {hop.ttl} (no answer)"
