"""The optional Sparkplug B insights node, decoded by ingest's Sparkplug host codec (births, aliases, seq)."""

from __future__ import annotations

import numpy as np

from inference.insights import SeverityTracker, build_insights
from inference.sparkplug_node import SparkplugInsightsNode, device_id
from ingest.codecs import Decoded
from ingest.codecs.sparkplug import SparkplugCodec


def _insights(scores: list[float], model: str = "pca") -> object:
    n = len(scores)
    return build_insights(
        model=model,
        version="1",
        sha256="0" * 64,
        threshold=1.0,
        feature_names=["f"],
        assets=["site/line1/pump1"] * n,
        window_start_us=list(range(n)),
        window_end_us=[i + 10 for i in range(n)],
        scores=np.asarray(scores),
        contributions=None,
        flags=[0] * n,
        gated=[False] * n,
        contexts=[{}] * n,
        tracker=SeverityTracker(hysteresis_windows=1),
    )


def test_node_messages_decode_with_the_host_codec() -> None:
    node = SparkplugInsightsNode("plant", "edge1")
    will = node.will()
    assert will.topic == "spBv1.0/plant/NDEATH/edge1" and will.qos == 1
    msgs = [
        node.nbirth(1000),
        *node.messages(_insights([0.5, 2.0]), 2000),  # type: ignore[arg-type]
        *node.messages(_insights([0.3]), 3000),
    ]  # type: ignore[arg-type]
    topics = [m.topic for m in msgs]
    dev = device_id("site/line1/pump1")
    assert dev == "site.line1.pump1"
    assert topics == [
        "spBv1.0/plant/NBIRTH/edge1",
        f"spBv1.0/plant/DBIRTH/edge1/{dev}",
        f"spBv1.0/plant/DDATA/edge1/{dev}",
        f"spBv1.0/plant/DDATA/edge1/{dev}",
    ]
    codec = SparkplugCodec()
    out = Decoded("sp")
    codec.decode([(m.topic, m.payload) for m in msgs], 4_000_000, out)
    assert not out.commands, "the host asked for a rebirth: seq or aliases were wrong"
    rows = out.to_samples(4_000_000).to_pylist()
    got = {(r["tag"], r["ts"].timestamp()): r["value"] for r in rows}
    assert got[(f"plant/edge1/{dev}/pca/score", 2.0)] == 2.0  # latest of the first batch
    assert got[(f"plant/edge1/{dev}/pca/alarm", 2.0)] == 1.0
    assert got[(f"plant/edge1/{dev}/pca/score", 3.0)] == 0.3


def test_new_connection_bumps_bdseq_and_restarts_seq() -> None:
    node = SparkplugInsightsNode("g", "n")
    node.will()
    node.nbirth()
    for _ in range(300):
        node.messages(_insights([1.0]))  # type: ignore[arg-type]
    assert 0 <= node.seq < 256
    node.will()
    assert node.bdseq == 1
    node.nbirth()
    assert node.seq == 1  # NBIRTH took 0
    first = node.messages(_insights([1.0]))  # type: ignore[arg-type]
    assert first[0].topic.split("/")[2] == "DBIRTH"  # devices are born again after a rebirth
