"""``gliomics register-classifier``: register the trained slice classifier, write its card, promote it.

:func:`run_register_classifier` registers the model of ``gliomics train-classifier``
(:mod:`gliomics.stages.train_classifier`) as a new version of ``gliomics-slice-classifier`` with its
validation and internal-test numbers (from ``gliomics evaluate --task
classifier`` on the split's test patients) through :mod:`gliomics.registry`,
writes a model card, and applies ``register.promote`` (the test ROC AUC
decides, as :func:`gliomics.registry.promote.promote` does for the segmenter).
"""

from __future__ import annotations

import json
import time
from pathlib import Path

import mlflow

from gliomics import io, tracking
from gliomics.errors import GliomicsError
from gliomics.registry import CLASSIFIER, MIRROR_DIR, primary_metric
from gliomics.registry.model_card import render_model_card
from gliomics.registry.promote import promote_per_policy
from gliomics.registry.register import attach_model_card, register_version, registered_record
from gliomics.training.export import TASK

REGISTERED = "registered.json"
MODEL_CARD = "model_card.md"
#: evaluate --task classifier summary keys stored as ``test_<key>`` version tags.
TEST_SCORES = ("roc_auc", "accuracy", "f1", "sensitivity", "specificity", "precision")


def run_register_classifier(model_json, evaluate_summary, out_dir, *, data_dir, promote_policy: str = "if_better",
                            profile: str | None = None, mirror_dir=MIRROR_DIR) -> dict:
    """Register the trained classifier (``model_json``, written by training) with its test scores.

    ``evaluate_summary`` is the ``summary.json`` of ``gliomics evaluate --task
    classifier`` on the split's test patients for that same model. Writes
    ``out_dir/registered.json`` (``name, version, run_id, model_uri, val_roc_auc,
    test_roc_auc, test_accuracy, data_hash, profile, promoted, promotion_reason,
    champion_version``) and ``out_dir/model_card.md``; returns the former.
    """
    started = time.perf_counter()
    out_dir = Path(out_dir)
    try:
        trained = json.loads(Path(model_json).read_text())
        evaluation = json.loads(Path(evaluate_summary).read_text())
    except (OSError, ValueError) as exc:
        raise GliomicsError(f"cannot read the training/evaluation record ({exc})") from None
    if evaluation.get("model_uri") not in (trained.get("model_uri"), trained.get("model_dir")):
        raise GliomicsError(f"{evaluate_summary}: evaluates {evaluation.get('model_uri')!r}, not the trained model "
                            f"{trained.get('model_dir')!r}; re-run `gliomics evaluate --task classifier`")
    data_hash = tracking.dvc_data_hash(data_dir)
    run_params = {"model_json": str(model_json), "source_model_uri": trained["model_uri"],
                  "registered_model": CLASSIFIER, "promote_policy": promote_policy}
    with tracking.stage_run("register", data_dir=data_dir, params=run_params, profile=profile) as run:
        uri = trained["model_uri"]
        if not str(uri).startswith("runs:/"):  # trained without MLflow: the register run holds the model
            mlflow.log_artifacts(trained["model_dir"], "model")
            uri = f"runs:/{run.info.run_id}/model"
        val = {"val_roc_auc": trained.get("best_val_roc_auc"), "val_accuracy": trained.get("val_accuracy")}
        test = {f"test_{k}": evaluation.get(k) for k in TEST_SCORES}
        numbers = {k: float(v) for k, v in {**val, **test}.items() if v is not None}
        mlflow.log_metrics(numbers)
        tags = {**numbers, "dvc_data_hash": data_hash, "git_commit": tracking.git_commit(),
                "profile": profile or trained.get("profile", ""), "task": TASK,
                "model_config": trained.get("model_config", {}), "n_test_slices": evaluation.get("n_slices"),
                "n_test_patients": evaluation.get("n_patients"), "min_area_px": evaluation.get("min_area_px"),
                "register_run_id": run.info.run_id}
        info = register_version(CLASSIFIER, uri, tags=tags)
        card = render_model_card(
            CLASSIFIER, info["version"],
            intended_use=("Gate before segmentation: says whether one FLAIR-centred slice of a lower-grade glioma "
                          "MRI holds tumour. Research use only; not a diagnostic device."),
            selection={"trained by": "gliomics train-classifier", "best epoch by": "validation ROC AUC",
                       "decision threshold": trained.get("threshold", 0.5)},
            training=trained.get("model_config", {}),
            metrics={k: v for k, v in {**val, **test}.items() if v is not None},
            evaluation=(f"Internal test: {evaluation.get('n_slices')} slices of {evaluation.get('n_patients')} "
                        "patients never used for training or model selection (patient-level split); a slice is "
                        f"tumour when its mask has >= {evaluation.get('min_area_px')} pixels at the model's size."),
            provenance={"git commit": tags["git_commit"], "DVC data hash": data_hash, "profile": tags["profile"],
                        "training run": trained.get("run_id"), "register run": run.info.run_id},
            limitations=[f"Thresholded at the stored threshold ({trained.get('threshold', 0.5):.3g}, chosen on "
                         "the validation slices unless fixed); tiny tumour specks below min_area_px count as "
                         "no tumour.",
                         "Trained on TCGA-LGG (5 institutions); other scanners may need re-validation."])
        io.write_text(out_dir / MODEL_CARD, card)
        attach_model_card(info, card)
        promoted, reason = promote_per_policy(CLASSIFIER, info["version"], promote_policy,
                                              metric=primary_metric(CLASSIFIER), mirror_dir=mirror_dir)
        mlflow.set_tags({"registered_model": CLASSIFIER, "registered_version": str(info["version"]),
                         "promoted": str(promoted).lower()})
    summary = {
        **registered_record(CLASSIFIER, info, promoted=promoted, reason=reason),
        **val, **test,
        "data_hash": data_hash,
        "profile": tags["profile"],
        "seconds": round(time.perf_counter() - started, 2),
    }
    io.write_json(out_dir / REGISTERED, summary)
    return summary
