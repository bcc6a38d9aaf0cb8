"""The two images, checked without a Docker engine: each installs one extra of pyproject.toml,
so each image's code must import with only that extra, and its entry point must be a command
that extra's install provides. (Building and running them is tests/e2e's job, on kind.)"""

from __future__ import annotations

import importlib
import json
import re
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
PYPROJECT = tomllib.loads((REPO / "pyproject.toml").read_text())
# Import names of the distributions each extra brings, and which image installs which extra.
PROVIDES = {
    "probe": {"dns", "pyroute2"},
    "operator": {"kopf", "kubernetes", "prometheus_client", "yaml"},
}
IMAGES = {
    "operator": (REPO / "Dockerfile", "hopscope_operator"),
    "probe": (REPO / "probe-image" / "Dockerfile", "hopscope_probe"),
}

# Imports every module of a package while the other extra's distributions are absent.
IMPORT_WITHOUT = """
import importlib, importlib.abc, pkgutil, sys
blocked = set(sys.argv[2].split(","))

class Absent(importlib.abc.MetaPathFinder):
    def find_spec(self, name, path, target=None):
        if name.split(".")[0] in blocked:
            raise ModuleNotFoundError(f"No module named {name!r} (not in this image)")
        return None

sys.meta_path.insert(0, Absent())
package = importlib.import_module(sys.argv[1])
for module in pkgutil.walk_packages(package.__path__, package.__name__ + "."):
    if not module.name.endswith(".__main__"):  # runs the CLI when imported
        importlib.import_module(module.name)
"""


def dockerfile(extra: str) -> str:
    return IMAGES[extra][0].read_text()


@pytest.mark.parametrize("extra", sorted(IMAGES))
def test_each_image_installs_its_own_extra(extra: str):
    assert re.search(rf'pip install [^\n]*"\.\[{extra}\]"', dockerfile(extra))
    assert set(PYPROJECT["project"]["optional-dependencies"]) >= set(PROVIDES)


@pytest.mark.parametrize("extra", sorted(IMAGES))
def test_each_images_code_imports_with_only_its_extra(extra: str):
    package = IMAGES[extra][1]
    others = set().union(*(names for name, names in PROVIDES.items() if name != extra))
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
    assert module.startswith(IMAGES[extra][1])
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
