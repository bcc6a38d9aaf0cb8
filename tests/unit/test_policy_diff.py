"""`hopscope policy diff`: flows whose verdict a proposed change flips, with what decided before
and after; exit codes; JSON; and the pruned matrix equal to comparing every pair."""

from __future__ import annotations

import json
import random
import textwrap
from pathlib import Path
from typing import Any

import pytest

from hopscope_policy import diffcli, families
from hopscope_policy.diff import compare_matrix, outcome
from hopscope_policy.evaluate import Flow, PolicyIndex
from hopscope_policy.model import L4Protocol, PodRef, parse_namespace, parse_pod, parse_policy
from hopscope_probe import cli as probe_cli

EXAMPLE = Path(__file__).parents[2] / "examples" / "policy-diff"

APPS = """
apiVersion: v1
kind: Namespace
metadata: {name: x, labels: {team: front}}
---
apiVersion: v1
kind: Pod
metadata: {name: a, namespace: x, labels: {app: client}}
spec: {containers: [{name: c}]}
status: {podIP: 10.0.1.1}
---
apiVersion: v1
kind: Pod
metadata: {name: b, namespace: y, labels: {app: web}}
spec: {containers: [{name: c, ports: [{name: http, containerPort: 8080}]}]}
status: {podIP: 10.0.1.2}
"""
DENY_ALL = """
apiVersion: networking.k8s.io/v1
kind: NetworkPolicy
metadata: {name: deny-all, namespace: y}
spec: {podSelector: {}, policyTypes: [Ingress]}
"""
FROM_FRONT = """
apiVersion: networking.k8s.io/v1
kind: NetworkPolicy
metadata: {name: web-from-front, namespace: y}
spec:
  podSelector: {matchLabels: {app: web}}
  ingress:
  - from: [{namespaceSelector: {matchLabels: {team: front}}}]
    ports: [{port: http}]
"""


def tree(root: Path, **files: str) -> Path:
    root.mkdir()
    for name, text in files.items():
        (root / f"{name}.yaml").write_text(textwrap.dedent(text))
    return root


def run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    code = diffcli.main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


def matrix(
    capsys: pytest.CaptureFixture[str], current: Path, proposed: Path, *more: str
) -> tuple[int, str, str]:
    return run(capsys, "--manifests", str(current), "--proposed", str(proposed), "--matrix", *more)


def test_the_example_lists_every_flipped_flow_with_the_rule_before_and_after(
    capsys: pytest.CaptureFixture[str],
) -> None:
    code, out, _ = matrix(capsys, EXAMPLE / "current", EXAMPLE / "proposed", "--port", "8080")
    assert code == 1
    lines = out.splitlines()
    assert lines[:3] == [
        "frontend/web -> shop/api TCP/8080: denied -> allowed",
        "  ingress  before  denied   NetworkPolicy shop/allow-prometheus: default deny of the "
        "isolation (no rule admits it)",
        "           after   allowed  NetworkPolicy shop/api-from-frontend ingress[0]",
    ]
    heads = [line for line in lines[:-1] if not line.startswith(" ")]
    assert heads == [
        "frontend/web -> shop/api TCP/8080: denied -> allowed",
        "monitoring/prometheus -> shop/api TCP/8080: allowed -> DENIED",
        "monitoring/prometheus -> shop/db TCP/8080: allowed -> DENIED",
        "shop/api -> shop/db TCP/8080: denied -> allowed",
    ]
    assert lines[-1] == (
        "4 verdicts change on TCP/8080 (2 allowed -> denied, 2 denied -> allowed); "
        "6 of 16 pod pairs evaluated, the rest provably unchanged"
    )


