"""One verified TLS context per CA bundle, shared by every Prefect client of a process.

Prefect builds a verified ``ssl.SSLContext`` (``create_default_context(cafile=...)``) for
every API client it makes, ``http://`` included, and offers no setting to hand it one:
loading the CA bundle costs about 20 ms of CPU, nearly all of what opening a client
costs, and most of what a trivial flow process spends. ``install`` wraps
``create_default_context`` so that a call with only a CA file returns the context built
for that file (once per file content: a replaced bundle is loaded again); any other call
(no CA file, a CA path or data, another purpose) builds a fresh context as before, so the
unverified context Prefect then modifies is never shared.

Installed by ``connection.prefect_client`` (every client jobctl opens), by the warm
template before it forks flow processes, and by the test suite.
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
    """Share verified contexts in this process from now on (idempotent)."""
    ssl.create_default_context = create_default_context


def prebuild() -> None:
    """Build the context Prefect's clients will use (the warm template, before it forks):
    the bundle of ``PREFECT_API_SSL_CERT_FILE`` (which follows ``SSL_CERT_FILE``), else
    certifi's, as ``PrefectClient`` chooses."""
    import certifi
    from prefect.settings import get_current_settings

    install()
    create_default_context(cafile=get_current_settings().api.ssl_cert_file or certifi.where())
