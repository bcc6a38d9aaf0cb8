"""A pod's namespace is found by its UID; a batch gives one result line per check, always."""

from __future__ import annotations

import functools
import io
import json
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from hopscope_probe.batch import Batch, BatchItem, BatchOutput, PodNetns, run_batch
from hopscope_probe.models import ConnectionStatus, IssueType, PathMode, ProbeRequest
from hopscope_probe.netns import NamespaceError
from hopscope_probe.podns import pid_of_pod
from hopscope_probe.runner import Progress, probe_failure

UID = "3f1c2b4a-9d8e-4f70-a1b2-c3d4e5f60718"


def fake_proc(tmp_path: Path, cgroups: dict[int, str]) -> Path:
    for pid, text in cgroups.items():
        (tmp_path / str(pid)).mkdir()
        (tmp_path / str(pid) / "cgroup").write_text(text)
    (tmp_path / "self").mkdir()
    return tmp_path


@pytest.mark.parametrize(
    "line",
    [
        f"0::/kubepods/besteffort/pod{UID}/0a1b2c\n",  # cgroupfs driver, cgroup v2
        f"0::/kubepods.slice/kubepods-burstable.slice/kubepods-burstable-pod"
        f"{UID.replace('-', '_')}.slice/cri-containerd-0a1b.scope\n",  # systemd driver
        f"12:memory:/kubepods/pod{UID}/0a1b\n4:cpu,cpuacct:/kubepods/pod{UID}/0a1b\n",  # v1
    ],
)
def test_the_lowest_pid_of_the_pod_is_found_for_each_cgroup_driver(tmp_path: Path, line: str):
    proc = fake_proc(tmp_path, {1: "0::/init.scope\n", 977: line, 412: line, 50: "0::/other\n"})
    assert pid_of_pod(UID, proc) == 412
    assert pid_of_pod(UID.upper(), proc) == 412


def test_a_static_pods_uid_is_the_kubelets_32_hex_digit_hash(tmp_path: Path):
    static = "6e2b1c0f9d8a7b6c5d4e3f2a1b0c9d8e"  # a static pod's UID as its cgroup names it
    line = f"0::/kubepods.slice/kubepods-burstable.slice/kubepods-burstable-pod{static}.slice\n"
    assert pid_of_pod(static, fake_proc(tmp_path, {1: "0::/init.scope\n", 88: line})) == 88
    assert PodNetns(pod_uid=static).pod_uid == static  # and a batch may carry it


def test_a_pod_not_on_this_node_names_the_uid_and_the_likely_cause(tmp_path: Path):
    proc = fake_proc(tmp_path, {1: "0::/init.scope\n"})
    with pytest.raises(NamespaceError, match=f"no process of pod {UID}.*hostPID"):
        pid_of_pod(UID, proc)


def test_a_malformed_uid_is_refused_before_scanning(tmp_path: Path):
    with pytest.raises(NamespaceError, match="not a Kubernetes UID"):
        pid_of_pod("../../etc", tmp_path)


def hopscope_batch(batch_json: str, timeout: float = 60) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "hopscope_probe", "batch", "--input", "-"],
        input=batch_json,
        capture_output=True,
        text=True,
        timeout=timeout,
    )


def test_a_batch_prints_one_result_line_per_check_even_when_one_cannot_run():
    listener = socket.create_server(("127.0.0.1", 0))
    port = listener.getsockname()[1]
    threading.Thread(target=lambda: [listener.accept() for _ in range(8)], daemon=True).start()
    request = ProbeRequest(host="127.0.0.1", port=port, count=2, path_mode=PathMode.NEVER)
    batch = Batch(
        checks=[
            BatchItem(id="default/api/1", netns="host", request=request),
            BatchItem(id="default/gone/3", netns=PodNetns(pod_uid=UID), request=request),
        ]
    )
    done = hopscope_batch(batch.to_json())
    assert done.returncode == 0, done.stderr
    outputs = {
        out.id: out.result for out in map(BatchOutput.model_validate_json, done.stdout.splitlines())
    }
    assert set(outputs) == {"default/api/1", "default/gone/3"}
    assert outputs["default/api/1"].connection_status == ConnectionStatus.REACHABLE
    gone = outputs["default/gone/3"]
    assert gone.connection_status == ConnectionStatus.UNKNOWN
    assert [i.type for i in gone.issues] == [IssueType.PROBE]
    assert UID in gone.issues[0].message


