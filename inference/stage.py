"""The pipeline's inference stage: contextualized samples in, features and insights out.

``InferenceStage`` (a supervisor component, role "stage") reads CONTEXTUALIZED_SAMPLES Envelopes from its
inbox, windows them per equipment (``inference.windows``; adding samples and closing windows run in a worker
thread, one at a time, so a heavy tick does not stall the event loop), and once per tick computes the
features of every closed window (Numba kernels, in a worker thread via ``asyncio.to_thread``) and runs each
model **once** over the windows of all equipment (one runtime call per model per tick). It emits an
Envelope of kind "features" and, per model, one of kind "insights" (plus kind "events" for runtime fallbacks
and drift) through ``emit``.

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
import contextlib
import inspect
import logging
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from operator import attrgetter
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa

from edge.core.component import Emit, EventHook
from edge.core.datamodel import WINDOW_MISSING_FEATURE
from edge.core.envelope import Envelope, batch_id_for
from inference.settings import InferenceSettings
from inference.windows import GATING_FLAGS, Window, Windower, WindowSpec

log = logging.getLogger("inference.stage")



@dataclass
class DeployedModel:
    """A loaded package and the runtime that scores it."""

    package: Any  # inference.packages.ModelPackage
    runtime: Any  # inference.runtimes.base.Runtime
    assets: frozenset[str] = frozenset()  # empty: every equipment

    @property
    def name(self) -> str:
        return str(self.package.name)


def make_runtime(
    settings: InferenceSettings, pkg: Any, on_event: EventHook | None = None
) -> Any:
    """The runtime the settings ask for: ONNX Runtime in process, or Triton (maybe with ONNX fallback)."""
    from inference.runtimes.onnx.runtime import OnnxRuntime

    def local() -> OnnxRuntime:
        return OnnxRuntime(
            pkg.onnx, providers=settings.providers, intra_op_threads=settings.intra_op_threads, name=pkg.name
        )

    if settings.runtime == "onnx":
        return local()
    from inference.runtimes.triton.runtime import TritonRuntime

    return TritonRuntime(
        pkg,
        url=settings.triton_url,
        protocol=settings.triton_protocol,
        timeout_s=settings.triton_timeout_s,
        retries=settings.triton_retries,
        fallback=local() if settings.triton_fallback_to_onnx else None,
        on_event=on_event,
    )


def check_window(pkg: Any, settings: InferenceSettings) -> None:
    """The features a model was trained on mean the same only with the same window length and grid."""
    from inference.packages import PackageError

    w = pkg.manifest.get("window") or {}
    for key in ("window_s", "grid_hz", "n_bands"):
        if key in w and float(w[key]) != float(getattr(settings, key)):
            raise PackageError(
                f"model {pkg.name} v{pkg.version} was trained with {key}={w[key]} but the "
                f"pipeline runs {key}={getattr(settings, key)}"
            )


def load_models(
    settings: InferenceSettings,
    on_event: EventHook | None = None,
) -> list[DeployedModel]:
    """The promoted version of every model (or of ``settings.models``) in the registry, with runtimes."""
    from inference.packages import Registry

    reg = Registry(settings.models_dir)
    names = settings.models or list(reg.current())
    out = []
    for name in names:
        pkg = reg.package(name)
        check_window(pkg, settings)
        out.append(
            DeployedModel(
                pkg, make_runtime(settings, pkg, on_event), frozenset(pkg.manifest.get("assets") or ())
            )
        )
    return out


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
        name: str = "inference",
        clock: Callable[[], float] = time.time,
    ) -> None:
        """``models``: deployed models; None loads the promoted ones from ``settings.models_dir``.
        ``emit`` is called (and awaited if it returns an awaitable) with each output Envelope.
        ``clock`` gives wall time in seconds (for closing the windows of equipment that went quiet)."""
        from inference.drift import DriftMonitor
        from inference.features import FeatureExtractor
        from inference.insights import SeverityTracker

        self.name = name
        self.settings = settings
        self.inbox = inbox
        self.emit = emit
        self.clock = clock
        self._events: list[tuple[str, str, dict[str, Any]]] = []
        self.models = list(models) if models is not None else load_models(settings, self._on_event)
        self.windower = Windower(WindowSpec.from_settings(settings))
        self.extractor = FeatureExtractor(
            settings.grid_hz, settings.spectral_signals, settings.n_bands, settings.feature_threads
        )
        self.tracker = SeverityTracker(
            settings.warning_ratio, settings.clear_ratio, settings.hysteresis_windows
        )
        self.drift = {
            m.name: DriftMonitor(m.name, m.package.manifest.get("metrics", {}).get("train_score_deciles", []))
            for m in self.models
        }
        self._stopping = asyncio.Event()
        # the windower is changed by one worker thread at a time (add and ready run off the event loop)
        self._windowing = asyncio.Lock()
        self.stats = {"envelopes": 0, "samples": 0, "windows": 0, "insights": 0, "ticks": 0}
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
        out = []
        for m in self.models:
            rt = m.runtime.describe()
            fallback = rt.get("fallback") or {}
            in_use = rt.get("providers_in_use")
            if in_use is None:
                in_use = fallback.get("providers_in_use", []) if rt.get("using_fallback") else []
            detail: dict[str, Any] = {
                "model": m.name,
                "version": str(m.package.version),
                "sha256": m.package.sha256,
                "runtime": rt.get("runtime", type(m.runtime).__name__),
                "providers_requested": rt.get("providers_requested", fallback.get("providers_requested", [])),
                "providers_in_use": in_use,
                "asset_scope": sorted(m.assets),  # empty: every equipment
            }
            if "using_fallback" in rt:
                detail["using_fallback"] = bool(rt["using_fallback"])
            where = ", ".join(in_use) if in_use else "remote"
            scope = f"{len(m.assets)} equipment" if m.assets else "all equipment"
            out.append(
                ("runtime", f"model {m.name} v{m.package.version} on {detail['runtime']} ({where}), {scope}",
                 detail)
            )
        return out

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

        events = self.runtime_events()
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
        tick = self.settings.tick_s
        next_tick = time.monotonic() + tick
        while not self._stopping.is_set():
            timeout = max(0.0, next_tick - time.monotonic()) if warm.done() else 0.1
            try:
                env = await asyncio.wait_for(self.inbox.get(), timeout)
            except TimeoutError:
                env = None
            if env is not None:
                await self._accept_queued([env])
            if time.monotonic() >= next_tick and warm.done():
                next_tick = time.monotonic() + tick
                await self.tick()
        # drain what is queued, then score what has closed
        await self._accept_queued([])
        await warm
        await self.tick()

    async def stop(self) -> None:
        self._stopping.set()

    async def _accept_queued(self, envs: list[Envelope], most: int = 64) -> None:
        """Window ``envs`` and the Envelopes queued behind them (up to ``most`` in all), in queue order, in
        a worker thread: ``Windower.add`` costs tens of ms for 10k samples of 256 equipment (BENCHMARKS.md),
        which must not stall the sources and sinks sharing the event loop."""
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
        """Close ready windows, featurize and score them, and emit the results."""
        now = now_us if now_us is not None else int(self.clock() * 1e6)
        # closing windows (grid filling per window) takes tens to hundreds of ms with many equipment: in a
        # worker thread, one at a time with ``add`` (the lock), so the event loop stays free
        async with self._windowing:
            windows = await asyncio.to_thread(self.windower.ready, now)
        self.stats["ticks"] += 1
        if not windows:
            return TickResult()
        result = await asyncio.to_thread(self.process, windows)
        await self._emit_result(result, windows)
        return result

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
            every = not m.assets
            rows = (
                np.arange(len(windows))
                if every
                else np.array([i for i, a in enumerate(assets) if a in m.assets], dtype=np.int64)
            )
            if rows.size == 0:
                continue
            x, missing = model_inputs_from_matrix(
                names, values if every else values[rows], m.package.features
            )
            out = m.runtime.infer(x)  # one call per model per tick, every equipment together
            outs = m.package.output_names
            scores = np.asarray(out[outs.get("score", "score")], dtype=np.float64).reshape(-1)
            contrib = out.get(outs.get("contributions", "contributions"))
            mflags = np.where(missing, flags[rows] | WINDOW_MISSING_FEATURE, flags[rows])
            gate = (mflags & GATING_FLAGS) != 0  # inference.windows.gated, for every row at once
            res.insights.append(
                (
                    m.name,
                    m.package.version,
                    build_insights(
                        model=m.name,
                        version=m.package.version,
                        sha256=m.package.sha256,
                        threshold=m.package.threshold,
                        feature_names=m.package.features,
                        assets=assets if every else [assets[i] for i in rows],
                        window_start_us=starts if every else starts[rows],
                        window_end_us=ends if every else ends[rows],
                        scores=scores,
                        contributions=None if contrib is None else np.asarray(contrib),
                        flags=mflags,
                        gated=gate,
                        contexts=contexts if every else [contexts[i] for i in rows],
                        tracker=self.tracker,
                        k=self.settings.top_features,
                    ),
                )
            )
            ok = ~gate
            for ev in self.drift[m.name].update(scores[ok]):
                res.events.append(("drift", str(ev.pop("message")), ev))
        res.events.extend(self._events)
        self._events.clear()
        self.stats["windows"] += len(windows)
        self.stats["insights"] += sum(b.num_rows for _, _, b in res.insights)
        return res

    async def _emit_result(self, res: TickResult, windows: Sequence[Window]) -> None:
        keys = sorted((w.asset, w.start_us, w.end_us) for w in windows)
        if res.features is not None:
            await self._emit(Envelope("features", res.features, batch_id_for("features", *keys)))
        for model, version, batch in res.insights:
            ikeys = sorted(
                zip(batch.column("asset").to_pylist(), batch.column("insight_id").to_pylist(), strict=True)
            )
            await self._emit(Envelope("insights", batch, batch_id_for("insights", model, version, *ikeys)))
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


async def warm_up() -> None:
    """Compile the Numba kernels the stage runs without stalling this process: a child process compiles
    them into Numba's on-disk cache (on a cold cache that takes tens of seconds of CPU here, which in this
    process would hold the GIL that the sources and sinks need), then this process loads them from the cache
    in a worker thread (about a second). Without a writable cache the load compiles here as before."""
    t0 = time.monotonic()
    try:
        child = await asyncio.create_subprocess_exec(
            sys.executable, "-c", "from inference.stage import compile_kernels; compile_kernels()",
            stdin=asyncio.subprocess.DEVNULL, stdout=asyncio.subprocess.DEVNULL,
            stderr=asyncio.subprocess.DEVNULL,
        )
        try:
            await child.wait()
        except asyncio.CancelledError:
            with contextlib.suppress(ProcessLookupError):
                child.kill()
            raise
    except OSError:
        log.warning("cannot compile the kernels in a child process; compiling here", exc_info=True)
    await asyncio.to_thread(compile_kernels)
    log.info("inference kernels ready", extra={"seconds": round(time.monotonic() - t0, 2)})


def compile_kernels() -> None:
    """Compile (or load from Numba's cache) the feature and insight kernels with the stage's types."""
    from inference.insights import warm_up as warm_up_insights
    from inference.kernels import warm_up as warm_up_features

    with contextlib.suppress(Exception):
        warm_up_features()
        warm_up_insights()


def events_batch(events: Sequence[tuple[str, str, dict[str, Any]]], source: str) -> pa.RecordBatch:
    from edge.core.datamodel import event_row
    from edge.core.datamodel import events_batch as to_batch

    now = datetime.now(UTC)
    return to_batch([event_row(kind, msg, detail, source=source, asset=detail.get("asset"), ts=now)
                     for kind, msg, detail in events])
