"""Kubernetes label selectors: matchLabels and matchExpressions, matched against a label map.

The requirements of one selector are ANDed; an empty selector matches everything. Parsing lives in
`model` (it knows the field paths for errors); this module only matches and describes.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Hashable, Iterable, Mapping
from dataclasses import dataclass
from enum import StrEnum
from typing import Generic, TypeVar

T = TypeVar("T")


class Operator(StrEnum):
    IN = "In"
    NOT_IN = "NotIn"
    EXISTS = "Exists"
    DOES_NOT_EXIST = "DoesNotExist"


@dataclass(frozen=True, slots=True)
class Requirement:
    key: str
    operator: Operator
    values: frozenset[str] = frozenset()

    def matches(self, labels: Mapping[str, str]) -> bool:
        value = labels.get(self.key)
        match self.operator:
            case Operator.IN:
                return value is not None and value in self.values
            case Operator.NOT_IN:  # a missing key is "not in" any set, as in the API server
                return value is None or value not in self.values
            case Operator.EXISTS:
                return value is not None
            case Operator.DOES_NOT_EXIST:
                return value is None

    def __str__(self) -> str:
        values = ",".join(sorted(self.values))
        match self.operator:
            case Operator.IN:
                return f"{self.key} in ({values})"
            case Operator.NOT_IN:
                return f"{self.key} notin ({values})"
            case Operator.EXISTS:
                return self.key
            case Operator.DOES_NOT_EXIST:
                return f"!{self.key}"


@dataclass(frozen=True, slots=True)
class Selector:
    match_labels: tuple[tuple[str, str], ...] = ()
    match_expressions: tuple[Requirement, ...] = ()

    @property
    def empty(self) -> bool:
        return not self.match_labels and not self.match_expressions

    def matches(self, labels: Mapping[str, str]) -> bool:
        return all(labels.get(key) == value for key, value in self.match_labels) and all(
            requirement.matches(labels) for requirement in self.match_expressions
        )

    def __str__(self) -> str:
        """kubectl's `-l` syntax, so a reader can paste it; `{}` for the empty selector."""
        parts = [f"{key}={value}" for key, value in self.match_labels]
        parts += [str(requirement) for requirement in self.match_expressions]
        return ",".join(parts) if parts else "{}"


def show_labels(labels: Mapping[str, str]) -> str:
    return ",".join(f"{key}={value}" for key, value in sorted(labels.items())) or "no labels"


class Buckets(Generic[T]):
    """Items filed under one key their selector requires (a label pair the subject must carry),
    or under none (kept for every lookup): the candidates for a subject are then the few items
    filed under its keys, in the order they were added (an order a tier's verdict can rest on).
    Filing only prunes: the caller still matches each candidate's selector."""

    def __init__(self) -> None:
        self._everywhere: list[tuple[int, T]] = []
        self._by_key: dict[Hashable, list[tuple[int, T]]] = defaultdict(list)
        self._added = 0

    def add(self, item: T, key: Hashable | None) -> None:
        entry = (self._added, item)
        self._added += 1
        if key is None:
            self._everywhere.append(entry)
        else:
            self._by_key[key].append(entry)

    def candidates(self, keys: Iterable[Hashable]) -> list[T]:
        found = list(self._everywhere)
        for key in keys:
            found += self._by_key.get(key, ())
        found.sort(key=lambda entry: entry[0])
        return [item for _, item in found]
