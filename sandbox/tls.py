"""A throw-away certificate authority and a server certificate for loopback HTTPS.

simple-salesforce only speaks HTTPS, so the Salesforce emulator needs TLS; the CA file is
written to disk so that a config's ``ca_bundle`` setting (or a test's ``verify=``) can trust it.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import trustme


@dataclass(frozen=True)
class TLSFiles:
    """Paths of a CA certificate and the server certificate/key it signed."""

    ca_pem: Path
    cert_pem: Path
    key_pem: Path


def make_tls_files(directory: Path, hostnames: tuple[str, ...] = ("localhost", "127.0.0.1")) -> TLSFiles:
    """Create a CA and a server certificate for ``hostnames`` in ``directory``."""
    directory.mkdir(parents=True, exist_ok=True)
    ca = trustme.CA(organization_name="closedloop sandbox CA")
    server = ca.issue_cert(*hostnames)
    files = TLSFiles(directory / "ca.pem", directory / "server.pem", directory / "server.key")
    ca.cert_pem.write_to_path(str(files.ca_pem))
    server.cert_chain_pems[0].write_to_path(str(files.cert_pem))
    for extra in server.cert_chain_pems[1:]:
        extra.write_to_path(str(files.cert_pem), append=True)
    server.private_key_pem.write_to_path(str(files.key_pem))
    return files
