"""``[inference.lifecycle]``: when a model is retrained on the box, and what happens to the candidate."""

from __future__ import annotations

from typing import Literal

from pydantic import Field

from edge.core.settings import Section


class LifecycleSettings(Section):
    """Retraining triggers and the candidate's path (``inference.retrain``, ``inference.lifecycle``)."""

    enabled: bool = Field(False, description="run the lifecycle manager beside the pipeline")
    mode: Literal["manual", "managed"] = Field(
        "manual",
        description="manual: a candidate waits as challenger in shadow and engineers decide; managed: after "
        "shadow_s it is promoted only if its gate passes and it compares better, else a notice says why",
    )
    lookback_s: float = Field(7 * 86400.0, gt=0, description="history a candidate is trained on")
    min_good_windows: int = Field(200, ge=20, description="fewest ungated, unlabelled-fault windows to train")
    min_interval_s: float = Field(86400.0, ge=0, description="at most one retrain per model in this time")
    on_drift: bool = Field(True, description="a drift episode triggers a retrain")
    false_alarm_labels: int = Field(5, ge=0, description="this many false-alarm labels trigger one; 0: off")
    schedule_s: float = Field(0.0, ge=0, description="retrain every this long; 0: no schedule")
    shadow_s: float = Field(86400.0, gt=0, description="managed: shadow period before the decision")
    metric: Literal["false_alarm_rate"] = Field(
        "false_alarm_rate",
        description="the agreed metric: a lower false-alarm rate replayed over the shadow period, detection "
        "no worse",
    )
    nice: int = Field(10, ge=0, le=19, description="niceness of the training child process")
    memory_mb: int = Field(4096, ge=256, description="address-space limit of the training child (RLIMIT_AS)")
    timeout_s: float = Field(1800.0, gt=0, description="the training child is stopped after this")
    check_interval_s: float = Field(300.0, gt=0, description="how often the manager looks at its triggers")
