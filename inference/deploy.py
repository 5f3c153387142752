"""Deployed models: the promoted packages of the registry, checked against the pipeline's window settings,
each with the runtime that scores it. Which runtime is the caller's choice (a factory; the app passes the
one of its runtime table), so no runtime is named here."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

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

    @property
    def name(self) -> str:
        return str(self.package.name)


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
    """The promoted version of every model (or of ``settings.models``) in the registry, each with the
    runtime ``make_runtime`` builds for it (the app passes the runtime table's)."""
    from inference.packages import Registry

    reg = Registry(settings.models_dir)
    names = settings.models or list(reg.current())
    out = []
    for name in names:
        pkg = reg.package(name)
        check_window(pkg, settings)
        out.append(
            DeployedModel(
                pkg, make_runtime(settings, pkg, on_event), frozenset(pkg.manifest.get("assets") or ())
            )
        )
    return out
