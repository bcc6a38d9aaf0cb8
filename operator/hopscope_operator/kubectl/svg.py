"""A check's topology as an SVG picture a person can open: hops left to right by TTL.

The built-in layout needs nothing but Python: one column per TTL, one row per ECMP branch, the
hops of a column ordered by where their predecessors sit (fewer crossing edges), every edge from
`nextHopIds`, and a hop carrying an Error issue drawn red with the issue types under it. Where
Graphviz' `dot` is installed, `render_svg(engine="auto")` lays the same graph out with it.

Every element a test or a script may look for carries plain attributes: a hop is
`<g class="hop …" data-hop-id=… data-address=…>`, an edge
`<path class="edge" data-from=… data-to=…>`.
"""

from __future__ import annotations

import math
import shutil
import subprocess
from collections import defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Literal

from hopscope_probe.models import Hop, HopType, Issue, Severity

Engine = Literal["auto", "builtin", "dot"]

NODE_W, NODE_H = 190, 58
COL_GAP, ROW_GAP = 60, 40
MARGIN, TITLE_H = 20, 30
ISSUE_LINE_H = 14
LABEL_CHARS = 26  # longer names are cut with an ellipsis
TITLE_SIZE = 14  # px, bold
# No font metrics at hand: 0.72 em per character is wider than DejaVu Sans Bold (the usual
# sans-serif) averages on names and addresses, so the canvas errs on the wide side.
TITLE_CHAR_EM = 0.72
TITLE_CHARS = 120  # longer titles are cut rather than widen the picture without bound
DOT_TIMEOUT_SECONDS = 20

COLOURS = {
    "ok": ("#f4f8fb", "#4a6785"),  # fill, stroke
    "source": ("#e8f4ea", "#3c7d47"),
    "silent": ("#f5f5f5", "#9a9a9a"),
    "warning": ("#fff6e0", "#c98a00"),
    "error": ("#fdecea", "#c62828"),
}


# ---- text -----------------------------------------------------------------------------------


def clean(text: str) -> str:
    """Characters XML 1.0 allows (a reverse-DNS name may carry anything)."""
    return "".join(
        c
        for c in text
        if c in "\t\n\r" or (" " <= c <= "\ud7ff") or ("\ue000" <= c <= "\ufffd") or c > "\uffff"
    )


def esc(text: str) -> str:
    """Text content and attribute values alike (quotes included)."""
    return (
        clean(text)
        .replace("&", "&amp;")
        .replace("<", "&lt;")
        .replace(">", "&gt;")
        .replace('"', "&quot;")
        .replace("'", "&#39;")
    )


def cut(text: str, limit: int = LABEL_CHARS) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "…"


def title_width(title: str) -> float:
    """The title's estimated drawn width in px (as cut to TITLE_CHARS)."""
    return len(clean(cut(title, TITLE_CHARS))) * TITLE_CHAR_EM * TITLE_SIZE


# ---- what is drawn --------------------------------------------------------------------------


def hop_issues(hop: Hop, issues: Iterable[Issue]) -> list[Issue]:
    """The hop's own issues and those of the check located at it, each once."""
    found: dict[tuple[str, str], Issue] = {}
    for issue in [*hop.issues, *(i for i in issues if i.hop_id == hop.id)]:
        found.setdefault((issue.type, issue.message), issue)
    return list(found.values())


def state(hop: Hop, issues: list[Issue]) -> str:
    if any(i.severity == Severity.ERROR for i in issues):
        return "error"
    if issues:
        return "warning"
    if hop.type == HopType.SOURCE:
        return "source"
    return "ok" if hop.address else "silent"


def label_lines(hop: Hop) -> list[str]:
    """Address (or "*"), name, then latency and loss."""
    if hop.type == HopType.SOURCE:
        first, second = "source", hop.address or hop.name or ""
    else:
        first, second = hop.address or "*", hop.name or ("no answer" if not hop.address else "")
    facts = []
    if hop.latency is not None:
        facts.append(f"avg {hop.latency.avg_ms:.2f} ms")
    if hop.probes_sent and hop.probes_failed:
        facts.append(f"loss {100 * hop.probes_failed / hop.probes_sent:.0f}%")
    return [cut(first), cut(second), "  ".join(facts)]


def edges(hops: Sequence[Hop]) -> list[tuple[str, str]]:
    known = {h.id for h in hops}
    return list(dict.fromkeys((h.id, n) for h in hops for n in h.next_hop_ids if n in known))


