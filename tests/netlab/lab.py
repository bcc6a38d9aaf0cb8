"""A routed network of Linux network namespaces for the probe's end-to-end tests.

    src --1-- r1 --2-- r2 --3-- r3 --4-- dst      link k: 198.18.k.0/24 and 2001:db8:k::/64,
              |                  |                 first-named end .1 / ::1, other end .2 / ::2
              +--5-- dns         |
              +--6-- r2b --7-----+                 (ecmp=True: r1 splits 198.18.4.0/24 over r2, r2b)

Every node is a namespace `hs<pid>-<n>-<node>`; interfaces are named `to-<peer>`. Only
198.18.0.0/15 and 2001:db8::/32 are used and the root namespace is never touched: veths are
created inside the namespaces. `Lab` is a context manager that always tears everything down.
"""

from __future__ import annotations

import collections
import contextlib
import itertools
import math
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType

from .servers import TlsKind, make_ca, make_server_cert

HERE = Path(__file__).resolve().parent
PYTHON = sys.executable
NETNS_DIR = Path("/run/netns")
_OURS = re.compile(r"^hs(\d+)-\d+-")
_counter = itertools.count()


@dataclass(frozen=True)
class _Link:
    net: int  # the third octet of its IPv4 /24, the third group of its IPv6 /64
    one: str  # host number 1
    two: str  # host number 2

    def addr(self, node: str, v: int) -> str:
        host = 1 if node == self.one else 2
        return f"198.18.{self.net}.{host}" if v == 4 else f"2001:db8:{self.net}::{host}"

    def subnet(self, v: int) -> str:
        return f"198.18.{self.net}.0/24" if v == 4 else f"2001:db8:{self.net}::/64"

    def peer(self, node: str) -> str:
        return self.two if node == self.one else self.one


_LINKS = (
    _Link(1, "r1", "src"),
    _Link(2, "r1", "r2"),
    _Link(3, "r2", "r3"),
    _Link(4, "r3", "dst"),
    _Link(5, "r1", "dns"),
)
_ECMP_LINKS = (_Link(6, "r1", "r2b"), _Link(7, "r2b", "r3"))
_ROUTERS = frozenset({"r1", "r2", "r2b", "r3"})
_DEFAULTS = ((4, "0.0.0.0/0"), (6, "::/0"))
DEAD_NAMESERVER = "198.18.5.3"  # the dns host owns it and drops all that reaches it
BROKEN_UPSTREAM_PORT = 5399  # on the dns host: a server answering SERVFAIL to everything

_SYSCTLS = [
    "net.ipv4.icmp_ratelimit=0",
    "net.ipv6.icmp.ratelimit=0",
    # The global ICMP budget is shared by v4 and v6; 1e6 stays clear of the kernel's int overflow.
    "net.ipv4.icmp_msgs_per_sec=1000000",
    "net.ipv4.icmp_msgs_burst=1000000",
    "net.ipv4.conf.all.rp_filter=0",
    "net.ipv4.conf.default.rp_filter=0",
    # Link-local addresses skip DAD too, so neighbour discovery works the moment links are up.
    "net.ipv6.conf.default.accept_dad=0",
]
# What _SYSCTLS turns off, as a kernel sets it: a burst of 6 errors to one peer, then one per
# ratelimit ms (v4 1 s, v6 0.1 s), and 1000/s in all (burst 50).
_KERNEL_ICMP_RATE_LIMITS = [
    "net.ipv4.icmp_ratelimit=1000",
    "net.ipv6.icmp.ratelimit=100",
    "net.ipv4.icmp_msgs_per_sec=1000",
    "net.ipv4.icmp_msgs_burst=50",
]
_ROUTER_SYSCTLS = [
    "net.ipv4.ip_forward=1",
    "net.ipv6.conf.all.forwarding=1",
    "net.ipv6.conf.default.forwarding=1",
    # Hash on ports too, so that flows differing only in source port spread over ECMP paths.
    "net.ipv4.fib_multipath_hash_policy=1",
    "net.ipv6.fib_multipath_hash_policy=1",
]


