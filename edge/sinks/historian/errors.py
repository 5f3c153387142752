"""The writer's errors, and which one a psycopg error becomes.

`HistorianUnavailable` means "try again later" (the caller spools the batch); `HistorianWriteError` means the
batch itself was refused, so retrying the same batch will not help.
"""

from __future__ import annotations

import psycopg

from edge.core.envelope import Envelope


class HistorianError(Exception):
    """Base of the writer's errors."""


class HistorianUnavailable(HistorianError):
    """The historian cannot be reached now (connect failed, connection broke, timeout). Spool and retry."""


class HistorianWriteError(HistorianError):
    """The historian refused this batch (data or schema problem). Retrying the same batch will not help."""


def classify_error(exc: psycopg.Error, env: Envelope) -> HistorianError:
    """Map a psycopg error to unavailable (retry later) or write error (the batch itself)."""
    if isinstance(exc, psycopg.OperationalError | psycopg.InterfaceError | psycopg.errors.QueryCanceled):
        return HistorianUnavailable(f"historian unavailable while writing {env.kind} batch {env.batch_id}: "
                                    f"{type(exc).__name__}: {exc}")
    return HistorianWriteError(f"historian refused {env.kind} batch {env.batch_id} ({env.num_rows} rows): "
                               f"{type(exc).__name__}: {exc}")
