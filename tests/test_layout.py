"""One home for the project's layout: dvc.yaml, the CLI's defaults and gliomics.layout name the same places."""

from __future__ import annotations

import shlex
from pathlib import Path

import pytest
import yaml

from gliomics import layout
from gliomics.cli import build_parser, resolve_default_outputs
from tests.conftest import PROJECT

PATHS = {value for value in vars(layout).values() if isinstance(value, Path)}
PATH_OPTIONS = ("--out", "--manifest", "--splits", "--features", "--best", "--reports", "--model", "--dest")


def stages():
    return yaml.safe_load((PROJECT / "dvc.yaml").read_text())["stages"].items()


def subcommand_defaults(command: str) -> dict[str, object]:
    parser = build_parser()
    choices = next(a for a in parser._actions if a.dest == "command").choices  # noqa: SLF001
    return {option: action.default for action in choices[command]._actions  # noqa: SLF001
            for option in action.option_strings if option in PATH_OPTIONS}


def test_every_output_of_the_pipeline_lies_in_a_place_the_layout_names():
    for name, stage in stages():
        for entry in [*stage.get("outs", []), *stage.get("metrics", [])]:
            out = Path(next(iter(entry)) if isinstance(entry, dict) else entry)
            assert any(out == place or place in out.parents for place in PATHS - {Path("models")}), (name, out)


def known_places() -> set[str]:
    masks = ("truth", "predicted")
    return ({str(p) for p in PATHS} | {str(layout.features_table(m)) for m in masks}
            | {str(layout.associations(m)) for m in masks} | {str(layout.CLASSIFIER_TRAIN / "model.json"),
                                                               str(layout.CLASSIFIER_EVALUATE / "summary.json")})


def test_dvc_commands_and_cli_defaults_name_layout_places():
    places, checked = known_places(), 0
    for name, stage in stages():
        tokens = shlex.split(stage["cmd"].replace("${data.raw}", str(layout.RAW)))
        given = {tokens[i]: tokens[i + 1] for i in range(2, len(tokens) - 1) if tokens[i] in PATH_OPTIONS}
        for option, value in given.items():
            if not value.startswith("models:/"):
                assert value in places, (name, option, value)
                checked += 1
        for option, default in subcommand_defaults(tokens[1]).items():
            if isinstance(default, str) and not default.startswith("models:/"):
                assert default in places, (tokens[1], option, default)
    assert checked >= 20


def test_computed_defaults_match_the_pipeline():
    from gliomics.cli import validate_out_dir

    assert validate_out_dir("data/raw", "data/raw") == str(layout.VALIDATE) == "reports/validate"
    assert str(layout.validate_elsewhere("/somewhere/cohort2")) == "reports/validate-cohort2"
    assert str(layout.features_table("predicted")) == "reports/features/features_predicted.csv"
    assert f"{layout.SEGMENTER}{layout.fold_suffix(2)}" == "models/segmenter-fold2"
    assert layout.fold_suffix(None) == ""
    assert f"{layout.SEGMENTER}{layout.fold_suffix(None, final=True)}" == "models/segmenter-final"


def test_train_output_defaults_follow_fold_final_and_seed():
    for argv, suffix in ((["train"], ""), (["train", "--fold", "3"], "-fold3"), (["train", "--final"], "-final"),
                         (["train", "--final", "--seed", "1"], "-final-seed1"),
                         (["train", "--fold", "2", "--seed", "0"], "-fold2-seed0")):
        args = build_parser().parse_args(argv)
        resolve_default_outputs(args)
        assert (args.out, args.checkpoints, args.reports) == (
            f"models/segmenter{suffix}", f"checkpoints/train{suffix}", f"reports/train{suffix}")
    with pytest.raises(SystemExit):
        build_parser().parse_args(["train", "--final", "--fold", "1"])


def test_train_passes_fold_and_seed_to_the_training(monkeypatch, tmp_path):
    import gliomics.stages.train as train_stage
    from gliomics.cli import main

    seen = {}

    def fake_run_train(data, manifest, splits, settings, **kwargs):
        seen.update(settings=settings, **kwargs)
        return {"best_val_dice_3d": 0.5, "epochs_run": 1, "total_steps": 1, "seconds": 1.0, "model_uri": "x"}

    monkeypatch.setattr(train_stage, "run_train", fake_run_train)
    params = Path(__file__).resolve().parents[1] / "params.yaml"
    monkeypatch.chdir(tmp_path)
    assert main(["train", "--params", str(params), "--fold", "2", "--seed", "7", "--no-mlflow"]) == 0
    assert seen["settings"].seed == 7 and seen["settings"].val_fold == 2
    assert seen["out_dir"] == "models/segmenter-fold2-seed7"
