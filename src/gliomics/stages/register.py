"""``gliomics register``: the tuned segmenter, scored on the internal test patients, as a registry version.

Reads ``reports/tune/best.json`` (written by ``gliomics tune``: the best
full-fidelity trial's ``model_uri``, its study, trial number, searched
params, training settings and validation per-patient 3D Dice), then

1. scores that model on the split's ``test`` patients with the evaluate
   stage (:func:`gliomics.training.evaluation.evaluate_segmenter`), into
   ``out_dir/evaluate/`` (``per_patient.csv``, ``summary.json``);
2. registers it as a new version of ``gliomics-segmenter`` with tags
   ``study_name``, ``trial_number``, ``fidelity``, ``param.<name>`` per
   searched param, ``val_dice_3d``, ``test_mean_dice_3d`` (and the other
   test scores), ``git_commit``, ``dvc_data_hash``, ``profile``;
3. writes the model card ``out_dir/model_card.md`` and stores it with the
   version (artifact ``model_card/model_card.md`` of the version's run, and
   the version's description);
4. applies ``register.promote`` (never / if_better / always; see
   :mod:`gliomics.registry.promote`), which mirrors a new champion in
   ``reports/registry/gliomics-segmenter.json``;
5. writes ``out_dir/registered.json`` and logs an MLflow run in the
   experiment ``register`` (test metrics, the evaluation files, the card).

The test patients are only scored here, after the search chose the model:
they never influence which configuration wins.
"""

from __future__ import annotations

import json
import time
import warnings
from pathlib import Path

import mlflow
from mlflow.exceptions import MlflowException

from gliomics import io, tracking
from gliomics.config import RegisterParams
from gliomics.data.splits import patients_of_part
from gliomics.errors import GliomicsError
from gliomics.registry import MIRROR_DIR, SEGMENTER
from gliomics.registry.listing import client
from gliomics.registry.model_card import render_model_card
from gliomics.registry.promote import promote_per_policy
from gliomics.registry.register import attach_model_card, register_version, registered_record
from gliomics.tracking import tracking_uri
from gliomics.training.evaluation import PER_PATIENT, SUMMARY, evaluate_segmenter

REGISTERED = "registered.json"
MODEL_CARD = "model_card.md"
EVALUATE_DIR = "evaluate"
#: Keys best.json must have (the contract of `gliomics tune`).
BEST_KEYS = ("model_uri", "study_name", "trial_number", "val_dice_3d", "params")
#: Evaluate-summary numbers stored as ``test_<key>`` version tags.
TEST_SCORES = ("mean_dice_3d", "median_dice_3d", "mean_iou_3d", "median_hd95_px", "mean_slice_dice")
TEST_METRIC = "test_mean_dice_3d"

INTENDED_USE = (
    "Segments the FLAIR abnormality of lower-grade gliomas in axial brain MRI slices (3 channels: "
    "pre-contrast, FLAIR, post-contrast, as in the TCGA-LGG Kaggle layout), one patient volume at a time, so "
    "that shape and texture features can be computed from predicted masks (`gliomics segment`, then "
    "`gliomics features --masks predicted`). For research on radiogenomic associations; not a medical device "
    "and not for clinical decisions."
)


def read_best(path: str | Path) -> dict:
    """``best.json`` of ``gliomics tune``, checked for the keys registration needs."""
    path = Path(path)
    if not path.exists():
        raise GliomicsError(f"{path}: missing; run `gliomics tune` first (or `dvc repro tune`)")
    try:
        best = json.loads(path.read_text(encoding="utf-8"))
    except ValueError as exc:
        raise GliomicsError(f"{path}: not valid JSON ({exc})") from None
    if not isinstance(best, dict):
        raise GliomicsError(f"{path}: expected a JSON object")
    if best.get("task", "segmenter") != "segmenter":
        raise GliomicsError(f"{path}: a {best['task']} search; register it with `gliomics register-classifier "
                            f"--model-json {path.parent / 'model.json'}`")
    if best.get("fidelity") == "low" and not best.get("model_uri"):
        raise GliomicsError(f"{path}: the search had no full-fidelity phase (promote_top_k 0), so there is no model "
                            "to register; set tune.<profile>.promote_top_k >= 1 and re-run `gliomics tune`")
    missing = [key for key in BEST_KEYS if best.get(key) is None]
    if missing:
        raise GliomicsError(f"{path}: missing key(s) {', '.join(missing)}; re-run `gliomics tune`")
    return best


