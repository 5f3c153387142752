"""Dotted paths, topic patterns and template variables of the JSON codec."""

from __future__ import annotations

import pytest

from ingest.codecs.json.paths import TopicVars, compile_topic_pattern, get_or, make_getter


def test_getters_follow_keys_and_list_indices() -> None:
    obj = {"a": {"b": [{"c": 1}, {"c": 2}]}}
    assert make_getter("a.b.1.c")(obj) == 2
    assert make_getter("a")(obj) is obj["a"]
    assert make_getter("")(obj) is obj
    with pytest.raises(KeyError):
        make_getter("a.x")(obj)
    assert get_or(make_getter("a.x"), 0)(obj) == 0


def test_topic_patterns_name_levels() -> None:
    m = compile_topic_pattern("plant/{line}/{rest*}").match("plant/l1/m1/vib")
    assert m is not None and m.groupdict() == {"line": "l1", "rest": "m1/vib"}
    assert compile_topic_pattern("plant/+/{m}").match("plant/x/y") is not None
    assert compile_topic_pattern("plant/{m}").match("other/y") is None


def test_template_variables_include_topic_levels() -> None:
    v = TopicVars({"topic": "a/b/c"}, "a/b/c")
    assert "{l0}.{l2}".format_map(v) == "a.c"
    with pytest.raises(LookupError):
        "{nope}".format_map(v)
