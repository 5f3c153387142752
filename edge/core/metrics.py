"""Accounting: counters per stage, a Prometheus text endpoint, and a JSON snapshot on disk for ``edge stats``.

Every stage counts rows through one :class:`Metrics` registry (by default the process-wide :data:`METRICS`):

    from edge.core.metrics import METRICS
    METRICS.inc("ingest.mqtt", "received", batch.num_rows)
    METRICS.inc("ingest.mqtt", "rejected", 3, reason="bad_payload")
    METRICS.set_gauge("spool_bytes", spool.bytes)

Counter names in use: ``received``, ``rejected`` (with a ``reason``), ``committed``, ``duplicate``,
``spooled``, ``replayed``, ``dropped`` (with a ``reason``), ``published``. Anything else is allowed too.

The terminal UI's health view reads :meth:`Metrics.snapshot` (in process) or the state file written by
:class:`MetricsServer` (another process); both have the same shape::

    {"ts": 1764444444.1, "started": ..., "counters": {"historian": {"committed": 120000,
     "rejected": {"write_error": 1}}}, "gauges": {"spool_bytes": 0}}

:class:`MetricsServer` is a supervisor component: it serves ``GET /metrics`` (Prometheus text format 0.0.4)
and ``GET /stats`` (the JSON snapshot) on ``MetricsSettings.listen`` with ``asyncio.start_server``, and
writes the snapshot to ``MetricsSettings.state_file`` every ``state_interval_s`` seconds (atomically).
"""

from __future__ import annotations

import json
import logging
import os
import threading
import time
from pathlib import Path
from typing import Any

log = logging.getLogger("edge.core.metrics")

PREFIX = "factory_edge"
Snapshot = dict[str, Any]


class Metrics:
    """Thread-safe counters keyed by (stage, counter, reason) and gauges keyed by (name, stage)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._counters: dict[tuple[str, str, str], float] = {}
        self._gauges: dict[tuple[str, str], float] = {}
        self.started = time.time()

    def inc(self, stage: str, counter: str, n: float = 1, *, reason: str = "") -> None:
        key = (stage, counter, reason)
        with self._lock:
            self._counters[key] = self._counters.get(key, 0) + n

    def set_gauge(self, name: str, value: float, *, stage: str = "") -> None:
        with self._lock:
            self._gauges[(name, stage)] = value

    def get(self, stage: str, counter: str, reason: str | None = None) -> float:
        """One counter's value; with ``reason=None`` the sum over every reason."""
        with self._lock:
            if reason is not None:
                return self._counters.get((stage, counter, reason), 0)
            return sum(v for (s, c, _), v in self._counters.items() if s == stage and c == counter)

    def gauge(self, name: str, stage: str = "") -> float:
        with self._lock:
            return self._gauges.get((name, stage), 0)

    def reset(self) -> None:
        with self._lock:
            self._counters.clear()
            self._gauges.clear()
            self.started = time.time()

    def snapshot(self) -> Snapshot:
        """Everything counted so far, as plain JSON-able dicts (see the module docstring for the shape)."""
        with self._lock:
            counters: dict[str, dict[str, Any]] = {}
            for (stage, counter, reason), value in sorted(self._counters.items()):
                per_stage = counters.setdefault(stage, {})
                if reason:
                    per_stage.setdefault(counter, {})
                    if isinstance(per_stage[counter], dict):
                        per_stage[counter][reason] = _num(value)
                else:
                    per_stage[counter] = _num(value)
            gauges: dict[str, Any] = {}
            for (name, stage), value in sorted(self._gauges.items()):
                gauges[f"{name}{{stage={stage}}}" if stage else name] = _num(value)
        return {"ts": time.time(), "started": self.started, "counters": counters, "gauges": gauges}

    def render_prometheus(self) -> str:
        """The counters and gauges in the Prometheus text exposition format (version 0.0.4)."""
        with self._lock:
            counters = sorted(self._counters.items())
            gauges = sorted(self._gauges.items())
        lines: list[str] = []
        by_name: dict[str, list[str]] = {}
        for (stage, counter, reason), value in counters:
            labels = f'stage="{_esc(stage)}"' + (f',reason="{_esc(reason)}"' if reason else "")
            by_name.setdefault(f"{PREFIX}_{_ident(counter)}_rows_total", []).append(
                f"{{{labels}}} {_fmt(value)}")
        for name, samples in by_name.items():
            lines.append(f"# HELP {name} rows counted by each stage (and reason, where one applies)")
            lines.append(f"# TYPE {name} counter")
            lines.extend(f"{name}{s}" for s in samples)
        by_gauge: dict[str, list[str]] = {}
        for (gname, stage), value in gauges:
            labels = f'{{stage="{_esc(stage)}"}}' if stage else ""
            by_gauge.setdefault(f"{PREFIX}_{_ident(gname)}", []).append(f"{labels} {_fmt(value)}")
        for name, samples in by_gauge.items():
            lines.append(f"# HELP {name} current value, per stage where one is named")
            lines.append(f"# TYPE {name} gauge")
            lines.extend(f"{name}{s}" for s in samples)
        lines.append(f"# HELP {PREFIX}_start_time_seconds when this process started (Unix time)")
        lines.append(f"# TYPE {PREFIX}_start_time_seconds gauge")
        lines.append(f"{PREFIX}_start_time_seconds {self.started:.3f}")
        return "\n".join(lines) + "\n"


METRICS = Metrics()
"""The process-wide registry every component uses unless given another."""


def _num(v: float) -> int | float:
    return int(v) if float(v).is_integer() else v


def _fmt(v: float) -> str:
    return str(int(v)) if float(v).is_integer() else repr(float(v))


def _esc(s: str) -> str:
    return s.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")


def _ident(s: str) -> str:
    return "".join(c if c.isalnum() or c == "_" else "_" for c in s)


def write_state_file(metrics: Metrics, path: Path) -> None:
    """Write the snapshot atomically (tmp file, rename), so a reader never sees half a document."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    tmp.write_text(json.dumps(metrics.snapshot(), sort_keys=True))
    os.replace(tmp, path)


def read_state_file(path: Path) -> Snapshot:
    doc = json.loads(path.read_text())
    if not isinstance(doc, dict):
        raise ValueError(f"{path}: not a metrics snapshot")
    return doc
