"""Celery retries that wait onnxq.backoff's delay rather than Celery's own `retry_backoff`.

A task made with `base=BackoffTask` and `autoretry_for=(...)` is retried, on those errors, after
`backoff_seconds(retries, backoff_base, cap=backoff_cap, jitter=backoff_jitter)`: the one retry
formula that job callbacks and the drift webhook use too. The three `backoff_*` values are task
options (`@app.task(base=BackoffTask, backoff_base=1, ...)`), which Celery makes class attributes.
"""

from __future__ import annotations

from typing import Any

from celery import Task

from onnxq.backoff import backoff_seconds


class BackoffTask(Task):
    backoff_base: float = 1.0
    backoff_cap: float | None = None
    backoff_jitter: bool = True

    def retry(
        self,
        args: Any = None,
        kwargs: Any = None,
        exc: BaseException | None = None,
        throw: bool = True,
        eta: Any = None,
        countdown: float | None = None,
        max_retries: int | None = None,
        **options: Any,
    ) -> Any:
        """Celery's retry; without an explicit `countdown` or `eta`, the backoff delay."""
        if eta is None and countdown is None:
            countdown = backoff_seconds(
                self.request.retries,
                self.backoff_base,
                cap=self.backoff_cap,
                jitter=self.backoff_jitter,
            )
        return super().retry(
            args,
            kwargs,
            exc=exc,
            throw=throw,
            eta=eta,
            countdown=countdown,
            max_retries=max_retries,
            **options,
        )
