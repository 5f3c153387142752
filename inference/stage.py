"""The pipeline's inference stage: contextualized samples in, features and insights out.

``InferenceStage`` (a supervisor component, role "stage") reads CONTEXTUALIZED_SAMPLES Envelopes from its
inbox, windows them per equipment (``inference.windows``; adding samples and closing windows run in a worker
thread, one at a time, so a heavy tick does not stall the event loop), and ticks as soon as a watermark
passed a window's end (after the batch that moved it; every ``tick_s`` as well, for the wall-clock rule
that closes the windows of equipment gone quiet). A tick computes the features of every closed window
(Numba kernels, in a worker thread via ``asyncio.to_thread``) and runs each model **once** over the
windows of all equipment (one runtime call per model per tick). It emits, per
model, an Envelope of kind "insights", then one of kind "features" (plus kind "events" for runtime fallbacks
and drift) through ``emit``. ``warmed`` is set once the kernels are compiled and scoring can start.

At start it emits one "events" Envelope with a ``runtime`` event per deployed model (model, version, sha256,
runtime, providers requested and in use, asset scope: what the TUI's models screen shows), and one with the
registry's audit entries (``audit.jsonl``, kind ``audit``, via ``inference.packages.audit_batch``) newer than
the last ones committed: that Envelope's ack (run once the historian committed or spooled it) records the
timestamp of its last entry in ``<models_dir>/audit.emitted``; its batch id is that of its entries, so a
second emission of the same entries before the ack is stored once.

Batch ids are deterministic: blake2b of the kind, the model and version (insights), and the sorted
(asset, window start, window end) keys of the batch, so a replay of the same samples gives the same ids.

The stage is a side branch: it never calls the acks of its input Envelopes (the historian path owns them),
and its own Envelopes carry no acks, except the audit one (above).
"""

from __future__ import annotations

import asyncio
import inspect
import logging
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from operator import attrgetter
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa

from edge.core.component import Emit
from edge.core.datamodel import WINDOW_MISSING_FEATURE
from edge.core.envelope import Envelope, batch_id_for
from inference.deploy import DeployedModel, RuntimeFactory, load_models
from inference.explain.features import explained
from inference.regimes import model_inputs as regime_inputs
from inference.settings import InferenceSettings
from inference.shadow import with_role
from inference.stage_events import events_batch, runtime_events
from inference.warmup import warm_up
from inference.windows import GATING_FLAGS, Window, Windower, WindowSpec

log = logging.getLogger("inference.stage")
LATE_LOG_INTERVAL_S = 60.0
FLUSH_US = 2**62  # a wall time past every window: closes all of them

__all__ = ["DeployedModel", "InferenceStage", "TickResult", "warm_up", "window_columns"]


@dataclass
class TickResult:
    features: pa.RecordBatch | None = None
    insights: list[tuple[str, str, pa.RecordBatch]] = field(default_factory=list)  # (model, version, batch)
    events: list[tuple[str, str, dict[str, Any]]] = field(default_factory=list)


