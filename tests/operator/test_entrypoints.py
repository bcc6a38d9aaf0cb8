"""Each image's entry point, started as the user its Dockerfile names, with no passwd entry.

A container runs as a bare uid: `USER 65532:65532` has no line in the image's /etc/passwd, so
anything that asks who it is (getpass, `~` without HOME) fails there and nowhere else. CI runs
as root, so each entry point is started here under the Dockerfile's uid and gid with setpriv,
the environment a container runtime gives it (HOME=/, no USER or LOGNAME), and is held to what
the kubelet checks: it serves /healthz. The operator runs against the in-memory API over HTTP.

setpriv keeps one capability, CAP_DAC_READ_SEARCH (read and search any file): this machine's
Python lives under /root (mode 700), where the image has it world-readable under /usr/local.
It grants reading only; who the process is, and what getpwuid says of it, does not change.
"""

from __future__ import annotations

import contextlib
import os
import pwd
import re
import shutil
import socket
import subprocess
import sys
import time
import tomllib
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
import yaml

from hopscope_operator.install.sidecar import sidecar_container
from tests.netlab.servers import make_ca

from .fakeapi import FakeApi
from .httpapi import HttpApi

REPO = Path(__file__).resolve().parents[2]
SCRIPTS = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]["scripts"]
TOKEN = "entrypoint-test-token"


def console_script(name: str) -> list[str]:
    """The console script `name` as pyproject.toml declares it, run as its installed wrapper
    would (so a venv installed from another checkout runs this tree's entry point)."""
    module, function = SCRIPTS[name].split(":")
    code = f"import sys; from {module} import {function}; sys.exit({function}())"
    return [sys.executable, "-c", code]


def image_user(dockerfile: Path) -> tuple[int, int]:
    """The uid and gid the image's last stage runs as (root when it names no USER)."""
    last_stage = re.split(r"^FROM ", dockerfile.read_text(), flags=re.MULTILINE)[-1]
    users = re.findall(r"^USER\s+(\S+)", last_stage, re.MULTILINE)
    if not users:
        return 0, 0
    uid, _, gid = users[-1].partition(":")
    return int(uid), int(gid or uid)


def has_passwd_entry(uid: int) -> bool:
    try:
        pwd.getpwuid(uid)
    except KeyError:
        return False
    return True


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def as_user(uid: int, gid: int, command: list[str]) -> list[str]:
    if os.geteuid() != 0 or not shutil.which("setpriv"):
        pytest.skip("starting a process as another uid needs root and setpriv (util-linux)")
    keep = "+dac_read_search"
    return [
        *("setpriv", f"--reuid={uid}", f"--regid={gid}", "--clear-groups"),
        *(f"--inh-caps={keep}", f"--ambient-caps={keep}", "--"),
        *command,
    ]


def container_env(**extra: str) -> dict[str, str]:
    """What a container runtime gives a uid it finds no passwd entry for: HOME=/, no user name
    variables (getpass reads those before it asks getpwuid)."""
    kept = {"PATH", "PYTHONPATH", "LANG", "LC_ALL"}
    env = {key: value for key, value in os.environ.items() if key in kept}
    return env | {"HOME": "/"} | extra


@dataclass
class Started:
    process: subprocess.Popen[bytes]
    output: Path

    def said(self) -> str:
        return self.output.read_text()


@contextlib.contextmanager
def started(command: list[str], env: dict[str, str], workdir: Path) -> Iterator[Started]:
    """Runs `command`, its output to a file; stops it at the end."""
    output = workdir / "output.log"
    with output.open("wb") as sink:
        process = subprocess.Popen(
            command, env=env, cwd=workdir, stdout=sink, stderr=subprocess.STDOUT
        )
        try:
            yield Started(process, output)
        finally:
            process.terminate()
            try:
                process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()


def wait_healthy(url: str, entrypoint: Started, seconds: float = 45) -> None:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline and entrypoint.process.poll() is None:
        try:
            with urllib.request.urlopen(url, timeout=2) as response:
                if response.status == 200:
                    return
        except OSError:
            time.sleep(0.3)
    ended = entrypoint.process.poll()
    why = f"exited with {ended}" if ended is not None else f"no 200 in {seconds:g} s"
    pytest.fail(f"{url}: the entry point {why}; it said:\n{entrypoint.said()[-4000:]}")


