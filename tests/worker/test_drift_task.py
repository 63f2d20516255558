"""The drift task: a thin shell over run_drift_check, on beat's schedule, off the predict queue."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
from celery.schedules import crontab, schedule

from onnxq.broker.celery_app import DRIFT_TASK, callback_queue, make_celery
from onnxq.devtools.metrics_text import sample
from onnxq.settings import Settings
from onnxq.telemetry import metrics
from tests.support.demo_predictions import SHIFTED, log_demo_predictions
from worker.app import create_worker_app
from worker.drift_task import run_drift_check
from worker.schedule import beat_schedule, periodic_schedule


@pytest.fixture
def two_models(settings: Settings, tmp_path: Path) -> Settings:
    """The demo model, and a copy of it under another name without a profile."""
    root = tmp_path / "models"
    shutil.copytree(settings.model_dir / "breast-cancer", root / "breast-cancer")
    shutil.copytree(settings.model_dir / "breast-cancer", root / "no-profile")
    (root / "no-profile" / "1" / "profile.json").unlink()
    manifest = root / "no-profile" / "1" / "manifest.json"
    manifest.write_text(manifest.read_text().replace('"breast-cancer"', '"no-profile"'))
    return settings.model_copy(update={"model_dir": root})


def test_run_drift_check_checks_every_model_and_skips_one_without_profile(
    two_models: Settings,
) -> None:
    log_demo_predictions(two_models.model_dir, two_models.prediction_log_dir, 600, shift=1.5)
    outcomes = run_drift_check(two_models)
    assert outcomes["no-profile"] == {"status": "no_profile"}
    checked = outcomes["breast-cancer"]
    assert checked["status"] == "checked" and checked["version"] == 1
    assert checked["rows"] == 600 and checked["drifted"] == [SHIFTED]
    report = two_models.state_dir / "drift" / "breast-cancer" / "latest.json"
    assert checked["report"] == str(report) and report.is_file()


def test_run_drift_check_exposes_each_features_latest_psi_as_a_gauge(two_models: Settings) -> None:
    log_demo_predictions(two_models.model_dir, two_models.prediction_log_dir, 600, shift=1.5)
    run_drift_check(two_models)
    text = metrics.exposition().decode()
    shifted = sample(text, "onnxq_drift_psi", model="breast-cancer", version="1", feature=SHIFTED)
    assert shifted is not None and shifted > 0.2


def test_run_drift_check_with_no_models_does_nothing(settings: Settings, tmp_path: Path) -> None:
    assert run_drift_check(settings.model_copy(update={"model_dir": tmp_path / "none"})) == {}


def test_the_drift_task_is_registered_and_routed_off_the_prediction_queue(
    settings: Settings,
) -> None:
    app = create_worker_app(settings)
    assert DRIFT_TASK in app.tasks
    route = make_celery(settings).amqp.router.route({}, DRIFT_TASK)
    assert route["queue"].name == callback_queue(settings) != settings.queue_name


def test_the_beat_schedule_runs_the_drift_task_weekly_by_default(settings: Settings) -> None:
    entry = beat_schedule(settings)["drift-check"]
    assert entry["task"] == DRIFT_TASK
    assert entry["schedule"] == crontab("0", "6", "1", "*", "*")  # Mondays 06:00 UTC


def test_the_drift_schedule_may_be_seconds_or_a_crontab() -> None:
    assert periodic_schedule("30") == schedule(30.0)
    assert periodic_schedule("15 3 1 * *") == crontab("15", "3", "*", "1", "*")


@pytest.mark.parametrize("bad", ["0 6 * *", "-5", "0", "weekly"])
def test_a_malformed_drift_schedule_is_refused_at_start_up(bad: str) -> None:
    with pytest.raises(ValueError, match="drift_schedule"):
        Settings(_env_file=None, drift_schedule=bad)


def test_an_empty_webhook_url_means_no_webhook() -> None:
    assert Settings(_env_file=None, drift_webhook_url="").drift_webhook_url is None
    url = Settings(_env_file=None, drift_webhook_url="http://hooks.example/x").drift_webhook_url
    assert url is not None and url.get_secret_value() == "http://hooks.example/x"
