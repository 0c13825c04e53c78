"""``gliomics evaluate``: per-patient 3D scores of a segmenter on the internal test patients (DVC stage
``evaluate``), or on any labelled cohort; the work and its outputs: :mod:`gliomics.training.evaluation`."""

from __future__ import annotations

from pathlib import Path

from gliomics.training.evaluation import evaluate_segmenter


def run_evaluate(data_dir: str | Path, model_uri, out_dir: str | Path, **options) -> dict:
    """Score ``model_uri`` on the labelled cohort at ``data_dir``, write ``out_dir`` and log a run to MLflow
    (:func:`gliomics.training.evaluation.evaluate_segmenter`, whose keyword options it takes)."""
    return evaluate_segmenter(data_dir, model_uri, out_dir, **options)
