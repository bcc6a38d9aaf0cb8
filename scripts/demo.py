"""`make demo`: build a small network on this machine, break it a few ways, troubleshoot each.

The network is the test lab (network namespaces, veth links with emulated delay, a DNS server),
so every diagnosis below comes from real packets. Needs root.
"""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from tests.netlab.lab import Lab  # noqa: E402  (the lab lives with the tests that own it)


@dataclass(frozen=True)
class Scenario:
    title: str
    args: list[str]
    breaks: Callable[[Lab], None] = lambda _lab: None
    ecmp: bool = False


def delays(lab: Lab) -> None:
    for (a, b), one_way in {("src", "r1"): 1.0, ("r1", "r2"): 2.0, ("r2", "r3"): 5.0}.items():
        lab.set_link_delay(a, b, one_way)


def uneven_branches(lab: Lab) -> None:
    lab.set_link_delay("r1", "r2", 1.0)
    lab.set_link_delay("r1", "r2b", 4.0)


def drop_at_destination(lab: Lab) -> None:
    delays(lab)
    lab.iptables("dst", "-A", "INPUT", "-p", "tcp", "--dport", "8080", "-j", "DROP")


def reject_at_r2(lab: Lab) -> None:
    lab.iptables(
        "r2", "-A", "FORWARD", "-p", "tcp", "--dport", "8080",
        "-j", "REJECT", "--reject-with", "icmp-admin-prohibited",
    )  # fmt: skip


def no_route_at_r2(lab: Lab) -> None:
    lab["r2"].run(["ip", "route", "del", "198.18.4.0/24"])


SCENARIOS = [
    Scenario("healthy path, delays 1/2/5 ms on three links", ["--to", "dst.lab.test:8080"], delays),
    Scenario("nothing listening on the port", ["--to", "dst.lab.test:9999"]),
    Scenario(
        "a firewall silently drops at the destination (links delayed as in 1)",
        ["--to", "dst.lab.test:8080", "--timeout", "1"],
        drop_at_destination,
    ),
    Scenario("a router rejects the flow", ["--to", "dst.lab.test:8080"], reject_at_r2),
    Scenario("a router has no route", ["--to", "dst.lab.test:8080"], no_route_at_r2),
    Scenario("the name does not exist", ["--to", "nope.lab.test:8080"]),
    Scenario(
        "two equal-cost paths, one 3 ms slower each way",
        ["--to", "dst.lab.test:8080", "--multipath"],
        uneven_branches,
        ecmp=True,
    ),
]


def main() -> int:
    if os.geteuid() != 0:
        print("make demo needs root: it builds network namespaces", file=sys.stderr)
        return 2
    for number, scenario in enumerate(SCENARIOS, 1):
        with Lab(ecmp=scenario.ecmp) as lab:
            lab.start_tcp_server("dst", 8080)
            scenario.breaks(lab)
            print(f"\n=== {number}. {scenario.title}")
            print(f"$ hopscope probe {' '.join(scenario.args)}\n", flush=True)
            netns = ["--netns", lab["src"].netns_path, "--resolv-conf", lab.resolv_conf()]
            cmd = [sys.executable, "-m", "hopscope_probe", "probe", *netns, *scenario.args]
            subprocess.run(cmd, check=False, cwd=REPO)
    return 0


if __name__ == "__main__":
    sys.exit(main())
