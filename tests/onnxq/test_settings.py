"""Settings come from ONNXQ_* variables, with safe defaults and refusals for nonsense."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from pydantic import SecretStr, ValidationError

from onnxq.settings import ENV_FILE_VARIABLE, Settings


@pytest.fixture(autouse=True)
def clean_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    """Start every test without any ONNXQ_* variable the surrounding shell may have set."""
    for name in list(os.environ):
        if name.startswith("ONNXQ_"):
            monkeypatch.delenv(name)


def test_defaults_apply_when_no_variable_is_set() -> None:
    settings = Settings(_env_file=None)

    assert settings.gateway_port == 8000
    assert settings.redis_url == "redis://127.0.0.1:6379/0"
    assert settings.model_dir == Path("models")
    assert settings.sync_max_rows == 1000
    assert settings.ort_intra_op_threads == 1
    assert settings.api_keys == []


def test_variables_are_read_with_the_onnxq_prefix(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ONNXQ_GATEWAY_PORT", "9123")
    monkeypatch.setenv("ONNXQ_MODEL_DIR", "/srv/models")
    monkeypatch.setenv("ONNXQ_REDIS_URL", "redis://cache:6379/3")

    settings = Settings(_env_file=None)

    assert settings.gateway_port == 9123
    assert settings.model_dir == Path("/srv/models")
    assert settings.redis_url == "redis://cache:6379/3"


def test_variables_without_the_prefix_are_ignored(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("GATEWAY_PORT", "9123")
    monkeypatch.setenv("SYNC_MAX_ROWS", "5")

    settings = Settings(_env_file=None)

    assert settings.gateway_port == 8000
    assert settings.sync_max_rows == 1000


def test_comma_separated_api_keys_become_trimmed_secrets(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ONNXQ_API_KEYS", " alpha-key-1 ,beta-key-2,, gamma-key-3 ,")

    settings = Settings(_env_file=None)

    assert all(isinstance(key, SecretStr) for key in settings.api_keys)
    assert [key.get_secret_value() for key in settings.api_keys] == [
        "alpha-key-1",
        "beta-key-2",
        "gamma-key-3",
    ]


def test_an_empty_api_keys_variable_means_no_keys(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ONNXQ_API_KEYS", "")

    assert Settings(_env_file=None).api_keys == []


def test_printing_settings_does_not_reveal_api_keys(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ONNXQ_API_KEYS", "alpha-key-1,beta-key-2")

    settings = Settings(_env_file=None)
    shown = [repr(settings), str(settings), repr(settings.api_keys), settings.model_dump_json()]

    for text in shown:
        assert "alpha-key-1" not in text
        assert "beta-key-2" not in text


def test_an_env_file_is_read_and_the_environment_overrides_it(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    env_file = tmp_path / ".env"
    env_file.write_text("ONNXQ_SYNC_MAX_ROWS=42\nONNXQ_GATEWAY_PORT=8100\n", encoding="utf-8")
    monkeypatch.setenv("ONNXQ_GATEWAY_PORT", "8200")

    settings = Settings(_env_file=env_file)

    assert settings.sync_max_rows == 42
    assert settings.gateway_port == 8200


@pytest.mark.parametrize(
    ("variable", "value", "field"),
    [
        ("ONNXQ_SYNC_MAX_ROWS", "0", "sync_max_rows"),
        ("ONNXQ_SYNC_MAX_ROWS", "many", "sync_max_rows"),
        ("ONNXQ_GATEWAY_PORT", "0", "gateway_port"),
        ("ONNXQ_GATEWAY_PORT", "65536", "gateway_port"),
        ("ONNXQ_ORT_INTRA_OP_THREADS", "0", "ort_intra_op_threads"),
        ("ONNXQ_WORKER_CONCURRENCY", "-1", "worker_concurrency"),
        ("ONNXQ_JOB_TTL_SECONDS", "59", "job_ttl_seconds"),
        ("ONNXQ_MAX_BODY_BYTES", "100", "max_body_bytes"),
    ],
)
def test_an_out_of_range_or_malformed_value_is_refused_naming_the_field(
    monkeypatch: pytest.MonkeyPatch, variable: str, value: str, field: str
) -> None:
    monkeypatch.setenv(variable, value)

    with pytest.raises(ValidationError) as caught:
        Settings(_env_file=None)

    assert [error["loc"] for error in caught.value.errors()] == [(field,)]


@pytest.mark.parametrize(
    ("env_file", "sync_max_rows"),
    [(None, 42), (".env", 42), ("other.env", 43), ("", 1000), ("  ", 1000)],
    ids=["unset: .env", "named .env", "another file", "empty: none", "blank: none"],
)
def test_onnxq_env_file_names_the_file_read_and_empty_reads_none(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, env_file: str | None, sync_max_rows: int
) -> None:
    monkeypatch.chdir(tmp_path)  # `.env` is looked for in the working directory
    (tmp_path / ".env").write_text("ONNXQ_SYNC_MAX_ROWS=42\n", encoding="utf-8")
    (tmp_path / "other.env").write_text("ONNXQ_SYNC_MAX_ROWS=43\n", encoding="utf-8")
    if env_file is not None:
        monkeypatch.setenv(ENV_FILE_VARIABLE, env_file)

    assert Settings().sync_max_rows == sync_max_rows
    # A file passed in code wins over the variable.
    assert Settings(_env_file=tmp_path / "other.env").sync_max_rows == 43
    assert Settings(_env_file=None).sync_max_rows == 1000


def test_onnxq_env_file_is_not_itself_a_setting() -> None:
    assert "env_file" not in Settings.model_fields


def test_services_bind_to_this_machine_only_unless_told_otherwise() -> None:
    settings = Settings(_env_file=None)
    assert (settings.gateway_host, settings.worker_metrics_host) == ("127.0.0.1", "127.0.0.1")
