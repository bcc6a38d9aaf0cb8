"""Peak memory of a probe pod running a full batch (issue 15 §4). Printed, never asserted.

A batch of the operator's most checks per pod (50), half from a pod and half from the node, TCP,
UDP, ICMP, DNS, HTTP and HTTPS, reachable, refused and silently dropped (path sweeps), runs
against the netlab's namespaces: `hopscope batch` in the lab's `src` namespace (the node: probe
pods use the host network), its pod sources a process in the `dns` namespace placed in a cgroup
named `pod<uid>`, as the kubelet names them. Packets go only to the lab's namespaces.

The batch runs in a cgroup v1 memory group of its own, under the bench's: its
memory.max_usage_in_bytes is what the kernel holds against the container's limit. Each process
of the tree is also sampled every few ms (its peak RSS, and its PSS: shared pages split between
the processes sharing them), as the children are short-lived: the cgroup is not charged for
file pages other processes of the machine read first, their PSS is. Run once per start method of the
check processes, as `hopscope batch` uses the smaller (forked from its warmed self).

Needs root and cgroup v1 (`flock /tmp/netlab.lock .venv/bin/python bench/probe_memory.py`;
`make bench` runs it so). Results also go to bench/out/probe_memory.json.
"""

from __future__ import annotations

import json
import os
import re
import shlex
import subprocess
import sys
import threading
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(REPO), str(REPO / "probe-image"), str(REPO / "operator")]

from hopscope_operator.controller.plan import RESOURCES  # noqa: E402
from hopscope_operator.names import DEFAULT_MAX_CHECKS_PER_POD  # noqa: E402
from hopscope_probe.batch import PARALLEL, Batch, BatchItem, PodNetns  # noqa: E402
from hopscope_probe.models import PathMode, ProbeRequest, Protocol  # noqa: E402
from tests.netlab.lab import Lab  # noqa: E402

MEMORY_CGROUPS = Path("/sys/fs/cgroup/memory")
SAMPLE_SECONDS = 0.005
MIB = 1024 * 1024
PRIVATE_MOUNTS = ["unshare", "--mount", "--propagation", "private"]
TCP_PORT, HTTP_PORT, HTTPS_PORT, UDP_PORT = 8080, 8081, 8443, 5300
DROPPED_PORT = 8099  # the destination drops it: the probe times out and sweeps the path
CLOSED_PORT = 9  # nothing listens: refused
# How the check processes start: `hopscope batch` forks them from its warmed self; the other
# way measured (its code until these figures) is a forkserver preloaded with the same modules.
FORKSERVER = (
    "import multiprocessing, sys; from hopscope_probe import batch, cli;"
    " context = multiprocessing.get_context('forkserver');"
    " context.set_forkserver_preload(batch.PRELOAD);"
    " batch.start_context = lambda: context; sys.exit(cli.main(sys.argv[1:]))"
)
START_METHODS = {"fork": ["-m", "hopscope_probe"], "forkserver": ["-c", FORKSERVER]}


@dataclass
class Peak:
    """One process's peaks over the samples."""

    role: str
    hwm_kib: int = 0  # VmHWM: its peak RSS, shared pages included
    pss_kib: int = 0
    private_kib: int = 0  # pages only it maps: what it adds to the tree


@dataclass
class Measured:
    start_method: str
    cgroup_peak: int  # bytes
    rss_sum_peak_kib: int = 0  # the processes' RSS summed at one instant, highest seen
    pss_sum_peak_kib: int = 0
    processes: dict[int, Peak] = field(default_factory=dict)
    lines: list[str] = field(default_factory=list)
    seconds: float = 0.0


