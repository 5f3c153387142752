"""``edge models alias|gate|compare|retrain``: champion and challenger aliases, the promotion gate on
replayed history, the comparison of a shadow run, and a retrained candidate (``suppress`` is in
``suppress_cmd``).

Registered under ``edge models`` by ``models_cmd.register``. Exit 0 on success, 1 when a gate fails or a
model check refuses, 2 for usage or config errors.
"""

from __future__ import annotations

import argparse
import json
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from edge.app.commands.model_settings import EXIT_FAIL, EXIT_USAGE, historian_dsn, parse_time
from edge.app.commands.model_settings import fail as _err
from edge.app.commands.model_settings import inference_settings as settings_of


def common(q: argparse.ArgumentParser) -> None:
    q.add_argument("--models-dir", type=Path, default=None,
                   help="model registry (default: inference.models_dir of the config)")
    q.add_argument("--dir", type=Path, default=None, help="config folder")
    q.add_argument("--box", default=None, help="box name for the config layers")


def who_reason(q: argparse.ArgumentParser, *, reason_required: bool = False) -> None:
    q.add_argument("--who", default=None, help="who makes the change (default: the OS user)")
    q.add_argument("--reason", required=reason_required, default="", help="why (kept in the audit)")


def history_args(q: argparse.ArgumentParser) -> None:
    q.add_argument("--since", required=True, help="start of the period, ISO 8601")
    q.add_argument("--until", required=True, help="end of the period, ISO 8601")
    q.add_argument("--dsn", default=None, help="historian DSN (default: historian.dsn of the config)")


