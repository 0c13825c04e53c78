"""Registry: `gliomics register`, the promotion rule, `gliomics promote` / `gliomics models`, the champion mirror.

The models are stubs (a 1x1 convolution gating on FLAIR brightness, as in
tests.helpers.flair_stub): the synthetic tumours are bright in FLAIR,
so a good gate scores a high test Dice and a badly biased one a lower one --
two models with a known order, no training needed. Each is logged with
``log_segmenter`` in a run, like a tune trial, and described by a best.json
in the contract format of `gliomics tune`.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

import gliomics  # noqa: F401  (sets the Keras environment first)
from gliomics.cli import main
from gliomics.config import RegisterParams
from gliomics.errors import GliomicsError
from gliomics.models.preprocessing import Preprocessing

SIZE = 64
NAME = "gliomics-segmenter"
CONTRACT_KEYS = {"name", "version", "run_id", "model_uri", "val_dice_3d", "test_mean_dice_3d", "data_hash",
                 "profile", "study_name", "trial_number", "promoted"}
MIRROR_KEYS = {"name", "alias", "version", "model_uri", "test_mean_dice_3d", "data_hash", "updated_at"}


def flair_gate(bias: float):
    """``sigmoid(4 * FLAIR + bias)`` per pixel: bias -9 finds the synthetic tumours, -5 over-segments."""
    import tensorflow as tf

    inputs = tf.keras.Input((SIZE, SIZE, 3))
    conv = tf.keras.layers.Conv2D(1, 1, activation="sigmoid")
    model = tf.keras.Model(inputs, conv(inputs))
    conv.set_weights([np.array([0.0, 4.0, 0.0], np.float32).reshape(1, 1, 3, 1), np.array([bias], np.float32)])
    return model


def fake_tune_trial(tmp_path: Path, bias: float, *, trial: int, val_dice: float, local_copy: bool = False) -> Path:
    """Log a stub as a tune trial would and write best.json (contract of `gliomics tune`); return its path."""
    import mlflow

    from gliomics import tracking
    from gliomics.training.export import log_segmenter

    tracking.ensure_experiment("tune")
    with mlflow.start_run(run_name=f"trial {trial}") as run:
        log_segmenter(flair_gate(bias), Preprocessing(image_size=SIZE), {"arch": "flair_gate"})
    best = {
        "study_name": "demo-study", "storage": "sqlite:///reports/tune/optuna.db", "trial_number": trial,
        "fidelity": "full", "val_dice_3d": val_dice, "params": {"activation": "relu", "pooling": "max", "bias": bias},
        "train_settings": {"image_size": SIZE, "epochs": 1, "model": {"arch": "flair_gate"}},
        "model_uri": f"runs:/{run.info.run_id}/model", "model_dir": None, "parent_run_id": "p0",
        "n_trials": 4, "n_complete": 2, "n_pruned": 2, "n_failed": 0, "seconds": 1.0,
    }
    if local_copy:
        from gliomics.training.export import save_segmenter

        best["model_dir"] = str(save_segmenter(flair_gate(bias), Preprocessing(image_size=SIZE),
                                               {"arch": "flair_gate"}, tmp_path / f"tuned{trial}"))
    path = tmp_path / f"best{trial}.json"
    path.write_text(json.dumps(best))
    return path


@pytest.fixture
def splits(small_cohort, tmp_path) -> Path:
    """Two test patients, two training patients."""
    patients = sorted(p.name[: -len("_YYYYMMDD")] for p in small_cohort.glob("TCGA_*"))
    table = pd.DataFrame({"patient": patients, "part": ["test", "fold0", "test", "fold1"], "fold": [-1, 0, -1, 1]})
    path = tmp_path / "splits.csv"
    table.to_csv(path, index=False)
    return path


def version(metric: float | None, *, number: int = 2, data_hash: str = "abc") -> dict:
    return {"name": NAME, "version": number, "data_hash": data_hash,
            "metrics": {} if metric is None else {"test_mean_dice_3d": metric}}


# --------------------------------------------------------------------------
# the promotion rule (pure)
# --------------------------------------------------------------------------

def test_promotion_rule():
    from gliomics.registry.promote import promotion_verdict

    metric = "test_mean_dice_3d"
    assert promotion_verdict(version(0.5), None, metric) == (True, f"{NAME} has no @champion yet")
    allowed, reason = promotion_verdict(version(0.81), version(0.80, number=1), metric)
    assert allowed and "0.8100 >= 0.8000" in reason
    allowed, reason = promotion_verdict(version(0.80), version(0.80, number=1), metric)
    assert allowed  # a tie goes to the newer version
    allowed, reason = promotion_verdict(version(0.70), version(0.85, number=1), metric)
    assert not allowed and "0.8500 vs 0.7000" in reason and "--force" in reason and "version 1" in reason
    allowed, reason = promotion_verdict(version(0.70, data_hash="new"), version(0.85, number=1), metric)
    assert allowed and "other data" in reason
    allowed, reason = promotion_verdict(version(None), version(0.85, number=1), metric)
    assert not allowed and "has no test_mean_dice_3d" in reason
    assert promotion_verdict(version(0.1, number=1), version(0.9, number=1), metric)[0]  # already holds it


def test_register_params_reject_an_unknown_policy():
    from gliomics.config import params_from_dict

    assert params_from_dict({}).register.promote == "if_better"
    with pytest.raises(GliomicsError, match="register.promote must be one of never, if_better, always"):
        params_from_dict({"register": {"promote": "sometimes"}})
    with pytest.raises(GliomicsError, match="unknown key"):
        params_from_dict({"register": {"promot": "never"}})


# --------------------------------------------------------------------------
# register -> promote -> models, end to end on one store
# --------------------------------------------------------------------------

@pytest.mark.slow  # an end-to-end stage run: `make test`, not `make test-fast`
def test_register_promote_and_list(small_cohort, splits, tmp_path, capsys):
    from mlflow import MlflowClient

    from gliomics.registry.listing import get_alias, list_versions
    from gliomics.stages.register import run_register

    mirror_dir = tmp_path / "registry"
    mirror = mirror_dir / f"{NAME}.json"
    good = fake_tune_trial(tmp_path, -9.0, trial=3, val_dice=0.9)
    first = run_register(good, small_cohort, splits, tmp_path / "reg1", params=RegisterParams("if_better"),
                         profile="demo", mirror_dir=mirror_dir)

    # registered.json: the contract, the test Dice of the evaluate stage on the 2 test patients
    written = json.loads((tmp_path / "reg1" / "registered.json").read_text())
    assert CONTRACT_KEYS <= set(written) and written == first
    evaluated = json.loads((tmp_path / "reg1" / "evaluate" / "summary.json").read_text())
    per_patient = pd.read_csv(tmp_path / "reg1" / "evaluate" / "per_patient.csv")
    assert evaluated["n_patients"] == 2 and set(per_patient["patient"]) == set(
        pd.read_csv(splits).query("part == 'test'")["patient"])
    assert first["version"] == 1 and first["promoted"] and first["model_uri"] == f"models:/{NAME}/1"
    assert first["test_mean_dice_3d"] == pytest.approx(evaluated["mean_dice_3d"]) and first["test_mean_dice_3d"] > 0.7
    assert first["val_dice_3d"] == 0.9 and first["study_name"] == "demo-study" and first["trial_number"] == 3
    assert first["data_hash"].startswith("untracked:")  # not the DVC-versioned cohort

    # the version: tags, alias, card as an artifact of its run
    client = MlflowClient()
    v1 = client.get_model_version(NAME, "1")
    for key in ("study_name", "trial_number", "param.activation", "param.pooling", "val_dice_3d",
                "test_mean_dice_3d", "git_commit", "dvc_data_hash", "profile"):
        assert key in v1.tags, key
    assert v1.tags["param.pooling"] == "max" and v1.tags["profile"] == "demo"
    assert float(v1.tags["test_mean_dice_3d"]) == pytest.approx(first["test_mean_dice_3d"])
    assert v1.run_id == json.loads(good.read_text())["model_uri"].split("/")[1]
    assert str(client.get_model_version_by_alias(NAME, "champion").version) == "1"
    card_files = [a.path for a in client.list_artifacts(v1.run_id, "model_card")]
    assert card_files == ["model_card/model_card.md"]
    card = (tmp_path / "reg1" / "model_card.md").read_text()
    assert v1.description == card  # the UI renders it on the version page
    assert card.startswith(f"# Model card: {NAME} version 1") and "demo-study" in card
    assert f"{first['test_mean_dice_3d']:.4f}" in card and "synthetic demo cohort" in card
    assert "## Limitations" in card and "## Intended use" in card
    assert json.loads(mirror.read_text())["version"] == 1
    assert MIRROR_KEYS <= set(json.loads(mirror.read_text()))

    # a worse model: registered, not promoted (if_better), reason with both numbers
    worse = fake_tune_trial(tmp_path, -5.0, trial=7, val_dice=0.95)
    second = run_register(worse, small_cohort, splits, tmp_path / "reg2", params=RegisterParams("if_better"),
                          profile="demo", mirror_dir=mirror_dir)
    assert second["version"] == 2 and not second["promoted"]
    assert second["test_mean_dice_3d"] < first["test_mean_dice_3d"]
    assert f"{first['test_mean_dice_3d']:.4f} vs {second['test_mean_dice_3d']:.4f}" in second["promotion_reason"]
    assert get_alias(NAME, "champion")["version"] == 1 and json.loads(mirror.read_text())["version"] == 1

    # policy never: registered only
    third = run_register(good, small_cohort, splits, tmp_path / "reg3", params=RegisterParams("never"),
                         mirror_dir=mirror_dir)
    assert third["version"] == 3 and not third["promoted"] and third["champion_version"] == 1

    # gliomics promote: refused with both numbers (exit 2), then forced
    assert main(["promote", "--version", "2", "--registry-dir", str(mirror_dir)]) == 2
    err = capsys.readouterr().err
    assert "not promoted to @champion" in err and f"{first['test_mean_dice_3d']:.4f}" in err
    assert f"{second['test_mean_dice_3d']:.4f}" in err and "--force" in err
    assert main(["promote", "--version", "2", "--force", "--registry-dir", str(mirror_dir)]) == 0
    out = capsys.readouterr().out
    assert "is version 2 (was version 1): forced" in out
    record = json.loads(mirror.read_text())
    assert record["version"] == 2 and record["model_uri"] == f"models:/{NAME}@champion"
    assert record["test_mean_dice_3d"] == pytest.approx(second["test_mean_dice_3d"])

    # the better version takes it back without --force; a second alias has its own mirror
    assert main(["promote", "--version", "3", "--registry-dir", str(mirror_dir)]) == 0
    assert main(["promote", "--version", "1", "--alias", "baseline", "--registry-dir", str(mirror_dir)]) == 0
    capsys.readouterr()
    assert json.loads(mirror.read_text())["version"] == 3
    assert json.loads((mirror_dir / f"{NAME}@baseline.json").read_text())["version"] == 1
    assert main(["promote", "--version", "9", "--registry-dir", str(mirror_dir)]) == 2
    assert "no such model version" in capsys.readouterr().err

    # gliomics models: one row per version with aliases and both Dice columns
    assert main(["models"]) == 0
    lines = capsys.readouterr().out.strip().splitlines()
    assert lines[0].split()[:4] == ["name", "version", "aliases", "val_dice_3d"] and "test_mean_dice_3d" in lines[0]
    rows = {line.split()[1]: line.split() for line in lines[1:]}
    assert set(rows) == {"1", "2", "3"} and rows["3"][2] == "champion" and rows["1"][2] == "baseline"
    assert rows["2"][2] == "-" and f"{second['test_mean_dice_3d']:.4f}" in rows["2"]
    assert [v["version"] for v in list_versions(NAME)] == [1, 2, 3]


@pytest.mark.slow  # 10+ s (a model trained, saved or registered): `make test` only
def test_mirror_unchanged_when_nothing_changed(small_cohort, splits, tmp_path):
    """Re-promoting the champion rewrites nothing, so DVC stages depending on the mirror do not re-run."""
    from gliomics.registry.promote import promote, sync_mirror
    from gliomics.stages.register import run_register

    best = fake_tune_trial(tmp_path, -9.0, trial=0, val_dice=0.8)
    run_register(best, small_cohort, splits, tmp_path / "reg", params=RegisterParams("always"),
                 mirror_dir=tmp_path / "registry")
    mirror = tmp_path / "registry" / f"{NAME}.json"
    before = mirror.read_bytes()
    result = promote(NAME, 1, mirror_dir=tmp_path / "registry")
    assert result["reason"] == "version 1 already holds @champion" and mirror.read_bytes() == before
    assert sync_mirror(NAME, mirror_dir=tmp_path / "registry") == mirror and mirror.read_bytes() == before
    assert sync_mirror(NAME, alias="nobody", mirror_dir=tmp_path / "registry") is None


@pytest.mark.slow  # an end-to-end stage run: `make test`, not `make test-fast`
def test_register_from_local_copy_when_the_run_is_gone(small_cohort, splits, tmp_path):
    """best.json's run is not in this store (e.g. a fresh store): the local model_dir is logged and registered."""
    from gliomics.stages.register import run_register

    best_path = fake_tune_trial(tmp_path, -9.0, trial=1, val_dice=0.8, local_copy=True)
    best = json.loads(best_path.read_text())
    best["model_uri"] = "runs:/0123456789abcdef0123456789abcdef/model"
    best_path.write_text(json.dumps(best))
    with pytest.warns(UserWarning, match="registering the local copy"):
        summary = run_register(best_path, small_cohort, splits, tmp_path / "reg", mirror_dir=tmp_path / "registry")
    assert summary["version"] == 1 and summary["promoted"] and summary["run_id"] == summary["register_run_id"]

    from gliomics.models.packaging import load_segmenter

    model, preprocessing, metadata = load_segmenter(f"models:/{NAME}@champion")
    assert preprocessing.image_size == SIZE and metadata["model_config"] == {"arch": "flair_gate"}


