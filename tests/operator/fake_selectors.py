"""Label selectors, field selectors and ObjectMeta limits as kube-apiserver v1.36 applies them.

Pure functions for the in-memory fake API server. The behaviour and every message are those of
k8s.io/apimachinery (`labels.Parse`, `fields.ParseSelector`, `api/validate/content`,
`api/validation.ValidateObjectMetaAccessor`) and of the Pod / custom-resource field label
conversions, as the recordings in ../shared/kube-api (scenarios 05, 06, 08) show them.
A `SelectorError`'s `str()` is the `message` of the 400 Status the real server sends.

Deliberate differences from the real server, none of which a recording shows:
- Go iterates maps in random order, so with several bad labels or annotations the real order of
  causes varies from call to call; here they come in the dict's order.
- `metadata_causes` covers ObjectMeta only (name, generateName, namespace, generation, labels,
  annotations, finalizers; not ownerReferences or managedFields). For a custom resource the
  "some validation rules were not checked" cause is appended after the metadata causes; the
  real server puts the schema's own causes in between.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable
from dataclasses import dataclass

__all__ = [
    "SelectorError",
    "invalid_message",
    "metadata_causes",
    "parse_field_selector",
    "parse_label_selector",
]


class SelectorError(Exception):
    """A selector the API server refuses with 400 BadRequest; str() is the Status message."""


# --- Go formatting ------------------------------------------------------------------------------


def go_quote(s: str) -> str:
    """Go's strconv.Quote (what `%q` prints for a string)."""
    out = ['"']
    for ch in s:
        code = ord(ch)
        if ch in ('"', "\\"):
            out.append("\\" + ch)
        elif ch in _GO_ESCAPES:
            out.append(_GO_ESCAPES[ch])
        elif ch.isprintable():  # Go's unicode.IsPrint: graphic runes and the ASCII space
            out.append(ch)
        elif code < 0x80:
            out.append(f"\\x{code:02x}")
        elif code < 0x10000:
            out.append(f"\\u{code:04x}")
        else:
            out.append(f"\\U{code:08x}")
    out.append('"')
    return "".join(out)


_GO_ESCAPES = {
    "\a": "\\a",
    "\b": "\\b",
    "\f": "\\f",
    "\n": "\\n",
    "\r": "\\r",
    "\t": "\\t",
    "\v": "\\v",
}


def _aggregate(messages: Iterable[str]) -> str:
    """utilerrors.Aggregate.Error() over field errors: duplicates dropped, several in [a, b]."""
    seen: list[str] = []
    for msg in messages:
        if msg not in seen:
            seen.append(msg)
    if len(seen) == 1:
        return seen[0]
    return "[" + ", ".join(seen) + "]"


# --- validation messages (api/validate/content and util/validation) --------------------------


def _regex_error(msg: str, regex: str, *examples: str) -> str:
    if not examples:
        return f"{msg} (regex used for validation is '{regex}')"
    shown = " or ".join(f"'{e}', " for e in examples)
    return f"{msg} (e.g. {shown}regex used for validation is '{regex}')"


def _max_len_bytes(n: int) -> str:  # content.MaxLenError: label keys, label values
    return f"must be no more than {n} bytes"


def _max_len_chars(n: int) -> str:  # util/validation.MaxLenError: object names
    return f"must be no more than {n} characters"


