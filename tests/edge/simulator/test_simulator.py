"""The plant simulator: tag list, determinism, physics, and labels that match the injected faults."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from edge.simulator import signals
from edge.simulator.faults import Fault, FaultSpecError, parse_faults
from edge.simulator.plant import MEASURES, Plant, PlantConfig, machine_names, plant_tags


def test_tag_list_is_lines_by_machines_by_measures() -> None:
    tags = plant_tags(2, 3)
    assert len(tags) == 2 * 3 * len(MEASURES)
    assert tags[0].name == "line1.press1.vibration"
    assert tags[0].asset == "acme/plant1/area1/line1/press1"
    assert tags[0].unit == "mm/s"
    assert tags[-1].name == "line2.press3.pressure"
    assert [t.index for t in tags] == list(range(len(tags)))
    assert {t.measure for t in tags} == {"vibration", "temperature", "current", "pressure"}


def test_same_seed_same_values_other_seed_other_values() -> None:
    def run(seed: int) -> np.ndarray:
        p = Plant(PlantConfig(seed=seed), start_us=0)
        return np.stack([p.step().values for _ in range(50)])

    assert np.array_equal(run(3), run(3))
    assert not np.allclose(run(3), run(4))


def test_signals_are_plausible() -> None:
    p = Plant(PlantConfig(lines=1, machines=3, seed=1), start_us=0)
    vals = np.stack([p.step().values for _ in range(600)]).reshape(600, 3, 4)
    vib, temp, cur, pres = (vals[:, :, i] for i in range(4))
    assert 0.5 < vib.mean() < 4.0  # healthy machines: ISO 10816 zone A/B, mm/s RMS
    assert 25 < temp.mean() < 100
    assert cur.min() >= 8 and cur.max() <= 44
    assert 5 < pres.mean() < 200
    # current follows load and temperature is heated by it: they correlate across time
    assert np.corrcoef(cur[:, 0], pres[:, 0])[0, 1] > 0.8


def test_thermal_model_is_first_order() -> None:
    temp = np.array([24.0])
    current = np.array([40.0])
    target = signals.MOTOR.t_ambient_c + signals.MOTOR.heat_c_per_a2 * 40.0**2
    tau = signals.MOTOR.tau_s
    for _ in range(int(tau)):
        temp = signals.thermal_step(temp, current, 1.0)
    # after one time constant: 63.2 % of the step
    assert (temp[0] - 24.0) / (target - 24.0) == pytest.approx(1 - np.exp(-1), abs=1e-3)


def test_waveform_shows_bearing_fault_frequencies_growing_with_wear() -> None:
    fs, n, shaft = 12_000.0, 1 << 15, 24.7
    bpfo = signals.BEARING.bpfo(shaft)
    bpfi = signals.BEARING.bpfi(shaft)
    assert bpfo == pytest.approx(3.585 * shaft, rel=1e-3)
    assert bpfi == pytest.approx(5.415 * shaft, rel=1e-3)
    freqs = np.fft.rfftfreq(n, 1 / fs)

    def line(x: np.ndarray, f: float) -> float:
        spec = np.abs(np.fft.rfft(x * np.hanning(n))) / n
        i = int(np.argmin(np.abs(freqs - f)))
        return float(spec[i - 2:i + 3].max())

    new = signals.vibration_waveform(n, fs, shaft_hz=shaft, wear=0.0, seed=1)
    worn = signals.vibration_waveform(n, fs, shaft_hz=shaft, wear=0.9, seed=1)
    for f in (bpfo, 2 * bpfo, bpfi):
        assert line(worn, f) > 10 * line(new, f)
    # the 10 Hz RMS tag agrees with the RMS of the waveform it summarises
    assert float(np.sqrt(np.mean(worn**2))) == pytest.approx(
        float(signals.vibration_rms(np.array([0.6]), np.array([0.9]))[0]), rel=0.05)


def test_fault_spec_parsing() -> None:
    machines = machine_names(2, 3)
    faults = parse_faults("bearing_wear:line1.press1@10+100,stuck_sensor:line2.press3.current@5+2,"
                          "server_restart@30+4", machines)
    assert faults[0] == Fault("bearing_wear", "line1.press1", "vibration", 10.0, 110.0)
    assert faults[1].tag == "line2.press3.current"
    assert faults[2].kind == "server_restart" and faults[2].tag == ""
    assert parse_faults("none", machines) == []
    assert len(parse_faults("auto", machines, duration_s=100, seed=1)) == 5
    with pytest.raises(FaultSpecError):
        parse_faults("melting:line1.press1", machines)
    with pytest.raises(FaultSpecError):
        parse_faults("stuck_sensor:line9.press1@1+1", machines)


def test_labels_file_matches_injected_faults(tmp_path: Path) -> None:
    machines = machine_names(2, 3)
    spec = ("bearing_wear:line1.press1@20+40,overheating:line1.press2@10+60,"
            "stuck_sensor:line1.press3.temperature@15+10,spikes:line2.press1.vibration@30+10,"
            "dropout:line2.press2.current@40+5,server_restart@50+3")
    faults = parse_faults(spec, machines)
    labels = tmp_path / "labels.jsonl"
    rate = 10.0
    plant = Plant(PlantConfig(seed=5, rate_hz=rate, faults=tuple(faults)), start_us=1_700_000_000_000_000,
                  labels_path=labels)
    ticks = [plant.step() for _ in range(int(90 * rate))]
    plant.close()
    recs = [json.loads(line) for line in labels.read_text().splitlines()]
    assert sorted(r["kind"] for r in recs) == sorted(f.kind for f in faults)
    ts = np.array([t.ts_us for t in ticks])
    vals = np.stack([t.values for t in ticks])
    valid = np.stack([t.valid for t in ticks])
    by_kind = {r["kind"]: r for r in recs}
    for r in recs:
        assert r["end_us"] > r["start_us"]
        if r["tag"]:
            assert r["asset"] == plant.tag(r["tag"]).asset

    def window(rec: dict[str, object]) -> np.ndarray:
        return (ts >= rec["start_us"]) & (ts < rec["end_us"])  # type: ignore[operator]

    def col(tag: str) -> int:
        return plant.tag_names.index(tag)

    stuck = by_kind["stuck_sensor"]
    w = window(stuck)
    assert w.sum() == 100
    assert np.unique(vals[w, col(stuck["tag"])]).size == 1  # flat-lined exactly in the window
    assert np.unique(vals[~w, col(stuck["tag"])]).size > 100  # and live outside it

    drop = by_kind["dropout"]
    w = window(drop)
    assert not valid[w, col(drop["tag"])].any()
    assert valid[~w, col(drop["tag"])].all()

    spikes = by_kind["spikes"]
    w = window(spikes)
    v = vals[:, col(spikes["tag"])]
    base = np.median(v[~w])
    assert np.abs(v[w] - base).max() > 8
    assert np.abs(v[~w] - base).max() < 3

    wear = by_kind["bearing_wear"]
    w = window(wear)
    v = vals[:, col(wear["tag"])]
    late = w & (ts >= wear["start_us"] + 30_000_000)
    assert v[late].mean() > 2 * v[ts < wear["start_us"]].mean()

    hot = by_kind["overheating"]
    w = window(hot)
    v = vals[:, col(hot["tag"])]
    assert v[w][-50:].mean() > v[ts < hot["start_us"]].mean() + 10

    restart = by_kind["server_restart"]
    assert restart["tag"] == "" and restart["end_us"] - restart["start_us"] == 3_000_000


def test_samples_generator_is_columnar_and_drops_withheld_values() -> None:
    faults = parse_faults("dropout:line1.press1.current@0+1", machine_names(2, 3))
    plant = Plant(PlantConfig(faults=tuple(faults)), start_us=0)
    ts, tags, values = next(plant.samples(1))
    assert len(ts) == len(tags) == len(values) == 23
    assert "line1.press1.current" not in set(tags.tolist())
    assert ts.dtype == np.int64 and values.dtype == np.float64


def test_demo_site_layout_matches_firmware_config() -> None:
    """The simulator publishes what firmware-config's demo box subscribes to, in its tag map's units."""
    from edge.app.config import load_config

    repo = Path(__file__).resolve().parents[3]
    cfg = load_config(repo / "firmware-config", "demo-box").config
    plant = Plant(PlantConfig.demo_site(), start_us=0)
    mapped = cfg.assets.tags
    assert set(mapped) == set(plant.tag_names)
    prefix = f"{cfg.assets.enterprise}/{cfg.assets.site}/"
    for tag in plant.tags:
        m = mapped[tag.name]
        assert prefix + m.asset == tag.asset, tag.name
        assert m.measure == tag.measure, tag.name
        assert (m.unit or tag.unit) == tag.unit, tag.name
    [source] = [s for s in cfg.sources.opcua if s.name == "plant-sim"]
    expected = {t: f"nsu=urn:factory-edge:sim;s={t}" for t in plant.tag_names}
    assert {n.tag: n.node for n in source.nodes} == expected


def test_published_units_are_converted() -> None:
    plain = Plant(PlantConfig(seed=2), start_us=0)
    demo = Plant(PlantConfig.demo_site(seed=2), start_us=0)
    a, b = plain.step().values, demo.step().values
    i = plain.tag_names.index("line2.press1.temperature")
    assert demo.tags[i].unit == "degF" and b[i] == pytest.approx(a[i] * 9 / 5 + 32)
    j = plain.tag_names.index("line2.press2.pressure")
    assert demo.tags[j].unit == "psi" and b[j] == pytest.approx(a[j] * 14.503773773)
    k = plain.tag_names.index("line1.press1.vibration")
    assert b[k] == a[k]
