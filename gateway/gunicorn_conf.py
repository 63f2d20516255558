"""gunicorn settings, taken from the same ONNXQ_* settings as everything else.

Load it by path (`-c gateway/gunicorn_conf.py`), never as `python:gateway...`:
importing the gateway package in the master would load onnxruntime before the fork.

No preload: each worker process builds its own app, so every ONNX Runtime
session is created after the fork, never inherited from the master.
"""

from onnxq.settings import Settings

_settings = Settings()

bind = f"{_settings.gateway_host}:{_settings.gateway_port}"
workers = _settings.gateway_workers
worker_class = "gthread"
threads = 4
preload_app = False
timeout = 60
graceful_timeout = 20
accesslog = None  # the app logs one JSON event per request itself
errorlog = "-"
logconfig_dict = {
    "version": 1,
    "disable_existing_loggers": False,
    "formatters": {"json": {"()": "onnxq.logs.json_formatter"}},
    "handlers": {
        "stdout": {
            "class": "logging.StreamHandler",
            "formatter": "json",
            "stream": "ext://sys.stdout",
        }
    },
    "root": {"level": _settings.log_level, "handlers": ["stdout"]},
    "loggers": {
        "gunicorn.error": {"level": "INFO", "handlers": ["stdout"], "propagate": False},
    },
}
