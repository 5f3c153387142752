"""Owns every component: starts them, restarts a failed one with backoff (recording an event), and stops
them in order on SIGTERM or Ctrl-C: sources first, then stages once their queues drain, then sinks.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import signal
import time
from dataclasses import dataclass, field

from edge.core.component import Component, EventHook, Role

log = logging.getLogger("edge.core.supervisor")

STOP_ORDER: tuple[Role, ...] = ("source", "stage", "sink")


@dataclass
class ComponentState:
    component: Component
    task: asyncio.Task[None] | None = None
    restarts: int = 0
    last_error: str | None = None
    healthy: bool = False
    started_at: float = 0.0


@dataclass
class Supervisor:
    backoff_min_s: float = 0.5
    backoff_max_s: float = 30.0
    shutdown_timeout_s: float = 8.0
    on_event: EventHook | None = None
    states: dict[str, ComponentState] = field(default_factory=dict)
    _stopping: bool = False
    _stop_requested: asyncio.Event = field(default_factory=asyncio.Event)

    def add(self, component: Component) -> None:
        if component.name in self.states:
            raise ValueError(f"two components are named {component.name!r}")
        self.states[component.name] = ComponentState(component)

    def request_stop(self) -> None:
        self._stop_requested.set()

    async def run(self, duration_s: float | None = None) -> None:
        """Start everything, wait for a stop request (signal, duration, ``request_stop``), stop in order."""
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            with contextlib.suppress(NotImplementedError, RuntimeError):
                loop.add_signal_handler(sig, self.request_stop)
        for state in self.states.values():
            state.task = asyncio.create_task(self._keep_running(state), name=state.component.name)
        try:
            if duration_s is not None:
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._stop_requested.wait(), duration_s)
            else:
                await self._stop_requested.wait()
        finally:
            await self.shutdown()
            for sig in (signal.SIGINT, signal.SIGTERM):
                with contextlib.suppress(NotImplementedError, RuntimeError):
                    loop.remove_signal_handler(sig)

    async def shutdown(self) -> None:
        if self._stopping:
            return
        self._stopping = True
        deadline = time.monotonic() + self.shutdown_timeout_s
        for role in STOP_ORDER:
            group = [s for s in self.states.values() if s.component.role == role]
            for state in group:
                try:
                    await asyncio.wait_for(state.component.stop(), max(0.1, deadline - time.monotonic()))
                except Exception as exc:  # a failing stop must not block the others
                    log.warning("stop failed", extra={"component": state.component.name, "error": repr(exc)})
            tasks = [s.task for s in group if s.task is not None]
            if tasks:
                _, pending = await asyncio.wait(tasks, timeout=max(0.1, deadline - time.monotonic()))
                for task in pending:
                    log.warning("component did not stop in time; cancelled",
                                extra={"component": task.get_name()})
                    task.cancel()
                if pending:
                    await asyncio.wait(pending, timeout=1.0)

    async def _keep_running(self, state: ComponentState) -> None:
        backoff = self.backoff_min_s
        name = state.component.name
        while not self._stopping:
            state.started_at = time.monotonic()
            state.healthy = True
            try:
                await state.component.run()
                state.healthy = False
                return  # a clean return means the component is done
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                state.healthy = False
                state.restarts += 1
                state.last_error = f"{type(exc).__name__}: {exc}"
                if self._stopping:
                    return
                if time.monotonic() - state.started_at > 60:
                    backoff = self.backoff_min_s  # it ran a good while: start the backoff over
                log.error("component failed; restarting", extra={
                    "component": name, "error": state.last_error, "restart_in_s": backoff,
                })
                self._event("supervisor", f"{name} failed and restarts in {backoff:.1f}s",
                            {"component": name, "error": state.last_error, "restarts": state.restarts})
                try:
                    await asyncio.wait_for(self._stop_requested.wait(), backoff)
                    return
                except TimeoutError:
                    pass
                backoff = min(backoff * 2, self.backoff_max_s)

    def _event(self, kind: str, message: str, detail: dict[str, object]) -> None:
        if self.on_event is not None:
            try:
                self.on_event(kind, message, detail)
            except Exception:
                log.exception("event hook failed")
