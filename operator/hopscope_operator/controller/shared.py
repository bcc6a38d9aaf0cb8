"""Equal spec parts of the listed checks held once: most checks leave probes, path, thresholds
and schedule at their defaults or share a few settings, and each pydantic instance costs ~0.7 KB
(its __dict__ and fields-set), ~2.5 KB a check. A listed check's model is only read."""

from __future__ import annotations

from pydantic import BaseModel

from hopscope_operator.api import ConnectivityCheck

SHARED_PARTS = ("probes", "path", "thresholds", "schedule")


class SharedParts:
    def __init__(self) -> None:
        self._seen: dict[tuple[type, str], BaseModel] = {}

    def share(self, check: ConnectivityCheck) -> ConnectivityCheck:
        """`check`, just parsed, with each of its SHARED_PARTS an instance equal checks share."""
        spec = check.spec
        for name in SHARED_PARTS:
            part = getattr(spec, name)
            if isinstance(part, BaseModel):
                key = (type(part), part.model_dump_json())
                # Into __dict__: the value is equal, so neither validation nor fields-set change.
                spec.__dict__[name] = self._seen.setdefault(key, part)
        return check

    def keep_at_most(self, count: int) -> None:
        """Start over when more distinct parts were seen than `count` (specs edited many times):
        the checks keep theirs; what is parsed next is shared anew."""
        if len(self._seen) > count:
            self._seen = {}
