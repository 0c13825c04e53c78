"""`gliomics ui` serves the project's MLflow store and shows the stage runs."""

import json
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest

from gliomics.validation.cohort import validate_cohort

pytestmark = pytest.mark.slow


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def test_ui_lists_the_validate_run(small_cohort, tmp_path, monkeypatch):
    monkeypatch.delenv("MLFLOW_TRACKING_URI")
    (tmp_path / "dvc.yaml").write_text("stages: {}\n")
    monkeypatch.chdir(tmp_path)
    validate_cohort(small_cohort, tmp_path / "reports" / "validate")

    port = _free_port()
    env = dict(os.environ, PATH=f"{Path(sys.executable).parent}:{os.environ['PATH']}")
    server = subprocess.Popen(
        [sys.executable, "-m", "gliomics.cli", "ui", "--port", str(port)],
        cwd=tmp_path, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
        start_new_session=True,  # MLflow starts workers: stop the whole group afterwards
    )
    try:
        first_line = server.stdout.readline()
        assert f"http://127.0.0.1:{port}" in first_line and "mlflow.db" in first_line
        body = None
        deadline = time.monotonic() + 240  # MLflow starts slowly on a busy 2-core machine
        while time.monotonic() < deadline:
            try:
                request = urllib.request.Request(
                    f"http://127.0.0.1:{port}/api/2.0/mlflow/experiments/search",
                    data=json.dumps({"max_results": 10}).encode(),
                    headers={"Content-Type": "application/json"},
                )
                body = json.loads(urllib.request.urlopen(request, timeout=2).read())
                break
            except OSError:
                time.sleep(0.5)
        assert body is not None, "MLflow UI did not answer"
        names = {e["name"] for e in body["experiments"]}
        assert "validate" in names
    finally:
        os.killpg(server.pid, signal.SIGTERM)
        server.wait(timeout=30)
        time.sleep(1)
        try:
            os.killpg(server.pid, signal.SIGKILL)  # any worker that ignored SIGTERM
        except ProcessLookupError:
            pass
