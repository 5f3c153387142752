"""What a box tells the fleet about itself: built at the top, where the config and supervisor are known."""

from __future__ import annotations

from typing import Any

from edge import __version__
from edge.app.config import AppConfig, LoadedConfig
from edge.core.supervisor import Supervisor
from edge.sinks.jetstream.heartbeat import AppInfo


def app_info(config: AppConfig, supervisor: Supervisor, components: dict[str, Any]) -> AppInfo:
    """The heartbeat's facts. The config hash is ``LoadedConfig.sha256()`` of this very config: what
    ``load_config(dir, box).sha256()`` gives for the files the box was started from."""
    loaded = LoadedConfig(config=config, layers=[], merged={})
    body = loaded.body()

    def health() -> dict[str, dict[str, Any]]:
        return {name: {"healthy": s.healthy, "restarts": s.restarts, "last_error": s.last_error}
                for name, s in sorted(supervisor.states.items())}

    def models() -> list[dict[str, str]]:
        stage = components.get("inference")
        out = []
        for m in getattr(stage, "models", None) or []:
            name = getattr(m, "name", None) or getattr(getattr(m, "package", None), "name", None) or str(m)
            version = getattr(m, "version", None) or getattr(getattr(m, "package", None), "version", "")
            out.append({"name": str(name), "version": str(version)})
        if not out:  # no stage (yet): what the config asks for
            out = [{"name": n, "version": ""} for n in config.inference.models]
        return out

    return AppInfo(box=config.box.id, site=config.box.site, version=__version__,
                   config_sha256=loaded.sha256(), config_body=body, components=health, models=models)
