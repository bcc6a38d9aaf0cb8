"""Rendering of recorded results and the CLI's argument contract."""

from __future__ import annotations

import json

import pytest

from hopscope_probe import cli
from hopscope_probe.models import (
    ConnectionStatus,
    Hop,
    HopType,
    Issue,
    IssueType,
    Latency,
    Origin,
    ProbeResult,
    Severity,
)
from hopscope_probe.render import render
from hopscope_probe.target import split_host_port
from tests import builders


def lat(v: float) -> Latency:
    return Latency(min_ms=v, avg_ms=v, max_ms=v)


def ecmp_result() -> ProbeResult:
    drop = Issue(
        type=IssueType.FIREWALL,
        severity=Severity.ERROR,
        origin=Origin.INBOUND,
        hop_id="h4-198.18.4.2",
        message="silently dropped",
        hint="check the rules",
    )
    hops = [
        Hop(id="source", type=HopType.SOURCE, address="198.18.1.2", ttl=0, next_hop_ids=["h1-a"]),
        Hop(
            id="h1-a",
            type=HopType.ROUTER,
            address="198.18.1.1",
            ttl=1,
            latency=lat(1),
            next_hop_ids=["h2-b", "h2-c"],
            probes_sent=6,
        ),
        Hop(
            id="h2-b",
            type=HopType.ROUTER,
            address="198.18.2.2",
            name="r2.lab.test",
            ttl=2,
            latency=lat(2),
            next_hop_ids=["h3-d"],
            probes_sent=3,
        ),
        Hop(
            id="h2-c",
            type=HopType.ROUTER,
            address="198.18.6.2",
            name="r2b.lab.test",
            ttl=2,
            latency=lat(2.5),
            next_hop_ids=["h3-d"],
            probes_sent=3,
            probes_failed=1,
        ),
        Hop(
            id="h3-d",
            type=HopType.ROUTER,
            address="198.18.3.2",
            ttl=3,
            latency=lat(3),
            next_hop_ids=["h4-198.18.4.2"],
            probes_sent=6,
        ),
        Hop(
            id="h4-198.18.4.2",
            type=HopType.DESTINATION,
            address="198.18.4.2",
            ttl=4,
            probes_sent=6,
            probes_failed=6,
            issues=[drop],
        ),
    ]
    return builders.result(
        ConnectionStatus.UNREACHABLE,
        host="dst.lab.test",
        port=80,
        addresses=["198.18.4.2"],
        sent=4,
        hops=hops,
        issues=[drop],
    )


def test_render_shows_every_hop_both_ecmp_branches_and_the_located_issue():
    text = render(ecmp_result())
    for address in ("198.18.1.1", "198.18.2.2", "198.18.6.2", "198.18.3.2", "198.18.4.2"):
        assert address in text
    tree = text.split("topology:\n", 1)[1].split("\n\n", 1)[0].splitlines()
    assert tree[0] == "source 198.18.1.2"
    assert tree[2].strip().startswith("├─ 198.18.2.2 r2.lab.test")
    assert tree[-1].strip().startswith("└─ ↪ 198.18.3.2")  # the rejoin, shown once
    assert any("198.18.4.2" in line and "✗ Firewall" in line for line in tree)
    assert "Error Firewall at 198.18.4.2: silently dropped" in text
    assert "33%" in text  # r2b lost one of three probes
    assert "\033[" not in text


def test_render_colours_only_when_asked():
    assert "\033[31m" in render(ecmp_result(), colour=True)


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("10.1.2.3:80", ("10.1.2.3", 80)),
        ("db.example.com", ("db.example.com", None)),
        ("[2001:db8::1]:443", ("2001:db8::1", 443)),
        ("2001:db8::1", ("2001:db8::1", None)),
    ],
)
def test_split_host_port(value, expected):
    assert split_host_port(value) == expected


@pytest.mark.parametrize(
    ("argv", "flag"),
    [
        (["--to", "h:99999"], "--to"),
        (["--to", "h"], "needs a port"),
        (["--to", "h:80", "--count", "0"], "--count"),
        (["--to", "h:80", "--timeout", "-1"], "--timeout"),
        (["--to", "h:80", "--source-port", "70000"], "--source-port"),
        (["--uri", "ftp://x/"], "--uri"),
        (["--uri", "http://x/", "--protocol", "tcp"], "--protocol"),
        (["--to", "h:80", "--header", "nocolon"], "--header"),
        (["--uri", "https://x/", "--valid-status", "foo"], "--valid-status"),
        (["--uri", "https://x/", "--header", "X-Big: " + "a" * 3000], "--header"),
        (["--uri", "https://x/", "--header", "X-Bad: caf\u00e9"], "--header"),
        (["--uri", "https://x/", "--valid-status", "2xx", "--valid-status", "600"], "--valid-st"),
        (["--to", "h:80", "--endpoint", "10.0.0.1:99999"], "--endpoint"),
        (["--to", "h:80", "--endpoint", "10.0.0.1:80,a,b,c"], "--endpoint"),
        (["--to", "h:80", *["--endpoint", "10.0.0.1:80"] * 11], "--endpoint"),
    ],
)
def test_bad_arguments_name_the_flag_and_exit_2(argv, flag, capsys):
    assert cli.main(["probe", *argv]) == 2
    err = capsys.readouterr()
    assert flag in err.err
    assert err.out == ""


def test_unknown_namespace_is_an_unknown_result_in_json(capsys):
    code = cli.main(["probe", "--to", "198.18.4.2:80", "--netns", "/run/netns/nope", "--json"])
    out = capsys.readouterr().out
    doc = json.loads(out)
    assert code == 2
    assert doc["connectionStatus"] == "Unknown"
    assert doc["issues"][0]["type"] == "Probe"
    assert "/run/netns/nope" in doc["issues"][0]["message"]
    assert ProbeResult.model_validate_json(out).connection_status == ConnectionStatus.UNKNOWN
