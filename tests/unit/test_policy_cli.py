"""`hopscope policy` on manifest folders: verdicts, exit codes, JSON shapes, bad input named."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from hopscope_policy import cli
from hopscope_probe import cli as probe_cli

NAMESPACES = """
apiVersion: v1
kind: Namespace
metadata: {name: x, labels: {team: front}}
---
apiVersion: v1
kind: Namespace
metadata: {name: y}
---
"""
PODS = """
apiVersion: v1
kind: List
items:
- apiVersion: v1
  kind: Pod
  metadata: {name: a, namespace: x, labels: {app: client}}
  spec: {containers: [{name: c}]}
  status: {podIP: 10.0.1.1}
- apiVersion: v1
  kind: Pod
  metadata: {name: b, namespace: x, labels: {app: other}}
  spec: {containers: [{name: c}]}
  status: {podIP: 10.0.1.2}
"""
DEPLOYMENT = """
apiVersion: apps/v1
kind: Deployment
metadata: {name: web, namespace: y}
spec:
  selector: {matchLabels: {app: web}}
  template:
    metadata: {labels: {app: web}}
    spec:
      containers:
      - name: web
        ports: [{name: http, containerPort: 8080}]
"""
POLICIES = """
apiVersion: networking.k8s.io/v1
kind: NetworkPolicy
metadata: {name: deny-all, namespace: y}
spec: {podSelector: {}, policyTypes: [Ingress]}
---
apiVersion: networking.k8s.io/v1
kind: NetworkPolicy
metadata: {name: web-from-front, namespace: y}
spec:
  podSelector: {matchLabels: {app: web}}
  ingress:
  - from:
    - namespaceSelector: {matchLabels: {team: front}}
      podSelector: {matchLabels: {app: client}}
    ports: [{port: http}]
"""


@pytest.fixture
def manifests(tmp_path: Path) -> Path:
    root = tmp_path / "manifests"
    files = {
        "namespaces.yaml": NAMESPACES,
        "apps/pods.yml": PODS,
        "apps/web/deployment.yaml": DEPLOYMENT,
        "policies/web.yaml": POLICIES,
        "README.md": "# not a manifest: skipped by extension\n",
    }
    for name, text in files.items():
        (root / name).parent.mkdir(parents=True, exist_ok=True)
        (root / name).write_text(textwrap.dedent(text))
    return root


def run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    code = cli.main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


def test_allowed_flow_exits_zero(manifests: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = run(
        capsys, "--manifests", str(manifests), "--from", "x/a", "--to", "y/web", "--port", "8080"
    )
    assert code == 0
    assert out.splitlines() == [
        "x/a -> y/web TCP/8080: allowed",
        "  egress   allowed  x/a is not isolated for egress: "
        "no NetworkPolicy selects it for egress",
        "  ingress  allowed  y/web is isolated for ingress by policies y/deny-all, "
        "y/web-from-front; y/web-from-front ingress[0] admits it",
    ]


def test_denied_flow_json_shape(manifests: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = run(
        capsys,
        *("--manifests", str(manifests / "namespaces.yaml"), str(manifests / "apps")),
        *("--manifests", str(manifests / "policies")),
        *("--from", "x/b", "--to", "y/web", "--port", "8080", "--json"),
    )
    assert code == 1
    verdict = json.loads(out)
    assert verdict == {
        "allowed": False,
        "unknown": False,
        "decidedBy": {
            "kind": "NetworkPolicy",
            "name": "y/deny-all",
            "rule": None,
            "text": "NetworkPolicy y/deny-all",
        },
        "egress": {
            "allowed": True,
            "policies": [],
            "reason": "x/b is not isolated for egress: no NetworkPolicy selects it for egress",
            "decidedBy": None,
        },
        "ingress": {
            "allowed": False,
            "policies": ["y/deny-all", "y/web-from-front"],
            "reason": "y/web is isolated for ingress by policies y/deny-all, y/web-from-front "
            "and no rule matches; nearest miss: y/web-from-front ingress[0]: the port matches "
            "but from[0] does not: x/b (app=other) does not match podSelector app=client",
            "decidedBy": {
                "kind": "NetworkPolicy",
                "name": "y/deny-all",
                "rule": None,
                "text": "NetworkPolicy y/deny-all",
            },
        },
    }


CLUSTER_POLICY = """
apiVersion: policy.networking.k8s.io/v1alpha2
kind: ClusterNetworkPolicy
metadata: {name: isolate-tenants}
spec:
  tier: Admin
  priority: 1
  subject: {namespaces: {matchLabels: {kubernetes.io/metadata.name: y}}}
  ingress:
  - name: deny-x
    action: Deny
    from: [{namespaces: {matchLabels: {kubernetes.io/metadata.name: x}}}]
