"""Windows are scored when their watermark passes, not on the stage's fixed tick: with a tick of an hour, the
insights of a batch that closes windows still come out while the stage runs."""

from __future__ import annotations

import asyncio
from pathlib import Path

from edge.core.envelope import Envelope
from inference.windows import Windower, WindowSpec
from tests.fixtures.delivery_helpers import async_wait_until
from tests.inference.test_features_windows import T0, US, regular
from tests.inference.test_insights import _registry_with_model, onnx_stage


def test_watermark_passed_says_when_ready_has_work() -> None:
    w = Windower(WindowSpec(window_s=10, hop_s=10, grid_hz=1, allowed_lateness_s=2))
    assert not w.watermark_passed()  # nothing seen yet
    w.add(regular(11))  # newest sample T0+10 s: watermark T0+8 s, before the first window's end
    assert not w.watermark_passed()
    w.add(regular(3, start=T0 + 11 * US))  # newest T0+13 s: watermark T0+11 s passed T0+10 s
    assert w.watermark_passed()
    assert [(x.start_us - T0) // US for x in w.ready()] == [0]
    assert not w.watermark_passed()  # handed out: nothing left to close


async def test_stage_scores_closed_windows_without_waiting_for_the_tick(tmp_path: Path) -> None:
    settings = _registry_with_model(tmp_path).model_copy(update={"tick_s": 3600.0})
    inbox: asyncio.Queue[Envelope] = asyncio.Queue()
    out: list[Envelope] = []
    # wall clock at the epoch: the idle rule never closes a window here, only the watermark can
    stage = onnx_stage(settings, inbox, out.append, clock=lambda: 0.0)
    task = asyncio.create_task(stage.run())
    try:
        await inbox.put(Envelope("samples", regular(41, asset="eq/A"), "b1"))  # watermark T0+40 s
        await async_wait_until(lambda: any(e.kind == "insights" for e in out), 60,
                               "insights before the hour-long tick")
        scored = [r for e in out if e.kind == "insights" for r in e.batch.to_pylist()]
        assert [(r["window_start"].timestamp() * US - T0) // (10 * US) for r in scored] == [0, 1, 2, 3]
        assert not stage._stopping.is_set()  # scored while running, not by the flush at stop

        # the next batch moves the watermark past one more window end: scored, again without the tick
        await inbox.put(Envelope("samples", regular(10, asset="eq/A", start=T0 + 41 * US), "b2"))
        await async_wait_until(lambda: sum(e.kind == "insights" for e in out) >= 2, 60,
                               "the fifth window's insight")
        last = [e for e in out if e.kind == "insights"][-1].batch.to_pylist()
        assert [(r["window_start"].timestamp() * US - T0) // (10 * US) for r in last] == [4]
    finally:
        await stage.stop()
        await asyncio.wait_for(task, 60)
