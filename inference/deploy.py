"""Deployed models: the promoted packages of the registry, checked against the pipeline's window settings,
each with the runtime that scores it. Which runtime is the caller's choice (a factory; the app passes the
one of its runtime table), so no runtime is named here."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from edge.core.component import EventHook
from inference.settings import InferenceSettings

# settings, package, event hook -> an inference.runtimes.base.Runtime
RuntimeFactory = Callable[[InferenceSettings, Any, "EventHook | None"], Any]


@dataclass
class DeployedModel:
    """A loaded package and the runtime that scores it."""

    package: Any  # inference.packages.ModelPackage
    runtime: Any  # inference.runtimes.base.Runtime
    assets: frozenset[str] = frozenset()  # empty: every equipment
    role: str = "champion"  # or "challenger": scored in shadow, never published nor alarming
    scope: str = "all"  # the alias's scope (inference.aliases): all, or an asset path
    narrower: tuple[str, ...] = ()  # scopes inside ``scope`` where another alias of the name decides

    @property
    def name(self) -> str:
        return str(self.package.name)

    def rows_for(self, assets: Sequence[str]) -> np.ndarray | None:
        """Indices of the windows (by asset) this model scores; None: every one."""
        from inference.aliases import in_scope

        if not self.assets and self.scope == "all" and not self.narrower:
            return None
        return np.array(
            [i for i, a in enumerate(assets)
             if (not self.assets or a in self.assets) and in_scope(self.scope, a)
             and not any(in_scope(n, a) for n in self.narrower)],
            dtype=np.int64,
        )


def check_window(pkg: Any, settings: InferenceSettings) -> None:
    """The features a model was trained on mean the same only with the same window length and grid, and
    are named the same only with the same ``signal_key`` (tag or measure)."""
    from inference.packages import PackageError

    w = pkg.manifest.get("window") or {}
    trained_key = w.get("signal_key")
    if trained_key is not None and trained_key != settings.signal_key:
        shown = ", ".join(pkg.features[:4]) + (", ..." if len(pkg.features) > 4 else "")
        scope = pkg.manifest.get("assets") or []
        asset = scope[0] if scope else "PATH"
        raise PackageError(
            f"model {pkg.name} v{pkg.version} was trained with signal_key={trained_key!r} (features {shown}) "
            f"but the pipeline runs signal_key={settings.signal_key!r}: its features would never be found. "
            f"Retrain it under the pipeline's config (edge models train --dsn DSN --asset {asset} --from T0 "
            f"--to T1 --name {pkg.name}) or set inference.signal_key = {trained_key!r}"
        )
    for key in ("window_s", "grid_hz", "n_bands"):
        if key in w and float(w[key]) != float(getattr(settings, key)):
            raise PackageError(
                f"model {pkg.name} v{pkg.version} was trained with {key}={w[key]} but the "
                f"pipeline runs {key}={getattr(settings, key)}"
            )


def load_models(
    settings: InferenceSettings,
    on_event: EventHook | None = None,
    *,
    make_runtime: RuntimeFactory,
) -> list[DeployedModel]:
    """The champion and challenger of every model (or of ``settings.models``) in the registry, per scope,
    each with the runtime ``make_runtime`` builds for it (the app passes the runtime table's)."""
    from inference.aliases import narrower_scopes
    from inference.packages import Registry

    reg = Registry(settings.models_dir)
    names = settings.models or [m for m in reg.models() if reg.deployments(m)]
    out = []
    for name in names:
        deployed = reg.deployments(name)
        if not deployed:
            reg.package(name)  # raises: the model has no champion
        for scope, role, version in deployed:
            pkg = reg.package(name, version)
            check_window(pkg, settings)
            same_role = [s for s, r, _ in deployed if r == role]
            out.append(
                DeployedModel(
                    pkg, make_runtime(settings, pkg, on_event), frozenset(pkg.manifest.get("assets") or ()),
                    role=role, scope=scope, narrower=narrower_scopes(same_role, scope),
                )
            )
    return out
