"""The e2e suite's decisions, checked where no cluster is: which run the environment asks for,
the Helm calls it makes, what teardown removes (only what the run created), the address it
blackholes, the canary's verdict and the metric series it reads."""

from __future__ import annotations

import inspect
import ipaddress
import json
import re
import sys
import types
from pathlib import Path
from typing import Any

import pytest

from tests.e2e import harness
from tests.e2e import test_cluster as suite
from tests.e2e.harness import Blackhole, Enforcement, Ledger

HERE = Path(__file__).resolve().parent


def tools(*present: str):
    return lambda name: f"/usr/bin/{name}" if name in present else None


def settings(env: dict[str, str], *present: str, sdk: bool = True, docker: bool = True):
    return harness.settings_from_env(
        env, which=tools(*present), has_sdk=lambda: sdk, docker_ok=lambda: docker, run_id="a1b2c3"
    )


@pytest.fixture
def kubeconfig(tmp_path: Path) -> Path:
    path = tmp_path / "config"
    path.write_text("apiVersion: v1\nkind: Config\n")
    return path


def cluster_env(kubeconfig: Path, **extra: str) -> dict[str, str]:
    return {
        harness.ENV_KUBECONFIG: str(kubeconfig),
        harness.ENV_OPERATOR_IMAGE: "registry.local/hopscope-operator:dev",
        harness.ENV_PROBE_IMAGE: "registry.local/hopscope-probe:dev",
        **extra,
    }


# ---- which run ----------------------------------------------------------------------------------


@pytest.mark.parametrize("env", [{}, {harness.ENV_KIND: "0"}, {harness.ENV_KUBECONFIG: " "}])
def test_without_a_cluster_the_suite_skips_saying_what_to_set(env):
    with pytest.raises(harness.NotConfigured) as raised:
        settings(env, "kubectl", "helm")
    reason = str(raised.value)
    for name in (harness.ENV_KUBECONFIG, harness.ENV_OPERATOR_IMAGE, harness.ENV_PROBE_IMAGE):
        assert name in reason
    assert f"{harness.ENV_KIND}=1" in reason


def test_an_existing_cluster_is_used_with_the_images_given(kubeconfig: Path):
    got = settings(cluster_env(kubeconfig), "kubectl", "helm")
    assert (got.mode, got.kubeconfig, got.helm_binary) == (
        "kubeconfig",
        kubeconfig,
        "/usr/bin/helm",
    )
    assert got.images == harness.Images(
        "registry.local/hopscope-operator:dev", "registry.local/hopscope-probe:dev"
    )


def test_a_kubeconfig_under_home_is_expanded(kubeconfig: Path, monkeypatch):
    monkeypatch.setenv("HOME", str(kubeconfig.parent))
    got = settings(cluster_env(Path("~/config")), "kubectl", "helm")
    assert got.kubeconfig == kubeconfig


def test_without_the_helm_binary_helms_sdk_installs(kubeconfig: Path):
    got = settings(cluster_env(kubeconfig), "kubectl", sdk=True)
    assert got.helm_binary is None
    assert isinstance(harness.helm_backend(got, str(kubeconfig)), harness.HelmSdk)
    with pytest.raises(harness.BadConfig, match="helm-python-sdk"):
        settings(cluster_env(kubeconfig), "kubectl", sdk=False)


@pytest.mark.parametrize(
    ("change", "says"),
    [
        ({harness.ENV_OPERATOR_IMAGE: ""}, harness.ENV_OPERATOR_IMAGE),
        ({harness.ENV_PROBE_IMAGE: ""}, harness.ENV_PROBE_IMAGE),
        ({harness.ENV_KIND: "1"}, "pick one"),
        ({harness.ENV_KUBECONFIG: "/nonexistent/kubeconfig"}, "no such file"),
    ],
)
def test_a_cluster_asked_for_but_unusable_fails_saying_why(kubeconfig: Path, change, says):
    with pytest.raises(harness.BadConfig, match=says):
        settings({**cluster_env(kubeconfig), **change}, "kubectl", "helm")


def test_kubeconfig_mode_needs_kubectl(kubeconfig: Path):
    with pytest.raises(harness.BadConfig, match="kubectl"):
        settings(cluster_env(kubeconfig), "helm")


