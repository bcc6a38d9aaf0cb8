"""Calico's selector expression language (projectcalico.org/v3 `selector`, `namespaceSelector`,
`notSelector`): a small recursive-descent parser into a predicate over a label map. Bad syntax is
a FieldError naming the field, so a typo never widens a selector (issue 14).

Semantics as Calico's own parser and evaluator (libcalico-go lib/selector) implement them:
- `k == 'v'`, `k in {…}`, `has(k)`, `contains`, `starts with`, `ends with` need the label;
  `k != 'v'` and `k not in {…}` also match when the label is absent (so does `!has(k)`).
- `all()` and `global()` match every label map; `global()` in a rule's `namespaceSelector`
  moves the rule's scope to non-namespaced resources (host endpoints, global network sets),
  which the caller decides from `is_global`.
- `has(` and `all(`/`global(` are written without a space before `(`; whitespace is spaces and
  tabs only; a set may be empty and may end with a comma.
"""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass

from hopscope_policy.model import FieldError

Labels = Mapping[str, str]
Predicate = Callable[[Labels], bool]

_KEY = re.compile(r"[A-Za-z0-9_./-]{1,512}")
_WHITESPACE = " \t"
_CALLS = ("has(", "all(", "global(")
_OPERATORS = ("==", "!=", "&&", "||")


@dataclass(frozen=True)
class CalicoSelector:
    text: str
    # The predicate is the text's meaning: two loads' selectors compare (and hash) by the text,
    # so `diff` sees an unchanged rule as the same content.
    matches: Predicate = dataclasses.field(compare=False)
    keys: frozenset[str] = frozenset()  # every label key the selector reads
    is_global: bool = False  # `global()` appears: the scope is non-namespaced resources

    def __str__(self) -> str:
        return self.text


def parse_selector(text: object, field: str) -> CalicoSelector:
    if not isinstance(text, str):
        raise FieldError(field, "must be a selector string")
    tokens = _tokenize(text, field)
    if not tokens:
        return CalicoSelector(text, lambda _labels: True)  # empty selects everything
    parser = _Parser(tokens, field, text)
    predicate = parser.expression()
    if parser.pos != len(tokens):
        raise FieldError(field, f"unexpected {tokens[parser.pos]!r} in selector {text!r}")
    return CalicoSelector(text, predicate, frozenset(parser.keys), parser.is_global)


def _tokenize(text: str, field: str) -> list[str]:
    """Tokens as Calico's tokenizer cuts them: strings keep their quote as the first character,
    `has(k)` is one token `has(k)`, operator words after a label are one token each."""
    tokens: list[str] = []
    pos = 0
    while True:
        while pos < len(text) and text[pos] in _WHITESPACE:
            pos += 1
        if pos == len(text):
            return tokens
        rest = text[pos:]
        after_label = bool(tokens) and _is_key(tokens[-1])
        if rest[0] in "'\"":
            end = text.find(rest[0], pos + 1)
            if end == -1:
                raise FieldError(field, f"unterminated string in selector {text!r}")
            tokens.append(text[pos : end + 1])
            pos = end + 1
        elif rest[:2] in _OPERATORS:
            tokens.append(rest[:2])
            pos += 2
        elif rest[0] in "!(){},":
            tokens.append(rest[0])
            pos += 1
        elif after_label and (word := _operator_word(rest)) is not None:
            tokens.append(" ".join(word.split()))
            pos += len(word)
        elif not after_label and (call := _call(rest, field, text)) is not None:
            tokens.append(call[0])
            pos += call[1]
        elif (key := _KEY.match(rest)) is not None:
            tokens.append(key.group())
            pos += key.end()
        else:
            raise FieldError(field, f"cannot parse selector {text!r} at offset {pos}")


def _operator_word(rest: str) -> str | None:
    found = re.match(r"contains|starts[ \t]*with|ends[ \t]*with|not[ \t]*in|in", rest)
    return found.group() if found else None


def _call(rest: str, field: str, text: str) -> tuple[str, int] | None:
    """`has(key)`, `all()` or `global()` at the start of `rest`: (token, length)."""
    name = next((call for call in _CALLS if rest.startswith(call)), None)
    if name is None:
        return None
    found = re.match(rf"{re.escape(name)}[ \t]*({_KEY.pattern})?[ \t]*\)", rest)
    if found is None or (name == "has(") != bool(found.group(1)):
        raise FieldError(field, f"malformed {name}…) in selector {text!r}")
    token = f"has({found.group(1)})" if name == "has(" else name + ")"
    return token, found.end()


def _is_key(token: str) -> bool:
    return _KEY.fullmatch(token) is not None and token not in ("!", "in", "not in")


class _Parser:
    def __init__(self, tokens: list[str], field: str, text: str) -> None:
        self.tokens = tokens
        self.field = field
        self.text = text
        self.pos = 0
        self.keys: set[str] = set()
        self.is_global = False

    def _peek(self) -> str | None:
        return self.tokens[self.pos] if self.pos < len(self.tokens) else None

    def _take(self, expected: str | None = None) -> str:
        token = self._peek()
        if token is None or (expected is not None and token != expected):
            want = repr(expected) if expected else "more input"
            got = f"got {token!r} in selector {self.text!r}"
            raise FieldError(self.field, f"expected {want}, {got}")
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
        if token in ("all()", "global()"):
            self._take()
            self.is_global |= token == "global()"
            return lambda _labels: True
        if token is not None and token.startswith("has(") and token.endswith(")"):
            key = self._take()[4:-1]
            self.keys.add(key)
            return lambda labels: key in labels
        return self._comparison()

    def _key(self) -> str:
        token = self._take()
        if not _is_key(token):
            raise FieldError(
                self.field, f"expected a label key, got {token!r} in selector {self.text!r}"
            )
        self.keys.add(token)
        return token

    def _value(self) -> str:
        token = self._take()
        if token[0] not in "'\"":
            raise FieldError(
                self.field, f"expected a quoted value, got {token!r} in selector {self.text!r}"
            )
        return token[1:-1]

    def _comparison(self) -> Predicate:
        key = self._key()
        op = self._take()
        if op in ("in", "not in"):
            values = self._set()
            if op == "in":
                return lambda labels: key in labels and labels[key] in values
            return lambda labels: key not in labels or labels[key] not in values
        tests: dict[str, Callable[[str, str], bool]] = {
            "==": lambda have, want: have == want,
            "contains": lambda have, want: want in have,
            "starts with": lambda have, want: have.startswith(want),
            "ends with": lambda have, want: have.endswith(want),
        }
        if op == "!=":
            value = self._value()
            return lambda labels: labels.get(key) != value  # an absent label matches
        if op in tests:
            value, test = self._value(), tests[op]
            return lambda labels: key in labels and test(labels[key], value)
        raise FieldError(
            self.field, f"unknown selector operator {op!r} after {key!r} in {self.text!r}"
        )

    def _set(self) -> frozenset[str]:
        self._take("{")
        values: set[str] = set()
        while self._peek() not in ("}", None):
            values.add(self._value())
            if self._peek() != ",":
                break
            self._take()
        self._take("}")
        return frozenset(values)
