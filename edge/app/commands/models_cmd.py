"""``edge models train|list|show|validate|promote|rollback``: model packages and the registry (``alias``,
``gate`` and ``compare`` live in ``lifecycle_cmd``, ``evaluate`` in ``evaluate_cmd``).

Exit 0 on success, 1 when a model check fails (validation, package error), 2 for usage or config errors.
"""

from __future__ import annotations

import argparse
import json
from datetime import datetime
from pathlib import Path
from typing import Any

from edge.app.commands.model_settings import EXIT_FAIL, EXIT_USAGE, parse_time
from edge.app.commands.model_settings import fail as _err
from edge.app.commands.model_settings import inference_settings as _settings


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    from edge.app.commands.levels_option import add_levels_argument
    from edge.app.plugins import MODEL_KINDS
    from edge.core.plugins import names

    p = sub.add_parser("models", help="train, inspect, validate, promote and roll back anomaly models")
    msub = p.add_subparsers(dest="models_command", metavar="ACTION", required=True)

    def common(q: argparse.ArgumentParser) -> None:
        q.add_argument(
            "--models-dir",
            type=Path,
            default=None,
            help="model registry (default: inference.models_dir of the config)",
        )
        q.add_argument("--dir", type=Path, default=None, help="config folder")
        q.add_argument("--box", default=None, help="box name for the config layers")

    t = msub.add_parser("train", help="fit a model on a baseline period of normal running")
    common(t)
    src = t.add_mutually_exclusive_group(required=True)
    src.add_argument("--csv", type=Path, help="wide CSV: a time column and one column per signal")
    src.add_argument("--parquet", type=Path, help="wide Parquet file")
    src.add_argument("--dsn", help="historian DSN (reads samples of --asset between --from and --to)")
    t.add_argument(
        "--asset", default=None,
        help="equipment path: required with --dsn; with --csv/--parquet the model is scoped to it (runs on "
        "that equipment only; without it, on every equipment)",
    )
    t.add_argument("--from", dest="t_from", default=None, help="start time, ISO 8601 (with --dsn)")
    t.add_argument("--to", dest="t_to", default=None, help="end time, ISO 8601 (with --dsn)")
    t.add_argument("--name", required=True, help="model name (registry folder and MQTT topic level)")
    t.add_argument("--kind", choices=names(MODEL_KINDS), default="pca")
    t.add_argument(
        "--target-far", type=float, default=None,
        help="target false-alarm rate: the threshold is the smallest whose held-out share of windows in "
        "alarm after the severity hysteresis is at most this (0.01)",
    )
    t.add_argument(
        "--quantile", type=float, default=None,
        help="quantile of the training scores a kind scales by (PCA: T² and SPE limits; 0.99)",
    )
    t.add_argument("--window-s", type=float, default=None, help="window length, s (default: the config's)")
    t.add_argument("--hop-s", type=float, default=None, help="window hop, s (default: the config's)")
    t.add_argument("--grid-hz", type=float, default=None, help="grid rate, Hz (default: the config's)")
    t.add_argument("--column-map", default=None, metavar="COL=NAME,...",
                   help="--csv/--parquet: name columns as the pipeline names signals (tags, or measures "
                   "under signal_key = measure), e.g. Pressure=pressure,Current=current")
    t.add_argument("--rows", default=None, metavar="START:END",
                   help="--csv/--parquet: only these rows (Python slice bounds, e.g. 0:400 or 1000:)")
    t.add_argument("--label-columns", default=None, metavar="COL,...",
                   help="columns holding labels, not signals (not trained on), e.g. anomaly,changepoint")
    t.add_argument("--ignore-columns", default=None, metavar="COL,...", help="other columns not trained on")
    t.add_argument("--holdout", type=float, default=0.2, help="share of the (latest) windows held out")
    t.add_argument("--var", type=float, default=None, help="PCA: share of variance kept (0.95)")
    t.add_argument("--time-column", default=None)
    t.add_argument("--archive", type=Path, default=None, help="also write the package as this .tar.gz")
    t.add_argument("--auto", action="store_true", help="choose window, hop, kind and statistics by "
                   "time-ordered cross-validation on the training rows only (--csv/--parquet)")
    t.add_argument("--auto-kinds", default="pca,knn", metavar="KIND,...", help="--auto: the kinds tried")
    t.add_argument("--auto-windows", default=None, metavar="W:H,...",
                   help="--auto: window:hop pairs in rows (default 5:1,10:2,10:5,20:4,20:10)")
    t.add_argument("--auto-stats", default="all,level_free", metavar="SET,...",
                   help="--auto: feature statistics tried: all, level_free (no mean, rms, min, max)")
    t.add_argument("--auto-label-column", default=None, metavar="COL",
                   help="--auto: a label column of the training rows (0 = normal): the objective is F1")
    add_levels_argument(t)
    t.set_defaults(func=_train)

    ls = msub.add_parser("list", help="models, versions and which version is promoted; retraining runs")
    common(ls)
    ls.add_argument("--json", action="store_true")
    ls.add_argument("--dsn", default=None, help="historian DSN of the retraining runs (default: config's)")
    ls.set_defaults(func=_list)

    sh = msub.add_parser("show", help="a package's manifest, validation and runtime providers")
    common(sh)
    sh.add_argument("name")
    sh.add_argument("version", nargs="?")
    sh.set_defaults(func=_show)

    va = msub.add_parser("validate", help="check the false alarm rate on the held-out set")
    common(va)
    va.add_argument("name")
    va.add_argument("version")
    va.add_argument("--max-far", type=float, default=0.05, help="bound on the held-out false alarm rate")
    va.set_defaults(func=_validate)

    pr = msub.add_parser("promote", help="make a gated version the champion (what the pipeline runs)")
    common(pr)
    pr.add_argument("name")
    pr.add_argument("version")
    pr.add_argument("--force", action="store_true", help="promote without a passed gate (audited)")
    scoped(pr)
    pr.set_defaults(func=_promote)

    rb = msub.add_parser("rollback", help="go back to the previous champion")
    common(rb)
    rb.add_argument("name")
    scoped(rb)
    rb.set_defaults(func=_rollback)

    from edge.app.commands.evaluate_cmd import register as register_evaluate
    from edge.app.commands.lifecycle_cmd import register as register_lifecycle

    register_evaluate(msub)
    register_lifecycle(msub)