def test_kind_mode_builds_its_own_images_and_needs_docker_and_kind():
    got = settings({harness.ENV_KIND: "yes"}, "kubectl", "docker", "kind")
    assert (got.mode, got.kubeconfig, got.images) == ("kind", None, harness.KIND_IMAGES)
    assert got.kind_cluster == "hopscope-e2e-a1b2c3"
    with pytest.raises(harness.BadConfig, match="docker, kind"):
        settings({harness.ENV_KIND: "1"}, "kubectl", "helm")
    with pytest.raises(harness.BadConfig, match="no engine"):
        settings({harness.ENV_KIND: "1"}, "kubectl", "docker", "kind", docker=False)
    with pytest.raises(harness.BadConfig, match="HOPSCOPE_E2E_KIND='maybe'"):
        settings({harness.ENV_KIND: "maybe"}, "kubectl", "docker", "kind")


def test_each_run_has_namespaces_of_its_own(kubeconfig: Path):
    env = cluster_env(kubeconfig)
    one, two = (harness.settings_from_env(env, which=tools("kubectl", "helm")) for _ in "12")
    assert one.namespace != two.namespace and one.outside_namespace != two.outside_namespace
    for name in (one.namespace, one.outside_namespace, one.kind_cluster):
        assert re.fullmatch(r"[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?", name), name
    assert one.namespace != harness.RELEASE_NAMESPACE


def test_without_a_cluster_configured_here_the_suite_is_skipped_not_failed():
    if suite.SETTINGS is not None or suite.PROBLEM is not None:
        pytest.skip("a cluster is configured in this environment")
    assert suite.SKIP == harness.NOT_CONFIGURED
    assert suite.pytestmark.args == (True,)
    assert suite.pytestmark.kwargs["reason"] == harness.NOT_CONFIGURED


# ---- Helm ---------------------------------------------------------------------------------------

IMAGES = harness.Images("registry.local/op:1", "registry.local/probe:1")


def test_the_helm_binary_is_called_on_the_suites_kubeconfig_and_release_alone(monkeypatch):
    calls: list[tuple[list[str], Any]] = []

    def fake_run(*argv: str, **_: Any) -> str:
        values = argv[argv.index("--values") + 1] if "--values" in argv else None
        calls.append((list(argv), json.loads(Path(values).read_text()) if values else None))
        return ""

    monkeypatch.setattr(harness, "run", fake_run)
    helm = harness.HelmCli("/k/config", "/usr/bin/helm")
    values = harness.chart_values(IMAGES, watch=["ns-a"])
    helm.install(values)
    helm.upgrade(values)
    helm.uninstall()
    (install, given), (upgrade, given_again), (uninstall, _) = calls
    where = ["--kubeconfig", "/k/config", "--namespace", "hopscope-system"]
    assert install[:4] == ["/usr/bin/helm", "install", "hopscope", str(harness.CHART)]
    assert upgrade[:4] == ["/usr/bin/helm", "upgrade", "hopscope", str(harness.CHART)]
    for argv in (install, upgrade):
        assert argv[4:8] == where and "--wait" in argv
        assert "--create-namespace" not in argv and "--reuse-values" not in argv
    assert given == given_again == values  # the whole values, each time
    assert uninstall == ["/usr/bin/helm", "uninstall", "hopscope", *where, "--timeout", "300s"]


def test_the_values_set_the_images_and_the_watched_namespaces():
    assert harness.chart_values(IMAGES) == {
        "image": {"operator": "registry.local/op:1", "probe": "registry.local/probe:1"},
        "watch": {"namespaces": []},
        "tenancy": {"allowNodeSources": True},
    }
    assert harness.chart_values(IMAGES, ["a"])["watch"] == {"namespaces": ["a"]}


helm_sdk = pytest.importorskip("helm_python", reason="helm-python-sdk not installed")


class FakeSdk:
    """Records the calls, and binds each to the real SDK's signature (a wrong keyword fails)."""

    HelmNotFoundError = helm_sdk.HelmNotFoundError
    Chart = helm_sdk.Chart

    def __init__(self, released: bool = False) -> None:
        self.calls: list[tuple[str, tuple, dict]] = []
        self.released = released
        sdk = self

        class Config:
            def __init__(self, **kwargs: Any) -> None:
                inspect.signature(helm_sdk.Config).bind(**kwargs)
                sdk.calls.append(("Config", (), kwargs))

            def __enter__(self):
                return self

            def __exit__(self, *_: Any) -> None:
                pass

            def __getattr__(self, action: str):
                def call(*args: Any, **kwargs: Any) -> dict:
                    inspect.signature(getattr(helm_sdk.Config, action)).bind(self, *args, **kwargs)
                    sdk.calls.append((action, args, kwargs))
                    if action == "status" and not sdk.released:
                        raise helm_sdk.HelmNotFoundError("release: not found")
                    return {}

                return call

        self.Config = Config


