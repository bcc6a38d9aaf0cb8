"""`hopscope probe` on hostile arguments: every input ends in exit 0/1/2 with a message naming
the flag, never a traceback, an endless read, or a probe of something else (issue 11).

No test here probes anything but loopback: the property tests run the whole CLI from a network
namespace that does not exist (so nothing is sent), or parse only.
"""

from __future__ import annotations

import argparse
import io
import ipaddress
import os
from contextlib import redirect_stderr, redirect_stdout
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from hopscope_probe import cli
from hopscope_probe.checks.dns import read_resolv_conf
from hopscope_probe.target import MAX_LABEL, check_host, parse_uri, split_host_port
from tests.limits import MIB, TRACEBACK, memory_cap, run_cli

# Deterministic in CI (a red run must be a real one); random elsewhere, to keep exploring.
PROPERTY = settings(
    max_examples=150,
    deadline=2000,  # ms per example: a slow input is a finding, not a long CI run
    database=None,
    derandomize=bool(os.environ.get("CI")),
    suppress_health_check=[HealthCheck.too_slow],
)
QUICK = ["--no-path", "--count", "1", "--timeout", "0.2"]  # loopback only, and short


def main(argv: list[str]) -> tuple[int, str, str]:
    """The CLI in-process: (exit code, stdout, stderr), argparse's exits included."""
    out, err = io.StringIO(), io.StringIO()
    with redirect_stdout(out), redirect_stderr(err):
        try:
            code = cli.main(argv)
        except SystemExit as exc:
            code = exc.code if isinstance(exc.code, int) else 2
    return code, out.getvalue(), err.getvalue()


@pytest.fixture
def loopback_resolver(tmp_path: Path) -> str:
    """A resolv.conf whose only nameserver is loopback: no test asks a real one."""
    path = tmp_path / "resolv.conf"
    path.write_text("nameserver 127.0.0.1\n")
    return str(path)


# ---- one regression per finding of issue 11 ------------------------------------------------


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["--uri", "http://127.0.0.1:99999/"], "--uri 'http://127.0.0.1:99999/': Port out of"),
        (["--uri", "http://127.0.0.1:x/"], "--uri 'http://127.0.0.1:x/': Port could not be"),
        (["--uri", "http://[::g]/"], "--uri 'http://[::g]/': '::g' does not appear"),
        (["--uri", "http://[fe80::1%25lo]/"], "IPv6 zone IDs (%…) are not supported"),
        (["--to", "a" * 64 + ".test:80"], f"longer than {MAX_LABEL} characters"),
        (["--to", "a..test:80"], "empty label"),
        (["--to", "[fe80::1%lo]:80"], "--to '[fe80::1%lo]:80': IPv6 zone IDs"),
        (["--to", "[127.0.0.1]:80"], "brackets hold an IPv6 address"),
        # Inputs that probed something else: port 12, port 80, the current namespace.
        (["--to", "127.0.0.1:\u0661\u0662"], "--to '127.0.0.1:١٢': port '١٢': must be 1-65535"),
        (["--uri", "http://127.0.0.1:0/"], "--uri 'http://127.0.0.1:0/': port 0"),
        (["--to", "127.0.0.1:1", "--netns", ""], "--netns: empty path"),
        (["--to", "127.0.0.1:1", "--count", "\u0661"], "argument --count: '\u0661'"),
        (["--to", "127.0.0.1:1", "--pid", "0"], "--pid 0: expected a process ID"),
    ],
)
def test_bad_input_is_a_usage_error_naming_the_flag(
    argv: list[str], message: str, loopback_resolver: str
) -> None:
    code, out, err = main(["probe", *argv, *QUICK, "--resolv-conf", loopback_resolver])
    assert (code, out) == (2, "")
    assert message in err
    assert TRACEBACK not in err


def test_a_resolv_conf_that_is_not_utf8_is_read_as_glibc_reads_it(tmp_path: Path) -> None:
    path = tmp_path / "resolv.conf"
    path.write_bytes(b"# r\xe9seau du bureau\nnameserver 127.0.0.1\nsearch corp.test\n")
    conf = read_resolv_conf(str(path))
    assert (conf.nameservers, conf.search) == (("127.0.0.1",), ("corp.test",))