# ---- built-in layout ------------------------------------------------------------------------


@dataclass(frozen=True)
class Box:
    x: float
    y: float


def layout(hops: Sequence[Hop]) -> dict[str, Box]:
    """Columns by TTL (a hop without one goes one past its deepest predecessor), rows within a
    column ordered by the mean row of the hops leading to it, columns centred vertically."""
    parents: dict[str, list[str]] = defaultdict(list)
    for before, after in edges(hops):
        parents[after].append(before)
    column: dict[str, int] = {}
    for hop in sorted(hops, key=lambda h: h.ttl is None):
        if hop.ttl is not None:
            column[hop.id] = hop.ttl
        else:
            column[hop.id] = 1 + max((column.get(p, 0) for p in parents[hop.id]), default=0)
    first = min(column.values(), default=0)
    by_column: dict[int, list[Hop]] = defaultdict(list)
    for hop in hops:
        by_column[column[hop.id] - first].append(hop)
    row: dict[str, float] = {}
    for index in sorted(by_column):

        def barycentre(hop: Hop) -> tuple[float, str]:
            placed = [row[p] for p in parents[hop.id] if p in row]
            return (sum(placed) / len(placed) if placed else 0.0, hop.id)

        for i, hop in enumerate(sorted(by_column[index], key=barycentre)):
            row[hop.id] = i
    tallest = max((len(c) for c in by_column.values()), default=1)
    boxes: dict[str, Box] = {}
    for index, members in by_column.items():
        offset = (tallest - len(members)) / 2
        for hop in members:
            x = MARGIN + index * (NODE_W + COL_GAP)
            y = MARGIN + TITLE_H + (row[hop.id] + offset) * (NODE_H + ROW_GAP)
            boxes[hop.id] = Box(x, y)
    return boxes


def builtin_svg(hops: Sequence[Hop], issues: Sequence[Issue] = (), title: str = "") -> str:
    boxes = layout(hops)
    marks = {h.id: hop_issues(h, issues) for h in hops}
    width = max((b.x for b in boxes.values()), default=MARGIN) + NODE_W + MARGIN
    extra = max((len(m) for m in marks.values()), default=0) * ISSUE_LINE_H
    height = max((b.y for b in boxes.values()), default=MARGIN + TITLE_H) + NODE_H + extra
    width = max(width, 320, math.ceil(2 * MARGIN + title_width(title)))
    height += MARGIN + ISSUE_LINE_H
    out = [
        '<?xml version="1.0" encoding="UTF-8"?>',
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{width:.0f}" height="{height:.0f}"'
        f' viewBox="0 0 {width:.0f} {height:.0f}" font-family="sans-serif" font-size="12">',
        f"<title>{esc(title or 'hopscope topology')}</title>",
        "<defs>"
        '<marker id="arrow" viewBox="0 0 10 10" refX="10" refY="5" markerWidth="7"'
        ' markerHeight="7" orient="auto-start-reverse"><path d="M 0 0 L 10 5 L 0 10 z"'
        ' fill="#555"/></marker></defs>',
        f'<rect width="{width:.0f}" height="{height:.0f}" fill="white"/>',
    ]
    if title:
        out.append(
            f'<text class="title" x="{MARGIN}" y="{MARGIN + 12}" font-size="{TITLE_SIZE}"'
            f' font-weight="bold">{esc(cut(title, TITLE_CHARS))}</text>'
        )
    for before, after in edges(hops):
        out.append(_edge(before, after, boxes[before], boxes[after]))
    for hop in hops:
        out.append(_node(hop, boxes[hop.id], marks[hop.id]))
    out.append("</svg>")
    return "\n".join(out) + "\n"


def _edge(before: str, after: str, a: Box, b: Box) -> str:
    x1, y1 = a.x + NODE_W, a.y + NODE_H / 2
    x2, y2 = b.x, b.y + NODE_H / 2
    if x2 > x1:  # forwards: a gentle S-curve
        bend = (x2 - x1) / 2
        d = f"M {x1:.1f} {y1:.1f} C {x1 + bend:.1f} {y1:.1f}, {x2 - bend:.1f} {y2:.1f}, "
        d += f"{x2:.1f} {y2:.1f}"
    else:  # backwards or within a column (a loop): arc over the top
        top = min(a.y, b.y) - ROW_GAP / 2
        d = f"M {x1:.1f} {y1:.1f} C {x1 + COL_GAP:.1f} {top:.1f}, {x2 - COL_GAP:.1f} {top:.1f}, "
        d += f"{x2:.1f} {y2:.1f}"
    return (
        f'<path class="edge" data-from="{esc(before)}" data-to="{esc(after)}" d="{d}"'
        ' fill="none" stroke="#555" stroke-width="1.4" marker-end="url(#arrow)"/>'
    )