def wait_for_request(server: HttpApi, path: str, seconds: float = 15) -> bool:
    """Whether the operator's tick sent GET `path` (its first call) within `seconds`; kopf's
    own requests accept */*, the tick's client application/json."""
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        sent = [(m, url.split("?")[0], h.get("accept")) for m, url, h in server.requests]
        if ("GET", path, "application/json") in sent:
            return True
        time.sleep(0.2)
    return False


def readable_dir(tmp_path: Path) -> Path:
    """A working directory the image's user may read (pytest's tmp_path is root's 0700)."""
    workdir = tmp_path / "home"
    workdir.mkdir()
    for folder in (workdir, *workdir.parents):
        if folder == Path("/"):
            break
        folder.chmod(folder.stat().st_mode | 0o005)
    return workdir


def kubeconfig(server: HttpApi, into: Path) -> Path:
    config = {
        "apiVersion": "v1",
        "kind": "Config",
        "clusters": [{"name": "fake", "cluster": {"server": server.url}}],
        "users": [{"name": "operator", "user": {"token": TOKEN}}],
        "contexts": [{"name": "fake", "context": {"cluster": "fake", "user": "operator"}}],
        "current-context": "fake",
    }
    path = into / "kubeconfig"
    path.write_text(yaml.safe_dump(config))
    path.chmod(0o644)
    return path


def test_the_operator_image_user_has_no_passwd_entry_here():
    """The stories below prove something only where the image's uid is unknown, as in the image."""
    uid, _ = image_user(REPO / "Dockerfile")
    assert uid != 0, "the operator image must not run as root"
    assert not has_passwd_entry(uid), f"uid {uid} has a passwd entry on this machine"


def test_the_operator_entrypoint_serves_healthz_as_its_image_user(api: FakeApi, tmp_path: Path):
    uid, gid = image_user(REPO / "Dockerfile")
    workdir = readable_dir(tmp_path)
    health, metrics = free_port(), free_port()
    with HttpApi(api, TOKEN).running() as server:
        env = container_env(
            KUBECONFIG=str(kubeconfig(server, workdir)),
            HOPSCOPE_HEALTH_PORT=str(health),
            HOPSCOPE_METRICS_PORT=str(metrics),
            HOPSCOPE_TICK_SECONDS="1",
        )
        command = as_user(uid, gid, console_script("hopscope-operator"))
        with started(command, env, workdir) as operator:
            wait_healthy(f"http://127.0.0.1:{health}/healthz", operator)
            ticked = wait_for_request(server, "/apis/hopscope.dev/v1alpha1/connectivitychecks")
        said = operator.said()
        assert ticked, f"the operator never listed the checks; it said:\n{said[-4000:]}"
        assert "Traceback" not in said


def test_the_restricted_sidecar_serves_healthz_as_its_image_user(tmp_path: Path):
    """The probe image names no USER (root); its restricted sidecar runs as 65532 with no
    capability: the agent, with the sidecar's own arguments, answers the kubelet there too."""
    container = sidecar_container(restricted=True)
    security = container["securityContext"]
    uid, gid = security["runAsUser"], security["runAsGroup"]
    assert image_user(REPO / "probe-image" / "Dockerfile") == (0, 0)
    workdir = readable_dir(tmp_path)
    port = free_port()
    args = [
        arg.replace("$(POD_NAMESPACE)", "shop").replace("$(POD_NAME)", "gateway-0")
        for arg in container["args"]
    ]
    args[args.index("--listen") + 1] = f"127.0.0.1:{port}"
    token = workdir / "token"
    token.write_text("a-service-account-token")
    ca, _ = make_ca(workdir)
    for readable in (token, ca):
        readable.chmod(0o644)
    # The cluster's address is never dialled: no caller comes to be reviewed.
    args += ["--kube-api-url", "https://127.0.0.1:1", "--kube-token-file", str(token)]
    args += ["--kube-ca-file", str(ca)]
    command = as_user(uid, gid, [*console_script("hopscope"), *args])
    with started(command, container_env(), workdir) as agent:
        wait_healthy(f"http://127.0.0.1:{port}/healthz", agent)
    assert "Traceback" not in agent.said()