def requests(lab: Lab) -> list[ProbeRequest]:
    """What checks of a cluster ask: each kind once, by address and by name."""
    dst, ca = lab["dst"].addr(), Path(lab.ca_file).read_text()
    quick = {"count": 3, "timeout_seconds": 1.0, "max_hops": 8}
    return [
        ProbeRequest(host=dst, port=TCP_PORT, path_mode=PathMode.ALWAYS, **quick),
        ProbeRequest(host="dst.lab.test", port=TCP_PORT, path_mode=PathMode.ON_FAILURE, **quick),
        ProbeRequest(host=dst, port=CLOSED_PORT, path_mode=PathMode.ON_FAILURE, **quick),
        ProbeRequest(host=dst, port=DROPPED_PORT, path_mode=PathMode.ON_FAILURE, **quick),
        ProbeRequest(host=dst, port=UDP_PORT, protocol=Protocol.UDP, **quick),
        ProbeRequest(host=dst, protocol=Protocol.ICMP, **quick),
        ProbeRequest(host="web.lab.test", protocol=Protocol.DNS, **quick),
        ProbeRequest(
            host="web.lab.test",
            protocol=Protocol.HTTP,
            uri=f"http://web.lab.test:{HTTP_PORT}/",
            path_mode=PathMode.ON_FAILURE,
            **quick,
        ),
        ProbeRequest(
            host="web.lab.test",
            protocol=Protocol.HTTPS,
            uri=f"https://web.lab.test:{HTTPS_PORT}/",
            ca_pem=ca,
            path_mode=PathMode.ON_FAILURE,
            **quick,
        ),
    ]


def full_batch(lab: Lab, pod_uid: str) -> Batch:
    kinds = requests(lab)
    return Batch(
        checks=[
            BatchItem(
                id=f"bench/check-{n}/1",
                netns=PodNetns(pod_uid=pod_uid) if n % 2 else "host",
                request=kinds[n % len(kinds)],
                budget_seconds=120,
            )
            for n in range(DEFAULT_MAX_CHECKS_PER_POD)
        ]
    )


def bench_cgroup() -> Path:
    """A memory group of our own, under the one this process is in."""
    for line in Path("/proc/self/cgroup").read_text().splitlines():
        _, controllers, path = line.split(":", 2)
        if "memory" in controllers.split(","):
            group = MEMORY_CGROUPS / path.lstrip("/") / f"hopscope-bench-{os.getpid()}"
            group.mkdir()
            return group
    raise SystemExit("bench needs a cgroup v1 memory hierarchy at /sys/fs/cgroup/memory")


def bound_resolv_conf(resolv_conf: str, then: str) -> str:
    """A shell line for a mount namespace of its own: the lab's resolv.conf as
    /etc/resolv.conf, so that no name is ever asked of the machine's nameserver."""
    return f"mount --bind {resolv_conf} /etc/resolv.conf && {then}"


def start_pod(lab: Lab, group: Path, pod_uid: str) -> subprocess.Popen[bytes]:
    """A stand-in for a pod's pause container: a process in the `dns` namespace, in a cgroup
    named as the kubelet names a pod's."""
    pause = lab["dns"].spawn(
        bound_resolv_conf(lab.resolv_conf(), "echo ready && exec sleep infinity"), ready="ready"
    )
    pod = group / f"pod{pod_uid}"
    pod.mkdir()
    (pod / "cgroup.procs").write_text(str(pause.pid))
    return pause


def kib(text: str, key: str) -> int:
    found = re.search(rf"^{key}:\s+(\d+) kB", text, re.MULTILINE)
    return int(found.group(1)) if found else 0


def role_of(pid: int, parent: int) -> str:
    if pid == parent:
        return "parent (hopscope batch)"
    status = Path(f"/proc/{pid}/status").read_text()
    cmdline = Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode()
    # The parent's helpers are its children that exec'd; a forked check keeps its cmdline.
    if re.search(rf"^PPid:\s+{parent}$", status, re.MULTILINE):
        for name in ("forkserver", "resource_tracker"):
            if name in cmdline:
                return name.replace("_", " ")
    return "check"


