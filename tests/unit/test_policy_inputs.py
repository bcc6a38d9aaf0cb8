"""`hopscope policy` on hostile manifests: every input ends in exit 0/1/2, and 2 names the file
and the place, bounded in memory and time (issue 11). Field-by-field cases are in
test_policy_cli.py; these are the loader's bounds and the properties over generated input."""

from __future__ import annotations

import io
import json
import os
from contextlib import redirect_stderr, redirect_stdout
from pathlib import Path
from typing import Any

import pytest
import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from hopscope_policy import cli, manifests, yamlload
from tests.limits import MIB, TRACEBACK, memory_cap, run_cli

PROPERTY = settings(
    max_examples=150,
    deadline=2000,  # ms per example
    database=None,
    derandomize=bool(os.environ.get("CI")),
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture],
)
HEAD = "apiVersion: networking.k8s.io/v1\nkind: NetworkPolicy\nmetadata: {name: p, namespace: x}\n"


def policy(tmp_path: Path, *argv: str) -> tuple[int, str, str]:
    out, err = io.StringIO(), io.StringIO()
    with redirect_stdout(out), redirect_stderr(err):
        try:
            code = cli.main([*argv])
        except SystemExit as exc:
            code = exc.code if isinstance(exc.code, int) else 2
    return code, out.getvalue(), err.getvalue()


def test_an_alias_bomb_in_a_policy_is_refused_within_bounds(tmp_path: Path) -> None:
    # 1.4 KB whose aliases, through a rule's peers and their selectors' values, make 8^6
    # values: it took 9.6 s and 900 MB. A child with 512 MiB and 30 s shows a relapse.
    levels = ["v0: &v0 [a, b, c, d, e, f, g, h]"]
    for i in range(1, 6):
        levels.append(f"v{i}: &v{i} [" + ", ".join([f"*v{i - 1}"] * 8) + "]")
    bomb = tmp_path / "bomb.yaml"
    bomb.write_text(
        HEAD
        + "\n".join(levels)
        + "\nspec:\n  podSelector: {}\n  ingress:\n  - from:\n    - podSelector:\n"
        "        matchExpressions: [{key: app, operator: In, values: *v5}]\n"
    )
    assert bomb.stat().st_size < 1500
    argv = ["policy", "--manifests", str(bomb), "--matrix", "--port", "80"]
    run = run_cli(argv, memory=512 * MIB)
    assert (run.returncode, run.stdout) == (2, "")
    assert f"{bomb}: line 1: not valid YAML: aliases (*name) expand to more than" in run.stderr
    assert TRACEBACK not in run.stderr


def test_a_fifo_is_named_as_no_regular_file(tmp_path: Path) -> None:
    fifo = tmp_path / "fifo.yaml"
    os.mkfifo(fifo)
    code, _, err = policy(tmp_path, "--manifests", str(fifo), "--matrix", "--port", "80")
    assert code == 2
    assert err == f"hopscope policy: error: {fifo}: not a regular file or folder\n"


