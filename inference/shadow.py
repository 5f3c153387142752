"""Shadow runs: a challenger scores the same windows as the champion; its insight rows carry
``role = 'challenger'``. The historian stores them (``insights.role``, migration 0020) and keeps them out of
the MQTT outbox, so MES never sees them; their severity is tracked apart from the champion's and raises no
alarm anywhere. Champion batches keep the plain INSIGHTS schema (the table's default role is champion)."""

from __future__ import annotations

import pyarrow as pa

ROLE_COLUMN = "role"


def with_role(batch: pa.RecordBatch, role: str) -> pa.RecordBatch:
    """``batch`` as is for the champion; with a ``role`` column for a challenger."""
    if role == "champion":
        return batch
    return batch.append_column(ROLE_COLUMN, pa.array([role] * batch.num_rows, type=pa.string()))


def role_of(batch: pa.RecordBatch) -> str:
    if ROLE_COLUMN not in batch.schema.names or batch.num_rows == 0:
        return "champion"
    return str(batch.column(ROLE_COLUMN)[0].as_py())