def test_helms_sdk_installs_upgrades_and_uninstalls_the_same_release():
    fake = FakeSdk()
    helm = harness.HelmSdk("/k/config", sdk=fake)
    values = harness.chart_values(IMAGES)
    assert helm.exists() is False
    helm.install(values)
    helm.upgrade(values)
    helm.uninstall()
    configs = [kwargs for name, _, kwargs in fake.calls if name == "Config"]
    assert all(
        c == {"kubeconfig_path": "/k/config", "namespace": "hopscope-system"} for c in configs
    )
    actions = [(name, args) for name, args, _ in fake.calls if name != "Config"]
    assert actions == [
        ("status", ("hopscope",)),
        ("install", (str(harness.CHART), "hopscope", values)),
        ("upgrade", (str(harness.CHART), "hopscope", values)),
        ("uninstall", ("hopscope",)),
    ]
    assert harness.HelmSdk("/k/config", sdk=FakeSdk(released=True)).exists() is True


def test_the_chart_renders_with_the_suites_images_and_names_what_the_release_creates():
    helm = harness.HelmSdk("/k/config")
    objects = harness.release_objects(helm.render(harness.chart_values(IMAGES, ["ns-a"])))
    [deployment] = [o for o in objects if o["kind"] == "Deployment"]
    [container] = deployment["spec"]["template"]["spec"]["containers"]
    env = {e["name"]: e["value"] for e in container["env"]}
    assert container["image"] == IMAGES.operator and env["HOPSCOPE_PROBE_IMAGE"] == IMAGES.probe
    assert env["HOPSCOPE_WATCH_NAMESPACES"] == "ns-a"
    # What the pre-install check looks for: no CRD (a kept CRD is not a conflict), and every
    # namespaced object in the release namespace or a watched one.
    assert "CustomResourceDefinition" not in {o["kind"] for o in objects}
    spaces = {o["metadata"].get("namespace") for o in objects}
    assert spaces <= {None, "hopscope-system", "ns-a", "kube-system"}


def test_the_pre_install_check_asks_for_every_object_the_chart_creates_by_name():
    objects = harness.release_objects(
        harness.HelmSdk("/k/config").render(harness.chart_values(IMAGES, ["ns-a"]))
    )
    queries = harness.existence_queries(objects)
    asked = [(q[1] if q[0] == "-n" else "", ref) for q in queries for ref in q if "/" in ref]
    expected = [(o["metadata"].get("namespace") or "", o["metadata"]["name"]) for o in objects]
    assert sorted((ns, ref.rpartition("/")[2]) for ns, ref in asked) == sorted(expected)
    for query in queries:
        assert query[-3:] == ("--ignore-not-found", "-o", "name") and "-f" not in query
    kinds = {ref.partition("/")[0] for _, ref in asked}
    assert {"deployment.apps", "clusterrole.rbac.authorization.k8s.io", "serviceaccount"} <= kinds


# ---- installing, and teardown -------------------------------------------------------------------


class FakeHelm:
    def __init__(self, released: bool) -> None:
        self.released, self.installed = released, None

    def exists(self) -> bool:
        return self.released

    def render(self, values: dict[str, Any]) -> str:
        return "apiVersion: rbac.authorization.k8s.io/v1\nkind: ClusterRole\nmetadata:\n  name: r\n"

    def install(self, values: dict[str, Any]) -> None:
        self.installed = values


def fake_cluster(kubeconfig: Path, helm: FakeHelm, existing: dict[tuple[str, ...], str]):
    got = settings(cluster_env(kubeconfig), "kubectl", "helm")
    cluster = suite.Cluster(got, str(kubeconfig), helm, Ledger())
    made: list[tuple[str, ...]] = []

    def kubectl(*args: str, stdin: str | None = None, timeout: float = 0) -> str:
        made.append(args)
        return existing.get(args[:2], "")

    cluster.kubectl = kubectl  # type: ignore[method-assign]
    return cluster, made


