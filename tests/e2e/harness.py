"""What the e2e suite does to a cluster, apart from the cluster: which cluster and images (the
environment), the objects it applies, how it installs hopscope (the `helm` binary or Helm's
SDK), the address it makes unreachable, the NetworkPolicy canary's verdict, the metric series it
reads, and the teardown plan of exactly what it created. `test_harness.py` checks all of it
without a cluster; `test_cluster.py` runs it on one.
"""

from __future__ import annotations

import ipaddress
import json
import os
import secrets
import shutil
import subprocess
import tempfile
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from enum import Enum
from pathlib import Path
from typing import Any, Literal

from prometheus_client.parser import text_string_to_metric_families

from hopscope_operator.install import chart as install
from hopscope_operator.names import ANNOTATION_CHECKS, LABEL_APP, NAME_PREFIX

REPO = Path(__file__).resolve().parents[2]
CHART = REPO / "charts" / "hopscope"
RELEASE = "hopscope"
RELEASE_NAMESPACE = install.NAMESPACE  # the chart refuses any other
HELM_TIMEOUT_SECONDS = 300

ENV_KUBECONFIG = "HOPSCOPE_E2E_KUBECONFIG"
ENV_KIND = "HOPSCOPE_E2E_KIND"
ENV_OPERATOR_IMAGE = "HOPSCOPE_E2E_OPERATOR_IMAGE"
ENV_PROBE_IMAGE = "HOPSCOPE_E2E_PROBE_IMAGE"
NOT_CONFIGURED = (
    f"no cluster configured: set {ENV_KUBECONFIG}=<kubeconfig of an existing cluster> with"
    f" {ENV_OPERATOR_IMAGE} and {ENV_PROBE_IMAGE} (images it can pull), or {ENV_KIND}=1 to"
    " build the images and run a throwaway kind cluster (needs docker, kind and kubectl)"
)
SERVE = "import http.server as h; h.test(h.SimpleHTTPRequestHandler, port=8080, bind='0.0.0.0')"
SLEEP = "import time; time.sleep(10**9)"
# One TCP connect from the client pod, as the canary makes it: says whether it connected (any
# other output, or a failed exec, is no answer about the network).
CONNECT = """
import socket, sys
try:
    socket.create_connection((sys.argv[1], 8080), timeout=2).close()
except OSError:
    print("failed")
else:
    print("connected")
"""


@dataclass(frozen=True)
class Images:
    operator: str
    probe: str


KIND_IMAGES = Images(operator="hopscope-operator:e2e", probe="hopscope-probe:e2e")


class NotConfigured(Exception):
    """No cluster was asked for: the suite skips, saying what to set."""


class BadConfig(Exception):
    """A cluster was asked for but cannot be used as given: the suite fails, saying why."""


@dataclass(frozen=True)
class Settings:
    mode: Literal["kubeconfig", "kind"]
    images: Images
    kubeconfig: Path | None  # the user's (kubeconfig mode); kind mode writes its own
    run_id: str
    helm_binary: str | None  # `helm` on PATH, else None: Helm's SDK (helm-python-sdk)

    @property
    def namespace(self) -> str:
        """The namespace of the suite's workloads and checks: new each run."""
        return f"hopscope-e2e-{self.run_id}"

    @property
    def outside_namespace(self) -> str:
        """A namespace a confined operator does not watch (also new each run)."""
        return f"hopscope-e2e-{self.run_id}-outside"

    @property
    def kind_cluster(self) -> str:
        return f"hopscope-e2e-{self.run_id}"


def _flag(env: Mapping[str, str], name: str) -> bool:
    value = env.get(name, "").strip().lower()
    if value in ("", "0", "false", "no"):
        return False
    if value in ("1", "true", "yes"):
        return True
    raise BadConfig(f"{name}={env[name]!r}: use 1 (or true/yes) to enable, 0 or unset to disable")


def sdk_available() -> bool:
    try:
        import helm_python  # noqa: F401
    except ImportError:
        return False
    return True


def docker_answers() -> bool:
    done = subprocess.run(["docker", "info"], capture_output=True, text=True, check=False)
    return done.returncode == 0


