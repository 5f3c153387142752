"""Training options of the ``knn`` kind."""

from __future__ import annotations

from pydantic import Field

from inference.models.base import KindSettings


class KnnSettings(KindSettings):
    k: int = Field(5, ge=1, description="neighbours the score averages the distance over")
    max_reference: int = Field(
        4000, ge=1, description="training windows the graph keeps (a random subsample, by seed, above it)"
    )
