"""Secrets are references: their values never reach render output, validation errors or logs."""

from __future__ import annotations

import logging
import uuid
from pathlib import Path

import pytest

from edge.app.cli import main
from edge.app.config import ConfigError, load_config, missing_secrets
from edge.core.settings import SecretRef
from tests.edge.app.test_config import write_tree

ENV_VALUE = f"env-secret-{uuid.uuid4().hex}"
FILE_VALUE = f"file-secret-{uuid.uuid4().hex}"
DSN_VALUE = f"dsn-secret-{uuid.uuid4().hex}"


@pytest.fixture
def secret_tree(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    var = f"FE_TEST_SECRET_{uuid.uuid4().hex[:8].upper()}"
    monkeypatch.setenv(var, ENV_VALUE)
    secret_file = tmp_path / "secrets" / "historian"
    secret_file.parent.mkdir()
    secret_file.write_text(FILE_VALUE + "\n")
    return write_tree(tmp_path / "cfg", {
        "base.toml": "[log]\nlevel = 'info'\n",
        "sites/s1.toml": f'[broker]\nusername = "edge"\npassword = {{ env = "{var}" }}\n',
        "boxes/b1.toml": f'[box]\nsite = "s1"\n[historian]\npassword = {{ file = "{secret_file}" }}\n'
                         f'dsn = "postgresql://edge_writer:{DSN_VALUE}@db:5432/x"\n',
    })


def assert_no_secret(text: str) -> None:
    for value in (ENV_VALUE, FILE_VALUE, DSN_VALUE):
        assert value not in text


def test_render_shows_references_never_values(
    secret_tree: Path, capsys: pytest.CaptureFixture[str], caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    assert main(["config", "render", "--dir", str(secret_tree), "--box", "b1"]) == 0
    out = capsys.readouterr()
    assert "<secret env:FE_TEST_SECRET_" in out.out and "<secret file:" in out.out
    assert "postgresql://edge_writer:***@db:5432/x" in out.out
    assert_no_secret(out.out + out.err + caplog.text)
    # and the references do resolve, so the test would see a leak if render resolved them
    loaded = load_config(secret_tree, "b1")
    assert loaded.config.broker.password is not None
    assert loaded.config.broker.password.resolve() == ENV_VALUE
    assert loaded.config.historian.password is not None
    assert loaded.config.historian.password.resolve() == FILE_VALUE


def test_validation_errors_never_show_secret_values(
    secret_tree: Path, capsys: pytest.CaptureFixture[str], caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    box = secret_tree / "boxes" / "b1.toml"
    # other problems next to the secrets, and a secret written as a literal value by mistake
    box.write_text(box.read_text() + f'[broker]\npassword = "{ENV_VALUE}"\nkeepalive_s = "soon"\n'
                   f'[mes]\ntopic = 5\n')
    assert main(["config", "validate", "--dir", str(secret_tree), "--box", "b1"]) == 2
    out = capsys.readouterr()
    assert "broker.password" in out.err and "broker.keepalive_s" in out.err and "mes.topic" in out.err
    assert_no_secret(out.out + out.err + caplog.text)
    with pytest.raises(ConfigError) as exc:
        load_config(secret_tree, "b1")
    assert_no_secret(str(exc.value))


def test_dsn_with_password_is_scrubbed_in_errors(secret_tree: Path) -> None:
    box = secret_tree / "boxes" / "b1.toml"
    box.write_text(box.read_text() + f'[[sources.mqtt]]\nname = "m"\ntopics = ["a/#"]\n'
                   f'url = "mqtt://u:{DSN_VALUE}@h"\nqos = 7\n')
    with pytest.raises(ConfigError) as exc:
        load_config(secret_tree, "b1")
    assert "sources.mqtt[0].qos" in str(exc.value)
    assert_no_secret(str(exc.value))


def test_validate_secrets_checks_presence_by_name_only(
    secret_tree: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    assert main(["config", "validate", "--dir", str(secret_tree), "--box", "b1", "--secrets"]) == 0
    loaded = load_config(secret_tree, "b1")
    ref = loaded.config.broker.password
    assert ref is not None and ref.env is not None
    monkeypatch.delenv(ref.env)
    want = f"broker.password: secret environment variable {ref.env} is not set"
    assert missing_secrets(loaded.config) == [want]
    assert main(["config", "validate", "--dir", str(secret_tree), "--box", "b1", "--secrets"]) == 2
    out = capsys.readouterr()
    assert ref.env in out.err
    assert_no_secret(out.out + out.err)


def test_secret_ref_names_exactly_one_place() -> None:
    with pytest.raises(ValueError, match="exactly one"):
        SecretRef(env="A", file=Path("/x"))
    with pytest.raises(ValueError, match="exactly one"):
        SecretRef()
    assert SecretRef(env="A").describe() == "<secret env:A>"