def settings_from_env(
    env: Mapping[str, str],
    *,
    which: Callable[[str], str | None] = shutil.which,
    has_sdk: Callable[[], bool] = sdk_available,
    docker_ok: Callable[[], bool] = docker_answers,
    run_id: str | None = None,
) -> Settings:
    """The run the environment asks for. Nothing asked: NotConfigured (skip). Asked but not
    possible as given (both modes, a missing file or image, a missing tool): BadConfig (fail)."""
    kubeconfig = env.get(ENV_KUBECONFIG, "").strip()
    kind = _flag(env, ENV_KIND)
    if not kubeconfig and not kind:
        raise NotConfigured(NOT_CONFIGURED)
    if kubeconfig and kind:
        raise BadConfig(
            f"both {ENV_KUBECONFIG} and {ENV_KIND} are set: pick one (an existing cluster, or"
            " a kind cluster the suite creates and deletes)"
        )
    helm = which("helm")
    missing = [tool for tool in ("kubectl",) if which(tool) is None]
    if helm is None and not has_sdk():
        missing.append("helm (or the dev extra's helm-python-sdk)")
    run = run_id or secrets.token_hex(3)
    if kind:
        missing += [tool for tool in ("docker", "kind") if which(tool) is None]
        if missing:
            raise BadConfig(f"{ENV_KIND}=1 needs {', '.join(missing)} on PATH")
        if not docker_ok():
            raise BadConfig(f"{ENV_KIND}=1: docker is installed but no engine answers docker info")
        return Settings("kind", KIND_IMAGES, None, run, helm)
    path = Path(kubeconfig).expanduser()
    if not path.is_file():
        raise BadConfig(f"{ENV_KUBECONFIG}={kubeconfig}: no such file")
    unset = [
        name for name in (ENV_OPERATOR_IMAGE, ENV_PROBE_IMAGE) if not env.get(name, "").strip()
    ]
    if unset:
        raise BadConfig(
            f"{ENV_KUBECONFIG} is set, so the images must already be where the cluster pulls"
            f" them from: set {' and '.join(unset)}"
        )
    if missing:
        raise BadConfig(f"{ENV_KUBECONFIG} needs {', '.join(missing)}")
    images = Images(env[ENV_OPERATOR_IMAGE].strip(), env[ENV_PROBE_IMAGE].strip())
    return Settings("kubeconfig", images, path.resolve(), run, helm)


# ---- Helm ---------------------------------------------------------------------------------------


def chart_values(images: Images, watch: Sequence[str] = ()) -> dict[str, Any]:
    """Every value the suite sets, in full each time (an upgrade does not reuse old values)."""
    return {
        "image": {"operator": images.operator, "probe": images.probe},
        "watch": {"namespaces": list(watch)},
        # The suite checks node sources from a namespaced check: the chart refuses them by default.
        "tenancy": {"allowNodeSources": True},
    }


class HelmCli:
    """The `helm` binary, on the suite's kubeconfig alone."""

    def __init__(self, kubeconfig: str, binary: str = "helm") -> None:
        self.kubeconfig, self.binary = kubeconfig, binary

    def argv(self, action: str, values_file: str | None = None) -> list[str]:
        where = ["--kubeconfig", self.kubeconfig, "--namespace", RELEASE_NAMESPACE]
        timeout = ["--timeout", f"{HELM_TIMEOUT_SECONDS}s"]
        if action in ("install", "upgrade"):
            assert values_file is not None
            return [self.binary, action, RELEASE, str(CHART), *where, "--values", values_file,
                    "--wait", *timeout]  # fmt: skip
        if action == "template":
            assert values_file is not None
            return [self.binary, "template", RELEASE, str(CHART), "--namespace",
                    RELEASE_NAMESPACE, "--values", values_file]  # fmt: skip
        if action == "uninstall":
            return [self.binary, "uninstall", RELEASE, *where, *timeout]
        if action == "status":
            return [self.binary, "status", RELEASE, *where]
        raise ValueError(action)

    def _call(self, action: str, values: dict[str, Any] | None = None) -> str:
        with tempfile.TemporaryDirectory() as tmp:
            values_file = None
            if values is not None:
                values_file = os.path.join(tmp, "values.json")  # JSON is YAML
                Path(values_file).write_text(json.dumps(values))
            return run(*self.argv(action, values_file), timeout=HELM_TIMEOUT_SECONDS + 60)

    def install(self, values: dict[str, Any]) -> None:
        self._call("install", values)

    def upgrade(self, values: dict[str, Any]) -> None:
        self._call("upgrade", values)

    def uninstall(self) -> None:
        self._call("uninstall")

    def render(self, values: dict[str, Any]) -> str:
        return self._call("template", values)

    def exists(self) -> bool:
        done = subprocess.run(self.argv("status"), capture_output=True, text=True, check=False)
        if done.returncode == 0:
            return True
        if "not found" in done.stderr:
            return False
        raise AssertionError(f"helm status failed:\n{done.stderr}")


