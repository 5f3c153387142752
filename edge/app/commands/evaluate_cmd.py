"""``edge models evaluate``: labelled files replayed through the pipeline's code, with benchmark figures.

The work is ``inference.evaluation``; this module reads the options and the config, builds the quality gate
(``ingest.gate``, with the wall-clock past/future rules off: a replay is in event time) and the runtime
factory (``edge.app.plugins.make_runtime``), and prints the table, the JSON and the plot.
Exit 0 when evaluated, 2 for usage errors (a file, a column, an option), 1 for a model package error.
"""

from __future__ import annotations

import argparse
import glob
import json
import sys
import time
from dataclasses import replace
from pathlib import Path
from typing import Any

EXIT_FAIL = 1
EXIT_USAGE = 2
NO_TIME_LIMIT_S = 1e11  # the gate's past/future bounds, off for a replay in event time
TRAIN_GATED_WARN = 0.05  # above this share of gated training windows the gate's rules likely misfit the data
STUCK_RULE_OFF = 2**62  # a run of equal values no file reaches


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Add ``evaluate`` to the ``edge models`` group (``sub``: its subparsers)."""
    from edge.app.commands.levels_option import add_levels_argument
    from edge.app.plugins import MODEL_KINDS
    from edge.core.plugins import names

    e = sub.add_parser(
        "evaluate", help="replay labelled files through the pipeline's code and score the alarms",
        description="Point-wise F1/FAR/MAR (SKAB), events and delays, NAB scores and per-label rates of "
        "the alarms the pipeline would raise on labelled CSV/Parquet files, in event time.")
    e.add_argument("files", nargs="+", help="CSV or Parquet files (globs allowed, quoted or not)")
    e.add_argument("--dir", type=Path, default=None, help="config folder")
    e.add_argument("--box", default=None, help="box name for the config layers")
    e.add_argument("--models-dir", type=Path, default=None, help="registry (default: inference.models_dir)")
    src = e.add_mutually_exclusive_group(required=True)
    src.add_argument("--model", help="registry model NAME[@VERSION] (default version: the promoted one)")
    src.add_argument("--train-rows", type=int, help="train on each file's first N rows, score the rest")
    src.add_argument("--train-fraction", type=float, help="train on each file's first share F,"
                     " score the rest")
    src.add_argument("--train-file", type=Path, help="train once on this normal file, score every file whole")
    e.add_argument("--kind", choices=names(MODEL_KINDS), default="pca", help="model kind to train")
    e.add_argument("--quantile", type=float, default=None, help="threshold quantile of the training scores")
    e.add_argument("--var", type=float, default=None, help="PCA: share of variance kept")
    e.add_argument("--target-far", type=float, default=None,
                   help="the training's target false-alarm rate after hysteresis (default: the kind's, 0.01)")
    e.add_argument("--feature-stats", default="", metavar="STAT,...",
                   help="train on these window statistics only (of mean, std, rms, min, max, ptp, skew, "
                   "kurt, crest, slope, zcr; default: every feature)")
    e.add_argument("--holdout", type=float, default=0.2, help="share of training windows held out (as train)")
    add_levels_argument(e)
    w = e.add_argument_group("windows (default: the config's [inference], or the model's manifest)")
    w.add_argument("--window-s", type=float, default=None)
    w.add_argument("--hop-s", type=float, default=None)
    w.add_argument("--grid-hz", type=float, default=None)
    w.add_argument("--max-hold-s", type=float, default=None)
    w.add_argument("--window-rows", type=int, default=None,
                   help="windows of N rows of each file (its median row step), the grid one cell a row; "
                   "for sets whose files have different rates; needs --train-rows or --train-fraction")
    w.add_argument("--hop-rows", type=int, default=1, help="with --window-rows: a window every N rows")
    i = e.add_argument_group("input")
    i.add_argument("--time-column", default=None, help="default: datetime / timestamp / ts / time")
    i.add_argument("--sep", default=None, help="CSV separator (default: ; , or tab, guessed)")
    i.add_argument("--label-column", default=None, help="default: anomaly / label / fault; 0 = normal")
    i.add_argument("--label-windows", type=Path, default=None, help="JSON {key: [[start, end], ...]} (NAB)")
    i.add_argument("--label-key", default=None, help="key in --label-windows (default: folder/name of file)")
    i.add_argument("--ignore-columns", default="", help="comma-separated columns that are not signals")
    i.add_argument("--signals", default="",
                   help="comma-separated signal columns (default: every numeric one)")
    per = i.add_mutually_exclusive_group()
    per.add_argument("--rows-per-second", type=float, default=None, help="row rate of files without time")
    per.add_argument("--period-s", type=float, default=None, help="row spacing of files without time")
    i.add_argument("--fault-from-row", type=int, default=None, help="label every row from this index on")
    i.add_argument("--valid-range", action="append", default=[], metavar="SIGNAL=LO:HI",
                   help="the quality gate's valid range of a signal (OUT_OF_RANGE flag), repeatable")
    i.add_argument("--stuck-samples", type=int, default=None, metavar="N",
                   help="the quality gate's STUCK rule (a STUCK window cannot alarm): N equal values in a "
                   "row (default: the config's [quality] stuck_samples); 0 = the rule off, for data whose "
                   "signals hold a value as part of normal running")
    o = e.add_argument_group("output")
    o.add_argument("--json", nargs="?", const="-", default=None, metavar="FILE",
                   help="everything, per file, as JSON (to FILE, or stdout instead of the table)")
    o.add_argument("--plot", type=Path, default=None, help="write score/threshold/labels per file as SVG")
    o.add_argument("--quiet", action="store_true", help="no progress on stderr")
    e.set_defaults(func=_evaluate)


def _err(msg: str, code: int = EXIT_USAGE) -> int:
    print(f"error: {msg}", file=sys.stderr)
    return code


def _config(args: argparse.Namespace) -> tuple[Any, Any]:
    """(inference settings, quality settings) of the config found, defaults where there is none."""
    from edge.app.config import ConfigError, default_config_dir, load_config
    from inference.settings import InferenceSettings
    from ingest.settings import QualitySettings

    try:
        cfg = load_config(args.dir if args.dir is not None else default_config_dir(), args.box).config
        inf, qual = cfg.inference, cfg.quality
    except (ConfigError, OSError):
        if args.dir is not None or args.box is not None:
            raise
        inf, qual = InferenceSettings.model_validate({}), QualitySettings.model_validate({})
    upd: dict[str, Any] = {}
    if args.models_dir is not None:
        upd["models_dir"] = args.models_dir
    return inf.model_copy(update=upd), qual


def _window_overrides(args: argparse.Namespace) -> dict[str, float]:
    keys = ("window_s", "hop_s", "grid_hz", "max_hold_s")
    return {k: getattr(args, k) for k in keys if getattr(args, k) is not None}


def _files(patterns: list[str]) -> list[Path]:
    out: list[Path] = []
    for p in patterns:
        hits = sorted(glob.glob(p, recursive=True)) if any(c in p for c in "*?[") else [p]
        if not hits:
            raise ValueError(f"{p}: no file matches")
        out.extend(Path(h) for h in hits)
    return out


def _ranges(items: list[str]) -> dict[str, tuple[float | None, float | None]]:
    out: dict[str, tuple[float | None, float | None]] = {}
    for it in items:
        try:
            name, rng = it.rsplit("=", 1)
            lo, hi = rng.split(":")
            out[name] = (float(lo) if lo else None, float(hi) if hi else None)
        except ValueError:
            raise ValueError(
                f"--valid-range {it!r}: expected SIGNAL=LO:HI (either bound may be empty)") from None
    return out


def _gate_factory(quality: Any, ranges: dict[str, tuple[float | None, float | None]]) -> Any:
    """A fresh quality gate per file (its state is per tag), with the wall-clock rules off."""
    import numpy as np
    import pyarrow as pa

    from ingest.gate import QualityGate

    qs = quality.model_copy(update={"max_future_s": NO_TIME_LIMIT_S, "max_past_s": NO_TIME_LIMIT_S})

    def make() -> Any:
        g = QualityGate(qs, ranges)

        def apply(batch: pa.RecordBatch) -> tuple[pa.RecordBatch, dict[str, int]]:
            ts = batch.column("ts").cast(pa.int64()).to_numpy(zero_copy_only=False)
            kept, _dead = g.apply(batch, int(np.max(ts)) if len(ts) else 0)
            counts = {k: int(v) for k, v in g.counters.items() if k not in ("in", "kept") and v}
            counts["dead_letters"] = batch.num_rows - kept.num_rows
            return kept, counts

        return apply

    return make


def _evaluate(args: argparse.Namespace) -> int:
    from edge.app.plugins import make_runtime, model_kind
    from inference.evaluation import report
    from inference.evaluation.evaluate import ModelSource, evaluate_file
    from inference.evaluation.row_windows import settings_in_rows
    from inference.evaluation.table import TableError, TableOptions, read_labelled
    from inference.kernels import STATS
    from inference.packages import PackageError

    def say(msg: str) -> None:
        if not args.quiet:
            print(msg, file=sys.stderr, flush=True)

    try:
        settings, quality = _config(args)
        if args.stuck_samples is not None:
            if args.stuck_samples == 1 or args.stuck_samples < 0:
                return _err("--stuck-samples must be 0 (off) or at least 2")
            quality = quality.model_copy(update={"stuck_samples": args.stuck_samples or STUCK_RULE_OFF})
        files = _files(args.files)
        ranges = _ranges(args.valid_range)
    except Exception as exc:
        return _err(str(exc))
    if args.train_fraction is not None and not 0 < args.train_fraction < 1:
        return _err("--train-fraction must be between 0 and 1")
    if args.train_rows is not None and args.train_rows < 1:
        return _err("--train-rows must be at least 1")
    if args.window_rows is not None:
        in_seconds = (("--window-s", args.window_s), ("--hop-s", args.hop_s), ("--grid-hz", args.grid_hz),
                      ("--max-hold-s", args.max_hold_s))
        clash = [o for o, v in in_seconds if v is not None]
        if clash:
            return _err(f"--window-rows sets the windows in rows; drop {', '.join(clash)}")
        if args.train_rows is None and args.train_fraction is None:
            return _err("--window-rows needs --train-rows or --train-fraction (a model trained per file)")
        if args.window_rows < 1 or not 1 <= args.hop_rows <= args.window_rows:
            return _err("--window-rows must be >= 1 and --hop-rows between 1 and --window-rows")
    period = args.period_s if args.period_s is not None else (
        1.0 / args.rows_per_second if args.rows_per_second else None)
    opts = TableOptions(
        time_column=args.time_column, sep=args.sep, label_column=args.label_column,
        label_windows=args.label_windows, label_key=args.label_key,
        ignore_columns=[c for c in args.ignore_columns.split(",") if c],
        signals=[c for c in args.signals.split(",") if c], period_s=period,
        fault_from_row=args.fault_from_row)
    wover = _window_overrides(args)
    settings = settings.model_copy(update=wover)
    from inference.evaluation import adapter

    kind_opts: dict[str, Any] = {}
    stats = tuple(s for s in args.feature_stats.split(",") if s)
    unknown = sorted(set(stats) - set(STATS))
    if unknown:
        return _err(f"--feature-stats: unknown {', '.join(unknown)} (known: {', '.join(STATS)})")
    if stats and args.model:
        return _err("--feature-stats chooses what a model is trained on; a registry --model has its own")
    if args.levels and args.model:
        return _err("--levels chooses what a model is trained on; a registry --model has its own")
    try:
        if args.model:
            from inference.packages import Registry

            name, _, version = args.model.partition("@")
            pkg = Registry(settings.models_dir).package(name, version or None)
            mw = pkg.manifest.get("window", {})
            base = {k: mw[k] for k in ("window_s", "hop_s", "grid_hz", "max_hold_s", "spectral_signals",
                                       "n_bands") if k in mw}
            settings = settings.model_copy(update={**base, **wover})
            source = ModelSource(package=pkg)
        else:
            kind = model_kind(args.kind)
            given = {"quantile": args.quantile, "var": args.var, "target_far": args.target_far}
            bad = sorted(k for k, v in given.items() if v is not None and k not in kind.settings.model_fields)
            if bad:
                return _err(f"--{', --'.join(bad)} does not apply to kind {kind.name}")
            kind_opts = {k: v for k, v in given.items() if v is not None}
            options = kind.settings.model_validate(kind_opts)
            source = ModelSource(kind=kind, options=options, train_rows=args.train_rows,
                                 train_fraction=args.train_fraction, holdout=args.holdout, stats=stats,
                                 levels=args.levels)
        spec = adapter.spec_of(settings)
        if args.train_file is not None:
            say(f"training {args.kind} on {args.train_file}")
            tt = read_labelled(args.train_file, replace(opts, label_windows=None, fault_from_row=None,
                                                        require_labels=False))
            source = ModelSource(package=adapter.fit_package(
                source.kind, source.options, [adapter.samples(tt.ts_us, tt.signals, "evaluate")], spec,
                settings, name=f"eval-{args.kind}", source=tt.path.name, holdout=args.holdout, stats=stats,
                levels=args.levels))
    except PackageError as exc:
        return _err(str(exc), EXIT_FAIL)
    except (TableError, ValueError) as exc:
        return _err(str(exc))
    gates = _gate_factory(quality, ranges)

    def runtime(s: Any, p: Any) -> Any:
        return make_runtime(s, p, None)

    results = []
    t0 = time.perf_counter()
    for n, path in enumerate(files, 1):
        try:
            table = read_labelled(path, opts)
            fset, fspec = settings, spec
            if args.window_rows is not None:
                fset = settings_in_rows(settings, table, args.window_rows, args.hop_rows)
                fspec = adapter.spec_of(fset)
            res = evaluate_file(table, source, fset, fspec, runtime, gates())
        except (TableError, ValueError) as exc:
            return _err(str(exc))
        except PackageError as exc:
            return _err(str(exc), EXIT_FAIL)
        results.append(res)
        share = res.summary["train_gated_share"]
        if share > TRAIN_GATED_WARN:
            found = ", ".join(f"{k} {v}" for k, v in res.summary["quality"].items() if k != "dead_letters")
            print(f"warning: {path}: {share:.0%} of the training part's windows are gated "
                  f"({found or 'low coverage'}); if holding a value is normal running here, try "
                  "--stuck-samples 0 (or the config's [quality])", file=sys.stderr)
        pw = res.summary["pointwise"]
        say(f"[{n}/{len(files)}] {path}: {res.summary['seconds']:.2f} s, {res.summary['windows']} windows, "
            f"F1 {pw['F1']:.2f} FAR {pw['FAR']:.1f}% MAR {pw['MAR']:.1f}%")
    say(f"{len(files)} files in {time.perf_counter() - t0:.2f} s")
    config = {"window": {"window_s": spec.window_s, "hop_s": spec.hop_s, "grid_hz": spec.grid_hz,
                         "max_hold_s": spec.max_hold_s}
              if args.window_rows is None else {"window_rows": args.window_rows, "hop_rows": args.hop_rows},
              "model": args.model, "kind": None if args.model else args.kind, "kind_options": kind_opts,
              "stuck_samples": quality.stuck_samples, "train_rows": args.train_rows,
              "train_fraction": args.train_fraction, "feature_stats": list(stats),
              "train_file": None if args.train_file is None else str(args.train_file),
              "severity": {"warning_ratio": settings.warning_ratio, "clear_ratio": settings.clear_ratio,
                           "hysteresis_windows": settings.hysteresis_windows}}
    doc = report.document(results, config)
    if args.plot is not None:
        from inference.evaluation.svg import write_svg

        write_svg(results, args.plot)
        say(f"plot: {args.plot}")
    if args.json is not None:
        text = json.dumps(doc, indent=1, default=str)
        if args.json == "-":
            print(text)
            return 0
        Path(args.json).write_text(text + "\n")
        say(f"json: {args.json}")
    print(report.table(results, doc["overall"]))
    return 0