class LabError(RuntimeError):
    """The lab could not be built, changed or torn down as asked."""


class CommandError(subprocess.CalledProcessError):
    """A failed command, with its stderr in the message."""

    def __str__(self) -> str:
        return f"{super().__str__()}\n{self.stderr or ''}".rstrip()


def _check(done: subprocess.CompletedProcess[str]) -> subprocess.CompletedProcess[str]:
    if done.returncode:
        raise CommandError(done.returncode, done.args, done.stdout, done.stderr)
    return done


def _run_all(commands: Iterable[tuple[list[str], str | None]], timeout: float = 30.0) -> None:
    """Run commands concurrently (each with optional stdin text); raise if any failed."""
    procs = [
        (
            cmd,
            stdin,
            subprocess.Popen(
                cmd,
                stdin=subprocess.PIPE if stdin is not None else subprocess.DEVNULL,
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
                text=True,
            ),
        )
        for cmd, stdin in commands
    ]
    failures = []
    for cmd, stdin, proc in procs:
        out, err = proc.communicate(stdin, timeout=timeout)
        if proc.returncode:
            failures.append(f"{' '.join(cmd)}: {err.strip() or out.strip()}")
    if failures:
        raise LabError("\n".join(failures))


def _netns_processes(paths: Iterable[Path]) -> list[int]:
    """PIDs of the processes inside these namespaces (what `ip netns pids` does, for many)."""
    wanted = set()
    for path in paths:
        try:
            st = path.stat()
        except OSError:
            continue
        wanted.add((st.st_dev, st.st_ino))
    pids = []
    for entry in os.scandir("/proc"):
        if not entry.name.isdigit():
            continue
        try:
            st = os.stat(f"/proc/{entry.name}/ns/net")
        except OSError:
            continue  # exited meanwhile
        if (st.st_dev, st.st_ino) in wanted:
            pids.append(int(entry.name))
    return pids


def _kill_and_delete(names: Sequence[str]) -> None:
    """Kill every process in these namespaces, then delete them."""
    paths = [NETNS_DIR / name for name in names]
    for _ in range(20):  # a process may fork while being killed: repeat until none is left
        pids = _netns_processes(paths)
        if not pids:
            break
        for pid in pids:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
        time.sleep(0.01)
    existing = [name for name in names if (NETNS_DIR / name).exists()]
    if existing:
        # -force: try every one; its exit status tells only about the last, hence the check after.
        batch = "".join(f"netns delete {name}\n" for name in existing)
        done = _ip_batch(batch, "-force")
        left = [name for name in existing if (NETNS_DIR / name).exists()]
        if left:
            raise LabError(f"could not delete namespaces {left}: {done.stderr.strip()}")


def _ip_batch(lines: str, *options: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        ["ip", *options, "-batch", "-"], input=lines, capture_output=True, text=True
    )


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True


def _remove_stale() -> None:
    """Delete namespaces and temp dirs left by labs whose process is gone (e.g. killed runs)."""
    stale = []
    if NETNS_DIR.is_dir():
        for path in NETNS_DIR.iterdir():
            found = _OURS.match(path.name)
            if found and not _pid_alive(int(found.group(1))):
                stale.append(path.name)
    if stale:
        _kill_and_delete(stale)
    for path in Path(tempfile.gettempdir()).glob("hslab-*"):
        owner = path.name.split("-")[1]
        if owner.isdigit() and not _pid_alive(int(owner)):
            shutil.rmtree(path, ignore_errors=True)


