"""``edge report shift``: a line's shift report (alarms, labels, false-alarm rate, top equipment, MES context
changes) as Markdown or as an HTML page a supervisor opens in a browser. The report is the TUI's
(:mod:`tui.shift_report`, rendered by :mod:`tui.report_render`), read as ``edge_reader``."""

from __future__ import annotations

import argparse
import asyncio
import sys
from datetime import date
from pathlib import Path

EXIT_USAGE = 2
EXIT_UNAVAILABLE = 1


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = sub.add_parser("report", help="reports for supervisors (shift report)")
    rsub = p.add_subparsers(dest="report_command", metavar="REPORT")
    s = rsub.add_parser("shift", help="a line's shift report as Markdown or HTML",
                        description="Alarms, labels, false-alarm rate, top equipment and MES context changes "
                                    "of one line on one UTC day (or one shift of it).")
    s.add_argument("--line", required=True, help="line name (line2) or ISA-95 path (acme/plant1/area1/line2)")
    s.add_argument("--date", required=True, metavar="YYYY-MM-DD", help="the UTC day")
    s.add_argument("--shift", default=None, help="only this shift (the MES context's shift value)")
    s.add_argument("--format", choices=["md", "html"], default="md", help="Markdown (default) or HTML")
    s.add_argument("-o", "--output", type=Path, default=None, metavar="FILE",
                   help="write here (default stdout)")
    s.add_argument("--dsn", default=None, help="historian DSN as edge_reader (default: the running demo's)")
    s.add_argument("--timeout", type=float, default=10.0, metavar="SECONDS",
                   help="longest wait for the query (default 10)")
    s.set_defaults(func=_shift)

    def usage(_args: argparse.Namespace) -> int:
        p.print_help()
        return EXIT_USAGE

    p.set_defaults(func=usage)


def _shift(args: argparse.Namespace) -> int:
    try:
        day = date.fromisoformat(args.date)
    except ValueError:
        print(f"error: --date {args.date!r} is not a date (YYYY-MM-DD, e.g. --date 2026-11-29)",
              file=sys.stderr)
        return EXIT_USAGE
    dsn = args.dsn
    if dsn is None:
        from edge.app.commands.tui_cmd import demo_state_path, read_demo_state

        try:
            state = read_demo_state()
        except ValueError as exc:
            print(f"error: {exc}", file=sys.stderr)
            return EXIT_USAGE
        if state is None:
            print(f"error: no --dsn given and no demo running (no {demo_state_path()}): pass --dsn "
                  "postgresql://edge_reader@HOST/factory_edge", file=sys.stderr)
            return EXIT_USAGE
        dsn = state.dsn
    from tui.data_source import Unavailable
    from tui.historian_source import HistorianSource
    from tui.report_render import render

    async def read() -> str:
        source = HistorianSource(dsn, timeout_s=args.timeout, connect_timeout_s=args.timeout)
        try:
            return render(await source.shift_report(args.line, day, args.shift), args.format)
        finally:
            await source.close()

    try:
        text = asyncio.run(read())
    except Unavailable as exc:
        print(f"error: the historian did not answer ({exc}); check --dsn and `edge historian init`",
              file=sys.stderr)
        return EXIT_UNAVAILABLE
    if args.output is None:
        sys.stdout.write(text)
    else:
        args.output.write_text(text, encoding="utf-8")
        print(f"{args.format} shift report of {args.line} on {day} written to {args.output}", file=sys.stderr)
    return 0
