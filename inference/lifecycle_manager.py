"""The lifecycle manager: retraining triggers, the managed mode's decision, and the lifecycle messages.

``ModelLifecycle.on_drift`` takes the inference stage's drift events (a started episode is a trigger when
``on_drift``); ``step(now)`` then, per model with a champion of scope ``all`` or an equipment:

1. retrains (``inference.retrain``) when a trigger fired (a drift episode, ``false_alarm_labels`` labels
   since the last retrain, the ``schedule_s``) and ``min_interval_s`` has passed since the last one, and no
   challenger is in shadow already;
2. managed mode: once the challenger has been in shadow ``shadow_s``, gates it (``inference.gate``) over
   the shadow period, replays the champion over the same period, and promotes the challenger only if its
   gate passes and it is better on the agreed metric (a lower false-alarm rate, detection no worse); else
   it stays challenger and a ``notice`` audit entry says why. Manual mode leaves the decision to engineers;
3. publishes, in order, the lifecycle messages of the audit entries since the last step and of the drift
   events received (``inference.lifecycle``).

Times are the caller's ``now`` (the live clock, or the event time of a replay). What the manager keeps
between steps (last retrain per model, the audit entries already published) is in
``<models_dir>/lifecycle.json``.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import threading
from collections import deque
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from inference.aliases import alias
from inference.lifecycle import from_audit, from_drift
from inference.packages import Registry

WHO = "lifecycle"
log = logging.getLogger("inference.lifecycle")


class ModelLifecycle:
    def __init__(self, settings: Any, dsn: str, kind_of: Callable[[str], Any], make_runtime: Any,
                 notifier: Any = None, *, scope: str = "all") -> None:
        self.settings = settings
        self.life = settings.lifecycle
        self.dsn = dsn
        self.kind_of = kind_of
        self.make_runtime = make_runtime
        self.notifier = notifier
        self.scope = scope
        self.reg = Registry(settings.models_dir)
        self._pending: list[dict[str, Any]] = []  # messages in the order things happened
        self._lock = threading.Lock()  # one step or publish at a time
        self._drift_in: deque[dict[str, Any]] = deque()  # from the event loop (deque appends are atomic)
        self._drift_trigger: set[str] = set()
        self._path = Path(settings.models_dir) / "lifecycle.json"
        self._mem: dict[str, Any] = json.loads(self._path.read_text()) if self._path.exists() else {}
        self._mem.setdefault("models", {})
        self._mem.setdefault("audit_seen", len(self.reg.audit_log()))

    def _save(self) -> None:
        self._path.parent.mkdir(parents=True, exist_ok=True)
        self._path.write_text(json.dumps(self._mem, indent=2, sort_keys=True) + "\n")

    # ------------------------------------------------------------------ inputs
    def on_drift(self, detail: dict[str, Any]) -> None:
        """A drift event of the inference stage (``inference.feature_drift``); taken in at the next step
        (never waits: it is called from the event loop while a step may be retraining)."""
        self._drift_in.append(dict(detail))

    def _take_drift(self) -> None:
        while self._drift_in:
            detail = self._drift_in.popleft()
            self._flush_audit()  # what was audited before it comes first
            version = alias(self.reg.state(str(detail["model"])), self.scope, "champion")
            self._pending.append(from_drift(detail, version))
            if detail.get("drift") and self.life.on_drift:
                self._drift_trigger.add(str(detail["model"]))

    def observe(self, batch: Any) -> None:
        """The drift rows of an EVENTS batch the inference stage emitted."""
        if batch.num_rows == 0 or "kind" not in batch.schema.names:
            return
        for kind, detail in zip(batch.column("kind").to_pylist(), batch.column("detail").to_pylist(),
                                strict=True):
            if kind == "drift" and detail:
                d = json.loads(detail) if isinstance(detail, str) else dict(detail)
                if "model" in d:
                    self.on_drift(d)

    # ------------------------------------------------------------------ the step
    def step(self, now: datetime) -> list[str]:
        """Triggers, retraining and the managed decision for every model; returns what it did."""
        with self._lock:
            return self._step(now)

    def _step(self, now: datetime) -> list[str]:
        from inference.retrain import RetrainError, retrain

        self._take_drift()
        done: list[str] = []
        for name in self.reg.models():
            state = self.reg.state(name)
            if alias(state, self.scope, "champion") is None:
                continue
            mem = self._mem["models"].setdefault(name, {})
            if alias(state, self.scope, "challenger") is None:
                trigger = self._trigger(name, mem, now)
                if trigger is not None:
                    try:
                        pkg = retrain(self.reg, self.settings, name, self.dsn, self.kind_of, now=now,
                                      scope=self.scope, trigger=trigger, who=WHO)
                    except RetrainError as exc:
                        self.reg.audit("notice", name, None, {"scope": self.scope, "reason": str(exc)}, WHO)
                        done.append(f"{name}: retrain failed: {exc}")
                    else:
                        mem["challenger_since"] = now.isoformat()
                        done.append(f"{name}: v{pkg.version} retrained ({trigger}), in shadow")
                    mem["last_retrain"] = now.isoformat()
                    self._drift_trigger.discard(name)
            elif self.life.mode == "managed":
                done += self._decide(name, mem, now)
        self._save()
        self._publish()
        return done

    def _trigger(self, name: str, mem: dict[str, Any], now: datetime) -> str | None:
        from inference.history import count_labels

        last = datetime.fromisoformat(mem["last_retrain"]) if "last_retrain" in mem else None
        if last is not None and (now - last).total_seconds() < self.life.min_interval_s:
            return None
        if name in self._drift_trigger:
            return "drift"
        pkg = self.reg.package(name, alias(self.reg.state(name), self.scope, "champion"))
        assets = list(pkg.manifest.get("assets") or [])
        n = self.life.false_alarm_labels
        if n and assets and count_labels(self.dsn, assets, "false_alarm", last) >= n:
            return f"{n} false-alarm labels"
        if self.life.schedule_s:
            # the first schedule counts from when the manager first saw the model
            first = datetime.fromisoformat(mem.setdefault("seen_since", now.isoformat()))
            if (now - (last or first)).total_seconds() >= self.life.schedule_s:
                return "schedule"
        return None

    def _decide(self, name: str, mem: dict[str, Any], now: datetime) -> list[str]:
        from inference.gate import run_gate

        since = datetime.fromisoformat(mem.get("challenger_since", now.isoformat()))
        if (now - since).total_seconds() < self.life.shadow_s:
            return []
        state = self.reg.state(name)
        champ_v, chall_v = alias(state, self.scope, "champion"), alias(state, self.scope, "challenger")
        champ, chall = self.reg.package(name, champ_v), self.reg.package(name, chall_v)
        assets = list(chall.manifest.get("assets") or [])
        gate = run_gate(chall, self.dsn, assets, since, now, self.settings, self.make_runtime)
        self.reg.record_gate(name, str(chall_v), gate, who=WHO)
        base = run_gate(champ, self.dsn, assets, since, now, self.settings, self.make_runtime)
        why = better(gate, base)
        mem.pop("challenger_since", None)
        if gate["passed"] and why is None:
            reason = (f"managed: v{chall_v} passed its gate and beats v{champ_v} on the false-alarm rate "
                      f"({gate['false_alarm_rate']:.2%} < {base['false_alarm_rate']:.2%}) over the shadow "
                      "period")
            self.reg.promote(name, str(chall_v), scope=self.scope, reason=reason, who=WHO)
            return [f"{name}: v{chall_v} promoted"]
        reason = "; ".join(gate["reasons"]) if not gate["passed"] else str(why)
        self.reg.audit("notice", name, str(chall_v), {
            "scope": self.scope, "reason": f"managed: v{chall_v} stays challenger: {reason}",
            "champion": champ_v, "champion_far": base["false_alarm_rate"],
            "challenger_far": gate["false_alarm_rate"],
        }, WHO)
        return [f"{name}: v{chall_v} kept as challenger ({reason})"]

    # ------------------------------------------------------------------ messages
    def _flush_audit(self) -> None:
        log = self.reg.audit_log()
        for entry in log[int(self._mem["audit_seen"]):]:
            msg = from_audit(entry)
            if msg is not None:
                self._pending.append(msg)
        self._mem["audit_seen"] = len(log)

    def publish(self) -> None:
        """Publish the messages of what happened since the last step (e.g. an engineer's rollback)."""
        with self._lock:
            self._publish()

    def _publish(self) -> None:
        self._take_drift()
        self._flush_audit()
        if self.notifier is not None and self._pending:
            self.notifier.publish(self._pending)
        self._pending = []
        self._save()


def better(challenger: dict[str, Any], champion: dict[str, Any]) -> str | None:
    """None when the challenger is better on the agreed metric, else why not."""
    c, b = challenger.get("false_alarm_rate"), champion.get("false_alarm_rate")
    if c is None or b is None:
        return "no normal windows in the shadow period to compare false-alarm rates on"
    if c >= b:
        return f"its false-alarm rate {c:.2%} is not below the champion's {b:.2%}"
    cd, bd = challenger.get("detection_rate"), champion.get("detection_rate")
    if cd is not None and bd is not None and cd < bd:
        return f"it detects fewer labelled faults ({cd:.0%} < {bd:.0%})"
    return None


class LifecycleComponent:
    """Supervisor component: ``ModelLifecycle.step`` every ``interval_s`` on the wall clock, in a worker
    thread (retraining waits for its child process there, not on the event loop)."""

    role = "sink"

    def __init__(self, manager: ModelLifecycle, interval_s: float, name: str = "model-lifecycle") -> None:
        self.manager = manager
        self.interval_s = interval_s
        self.name = name
        self._stop = asyncio.Event()

    async def run(self) -> None:
        self._stop = asyncio.Event()
        while not self._stop.is_set():
            for line in await asyncio.to_thread(self.manager.step, datetime.now(UTC)):
                log.info("model lifecycle: %s", line)
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._stop.wait(), self.interval_s)

    async def stop(self) -> None:
        self._stop.set()
