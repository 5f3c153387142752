"""Training options of the ``autoencoder`` kind."""

from __future__ import annotations

from pydantic import Field

from inference.models.base import KindSettings


class AutoencoderSettings(KindSettings):
    hidden: int = Field(64, ge=1, description="units of the hidden layer on each side of the code")
    code: int = Field(0, ge=0, description="units of the bottleneck; 0: max(1, features // 4)")
    epochs: int = Field(300, ge=1, description="most passes over the training windows")
    patience: int = Field(20, ge=1, description="epochs without a better validation loss before stopping")
    validation: float = Field(
        0.1, gt=0, lt=0.5, description="share of the training windows (the last ones) held out to stop early"
    )
    batch_size: int = Field(64, ge=1)
    lr: float = Field(1e-3, gt=0, description="Adam learning rate")
    weight_decay: float = Field(0.0, ge=0, description="Adam weight decay (L2)")
