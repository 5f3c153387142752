"""The ``:`` command line's grammar and the similar-case distance (no database, no Textual)."""

from __future__ import annotations

from datetime import date

import pytest

from tui.commands import CommandError, find_asset, parse, parse_duration
from tui.models import FeedbackAction
from tui.similar_cases import contributions, cosine_distance

PATHS = ["acme/plant1/area1/line1/press2", "acme/plant1/area1/line2/press2", "acme/plant1/area1/line2/press3",
         "acme/plant1/area1/line12/press3"]


def test_commands_parse() -> None:
    assert parse(":asset line2/press3").text == "line2/press3"
    assert parse("since 2h").seconds == 7200 and parse(":since 90").seconds == 90
    assert parse(":since all").seconds is None
    label = parse(":label f sensor was cleaned")
    assert (label.action, label.text) == (FeedbackAction.FALSE_ALARM, "sensor was cleaned")
    assert parse(":label t").action is FeedbackAction.TRUE_FAULT and parse(":label a").text == ""
    r = parse(":report line2 2026-11-29 B")
    assert (r.line, r.day, r.shift) == ("line2", date(2026, 11, 29), "B")
    assert parse(":report").line is None and parse(":help").name == "help"


@pytest.mark.parametrize(("text", "says"), [
    (":", "empty command"), (":frobnicate", "unknown command :frobnicate"), (":asset", "usage: :asset"),
    (":since soon", "not a duration"), (":since 0m", "not a duration"), (":label x", "usage: :label"),
    (":report l 2026-13-01", "not a date"), (":report a b c d", "usage: :report"),
])
def test_bad_commands_say_what_would_work(text: str, says: str) -> None:
    with pytest.raises(CommandError, match=says):
        parse(text)


def test_durations_and_assets() -> None:
    assert [parse_duration(t) for t in ("30s", "5m", "1.5h", "2d")] == [30, 300, 5400, 172800]
    assert find_asset("line2/press3", PATHS) == "acme/plant1/area1/line2/press3"  # not line12's
    assert find_asset("line1/press2", PATHS) == "acme/plant1/area1/line1/press2"
    assert find_asset("press3", PATHS) is None  # two presses 3: ambiguous
    assert find_asset("line12", PATHS) == "acme/plant1/area1/line12/press3"
    assert find_asset("nowhere", PATHS) is None


def test_similar_cases_are_near_in_contributions() -> None:
    a = contributions('[{"feature": "t__mean", "contribution": 0.9}, '
                      '{"feature": "v__rms", "contribution": 0.1}]')
    same_shape = {"t__mean": 1.8, "v__rms": 0.2}
    other = {"v__rms": 1.0}
    assert cosine_distance(a, same_shape) == pytest.approx(0.0, abs=1e-12)
    assert cosine_distance(a, other) > 0.8
    assert cosine_distance(a, {}) == 1.0