_LABEL_KEY_FMT = "([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9]"
_LABEL_KEY_MSG = (
    "must consist of alphanumeric characters, '-', '_' or '.', "
    "and must start and end with an alphanumeric character"
)
_LABEL_KEY_RE = re.compile(_LABEL_KEY_FMT)
_LABEL_VALUE_FMT = "(" + _LABEL_KEY_FMT + ")?"
_LABEL_VALUE_MSG = (
    "a valid label must be an empty string or consist of alphanumeric characters, '-', '_' or "
    "'.', and must start and end with an alphanumeric character"
)
_LABEL_VALUE_RE = re.compile(_LABEL_VALUE_FMT)
_DNS1123_LABEL_FMT = "[a-z0-9]([-a-z0-9]*[a-z0-9])?"
_DNS1123_LABEL_MSG = (
    "a lowercase RFC 1123 label must consist of lower case alphanumeric characters or '-', "
    "and must start and end with an alphanumeric character"
)
_DNS1123_LABEL_RE = re.compile(_DNS1123_LABEL_FMT)
_DNS1123_SUBDOMAIN_FMT = _DNS1123_LABEL_FMT + "(\\." + _DNS1123_LABEL_FMT + ")*"
_DNS1123_SUBDOMAIN_MSG = (
    "a lowercase RFC 1123 subdomain must consist of lower case alphanumeric characters, '-' or "
    "'.', and must start and end with an alphanumeric character"
)
_DNS1123_SUBDOMAIN_RE = re.compile(_DNS1123_SUBDOMAIN_FMT)
_DNS1035_LABEL_FMT = "[a-z]([-a-z0-9]*[a-z0-9])?"
_DNS1035_LABEL_MSG = (
    "a DNS-1035 label must consist of lower case alphanumeric characters or '-', start with an "
    "alphabetic character, and end with an alphanumeric character"
)
_DNS1035_LABEL_RE = re.compile(_DNS1035_LABEL_FMT)


def _full(regex: re.Pattern[str], value: str) -> bool:
    # Go's regexp with ^...$ (no multiline): `$` does not accept a trailing newline, fullmatch
    # neither.
    return regex.fullmatch(value) is not None


def _subdomain_errors(value: str, max_len: Callable[[int], str]) -> list[str]:
    errs = []
    if len(value.encode()) > 253:
        errs.append(max_len(253))
    if not _full(_DNS1123_SUBDOMAIN_RE, value):
        errs.append(_regex_error(_DNS1123_SUBDOMAIN_MSG, _DNS1123_SUBDOMAIN_FMT, "example.com"))
    return errs


def _dns1123_label_errors(value: str) -> list[str]:
    errs = []
    if len(value.encode()) > 63:
        errs.append(_max_len_chars(63))
    if not _full(_DNS1123_LABEL_RE, value):
        if _full(_DNS1123_SUBDOMAIN_RE, value):
            errs.append("must not contain dots")
        else:
            errs.append(_regex_error(_DNS1123_LABEL_MSG, _DNS1123_LABEL_FMT, "my-name", "123-abc"))
    return errs


def _dns1035_label_errors(value: str) -> list[str]:
    errs = []
    if len(value.encode()) > 63:
        errs.append(_max_len_chars(63))
    if not _full(_DNS1035_LABEL_RE, value):
        errs.append(_regex_error(_DNS1035_LABEL_MSG, _DNS1035_LABEL_FMT, "my-name", "abc-123"))
    return errs


def label_key_errors(key: str) -> list[str]:
    """content.IsLabelKey (also what IsQualifiedName is now)."""
    errs: list[str] = []
    parts = key.split("/")
    if len(parts) == 1:
        name = parts[0]
    elif len(parts) == 2:
        prefix, name = parts
        if not prefix:
            errs.append("prefix part must be non-empty")
        else:
            errs.extend("prefix part " + m for m in _subdomain_errors(prefix, _max_len_bytes))
    else:
        return [
            "a valid label key "
            + _regex_error(_LABEL_KEY_MSG, _LABEL_KEY_FMT, "MyName", "my.name", "123-abc")
            + " with an optional DNS subdomain prefix and '/' (e.g. 'example.com/MyName')"
        ]
    if not name:
        errs.append("name part must be non-empty")
    elif len(name.encode()) > 63:
        errs.append("name part " + _max_len_bytes(63))
    if not _full(_LABEL_KEY_RE, name):
        errs.append(
            "name part "
            + _regex_error(_LABEL_KEY_MSG, _LABEL_KEY_FMT, "MyName", "my.name", "123-abc")
        )
    return errs


def label_value_errors(value: str) -> list[str]:
    """content.IsLabelValue."""
    errs = []
    if len(value.encode()) > 63:
        errs.append(_max_len_bytes(63))
    if not _full(_LABEL_VALUE_RE, value):
        errs.append(
            _regex_error(_LABEL_VALUE_MSG, _LABEL_VALUE_FMT, "MyValue", "my_value", "12345")
        )
    return errs


# --- label selectors (labels.Parse) -------------------------------------------------------------