"""


def test_cluster_network_policy_named_with_its_kind(
    manifests: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    (tmp_path / "cnp.yaml").write_text(CLUSTER_POLICY)
    args = ("--manifests", str(manifests), str(tmp_path), "--from", "x/b", "--to", "y/web")
    code, out, _ = run(capsys, *args, "--port", "8080")
    assert code == 1
    assert out.splitlines()[0] == (
        "x/b -> y/web TCP/8080: DENIED (decided by ClusterNetworkPolicy isolate-tenants ingress[0])"
    )
    code, out, _ = run(capsys, *args, "--port", "8080", "--json")
    assert json.loads(out)["decidedBy"] == {
        "kind": "ClusterNetworkPolicy",
        "name": "isolate-tenants",
        "rule": "ingress[0]",
        "text": "ClusterNetworkPolicy isolate-tenants ingress[0]",
    }


def test_addresses_as_endpoints(manifests: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = run(
        capsys,
        *("--manifests", str(manifests), "--from", "10.0.1.1", "--to", "203.0.113.9"),
        *("--port", "443", "--protocol", "udp", "--json"),
    )
    assert code == 0
    assert json.loads(out)["ingress"]["reason"] == (
        "203.0.113.9 is not a pod: no NetworkPolicy governs its ingress"
    )
    code, out, _ = run(
        capsys,
        "--manifests",
        str(manifests),
        "--from",
        "192.0.2.1",
        "--to",
        "y/web",
        "--port",
        "8080",
    )
    assert code == 1
    assert "192.0.2.1 is not a pod, which only an ipBlock peer matches" in out


def test_matrix_table(manifests: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = run(capsys, "--manifests", str(manifests), "--matrix", "--port", "8080")
    assert code == 0
    assert out.splitlines() == [
        "Reachability on TCP/8080 (rows: from, columns: to; "
        ". allowed, X denied, ? unknown (a construct not modelled))",
        "-      x/a    x/b    y/web",
        "x/a    .      .      .",
        "x/b    .      .      X",
        "y/web  .      .      .",
        "3 pods: 8 of 9 pairs allowed",
    ]


L7_POLICY = """
apiVersion: cilium.io/v2
kind: CiliumNetworkPolicy
metadata: {name: web-l7, namespace: y}
spec:
  endpointSelector: {matchLabels: {app: web}}
  ingress:
  - fromEndpoints: [{matchLabels: {k8s:io.kubernetes.pod.namespace: x}}]
    toPorts: [{ports: [{port: "8080"}], rules: {http: [{method: GET}]}}]
