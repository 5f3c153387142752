"""Layered config: merging key by key, errors that name file + key path + expectation, the CLI, the schema."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from edge.app.cli import main
from edge.app.config import (
    ConfigError,
    default_config_dir,
    layer_paths,
    load_config,
    load_config_file,
    schema_text,
)

REPO = Path(__file__).resolve().parents[3]
FIRMWARE = REPO / "firmware-config"


def write_tree(root: Path, files: dict[str, str]) -> Path:
    for name, text in files.items():
        path = root / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
    return root


BASE = """
[pipeline]
batch_rows = 100
batch_ms = 20
queue_batches = 7

[log]
level = "warning"
"""

SITE = """
[pipeline]
batch_ms = 30

[broker]
url = "mqtt://site-broker:1883"
"""

BOX = """
[box]
site = "s1"

[pipeline]
batch_rows = 5
"""


@pytest.fixture
def tree(tmp_path: Path) -> Path:
    return write_tree(tmp_path, {"base.toml": BASE, "sites/s1.toml": SITE, "boxes/b1.toml": BOX})


def problems(exc: pytest.ExceptionInfo[ConfigError]) -> str:
    return "\n".join(exc.value.problems)


def load_problems(tree: Path, box: str = "b1") -> list[str]:
    """The problems ``load_config`` reports for ``tree`` (it must refuse to load)."""
    with pytest.raises(ConfigError) as exc:
        load_config(tree, box)
    return exc.value.problems


def problem_text(tree: Path, box: str = "b1") -> str:
    return "\n".join(load_problems(tree, box))


def test_layers_override_key_by_key(tree: Path) -> None:
    loaded = load_config(tree, "b1")
    p = loaded.config.pipeline
    assert (p.batch_rows, p.batch_ms, p.queue_batches) == (5, 30, 7)  # box, site, base
    assert loaded.config.log.level == "warning"
    assert loaded.config.broker.url == "mqtt://site-broker:1883"
    assert loaded.layers == [tree / "base.toml", tree / "sites/s1.toml", tree / "boxes/b1.toml"]
    assert loaded.origin[("pipeline", "batch_ms")] == tree / "sites/s1.toml"
    assert loaded.config.box.id == "b1"  # a box is called by its file name unless it says otherwise


def test_base_alone_without_box(tree: Path) -> None:
    loaded = load_config(tree, None)
    assert loaded.config.pipeline.batch_rows == 100
    assert loaded.layers == [tree / "base.toml"]


def test_lists_replace_rather_than_merge(tree: Path) -> None:
    write_tree(tree, {
        "sites/s1.toml": SITE + '\n[[sources.mqtt]]\nname = "a"\ntopics = ["x/#"]\n'
                                '\n[[sources.mqtt]]\nname = "b"\ntopics = ["y/#"]\n',
        "boxes/b1.toml": BOX + '\n[[sources.mqtt]]\nname = "c"\ntopics = ["z/#"]\n',
    })
    assert [s.name for s in load_config(tree, "b1").config.sources.mqtt] == ["c"]


def test_misspelt_key_names_file_and_key(tree: Path) -> None:
    write_tree(tree, {"sites/s1.toml": SITE.replace("batch_ms", "batch_mss")})
    text = problem_text(tree)
    assert f"{tree / 'sites/s1.toml'}: pipeline.batch_mss: no such key (misspelt?)" in text
    assert "did you mean 'batch_ms'?" in text


def test_wrong_type_names_file_key_and_value(tree: Path) -> None:
    write_tree(tree, {"boxes/b1.toml": BOX.replace("batch_rows = 5", 'batch_rows = "lots"')})
    (line,) = load_problems(tree)
    assert line.startswith(f"{tree / 'boxes/b1.toml'}: pipeline.batch_rows: ")
    assert "valid integer" in line and "'lots'" in line


def test_out_of_range_value_names_the_limit(tree: Path) -> None:
    write_tree(tree, {"boxes/b1.toml": BOX.replace("batch_rows = 5", "batch_rows = 0")})
    assert "pipeline.batch_rows: Input should be greater than or equal to 1 (got 0)" in problem_text(tree)


def test_missing_required_key_in_a_list_item_gives_a_readable_path(tree: Path) -> None:
    write_tree(tree, {"boxes/b1.toml": BOX + '\n[[sources.opcua]]\nname = "plc1"\nendpoint = "opc.tcp://h:4840"\n'
                                            '\n[[sources.opcua]]\nname = "plc2"\n'})
    want = f"{tree / 'boxes/b1.toml'}: sources.opcua[1].endpoint: required key is missing"
    assert load_problems(tree) == [want]


def test_nested_list_item_key_path(tree: Path) -> None:
    write_tree(tree, {"boxes/b1.toml": BOX + '\n[[sources.opcua]]\nname = "plc1"\nendpoint = "opc.tcp://h"\n'
                                            'nodes = [{ tag = "a", node = "ns=1;s=a", deadbandd = 1 }]\n'})
    assert "sources.opcua[0].nodes[0].deadbandd: no such key" in problem_text(tree)


def test_bad_toml_names_file_and_line(tree: Path) -> None:
    write_tree(tree, {"sites/s1.toml": "[pipeline]\nbatch_ms = 30\nbatch_rows = 5 5\n[log]\n"})
    (line,) = load_problems(tree)
    assert line.startswith(f"{tree / 'sites/s1.toml'}:3:")
    assert "not valid TOML" in line and "batch_rows = 5 5" in line
    write_tree(tree, {"sites/s1.toml": "[pipeline]\nbatch_ms = 30\nbatch_rows = [1,\n"})
    (line,) = load_problems(tree)
    assert line.startswith(f"{tree / 'sites/s1.toml'}:3: not valid TOML")


def test_key_defined_twice_in_toml_shows_the_line(tree: Path) -> None:
    write_tree(tree, {"sites/s1.toml": "[pipeline]\nbatch_ms = 30\nbatch_ms = 40\n"})
    (line,) = load_problems(tree)
    assert line.startswith(f"{tree / 'sites/s1.toml'}:3:")
    assert "defined twice" in line and "batch_ms = 40" in line


def test_box_naming_a_missing_site(tree: Path) -> None:
    write_tree(tree, {"boxes/b1.toml": BOX.replace('site = "s1"', 'site = "nowhere"')})
    (line,) = load_problems(tree)
    assert line.startswith(f"{tree / 'boxes/b1.toml'}: box.site: names site 'nowhere'")
    assert "known sites: s1" in line


def test_box_without_a_site(tree: Path) -> None:
    write_tree(tree, {"boxes/b1.toml": "[pipeline]\nbatch_rows = 5\n"})
    assert "box.site: required key is missing" in problem_text(tree)


def test_unknown_box_lists_known_boxes(tree: Path) -> None:
    assert "no such box (known boxes: b1)" in problem_text(tree, "b9")


def test_missing_base(tmp_path: Path) -> None:
    with pytest.raises(ConfigError) as exc:
        layer_paths(tmp_path, None)
    assert "base.toml: not found" in problems(exc)


def test_asset_file_is_merged_and_holds_only_assets(tree: Path) -> None:
    write_tree(tree, {"assets/s1.toml": '[assets]\nenterprise = "acme"\n'})
    loaded = load_config(tree, "b1")
    assert loaded.layers[2] == tree / "assets/s1.toml"
    assert loaded.config.assets.enterprise == "acme"
    write_tree(tree, {"assets/s1.toml": '[assets]\nenterprise = "acme"\n[pipeline]\nbatch_rows = 3\n'})
    assert f"{tree / 'assets/s1.toml'}: pipeline: only the [assets] table belongs" in problem_text(tree)


def test_every_problem_is_reported_at_once(tree: Path) -> None:
    write_tree(tree, {"boxes/b1.toml": BOX + '\n[log]\nlevel = "loud"\nformatt = "json"\n'})
    assert len(load_problems(tree)) == 2


def test_load_config_file(tmp_path: Path) -> None:
    path = write_tree(tmp_path, {"one.toml": "[metrics]\nenabledd = true\n"}) / "one.toml"
    with pytest.raises(ConfigError) as exc:
        load_config_file(path)
    assert f"{path}: metrics.enabledd: no such key" in problems(exc)


def test_config_dir_default_then_env(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("FE_CONFIG_DIR", str(tmp_path / "elsewhere"))
    assert default_config_dir() == tmp_path / "elsewhere"
    (tmp_path / "firmware-config").mkdir()
    assert default_config_dir() == Path("firmware-config")


# -- the CLI -----------------------------------------------------------------------------------------


def test_cli_validate_ok_and_error_exit_2(tree: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["config", "validate", "--dir", str(tree), "--box", "b1"]) == 0
    assert "ok:" in capsys.readouterr().out
    write_tree(tree, {"boxes/b1.toml": BOX.replace("batch_rows", "batch_rowz")})
    assert main(["config", "validate", "--dir", str(tree), "--box", "b1"]) == 2
    err = capsys.readouterr().err
    assert f"error: {tree / 'boxes/b1.toml'}: pipeline.batch_rowz: no such key" in err


def test_cli_validate_without_box_checks_base_and_every_box(
    tree: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    write_tree(tree, {"boxes/b2.toml": '[box]\nsite = "gone"\n'})
    assert main(["config", "validate", "--dir", str(tree)]) == 2
    captured = capsys.readouterr()
    assert captured.out.count("ok:") == 2  # base alone, and b1
    assert "b2.toml: box.site: names site 'gone'" in captured.err


def test_cli_render_prints_merged_config_and_sha256(tree: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["config", "render", "--dir", str(tree), "--box", "b1"]) == 0
    out = capsys.readouterr().out
    body, _, digest_line = out.rstrip("\n").rpartition("\n")
    assert json.loads(body)["pipeline"]["batch_ms"] == 30
    import hashlib

    assert digest_line == f"sha256: {hashlib.sha256(body.encode()).hexdigest()}"


def test_repository_config_validates(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["config", "validate", "--dir", str(FIRMWARE), "--box", "demo-box"]) == 0
    assert main(["config", "validate", "--dir", str(FIRMWARE)]) == 0
    capsys.readouterr()


def test_committed_schema_is_current() -> None:
    committed = (FIRMWARE / "schema" / "config.schema.json").read_text()
    assert committed == schema_text(), (
        "firmware-config/schema/config.schema.json is out of date: run "
        "`edge config schema --write firmware-config/schema/config.schema.json`"
    )


def test_cli_schema(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["config", "schema"]) == 0
    schema = json.loads(capsys.readouterr().out)
    assert schema["additionalProperties"] is False
    assert "assets" in schema["properties"] and "sources" in schema["properties"]
    target = tmp_path / "s.json"
    assert main(["config", "schema", "--write", str(target)]) == 0
    assert main(["config", "schema", "--check", str(target)]) == 0
    target.write_text("{}")
    assert main(["config", "schema", "--check", str(target)]) == 2


def test_box_and_site_names_are_not_paths(tree: Path) -> None:
    with pytest.raises(ConfigError, match="not a box name"):
        load_config(tree, "../base")
    write_tree(tree, {"boxes/b1.toml": BOX.replace('site = "s1"', 'site = "../boxes/b1"')})
    with pytest.raises(ConfigError, match=r"box\.site: expected the name of a file in sites/"):
        load_config(tree, "b1")


def test_systemd_unit_runs_the_box_hardened() -> None:
    unit = (FIRMWARE / "systemd" / "factory-edge@.service").read_text()
    lines = {line.split("=", 1)[0]: line.split("=", 1)[1] for line in unit.splitlines()
             if "=" in line and not line.startswith("#")}
    assert lines["ExecStart"].endswith("edge run --box %i")
    assert "config validate --box %i" in lines["ExecStartPre"]
    assert "Environment=FE_CONFIG_DIR=/etc/factory-edge" in unit
    hardening = [("NoNewPrivileges", "yes"), ("ProtectSystem", "strict"), ("RestartPreventExitStatus", "2"),
                 ("CapabilityBoundingSet", ""), ("PrivateTmp", "yes")]
    for key, value in hardening:
        assert lines[key] == value, key


def test_unmapped_source_tag_is_a_warning(tree: Path, capsys: pytest.CaptureFixture[str]) -> None:
    write_tree(tree, {"boxes/b1.toml": BOX + '\n[[sources.opcua]]\nname = "plc"\nendpoint = "opc.tcp://h"\n'
                                            'nodes = [{ tag = "t.unmapped", node = "ns=1;s=x" }]\n'})
    loaded = load_config(tree, "b1")
    assert loaded.warnings == [f"{tree / 'boxes/b1.toml'}: sources.opcua[0].nodes[0].tag: tag 't.unmapped' "
                               "has no mapping in [assets.tags] (quality.unmapped = 'keep')"]
    assert main(["config", "validate", "--dir", str(tree), "--box", "b1"]) == 0
    assert "warning:" in capsys.readouterr().err
