"""Health sampling on fake /proc and cgroup trees: v1, v2, hybrid, unlimited and missing files."""

from __future__ import annotations

from pathlib import Path

import pytest

from hopscope_probe.checks import health
from hopscope_probe.evidence import HealthEvidence

HOST_PRESSURE = {
    "cpu": "some avg10=1.50 avg60=1.00 avg300=0.50 total=100\nfull avg10=0.00 avg60=0 avg300=0 "
    "total=0\n",
    "memory": "some avg10=2.00 avg60=0 avg300=0 total=1\nfull avg10=1.00 avg60=0 avg300=0 "
    "total=1\n",
}
GROUP_PRESSURE = {
    "cpu": "some avg10=55.00 avg60=40.00 avg300=10.00 total=9\n",
    "memory": "some avg10=30.00 avg60=0 avg300=0 total=1\nfull avg10=12.50 avg60=0 avg300=0 "
    "total=1\n",
}
V1_UNLIMITED = "9223372036854771712"  # what a v1 memory cgroup without a limit reports


def write(root: Path, files: dict[str, str]) -> None:
    for relative, text in files.items():
        path = root / relative
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)


@pytest.fixture
def proc(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A /proc with host-wide PSI and a load of 6 on 4 cores."""
    monkeypatch.setattr(health.os, "cpu_count", lambda: 4)
    root = tmp_path / "proc"
    write(root, {f"pressure/{name}": text for name, text in HOST_PRESSURE.items()})
    write(root, {"loadavg": "6.00 3.00 1.00 2/300 4242\n"})
    return root


def sample(proc: Path, cgroup_root: Path, pid: int | None = None) -> HealthEvidence:
    return health.finish(health.begin(pid=pid, proc=proc, cgroup_root=cgroup_root))


def test_cgroup_v2_figures_come_from_the_process_cgroup(proc: Path, tmp_path: Path):
    root = tmp_path / "cgroup"
    group = "kubepods/burstable/pod1/c1"
    write(proc, {"self/cgroup": f"0::/{group}\n"})
    write(
        root,
        {
            "cgroup.controllers": "cpu memory\n",
            f"{group}/memory.current": "900\n",
            f"{group}/memory.max": "1000\n",
            f"{group}/cpu.max": "50000 100000\n",
            f"{group}/cpu.pressure": GROUP_PRESSURE["cpu"],
            f"{group}/memory.pressure": GROUP_PRESSURE["memory"],
        },
    )
    assert sample(proc, root) == HealthEvidence(
        cgroup=f"/{group}",
        cgroup_version=2,
        cpu_pressure_some_avg10=55.0,  # the cgroup's PSI, not the host's
        memory_pressure_some_avg10=30.0,
        memory_pressure_full_avg10=12.5,
        memory_usage_bytes=900,
        memory_limit_bytes=1000,
        cpu_quota_cores=0.5,
        load_per_core=1.5,
    )


def test_cgroup_v1_reads_the_memory_and_cpu_controllers(proc: Path, tmp_path: Path):
    root = tmp_path / "cgroup"
    write(
        proc,
        {
            "4242/cgroup": "12:memory:/docker/abc\n4:cpu,cpuacct:/docker/abc\n"
            "1:name=systemd:/docker/abc\n",
            "self/cgroup": "12:memory:/\n4:cpu,cpuacct:/\n",  # the probe's own: not asked for
        },
    )
    write(
        root,
        {
            "memory/docker/abc/memory.usage_in_bytes": "60000000\n",
            "memory/docker/abc/memory.limit_in_bytes": "64000000\n",
            # Mounted at the joined controller list, as systemd does.
            "cpu,cpuacct/docker/abc/cpu.cfs_quota_us": "150000\n",
            "cpu,cpuacct/docker/abc/cpu.cfs_period_us": "100000\n",
        },
    )
    found = sample(proc, root, pid=4242)
    assert (found.cgroup, found.cgroup_version) == ("/docker/abc", 1)
    assert (found.memory_usage_bytes, found.memory_limit_bytes) == (60000000, 64000000)
    assert found.cpu_quota_cores == 1.5
    # No cgroup PSI on v1: the host's.
    assert (found.cpu_pressure_some_avg10, found.memory_pressure_full_avg10) == (1.5, 1.0)


def test_hybrid_takes_limits_from_v1_and_pressure_from_the_unified_hierarchy(
    proc: Path, tmp_path: Path
):
    root = tmp_path / "cgroup"
    write(proc, {"self/cgroup": "4:memory:/job\n1:cpu:/\n2:cpuacct:/\n0::/job\n"})
    write(
        root,
        {
            "memory/job/memory.usage_in_bytes": "100\n",
            "memory/job/memory.limit_in_bytes": "400\n",
            "cpu/cpu.cfs_quota_us": "-1\n",
            "cpu/cpu.cfs_period_us": "100000\n",
            "unified/cgroup.controllers": "\n",
            "unified/job/cpu.pressure": GROUP_PRESSURE["cpu"],
        },
    )
    found = sample(proc, root)
    assert (found.cgroup, found.cgroup_version) == ("/job", 1)
    assert (found.memory_usage_bytes, found.memory_limit_bytes) == (100, 400)
    assert found.cpu_quota_cores is None  # -1: no quota
    assert found.cpu_pressure_some_avg10 == 55.0  # the job's, from the unified hierarchy
    assert found.memory_pressure_some_avg10 == 2.0  # not in the cgroup: the host's


@pytest.mark.parametrize("version", [1, 2])
def test_unlimited_memory_and_cpu_are_none(proc: Path, tmp_path: Path, version: int):
    root = tmp_path / "cgroup"
    if version == 1:
        write(proc, {"self/cgroup": "3:memory:/\n2:cpu:/\n"})
        write(
            root,
            {
                "memory/memory.usage_in_bytes": "5\n",
                "memory/memory.limit_in_bytes": f"{V1_UNLIMITED}\n",
                "cpu/cpu.cfs_quota_us": "-1\n",
                "cpu/cpu.cfs_period_us": "100000\n",
            },
        )
    else:
        write(proc, {"self/cgroup": "0::/app\n"})
        write(
            root,
            {
                "cgroup.controllers": "\n",
                "app/memory.current": "5\n",
                "app/memory.max": "max\n",
                "app/cpu.max": "max 100000\n",
            },
        )
    found = sample(proc, root)
    assert found.cgroup_version == version
    assert (found.memory_usage_bytes, found.memory_limit_bytes) == (5, None)
    assert found.cpu_quota_cores is None


def test_missing_files_leave_fields_none_without_failing(tmp_path: Path):
    empty_proc, no_cgroups = tmp_path / "proc", tmp_path / "cgroup"
    assert sample(empty_proc, no_cgroups) == HealthEvidence()
    # A cgroup path that does not exist under the root (another cgroup namespace): no figures
    # from it, the host's PSI still.
    write(empty_proc, {"self/cgroup": "0::/elsewhere\n", "pressure/cpu": HOST_PRESSURE["cpu"]})
    write(no_cgroups, {"cgroup.controllers": "\n"})
    found = sample(empty_proc, no_cgroups)
    assert (found.cgroup, found.memory_usage_bytes) == (None, None)
    assert found.cpu_pressure_some_avg10 == 1.5


def test_throttled_ratio_is_the_share_of_periods_throttled_during_the_probe(
    proc: Path, tmp_path: Path
):
    root = tmp_path / "cgroup"
    write(proc, {"self/cgroup": "0::/app\n"})
    stat = root / "app" / "cpu.stat"
    write(
        root,
        {
            "cgroup.controllers": "\n",
            "app/cpu.max": "10000 100000\n",
            "app/cpu.stat": "usage_usec 5\nnr_periods 10\nnr_throttled 2\nthrottled_usec 9\n",
        },
    )
    window = health.begin(proc=proc, cgroup_root=root)
    # The probe runs; CFS periods end meanwhile. The sample itself waits for nothing.
    stat.write_text("usage_usec 9\nnr_periods 30\nnr_throttled 12\nthrottled_usec 99\n")
    found = health.finish(window)
    assert found.cpu_throttled_ratio == 0.5  # 10 of the 20 periods that ended
    assert found.cpu_quota_cores == 0.1
    # A probe shorter than one CFS period: the share over the group's life, 12 of 30.
    assert health.finish(health.begin(proc=proc, cgroup_root=root)).cpu_throttled_ratio == 0.4


def test_without_a_quota_no_throttling_is_reported(proc: Path, tmp_path: Path):
    root = tmp_path / "cgroup"
    write(proc, {"self/cgroup": "0::/app\n"})
    stat = root / "app" / "cpu.stat"
    write(
        root,
        {
            "cgroup.controllers": "\n",
            "app/cpu.max": "max 100000\n",
            "app/cpu.stat": "usage_usec 5\nnr_periods 0\nnr_throttled 0\n",
        },
    )
    window = health.begin(proc=proc, cgroup_root=root)
    stat.write_text("usage_usec 9\nnr_periods 3\nnr_throttled 3\n")  # not CFS bandwidth's
    found = health.finish(window)
    assert (found.cpu_throttled_ratio, found.cpu_quota_cores) == (None, None)


@pytest.mark.parametrize("version", [1, 2])
def test_a_pod_seen_from_a_probe_pods_cgroup_namespace_is_found_in_the_host_hierarchy(
    proc: Path, tmp_path: Path, version: int
):
    # From inside the probe pod's cgroup namespace, the source pod's path climbs out ("..")
    # of the probe's own cgroup: only its tail names the source's real directory.
    root = tmp_path / "host-cgroup"
    source = (
        "kubepods.slice/kubepods-besteffort.slice/kubepods-besteffort-podab_12.slice/cri-9f.scope"
    )
    seen = "/../../kubepods-besteffort.slice/kubepods-besteffort-podab_12.slice/cri-9f.scope"
    if version == 2:
        write(proc, {"4242/cgroup": f"0::{seen}\n"})
        write(
            root,
            {
                "cgroup.controllers": "cpu memory\n",
                "kubepods.slice/kubepods-burstable.slice/o.slice/cri-9f0.scope/memory.max": "1\n",
                f"{source}/memory.current": "950\n",
                f"{source}/memory.max": "1000\n",
            },
        )
    else:
        write(proc, {"4242/cgroup": f"12:memory:{seen}\n"})
        write(
            root,
            {
                f"memory/{source}/memory.usage_in_bytes": "950\n",
                f"memory/{source}/memory.limit_in_bytes": "1000\n",
            },
        )
    found = sample(proc, root, pid=4242)
    assert (found.memory_usage_bytes, found.memory_limit_bytes) == (950, 1000)
    assert found.cgroup_version == version


def test_a_path_that_climbs_out_and_matches_nothing_leaves_the_cgroup_unknown(
    proc: Path, tmp_path: Path
):
    root = tmp_path / "host-cgroup"
    write(proc, {"4242/cgroup": "0::/../../gone.slice/cri-00.scope\n"})
    write(root, {"cgroup.controllers": "cpu memory\n", "kubepods.slice/x.scope/memory.max": "1\n"})
    found = sample(proc, root, pid=4242)
    assert (found.cgroup, found.memory_limit_bytes) == (None, None)
    assert found.load_per_core == 1.5  # the host's figures still come


@pytest.mark.parametrize(
    "pod",
    [
        # systemd driver; cgroupfs driver; a static pod (its UID is 32 hex digits)
        "kubepods.slice/kubepods-burstable.slice/kubepods-burstable-pod0d3b9a1c_1111_2222_3333_"
        "444455556666.slice",
        "kubepods/burstable/pod0d3b9a1c-1111-2222-3333-444455556666",
        "kubepods/besteffort/pod6e2b1c0f9d8a7b6c5d4e3f2a1b0c9d8e",
    ],
    ids=["systemd", "cgroupfs", "static-pod"],
)
def test_a_pods_sandbox_process_is_judged_by_its_pods_cgroup(proc: Path, tmp_path: Path, pod: str):
    # The process found for a pod is its pause container, whose own cgroup has no limits;
    # the pod's holds the app's limit, usage and pressure.
    root = tmp_path / "cgroup"
    sandbox = f"{pod}/cri-containerd-aaaa.scope"
    write(proc, {"100/cgroup": f"0::/{sandbox}\n"})
    write(
        root,
        {
            "cgroup.controllers": "cpu memory\n",
            f"{sandbox}/memory.max": "max\n",
            f"{sandbox}/memory.current": "307200\n",
            f"{sandbox}/cpu.max": "max 100000\n",
            f"{pod}/memory.max": "268435456\n",
            f"{pod}/memory.current": "262144000\n",
            f"{pod}/cpu.max": "50000 100000\n",
            f"{pod}/memory.pressure": GROUP_PRESSURE["memory"],
        },
    )
    found = sample(proc, root, pid=100)
    assert found.cgroup == f"/{pod}"
    assert (found.memory_usage_bytes, found.memory_limit_bytes) == (262144000, 268435456)
    assert (found.cpu_quota_cores, found.memory_pressure_some_avg10) == (0.5, 30.0)