class HelmSdk:
    """Helm's Go SDK (helm-python-sdk, the dev extra), where no `helm` binary is on PATH."""

    def __init__(self, kubeconfig: str, sdk: Any = None) -> None:
        if sdk is None:
            import helm_python as sdk
        self.sdk, self.kubeconfig = sdk, kubeconfig

    def _config(self) -> Any:
        return self.sdk.Config(kubeconfig_path=self.kubeconfig, namespace=RELEASE_NAMESPACE)

    def install(self, values: dict[str, Any]) -> None:
        with self._config() as config:
            config.install(str(CHART), RELEASE, values, namespace=RELEASE_NAMESPACE,
                           wait="watcher", timeout=HELM_TIMEOUT_SECONDS)  # fmt: skip

    def upgrade(self, values: dict[str, Any]) -> None:
        with self._config() as config:
            config.upgrade(str(CHART), RELEASE, values, namespace=RELEASE_NAMESPACE,
                           wait="watcher", timeout=HELM_TIMEOUT_SECONDS)  # fmt: skip

    def uninstall(self) -> None:
        with self._config() as config:
            config.uninstall(RELEASE, timeout=HELM_TIMEOUT_SECONDS)

    def render(self, values: dict[str, Any]) -> str:
        chart = self.sdk.Chart.load(str(CHART))
        try:
            files = chart.render(values, name=RELEASE, namespace=RELEASE_NAMESPACE,
                                 is_install=True)  # fmt: skip
        finally:
            chart.close()
        return "\n---\n".join(
            text for path, text in sorted(files.items()) if path.endswith(".yaml")
        )

    def exists(self) -> bool:
        with self._config() as config:
            try:
                config.status(RELEASE)
            except self.sdk.HelmNotFoundError:
                return False
        return True


def helm_backend(settings: Settings, kubeconfig: str) -> HelmCli | HelmSdk:
    if settings.helm_binary is not None:
        return HelmCli(kubeconfig, settings.helm_binary)
    return HelmSdk(kubeconfig)


def release_objects(manifest: str) -> list[dict[str, Any]]:
    """The objects a rendered chart would create (its CRD is not among them: Helm installs
    crds/ only when absent, and never deletes it)."""
    import yaml

    return [doc for doc in yaml.safe_load_all(manifest) if doc]


def existence_queries(objects: Iterable[Mapping[str, Any]]) -> list[tuple[str, ...]]:
    """`kubectl get` arguments that print which of OBJECTS exist, one query per namespace
    (cluster-scoped ones without). By name on the command line, not `get -f`: with a file,
    `--ignore-not-found` stops at the first missing object (kubernetes/kubernetes#80541)."""
    refs: dict[str | None, list[str]] = {}
    for obj in objects:
        group = obj["apiVersion"].rpartition("/")[0]
        kind = obj["kind"].lower() + (f".{group}" if group else "")
        meta = obj["metadata"]
        refs.setdefault(meta.get("namespace"), []).append(f"{kind}/{meta['name']}")
    return [
        (*(("-n", ns) if ns else ()), "get", *names, "--ignore-not-found", "-o", "name")
        for ns, names in sorted(refs.items(), key=lambda item: item[0] or "")
    ]


# ---- teardown -----------------------------------------------------------------------------------


@dataclass(frozen=True)
class Blackhole:
    """A blackhole route the suite added on a node, and the helper pod that holds it."""

    node: str
    address: str
    namespace: str
    pod: str


@dataclass
class Ledger:
    """What this run created, written down as each thing is created: teardown removes exactly
    this, and a thing that existed before the run is never in it."""

    kind_cluster: str | None = None
    release: bool = False
    namespaces: list[str] = field(default_factory=list)
    blackholes: list[Blackhole] = field(default_factory=list)


@dataclass(frozen=True)
class Step:
    tool: Literal["kubectl", "kind", "helm"]
    args: tuple[str, ...]
    why: str