def test_no_change_exits_zero(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    current = tree(tmp_path / "current", apps=APPS, deny=DENY_ALL)
    # the same objects, written differently (flow style vs block style): no verdict changes
    proposed = tree(
        tmp_path / "proposed", apps=APPS, deny=DENY_ALL.replace("{}", "{matchLabels: {}}")
    )
    code, out, _ = matrix(capsys, current, proposed, "--port", "8080")
    assert code == 0
    assert out.splitlines() == [
        "no verdict changes on TCP/8080; 0 of 4 pod pairs evaluated, the rest provably unchanged"
    ]


def test_an_added_policy_denies(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    current = tree(tmp_path / "current", apps=APPS)
    proposed = tree(tmp_path / "proposed", apps=APPS, deny=DENY_ALL)
    code, out, _ = matrix(capsys, current, proposed, "--port", "8080")
    assert code == 1
    assert out.splitlines()[:3] == [
        "x/a -> y/b TCP/8080: allowed -> DENIED",
        "  ingress  before  allowed  no NetworkPolicy selects it: default allow",
        "           after   denied   NetworkPolicy y/deny-all: default deny of the isolation "
        "(no rule admits it)",
    ]


def test_a_deleted_policy_allows(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    current = tree(tmp_path / "current", apps=APPS, deny=DENY_ALL)
    proposed = tree(tmp_path / "proposed", apps=APPS)
    code, out, _ = run(
        capsys,
        *("--manifests", str(current), "--proposed", str(proposed)),
        *("--from", "x/a", "--to", "y/b", "--port", "8080"),
    )
    assert code == 1
    assert out.splitlines() == [
        "x/a -> y/b TCP/8080: denied -> allowed",
        "  ingress  before  denied   NetworkPolicy y/deny-all: default deny of the isolation "
        "(no rule admits it)",
        "           after   allowed  no NetworkPolicy selects it: default allow",
        "the verdict changes (1 denied -> allowed)",
    ]


def test_an_edited_rule_json(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    current = tree(tmp_path / "current", apps=APPS, front=FROM_FRONT)
    proposed = tree(tmp_path / "proposed", apps=APPS, front=FROM_FRONT.replace("http", "9090"))
    code, out, _ = matrix(capsys, current, proposed, "--port", "8080", "--json")
    assert code == 1
    document = json.loads(out)
    assert (document["ports"], document["pairs"], document["evaluated"]) == (
        [{"port": 8080, "protocol": "TCP"}],
        4,
        1,
    )
    [change] = document["changes"]
    assert (change["from"], change["to"], change["port"], change["protocol"]) == (
        "x/a",
        "y/b",
        8080,
        "TCP",
    )
    assert change["before"]["verdict"] == "allowed"
    assert change["before"]["ingress"]["decided_by"] == "NetworkPolicy y/web-from-front ingress[0]"
    assert change["after"]["verdict"] == "denied"
    assert change["after"]["ingress"]["allowed"] is False
    assert "nearest miss: y/web-from-front ingress[0]" in change["after"]["ingress"]["reason"]


def test_a_namespace_label_change_is_compared_on_every_pair(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """No policy changes, yet a peer selector stops matching: the pruning must not skip it."""
    current = tree(tmp_path / "current", apps=APPS, front=FROM_FRONT)
    proposed = tree(
        tmp_path / "proposed", apps=APPS.replace("team: front", "team: back"), front=FROM_FRONT
    )
    code, out, _ = matrix(capsys, current, proposed, "--port", "8080")
    assert code == 1
    assert out.splitlines()[0] == "x/a -> y/b TCP/8080: allowed -> DENIED"
    assert "2 of 4 pod pairs evaluated" in out.splitlines()[-1]


def test_pods_in_one_set_only_are_named_on_stderr(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    current = tree(tmp_path / "current", apps=APPS)
    extra = APPS + "---\n" + APPS.split("---")[1].replace("name: a,", "name: c,")
    proposed = tree(tmp_path / "proposed", apps=extra)
    code, _, err = matrix(capsys, current, proposed, "--port", "8080")
    assert code == 0
    assert err == (
        "hopscope policy diff: note: pod x/c is only in the proposed set: "
        "its flows are not compared\n"
    )


def test_bad_input_exits_two_naming_the_flag(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    current = tree(tmp_path / "current", apps=APPS)
    code, _, err = matrix(capsys, current, tmp_path / "missing", "--port", "8080")
    assert code == 2
    missing = tmp_path / "missing"
    assert err == f"hopscope policy diff: error: --proposed: {missing}: no such file or folder\n"
    code, _, err = run(
        capsys,
        *("--manifests", str(current), "--proposed", str(current)),
        *("--from", "x/a", "--to", "y/nope", "--port", "80"),
    )
    assert code == 2
    assert (
        err
        == "hopscope policy diff: error: --to y/nope: no pod nope in namespace y in --manifests\n"
    )
    with pytest.raises(SystemExit) as exit_:
        diffcli.main(["--manifests", str(current), "--proposed", str(current), "--port", "80"])
    assert exit_.value.code == 2
    assert "give --from and --to, or --matrix" in capsys.readouterr().err


def test_help_states_the_exit_codes(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit):
        probe_cli.main(["policy", "diff", "--help"])
    assert "exit codes: 0 no verdict changes, 1 at least one verdict changes, 2 bad input" in (
        capsys.readouterr().out
    )


def test_the_hopscope_command_hands_diff_over(capsys: pytest.CaptureFixture[str]) -> None:
    argv = ["policy", "diff", "--manifests", str(EXAMPLE / "current")]
    argv += ["--proposed", str(EXAMPLE / "proposed"), "--from", "shop/api", "--to", "shop/db"]
    assert probe_cli.main([*argv, "--port", "5432"]) == 0
    assert capsys.readouterr().out == "no verdict change: shop/api -> shop/db TCP/5432\n"


def _cluster(
    namespaces: int, pods: int, policies: list[dict[str, Any]], others: list[dict[str, Any]] = ()
) -> PolicyIndex:
    ns = [
        {"metadata": {"name": f"ns-{i}", "labels": {"team": f"t{i % 3}"}}}
        for i in range(namespaces)
    ]
    made = [
        {
            "metadata": {"name": f"p{j}", "namespace": f"ns-{i}", "labels": {"app": f"a{j % 4}"}},
            "spec": {
                "containers": [{"name": "c", "ports": [{"name": "http", "containerPort": 80}]}]
            },
            "status": {"podIP": f"10.1.{i}.{j + 1}"},
        }
        for i in range(namespaces)
        for j in range(pods)
    ]
    parsed = [families.parser(o["apiVersion"], o["kind"])(o) for o in others]  # type: ignore[misc]
    rules = families.rules(
        [parse_namespace(n) for n in ns], [parse_policy(p) for p in policies], parsed
    )
    return PolicyIndex([parse_pod(p) for p in made], rules)


def _random_policy(rng: random.Random, n: int, namespaces: int) -> dict[str, Any]:
    app = {"matchLabels": {"app": f"a{rng.randrange(4)}"}}
    peer = rng.choice(
        [
            {"podSelector": app},
            {"namespaceSelector": {"matchLabels": {"team": f"t{rng.randrange(3)}"}}},
        ]
    )
    rule = {
        "from" if rng.random() < 0.5 else "to": [peer],
        "ports": [{"port": rng.choice([80, "http", 443])}],
    }
    direction = "ingress" if "from" in rule else "egress"
    spec = {
        "podSelector": rng.choice([{}, app]),
        "policyTypes": [direction.title()],
        direction: [rule],
    }
    meta = {"name": f"pol-{n}", "namespace": f"ns-{rng.randrange(namespaces)}"}
    return {"metadata": meta, "spec": spec}


def every_pair_that_flips(before: PolicyIndex, after: PolicyIndex) -> list[tuple[PodRef, PodRef]]:
    """What a full comparison finds: every (source, destination) pair whose TCP/80 outcome
    differs, evaluated one by one without pruning."""
    refs = [pod.ref for pod in before.pods]
    return [
        (src, dst)
        for src in refs
        for dst in refs
        if outcome(before.evaluate(Flow(src, dst, 80)))
        != outcome(after.evaluate(Flow(src, dst, 80)))
    ]


@pytest.mark.parametrize("seed", range(5))
def test_the_pruned_matrix_equals_comparing_every_pair(seed: int) -> None:
    """Random edits (added, deleted, edited policies): the flows found are exactly those a full
    comparison of every pair finds."""
    rng = random.Random(seed)
    policies = [_random_policy(rng, n, 4) for n in range(12)]
    proposed = [p for p in policies if rng.random() < 0.8]  # some deleted
    proposed += [_random_policy(rng, n, 4) for n in range(12, 15)]  # some added
    for i in rng.sample(range(len(proposed)), 3):  # some edited in place (same name)
        edited = _random_policy(rng, 0, 4)
        proposed[i] = {"metadata": proposed[i]["metadata"], "spec": edited["spec"]}
    before, after = _cluster(4, 6, policies), _cluster(4, 6, proposed)
    found = compare_matrix(before, after, 80, L4Protocol.TCP)
    expected = every_pair_that_flips(before, after)
    assert [(c.flow.source, c.flow.destination) for c in found.changes] == expected
    assert expected  # the edits do change something: the comparison is not vacuous
    assert found.evaluated < found.pairs


def _family_object(rng: random.Random, n: int, namespaces: int) -> dict[str, Any]:
    """A random ClusterNetworkPolicy (either tier) or Cilium policy over `_cluster`'s pods."""
    app = {"matchLabels": {"app": f"a{rng.randrange(4)}"}}
    team = {"matchLabels": {"team": f"t{rng.randrange(3)}"}}
    port = rng.choice([80, 443])
    if rng.random() < 0.5:
        peer = rng.choice(
            [{"namespaces": team}, {"pods": {"namespaceSelector": {}, "podSelector": app}}]
        )
        rule = {"action": rng.choice(["Accept", "Deny", "Pass"]), "from": [peer]}
        if rng.random() < 0.5:
            rule["protocols"] = [{"tcp": {"destinationPort": {"number": port}}}]
        return {
            "apiVersion": "policy.networking.k8s.io/v1alpha2",
            "kind": "ClusterNetworkPolicy",
            "metadata": {"name": f"cnp-{n}"},
            "spec": {
                "tier": rng.choice(["Admin", "Baseline"]),
                "priority": rng.randrange(3),
                "subject": rng.choice([{"namespaces": team},
                                       {"pods": {"namespaceSelector": {}, "podSelector": app}}]),
                "ingress": [rule],
            },
        }  # fmt: skip
    peer = rng.choice([{"fromEndpoints": [app]}, {"fromEntities": ["cluster"]}, {}])
    if rng.random() < 0.5:
        peer["toPorts"] = [{"ports": [{"port": str(port), "protocol": "TCP"}]}]
    key = rng.choice(["ingress", "ingressDeny"])
    if key == "ingress" and rng.random() < 0.5:  # an L7 rule: Unknown where it decides
        peer["toPorts"] = [{"ports": [{"port": "80"}], "rules": {"http": [{"method": "GET"}]}}]
    return {
        "apiVersion": "cilium.io/v2",
        "kind": "CiliumNetworkPolicy",
        "metadata": {"name": f"cil-{n}", "namespace": f"ns-{rng.randrange(namespaces)}"},
        "spec": {"endpointSelector": rng.choice([{}, app]), key: [peer]},
    }


@pytest.mark.parametrize("seed", range(5))
def test_the_pruned_matrix_equals_every_pair_with_every_family(seed: int) -> None:
    """Cluster-wide and Cilium policies added, deleted and edited beside NetworkPolicies: the
    flows found are those a full comparison finds, and unchanged pods' flows are skipped."""
    rng = random.Random(seed)
    policies = [_random_policy(rng, n, 4) for n in range(8)]
    objects = [_family_object(rng, n, 4) for n in range(10)]
    proposed = [o for o in objects if rng.random() < 0.8]  # some deleted
    proposed += [_family_object(rng, n, 4) for n in range(10, 12)]  # some added
    for i in rng.sample(range(len(proposed)), 2):  # some edited in place (same name)
        edited = _family_object(rng, 0, 4)
        if edited["kind"] == proposed[i]["kind"]:
            proposed[i] = {**edited, "metadata": proposed[i]["metadata"]}
    before = _cluster(4, 6, policies, objects)
    after = _cluster(4, 6, policies, proposed)
    found = compare_matrix(before, after, 80, L4Protocol.TCP)
    expected = every_pair_that_flips(before, after)
    assert [(c.flow.source, c.flow.destination) for c in found.changes] == expected
    assert found.evaluated < found.pairs


CALICO = "projectcalico.org/v3"


def _calico_object(
    rng: random.Random, n: int, namespaces: int, namespaced: bool = False
) -> dict[str, Any]:
    """A random Calico NetworkPolicy or GlobalNetworkPolicy, in one of two tiers or the default
    one, over `_cluster`'s pods: selectors with ==, in, has(), namespaceSelector, every action."""
    app = f"app == 'a{rng.randrange(4)}'"
    selector = rng.choice(["", "all()", app, f"app in {{'a{rng.randrange(4)}', 'a1'}}", "has(app)"])
    peer = rng.choice(
        [
            {"selector": app},
            {"namespaceSelector": f"team == 't{rng.randrange(3)}'"},
            {"nets": [f"10.1.{rng.randrange(namespaces)}.0/24"]},
            {},
        ]
    )
    rule: dict[str, Any] = {"action": rng.choice(["Allow", "Deny", "Pass", "Log"])}
    if rng.random() < 0.5:
        rule |= {"protocol": "TCP", "destination": {"ports": [rng.choice([80, "http", 443])]}}
    direction = rng.choice(["ingress", "egress"])
    rule["source" if direction == "ingress" else "destination"] = (
        {
            **rule.get("destination", {}),
            **peer,
        }
        if direction == "egress"
        else peer
    )
    spec: dict[str, Any] = {
        "tier": rng.choice(["security", "platform", "default"]),
        "order": rng.choice([None, 10, 500, 2000]),
        "selector": selector,
        "types": [direction.title()],
        direction: [rule],
    }
    spec = {key: value for key, value in spec.items() if value is not None}
    if namespaced or rng.random() < 0.5:
        return {
            "apiVersion": CALICO,
            "kind": "NetworkPolicy",
            "metadata": {"name": f"cal-{n}", "namespace": f"ns-{rng.randrange(namespaces)}"},
            "spec": spec,
        }
    if rng.random() < 0.5:
        spec["namespaceSelector"] = f"team == 't{rng.randrange(3)}'"
    return {
        "apiVersion": CALICO,
        "kind": "GlobalNetworkPolicy",
        "metadata": {"name": f"gcal-{n}"},
        "spec": spec,
    }


def _calico_tier(name: str, order: int, action: str) -> dict[str, Any]:
    spec = {"order": order, "defaultAction": action}
    return {"apiVersion": CALICO, "kind": "Tier", "metadata": {"name": name}, "spec": spec}


@pytest.mark.parametrize("seed", range(8))
def test_the_pruned_matrix_equals_every_pair_with_calico(seed: int) -> None:
    """Calico policies in ordered tiers added, deleted and edited beside NetworkPolicies and the
    cluster-wide kinds: the flows found are those a full comparison finds, and the pods whose
    Calico selection is unchanged are skipped."""
    rng = random.Random(seed)
    policies = [_random_policy(rng, n, 4) for n in range(6)]
    tiers = [_calico_tier("security", 100, "Pass"), _calico_tier("platform", 200, "Deny")]
    cluster_wide = [o for o in (_family_object(rng, n, 4) for n in range(6)) if "cil" not in str(o)]
    objects = [_calico_object(rng, n, 4) for n in range(12)]
    # The changes are to namespaced policies, so that the pods of other namespaces keep their
    # selection (GlobalNetworkPolicies included, read again by the second load) and are skipped.
    namespaced = [i for i, o in enumerate(objects) if o["kind"] == "NetworkPolicy"]
    proposed = json.loads(json.dumps(objects))
    for i in rng.sample(namespaced, min(2, len(namespaced))):  # a rule's action alone edited
        spec = proposed[i]["spec"]
        rule = spec[spec["types"][0].lower()][0]
        rule["action"] = rng.choice(["Allow", "Deny", "Pass", "Log"])
    if namespaced:  # one edited in place (same name), one deleted
        edited = _calico_object(rng, 0, 4, namespaced=True)
        proposed[namespaced[0]]["spec"] = edited["spec"]
        del proposed[namespaced[-1]]
    proposed.append(_calico_object(rng, 12, 4, namespaced=True))  # one added
    before = _cluster(4, 6, policies, tiers + cluster_wide + objects)
    after = _cluster(4, 6, policies, tiers + cluster_wide + proposed)
    found = compare_matrix(before, after, 80, L4Protocol.TCP)
    refs = [pod.ref for pod in before.pods]
    expected = every_pair_that_flips(before, after)
    assert [(c.flow.source, c.flow.destination) for c in found.changes] == expected
    assert found.evaluated < len(refs) * (len(refs) - 1)  # not every pair: pruned


def test_an_unchanged_calico_set_is_not_evaluated_and_an_edit_is() -> None:
    """The same Calico manifests loaded twice select alike (no pair evaluated); an edited
    policy's subjects are evaluated, and only theirs."""
    objects = [
        _calico_tier("security", 100, "Deny"),
        {
            "apiVersion": CALICO,
            "kind": "NetworkPolicy",
            "metadata": {"name": "web", "namespace": "ns-1"},
            "spec": {
                "tier": "security",
                "order": 10,
                "selector": "app == 'a1'",
                "ingress": [{"action": "Allow", "source": {"selector": "has(app)"}}],
            },
        },
    ]
    proposed = json.loads(json.dumps(objects))
    unchanged = compare_matrix(
        _cluster(4, 6, [], objects), _cluster(4, 6, [], proposed), 80, L4Protocol.TCP
    )
    assert unchanged.evaluated == 0
    proposed[1]["spec"]["ingress"][0]["action"] = "Deny"
    edited = compare_matrix(
        _cluster(4, 6, [], objects), _cluster(4, 6, [], proposed), 80, L4Protocol.TCP
    )
    selected = 2  # ns-1's pods with app a1 (p1, p5), from the 23 other pods each
    assert edited.evaluated == selected * 23
    # The rule's selector is scoped to the policy's namespace: only ns-1's 5 other pods flip.
    assert len(edited.changes) == selected * 5
