"""CPU and memory pressure where the source runs: its cgroup (v1, v2 or hybrid), else the host.

Every figure is optional: a file that is missing or unreadable leaves its field None, so a
sandbox without PSI or a cgroup layout we do not know still yields the rest.
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

from hopscope_probe.evidence import HealthEvidence

# cgroup v1 reports "no limit" as LONG_MAX rounded down to a page (0x7FFFFFFFFFFFF000).
V1_UNLIMITED = 1 << 62
# kubepods.slice/kubepods-QOS.slice/kubepods-QOS-podUID.slice/cri-ID.scope and a few more.
MAX_SEARCH_DEPTH = 8
# Probe pods mount the host's hierarchy here: their own /sys/fs/cgroup shows only themselves.
CGROUP_ROOT_ENV = "HOPSCOPE_CGROUP_ROOT"  # the operator sets it (controller/runs.py)
CGROUP_ROOT = Path(os.environ.get(CGROUP_ROOT_ENV, "/sys/fs/cgroup"))
# A pod's own cgroup, by the kubelet's cgroupfs ("pod<uid>") or systemd
# ("kubepods-burstable-pod<uid_>.slice") naming; a static pod's UID is 32 hex digits.
POD_CGROUP = re.compile(
    r"(^|-)pod([0-9a-f]{32}|[0-9a-f]{8}([-_][0-9a-f]{4}){3}[-_][0-9a-f]{12})(\.slice)?$"
)


@dataclass(frozen=True)
class Cgroup:
    """Where one process's cgroup files are."""

    path: str | None = None  # as /proc/PID/cgroup names it (of the memory controller on v1)
    version: int | None = None
    unified: Path | None = None  # its directory in the v2 hierarchy (pure v2, or hybrid's)
    memory: Path | None = None  # its v1 memory controller directory
    cpu: Path | None = None  # its v1 cpu controller directory


@dataclass(frozen=True)
class Window:
    """A health sample in progress: where its figures are, and the CPU counters when the
    probe's window opened."""

    group: Cgroup
    quota: float | None
    cpu_before: tuple[int, int] | None
    proc: Path


def begin(
    *,
    pid: int | None = None,
    proc: Path = Path("/proc"),
    cgroup_root: Path = CGROUP_ROOT,
    own_cgroup: bool = True,
) -> Window:
    """Open the sample of process `pid` (this process when None) at the start of the probe.
    Without `own_cgroup`, only the host-wide figures (PSI, load) are taken."""
    text = _read(proc / str(pid or "self") / "cgroup") if own_cgroup else None
    group = locate(text, cgroup_root)
    quota = _quota(group)
    # Without a quota no CFS period ever ends: nothing to count.
    before = _cpu_stat(group.cpu or group.unified) if quota is not None else None
    return Window(group=group, quota=quota, cpu_before=before, proc=proc)


def finish(window: Window) -> HealthEvidence:
    """The figures at the end of the probe: CPU throttling is counted over the probe's own
    window (the CFS periods that ended while it ran), so the sample costs no wait of its own;
    over the group's life when no period ended in it."""
    group, proc = window.group, window.proc
    throttled = None
    if window.cpu_before is not None:
        throttled = _throttled_ratio(window.cpu_before, _cpu_stat(group.cpu or group.unified))
    cpu_pressure = _pressure(group.unified, proc, "cpu")
    memory_pressure = _pressure(group.unified, proc, "memory")
    usage, limit = _memory(group)
    return HealthEvidence(
        cgroup=group.path,
        cgroup_version=group.version,
        cpu_pressure_some_avg10=cpu_pressure.get("some"),
        memory_pressure_some_avg10=memory_pressure.get("some"),
        memory_pressure_full_avg10=memory_pressure.get("full"),
        memory_usage_bytes=usage,
        memory_limit_bytes=limit,
        cpu_throttled_ratio=throttled,
        cpu_quota_cores=window.quota,
        load_per_core=_load_per_core(proc),
    )


def locate(proc_cgroup: str | None, root: Path) -> Cgroup:
    """Find the directories of a /proc/PID/cgroup ("ID:CONTROLLERS:PATH" lines, where v2's line
    has no controllers) under `root`; those that do not exist are left None.

    A process of a Kubernetes pod is judged by its pod's cgroup, not its container's: the one
    process found for a pod is usually the sandbox (pause), whose own cgroup has no memory
    limit and no CPU quota, while the pod's holds the limits, usage and pressure of them all.
    """
    unified_path = None
    v1: dict[str, tuple[str, Path]] = {}
    for line in (proc_cgroup or "").splitlines():
        _id, _, rest = line.partition(":")
        controllers, found, path = rest.partition(":")
        if not found:
            continue
        if not controllers:
            unified_path = path
            continue
        for name in controllers.split(","):
            # A v1 hierarchy is mounted at its controller list ("cpu,cpuacct"), usually with a
            # symlink per controller.
            for mount in (root / controllers, root / name):
                directory = _directory(mount, path)
                if directory is not None:
                    v1[name] = (path, directory)
                    break
    memory, cpu = v1.get("memory"), v1.get("cpu")
    unified = None
    if unified_path is not None:
        base = root if (root / "cgroup.controllers").exists() else root / "unified"
        unified = _directory(base, unified_path)
    named = memory or cpu
    return Cgroup(
        path=_pod_level_path(named[0] if named else unified_path if unified else None),
        version=1 if named else 2 if unified else None,
        unified=_pod_level(unified),
        memory=_pod_level(memory[1] if memory else None),
        cpu=_pod_level(cpu[1] if cpu else None),
    )