def scoped(q: argparse.ArgumentParser) -> None:
    from edge.app.commands.lifecycle_cmd import who_reason

    q.add_argument("--scope", default="all", help="all (default), or a line's or an equipment's asset path")
    who_reason(q)


def _registry(args: argparse.Namespace) -> Any:
    from inference.packages import Registry

    return Registry(_settings(args).models_dir)


def _train(args: argparse.Namespace) -> int:
    from edge.app.plugins import model_kind
    from inference.train_registry import train_to_registry

    try:
        settings = _settings(args)
    except Exception as exc:
        return _err(str(exc), EXIT_USAGE)
    if args.dsn and not (args.asset and args.t_from and args.t_to):
        return _err("--dsn needs --asset, --from and --to", EXIT_USAGE)
    overrides = {k: v for k, v in (("window_s", args.window_s), ("hop_s", args.hop_s),
                                   ("grid_hz", args.grid_hz)) if v is not None}
    try:
        if overrides:
            settings = type(settings).model_validate({**settings.model_dump(), **overrides})
        column_map, rows = _column_map(args.column_map), _rows(args.rows)
    except ValueError as exc:
        return _err(str(exc), EXIT_USAGE)
    if settings.hop_s > settings.window_s:
        return _err(f"hop {settings.hop_s:g} s is longer than the window {settings.window_s:g} s", EXIT_USAGE)
    ignore = _names(args.label_columns) + _names(args.ignore_columns)
    if args.dsn and (column_map or rows or ignore):
        return _err("--column-map, --rows, --label-columns and --ignore-columns apply to a file", EXIT_USAGE)
    given = {"quantile": args.quantile, "var": args.var, "target_far": args.target_far}
    auto = None
    if args.auto:
        if overrides or args.dsn:
            return _err("--auto chooses window and hop from a file; drop --window-s/--hop-s/--grid-hz/--dsn",
                        EXIT_USAGE)
        try:
            auto = _auto(args, settings, column_map, rows, ignore, given)
        except (ValueError, FileNotFoundError) as exc:
            return _err(str(exc), EXIT_USAGE)
        settings = auto.settings
        given = {k: v for k, v in given.items() if k in model_kind(auto.kind).settings.model_fields}
    kind = model_kind(auto.kind if auto else args.kind)
    unknown = sorted(k for k, v in given.items() if v is not None and k not in kind.settings.model_fields)
    if unknown:
        return _err(f"--{', --'.join(unknown)} does not apply to kind {kind.name}", EXIT_USAGE)
    try:
        options = kind.settings.model_validate({k: v for k, v in given.items() if v is not None})
        pkg = train_to_registry(
            settings,
            kind,
            options,
            name=args.name,
            csv=args.csv,
            parquet=args.parquet,
            dsn=args.dsn,
            asset=args.asset,
            t_from=_parse_time(args.t_from),
            t_to=_parse_time(args.t_to),
            holdout=args.holdout,
            time_column=args.time_column,
            column_map=column_map,
            ignore_columns=ignore,
            rows=rows,
            stats=auto.stats if auto else (),
            manifest_extra=auto.manifest_extra() if auto else None,
            keep=auto.keep if auto else None,
            levels=args.levels,
        )
    except (ValueError, FileNotFoundError) as exc:
        return _err(str(exc), EXIT_USAGE)
    if args.archive is not None:
        from inference.packages import archive_package

        archive_package(pkg.path, args.archive)
    m = pkg.manifest.get("metrics", {})
    cal = m.get("calibration", {})
    far = m.get("holdout_alarm_rate_after_hysteresis")
    print(
        f"registered {pkg.name} v{pkg.version} ({pkg.manifest.get('kind')}, {len(pkg.features)} features, "
        f"threshold {pkg.threshold:.4g}, sha256 {pkg.sha256[:12]}) in {pkg.path}"
    )
    print(
        "false alarms after hysteresis: cross-calibrated "
        f"{cal.get('heldout_alarm_rate_after_hysteresis', 0):.2%}"
        f" (target {cal.get('target_far', 0):.2%}), held out "
        f"{'n/a' if far is None else f'{far:.2%}'} of {m.get('holdout_windows', 0)} windows"
    )
    print(
        f"next: edge models validate {pkg.name} {pkg.version} && edge models promote {pkg.name} {pkg.version}"
    )
    return 0