def test_an_existing_hopscope_release_is_refused_and_nothing_is_torn_down(kubeconfig: Path):
    cluster, made = fake_cluster(kubeconfig, FakeHelm(released=True), {})
    with pytest.raises(pytest.fail.Exception, match="leaves yours alone"):
        cluster.install()
    assert made == [] and harness.teardown_plan(cluster.ledger) == []


def test_objects_the_chart_would_create_that_exist_are_refused(kubeconfig: Path):
    existing = {("get", "clusterrole.rbac.authorization.k8s.io/r"): "clusterrole.rbac..../r\n"}
    cluster, _ = fake_cluster(kubeconfig, FakeHelm(released=False), existing)
    with pytest.raises(pytest.fail.Exception, match="exist already"):
        cluster.install()
    assert harness.teardown_plan(cluster.ledger) == []


@pytest.mark.parametrize("namespace_exists", [True, False])
def test_the_release_namespace_is_deleted_only_when_the_run_created_it(
    kubeconfig: Path, namespace_exists: bool
):
    existing = {("get", "namespace"): "namespace/hopscope-system\n"} if namespace_exists else {}
    helm = FakeHelm(released=False)
    cluster, _ = fake_cluster(kubeconfig, helm, existing)
    cluster.install()
    assert helm.installed == harness.chart_values(cluster.images) and cluster.ledger.release
    assert cluster.ledger.namespaces == ([] if namespace_exists else ["hopscope-system"])


def test_teardown_of_an_existing_cluster_removes_the_route_release_and_its_namespaces_only():
    hole = Blackhole("node-1", "10.244.0.254", "hopscope-e2e-x", "blackhole")
    ledger = Ledger(
        release=True,
        namespaces=["hopscope-system", "hopscope-e2e-x", "hopscope-e2e-x-outside"],
        blackholes=[hole],
    )
    plan = harness.teardown_plan(ledger)
    assert [(s.tool, s.args[:4]) for s in plan] == [
        ("kubectl", ("-n", "hopscope-e2e-x", "exec", "blackhole")),
        ("helm", ("uninstall",)),
        ("kubectl", ("delete", "namespace", "hopscope-e2e-x-outside", "--ignore-not-found")),
        ("kubectl", ("delete", "namespace", "hopscope-e2e-x", "--ignore-not-found")),
        ("kubectl", ("delete", "namespace", "hopscope-system", "--ignore-not-found")),
    ]
    assert plan[0].args[-2:] == ("10.244.0.254", "remove")
    for step in plan:  # by name only: no selector, no --all, no other kind of object
        assert not {"--all", "-A", "-l", "--selector", "--all-namespaces"} & set(step.args)
    assert all(s.args[:2] == ("delete", "namespace") for s in plan[2:])


def probe_pod(name: str, *checks: str) -> dict[str, Any]:
    annotations = {"hopscope.dev/checks": json.dumps(dict.fromkeys(checks, "uid"))}
    labels = {"app.kubernetes.io/name": "hopscope-probe"}
    return {"metadata": {"name": name, "labels": labels, "annotations": annotations}}


def test_teardown_deletes_the_probe_pods_of_this_runs_checks_alone_by_name():
    ours = ["hopscope-e2e-x", "hopscope-e2e-x-outside"]
    unlabelled = probe_pod("not-a-probe", "hopscope-e2e-x/a/1")
    del unlabelled["metadata"]["labels"]
    pods = [
        probe_pod("p-ours", "hopscope-e2e-x/client-to-echo/1"),
        probe_pod("p-both", "hopscope-e2e-x/a/1", "hopscope-e2e-x-outside/b/2"),
        probe_pod("p-mixed", "hopscope-e2e-x/a/1", "shop/web-to-db/3"),
        probe_pod("p-theirs", "shop/web-to-db/3"),
        unlabelled,
    ]
    assert harness.probe_pods_of_run(pods, ours) == ["p-both", "p-ours"]
    plan = harness.teardown_plan(Ledger(release=True, namespaces=ours), ["p-both", "p-ours"])
    deleted = [s.args for s in plan if "pod" in s.args]
    assert deleted == [
        ("-n", "hopscope-system", "delete", "pod", "p-both", "--ignore-not-found"),
        ("-n", "hopscope-system", "delete", "pod", "p-ours", "--ignore-not-found"),
    ]
    assert [s.tool for s in plan].index("helm") < [s.args for s in plan].index(deleted[0])
    # Where the run created hopscope-system, deleting it takes its pods.
    mine = Ledger(release=True, namespaces=["hopscope-system", *ours])
    assert not [s for s in harness.teardown_plan(mine, ["p-ours"]) if "pod" in s.args]


