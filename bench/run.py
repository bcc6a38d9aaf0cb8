"""Benchmarks of `hopscope probe` against traceroute and mtr on the same lab path.

Printed as ratios against the baselines run side by side, never asserted. Needs root (the lab
is built from network namespaces). `make bench` runs it; results also go to bench/out/.

  1. time to a complete diagnosis: healthy path, and a path whose destination drops everything;
     the ratio to `traceroute -T` (targets: healthy <= 2x, silent drop <= 0.2x), for a
     `hopscope probe` started as traceroute is and for a check forked from a warmed batch
     process, as a probe pod runs it
  2. per-hop latency accuracy against the emulated link delays (ground truth)
  3. process start to first packet on the wire, and peak RSS
"""

from __future__ import annotations

import compileall
import contextlib
import ctypes
import json
import os
import socket
import statistics
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from tests.netlab.lab import Lab  # noqa: E402

DELAYS = {("src", "r1"): 1.0, ("r1", "r2"): 2.0, ("r2", "r3"): 4.0, ("r3", "dst"): 1.5}
PORT = 8080
RUNS = 5
TIMED_ROUNDS = 5
# The baseline of the targets: healthy <= 2x its time, a silent drop <= 0.2x.
TRACEROUTE_T = "traceroute -T"
# The probe as the operator runs it: a check forked from a probe pod's warmed batch process.
WARM = "hopscope (warm, as in a probe pod)"
ETH_P_ALL = 0x0003


@dataclass(frozen=True)
class Run:
    seconds: float
    max_rss_mib: float
    stdout: str


def timed(cmd: list[str]) -> Run:
    """Wall time and peak RSS of one command. GNU time measures the RSS: wait4 on our own
    child would count the bench's forked image (~30 MiB) that the child has before exec."""
    started = time.perf_counter()
    done = subprocess.run(
        ["/usr/bin/time", "-f", "%M", *cmd], capture_output=True, text=True, cwd=REPO
    )
    seconds = time.perf_counter() - started
    max_rss_kib = int(done.stderr.strip().splitlines()[-1])
    return Run(seconds, max_rss_kib / 1024, done.stdout)


def hopscope(lab: Lab, *args: str) -> list[str]:
    return [sys.executable, "-m", "hopscope_probe", "probe", "--netns", lab["src"].netns_path,
            "--resolv-conf", lab.resolv_conf(), "--json", *args]  # fmt: skip


def hopscope_in_src(lab: Lab, *args: str) -> list[str]:
    """Started as the baselines are (`ip netns exec`), for the time comparisons."""
    return in_src(lab, sys.executable, "-m", "hopscope_probe", "probe",
                  "--resolv-conf", lab.resolv_conf(), "--json", *args)  # fmt: skip


def in_src(lab: Lab, *cmd: str) -> list[str]:
    return ["ip", "netns", "exec", lab["src"].netns, *cmd]


def build(lab: Lab) -> str:
    lab.start_tcp_server("dst", PORT)
    for (a, b), one_way in DELAYS.items():
        lab.set_link_delay(a, b, one_way)
    return lab["dst"].addr()


def time_to_diagnosis(drop: bool) -> dict[str, float]:
    """Best of TIMED_ROUNDS per tool; each round runs every tool once, one after the other, so
    that a stall of the machine falls on all of them alike."""
    with Lab() as lab:
        dst = build(lab)
        if drop:  # every packet to the destination vanishes: the baselines' probes too
            lab.iptables("dst", "-A", "INPUT", "-j", "DROP")
        tools = {
            "hopscope": hopscope_in_src(lab, "--to", f"{dst}:{PORT}"),
            TRACEROUTE_T: in_src(lab, "traceroute", "-T", "-n", "-p", str(PORT), dst),
            "traceroute -n": in_src(lab, "traceroute", "-n", dst),
            "mtr -n -r -c 10": in_src(lab, "mtr", "-n", "-r", "-c", "10", dst),
        }
        best = dict.fromkeys([*tools, WARM], float("inf"))
        request = json.dumps({"host": dst, "port": PORT}) + "\n"  # a ProbeRequest
        with warm_probe(lab) as warm:
            for _ in range(TIMED_ROUNDS):
                for name, cmd in tools.items():
                    best[name] = min(best[name], timed(cmd).seconds)
                best[WARM] = min(best[WARM], warm(request))
        return best


@contextlib.contextmanager
def warm_probe(lab: Lab) -> Iterator[Callable[[str], float]]:
    """bench/warm_probe.py in the source's namespace; yields: request line -> its seconds."""
    cmd = in_src(lab, sys.executable, str(REPO / "bench" / "warm_probe.py"), lab.resolv_conf())
    with subprocess.Popen(cmd, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True) as proc:
        assert proc.stdin is not None and proc.stdout is not None

        def ask(request: str) -> float:
            proc.stdin.write(request)
            proc.stdin.flush()
            return float(proc.stdout.readline().split()[0])

        try:
            yield ask
        finally:
            proc.stdin.close()


