"""Model training (PCA T²/SPE, IsolationForest), packages, registry, CLI, and detection on real data."""

from __future__ import annotations

import glob
import json
import os
import shutil
from pathlib import Path

import numpy as np
import polars as pl
import pytest

from edge.app.cli import main as edge_main
from edge.core.datamodel import EVENTS
from inference.models.iforest.kind import KIND as IFOREST_KIND
from inference.models.iforest.settings import IforestSettings
from inference.models.pca.kind import KIND as PCA_KIND
from inference.models.pca.settings import PcaSettings
from inference.packages import (
    PackageError,
    Registry,
    archive_package,
    audit_batch,
    load_package,
    write_package,
)
from inference.runtimes.onnx.runtime import OnnxRuntime
from inference.train import fit
from inference.training_set import TrainingSet, features_from_samples, read_table, samples_batch
from inference.windows import WindowSpec

# The labelled data sets lie in shared/ beside the checkout (CI lays a copy there too); FE_SHARED_DATA
# points elsewhere. They are test data only and never shipped.
DATA = Path(os.environ.get("FE_SHARED_DATA", Path(__file__).resolve().parents[3] / "shared" / "data"))
needs_data = pytest.mark.skipif(not DATA.exists(), reason=f"shared data folder {DATA} not present")


def synthetic(n: int = 400, k: int = 6, seed: int = 0) -> TrainingSet:
    rng = np.random.default_rng(seed)
    latent = rng.normal(size=(n, 2))
    x = latent @ rng.normal(size=(2, k)) + 0.1 * rng.normal(size=(n, k)) + 5.0
    return TrainingSet([f"s{i}__mean" for i in range(k)], x, np.arange(n))


def manifest_for(ts: TrainingSet, r: object, name: str = "m") -> dict[str, object]:
    return {
        "name": name,
        "kind": r.kind,
        "features": ts.feature_names,
        "input": "features",  # type: ignore[attr-defined]
        "outputs": {"score": "score", "contributions": "contributions"},
        "threshold": r.threshold,
        "training": {"sha256": "x"},
        "metrics": r.metrics,
    }  # type: ignore[attr-defined]


def test_pca_graph_matches_numpy_t2_spe() -> None:
    ts = synthetic()
    r = fit(PCA_KIND, ts, PcaSettings(var=0.9))
    out = OnnxRuntime(r.onnx).infer(ts.x[:50])
    x = ts.x[: round(len(ts.x) * 0.8)]
    mu, sd = x.mean(0), x.std(0)
    from sklearn.decomposition import PCA

    z = (x - mu) / sd
    pca = PCA(n_components=0.9, svd_solver="full").fit(z)
    zz = (ts.x[:50] - mu) / sd
    t = zz @ pca.components_.T
    t2 = (t * t / pca.explained_variance_).sum(1)
    res = zz - t @ pca.components_
    spe = (res * res).sum(1)
    np.testing.assert_allclose(out["t2"], t2, rtol=2e-3, atol=1e-3)
    np.testing.assert_allclose(out["spe"], spe, rtol=2e-3, atol=1e-3)
    ratio = np.maximum(t2 / r.thresholds["t2"], spe / r.thresholds["spe"])
    np.testing.assert_allclose(out["score"], ratio, rtol=2e-3, atol=1e-3)
    # contributions sum to T²/T²_lim + SPE/SPE_lim
    np.testing.assert_allclose(
        out["contributions"].sum(1), t2 / r.thresholds["t2"] + spe / r.thresholds["spe"], rtol=2e-3, atol=1e-3
    )


def test_contributions_point_at_the_broken_feature() -> None:
    ts = synthetic()
    r = fit(PCA_KIND, ts)
    x = ts.x[:5].copy()
    x[:, 3] += 50 * ts.x[:, 3].std()
    out = OnnxRuntime(r.onnx).infer(x)
    assert (out["score"] > r.threshold).all()
    assert (np.argmax(np.abs(out["contributions"]), axis=1) == 3).all()
    r2 = fit(IFOREST_KIND, ts, IforestSettings(n_estimators=30))
    out2 = OnnxRuntime(r2.onnx).infer(x)
    assert (out2["score"] > r2.metrics["train_score_p50"]).all()
    assert (np.argmax(out2["contributions"], axis=1) == 3).all()