class Host:
    """One namespace of the lab: a host or a router."""

    def __init__(self, lab: Lab, name: str, netns: str, links: list[_Link]) -> None:
        self.name = name
        self.netns = netns
        self.netns_path = str(NETNS_DIR / netns)
        self._lab = lab
        self._links = links  # the first one leads toward src

    def addr(self, v: int = 4) -> str:
        """The primary address: for routers, the one on the link toward src."""
        return self._links[0].addr(self.name, v)

    def _exec(self, cmd: list[str] | str) -> list[str]:
        argv = ["sh", "-c", cmd] if isinstance(cmd, str) else cmd
        return ["ip", "netns", "exec", self.netns, *argv]

    def run(
        self, cmd: list[str] | str, check: bool = True, timeout: float = 60.0
    ) -> subprocess.CompletedProcess[str]:
        """Run a command (a string goes through `sh -c`) inside the namespace, capturing output."""
        done = subprocess.run(self._exec(cmd), timeout=timeout, capture_output=True, text=True)
        return _check(done) if check else done

    def spawn(
        self, cmd: list[str] | str, ready: str | None = None, timeout: float = 5.0
    ) -> subprocess.Popen[bytes]:
        """Start a background process inside the namespace; the lab kills it at teardown.

        Its stdout and stderr go to a log file in the lab's temp dir. With `ready`, wait until
        that text appears in the log (raising, with the log, if the process exits first).
        """
        proc = self._lab._start(self, self._exec(cmd))
        if ready is not None:
            self._lab._await(proc, ready, timeout)
        return proc


