"""Calico's selector expression language (projectcalico.org/v3 `selector`, `namespaceSelector`):
a small recursive-descent parser into a predicate over a label map. Bad syntax is a FieldError
naming the field, so a typo never widens a selector (issue 14)."""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass

from hopscope_policy.model import FieldError

Labels = Mapping[str, str]
Predicate = Callable[[Labels], bool]

# Calico label keys: optional DNS prefix, '/', name; values are quoted strings.
_TOKEN = re.compile(
    r"\s*(?:(?P<str>'[^']*'|\"[^\"]*\")|(?P<op>==|!=|&&|\|\||[!(){},])"
    r"|(?P<word>[A-Za-z0-9_./-]+))"
)


@dataclass(frozen=True)
class CalicoSelector:
    """A parsed selector; `is_global` marks `global()` (matches only non-namespaced endpoints)."""

    text: str
    matches: Predicate
    is_global: bool = False


def parse_selector(text: object, field: str) -> CalicoSelector:
    if not isinstance(text, str):
        raise FieldError(field, "must be a selector string")
    tokens = _tokenize(text, field)
    if not tokens:
        return CalicoSelector(text, lambda _labels: True)  # empty selects everything
    if tokens == ["global", "(", ")"]:
        return CalicoSelector(text, lambda _labels: True, is_global=True)
    parser = _Parser(tokens, field)
    predicate = parser.expression()
    if parser.pos != len(tokens):
        raise FieldError(field, f"unexpected {tokens[parser.pos]!r} in selector {text!r}")
    return CalicoSelector(text, predicate)


def _tokenize(text: str, field: str) -> list[str]:
    tokens: list[str] = []
    pos = 0
    while pos < len(text):
        if text[pos:].strip() == "":
            break
        found = _TOKEN.match(text, pos)
        if found is None:
            raise FieldError(field, f"cannot parse selector {text!r} at offset {pos}")
        tokens.append(found.group(found.lastgroup or "word"))
        pos = found.end()
    return tokens


class _Parser:
    def __init__(self, tokens: list[str], field: str) -> None:
        self.tokens = tokens
        self.field = field
        self.pos = 0

    def _peek(self, ahead: int = 0) -> str | None:
        at = self.pos + ahead
        return self.tokens[at] if at < len(self.tokens) else None

    def _take(self, expected: str | None = None) -> str:
        token = self._peek()
        if token is None or (expected is not None and token != expected):
            want = repr(expected) if expected else "more input"
            raise FieldError(self.field, f"expected {want}, got {token!r} in selector")
        self.pos += 1
        return token

    def expression(self) -> Predicate:
        terms = [self._conjunction()]
        while self._peek() == "||":
            self._take()
            terms.append(self._conjunction())
        return terms[0] if len(terms) == 1 else (lambda labels: any(t(labels) for t in terms))

    def _conjunction(self) -> Predicate:
        terms = [self._unary()]
        while self._peek() == "&&":
            self._take()
            terms.append(self._unary())
        return terms[0] if len(terms) == 1 else (lambda labels: all(t(labels) for t in terms))

    def _unary(self) -> Predicate:
        token = self._peek()
        if token == "!":
            self._take()
            inner = self._unary()
            return lambda labels: not inner(labels)
        if token == "(":
            self._take()
            inner = self.expression()
            self._take(")")
            return inner
        if token in ("all", "has") and self._peek(1) == "(":
            return self._call()
        return self._comparison()

    def _call(self) -> Predicate:
        name = self._take()
        self._take("(")
        if name == "all":
            self._take(")")
            return lambda _labels: True
        key = self._key()
        self._take(")")
        return lambda labels: key in labels

    def _key(self) -> str:
        token = self._take()
        if token[0] in "'\"" or not re.fullmatch(r"[A-Za-z0-9_./-]+", token):
            raise FieldError(self.field, f"expected a label key, got {token!r} in selector")
        return token

    def _value(self) -> str:
        token = self._take()
        if token[0] not in "'\"":
            raise FieldError(self.field, f"expected a quoted value, got {token!r} in selector")
        return token[1:-1]

    def _comparison(self) -> Predicate:
        key = self._key()
        op = self._take()
        if op in ("==", "!="):
            value = self._value()
            if op == "==":
                return lambda labels: labels.get(key) == value
            return lambda labels: labels.get(key) != value  # true when the label is absent
        negate = op == "not"
        if negate:
            op = self._take()
        if op == "in":
            values = self._set()
            if negate:
                return lambda labels: labels.get(key) not in values
            return lambda labels: labels.get(key) in values
        if op == "contains" and not negate:
            part = self._value()
            return lambda labels: key in labels and part in labels[key]
        if op in ("starts", "ends") and not negate:
            self._take("with")
            part = self._value()
            if op == "starts":
                return lambda labels: key in labels and labels[key].startswith(part)
            return lambda labels: key in labels and labels[key].endswith(part)
        raise FieldError(self.field, f"unknown selector operator {op!r} after {key!r}")

    def _set(self) -> frozenset[str]:
        self._take("{")
        values: set[str] = set()
        if self._peek() != "}":
            values.add(self._value())
            while self._peek() == ",":
                self._take()
                values.add(self._value())
        self._take("}")
        return frozenset(values)
