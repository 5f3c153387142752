"""One way to make a paho-mqtt 2.x client from config: URL, protocol, TLS, credentials, session."""

from __future__ import annotations

import ssl
import uuid
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlparse

import paho.mqtt as paho_mqtt
import paho.mqtt.client as paho
from paho.mqtt.enums import CallbackAPIVersion, MQTTErrorCode
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties

from edge.core.settings import BrokerSettings, SecretRef, TlsSettings

_FAST_PUBLISH_VERSIONS = ("2.0.", "2.1.", "2.2.")  # paho releases whose PUBLISH handling this mirrors


class HighRateClient(paho.Client):
    """paho's client, made cheaper per inbound message for sources that take tens of thousands a second.

    Two costs of paho's own are cut; everything else is paho's.

    - **Reads.** paho reads each packet with about four ``recv`` calls (the type byte, the length bytes one
      by one, the body): at 25k messages/s, 100k system calls a second, each one releasing and taking back
      the GIL. Here they are served from a buffer filled up to 256 kB at a time (``_sock_recv``). Bytes
      waiting in it are invisible to ``select``, so a loop that drives this client checks ``buffered()``
      and calls ``loop_read`` itself while it is non-zero
      (``ingest.sources.mqtt.network.NetworkThread._network``); not
      for ``loop_start``/``loop_forever``. The buffer belongs to one socket and is dropped with it.
    - **MQTT 5 PUBLISH without properties** (the usual case). paho builds a ``Properties`` object for each
      one: its constructor lays out its tables of 27 property names and types every time, a quarter of
      the network thread's time at 25k messages/s. Here such a message gets an empty ``Properties`` made
      from one built once (same class, same packet type, no attributes set), and the rest of
      ``_handle_publish`` is done as paho 2.x does it, without its debug log line. Anything else (properties
      present, QoS 2, MQTT 3.1.1, a packet too short to parse, another paho release) goes to paho's own
      ``_handle_publish``. ``tests/edge/core/test_mqtt_client.py`` compares the two on the same packets.
    """

    RECV_BYTES = 1 << 18

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._rbuf = b""
        self._rpos = 0
        self._rsock: object = None
        self._fast_publish = getattr(paho_mqtt, "__version__", "").startswith(_FAST_PUBLISH_VERSIONS)
        self._no_properties = Properties(PacketTypes.PUBLISH)  # type: ignore[no-untyped-call]

    def buffered(self) -> int:
        """Bytes received from the socket that paho has not read yet."""
        return len(self._rbuf) - self._rpos if self._rsock is self._sock else 0

    def _sock_recv(self, bufsize: int) -> bytes:
        if self._rsock is not self._sock:  # a new connection: what was buffered belonged to the old one
            self._rbuf, self._rpos, self._rsock = b"", 0, self._sock
        avail = len(self._rbuf) - self._rpos
        if avail == 0:
            data: bytes = super()._sock_recv(max(bufsize, self.RECV_BYTES))  # raises BlockingIOError
            if len(data) <= bufsize:  # all of it, or b"" (the broker closed the connection)
                return data
            self._rbuf, self._rpos = data, 0
            avail = len(data)
        n = bufsize if bufsize < avail else avail
        out = self._rbuf[self._rpos:self._rpos + n]
        self._rpos += n
        return out

    def empty_publish_properties(self) -> Properties:
        """A ``Properties(PUBLISH)`` with none set, without paho's per-object table building."""
        p: Properties = Properties.__new__(Properties)
        template = self._no_properties
        for name in ("packetType", "types", "names", "properties"):  # paho's own per-object attributes
            object.__setattr__(p, name, getattr(template, name))
        return p

    def _handle_publish(self) -> MQTTErrorCode:
        if not self._fast_publish or self._protocol != paho.MQTTv5:
            return super()._handle_publish()
        header: int = self._in_packet["command"]
        packet = self._in_packet["packet"]
        qos = (header & 0x06) >> 1
        n = len(packet)
        if qos > 1 or n < 2:
            return super()._handle_publish()
        topic_len = int.from_bytes(packet[0:2], "big")
        pos = 2 + topic_len
        mid = 0
        if qos:
            if pos + 2 > n:
                return super()._handle_publish()
            mid = int.from_bytes(packet[pos:pos + 2], "big")
            pos += 2
        if pos >= n or packet[pos] != 0:  # properties present (or a malformed packet): paho's way
            return super()._handle_publish()
        message = paho.MQTTMessage(mid=mid, topic=bytes(packet[2:2 + topic_len]))
        message.dup = (header & 0x08) != 0
        message.qos = qos
        message.retain = (header & 0x01) != 0
        message.properties = self.empty_publish_properties()
        message.payload = bytes(packet[pos + 1:])
        message.timestamp = paho.time_func()
        self._handle_on_message(message)
        if qos == 1 and not self._manual_ack:
            return self._send_puback(mid)
        return MQTTErrorCode.MQTT_ERR_SUCCESS


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
    high_rate: bool = False,
) -> tuple[paho.Client, BrokerAddress, Properties | None]:
    """A configured, not yet connected client, its address, and the CONNECT properties (MQTT 5).

    ``high_rate``: a ``HighRateClient``, for a loop of one's own that honours its ``buffered()`` (not for
    ``loop_start``/``loop_forever``, whose ``select`` would not see the buffered bytes).

    ``clean_start=False`` with a session expiry gives a persistent session: the broker keeps QoS 1
    messages for us while we are away.
    """
    address = BrokerAddress.parse(url or settings.url)
    v5 = settings.protocol == "5"
    cid = client_id or settings.client_id or f"factory-edge-{uuid.uuid4().hex[:8]}"
    client = (HighRateClient if high_rate else paho.Client)(
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
