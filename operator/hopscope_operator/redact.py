"""What a check's spec may hold that must never be shown: a URI's userinfo.

The probe never uses userinfo (it sends no Basic auth from it and strips it from the Host
header), so the operator drops it before a URI goes anywhere: the probe pod's batch, metric
labels, Events, status, the kubectl plugin. Credentials belong in an Authorization header.
"""

from __future__ import annotations

from urllib.parse import urlsplit, urlunsplit


def without_userinfo(uri: str) -> str:
    """`uri` with any `user:password@` taken out of its authority."""
    parts = urlsplit(uri)
    if "@" not in parts.netloc:
        return uri
    return urlunsplit(parts._replace(netloc=parts.netloc.rpartition("@")[2]))