# Token kinds. `in`/`notin` read as identifiers wherever a value is expected.
_ERROR, _EOS, _CLOSE, _COMMA, _NOT, _DEQ, _EQ, _GT, _IDENT, _IN, _LT, _NEQ, _NOTIN, _OPEN = range(
    14
)
_KEYWORDS = {
    ")": _CLOSE,
    ",": _COMMA,
    "!": _NOT,
    "==": _DEQ,
    "=": _EQ,
    ">": _GT,
    "in": _IN,
    "<": _LT,
    "!=": _NEQ,
    "notin": _NOTIN,
    "(": _OPEN,
}
_SPECIAL = frozenset(b"=!(),><")
_WHITESPACE = frozenset(b" \t\r\n")
_OPERATOR_NAMES = "in, notin, =, ==, !=, gt, lt"  # selection operators, in Go's listed order


def _lex(selector: str) -> list[tuple[int, str]]:
    """The label-selector lexer, byte for byte.

    Go reads a 0 byte as "nothing left", so a NUL in the middle ends a token (and ends the
    selector if it is where a token would start), as it does on the real server.
    """
    data = selector.encode()
    pos = 0
    tokens: list[tuple[int, str]] = []

    def read() -> int:
        nonlocal pos
        if pos < len(data):
            pos += 1
            return data[pos - 1]
        return 0

    while True:
        ch = read()
        while ch in _WHITESPACE:
            ch = read()
        if ch == 0:
            tokens.append((_EOS, ""))
            return tokens
        pos -= 1
        buf = bytearray()
        if ch in _SPECIAL:
            last: tuple[int, str] | None = None
            while True:
                c = read()
                if c == 0:
                    break
                if c not in _SPECIAL:
                    pos -= 1
                    break
                buf.append(c)
                kind = _KEYWORDS.get(buf.decode())
                if kind is not None:
                    last = (kind, buf.decode())
                elif last is not None:
                    pos -= 1
                    break
            tokens.append(last or (_ERROR, f"error expected: keyword found '{buf.decode()}'"))
        else:
            while True:
                c = read()
                if c == 0:
                    break
                if c in _SPECIAL or c in _WHITESPACE:
                    pos -= 1
                    break
                buf.append(c)
            text = buf.decode()
            tokens.append((_KEYWORDS.get(text, _IDENT), text))


def _parse_int64(s: str) -> int | None:
    if not re.fullmatch(r"[+-]?[0-9]+", s):
        return None
    n = int(s)
    return n if -(2**63) <= n < 2**63 else None


@dataclass(frozen=True)
class _Requirement:
    key: str
    op: str  # "in", "notin", "=", "==", "!=", "gt", "lt", "exists", "!"
    values: tuple[str, ...]

    def matches(self, labels: dict[str, str]) -> bool:
        has = self.key in labels
        if self.op in ("in", "=", "=="):
            return has and labels[self.key] in self.values
        if self.op in ("notin", "!="):
            return not has or labels[self.key] not in self.values
        if self.op == "exists":
            return has
        if self.op == "!":
            return not has
        # gt / lt
        if not has:
            return False
        mine = _parse_int64(labels[self.key])
        theirs = _parse_int64(self.values[0]) if len(self.values) == 1 else None
        if mine is None or theirs is None:
            return False
        return mine > theirs if self.op == "gt" else mine < theirs


def _key_error(key: str) -> str | None:
    errs = label_key_errors(key)
    if errs:
        return f"<nil>: Invalid value: {go_quote(key)}: " + "; ".join(errs)
    return None


def _new_requirement(key: str, op: str, values: list[str]) -> _Requirement:
    """labels.NewRequirement with no field path (as the API server calls it)."""
    errors: list[str] = []
    if (err := _key_error(key)) is not None:
        errors.append(err)
    if op in ("gt", "lt"):
        for i, v in enumerate(values):
            if _parse_int64(v) is None:
                errors.append(
                    f"values[{i}]: Invalid value: {go_quote(v)}: "
                    "for 'Gt', 'Lt' operators, the value must be an integer"
                )
    for i, v in enumerate(values):
        if errs := label_value_errors(v):
            errors.append(f"values[{i}][{key}]: Invalid value: {go_quote(v)}: " + "; ".join(errs))
    if errors:
        raise _RequirementError(_aggregate(errors))
    return _Requirement(key, op, tuple(values))