def probe_pods_of_run(pods: Iterable[Mapping[str, Any]], namespaces: Sequence[str]) -> list[str]:
    """The operator's probe pods that ran this run's checks alone (their annotation names each
    check's namespace). The operator removes them as it collects; one in flight when it is
    uninstalled stays, and would outlive the run where the run did not create hopscope-system."""
    names = []
    for pod in pods:
        meta = pod.get("metadata") or {}
        if (meta.get("labels") or {}).get(LABEL_APP) != NAME_PREFIX:
            continue
        try:
            checks = json.loads((meta.get("annotations") or {}).get(ANNOTATION_CHECKS, ""))
        except ValueError:
            continue
        spaces = {str(batch_id).split("/", 1)[0] for batch_id in checks}
        if spaces and spaces <= set(namespaces):
            names.append(meta["name"])
    return sorted(names)


def teardown_plan(ledger: Ledger, probe_pods: Sequence[str] = ()) -> list[Step]:
    """In order: a kind cluster goes whole (with all in it); otherwise the routes come off the
    nodes first (they outlive any pod), then the release, then the probe pods of this run's
    checks left in a release namespace the run did not create, then the namespaces this run
    created; each by its name."""
    if ledger.kind_cluster is not None:
        return [Step("kind", ("delete", "cluster", "--name", ledger.kind_cluster),
                     "the kind cluster this run created")]  # fmt: skip
    steps = []
    for hole in ledger.blackholes:
        remove = ("exec", hole.pod, "--", "python", "-c", BLACKHOLE_SCRIPT, hole.address, "remove")
        where = f"the blackhole route to {hole.address} on node {hole.node}"
        steps.append(Step("kubectl", ("-n", hole.namespace, *remove), where))
    if ledger.release:
        steps.append(Step("helm", ("uninstall",), f"the release {RELEASE} in {RELEASE_NAMESPACE}"))
    if RELEASE_NAMESPACE not in ledger.namespaces:  # else its deletion takes them
        for name in probe_pods:
            what = f"the probe pod {name} of this run's checks"
            steps.append(Step("kubectl", ("-n", RELEASE_NAMESPACE, "delete", "pod", name,
                                          "--ignore-not-found"), what))  # fmt: skip
    delete = ("--ignore-not-found", "--wait=true", "--timeout=300s")
    for name in reversed(ledger.namespaces):
        what = f"the namespace {name} this run created"
        steps.append(Step("kubectl", ("delete", "namespace", name, *delete), what))
    return steps


# ---- objects ------------------------------------------------------------------------------------

RUN_LABEL = "hopscope.dev/e2e-run"


def namespace(name: str, run_id: str) -> dict[str, Any]:
    """Privileged Pod Security: the probe pods and the route helper use the host's network."""
    labels = {RUN_LABEL: run_id, "pod-security.kubernetes.io/enforce": "privileged"}
    return {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": name, "labels": labels}}


def _container(name: str, image: str, code: str, *args: str) -> dict[str, Any]:
    return {"name": name, "image": image, "command": ["python", "-c"], "args": [code, *args]}


def pod(name: str, ns: str, image: str, code: str, app: str | None = None) -> dict[str, Any]:
    container = _container("c", image, code)
    if code == SERVE:
        container["ports"] = [{"containerPort": 8080}]
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": name, "namespace": ns, "labels": {"app": app or name}},
        "spec": {"containers": [container], "terminationGracePeriodSeconds": 1},
    }


def server(name: str, ns: str, image: str) -> list[dict[str, Any]]:
    """An HTTP server (the probe image's Python) behind a Service of the same name, port 80."""
    container = {**_container("s", image, SERVE), "ports": [{"containerPort": 8080}]}
    deployment = {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": name, "namespace": ns},
        "spec": {
            "selector": {"matchLabels": {"app": name}},
            "template": {
                "metadata": {"labels": {"app": name}},
                "spec": {"containers": [container], "terminationGracePeriodSeconds": 1},
            },
        },
    }
    service = {
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": {"name": name, "namespace": ns},
        "spec": {"selector": {"app": name}, "ports": [{"port": 80, "targetPort": 8080}]},
    }
    return [deployment, service]


def deny_all_ingress(name: str, ns: str, app: str) -> dict[str, Any]:
    return {
        "apiVersion": "networking.k8s.io/v1",
        "kind": "NetworkPolicy",
        "metadata": {"name": name, "namespace": ns},
        "spec": {"podSelector": {"matchLabels": {"app": app}}, "policyTypes": ["Ingress"]},
    }


def workloads(ns: str, images: Images) -> list[dict[str, Any]]:
    """The client the checks start from; `echo` (open) and `guarded` (for the deny-all story)."""
    return [
        pod("client", ns, images.probe, SLEEP),
        *server("echo", ns, images.probe),
        *server("guarded", ns, images.probe),
    ]


