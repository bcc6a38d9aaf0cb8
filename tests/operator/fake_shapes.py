"""The API call shapes the fake may serve: those hopscope was recorded making against a real
kube-apiserver (shared/kube-api/operator-calls.json), plus the reviewed few in
kube_api_shapes.yaml that have no recording, each with why its answer is known.

A shape is the method, the path template, the query's keys and the Accept and Content-Type
headers (those decide what a real server answers). A request of any other shape is one whose
answer nobody has seen a real server give, so HttpApi records it and the test fails.
"""

from __future__ import annotations

import functools
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import yaml

from .kube_recordings import operator_calls

EXTRA = Path(__file__).with_name("kube_api_shapes.yaml")
WATCH = frozenset({"watch", "allowWatchBookmarks", "resourceVersion"})  # kopf's watch query


@dataclass(frozen=True)
class Shape:
    id: str
    method: str
    path: re.Pattern[str]
    query: frozenset[str]
    accept: str | None
    content_type: str | None

    def matches(self, method: str, path: str, query: frozenset[str], headers: dict[str, str]):
        return (
            method == self.method
            and self.path.fullmatch(path) is not None
            and query == self.query
            and headers.get("accept") == self.accept
            and headers.get("content-type") == self.content_type
        )


def _pattern(template: str) -> re.Pattern[str]:
    """`/api/v1/namespaces/{namespace}/{statefulsets|daemonsets}/{name}` as a regex."""
    out = ""
    for part in re.split(r"(\{[^}]*\})", template):
        if part.startswith("{"):
            choices = part[1:-1].split("|")
            out += f"(?:{'|'.join(map(re.escape, choices))})" if len(choices) > 1 else "[^/]+"
        else:
            out += re.escape(part)
    return re.compile(out)


def _shapes(call: dict[str, Any]) -> list[Shape]:
    method, headers = call["method"], call.get("headers", {})
    # Prose paths ("/api, /apis" or "/api/v1/namespaces (list+watch), ..."): take each path.
    paths = re.findall(r"/[^\s,()]*", call["path"]) if call["path"].startswith("/") else []
    query = call.get("query", {})
    if "(watch)" in query or "list+watch" in call["path"]:  # kopf: a list, then its watch
        queries = [frozenset(), WATCH]
    else:
        queries = [frozenset(query)]
    accept, content_type = headers.get("Accept"), headers.get("Content-Type")
    return [
        Shape(call["id"], method, _pattern(path), keys, accept, content_type)
        for path in paths
        for keys in queries
    ]


def extra_calls() -> list[dict[str, Any]]:
    return list(yaml.safe_load(EXTRA.read_text())["shapes"])


class ShapeBook:
    """Names the shape of a request, None when it has none."""

    def __init__(self, calls: list[dict[str, Any]]) -> None:
        self.shapes = [shape for call in calls for shape in _shapes(call)]

    @classmethod
    @functools.cache
    def recorded(cls) -> ShapeBook:
        return cls(operator_calls() + extra_calls())

    def name(self, method: str, path: str, headers: dict[str, str]) -> str | None:
        parts = urlsplit(path)
        keys = frozenset(parse_qs(parts.query, keep_blank_values=True))
        found = (s for s in self.shapes if s.matches(method, parts.path, keys, headers))
        return next((shape.id for shape in found), None)


def describe(method: str, path: str, headers: dict[str, str]) -> str:
    accept, content_type = headers.get("accept"), headers.get("content-type")
    return f"{method} {path} (Accept: {accept}, Content-Type: {content_type})"