@pytest.mark.parametrize("special", ["/dev/zero", "fifo", "folder"])
def test_resolv_conf_must_be_a_regular_file(special: str, tmp_path: Path) -> None:
    # /dev/zero took 5.4 GB in 6 s, a FIFO hung: a child with 1 GiB and 30 s shows either.
    path = {"/dev/zero": "/dev/zero", "fifo": str(tmp_path / "fifo"), "folder": str(tmp_path)}
    if special == "fifo":
        os.mkfifo(path["fifo"])
    run = run_cli(["probe", "--to", "127.0.0.1:1", *QUICK, "--resolv-conf", path[special]])
    assert (run.returncode, run.stdout) == (2, "")
    assert f"--resolv-conf {path[special]}: cannot read: not a regular file" in run.stderr
    assert TRACEBACK not in run.stderr


def test_a_big_resolv_conf_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "resolv.conf"
    path.write_text("nameserver 127.0.0.1\n" * 10_000)
    code, _, err = main(["probe", "--to", "127.0.0.1:1", *QUICK, "--resolv-conf", str(path)])
    assert code == 2 and f"--resolv-conf {path}: cannot read: larger than 64 KiB" in err


@pytest.mark.skipif(os.geteuid() != 0, reason="drops to nobody: needs root to start from")
def test_pid_of_another_user_without_permission_is_an_unknown_result() -> None:
    # As nobody, /proc/1/ns/net cannot be opened (EACCES): that was a traceback.
    read, write = os.pipe()
    child = os.fork()
    if child == 0:  # pragma: no cover - the child reports through the pipe
        try:
            os.setgid(65534)
            os.setuid(65534)
            code, out, err = main(["probe", "--to", "127.0.0.1:1", *QUICK, "--pid", "1"])
            os.write(write, f"{code}\n{out}\n{err}".encode())
        finally:
            os._exit(0)
    os.close(write)
    with os.fdopen(read) as pipe:
        report = pipe.read()
    os.waitpid(child, 0)
    code, _, rest = report.partition("\n")
    assert code == "2", report
    assert "cannot open /proc/1/ns/net: Permission denied" in rest
    assert TRACEBACK not in rest


# ---- properties -----------------------------------------------------------------------------

TRICKY = [
    "",
    " ",
    "0",
    "1",
    "65535",
    "65536",
    "-1",
    "1_0",
    "\u0661\u0662",
    "\uff18\uff10",
    "nan",
    "inf",
    "1e3",
    "::1",
    "[::1]",
    "[::1]:80",
    "[::1]x",
    "[127.0.0.1]:1",
    "[fe80::1%lo]:80",
    "fe80::1%lo",
    "127.0.0.1:0",
    "127.0.0.1:80",
    "a..b",
    ".a",
    "a" * 64,
    ("a" * 63 + ".") * 4,
    "xn--bcher-kva.test",
    "bücher.test",
    "h:\u0668\u0660",
    "http://127.0.0.1:0/",
    "http://127.0.0.1:99999/",
    "http://[::g]/",
    "http://[fe80::1%25lo]/",
    "https://[::1]:443/x",
    "http://h:/",
    "http:127.0.0.1",
    "ftp://h/",
    "\x00",
    "a\nb",
    "/dev/zero",
    "/proc/self/ns/net",
]
VALUE = st.one_of(st.sampled_from(TRICKY), st.text(max_size=40), st.integers().map(str))
FLAGS = [
    "--protocol",
    "--count",
    "--timeout",
    "--max-hops",
    "--source-port",
    "--method",
    "--header",
    "--valid-status",
    "--latency-threshold-ms",
    "--loss-threshold-percent",
    "--resolv-conf",
    "--ca-file",
]
OPTIONS = st.lists(st.tuples(st.sampled_from(FLAGS), VALUE), max_size=4)
SWITCHES = st.lists(
    st.sampled_from(["--ipv6", "--multipath", "--no-path", "--path-on-failure", "--json"]),
    max_size=2,
)