"""


def test_matrix_marks_an_unknown_verdict(
    manifests: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """An L7 rule decides x/b -> y/web: neither allowed nor denied, so `?`, never `.` or `X`
    (x/a is let in by a NetworkPolicy, which Cilium unions with its own allows)."""
    (manifests / "policies" / "cilium.yaml").write_text(textwrap.dedent(L7_POLICY))
    code, out, _ = run(capsys, "--manifests", str(manifests), "--matrix", "--port", "8080")
    assert code == 0
    assert out.splitlines() == [
        "Reachability on TCP/8080 (rows: from, columns: to; "
        ". allowed, X denied, ? unknown (a construct not modelled))",
        "-      x/a    x/b    y/web",
        "x/a    .      .      .",
        "x/b    .      .      ?",
        "y/web  .      .      .",
        "3 pods: 8 of 9 pairs allowed, 1 unknown",
    ]
    code, out, _ = run(
        capsys, "--manifests", str(manifests), "--matrix", "--port", "8080", "--json"
    )
    assert json.loads(out)["matrix"]["x/b"] == {"x/a": True, "x/b": True, "y/web": None}


def test_matrix_json(manifests: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = run(
        capsys,
        "--manifests",
        str(manifests),
        "--matrix",
        "--port",
        "80",
        "--protocol",
        "TCP",
        "--json",
    )
    assert code == 0
    assert json.loads(out) == {
        "ports": [{"port": 80, "protocol": "TCP"}],
        "matrix": {
            "x/a": {"x/a": True, "x/b": True, "y/web": False},
            "x/b": {"x/a": True, "x/b": True, "y/web": False},
            "y/web": {"x/a": True, "x/b": True, "y/web": True},
        },
    }


def test_the_hopscope_command_hands_policy_over(
    manifests: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    argv = ["policy", "--manifests", str(manifests), "--from", "x/b", "--to", "y/web"]
    assert probe_cli.main([*argv, "--port", "8080"]) == 1
    assert "DENIED" in capsys.readouterr().out


def test_the_probe_cli_starts_without_the_policy_code() -> None:
    code = (
        "import sys; from hopscope_probe import cli; cli.parser(); "
        "print(sorted(m for m in ('yaml', 'hopscope_operator') if m in sys.modules))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"


CALICO = """
apiVersion: projectcalico.org/v3
kind: Tier
metadata: {name: security}
spec: {order: 100}
---
apiVersion: projectcalico.org/v3
kind: GlobalNetworkPolicy
metadata: {name: security.deny-other}
spec:
  tier: security
  selector: projectcalico.org/namespace == 'y'
  ingress:
  - action: Deny
    source: {namespaceSelector: all(), selector: app == 'other'}
  - action: Pass