def _auto(args: argparse.Namespace, settings: Any, column_map: dict[str, str],
          rows: tuple[int | None, int | None] | None, ignore: list[str], given: dict[str, Any]) -> Any:
    """The ``--auto`` choice on the training rows (printed with every candidate's figures)."""
    from edge.app.plugins import MODEL_KINDS, model_kind
    from edge.core.plugins import names
    from inference.auto_select import STAT_SETS, WINDOWS, candidates
    from inference.auto_train import auto_choose, parse_windows, table, training_rows
    from inference.train_registry import stderr_progress

    kinds, stat_sets = _names(args.auto_kinds), _names(args.auto_stats)
    bad = sorted(set(kinds) - set(names(MODEL_KINDS))) + sorted(set(stat_sets) - set(STAT_SETS))
    if bad or not kinds or not stat_sets:
        raise ValueError(f"--auto-kinds/--auto-stats: unknown or none given: {', '.join(bad) or '-'}")
    windows = parse_windows(args.auto_windows) if args.auto_windows else list(WINDOWS)
    ts, signals, labels = training_rows(Path(args.csv or args.parquet), args.time_column, ignore, rows,
                                        column_map, args.auto_label_column)

    def options_of(kind: Any) -> Any:
        return kind.settings.model_validate(
            {k: v for k, v in given.items() if v is not None and k in kind.settings.model_fields})

    choice = auto_choose(settings, model_kind, options_of, ts, signals, labels,
                         candidates(kinds, windows, stat_sets), stderr_progress(), args.holdout)
    print(table(choice.selection))
    return choice


def _names(s: str | None) -> list[str]:
    return [c.strip() for c in (s or "").split(",") if c.strip()]


def _column_map(s: str | None) -> dict[str, str]:
    out = {}
    for item in _names(s):
        col, sep, name = item.partition("=")
        if not sep or not col.strip() or not name.strip():
            raise ValueError(f"--column-map: {item!r} is not COLUMN=NAME")
        out[col.strip()] = name.strip()
    if len(set(out.values())) < len(out):
        raise ValueError("--column-map: two columns mapped to the same name")
    return out