class _RequirementError(Exception):
    pass


class _LabelParser:
    def __init__(self, selector: str) -> None:
        self.items = _lex(selector)
        self.pos = 0

    def _look(self, values: bool = True) -> tuple[int, str]:
        kind, lit = self.items[self.pos]
        if values and kind in (_IN, _NOTIN):
            kind = _IDENT
        return kind, lit

    def _take(self, values: bool = True) -> tuple[int, str]:
        item = self._look(values)
        self.pos += 1
        return item

    def parse(self) -> list[_Requirement]:
        reqs: list[_Requirement] = []
        while True:
            kind, lit = self._look()
            if kind in (_IDENT, _NOT):
                try:
                    reqs.append(self._requirement())
                except _RequirementError as e:
                    raise SelectorError(f"unable to parse requirement: {e}") from None
                kind, lit = self._take()
                if kind == _EOS:
                    return reqs
                if kind == _COMMA:
                    kind2, lit2 = self._look()
                    if kind2 not in (_IDENT, _NOT):
                        raise SelectorError(f"found '{lit2}', expected: identifier after ','")
                else:
                    raise SelectorError(f"found '{lit}', expected: ',' or 'end of string'")
            elif kind == _EOS:
                return reqs
            else:
                raise SelectorError(f"found '{lit}', expected: !, identifier, or 'end of string'")

    def _requirement(self) -> _Requirement:
        op = ""
        kind, key = self._take()
        if kind == _NOT:
            op = "!"
            kind, key = self._take()
        if kind != _IDENT:
            raise _RequirementError(f"found '{key}', expected: identifier")
        if (err := _key_error(key)) is not None:
            raise _RequirementError(err)
        if self._look()[0] in (_EOS, _COMMA) and op != "!":
            op = "exists"
        if op in ("exists", "!"):
            return _new_requirement(key, op, [])
        kind, lit = self._take(values=False)
        ops = {_IN: "in", _NOTIN: "notin", _EQ: "=", _DEQ: "==", _NEQ: "!=", _GT: "gt", _LT: "lt"}
        if kind not in ops:
            raise _RequirementError(f"found '{lit}', expected: {_OPERATOR_NAMES}")
        op = ops[kind]
        values = self._set_values() if op in ("in", "notin") else self._exact_value()
        return _new_requirement(key, op, sorted(values))

    def _set_values(self) -> set[str]:
        kind, lit = self._take()
        if kind != _OPEN:
            raise _RequirementError(f"found '{lit}' expected: '('")
        kind, lit = self._look()
        if kind in (_IDENT, _COMMA):
            values = self._identifiers()
            self._take()  # the ')' _identifiers stopped at
            return values
        if kind == _CLOSE:
            self._take()
            return {""}
        raise _RequirementError(f"found '{lit}', expected: ',', ')' or identifier")

    def _identifiers(self) -> set[str]:
        values: set[str] = set()
        while True:
            kind, lit = self._take()
            if kind == _IDENT:
                values.add(lit)
                kind2, lit2 = self._look()
                if kind2 == _COMMA:
                    continue
                if kind2 == _CLOSE:
                    return values
                raise _RequirementError(f"found '{lit2}', expected: ',' or ')'")
            if kind == _COMMA:
                if not values:
                    values.add("")  # "(,"
                kind2, _ = self._look()
                if kind2 in (_CLOSE, _COMMA):
                    values.add("")  # ",)" and ",,"
                    if kind2 == _CLOSE:
                        return values
                continue
            raise _RequirementError(f"found '{lit}', expected: ',', or identifier")

    def _exact_value(self) -> set[str]:
        if self._look()[0] in (_EOS, _COMMA):
            return {""}
        kind, lit = self._take()
        if kind == _IDENT:
            return {lit}
        raise _RequirementError(f"found '{lit}', expected: identifier")


def parse_label_selector(raw: str) -> Callable[[dict[str, str]], bool]:
    """Parse a (URL-decoded) labelSelector; the predicate takes an object's labels.

    Raises SelectorError with the API server's 400 message.
    """
    requirements = _LabelParser(raw).parse()

    def matches(labels: dict[str, str]) -> bool:
        labels = labels or {}
        return all(r.matches(labels) for r in requirements)

    return matches


