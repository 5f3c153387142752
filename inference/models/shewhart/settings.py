"""Training options of the ``shewhart`` kind (only the ones every kind has)."""

from __future__ import annotations

from inference.models.base import KindSettings


class ShewhartSettings(KindSettings):
    pass