def accuracy() -> dict[str, list[float]]:
    """Absolute error of each hop's average RTT against the emulated delays, per tool."""
    errors: dict[str, list[float]] = {"hopscope": [], "mtr": [], "ping (the lab's floor)": []}
    with Lab() as lab:
        dst = build(lab)
        truth = {lab[n].addr(): lab.expected_rtt_ms(n) for n in ("r1", "r2", "r3", "dst")}
        for _ in range(RUNS):
            result = json.loads(timed(hopscope(lab, "--to", f"{dst}:{PORT}")).stdout)
            for hop in result["hops"]:
                if hop.get("address") in truth and hop.get("latency"):
                    errors["hopscope"].append(abs(hop["latency"]["avgMs"] - truth[hop["address"]]))
        report = timed(in_src(lab, "mtr", "-n", "-r", "-c", "10", "--json", dst)).stdout
        for hop in json.loads(report)["report"]["hubs"]:
            if hop["host"] in truth:
                errors["mtr"].append(abs(hop["Avg"] - truth[hop["host"]]))
        # The emulated links themselves add a little (NFQUEUE to a user-space delayer and back
        # at every delayed crossing): ping to each hop shows how close any tool can get.
        for address, expected in truth.items():
            out = timed(in_src(lab, "ping", "-n", "-q", "-c", "10", "-i", "0.05", address)).stdout
            average = float(out.rsplit("=", 1)[1].split("/")[1])
            errors["ping (the lab's floor)"].append(abs(average - expected))
    return errors


def first_packet_and_rss() -> dict[str, float]:
    with Lab() as lab:
        dst = build(lab)
        seen = threading.Event()
        first: list[float] = []
        ready = threading.Event()

        def sniff() -> None:
            # Enter the source's namespace in this thread only, then watch its interfaces.
            libc = ctypes.CDLL(None, use_errno=True)
            fd = os.open(lab["src"].netns_path, os.O_RDONLY)
            libc.setns(fd, 0x40000000)
            os.close(fd)
            sock = socket.socket(socket.AF_PACKET, socket.SOCK_RAW, socket.htons(ETH_P_ALL))
            sock.settimeout(10)
            ready.set()
            while not seen.is_set():
                _, addr = sock.recvfrom(65535)
                if addr[0] != "lo" and addr[2] == socket.PACKET_OUTGOING:
                    first.append(time.perf_counter())
                    seen.set()

        thread = threading.Thread(target=sniff, daemon=True)
        thread.start()
        ready.wait(5)
        started = time.perf_counter()
        run = timed(hopscope(lab, "--to", f"{dst}:{PORT}"))
        seen.wait(5)
        trace = timed(in_src(lab, "traceroute", "-n", dst))
        mtr = timed(in_src(lab, "mtr", "-n", "-r", "-c", "1", dst))
        return {
            "start_to_first_packet_ms": (first[0] - started) * 1000 if first else float("nan"),
            "hopscope_rss_mib": run.max_rss_mib,
            "traceroute_rss_mib": trace.max_rss_mib,
            "mtr_rss_mib": mtr.max_rss_mib,
        }


def use_this_checkouts_probe() -> None:
    """Time the probe beside this file, not the checkout a shared venv's editable install
    names; and compiled, as the image's pip install ships it: with PYTHONDONTWRITEBYTECODE set,
    every start would compile each hopscope module again (~0.1-0.2 s of CPU), a start no user
    makes."""
    probe_code = REPO / "probe-image"
    os.environ["PYTHONPATH"] = os.pathsep.join(
        filter(None, [str(probe_code), os.getenv("PYTHONPATH")])
    )
    compileall.compile_dir(probe_code, quiet=1)


def main() -> int:
    if os.geteuid() != 0:
        print("bench needs root: it builds network namespaces", file=sys.stderr)
        return 2
    use_this_checkouts_probe()
    results: dict[str, object] = {}
    print(
        f"1. time to a complete diagnosis (best of {TIMED_ROUNDS}, side by side), and how many "
        "times faster hopscope is"
    )
    for label, drop in (("healthy", False), ("silent drop at destination", True)):
        times = time_to_diagnosis(drop)
        key = "drop" if drop else "healthy"
        results[f"time_{key}"] = times
        base = times["hopscope"]
        cells = ", ".join(f"{k} {v:.2f} s ({v / base:.1f}x)" for k, v in times.items())
        print(f"   {label}: {cells}")
        ratio = base / times[TRACEROUTE_T]
        results[f"ratio_{key}_to_traceroute_T"] = ratio
        print(f"   {label}: hopscope / {TRACEROUTE_T} = {ratio:.2f}")
        warm = times[WARM] / times[TRACEROUTE_T]
        results[f"ratio_{key}_warm_to_traceroute_T"] = warm
        print(f"   {label}: {WARM} / {TRACEROUTE_T} = {warm:.2f}")
    print("2. per-hop latency error against the emulated delays (ms)")
    errors = accuracy()
    results["accuracy_ms"] = errors
    baseline = statistics.median(errors["mtr"])
    for tool, errs in errors.items():
        median = statistics.median(errs)
        print(
            f"   {tool}: median {median:.3f}, worst {max(errs):.3f} "
            f"({len(errs)} hop samples; {median / baseline:.2f}x mtr's median error)"
        )
    print("3. start-up and memory")
    start = first_packet_and_rss()
    results["startup"] = start
    print(f"   process start to first packet: {start['start_to_first_packet_ms']:.0f} ms")
    print(
        f"   peak RSS: hopscope {start['hopscope_rss_mib']:.1f} MiB, traceroute "
        f"{start['traceroute_rss_mib']:.1f} MiB, mtr {start['mtr_rss_mib']:.1f} MiB"
    )
    out = REPO / "bench" / "out"
    out.mkdir(exist_ok=True)
    (out / "results.json").write_text(json.dumps(results, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