def _node(hop: Hop, box: Box, issues: list[Issue]) -> str:
    kind = state(hop, issues)
    fill, stroke = COLOURS[kind]
    types = ", ".join(dict.fromkeys(str(i.type) for i in issues))
    attrs = (
        f'class="hop {kind}" data-hop-id="{esc(hop.id)}" data-address="{esc(hop.address or "*")}"'
    )
    if types:
        attrs += f' data-issues="{esc(types)}"'
    tooltip = [f"{hop.address or '*'}" + (f" ({hop.name})" if hop.name else "")]
    tooltip += [f"{i.severity} {i.type}: {i.message}" for i in issues]
    parts = [
        f"<g {attrs}>",
        f"<title>{esc(chr(10).join(tooltip))}</title>",
        f'<rect x="{box.x:.1f}" y="{box.y:.1f}" width="{NODE_W}" height="{NODE_H}" rx="8"'
        f' fill="{fill}" stroke="{stroke}" stroke-width="{2.5 if kind == "error" else 1.5}"/>',
    ]
    cx = box.x + NODE_W / 2
    lines = label_lines(hop)
    styles = ['font-weight="bold"', 'fill="#333"', 'fill="#555" font-size="11"']
    for i, (text, style) in enumerate(zip(lines, styles, strict=True)):
        if text:
            y = box.y + 17 + i * 15
            parts.append(
                f'<text class="label" x="{cx:.1f}" y="{y:.1f}" text-anchor="middle" {style}>'
                f"{esc(text)}</text>"
            )
    for i, issue in enumerate(issues):
        colour = COLOURS["error" if issue.severity == Severity.ERROR else "warning"][1]
        y = box.y + NODE_H + 13 + i * ISSUE_LINE_H
        parts.append(
            f'<text class="issue" x="{cx:.1f}" y="{y:.1f}" text-anchor="middle"'
            f' fill="{colour}" font-weight="bold">✗ {esc(f"{issue.severity} {issue.type}")}</text>'
        )
    parts.append("</g>")
    return "\n".join(parts)


# ---- Graphviz -------------------------------------------------------------------------------


def dot_quote(text: str) -> str:
    return '"' + clean(text).replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n") + '"'


def to_dot(hops: Sequence[Hop], issues: Sequence[Issue] = (), title: str = "") -> str:
    lines = [
        "digraph topology {",
        "  rankdir=LR;",
        '  node [shape=box, style="rounded,filled", fontname="sans-serif", fontsize=11];',
    ]
    if title:
        lines.append(f"  label={dot_quote(title)}; labelloc=t;")
    for hop in hops:
        found = hop_issues(hop, issues)
        kind = state(hop, issues=found)
        fill, stroke = COLOURS[kind]
        text = [line for line in label_lines(hop) if line]
        text += [f"✗ {i.severity} {i.type}" for i in found]
        lines.append(
            f"  {dot_quote(hop.id)} [label={dot_quote(chr(10).join(text))},"
            f' fillcolor="{fill}", color="{stroke}", id={dot_quote("hop-" + hop.id)}];'
        )
    for before, after in edges(hops):
        lines.append(f"  {dot_quote(before)} -> {dot_quote(after)};")
    lines.append("}")
    return "\n".join(lines) + "\n"


def render_svg(
    hops: Sequence[Hop],
    issues: Sequence[Issue] = (),
    title: str = "",
    *,
    engine: Engine = "builtin",
) -> str:
    """The topology as SVG: `dot` when asked (or, with "auto", when on PATH), else built-in.

    With "auto", a `dot` that fails falls back to the built-in layout; with "dot" it raises."""
    dot = shutil.which("dot") if engine != "builtin" else None
    if engine == "dot" and dot is None:
        raise FileNotFoundError("Graphviz 'dot' is not on PATH")
    if dot is not None:
        try:
            done = subprocess.run(
                [dot, "-Tsvg"],
                input=to_dot(hops, issues, title),
                capture_output=True,
                text=True,
                timeout=DOT_TIMEOUT_SECONDS,
                check=True,
            )
            return done.stdout
        except (OSError, subprocess.SubprocessError):
            if engine == "dot":
                raise
    return builtin_svg(hops, issues, title)
