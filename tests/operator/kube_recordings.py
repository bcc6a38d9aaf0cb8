"""Real kube-apiserver recordings (shared/kube-api, beside the repository): where they are,
their templates, and how a recorded answer is compared with ours (its placeholder rules)."""

from __future__ import annotations

import copy
import json
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

# CI clones the repository with `shared/` beside it; a worktree finds the same folder.
RECORDINGS = Path(__file__).resolve().parents[2].parent / "shared" / "kube-api"


def recordings() -> Path:
    if not (RECORDINGS / "scenarios").is_dir():
        # Not a skip: CI always has the recordings, so their absence is a broken checkout.
        pytest.fail(
            f"kube-apiserver recordings not found at {RECORDINGS} (clone `shared/` beside "
            "the repository)",
            pytrace=False,
        )
    return RECORDINGS


def scenarios() -> list[tuple[str, dict[str, Any]]]:
    """(name, scenario) in file order, e.g. ("05-label-selectors", {...})."""
    files = sorted((recordings() / "scenarios").glob("*.json"))
    return [(path.stem, json.loads(path.read_text())) for path in files]


def operator_calls() -> list[dict[str, Any]]:
    return list(json.loads((recordings() / "operator-calls.json").read_text())["calls"])


# ---- templates ----------------------------------------------------------------------------

_REF = re.compile(r"\{\{(\d+):([^}]*)\}\}")
_REPEAT = re.compile(r"<repeat:(.):(\d+)>")
_TOKEN = re.compile(r"<token:([^>]+)>")


def lookup(value: Any, path: str) -> Any:
    for part in path.split("."):
        value = value[int(part)] if isinstance(value, list) else value[part]
    return value


def expand(value: Any, answers: list[Any], tokens: dict[str, str]) -> Any:
    """`{{i:path}}`, `<repeat:C:N>`, `<token:NAME>` and `$fromExchange` bodies, expanded
    against our own earlier answers (`answers[i]` is exchange i's response body)."""
    if isinstance(value, dict):
        if "$fromExchange" in value:
            return _from_exchange(value, answers, tokens)
        return {k: expand(v, answers, tokens) for k, v in value.items()}
    if isinstance(value, list):
        return [expand(v, answers, tokens) for v in value]
    if isinstance(value, str):
        value = _REF.sub(lambda m: str(lookup(answers[int(m[1])], m[2])), value)
        value = _REPEAT.sub(lambda m: m[1] * int(m[2]), value)
        return _TOKEN.sub(lambda m: tokens[m[1]], value)
    return value


def _from_exchange(spec: dict[str, Any], answers: list[Any], tokens: dict[str, str]) -> Any:
    body = copy.deepcopy(answers[spec["$fromExchange"]])
    for path in spec.get("remove", []):
        *parents, last = path.split(".")
        lookup(body, ".".join(parents)).pop(last, None) if parents else body.pop(last, None)
    for path, new in spec.get("set", {}).items():
        *parents, last = path.split(".")
        (lookup(body, ".".join(parents)) if parents else body)[last] = expand(new, answers, tokens)
    return body


# ---- comparing ----------------------------------------------------------------------------


class _Missing:
    def __repr__(self) -> str:
        return "<missing>"


MISSING: Any = _Missing()
_STEP = re.compile(r"([^.\[\]]+)|\[(\*|\d+)\]")


def resolve(value: Any, path: str) -> Any:
    """The value at a compare path (`body.items[*].metadata.name`), MISSING where absent."""
    steps = [m[1] if m[1] is not None else f"[{m[2]}]" for m in _STEP.finditer(path)]
    return _resolve(value, steps)


def _resolve(value: Any, steps: list[str]) -> Any:
    if not steps or value is MISSING:
        return value
    step, rest = steps[0], steps[1:]
    if step == "[*]":
        return [_resolve(item, rest) for item in value] if isinstance(value, list) else value
    if step.startswith("["):
        index = int(step[1:-1])
        ok = isinstance(value, list) and index < len(value)
        return _resolve(value[index], rest) if ok else MISSING
    if isinstance(value, dict) and step in value:
        return _resolve(value[step], rest)
    return MISSING


def differences(expected: Any, actual: Any, at: str = "") -> list[str]:
    """Where `actual` breaks the recording's placeholder rules (empty: it matches)."""
    if expected is MISSING or actual is MISSING:
        return [] if expected is actual else [f"{at}: recorded {expected!r}, got {actual!r}"]
    if expected == "<any>":
        return []
    if expected == "<redacted>":
        ok = isinstance(actual, str) and actual != ""
        return [] if ok else [f"{at}: recorded a secret, got {actual!r}"]
    if isinstance(expected, str) and "<any>" in expected and isinstance(actual, str):
        pattern = ".*".join(re.escape(part) for part in expected.split("<any>"))
        ok = re.fullmatch(pattern, actual, re.DOTALL) is not None
        return [] if ok else [f"{at}: recorded {expected!r}, got {actual!r}"]
    if isinstance(expected, dict) and isinstance(actual, dict):
        keys = {k for k in expected if k != "x-recorder-note"} | set(actual)
        found: list[str] = []
        for key in sorted(keys):
            one, other = expected.get(key, MISSING), actual.get(key, MISSING)
            found += differences(one, other, f"{at}.{key}")
        return found
    if isinstance(expected, list) and isinstance(actual, list):
        if len(expected) != len(actual):
            return [f"{at}: recorded {len(expected)} items {expected!r}, got {actual!r}"]
        found = []
        for index, (one, other) in enumerate(zip(expected, actual, strict=True)):
            found += differences(one, other, f"{at}[{index}]")
        return found
    same = expected == actual and type(expected) is type(actual)
    return [] if same else [f"{at}: recorded {expected!r}, got {actual!r}"]


@dataclass
class Answer:
    """A response as the compare paths see it (recorded, or ours)."""

    status: int
    headers: dict[str, str]  # names in lower case
    bodyFormat: str  # json | text | empty | watch  (the recordings' name)
    body: Any
    stream: dict[str, Any] = field(default_factory=dict)

    def as_tree(self) -> dict[str, Any]:
        return {
            "status": self.status,
            "headers": self.headers,
            "bodyFormat": self.bodyFormat,
            "body": self.body,
            "stream": self.stream,
        }


def compare(exchange: dict[str, Any], ours: Answer) -> list[str]:
    recorded = exchange["response"]
    tree = {
        "status": recorded["status"],
        "headers": recorded.get("headers", {}),
        "bodyFormat": recorded.get("bodyFormat", MISSING),
        "body": recorded.get("body"),
        "stream": recorded.get("stream", {}),
    }
    found: list[str] = []
    for path in exchange["compare"]:
        found += differences(resolve(tree, path), resolve(ours.as_tree(), path), path)
    return found
