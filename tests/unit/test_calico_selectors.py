"""Calico selector expressions, data-driven: each case is (selector, labels, selected?);
bad syntax is a FieldError naming the field (issue 14)."""

from __future__ import annotations

import pytest

from hopscope_policy.calico_selectors import parse_selector
from hopscope_policy.model import FieldError

WEB = {"app": "web", "tier": "front"}

CASES = [
    ("", WEB, True),
    ("all()", {}, True),
    ("app == 'web'", WEB, True),
    ('app == "db"', WEB, False),
    ("app != 'db'", WEB, True),
    ("role != 'db'", WEB, True),  # absent label satisfies !=
    ("has(tier)", WEB, True),
    ("!has(tier)", WEB, False),
    ("app in {'web', 'api'}", WEB, True),
    ("app in {}", WEB, False),
    ("app not in {'web'}", WEB, False),
    ("role not in {'db'}", WEB, True),  # absent label satisfies not in
    ("app == 'web' && tier == 'back'", WEB, False),
    ("app == 'db' || tier == 'front'", WEB, True),
    ("!(app == 'web' && has(tier))", WEB, False),
    ("app == 'db' || app == 'web' && tier == 'back'", WEB, False),  # && binds tighter
    ("(app == 'db' || app == 'web') && tier == 'front'", WEB, True),
    ("app contains 'e'", WEB, True),
    ("app starts with 'we'", WEB, True),
    ("app ends with 'x'", WEB, False),
    ("k8s.io/name == 'x'", {"k8s.io/name": "x"}, True),
    ("app in {'db', 'web',}", WEB, True),  # a trailing comma is allowed
    ("role not in {}", WEB, True),
    ("app contains 'e'", {}, False),  # contains, starts with, ends with need the label
    ("role starts with ''", WEB, False),
    ("!!has(app)", WEB, True),
    ("global() && app == 'web'", WEB, True),  # global() matches any labels; it sets the scope
    ("app == 'web'\t&&\thas(tier)", WEB, True),
    ("has( app )", WEB, True),
]


@pytest.mark.parametrize(("text", "labels", "selected"), CASES)
def test_selector_truth_table(text: str, labels: dict[str, str], selected: bool) -> None:
    assert parse_selector(text, "spec.selector").matches(labels) is selected


def test_global_is_marked() -> None:
    assert parse_selector("global()", "spec.namespaceSelector").is_global
    assert parse_selector("global() || has(a)", "spec.namespaceSelector").is_global
    assert not parse_selector("all()", "spec.namespaceSelector").is_global


def test_keys_are_collected() -> None:
    selector = parse_selector("a == 'x' && (has(b) || !(c not in {'y'}))", "spec.selector")
    assert selector.keys == {"a", "b", "c"}


@pytest.mark.parametrize(
    "text",
    [
        "app = 'web'",
        "app == web",
        "has(app",
        "app == 'web' &&",
        "app in {'a' 'b'}",
        "app ~ 'x'",
        "app == 'web')",
        "app like 'w'",
        "has (app)",  # Calico's tokenizer reads `has (` as a label named has
        "app == 'web'\n&& has(tier)",  # whitespace is spaces and tabs only
        "app == 'web",
        "has()",
        "all(x)",
    ],
)
def test_bad_syntax_names_the_field(text: str) -> None:
    with pytest.raises(FieldError) as error:
        parse_selector(text, "spec.ingress[0].source.selector")
    assert error.value.field == "spec.ingress[0].source.selector"


def test_non_string_is_refused() -> None:
    with pytest.raises(FieldError):
        parse_selector(3, "spec.selector")
