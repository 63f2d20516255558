"""The suite is isolated from the checkout it runs in (tests/conftest.py).

A developer who followed the README (`cp .env.example .env`, an API key in it) or exported
ONNXQ_* variables must get the same run as anyone else: this runs pytest, with the suite's
conftest, in such a directory and checks what a test there and a process it starts see.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]

PROBE = """
import json
import os
import subprocess
import sys

from onnxq.settings import Settings


def test_probe():
    assert {k: v for k, v in os.environ.items() if k.upper().startswith("ONNXQ_")} == {
        "ONNXQ_ENV_FILE": ""
    }
    assert Settings().api_keys == []
    assert Settings().sync_max_rows == 1000
    # A child inheriting the environment, as tests/scripts/test_image_requirements.py starts.
    code = "import json; from onnxq.settings import Settings, effective_configuration as e; "
    code += "print(json.dumps(e(Settings())))"
    child = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert child.returncode == 0, child.stderr
    seen = json.loads(child.stdout)
    assert (seen["api_keys"], seen["sync_max_rows"]) == ("0 configured", 1000)
"""


def test_a_dotenv_and_onnxq_variables_around_the_run_reach_no_test_and_no_child(
    tmp_path: Path,
) -> None:
    (tmp_path / ".env").write_text(
        "ONNXQ_API_KEYS=from-dotenv\nONNXQ_SYNC_MAX_ROWS=2\n", encoding="utf-8"
    )
    (tmp_path / "test_probe.py").write_text(PROBE, encoding="utf-8")
    env = {k: v for k, v in os.environ.items() if not k.upper().startswith("ONNXQ_")}
    env.update(
        ONNXQ_API_KEYS="from-the-environment",
        ONNXQ_SYNC_MAX_ROWS="3",
        PYTHONPATH=os.pathsep.join(filter(None, [str(ROOT), env.get("PYTHONPATH")])),
    )
    command = [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider"]
    command += ["-p", "tests.conftest", "test_probe.py"]  # this suite's conftest, as a plugin

    done = subprocess.run(
        command, cwd=tmp_path, env=env, capture_output=True, text=True, timeout=120, check=False
    )

    assert done.returncode == 0, done.stdout + done.stderr
    assert "1 passed" in done.stdout
