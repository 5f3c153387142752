"""The desired state of each box: what ``firmware-config/`` renders for it (``load_config(dir, box)``).

The table itself (silence, drift, diff) is ``edge.sinks.jetstream.fleet_table`` and the reading
``edge.sinks.jetstream.fleet_read``; this is the part that needs the app's config loader, handed to them as
a ``Desired`` callable inside a ``FleetWatch`` (used by ``edge fleet`` and ``edge tui``).
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from edge.app.config import ConfigError, default_config_dir, known_boxes, known_sites, load_config
from edge.sinks.jetstream.fleet_read import FleetWatch
from edge.sinks.jetstream.fleet_table import Desired


def fleet_watch(config_dir: Path | None = None, *, site: str | None = None,
                servers: Sequence[str] | None = None, silent_after: float = 3.0,
                expect_all: bool = False) -> FleetWatch:
    """The site's fleet as ``config_dir`` (default ``./firmware-config``) describes it. Site: the only
    ``sites/*.toml``, else base ``box.site``; servers: base ``jetstream.servers``. Raises ``ConfigError``."""
    config_dir = config_dir or default_config_dir()
    base = load_config(config_dir).config
    if site is None:
        sites = known_sites(config_dir)
        site = sites[0] if len(sites) == 1 else base.box.site
    return FleetWatch(servers=tuple(servers or base.jetstream.servers), site=site,
                      desired=desired_from_dir(config_dir), silent_after=silent_after,
                      expected=tuple(known_boxes(config_dir)) if expect_all else ())


def desired_from_dir(config_dir: Path) -> Desired:
    """The desired state of each box, rendered from ``config_dir`` (cached per box)."""
    cache: dict[str, tuple[str | None, str | None, str | None]] = {}

    def desired(box: str) -> tuple[str | None, str | None, str | None]:
        if box not in cache:
            if box not in known_boxes(config_dir):
                cache[box] = (None, None, "unknown")
            else:
                try:
                    loaded = load_config(config_dir, box)
                    cache[box] = (loaded.sha256(), loaded.body(), None)
                except ConfigError as exc:
                    cache[box] = (None, None, "config-error: " + "; ".join(exc.problems)[:200])
        return cache[box]

    return desired