# --- field selectors (fields.ParseSelector + field label conversion) ----------------------------


def _get(obj: dict, *path: str) -> object:
    cur: object = obj
    for part in path:
        if not isinstance(cur, dict):
            return None
        cur = cur.get(part)
    return cur


def _s(value: object) -> str:
    return value if isinstance(value, str) else ""


def _b(value: object) -> str:
    return "true" if value is True else "false"


def _meta_fields(obj: dict, namespaced: bool = True) -> dict[str, str]:
    fields = {"metadata.name": _s(_get(obj, "metadata", "name"))}
    if namespaced:
        fields["metadata.namespace"] = _s(_get(obj, "metadata", "namespace"))
    return fields


def _pod_fields(pod: dict) -> dict[str, str]:
    # pod.ToSelectableFields over the v1 object; status.podIP is the first of status.podIPs.
    pod_ips = _get(pod, "status", "podIPs")
    if isinstance(pod_ips, list) and pod_ips and isinstance(pod_ips[0], dict):
        pod_ip = _s(pod_ips[0].get("ip"))
    else:
        pod_ip = _s(_get(pod, "status", "podIP"))
    return {
        "spec.nodeName": _s(_get(pod, "spec", "nodeName")),
        "spec.restartPolicy": _s(_get(pod, "spec", "restartPolicy")),
        "spec.schedulerName": _s(_get(pod, "spec", "schedulerName")),
        "spec.serviceAccountName": _s(_get(pod, "spec", "serviceAccountName")),
        "spec.hostNetwork": _b(_get(pod, "spec", "hostNetwork")),
        "status.phase": _s(_get(pod, "status", "phase")),
        "status.podIP": pod_ip,
        "status.nominatedNodeName": _s(_get(pod, "status", "nominatedNodeName")),
        **_meta_fields(pod),
    }


def _event_fields(ev: dict) -> dict[str, str]:
    involved = ev.get("involvedObject") or {}
    fields = {f"involvedObject.{k}": _s(involved.get(k)) for k in _EVENT_INVOLVED}
    fields.update(
        reason=_s(ev.get("reason")),
        reportingComponent=_s(ev.get("reportingComponent")),
        source=_s(_get(ev, "source", "component")),
        type=_s(ev.get("type")),
    )
    return {**fields, **_meta_fields(ev)}


_EVENT_INVOLVED = ("kind", "namespace", "name", "uid", "apiVersion", "resourceVersion", "fieldPath")


@dataclass(frozen=True)
class _FieldRules:
    labels: frozenset[str]  # what the conversion accepts
    fields: Callable[[dict], dict[str, str]]  # what the object offers; anything else reads ""
    renames: tuple[tuple[str, str], ...] = ()


# Core kinds hopscope lists, with their field label conversions (pkg/apis/core/v1); recorded
# for pods in 06. `status.podIPs` passes the conversion but the pod offers no such field.
_BUILTIN: dict[str, _FieldRules] = {
    "pods": _FieldRules(
        frozenset(
            {
                "metadata.name",
                "metadata.namespace",
                "spec.nodeName",
                "spec.restartPolicy",
                "spec.schedulerName",
                "spec.serviceAccountName",
                "spec.hostNetwork",
                "status.phase",
                "status.podIP",
                "status.podIPs",
                "status.nominatedNodeName",
            }
        ),
        _pod_fields,
        (("spec.host", "spec.nodeName"),),
    ),
    "events": _FieldRules(
        frozenset(
            {f"involvedObject.{k}" for k in _EVENT_INVOLVED}
            | {"reason", "reportingComponent", "source", "type"}
            | {"metadata.name", "metadata.namespace"}
        ),
        _event_fields,
    ),
    "secrets": _FieldRules(
        frozenset({"type", "metadata.name", "metadata.namespace"}),
        lambda o: {"type": _s(o.get("type")), **_meta_fields(o)},
    ),
    "services": _FieldRules(
        frozenset({"metadata.name", "metadata.namespace", "spec.clusterIP", "spec.type"}),
        lambda o: {
            "spec.clusterIP": _s(_get(o, "spec", "clusterIP")),
            "spec.type": _s(_get(o, "spec", "type")),
            **_meta_fields(o),
        },
    ),
    "namespaces": _FieldRules(
        frozenset({"metadata.name", "status.phase"}),
        lambda o: {"status.phase": _s(_get(o, "status", "phase")), **_meta_fields(o, False)},
    ),
    "nodes": _FieldRules(
        frozenset({"metadata.name", "spec.unschedulable"}),
        lambda o: {
            "spec.unschedulable": _b(_get(o, "spec", "unschedulable")),
            **_meta_fields(o, False),
        },
    ),
}
# A custom resource without selectableFields (hopscope's CRD has none): name and, when it is
# namespaced, namespace.
_CUSTOM_NAMESPACED = _FieldRules(frozenset({"metadata.name", "metadata.namespace"}), _meta_fields)


