"""The fake's one door to tests/operator/fake_selectors.py (written in a parallel branch):
label and field selectors as the real parser reads them, and ObjectMeta's 422 causes.

Until that module lands, the fake's old behaviour stands in: selectors split on ',' and '=',
and metadata is not checked. The conformance gaps list (kube_api_gaps.yaml) names what that
costs, as strict expected failures, so the landing shows up as exchanges to take off it.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

try:
    from .fake_selectors import (  # type: ignore[import-not-found, unused-ignore]
        SelectorError,
        metadata_causes,
        parse_field_selector,
        parse_label_selector,
    )
except ImportError:

    class SelectorError(Exception):  # type: ignore[no-redef]
        """A selector the API server refuses with a 400; str() is the Status message."""

    def parse_label_selector(raw: str) -> Callable[[dict[str, str]], bool]:  # type: ignore[misc]
        wanted = dict(pair.split("=", 1) for pair in raw.split(",") if pair)
        return lambda labels: all(labels.get(k) == v for k, v in wanted.items())

    def parse_field_selector(raw: str, plural: str) -> Callable[[dict], bool]:  # type: ignore[misc]
        del plural
        wanted = dict(pair.split("=", 1) for pair in raw.split(",") if pair)
        return lambda obj: all(str(_at(obj, k)) == v for k, v in wanted.items())

    def metadata_causes(obj: dict, kind: str) -> list[dict]:  # type: ignore[misc]
        del obj, kind
        return []

    def _at(obj: dict, path: str) -> Any:
        value: Any = obj
        for part in path.split("."):
            value = value.get(part, "") if isinstance(value, dict) else ""
        return value


__all__ = ["SelectorError", "metadata_causes", "parse_field_selector", "parse_label_selector"]
