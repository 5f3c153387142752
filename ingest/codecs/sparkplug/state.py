"""What the host application keeps per edge node: its birth, sequence numbers, alias tables, last values."""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass
class Alias:
    tag: str
    datatype: int


@dataclass
class NodeState:
    group: str
    node: str
    born: bool = False
    online: bool = False
    bdseq: int | None = None
    seq: int | None = None
    aliases: dict[int, Alias] = field(default_factory=dict)  # node metrics
    devices: dict[str, dict[int, Alias]] = field(default_factory=dict)  # device -> alias table
    dead_devices: set[str] = field(default_factory=set)
    last: dict[str, tuple[float, int]] = field(default_factory=dict)  # tag -> (value, quality)
    device_of: dict[str, str] = field(default_factory=dict)  # tag -> device ("" for node metrics)
    rebirth_requested_at: float = -1e18
    lost: int = 0  # messages lost upstream (seq gaps), since this host started