def test_register_bad_inputs(small_cohort, splits, tmp_path):
    from gliomics.stages.register import run_register

    missing = tmp_path / "tune" / "best.json"
    with pytest.raises(GliomicsError, match=r"best.json: missing; run `gliomics tune` first"):
        run_register(missing, small_cohort, splits, tmp_path / "reg")
    missing.parent.mkdir()
    missing.write_text(json.dumps({"study_name": "s", "trial_number": 1}))
    with pytest.raises(GliomicsError, match="missing key\\(s\\) model_uri, val_dice_3d, params"):
        run_register(missing, small_cohort, splits, tmp_path / "reg")
    missing.write_text(json.dumps({"study_name": "s", "trial_number": 1, "val_dice_3d": 0.5, "params": {},
                                   "model_uri": "runs:/feedfeedfeedfeedfeedfeedfeedfeed/model", "model_dir": None}))
    with pytest.raises(GliomicsError, match="is not in the MLflow store .* re-run `gliomics tune`"):
        run_register(missing, small_cohort, splits, tmp_path / "reg")
    assert not (tmp_path / "reg").exists()


@pytest.mark.slow  # 10+ s (a model trained, saved or registered): `make test` only
def test_segment_defaults_to_the_champion_and_says_how_to_promote(small_cohort, splits, tmp_path, capsys):
    from gliomics.cli import build_parser
    from gliomics.stages.register import run_register

    args = build_parser().parse_args(["segment", "--input", "x", "--out", "y"])
    assert args.model == ["models:/gliomics-segmenter@champion"]

    code = main(["segment", "--input", str(small_cohort), "--out", str(tmp_path / "seg"), "--no-mlflow"])
    assert code == 2
    err = capsys.readouterr().err
    assert "models:/gliomics-segmenter@champion: cannot load model" in err
    assert "no versions yet" in err and "gliomics register" in err

    best = fake_tune_trial(tmp_path, -9.0, trial=2, val_dice=0.8)
    run_register(best, small_cohort, splits, tmp_path / "reg", params=RegisterParams("never"),
                 mirror_dir=tmp_path / "registry")
    assert main(["segment", "--input", str(small_cohort), "--out", str(tmp_path / "seg"), "--no-mlflow"]) == 2
    err = capsys.readouterr().err
    assert "no version of gliomics-segmenter has alias @champion" in err
    assert "gliomics promote --version N" in err and "versions: 1" in err

    assert main(["promote", "--version", "1", "--registry-dir", str(tmp_path / "registry")]) == 0
    assert main(["segment", "--input", str(small_cohort), "--out", str(tmp_path / "seg"), "--no-mlflow"]) == 0
    assert "with models:/gliomics-segmenter@champion" in capsys.readouterr().out
    assert len(list((tmp_path / "seg").glob("TCGA_*/*_mask.tif"))) > 0


