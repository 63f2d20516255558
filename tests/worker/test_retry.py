"""The predict task retries transient errors after onnxq.backoff's delay (worker/retry.py)."""

from __future__ import annotations

from typing import Any

import pytest
from celery import Celery, Task
from celery.exceptions import Retry

from onnxq.broker.celery_app import PREDICT_TASK
from onnxq.errors import QueueUnavailable
from onnxq.settings import Settings
from worker.app import create_worker_app
from worker.retry import BackoffTask


@pytest.fixture
def countdowns(monkeypatch: pytest.MonkeyPatch) -> list[Any]:
    """The countdown of every retry Celery is asked for, instead of sending one."""
    seen: list[Any] = []

    def retry(self: Task, *args: Any, countdown: Any = None, **kwargs: Any) -> Retry:
        seen.append(countdown)
        return Retry("retry", when=countdown)

    monkeypatch.setattr(Task, "retry", retry)
    return seen


def _flaky(app: Celery, **options: Any) -> Task:
    @app.task(
        name="flaky", shared=False, base=BackoffTask, autoretry_for=(QueueUnavailable,), **options
    )
    def flaky() -> None:
        raise QueueUnavailable("redis went away")

    return flaky


@pytest.mark.parametrize(
    ("retries", "expected"), [(0, 1), (1, 2), (3, 8), (4, 16), (5, 30), (9, 30)]
)
def test_an_autoretry_waits_the_backoff_delay_for_its_retry_count(
    countdowns: list[Any], retries: int, expected: float
) -> None:
    task = _flaky(Celery(broker="memory://"), backoff_base=1, backoff_cap=30, backoff_jitter=False)
    task.push_request(retries=retries)
    try:
        with pytest.raises(Retry):
            task.run()
    finally:
        task.pop_request()
    assert countdowns == [expected]


def test_with_jitter_the_delay_is_drawn_below_the_capped_one(countdowns: list[Any]) -> None:
    task = _flaky(Celery(broker="memory://"), backoff_base=1, backoff_cap=30, backoff_jitter=True)
    task.push_request(retries=6)
    try:
        for _ in range(50):
            with pytest.raises(Retry):
                task.run()
    finally:
        task.pop_request()
    assert all(0 <= countdown <= 30 for countdown in countdowns)
    assert len(set(countdowns)) > 40


def test_an_explicit_countdown_is_kept(countdowns: list[Any]) -> None:
    task = _flaky(Celery(broker="memory://"))
    task.push_request(retries=2)
    try:
        task.retry(countdown=7)
    finally:
        task.pop_request()
    assert countdowns == [7]


# Celery registers every worker app's tasks as shared ones: a second create_worker_app in one
# test run (test_drift_task makes one too) warns that 'onnxq.predict' exists already. Both are
# built by the same code, which is what this test reads.
@pytest.mark.filterwarnings("ignore::celery.exceptions.DuplicateTaskNameWarning")
def test_the_predict_task_retries_transient_errors_with_the_shared_backoff(
    settings: Settings,
) -> None:
    predict = create_worker_app(settings).tasks[PREDICT_TASK]
    assert isinstance(predict, BackoffTask)
    assert predict.autoretry_for == (QueueUnavailable,)
    assert (predict.backoff_base, predict.backoff_cap, predict.backoff_jitter) == (1, 30, True)
    assert not getattr(predict, "retry_backoff", False)  # Celery's own formula is not used
    assert predict.max_retries == settings.transient_retry_max
