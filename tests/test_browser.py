"""The MLflow UI in a real browser: a tune study's nested trial runs and the champion alias are visible.

Headless Chromium (the Debian package; no browser download) driven by
Playwright loads the pages `gliomics ui` serves for a throwaway store that
holds what the pipeline makes: a study parent run with nested trial runs in
the experiment ``tune``, and a registered ``gliomics-segmenter`` version with
the alias ``champion`` and its model card. Screenshots go to
``reports/browser/``. Skipped, saying why, when Chromium or Playwright is
missing (``scripts/install-test-system-deps.sh`` installs Chromium).
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.helpers import free_port, wait_for_health

pytestmark = pytest.mark.slow

PROJECT = Path(__file__).resolve().parents[1]
SCREENSHOTS = PROJECT / "reports" / "browser"
NAME = "gliomics-segmenter"
TRIALS = [("relu", "max", "COMPLETE", 0.61), ("gelu", "avg", "PRUNED", 0.42), ("elu", "max", "COMPLETE", 0.74)]
#: Generous: on a 2-core machine shared with a training run, MLflow starts and renders in minutes.
START_TIMEOUT_S = 600
PAGE_TIMEOUT_MS = 300_000


def chromium_binary() -> str | None:
    """The Chromium to drive: $GLIOMICS_CHROMIUM, else the Debian package's binary on PATH."""
    candidates = [os.environ.get("GLIOMICS_CHROMIUM"), shutil.which("chromium"), shutil.which("chromium-browser")]
    return next((c for c in candidates if c and Path(c).exists()), None)


def _fill_store(tmp_path: Path) -> str:
    """A study parent run with nested trials, and version 1 of NAME with @champion; return the experiment id."""
    import mlflow

    from gliomics import tracking
    from gliomics.registry.promote import promote
    from gliomics.registry.register import attach_model_card, register_version

    experiment_id = tracking.ensure_experiment("tune")
    model_dir = tmp_path / "model"
    model_dir.mkdir()
    (model_dir / "MLmodel").write_text("flavors: {}\n")  # enough to register; never loaded here
    with mlflow.start_run(run_name="study demo-study"):
        mlflow.log_param("n_trials", len(TRIALS))
        for number, (activation, pooling, state, dice) in enumerate(TRIALS):
            with mlflow.start_run(run_name=f"trial {number}", nested=True) as trial:
                mlflow.log_params({"activation": activation, "pooling": pooling})
                mlflow.set_tags({"optuna.state": state, "trial_number": str(number)})
                for epoch in range(3):
                    mlflow.log_metric("val_dice_3d", dice * (epoch + 1) / 3, step=epoch)
                if number == 2:
                    mlflow.log_artifacts(str(model_dir), "model")
                    best_run = trial.info.run_id
    info = register_version(NAME, f"runs:/{best_run}/model",
                            tags={"val_dice_3d": 0.74, "test_mean_dice_3d": 0.70, "dvc_data_hash": "abc"})
    attach_model_card(info, f"# Model card: {NAME} version 1\n\nFor the browser test.\n")
    promote(NAME, 1, mirror_dir=tmp_path / "registry")
    return experiment_id


def _stop(server: subprocess.Popen) -> None:
    """SIGTERM the server's process group, then SIGKILL whatever is left of it."""
    os.killpg(server.pid, signal.SIGTERM)
    try:
        server.wait(timeout=30)
    except subprocess.TimeoutExpired:
        pass
    time.sleep(1)
    try:
        os.killpg(server.pid, signal.SIGKILL)  # any worker that ignored SIGTERM
    except ProcessLookupError:
        pass
    server.wait(timeout=30)