def model_source(best: dict, best_path: str | Path) -> tuple[str | None, Path | None]:
    """``(mlflow_uri, None)`` when best.json's model is in the MLflow store, else ``(None, local folder)``.

    The local folder (``model_dir``) serves when the store no longer has the
    trial's run (a wiped or different store); a GliomicsError when neither exists.
    """
    uri = str(best["model_uri"])
    if uri.startswith("models:/"):
        return uri, None
    if uri.startswith("runs:/"):
        try:
            client().get_run(uri.removeprefix("runs:/").split("/")[0])
            return uri, None
        except MlflowException:
            pass
    model_dir = best.get("model_dir")
    if model_dir and (Path(model_dir) / "MLmodel").exists():
        warnings.warn(f"{best_path}: {uri} is not in the MLflow store {tracking_uri()}; registering the local "
                      f"copy {model_dir}", stacklevel=2)
        return None, Path(model_dir)
    raise GliomicsError(f"{best_path}: model {uri} is not in the MLflow store {tracking_uri()} and model_dir "
                        f"{model_dir!r} holds no MLflow model; re-run `gliomics tune`")


def version_tags(best: dict, evaluation: dict, *, data_hash: str, git_commit: str, profile: str | None,
                 n_test_patients: int, register_run_id: str | None) -> dict:
    """The provenance and metric tags of a new segmenter version."""
    tags = {
        "study_name": best["study_name"],
        "trial_number": best["trial_number"],
        "fidelity": best.get("fidelity", "full"),
        "val_dice_3d": float(best["val_dice_3d"]),
        **{f"test_{key}": float(evaluation[key]) for key in TEST_SCORES if evaluation.get(key) is not None},
        "n_test_patients": n_test_patients,
        "dvc_data_hash": data_hash,
        "git_commit": git_commit,
        "profile": profile or "",
        "source_model_uri": best["model_uri"],
        "register_run_id": register_run_id or "",
        **{f"param.{key}": value for key, value in sorted(best["params"].items())},
    }
    return tags


def segmenter_card(info: dict, best: dict, evaluation: dict, *, n_test_patients: int, post: dict,
                   register_run_id: str | None) -> str:
    """The model card of a registered segmenter version (:func:`gliomics.registry.model_card.render_model_card`)."""
    tags = info["tags"]
    selection = {
        "Optuna study": best["study_name"],
        "storage": best.get("storage", "?"),
        "trial": best["trial_number"],
        "fidelity": best.get("fidelity", "full"),
        "trials run (complete / pruned / failed)": (
            f"{best.get('n_trials', '?')} ({best.get('n_complete', '?')} / {best.get('n_pruned', '?')} / "
            f"{best.get('n_failed', '?')})"),
        "objective": "validation per-patient 3D Dice (one cross-validation fold; never the test patients)",
        **{f"searched: {key}": value for key, value in sorted(best["params"].items())},
    }
    training = dict(best.get("train_settings") or {}) or {"(not recorded)": "see the trial's MLflow run"}
    metrics = {"validation per-patient 3D Dice (selection)": float(best["val_dice_3d"])}
    for key, label in (("mean_dice_3d", "internal test: mean per-patient 3D Dice"),
                       ("median_dice_3d", "internal test: median per-patient 3D Dice"),
                       ("mean_iou_3d", "internal test: mean per-patient 3D IoU"),
                       ("median_hd95_px", "internal test: median HD95 (pixels)"),
                       ("mean_slice_dice", "internal test: mean slice Dice (slices with tumour)")):
        if evaluation.get(key) is not None:
            metrics[label] = float(evaluation[key])
    worst = ", ".join(f"{w['patient']} ({w['dice_3d']:.3f})" for w in evaluation.get("worst_patients", [])[:3])
    settings = ", ".join(f"{k}={v}" for k, v in post.items())
    evaluation_text = (
        f"Internal test: the {n_test_patients} patients of the split's `test` part, held out from training and "
        f"from the search; scored by `gliomics evaluate` after post-processing ({settings}). "
        f"Dice of two empty volumes counts as 1. Lowest 3D Dice: {worst or 'n/a'}."
    )
    provenance = {
        "git commit": tags.get("git_commit", "?"),
        "DVC data hash": tags.get("dvc_data_hash", "?"),
        "profile": tags.get("profile", "?"),
        "source model": best["model_uri"],
        "trial run": info["run_id"] or "?",
        "study parent run": best.get("parent_run_id", "?"),
        "register run": register_run_id or "?",
        "registered": info["created"],
    }
    limitations = [
        f"The internal test set is small ({n_test_patients} patients) and comes from the same cohort and "
        "institutions as the training data: expect lower Dice on other scanners and sites.",
        "A 2D slice model: slices are resized to the model's input size and predicted independently; the 3D "
        "masks are stacks of slice predictions (largest 3D component kept).",
        "Trained on FLAIR-abnormality masks of one annotator; it segments the FLAIR abnormality, not tumour "
        "sub-regions (enhancing tumour, necrosis).",
    ]
    if tags.get("profile") == "demo":
        limitations.insert(0, "Profile `demo`: trained on the synthetic demo cohort; its numbers say nothing "
                              "about real MRI.")
    return render_model_card(info["name"], info["version"], intended_use=INTENDED_USE, selection=selection,
                             training=training, metrics=metrics, evaluation=evaluation_text,
                             provenance=provenance, limitations=limitations)