class Lab:
    """The namespaces, links, routes and services of one test network; see the module doc."""

    def __init__(self, *, ecmp: bool = False) -> None:
        self.ecmp = ecmp
        self.prefix = f"hs{os.getpid()}-{next(_counter)}-"
        self.dead_nameserver = DEAD_NAMESERVER
        self._links = _LINKS + _ECMP_LINKS if ecmp else _LINKS
        nodes = list(dict.fromkeys(n for link in self._links for n in (link.one, link.two)))
        self._from_src = self._bfs("src")
        self.hosts = {
            name: Host(self, name, self.prefix + name, self._links_of(name)) for name in nodes
        }
        self._tmp: Path | None = None
        self._procs: list[subprocess.Popen[bytes]] = []
        self._logs: dict[int, Path] = {}  # pid: the file its stdout and stderr go to
        self._resolv_confs = itertools.count()
        self._delays: dict[_Link, float] = {}
        self._delayers: dict[tuple[str, str], tuple[int, subprocess.Popen[bytes]]] = {}
        self._loss_rules: dict[tuple[str, str], list[str]] = {}
        self._queue_numbers = itertools.count(1)
        self._ca: tuple[Path, Path] | None = None
        self._certs: dict[TlsKind, tuple[Path, Path]] = {}

    # ---- life cycle --------------------------------------------------------------------------

    def __enter__(self) -> Lab:
        try:
            self._build()
        except BaseException:
            self.close()
            raise
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    def close(self) -> None:
        """Kill every process in the lab's namespaces, delete them and the temp dir. Idempotent."""
        errors = []
        for proc in self._procs:
            if proc.poll() is None:
                proc.kill()
        for proc in self._procs:
            try:
                proc.wait(timeout=5)
            except subprocess.TimeoutExpired:
                errors.append(f"pid {proc.pid} survived SIGKILL")
        try:
            _kill_and_delete([host.netns for host in self.hosts.values()])
        except (OSError, subprocess.SubprocessError, LabError) as exc:
            errors.append(str(exc))
        if self._tmp is not None:
            shutil.rmtree(self._tmp, ignore_errors=True)
        if errors:
            raise LabError("lab teardown incomplete: " + "; ".join(errors))

    def _build(self) -> None:
        _remove_stale()
        self._tmp = Path(tempfile.mkdtemp(prefix=f"hslab-{os.getpid()}-"))
        (self._tmp / "logs").mkdir()
        names = [host.netns for host in self.hosts.values()]
        batch = "".join(f"netns add {name}\n" for name in names)
        _check(_ip_batch(batch))
        # Sysctls first: interfaces created later inherit the `default` ones.
        _run_all(
            (
                self[name]._exec(
                    ["sysctl", "-q", "-e", "-w", *_SYSCTLS]
                    + (_ROUTER_SYSCTLS if name in _ROUTERS else [])
                ),
                None,
            )
            for name in self.hosts
        )
        creates: dict[str, list[str]] = collections.defaultdict(list)
        for link in self._links:
            creates[link.one].append(
                f"link add to-{link.two} type veth peer name to-{link.one}"
                f" netns {self[link.two].netns}\n"
            )
        _run_all(
            (["ip", "-n", self[name].netns, "-batch", "-"], "".join(lines))
            for name, lines in creates.items()
        )
        _run_all(
            (["ip", "-n", self[name].netns, "-batch", "-"], self._config(name))
            for name in self.hosts
        )
        self._start_dns()

    # ---- topology ----------------------------------------------------------------------------

    def _links_of(self, name: str) -> list[_Link]:
        """The node's links, the one toward src first."""
        own = [link for link in self._links if name in (link.one, link.two)]
        toward_src = self._from_src[name][2]
        return sorted(own, key=lambda link: link != toward_src)

    def _bfs(self, start: str) -> dict[str, tuple[int, _Link | None, _Link | None]]:
        """Per node: hops from `start`, the first link taken and the last one (ties: link order)."""
        found: dict[str, tuple[int, _Link | None, _Link | None]] = {start: (0, None, None)}
        frontier = [start]
        while frontier:
            following = []
            for node in frontier:
                hops, first, _ = found[node]
                for link in self._links:
                    if node in (link.one, link.two) and link.peer(node) not in found:
                        found[link.peer(node)] = (hops + 1, first or link, link)
                        following.append(link.peer(node))
            frontier = following
        return found

    def _link(self, a: str, b: str) -> _Link:
        for link in self._links:
            if {link.one, link.two} == {a, b}:
                return link
        raise LabError(f"no link between {a} and {b}")

    def _config(self, name: str) -> str:
        """The `ip -batch` lines that address, raise and route one node."""
        own = self._links_of(name)
        lines = ["link set lo up"]
        for link in own:
            dev = f"to-{link.peer(name)}"
            lines += [
                f"address add {link.addr(name, 4)}/24 dev {dev}",
                f"address add {link.addr(name, 6)}/64 dev {dev} nodad",
                f"link set {dev} up",
            ]
        if name == "dns":
            lines.append(f"address add {DEAD_NAMESERVER}/24 dev to-r1")
        if len(own) == 1:  # a host: default routes, which tests may delete
            gateway = own[0].peer(name)
            lines += [f"route add {net} via {own[0].addr(gateway, v)}" for v, net in _DEFAULTS]
            return "".join(f"{line}\n" for line in lines)
        paths = self._bfs(name)
        for link in self._links:
            if link in own:
                continue
            nearer = min((link.one, link.two), key=lambda node: paths[node][0])
            first = paths[nearer][1]
            assert first is not None
            hops = [first]
            if self.ecmp and name == "r1" and link.net == 4:
                hops = [h for h in own if h.peer(name) in ("r2", "r2b")]
            for v in (4, 6):
                nexthops = [f"via {h.addr(h.peer(name), v)} dev to-{h.peer(name)}" for h in hops]
                if len(nexthops) > 1:
                    nexthops = [f"nexthop {n}" for n in nexthops]
                lines.append(f"route add {link.subnet(v)} {' '.join(nexthops)}")
        return "".join(f"{line}\n" for line in lines)

    # ---- processes ---------------------------------------------------------------------------

    @property
    def tmpdir(self) -> Path:
        """The lab's temp dir: logs, resolv.conf files, certificates, dnsmasq's files."""
        if self._tmp is None:
            raise LabError("the lab is not built: use it as a context manager")
        return self._tmp

    def _start(self, host: Host, argv: list[str]) -> subprocess.Popen[bytes]:
        log = self.tmpdir / "logs" / f"{host.name}-{len(self._procs)}.log"
        with log.open("wb") as out:
            proc = subprocess.Popen(
                argv,
                stdin=subprocess.DEVNULL,
                stdout=out,
                stderr=subprocess.STDOUT,
                start_new_session=True,  # a Ctrl-C of the test run is for pytest, not for these
            )
        self._procs.append(proc)
        self._logs[proc.pid] = log
        return proc

    def _await(
        self,
        proc: subprocess.Popen[bytes],
        text: str,
        timeout: float = 5.0,
        watched: Path | None = None,
    ) -> None:
        """Wait for `text` in the process's output (or the file `watched`); fail with the output
        if the process exits or stalls first."""
        log = self._logs[proc.pid]
        watched = watched or log
        deadline = time.monotonic() + timeout
        while True:
            if watched.exists() and text in watched.read_text(errors="replace"):
                return
            if proc.poll() is not None or time.monotonic() > deadline:
                state = "timed out" if proc.returncode is None else f"exited {proc.returncode}"
                output = "".join(
                    f.read_text(errors="replace") for f in {log, watched} if f.exists()
                )
                raise LabError(f"{proc.args!r} {state} before printing {text!r}:\n{output}")
            time.sleep(0.005)

    # ---- DNS ---------------------------------------------------------------------------------

    def _start_dns(self) -> None:
        dns = self["dns"]
        conf = self.tmpdir / "dnsmasq.conf"
        log = self.tmpdir / "dnsmasq.log"
        records = [
            f"host-record={node}.lab.test,{link.addr(node, 4)},{link.addr(node, 6)}"
            for node in self.hosts
            for link in self._links_of(node)
        ]
        dst = self["dst"]
        conf.write_text(
            "\n".join(
                [
                    "no-resolv",
                    "no-hosts",
                    "bind-interfaces",
                    f"listen-address={dns.addr(4)}",
                    f"listen-address={dns.addr(6)}",
                    f"pid-file={self.tmpdir / 'dnsmasq.pid'}",
                    f"log-facility={log}",
                    "log-queries",
                    "cache-size=0",
                    # Unknown names and addresses of the lab are NXDOMAIN, not REFUSED.
                    "local=/lab.test/",
                    "local=/18.198.in-addr.arpa/",
                    "local=/19.198.in-addr.arpa/",
                    "local=/8.b.d.0.1.0.0.2.ip6.arpa/",
                    *records,
                    f"address=/web.lab.test/{dst.addr(4)}",
                    f"address=/web.lab.test/{dst.addr(6)}",
                    f"server=/broken.lab.test/127.0.0.1#{BROKEN_UPSTREAM_PORT}",
                    "",
                ]
            )
        )
        dnsmasq = self._start(dns, dns._exec(["dnsmasq", f"--conf-file={conf}", "-k"]))
        upstream_argv = [PYTHON, str(HERE / "servers.py"), "servfail"]
        upstream = self._start(
            dns, dns._exec([*upstream_argv, "--port", str(BROKEN_UPSTREAM_PORT)])
        )
        drop = ["iptables", "-w", "-A", "INPUT", "-d", DEAD_NAMESERVER, "-j", "DROP"]
        _check(subprocess.run(dns._exec(drop), capture_output=True, text=True))
        self._await(dnsmasq, "started, version", watched=log)
        self._await(upstream, "ready")

    def resolv_conf(
        self,
        nameservers: list[str] | None = None,
        search: Sequence[str] = ("lab.test",),
        ndots: int = 1,
    ) -> str:
        """Write a resolv.conf for the probe (default: the lab's dnsmasq) and return its path."""
        servers = [self["dns"].addr()] if nameservers is None else nameservers
        lines = [f"nameserver {ns}" for ns in servers]
        if search:
            lines.append(f"search {' '.join(search)}")
        lines.append(f"options ndots:{ndots}")
        path = self.tmpdir / f"resolv-{next(self._resolv_confs)}.conf"
        path.write_text("\n".join(lines) + "\n")
        return str(path)

    # ---- faults ------------------------------------------------------------------------------

    def iptables(self, host: str, *args: str, v6: bool = False) -> subprocess.CompletedProcess[str]:
        """Run iptables (ip6tables with v6) inside a node."""
        return self[host].run(["ip6tables" if v6 else "iptables", "-w", *args])

    def _restore(self, node: str, table: str, rules: list[str]) -> list[tuple[list[str], str]]:
        """Commands applying iptables rule lines (-A/-D) to both families of a node at once."""
        text = "\n".join([f"*{table}", *rules, "COMMIT", ""])
        return [
            (self[node]._exec([tool, "-w", "--noflush"]), text)
            for tool in ("iptables-restore", "ip6tables-restore")
        ]

    def kernel_icmp_rate_limits(self, *hosts: str) -> None:
        """Give these nodes the kernel's default ICMP rate limits (the lab turns them off)."""
        _run_all(
            (self[host]._exec(["sysctl", "-q", "-w", *_KERNEL_ICMP_RATE_LIMITS]), None)
            for host in hosts
        )

    def set_link_delay(self, a: str, b: str, one_way_ms: float) -> None:
        """Delay packets leaving either end of the a-b link by `one_way_ms` (0 removes it).

        Each end's egress goes through an NFQUEUE served by a delayer process in that node.
        """
        link = self._link(a, b)
        ends = [(node, f"to-{link.peer(node)}") for node in (a, b)]
        started: dict[tuple[str, str], tuple[int, subprocess.Popen[bytes]]] = {}
        if one_way_ms > 0:
            for node, dev in ends:
                queue = next(self._queue_numbers)
                argv = [PYTHON, str(HERE / "delayer.py"), "--queue", str(queue)]
                proc = self._start(
                    self[node], self[node]._exec([*argv, "--delay-ms", str(one_way_ms)])
                )
                started[(node, dev)] = (queue, proc)
            for _, proc in started.values():  # the rule must not exist before its queue is bound
                self._await(proc, "ready")
        commands = []
        for node, dev in ends:
            rule = f"POSTROUTING -o {dev} -j NFQUEUE --queue-num"
            rules = [f"-A {rule} {started[(node, dev)][0]}"] if (node, dev) in started else []
            if (node, dev) in self._delayers:
                rules.append(f"-D {rule} {self._delayers[(node, dev)][0]}")
            commands += self._restore(node, "mangle", rules)
        _run_all(commands)
        for end in ends:
            old = self._delayers.pop(end, None)
            if old is not None:
                old[1].terminate()  # it lets what it still holds go on, then exits
                old[1].wait(timeout=5)
            if end in started:
                self._delayers[end] = started[end]
        self._delays[link] = one_way_ms

    def set_link_loss(self, a: str, b: str, percent: float) -> None:
        """Drop packets leaving either end of the a-b link, so that a round trip across it is
        lost with `percent` probability (each direction drops 1 - sqrt(1 - p)); 0 removes it."""
        link = self._link(a, b)
        per_direction = 1 - math.sqrt(1 - percent / 100)
        commands = []
        for node in (a, b):
            dev = f"to-{link.peer(node)}"
            old = [rule.replace("-A", "-D", 1) for rule in self._loss_rules.pop((node, dev), [])]
            new = [
                f"-A {chain} -o {dev} -m statistic --mode random"
                f" --probability {per_direction:.6f} -j DROP"
                for chain in ("FORWARD", "OUTPUT")
                if percent > 0
            ]
            self._loss_rules[(node, dev)] = new
            commands += self._restore(node, "filter", new + old)
        _run_all(commands)

    def set_link_mtu(self, a: str, b: str, mtu: int, *, drop_too_big: bool) -> None:
        """Narrow the a-b link (both ends) to `mtu`, as a tunnel or overlay does. With
        `drop_too_big`, its two routers' frag-needed and packet-too-big never leave them: the
        ICMP filtering that turns a narrow link into a path-MTU black hole."""
        link = self._link(a, b)
        commands: list[tuple[list[str], str | None]] = [
            (
                self[node]._exec(["ip", "link", "set", f"to-{link.peer(node)}", "mtu", str(mtu)]),
                None,
            )
            for node in (a, b)
        ]
        if drop_too_big:
            for node in (a, b):
                v4 = "-A OUTPUT -p icmp --icmp-type fragmentation-needed -j DROP"
                v6 = "-A OUTPUT -p ipv6-icmp --icmpv6-type packet-too-big -j DROP"
                text = "\n".join(["*filter", "{rule}", "COMMIT", ""])
                commands += [
                    (
                        self[node]._exec(["iptables-restore", "-w", "--noflush"]),
                        text.format(rule=v4),
                    ),
                    (
                        self[node]._exec(["ip6tables-restore", "-w", "--noflush"]),
                        text.format(rule=v6),
                    ),
                ]
        _run_all(commands)

    def expected_rtt_ms(self, host: str) -> float:
        """The round trip from src to `host` the delays add, along the primary path."""
        total = 0.0
        node = host
        while node != "src":
            link = self._from_src[node][2]
            assert link is not None
            total += 2 * self._delays.get(link, 0.0)
            node = link.peer(node)
        return total

    def absent_address(self, v: int = 4) -> str:
        """An address on dst's subnet that nobody owns: r3's neighbour resolution fails."""
        return "198.18.4.99" if v == 4 else "2001:db8:4::99"

    # ---- services ----------------------------------------------------------------------------

    def _serve(self, host: str, args: list[str]) -> subprocess.Popen[bytes]:
        return self[host].spawn([PYTHON, str(HERE / "servers.py"), *args], ready="ready")

    def start_tcp_server(self, host: str, port: int) -> subprocess.Popen[bytes]:
        """Listen on [::]:port, accepting and closing every connection."""
        return self._serve(host, ["tcp", "--port", str(port)])

    def start_udp_echo(self, host: str, port: int) -> subprocess.Popen[bytes]:
        """Echo every datagram to [::]:port back to its sender."""
        return self._serve(host, ["udp", "--port", str(port)])

    def start_http_server(
        self,
        host: str,
        port: int,
        status: int = 200,
        tls: TlsKind | None = None,
        body_bytes: int = 0,
    ) -> subprocess.Popen[bytes]:
        """Answer every request to [::]:port with `status`; over TLS with a `tls` certificate;
        with `body_bytes`, a body that large (written after the headers, as a download is)."""
        args = ["http", "--port", str(port), "--status", str(status)]
        args += ["--body-bytes", str(body_bytes)] if body_bytes else []
        if tls is not None:
            cert, key = self._cert(tls)
            args += ["--cert", str(cert), "--key", str(key)]
        return self._serve(host, args)

    @property
    def ca_file(self) -> str:
        """The lab CA's certificate (PEM): what the probe's --ca-file should trust."""
        return str(self._ca_pair()[0])

    def _ca_pair(self) -> tuple[Path, Path]:
        if self._ca is None:
            self._ca = make_ca(self.tmpdir)
        return self._ca

    def _cert(self, kind: TlsKind) -> tuple[Path, Path]:
        if kind not in self._certs:
            dst = self["dst"]
            names = ["dst.lab.test", "web.lab.test"]
            addresses = [dst.addr(4), dst.addr(6)]
            self._certs[kind] = make_server_cert(
                kind, self.tmpdir, self._ca_pair(), names, addresses
            )
        return self._certs[kind]

    def __getitem__(self, name: str) -> Host:
        return self.hosts[name]