def sample(group: Path, parent: int, measured: Measured, done: threading.Event) -> None:
    while not done.is_set():
        rss = pss = 0
        for pid in map(int, (group / "cgroup.procs").read_text().split()):
            try:
                status = Path(f"/proc/{pid}/status").read_text()
                rollup = Path(f"/proc/{pid}/smaps_rollup").read_text()
                peak = measured.processes.setdefault(pid, Peak("check"))
                if peak.role == "check":  # again: a process is its parent until it execs
                    peak.role = role_of(pid, parent)
            except (OSError, ValueError):
                continue  # it exited while we looked
            peak.hwm_kib = max(peak.hwm_kib, kib(status, "VmHWM"))
            peak.pss_kib = max(peak.pss_kib, kib(rollup, "Pss"))
            private = kib(rollup, "Private_Clean") + kib(rollup, "Private_Dirty")
            peak.private_kib = max(peak.private_kib, private)
            rss += kib(status, "VmRSS")
            pss += kib(rollup, "Pss")
        measured.rss_sum_peak_kib = max(measured.rss_sum_peak_kib, rss)
        measured.pss_sum_peak_kib = max(measured.pss_sum_peak_kib, pss)
        time.sleep(SAMPLE_SECONDS)


def run_batch(lab: Lab, group: Path, batch: Batch, start_method: str) -> Measured:
    tree = group / f"batch-{start_method}"
    tree.mkdir()
    batch_file = lab.tmpdir / "batch.json"
    batch_file.write_text(batch.to_json())
    start = START_METHODS[start_method]
    hopscope = shlex.join([sys.executable, *start, "batch", "--input", str(batch_file)])
    # nsenter, not `ip netns exec`: that mounts a sysfs of its own, hiding the cgroups. Into
    # its group before exec, so that every process of the tree is counted from its start.
    line = bound_resolv_conf(lab.resolv_conf(), f"echo $$ > {tree}/cgroup.procs && exec {hopscope}")
    started = time.monotonic()
    proc = subprocess.Popen(
        ["nsenter", f"--net={lab['src'].netns_path}", *PRIVATE_MOUNTS, "sh", "-c", line],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        cwd=REPO,
        env=env_with_our_code(),
    )
    measured = Measured(start_method, cgroup_peak=0)
    done = threading.Event()
    sampler = threading.Thread(target=sample, args=(tree, proc.pid, measured, done), daemon=True)
    sampler.start()
    stdout, stderr = proc.communicate(timeout=600)
    wait_until_empty(tree)  # a forkserver outlives the parent by a moment
    done.set()
    sampler.join()
    measured.seconds = time.monotonic() - started
    if proc.returncode:
        raise SystemExit(f"hopscope batch exited {proc.returncode}:\n{stderr}")
    measured.cgroup_peak = int((tree / "memory.max_usage_in_bytes").read_text())
    measured.lines = stdout.splitlines()
    tree.rmdir()
    return measured


def env_with_our_code() -> dict[str, str]:
    """This tree's packages first, whatever the interpreter has installed."""
    ours = [str(REPO / "probe-image"), str(REPO / "operator")]
    path = os.pathsep.join([*ours, os.environ.get("PYTHONPATH", "")]).rstrip(os.pathsep)
    return {**os.environ, "PYTHONPATH": path}


def wait_until_empty(group: Path, seconds: float = 10) -> None:
    deadline = time.monotonic() + seconds
    while (group / "cgroup.procs").read_text().strip():
        if time.monotonic() > deadline:
            raise SystemExit(f"processes left in {group} after the batch ended")
        time.sleep(SAMPLE_SECONDS)


def outcomes(lines: list[str]) -> dict[str, int]:
    counted: dict[str, int] = {}
    for line in lines:
        status = json.loads(line)["result"]["connectionStatus"]
        counted[status] = counted.get(status, 0) + 1
    return dict(sorted(counted.items()))