def test_teardown_of_a_kind_run_deletes_its_cluster_and_nothing_else():
    ledger = Ledger(kind_cluster="hopscope-e2e-x", release=True, namespaces=["hopscope-e2e-x"])
    assert [(s.tool, s.args) for s in harness.teardown_plan(ledger)] == [
        ("kind", ("delete", "cluster", "--name", "hopscope-e2e-x"))
    ]


def test_teardown_tries_every_step_and_lists_those_that_failed(monkeypatch):
    done: list[tuple[str, ...]] = []

    class Helm:
        def uninstall(self) -> None:
            done.append(("helm", "uninstall"))

    def fake_run(*argv: str, **_: Any) -> str:
        done.append(argv)
        if "get" in argv:
            return json.dumps({"items": [probe_pod("p-ours", "hopscope-e2e-x/a/1")]})
        if "hopscope-e2e-x" in argv:
            raise AssertionError("namespace stuck")
        return ""

    monkeypatch.setattr(suite, "run", fake_run)
    ledger = Ledger(release=True, namespaces=["hopscope-e2e-x", "hopscope-e2e-x-outside"])
    with pytest.raises(AssertionError, match="the namespace hopscope-e2e-x this run created"):
        suite.tear_down(ledger, "/k/config", Helm())  # type: ignore[arg-type]
    assert [argv[:5] for argv in done] == [
        ("kubectl", "--kubeconfig", "/k/config", "-n", "hopscope-system"),  # its probe pods
        ("helm", "uninstall"),
        ("kubectl", "--kubeconfig", "/k/config", "-n", "hopscope-system"),  # p-ours, by name
        ("kubectl", "--kubeconfig", "/k/config", "delete", "namespace"),
        ("kubectl", "--kubeconfig", "/k/config", "delete", "namespace"),
    ]


# ---- the unreachable address --------------------------------------------------------------------

NODE = {
    "metadata": {"name": "node-1"},
    "spec": {"podCIDR": "10.244.1.0/24", "podCIDRs": ["10.244.1.0/24", "fd00:10:244:1::/64"]},
    "status": {"addresses": [{"type": "InternalIP", "address": "172.18.0.2"}]},
}
KUBERNETES = {"spec": {"clusterIP": "10.96.0.1"}}


def net(text: str) -> ipaddress.IPv4Network:
    return ipaddress.IPv4Network(text)


def test_the_clusters_own_ranges_node_pods_first_then_services():
    cidrs = [{"spec": {"cidrs": ["10.96.0.0/16", "fd00:10:96::/112"]}}]
    assert harness.cluster_networks(NODE, cidrs, KUBERNETES) == [
        net("10.244.1.0/24"),
        net("10.96.0.0/16"),
        net("10.96.0.0/24"),
    ]
    bare = {"spec": {"podCIDR": "10.244.2.0/24"}}
    assert harness.cluster_networks(bare, [], None) == [net("10.244.2.0/24")]
    assert harness.cluster_networks({"spec": {}}, [], KUBERNETES) == [net("10.96.0.0/24")]


def test_every_address_the_cluster_uses_is_known_used():
    pods = [{"status": {"podIP": "10.244.1.254", "hostIP": "172.18.0.2",
                        "podIPs": [{"ip": "10.244.1.254"}, {"ip": "fd00::5"}]}}]  # fmt: skip
    services = [{"spec": {"clusterIP": "None", "externalIPs": ["10.244.1.250"]},
                 "status": {"loadBalancer": {"ingress": [{"ip": "10.244.1.249"}]}}}]  # fmt: skip
    slices = [{"endpoints": [{"addresses": ["10.244.1.251"]}]}]
    used = harness.used_addresses(pods, [NODE], services, slices)
    assert used == {ipaddress.IPv4Address(a) for a in
                    ("10.244.1.254", "172.18.0.2", "10.244.1.250", "10.244.1.249",
                     "10.244.1.251")}  # fmt: skip


