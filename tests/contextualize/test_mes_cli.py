"""``edge context ...`` against a real historian: CSV backfill relabels stored rows, show, batch, work order,
product statistics; usage errors exit 2."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import psycopg
import pytest

from edge.app.commands.mes_cmd import register
from tests.fixtures.mes import EQ1, LINE, insert_insights, insert_samples, iso, migrate


def cli(*argv: str) -> int:
    parser = argparse.ArgumentParser(prog="edge")
    register(parser.add_subparsers(dest="command"))
    args = parser.parse_args(list(argv))
    return int(args.func(args))


def test_import_csv_then_questions(pg_dsn: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    migrate(pg_dsn)
    insert_samples(pg_dsn, [(EQ1, m) for m in range(0, 60)])
    insert_insights(pg_dsn, [(EQ1, m) for m in (5, 15, 35, 55)])
    csv_file = tmp_path / "orders.csv"
    csv_file.write_text(
        "work_order,scope,start,end,product,batch\n"
        f"WO-1,{LINE},{iso(10)},{iso(30)},SKU-1,B-1\n"
        f"WO-2,{LINE},{iso(30)},,SKU-2,B-2\n"
    )
    assert cli("context", "import-csv", str(csv_file), "--dsn", pg_dsn, "--json") == 0
    rep = json.loads(capsys.readouterr().out)
    assert rep["work_orders"] == 2 and rep["samples_relabelled"] > 0
    with psycopg.connect(pg_dsn) as conn:
        wo = [r[0] for r in conn.execute("SELECT work_order FROM samples ORDER BY ts").fetchall()]
    assert wo == [None] * 10 + ["WO-1"] * 20 + ["WO-2"] * 30
    # importing the same file again changes nothing
    assert cli("context", "import-csv", str(csv_file), "--dsn", pg_dsn, "--json") == 0
    again = json.loads(capsys.readouterr().out)
    assert again["changes"] == 0 and again["samples_relabelled"] == 0

    assert cli("context", "show", "--asset", EQ1, "--at", iso(20), "--dsn", pg_dsn, "--json") == 0
    shown = {r["key"]: r["value"] for r in json.loads(capsys.readouterr().out)["context"]}
    assert shown == {"work_order": "WO-1", "product": "SKU-1", "batch": "B-1", "shift": None,
                     "work_order_state": "running"}
    assert cli("context", "show", "--asset", EQ1, "--at", iso(5), "--dsn", pg_dsn) == 0
    assert "work_order        -" in capsys.readouterr().out.replace("  ", "  ")

    assert cli("context", "batch", "B-1", "--dsn", pg_dsn, "--json") == 0
    b = json.loads(capsys.readouterr().out)
    assert b["samples"][0]["n"] == 20 and [i["insight_id"] for i in b["insights"]] == ["i1"]

    assert cli("context", "work-order", "WO-2", "--dsn", pg_dsn, "--json") == 0
    w = json.loads(capsys.readouterr().out)
    assert w["insights summary"][0]["insights"] == 2 and len(w["intervals"]) == 1

    assert cli("context", "product-stats", "--measure", "temperature", "--dsn", pg_dsn) == 0
    out = capsys.readouterr().out
    assert "SKU-1" in out and "SKU-2" in out
    assert cli("context", "product-stats", "--measure", "temperature", "--product", "SKU-1", "--dsn", pg_dsn,
               "--json") == 0
    stats = json.loads(capsys.readouterr().out)["temperature by product"]
    assert [(s["product"], s["n"], s["mean"]) for s in stats] == [("SKU-1", 20, 19.5)]


def test_usage_errors_exit_2(pg_dsn: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    migrate(pg_dsn)
    assert cli("context", "show", "--asset", EQ1, "--at", "noon", "--dsn", pg_dsn) == 2
    assert "ISO 8601" in capsys.readouterr().err
    assert cli("context", "import-csv", str(tmp_path / "missing.csv"), "--dsn", pg_dsn) == 2
    bad = tmp_path / "bad.csv"
    bad.write_text("work_order,scope,start,end\nWO-1,a/b,2026-03-02T06:00:00Z,2026-03-02T05:00:00Z\n")
    assert cli("context", "import-csv", str(bad), "--check") == 2
    assert "bad.csv:2" in capsys.readouterr().err
    (tmp_path / "nohead.csv").write_text("a,b\n1,2\n")
    assert cli("context", "import-csv", str(tmp_path / "nohead.csv"), "--check") == 2