def register(msub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    a = msub.add_parser("alias", help="point a role (champion, challenger) of a scope at a version")
    common(a)
    a.add_argument("name")
    a.add_argument("version", help="the version, or '-' to clear the role")
    a.add_argument("role", choices=["champion", "challenger"])
    a.add_argument("--scope", default="all", help="all (default), or a line's or an equipment's asset path")
    a.add_argument("--force", action="store_true", help="champion without a passed gate (audited)")
    who_reason(a, reason_required=True)
    a.set_defaults(func=_alias)

    g = msub.add_parser("gate", help="replay a version over the equipment's history and judge it")
    common(g)
    g.add_argument("name")
    g.add_argument("version")
    history_args(g)
    g.add_argument("--asset", action="append", default=None,
                   help="equipment to replay (repeatable; default: the model's own equipment)")
    g.add_argument("--max-far", type=float, default=0.05, help="bound on the false-alarm rate")
    g.add_argument("--min-detection", type=float, default=0.5,
                   help="least share of true-fault periods detected")
    g.add_argument("--max-slice-ratio", type=float, default=2.0,
                   help="a slice's FAR (or MAR) this many times another's fails the gate")
    g.add_argument("--min-slice-windows", type=int, default=20,
                   help="slices with fewer windows are not compared")
    g.add_argument("--json", action="store_true", help="print the whole result as JSON")
    g.add_argument("--who", default=None, help="who ran the gate (default: the OS user)")
    g.set_defaults(func=_gate)

    c = msub.add_parser("compare", help="champion against challenger over a period of their shadow run")
    common(c)
    c.add_argument("name")
    history_args(c)
    c.add_argument("--json", action="store_true", help="print the whole comparison as JSON")
    c.set_defaults(func=_compare)

    r = msub.add_parser("retrain", help="train a candidate on the historian's lookback; make it challenger")
    common(r)
    r.add_argument("name")
    r.add_argument("--scope", default="all", help="all (default), or a line's or an equipment's asset path")
    r.add_argument("--dsn", default=None, help="historian DSN (default: historian.dsn of the config)")
    r.add_argument("--until", default=None, help="end of the lookback window, ISO 8601 (default: now)")
    r.add_argument("--who", default=None, help="who asked (default: the OS user)")
    r.set_defaults(func=_retrain)

    from edge.app.commands.suppress_cmd import register as register_suppress

    register_suppress(msub)


def _alias(args: argparse.Namespace) -> int:
    from inference.packages import PackageError, Registry

    reg = Registry(settings_of(args).models_dir)
    version = None if args.version == "-" else args.version
    try:
        ev = reg.set_alias(args.name, version, args.role, scope=args.scope, reason=args.reason, who=args.who,
                           force=args.force)
    except ValueError as exc:
        return _err(str(exc), EXIT_USAGE)
    except PackageError as exc:
        return _err(str(exc))
    d = ev["detail"]
    shown = "cleared" if version is None else f"v{version}"
    print(f"{args.name} {d['role']} of {d['scope']}: {shown} (previous: {d['previous'] or 'none'})")
    return 0


def _gate(args: argparse.Namespace) -> int:
    from edge.app.plugins import make_runtime
    from inference.gate import GateBounds, run_gate
    from inference.packages import PackageError, Registry

    try:
        settings = settings_of(args)
        since, until = parse_time(args.since), parse_time(args.until)
        dsn = historian_dsn(args)
        bounds = GateBounds(args.max_far, args.min_detection, args.max_slice_ratio, args.min_slice_windows)
    except Exception as exc:
        return _err(str(exc), EXIT_USAGE)
    reg = Registry(settings.models_dir)
    try:
        pkg = reg.package(args.name, args.version)
        assets = args.asset or list(pkg.manifest.get("assets") or [])
        res = run_gate(pkg, dsn, assets, since, until, settings, make_runtime, bounds)
    except PackageError as exc:
        return _err(str(exc))
    except ValueError as exc:
        return _err(str(exc), EXIT_USAGE)
    reg.record_gate(args.name, args.version, res, who=args.who)
    if args.json:
        print(json.dumps(res, indent=2, default=str))
    else:
        print(gate_summary(res))
    return 0 if res["passed"] else EXIT_FAIL


def _pct(v: float | None) -> str:
    return "n/a" if v is None else f"{v:.2%}"


def gate_summary(res: dict[str, Any]) -> str:
    lines = [
        f"{res['model']} v{res['version']}: gate {'passed' if res['passed'] else 'FAILED'} over "
        f"{res['windows']} windows of {', '.join(res['assets'])} ({res['since']} .. {res['until']}; "
        f"{res['gated_windows']} gated)",
        f"  false-alarm rate {_pct(res['false_alarm_rate'])} "
        f"(unlabelled {_pct(res['false_alarm_rate_unlabelled'])}"
        f", on false-alarm labels {_pct(res['false_alarm_rate_on_false_alarm_labels'])}); detected "
        f"{res['detected_periods']} of {res['true_fault_periods']} true-fault periods, missed-alarm rate "
        f"{_pct(res['missed_alarm_rate'])}",
    ]
    for key, slices in res["slices"].items():
        if slices:
            cells = ", ".join(f"{v} FAR {_pct(s['far'])} MAR {_pct(s['mar'])} ({s['windows']} w)"
                              for v, s in slices.items())
            lines.append(f"  by {key}: {cells}")
    lines += [f"  fails: {r}" for r in res["reasons"]]
    return "\n".join(lines)


def _compare(args: argparse.Namespace) -> int:
    from inference.compare import compare

    try:
        since, until = parse_time(args.since), parse_time(args.until)
        dsn = historian_dsn(args)
    except Exception as exc:
        return _err(str(exc), EXIT_USAGE)
    try:
        res = compare(dsn, args.name, since, until)
    except ValueError as exc:
        return _err(str(exc))
    if args.json:
        print(json.dumps(res, indent=2, default=str))
        return 0
    print(f"{args.name}: champion v{res['champion_version']} vs challenger v{res['challenger_version']} over "
          f"{res['paired_windows']} paired windows; agreement {_pct(res['agreement'])}")
    for role in ("champion", "challenger"):
        f = res[role]
        print(f"  {role:10} alarm rate {_pct(f['alarm_rate'])}, precision {_pct(f['precision'])}, recall "
              f"{_pct(f['recall'])}, detection delays {res['detection_delay_s'][role]}")
    for key, slices in res["slices"].items():
        for v, b in slices.items():
            delays = b.get("detection_delay_s") or {}
            began = f", detection delays {delays['champion']} / {delays['challenger']}" \
                if delays.get("champion") else ""
            print(f"  {key}={v}: agreement {_pct(b['agreement'])}, alarm rate champion "
                  f"{_pct(b['champion']['alarm_rate'])} challenger {_pct(b['challenger']['alarm_rate'])}"
                  f"{began}")
    return 0


def _retrain(args: argparse.Namespace) -> int:
    from edge.app.plugins import model_kind
    from inference.packages import PackageError, Registry
    from inference.retrain import RetrainError, retrain

    try:
        settings = settings_of(args)
        dsn = historian_dsn(args)
        now = parse_time(args.until) if args.until else datetime.now(UTC)
    except Exception as exc:
        return _err(str(exc), EXIT_USAGE)
    reg = Registry(settings.models_dir)
    try:
        pkg = retrain(reg, settings, args.name, dsn, model_kind, now=now, scope=args.scope, trigger="manual",
                      who=args.who)
    except (PackageError, RetrainError) as exc:
        return _err(str(exc))
    except ValueError as exc:
        return _err(str(exc), EXIT_USAGE)
    d = next(e for e in reversed(reg.audit_log()) if e["action"] == "retrain")["detail"]
    print(f"{args.name} v{pkg.version}: trained on {d['windows']} windows of {', '.join(d['assets'])} "
          f"({d['since']} .. {d['until']}; {d['excluded_true_fault_periods']} true-fault periods left out, "
          f"{d['kept_false_alarm_periods']} false-alarm periods kept) in {d['child']['seconds']} s; now the "
          f"challenger of {args.scope}: see 'edge models compare {args.name} --since ... --until ...'")
    return 0
