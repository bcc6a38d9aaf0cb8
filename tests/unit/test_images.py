"""The two images, checked without a Docker engine: each installs one extra of pyproject.toml,
so each image's code must import with only that extra, and its entry point must be a command
that extra's install provides. (Building and running them is tests/e2e's job, on kind.) The
kubectl plugin, installed with pip, is held to its own extra the same way."""

from __future__ import annotations

import importlib
import json
import os
import re
import shutil
import subprocess
import sys
import tomllib
from importlib.metadata import packages_distributions
from pathlib import Path

import pytest
from setuptools import find_packages

REPO = Path(__file__).resolve().parents[2]
PYPROJECT = tomllib.loads((REPO / "pyproject.toml").read_text())


def _normal(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def imports_of(requirements: list[str]) -> set[str]:
    """The top-level modules the distributions named in `requirements` install."""
    wanted = {_normal(re.split(r"[<>=!~;\[ ]", r, maxsplit=1)[0]) for r in requirements}
    return {
        module
        for module, distributions in packages_distributions().items()
        if any(_normal(d) in wanted for d in distributions)
    }


def requirements(extra: str) -> list[str]:
    """An extra's requirements, with the other extras it names (hopscope[x]) expanded."""
    found: list[str] = []
    for requirement in PYPROJECT["project"]["optional-dependencies"][extra]:
        other = re.fullmatch(r"hopscope\[(\w+)\]", requirement)
        found += requirements(other[1]) if other else [requirement]
    return found


# What each extra (but dev) adds to the base dependencies, as import names.
BASE = imports_of(PYPROJECT["project"]["dependencies"])
PROVIDES = {
    extra: imports_of(requirements(extra)) - BASE for extra in ("probe", "kubectl", "operator")
}
# Each image's Dockerfile and the packages of ours it runs (the first holds its entry point).
IMAGES = {
    "operator": (REPO / "Dockerfile", ("hopscope_operator", "hopscope_policy")),
    "probe": (REPO / "probe-image" / "Dockerfile", ("hopscope_probe", "hopscope_policy")),
}

# Makes the modules listed in argv[2] absent, as where their distributions are not installed.
WITHOUT = """
import importlib, importlib.abc, pkgutil, sys
blocked = set(sys.argv[2].split(","))

class Absent(importlib.abc.MetaPathFinder):
    def find_spec(self, name, path, target=None):
        if name.split(".")[0] in blocked:
            raise ModuleNotFoundError(f"No module named {name!r} (not in this image)")
        return None

sys.meta_path.insert(0, Absent())
"""
# Imports every module of the package argv[1] while the other extras' distributions are absent.
IMPORT_WITHOUT = (
    WITHOUT
    + """
package = importlib.import_module(sys.argv[1])
for module in pkgutil.walk_packages(package.__path__, package.__name__ + "."):
    if not module.name.endswith(".__main__"):  # runs the CLI when imported
        importlib.import_module(module.name)
"""
)


# The image's CLI, with hopscope's own packages found only in the directory argv[1].
RUN_CLI_OF_IMAGE = """
from importlib.machinery import PathFinder

class OnlyInImage(importlib.abc.MetaPathFinder):
    def find_spec(self, name, path, target=None):
        if name.split(".")[0] not in ("hopscope_probe", "hopscope_policy", "hopscope_operator"):
            return None
        spec = PathFinder.find_spec(name, path or [sys.argv[1]])
        if spec is None:
            raise ModuleNotFoundError(f"No module named {name!r} (not in this image)")
        return spec

sys.meta_path.insert(0, OnlyInImage())
from hopscope_probe.cli import main
sys.exit(main(sys.argv[3:]))
"""


def build_context(extra: str, into: Path) -> None:
    """What the COPY lines of the image's build stage put in its working directory."""
    build = re.split(r"^FROM ", dockerfile(extra), flags=re.MULTILINE)[1]
    for line in re.findall(r"^COPY (?!--)(.+)$", build, re.MULTILINE):
        *sources, destination = line.split()
        for source in map(REPO.joinpath, sources):
            target = into / destination
            if destination.endswith("/") or len(sources) > 1:
                target /= source.name
            if source.is_dir():
                shutil.copytree(source, target, dirs_exist_ok=True)
            else:
                target.parent.mkdir(parents=True, exist_ok=True)
                shutil.copy(source, target)


def install(context: Path, site: Path) -> None:
    """The Python modules of the packages pip installs from `context`, as pyproject finds them."""
    find = PYPROJECT["tool"]["setuptools"]["packages"]["find"]
    for where in find["where"]:
        for package in find_packages(context / where, include=find["include"]):
            relative = package.replace(".", "/")
            (site / relative).mkdir(parents=True)
            for module in (context / where / relative).glob("*.py"):
                shutil.copy(module, site / relative)


def dockerfile(extra: str) -> str:
    return IMAGES[extra][0].read_text()


@pytest.mark.parametrize("extra", sorted(IMAGES))
def test_each_image_installs_its_own_extra(extra: str):
    assert re.search(rf'pip install [^\n]*"\.\[{extra}\]"', dockerfile(extra))
    assert PROVIDES[extra], f"the {extra} extra installs nothing importable here"


@pytest.mark.parametrize(
    ("extra", "package"),
    [(extra, package) for extra in sorted(IMAGES) for package in IMAGES[extra][1]],
)
def test_each_images_code_imports_with_only_its_extra(extra: str, package: str):
    others = set().union(*PROVIDES.values()) - PROVIDES[extra]
    run = subprocess.run(
        [sys.executable, "-c", IMPORT_WITHOUT, package, ",".join(sorted(others))],
        capture_output=True,
        text=True,
        check=False,
    )
    assert run.returncode == 0, run.stderr


@pytest.mark.parametrize("extra", sorted(IMAGES))
def test_each_images_entry_point_is_a_command_of_the_package(extra: str):
    [entry] = re.findall(r"^ENTRYPOINT (\[.*\])$", dockerfile(extra), re.MULTILINE)
    command = json.loads(entry)[0]
    target = PYPROJECT["project"]["scripts"][command]
    module, function = target.split(":")
    assert module.startswith(IMAGES[extra][1][0])
    assert callable(getattr(importlib.import_module(module), function))


def test_the_import_check_does_catch_a_missing_distribution():
    # The finder above is what makes the test meaningful: a package that needs a blocked
    # distribution must fail to import.
    run = subprocess.run(
        [sys.executable, "-c", IMPORT_WITHOUT, "hopscope_operator", "kopf"],
        capture_output=True,
        text=True,
        check=False,
    )
    assert run.returncode != 0 and "not in this image" in run.stderr


def test_hopscope_policy_runs_in_the_probe_image(tmp_path: Path):
    # The CLI's policy command is hopscope_policy's: from the files the probe image copies,
    # with only the probe extra, it must still review manifests.
    build_context("probe", tmp_path / "src")
    install(tmp_path / "src", tmp_path / "site")
    (tmp_path / "policy.yaml").write_text(
        "apiVersion: networking.k8s.io/v1\nkind: NetworkPolicy\n"
        "metadata: {name: deny, namespace: shop}\n"
        "spec: {podSelector: {}, policyTypes: [Ingress]}\n---\n"
        "apiVersion: v1\nkind: Pod\nmetadata: {name: web, namespace: shop}\n"
        "spec: {containers: [{name: web, image: web}]}\nstatus: {podIP: 10.0.0.2}\n"
    )
    blocked = ",".join(sorted(set().union(*PROVIDES.values()) - PROVIDES["probe"]))
    policy = ["policy", "--manifests", str(tmp_path / "policy.yaml"), "--from", "10.0.0.1",
              "--to", "shop/web", "--port", "80"]  # fmt: skip
    run = subprocess.run(
        [sys.executable, "-c", WITHOUT + RUN_CLI_OF_IMAGE, str(tmp_path / "site"), blocked,
         *policy],
        capture_output=True,
        text=True,
        check=False,
    )  # fmt: skip
    assert run.returncode == 1, run.stderr  # denied, with the policy that isolates web
    assert "shop/deny" in run.stdout


def test_the_probe_image_carries_no_operator_code(tmp_path: Path):
    build_context("probe", tmp_path / "src")
    install(tmp_path / "src", tmp_path / "site")
    installed = {path.name for path in (tmp_path / "site").iterdir()}
    assert installed == {"hopscope_probe", "hopscope_policy"}
    assert not list((tmp_path / "src").rglob("hopscope_operator"))


RUN_PLUGIN = """
from hopscope_operator.kubectl import plugin as kubectl
try:
    kubectl.kube_api()  # what talking to the API server needs, imported on first use
except kubectl.UsageError:
    pass  # no kubeconfig here
"""


def test_the_kubectl_plugin_runs_with_what_the_install_notes_say_to_install(tmp_path: Path):
    from hopscope_operator.install.chart import NOTES

    install = re.search(r"pip install '?hopscope(\[(\w+)\])?", NOTES)
    assert install, "the notes no longer tell how to install the plugin"
    blocked = set().union(*PROVIDES.values()) - PROVIDES.get(install[2] or "", set())
    env = {**os.environ, "KUBECONFIG": str(tmp_path / "absent")}
    env.pop("KUBERNETES_SERVICE_HOST", None)  # not in a cluster either
    run = subprocess.run(
        [sys.executable, "-c", WITHOUT + RUN_PLUGIN, "", ",".join(sorted(blocked))],
        capture_output=True,
        text=True,
        check=False,
        env=env,
    )
    assert run.returncode == 0, run.stderr