def test_models_on_an_empty_store(capsys):
    assert main(["models"]) == 0
    assert "no registered models yet" in capsys.readouterr().out


@pytest.mark.parametrize("command", ["register", "promote", "models"])
def test_registry_commands_have_help(command, capsys):
    with pytest.raises(SystemExit) as exit_info:
        main([command, "--help"])
    assert exit_info.value.code == 0 and f"usage: gliomics {command}" in capsys.readouterr().out


def test_model_card_renders_every_section():
    from gliomics.registry.model_card import render_model_card

    card = render_model_card("m", 4, intended_use="Research.", selection={"trial": 3, "lr": 0.001234},
                             training={"model": {"arch": "Unet", "backbone": "resnet18"}}, metrics={"test dice": 0.8},
                             evaluation="On 3 patients.", provenance={"git commit": "abc|def"},
                             limitations=["Small test set."])
    assert card.splitlines()[0] == "# Model card: m version 4" and "`models:/m/4`" in card
    for heading in ("Intended use", "How it was chosen", "Training settings", "Performance", "Provenance",
                    "Limitations"):
        assert f"## {heading}" in card
    assert "| lr | 0.0012 |" in card and "| model | arch=Unet, backbone=resnet18 |" in card
    assert "| git commit | abc/def |" in card and "- Small test set." in card  # a | would break the table


