"""Celery workers that hold warm ONNX Runtime sessions and run prediction jobs."""
