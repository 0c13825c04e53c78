"""classifier: and segment: params, and the CLI surface of the classifier."""

from __future__ import annotations

import pytest

from gliomics.config import ClassifierParams, load_params, params_from_dict
from gliomics.errors import GliomicsError
from tests.conftest import PROJECT


def test_project_params_have_a_classifier_block_per_profile():
    params = load_params(PROJECT / "params.yaml")
    assert set(params.classifier) == {"demo", "cpu", "full"}
    assert params.classifier["cpu"].image_size == 128 and params.classifier["cpu"].model["depth"] in (18, 34)
    assert params.classifier["full"].image_size == 256 and params.classifier["full"].model["depth"] == 50
    assert params.classifier_settings().min_area_px == 1
    assert params.segment.gate_threshold == 0.0  # the classifier's own (validation-chosen) threshold
    assert "classifier" not in params.extra and "segment" not in params.extra


def test_classifier_params_are_typed():
    params = params_from_dict({"profile": "cpu", "classifier": {"cpu": {"min_area_px": 10, "epochs": 3}}})
    settings = params.classifier_settings()
    assert isinstance(settings, ClassifierParams) and settings.min_area_px == 10 and settings.loss == "bce"
    with pytest.raises(GliomicsError, match="classifier.demo: unknown key.*min_area"):
        params_from_dict({"classifier": {"demo": {"min_area": 3}}})
    with pytest.raises(GliomicsError, match="classifier.demo.min_area_px: expected int"):
        params_from_dict({"classifier": {"demo": {"min_area_px": "big"}}})
    with pytest.raises(GliomicsError, match="classifier: unknown profile"):
        params_from_dict({"classifier": {"gpu": {}}})
    with pytest.raises(GliomicsError, match="no classifier.full settings"):
        params_from_dict({"profile": "full", "classifier": {"demo": {}}}).classifier_settings()
    with pytest.raises(GliomicsError, match="segment: unknown key"):
        params_from_dict({"segment": {"gate": 0.5}})


def test_cli_has_the_classifier_commands(capsys):
    from gliomics.cli import build_parser

    parser = build_parser()
    args = parser.parse_args(["evaluate", "--task", "classifier", "--model", "m", "--data", "d"])
    assert args.task == "classifier" and args.out is None
    args = parser.parse_args(["segment", "--input", "i", "--out", "o", "--gate", "models:/x@champion"])
    assert args.gate == "models:/x@champion"
    assert parser.parse_args(["train-classifier"]).out == "models/classifier"
    assert parser.parse_args(["register-classifier"]).model_json == "reports/classifier/train/model.json"


def test_cli_evaluate_classifier_error_is_one_line(small_cohort, tmp_path, capsys):
    from gliomics.cli import main

    code = main(["evaluate", "--task", "classifier", "--data", str(small_cohort), "--model",
                 str(tmp_path / "nowhere"), "--out", str(tmp_path / "out"), "--no-mlflow"])
    err = capsys.readouterr().err
    assert code == 2 and "not a model URI" in err and "Traceback" not in err