def run_register(best_json: str | Path, data_dir: str | Path, splits_csv: str | Path, out_dir: str | Path, *,
                 params: RegisterParams = RegisterParams(), post: dict | None = None, profile: str | None = None,
                 name: str = SEGMENTER, mirror_dir: str | Path = MIRROR_DIR) -> dict:
    """Evaluate best.json's model on the test patients, register it, apply the promotion policy.

    Returns (and writes to ``out_dir/registered.json``) ``name, version, run_id,
    model_uri, val_dice_3d, test_mean_dice_3d, data_hash, profile, study_name,
    trial_number, promoted`` plus ``promotion_reason, champion_version,
    n_test_patients, register_run_id, model_card, seconds``.
    """
    started = time.perf_counter()
    out_dir = Path(out_dir)
    best = read_best(best_json)
    test_patients = patients_of_part(splits_csv, "test")
    uri, local_dir = model_source(best, best_json)
    evaluation = evaluate_segmenter(data_dir, uri or str(local_dir), out_dir / EVALUATE_DIR, patients=test_patients,
                              post=post, log_mlflow=False, profile=profile)

    data_hash = tracking.dvc_data_hash(data_dir)
    run_params = {"best_json": str(best_json), "source_model_uri": best["model_uri"], "registered_model": name,
                  "promote_policy": params.promote, "study_name": best["study_name"],
                  "trial_number": best["trial_number"]}
    with tracking.stage_run("register", data_dir=data_dir, params=run_params, profile=profile) as run:
        register_run_id = run.info.run_id
        mlflow.log_metrics({"val_dice_3d": float(best["val_dice_3d"]),
                            **{f"test_{k}": float(evaluation[k]) for k in TEST_SCORES
                               if evaluation.get(k) is not None}})
        for file in (PER_PATIENT, SUMMARY):
            mlflow.log_artifact(str(out_dir / EVALUATE_DIR / file), EVALUATE_DIR)
        if local_dir is not None:
            mlflow.log_artifacts(str(local_dir), "model")
            uri = f"runs:/{register_run_id}/model"
        tags = version_tags(best, evaluation, data_hash=data_hash, git_commit=tracking.git_commit(),
                            profile=profile, n_test_patients=len(test_patients), register_run_id=register_run_id)
        info = register_version(name, uri, tags=tags)
        card = segmenter_card(info, best, evaluation, n_test_patients=len(test_patients),
                              post=evaluation.get("post", post or {}), register_run_id=register_run_id)
        io.write_text(out_dir / MODEL_CARD, card)
        card_uri = attach_model_card(info, card)
        mlflow.log_artifact(str(out_dir / MODEL_CARD))
        mlflow.set_tags({"registered_model": name, "registered_version": str(info["version"])})

        promoted, reason = promote_per_policy(name, info["version"], params.promote, metric=TEST_METRIC,
                                              mirror_dir=mirror_dir)
        mlflow.set_tag("promoted", str(promoted).lower())

    summary = {
        **registered_record(name, info, promoted=promoted, reason=reason),
        "val_dice_3d": float(best["val_dice_3d"]),
        TEST_METRIC: float(evaluation["mean_dice_3d"]),
        "data_hash": data_hash,
        "profile": profile,
        "study_name": best["study_name"],
        "trial_number": best["trial_number"],
        "n_test_patients": len(test_patients),
        "register_run_id": register_run_id,
        "model_card": card_uri,
        "seconds": round(time.perf_counter() - started, 2),
    }
    io.write_json(out_dir / REGISTERED, summary)
    return summary
