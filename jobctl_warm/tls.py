"""One verified TLS context per CA bundle, built once in the warm template.

Prefect builds a verified ``ssl.SSLContext`` (``create_default_context(cafile=...)``) for
every API client it makes, ``http://`` included, and offers no setting to hand it one:
loading the CA bundle is about half of what a trivial flow process spends on the CPU. In
the template, ``create_default_context`` is wrapped so that a call with only a CA file
returns the context built for that file (once per file content); any other call (no CA
file, a CA path or data, another purpose) builds a fresh context as before, so the
unverified context Prefect then modifies is never shared. Each flow process has its own
copy of the template's memory: nothing is shared between runs.
"""

from __future__ import annotations

import functools
import os
import ssl
from typing import Any

_build = ssl.create_default_context
_built: dict[tuple[str, int, int], ssl.SSLContext] = {}


@functools.wraps(_build)
def create_default_context(
    purpose: ssl.Purpose = ssl.Purpose.SERVER_AUTH,
    *,
    cafile: Any = None,
    capath: Any = None,
    cadata: Any = None,
) -> ssl.SSLContext:
    if purpose != ssl.Purpose.SERVER_AUTH or cafile is None or capath or cadata:
        return _build(purpose, cafile=cafile, capath=capath, cadata=cadata)
    try:
        stat = os.stat(cafile)
    except (OSError, TypeError, ValueError):
        return _build(purpose, cafile=cafile)
    key = (os.fspath(cafile), stat.st_mtime_ns, stat.st_size)
    if key not in _built:
        _built[key] = _build(purpose, cafile=cafile)
    return _built[key]


def install() -> None:
    """Share verified contexts in this process, and build the one Prefect uses now."""
    ssl.create_default_context = create_default_context

    import certifi

    create_default_context(cafile=certifi.where())