def _split_terms(selector: str) -> list[str]:
    """Split on commas that a backslash does not escape (the backslash stays)."""
    if not selector:
        return []
    terms, start, escaped = [], 0, False
    for i, ch in enumerate(selector):
        if escaped:
            escaped = False
        elif ch == "\\":
            escaped = True
        elif ch == ",":
            terms.append(selector[start:i])
            start = i + 1
    terms.append(selector[start:])
    return terms


def _split_term(term: str) -> tuple[str, str, str] | None:
    for i in range(len(term)):
        for op in ("!=", "==", "="):
            if term.startswith(op, i):
                return term[:i], op, term[i + len(op) :]
    return None


def _unescape(value: str) -> str:
    out, escaped = [], False
    for ch in value:
        if escaped:
            if ch not in "\\,=":
                raise SelectorError(f"invalid field selector: invalid escape sequence: \\{ch}")
            out.append(ch)
            escaped = False
        elif ch == "\\":
            escaped = True
        elif ch in ",=":
            # Go prints the rune with %v: its number.
            raise SelectorError(f"invalid field selector: unescaped character in value: {ord(ch)}")
        else:
            out.append(ch)
    if escaped:
        raise SelectorError("invalid field selector: invalid escape sequence: \\")
    return "".join(out)


def parse_field_selector(raw: str, plural: str) -> Callable[[dict], bool]:
    """Parse a (URL-decoded) fieldSelector for resource `plural`; the predicate takes an object.

    Plurals other than the core ones modelled here are taken to be namespaced custom resources
    (metadata.name and metadata.namespace only). Raises SelectorError with the 400 message.
    """
    rules = _BUILTIN.get(plural, _CUSTOM_NAMESPACED)
    terms: list[tuple[str, bool, str]] = []  # (field, equal, value)
    for part in sorted(_split_terms(raw)):
        if not part:
            continue
        split = _split_term(part)
        if split is None:
            raise SelectorError(f"invalid selector: '{raw}'; can't understand '{part}'")
        field, op, value = split
        terms.append((field, op != "!=", _unescape(value)))
    converted = []
    for field, equal, value in terms:  # the conversion runs after the whole parse
        field = dict(rules.renames).get(field, field)
        if field not in rules.labels:
            raise SelectorError(f"field label not supported: {field}")
        converted.append((field, equal, value))

    def matches(obj: dict) -> bool:
        fields = rules.fields(obj)
        return all((fields.get(f, "") == v) == eq for f, eq, v in converted)

    return matches


# --- ObjectMeta validation on create ------------------------------------------------------------

_BLOCKING_FOR_CEL = frozenset(
    {
        "FieldValueNotSupported",
        "FieldValueRequired",
        "FieldValueTooLong",
        "FieldValueTooMany",
        "FieldValueTypeInvalid",
    }
)
_CEL_SKIPPED = (
    "Invalid value: null: some validation rules were not checked because the object was "
    "invalid; correct the existing errors to complete validation"
)
# Kinds whose CRD has x-kubernetes-validations rules, with their group.
_CUSTOM_KINDS = {"ConnectivityCheck": "hopscope.dev"}


def _cause(reason: str, field: str, message: str) -> dict:
    return {"reason": reason, "message": message, "field": field}


def _invalid(field: str, value: object, detail: str) -> dict:
    shown = go_quote(value) if isinstance(value, str) else str(value)
    return _cause("FieldValueInvalid", field, f"Invalid value: {shown}: {detail}")


