"""Moved to tests/support/demo_predictions.py; kept only for tests/worker/test_drift_task.py."""

from tests.support.demo_predictions import SHIFTED, log_demo_predictions

__all__ = ["SHIFTED", "log_demo_predictions"]