def test_the_unused_address_is_from_the_top_of_the_range_never_its_broadcast():
    a = ipaddress.IPv4Address
    top = harness.unused_address([net("10.244.1.0/24")], set())
    assert top == (a("10.244.1.254"), net("10.244.1.0/24"))
    used = {a("10.244.1.254"), a("10.244.1.253")}
    assert harness.unused_address([net("10.244.1.0/24")], used)[0] == a("10.244.1.252")
    full = {a("10.0.0.1"), a("10.0.0.2")}
    got = harness.unused_address([net("10.0.0.0/30"), net("10.96.0.0/24")], full)
    assert got == (a("10.96.0.254"), net("10.96.0.0/24"))
    with pytest.raises(LookupError):
        harness.unused_address([net("10.0.0.0/30")], full)
    with pytest.raises(LookupError):
        harness.unused_address([], set())


class Stop(Exception):
    pass


class FakeRoutes:
    """pyroute2's IPRoute as the helper script uses it, over one node's state."""

    def __init__(self, addresses=(), route_type=1, present=False) -> None:
        self.addresses, self.route_type, self.present = list(addresses), route_type, present
        self.calls: list[tuple[str, dict]] = []

    def module(self) -> types.ModuleType:
        routes = self

        class NetlinkError(Exception):
            def __init__(self, code: int) -> None:
                self.code = code

        class Message(dict):
            def get_attr(self, name: str):
                return self.get(name)

        class IPRoute:
            def __enter__(self):
                return self

            def __exit__(self, *_):
                pass

            def get_addr(self):
                return [Message(IFA_ADDRESS=a) for a in routes.addresses]

            def route(self, command: str, **kwargs):
                routes.calls.append((command, kwargs))
                if command == "get":
                    return [Message(type=routes.route_type)]
                if command == "del" and not routes.present:
                    raise NetlinkError(3)
                routes.present = command == "add"
                return []

        mod = types.ModuleType("pyroute2")
        mod.IPRoute = IPRoute  # type: ignore[attr-defined]
        errors = types.ModuleType("pyroute2.netlink.exceptions")
        errors.NetlinkError = NetlinkError  # type: ignore[attr-defined]
        return mod, errors


def run_helper(monkeypatch, capsys, routes: FakeRoutes, *argv: str) -> tuple[str, Any]:
    mod, errors = routes.module()
    monkeypatch.setitem(sys.modules, "pyroute2", mod)
    monkeypatch.setitem(sys.modules, "pyroute2.netlink", types.ModuleType("pyroute2.netlink"))
    monkeypatch.setitem(sys.modules, "pyroute2.netlink.exceptions", errors)
    fake_signal = types.ModuleType("signal")
    fake_signal.SIGTERM = 15  # type: ignore[attr-defined]
    handlers: dict[int, Any] = {}
    fake_signal.signal = handlers.__setitem__  # type: ignore[attr-defined]

    def pause() -> None:
        raise Stop

    fake_signal.pause = pause  # type: ignore[attr-defined]
    monkeypatch.setitem(sys.modules, "signal", fake_signal)
    monkeypatch.setattr(sys, "argv", ["-c", *argv])
    outcome: Any = None
    try:
        exec(compile(harness.BLACKHOLE_SCRIPT, "blackhole", "exec"), {"__name__": "__main__"})
    except (Stop, SystemExit) as exc:
        outcome = exc
    monkeypatch.undo()
    if 15 in handlers:
        outcome = (outcome, handlers[15])
    return capsys.readouterr().out, outcome


def test_the_helper_adds_a_blackhole_route_and_takes_exactly_it_off_on_sigterm(monkeypatch, capsys):
    routes = FakeRoutes()
    out, (stopped, on_term) = run_helper(monkeypatch, capsys, routes, "10.244.1.254")
    assert isinstance(stopped, Stop) and out == "blackholed 10.244.1.254/32\n"
    assert routes.calls[-1] == ("add", {"dst": "10.244.1.254/32", "type": "blackhole"})
    assert routes.present
    with pytest.raises(SystemExit):
        on_term(15, None)
    assert routes.calls[-1] == ("del", {"dst": "10.244.1.254/32", "type": "blackhole"})
    assert not routes.present and capsys.readouterr().out == "removed 10.244.1.254/32\n"


def test_the_helper_refuses_an_address_of_the_node_or_a_local_route(monkeypatch, capsys):
    routes = FakeRoutes(addresses=["10.244.1.254"])
    _, outcome = run_helper(monkeypatch, capsys, routes, "10.244.1.254")
    assert "an address of this node" in str(outcome.code)
    local = FakeRoutes(route_type=3)  # broadcast: the local table would win over our route
    _, outcome = run_helper(monkeypatch, capsys, local, "10.244.1.255")
    assert "not unicast" in str(outcome.code)
    assert not any(c == "add" for c, _ in routes.calls + local.calls)