def test_a_long_card_is_cut_in_the_description_but_whole_in_the_artifact(tmp_path):
    import mlflow
    from mlflow import MlflowClient

    from gliomics import tracking
    from gliomics.registry.register import MAX_TAG_CHARS, attach_model_card, register_version

    tracking.ensure_experiment("tune")
    (tmp_path / "model").mkdir()
    (tmp_path / "model" / "MLmodel").write_text("flavors: {}\n")
    with mlflow.start_run() as run:
        mlflow.log_artifacts(str(tmp_path / "model"), "model")
    info = register_version(NAME, f"runs:/{run.info.run_id}/model", tags={"test_mean_dice_3d": 0.5, "params": [1]})
    assert info["version"] == 1 and info["metrics"] == {"test_mean_dice_3d": 0.5} and info["tags"]["params"] == "[1]"
    card = "# Model card\n" + "".join(f"| row {i} | {'x' * 60} |\n" for i in range(200))
    uri = attach_model_card(info, card)
    description = MlflowClient().get_model_version(NAME, "1").description
    assert len(description) <= MAX_TAG_CHARS and description.startswith("# Model card\n| row 0 |")
    assert description.endswith(f"(cut here: the whole card is {uri})\n")
    local = mlflow.artifacts.download_artifacts(uri, dst_path=str(tmp_path / "dl"))
    assert Path(local).read_text() == card