---
apiVersion: projectcalico.org/v3
kind: GlobalNetworkSet
metadata: {name: outside}
spec: {nets: [203.0.113.0/24]}
---
apiVersion: crd.projectcalico.org/v1
kind: GlobalNetworkPolicy
metadata: {name: default.stored}
spec: {selector: all()}
"""


def test_calico_policies_name_the_deciding_rule(
    manifests: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    (manifests / "calico.yaml").write_text(CALICO)
    flow = ("--to", "y/web", "--port", "8080")
    code, out, err = run(capsys, "--manifests", str(manifests), "--from", "x/b", *flow)
    assert code == 1
    assert out.splitlines()[0] == (
        "x/b -> y/web TCP/8080: DENIED (decided by GlobalNetworkPolicy security.deny-other "
        "ingress[0])"
    )
    assert f"note: {manifests / 'calico.yaml'}: document 3: skipped Calico GlobalNetworkSet" in err
    assert (
        f"note: {manifests / 'calico.yaml'}: document 4: skipped GlobalNetworkPolicy of "
        "crd.projectcalico.org/v1: Calico's storage form; export it as projectcalico.org/v3 "
        "(kubectl get globalnetworkpolicy.projectcalico.org)"
    ) in err
    # The security tier passes x/a on: the default tier's core NetworkPolicy admits it.
    code, out, _ = run(capsys, "--manifests", str(manifests), "--from", "x/a", *flow, "--json")
    assert code == 0
    verdict = json.loads(out)
    assert verdict["decidedBy"]["text"] == "NetworkPolicy y/web-from-front ingress[0]"
    assert verdict["ingress"]["reason"].startswith(
        "GlobalNetworkPolicy security.deny-other ingress[1] passes x/a -> y/web TCP/8080"
    )


def test_cilium_and_calico_policies_together_are_refused(
    manifests: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    (manifests / "calico.yaml").write_text(CALICO)
    (manifests / "cilium.yaml").write_text(
        "apiVersion: cilium.io/v2\nkind: CiliumNetworkPolicy\nmetadata: {name: c, namespace: y}\n"
        "spec: {endpointSelector: {}, ingress: [{}]}\n"
    )
    code, out, err = run(
        capsys, "--manifests", str(manifests), "--from", "x/a", "--to", "y/web", "--port", "1"
    )
    assert (code, out) == (2, "")
    assert "policies of calico and cilium are given together: one CNI enforces" in err
    assert f"cilium: {manifests / 'cilium.yaml'}: document 1 (CiliumNetworkPolicy y/c)" in err


POLICY_HEAD = (
    "apiVersion: networking.k8s.io/v1\nkind: NetworkPolicy\nmetadata: {name: p, namespace: y}\n"
)

# One invalid manifest each: (file text, the document, the field path the error must name).
BAD_INPUT = {
    "cidr": (
        "spec: {podSelector: {}, ingress: [{from: [{ipBlock: {cidr: 10.0.0/8}}]}]}",
        "spec.ingress[0].from[0].ipBlock.cidr: '10.0.0/8' is not a CIDR",
    ),
    "except outside the cidr": (
        "spec: {podSelector: {}, egress: "
        "[{to: [{ipBlock: {cidr: 10.0.0.0/8, except: [11.0.0.0/16]}}]}]}",
        "spec.egress[0].to[0].ipBlock.except[0]: 11.0.0.0/16 is not a strict subset of 10.0.0.0/8",
    ),
    "endPort without a port": (
        "spec: {podSelector: {}, egress: [{ports: [{endPort: 90}]}]}",
        "spec.egress[0].ports[0].endPort: needs a numeric port",
    ),
    "endPort below port": (
        "spec: {podSelector: {}, egress: [{ports: [{port: 90, endPort: 80}]}]}",
        "spec.egress[0].ports[0].endPort: 80 is below port 90",
    ),
    "selector typo": (
        "spec: {podSelector: {matchLabel: {app: web}}}",
        "spec.podSelector.matchLabel: unknown field (expected matchExpressions, matchLabels)",
    ),
    "label value read as a number": (
        "spec: {podSelector: {matchLabels: {version: 1}}}",
        "spec.podSelector.matchLabels.version: expected a string, got a number (1)",
    ),
    "operator": (
        "spec: {podSelector: {matchExpressions: [{key: a, operator: Equals, values: [b]}]}}",
        "spec.podSelector.matchExpressions[0].operator: 'Equals' is not one of In, NotIn",
    ),
    "In without values": (
        "spec: {podSelector: {matchExpressions: [{key: a, operator: In}]}}",
        "spec.podSelector.matchExpressions[0].values: In needs at least one value",
    ),
    "ipBlock with a selector": (
        "spec: {podSelector: {}, egress: [{to: [{ipBlock: {cidr: 1.0.0.0/8}, podSelector: {}}]}]}",
        "spec.egress[0].to[0]: ipBlock cannot be combined with podSelector or namespaceSelector",
    ),
    "empty peer": (
        "spec: {podSelector: {}, ingress: [{from: [{}]}]}",
        "spec.ingress[0].from[0]: a peer needs podSelector, namespaceSelector or ipBlock",
    ),
    "policyTypes": (
        "spec: {podSelector: {}, policyTypes: [ingress]}",
        "spec.policyTypes[0]: 'ingress' is not Ingress or Egress",
    ),
    "quoted port number": (
        "spec: {podSelector: {}, ingress: [{ports: [{port: '80'}]}]}",
        "spec.ingress[0].ports[0].port: '80' is not a port name",
    ),
    "port out of range": (
        "spec: {podSelector: {}, ingress: [{ports: [{port: 70000}]}]}",
        "spec.ingress[0].ports[0].port: 70000 is not a port number (1-65535)",
    ),
    "protocol": (
        "spec: {podSelector: {}, ingress: [{ports: [{protocol: ICMP}]}]}",
        "spec.ingress[0].ports[0].protocol: 'ICMP' is not one of TCP, UDP, SCTP",
    ),
    "from in an egress rule": (
        "spec: {podSelector: {}, egress: [{from: []}]}",
        "spec.egress[0].from: unknown field (expected ports, to)",
    ),
    # Issue 11: what the API server refuses got a verdict.
    "cidr without a prefix length": (
        "spec: {podSelector: {}, ingress: [{from: [{ipBlock: {cidr: 10.0.0.1}}]}]}",
        "spec.ingress[0].from[0].ipBlock.cidr: '10.0.0.1' has no prefix length",
    ),
    "cidr with bits past its prefix": (
        "spec: {podSelector: {}, ingress: [{from: [{ipBlock: {cidr: 10.0.0.1/8}}]}]}",
        "spec.ingress[0].from[0].ipBlock.cidr: '10.0.0.1/8' has bits set past the prefix length",
    ),
    "except with a zone": (
        "spec: {podSelector: {}, egress: "
        "[{to: [{ipBlock: {cidr: 'fe80::/10', except: ['fe80::%eth0/64']}}]}]}",
        "spec.egress[0].to[0].ipBlock.except[0]: 'fe80::%eth0/64': a CIDR has no zone",
    ),
    "base-60 port": (  # YAML 1.1 reads 88:12 as 5292; the API server's parser as a string
        "spec: {podSelector: {}, ingress: [{ports: [{port: 88:12}]}]}",
        "spec.ingress[0].ports[0].port: '88:12' is not a port name",
    ),
}


@pytest.mark.parametrize(
    "spec",
    ["spec: {policyTypes: [Ingress]}", "spec: {}", ""],
    ids=["no-podSelector", "empty-spec", "no-spec"],
)
def test_a_policy_without_a_pod_selector_selects_every_pod_of_its_namespace(
    manifests: Path, capsys: pytest.CaptureFixture[str], spec: str
) -> None:
    # Stored by the API server as podSelector: {} (recorded: 19-endpointslices-networkpolicies).
    (manifests / "policies" / "web.yaml").write_text(
        "apiVersion: networking.k8s.io/v1\nkind: NetworkPolicy\n"
        f"metadata: {{name: deny-all, namespace: y}}\n{spec}\n"
    )
    code, out, _ = run(
        capsys, "--manifests", str(manifests), "--from", "x/a", "--to", "y/web", "--port", "8080"
    )
    assert code == 1
    denied = "  ingress  denied   y/web is isolated for ingress by policy y/deny-all and no rule"
    assert denied in out


@pytest.mark.parametrize("case", BAD_INPUT, ids=list(BAD_INPUT))
def test_bad_policy_names_file_document_and_field(
    case: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    text, message = BAD_INPUT[case]
    bad = tmp_path / "bad.yaml"
    bad.write_text(f"{NAMESPACES}{POLICY_HEAD}{text}\n")
    code, out, err = run(capsys, "--manifests", str(bad), "--matrix", "--port", "80")
    assert code == 2 and out == ""
    assert err.startswith(
        f"hopscope policy: error: {bad}: document 3 (NetworkPolicy y/p): {message}"
    )


@pytest.mark.parametrize(
    ("text", "message"),
    [
        (
            "kind: Pod\nmetadata: {name: a}\n"
            "spec: {containers: [{ports: [{containerPort: http}]}]}",
            "document 1 (Pod default/a): spec.containers[0].ports[0].containerPort: "
            "expected a port number, got a string ('http')",
        ),
        (
            "kind: List\nitems:\n- {kind: Namespace, metadata: {name: x}}\n"
            "- {kind: Pod, metadata: {}}",
            "document 1, items[1] (Pod): metadata.name: required",
        ),
        (
            "kind: Deployment\nmetadata: {name: web}\nspec: {replicas: 1}",
            "document 1 (Deployment default/web): spec.template: required",
        ),
        ("kind: List\nitems:\n- {metadata: {name: a}}", "document 1, items[0]: kind: required"),
        ("kind: List\nitems: {a: b}", "document 1: items: expected the list's objects"),
        ("kind: Pod\nmetadata: name: a\n", "line 2: not valid YAML: mapping values"),
        (
            "{kind: Namespace, metadata: {name: x}}\n---\n{kind: Namespace, metadata: {name: x}}",
            "document 2: Namespace x is already given in ",
        ),
        # Issue 11: kubectl refuses a key given twice; YAML 1.1 let the last one win.
        (
            "kind: Namespace\nmetadata: {name: x}\nmetadata: {name: y}",
            "line 3: not valid YAML: key 'metadata' is given twice",
        ),
        # Issue 11: a RecursionError, and exit 1 (denied).
        ("kind: Namespace\nx: " + "[" * 1000 + "]" * 1000, "line 2: not valid YAML: nested deeper"),
        ("kind: Namespace\nx: &a [*a]", "line 2: not valid YAML: an alias inside its own anchor"),
    ],
)
def test_bad_manifest_names_file_and_place(
    text: str, message: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_text(text + "\n")
    code, _, err = run(capsys, "--manifests", str(bad), "--matrix", "--port", "80")
    assert code == 2
    assert err.startswith(f"hopscope policy: error: {bad}: {message}")


def test_missing_path(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, _, err = run(capsys, "--manifests", str(tmp_path / "nope"), "--matrix", "--port", "80")
    assert code == 2
    assert err == f"hopscope policy: error: {tmp_path / 'nope'}: no such file or folder\n"


def test_unknown_pod_names_the_flag(manifests: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, _, err = run(
        capsys, "--manifests", str(manifests), "--from", "x/q", "--to", "y/web", "--port", "80"
    )
    assert code == 2
    assert err == "hopscope policy: error: --from x/q: no pod q in namespace x in the manifests\n"


def test_no_pods_for_a_matrix(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    (tmp_path / "ns.yaml").write_text(NAMESPACES)
    code, _, err = run(capsys, "--manifests", str(tmp_path), "--matrix", "--port", "80")
    assert code == 2 and "the manifests hold no pods or workloads" in err


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (
            ["--from", "a", "--to", "x/b", "--port", "80"],
            "argument --from: 'a': expected NAMESPACE/POD",
        ),
        (["--from", "x/a", "--to", "x/b", "--port", "0"], "argument --port: '0': expected a port"),
        (["--from", "x/a", "--port", "80"], "give --from and --to, or --matrix"),
        (["--matrix", "--from", "x/a", "--port", "80"], "--matrix takes no --from or --to"),
        (["--matrix", "--port", "80", "--protocol", "icmp"], "argument --protocol: invalid choice"),
    ],
)
def test_bad_flags_exit_two(
    argv: list[str], message: str, manifests: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    with pytest.raises(SystemExit) as exited:
        cli.main(["--manifests", str(manifests), *argv])
    assert exited.value.code == 2
    assert message in capsys.readouterr().err


def test_yaml_that_is_no_object_is_noted_and_hidden_folders_are_skipped(
    manifests: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    (manifests / "values.yaml").write_text("replicas: 3\n---\n- a\n- list\n")
    (manifests / ".github").mkdir()
    (manifests / ".github" / "ci.yaml").write_text("on: [push]\n")
    code, _, err = run(capsys, "--manifests", str(manifests), "--matrix", "--port", "80")
    assert code == 0
    values = manifests / "values.yaml"
    assert err.splitlines() == [
        f"hopscope policy: note: {values}: document {n}: skipped: not a Kubernetes object (no kind)"
        for n in (1, 2)
    ]
