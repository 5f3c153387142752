"""Compiling the Numba kernels the stage runs (features, insight rows) before its first tick."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import sys
import time

log = logging.getLogger("inference.stage")


async def warm_up() -> None:
    """Compile the Numba kernels the stage runs without stalling this process: a child process compiles
    them into Numba's on-disk cache (a cold compile in this process would hold the GIL that the sources and
    sinks need for a long time), then this process loads them from the cache in a worker thread. Without a
    writable cache the load compiles here."""
    t0 = time.monotonic()
    try:
        child = await asyncio.create_subprocess_exec(
            sys.executable, "-c", "from inference.warmup import compile_kernels; compile_kernels()",
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
    from inference.rfft_kernel import warm_up as warm_up_rfft
    from inference.window_kernel import warm_up as warm_up_windows

    with contextlib.suppress(Exception):
        warm_up_features()
        warm_up_rfft()
        warm_up_insights()
        warm_up_windows()
