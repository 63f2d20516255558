"""A callback_url aimed inside the network is refused at submit with a 422 naming the rule."""

from __future__ import annotations

import pytest
from flask import Flask
from flask.testing import FlaskClient

from gateway import create_app
from onnxq.jobs import keys
from onnxq.settings import Settings
from tests.support.broker import in_memory_celery


def submit(client: FlaskClient, model: str, rows: list[list[float]], url: str):
    return client.post(f"/v1/models/{model}/jobs", json={"instances": rows, "callback_url": url})


@pytest.mark.parametrize(
    ("url", "rule"),
    [
        ("http://127.0.0.1:8080/hook", "loopback"),
        ("http://[::1]/hook", "loopback"),
        ("http://[::ffff:127.0.0.1]/hook", "loopback"),
        ("http://localhost:9000/hook", "loopback"),
        ("http://10.1.2.3/hook", "private-network"),
        ("https://192.168.0.10/hook", "private-network"),
        ("http://172.16.5.5/hook", "private-network"),
        ("http://169.254.169.254/latest/meta-data/", "link-local"),
        ("http://[fe80::1]/hook", "link-local"),
        ("http://0.0.0.0:80/hook", "not a globally routable"),
        ("http://100.64.0.1/hook", "not a globally routable"),
    ],
)
def test_a_callback_to_a_non_public_address_is_refused_naming_the_rule(
    client: FlaskClient, redis_client, demo_model_name: str, rows, url: str, rule: str
) -> None:
    response = submit(client, demo_model_name, rows, url)

    assert response.status_code == 422
    error = response.get_json()["error"]
    assert error["type"] == "forbidden_destination"
    assert rule in error["message"] and "ONNXQ_OUTBOUND_ALLOW" in error["message"]
    assert error["details"][0]["field"] == "callback_url"
    assert not list(redis_client.scan_iter(keys.job("*")))  # no job was recorded


def test_a_callback_to_a_public_address_or_an_unresolved_name_is_accepted(
    client: FlaskClient, demo_model_name: str, rows
) -> None:
    for url in ("https://93.184.215.14/hook", "http://hooks.example/hook"):
        assert submit(client, demo_model_name, rows, url).status_code == 202


@pytest.fixture
def allowing_app(settings: Settings, redis_client) -> Flask:
    allowing = settings.model_copy(update={"outbound_allow": ["10.0.0.0/8", "localhost"]})
    return create_app(
        {
            "TESTING": True,
            "SETTINGS": allowing,
            "REDIS_CLIENT": redis_client,
            "CELERY_APP": in_memory_celery(allowing),
        }
    )


def test_listed_networks_and_hosts_are_allowed_and_nothing_else(
    allowing_app: Flask, demo_model_name: str, rows
) -> None:
    client = allowing_app.test_client()
    assert submit(client, demo_model_name, rows, "http://10.9.8.7/hook").status_code == 202
    assert submit(client, demo_model_name, rows, "http://localhost:9000/hook").status_code == 202
    refused = submit(client, demo_model_name, rows, "http://192.168.1.1/hook")
    assert refused.status_code == 422
    assert submit(client, demo_model_name, rows, "http://127.0.0.1/hook").status_code == 422
