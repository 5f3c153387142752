"""The cut journal: where a source cut its recent batches, so that a redelivery after a crash is cut again
the same way, under the same batch id."""

from __future__ import annotations

import hashlib
from pathlib import Path

from paho.mqtt.client import MQTTMessage


def message_key(msg: MQTTMessage) -> str:
    h = hashlib.blake2b(msg._topic, digest_size=10)
    h.update(msg.payload)
    return h.hexdigest()


class CutJournal:
    """Where this source cut its recent batches: key of the first message -> (number of messages, batch id).

    A batch's id is the hash of its messages. After a crash the broker delivers the unacknowledged messages
    again; cutting them where they were cut before, under the id recorded then, lets the historian's ledger
    recognise the batch that was committed but not (or only partly) acknowledged when the process died.
    A batch's first message is also recorded when the batch *begins* (``key 0``: begun, not cut): messages
    that the dead process had received but not cut yet come again marked as redeliveries too, and without
    that mark they would be taken for the rest of a replayed cut whose acknowledgement was cut short, and
    be dropped with it by the ledger.
    Appended (not fsynced: it has to survive a process crash, not a power loss) and compacted to the last
    entries. Lines are ``key n id`` (``key n`` from older versions: the id is then the hash again).
    """

    KEEP = 4096

    def __init__(self, path: Path) -> None:
        self.path = path
        path.parent.mkdir(parents=True, exist_ok=True)
        self.cuts: dict[str, tuple[int, str | None]] = {}
        if path.exists():
            for line in path.read_text(errors="replace").splitlines()[-self.KEEP:]:
                key, _, rest = line.partition(" ")
                n, _, batch_id = rest.partition(" ")
                if n.isdigit():
                    self.cuts[key] = (int(n), batch_id.strip() or None)
        self._lines = len(self.cuts)
        self._fh = path.open("a")

    def lookup(self, key: str) -> tuple[int, str | None] | None:
        """``(n, id)`` of the cut that began with ``key``; ``(0, None)`` for a batch begun but never cut."""
        return self.cuts.get(key)

    def begin(self, key: str) -> None:
        """A batch begins with this message (its cut is recorded when it is made)."""
        if key not in self.cuts:
            self._write(key, 0, "")

    def record(self, key: str, n: int, batch_id: str) -> None:
        self._write(key, n, batch_id)

    def _write(self, key: str, n: int, batch_id: str) -> None:
        self.cuts[key] = (n, batch_id or None)
        self._fh.write(f"{key} {n} {batch_id}\n")
        self._fh.flush()
        self._lines += 1
        if self._lines > 2 * self.KEEP:
            keep = list(self.cuts.items())[-self.KEEP:]
            self.cuts = dict(keep)
            tmp = self.path.with_suffix(".tmp")
            tmp.write_text("".join(f"{k} {n} {i or ''}\n" for k, (n, i) in keep))
            self._fh.close()
            tmp.replace(self.path)
            self._fh = self.path.open("a")
            self._lines = len(keep)
