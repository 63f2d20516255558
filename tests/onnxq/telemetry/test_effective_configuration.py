"""The configuration logged at start-up names every setting and leaks no secret."""

from __future__ import annotations

import json
from pathlib import Path

from pydantic import SecretStr
from structlog.testing import capture_logs

from gateway import create_app
from onnxq.settings import Settings, effective_configuration


def test_api_keys_are_counted_and_a_redis_password_is_masked(tmp_path: Path) -> None:
    keys = tmp_path / "keys"
    keys.write_text("file-secret-1\n")
    settings = Settings(
        _env_file=None,
        api_keys=[SecretStr("env-secret-2")],
        api_keys_file=keys,
        redis_url="redis://app:hunter2@redis:6379/0",
    )

    shown = effective_configuration(settings)

    text = json.dumps(shown)
    assert "file-secret-1" not in text and "env-secret-2" not in text and "hunter2" not in text
    assert shown["api_keys"] == "2 configured"
    assert shown["redis_url"] == "redis://app:***@redis:6379/0"
    assert set(shown) == set(Settings.model_fields)


def test_a_password_only_redis_url_is_masked_too() -> None:
    settings = Settings(_env_file=None, redis_url="redis://:s3cret@10.0.0.5:6380/2")
    assert effective_configuration(settings)["redis_url"] == "redis://:***@10.0.0.5:6380/2"


def test_the_gateway_logs_its_configuration_once_when_built(settings: Settings) -> None:
    locked = settings.model_copy(update={"api_keys": [SecretStr("gw-secret-3")]})
    with capture_logs() as events:
        create_app({"TESTING": True, "SETTINGS": locked})
    [event] = [e for e in events if e["event"] == "configuration"]
    assert event["settings"]["api_keys"] == "1 configured"
    assert event["settings"]["sync_max_rows"] == locked.sync_max_rows
    assert "gw-secret-3" not in json.dumps(event, default=str)
