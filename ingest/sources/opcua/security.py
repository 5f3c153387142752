"""Opening an OPC-UA session with the configured security: user and password, the security policy and mode,
this client's certificate (``certs.Pki``) and the server's, checked against the trust list."""

from __future__ import annotations

import asyncio

from asyncua import ua
from asyncua.client.client import Client
from asyncua.ua.status_codes import StatusCodes
from asyncua.ua.uaerrors import UaStatusCodeError

from ingest.settings import OpcUaSourceSettings
from ingest.sources.opcua.certs import CLIENT_APP_URI, ClientCertificateRejected, Pki

# what servers answer when they do not trust the client's certificate (some only close the channel, which
# asyncua reports as a bare AssertionError while it opens the secure channel)
CLIENT_CERT_REFUSALS = frozenset({
    StatusCodes.BadCertificateUntrusted, StatusCodes.BadSecurityChecksFailed,
    StatusCodes.BadCertificateInvalid, StatusCodes.BadCertificateRevoked,
    StatusCodes.BadCertificateRevocationUnknown, StatusCodes.BadCertificateIssuerRevocationUnknown,
    StatusCodes.BadCertificateUseNotAllowed, StatusCodes.BadCertificateUriInvalid,
    StatusCodes.BadCertificateTimeInvalid, StatusCodes.BadCertificateHostNameInvalid,
})

POLICY_CLASSES = {
    "Basic256Sha256": "SecurityPolicyBasic256Sha256",
    "Aes128_Sha256_RsaOaep": "SecurityPolicyAes128Sha256RsaOaep",
    "Aes256_Sha256_RsaPss": "SecurityPolicyAes256Sha256RsaPss",
}


async def open_client(settings: OpcUaSourceSettings, name: str) -> Client:
    """A connected client for source ``name``; raises :class:`~ingest.sources.opcua.certs.CertificateRefused`
    for an untrusted server certificate."""
    s = settings
    # the keep-alive probe times out after watchdog_intervall: 1 s (asyncua's default) gave false
    # disconnects from a busy server (creating thousands of monitored items); a closed socket is
    # still seen at once, a silent dead link after about request_timeout_s
    client = Client(s.endpoint, timeout=s.request_timeout_s, watchdog_intervall=s.request_timeout_s)
    client.application_uri = CLIENT_APP_URI
    client.name = client.description = f"factory-edge {name}"
    if s.username:
        client.set_user(s.username)
        if s.password is not None:
            client.set_password(s.password.resolve())
    if s.security_mode != "None":
        if s.security_policy == "None":
            raise ValueError(f"source {name}: security_mode {s.security_mode} "
                             "needs a security_policy")
        from asyncua.crypto import security_policies

        pki = Pki(s.pki_dir)
        cert, key = await pki.ensure_own(CLIENT_APP_URI)
        policy = getattr(security_policies, POLICY_CLASSES[s.security_policy])
        mode = getattr(ua.MessageSecurityMode, s.security_mode)
        endpoints = await asyncio.wait_for(client.connect_and_get_server_endpoints(), s.request_timeout_s)
        endpoint = Client.find_endpoint(endpoints, mode, policy.URI)
        der = first_cert(endpoint.ServerCertificate)
        pki.check_server(der, s.endpoint, trust_on_first_use=s.trust_on_first_use)
        await client.set_security(policy, str(cert), str(key), server_certificate=der, mode=mode)
        try:
            await asyncio.wait_for(client.connect(), s.request_timeout_s)
        except AssertionError as exc:
            raise ClientCertificateRejected(pki.own(), s.endpoint, s.pki_dir,
                                            f"the server closed the secure channel: {exc!r}") from exc
        except UaStatusCodeError as exc:
            if exc.code in CLIENT_CERT_REFUSALS:
                raise ClientCertificateRejected(pki.own(), s.endpoint, s.pki_dir,
                                                ua.StatusCode(exc.code).name) from exc
            raise
        return client
    await asyncio.wait_for(client.connect(), s.request_timeout_s)
    return client


def first_cert(der_chain: bytes) -> bytes:
    """The leaf certificate of a DER chain (servers may send the chain concatenated)."""
    if len(der_chain) < 4 or der_chain[0] != 0x30:
        return der_chain
    if der_chain[1] & 0x80:
        nbytes = der_chain[1] & 0x7F
        length = int.from_bytes(der_chain[2:2 + nbytes], "big")
        return der_chain[:2 + nbytes + length]
    return der_chain[:2 + der_chain[1]]