@PROPERTY
@given(
    destination=st.tuples(st.sampled_from(["--to", "--uri"]), VALUE),
    options=OPTIONS,
    switches=SWITCHES,
)
def test_any_arguments_end_in_0_1_or_2_with_the_flag_named(
    destination: tuple[str, str], options: list[tuple[str, str]], switches: list[str]
) -> None:
    # From a namespace that does not exist: the whole CLI runs, nothing is sent.
    nowhere = "/run/netns/hopscope-test-does-not-exist"
    argv = ["probe", *destination, *(f"{flag}={value}" for flag, value in options), *switches]
    with memory_cap(256 * MIB):
        code, out, err = main([*argv, "--netns", nowhere])
    assert code in (0, 1, 2)
    assert TRACEBACK not in err
    if out:  # it ran: from the namespace it was given, or not at all
        assert nowhere in out and code == 2
    else:
        assert code == 2
        error = err.strip().splitlines()[-1]
        assert "error:" in error and "--" in error, err


@PROPERTY
@given(st.one_of(st.sampled_from(TRICKY), st.text(max_size=300)))
def test_a_target_is_refused_or_a_host_and_port_the_probe_can_use(value: str) -> None:
    try:
        host, port = split_host_port(value)
        check_host(host)
    except ValueError as exc:
        assert str(exc)
        return
    assert port is None or 1 <= port <= 65535
    assert str(port) in value if port is not None else True
    assert_usable(host)


def assert_usable(host: str) -> None:
    """An IP address, or a name dnspython can ask for: no traceback waits further on."""
    import dns.name

    if "%" not in host and ":" not in host:
        try:
            ipaddress.ip_address(host)
            return
        except ValueError:
            name = dns.name.from_text(host.removesuffix(".") + ".")
            assert all(len(label) <= MAX_LABEL for label in name.labels)
            return
    ipaddress.IPv6Address(host)
    assert "%" not in host


LABEL = st.from_regex(r"\A[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?\Z")
NAMES = st.lists(LABEL, min_size=1, max_size=4).map(".".join).filter(lambda n: len(n) <= 253)
HOSTS = st.one_of(NAMES, st.ip_addresses().map(str))
PORTS = st.integers(1, 65535)


@PROPERTY
@given(host=HOSTS, port=PORTS)
def test_a_good_target_reads_back_as_written(host: str, port: int) -> None:
    written = f"[{host}]:{port}" if ":" in host else f"{host}:{port}"
    assert split_host_port(written) == (host, port)
    assert check_host(host) == host
    assert parse_uri(f"https://{written}/p?q")[1:] == (host.lower(), port)
    assert parse_uri(f"http://{written.rpartition(':')[0]}/")[1:] == (host.lower(), None)


@PROPERTY
@given(st.one_of(st.sampled_from(TRICKY), st.text(max_size=120)))
def test_a_uri_is_refused_or_aims_at_a_usable_host_and_port(value: str) -> None:
    try:
        _, host, port = parse_uri(value)
    except ValueError as exc:
        assert str(exc)
        return
    assert port is None or 1 <= port <= 65535
    assert_usable(host)


@PROPERTY
@given(flag=st.sampled_from(["--netns", "--pid", "--pod-uid"]), value=VALUE)
def test_a_source_flag_is_refused_or_names_a_real_source(flag: str, value: str) -> None:
    # Parsed and checked only: a PID that exists (1) would really be entered by a run.
    err = io.StringIO()
    try:
        with redirect_stderr(err):
            args = cli.parser().parse_args(["probe", "--to", "127.0.0.1:1", f"{flag}={value}"])
            where = cli.check_where(args)
    except SystemExit as exc:
        assert exc.code == 2 and f"argument {flag}" in err.getvalue()
        return
    except cli.UsageError as exc:
        assert str(exc).startswith(flag)
        return
    assert where.netns_path is None or where.netns_path.strip()
    assert where.pid is None or where.pid >= 1
    assert isinstance(args, argparse.Namespace)
