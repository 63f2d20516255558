"""A drift check end to end: demo-model predictions logged with PredictionLog, reports, alerts."""

from __future__ import annotations

import json
import time
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest
from pydantic import SecretStr
from structlog.testing import capture_logs

from drift.report_files import history
from onnxq.devtools.metrics_text import sample
from onnxq.devtools.redis_server import free_port
from onnxq.errors import DriftProfileMissing, ModelNotFound
from onnxq.models.manifest import VersionPaths
from onnxq.settings import Settings
from onnxq.telemetry import drift_check, metrics
from onnxq.telemetry.drift_check import WebhookOutcome, check_model
from tests.support.demo_predictions import SHIFTED, log_demo_predictions
from tests.support.http_receiver import HttpReceiver

MODEL = "breast-cancer"


def bodies(receiver: HttpReceiver) -> list[dict[str, Any]]:
    """The JSON bodies POSTed to `receiver`, in order."""
    return [post.json() for post in receiver.posts]


@pytest.fixture
def drifted_log(settings: Settings, model_dir: Path) -> None:
    log_demo_predictions(model_dir, settings.prediction_log_dir, 1000, shift=1.5)


def test_the_demo_model_has_a_profile_beside_its_manifest(settings: Settings) -> None:
    profile = json.loads(VersionPaths.of(settings.model_dir, MODEL, 1).profile.read_text())
    assert profile["model"] == MODEL and profile["rows"] == 569
    assert len(profile["features"]) == 30
    assert profile["probability"] is not None and profile["label"] is not None


def test_a_shifted_feature_is_flagged_and_the_unshifted_ones_are_not(
    settings: Settings, drifted_log: None
) -> None:
    check = check_model(settings, MODEL)
    report = check.report
    assert report.rows == 1000 and report.version == 1
    assert report.drifted == [SHIFTED]
    shifted = report.feature(SHIFTED)
    assert shifted.psi > settings.drift_threshold and shifted.psi > shifted.noise_level
    assert report.features[0].name == SHIFTED  # drifted first
    stable = [f for f in report.features if f.name != SHIFTED]
    assert all(f.verdict == "stable" and f.psi < 0.2 for f in stable)


def test_predictions_like_the_training_data_drift_in_no_feature_and_no_output(
    settings: Settings, model_dir: Path
) -> None:
    # The demo profile holds ONNX Runtime's outputs, as logged: scikit-learn's probability 1.0
    # is 0.99999934 there, and profiling the former would put every logged row in another bin.
    log_demo_predictions(model_dir, settings.prediction_log_dir, 2000, seed=1)
    report = check_model(settings, MODEL).report
    assert report.drifted == []
    assert [(o.name, o.verdict) for o in report.outputs] == [
        ("__probability__", "stable"),
        ("__label__", "stable"),
    ]


def test_a_check_writes_the_latest_json_and_html_and_keeps_a_history(
    settings: Settings, drifted_log: None
) -> None:
    first = check_model(settings, MODEL)
    second = check_model(settings, MODEL)
    directory = settings.state_dir / "drift" / MODEL
    assert first.files.json == second.files.json == directory / "latest.json"
    assert json.loads(second.files.json.read_text())["created_at"] == (
        second.report.created_at.isoformat().replace("+00:00", "Z")
    )
    assert "<svg" in second.files.html.read_text()
    assert history(directory) == [first.files.history_json, second.files.history_json]


def test_history_keeps_only_the_newest_runs(settings: Settings, drifted_log: None) -> None:
    keep_two = settings.model_copy(update={"drift_history_keep": 2})
    checks = [check_model(keep_two, MODEL, alert=False) for _ in range(3)]
    kept = history(settings.state_dir / "drift" / MODEL)
    assert kept == [checks[1].files.history_json, checks[2].files.history_json]
    assert not checks[0].files.history_html.exists()


def test_a_small_window_says_insufficient_data_and_raises_no_alert(
    settings: Settings, model_dir: Path
) -> None:
    log_demo_predictions(model_dir, settings.prediction_log_dir, 40, shift=1.1)
    with capture_logs() as events:
        check = check_model(settings, MODEL)
    assert {f.verdict for f in check.report.features} == {"insufficient data"}
    assert check.report.drifted == [] and check.alert is None
    assert check.webhook is WebhookOutcome.NO_ALERT
    assert not [e for e in events if e["event"] == "drift_alert"]


def test_a_rise_in_missing_values_is_flagged_even_when_the_bins_show_nothing(
    settings: Settings, model_dir: Path
) -> None:
    log_demo_predictions(model_dir, settings.prediction_log_dir, 1000, missing={5: 0.3})
    report = check_model(settings, MODEL).report
    name = "mean compactness"  # feature 5
    feature = report.feature(name)
    # 700 rows binned: too few to vouch for "stable" against 569 training rows, not drift
    assert feature.verdict == "insufficient data" and feature.missing_verdict == "drift"
    assert feature.current_missing_rate == pytest.approx(0.3, abs=0.05)
    assert report.drifted == [name]


def test_a_drift_alert_is_logged_with_model_version_and_features_with_psi(
    settings: Settings, drifted_log: None
) -> None:
    with capture_logs() as events:
        check = check_model(settings, MODEL)
    alerts = [e for e in events if e["event"] == "drift_alert"]
    assert len(alerts) == 1
    assert alerts[0]["model"] == MODEL and alerts[0]["version"] == 1
    assert [f["name"] for f in alerts[0]["features"]] == [SHIFTED]
    assert alerts[0]["features"][0]["psi"] == check.report.feature(SHIFTED).psi
    assert check.webhook is WebhookOutcome.NOT_CONFIGURED