@pytest.mark.parametrize(
    ("batch", "said"),
    [
        ({"checks": []}, "checks: List should have at least 1 item"),
        ({"checks": [{"netns": "host", "request": {"host": "x"}}]}, "id: Field required"),
        ({"checks": [{"id": "", "netns": "host"}]}, "id: String should have at least 1"),
    ],
    ids=["no-checks", "no-id", "empty-id"],
)
def test_a_malformed_batch_is_a_usage_error_naming_the_field(batch: dict, said: str):
    done = hopscope_batch(json.dumps(batch))
    assert done.returncode == 2
    assert said in done.stderr
    assert done.stdout == ""


def test_a_check_out_of_the_models_bounds_is_its_own_unknown_result():
    bad = {"checks": [{"id": "a/b/1", "netns": "host", "request": {"host": "x", "count": 0}}]}
    done = hopscope_batch(json.dumps(bad))
    assert done.returncode == 0
    [failed] = outputs_of(done.stdout).values()
    assert failed.result.connection_status == ConnectionStatus.UNKNOWN
    assert failed.result.issues[0].message.startswith("bad request: request.count: Input")


def run_logged(log: Path, item: BatchItem, progress: Progress) -> str:
    """A check's child that logs when it runs; "die" is OOM-killed, "huge" overfills a pipe."""
    name = item.request.host
    (log / f"{name}.start").write_text(str(time.monotonic()))
    if name == "die":
        os.kill(os.getpid(), signal.SIGKILL)
    time.sleep(0.2)
    message = "x" * 1_000_000 if name == "huge" else f"ran {name}"
    (log / f"{name}.end").write_text(str(time.monotonic()))
    return BatchOutput(id=item.id, result=probe_failure(item.request, message)).to_json()


def test_a_killed_check_fails_alone_and_at_most_parallel_checks_run_at_once(tmp_path: Path):
    names = ["a", "die", "b", "huge", "c", "d"]
    batch = Batch(
        checks=[
            BatchItem(id=f"default/{name}/1", netns="host", request=ProbeRequest(host=name))
            for name in names
        ]
    )
    out = io.StringIO()
    run_batch(batch, out, parallel=2, run=functools.partial(run_logged, tmp_path))

    messages = {
        o.id: o.result.issues[0].message
        for o in map(BatchOutput.model_validate_json, out.getvalue().splitlines())
    }
    assert messages == {
        "default/die/1": "probe process failed: killed by SIGKILL (out of memory?)",
        "default/huge/1": "x" * 1_000_000,
        **{f"default/{name}/1": f"ran {name}" for name in "abcd"},
    }
    spans = [
        (float((tmp_path / f"{name}.start").read_text()), float(end.read_text()))
        for name in names
        if (end := tmp_path / f"{name}.end").exists()
    ]
    assert len(spans) == 5
    assert max(sum(s <= start < e for s, e in spans) for start, _ in spans) <= 2


def outputs_of(stdout: str) -> dict[str, BatchOutput]:
    return {out.id: out for out in map(BatchOutput.model_validate_json, stdout.splitlines())}


@pytest.mark.parametrize(
    ("uri", "said"),
    [
        ("http://[::1", "request.uri: Value error, not a URL: Invalid IPv6 URL"),
        ("http://:80/", "request.uri: Value error, no host"),
        ("http://127.0.0.1:0/", "request.uri: Value error, port must be 1-65535"),
    ],
    ids=["unclosed-ipv6", "no-host", "port-0"],
)
def test_a_check_the_model_refuses_fails_only_its_own_check(uri: str, said: str):
    # Once the URI passed the model and crashed in the check's process, then in the batch's
    # parent too, and every other check's result was lost.
    listener = socket.create_server(("127.0.0.1", 0))
    port = listener.getsockname()[1]
    threading.Thread(target=lambda: [listener.accept() for _ in range(8)], daemon=True).start()
    good = ProbeRequest(host="127.0.0.1", port=port, count=1, path_mode=PathMode.NEVER)
    bad = {"host": "::1", "protocol": "HTTP", "uri": uri, "pathMode": "Never"}
    batch = {
        "checks": [
            {"id": "default/bad/1", "netns": "host", "request": bad},
            {"id": "default/good/1", "netns": "host", "request": good.model_dump(by_alias=True)},
        ]
    }
    done = hopscope_batch(json.dumps(batch))
    assert done.returncode == 0, done.stderr
    outputs = outputs_of(done.stdout)
    assert set(outputs) == {"default/bad/1", "default/good/1"}
    assert outputs["default/good/1"].result.connection_status == ConnectionStatus.REACHABLE
    failed = outputs["default/bad/1"].result
    assert failed.connection_status == ConnectionStatus.UNKNOWN
    assert (failed.protocol, failed.destination.host) == ("HTTP", "::1")
    assert [i.type for i in failed.issues] == [IssueType.PROBE]
    assert failed.issues[0].message == f"bad request: {said}"
    assert "Traceback" not in done.stderr


