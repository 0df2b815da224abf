"""Shared TLS contexts of Prefect clients: only verified contexts of one CA file."""

from __future__ import annotations

import ssl
from pathlib import Path

import certifi

from jobctl.prefect.gateway import tls


def test_a_context_for_the_same_ca_file_is_built_once() -> None:
    first = tls.create_default_context(cafile=certifi.where())
    assert tls.create_default_context(cafile=certifi.where()) is first
    assert first.verify_mode is ssl.CERT_REQUIRED and first.check_hostname


def test_a_changed_ca_file_gets_a_context_of_its_own(tmp_path: Path) -> None:
    bundle = tmp_path / "ca.pem"
    bundle.write_text(Path(certifi.where()).read_text())
    first = tls.create_default_context(cafile=bundle)
    bundle.write_text(Path(certifi.where()).read_text() + "\n")
    assert tls.create_default_context(cafile=bundle) is not first


def test_contexts_a_caller_may_modify_are_never_shared() -> None:
    """Prefect's unverified context is ``create_default_context()`` then modified."""
    assert tls.create_default_context() is not tls.create_default_context()
    bundle = Path(certifi.where()).read_text()
    end = "-----END CERTIFICATE-----"
    pem = bundle[bundle.index("-----BEGIN CERTIFICATE-----") : bundle.index(end) + len(end)]
    assert tls.create_default_context(cadata=pem) is not tls.create_default_context(cadata=pem)
    client = ssl.Purpose.CLIENT_AUTH
    assert tls.create_default_context(client, cafile=certifi.where()) is not (
        tls.create_default_context(client, cafile=certifi.where())
    )