def _mask_trailing_dash(name: str) -> str:
    # What the name validators do to a generateName before checking it (Go's maskTrailingDash).
    if len(name) > 1 and name.endswith("-"):
        return name[:-2] + "a"
    return name


def _name_errors(kind: str, name: str, prefix: bool) -> list[str]:
    if kind == "Event":
        return []  # Event names are not held to any rule (08#12)
    if prefix:
        name = _mask_trailing_dash(name)
    if kind == "Namespace":
        return _dns1123_label_errors(name)
    if kind == "Service":
        return _dns1035_label_errors(name)
    # NameIsDNSSubdomain: Pods, custom resources and most other kinds.
    return _subdomain_errors(name, _max_len_chars)


def metadata_causes(obj: dict, kind: str, *, cel_rules: bool | None = None) -> list[dict]:
    """The 422 `details.causes` that creating `obj` (a `kind`) gets for its ObjectMeta.

    `[]` when the metadata is fine. `cel_rules` says whether the kind's schema has CEL rules
    (default: hopscope's ConnectivityCheck has); then a blocking cause (too long, required, ...)
    brings the "some validation rules were not checked" cause with field "<nil>" (08#2).
    """
    meta = obj.get("metadata") or {}
    causes: list[dict] = []
    name = meta.get("name") or ""
    generate = meta.get("generateName") or ""
    if generate:
        for msg in _name_errors(kind, generate, prefix=True):
            causes.append(_invalid("metadata.generateName", generate, msg))
        if not name:
            name = generate[:58] + "bcdfg"  # the server appends 5 random characters
    if not name:
        causes.append(
            _cause(
                "FieldValueRequired",
                "metadata.name",
                "Required value: name or generateName is required",
            )
        )
    else:
        for msg in _name_errors(kind, name, prefix=False):
            causes.append(_invalid("metadata.name", name, msg))
    namespace = meta.get("namespace")
    if namespace:  # on create the server fills it from the path before validating
        for msg in _dns1123_label_errors(namespace):
            causes.append(_invalid("metadata.namespace", namespace, msg))
    generation = meta.get("generation")
    if isinstance(generation, int) and generation < 0:
        causes.append(
            _invalid("metadata.generation", generation, "must be greater than or equal to 0")
        )
    for key, value in (meta.get("labels") or {}).items():
        for msg in label_key_errors(key):
            causes.append(_invalid("metadata.labels", key, msg))
        for msg in label_value_errors(value):
            causes.append(_invalid("metadata.labels", value, msg))
    annotations = meta.get("annotations") or {}
    for key in annotations:
        for msg in label_key_errors(key.lower()):  # case does not matter in annotation keys
            causes.append(_invalid("metadata.annotations", key, msg))
    total = sum(len(k.encode()) + len(v.encode()) for k, v in annotations.items())
    if total > 262144:
        causes.append(
            _cause(
                "FieldValueTooLong",
                "metadata.annotations",
                "Too long: may not be more than 262144 bytes",
            )
        )
    for finalizer in meta.get("finalizers") or []:
        for msg in label_key_errors(finalizer):
            causes.append(_invalid("metadata.finalizers", finalizer, msg))
    if cel_rules is None:
        cel_rules = kind in _CUSTOM_KINDS
    if cel_rules and any(c["reason"] in _BLOCKING_FOR_CEL for c in causes):
        causes.append(_cause("FieldValueInvalid", "<nil>", _CEL_SKIPPED))
    return causes


def invalid_message(kind: str, name: str, causes: list[dict], group: str | None = None) -> str:
    """The 422 Status `message`: `Pod "x" is invalid: field: message` (several in [a, b]).

    `group` defaults to the CRD group for hopscope's kinds (`ConnectivityCheck.hopscope.dev`).
    """
    if not causes:
        raise ValueError("a 422 Invalid needs at least one cause")
    group = _CUSTOM_KINDS.get(kind, "") if group is None else group
    qualified = f"{kind}.{group}" if group else kind
    body = _aggregate(f"{c['field']}: {c['message']}" for c in causes)
    return f"{qualified} {go_quote(name)} is invalid: {body}"