def _pod_level(directory: Path | None) -> Path | None:
    """The pod's cgroup above a container's, else the directory itself."""
    if directory is None:
        return None
    pods = (d for d in (directory, *directory.parents) if POD_CGROUP.search(d.name))
    return next(pods, directory)


def _pod_level_path(path: str | None) -> str | None:
    if path is None:
        return None
    parts = path.split("/")
    cut = next((i for i in range(len(parts), 0, -1) if POD_CGROUP.search(parts[i - 1])), None)
    return "/".join(parts[:cut]) if cut else path


def _directory(mount: Path, path: str) -> Path | None:
    """The cgroup directory of `path` under `mount`.

    A probe pod has its own cgroup namespace, so another pod's /proc/PID/cgroup reads relative
    to it ("/../../kubepods-besteffort-pod….slice/cri-….scope"). The part after the last ".." is
    then looked up as a suffix in the host's hierarchy (mounted at `mount`): it ends in the
    container's own, unique, directory name.
    """
    direct = mount / path.lstrip("/")
    if ".." not in path.split("/"):
        return direct if direct.is_dir() else None
    suffix = path.split("/..")[-1].strip("/").split("/")
    if not suffix or not suffix[-1] or not mount.is_dir():
        return None
    for current, dirs, _files in os.walk(mount):
        here = Path(current)
        if here.parts[-len(suffix) :] == tuple(suffix):
            return here
        if len(here.relative_to(mount).parts) >= MAX_SEARCH_DEPTH:
            dirs.clear()
    return None


def _pressure(unified: Path | None, proc: Path, resource: str) -> dict[str, float]:
    """PSI avg10 per line kind ("some", "full"): the cgroup's own, else the host's."""
    text = _read(unified / f"{resource}.pressure") if unified else None
    text = text or _read(proc / "pressure" / resource)
    found = {}
    for line in (text or "").splitlines():  # "some avg10=1.23 avg60=... total=..."
        kind, _, fields = line.partition(" ")
        avg10 = _float(_pairs(fields.split(), "=").get("avg10"))
        if avg10 is not None:
            found[kind] = avg10
    return found


def _memory(group: Cgroup) -> tuple[int | None, int | None]:
    """Usage and limit in bytes; a None limit is no limit."""
    if group.memory is not None:
        limit = _int(_read(group.memory / "memory.limit_in_bytes"))
        usage = _int(_read(group.memory / "memory.usage_in_bytes"))
        return usage, limit if limit is not None and limit < V1_UNLIMITED else None
    if group.unified is not None:
        usage = _int(_read(group.unified / "memory.current"))
        return usage, _int(_read(group.unified / "memory.max"))  # "max": None
    return None, None


def _quota(group: Cgroup) -> float | None:
    """The CFS quota in cores; None when unlimited."""
    if group.cpu is not None:
        quota = _int(_read(group.cpu / "cpu.cfs_quota_us"))
        period = _int(_read(group.cpu / "cpu.cfs_period_us"))
    elif group.unified is not None:
        quota_text, _, period_text = (_read(group.unified / "cpu.max") or "").partition(" ")
        quota, period = _int(quota_text), _int(period_text)
    else:
        return None
    if quota is None or quota < 0 or not period:  # v1 says -1, v2 says "max"
        return None
    return quota / period


def _cpu_stat(directory: Path | None) -> tuple[int, int] | None:
    """(nr_periods, nr_throttled) of the CFS bandwidth controller."""
    text = _read(directory / "cpu.stat") if directory else None
    values = _pairs((text or "").splitlines(), " ")
    periods = _int(values.get("nr_periods"))
    throttled = _int(values.get("nr_throttled"))
    return None if periods is None or throttled is None else (periods, throttled)


def _throttled_ratio(before: tuple[int, int], after: tuple[int, int] | None) -> float | None:
    if after is None or after[0] == 0:
        return None  # no CFS period ever ended: nothing to count
    if after[0] <= before[0]:
        # A probe shorter than one CFS period (100 ms by default, longer than a healthy
        # probe): the share since the group started, so a throttled source is still seen.
        return after[1] / after[0]
    return (after[1] - before[1]) / (after[0] - before[0])


def _load_per_core(proc: Path) -> float | None:
    load = _float((_read(proc / "loadavg") or "").partition(" ")[0])
    cores = os.cpu_count()
    return None if load is None or not cores else load / cores


def _pairs(items: Iterable[str], separator: str) -> dict[str, str]:
    """Items like "nr_periods 10" or "avg10=1.23" as a dict."""
    return {key: value for key, _, value in (item.partition(separator) for item in items)}


def _int(text: str | None) -> int | None:
    try:
        return int(text) if text is not None else None
    except ValueError:
        return None


def _float(text: str | None) -> float | None:
    try:
        return float(text) if text is not None else None
    except ValueError:
        return None


def _read(path: Path) -> str | None:
    try:
        return path.read_text()
    except OSError:
        return None
