"""The client's PKI folder: its application certificate and the trust list of server certificates.

Layout (the usual OPC-UA one)::

    PKI_DIR/own/cert.der             application instance certificate (generated once)
    PKI_DIR/own/private/key.pem      its private key
    PKI_DIR/trusted/certs/THUMB.der  server certificates this appliance trusts
    PKI_DIR/rejected/certs/THUMB.der server certificates it refused (``edge certs trust THUMB``
                                     moves one over)

A server whose certificate is not in ``trusted`` is refused with :class:`CertificateRefused`, which names the
certificate and the command that trusts it; with ``trust_on_first_use`` the first certificate seen for a
server's application URI is trusted and stored, and a different one later is still refused.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import socket
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

from cryptography import x509

DEFAULT_PKI_DIR = Path(os.environ.get("FE_PKI_DIR", "/var/lib/factory-edge/pki"))
CLIENT_APP_URI = "urn:factory-edge:client"


@dataclass(frozen=True)
class CertInfo:
    thumbprint: str  # SHA-1 of the DER, hex, as OPC-UA tools show it
    subject: str
    issuer: str
    not_before: datetime
    not_after: datetime
    application_uri: str
    path: Path | None = None

    def describe(self) -> str:
        return (f"subject={self.subject!r} thumbprint={self.thumbprint} "
                f"application_uri={self.application_uri!r} "
                f"valid {self.not_before:%Y-%m-%d}..{self.not_after:%Y-%m-%d}")


def cert_info(der: bytes, path: Path | None = None) -> CertInfo:
    cert = x509.load_der_x509_certificate(der)
    uri = ""
    try:
        san = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
        uris = san.get_values_for_type(x509.UniformResourceIdentifier)
        uri = uris[0] if uris else ""
    except x509.ExtensionNotFound:
        pass
    return CertInfo(
        thumbprint=hashlib.sha1(der).hexdigest(),
        subject=cert.subject.rfc4514_string(),
        issuer=cert.issuer.rfc4514_string(),
        not_before=cert.not_valid_before_utc,
        not_after=cert.not_valid_after_utc,
        application_uri=uri,
        path=path,
    )


class CertificateRefused(Exception):
    """A server certificate that is not trusted. The message says which one and how to trust it."""

    def __init__(self, info: CertInfo, endpoint: str, pki_dir: Path, reason: str) -> None:
        self.info = info
        self.endpoint = endpoint
        super().__init__(
            f"server certificate of {endpoint} refused ({reason}): {info.describe()}. "
            f"If this is the right server, trust it with: "
            f"edge certs trust {info.thumbprint} --pki-dir {pki_dir}"
        )


class ClientCertificateRejected(Exception):
    """The server refused this appliance's own certificate. The message names it (subject, thumbprint, file)
    and says how to get it trusted on the server; the source backs off and retries, it does not crash."""

    def __init__(self, own: CertInfo | None, endpoint: str, pki_dir: Path, cause: str) -> None:
        self.info = own
        self.endpoint = endpoint
        self.cause = cause
        path = own.path if own is not None and own.path is not None else Path(pki_dir) / "own" / "cert.der"
        who = own.describe() if own is not None else "(no certificate yet)"
        super().__init__(
            f"the server {endpoint} rejected this appliance's client certificate ({cause}): {who} "
            f"file={path}. Trust it on the server: copy {path} into the server's trusted client "
            "certificates (asyncua, open62541, Unified Automation: pki/trusted/certs/ beside the server; "
            "Prosys, KEPServerEX, Ignition: move it from the server's rejected list to trusted in its OPC UA "
            "configuration). The source retries on its own once it is trusted."
        )


class Pki:
    def __init__(self, root: Path) -> None:
        self.root = Path(root)
        self.own_cert = self.root / "own" / "cert.der"
        self.own_key = self.root / "own" / "private" / "key.pem"
        self.trusted_dir = self.root / "trusted" / "certs"
        self.rejected_dir = self.root / "rejected" / "certs"

    async def ensure_own(self, app_uri: str = CLIENT_APP_URI, host: str | None = None) -> tuple[Path, Path]:
        """Generate the application certificate and key once (kept while valid); return (cert, key)."""
        from asyncua.crypto.cert_gen import setup_self_signed_certificate
        from cryptography.x509.oid import ExtendedKeyUsageOID

        self.own_key.parent.mkdir(parents=True, exist_ok=True)
        os.chmod(self.own_key.parent, 0o700)
        await setup_self_signed_certificate(
            self.own_key, self.own_cert, app_uri, host or socket.gethostname(),
            [ExtendedKeyUsageOID.CLIENT_AUTH],
            {"commonName": "factory-edge", "organizationName": "Factory Edge"},
        )
        os.chmod(self.own_key, 0o600)
        return self.own_cert, self.own_key

    def _list(self, folder: Path) -> list[CertInfo]:
        if not folder.is_dir():
            return []
        out = []
        for p in sorted(folder.glob("*.der")):
            try:
                out.append(cert_info(p.read_bytes(), p))
            except ValueError:
                continue
        return out

    def trusted(self) -> list[CertInfo]:
        return self._list(self.trusted_dir)

    def rejected(self) -> list[CertInfo]:
        return self._list(self.rejected_dir)

    def own(self) -> CertInfo | None:
        return cert_info(self.own_cert.read_bytes(), self.own_cert) if self.own_cert.is_file() else None

    def check_server(self, der: bytes, endpoint: str, *, trust_on_first_use: bool = False) -> CertInfo:
        """Return the certificate's info if trusted (or trusted now on first use); else raise."""
        info = cert_info(der)
        now = datetime.now(UTC)
        if (self.trusted_dir / f"{info.thumbprint}.der").is_file():
            if info.not_after < now:
                raise CertificateRefused(info, endpoint, self.root, "trusted but expired")
            return info
        same_app = [t for t in self.trusted()
                    if info.application_uri and t.application_uri == info.application_uri]
        if trust_on_first_use and not same_app:
            self._store(self.trusted_dir, info, der)
            return info
        self._store(self.rejected_dir, info, der)
        reason = ("another certificate is trusted for application " + repr(info.application_uri)
                  if same_app else "not in the trust list")
        raise CertificateRefused(info, endpoint, self.root, reason)

    def _store(self, folder: Path, info: CertInfo, der: bytes) -> Path:
        folder.mkdir(parents=True, exist_ok=True)
        path = folder / f"{info.thumbprint}.der"
        path.write_bytes(der)
        return path

    def _find(self, folder: Path, ref: str) -> Path | None:
        ref = ref.lower().replace(":", "")
        matches = [p for p in folder.glob("*.der") if p.stem.startswith(ref)] if folder.is_dir() else []
        if len(matches) > 1:
            raise LookupError(f"{ref!r} matches {len(matches)} certificates; give more of the thumbprint")
        return matches[0] if matches else None

    def trust(self, ref: str) -> CertInfo:
        """Trust a rejected certificate (by thumbprint or its prefix) or a certificate file (DER or PEM)."""
        path = Path(ref)
        if path.is_file():
            data = path.read_bytes()
            if data.startswith(b"-----BEGIN"):
                from cryptography.hazmat.primitives.serialization import Encoding

                data = x509.load_pem_x509_certificate(data).public_bytes(Encoding.DER)
            info = cert_info(data)
            self._store(self.trusted_dir, info, data)
            (self.rejected_dir / f"{info.thumbprint}.der").unlink(missing_ok=True)
            return info
        found = self._find(self.rejected_dir, ref)
        if found is None:
            already = self._find(self.trusted_dir, ref)
            if already is not None:
                return cert_info(already.read_bytes(), already)
            raise LookupError(f"no rejected certificate {ref!r} in {self.rejected_dir} "
                              "(see: edge certs show)")
        self.trusted_dir.mkdir(parents=True, exist_ok=True)
        dest = self.trusted_dir / found.name
        shutil.move(str(found), dest)
        return cert_info(dest.read_bytes(), dest)

    def reject(self, ref: str) -> CertInfo:
        """Move a trusted certificate to the rejected list."""
        found = self._find(self.trusted_dir, ref)
        if found is None:
            raise LookupError(f"no trusted certificate {ref!r} in {self.trusted_dir} (see: edge certs show)")
        self.rejected_dir.mkdir(parents=True, exist_ok=True)
        dest = self.rejected_dir / found.name
        shutil.move(str(found), dest)
        return cert_info(dest.read_bytes(), dest)
