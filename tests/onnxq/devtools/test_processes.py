"""The processes tests (and benchmarks) start get their settings from service_env only."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from onnxq.devtools.processes import ServiceProcess, service_env, without_onnxq_variables
from onnxq.devtools.waiting import wait_until
from onnxq.settings import ENV_FILE_VARIABLE

SETTINGS_SEEN = (
    "import json\n"
    "from onnxq.settings import Settings, effective_configuration\n"
    "print(json.dumps(effective_configuration(Settings())))\n"
)


@pytest.fixture
def checkout_with_env_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A working directory holding a developer's .env, and ONNXQ_* variables in our environment."""
    (tmp_path / ".env").write_text(
        "ONNXQ_API_KEYS=from-dotenv\nONNXQ_JOB_MAX_ROWS=7\n", encoding="utf-8"
    )
    monkeypatch.setenv("ONNXQ_API_KEYS", "from-the-environment")
    monkeypatch.setenv("ONNXQ_JOB_TTL_SECONDS", "600")
    return tmp_path


def settings_seen(env: dict[str, str], cwd: Path) -> dict[str, object]:
    """The effective configuration a child started with `env` in `cwd` reads."""
    done = subprocess.run(
        [sys.executable, "-c", SETTINGS_SEEN],
        cwd=cwd,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout.splitlines()[-1])  # type: ignore[no-any-return]


def test_service_env_sets_what_the_services_need_and_nothing_from_the_parent(
    checkout_with_env_file: Path,
) -> None:
    env = service_env("redis://127.0.0.1:1/0", Path("/m"), Path("/run/predictions"), 8123)

    assert env[ENV_FILE_VARIABLE] == ""
    assert "ONNXQ_API_KEYS" not in env
    assert "ONNXQ_JOB_TTL_SECONDS" not in env
    assert env["ONNXQ_GATEWAY_PORT"] == "8123"
    assert env["ONNXQ_STATE_DIR"] == "/run/state"
    assert env["PATH"] == os.environ["PATH"]  # the rest of the environment is passed on


def test_a_service_child_reads_neither_the_parents_onnxq_variables_nor_a_dotenv(
    checkout_with_env_file: Path,
) -> None:
    here = checkout_with_env_file
    env = service_env("redis://127.0.0.1:1/0", here / "models", here / "predictions", 8123)

    seen = settings_seen(env, here)

    assert seen["api_keys"] == "0 configured"
    assert seen["job_max_rows"] == 100_000  # the default, not the .env's 7
    assert seen["job_ttl_seconds"] == 24 * 3600  # the default, not the parent's 600
    assert (seen["gateway_port"], seen["sync_max_rows"]) == (8123, 100)  # what service_env set


def test_without_onnxq_env_file_the_same_child_would_read_the_dotenv(
    checkout_with_env_file: Path,
) -> None:
    """The control for the test above: the .env there is one a child would otherwise read."""
    here = checkout_with_env_file
    env = without_onnxq_variables()

    seen = settings_seen(env, here)

    assert (seen["api_keys"], seen["job_max_rows"]) == ("1 configured", 7)


def test_a_service_process_is_stopped_with_sigterm_and_its_output_kept(tmp_path: Path) -> None:
    command = [
        sys.executable,
        "-c",
        "import signal, sys, time\n"
        "signal.signal(signal.SIGTERM, lambda *_: sys.exit(3))\n"
        "print('started', flush=True)\n"
        "time.sleep(60)\n",
    ]
    child = ServiceProcess("sleeper", command, dict(os.environ), tmp_path / "sleeper.log").start()
    wait_until(lambda: "started" in child.output(), 30, "the child to start")
    assert child.alive()

    assert child.stop() == 3  # its SIGTERM handler ran
    assert not child.alive()
    assert child.output() == "started\n"