def report(measured: Measured, limits: dict[str, int]) -> dict[str, object]:
    checks = [p for p in measured.processes.values() if p.role == "check"]
    others = [p for p in measured.processes.values() if p.role != "check"]
    peak_mib = measured.cgroup_peak / MIB
    print(
        f"  {measured.start_method}: {len(measured.lines)} results in {measured.seconds:.0f} s"
        f" {outcomes(measured.lines)}"
    )
    print(
        f"    cgroup peak {peak_mib:.1f} MiB (memory.max_usage_in_bytes);"
        f" tree at its highest: RSS {measured.rss_sum_peak_kib / 1024:.1f} MiB summed,"
        f" PSS {measured.pss_sum_peak_kib / 1024:.1f} MiB"
    )
    for peak in others:
        print(
            f"    {peak.role}: peak RSS {peak.hwm_kib / 1024:.1f} MiB,"
            f" PSS {peak.pss_kib / 1024:.1f} MiB, private {peak.private_kib / 1024:.1f} MiB"
        )
    if checks:
        print(
            f"    per check ({len(checks)} sampled): peak RSS max"
            f" {max(p.hwm_kib for p in checks) / 1024:.1f} MiB, PSS max"
            f" {max(p.pss_kib for p in checks) / 1024:.1f} MiB, private max"
            f" {max(p.private_kib for p in checks) / 1024:.1f} MiB"
            f" (mean {sum(p.private_kib for p in checks) / len(checks) / 1024:.1f} MiB)"
        )
    ratios = {name: measured.cgroup_peak / value for name, value in limits.items()}
    print(
        "    cgroup peak / "
        + ", ".join(
            f"{name} {value / MIB:.0f} MiB: {ratios[name]:.2f}" for name, value in limits.items()
        )
    )
    return {
        "cgroup_peak_mib": peak_mib,
        "rss_sum_peak_mib": measured.rss_sum_peak_kib / 1024,
        "pss_sum_peak_mib": measured.pss_sum_peak_kib / 1024,
        "seconds": measured.seconds,
        "results": len(measured.lines),
        "processes": [vars(peak) for peak in measured.processes.values()],
        "ratios": ratios,
    }


def mebibytes(quantity: str) -> int:
    units = {"Mi": MIB, "Gi": 1024 * MIB}
    return int(quantity[:-2]) * units[quantity[-2:]]


def main() -> int:
    if os.geteuid() != 0:
        print("bench needs root: it builds network namespaces and cgroups", file=sys.stderr)
        return 2
    limits = {
        f"{kind.rstrip('s')}": mebibytes(RESOURCES[kind]["memory"])
        for kind in ("requests", "limits")
    }
    pod_uid = str(uuid.uuid4())
    group = bench_cgroup()
    results: dict[str, object] = {}
    try:
        with Lab() as lab:
            lab.start_tcp_server("dst", TCP_PORT)
            lab.start_udp_echo("dst", UDP_PORT)
            lab.start_http_server("dst", HTTP_PORT)
            lab.start_http_server("dst", HTTPS_PORT, tls="valid")
            lab.iptables(
                "dst", "-A", "INPUT", "-p", "tcp", "--dport", str(DROPPED_PORT), "-j", "DROP"
            )
            pause = start_pod(lab, group, pod_uid)
            batch = full_batch(lab, pod_uid)
            print(
                f"probe pod memory: a batch of {len(batch.checks)} checks, {PARALLEL} at once"
                " (fork: as hopscope batch starts them)"
            )
            for method in START_METHODS:
                results[method] = report(run_batch(lab, group, batch, method), limits)
            pause.kill()
            pause.wait()
    finally:
        for child in group.iterdir():
            if child.is_dir():
                child.rmdir()
        group.rmdir()
    out = REPO / "bench" / "out"
    out.mkdir(exist_ok=True)
    (out / "probe_memory.json").write_text(json.dumps(results, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