def test_mlflow_ui_shows_nested_trials_and_the_champion(tmp_path, monkeypatch):
    chromium = chromium_binary()
    if chromium is None:
        pytest.skip("no Chromium binary (Debian: apt-get install chromium; or scripts/install-test-system-deps.sh)")
    playwright = pytest.importorskip("playwright.sync_api", reason="playwright not installed (see requirements.lock)")

    experiment_id = _fill_store(tmp_path)
    monkeypatch.chdir(tmp_path)
    port = free_port()
    log = tmp_path / "ui.log"
    env = dict(os.environ, PATH=f"{Path(sys.executable).parent}:{os.environ['PATH']}",  # MLflow runs uvicorn
               MLFLOW_SERVER_ENABLE_JOB_EXECUTION="false")  # no GenAI job workers: a dozen fewer processes
    server = subprocess.Popen(
        [sys.executable, "-m", "gliomics.cli", "ui", "--port", str(port)], cwd=tmp_path, env=env,
        stdout=log.open("w"), stderr=subprocess.STDOUT,
        start_new_session=True,  # MLflow starts workers: stop the whole group afterwards
    )
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    for old in SCREENSHOTS.glob("mlflow_*.png"):
        old.unlink()
    try:
        base = f"http://127.0.0.1:{port}"
        wait_for_health(base, server, log, "gliomics ui", START_TIMEOUT_S)
        with playwright.sync_playwright() as p:
            browser = p.chromium.launch(executable_path=chromium, headless=True,
                                        args=["--no-sandbox", "--disable-dev-shm-usage", "--disable-gpu"])
            page = browser.new_page(viewport={"width": 1400, "height": 800})
            page.set_default_timeout(PAGE_TIMEOUT_MS)

            # The runs of the experiment (the "Model training" view of the UI).
            page.goto(f"{base}/#/experiments/{experiment_id}/runs?workflowType=machine_learning",
                      wait_until="domcontentloaded")
            parent = page.locator('[role="row"]', has_text="study demo-study").first
            parent.wait_for()
            assert page.get_by_text(f"{len(TRIALS) + 1} matching runs").is_visible()
            # Nested: the trials are folded under the study's run until it is expanded.
            assert not page.get_by_text("trial 0", exact=True).is_visible()
            if page.get_by_label("Close").count():
                page.get_by_label("Close").first.click()  # the assistant panel hides the table's columns
            parent.locator('button[data-component-id*="runnamecellrenderer"]').click()
            for number in range(len(TRIALS)):
                page.get_by_text(f"trial {number}", exact=True).wait_for()
            names = [name.strip() for name in page.locator('[role="row"] a').all_inner_texts()]
            runs = [name for name in names if name.startswith(("study", "trial"))]
            assert runs[0] == "study demo-study" and sorted(runs[1:]) == [f"trial {n}" for n in range(len(TRIALS))]
            page.screenshot(path=str(SCREENSHOTS / "mlflow_tune_runs.png"))

            # The registered model: version 1 holds @champion.
            page.goto(f"{base}/#/models/{NAME}", wait_until="domcontentloaded")
            row = page.locator('[role="row"]', has_text="Version 1").first
            row.wait_for()
            row.get_by_text("champion").wait_for()
            assert "@ champion" in row.inner_text().replace("\xa0", " ")
            page.screenshot(path=str(SCREENSHOTS / "mlflow_registered_model.png"))

            # The version page carries the model card as its description.
            page.goto(f"{base}/#/models/{NAME}/versions/1", wait_until="domcontentloaded")
            page.get_by_text("For the browser test.").wait_for()
            assert "@ champion" in page.inner_text("body").replace("\xa0", " ")
            page.screenshot(path=str(SCREENSHOTS / "mlflow_model_version.png"))
            browser.close()
    finally:
        _stop(server)
    written = sorted(p.name for p in SCREENSHOTS.glob("mlflow_*.png"))
    assert written == ["mlflow_model_version.png", "mlflow_registered_model.png", "mlflow_tune_runs.png"]
    assert json.loads((tmp_path / "registry" / f"{NAME}.json").read_text())["version"] == 1