def test_the_helper_removes_only_its_blackhole_route_and_says_so(monkeypatch, capsys):
    routes = FakeRoutes(present=True)
    out, outcome = run_helper(monkeypatch, capsys, routes, "10.244.1.254", "remove")
    assert outcome.code == 0 and out == "removed 10.244.1.254/32\n"
    assert routes.calls == [("del", {"dst": "10.244.1.254/32", "type": "blackhole"})]
    out, _ = run_helper(monkeypatch, capsys, routes, "10.244.1.254", "remove")
    assert out == "not present 10.244.1.254/32\n"


def test_the_helper_pod_is_pinned_to_its_node_with_net_admin_only():
    hole = Blackhole("node-1", "10.244.1.254", "hopscope-e2e-x", "blackhole")
    spec = harness.blackhole_pod(hole, IMAGES.probe)["spec"]
    [container] = spec["containers"]
    assert (spec["nodeName"], spec["hostNetwork"], spec["restartPolicy"]) == ("node-1", True,
                                                                              "Never")  # fmt: skip
    assert container["securityContext"] == {"capabilities": {"add": ["NET_ADMIN"]}}
    assert container["args"] == [harness.BLACKHOLE_SCRIPT, "10.244.1.254"]


# ---- DNS, canary, metrics -----------------------------------------------------------------------

RESOLV = "search ns-a.svc.corp.internal svc.corp.internal corp.internal ec2.internal\n" \
         "nameserver 10.96.0.10\noptions ndots:5\n"  # fmt: skip


def test_the_missing_name_is_absolute_and_under_the_cluster_domain():
    domain = harness.cluster_domain(RESOLV, "ns-a")
    assert domain == "corp.internal"
    assert harness.missing_name("ns-a", domain) == "no-such-service.ns-a.svc.corp.internal."
    with pytest.raises(LookupError):
        harness.cluster_domain(RESOLV, "ns-b")


@pytest.mark.parametrize(
    ("connected", "over", "verdict"),
    [
        ([], False, None),
        ([True, False, False], False, None),
        ([True, False, False, False], False, Enforcement.ENFORCED),
        ([True] * 20, False, None),
        ([True] * 20, True, Enforcement.NOT_ENFORCED),
        ([True, False, True, True, False], True, Enforcement.INCONCLUSIVE),
        ([True, True], True, Enforcement.INCONCLUSIVE),
    ],
)
def test_the_canary_says_enforced_only_on_refusals_in_a_row(connected, over, verdict):
    assert harness.enforcement(connected, over) == verdict


EXPOSITION = """# HELP hopscope_check_reachable 1 reachable
# TYPE hopscope_check_reachable gauge
hopscope_check_reachable{check="dns",destination="fqdn/x",namespace="other",protocol="TCP",source="pod/other/client"} 1.0
hopscope_check_reachable{check="dns",destination="fqdn/x",namespace="mine",protocol="TCP",source="pod/mine/client"} 0.0
# HELP hopscope_check_latency_ms latency
# TYPE hopscope_check_latency_ms gauge
hopscope_check_latency_ms{check="dns",destination="fqdn/x",namespace="mine",protocol="TCP",source="pod/mine/client"} 3.0
"""  # noqa: E501


def test_a_checks_series_is_picked_by_namespace_and_name():
    assert harness.series(EXPOSITION, "hopscope_check_reachable", "mine", "dns") == [0.0]
    assert harness.series(EXPOSITION, "hopscope_check_reachable", "other", "dns") == [1.0]
    assert harness.series(EXPOSITION, "hopscope_check_reachable", "third", "dns") == []


def test_the_suite_addresses_nothing_outside_the_cluster():
    """The only addresses written in the suite: loopback (the port-forward) and the servers'
    bind-all. Its destinations are found in the cluster at run time."""
    for path in (HERE / "harness.py", HERE / "test_cluster.py"):
        for text in re.findall(r"\b\d{1,3}(?:\.\d{1,3}){3}\b", path.read_text()):
            assert text in ("127.0.0.1", "0.0.0.0"), f"{path.name}: {text}"
    assert "invalid" not in (HERE / "test_cluster.py").read_text()  # no name the DNS forwards
