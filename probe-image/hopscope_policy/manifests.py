"""Kubernetes manifests from YAML files and folders: the objects a NetworkPolicy verdict needs.

Folders are read recursively (`*.yaml`, `*.yml`, `*.json`; hidden folders such as `.github` are
left out), a file may hold many documents, and `List` kinds (what `kubectl get -o yaml` prints)
are unpacked. Pods, Namespaces, NetworkPolicies and the pod templates of workloads (Deployment,
StatefulSet, … — one representative pod each, named after the workload, so a review works before
anything runs) are kept, and the kinds the policy families register (`families`: cluster-wide,
Cilium's, Calico's); other kinds are skipped (Calico's other kinds with a note), and YAML that
is no Kubernetes object (Helm values, CI config) is skipped with a note. Every error names the
file, the document (counted from 1, as a reader counts `---` sections) and the field.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from hopscope_policy import families, yamlload
from hopscope_policy.evaluate import PolicyIndex
from hopscope_policy.model import (
    DEFAULT_NAMESPACE,
    POD_TEMPLATES,
    FieldError,
    Namespace,
    Pod,
    Policy,
    parse_namespace,
    parse_pod,
    parse_policy,
    parse_workload,
)
from hopscope_policy.nodes import parse_node
from hopscope_policy.tiers import Node
from hopscope_probe.files import read_bounded

EXTENSIONS = frozenset({".yaml", ".yml", ".json"})
MAX_FILE = 32 * 1024 * 1024  # `kubectl get -A -o yaml` of a large cluster; PyYAML reads ~1 MB/s
POLICY_API_VERSION = "networking.k8s.io/v1"
CALICO_GROUP = "projectcalico.org/"
CALICO_CRD_GROUP = "crd.projectcalico.org/"  # the storage behind projectcalico.org/v3


class ManifestError(ValueError):
    """Bad input; the message names the file, the document and the field."""


@dataclass
class Manifests:
    pods: list[Pod] = field(default_factory=list)
    namespaces: list[Namespace] = field(default_factory=list)
    policies: list[Policy] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)  # what was skipped, and why
    nodes: list[Node] = field(default_factory=list)
    others: list[object] = field(default_factory=list)  # other policy families' objects

    def index(self) -> PolicyIndex:
        rules = families.rules(self.namespaces, self.policies, self.others, self.nodes)
        return PolicyIndex(self.pods, rules)


def load(paths: Iterable[str | Path]) -> Manifests:
    found = Manifests()
    first_seen: dict[tuple[str, str, str], str] = {}
    family_seen: dict[str, str] = {}  # family name -> where its first object is
    for file in _files(paths):
        for where, obj in _objects(file, found.notes):
            _add(found, first_seen, family_seen, where, obj)
    try:
        families.check_one_cni(family_seen)
    except families.CNIConflict as exc:
        places = "; ".join(f"{name}: {family_seen[name]}" for name in sorted(family_seen))
        raise ManifestError(f"{exc} ({places})") from None
    return found


def _files(paths: Iterable[str | Path]) -> list[Path]:
    """Every file once, even when it is named and also inside a named folder."""
    files: dict[Path, Path] = {}
    for raw in paths:
        path = Path(raw)
        if path.is_dir():
            for file in sorted(path.rglob("*")):
                hidden = any(part.startswith(".") for part in file.relative_to(path).parts)
                if file.suffix in EXTENSIONS and not hidden and file.is_file():
                    files.setdefault(file.resolve(), file)
        elif path.is_file():
            files.setdefault(path.resolve(), path)
        elif path.exists():  # a FIFO would block the read, /dev/zero never end it
            raise ManifestError(f"{path}: not a regular file or folder")
        else:
            raise ManifestError(f"{path}: no such file or folder")
    return list(files.values())


def _objects(file: Path, notes: list[str]) -> Iterator[tuple[str, Mapping[str, Any]]]:
    """Every Kubernetes object of a file; YAML that is no object (CI config, Helm values) is
    noted and skipped, so a whole repository folder can be reviewed."""
    try:
        text = read_bounded(file, MAX_FILE).decode("utf-8")
    except OSError as exc:
        raise ManifestError(f"{file}: cannot read: {exc.strerror or exc}") from None
    except UnicodeDecodeError as exc:
        raise ManifestError(
            f"{file}: cannot read: not UTF-8 ({exc.reason} at byte {exc.start})"
        ) from None
    number = 0
    try:
        for number, doc in enumerate(yamlload.load_all(text), start=1):
            if doc is None:  # an empty document, e.g. a trailing `---`
                continue
            where = f"{file}: document {number}"
            if not isinstance(doc, Mapping) or not isinstance(doc.get("kind"), str):
                notes.append(f"{where}: skipped: not a Kubernetes object (no kind)")
                continue
            yield from _unpack(doc, where, None)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        at = f"line {mark.line + 1}" if mark is not None else f"document {number + 1}"
        problem = getattr(exc, "problem", None) or exc
        raise ManifestError(f"{file}: {at}: not valid YAML: {problem}") from None


def _unpack(
    obj: Mapping[str, Any], where: str, implied_kind: str | None
) -> Iterator[tuple[str, Mapping[str, Any]]]:
    kind = obj.get("kind", implied_kind)  # items of a typed list (PodList) may omit their kind
    if not isinstance(kind, str) or not kind:
        raise ManifestError(f"{where}: kind: required")
    items = obj.get("items")
    if kind != "List" and not (kind.endswith("List") and isinstance(items, list)):
        yield where, {**obj, "kind": kind}
        return
    if not isinstance(items, list):
        raise ManifestError(f"{where}: items: expected the list's objects")
    item_kind = kind.removesuffix("List") or None
    for i, item in enumerate(items):
        if not isinstance(item, Mapping):
            raise ManifestError(f"{where}: items[{i}]: expected a Kubernetes object")
        yield from _unpack(item, f"{where}, items[{i}]", item_kind)


def _add(
    found: Manifests,
    first_seen: dict[tuple[str, str, str], str],
    family_seen: dict[str, str],
    where: str,
    obj: Mapping[str, Any],
) -> None:
    kind: str = obj["kind"]
    api_version = str(obj.get("apiVersion", ""))
    family_parser = families.parser(api_version, kind)
    if family_parser is None and api_version.startswith(CALICO_GROUP):
        # NetworkSets, HostEndpoints, staged policies …: a verdict they change says Unknown.
        found.notes.append(f"{where}: skipped Calico {kind}: not read")
        return
    if api_version.startswith(CALICO_CRD_GROUP):
        # Calico's storage form (names prefixed by tier, no defaults filled in) is no API.
        found.notes.append(
            f"{where}: skipped {kind} of {api_version}: Calico's storage form; "
            f"export it as projectcalico.org/v3 (kubectl get {kind.lower()}.projectcalico.org)"
        )
        return
    if (
        family_parser is None
        and kind == "NetworkPolicy"
        and obj.get("apiVersion", POLICY_API_VERSION) != POLICY_API_VERSION
    ):
        # Other projects reuse the kind name under their own API group: different semantics.
        found.notes.append(f"{where}: skipped NetworkPolicy of apiVersion {obj['apiVersion']}")
        return
    try:
        if family_parser is not None:
            parsed = family_parser(obj)
            found.others.append(parsed)
            family_seen.setdefault(families.family_of(parsed).name, f"{where} ({_title(obj)})")
            key = (kind, str(_namespace(obj) or ""), str(_name(obj)))
        elif kind == "Node":
            node = parse_node(obj)
            key = (kind, "", node.name)
            found.nodes.append(node)
        elif kind == "Pod" or kind in POD_TEMPLATES:
            pod = parse_pod(obj) if kind == "Pod" else parse_workload(obj, kind)
            key = ("pod", pod.ref.namespace, pod.ref.name)
            found.pods.append(pod)
        elif kind == "Namespace":
            namespace = parse_namespace(obj)
            key = (kind, "", namespace.name)
            found.namespaces.append(namespace)
        elif kind == "NetworkPolicy":
            policy = parse_policy(obj)
            key = (kind, policy.namespace, policy.name)
            found.policies.append(policy)
        else:
            return
    except FieldError as exc:
        raise ManifestError(f"{where} ({_title(obj)}): {exc}") from None
    if key in first_seen:
        raise ManifestError(f"{where}: {_title(obj)} is already given in {first_seen[key]}")
    first_seen[key] = f"{where} ({_title(obj)})"


def _name(obj: Mapping[str, Any]) -> object:
    meta = obj.get("metadata")
    return meta.get("name") if isinstance(meta, Mapping) else None


def _namespace(obj: Mapping[str, Any]) -> object:
    meta = obj.get("metadata")
    return meta.get("namespace") if isinstance(meta, Mapping) else None


def _title(obj: Mapping[str, Any]) -> str:
    """`Kind namespace/name` as far as the object says, for error messages."""
    kind = obj["kind"]
    meta = obj.get("metadata")
    name = meta.get("name") if isinstance(meta, Mapping) else None
    if not isinstance(name, str) or not name:
        return kind
    family_kind = families.parser(str(obj.get("apiVersion", "")), kind) is not None
    if kind in ("Namespace", "Node") or (family_kind and not meta.get("namespace")):
        return f"{kind} {name}"
    return f"{kind} {meta.get('namespace') or DEFAULT_NAMESPACE}/{name}"