def _rows(s: str | None) -> tuple[int | None, int | None] | None:
    if s is None:
        return None
    lo, sep, hi = s.partition(":")
    try:
        if not sep:
            raise ValueError
        return (int(lo) if lo.strip() else None, int(hi) if hi.strip() else None)
    except ValueError:
        raise ValueError(f"--rows: {s!r} is not START:END") from None


def _parse_time(s: str | None) -> datetime | None:
    return None if s is None else parse_time(s)


def _list(args: argparse.Namespace) -> int:
    reg = _registry(args)
    rows = []
    for name in reg.models():
        st = reg.state(name)
        for v in reg.versions(name):
            val = st["validations"].get(v)
            gate = st["gates"].get(v)
            aliases = [f"{role}@{scope}" for scope, role, ver in reg.deployments(name) if ver == v]
            rows.append(
                {
                    "model": name,
                    "version": v,
                    "current": "champion@all" in aliases,
                    "aliases": aliases,
                    "validated": None if val is None else bool(val.get("passed")),
                    "gate": None if gate is None else bool(gate.get("passed")),
                }
            )
    if args.json:  # the versions only, as before: scripts read this list
        print(json.dumps(rows, indent=2))
        return 0
    from edge.app.commands.retrain_runs import print_runs

    if not rows:
        print(f"no models in {reg.root}")
        print_runs(args)
        return 0

    def mark(v: bool | None) -> str:
        return "-" if v is None else ("passed" if v else "FAILED")

    print(f"{'MODEL':24} {'VERSION':8} {'VALIDATED':10} {'GATE':8} ALIASES")
    for r in rows:
        print(f"{r['model']:24} {r['version']:8} {mark(r['validated']):10} {mark(r['gate']):8} "
              f"{', '.join(r['aliases'])}")
    print_runs(args)
    return 0


def _show(args: argparse.Namespace) -> int:
    from inference.packages import PackageError
    from inference.runtimes.onnx.runtime import OnnxRuntime

    reg = _registry(args)
    settings = _settings(args)
    try:
        pkg = reg.package(args.name, args.version)
    except PackageError as exc:
        return _err(str(exc))
    st = reg.state(args.name)
    rt = OnnxRuntime(
        pkg.onnx, providers=settings.providers, intra_op_threads=settings.intra_op_threads, name=pkg.name
    )
    doc = {
        "manifest": pkg.manifest,
        "path": str(pkg.path),
        "current": st["aliases"].get("all", {}).get("champion"),
        "aliases": st["aliases"],
        "history": st["history"],
        "validation": st["validations"].get(pkg.version),
        "gate": st["gates"].get(pkg.version),
        "runtime": rt.describe(),
    }
    print(json.dumps(doc, indent=2, default=str))
    return 0


def _validate(args: argparse.Namespace) -> int:
    from inference.packages import PackageError

    reg = _registry(args)
    try:
        res = reg.validate(args.name, args.version, max_false_alarm_rate=args.max_far)
    except PackageError as exc:
        return _err(str(exc))
    verdict = "passed" if res["passed"] else "FAILED"
    print(
        f"{args.name} v{args.version}: {verdict}: false alarm rate {res['false_alarm_rate']:.2%} on "
        f"{res['windows']} held-out windows (bound {res['bound']:.2%})"
    )
    return 0 if res["passed"] else EXIT_FAIL


def _promote(args: argparse.Namespace) -> int:
    from inference.packages import PackageError

    reg = _registry(args)
    try:
        ev = reg.promote(args.name, args.version, force=args.force, scope=args.scope, reason=args.reason,
                         who=args.who)
    except ValueError as exc:
        return _err(str(exc), EXIT_USAGE)
    except PackageError as exc:
        return _err(str(exc))
    d = ev["detail"]
    print(f"promoted {args.name} v{args.version} to champion of {d['scope']} (previous: {d['previous']}; "
          f"on {d['basis']['kind']})")
    return 0


def _rollback(args: argparse.Namespace) -> int:
    from inference.packages import PackageError

    reg = _registry(args)
    try:
        ev = reg.rollback(args.name, scope=args.scope, reason=args.reason, who=args.who)
    except ValueError as exc:
        return _err(str(exc), EXIT_USAGE)
    except PackageError as exc:
        return _err(str(exc))
    print(f"rolled back {args.name} to v{ev['version']} (from v{ev['detail']['from']})")
    return 0
