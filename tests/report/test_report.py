"""`gliomics report`: every section from the stage outputs, embedded images that decode,
links that resolve, placeholders for what has not run, MLflow artifacts."""

from __future__ import annotations

import base64
import io
import re
import shutil
from pathlib import Path

import pytest

from gliomics.config import params_from_dict
from gliomics.errors import GliomicsError
from gliomics.report.html import DATA_URI_PREFIX
from gliomics.stages.report import run_report

SECTIONS = ("Cohort", "Segmentation", "Slice classifier", "Radiogenomics", "Truth vs predicted masks", "Methods")
SUBSECTIONS = ("Validation", "Histology and grade", "Missing cluster labels", "Patient-level split", "The champion",
               "Per-patient 3D Dice on the internal test patients", "The five worst test patients",
               "Architecture and hyper-parameter search", "Significance tables (Bonferroni)",
               "Significance tables (FDR)", "Feature-cluster pairs with ROC AUC above the threshold", "Figures",
               "Which associations survive on predicted masks")


def _params(cohort):
    return params_from_dict({"data": {"raw": str(cohort)}})


def _images(text: str) -> list[bytes]:
    sources = re.findall(r'<img src="([^"]+)"', text)
    assert all(s.startswith(DATA_URI_PREFIX) for s in sources), "every image is embedded"
    return [base64.b64decode(s[len(DATA_URI_PREFIX):], validate=True) for s in sources]


def _section(text: str, title: str) -> str:
    start = text.index(f"<h2>{title}</h2>")
    end = text.find("<h2>", start + 4)
    return text[start:end if end > 0 else len(text)]


def _assert_images_decode(text: str) -> int:
    from PIL import Image

    images = _images(text)
    for data in images:
        assert data.startswith(b"\x89PNG")
        with Image.open(io.BytesIO(data)) as image:
            image.verify()
    return len(images)


def _assert_links_resolve(text: str, folder: Path) -> None:
    for href in re.findall(r'href="([^"#][^"]*)"', text):
        assert (folder / href).exists(), f"broken link {href}"


def test_full_report_has_every_section_and_embeds_everything(full_reports, small_cohort, tmp_path):
    import mlflow

    out = full_reports / "index.html"
    summary = run_report(full_reports, out, _params(small_cohort), profile="demo")
    text = out.read_text(encoding="utf-8")

    assert summary["sections"] == {title: True for title in SECTIONS}
    for title in SECTIONS:
        assert f"<h2>{title}</h2>" in text
        assert f'href="#{title.lower().replace(" ", "-")}"' in text  # listed in the table of contents
    for title in SUBSECTIONS:
        assert f">{title}</h3>" in text, title
    assert "not available yet" not in text
    n_images = _assert_images_decode(text)
    assert n_images == summary["n_images"] >= 9
    _assert_links_resolve(text, out.parent)
    assert 'href="validate/data_docs/index.html"' in text

    assert summary["overlays"]  # the stub segmenter drew the worst patients
    segmentation = _section(text, "Segmentation")
    assert "models:/gliomics-segmenter@champion" in segmentation and "demo-study" in segmentation
    assert "Unet" in segmentation and "importance" in segmentation
    classifier = _section(text, "Slice classifier")
    assert "0.95" in classifier and classifier.count("<img") == 2
    assert "Activation x pooling" in classifier and "0.954" in classifier and "gelu" in classifier
    agreement = _section(text, "Truth vs predicted masks")
    assert "icc_3_1" in agreement and "0 of 1 associations significant" in agreement
    radiogenomics = _section(text, "Radiogenomics")  # the published findings beside ours, both mask kinds
    assert "Published associations, replicated" in radiogenomics and "Buda 2019" in radiogenomics
    assert "p_bonferroni_predicted" in radiogenomics and "Mazurowski 2017" in radiogenomics
    assert "direction_truth" in radiogenomics and "best_auc_predicted" in radiogenomics
    methods = _section(text, "Methods")
    assert "seed 42" in methods and "32 grey levels" in methods and "resnet18" in methods  # tune's settings
    assert 'class="sortable"' in text and "addEventListener('click'" in text
    # A shared report carries no path of this machine (the fixtures live under the temp folder).
    for machine_path in {str(full_reports.parent), str(small_cohort), str(Path.home())} - {"/"}:
        assert machine_path not in text, machine_path

    runs = mlflow.search_runs(experiment_names=["report"])
    assert len(runs) == 1 and runs.loc[0, "status"] == "FINISHED"
    from mlflow import MlflowClient

    names = {a.path for a in MlflowClient().list_artifacts(runs.loc[0, "run_id"])}
    assert "index.html" in names and "inputs" in names


def test_missing_optional_inputs_give_placeholders(stage_reports, small_cohort, tmp_path):
    reports = tmp_path / "reports"
    shutil.copytree(stage_reports, reports)
    out = reports / "index.html"
    summary = run_report(reports, out, _params(small_cohort), log_mlflow=False, overlays=False)
    text = out.read_text(encoding="utf-8")

    assert summary["sections"]["Slice classifier"] is False
    assert summary["sections"]["Truth vs predicted masks"] is False
    assert summary["sections"]["Cohort"] and summary["sections"]["Radiogenomics"]
    for command in ("gliomics train-classifier, then gliomics evaluate --task classifier", "gliomics tune",
                    "gliomics register",
                    "gliomics segment, then gliomics features --masks predicted"):
        assert f"run <code>{command}" in text, command
    for title in SECTIONS:
        assert f"<h2>{title}</h2>" in text
    _assert_images_decode(text)


def test_empty_reports_folder_renders_only_placeholders(tmp_path):
    reports = tmp_path / "reports"
    reports.mkdir()
    summary = run_report(reports, reports / "index.html", params_from_dict({"data": {"raw": str(tmp_path / "no")}}),
                         log_mlflow=False)
    text = (reports / "index.html").read_text(encoding="utf-8")
    assert summary["sections"]["Cohort"] is False and summary["sections"]["Radiogenomics"] is False
    assert summary["n_images"] == 0 and text.count("not available yet") >= 5
    with pytest.raises(GliomicsError, match="no such folder"):
        run_report(tmp_path / "absent", tmp_path / "x.html", params_from_dict({}), log_mlflow=False)


def test_unloadable_model_replaces_only_the_overlays(stage_reports, small_cohort, tmp_path):
    import json

    reports = tmp_path / "reports"
    shutil.copytree(stage_reports, reports)
    summary_path = reports / "evaluate" / "summary.json"
    summary = json.loads(summary_path.read_text())
    summary["model_uri"] = str(tmp_path / "no-such-model")
    summary_path.write_text(json.dumps(summary))
    result = run_report(reports, reports / "index.html", _params(small_cohort), log_mlflow=False)
    text = (reports / "index.html").read_text(encoding="utf-8")
    assert not result["overlays"]
    assert "Overlay strips (" in text and "no-such-model" in text
    assert result["sections"]["Segmentation"]


def test_cli_report(stage_reports, small_cohort, tmp_path, capsys, monkeypatch):
    from gliomics.cli import main

    params = tmp_path / "params.yaml"
    params.write_text(f"data:\n  raw: {small_cohort}\n")
    out = tmp_path / "site" / "index.html"
    assert main(["report", "--params", str(params), "--reports", str(stage_reports), "--out", str(out),
                 "--no-mlflow", "--no-overlays"]) == 0
    assert out.exists() and "report: 6 sections" in capsys.readouterr().out