class InferenceStage:
    role = "stage"

    def __init__(
        self,
        settings: InferenceSettings,
        inbox: asyncio.Queue[Envelope],
        emit: Emit,
        *,
        models: Sequence[DeployedModel] | None = None,
        make_runtime: RuntimeFactory | None = None,
        name: str = "inference",
        clock: Callable[[], float] = time.time,
    ) -> None:
        """``models``: deployed models; None loads the promoted ones from ``settings.models_dir``, each with
        the runtime ``make_runtime`` (required then) builds for it.
        ``emit`` is called (and awaited if it returns an awaitable) with each output Envelope.
        ``clock`` gives wall time in seconds (for closing the windows of equipment that went quiet)."""
        from inference.feature_drift import drift_monitor
        from inference.features import FeatureExtractor
        from inference.quality_watch import QualityWatch
        from inference.severity import SeverityTracker

        self.name = name
        self.settings = settings
        self.inbox = inbox
        self.emit = emit
        self.clock = clock
        self._events: list[tuple[str, str, dict[str, Any]]] = []
        if models is None:
            if make_runtime is None:
                raise TypeError("InferenceStage needs models or a make_runtime to load them with")
            models = load_models(settings, self._on_event, make_runtime=make_runtime)
        self.models = list(models)
        self.windower = Windower(WindowSpec.from_settings(settings))
        self.extractor = FeatureExtractor(
            settings.grid_hz, settings.spectral_signals, settings.n_bands, settings.feature_threads
        )
        self.tracker = SeverityTracker(
            settings.warning_ratio, settings.clear_ratio, settings.hysteresis_windows
        )
        # challengers keep their own severity state: a shadow score must not move the champion's level
        self.shadow_tracker = SeverityTracker(
            settings.warning_ratio, settings.clear_ratio, settings.hysteresis_windows
        )
        self.quality_watch = QualityWatch(settings.grid_hz)  # gap and flatline events per signal
        self.drift = {m.name: drift_monitor(m) for m in self.models if m.role == "champion"}
        self._stopping = asyncio.Event()
        self.warmed = asyncio.Event()  # set once the kernels are compiled: scoring starts then
        # the windower is changed by one worker thread at a time (add and ready run off the event loop)
        self._windowing = asyncio.Lock()
        self.stats = {
            "envelopes": 0, "samples": 0, "windows": 0, "insights": 0, "ticks": 0, "late_dropped": 0,
        }
        self._late_logged_at = -float("inf")  # monotonic time of the last late-samples warning
        for m in self.models:
            log.info(
                "model deployed",
                extra={"model": m.name, "version": m.package.version, "runtime": m.runtime.describe()},
            )

    def _on_event(self, kind: str, message: str, detail: dict[str, Any]) -> None:
        self._events.append((kind, message, detail))

    def describe(self) -> list[dict[str, Any]]:
        return [
            {
                "model": m.name,
                "version": m.package.version,
                "sha256": m.package.sha256,
                "runtime": m.runtime.describe(),
            }
            for m in self.models
        ]

    def runtime_events(self) -> list[tuple[str, str, dict[str, Any]]]:
        """One ``runtime`` event per deployed model: what runs it, where (providers), for which equipment."""
        return runtime_events(self.models)

    def _audit_marker(self) -> Path:
        return Path(self.settings.models_dir) / "audit.emitted"

    def pending_audit(self) -> list[dict[str, Any]]:
        """The registry's audit entries newer than the last ones committed (all of them the first time)."""
        from inference.packages import Registry

        marker = self._audit_marker()
        try:
            last = marker.read_text().strip() if marker.exists() else ""
            entries = Registry(self.settings.models_dir).audit_log()
        except (OSError, ValueError):
            log.warning("cannot read the model registry's audit log", exc_info=True)
            return []
        return [e for e in entries if str(e.get("ts", "")) > last]

    async def emit_start_events(self) -> None:
        """Runtime events of the deployed models, then the registry audit entries not emitted yet."""
        from inference.packages import audit_batch

        events = runtime_events(self.models)
        if events:
            started = datetime.now(UTC).isoformat()
            ids = [(d["model"], d["version"], d["runtime"]) for _, _, d in events]
            await self._emit(
                Envelope("events", events_batch(events, self.name),
                         batch_id_for("events", self.name, "runtime", started, *ids))
            )
        audit = self.pending_audit()
        if audit:
            keys = [(e["ts"], e["action"], e["model"], e["version"]) for e in audit]
            last = max(str(e["ts"]) for e in audit)

            def committed() -> None:  # the entries are in the historian (or spooled): not again
                try:
                    self._audit_marker().write_text(last + "\n")
                except OSError:
                    log.warning("cannot record the last emitted audit entry", exc_info=True)

            await self._emit(
                Envelope("events", audit_batch(audit), batch_id_for("events", "audit", *keys), [committed])
            )

    # ------------------------------------------------------------------ the loop
    async def run(self) -> None:
        await self.emit_start_events()
        # Samples are windowed from the start; scoring waits until the kernels are compiled (see warm_up)
        warm = asyncio.create_task(warm_up())
        warm.add_done_callback(lambda _: self.warmed.set())
        tick = self.settings.tick_s
        next_tick = time.monotonic() + tick
        while not self._stopping.is_set():
            # at most a second between looks at ``_stopping``, whatever ``tick_s``
            timeout = min(max(0.0, next_tick - time.monotonic()), 1.0) if warm.done() else 0.1
            try:
                env = await asyncio.wait_for(self.inbox.get(), timeout)
            except TimeoutError:
                env = None
            if env is not None:
                await self._accept_queued([env])
            # event-driven: score as soon as a watermark passed a window's end; the tick stays for the
            # wall-clock rule (windows of equipment that went quiet close on time, not on data)
            due = warm.done() and (time.monotonic() >= next_tick or self.windower.watermark_passed())
            if due:
                next_tick = time.monotonic() + tick
                await self.tick()
        # drain what is queued, then score what has closed (event clock: every open window, the end of
        # a replay)
        await self._accept_queued([])
        await warm
        await self.tick(FLUSH_US if self.settings.clock == "event" else None)

    async def stop(self) -> None:
        self._stopping.set()

    async def _accept_queued(self, envs: list[Envelope], most: int = 64) -> None:
        """Window ``envs`` and the Envelopes queued behind them (up to ``most`` in all), in queue order, in
        a worker thread: ``Windower.add`` of many equipment's samples must not stall the sources and sinks
        sharing the event loop."""
        while len(envs) < most:
            try:
                envs.append(self.inbox.get_nowait())
            except asyncio.QueueEmpty:
                break
        if not envs:
            return
        try:
            async with self._windowing:
                await asyncio.to_thread(self._accept_all, envs)
        finally:
            for _ in envs:
                self.inbox.task_done()

    def _accept_all(self, envs: Sequence[Envelope]) -> None:
        for env in envs:
            self._accept(env)

    def _accept(self, env: Envelope) -> None:
        if env.kind != "samples" or "asset" not in env.batch.schema.names:
            return  # only contextualized samples can be windowed per equipment
        self.windower.add(env.batch)
        self.stats["envelopes"] += 1
        self.stats["samples"] += env.num_rows

    async def tick(self, now_us: int | None = None) -> TickResult:
        """Close ready windows, featurize and score them, and emit the results. ``clock = "event"``: windows
        close by the watermark only (``now_us``, when given, still closes those it passed)."""
        if now_us is not None:
            now: int | None = now_us
        else:
            now = None if self.settings.clock == "event" else int(self.clock() * 1e6)
        # closing windows (grid filling per window) is heavy with many equipment: in a worker thread, one
        # at a time with ``add`` (the lock), so the event loop stays free
        async with self._windowing:
            windows = await asyncio.to_thread(self.windower.ready, now)
        self.stats["ticks"] += 1
        self._count_late()
        if not windows:
            return TickResult()
        result = await asyncio.to_thread(self.process, windows)
        await self._emit_result(result, windows)
        return result

    def _count_late(self) -> None:
        """Samples the windower dropped as late since the last tick: the ``inference late_dropped`` counter
        and a warning at most once a minute."""
        from edge.core.metrics import METRICS

        n = self.windower.late_dropped - self.stats["late_dropped"]
        if n <= 0:
            return
        self.stats["late_dropped"] += n
        METRICS.inc("inference", "late_dropped", n)
        t = time.monotonic()
        if t - self._late_logged_at >= LATE_LOG_INTERVAL_S:
            self._late_logged_at = t
            log.warning(
                "late samples dropped: their windows had closed already",
                extra={"late_dropped": n, "late_dropped_total": self.stats["late_dropped"],
                       "clock": self.settings.clock,
                       "hint": "replaying history? set inference.clock = 'event' and quality.accept_past"},
            )

    def process(self, windows: Sequence[Window]) -> TickResult:
        """Features and insights of ``windows`` (runs in a worker thread): one runtime call per model."""
        from inference.features import features_batch, model_inputs_from_matrix
        from inference.insights import build_insights

        names, values, n_valid = self.extractor.matrix(windows)
        features = features_batch(windows, names, values, n_valid)
        flags = features.column("flags").to_numpy(zero_copy_only=False).astype(np.int64)
        res = TickResult(features=features)
        assets, starts, ends, contexts = window_columns(windows)
        for m in self.models:
            picked = m.rows_for(assets)  # the model's equipment and alias scope
            every = picked is None
            rows = np.arange(len(windows)) if picked is None else picked
            if rows.size == 0:
                continue
            x, missing = model_inputs_from_matrix(
                names, values if every else values[rows], m.package.features
            )
            sub_assets = assets if every else [assets[i] for i in rows]
            ctx = contexts if every else [contexts[i] for i in rows]
            fed, regime_flags = regime_inputs(m.package.manifest, x, ctx)  # standardized per product, if set
            out = m.runtime.infer(fed)  # one call per model per tick, every equipment together
            outs = m.package.output_names
            scores = np.asarray(out[outs.get("score", "score")], dtype=np.float64).reshape(-1)
            contrib = out.get(outs.get("contributions", "contributions"))
            mflags = np.where(missing, flags[rows] | WINDOW_MISSING_FEATURE, flags[rows]) | regime_flags
            gate = (mflags & GATING_FLAGS) != 0  # inference.windows.gated, for every row at once
            champion = m.role == "champion"
            batch = build_insights(
                model=m.name,
                version=m.package.version,
                sha256=m.package.sha256,
                threshold=m.package.threshold,
                feature_names=m.package.features,
                assets=sub_assets,
                window_start_us=starts if every else starts[rows],
                window_end_us=ends if every else ends[rows],
                scores=scores,
                contributions=None if contrib is None else np.asarray(contrib),
                flags=mflags,
                gated=gate,
                contexts=ctx,
                tracker=self.tracker if champion else self.shadow_tracker,
                k=self.settings.top_features,
            )
            # raised rows say why: the leading features against the training baseline (inference.explain)
            scored = explained((m.name, m.package.version, with_role(batch, m.role)), m.package.manifest, x,
                               contrib, self.settings.top_features)
            res.insights.append(scored)
            if champion:  # a challenger's drift is not the plant's
                for ev in self.drift[m.name].observe(x, m.package.features, scores, gate, sub_assets):
                    res.events.append(("drift", str(ev.pop("message")), ev))
        res.events.extend(self.quality_watch.update(windows))
        res.events.extend(self._events)
        self._events.clear()
        self.stats["windows"] += len(windows)
        self.stats["insights"] += sum(b.num_rows for _, _, b in res.insights)
        return res

    async def _emit_result(self, res: TickResult, windows: Sequence[Window]) -> None:
        # insights first: MES waits for them; the features envelope (and its wait for room in a backlogged
        # historian queue) comes after
        for model, version, batch in res.insights:
            ikeys = sorted(
                zip(batch.column("asset").to_pylist(), batch.column("insight_id").to_pylist(), strict=True)
            )
            await self._emit(Envelope("insights", batch, batch_id_for("insights", model, version, *ikeys)))
        keys = sorted((w.asset, w.start_us, w.end_us) for w in windows)
        if res.features is not None:
            await self._emit(Envelope("features", res.features, batch_id_for("features", *keys)))
        if res.events:
            await self._emit(
                Envelope(
                    "events",
                    events_batch(res.events, self.name),
                    batch_id_for("events", self.name, *keys, len(res.events)),
                )
            )

    async def _emit(self, env: Envelope) -> None:
        r = self.emit(env)
        if inspect.isawaitable(r):
            await r


def window_columns(
    windows: Sequence[Window],
) -> tuple[list[str], np.ndarray, np.ndarray, list[dict[str, str | None]]]:
    """The windows' assets, starts, ends (int64 µs) and contexts: what ``build_insights`` takes per tick."""
    n = len(windows)
    assets = list(map(attrgetter("asset"), windows))
    starts = np.fromiter(map(attrgetter("start_us"), windows), dtype=np.int64, count=n)
    ends = np.fromiter(map(attrgetter("end_us"), windows), dtype=np.int64, count=n)
    return assets, starts, ends, list(map(attrgetter("context"), windows))


