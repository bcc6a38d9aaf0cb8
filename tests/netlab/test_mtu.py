"""Path-MTU faults, for real: a 1280-byte link between r2 and r3 in a path of 1500-byte links.

Where r2 and r3 drop their own frag-needed / packet-too-big, the link is a black hole: the
connection opens, the response's full-size segments vanish, and the MTU probe must name r2 (the
last hop large probes get past) with the sizes that passed and failed. Where they send them,
path-MTU discovery works and the probe reports the next-hop MTU they name.
"""

from __future__ import annotations

import pytest

from hopscope_probe.models import ConnectionStatus, IssueType, Severity

from .lab import Lab
from .test_scenarios import hop_of, issues_of, probe, the_issue

BODY = 200_000  # many full-size segments: a download, not a health check


def url(lab: Lab, v: int) -> str:
    host = lab["dst"].addr(v)
    return f"http://{host if v == 4 else f'[{host}]'}:8080/"


def context(issue) -> dict[str, str]:
    return {item.key: str(item.value) for item in issue.context}


@pytest.mark.parametrize("v", [4, 6])
def test_a_black_hole_stalls_the_download_and_is_named_at_its_hop(lab: Lab, v: int):
    lab.set_link_mtu("r2", "r3", 1280, drop_too_big=True)
    lab.start_http_server("dst", 8080, body_bytes=BODY)
    code, result = probe(lab, "--uri", url(lab, v), "--count", "1")
    assert code == 1
    assert result.connection_status == ConnectionStatus.UNREACHABLE
    assert result.http.status_code == 200  # the headers came: the stall is in the body
    issue = the_issue(result, IssueType.MTU)
    assert issue.severity == Severity.ERROR
    assert hop_of(result, issue.hop_id).address == lab["r2"].addr(v)
    found = context(issue)
    assert (found["largestPassed"], found["smallestFailed"]) == ("1280", "1400")
    assert found["interfaceMtu"] == "1500"
    # The MTU issue explains the stall: no "does not speak HTTP" beside it.
    assert issues_of(result, IssueType.HTTP_STATUS) == []


def test_a_black_hole_under_a_passing_tcp_check_degrades_it_on_request(lab: Lab):
    lab.set_link_mtu("r2", "r3", 1280, drop_too_big=True)
    lab.start_tcp_server("dst", 8080)
    code, result = probe(lab, "--to", f"{lab['dst'].addr()}:8080", "--mtu")
    assert code == 1
    assert result.connection_status == ConnectionStatus.DEGRADED  # SYNs are small: they pass
    issue = the_issue(result, IssueType.MTU)
    assert hop_of(result, issue.hop_id).address == lab["r2"].addr()


@pytest.mark.parametrize("v", [4, 6])
def test_a_link_that_says_frag_needed_is_reported_with_its_mtu(lab: Lab, v: int):
    lab.set_link_mtu("r2", "r3", 1280, drop_too_big=False)
    lab.start_http_server("dst", 8080, body_bytes=BODY)
    code, result = probe(lab, "--uri", url(lab, v), "--count", "1", "--mtu")
    assert code == 0, result.issues
    assert result.connection_status == ConnectionStatus.REACHABLE  # PMTUD did its job
    (issue,) = issues_of(result, IssueType.MTU)
    assert issue.severity == Severity.WARNING
    assert hop_of(result, issue.hop_id).address == lab["r2"].addr(v)
    assert context(issue)["nextHopMtu"] == "1280"
    assert context(issue)["largestPassed"] == "1280"


def test_a_healthy_path_passes_the_mtu_probe(lab: Lab):
    lab.start_http_server("dst", 8080, body_bytes=BODY)
    code, result = probe(lab, "--uri", url(lab, 4), "--count", "1", "--mtu")
    assert code == 0, result.issues
    assert result.issues == []


def test_a_black_hole_under_https_is_named_not_a_tls_failure(lab: Lab):
    """The server's TLS flight (its certificate) and the body are full-size: whichever stalls,
    the MTU probe runs and the stall is not blamed on TLS or HTTP."""
    lab.set_link_mtu("r2", "r3", 1280, drop_too_big=True)
    lab.start_http_server("dst", 8443, tls="valid", body_bytes=BODY)
    code, result = probe(
        lab, "--uri", "https://dst.lab.test:8443/", "--count", "1", "--ca-file", lab.ca_file
    )
    assert code == 1
    issue = the_issue(result, IssueType.MTU)
    assert hop_of(result, issue.hop_id).address == lab["r2"].addr()
    assert issues_of(result, IssueType.TLS) == issues_of(result, IssueType.HTTP_STATUS) == []
