"""The log tidy task: a thin shell over tidy_prediction_log, hourly on beat, on the side queue."""

from __future__ import annotations

from datetime import timedelta

import numpy as np

from onnxq.broker.celery_app import TIDY_LOG_TASK, callback_queue, make_celery
from onnxq.jobs.record import utc_now
from onnxq.models.results import PredictionResult
from onnxq.settings import Settings
from onnxq.telemetry.prediction_log import PredictionLog
from worker.app import create_worker_app
from worker.schedule import beat_schedule, periodic_schedule


def test_beat_tidies_the_log_hourly_on_the_side_queue(settings: Settings) -> None:
    entry = beat_schedule(settings)["tidy-prediction-log"]
    assert entry["task"] == TIDY_LOG_TASK
    assert entry["schedule"] == periodic_schedule("17 * * * *")
    route = make_celery(settings).amqp.router.route({}, TIDY_LOG_TASK)
    assert route["queue"].name == callback_queue(settings) != settings.queue_name


def test_the_task_removes_the_days_past_retention(settings: Settings) -> None:
    old = utc_now() - timedelta(days=settings.prediction_log_keep_days + 1)
    log = PredictionLog(settings.prediction_log_dir, clock=lambda: int(old.timestamp()) * 10**9)
    result = PredictionResult.classification([0], [[0.5, 0.5]], [0, 1])
    log.record(model="m", version=1, rows=np.zeros((1, 2), np.float32), result=result,
               latency_ms=1.0, source="sync")  # fmt: skip
    log.close()

    outcome = create_worker_app(settings).tasks[TIDY_LOG_TASK]()

    assert outcome == {"removed_days": [f"{old:%Y-%m-%d}"], "compressed": 0}
    assert not any(settings.prediction_log_dir.iterdir())