CANARY = "canary"
CANARY_POLICY = "canary-deny-all"


def canary(ns: str, images: Images) -> dict[str, Any]:
    """The server the enforcement canary connects to (its policy comes once it answers)."""
    return pod(CANARY, ns, images.probe, SERVE)


# Runs in the helper pod (the probe image's Python and pyroute2, in the node's network namespace).
# `ADDRESS`: refuse an address of the node, or one the node routes as local or broadcast (those
# tables win over a main-table route), then add `blackhole ADDRESS/32` (EEXIST, and so nothing
# done, if such a route exists: it is not ours). On SIGTERM, or with `remove`, delete exactly that
# route (its type given, so no other route to the address can match).
BLACKHOLE_SCRIPT = """
import ipaddress, signal, sys
from pyroute2 import IPRoute
from pyroute2.netlink.exceptions import NetlinkError

address = str(ipaddress.ip_address(sys.argv[1]))
prefix = address + "/32"


def remove(*_):
    with IPRoute() as ipr:
        try:
            ipr.route("del", dst=prefix, type="blackhole")
        except NetlinkError as exc:
            if exc.code != 3:  # ESRCH: not there (already removed)
                raise
            print("not present", prefix, flush=True)
            return
    print("removed", prefix, flush=True)


if sys.argv[2:] == ["remove"]:
    remove()
    sys.exit(0)
with IPRoute() as ipr:
    if any(a.get_attr("IFA_ADDRESS") == address for a in ipr.get_addr()):
        sys.exit(address + " is an address of this node: not blackholing it")
    kind = ipr.route("get", dst=address)[0]["type"]
    if kind != 1:  # RTN_UNICAST
        sys.exit(address + " routes as type %d on this node, not unicast: left alone" % kind)
    ipr.route("add", dst=prefix, type="blackhole")
print("blackholed", prefix, flush=True)
signal.signal(signal.SIGTERM, lambda *_: (remove(), sys.exit(0)))
while True:
    signal.pause()
"""


def blackhole_pod(hole: Blackhole, image: str) -> dict[str, Any]:
    """Privileged only as far as needed: the host's network and NET_ADMIN, on that node."""
    container = _container("route", image, BLACKHOLE_SCRIPT, hole.address)
    container["securityContext"] = {"capabilities": {"add": ["NET_ADMIN"]}}
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": hole.pod, "namespace": hole.namespace, "labels": {"app": hole.pod}},
        "spec": {
            "nodeName": hole.node,
            "hostNetwork": True,
            "restartPolicy": "Never",
            "tolerations": [{"operator": "Exists"}],
            "terminationGracePeriodSeconds": 10,
            "containers": [container],
        },
    }


# ---- the unreachable address --------------------------------------------------------------------

Address = ipaddress.IPv4Address
Network = ipaddress.IPv4Network


def _v4_network(text: str, *, around: bool = False) -> Network | None:
    try:
        net = ipaddress.ip_network(f"{text}/24" if around else text, strict=False)
    except ValueError:
        return None
    return net if isinstance(net, Network) else None


def cluster_networks(
    node: Mapping[str, Any],
    service_cidrs: Iterable[Mapping[str, Any]],
    kubernetes_service: Mapping[str, Any] | None,
) -> list[Network]:
    """The cluster's own IPv4 ranges, most local first: the node's pod CIDRs, the ServiceCIDRs
    (networking.k8s.io, where served), and the /24 that starts the Service range (the
    `kubernetes` Service holds its first address)."""
    spec = node.get("spec") or {}
    texts = list(spec.get("podCIDRs") or ([spec["podCIDR"]] if spec.get("podCIDR") else []))
    nets = [_v4_network(t) for t in texts]
    nets += [_v4_network(t) for s in service_cidrs for t in (s.get("spec") or {}).get("cidrs", [])]
    cluster_ip = ((kubernetes_service or {}).get("spec") or {}).get("clusterIP")
    if cluster_ip:
        nets.append(_v4_network(cluster_ip, around=True))
    return list(dict.fromkeys(net for net in nets if net is not None))