def test_the_alert_is_posted_to_the_webhook_as_json(settings: Settings, drifted_log: None) -> None:
    with HttpReceiver() as receiver:
        hooked = settings.model_copy(
            update={"drift_webhook_url": SecretStr(receiver.url), "outbound_allow": ["127.0.0.1"]}
        )
        check = check_model(hooked, MODEL)
    assert check.webhook is WebhookOutcome.DELIVERED
    assert bodies(receiver) == [check.alert]
    body = bodies(receiver)[0]
    assert body["event"] == "drift_alert" and body["model"] == MODEL and body["version"] == 1
    assert [f["name"] for f in body["features"]] == [SHIFTED]


def test_a_failing_webhook_is_retried_logged_and_does_not_break_the_check(
    settings: Settings, drifted_log: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    waits: list[float] = []
    clock = SimpleNamespace(sleep=waits.append, perf_counter=time.perf_counter)
    monkeypatch.setattr(drift_check, "time", clock)  # this module's sleeps only
    with HttpReceiver([500]) as receiver:
        hooked = settings.model_copy(
            update={
                "drift_webhook_url": SecretStr(receiver.url),
                "outbound_allow": ["127.0.0.1"],
                "drift_webhook_attempts": 3,
                "drift_webhook_backoff_seconds": 0.01,
            }
        )
        with capture_logs() as events:
            check = check_model(hooked, MODEL)
    assert check.webhook is WebhookOutcome.FAILED
    assert len(bodies(receiver)) == 3
    webhook = [e for e in events if e["event"] == "drift_webhook"]
    assert [e["status"] for e in webhook] == ["retry", "retry", "failed"]
    assert waits == [0.01, 0.02]  # the backoff doubles from ONNXQ_DRIFT_WEBHOOK_BACKOFF_SECONDS
    assert "HTTP 500" in webhook[-1]["error"]
    assert receiver.url not in json.dumps(webhook)  # the URL may carry a token
    assert check.files.json.is_file()  # the report was still written


def test_an_unreachable_webhook_does_not_break_the_check(
    settings: Settings, drifted_log: None
) -> None:
    hooked = settings.model_copy(
        update={
            "drift_webhook_url": SecretStr(f"http://127.0.0.1:{free_port()}/nobody"),
            "outbound_allow": ["127.0.0.1"],
            "drift_webhook_attempts": 2,
            "drift_webhook_backoff_seconds": 0,
        }
    )
    assert check_model(hooked, MODEL).webhook is WebhookOutcome.FAILED


def test_a_webhook_on_a_loopback_address_is_refused_once_unless_allowed(
    settings: Settings, drifted_log: None
) -> None:
    with HttpReceiver() as receiver:
        hooked = settings.model_copy(
            update={"drift_webhook_url": SecretStr(receiver.url), "drift_webhook_attempts": 3}
        )
        with capture_logs() as events:
            check = check_model(hooked, MODEL)
    assert check.webhook is WebhookOutcome.FAILED
    assert bodies(receiver) == []  # never connected
    webhook = [e for e in events if e["event"] == "drift_webhook"]
    assert [e["status"] for e in webhook] == ["failed"]  # a refusal is not retried
    assert "loopback" in webhook[0]["error"] and "ONNXQ_OUTBOUND_ALLOW" in webhook[0]["error"]


def test_an_unknown_model_or_a_version_without_profile_is_a_named_error(
    settings: Settings, tmp_path: Path
) -> None:
    with pytest.raises(ModelNotFound):
        check_model(settings, "no-such-model")
    with pytest.raises(ModelNotFound):
        check_model(settings, MODEL, version=7)
    bare = tmp_path / "bare" / MODEL / "1"
    bare.mkdir(parents=True)
    for name in ("manifest.json", "model.onnx"):
        (bare / name).write_bytes((settings.model_dir / MODEL / "1" / name).read_bytes())
    with pytest.raises(DriftProfileMissing, match="onnxq drift-profile"):
        check_model(settings.model_copy(update={"model_dir": tmp_path / "bare"}), MODEL)


def test_a_small_window_of_values_far_beyond_the_training_range_alerts_on_its_unseen_rate(
    settings: Settings, model_dir: Path
) -> None:
    """40 rows are too few for the bins, not for "every value is beyond anything trained on"."""
    log_demo_predictions(model_dir, settings.prediction_log_dir, 40, shift=3.0)
    check = check_model(settings, MODEL)
    shifted = check.report.feature("mean radius")
    assert shifted.verdict == "insufficient data"
    assert shifted.unseen_verdict == "drift" and shifted.current_unseen_rate > 0.5
    assert check.report.drifted == ["mean radius"] and check.alert is not None


def test_every_check_sets_the_drift_gauges_the_scheduled_one_and_onnxq_drift_alike(
    settings: Settings, drifted_log: None
) -> None:
    check_model(settings, MODEL, alert=False)  # what `onnxq drift` and the worker task call
    text = metrics.exposition().decode()
    labels = {"model": MODEL, "version": "1"}
    assert sample(text, "onnxq_drift_drifted", feature=SHIFTED, **labels) == 1.0
    assert sample(text, "onnxq_drift_drifted", feature="mean texture", **labels) == 0.0
    psi = sample(text, "onnxq_drift_psi", feature=SHIFTED, **labels)
    assert psi == pytest.approx(
        check_model(settings, MODEL, alert=False).report.feature(SHIFTED).psi
    )
