"""Small network helpers shared by the demo, the embedded services and the tests."""

from __future__ import annotations

import socket
from contextlib import closing


def free_port(host: str = "127.0.0.1") -> int:
    """A TCP port nothing listens on right now (the OS picks it)."""
    with closing(socket.socket()) as s:
        s.bind((host, 0))
        return int(s.getsockname()[1])
