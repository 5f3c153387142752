"""The cut journal: what it records survives a reopen, old lines still read, compaction keeps the last."""

from __future__ import annotations

from pathlib import Path

from ingest.sources.mqtt.journal import CutJournal


def test_a_recorded_cut_is_found_after_reopening(tmp_path: Path) -> None:
    path = tmp_path / "src.cuts"
    j = CutJournal(path)
    j.record("k1", 7, "id1")
    assert j.lookup("k1") == (7, "id1")
    assert CutJournal(path).lookup("k1") == (7, "id1")
    assert CutJournal(path).lookup("nope") is None


def test_lines_without_an_id_read_as_no_id(tmp_path: Path) -> None:
    path = tmp_path / "old.cuts"
    path.write_text("k1 5\nbroken line\n")
    assert CutJournal(path).lookup("k1") == (5, None)


def test_compaction_keeps_the_last_entries(tmp_path: Path) -> None:
    path = tmp_path / "c.cuts"
    j = CutJournal(path)
    j.KEEP = 3  # type: ignore[misc]
    for i in range(8):
        j.record(f"k{i}", i, f"id{i}")
    again = CutJournal(path)
    assert again.lookup("k7") == (7, "id7")
    assert again.lookup("k0") is None
    assert len(path.read_text().splitlines()) < 8


def test_a_batch_begun_but_never_cut_reads_as_begun_and_its_cut_replaces_it(tmp_path: Path) -> None:
    path = tmp_path / "b.cuts"
    j = CutJournal(path)
    j.begin("k1")
    assert CutJournal(path).lookup("k1") == (0, None)
    j.record("k1", 4, "id1")
    j.begin("k1")  # a later begin does not undo the cut
    assert CutJournal(path).lookup("k1") == (4, "id1")