def used_addresses(
    pods: Iterable[Mapping[str, Any]],
    nodes: Iterable[Mapping[str, Any]],
    services: Iterable[Mapping[str, Any]],
    slices: Iterable[Mapping[str, Any]],
) -> set[Address]:
    """Every address the cluster says is in use: pods', nodes', Services' and endpoints'."""
    texts: list[str] = []
    for p in pods:
        status = p.get("status") or {}
        texts += [status.get("podIP") or "", status.get("hostIP") or ""]
        texts += [i.get("ip", "") for i in status.get("podIPs") or []]
    for n in nodes:
        texts += [a.get("address", "") for a in (n.get("status") or {}).get("addresses") or []]
    for s in services:
        spec = s.get("spec") or {}
        texts += [spec.get("clusterIP") or "", *(spec.get("clusterIPs") or [])]
        texts += spec.get("externalIPs") or []
        ingress = ((s.get("status") or {}).get("loadBalancer") or {}).get("ingress") or []
        texts += [i.get("ip", "") for i in ingress]
    for sl in slices:
        texts += [a for e in sl.get("endpoints") or [] for a in e.get("addresses") or []]
    used = set()
    for text in texts:
        try:
            address = ipaddress.ip_address(text)
        except ValueError:
            continue
        if isinstance(address, Address):
            used.add(address)
    return used


def unused_address(
    networks: Sequence[Network], used: set[Address], tries: int = 256
) -> tuple[Address, Network]:
    """An address of the first range that has one nobody uses, from the top of the range down
    (allocators start at the bottom), never the network or broadcast address."""
    for net in networks:
        if net.num_addresses < 4:
            continue
        top = int(net.broadcast_address) - 1
        for offset in range(min(tries, net.num_addresses - 2)):
            address = Address(top - offset)
            if address not in used:
                return address, net
    raise LookupError(f"no unused IPv4 address in {', '.join(map(str, networks)) or 'no range'}")


def cluster_domain(resolv_conf: str, ns: str) -> str:
    """The cluster DNS domain, from a pod's resolv.conf (`search NS.svc.DOMAIN svc.DOMAIN …`)."""
    for line in resolv_conf.splitlines():
        words = line.split()
        if words and words[0] == "search":
            for domain in words[1:]:
                if domain.startswith(f"{ns}.svc."):
                    return domain.removeprefix(f"{ns}.svc.").rstrip(".")
    raise LookupError(f"no search domain {ns}.svc.<domain> in resolv.conf:\n{resolv_conf}")


def missing_name(ns: str, domain: str) -> str:
    """A name no one has, that only the cluster DNS answers: absolute (so no search domain of
    the node's is tried) and under the cluster domain (served, not forwarded, by kube-dns)."""
    return f"no-such-service.{ns}.svc.{domain}."


# ---- the NetworkPolicy canary -------------------------------------------------------------------


class Enforcement(Enum):
    ENFORCED = "enforced"
    NOT_ENFORCED = "not enforced"
    INCONCLUSIVE = "inconclusive"


CONFIRMATIONS = 3  # consecutive refused connects that say the policy is enforced


def enforcement(connected: Sequence[bool], window_over: bool) -> Enforcement | None:
    """The verdict from the connects made since the deny-all policy was applied, oldest first
    (True: connected), or None while it is too early to say. Enforced: the last CONFIRMATIONS
    failed. Not enforced: the window is over and the last CONFIRMATIONS connected. Anything else
    at the window's end (a flow that flaps) is inconclusive."""
    last = connected[-CONFIRMATIONS:]
    if len(last) == CONFIRMATIONS and not any(last):
        return Enforcement.ENFORCED
    if not window_over:
        return None
    if len(last) == CONFIRMATIONS and all(last):
        return Enforcement.NOT_ENFORCED
    return Enforcement.INCONCLUSIVE


# ---- metrics ------------------------------------------------------------------------------------


def series(exposition: str, metric: str, namespace: str, check: str) -> list[float]:
    """The values of `metric` for one check, picked by its namespace and its name."""
    return [
        sample.value
        for family in text_string_to_metric_families(exposition)
        for sample in family.samples
        if sample.name == metric
        and sample.labels.get("namespace") == namespace
        and sample.labels.get("check") == check
    ]


# ---- running commands ---------------------------------------------------------------------------


def run(*cmd: str, stdin: str | None = None, timeout: float = 900) -> str:
    done = subprocess.run(
        cmd, input=stdin, capture_output=True, text=True, timeout=timeout, check=False
    )
    assert done.returncode == 0, f"{' '.join(cmd[:6])} failed:\n{done.stdout}\n{done.stderr}"
    return done.stdout