def test_a_file_over_the_cap_is_refused_before_it_is_parsed(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(manifests, "MAX_FILE", 1024)
    big = tmp_path / "big.yaml"
    big.write_text("kind: Namespace\nmetadata: {name: x}\n---\n" * 100)
    code, _, err = policy(tmp_path, "--manifests", str(big), "--matrix", "--port", "80")
    assert code == 2
    assert err == f"hopscope policy: error: {big}: cannot read: larger than 1 KiB\n"


def test_merge_keys_may_override_and_anchors_within_bounds_still_work(tmp_path: Path) -> None:
    # Bounded, not banned: kubectl takes anchors and `<<`, so a policy using them still works.
    ok = tmp_path / "ok.yaml"
    ok.write_text(
        "kind: List\nitems:\n- {kind: Namespace, metadata: &meta {name: x, labels: {team: a}}}\n"
        "- kind: Pod\n  metadata: {<<: *meta, namespace: x, name: a}\n"
        "  spec: {containers: [{name: c}]}\n  status: {podIP: 10.0.0.1}\n"
    )
    code, out, err = policy(tmp_path, "--manifests", str(ok), "--matrix", "--port", "80")
    assert (code, err) == (0, "")
    assert "1 pods: 1 of 1 pairs allowed" in out


# ---- properties -----------------------------------------------------------------------------

KEYS = [
    "apiVersion",
    "kind",
    "metadata",
    "name",
    "namespace",
    "labels",
    "spec",
    "podSelector",
    "namespaceSelector",
    "policyTypes",
    "ingress",
    "egress",
    "from",
    "to",
    "ipBlock",
    "cidr",
    "except",
    "ports",
    "port",
    "endPort",
    "protocol",
    "matchLabels",
    "matchExpressions",
    "key",
    "operator",
    "values",
    "items",
    "containers",
    "containerPort",
    "status",
    "podIP",
    "podIPs",
    "ip",
    "hostNetwork",
    "template",
]
WORDS = st.sampled_from(
    [
        "NetworkPolicy",
        "Pod",
        "Namespace",
        "List",
        "PodList",
        "Deployment",
        "CronJob",
        "networking.k8s.io/v1",
        "TCP",
        "SCTP",
        "In",
        "Exists",
        "Ingress",
        "Egress",
        "10.0.0.0/8",
        "10.0.0.1",
        "10.0.0.1/8",
        "fe80::%eth0/64",
        "::ffff:10.0.0.0/104",
        "10.0.0.0/08",
        "http",
        "88:12",
        "",
        "x",
    ]
)
NUMBERS = st.one_of(st.integers(-2, 70000), st.booleans(), st.none())
SCALARS = st.one_of(WORDS, NUMBERS, st.text(max_size=12))
VALUES = st.recursive(
    SCALARS,
    lambda inner: st.one_of(
        st.lists(inner, max_size=4),
        st.dictionaries(st.sampled_from(KEYS), inner, max_size=5),
    ),
    max_leaves=30,
)
KINDS = st.sampled_from(["NetworkPolicy", "Pod", "Namespace", "List", "Deployment", "CronJob"])
OBJECTS = st.builds(
    lambda kind, rest: {**rest, "kind": kind},
    KINDS,
    st.dictionaries(st.sampled_from(KEYS), VALUES, max_size=5),
)
# Text that YAML 1.1 reads in surprising ways, or that bounds exist for.
SNIPPETS = st.sampled_from(
    [
        "port: 88:12",
        "x: &a [1, 2]\ny: [*a, *a]",
        "x: &a [*a]",
        "x: " + "[" * 1000 + "]" * 1000,
        "kind: Pod\nkind: Pod",
        "x: !!python/object:os.system ls",
        "x: *nowhere",
        "<<: {kind: Pod}",
        "x: 0x1F\ny: 010\nz: 1_000\nw: .inf",
        "? [a]\n: b",
        "x: 2001-12-14",
        "\t",
        "\x00",
        "---",
        "...",
        "%YAML 1.1\n---",
    ]
)


@st.composite
def manifest_texts(draw: st.DrawFn) -> str:
    docs = draw(st.lists(OBJECTS, min_size=1, max_size=3))
    text = "---\n".join(yaml.safe_dump(doc) for doc in docs)
    for _ in range(draw(st.integers(0, 2))):  # splice hostile YAML in at a line start
        lines = text.splitlines()
        at = draw(st.integers(0, len(lines)))
        lines.insert(at, draw(SNIPPETS))
        text = "\n".join(lines)
    return text


@PROPERTY
@given(text=manifest_texts(), matrix=st.booleans())
def test_any_manifest_ends_in_0_1_or_2_naming_the_file(
    text: str, matrix: bool, tmp_path: Path
) -> None:
    path = tmp_path / "m.yaml"
    path.write_text(text, encoding="utf-8", errors="surrogateescape")
    flow = ["--matrix"] if matrix else ["--from", "10.0.0.9", "--to", "x/a"]
    with memory_cap(256 * MIB):
        code, out, err = policy(tmp_path, "--manifests", str(path), *flow, "--port", "80")
    assert code in (0, 1, 2)
    assert TRACEBACK not in err
    if code == 2:
        assert out == ""
        assert err.startswith(f"hopscope policy: error: {path}: ") or "--" in err, err


# What YAML lets a file hold raw: no control characters (JSON's "\x7f" is no YAML).
TEXT = st.text(
    st.characters(exclude_categories=("Cc", "Cs"), exclude_characters="\ufffe\uffff"),
    max_size=12,
)
PLAIN = st.recursive(
    st.one_of(WORDS, NUMBERS, TEXT),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(TEXT, inner, max_size=4),
    max_leaves=20,
)


@PROPERTY
@given(PLAIN)
def test_the_loader_reads_back_what_yaml_and_json_write(data: Any) -> None:
    # YAML 1.2-ish numbers and the bounds change nothing for data written by PyYAML or JSON.
    # (Not ensure_ascii: PyYAML does not join a JSON surrogate pair, yaml.safe_load neither.)
    assert list(yamlload.load_all(yaml.safe_dump(data))) == [data]
    assert list(yamlload.load_all(json.dumps(data, ensure_ascii=False))) == [data]