def test_threshold_meets_the_target_rate_after_hysteresis() -> None:
    ts = synthetic(1000)
    r = fit(IFOREST_KIND, ts, IforestSettings(target_far=0.05, n_estimators=30), holdout=0.0)
    assert 0.03 <= r.metrics["calibration"]["heldout_alarm_rate_after_hysteresis"] <= 0.05


def test_package_hash_and_feature_checks(tmp_path: Path) -> None:
    ts = synthetic()
    r = fit(PCA_KIND, ts)
    pkg = write_package(tmp_path / "m", {**manifest_for(ts, r), "version": "1"}, r.onnx, r.holdout)
    assert load_package(tmp_path / "m", ts.feature_names).sha256 == pkg.sha256
    with pytest.raises(PackageError, match="does not produce: s5__mean"):
        load_package(tmp_path / "m", ts.feature_names[:5])
    arch = archive_package(tmp_path / "m", tmp_path / "m.tar.gz")
    assert load_package(arch).features == ts.feature_names
    (tmp_path / "m" / "model.onnx").write_bytes(r.onnx + b"\0")
    with pytest.raises(PackageError, match="sha256"):
        load_package(tmp_path / "m")
    m = json.loads((tmp_path / "m" / "manifest.json").read_text())
    del m["features"]
    (tmp_path / "m" / "manifest.json").write_text(json.dumps(m))
    with pytest.raises(PackageError, match="lacks features"):
        load_package(tmp_path / "m")


def test_registry_validate_promote_rollback_audit(tmp_path: Path) -> None:
    reg = Registry(tmp_path / "models")
    ts = synthetic()
    r = fit(PCA_KIND, ts)
    v1 = reg.add(manifest_for(ts, r), r.onnx, r.holdout)
    v2 = reg.add(manifest_for(ts, r), r.onnx, r.holdout)
    assert (v1.version, v2.version) == ("1", "2")
    with pytest.raises(PackageError, match="validation"):
        reg.promote("m", "1")
    assert reg.validate("m", "1", max_false_alarm_rate=0.2)["passed"]
    reg.promote("m", "1")
    bad = reg.validate("m", "2", max_false_alarm_rate=0.0, holdout=ts.x[:5] * 100)
    assert not bad["passed"]
    with pytest.raises(PackageError):
        reg.promote("m", "2")
    reg.validate("m", "2", max_false_alarm_rate=0.2)
    with pytest.raises(PackageError, match="no passed promotion gate"):  # only a first champion may skip it
        reg.promote("m", "2")
    reg.record_gate("m", "2", {"passed": True, "reasons": []})
    reg.promote("m", "2")
    assert reg.current() == {"m": "2"}
    reg.rollback("m")
    assert reg.current() == {"m": "1"}
    with pytest.raises(PackageError, match="earlier"):
        reg.rollback("m")
    actions = [e["action"] for e in reg.audit_log()]
    assert actions == [
        "register",
        "register",
        "validate",
        "promote",
        "validate",
        "validate",
        "gate",
        "promote",
        "rollback",
    ]
    assert audit_batch(reg.audit_log()).schema.equals(EVENTS)


