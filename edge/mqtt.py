"""One way to make a paho-mqtt 2.x client from config: URL, protocol, TLS, credentials, session."""

from __future__ import annotations

import ssl
import uuid
from dataclasses import dataclass
from urllib.parse import urlparse

import paho.mqtt.client as paho
from paho.mqtt.enums import CallbackAPIVersion
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties

from edge.settings import BrokerSettings, SecretRef, TlsSettings


@dataclass(frozen=True)
class BrokerAddress:
    host: str
    port: int
    tls: bool

    @classmethod
    def parse(cls, url: str) -> BrokerAddress:
        u = urlparse(url if "://" in url else f"mqtt://{url}")
        if u.scheme not in ("mqtt", "mqtts", "tcp", "ssl"):
            raise ValueError(f"broker URL {url!r}: scheme must be mqtt:// or mqtts://")
        tls = u.scheme in ("mqtts", "ssl")
        return cls(u.hostname or "127.0.0.1", u.port or (8883 if tls else 1883), tls)


def make_client(
    settings: BrokerSettings,
    *,
    client_id: str | None = None,
    clean_start: bool = True,
    url: str | None = None,
    username: str | None = None,
    password: SecretRef | None = None,
    tls: TlsSettings | None = None,
) -> tuple[paho.Client, BrokerAddress, Properties | None]:
    """A configured, not yet connected client, its address, and the CONNECT properties (MQTT 5).

    ``clean_start=False`` with a session expiry gives a persistent session: the broker keeps QoS 1
    messages for us while we are away.
    """
    address = BrokerAddress.parse(url or settings.url)
    v5 = settings.protocol == "5"
    cid = client_id or settings.client_id or f"factory-edge-{uuid.uuid4().hex[:8]}"
    client = paho.Client(
        CallbackAPIVersion.VERSION2,
        client_id=cid,
        protocol=paho.MQTTv5 if v5 else paho.MQTTv311,
        clean_session=None if v5 else clean_start,
    )
    user = username if username is not None else settings.username
    secret = password if password is not None else settings.password
    if user is not None:
        client.username_pw_set(user, secret.resolve() if secret else None)
    tls_cfg = tls if tls is not None else settings.tls
    if address.tls or tls_cfg is not None:
        ctx = ssl.create_default_context(cafile=str(tls_cfg.ca_file) if tls_cfg and tls_cfg.ca_file else None)
        if tls_cfg and tls_cfg.cert_file:
            ctx.load_cert_chain(str(tls_cfg.cert_file), str(tls_cfg.key_file) if tls_cfg.key_file else None)
        if tls_cfg and tls_cfg.insecure_skip_verify:
            ctx.check_hostname = False
            ctx.verify_mode = ssl.CERT_NONE
        client.tls_set_context(ctx)
    props: Properties | None = None
    if v5:
        props = Properties(PacketTypes.CONNECT)  # type: ignore[no-untyped-call]
        props.SessionExpiryInterval = 0 if clean_start else settings.session_expiry_s
    client.reconnect_delay_set(min_delay=1, max_delay=30)
    return client, address, props


def connect(client: paho.Client, address: BrokerAddress, props: Properties | None, *,
            clean_start: bool = True, keepalive: int = 30) -> None:
    """Start connecting (non-blocking with ``loop_start``); paho reconnects by itself afterwards."""
    if client.protocol == paho.MQTTv5:
        client.connect_async(address.host, address.port, keepalive=keepalive, clean_start=clean_start,
                             properties=props)
    else:
        client.connect_async(address.host, address.port, keepalive=keepalive)
