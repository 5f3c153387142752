"""``edge context ...``: the MES context in the historian: show, backfill from CSV, and MES questions.

    edge context show --asset PATH [--at TIME]        context active for an equipment (most specific scope)
    edge context import-csv FILE                      backfill past work orders (relabels stored rows)
    edge context batch BATCH                          samples and insights of a batch or lot
    edge context work-order WO                        intervals and insights of a work order
    edge context product-stats --measure M            per-product statistics of a measure

The historian is ``--dsn``, else ``$FE_HISTORIAN_DSN``, else ``historian.dsn`` of the config.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from collections.abc import Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

EXIT_USAGE = 2

EPILOG_DSN = "historian: --dsn, else $FE_HISTORIAN_DSN, else historian.dsn from the config (firmware-config/)"


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = sub.add_parser(
        "context",
        help="MES context: show, import work orders, batch/work order/product queries",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    csub = p.add_subparsers(dest="context_command", metavar="ACTION", required=True)

    s = csub.add_parser(
        "show", help="the MES context of an equipment at a time (default now)", epilog=EPILOG_DSN
    )
    s.add_argument("--asset", required=True, help="ISA-95 path of the equipment (or line)")
    s.add_argument("--at", default=None, help="ISO 8601 time (no offset = UTC); default now")
    _common(s)
    s.set_defaults(func=_show)

    i = csub.add_parser(
        "import-csv",
        help="backfill past work orders from a CSV file",
        epilog=EPILOG_DSN,
        description="Columns: work_order,scope,start[,end][,product][,batch|lot]. Times ISO 8601 "
        "(no offset = UTC). Stored samples and insights in each range are relabelled.",
    )
    i.add_argument("file", type=Path, help="CSV file with a header row")
    i.add_argument("--no-relabel", action="store_true", help="only store the intervals; leave stored rows")
    i.add_argument("--check", action="store_true", help="only read and validate the file")
    _common(i)
    i.set_defaults(func=_import_csv)

    b = csub.add_parser(
        "batch", help="samples (per asset and measure) and insights of a batch or lot", epilog=EPILOG_DSN
    )
    b.add_argument("batch", help="batch or lot number")
    b.add_argument("--limit", type=int, default=50, help="insights listed at most (default 50)")
    _common(b)
    b.set_defaults(func=_batch)

    w = csub.add_parser(
        "work-order", help="intervals, batches and insights of a work order", epilog=EPILOG_DSN
    )
    w.add_argument("work_order", help="work order id")
    w.add_argument("--limit", type=int, default=50, help="insights listed at most (default 50)")
    _common(w)
    w.set_defaults(func=_work_order)

    ps = csub.add_parser(
        "product-stats",
        help="per-product statistics of a measure (n, mean, stddev, p05..p95)",
        epilog=EPILOG_DSN,
    )
    ps.add_argument("--measure", required=True, help="measure name, e.g. temperature, vibration")
    ps.add_argument("--product", default=None, help="only this product")
    ps.add_argument("--from", dest="t_from", default=None, help="ISO 8601 start (inclusive)")
    ps.add_argument("--to", dest="t_to", default=None, help="ISO 8601 end (exclusive)")
    _common(ps)
    ps.set_defaults(func=_product_stats)


def _common(p: argparse.ArgumentParser) -> None:
    p.add_argument("--dsn", default=None, help="historian PostgreSQL DSN")
    p.add_argument("--json", action="store_true", help="print JSON instead of a table")


class UsageError(Exception):
    pass


def _dsn(args: argparse.Namespace) -> str:
    if args.dsn:
        return str(args.dsn)
    env = os.environ.get("FE_HISTORIAN_DSN")
    if env:
        return env
    from edge.app.config import ConfigError, load_config

    try:
        return load_config().config.historian.dsn
    except ConfigError as exc:
        raise UsageError(f"no --dsn, no $FE_HISTORIAN_DSN, and the config cannot be read: {exc}") from None


def _time(text: str | None, what: str) -> datetime | None:
    if text is None:
        return None
    try:
        dt = datetime.fromisoformat(text.strip())
    except ValueError:
        raise UsageError(f"{what}: {text!r} is not an ISO 8601 time (like 2026-03-02T06:00:00Z)") from None
    return dt if dt.tzinfo else dt.replace(tzinfo=UTC)


def _run(fn: Any, args: argparse.Namespace) -> int:
    import psycopg

    try:
        dsn = _dsn(args)
        with psycopg.connect(dsn, autocommit=True, connect_timeout=10) as conn:
            return int(fn(conn, args))
    except UsageError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return EXIT_USAGE
    except psycopg.OperationalError as exc:
        print(f"error: cannot reach the historian: {str(exc).strip()}", file=sys.stderr)
        return 1
    except psycopg.errors.UndefinedTable as exc:
        print(f"error: {str(exc).strip()} (run 'edge historian migrate' first)", file=sys.stderr)
        return 1


def _print(
    args: argparse.Namespace,
    title: str,
    columns: Sequence[str],
    rows: Sequence[Sequence[Any]],
    doc: dict[str, Any],
) -> None:
    if args.json:
        doc.setdefault(title, [dict(zip(columns, r, strict=True)) for r in rows])
        return
    print(f"{title}:")
    if not rows:
        print("  (none)")
        return
    text = [[_fmt(v) for v in r] for r in rows]
    widths = [max(len(c), *(len(r[i]) for r in text)) for i, c in enumerate(columns)]
    print("  " + "  ".join(c.ljust(w) for c, w in zip(columns, widths, strict=True)))
    for r in text:
        print("  " + "  ".join(v.ljust(w) for v, w in zip(r, widths, strict=True)))


def _fmt(v: Any) -> str:
    if v is None:
        return "-"
    if isinstance(v, datetime):
        return v.astimezone(UTC).isoformat().replace("+00:00", "Z")
    if isinstance(v, float):
        return f"{v:.6g}"
    if isinstance(v, list):
        return ",".join(str(x) for x in v)
    return str(v)


def _emit_json(args: argparse.Namespace, doc: dict[str, Any]) -> None:
    if args.json:
        print(json.dumps(doc, indent=2, default=_fmt))


def _query(
    conn: Any,
    args: argparse.Namespace,
    title: str,
    columns: Sequence[str],
    sql: str,
    params: Sequence[Any],
    doc: dict[str, Any],
) -> None:
    """Run ``sql`` and print (or add to ``doc``) its rows under ``title``."""
    _print(args, title, columns, conn.execute(sql, params).fetchall(), doc)


# ----- show
def _show(args: argparse.Namespace) -> int:
    return _run(_show_db, args)


def _show_db(conn: Any, args: argparse.Namespace) -> int:
    from contextualize.mes_events import ALL_KEYS

    at = _time(args.at, "--at") or datetime.now(UTC)
    asset = args.asset.strip().strip("/")
    rows = conn.execute(
        "SELECT DISTINCT ON (key) key, value, scope, valid_from, valid_to FROM mes_context "
        "WHERE (scope = %(a)s OR starts_with(%(a)s, scope || '/')) AND valid_from <= %(t)s "
        "AND (valid_to IS NULL OR valid_to > %(t)s) ORDER BY key, length(scope) DESC",
        {"a": asset, "t": at},
    ).fetchall()
    found = {r[0]: r for r in rows}
    table = [found.get(k, (k, None, None, None, None)) for k in ALL_KEYS]
    doc: dict[str, Any] = {"asset": asset, "at": at.isoformat()}
    if not args.json:
        print(f"{asset} at {_fmt(at)}")
    _print(args, "context", ["key", "value", "scope", "since", "until"], table, doc)
    _emit_json(args, doc)
    return 0


# ----- import-csv
def _import_csv(args: argparse.Namespace) -> int:
    from contextualize.mes_csv import import_csv, read_work_orders

    if not args.file.is_file():
        print(f"error: {args.file}: no such file", file=sys.stderr)
        return EXIT_USAGE
    try:
        events, errors = read_work_orders(args.file)
    except ValueError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return EXIT_USAGE
    for e in errors:
        print(f"error: {e}", file=sys.stderr)
    if errors:
        return EXIT_USAGE
    if args.check:
        print(f"ok: {args.file}: {len(events)} events")
        return 0

    def work(conn: Any, a: argparse.Namespace) -> int:
        rep = import_csv(conn, a.file, relabel=not a.no_relabel)
        doc = {
            "file": str(a.file),
            "work_orders": rep.rows,
            "events": rep.events,
            "changes": rep.changes,
            "samples_relabelled": rep.samples_relabelled,
            "insights_relabelled": rep.insights_relabelled,
        }
        if a.json:
            print(json.dumps(doc, indent=2))
        else:
            print(
                f"imported {rep.rows} work orders ({rep.events} events, {rep.changes} context changes); "
                f"relabelled {rep.samples_relabelled} samples and {rep.insights_relabelled} insights"
            )
        return 0

    return _run(work, args)


# ----- batch
def _batch(args: argparse.Namespace) -> int:
    return _run(_batch_db, args)


def _intervals(conn: Any, key: str, value: str) -> list[tuple[Any, ...]]:
    return list(
        conn.execute(
            "SELECT scope, valid_from, valid_to, source_event FROM mes_context WHERE key = %s AND value = %s "
            "ORDER BY valid_from",
            (key, value),
        ).fetchall()
    )


def _batch_db(conn: Any, args: argparse.Namespace) -> int:
    doc: dict[str, Any] = {"batch": args.batch}
    _print(args, "intervals", ["scope", "from", "to", "event"], _intervals(conn, "batch", args.batch), doc)
    _query(
        conn,
        args,
        "samples",
        ["asset", "measure", "unit", "work_order", "n", "first", "last", "mean", "min", "max"],
        "SELECT asset, measure, unit, work_order, count(*), min(ts), max(ts), avg(value), min(value), "
        "max(value) "
        "FROM mes_batch_samples WHERE batch = %s GROUP BY asset, measure, unit, work_order ORDER BY 1, 2",
        (args.batch,),
        doc,
    )
    _query(
        conn,
        args,
        "insights",
        ["window_end", "asset", "model", "score", "threshold", "severity", "work_order", "revised",
         "insight_id"],
        "SELECT window_end, asset, model, score, threshold, severity, work_order, revised, insight_id "
        "FROM mes_batch_insights WHERE batch = %s ORDER BY window_end LIMIT %s",
        (args.batch, args.limit),
        doc,
    )
    _emit_json(args, doc)
    return 0


# ----- work-order
def _work_order(args: argparse.Namespace) -> int:
    return _run(_work_order_db, args)


def _work_order_db(conn: Any, args: argparse.Namespace) -> int:
    wo = args.work_order
    doc: dict[str, Any] = {"work_order": wo}
    _print(args, "intervals", ["scope", "from", "to", "event"], _intervals(conn, "work_order", wo), doc)
    _query(
        conn,
        args,
        "insights summary",
        ["product", "insights", "over_threshold", "max_score", "revised", "first_window", "last_window",
         "batches"],
        "SELECT product, insights, over_threshold, max_score, revised, first_window, last_window, batches "
        "FROM mes_work_order_insights WHERE work_order = %s",
        (wo,),
        doc,
    )
    _query(
        conn,
        args,
        "top insights",
        ["window_end", "asset", "model", "score", "threshold", "severity", "batch", "revised", "insight_id"],
        "SELECT window_end, asset, model, score, threshold, severity, batch, revised, insight_id "
        "FROM mes_insights_context WHERE work_order = %s ORDER BY score DESC NULLS LAST LIMIT %s",
        (wo, args.limit),
        doc,
    )
    _emit_json(args, doc)
    return 0


# ----- product-stats
def _product_stats(args: argparse.Namespace) -> int:
    return _run(_product_stats_db, args)


def _product_stats_db(conn: Any, args: argparse.Namespace) -> int:
    t_from = _time(args.t_from, "--from")
    t_to = _time(args.t_to, "--to")
    doc: dict[str, Any] = {"measure": args.measure}
    _query(
        conn,
        args,
        f"{args.measure} by product",
        ["product", "unit", "n", "mean", "stddev", "min", "p05", "median", "p95", "max", "batches",
         "work_orders"],
        "SELECT product, unit, n, mean, stddev, min, p05, median, p95, max, batches, work_orders "
        "FROM mes_product_stats(%s, coalesce(%s, '-infinity'::timestamptz), "
        "coalesce(%s, 'infinity'::timestamptz)) "
        "WHERE %s::text IS NULL OR product = %s",
        (args.measure, t_from, t_to, args.product, args.product),
        doc,
    )
    _emit_json(args, doc)
    return 0
