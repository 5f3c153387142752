"""``edge models suppress list|add|lift``: repeats of a false alarm kept from MES (migration 0045).

A suppression comes from a ``false_alarm`` label (the TUI's feedback dialog offers it, or ``add`` here with
the feedback id); while active, matching warning and alarm insights are stored flagged ``suppressed`` and
never published. Every creation and lift is an event (kind ``suppression``). Registered under
``edge models`` by ``lifecycle_cmd.register``. Exit 0 on success, 1 when the historian refuses, 2 for usage.
"""

from __future__ import annotations

import argparse
from datetime import UTC, datetime
from pathlib import Path

from edge.app.commands.model_settings import EXIT_USAGE, historian_dsn
from edge.app.commands.model_settings import fail as _err


def _target(q: argparse.ArgumentParser) -> None:
    q.add_argument("--dsn", default=None, help="historian DSN (default: historian.dsn of the config)")
    q.add_argument("--dir", type=Path, default=None, help="config folder")
    q.add_argument("--box", default=None, help="box name for the config layers")


def register(msub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    s = msub.add_parser("suppress", help="repeats of a false alarm kept from MES: list, add, lift")
    ssub = s.add_subparsers(dest="suppress_cmd", required=True)

    ls = ssub.add_parser("list", help="active suppressions (with --all, lifted and expired ones too)")
    _target(ls)
    ls.add_argument("--all", action="store_true", help="also lifted ones")
    ls.add_argument("--asset", default=None, help="only assets whose path contains this")
    ls.set_defaults(func=_list)

    add = ssub.add_parser("add", help="suppress repeats of a false_alarm-labelled insight for N hours")
    _target(add)
    add.add_argument("feedback_id", type=int, help="the id of the false_alarm label (operator_feedback.id)")
    add.add_argument("--hours", type=float, required=True, help="how long, from the labelled insight's time")
    add.add_argument("--leading", type=int, default=3, help="how many leading features must match (3)")
    add.add_argument("--who", default=None, help="who asks (default: the OS user)")
    add.add_argument("--reason", default="", help="why (kept in the audit)")
    add.set_defaults(func=_add)

    lf = ssub.add_parser("lift", help="lift a suppression: repeats raise alarms again")
    _target(lf)
    lf.add_argument("id", type=int)
    lf.add_argument("--who", default=None, help="who lifts it (default: the OS user)")
    lf.add_argument("--reason", required=True, help="why (kept in the audit)")
    lf.set_defaults(func=_lift)


def _list(args: argparse.Namespace) -> int:
    from inference.suppressions import list_suppressions

    try:
        rows = list_suppressions(historian_dsn(args), asset=args.asset, include_lifted=args.all)
    except Exception as exc:
        return _err(str(exc), EXIT_USAGE)
    now = datetime.now(UTC)
    if not rows:
        print("no suppressions")
    for r in rows:
        print(f"#{r.id} {r.state(now):7} {r.asset} {r.model} [{', '.join(r.features)}] "
              f"{r.starts_at.isoformat()} .. {r.until.isoformat()} by {r.who}; {r.suppressed} suppressed"
              + (f"; lifted by {r.lifted_by}: {r.lift_reason}" if r.lifted_at else ""))
    return 0


def _add(args: argparse.Namespace) -> int:
    from inference.suppressions import create

    try:
        sid = create(historian_dsn(args), args.feedback_id, args.hours, who=args.who, comment=args.reason,
                     leading=args.leading)
    except ValueError as exc:
        return _err(str(exc))
    print(f"suppression #{sid}: repeats of feedback {args.feedback_id}'s alarm suppressed for "
          f"{args.hours:g} h")
    return 0


def _lift(args: argparse.Namespace) -> int:
    from inference.suppressions import lift

    try:
        lift(historian_dsn(args), args.id, who=args.who, reason=args.reason)
    except ValueError as exc:
        return _err(str(exc))
    print(f"suppression #{args.id} lifted")
    return 0