@needs_data
def test_cli_train_list_show_validate_promote(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    csv = DATA / "skab" / "anomaly-free" / "anomaly-free.csv"
    md = str(tmp_path / "models")
    rc = edge_main(
        [
            "models",
            "train",
            "--csv",
            str(csv),
            "--name",
            "pump",
            "--kind",
            "pca",
            "--models-dir",
            md,
            "--archive",
            str(tmp_path / "pump.tar.gz"),
        ]
    )
    out = capsys.readouterr()
    assert rc == 0, out.err
    assert "[train" in out.err and "windows" in out.err  # progress on stderr
    assert (tmp_path / "pump.tar.gz").exists()
    assert edge_main(["models", "list", "--models-dir", md, "--json"]) == 0
    rows = json.loads(capsys.readouterr().out)
    assert rows == [{"model": "pump", "version": "1", "current": False, "aliases": [], "validated": None,
                     "gate": None}]
    assert edge_main(["models", "promote", "pump", "1", "--models-dir", md]) == 1
    assert edge_main(["models", "validate", "pump", "1", "--models-dir", md, "--max-far", "0.5"]) == 0
    assert edge_main(["models", "promote", "pump", "1", "--models-dir", md]) == 0
    capsys.readouterr()
    assert edge_main(["models", "show", "pump", "--models-dir", md]) == 0
    shown = json.loads(capsys.readouterr().out)
    assert shown["current"] == "1"
    assert shown["runtime"]["providers_in_use"][-1] == "CPUExecutionProvider"
    assert shown["manifest"]["training"]["sources"][0].startswith("anomaly-free.csv sha256:")
    assert (
        edge_main(["models", "train", "--csv", str(tmp_path / "nope.csv"), "--name", "x", "--models-dir", md])
        == 2
    )


@needs_data
def test_cwru_normal_model_flags_bearing_faults() -> None:
    fs = 12000
    spec = WindowSpec(window_s=1024 / fs, hop_s=1024 / fs, grid_hz=fs, max_hold_s=0, allowed_lateness_s=0)

    def feats(name: str, order: list[str] | None = None) -> TrainingSet:
        x = np.load(DATA / "cwru" / name)["DE"][:, 0]
        ts = (np.arange(len(x)) * 1e6 / fs).astype(np.int64) + 1_700_000_000_000_000
        return features_from_samples(
            [samples_batch(ts, {"DE": x}, "bearing")], spec, spectral=["DE"], n_bands=8, feature_order=order
        )

    normal = feats("1797_Normal.npz")
    assert normal.x.shape[0] > 200 and "DE__dom_freq" in normal.feature_names
    fits = (fit(PCA_KIND, normal, PcaSettings(quantile=0.99)),
            fit(IFOREST_KIND, normal, IforestSettings(n_estimators=50)))
    for r in fits:
        rt = OnnxRuntime(r.onnx)
        far = r.metrics["holdout_false_alarm_rate"]
        assert far <= 0.2
        for fault in ("1797_IR_7_DE12.npz", "1797_B_7_DE12.npz", "1797_OR@6_7_DE12.npz"):
            fx = feats(fault, normal.feature_names)
            rate = float(np.mean(rt.infer(fx.x)["score"] >= r.threshold))
            assert rate >= 0.9 and rate > 4 * far, (r.kind, fault, rate, far)


@needs_data
def test_skab_valve_anomalies_flagged_above_false_alarm_rate() -> None:
    """Fit on the normal rows of valve1 runs 0-7; score runs 8-15 (windows labelled by majority)."""
    spec = WindowSpec(window_s=30, hop_s=10, grid_hz=1, max_hold_s=5, allowed_lateness_s=0)
    files = sorted(glob.glob(str(DATA / "skab" / "valve1" / "*.csv")), key=lambda f: int(Path(f).stem))

    def load(f: str, normal_only: bool) -> tuple[np.ndarray, dict[str, np.ndarray], np.ndarray]:
        ts, sig = read_table(Path(f))
        lab = pl.read_csv(f, separator=";").get_column("anomaly").to_numpy()
        if normal_only:
            sig = {k: np.where(lab == 0, v, np.nan) for k, v in sig.items()}
        return ts, sig, lab

    xs, names = [], None
    for f in files[:8]:
        ts, sig, _ = load(f, True)
        t = features_from_samples([samples_batch(ts, sig, "valve")], spec, feature_order=names)
        names = t.feature_names
        xs.append(t.x)
    assert names is not None
    r = fit(IFOREST_KIND, TrainingSet(names, np.concatenate(xs), np.zeros(0)), IforestSettings(quantile=0.99))
    rt = OnnxRuntime(r.onnx)
    flagged_anomalous, flagged_normal = [], []
    for f in files[8:]:
        ts, sig, lab = load(f, False)
        fx = features_from_samples([samples_batch(ts, sig, "valve")], spec, feature_order=names)
        s = rt.infer(fx.x)["score"]
        share = np.array([lab[(ts >= st) & (ts < st + 30_000_000)].mean() for st in fx.window_start_us])
        flagged_anomalous.append(s[share > 0.5] >= r.threshold)
        flagged_normal.append(s[share == 0] >= r.threshold)
    hit = float(np.concatenate(flagged_anomalous).mean())
    far = float(np.concatenate(flagged_normal).mean())
    assert hit > 3 * far and hit >= 0.15, (hit, far)


def test_package_folder_copy_is_independent(tmp_path: Path) -> None:
    ts = synthetic()
    r = fit(IFOREST_KIND, ts, IforestSettings(n_estimators=20))
    write_package(tmp_path / "a", {**manifest_for(ts, r), "version": "7"}, r.onnx)
    shutil.copytree(tmp_path / "a", tmp_path / "b")
    reg = Registry(tmp_path / "reg")
    pkg = reg.import_package(tmp_path / "b")
    assert pkg.version == "7" and reg.versions("m") == ["7"]


def test_train_from_the_historian(pg_dsn: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """``edge models train --dsn`` under the shipped ``signal_key = "measure"`` names the features by the
    historian's measure column, as the live pipeline does; a model trained by tag is refused at load."""
    import psycopg

    from edge.sinks.historian.migrate import migrate
    from inference.deploy import check_window
    from inference.packages import PackageError
    from inference.settings import InferenceSettings

    with psycopg.connect(pg_dsn, autocommit=True) as conn:
        migrate(conn, "postgres")
        rng = np.random.default_rng(3)
        t0 = 1_700_000_000
        measure = {"a": "pressure", "b": "current"}
        rows = [
            (t0 + i, tag, float(rng.normal()), 0, "sim", asset, measure[tag])
            for i in range(1500)
            for tag in ("a", "b")
            for asset in ("eq/A", "eq/B")
        ]
        with conn.cursor() as cur:
            cur.executemany(
                "INSERT INTO samples (ts, recv_ts, tag, value, quality, source, asset, measure) "
                "VALUES (to_timestamp(%s), to_timestamp(%s), %s, %s, %s, %s, %s, %s)",
                [(t, t, tag, v, q, s, a, m) for t, tag, v, q, s, a, m in rows],
            )
    md = str(tmp_path / "models")
    base = ["models", "train", "--dsn", pg_dsn, "--asset", "eq/A", "--from", "2023-11-14T22:13:20+00:00",
            "--to", "2023-11-14T22:38:20+00:00", "--models-dir", md]
    assert edge_main([*base, "--name", "small"]) == 2  # 1 % needs >= 1000 windows
    err = capsys.readouterr().err
    assert "training data too small: 240 usable windows (10 s every 5 s), need >= 1000" in err
    assert "give a longer baseline, a larger target rate, or fewer features" in err
    rc = edge_main([*base, "--name", "hist", "--target-far", "0.05"])
    out = capsys.readouterr()
    assert rc == 0, out.err
    assert "held out" in out.out and "%" in out.out
    pkg = Registry(Path(md)).package("hist", "1")
    assert pkg.manifest["assets"] == ["eq/A"] and pkg.manifest["window"]["signal_key"] == "measure"
    assert pkg.manifest["training"]["windows"] >= 250
    assert sorted({f.split("__")[0] for f in pkg.features}) == ["current", "pressure"]
    check_window(pkg, InferenceSettings(signal_key="measure"))
    with pytest.raises(PackageError) as e:
        check_window(pkg, InferenceSettings(signal_key="tag"))
    msg = str(e.value)
    assert "signal_key='measure'" in msg and "signal_key='tag'" in msg and "edge models train --dsn" in msg
    assert edge_main(["models", "train", "--dsn", pg_dsn, "--name", "x", "--models-dir", md]) == 2
