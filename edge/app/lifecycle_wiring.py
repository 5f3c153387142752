"""The model lifecycle manager as the pipeline runs it: the historian it reads (with the writer's
password), the model kinds and runtimes of the plugin tables, and lifecycle messages on the appliance's
broker."""

from __future__ import annotations

from typing import Any

from inference.lifecycle import LifecycleNotifier
from inference.lifecycle_manager import LifecycleComponent, ModelLifecycle


def lifecycle_component(config: Any, dsn: str, broker: Any) -> LifecycleComponent:
    """``dsn`` and ``broker``: the pipeline's (its overrides applied)."""
    from psycopg.conninfo import make_conninfo

    from edge.app.plugins import make_runtime, model_kind

    if config.historian.password is not None:
        dsn = make_conninfo(dsn, password=config.historian.password.resolve())
    notifier = LifecycleNotifier(broker)
    manager = ModelLifecycle(config.inference, dsn, model_kind, make_runtime, notifier)
    return LifecycleComponent(manager, config.inference.lifecycle.check_interval_s)