def test_a_check_past_its_budget_is_stopped_and_says_what_it_was_doing():
    # An HTTP server that accepts and never answers: each probe waits out its 60 s timeout,
    # so 100 of them would hold the batch (and the node's probe slot) for 100 minutes.
    silent = socket.create_server(("127.0.0.1", 0))
    held: list[socket.socket] = []
    threading.Thread(
        target=lambda: [held.append(silent.accept()[0]) for _ in range(200)], daemon=True
    ).start()
    port = silent.getsockname()[1]
    answering = socket.create_server(("127.0.0.1", 0))
    threading.Thread(target=lambda: [answering.accept() for _ in range(8)], daemon=True).start()
    slow = ProbeRequest(
        host="127.0.0.1",
        protocol="HTTP",
        uri=f"http://127.0.0.1:{port}/",
        count=100,
        timeout_seconds=60,
        path_mode=PathMode.NEVER,
    )
    quick = ProbeRequest(
        host="127.0.0.1", port=answering.getsockname()[1], count=1, path_mode=PathMode.NEVER
    )
    batch = Batch(
        checks=[
            BatchItem(id="default/slow/1", netns="host", request=slow, budget_seconds=2),
            BatchItem(id="default/quick/1", netns="host", request=quick, budget_seconds=60),
        ]
    )
    done = hopscope_batch(batch.to_json(), timeout=50)
    assert done.returncode == 0, done.stderr
    outputs = outputs_of(done.stdout)
    assert outputs["default/quick/1"].result.connection_status == ConnectionStatus.REACHABLE
    stopped = outputs["default/slow/1"].result
    assert stopped.connection_status == ConnectionStatus.UNKNOWN
    assert [i.message for i in stopped.issues] == [
        "the check exceeded its budget of 2 s and was stopped while probing 127.0.0.1 over HTTP"
    ]
    assert "HOPSCOPE_CHECK_BUDGET_SECONDS" in (stopped.issues[0].hint or "")


def run_reporting_its_start(item: BatchItem, progress: Progress) -> str:
    """A check's child that says who started it and whether the engine was already loaded."""
    if item.request.host == "die":
        os.kill(os.getpid(), signal.SIGKILL)
    if item.request.host == "hang":
        time.sleep(60)
    loaded = "hopscope_probe.engine" in sys.modules
    message = f"parent {os.getppid()}, preloaded {loaded}"
    return BatchOutput(id=item.id, result=probe_failure(item.request, message)).to_json()


def test_checks_are_forked_from_the_warmed_batch_and_a_crash_or_overrun_fails_alone():
    # A forkserver beside the batch held a second interpreter and a resource tracker (a full
    # batch peaked at 127 MiB, bench/probe_memory.py); forked from the batch itself: 73-82 MiB.
    names = ["a", "die", "b", "hang", "c"]
    batch = Batch(
        checks=[
            BatchItem(
                id=f"default/{name}/1",
                netns="host",
                request=ProbeRequest(host=name),
                budget_seconds=1 if name == "hang" else 60,
            )
            for name in names
        ]
    )
    out = io.StringIO()
    run_batch(batch, out, parallel=2, run=run_reporting_its_start)

    messages = {o.id: o.result.issues[0].message for o in outputs_of(out.getvalue()).values()}
    assert messages == {
        "default/die/1": "probe process failed: killed by SIGKILL (out of memory?)",
        "default/hang/1": "the check exceeded its budget of 1 s and was stopped while starting",
        **{f"default/{name}/1": f"parent {os.getpid()}, preloaded True" for name in "abc"},
    }
